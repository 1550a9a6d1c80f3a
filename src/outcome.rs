//! How a command ends: an exit [`Status`] once it has printed its result, or a [`Failure`] that
//! says in one paragraph what could not be done. The commands (cli/) make these and the printing
//! layer (render/) prints a failure; both sit above this module, so neither imports the other
//! for it. The numbers are a contract with scripts: docs/exit-codes.md.

use std::process::ExitCode;

/// Exit status, stable for scripts: see docs/exit-codes.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success; for `verify`, the backup is complete.
    Ok = 0,
    /// `verify` found the backup incomplete or not restorable.
    Incomplete = 1,
    /// Usage error, or something could not be checked (unreadable input, no device...).
    CouldNotCheck = 2,
    /// `backup` was interrupted with Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status as u8)
    }
}

/// A command that could not do its job: one paragraph saying what failed, where, and what to do.
#[derive(Debug)]
pub struct Failure {
    /// A stable identifier, also printed in `--json` mode (for example `backup.unreadable`).
    pub code: &'static str,
    /// What failed and where.
    pub message: String,
    /// What the user can do about it.
    pub hint: String,
}

impl Failure {
    pub fn new(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// What a command returns: its exit status once it has printed its result.
pub type CommandResult = Result<Status, Failure>;
