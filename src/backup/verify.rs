//! Completeness: did the backup finish, is every file the manifest lists present with the right
//! size, is the manifest itself intact. Reads the plists, then lists the blob folders while it
//! streams Manifest.db (both at once, on separate cores), then matches the two.
//!
//! The rules are those of docs/json.md: a backup is complete only when Status.plist says
//! `finished`, no `Snapshot/` is left, Manifest.plist and Manifest.db are there and intact, and
//! every listed file is present at `<first two hex>/<fileID>` with the right size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rusqlite::{Connection, OpenFlags};
use sha1::{Digest, Sha1};

use super::blobs::{self, BlobKind, BlobStore, FileId};
use super::contents::Tally;
use super::crypto;
use super::error::BackupError;
use super::folder::read_folder;
use super::keybag::{ClassKeys, Password};
use super::manifest::{self, Manifest, ManifestError, FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK};
use super::mbdb;
use super::mbfile;
use super::problems::{
    database_problems, deep_needs_password, file_problems, folder_problems,
    manifest_needs_password, undecryptable_problem, unreadable_problem,
};
use super::report::*;
use super::unlock;
use super::verdict::verdict;

// Kept at the paths other code (and scripts built on the library) already use.
pub use super::folder::read_regular_file;
pub use super::locate::is_backup_folder;
pub use super::problems::codes;

/// Receives progress while the manifest is scanned. The backup module does not draw anything.
pub trait Progress: Sync {
    fn start(&self, _rows: u64) {}
    fn advance(&self, _rows: u64) {}
    /// A second pass begins (`--deep`): `total` bytes to go through, reported by `advance`.
    fn bytes_phase(&self, _what: &str, _total: u64) {}
}

/// How to check a backup beyond the defaults.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options<'a> {
    /// The backup password, for an encrypted backup (ignored for a plain one).
    pub password: Option<&'a Password>,
    /// Decrypt every blob of an encrypted backup, and quick_check the key SQLite databases.
    pub deep: bool,
}

/// The SQLite databases `--deep` checks, by what they hold, where Finder keeps them.
/// [mvt-project/mvt src/mvt/ios/modules; the fileIDs match the real iOS 14 sample]
pub const KEY_DATABASES: [(&str, &str, &str); 6] = [
    ("Messages", "HomeDomain", "Library/SMS/sms.db"),
    (
        "Photos",
        "CameraRollDomain",
        "Media/PhotoData/Photos.sqlite",
    ),
    (
        "Contacts",
        "HomeDomain",
        "Library/AddressBook/AddressBook.sqlitedb",
    ),
    (
        "Notes",
        "AppDomainGroup-group.com.apple.notes",
        "NoteStore.sqlite",
    ),
    (
        "Call history",
        "HomeDomain",
        "Library/CallHistoryDB/CallHistory.storedata",
    ),
    (
        "WhatsApp",
        "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
        "ChatStorage.sqlite",
    ),
];

/// No progress reporting.
impl Progress for () {}

/// What the manifest scan keeps per listed file: enough to match it with its blob, and the
/// rowid to fetch its names again if it needs reporting.
struct Listed {
    id: FileId,
    /// The plaintext size the record states.
    size: Option<u64>,
    /// The blob length that size implies.
    expected: Option<u64>,
    rowid: i64,
    /// The record's EncryptionKey, kept only for `--deep` on an encrypted backup.
    key: Option<Box<[u8]>>,
}

/// A key database the manifest lists (`--deep`).
struct FoundDatabase {
    name: &'static str,
    id: FileId,
    size: Option<u64>,
    key: Option<Box<[u8]>>,
    rowid: i64,
}

/// What the scan keeps, decided once per run.
#[derive(Clone, Copy)]
struct Mode {
    encrypted: bool,
    deep: bool,
}

