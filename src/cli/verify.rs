//! `ibackup verify BACKUP`: is this backup complete enough to restore? Exit 0 complete,
//! 1 incomplete, 2 could not check.

use std::path::Path;

use super::{check_backup, CommandResult, Status};
use crate::backup::report::Verdict;
use crate::render::{report, text::Style, Output};

pub fn run(out: &Output, backup: &Path) -> CommandResult {
    let report = check_backup(out, backup)?;
    if out.json {
        out.print_json(&report);
    } else if out.quiet {
        out.print_text(&format!("{}\n", verdict_word(report.verdict)));
    } else {
        out.print_text(&report::verify_text(
            &report,
            Style::new(out.color),
            out.verbose,
        ));
    }
    Ok(match report.verdict {
        Verdict::Complete => Status::Ok,
        Verdict::Incomplete => Status::Incomplete,
        Verdict::Unchecked => Status::CouldNotCheck,
    })
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Complete => "complete",
        Verdict::Incomplete => "incomplete",
        Verdict::Unchecked => "unchecked",
    }
}
