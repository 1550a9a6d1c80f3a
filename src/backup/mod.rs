//! Everything about a Finder/iTunes backup folder: its plists, its manifest, its blobs, and the
//! completeness verdict. Nothing here prints, talks to a phone, or writes to disk.

pub mod crypto;
pub mod keybag;
