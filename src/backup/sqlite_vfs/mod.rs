//! How ibackup hands SQLite a database file it opened itself: a read-only SQLite VFS (registered
//! once, as `ibackup-readonly`) whose files are not paths but sources of bytes (`Source`) that
//! ibackup opened, checked and handed to `connect`.
//!
//! SQLite opens databases by name. Checking a path and then giving SQLite the same path leaves a
//! window in which the file can be swapped for a FIFO (SQLite's own open would then block for
//! ever) or a link to something outside the backup; handing it `/proc/self/fd/N` does not help,
//! since SQLite resolves every link in a name before it opens it. And an encrypted database has
//! no plaintext file to name at all. So SQLite is given a made-up name that stands for one source
//! waiting in this module, and reads through it:
//!
//! - `PlainFile`: a database file opened by [`crate::untrusted_file::open_regular`] (never a
//!   link, FIFO or device), read by position: SQLite reads the very handle that was checked;
//! - [`decrypting::EncryptedDb`]: an encrypted database (an encrypted backup's Manifest.db, a key
//!   database under `--deep`), decrypted block by block as SQLite asks for pages, so its
//!   plaintext is never held whole and never reaches the disk.
//!
//! Whatever the source, the VFS opens nothing by name but sources handed to `connect`, and only
//! read-only: it writes, truncates and deletes nothing, says no journal, WAL or temporary file
//! exists and refuses to open one, and marks the database immutable so SQLite takes no locks
//! (none can block or be left behind). Reads past the end are short reads, zero-filled, as SQLite
//! expects, and a source that fails to read is an I/O error: a file cut short or changed while it
//! is read makes the database "damaged", never a crash. The source is dropped (and whatever it
//! wipes, wiped) when the connection closes.
//!
//! All the unsafe code, the C side of the VFS, is in `callbacks.rs`; the sources are safe Rust.
//! What is not here: what a connection may run once it is open (`manifest::harden`), and deciding
//! how long an encrypted database's plaintext is (`unlock`, `deep`).

mod callbacks;
pub mod decrypting;
mod plain;
#[cfg(test)]
mod test_support;

use std::ffi::CStr;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{ffi, Connection, OpenFlags};

pub(crate) use plain::PlainFile;

/// Bytes SQLite reads as a database file. Crate-private: the VFS hands [`Source::read_at`]
/// SQLite's own buffer (zeroed first, so it is always initialised memory).
pub(crate) trait Source: Send {
    /// How many bytes the database has (SQLite's file size).
    fn size(&mut self) -> io::Result<u64>;

