//! Looking inside one blob, whole: whether a SQLite database passes `PRAGMA quick_check`
//! (opened read-only and immutable) and whether a plist parses (after its size and shape are
//! checked, so memory stays bounded). `--deep` runs these over every database and plist of an
//! unencrypted backup (`deep`), and `judge` uses them to tell a whole blob of another size from a
//! damaged one. Reads only; nothing is written.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::folder::read_regular_file;
use super::manifest;

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
    let mut head = Vec::with_capacity(100);
    let read = std::fs::File::open(path).and_then(|f| f.take(100).read_to_end(&mut head));
    if let Err(e) = read {
        return Some(Err(format!("it could not be read: {e}")));
    }
    if head.starts_with(manifest::SQLITE_MAGIC) {
        Some(match quick_check_file(path) {
            Ok(result) if result == "ok" => Ok(()),
            Ok(result) => Err(format!("SQLite's quick_check reports: {result}")),
            Err(e) => Err(format!("SQLite reports: {e}")),
        })
    } else if head.starts_with(b"bplist00") || is_xml_plist(&head) {
        check_plist(path)
    } else {
        None
    }
}

/// Parses a plist blob in full, after its size and shape are checked (memory stays bounded).
fn check_plist(path: &Path) -> Option<Result<(), String>> {
    let bytes = match read_regular_file(path, MAX_CHECKED_PLIST) {
        Ok(bytes) => bytes,
        Err(_) if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_CHECKED_PLIST) => {
            return None
        }
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

/// quick_check on a database file, opened read-only and immutable.
pub(super) fn quick_check_file(path: &Path) -> Result<String, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(manifest::readonly_uri(path), flags)
        .map_err(|e| e.to_string())
        .and_then(|conn| quick_check(&conn))
}

/// The first line `PRAGMA quick_check` returns: `ok`, or SQLite's first complaint.
pub(super) fn quick_check(conn: &Connection) -> Result<String, String> {
    conn.query_row("PRAGMA quick_check", [], |row| row.get::<_, String>(0))
        .map_err(|e| e.to_string())
}