#[derive(Default)]
struct Scan {
    listed: Vec<Listed>,
    /// Listed files whose fileID is not even hex: they cannot have a blob.
    unnamed: Vec<FileRef>,
    directories: u64,
    symlinks: u64,
    other_rows: u64,
    size_unknown: u64,
    declared_bytes: u64,
    domains: DomainTally,
    file_id_mismatch: Vec<FileRef>,
    damaged: Vec<DamagedRecord>,
    contents: Tally,
    databases: Vec<FoundDatabase>,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn file_ref(row: &manifest::Row<'_>) -> FileRef {
    FileRef {
        file_id: lossy(row.file_id),
        domain: lossy(row.domain),
        path: lossy(row.relative_path),
    }
}

/// The length a blob must have on disk: the plaintext size, or for an encrypted backup the
/// size padded by PKCS#7 to the next multiple of 16 (always 1 to 16 bytes added).
pub fn expected_blob_len(size: u64, encrypted: bool) -> u64 {
    if encrypted {
        size - size % 16 + 16
    } else {
        size
    }
}

/// SHA-1 of `domain-relativePath`, the name Finder gives every file's blob.
pub fn file_id_of(domain: &[u8], relative_path: &[u8]) -> FileId {
    let mut hasher = Sha1::new();
    hasher.update(domain);
    hasher.update(b"-");
    hasher.update(relative_path);
    hasher.finalize().into()
}

impl Scan {
    fn add(&mut self, row: manifest::Row<'_>, mode: Mode) {
        let parsed = blobs::parse_file_id(row.file_id);
        if parsed != Some(file_id_of(row.domain, row.relative_path)) {
            self.file_id_mismatch.push(file_ref(&row));
        }
        if !self.count_non_file(&row) {
            return;
        }
        // Only `--deep` on an encrypted backup needs the keys; the full decode costs more.
        let want_key = mode.deep && mode.encrypted;
        let decoded = match row.file {
            Some(bytes) if want_key => {
                mbfile::decode(bytes).map(|m| (m.size, m.encryption_key.map(Box::from)))
            }
            Some(bytes) => mbfile::size(bytes).map(|size| (size, None)),
            None => {
                self.damaged
                    .push(damaged(&row, "the record is empty".into()));
                Ok((None, None))
            }
        };
        let (size, key) = decoded.unwrap_or_else(|e| {
            self.damaged.push(damaged(&row, e.to_string()));
            (None, None)
        });
        self.add_file(row, parsed, size, key, mode);
    }

    /// Counts a directory, symlink or other row and returns false; returns true for a file.
    fn count_non_file(&mut self, row: &manifest::Row<'_>) -> bool {
        match row.flags {
            FLAG_FILE => return true,
            FLAG_DIRECTORY => self.directories += 1,
            FLAG_SYMLINK => self.symlinks += 1,
            _ => self.other_rows += 1,
        }
        self.count_domain(row.domain, 0, 0);
        false
    }

    /// Counts one regular file whose size (and, for `--deep`, key) is known.
    fn add_file(
        &mut self,
        row: manifest::Row<'_>,
        parsed: Option<FileId>,
        size: Option<u64>,
        key: Option<Box<[u8]>>,
        mode: Mode,
    ) {
        match size {
            Some(size) => self.declared_bytes += size,
            None => self.size_unknown += 1,
        }
        self.count_domain(row.domain, 1, size.unwrap_or(0));
        self.contents
            .add(row.domain, row.relative_path, size.unwrap_or(0));
        let expected = size.map(|s| expected_blob_len(s, mode.encrypted));
        let Some(id) = parsed else {
            self.unnamed.push(file_ref(&row));
            return;
        };
        if mode.deep {
            let known = KEY_DATABASES.iter().find(|(_, domain, path)| {
                domain.as_bytes() == row.domain && path.as_bytes() == row.relative_path
            });
            if let Some((name, _, _)) = known {
                self.databases.push(FoundDatabase {
                    name,
                    id,
                    size,
                    key: key.clone(),
                    rowid: row.rowid,
                });
            }
        }
        self.listed.push(Listed {
            id,
            size,
            expected,
            rowid: row.rowid,
            key,
        });
    }

