//! Manifest.db: the list of every file, directory and symlink in the backup. Opened strictly
//! read-only and immutable (no lock, no journal, no -wal/-shm written next to it), and read as a
//! stream of borrowed rows so memory does not grow with the manifest.
//!
//! A Manifest.db is input someone else laid out, and SQLite is a programmable engine, so every
//! connection to one goes through [`harden`] and [`Manifest`]'s schema check before its first
//! row is read (docs/design.md, "Manifest.db is hostile input"):
//!
//! - the file is opened by [`crate::untrusted_file::open_regular`] (never blocks, links refused,
//!   type checked on the handle) and SQLite reads that very handle through `sqlite_vfs`, so it
//!   cannot be swapped after the check;
//! - `Files` must be a plain table: a view, a virtual table, a generated column among the five
//!   read, or a column hiding the rowid is refused before any row is read;
//! - SQLite's own limits are lowered ([`MAX_VALUE_BYTES`] per value, short SQL, few columns,
//!   shallow expressions, nothing attached), and a work budget in proportion to the database's
//!   size ([`BUDGET_BASE_STEPS`], [`BUDGET_STEPS_PER_BYTE`]) interrupts any statement that
//!   would otherwise run for ever (a b-tree whose pages point at one another, say);
//! - each fileID, domain and relativePath is at most [`MAX_NAME_BYTES`]; a row over a limit
//!   stops the check with a message naming its rowid.
//!
//! Schema: `Files(fileID, domain, relativePath, flags, file)`; flags 1 file, 2 directory,
//! 4 symlink. [libimobiledevice tools/idevicebackup2.c; mvt-project/mvt]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{ffi, Connection, ErrorCode, OpenFlags, OptionalExtension};
use zeroize::Zeroizing;

use super::sqlite_vfs::{self, decrypting::EncryptedDb, PlainFile};

use crate::units::human_count;
use crate::untrusted_file::{open_regular, Links};

/// The first 16 bytes of every SQLite database file.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

pub const FLAG_FILE: i64 = 1;
pub const FLAG_DIRECTORY: i64 = 2;
pub const FLAG_SYMLINK: i64 = 4;

/// The most bytes SQLite hands over for any one value (`SQLITE_LIMIT_LENGTH`): 1 MiB. A real
/// row's MBFile record is a few hundred bytes to a few KB; a larger value is refused before it
/// is read into memory, so no row takes more than a few MB however large the file.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The most bytes a fileID, domain or relativePath may have: 4 KiB, four times the longest
/// path iOS allows (PATH_MAX is 1024), so no real name comes near it.
pub const MAX_NAME_BYTES: usize = 4096;

/// The work budget of one connection, in SQLite virtual-machine steps: this many to start
/// with (a million: the schema and a small manifest's every query fit many times over)...
pub const BUDGET_BASE_STEPS: u64 = 1_000_000;

/// ...plus this many for each byte of the database. Scanning `Files` takes 8 steps a row and
/// looking a row's names up 11; even rows of empty names take ten bytes or more on disk (160
/// steps), so a full scan plus several lookups per row fits with room to spare, whatever the
/// size (a 900 MB manifest of a million files gets 14 billion steps and needs about 20
/// million). A statement that runs out is interrupted: only a damaged or hostile database (a
/// b-tree whose pages point at one another, say) gets there, and the rows it could make up
/// before that stay in proportion to its size.
pub const BUDGET_STEPS_PER_BYTE: u64 = 16;

/// How many steps SQLite runs between two looks at the budget.
const STEPS_PER_CHECK: u64 = 1000;

/// SQLite's run-time limits for a Manifest.db connection: what the manifest's schema and our
/// own short statements need, with a wide margin, and no more.
const LIMITS: [(Limit, i32); 11] = [
    (Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES as i32),
    (Limit::SQLITE_LIMIT_SQL_LENGTH, 100_000),
    (Limit::SQLITE_LIMIT_COLUMN, 100),
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
    (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 10),
    (Limit::SQLITE_LIMIT_VDBE_OP, 100_000),
    (Limit::SQLITE_LIMIT_FUNCTION_ARG, 8),
    (Limit::SQLITE_LIMIT_ATTACHED, 0),
    (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 100),
    (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 10),
    (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 1),
];

