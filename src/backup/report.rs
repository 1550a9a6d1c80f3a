//! The result of checking one backup: plain data with serde derives. Its JSON form is the
//! `ibackup.verify/1` schema of docs/json.md; field names are a contract with scripts.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

pub use super::apps::{AppKind, AppSize, IcloudEstimate, NameSource};
pub use super::contents::Holding;
pub use crate::mobile_backup::IcloudBackup;

/// JSON schema identifier of a [`BackupReport`].
pub const VERIFY_SCHEMA: &str = "ibackup.verify/1";

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub schema: &'static str,
    pub backup: BackupSummary,
    /// True only when Status.plist says finished, no Snapshot/ is left, the manifest is intact,
    /// and every listed file is present with the right size.
    pub complete: bool,
    /// `complete`, `incomplete`, or `unchecked` when part of the backup could not be examined.
    pub verdict: Verdict,
    pub files: FileCounts,
    pub size: SizeCounts,
    /// Every domain, biggest first.
    pub domains: Vec<DomainSize>,
    /// The domains grouped by app (containers, extensions and groups), biggest first; shared
    /// containers no app claims are entries of their own (empty when the manifest could not be
    /// read). See backup/apps.rs.
    pub apps: Vec<AppSize>,
    /// What an iCloud backup of the phone would take, and on which assumption; null when the
    /// manifest could not be read.
    pub icloud_estimate: Option<IcloudEstimate>,
    /// What the backup holds, by the categories people ask about (empty when the manifest
    /// could not be read).
    pub contents: Vec<Holding>,
    /// Whether the file list was read (a plain backup, or an encrypted one unlocked with its
    /// password); false for an encrypted backup checked without its password.
    pub manifest_read: bool,
    /// Whether `--deep` checks ran (blob decryption, SQLite quick_check).
    pub deep: bool,
    /// `--deep`: the key SQLite databases found in the backup and what quick_check said.
    pub databases: Vec<DatabaseCheck>,
    pub problems: Vec<Problem>,
}

/// One key database opened by `--deep` and checked with `PRAGMA quick_check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseCheck {
    /// What it holds, in the user's words ("Messages", "Photos", ...).
    pub name: &'static str,
    pub file_id: String,
    pub domain: String,
    pub path: String,
    /// `ok`, or the first problem SQLite (or decryption) reported.
    pub result: String,
}

/// Who and when: from Info.plist, Manifest.plist and Status.plist.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupSummary {
    pub path: String,
    pub udid: Option<String>,
    pub device_name: Option<String>,
    pub ios_version: Option<String>,
    pub build_version: Option<String>,
    pub product_type: Option<String>,
    /// Status.plist's date, else Manifest.plist's, else Info.plist's; RFC 3339 in UTC.
    #[serde(serialize_with = "utc_seconds")]
    pub date: Option<DateTime<Utc>>,
    pub encrypted: bool,
    pub snapshot_state: Option<String>,
    pub is_full_backup: Option<bool>,
    /// When the folder was last written to: the newest modification time of its top-level
    /// entries and of Snapshot/'s (docs/json.md). Recent, on a backup that has not finished,
    /// means a backup may be being written now.
    #[serde(serialize_with = "utc_seconds")]
    pub last_written: Option<DateTime<Utc>>,
    /// iCloud Backup as the phone saw it on the backup's date (com.apple.mobile.ldbackup.plist
    /// inside the backup); every field null when that file could not be read.
    pub icloud: IcloudBackup,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FileCounts {
    /// Regular-file rows: flags 1, or flags other than 1, 2 and 4 with a regular-file Mode.
    pub listed: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Rows with flags other than 1, 2 or 4 whose record's Mode is not a file, folder or
    /// symlink either (or cannot be read).
    pub other_rows: u64,
    /// Listed files whose blob exists (whatever its size).
    pub present: u64,
    /// Listed files whose blob exists with exactly the right size.
    pub intact: u64,
    pub missing: Vec<FileRef>,
    /// Listed files whose blob could not be looked for: the folder that would hold it (or its
    /// entry) could not be read. Neither present nor missing; `backup.blobs_unreadable` says why.
    pub unreachable: Vec<FileRef>,
    pub size_mismatch: Vec<SizeMismatch>,
    /// Blob files that no row lists.
    pub orphans: u64,
    /// Listed files whose record has no Size: present, but their size cannot be checked.
    pub size_unknown: u64,
    /// Rows whose fileID is not SHA-1(domain-relativePath): a damaged manifest.
    pub file_id_mismatch: Vec<FileRef>,
    /// Rows whose MBFile record could not be decoded.
    pub damaged_records: Vec<DamagedRecord>,
    /// Blob paths that exist but are not regular files (a folder, a symlink...).
    pub not_a_file: Vec<FileRef>,
    /// Blob files found in the folder, listed or not (known even without the password).
    pub blobs_on_disk: u64,
    /// `--deep` on an encrypted backup: blobs decrypted and found to be exactly their Size.
    pub decrypted: u64,
    /// `--deep` on an encrypted backup: blobs whose padding is invalid (wrong key or damaged
    /// data) or whose plaintext is not their Size.
    pub undecryptable: Vec<DamagedRecord>,
    /// `--deep` on an unencrypted backup: SQLite databases and plists whose content was checked
    /// (quick_check, or parsed), key databases included.
    pub content_checked: u64,
    /// `--deep` on an unencrypted backup: databases and plists of the right size that failed
    /// that check (key databases are in `databases` instead), with `reason`.
    pub content_damaged: Vec<DamagedRecord>,
    /// Rows whose relativePath has a `..` part or starts with `/`, or whose domain has a `/`:
    /// paths a restore exploit would use. Never followed.
    pub suspicious_paths: Vec<FileRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRef {
    pub file_id: String,
    pub domain: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SizeMismatch {
    pub file_id: String,
    pub domain: String,
    pub path: String,
    pub expected_bytes: u64,
    pub actual_bytes: u64,
    /// What the blob's content says about the difference.
    pub judged: Judged,
    /// Why, in words: what the format showed, or why it could not tell.
    pub evidence: String,
}

/// A size mismatch judged by the blob's content (docs/json.md, `files.size_mismatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judged {
    /// Bytes are missing: `backup.files_truncated`.
    CutShort,
    /// Whole by its length, but `--deep` found it damaged: `backup.files_truncated`.
    Damaged,
    /// Whole content of another size (changed while the backup ran): `backup.files_changed`.
    Changed,
    /// The format cannot tell: counted as cut short, `backup.files_truncated`.
    Unknown,
}

impl Judged {
    /// Whether this mismatch makes the backup incomplete.
    pub fn is_error(self) -> bool {
        self != Judged::Changed
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedRecord {
    pub file_id: String,
    pub domain: String,
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SizeCounts {
    /// Sum of Size over listed files.
    pub declared_bytes: u64,
    /// Sum of the sizes of all blob files on disk (listed or not).
    pub on_disk_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainSize {
    pub domain: String,
    pub files: u64,
    pub bytes: u64,
}

/// The answer to "can this backup be restored as it is?", as far as the folder tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Complete,
    Incomplete,
    Unchecked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// Something wrong with the backup, with a stable code (docs/json.md lists them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
}

impl Problem {
    pub fn new(code: &'static str, severity: Severity, message: impl Into<String>) -> Self {
        Problem {
            code,
            severity,
            message: message.into(),
        }
    }
}

/// Dates as `2026-11-20T21:03:11Z`: UTC, whole seconds, as the contract shows them.
fn utc_seconds<S: Serializer>(date: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(d) => s.serialize_str(&d.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => s.serialize_none(),
    }
}
