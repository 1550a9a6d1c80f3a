//! `ibackup verify BACKUP`: is this backup complete enough to restore, and, with a phone
//! connected, can it be restored to that phone? Exit 0 complete (and ready), 1 incomplete or not
//! restorable, 2 could not check.

use std::path::Path;

use serde::Serialize;

use super::{check_backup, connected_phone, CheckContext, CommandResult, Status};
use crate::backup::{locate, BackupReport};
use crate::diagnose::readiness::{self, restore_readiness, Answer, Readiness};
use crate::diagnose::rules::being_written;
use crate::platform::Os;
use crate::render::{text::Style, verify, Output};

/// The `ibackup.verify/1` object, plus restore readiness when a phone is connected.
#[derive(Serialize)]
struct VerifyOutput<'a> {
    #[serde(flatten)]
    report: &'a BackupReport,
    /// Null when no phone is connected.
    restore: Option<Readiness>,
}

pub fn run(out: &Output, ctx: &CheckContext, backup: &Path, udid: Option<&str>) -> CommandResult {
    let backup = locate::typed_path(backup, Os::current());
    let report = check_backup(out, ctx, &backup)?;
    let (device, device_error) = connected_phone(out, udid, ctx.transport);
    let restore = device
        .as_ref()
        .map(|d| restore_readiness(&report, d, ctx.password.given()));
    let answer = readiness::answer(report.verdict, restore.as_ref());
    if out.json {
        out.print_json(&VerifyOutput {
            report: &report,
            restore: restore.clone(),
        });
    } else if out.quiet {
        out.print_text(&format!("{}\n", verify::answer_word(answer)));
    } else {
        out.print_text(&verify::verify_page(
            &report,
            restore.as_ref(),
            device_error.as_deref(),
            Style::new(out.color),
            out.verbose,
        ));
        // Still incomplete (exit 1): a backup being written cannot be restored yet.
        if being_written(&report, chrono::Utc::now()) {
            out.print_text(&verify::in_progress_note(Style::new(out.color)));
        }
    }
    Ok(match answer {
        Answer::Complete => Status::Ok,
        Answer::NotRestorable | Answer::Incomplete => Status::Incomplete,
        Answer::Unchecked => Status::CouldNotCheck,
    })
}