/// The five columns read from `Files`.
const COLUMNS: [&str; 5] = ["fileID", "domain", "relativePath", "flags", "file"];

/// Every row in storage order. `NOT INDEXED`: the table itself is read, never an index that a
/// damaged or hostile file could make say something else.
const SCAN: &str =
    "SELECT rowid, fileID, domain, relativePath, flags, file FROM main.Files NOT INDEXED";

/// Why the manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is not a SQLite database (it does not start with the SQLite header)")]
    NotSqlite,
    #[error("it is not a backup manifest: {0}")]
    Schema(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(
        "reading it needed more work than any Manifest.db of its size can ({} SQLite steps \
         plus {} per byte): it is damaged, or built to keep a reader busy for ever",
        human_count(BUDGET_BASE_STEPS),
        BUDGET_STEPS_PER_BYTE
    )]
    TooMuchWork,
    #[error(
        "it is in WAL mode and its file list is in Manifest.db-wal beside it, not in \
         Manifest.db itself (the database was copied or left before its changes were merged \
         in). ibackup does not merge them, since that writes to the backup. To check it, copy \
         the backup folder, run `sqlite3 Manifest.db \"PRAGMA wal_checkpoint\"` in \
         the copy, and check the copy"
    )]
    RowsInWal,
    #[error("SQLite could not read it: {0}")]
    Sqlite(rusqlite::Error),
    #[error("it is not a readable Manifest.mbdb: {0}")]
    Mbdb(super::mbdb::MbdbError),
}

impl From<rusqlite::Error> for ManifestError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => ManifestError::NotSqlite,
            Some(ErrorCode::OperationInterrupted) => ManifestError::TooMuchWork,
            Some(ErrorCode::TooBig) => ManifestError::TooLarge(format!(
                "it holds a value larger than the {} bytes ibackup reads for one value",
                human_count(MAX_VALUE_BYTES as u64)
            )),
            _ => ManifestError::Sqlite(e),
        }
    }
}

/// One row of the Files table, borrowed from SQLite's buffers for the duration of a callback.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub rowid: i64,
    pub file_id: &'a [u8],
    pub domain: &'a [u8],
    pub relative_path: &'a [u8],
    pub flags: i64,
    pub file: Option<&'a [u8]>,
}

/// An open, read-only Manifest.db.
pub struct Manifest {
    // Declared before `_plaintext` so that it is dropped (and lets go of the bytes) first.
    conn: Connection,
    /// An image opened from bytes ([`Manifest::from_bytes`]), which SQLite reads in place.
    /// Wiped when the manifest is dropped; never written anywhere.
    _plaintext: Option<Zeroizing<Vec<u8>>>,
}

/// Whether the file at `path` starts with the SQLite header (an encrypted manifest does not).
/// Opened as every file inside a backup is: without blocking, links refused, regular files only.
pub fn has_sqlite_header(path: &Path) -> std::io::Result<bool> {
    let file = open_regular(path, Links::Refuse)?;
    Ok(read_header(&file)?.starts_with(SQLITE_MAGIC))
}

/// The first 100 bytes of a database (SQLite's file header), fewer if the file is shorter.
fn read_header(file: &File) -> std::io::Result<Vec<u8>> {
    let mut header = Vec::with_capacity(100);
    file.take(100).read_to_end(&mut header)?;
    Ok(header)
}

/// A read-only, immutable connection to the database `file` (opened by [`open_regular`], which
/// checked it). SQLite reads through `file` itself, never its path, so the path being swapped
/// since the check changes nothing. Not hardened: call [`harden`] next.
pub fn open_handle(file: File) -> Result<Connection, ManifestError> {
    Ok(sqlite_vfs::connect(PlainFile::new(file)?)?)
}

