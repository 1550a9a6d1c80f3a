//! A backup's files by name, for the commands that look inside (`ls`, `extract`, `diff`, the
//! per-app sizes of `inspect`): every row of Manifest.db (plain, or encrypted and opened with the
//! password) or of an iOS 5-9 Manifest.mbdb, as one [`Entry`] with its domain, path, kind, size,
//! modified time, wrapped key and whether its blob is in the folder ([`State`]).
//!
//! It reads; it never writes and never forms a path from manifest data (a blob's path comes from
//! its fileID, checked to be 40 hex digits). It does not judge completeness (that is `verify`)
//! nor decide where a file may be written (that is `extract`'s jail). Entries are borrowed for
//! the length of one callback, so memory does not grow with the number of files.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::blobs::{self, BlobKind, BlobStore, FileId};
use super::crypto::FileKey;
use super::error::BackupError;
use super::folder::read_folder;
use super::keybag::{ClassKeys, KeybagError, Password};
use super::manifest::{self, Manifest, ManifestError};
use super::mbdb;
use super::mbfile;
use super::plists::ManifestPlist;
use super::scan::{expected_blob_len, file_id_of, read_mbdb};
use super::unlock;

/// What a row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Directory,
    Symlink,
    Other,
}

/// Where a listed file's blob stands. Directories and symlinks have no blob: [`State::NoBlob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The blob is there with the length the record implies.
    Present,
    /// No blob for this file.
    Missing,
    /// A blob of another length (`on_disk` bytes): cut short or changed.
    WrongSize { on_disk: u64 },
    /// Something is at the blob's path that cannot be read as a file (a folder, a link, a
    /// FIFO, or a file this process may not read).
    Unreadable,
    /// Not a file: nothing to look for.
    NoBlob,
}

impl State {
    /// The word `ls` prints and `--json` carries.
    pub fn word(self) -> &'static str {
        match self {
            State::Present => "present",
            State::Missing => "missing",
            State::WrongSize { .. } => "wrong_size",
            State::Unreadable => "unreadable",
            State::NoBlob => "-",
        }
    }
}

/// One listed file, directory or symlink, borrowed for one callback.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Manifest.db rowid, or the Manifest.mbdb record index.
    pub row: i64,
    pub domain: &'a [u8],
    pub relative_path: &'a [u8],
    /// SHA-1 of `domain-relative_path` (what names the blob); for Manifest.db the row's own
    /// fileID when it is valid hex, so a row whose fileID does not match still finds its blob.
    pub file_id: FileId,
    pub kind: Kind,
    /// Bytes of the file as the record states them (0 for directories and symlinks, or when
    /// the record does not say: then `size_known` is false).
    pub size: u64,
    /// The record states the file's size. A file of unknown size is present whatever the
    /// length of its blob, as `verify` counts it.
    pub size_known: bool,
    /// The blob's length on disk, when a regular file is there.
    pub blob_len: Option<u64>,
    /// Seconds since 1970 (UTC), when the record has it.
    pub modified: Option<i64>,
    /// Unix mode bits, when the record has them.
    pub mode: Option<u32>,
    /// A symlink's target, as recorded (never followed).
    pub target: Option<Cow<'a, [u8]>>,
    /// 4-byte class + 40-byte wrapped key, in an encrypted backup.
    pub wrapped_key: Option<&'a [u8]>,
    pub state: State,
    /// The record could not be decoded (size, time and key unknown): the reason.
    pub damaged: Option<String>,
}

impl Entry<'_> {
    pub fn domain_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.domain)
    }
    pub fn path_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.relative_path)
    }
}

/// An opened backup, ready to be walked.
pub struct Catalog {
    pub root: PathBuf,
    pub encrypted: bool,
    /// iOS 5-9: Manifest.mbdb, blobs flat in the root.
    pub legacy: bool,
    source: Source,
    keys: Option<ClassKeys>,
    store: BlobStore,
    /// Whether the blobs were listed ([`Catalog::open_unlisted`] does not).
    listed: bool,
    /// Only size, time and kind are read from each record ([`Catalog::brief`]).
    brief: bool,
    manifest_plist: Option<ManifestPlist>,
}

enum Source {
    Db(Manifest),
    Legacy(Vec<u8>),
}

