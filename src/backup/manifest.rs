//! Manifest.db: the list of every file, directory and symlink in the backup. Opened strictly
//! read-only and immutable (no lock, no journal, no -wal/-shm written next to it), and read as a
//! stream of borrowed rows so memory does not grow with the manifest.
//!
//! Schema: `Files(fileID, domain, relativePath, flags, file)`; flags 1 file, 2 directory,
//! 4 symlink. [libimobiledevice tools/idevicebackup2.c; mvt-project/mvt]

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{ffi, Connection, OpenFlags};

use super::decrypting_vfs::EncryptedDb;

/// The first 16 bytes of every SQLite database file.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

pub const FLAG_FILE: i64 = 1;
pub const FLAG_DIRECTORY: i64 = 2;
pub const FLAG_SYMLINK: i64 = 4;

/// Why the manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is not a SQLite database (it does not start with the SQLite header)")]
    NotSqlite,
    #[error("it is not a backup manifest: {0}")]
    Schema(String),
    #[error("SQLite could not read it: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("it is not a readable Manifest.mbdb: {0}")]
    Mbdb(super::mbdb::MbdbError),
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
    conn: Connection,
}

/// Whether the file at `path` starts with the SQLite header (an encrypted manifest does not).
pub fn has_sqlite_header(path: &Path) -> std::io::Result<bool> {
    let mut header = [0u8; 16];
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    let mut file = std::fs::File::open(path)?;
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read == header.len() && &header == SQLITE_MAGIC)
}

/// A `file:` URI for `path` that SQLite opens read-only and immutable: it takes no lock and
/// writes nothing beside the database (https://sqlite.org/uri.html).
pub fn readonly_uri(path: &Path) -> String {
    let text: String = if cfg!(windows) {
        let s = path.to_string_lossy().replace('\\', "/");
        if s.as_bytes().get(1) == Some(&b':') {
            format!("/{s}")
        } else {
            s
        }
    } else {
        path.to_string_lossy().into_owned()
    };
    let mut uri = String::from("file:");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~:".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

/// A read-only connection that reads the database straight from `bytes`, without copying them
/// into memory SQLite owns (which would not be wiped). The caller keeps `bytes` alive, unmoved,
/// for as long as the connection lives.
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

fn bytes<'a>(value: ValueRef<'a>) -> &'a [u8] {
    match value {
        ValueRef::Text(t) | ValueRef::Blob(t) => t,
        _ => &[],
    }
}

impl Manifest {
    /// Opens `path` read-only after checking its header, so that a non-SQLite file gets a clear
    /// error instead of SQLite's generic one.
    pub fn open(path: &Path) -> Result<Self, ManifestError> {
        if !has_sqlite_header(path)? {
            return Err(ManifestError::NotSqlite);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(readonly_uri(path), flags)?;
        Self::check_schema(&conn)?;
        Ok(Manifest { conn })
    }

    /// Opens an encrypted Manifest.db read-only, decrypting only the pages SQLite reads
    /// (`decrypting_vfs`); its plaintext is never held whole and never reaches the disk.
    pub fn from_encrypted(db: EncryptedDb) -> Result<Self, ManifestError> {
        let conn = db.connect()?;
        Self::check_schema(&conn)?;
        Ok(Manifest { conn })
    }

    fn check_schema(conn: &Connection) -> Result<(), ManifestError> {
        conn.prepare("SELECT rowid, fileID, domain, relativePath, flags, file FROM Files LIMIT 0")
            .map(|_| ())
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    ManifestError::NotSqlite
                }
                rusqlite::Error::SqliteFailure(_, Some(msg))
                | rusqlite::Error::SqlInputError { msg, .. }
                    if msg.contains("no such") =>
                {
                    ManifestError::Schema(format!(
                        "no Files table with the expected columns ({msg})"
                    ))
                }
                other => ManifestError::Sqlite(other),
            })
    }

    /// An upper bound on the number of rows, cheap to get (for progress bars).
    pub fn row_estimate(&self) -> u64 {
        self.conn
            .query_row("SELECT max(rowid) FROM Files", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .ok()
            .flatten()
            .map_or(0, |n| n.max(0) as u64)
    }

    /// Calls `each` for every row of the Files table, in storage order.
    pub fn scan(&self, mut each: impl FnMut(Row<'_>)) -> Result<(), ManifestError> {
        let mut stmt = self
            .conn
            .prepare("SELECT rowid, fileID, domain, relativePath, flags, file FROM Files")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let flags = match row.get_ref(4)? {
                ValueRef::Integer(i) => i,
                _ => 0,
            };
            let file = match row.get_ref(5)? {
                ValueRef::Blob(b) => Some(b),
                _ => None,
            };
            each(Row {
                rowid: row.get(0)?,
                file_id: bytes(row.get_ref(1)?),
                domain: bytes(row.get_ref(2)?),
                relative_path: bytes(row.get_ref(3)?),
                flags,
                file,
            });
        }
        Ok(())
    }

    /// The fileID, domain and relative path of the row `rowid`, for reports.
    pub fn names(&self, rowid: i64) -> Result<(String, String, String), ManifestError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT fileID, domain, relativePath FROM Files WHERE rowid = ?1")?;
        let names = stmt.query_row([rowid], |row| {
            let text = |i| {
                row.get_ref(i)
                    .map(|v| String::from_utf8_lossy(bytes(v)).into_owned())
            };
            Ok((text(0)?, text(1)?, text(2)?))
        })?;
        Ok(names)
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
    fn uri_escapes_what_sqlite_would_misread() {
        assert_eq!(
            readonly_uri(Path::new("/a b/c?d#e%f/Manifest.db")),
            "file:/a%20b/c%3Fd%23e%25f/Manifest.db?mode=ro&immutable=1"
        );
    }

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
}
