//! `ibackup diff`: placeholder, being written (issue 17).

use std::path::Path;

use super::{CheckContext, CommandResult, Failure};
use crate::render::Output;

pub fn run(_out: &Output, _ctx: &CheckContext, _old: &Path, _new: &Path) -> CommandResult {
    Err(Failure::new("diff.unavailable", "not yet", "-"))
}
