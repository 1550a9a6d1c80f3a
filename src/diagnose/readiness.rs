//! Restore readiness: can this backup be restored to the phone that is plugged in? Blockers
//! make the answer "not ready"; notes are what the person should know before starting. When the
//! phone does not tell enough to know (it has not trusted this computer, so its storage and Find
//! My are hidden), the answer is "unknown", never "ready", with a finding that says how to find
//! out.

use serde::Serialize;

use super::version::IosVersion;
use super::{finding, Finding};
use crate::backup::report::{Severity, Verdict};
use crate::backup::BackupReport;
use crate::device::DeviceState;
use crate::units::human_bytes;

/// The findings restore readiness can give, for docs/fixes.md: code, when, fixes.
pub const FINDINGS: &[(&str, &str, &[&str])] = &[(
    UNKNOWN,
    "A phone is connected but has not trusted this computer, so whether the backup can be restored to it (its storage, Find My) cannot be told.",
    &["pair"],
)];

/// The code of the finding given when readiness cannot be told.
pub const UNKNOWN: &str = "restore.unknown";

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// UDID of the phone the backup would be restored to.
    pub device: String,
    /// `true`: nothing stands in the way; `false`: a blocker does; `None` (JSON null): the phone
    /// does not tell enough to know, and `findings` says how to find out.
    pub ready: Option<bool>,
    pub blockers: Vec<String>,
    pub notes: Vec<String>,
    /// What to do to find out, when `ready` is null.
    pub findings: Vec<Finding>,
}

/// What `verify` answers, from the backup's verdict and, with a phone connected, its readiness:
/// one judgement that both the exit code and the one-word `--quiet` output are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Complete, and ready to restore (or readiness unknown, or no phone).
    Complete,
    /// Complete, but something stands in the way of restoring it to the connected phone.
    NotRestorable,
    Incomplete,
    Unchecked,
}

pub fn answer(verdict: Verdict, readiness: Option<&Readiness>) -> Answer {
    match verdict {
        Verdict::Complete if readiness.is_some_and(|r| r.ready == Some(false)) => {
            Answer::NotRestorable
        }
        Verdict::Complete => Answer::Complete,
        Verdict::Incomplete => Answer::Incomplete,
        Verdict::Unchecked => Answer::Unchecked,
    }
}

/// Judges `backup` against `device`. `password_given`: the user supplied the backup password.
pub fn restore_readiness(
    backup: &BackupReport,
    device: &DeviceState,
    password_given: bool,
) -> Readiness {
    let mut blockers = Vec::new();
    let mut notes = Vec::new();
    match backup.verdict {
        Verdict::Complete => {}
        Verdict::Incomplete => blockers.push(
            "the backup is incomplete, and a restore refuses a half-finished backup".to_string(),
        ),
        Verdict::Unchecked => blockers.push("the backup could not be fully checked".to_string()),
    }
    let made_on = backup.backup.ios_version.as_deref();
    let runs = device.ios_version.as_deref();
    match (
        made_on.and_then(IosVersion::parse),
        runs.and_then(IosVersion::parse),
    ) {
        (Some(b), Some(d)) if b > d => blockers.push(format!(
            "the backup was made on iOS {}, newer than the phone's iOS {}: update the phone first",
            made_on.unwrap_or("?"),
            runs.unwrap_or("?")
        )),
        (Some(_), Some(_)) => {}
        _ => notes.push("the iOS versions could not be compared".to_string()),
    }
    let size = backup.size.declared_bytes;
    match &device.storage {
        Some(storage) if size > storage.total_bytes => blockers.push(format!(
            "the backup holds {}, more than the phone's {} of storage",
            human_bytes(size),
            human_bytes(storage.total_bytes)
        )),
        // A restore replaces what is on the phone, so free space is a caution, not a blocker.
        Some(storage) if size > storage.available_bytes => notes.push(format!(
            "the backup holds {} and the phone has {} free: the restore replaces what is on the \
             phone now, so back that up first if you need it",
            human_bytes(size),
            human_bytes(storage.available_bytes)
        )),
        Some(_) => {}
        None => notes.push(
            "the phone's storage is unknown (pair with `ibackup pair` to read it)".to_string(),
        ),
    }
    match device.find_my {
        Some(true) => blockers.push("Find My is on: turn it off on the phone first".to_string()),
        Some(false) => {}
        None => notes.push(
            "whether Find My is on is unknown (pair with `ibackup pair` to read it)".to_string(),
        ),
    }
    if backup.backup.encrypted && !password_given {
        notes.push("the backup is encrypted: the restore will ask for its password".to_string());
    }
    // Without a paired session the phone hides what a restore depends on: no answer is given
    // from what is missing.
    let unknown = !device.paired || device.storage.is_none() || device.find_my.is_none();
    let (ready, findings) = if !blockers.is_empty() {
        (Some(false), Vec::new())
    } else if unknown {
        let (code, _, fixes) = FINDINGS[0];
        let evidence = format!(
            "whether this backup can be restored to {} is unknown: {}, so its free space and \
             Find My cannot be read",
            device.name.as_deref().unwrap_or(&device.udid),
            if device.paired {
                "the phone did not give them"
            } else {
                "it has not trusted this computer"
            }
        );
        (
            None,
            vec![finding(code, Severity::Warning, evidence, fixes)],
        )
    } else {
        (Some(true), Vec::new())
    };
    Readiness {
        device: device.udid.clone(),
        ready,
        blockers,
        notes,
        findings,
    }
}
