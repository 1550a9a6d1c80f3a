//! Everything about a Finder/iTunes backup folder: its plists, its manifest, its blobs, and the
//! completeness verdict. Nothing here prints, talks to a phone, or writes to disk.

pub mod apps;
pub mod blobs;
pub mod bplist;
pub mod catalog;
pub mod content_check;
pub mod contents;
pub mod crypto;
mod deep;
pub mod diff;
mod error;
pub mod folder;
pub mod icloud;
pub mod judge;
pub mod kdf;
pub mod keybag;
pub mod locate;
pub mod manifest;
mod matching;
pub mod mbdb;
pub mod mbfile;
pub mod plists;
mod problems;
pub mod report;
mod scan;
pub mod select;
pub mod sqlite_vfs;
pub mod unlock;
mod verdict;
pub mod verify;

pub use error::BackupError;
pub use folder::needs_password;
pub use report::BackupReport;
pub use verify::verify;
