//! `ibackup device`, `ibackup devices`, `ibackup pair`: the phone's side (issue 3).

use super::{CommandResult, Failure};
use crate::render::Output;

fn not_yet() -> Failure {
    Failure::new(
        "device.unsupported",
        "talking to a phone is not available in this build of ibackup",
        "use `ibackup inspect BACKUP` or `ibackup verify BACKUP` on a backup folder",
    )
}

pub fn device(_out: &Output, _udid: Option<&str>) -> CommandResult {
    Err(not_yet())
}

pub fn devices(_out: &Output) -> CommandResult {
    Err(not_yet())
}

pub fn pair(_out: &Output, _udid: Option<&str>) -> CommandResult {
    Err(not_yet())
}