    /// Every domain with a row is counted, so that domains holding only folders show too.
    fn count_domain(&mut self, domain: &[u8], files: u64, bytes: u64) {
        self.domains.add(domain, files, bytes);
    }
}

/// Files and bytes per domain. Manifests list a domain's rows together, so the last domain is
/// kept at hand and the map is consulted only when the domain changes.
#[derive(Default)]
struct DomainTally {
    totals: Vec<(Box<[u8]>, u64, u64)>,
    index: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    last: Option<usize>,
}

impl DomainTally {
    fn add(&mut self, domain: &[u8], files: u64, bytes: u64) {
        let at = match self.last {
            Some(at) if *self.totals[at].0 == *domain => at,
            _ => {
                let at = match self.index.get(domain) {
                    Some(&at) => at,
                    None => {
                        self.totals.push((domain.into(), 0, 0));
                        self.index.insert(domain.into(), self.totals.len() - 1);
                        self.totals.len() - 1
                    }
                };
                self.last = Some(at);
                at
            }
        };
        self.totals[at].1 += files;
        self.totals[at].2 += bytes;
    }
}

fn damaged(row: &manifest::Row<'_>, reason: String) -> DamagedRecord {
    let FileRef {
        file_id,
        domain,
        path,
    } = file_ref(row);
    DamagedRecord {
        file_id,
        domain,
        path,
        reason,
    }
}

fn scan_manifest(
    manifest: &Manifest,
    mode: Mode,
    progress: &dyn Progress,
) -> Result<Scan, ManifestError> {
    const STEP: u64 = 4096;
    progress.start(manifest.row_estimate());
    let mut scan = Scan::default();
    let mut rows = 0u64;
    manifest.scan(|row| {
        scan.add(row, mode);
        rows += 1;
        if rows % STEP == 0 {
            progress.advance(STEP);
        }
    })?;
    progress.advance(rows % STEP);
    Ok(scan)
}

/// Checks the backup at `path` with the default options (no password, not deep).
pub fn verify(path: &Path, progress: &dyn Progress) -> Result<BackupReport, BackupError> {
    verify_with(path, Options::default(), progress)
}

/// Checks the backup at `path`. Errors only when nothing useful can be said (or the password is
/// wrong); every defect of a readable backup is a [`Problem`] in the report.
pub fn verify_with(
    path: &Path,
    options: Options<'_>,
    progress: &dyn Progress,
) -> Result<BackupReport, BackupError> {
    let folder = read_folder(path)?;
    let encrypted = folder.manifest.read().is_some_and(|m| m.is_encrypted);
    let db_path = manifest::manifest_db_path(path);
    let listing_path = if !folder.has_db && folder.has_mbdb {
        path.join(mbdb::MBDB_NAME)
    } else {
        db_path.clone()
    };
    let manifest_error = |source| BackupError::Manifest {
        path: listing_path.clone(),
        source,
    };

    let mut problems = Vec::new();
    let mut keys = None;
    let legacy = !folder.has_db && folder.has_mbdb;
    let manifest = if legacy {
        let bytes = read_mbdb(&listing_path)?;
        // Manifest.mbdb is plain even in an encrypted backup; the password only matters for
        // decrypting blobs.
        match (options.password, folder.manifest.read()) {
            (Some(password), Some(plist)) if encrypted => {
                keys = Some(unlock::unlock_keybag(path, plist, password)?);
            }
            _ if encrypted && options.deep => problems.push(deep_needs_password()),
            _ => {}
        }
        Some(Listing::Legacy(bytes))
    } else if !folder.has_db {
        None
    } else if encrypted && !manifest::has_sqlite_header(&db_path).unwrap_or(true) {
        match (options.password, folder.manifest.read()) {
            (Some(password), Some(plist)) => {
                let (manifest, unlocked) = unlock::open_encrypted(path, &db_path, plist, password)?;
                keys = Some(unlocked);
                Some(Listing::Db(manifest))
            }
            _ => {
                problems.push(manifest_needs_password());
                None
            }
        }
    } else {
        Some(Listing::Db(
            Manifest::open(&db_path).map_err(manifest_error)?,
        ))
    };
    let mode = Mode {
        encrypted,
        deep: options.deep,
    };

    // The connection moves to the scanning thread and comes back: it is Send, not Sync.
    let (store, scanned) = rayon::join(
        || {
            if legacy {
                blobs::scan_flat(path)
            } else {
                blobs::scan(path)
            }
        },
        move || manifest.map(|listing| listing.scan(mode, progress)),
    );
    let store = store.map_err(|source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (scan, manifest) = match scanned {
        Some((scan, m)) => (Some(scan.map_err(manifest_error)?), Some(m)),
        None => (None, None),
    };

    let mut report = BackupReport {
        schema: VERIFY_SCHEMA,
        backup: folder.summary(path, encrypted),
        complete: false,
        verdict: Verdict::Incomplete,
        files: FileCounts::default(),
        size: SizeCounts {
            declared_bytes: 0,
            on_disk_bytes: store.bytes,
        },
        domains: Vec::new(),
        contents: Vec::new(),
        manifest_read: manifest.is_some(),
        deep: options.deep,
        databases: Vec::new(),
        problems,
    };
    report.files.blobs_on_disk = store.blobs.len() as u64;
    folder_problems(&folder, &mut report.problems);
    match (scan, manifest) {
        (Some(mut scan), Some(names)) => {
            let databases = std::mem::take(&mut scan.databases);
            let names: &dyn Names = &names;
            let intact = match_blobs(scan, store, names, &mut report).map_err(manifest_error)?;
            if options.deep {
                let deep = Deep {
                    root: path,
                    flat: legacy,
                    keys: keys.as_ref(),
                    encrypted,
                    progress,
                };
                deep.run(&intact, databases, names, &mut report)
                    .map_err(manifest_error)?;
            }
        }
        _ => {
            report.files.orphans = store.blobs.len() as u64;
            unreadable_problem(&store, &mut report.problems);
        }
    }
    report.verdict = verdict(&report.problems);
    report.complete = report.verdict == Verdict::Complete;
    Ok(report)
}

/// Where a listed file's blob lives: `<first two hex>/<fileID>` under the backup root, or flat
/// in the root for iOS 5-9 backups.
fn blob_path(root: &Path, id: &FileId, flat: bool) -> PathBuf {
    let hex = blobs::file_id_hex(id);
    if flat {
        root.join(hex)
    } else {
        root.join(&hex[..2]).join(hex)
    }
}

/// Manifest.mbdb files larger than this are refused (real ones are a few tens of MB).
const MAX_MBDB_BYTES: u64 = 1 << 30;

fn read_mbdb(path: &Path) -> Result<Vec<u8>, BackupError> {
    let io = |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_MBDB_BYTES {
        return Err(io(std::io::Error::other(format!(
            "it is {len} bytes, more than any real Manifest.mbdb"
        ))));
    }
    std::fs::read(path).map_err(io)
}

/// The file list to scan: Manifest.db, or the bytes of an iOS 5-9 Manifest.mbdb.
enum Listing {
    Db(Manifest),
    Legacy(Vec<u8>),
}

/// Domain and path of every Manifest.mbdb record, by index.
type LegacyNames = Vec<(Box<[u8]>, Box<[u8]>)>;

/// What is left of a listing after the scan, to name the files a report lists.
enum Scanned {
    Db(Manifest),
    Legacy(LegacyNames),
}

/// Looks up the fileID, domain and path of a row (Manifest.db rowid, or Manifest.mbdb index).
trait Names {
    fn names(&self, rowid: i64) -> Result<(String, String, String), ManifestError>;
}

impl Names for Scanned {
    fn names(&self, rowid: i64) -> Result<(String, String, String), ManifestError> {
        match self {
            Scanned::Db(manifest) => manifest.names(rowid),
            Scanned::Legacy(records) => {
                let (domain, path) = usize::try_from(rowid)
                    .ok()
                    .and_then(|i| records.get(i))
                    .ok_or(ManifestError::Schema(format!("no record {rowid}")))?;
                Ok((
                    blobs::file_id_hex(&file_id_of(domain, path)),
                    lossy(domain),
                    lossy(path),
                ))
            }
        }
    }
}

impl Listing {
    fn scan(self, mode: Mode, progress: &dyn Progress) -> (Result<Scan, ManifestError>, Scanned) {
        match self {
            Listing::Db(manifest) => (
                scan_manifest(&manifest, mode, progress),
                Scanned::Db(manifest),
            ),
            Listing::Legacy(bytes) => match scan_mbdb(&bytes, mode) {
                Ok((scan, names)) => (Ok(scan), Scanned::Legacy(names)),
                Err(e) => (Err(e), Scanned::Legacy(Vec::new())),
            },
        }
    }
}

/// Scans a Manifest.mbdb into the same [`Scan`] as Manifest.db, so the matching and the report
/// are shared. Each record's blob name is SHA-1(domain-path) by definition.
fn scan_mbdb(bytes: &[u8], mode: Mode) -> Result<(Scan, LegacyNames), ManifestError> {
    let records = mbdb::parse(bytes).map_err(ManifestError::Mbdb)?;
    let mut scan = Scan::default();
    let mut names = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let id = file_id_of(record.domain, record.path);
        let hex = blobs::file_id_hex(&id);
        let flags = match record.kind() {
            mbdb::Kind::File => FLAG_FILE,
            mbdb::Kind::Directory => FLAG_DIRECTORY,
            mbdb::Kind::Symlink => FLAG_SYMLINK,
            mbdb::Kind::Other => 0,
        };
        let row = manifest::Row {
            rowid: index as i64,
            file_id: hex.as_bytes(),
            domain: record.domain,
            relative_path: record.path,
            flags,
            file: None,
        };
        if scan.count_non_file(&row) {
            let key = (mode.deep && mode.encrypted)
                .then(|| record.encryption_key.map(Box::from))
                .flatten();
            scan.add_file(row, Some(id), Some(record.size), key, mode);
        }
        names.push((Box::from(record.domain), Box::from(record.path)));
    }
    Ok((scan, names))
}

/// The `--deep` pass over a backup whose manifest was read.
struct Deep<'a> {
    root: &'a Path,
    /// Blobs lie flat in the root (iOS 5-9).
    flat: bool,
    keys: Option<&'a ClassKeys>,
    encrypted: bool,
    progress: &'a dyn Progress,
}