/// Why a file's key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the record has no encryption key")]
    NoKey,
    #[error("{0}")]
    Keybag(#[from] KeybagError),
}

impl Catalog {
    /// Opens the backup at `path`: its plists, its file list (an encrypted Manifest.db needs
    /// `password`; without one this is [`BackupError::PasswordNeeded`]) and the
    /// listing of its blobs.
    pub fn open(path: &Path, password: Option<&Password>) -> Result<Catalog, BackupError> {
        Catalog::open_with(path, password, true)
    }

    /// [`open`](Self::open) without listing the blobs, for a reader that needs only the file
    /// list (`diff`'s older backup, whose few blobs it asks about it looks at one by one): every
    /// entry's state is then [`State::NoBlob`], since no blob was looked for.
    pub fn open_unlisted(path: &Path, password: Option<&Password>) -> Result<Catalog, BackupError> {
        Catalog::open_with(path, password, false)
    }

    fn open_with(
        path: &Path,
        password: Option<&Password>,
        list: bool,
    ) -> Result<Catalog, BackupError> {
        let folder = read_folder(path)?;
        let plist = folder.manifest.read().cloned();
        let encrypted = plist.as_ref().is_some_and(|m| m.is_encrypted);
        let legacy = !folder.has_db && folder.has_mbdb;
        let db_path = manifest::manifest_db_path(path);
        let needs = || BackupError::PasswordNeeded {
            path: path.to_path_buf(),
        };
        let mut keys = None;
        let source = if legacy {
            let bytes = read_mbdb(&path.join(mbdb::MBDB_NAME))?;
            if encrypted {
                let (Some(password), Some(plist)) = (password, plist.as_ref()) else {
                    return Err(needs());
                };
                keys = Some(unlock::unlock_keybag(path, plist, password)?);
            }
            // The records are checked now, so a damaged file list fails here, not mid-walk.
            mbdb::parse(&bytes).map_err(|e| BackupError::Manifest {
                path: path.join(mbdb::MBDB_NAME),
                source: ManifestError::Schema(e.to_string()),
            })?;
            Source::Legacy(bytes)
        } else if !folder.has_db {
            return Err(BackupError::NotABackup {
                path: path.to_path_buf(),
            });
        } else if encrypted && !manifest::has_sqlite_header(&db_path).unwrap_or(true) {
            let (Some(password), Some(plist)) = (password, plist.as_ref()) else {
                return Err(needs());
            };
            let opened = unlock::open_encrypted(path, &db_path, plist, password)?;
            keys = Some(opened.keys);
            Source::Db(opened.manifest)
        } else {
            if encrypted {
                if let (Some(password), Some(plist)) = (password, plist.as_ref()) {
                    keys = Some(unlock::unlock_keybag(path, plist, password)?);
                }
            }
            Source::Db(
                Manifest::open(&db_path).map_err(|source| BackupError::Manifest {
                    path: db_path.clone(),
                    source,
                })?,
            )
        };
        let store = if list {
            scan_blobs(path, legacy)?
        } else {
            BlobStore::default()
        };
        Ok(Catalog {
            root: path.to_path_buf(),
            encrypted,
            legacy,
            source,
            keys,
            store,
            listed: list,
            brief: false,
            manifest_plist: plist,
        })
    }

    /// Entries with only their size, modified time and kind read from the record (mode,
    /// symlink target and key left out), for a reader that compares files and needs no more
    /// (`diff`): a Manifest.db record is then looked up, not decoded whole. A record whose
    /// flags do not say its kind is still decoded for its mode.
    pub fn brief(mut self) -> Catalog {
        self.brief = true;
        self
    }

    /// Manifest.plist, when it was there and readable (its `Applications` names apps).
    pub fn manifest_plist(&self) -> Option<&ManifestPlist> {
        self.manifest_plist.as_ref()
    }

    /// Rows in the file list (an estimate for Manifest.db, for progress bars).
    pub fn row_estimate(&self) -> u64 {
        match &self.source {
            Source::Db(m) => m.row_estimate(),
            Source::Legacy(bytes) => mbdb::parse(bytes).map_or(0, |r| r.len() as u64),
        }
    }

