//! What `ibackup inspect` found, as one value: the phone, the backups, restore readiness and the
//! findings. Its serde form is the `ibackup.inspect/1` JSON contract (docs/json.md); the text
//! page is drawn from the same value by render/inspect.rs. Plain data: how the pieces are gathered
//! is the command's business (cli/inspect.rs).

use serde::Serialize;

use super::readiness::Readiness;
use super::Finding;
use crate::backup::BackupReport;
use crate::device::DeviceState;

/// JSON schema identifier of `inspect --json`.
pub const INSPECT_SCHEMA: &str = "ibackup.inspect/1";

/// `inspect --json`: see docs/json.md.
#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub schema: &'static str,
    /// The connected phone's state; null when none is connected.
    pub device: Option<DeviceState>,
    /// Why the connected phone could not be read, when it could not.
    pub device_error: Option<String>,
    /// Newest first.
    pub backups: Vec<BackupReport>,
    /// Backups that could not be read at all.
    pub errors: Vec<UnreadableBackup>,
    /// Whether the newest backup of the connected phone (or the one named) can be restored to it.
    pub restore: Option<Readiness>,
    pub findings: Vec<Finding>,
}

/// A backup found in a folder of backups that could not be read at all.
#[derive(Debug, Serialize)]
pub struct UnreadableBackup {
    pub path: String,
    pub code: &'static str,
    pub message: String,
}
