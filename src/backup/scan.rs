//! Reading the file list: Manifest.db (row by row, through `manifest`) or an iOS 5-9
//! Manifest.mbdb (parsed whole by `mbdb`), boiled down into one [`Scan`] either way: per listed
//! file its fileID, stated size, expected blob length and rowid (and its key for `--deep` on an
//! encrypted backup), plus the counts per kind, per domain and per category of contents. Names
//! are not kept: [`Names`] fetches them again for the few files a report must name.
//!
//! It does not look at the blobs on disk (`blobs`, `matching`), and it does not open an
//! encrypted Manifest.db (`unlock`): it is handed a listing that can be read.

use std::collections::HashMap;
use std::path::Path;

use sha1::{Digest, Sha1};

use super::blobs::{self, FileId};
use super::contents::{Category, Tally};
use super::error::BackupError;
use super::manifest::{self, Manifest, ManifestError, FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK};
use super::mbdb;
use super::mbfile;
use super::report::{DamagedRecord, FileRef};
use crate::untrusted_file::{read_capped, Links};

/// Receives progress while the manifest is scanned. The backup module does not draw anything.
pub trait Progress: Sync {
    fn start(&self, _rows: u64) {}
    fn advance(&self, _rows: u64) {}
    /// A second pass begins (`--deep`): `total` bytes to go through, reported by `advance`.
    fn bytes_phase(&self, _what: &str, _total: u64) {}
}

/// No progress reporting.
impl Progress for () {}

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

/// What the manifest scan keeps per listed file: enough to match it with its blob, and the
/// rowid to fetch its names again if it needs reporting. 40 bytes, so that a million files
/// take 40 MB; keys, needed only by `--deep` on an encrypted backup, are kept apart
/// ([`FileKeys`]).
#[derive(Clone, Copy)]
pub(super) struct Listed {
    pub(super) id: FileId,
    /// What it holds in the contents summary (Messages, Photos...), if anything.
    pub(super) category: Option<Category>,
    /// Whether the record states a size (`size` is 0 when not).
    known_size: bool,
    /// Whether the blob is expected at the size padded by encryption.
    padded: bool,
    size: u64,
    pub(super) rowid: i64,
}

const _: () = assert!(std::mem::size_of::<Listed>() == 40);

impl Listed {
    pub(super) fn new(
        id: FileId,
        size: Option<u64>,
        padded: bool,
        rowid: i64,
        category: Option<Category>,
    ) -> Listed {
        Listed {
            id,
            category,
            known_size: size.is_some(),
            padded,
            size: size.unwrap_or(0),
            rowid,
        }
    }

    /// The plaintext size the record states.
    pub(super) fn size(&self) -> Option<u64> {
        self.known_size.then_some(self.size)
    }

    /// The blob length that size implies.
    pub(super) fn expected(&self) -> Option<u64> {
        self.size().map(|size| expected_blob_len(size, self.padded))
    }

    /// From now on the blob is expected at the padded length of an encrypted file.
    pub(super) fn expect_padded(&mut self) {
        self.padded = true;
    }
}

/// The EncryptionKey of each listed file, by rowid: kept only for `--deep` on an encrypted
/// backup (and for the one backup-settings file), so a plain check pays nothing for them.
#[derive(Default)]
pub(super) struct FileKeys(Vec<(i64, Box<[u8]>)>);

impl FileKeys {
    fn add(&mut self, rowid: i64, key: Box<[u8]>) {
        self.0.push((rowid, key));
    }

    /// Sorted by rowid for [`FileKeys::get`]: the scan meets rows in rowid order already, so
    /// this costs one pass.
    fn seal(&mut self) {
        if !self.0.is_sorted_by_key(|(rowid, _)| *rowid) {
            self.0.sort_by_key(|(rowid, _)| *rowid);
        }
    }

    /// The wrapped key of the file at `rowid`, if its record had one.
    pub(super) fn get(&self, rowid: i64) -> Option<&[u8]> {
        let at = self.0.binary_search_by_key(&rowid, |(r, _)| *r).ok()?;
        Some(&self.0[at].1)
    }
}

