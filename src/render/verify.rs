//! The text page of `ibackup verify`: the backup's verdict and problems, then, with a phone
//! connected, whether it can be restored to it (or why that could not be told). With `--quiet`,
//! the verdict alone, one word.

use super::text::{field, Style};
use super::{diagnosis, report};
use crate::backup::report::BackupReport;
use crate::diagnose::readiness::{Answer, Readiness};

/// The full page.
pub fn verify_page(
    backup: &BackupReport,
    restore: Option<&Readiness>,
    device_error: Option<&str>,
    style: Style,
    verbose: bool,
) -> String {
    let mut text = report::verify_text(backup, style, verbose);
    if let Some(readiness) = restore {
        text.push('\n');
        text.push_str(&diagnosis::readiness_text(readiness, style));
        if !readiness.findings.is_empty() {
            text.push('\n');
            text.push_str(&diagnosis::findings_text(&readiness.findings, style));
        }
    }
    if let Some(error) = device_error {
        text.push_str(&format!("\nRestore readiness unknown: {}\n", field(error)));
    }
    text
}

/// The note under the page of a backup that is being written now (diagnose's
/// [`being_written`](crate::diagnose::rules::being_written)): its verdict stays incomplete.
pub fn in_progress_note(style: Style) -> String {
    format!(
        "\n{} it has not finished and its folder was written to in the last {} minutes. Wait \
         for the backup to finish, then verify it again.\n",
        style.warn("A backup is being written into this folder now:"),
        crate::diagnose::rules::IN_PROGRESS_MINUTES
    )
}

/// What `verify --quiet` prints: the same answer the exit code gives (docs/exit-codes.md).
pub fn answer_word(answer: Answer) -> &'static str {
    match answer {
        Answer::Complete => "complete",
        Answer::NotRestorable => "not restorable",
        Answer::Incomplete => "incomplete",
        Answer::Unchecked => "unchecked",
    }
}
