//! `ibackup verify`.
use super::CommandResult;
use crate::render::Output;
use std::path::Path;
pub fn run(_out: &Output, _backup: &Path) -> CommandResult {
    todo!()
}