/// A key database the manifest lists (`--deep`).
pub(super) struct FoundDatabase {
    pub(super) name: &'static str,
    pub(super) id: FileId,
    pub(super) size: Option<u64>,
    pub(super) key: Option<Box<[u8]>>,
    pub(super) rowid: i64,
}

/// The one file the scan keeps whatever the mode: com.apple.mobile.ldbackup.plist, the phone's
/// backup settings as of the backup (read by `icloud`), with its key when the backup is encrypted.
pub(super) struct FoundFile {
    pub(super) id: FileId,
    pub(super) size: Option<u64>,
    pub(super) key: Option<Box<[u8]>>,
}

/// What the scan keeps, decided once per run.
#[derive(Clone, Copy)]
pub(super) struct Mode {
    pub(super) encrypted: bool,
    pub(super) deep: bool,
    /// There is no Manifest.plist to say whether the backup is encrypted: count the file
    /// records that carry an EncryptionKey, which only an encrypted backup gives them.
    pub(super) sniff_keys: bool,
}

/// What one pass over the file list found, ready to be matched with the blobs on disk.
#[derive(Default)]
pub(super) struct Scan {
    pub(super) listed: Vec<Listed>,
    /// The keys of the listed files, where the mode keeps them.
    pub(super) keys: FileKeys,
    /// Listed files whose fileID is not even hex: they cannot have a blob.
    pub(super) unnamed: Vec<FileRef>,
    pub(super) directories: u64,
    pub(super) symlinks: u64,
    pub(super) other_rows: u64,
    pub(super) size_unknown: u64,
    pub(super) declared_bytes: u64,
    pub(super) domains: DomainTally,
    pub(super) file_id_mismatch: Vec<FileRef>,
    pub(super) damaged: Vec<DamagedRecord>,
    pub(super) contents: Tally,
    pub(super) databases: Vec<FoundDatabase>,
    /// com.apple.mobile.ldbackup.plist, when the manifest lists it as a file.
    pub(super) ldbackup: Option<FoundFile>,
    /// File records carrying an EncryptionKey, and file records decoded to see whether they
    /// do (both counted only with `Mode::sniff_keys`).
    pub(super) keyed_files: u64,
    pub(super) sniffed_files: u64,
    /// The fileIDs of folder, symlink and other rows: a blob under one of them is named by a
    /// row, so it is no orphan.
    pub(super) other_ids: Vec<FileId>,
    /// Rows whose path could climb out of where a restore writes.
    pub(super) suspicious: Vec<FileRef>,
}

/// Where iOS keeps the backup settings inside a backup (read by `icloud`): the scan remembers
/// that one row as it passes.
pub const LDBACKUP_DOMAIN: &str = "HomeDomain";
pub const LDBACKUP_PATH: &str = "Library/Preferences/com.apple.mobile.ldbackup.plist";

fn is_ldbackup(domain: &[u8], relative_path: &[u8]) -> bool {
    domain == LDBACKUP_DOMAIN.as_bytes() && relative_path == LDBACKUP_PATH.as_bytes()
}

/// What a row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Directory,
    Symlink,
    Other,
}

/// The file-type bits of a Unix mode, and the three types a backup holds.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// What a row is: its flags say, and for flags other than 1, 2 or 4 its record's Mode does.
fn kind_of(row: &manifest::Row<'_>) -> Kind {
    match row.flags {
        FLAG_FILE => Kind::File,
        FLAG_DIRECTORY => Kind::Directory,
        FLAG_SYMLINK => Kind::Symlink,
        _ => {
            let mode = row
                .file
                .and_then(|bytes| mbfile::decode(bytes).ok())
                .and_then(|record| record.mode);
            match mode.map(|m| m & S_IFMT) {
                Some(S_IFREG) => Kind::File,
                Some(S_IFDIR) => Kind::Directory,
                Some(S_IFLNK) => Kind::Symlink,
                _ => Kind::Other,
            }
        }
    }
}

/// A relativePath with a `..` part or a leading `/`, or a domain with a `/`: a path that would
/// leave its place if anything built a path from it (restore exploits do exactly that).
fn is_suspicious(domain: &[u8], relative_path: &[u8]) -> bool {
    domain.contains(&b'/')
        || relative_path.starts_with(b"/")
        || relative_path
            .split(|&b| b == b'/')
            .any(|part| part == b"..")
}

