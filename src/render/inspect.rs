//! The text page of `ibackup inspect`: the phone, the backups (one in full, or a list), restore
//! readiness, then the findings and what to do. Built from the same value as the JSON. Quiet:
//! the findings, one line each, nothing else.

use super::text::{field, Style};
use super::{device, diagnosis, report, Output};
use crate::diagnose::inspection::InspectReport;

/// The page for `result`; `single` when one backup was named, so it is shown in full. With
/// `--quiet`, the findings alone, one line each.
pub fn inspect_text(result: &InspectReport, single: bool, out: &Output) -> String {
    let style = Style::new(out.color);
    if out.quiet {
        if result.findings.is_empty() && unchecked_parts(result) {
            return format!("{}\n", style.warn(UNCHECKED_PARTS));
        }
        return diagnosis::findings_summary(&result.findings, style);
    }
    let mut sections = Vec::new();
    if let Some(state) = &result.device {
        sections.push(device::device_text(state, style, false));
    }
    if let Some(error) = &result.device_error {
        sections.push(format!(
            "{} {}\n",
            style.warn("The connected iPhone could not be read:"),
            field(error)
        ));
    }
    if single {
        if let Some(backup) = result.backups.first() {
            sections.push(report::inspect_text(backup, style, out.verbose));
        }
    } else if !result.backups.is_empty() || !result.errors.is_empty() {
        let mut list = report::backup_list_text(&result.backups, style);
        for e in &result.errors {
            list.push_str(&format!(
                "{}  {}\n  {}\n",
                field(&e.path),
                style.bad("unreadable"),
                field(&e.message)
            ));
        }
        sections.push(list);
    }
    if let Some(readiness) = &result.restore {
        sections.push(diagnosis::readiness_text(readiness, style));
    }
    if result.findings.is_empty() && unchecked_parts(result) {
        sections.push(format!("{}\n", style.warn(UNCHECKED_PARTS)));
    } else {
        sections.push(diagnosis::findings_text(&result.findings, style));
    }
    sections.join("\n")
}

/// Said instead of "Nothing to fix" when the phone or a backup could not be read: nothing was
/// found, but not everything could be looked at.
const UNCHECKED_PARTS: &str =
    "No problem found in what could be read, but what is named above as unreadable was not checked.";

/// Whether the phone or any backup could not be read at all.
fn unchecked_parts(result: &InspectReport) -> bool {
    result.device_error.is_some() || !result.errors.is_empty()
}
