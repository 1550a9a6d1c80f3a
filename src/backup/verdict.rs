//! The verdict on a checked backup: complete, incomplete or unchecked, decided from its problems
//! alone (docs/design.md, "Three verdicts"). Which facts become which problems is `problems`'
//! business; this module only ranks them.

use super::problems::codes;
use super::report::{Problem, Severity, Verdict};

/// Unchecked when part of the backup could not be examined; otherwise incomplete when any
/// error-level problem stands; otherwise complete.
pub(super) fn verdict(problems: &[Problem]) -> Verdict {
    if problems.iter().any(|p| codes::UNCHECKED.contains(&p.code)) {
        Verdict::Unchecked
    } else if problems.iter().any(|p| p.severity == Severity::Error) {
        Verdict::Incomplete
    } else {
        Verdict::Complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_order() {
        let p = |code, severity| Problem::new(code, severity, "");
        assert_eq!(verdict(&[]), Verdict::Complete);
        assert_eq!(
            verdict(&[p(codes::ORPHANS, Severity::Info)]),
            Verdict::Complete
        );
        assert_eq!(
            verdict(&[p(codes::FILES_MISSING, Severity::Error)]),
            Verdict::Incomplete
        );
        assert_eq!(
            verdict(&[
                p(codes::FILES_MISSING, Severity::Error),
                p(codes::NOT_A_FILE, Severity::Error)
            ]),
            Verdict::Unchecked
        );
    }
}
