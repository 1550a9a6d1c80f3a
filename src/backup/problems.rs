//! The wording of every problem a check can report, and the stable codes scripts match on
//! (listed in docs/json.md). Each function here looks at facts already gathered (the folder, the
//! blob store, the counts in a report) and adds the [`Problem`]s they amount to, in plain words
//! that say what is wrong and, where there is something to do, what to do.
//!
//! It gathers nothing itself and does not decide the verdict (that is `verdict`).

use super::blobs::BlobStore;
use super::folder::{Folder, Loaded};
use super::plists::SnapshotState;
use super::report::{
    BackupReport, DamagedRecord, DatabaseCheck, Judged, Problem, Severity, SizeMismatch,
};
use crate::units::{human_count, plural};

/// Problem codes (stable; listed in docs/json.md).
pub mod codes {
    pub const STATUS_MISSING: &str = "backup.status_missing";
    pub const UNFINISHED: &str = "backup.unfinished";
    pub const SNAPSHOT_LEFT: &str = "backup.snapshot_left";
    pub const INFO_MISSING: &str = "backup.info_missing";
    pub const MANIFEST_PLIST_MISSING: &str = "backup.manifest_plist_missing";
    pub const MANIFEST_PLIST_EMPTY: &str = "backup.manifest_plist_empty";
    pub const MANIFEST_DB_MISSING: &str = "backup.manifest_db_missing";
    pub const MANIFEST_DB_EMPTY: &str = "backup.manifest_db_empty";
    pub const FILES_MISSING: &str = "backup.files_missing";
    pub const FILES_TRUNCATED: &str = "backup.files_truncated";
    pub const FILE_ID_MISMATCH: &str = "backup.file_id_mismatch";
    pub const RECORDS_DAMAGED: &str = "backup.records_damaged";
    pub const NOT_A_FILE: &str = "backup.blob_not_a_file";
    pub const UNREADABLE: &str = "backup.blobs_unreadable";
    pub const ENCRYPTED_NO_PASSWORD: &str = "backup.encrypted_no_password";
    pub const ORPHANS: &str = "backup.orphans";
    pub const SIZE_UNKNOWN: &str = "backup.size_unknown";
    pub const UNDECRYPTABLE: &str = "backup.blobs_undecryptable";
    pub const DATABASE_DAMAGED: &str = "backup.database_damaged";
    pub const FILES_CHANGED: &str = "backup.files_changed";
    pub const CONTENT_DAMAGED: &str = "backup.content_damaged";
    pub const MANIFEST_UNPADDED: &str = "backup.manifest_unpadded";
    pub const SUSPICIOUS_PATH: &str = "backup.suspicious_path";
    pub const ENCRYPTED_NO_KEYBAG: &str = "backup.encrypted_no_keybag";

    /// Problems that mean part of the backup could not be checked (exit 2), not that it is
    /// known to be incomplete.
    pub const UNCHECKED: [&str; 3] = [NOT_A_FILE, UNREADABLE, ENCRYPTED_NO_PASSWORD];
}

/// An iOS 5-9 backup is encrypted and `--deep` was asked for without the password.
pub(super) fn deep_needs_password() -> Problem {
    Problem::new(
        codes::ENCRYPTED_NO_PASSWORD,
        Severity::Error,
        "This backup is encrypted: --deep needs the backup password to decrypt its files \
         (--password-file FILE, the IBACKUP_PASSWORD environment variable, or typed when \
         asked); the file list was checked without it.",
    )
}

/// An encrypted Manifest.db and no password: the file list cannot be read at all.
pub(super) fn manifest_needs_password() -> Problem {
    Problem::new(
        codes::ENCRYPTED_NO_PASSWORD,
        Severity::Error,
        "This backup is encrypted: its file list (Manifest.db) can only be read with \
         the backup password, so the files could not be checked. With the password \
         (--password-file FILE, the IBACKUP_PASSWORD environment variable, or typed \
         when asked) ibackup also checks that every listed file is present with the \
         right size, and with --deep that every file decrypts intact.",
    )
}

