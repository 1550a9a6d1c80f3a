//! Restore readiness: can this backup be restored to the phone that is plugged in? Blockers
//! make the answer "not ready"; notes are what the person should know before starting.

use serde::Serialize;

use super::version::IosVersion;
use crate::backup::report::Verdict;
use crate::backup::BackupReport;
use crate::device::DeviceState;
use crate::units::human_bytes;

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// UDID of the phone the backup would be restored to.
    pub device: String,
    pub ready: bool,
    pub blockers: Vec<String>,
    pub notes: Vec<String>,
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
    Readiness {
        device: device.udid.clone(),
        ready: blockers.is_empty(),
        blockers,
        notes,
    }
}