/// A read-only connection that reads the database straight from `bytes`, without copying them
/// into memory SQLite owns (which would not be wiped). The caller keeps `bytes` alive, unmoved,
/// for as long as the connection lives. Not hardened: call [`harden`] next.
///
/// rusqlite's safe `deserialize` wants SQLite-allocated memory that SQLite frees (unwiped) on
/// close, so the C call is made directly with neither FREEONCLOSE nor RESIZEABLE.
pub fn open_in_memory(bytes: &[u8]) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_in_memory_with_flags(
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let len = i64::try_from(bytes.len())
        .map_err(|_| rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None))?;
    // SAFETY: the handle is a live connection; with SQLITE_DESERIALIZE_READONLY SQLite never
    // writes through the pointer, and without FREEONCLOSE it never frees it. Every caller keeps
    // the buffer (a heap allocation, which does not move) alive longer than the connection.
    let rc = unsafe {
        ffi::sqlite3_deserialize(
            conn.handle(),
            c"main".as_ptr(),
            bytes.as_ptr().cast_mut(),
            len,
            len,
            ffi::SQLITE_DESERIALIZE_READONLY,
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None));
    }
    Ok(conn)
}

/// Makes a connection to a Manifest.db safe to query, whatever the file holds: SQLite's limits
/// lowered ([`LIMITS`]), views, triggers and untrusted schema functions switched off, cell
/// sizes checked as pages are read, and a work budget of [`BUDGET_BASE_STEPS`] plus
/// [`BUDGET_STEPS_PER_BYTE`] per byte of the database, after which any statement is
/// interrupted (and so is every later one at its first look at the budget, after 1,000
/// steps: the connection is spent).
///
/// Every connection to a Manifest.db goes through here before its first query, however it was
/// opened (a file handle, bytes in memory, a decrypting VFS).
pub fn harden(conn: &Connection) -> Result<(), rusqlite::Error> {
    use rusqlite::config::DbConfig;
    for (limit, value) in LIMITS {
        conn.set_limit(limit, value);
    }
    for (config, on) in [
        (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
        (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
    ] {
        conn.set_db_config(config, on)?;
    }
    conn.pragma_update(None, "cell_size_check", true)?;
    // The budget starts small (reading the schema to learn the size is work too), then grows
    // to what the size allows.
    let checks_left = Arc::new(AtomicU64::new(BUDGET_BASE_STEPS / STEPS_PER_CHECK));
    let left = Arc::clone(&checks_left);
    conn.progress_handler(
        STEPS_PER_CHECK as i32,
        Some(move || {
            left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err()
        }),
    );
    let pages: u64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let page_size: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let steps = BUDGET_STEPS_PER_BYTE
        .saturating_mul(pages.saturating_mul(page_size))
        .saturating_add(BUDGET_BASE_STEPS);
    checks_left.store(steps / STEPS_PER_CHECK, Ordering::Relaxed);
    Ok(())
}

fn bytes<'a>(value: ValueRef<'a>) -> &'a [u8] {
    match value {
        ValueRef::Text(t) | ValueRef::Blob(t) => t,
        _ => &[],
    }
}

/// A fileID, domain or relativePath, refused past [`MAX_NAME_BYTES`].
fn name<'a>(value: ValueRef<'a>, rowid: i64, column: &str) -> Result<&'a [u8], ManifestError> {
    let name = bytes(value);
    if name.len() > MAX_NAME_BYTES {
        return Err(too_large(rowid, column, name.len() as u64, MAX_NAME_BYTES));
    }
    Ok(name)
}

fn too_large(rowid: i64, column: &str, len: u64, limit: usize) -> ManifestError {
    ManifestError::TooLarge(format!(
        "its Files row {rowid} has a {column} of {} bytes, more than the {} bytes ibackup reads \
         (no real backup has one that large)",
        human_count(len),
        human_count(limit as u64)
    ))
}