impl Deep<'_> {
    fn run(
        &self,
        intact: &[Listed],
        databases: Vec<FoundDatabase>,
        manifest: &dyn Names,
        report: &mut BackupReport,
    ) -> Result<(), ManifestError> {
        if let Some(keys) = self.keys {
            self.decrypt_all(keys, intact, manifest, report)?;
        }
        for found in databases {
            let check = self.check_database(&found);
            let Some(result) = check else { continue };
            let (file_id, domain, path) = manifest.names(found.rowid)?;
            report.databases.push(DatabaseCheck {
                name: found.name,
                file_id,
                domain,
                path,
                result,
            });
        }
        database_problems(report);
        Ok(())
    }

    /// Decrypts every intact blob in parallel, in constant memory per thread.
    fn decrypt_all(
        &self,
        keys: &ClassKeys,
        intact: &[Listed],
        manifest: &dyn Names,
        report: &mut BackupReport,
    ) -> Result<(), ManifestError> {
        let total = intact.iter().filter_map(|l| l.expected).sum();
        self.progress.bytes_phase("Decrypting files", total);
        let failures: Vec<(i64, String)> = intact
            .par_iter()
            .filter_map(|listed| {
                self.decrypt_one(keys, listed)
                    .err()
                    .map(|reason| (listed.rowid, reason))
            })
            .collect();
        report.files.decrypted = (intact.len() - failures.len()) as u64;
        for (rowid, reason) in failures {
            let (file_id, domain, path) = manifest.names(rowid)?;
            report.files.undecryptable.push(DamagedRecord {
                file_id,
                domain,
                path,
                reason,
            });
        }
        undecryptable_problem(report);
        Ok(())
    }

    fn decrypt_one(&self, keys: &ClassKeys, listed: &Listed) -> Result<(), String> {
        let (Some(size), Some(wrapped)) = (listed.size, listed.key.as_deref()) else {
            return Err("its record has no EncryptionKey".into());
        };
        let key = keys
            .unwrap_key(wrapped)
            .map_err(|e| format!("its EncryptionKey cannot be unwrapped ({e})"))?;
        let path = blob_path(self.root, &listed.id, self.flat);
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open it: {e}"))?;
        let check = crypto::check_blob_with_progress(file, &key, |n| self.progress.advance(n))
            .map_err(|e| e.to_string())?;
        match check.plaintext_len {
            None => Err("it ends in invalid padding (wrong key, or damaged data)".into()),
            Some(len) if len != size => Err(format!(
                "it decrypts to {len} bytes where the manifest states {size}"
            )),
            Some(_) => Ok(()),
        }
    }

    /// `PRAGMA quick_check` on one key database, opened read-only from its blob (decrypted in
    /// memory for an encrypted backup). None when its blob is absent (already a missing file).
    fn check_database(&self, found: &FoundDatabase) -> Option<String> {
        let path = blob_path(self.root, &found.id, self.flat);
        if !path.is_file() {
            return None;
        }
        let result = if self.encrypted {
            let keys = self.keys?;
            decrypted_quick_check(&path, keys, found)
        } else {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            Connection::open_with_flags(manifest::readonly_uri(&path), flags)
                .map_err(|e| e.to_string())
                .and_then(|conn| quick_check(&conn))
        };
        Some(result.unwrap_or_else(|e| e))
    }
}

