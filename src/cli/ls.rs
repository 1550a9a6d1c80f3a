//! `ibackup ls`: placeholder, being written (issue 17).

use std::path::Path;

use super::{CheckContext, CommandResult, Failure};
use crate::render::Output;

pub fn run(
    _out: &Output,
    _ctx: &CheckContext,
    _backup: &Path,
    _selection: &crate::backup::select::Selection,
) -> CommandResult {
    Err(Failure::new("ls.unavailable", "not yet", "-"))
}
