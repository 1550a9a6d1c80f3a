//! Looking inside one blob, whole: whether a SQLite database passes `PRAGMA quick_check`
//! (opened read-only and immutable) and whether a plist parses (after its size and shape are
//! checked, so memory stays bounded). `--deep` runs these over every database and plist of an
//! unencrypted backup (`deep`), and `judge` uses them to tell a whole blob of another size from a
//! damaged one. Blobs are opened with `blobs::open_blob`, so a FIFO, a device or a link in a
//! blob's place is refused at once. Reads only; nothing is written.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rusqlite::Connection;

use super::blobs::open_blob;
use super::manifest;
use crate::untrusted_file::read_handle_capped;

/// An XML plist begins with an XML declaration, a doctype or the `<plist` element.
pub fn is_xml_plist(head: &[u8]) -> bool {
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    let holds = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    text.starts_with(b"<plist")
        || text.starts_with(b"<!DOCTYPE plist")
        || text.starts_with(b"<?xml") && (holds(b"<!DOCTYPE plist") || holds(b"<plist"))
}

/// Plists larger than this are not parsed by `--deep` (they are counted as not checked).
const MAX_CHECKED_PLIST: u64 = 16 << 20;

/// What `--deep` makes of one unencrypted blob, told by its first bytes: None when it is neither
/// a SQLite database nor a plist (or a plist too big or too nested to parse within limits),
/// else whether it passed quick_check or parsed.
pub(super) fn check_content(path: &Path) -> Option<Result<(), String>> {
    match open_blob(path) {
        Ok(file) => check_open_content(file),
        Err(e) => Some(Err(format!("it could not be read: {e}"))),
    }
}

/// [`check_content`] on a blob already opened with [`open_blob`]: the handle is read, and a
/// database is quick_checked through it, so the blob is opened once.
pub(super) fn check_open_content(file: File) -> Option<Result<(), String>> {
    let mut head = Vec::with_capacity(100);
    if let Err(e) = (&file).take(100).read_to_end(&mut head) {
        return Some(Err(format!("it could not be read: {e}")));
    }
    if head.starts_with(manifest::SQLITE_MAGIC) {
        Some(match quick_check_handle(file) {
            Ok(result) if result == "ok" => Ok(()),
            Ok(result) => Err(format!("SQLite's quick_check reports: {result}")),
            Err(e) => Err(format!("SQLite reports: {e}")),
        })
    } else if head.starts_with(b"bplist00") || is_xml_plist(&head) {
        check_plist(file)
    } else {
        None
    }
}

/// Parses a plist blob in full from its open handle, after its size and shape are checked
/// (memory stays bounded).
fn check_plist(mut file: File) -> Option<Result<(), String>> {
    let len = match file.metadata() {
        Ok(meta) => meta.len(),
        Err(e) => return Some(Err(format!("it could not be read: {e}"))),
    };
    if len > MAX_CHECKED_PLIST {
        return None;
    }
    let bytes = match file
        .seek(SeekFrom::Start(0))
        .and_then(|_| read_handle_capped(file, MAX_CHECKED_PLIST))
    {
        Ok(bytes) => bytes,
        // It grew past the limit while being read: too big to parse is not damage.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return None,
        Err(e) => return Some(Err(format!("it could not be read: {e}"))),
    };
    match crate::plist_shape::check(&bytes) {
        Ok(()) => {}
        // Too deep or too big to parse safely is not damage.
        Err(e) if !e.starts_with("a malformed") => return None,
        Err(e) => return Some(Err(format!("it is {e}"))),
    }
    Some(
        plist::Value::from_reader(std::io::Cursor::new(&bytes))
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "it does not parse as a plist: {}",
                    crate::plist_shape::describe(&e)
                )
            }),
    )
}

/// quick_check on a database blob already opened with [`open_blob`] (a regular file, not a link,
/// never blocking): SQLite reads that very handle through the read-only VFS (`sqlite_vfs`), so
/// nothing swapped in after the check can make it block or read elsewhere.
pub(super) fn quick_check_handle(file: File) -> Result<String, String> {
    manifest::open_handle(file)
        .map_err(|e| e.to_string())
        .and_then(|conn| quick_check(&conn))
}

/// The first line `PRAGMA quick_check` returns: `ok`, or SQLite's first complaint.
pub(super) fn quick_check(conn: &Connection) -> Result<String, String> {
    conn.query_row("PRAGMA quick_check", [], |row| row.get::<_, String>(0))
        .map_err(|e| e.to_string())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The blob at `path` opened as `--deep` opens it, then quick_checked through the handle.
    fn quick_check_file(path: &Path) -> Result<String, String> {
        let file = open_blob(path).map_err(|e| format!("it could not be opened: {e}"))?;
        quick_check_handle(file)
    }
    use std::io::Write;
    use std::time::{Duration, Instant};

    use crate::untrusted_file::mkfifo;

    /// A blob swapped for a FIFO after the listing: the check says it could not be read, at
    /// once, instead of holding a worker thread for ever.
    #[test]
    fn a_fifo_blob_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let start = Instant::now();
        let result = check_content(&fifo);
        assert!(
            matches!(&result, Some(Err(e)) if e.contains("FIFO")),
            "{result:?}"
        );
        assert!(quick_check_file(&fifo).is_err());
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    /// A sound database or plist reached through a link is not checked through it.
    #[test]
    fn a_linked_blob_is_not_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sound.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        assert_eq!(quick_check_file(&db).as_deref(), Ok("ok"));
        assert_eq!(check_content(&db), Some(Ok(())));
        let plist = dir.path().join("sound.plist");
        std::fs::write(&plist, b"<?xml version=\"1.0\"?><plist><dict/></plist>").unwrap();
        assert_eq!(check_content(&plist), Some(Ok(())));
        for target in [&db, &plist] {
            let link = dir.path().join("link");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link).unwrap();
            let result = check_content(&link);
            assert!(
                matches!(&result, Some(Err(e)) if e.contains("symbolic link")),
                "{result:?}"
            );
            let through = quick_check_file(&link);
            assert!(
                through.as_ref().is_err_and(|e| e.contains("symbolic link")),
                "{through:?}"
            );
        }
    }

    #[test]
    fn a_plist_over_the_limit_is_not_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.plist");
        let file = std::fs::File::create(&path).unwrap();
        (&file).write_all(b"bplist00").unwrap();
        file.set_len(MAX_CHECKED_PLIST + 1).unwrap();
        assert_eq!(check_content(&path), None);
    }
}