    /// Calls `each` for every entry in storage order, until it returns `Break`.
    pub fn each(
        &self,
        mut each: impl FnMut(&Entry<'_>) -> ControlFlow<()>,
    ) -> Result<(), BackupError> {
        match &self.source {
            Source::Legacy(bytes) => {
                let records = mbdb::parse(bytes).map_err(|e| BackupError::Manifest {
                    path: self.root.join(mbdb::MBDB_NAME),
                    source: ManifestError::Schema(e.to_string()),
                })?;
                for (i, record) in records.iter().enumerate() {
                    let entry = self.legacy_entry(i as i64, record);
                    if each(&entry).is_break() {
                        break;
                    }
                }
                Ok(())
            }
            Source::Db(manifest) => {
                let mut stop = false;
                manifest
                    .scan(|row| {
                        if !stop {
                            let entry = self.db_entry(&row);
                            stop = each(&entry).is_break();
                        }
                    })
                    .map_err(|source| BackupError::Manifest {
                        path: manifest::manifest_db_path(&self.root),
                        source,
                    })
            }
        }
    }

    /// The domain and relative path of each entry of `rows` ([`Entry::row`] values), read
    /// again by rowid (Manifest.db) or record index (Manifest.mbdb), in the same order: for a
    /// reader that kept rows rather than names (`diff`'s removed files). A row that is not
    /// there is a damaged manifest.
    pub fn names_at(&self, rows: &[i64]) -> Result<Vec<(String, String)>, BackupError> {
        match &self.source {
            Source::Db(manifest) => rows
                .iter()
                .map(|&row| {
                    manifest
                        .names(row)
                        .map(|(_, domain, path)| (domain, path))
                        .map_err(|source| BackupError::Manifest {
                            path: manifest::manifest_db_path(&self.root),
                            source,
                        })
                })
                .collect(),
            Source::Legacy(bytes) => {
                let damaged = |reason: String| BackupError::Manifest {
                    path: self.root.join(mbdb::MBDB_NAME),
                    source: ManifestError::Schema(reason),
                };
                let records = mbdb::parse(bytes).map_err(|e| damaged(e.to_string()))?;
                rows.iter()
                    .map(|&row| {
                        let record = usize::try_from(row)
                            .ok()
                            .and_then(|i| records.get(i))
                            .ok_or_else(|| damaged(format!("it has no record {row}")))?;
                        Ok((
                            String::from_utf8_lossy(record.domain).into_owned(),
                            String::from_utf8_lossy(record.path).into_owned(),
                        ))
                    })
                    .collect()
            }
        }
    }

    /// Where the blob of `id` is (whether or not it exists).
    pub fn blob_path(&self, id: &FileId) -> PathBuf {
        blobs::blob_path(&self.root, id, self.legacy)
    }

    /// The key that decrypts `entry`'s blob; `Ok(None)` for a backup that is not encrypted.
    pub fn file_key(&self, entry: &Entry<'_>) -> Result<Option<FileKey>, KeyError> {
        if !self.encrypted {
            return Ok(None);
        }
        let wrapped = entry.wrapped_key.ok_or(KeyError::NoKey)?;
        let keys = self
            .keys
            .as_ref()
            .ok_or(KeyError::Keybag(KeybagError::WrongPassword))?;
        Ok(Some(keys.unwrap_key(wrapped)?))
    }

    /// The state of a file's blob, and its length when it is a regular file.
    fn state(&self, kind: Kind, id: &FileId, size: Option<u64>) -> (State, Option<u64>) {
        if !self.listed {
            return (State::NoBlob, None);
        }
        blob_state(&self.store, self.encrypted, kind, id, size)
    }

    fn db_entry<'a>(&self, row: &manifest::Row<'a>) -> Entry<'a> {
        let file_id = blobs::parse_file_id(row.file_id)
            .unwrap_or_else(|| file_id_of(row.domain, row.relative_path));
        let flag_kind = match row.flags {
            manifest::FLAG_FILE => Some(Kind::File),
            manifest::FLAG_DIRECTORY => Some(Kind::Directory),
            manifest::FLAG_SYMLINK => Some(Kind::Symlink),
            _ => None,
        };
        fn empty<T>() -> Result<T, String> {
            Err("the record is empty".to_string())
        }
        // Brief: size and time looked up, nothing else decoded (the flags give the kind).
        let (size, modified, mode, target, wrapped_key, damaged) = match (self.brief, flag_kind) {
            (true, Some(_)) => match row.file.map_or_else(empty, |bytes| {
                mbfile::size_and_time(bytes).map_err(|e| e.to_string())
            }) {
                Ok((size, time)) => (size, time, None, None, None, None),
                Err(e) => (None, None, None, None, None, Some(e)),
            },
            _ => match row.file.map_or_else(empty, |bytes| {
                mbfile::decode(bytes).map_err(|e| e.to_string())
            }) {
                Ok(m) => (
                    m.size,
                    m.last_modified,
                    m.mode,
                    m.target.map(|t| match t {
                        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
                    }),
                    m.encryption_key,
                    None,
                ),
                Err(e) => (None, None, None, None, None, Some(e)),
            },
        };
        let kind = flag_kind.unwrap_or_else(|| kind_of_mode(mode));
        let size = if kind == Kind::File { size } else { Some(0) };
        let (state, blob_len) = self.state(kind, &file_id, size);
        Entry {
            row: row.rowid,
            domain: row.domain,
            relative_path: row.relative_path,
            file_id,
            kind,
            size: size.unwrap_or(0),
            size_known: size.is_some(),
            blob_len,
            modified,
            mode,
            target,
            wrapped_key,
            state,
            damaged,
        }
    }

    fn legacy_entry<'a>(&self, index: i64, record: &mbdb::Record<'a>) -> Entry<'a> {
        let file_id = file_id_of(record.domain, record.path);
        let kind = match record.kind() {
            mbdb::Kind::File => Kind::File,
            mbdb::Kind::Directory => Kind::Directory,
            mbdb::Kind::Symlink => Kind::Symlink,
            mbdb::Kind::Other => Kind::Other,
        };
        let size = if kind == Kind::File { record.size } else { 0 };
        let (state, blob_len) = self.state(kind, &file_id, Some(size));
        Entry {
            row: index,
            domain: record.domain,
            relative_path: record.path,
            file_id,
            kind,
            size,
            size_known: true,
            blob_len,
            modified: Some(i64::from(record.mtime)),
            mode: Some(u32::from(record.mode)),
            target: record.link_target.map(Cow::Borrowed),
            wrapped_key: record.encryption_key,
            state,
            damaged: None,
        }
    }
}