    /// Fills `buf` with the bytes from `offset` on and says how many there were: fewer than
    /// `buf.len()` only where the database ends. Bytes that cannot be read are an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// The VFS's registered name.
const VFS_NAME: &CStr = c"ibackup-readonly";
/// How the names of the sources waiting to be opened begin; a number follows.
const NAME_PREFIX: &str = "ibackup-readonly-";

/// A read-only connection to the database `source` holds. The connection owns the source from
/// here on; it is dropped when the connection closes. Nothing else is set up: a Manifest.db
/// connection is hardened next (`manifest::harden`).
pub(crate) fn connect(source: impl Source + 'static) -> rusqlite::Result<Connection> {
    connect_boxed(Box::new(source))
}

fn connect_boxed(source: Box<dyn Source>) -> rusqlite::Result<Connection> {
    callbacks::register()?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let token = NEXT.fetch_add(1, Ordering::Relaxed);
    waiting().push((token, source));
    let opened = Connection::open_with_flags_and_vfs(
        format!("{NAME_PREFIX}{token}"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        VFS_NAME.to_str().expect("the name is ASCII"),
    );
    // Opened or not, the source is no longer waiting: an open that failed before the VFS took it
    // would otherwise leave it (and, for an encrypted one, its key) here for good.
    waiting().retain(|(t, _)| *t != token);
    let conn = opened?;
    // Sorts and temporary tables stay in memory; the VFS would refuse a file for them anyway.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Sources handed to [`connect`] that SQLite has not opened yet, by number.
fn waiting() -> MutexGuard<'static, Vec<(u64, Box<dyn Source>)>> {
    static WAITING: Mutex<Vec<(u64, Box<dyn Source>)>> = Mutex::new(Vec::new());
    WAITING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The number a name made by [`connect`] stands for: the prefix, then digits only.
fn token_in(name: &CStr) -> Option<u64> {
    let digits = name.to_str().ok()?.strip_prefix(NAME_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The source waiting under `name`, taken out of the waiting list (it is opened once).
fn take_waiting(name: &CStr) -> Option<Box<dyn Source>> {
    let token = token_in(name)?;
    let mut waiting = waiting();
    let at = waiting.iter().position(|(t, _)| *t == token)?;
    Some(waiting.swap_remove(at).1)
}

/// SQLite's read, as SQLite wants it: `out` filled from `offset`, zeros past the end of the
/// database and `SQLITE_IOERR_SHORT_READ` when the read ran past it; any failure of the source is
/// `SQLITE_IOERR_READ`.
fn read_for_sqlite(source: &mut dyn Source, offset: u64, out: &mut [u8]) -> std::ffi::c_int {
    match source.read_at(offset, out) {
        Ok(got) if got >= out.len() => ffi::SQLITE_OK,
        Ok(got) => {
            out[got..].fill(0);
            ffi::SQLITE_IOERR_SHORT_READ
        }
        Err(_) => ffi::SQLITE_IOERR_READ,
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{database, every_source};
    use super::*;
    use std::path::Path;

    fn count(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Bytes in memory, to see what the VFS makes of a source's answers.
    struct Bytes(Vec<u8>);

    impl Source for Bytes {
        fn size(&mut self) -> io::Result<u64> {
            Ok(self.0.len() as u64)
        }

        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            let from = usize::try_from(offset).unwrap().min(self.0.len());
            let got = buf.len().min(self.0.len() - from);
            buf[..got].copy_from_slice(&self.0[from..from + got]);
            Ok(got)
        }
    }

    #[test]
    fn only_names_made_here_stand_for_a_waiting_source() {
        assert_eq!(token_in(c"ibackup-readonly-7"), Some(7));
        assert_eq!(token_in(c"ibackup-readonly-"), None);
        assert_eq!(token_in(c"ibackup-readonly-7/x"), None);
        assert_eq!(token_in(c"ibackup-readonly--1"), None);
        assert_eq!(token_in(c"ibackup-readonly-+1"), None);
        assert_eq!(token_in(c"/tmp/Manifest.db"), None);
    }

    #[test]
    fn reads_past_the_end_are_short_and_zero_filled() {
        let mut source = Bytes(vec![7u8; 40]);
        let mut out = [9u8; 16];
        assert_eq!(read_for_sqlite(&mut source, 24, &mut out), ffi::SQLITE_OK);
        assert_eq!(out, [7u8; 16]);
        assert_eq!(
            read_for_sqlite(&mut source, 32, &mut out),
            ffi::SQLITE_IOERR_SHORT_READ
        );
        assert_eq!(&out[..8], &[7u8; 8]);
        assert_eq!(&out[8..], &[0u8; 8]);
        out = [9u8; 16];
        assert_eq!(
            read_for_sqlite(&mut source, 1000, &mut out),
            ffi::SQLITE_IOERR_SHORT_READ
        );
        assert_eq!(out, [0u8; 16]);
    }

    #[test]
    fn sqlite_reads_every_kind_of_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path(), "t.db", 3000);
        for (file, source) in every_source(&path) {
            let conn = connect_boxed(source).unwrap();
            let (count, sum): (i64, i64) = conn
                .query_row("SELECT count(*), sum(length(s)) FROM t", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!(count, 3000, "{}", file.display());
            assert!(sum > 3000);
            let check: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
            // Sorting needs temporary space: it stays in memory.
            let last: i64 = conn
                .query_row("SELECT n FROM t ORDER BY s DESC, n LIMIT 1", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(last >= 0);
        }
    }

    #[test]
    fn the_database_cannot_be_written_and_nothing_lands_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path(), "t.db", 10);
        let sources = every_source(&path);
        let before = names_in(dir.path());
        for (file, source) in sources {
            let conn = connect_boxed(source).unwrap();
            assert!(conn.execute("INSERT INTO t VALUES (1, 'x')", []).is_err());
            assert!(conn.execute_batch("CREATE TABLE u (x)").is_err());
            drop(conn);
            assert_eq!(names_in(dir.path()), before, "{}", file.display());
        }
    }

    #[test]
    fn a_database_in_wal_mode_is_read_from_its_main_file() {
        // Immutable: SQLite looks for no -wal beside it and reads what the file holds.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (n); INSERT INTO t VALUES (1);",
        )
        .unwrap();
        drop(conn);
        assert_eq!(std::fs::read(&path).unwrap()[18], 2, "the header says WAL");
        let sources = every_source(&path);
        let before = names_in(dir.path());
        for (file, source) in sources {
            let conn = connect_boxed(source).unwrap();
            assert_eq!(count(&conn).unwrap(), 1, "{}", file.display());
            drop(conn);
            assert_eq!(names_in(dir.path()), before);
        }
    }

    #[test]
    fn a_file_that_shrinks_after_it_is_opened_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than the plain source's read-ahead window (256 KB), so that the query reads
        // past what was read before the cut.
        let path = database(dir.path(), "t.db", 8000);
        assert!(std::fs::metadata(&path).unwrap().len() > 3 * 256 * 1024);
        for (file, source) in every_source(&path) {
            let conn = connect_boxed(source).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(4096)
                .unwrap();
            assert!(count(&conn).is_err(), "{}", file.display());
        }
    }

    #[test]
    fn only_sources_handed_over_are_opened() {
        callbacks::register().unwrap();
        let vfs = VFS_NAME.to_str().unwrap();
        let refused = Connection::open_with_flags_and_vfs(
            format!("{NAME_PREFIX}{}", u64::MAX),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
            vfs,
        );
        assert!(refused.is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path(), "t.db", 1);
        let by_path =
            Connection::open_with_flags_and_vfs(&path, OpenFlags::SQLITE_OPEN_READ_ONLY, vfs);
        assert!(by_path.is_err());
        let writable = Connection::open_with_flags_and_vfs(
            dir.path().join("new.db"),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            vfs,
        );
        assert!(writable.is_err());
        assert_eq!(names_in(dir.path()), ["t.db"]);
    }

    #[test]
    fn a_source_that_is_not_a_database_is_an_error() {
        let conn = connect(Bytes(b"not a database at all, just some bytes".repeat(100)));
        assert!(conn.and_then(|c| count(&c)).is_err());
    }
}
