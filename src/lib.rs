//! ibackup: tells an iPhone owner whether their backups are healthy and what to do when they
//! are not.
//!
//! Data flows one way: sources (a backup folder, a phone) give facts, facts give findings, and
//! findings are rendered for people or programs. Each module below owns one step of that flow.

/// Everything about a Finder/iTunes backup folder: no terminal, no device.
pub mod backup;
/// The commands: gather facts, hand them to render. Thin.
pub mod cli;
/// Everything about talking to a phone: usbmuxd or direct USB, lockdown, pairing. No terminal,
/// no backup.
pub mod device;
/// Facts in, findings out: rules and fixes as data. Pure.
pub mod diagnose;
/// Copying a backup's files out (`ibackup extract`): the plan, the layouts, and the jail every
/// write goes through (never outside the destination, never through a link).
pub mod extract;
/// The com.apple.mobile.backup values (iCloud Backup, last backups, encryption), from a phone or
/// a backup. Pure.
pub mod mobile_backup;
/// Making a backup of a connected phone (`ibackup backup`): the mobilebackup2 conversation
/// answered in one folder of this computer, the previous backup kept until the new one verifies.
pub mod new_backup;
/// How a command ends: an exit status, or a failure paragraph.
pub mod outcome;
/// Which OS this is, as a value the OS-specific pure functions take.
pub mod platform;
/// Checks a plist's nesting and size before a value tree is built from it.
pub mod plist_shape;
/// Human text and JSON from the result types; colour and progress policy.
pub mod render;
/// Numbers for people: human units and plurals.
pub mod units;
/// Listing folders others laid out: names, types and sizes, never through a link.
pub mod untrusted_dir;
/// Opening files others laid out: never blocking, never through a link inside a backup, capped.
pub mod untrusted_file;