/// Whether the database is in WAL mode (its header says so) with a Manifest.db-wal beside it
/// that holds more than the WAL's own 32-byte header: changes that were never merged in.
fn unmerged_wal(path: &Path, header: &[u8]) -> bool {
    if header.get(18) != Some(&2) && header.get(19) != Some(&2) {
        return false;
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::symlink_metadata(wal).is_ok_and(|m| m.is_file() && m.len() > 32)
}

impl Manifest {
    /// Opens `path` read-only after checking that it is a regular file (not a link, FIFO or
    /// device) that starts with the SQLite header, so that anything else gets a clear error
    /// instead of SQLite's generic one, a hang or a read of something outside the backup.
    pub fn open(path: &Path) -> Result<Self, ManifestError> {
        let file = open_regular(path, Links::Refuse)?;
        let header = read_header(&file)?;
        if !header.starts_with(SQLITE_MAGIC) {
            return Err(ManifestError::NotSqlite);
        }
        let conn = open_handle(file)?;
        // A file list that is not there may be in a WAL that was never merged.
        let in_wal = unmerged_wal(path, &header);
        match Self::checked(conn, None) {
            Err(ManifestError::Schema(_)) if in_wal => Err(ManifestError::RowsInWal),
            Ok(manifest) if in_wal && manifest.is_empty()? => Err(ManifestError::RowsInWal),
            other => other,
        }
    }

    /// Opens a decrypted Manifest.db held in memory, read-only; the bytes never reach the disk.
    pub fn from_plaintext(plaintext: Zeroizing<Vec<u8>>) -> Result<Self, ManifestError> {
        if !plaintext.starts_with(SQLITE_MAGIC) {
            return Err(ManifestError::NotSqlite);
        }
        let conn = open_in_memory(&plaintext)?;
        Self::checked(conn, Some(plaintext))
    }

    /// Opens a Manifest.db image from bytes (copied into memory that is wiped on drop), with the
    /// same checks as a file: for tests and the fuzz target.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        Self::from_plaintext(Zeroizing::new(bytes.to_vec()))
    }

    /// Opens an encrypted Manifest.db read-only, decrypting only the pages SQLite reads
    /// (`sqlite_vfs::decrypting`); its plaintext is never held whole and never reaches the disk.
    pub fn from_encrypted(db: EncryptedDb) -> Result<Self, ManifestError> {
        Self::checked(db.connect()?, None)
    }

    /// A Manifest.db behind a connection opened some other way (a decrypting VFS, say): hardened
    /// and checked like every other before it is handed out.
    pub fn from_connection(conn: Connection) -> Result<Self, ManifestError> {
        Self::checked(conn, None)
    }

    /// Hardens a fresh connection and checks its schema.
    fn checked(
        conn: Connection,
        plaintext: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Self, ManifestError> {
        harden(&conn)?;
        Self::check_schema(&conn)?;
        Ok(Manifest {
            conn,
            _plaintext: plaintext,
        })
    }

    /// `Files` must be a plain table with the five columns, none of them generated, and its
    /// rowid not hidden by a column of that name: anything else could make reading it run for
    /// ever, fill memory, or say something other than what is stored.
    fn check_schema(conn: &Connection) -> Result<(), ManifestError> {
        let kind: Option<String> = conn
            .query_row(
                "SELECT type FROM pragma_table_list
                 WHERE schema = 'main' AND name = 'Files' COLLATE NOCASE",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let refuse = |what: &str| {
            Err(ManifestError::Schema(format!(
                "its Files is {what}, not a plain table (a real Manifest.db keeps its rows in a \
                 table; this could make reading it run for ever or fill memory)"
            )))
        };
        match kind.as_deref() {
            None => return Err(ManifestError::Schema("it has no Files table".into())),
            Some("table") => {}
            Some("view") => return refuse("a view"),
            Some("virtual") => return refuse("a virtual table"),
            Some(other) => return refuse(&format!("a table of the kind {other:?}")),
        }
        let mut found = [false; COLUMNS.len()];
        let mut stmt =
            conn.prepare("SELECT name, hidden FROM pragma_table_xinfo('Files', 'main')")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let column: String = row.get(0)?;
            let hidden: i64 = row.get(1)?;
            if ["rowid", "oid", "_rowid_"]
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&column))
            {
                return Err(ManifestError::Schema(
                    "its Files has a column named rowid, which hides the row numbers".into(),
                ));
            }
            if let Some(i) = COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(&column)) {
                found[i] = true;
                // 2: a virtual generated column, 3: a stored one (PRAGMA table_xinfo).
                if hidden == 2 || hidden == 3 {
                    return Err(ManifestError::Schema(format!(
                        "its Files.{} is a generated column, which no real Manifest.db has (it \
                         is computed as it is read, and could fill memory)",
                        COLUMNS[i]
                    )));
                }
            }
        }
        if let Some(i) = found.iter().position(|f| !f) {
            return Err(ManifestError::Schema(format!(
                "no Files table with the expected columns (it has no {} column)",
                COLUMNS[i]
            )));
        }
        conn.prepare(&format!("{SCAN} LIMIT 0"))
            .map(|_| ())
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(_, Some(msg))
                | rusqlite::Error::SqlInputError { msg, .. }
                    if msg.contains("no such") =>
                {
                    ManifestError::Schema(format!(
                        "no Files table with the expected columns ({msg})"
                    ))
                }
                other => other.into(),
            })
    }

    fn is_empty(&self) -> Result<bool, ManifestError> {
        Ok(!self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM main.Files NOT INDEXED)",
            [],
            |r| r.get::<_, bool>(0),
        )?)
    }

    /// An upper bound on the number of rows, cheap to get (for progress bars).
    pub fn row_estimate(&self) -> u64 {
        self.conn
            .query_row("SELECT max(rowid) FROM main.Files", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .ok()
            .flatten()
            .map_or(0, |n| n.max(0) as u64)
    }

    /// Calls `each` for every row of the Files table, in storage order. A row with a value
    /// over [`MAX_VALUE_BYTES`] or a name over [`MAX_NAME_BYTES`] ends the scan with an error
    /// naming it.
    pub fn scan(&self, mut each: impl FnMut(Row<'_>)) -> Result<(), ManifestError> {
        let mut stmt = self.conn.prepare(SCAN)?;
        let mut rows = stmt.query([])?;
        let mut last = None;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => return Ok(()),
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::TooBig) => {
                    return Err(self.oversized_after(last).unwrap_or_else(|| e.into()))
                }
                Err(e) => return Err(e.into()),
            };
            let rowid: i64 = row.get(0)?;
            last = Some(rowid);
            let flags = match row.get_ref(4)? {
                ValueRef::Integer(i) => i,
                _ => 0,
            };
            let file = match row.get_ref(5)? {
                ValueRef::Blob(b) => Some(b),
                _ => None,
            };
            each(Row {
                rowid,
                file_id: name(row.get_ref(1)?, rowid, "fileID")?,
                domain: name(row.get_ref(2)?, rowid, "domain")?,
                relative_path: name(row.get_ref(3)?, rowid, "relativePath")?,
                flags,
                file,
            });
        }
    }

    /// The error for the row after `last` (in rowid order), which SQLite refused as too big:
    /// its rowid and its largest value, measured without reading it.
    fn oversized_after(&self, last: Option<i64>) -> Option<ManifestError> {
        self.conn
            .query_row(
                "SELECT rowid, octet_length(fileID), octet_length(domain),
                        octet_length(relativePath), octet_length(file)
                 FROM main.Files NOT INDEXED WHERE rowid > ?1 ORDER BY rowid LIMIT 1",
                [last.unwrap_or(i64::MIN)],
                |r| {
                    let rowid: i64 = r.get(0)?;
                    let mut largest = ("value", 0u64);
                    for (i, column) in ["fileID", "domain", "relativePath", "file"]
                        .into_iter()
                        .enumerate()
                    {
                        let len = r.get::<_, Option<u64>>(i + 1)?.unwrap_or(0);
                        if len > largest.1 {
                            largest = (column, len);
                        }
                    }
                    Ok(too_large(rowid, largest.0, largest.1, MAX_VALUE_BYTES))
                },
            )
            .ok()
    }

    /// The fileID, domain and relative path of the row `rowid`, for reports.
    pub fn names(&self, rowid: i64) -> Result<(String, String, String), ManifestError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT fileID, domain, relativePath FROM main.Files WHERE rowid = ?1",
        )?;
        let mut rows = stmt.query([rowid])?;
        let row = rows.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        let text = |i, column| -> Result<String, ManifestError> {
            Ok(String::from_utf8_lossy(name(row.get_ref(i)?, rowid, column)?).into_owned())
        };
        Ok((
            text(0, "fileID")?,
            text(1, "domain")?,
            text(2, "relativePath")?,
        ))
    }
}