/// An encrypted Manifest.db that decrypted to SQLite but had no PKCS#7 padding.
pub(super) fn manifest_unpadded() -> Problem {
    Problem::new(
        codes::MANIFEST_UNPADDED,
        Severity::Warning,
        "The encrypted Manifest.db has no padding at its end, which Finder always adds: another \
         tool wrote or rewrote it. It decrypts to an intact file list all the same, so the check \
         went on.",
    )
}

/// No readable Manifest.plist, yet the file records carry encryption keys.
pub(super) fn encrypted_without_keybag(keyed: u64, files: u64) -> Problem {
    Problem::new(
        codes::ENCRYPTED_NO_KEYBAG,
        Severity::Warning,
        format!(
            "This backup is encrypted ({} of its {} carry an encryption key), but there is no \
             Manifest.plist, which holds the keybag that unlocks them: neither ibackup nor a \
             restore can decrypt its files, with or without the password.",
            human_count(keyed),
            plural(files, "file record", "file records")
        ),
    )
}

/// How a name from a backup is shown in a message: control characters and other invisible or
/// reordering characters (which could rewrite a terminal line or hide text) become `\u{..}`
/// escapes, and a backslash is doubled so an escape cannot be faked.
pub(super) fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let invisible = c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if c == '\\' {
            out.push_str("\\\\");
        } else if invisible {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Rows whose path could climb out of the folder a restore writes into.
pub(super) fn suspicious_paths(report: &mut BackupReport) {
    if let Some(first) = report.files.suspicious_paths.first() {
        let count = report.files.suspicious_paths.len() as u64;
        report.problems.push(Problem::new(
            codes::SUSPICIOUS_PATH,
            Severity::Warning,
            format!(
                "{} of the file list {} a path that climbs out of its domain (a \"..\" part, a \
                 path starting with \"/\", or a domain with \"/\" in it), for example domain \
                 \"{}\" path \"{}\". Restore exploits use such paths: this backup may have \
                 been tampered with. ibackup never builds a path from them.",
                plural(count, "row", "rows"),
                if count == 1 { "has" } else { "have" },
                shown(&first.domain),
                shown(&first.path)
            ),
        ));
    }
}

pub(super) fn folder_problems(folder: &Folder, problems: &mut Vec<Problem>) {
    use Severity::*;
    match &folder.status {
        Loaded::Missing | Loaded::Empty => problems.push(Problem::new(
            codes::STATUS_MISSING,
            Error,
            "There is no Status.plist, so nothing shows that this backup ever finished.",
        )),
        Loaded::Read(status) => match &status.snapshot_state {
            Some(SnapshotState::Finished) => {}
            Some(state) => problems.push(Problem::new(
                codes::UNFINISHED,
                Error,
                format!(
                    "The backup did not finish: Status.plist says \"{}\" where a finished backup \
                     says \"finished\".",
                    shown(state.as_str())
                ),
            )),
            None => problems.push(Problem::new(
                codes::UNFINISHED,
                Error,
                "The backup did not finish: Status.plist has no SnapshotState.",
            )),
        },
    }
    if folder.snapshot_left {
        problems.push(Problem::new(
            codes::SNAPSHOT_LEFT,
            Error,
            "A Snapshot folder is left over: a backup into this folder was interrupted.",
        ));
    }
    match &folder.manifest {
        Loaded::Missing => problems.push(Problem::new(
            codes::MANIFEST_PLIST_MISSING,
            Error,
            "There is no Manifest.plist; a restore needs it.",
        )),
        // An empty Manifest.plist is what an interrupted backup leaves, and it makes the next
        // backup fail with error 205 [libimobiledevice issue 1582].
        Loaded::Empty => problems.push(Problem::new(
            codes::MANIFEST_PLIST_EMPTY,
            Error,
            "Manifest.plist is empty, as an interrupted backup leaves it; the next backup into \
             this folder may fail (error 205) until the folder is moved away.",
        )),
        Loaded::Read(_) => {}
    }
    if !folder.has_db && !folder.has_mbdb {
        problems.push(Problem::new(
            codes::MANIFEST_DB_MISSING,
            Error,
            "There is no Manifest.db: the backup has no list of its files and cannot be restored.",
        ));
    }
    if matches!(folder.info, Loaded::Missing | Loaded::Empty) {
        problems.push(Problem::new(
            codes::INFO_MISSING,
            Warning,
            "There is no Info.plist (the computer writes it first, when a backup starts).",
        ));
    }
}

pub(super) fn unreadable_problem(store: &BlobStore, problems: &mut Vec<Problem>) {
    if let Some((path, error)) = store.unreadable.first() {
        problems.push(Problem::new(
            codes::UNREADABLE,
            Severity::Error,
            format!(
                "{} could not be read, so {} not checked, for example {}: {error}. Check the \
                 permissions of the backup folder and of what it holds (ibackup must be able to \
                 read every file) and the disk, then run the check again.",
                plural(
                    store.unreadable.len() as u64,
                    "blob file or folder",
                    "blob files or folders"
                ),
                if store.unreadable.len() == 1 {
                    "it was"
                } else {
                    "they were"
                },
                path.display()
            ),
        ));
    }
}

/// Files `--deep` came to but could not read (or would not, past a size ceiling): not checked,
/// so the backup cannot be called complete, and not damaged either (exit 2, like the blobs the
/// listing could not read).
pub(super) fn deep_unread_problem(unread: &[DamagedRecord], report: &mut BackupReport) {
    if let Some(first) = unread.first() {
        report.problems.push(Problem::new(
            codes::UNREADABLE,
            Severity::Error,
            format!(
                "{} could not be read by the deep check, so {} not checked, for example {} {}: \
                 {}. Check the permissions of the backup folder and of what it holds, and that \
                 nothing is changing it, then run the check again.",
                plural(unread.len() as u64, "file", "files"),
                if unread.len() == 1 {
                    "it was"
                } else {
                    "they were"
                },
                first.domain,
                first.path,
                first.reason
            ),
        ));
    }
}

/// The problems the counts of a matched manifest amount to.
pub(super) fn file_problems(report: &mut BackupReport) {
    use Severity::*;
    let files = &report.files;
    let mut add = |code, severity, message: String| {
        report.problems.push(Problem::new(code, severity, message))
    };
    if files.listed + files.directories + files.symlinks + files.other_rows == 0 {
        add(
            codes::MANIFEST_DB_EMPTY,
            Error,
            "Manifest.db lists no files at all: nothing could be restored from this backup.".into(),
        );
    }
    if !files.missing.is_empty() {
        add(
            codes::FILES_MISSING,
            Error,
            format!(
                "{} of the {} listed in the manifest {} missing from the folder.",
                human_count(files.missing.len() as u64),
                plural(files.listed, "file", "files"),
                if files.missing.len() == 1 {
                    "is"
                } else {
                    "are"
                }
            ),
        );
    }
    let (wrong, changed): (Vec<&SizeMismatch>, Vec<&SizeMismatch>) = files
        .size_mismatch
        .iter()
        .partition(|m| m.judged.is_error());
    if !wrong.is_empty() {
        let unknown = wrong.iter().filter(|m| m.judged == Judged::Unknown).count();
        let why = if unknown == 0 {
            String::new()
        } else {
            format!(
                " For {unknown} of them the content could not tell a cut-short file from a \
                 changed one, so {} counted as cut short.",
                if unknown == 1 { "it is" } else { "they are" }
            )
        };
        add(
            codes::FILES_TRUNCATED,
            Error,
            format!(
                "{} the wrong size on disk and {} cut short or damaged.{why}",
                plural(wrong.len() as u64, "file has", "files have"),
                if wrong.len() == 1 { "is" } else { "are" },
            ),
        );
    }
    if !changed.is_empty() {
        add(
            codes::FILES_CHANGED,
            Warning,
            format!(
                "{} another size than the manifest states but whole content: {} changed while \
                 the backup ran, and the backup holds the newer copy.",
                plural(changed.len() as u64, "file has", "files have"),
                if changed.len() == 1 { "it" } else { "they" }
            ),
        );
    }
    if let Some(first) = files.not_a_file.first() {
        add(
            codes::NOT_A_FILE,
            Error,
            format!(
                "{} listed files are not regular files in the backup folder, for example {}/{} \
                 ({} {}). Something other than Finder changed this folder: move the odd entry \
                 away or make a fresh backup, then check again.",
                files.not_a_file.len(),
                &first.file_id[..2.min(first.file_id.len())],
                first.file_id,
                first.domain,
                first.path
            ),
        );
    }
    if !files.file_id_mismatch.is_empty() {
        add(
            codes::FILE_ID_MISMATCH,
            Warning,
            format!(
                "{} rows of Manifest.db carry a file ID that does not match their domain and \
                 path: the manifest is damaged, though each such file's data is where the row \
                 points.",
                files.file_id_mismatch.len()
            ),
        );
    }
    if !files.damaged_records.is_empty() {
        add(
            codes::RECORDS_DAMAGED,
            Error,
            format!(
                "{} file records in Manifest.db could not be decoded, for example {} {}: {}.",
                files.damaged_records.len(),
                files.damaged_records[0].domain,
                files.damaged_records[0].path,
                files.damaged_records[0].reason
            ),
        );
    }
    if files.orphans > 0 {
        add(
            codes::ORPHANS,
            Info,
            format!(
                "{} in the folder {} not listed in the manifest (left from an earlier backup; \
                 harmless).",
                plural(files.orphans, "file", "files"),
                if files.orphans == 1 { "is" } else { "are" }
            ),
        );
    }
    if files.size_unknown > files.damaged_records.len() as u64 {
        add(
            codes::SIZE_UNKNOWN,
            Info,
            format!(
                "{} no size: checked for presence only.",
                plural(
                    files.size_unknown - files.damaged_records.len() as u64,
                    "file record states",
                    "file records state"
                )
            ),
        );
    }
}

/// The problem `--deep` reports when intact-looking encrypted files do not decrypt.
pub(super) fn undecryptable_problem(report: &mut BackupReport) {
    if let Some(first) = report.files.undecryptable.first() {
        report.problems.push(Problem::new(
            codes::UNDECRYPTABLE,
            Severity::Error,
            format!(
                "{} the right length but {} not decrypt to the size the manifest states, \
                 for example {} {}: {}.",
                plural(
                    report.files.undecryptable.len() as u64,
                    "encrypted file has",
                    "encrypted files have"
                ),
                if report.files.undecryptable.len() == 1 {
                    "does"
                } else {
                    "do"
                },
                first.domain,
                first.path,
                first.reason
            ),
        ));
    }
}

/// The problem `--deep` reports when databases or plists of the right size are damaged.
pub(super) fn content_problem(report: &mut BackupReport) {
    let damaged = report.files.content_damaged.len() as u64;
    if damaged > 0 {
        let message = format!(
            "{} of the {} databases and plists checked {} damaged. The app may lose that data \
             after a restore.",
            human_count(damaged),
            human_count(report.files.content_checked),
            if damaged == 1 { "is" } else { "are" },
        );
        report.problems.push(Problem::new(
            codes::CONTENT_DAMAGED,
            Severity::Error,
            message,
        ));
    }
}

/// The problem `--deep` reports when a key database fails its quick_check.
pub(super) fn database_problems(report: &mut BackupReport) {
    let damaged: Vec<&DatabaseCheck> = report
        .databases
        .iter()
        .filter(|d| d.result != "ok")
        .collect();
    if let Some(first) = damaged.first() {
        let message = format!(
            "{} of the key databases {} damaged, for example {} ({} {}): {}. The app may lose \
             that data after a restore.",
            damaged.len(),
            if damaged.len() == 1 { "is" } else { "are" },
            first.name,
            first.domain,
            first.path,
            first.result
        );
        report.problems.push(Problem::new(
            codes::DATABASE_DAMAGED,
            Severity::Error,
            message,
        ));
    }
}
