//! Human text for findings, the fixes to follow, and restore readiness. A finding's evidence
//! and readiness's reasons can quote a backup's or a phone's names: they are shown through
//! [`field`].

use std::fmt::Write;

use super::text::{field, Style};
use crate::backup::report::Severity;
use crate::diagnose::readiness::Readiness;
use crate::diagnose::{plan, Finding};

fn mark(severity: Severity, style: Style) -> String {
    match severity {
        Severity::Error => style.bad("✗"),
        Severity::Warning => style.warn("!"),
        Severity::Info => style.dim("i"),
    }
}

/// "What ibackup found" and "What to do": the findings, then each fix once, numbered, with its
/// steps, in the order the findings ask for them.
pub fn findings_text(findings: &[Finding], style: Style) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        let _ = writeln!(out, "{}", style.good("Nothing to fix: no problem found."));
        return out;
    }
    let _ = writeln!(out, "{}", style.bold("What ibackup found"));
    for f in findings {
        let _ = writeln!(
            out,
            "  {} {}",
            mark(f.severity, style),
            capitalized(&f.evidence)
        );
    }
    let _ = writeln!(out, "\n{}", style.bold("What to do"));
    for (i, fix) in plan(findings).iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, style.bold(fix.title));
        // A step may quote the backup (the names of its biggest apps).
        for step in &fix.steps {
            let _ = writeln!(out, "     - {}", field(step));
        }
    }
    out
}

/// One line a finding, no headings and no fixes (what `inspect --quiet` prints), or one line
/// saying there is nothing to fix.
pub fn findings_summary(findings: &[Finding], style: Style) -> String {
    if findings.is_empty() {
        return format!("{}\n", style.good("Nothing to fix: no problem found."));
    }
    findings
        .iter()
        .map(|f| format!("{} {}\n", mark(f.severity, style), capitalized(&f.evidence)))
        .collect()
}

/// The first letter in upper case, unless the word is already cased on purpose ("iOS",
/// "iCloud"); shown as a [`field`].
fn capitalized(text: &str) -> String {
    let text = &field(text);
    let mut chars = text.chars();
    match (chars.next(), text.chars().nth(1)) {
        (Some(first), Some(second)) if !second.is_uppercase() => {
            first.to_uppercase().chain(chars).collect()
        }
        _ => text.to_string(),
    }
}

/// "Ready to restore", "Not ready to restore" or "Cannot tell", with the reasons. The fixes of
/// an unknown answer are printed by whoever prints the findings.
pub fn readiness_text(readiness: &Readiness, style: Style) -> String {
    let mut out = String::new();
    let heading = match readiness.ready {
        Some(true) => style.good("Ready to restore to the connected iPhone."),
        Some(false) => style.bad("Not ready to restore to the connected iPhone:"),
        None => style.warn("Cannot tell yet whether it can be restored to the connected iPhone:"),
    };
    let _ = writeln!(out, "{heading}");
    for f in &readiness.findings {
        let _ = writeln!(
            out,
            "  {} {}",
            mark(f.severity, style),
            capitalized(&f.evidence)
        );
    }
    for b in &readiness.blockers {
        let _ = writeln!(out, "  {} {}", style.bad("✗"), capitalized(b));
    }
    for n in &readiness.notes {
        let _ = writeln!(out, "  {} {}", style.dim("i"), capitalized(n));
    }
    out
}
