//! `ibackup verify BACKUP`: is this backup complete enough to restore, and, with a phone
//! connected, can it be restored to that phone? Exit 0 complete (and ready), 1 incomplete or not
//! restorable, 2 could not check.

use std::path::Path;

use serde::Serialize;

use super::{check_backup, connected_phone, CheckContext, CommandResult, Status};
use crate::backup::report::Verdict;
use crate::backup::BackupReport;
use crate::diagnose::readiness::{restore_readiness, Readiness};
use crate::render::{diagnosis, report, text::Style, Output};

/// The `ibackup.verify/1` object, plus restore readiness when a phone is connected.
#[derive(Serialize)]
struct VerifyOutput<'a> {
    #[serde(flatten)]
    report: &'a BackupReport,
    /// Null when no phone is connected.
    restore: Option<Readiness>,
}

pub fn run(out: &Output, ctx: &CheckContext, backup: &Path, udid: Option<&str>) -> CommandResult {
    let report = check_backup(out, ctx, backup)?;
    let (device, device_error) = connected_phone(out, udid, ctx.transport);
    let restore = device
        .as_ref()
        .map(|d| restore_readiness(&report, d, ctx.password.given()));
    if out.json {
        out.print_json(&VerifyOutput {
            report: &report,
            restore: restore.clone(),
        });
    } else if out.quiet {
        out.print_text(&format!("{}\n", verdict_word(report.verdict)));
    } else {
        let style = Style::new(out.color);
        let mut text = report::verify_text(&report, style, out.verbose);
        if let Some(readiness) = &restore {
            text.push('\n');
            text.push_str(&diagnosis::readiness_text(readiness, style));
        }
        if let Some(error) = device_error {
            text.push_str(&format!("\nRestore readiness unknown: {error}\n"));
        }
        out.print_text(&text);
    }
    Ok(match report.verdict {
        Verdict::Complete if restore.as_ref().is_some_and(|r| !r.ready) => Status::Incomplete,
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
