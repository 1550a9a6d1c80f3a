//! `ibackup inspect`.
use super::CommandResult;
use crate::render::Output;
use std::path::Path;
pub fn run(_out: &Output, _target: Option<&Path>, _udid: Option<&str>) -> CommandResult {
    todo!()
}