/// Where Manifest.db lives in a backup folder.
pub fn manifest_db_path(backup: &Path) -> PathBuf {
    backup.join("Manifest.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_read_only_and_streams_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Manifest.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT,
                                 flags INTEGER, file BLOB);
             INSERT INTO Files VALUES ('ab', 'HomeDomain', 'a', 1, x'00');
             INSERT INTO Files VALUES ('cd', 'HomeDomain', '', 2, NULL);",
        )
        .unwrap();
        drop(conn);
        let manifest = Manifest::open(&path).unwrap();
        let mut seen = Vec::new();
        manifest
            .scan(|row| seen.push((row.file_id.to_vec(), row.flags, row.file.is_some())))
            .unwrap();
        assert_eq!(
            seen,
            vec![(b"ab".to_vec(), 1, true), (b"cd".to_vec(), 2, false)]
        );
        assert_eq!(manifest.row_estimate(), 2);
    }

    #[test]
    fn wrong_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, b"this is not a database at all").unwrap();
        assert!(matches!(
            Manifest::open(&garbage),
            Err(ManifestError::NotSqlite)
        ));
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(
            Manifest::open(&other),
            Err(ManifestError::Schema(_))
        ));
        assert!(matches!(
            Manifest::open(&dir.path().join("absent.db")),
            Err(ManifestError::Io(_))
        ));
    }

    /// A Manifest.db image built by `sql` on a fresh connection.
    fn image(sql: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        std::fs::read(&path).unwrap()
    }

    const FILES: &str = "CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT,
                                             flags INTEGER, file BLOB);";

    fn refusal(sql: &str) -> String {
        match Manifest::from_bytes(&image(sql)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {sql}"),
        }
    }

    #[test]
    fn a_files_that_is_not_a_plain_table_is_refused_before_any_row_is_read() {
        let view = "CREATE VIEW Files AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1
                    FROM n) SELECT i AS rowid, hex(i) AS fileID, 'D' AS domain,
                    'p' AS relativePath, 1 AS flags, NULL AS file FROM n";
        assert!(refusal(view).contains("a view"));
        let virtual_table =
            "CREATE VIRTUAL TABLE Files USING fts5(fileID, domain, relativePath, flags, file)";
        assert!(refusal(virtual_table).contains("a virtual table"));
        let generated = "CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT,
                         flags INTEGER, file BLOB AS (zeroblob(1000000000)));
                         INSERT INTO Files (fileID) VALUES ('ab');";
        assert!(refusal(generated).contains("Files.file is a generated column"));
        let stored = "CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT AS
                      (fileID || domain) STORED, flags INTEGER, file BLOB)";
        assert!(refusal(stored).contains("Files.relativePath is a generated column"));
        let hidden = "CREATE TABLE Files (rowid TEXT, fileID TEXT, domain TEXT,
                      relativePath TEXT, flags INTEGER, file BLOB)";
        assert!(refusal(hidden).contains("column named rowid"));
        let without_rowid = "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT,
                             relativePath TEXT, flags INTEGER, file BLOB) WITHOUT ROWID";
        assert!(refusal(without_rowid).contains("not a backup manifest"));
        // Another table with generated columns, and an index, change nothing.
        let fine = format!(
            "{FILES} CREATE TABLE Other (a, b AS (zeroblob(99999999)));
             CREATE INDEX ByDomain ON Files(domain, relativePath, fileID, flags, file);
             INSERT INTO Files VALUES ('ab', 'D', 'p', 1, x'00');"
        );
        let manifest = Manifest::from_bytes(&image(&fine)).unwrap();
        let mut rows = 0;
        manifest.scan(|_| rows += 1).unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn values_over_the_limits_are_refused_naming_their_row() {
        let big_record = format!(
            "{FILES} INSERT INTO Files VALUES ('ab', 'D', 'p', 1, x'00');
             INSERT INTO Files VALUES ('cd', 'D', 'q', 1, zeroblob(2000000));"
        );
        let manifest = Manifest::from_bytes(&image(&big_record)).unwrap();
        let mut seen = 0;
        let e = manifest.scan(|_| seen += 1).unwrap_err().to_string();
        assert_eq!(seen, 1);
        assert!(e.contains("row 2 has a file of 2,000,000 bytes"), "{e}");
        assert!(e.contains("1,048,576"), "{e}");
        let long_domain = format!(
            "{FILES} INSERT INTO Files VALUES ('ab', printf('%.*c', 5000, 'd'), 'p', 1, NULL);"
        );
        let manifest = Manifest::from_bytes(&image(&long_domain)).unwrap();
        let e = manifest.scan(|_| {}).unwrap_err().to_string();
        assert!(e.contains("row 1 has a domain of 5,000 bytes"), "{e}");
        assert!(manifest
            .names(1)
            .unwrap_err()
            .to_string()
            .contains("domain"));
        let within = format!(
            "{FILES} INSERT INTO Files VALUES ('ab', 'D', printf('%.*c', 4096, 'p'), 1,
                                                zeroblob(1000000));"
        );
        let manifest = Manifest::from_bytes(&image(&within)).unwrap();
        manifest
            .scan(|row| assert_eq!(row.relative_path.len(), 4096))
            .unwrap();
    }

    /// A table b-tree page (type 5, interior) whose `cells` cells and right-most pointer all
    /// point at page `child`.
    fn interior_page(size: usize, child: u32, cells: usize) -> Vec<u8> {
        let mut page = vec![0u8; size];
        let start = size - 5 * cells;
        page[0] = 0x05;
        page[3..5].copy_from_slice(&(cells as u16).to_be_bytes());
        page[5..7].copy_from_slice(&(start as u16).to_be_bytes());
        page[8..12].copy_from_slice(&child.to_be_bytes());
        for i in 0..cells {
            let at = start + 5 * i;
            page[12 + 2 * i..14 + 2 * i].copy_from_slice(&(at as u16).to_be_bytes());
            page[at..at + 4].copy_from_slice(&child.to_be_bytes());
            page[at + 4] = i as u8 + 1;
        }
        page
    }

    /// A Manifest.db whose Files b-tree is `levels` interior pages deep, every pointer of each
    /// on the next: a scan meets its one leaf (three rows) 72^levels times.
    fn self_multiplying(levels: u32) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = 512; {FILES}
             INSERT INTO Files VALUES ('ab', 'D', 'a', 1, NULL), ('cd', 'D', 'b', 1, NULL),
                                      ('ef', 'D', 'c', 1, NULL);"
        ))
        .unwrap();
        let leaf: u32 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'Files'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let pages: u32 = conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
        conn.execute(
            "UPDATE sqlite_master SET rootpage = ?1 WHERE name = 'Files'",
            [pages + 1],
        )
        .unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&path).unwrap();
        for level in 0..levels {
            let child = if level + 1 < levels {
                pages + level + 2
            } else {
                leaf
            };
            bytes.extend(interior_page(512, child, 71));
        }
        bytes[28..32].copy_from_slice(&(pages + levels).to_be_bytes());
        bytes
    }

    #[test]
    fn a_btree_that_multiplies_itself_runs_out_of_budget() {
        let bytes = self_multiplying(18);
        let manifest = Manifest::from_bytes(&bytes).unwrap();
        let mut rows = 0u64;
        let result = manifest.scan(|_| {
            rows += 1;
            assert!(rows < 5_000_000, "the scan runs for ever");
        });
        assert!(
            matches!(result, Err(ManifestError::TooMuchWork)),
            "{result:?}"
        );
        // What it made up before it stopped stays within the budget (a scan takes more than five
        // steps a row).
        let budget = BUDGET_BASE_STEPS + BUDGET_STEPS_PER_BYTE * bytes.len() as u64;
        assert!(rows < budget / 5, "{rows} rows from {} bytes", bytes.len());
        // Spent: a later statement stops at its first look at the budget.
        let mut again = 0u64;
        let result = manifest.scan(|_| again += 1);
        assert!(
            matches!(result, Err(ManifestError::TooMuchWork)),
            "{result:?}"
        );
        assert!(again < STEPS_PER_CHECK, "{again}");
    }

    #[test]
    fn the_most_compact_rows_fit_the_budget_with_every_name_looked_up() {
        let rows = 100_000;
        let sql = format!(
            "{FILES} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
             WHERE i < {rows}) INSERT INTO Files SELECT '', '', '', 1, NULL FROM n;"
        );
        let manifest = Manifest::from_bytes(&image(&sql)).unwrap();
        let mut rowids = Vec::new();
        manifest.scan(|row| rowids.push(row.rowid)).unwrap();
        assert_eq!(rowids.len(), rows);
        for rowid in rowids {
            manifest.names(rowid).unwrap();
            manifest.names(rowid).unwrap();
        }
    }
}