fn decrypted_quick_check(
    path: &Path,
    keys: &ClassKeys,
    found: &FoundDatabase,
) -> Result<String, String> {
    let wrapped = found
        .key
        .as_deref()
        .ok_or("its record has no EncryptionKey")?;
    let key = keys
        .unwrap_key(wrapped)
        .map_err(|e| format!("its EncryptionKey cannot be unwrapped ({e})"))?;
    let ciphertext = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let plaintext = crypto::decrypt_to_vec(&key, &ciphertext).map_err(|e| e.to_string())?;
    if found
        .size
        .is_some_and(|size| size != plaintext.len() as u64)
    {
        return Err("it does not decrypt to the size the manifest states".into());
    }
    let conn = manifest::open_in_memory(&plaintext).map_err(|e| e.to_string())?;
    let result = quick_check(&conn);
    // The connection reads `plaintext` in place: close it before the bytes are wiped.
    drop(conn);
    result
}

/// The first line `PRAGMA quick_check` returns: `ok`, or SQLite's first complaint.
fn quick_check(conn: &Connection) -> Result<String, String> {
    conn.query_row("PRAGMA quick_check", [], |row| row.get::<_, String>(0))
        .map_err(|e| e.to_string())
}

/// Matches the listed files with the blobs found, fills the counts and the problems.
/// Returns the listed files whose blob is there with the right length, for `--deep`.
fn match_blobs(
    scan: Scan,
    mut store: BlobStore,
    manifest: &dyn Names,
    report: &mut BackupReport,
) -> Result<Vec<Listed>, ManifestError> {
    let files = &mut report.files;
    files.listed = scan.listed.len() as u64 + scan.unnamed.len() as u64;
    files.directories = scan.directories;
    files.symlinks = scan.symlinks;
    files.other_rows = scan.other_rows;
    files.size_unknown = scan.size_unknown;
    files.file_id_mismatch = scan.file_id_mismatch;
    files.damaged_records = scan.damaged;
    files.missing = scan.unnamed;
    report.size.declared_bytes = scan.declared_bytes;

    let named = |rowid| -> Result<FileRef, ManifestError> {
        let (file_id, domain, path) = manifest.names(rowid)?;
        Ok(FileRef {
            file_id,
            domain,
            path,
        })
    };
    let mut intact = Vec::new();
    for listed in scan.listed {
        let Some(blob) = store.blobs.remove(&listed.id) else {
            files.missing.push(named(listed.rowid)?);
            continue;
        };
        if blob.kind != BlobKind::File {
            files.not_a_file.push(named(listed.rowid)?);
            continue;
        }
        files.present += 1;
        match listed.expected {
            Some(expected) if expected != blob.size => {
                let FileRef {
                    file_id,
                    domain,
                    path,
                } = named(listed.rowid)?;
                files.size_mismatch.push(SizeMismatch {
                    file_id,
                    domain,
                    path,
                    expected_bytes: expected,
                    actual_bytes: blob.size,
                });
            }
            Some(_) => {
                files.intact += 1;
                intact.push(listed);
            }
            None => {}
        }
    }
    files.orphans = store.blobs.len() as u64;

    let mut domains: Vec<DomainSize> = scan
        .domains
        .totals
        .into_iter()
        .map(|(domain, files, bytes)| DomainSize {
            domain: lossy(&domain),
            files,
            bytes,
        })
        .collect();
    domains.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.domain.cmp(&b.domain)));
    report.domains = domains;
    report.contents = scan.contents.holdings(report.backup.encrypted);
    file_problems(report);
    unreadable_problem(&store, &mut report.problems);
    Ok(intact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_length_of_encrypted_blobs() {
        assert_eq!(expected_blob_len(0, true), 16);
        assert_eq!(expected_blob_len(15, true), 16);
        assert_eq!(expected_blob_len(16, true), 32);
        assert_eq!(expected_blob_len(316, true), 320);
        assert_eq!(expected_blob_len(316, false), 316);
    }

    #[test]
    fn file_id_is_sha1_of_domain_dash_path() {
        assert_eq!(
            blobs::file_id_hex(&file_id_of(b"HomeDomain", b"Library/SMS/sms.db")),
            "3d0d7e5fb2ce288813306e4d4636395e047a3d28"
        );
    }
}