/// Where the blob of a listed file stands in `store` (what [`Entry::state`] says), for a
/// reader that listed the blobs itself ([`list_blobs`]) while it read an unlisted catalog.
pub fn blob_state(
    store: &BlobStore,
    encrypted: bool,
    kind: Kind,
    id: &FileId,
    size: Option<u64>,
) -> (State, Option<u64>) {
    if kind != Kind::File {
        return (State::NoBlob, None);
    }
    let expected = size.map(|size| expected_blob_len(size, encrypted));
    match store.get(id) {
        None if expected == Some(0) => (State::Present, None),
        None => (State::Missing, None),
        Some(blob) => match blob.kind {
            BlobKind::File if expected.is_none_or(|e| e == blob.size) => {
                (State::Present, Some(blob.size))
            }
            BlobKind::File => (State::WrongSize { on_disk: blob.size }, Some(blob.size)),
            _ => (State::Unreadable, None),
        },
    }
}

/// The blobs of the backup at `path`, listed as [`Catalog::open`] lists them (flat in the
/// root for an iOS 5-9 backup: no Manifest.db but a Manifest.mbdb, the rule `open` follows), so
/// that a reader can list them on one thread while it reads an unlisted catalog on another.
pub fn list_blobs(path: &Path) -> Result<BlobStore, BackupError> {
    let has = |name: &str| path.join(name).symlink_metadata().is_ok();
    scan_blobs(path, !has("Manifest.db") && has(mbdb::MBDB_NAME))
}

/// The blobs under `path`: flat in the root for an iOS 5-9 backup, else in the `xx/` folders.
fn scan_blobs(path: &Path, legacy: bool) -> Result<BlobStore, BackupError> {
    if legacy {
        blobs::scan_flat(path)
    } else {
        blobs::scan(path)
    }
    .map_err(|source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn kind_of_mode(mode: Option<u32>) -> Kind {
    const S_IFMT: u32 = 0o170_000;
    match mode.map(|m| m & S_IFMT) {
        Some(0o100_000) => Kind::File,
        Some(0o040_000) => Kind::Directory,
        Some(0o120_000) => Kind::Symlink,
        _ => Kind::Other,
    }
}