#[cfg(all(test, unix))]
mod unix_tests {
    use super::*;
    use std::time::Duration;

    use crate::untrusted_file::mkfifo;

    fn sample(dir: &Path) -> PathBuf {
        let path = dir.join("Manifest.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT, flags INTEGER,
                                     file BLOB);
                 INSERT INTO Files VALUES ('ab', 'HomeDomain', 'a', 1, x'00');",
            )
            .unwrap();
        path
    }

    /// The check and the read are one handle: a Manifest.db swapped for a FIFO (or anything
    /// else) after it was checked is not what SQLite reads.
    #[test]
    fn sqlite_reads_the_handle_that_was_checked_not_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let file = open_regular(&path, Links::Refuse).unwrap();
        let aside = dir.path().join("aside.db");
        std::fs::rename(&path, &aside).unwrap();
        mkfifo(&path);
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let read = open_handle(file)
                .and_then(|conn| Manifest::checked(conn, None))
                .and_then(|m| {
                    let mut ids = Vec::new();
                    m.scan(|row| ids.push(row.file_id.to_vec())).map(|()| ids)
                });
            let _ = done.send(read.map_err(|e| e.to_string()));
        });
        let read = result
            .recv_timeout(Duration::from_secs(5))
            .expect("SQLite opened the FIFO by its path and blocked");
        assert_eq!(read.unwrap(), vec![b"ab".to_vec()]);
    }

    #[test]
    fn special_files_and_links_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let real = sample(dir.path());
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let fifo = dir.path().join("fifo.db");
        mkfifo(&fifo);
        for (path, words) in [
            (&link, "symbolic link"),
            (&fifo, "FIFO"),
            (&PathBuf::from("/dev/zero"), "device"),
        ] {
            let e = has_sqlite_header(path).unwrap_err();
            assert!(e.to_string().contains(words), "{}: {e}", path.display());
            let e = Manifest::open(path).err().unwrap().to_string();
            assert!(e.contains(words), "{}: {e}", path.display());
        }
        assert!(has_sqlite_header(&real).unwrap());
    }
}