pub(super) fn lossy(bytes: &[u8]) -> String {
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
        if !self.count_non_file(&row, parsed) {
            return;
        }
        // Only `--deep` on an encrypted backup needs the keys (and the backup settings file, to
        // be read), and only a backup without Manifest.plist needs to know whether records have
        // one; the full decode costs more.
        let want_key = mode.encrypted && (mode.deep || is_ldbackup(row.domain, row.relative_path));
        let decoded = match row.file {
            Some(bytes) if want_key || mode.sniff_keys => mbfile::decode(bytes).map(|m| {
                self.sniffed_files += 1;
                self.keyed_files += u64::from(m.encryption_key.is_some());
                (m.size, m.encryption_key.filter(|_| want_key).map(Box::from))
            }),
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

    /// Notes a suspicious path; counts a directory, symlink or other row (keeping its fileID,
    /// so its blob, if any, is no orphan) and returns false; returns true for a file.
    fn count_non_file(&mut self, row: &manifest::Row<'_>, parsed: Option<FileId>) -> bool {
        if is_suspicious(row.domain, row.relative_path) {
            self.suspicious.push(file_ref(row));
        }
        match kind_of(row) {
            Kind::File => return true,
            Kind::Directory => self.directories += 1,
            Kind::Symlink => self.symlinks += 1,
            Kind::Other => self.other_rows += 1,
        }
        if let Some(id) = parsed {
            self.other_ids.push(id);
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
        let number = self.count_domain(row.domain, 1, size.unwrap_or(0));
        let category = self
            .contents
            .add(number, row.domain, row.relative_path, size.unwrap_or(0));
        let Some(id) = parsed else {
            self.unnamed.push(file_ref(&row));
            return;
        };
        if is_ldbackup(row.domain, row.relative_path) {
            self.ldbackup = Some(FoundFile {
                id,
                size,
                key: key.clone(),
            });
        }
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
            if let Some(key) = key {
                self.keys.add(row.rowid, key);
            }
        }
        self.listed
            .push(Listed::new(id, size, mode.encrypted, row.rowid, category));
    }

    /// Every domain with a row is counted, so that domains holding only folders show too.
    /// Returns the domain's number in the tally.
    fn count_domain(&mut self, domain: &[u8], files: u64, bytes: u64) -> usize {
        self.domains.add(domain, files, bytes)
    }
}

/// Files and bytes per domain. Manifests list a domain's rows together, so the last domain is
/// kept at hand and the map is consulted only when the domain changes.
#[derive(Default)]
pub(super) struct DomainTally {
    pub(super) totals: Vec<(Box<[u8]>, u64, u64)>,
    index: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    last: Option<usize>,
}

impl DomainTally {
    /// Counts a row of `domain` and returns the domain's number (its place in `totals`).
    fn add(&mut self, domain: &[u8], files: u64, bytes: u64) -> usize {
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
        at
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
    scan.keys.seal();
    Ok(scan)
}

/// Manifest.mbdb files larger than this are refused, by their size on the open handle, before a
/// byte is read (docs/usage.md, "Safety"). Real ones are a few tens of MB: about 200 bytes per
/// file, so this leaves room for over a million files, while the whole list (which the scan
/// keeps in memory with the names it reports) stays bounded.
const MAX_MBDB_BYTES: u64 = 256 << 20;

/// Reads Manifest.mbdb whole, through the one opener for files others laid out: never blocking,
/// never through a link, a regular file of at most [`MAX_MBDB_BYTES`] (a FIFO, a device or a
/// file over the cap is an error saying which).
pub(super) fn read_mbdb(path: &Path) -> Result<Vec<u8>, BackupError> {
    read_capped(path, MAX_MBDB_BYTES, Links::Refuse).map_err(|source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The file list to scan: Manifest.db, or the bytes of an iOS 5-9 Manifest.mbdb.
pub(super) enum Listing {
    Db(Manifest),
    Legacy(Vec<u8>),
}

/// Domain and path of every Manifest.mbdb record, by index.
pub(super) type LegacyNames = Vec<(Box<[u8]>, Box<[u8]>)>;

/// What is left of a listing after the scan, to name the files a report lists.
pub(super) enum Scanned {
    Db(Manifest),
    Legacy(LegacyNames),
}

/// Looks up the fileID, domain and path of a row (Manifest.db rowid, or Manifest.mbdb index).
pub(super) trait Names {
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
    pub(super) fn scan(
        self,
        mode: Mode,
        progress: &dyn Progress,
    ) -> (Result<Scan, ManifestError>, Scanned) {
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
        if scan.count_non_file(&row, Some(id)) {
            if mode.sniff_keys {
                scan.sniffed_files += 1;
                scan.keyed_files += u64::from(record.encryption_key.is_some());
            }
            let key = (mode.encrypted && (mode.deep || is_ldbackup(record.domain, record.path)))
                .then(|| record.encryption_key.map(Box::from))
                .flatten();
            scan.add_file(row, Some(id), Some(record.size), key, mode);
        }
        names.push((Box::from(record.domain), Box::from(record.path)));
    }
    scan.keys.seal();
    Ok((scan, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Manifest.mbdb is read like every file of a backup: a FIFO, a link to a device and a file
    /// over the cap are errors that say so, at once and without reading the bytes.
    #[cfg(unix)]
    #[test]
    fn manifest_mbdb_is_read_only_as_a_bounded_regular_file() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `name` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let start = std::time::Instant::now();
        let e = read_mbdb(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_mbdb(&zero).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_MBDB_BYTES + 1)
            .unwrap();
        let e = read_mbdb(&big).unwrap_err();
        assert!(e.to_string().contains("bytes allowed"), "{e}");
        let fine = dir.path().join("fine");
        std::fs::write(&fine, mbdb::MBDB_MAGIC).unwrap();
        assert_eq!(read_mbdb(&fine).unwrap(), mbdb::MBDB_MAGIC);
    }

    #[test]
    fn padded_length_of_encrypted_blobs() {
        assert_eq!(expected_blob_len(0, true), 16);
        assert_eq!(expected_blob_len(15, true), 16);
        assert_eq!(expected_blob_len(16, true), 32);
        assert_eq!(expected_blob_len(316, true), 320);
        assert_eq!(expected_blob_len(316, false), 316);
    }

    #[test]
    fn suspicious_paths_are_dot_dot_parts_absolute_paths_and_slashed_domains() {
        for (domain, path) in [
            ("HomeDomain", "../x"),
            ("HomeDomain", "Library/../../x"),
            ("HomeDomain", "a/.."),
            ("HomeDomain", ".."),
            ("HomeDomain", "/etc/passwd"),
            ("HomeDomain/../x", "Library"),
        ] {
            assert!(
                is_suspicious(domain.as_bytes(), path.as_bytes()),
                "{domain} {path}"
            );
        }
        for (domain, path) in [
            ("HomeDomain", "Library/..hidden"),
            ("HomeDomain", "a..b/c"),
            ("HomeDomain", ""),
            ("AppDomain-com.example", "Documents/x.txt"),
        ] {
            assert!(
                !is_suspicious(domain.as_bytes(), path.as_bytes()),
                "{domain} {path}"
            );
        }
    }

    #[test]
    fn odd_flags_fall_back_on_the_mode() {
        let row = |flags, file| manifest::Row {
            rowid: 1,
            file_id: b"",
            domain: b"HomeDomain",
            relative_path: b"x",
            flags,
            file,
        };
        assert_eq!(kind_of(&row(1, None)), Kind::File);
        assert_eq!(kind_of(&row(2, None)), Kind::Directory);
        assert_eq!(kind_of(&row(4, None)), Kind::Symlink);
        assert_eq!(kind_of(&row(0, None)), Kind::Other);
        assert_eq!(kind_of(&row(8, Some(b"not a plist"))), Kind::Other);
    }

    #[test]
    fn file_id_is_sha1_of_domain_dash_path() {
        assert_eq!(
            blobs::file_id_hex(&file_id_of(b"HomeDomain", b"Library/SMS/sms.db")),
            "3d0d7e5fb2ce288813306e4d4636395e047a3d28"
        );
    }
}
