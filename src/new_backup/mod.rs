//! Making a backup: `ibackup backup`'s engine (issue 15). Being built.

pub mod folder;
pub mod staging;
