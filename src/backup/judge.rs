//! Telling a blob that was cut short from one whose content changed while the backup ran. A
//! database may be written to while it is copied, so a blob can differ from the Size its record
//! states and still be a whole, usable file. This module looks at what the blob's own format
//! says about its length, with bounded reads (the first 100 bytes and the last 32), never the
//! whole file:
//! - SQLite: the header's page size × page count (when the header vouches for the count);
//! - binary plist: the 32-byte trailer and the offset table it points to;
//! - XML plist: the closing `</plist>`;
//! - an encrypted blob: whole 16-byte blocks (and, with `--deep` and the password, valid
//!   PKCS#7 padding, which the `deep` pass adds).
//!
//! With `--deep` a blob whose length looks whole also gets its content checked (`content_check`): a
//! database that fails quick_check or a plist that does not parse is damaged, not changed.
//!
//! The judging is pure ([`judge_plain`], [`judge_encrypted_len`]); [`read_ends`] is the one
//! bounded read, and [`Judge`] applies them to the mismatches `matching` found. Turning a
//! judgement into a problem is `problems`' business.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use rayon::prelude::*;

use super::blobs::{blob_path, open_blob};
use super::content_check::{check_content, is_xml_plist};
use super::crypto::{self, BlobCheck};
use super::keybag::ClassKeys;
use super::manifest::SQLITE_MAGIC;
use super::report::{BackupReport, Judged};
use super::scan::{FileKeys, Listed};

/// How the blobs of one backup are judged.
pub(super) struct Judge<'a> {
    pub(super) root: &'a Path,
    /// Blobs lie flat in the root (iOS 5-9).
    pub(super) flat: bool,
    pub(super) encrypted: bool,
    pub(super) deep: bool,
    /// The unlocked keys of an encrypted backup, when `--deep` was given the password.
    pub(super) keys: Option<&'a ClassKeys>,
    /// The listed files' own keys (kept with `--deep` on an encrypted backup).
    pub(super) file_keys: &'a FileKeys,
}

/// The rowids the judging sorted out, so `--deep` neither checks nor lists them twice.
#[derive(Default)]
pub(super) struct Sorted {
    /// Cut short, damaged or unknown: already reported.
    pub(super) reported: HashSet<i64>,
    /// Whole content of another size.
    pub(super) changed: HashSet<i64>,
}

impl Judge<'_> {
    /// Judges each mismatch (in parallel; two small reads each, or a decryption with `--deep`)
    /// and records the verdict in `report.files.size_mismatch`, which is in the same order.
    pub(super) fn judge_all(
        &self,
        mismatched: &[(Listed, u64)],
        report: &mut BackupReport,
    ) -> Sorted {
        let results: Vec<(Judged, String, bool)> = mismatched
            .par_iter()
            .map(|(listed, len)| self.judge_one(listed, *len))
            .collect();
        let mut sorted = Sorted::default();
        let entries = report.files.size_mismatch.iter_mut();
        for ((entry, (judged, evidence, checked)), (listed, _)) in
            entries.zip(results).zip(mismatched)
        {
            entry.judged = judged;
            entry.evidence = evidence;
            report.files.content_checked += u64::from(checked);
            if judged == Judged::Changed {
                sorted.changed.insert(listed.rowid);
            } else {
                sorted.reported.insert(listed.rowid);
            }
        }
        sorted
    }

    /// The judgement, its evidence in words, and whether `--deep` checked the content.
    fn judge_one(&self, listed: &Listed, len: u64) -> (Judged, String, bool) {
        let path = blob_path(self.root, &listed.id, self.flat);
        let evidence = match (self.encrypted, self.keys) {
            (true, Some(keys)) if self.deep && len > 0 && len % 16 == 0 => {
                decrypted_evidence(keys, self.file_keys.get(listed.rowid), &path)
            }
            (true, _) => judge_encrypted_len(len),
            (false, _) => match read_ends(&path, len) {
                Ok(ends) => judge_plain(&ends, len),
                Err(e) => Evidence::Unknown(format!("it could not be read to tell: {e}")),
            },
        };
        match evidence {
            Evidence::CutShort(why) => (Judged::CutShort, why, false),
            Evidence::Unknown(why) => (Judged::Unknown, why, false),
            Evidence::Whole(why) if self.deep && !self.encrypted => match check_content(&path) {
                Some(Err(damage)) => (Judged::Damaged, format!("{why}, but {damage}"), true),
                checked => (Judged::Changed, why, checked.is_some()),
            },
            Evidence::Whole(why) => (Judged::Changed, why, false),
        }
    }
}

/// What decrypting an encrypted blob of another length than expected shows: valid PKCS#7
/// padding means whole content (of the length it decrypts to), invalid padding a blob cut short
/// or damaged.
pub(super) fn decrypted_evidence(
    keys: &ClassKeys,
    wrapped: Option<&[u8]>,
    path: &Path,
) -> Evidence {
    let Some(wrapped) = wrapped else {
        return Evidence::Unknown("its record has no EncryptionKey to decrypt it with".into());
    };
    let key = match keys.unwrap_key(wrapped) {
        Ok(key) => key,
        Err(e) => return Evidence::Unknown(format!("its EncryptionKey cannot be unwrapped ({e})")),
    };
    let check = open_blob(path)
        .map_err(|e| e.to_string())
        .and_then(|file| crypto::check_blob(file, &key).map_err(|e| e.to_string()));
    match check {
        Ok(BlobCheck {
            plaintext_len: Some(len),
            ..
        }) => Evidence::Whole(format!(
            "it decrypts with valid padding to {len} bytes of whole content"
        )),
        Ok(_) => Evidence::CutShort(
            "its last block does not decrypt to valid padding: cut short or damaged".into(),
        ),
        Err(e) => Evidence::CutShort(format!("it cannot be decrypted: {e}")),
    }
}

/// Bytes read from the start of a blob: the whole SQLite header.
pub const HEAD_LEN: usize = 100;
/// Bytes read from the end of a blob: a binary plist's trailer.
pub const TAIL_LEN: usize = 32;

/// What a blob's content says about a length that differs from its record's Size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The format shows bytes are missing (or the blob is empty).
    CutShort(String),
    /// The format shows the content is whole, at this length.
    Whole(String),
    /// The format cannot tell (an unknown format, or one that does not record its length).
    Unknown(String),
}

/// The first [`HEAD_LEN`] and last [`TAIL_LEN`] bytes of a blob (fewer when it is shorter).
pub struct Ends {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

/// Reads the two ends of a blob, at most [`HEAD_LEN`] + [`TAIL_LEN`] bytes whatever its size.
/// The blob is opened with [`open_blob`]: a FIFO, a device or a link in its place is an error at
/// once, never a read that blocks.
pub fn read_ends(path: &Path, len: u64) -> io::Result<Ends> {
    let mut file = open_blob(path)?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    (&mut file).take(HEAD_LEN as u64).read_to_end(&mut head)?;
    let tail_len = len.min(TAIL_LEN as u64);
    let mut tail = Vec::with_capacity(TAIL_LEN);
    file.seek(SeekFrom::Start(len - tail_len))?;
    file.take(tail_len).read_to_end(&mut tail)?;
    Ok(Ends { head, tail })
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Judges an unencrypted blob of `len` bytes from its two ends.
pub fn judge_plain(ends: &Ends, len: u64) -> Evidence {
    if len == 0 {
        return Evidence::CutShort("it is empty".into());
    }
    let head = ends.head.as_slice();
    if head.starts_with(SQLITE_MAGIC) {
        sqlite(head, len)
    } else if head.starts_with(b"bplist00") {
        binary_plist(&ends.tail, len)
    } else if is_xml_plist(head) {
        xml_plist(&ends.tail)
    } else {
        Evidence::Unknown(
            "its format (not SQLite, not a plist) does not record its own length, so whether \
             it was cut short cannot be told"
                .into(),
        )
    }
}

fn sqlite(head: &[u8], len: u64) -> Evidence {
    if head.len() < HEAD_LEN {
        return Evidence::CutShort(format!(
            "it is a SQLite database cut inside its {HEAD_LEN}-byte header"
        ));
    }
    let page_size = match be(&head[16..18]) {
        1 => 65536,
        n if (512..=32768).contains(&n) && n.is_power_of_two() => n,
        n => {
            return Evidence::Unknown(format!(
                "it starts like a SQLite database but its header states a page size of {n}, \
                 which SQLite never writes"
            ))
        }
    };
    let change_counter = be(&head[24..28]);
    let page_count = be(&head[28..32]);
    let valid_for = be(&head[92..96]);
    if valid_for != change_counter || page_count == 0 {
        if len % page_size != 0 {
            return Evidence::CutShort(format!(
                "it is a SQLite database of {page_size}-byte pages that ends inside a page"
            ));
        }
        return Evidence::Unknown(
            "it is a SQLite database whose header does not vouch for its page count (an old \
             SQLite wrote it), so only --deep can tell whether pages are missing"
                .into(),
        );
    }
    let whole = page_size * page_count;
    if len < whole {
        Evidence::CutShort(format!(
            "it is a SQLite database whose header counts {page_count} pages of {page_size} \
             bytes ({whole} bytes), and only {len} bytes are there"
        ))
    } else {
        Evidence::Whole(format!(
            "it is a SQLite database holding all {page_count} pages its header counts"
        ))
    }
}

fn binary_plist(tail: &[u8], len: u64) -> Evidence {
    let cut = |why: &str| Evidence::CutShort(format!("it is a binary plist whose end {why}"));
    if len < 8 + 1 + TAIL_LEN as u64 || tail.len() < TAIL_LEN {
        return cut("is missing: it is too short to hold its trailer");
    }
    let offset_size = u64::from(tail[6]);
    let ref_size = u64::from(tail[7]);
    let objects = be(&tail[8..16]);
    let top = be(&tail[16..24]);
    let table = be(&tail[24..32]);
    let table_end = objects
        .checked_mul(offset_size)
        .and_then(|n| n.checked_add(table));
    let consistent = (1..=8).contains(&offset_size)
        && (1..=8).contains(&ref_size)
        && objects > 0
        && top < objects
        && table >= 9
        && table_end == Some(len - TAIL_LEN as u64);
    if consistent {
        Evidence::Whole(format!(
            "it is a binary plist whose trailer and offset table ({objects} objects) end \
             exactly at its length"
        ))
    } else {
        cut("is not the trailer a binary plist ends with (its offset table does not fit its length)")
    }
}

fn xml_plist(tail: &[u8]) -> Evidence {
    let end = tail
        .iter()
        .rposition(|b| !b.is_ascii_whitespace() && *b != 0)
        .map_or(&tail[..0], |at| &tail[..=at]);
    if end.ends_with(b"</plist>") {
        Evidence::Whole("it is an XML plist that ends with its closing </plist>".into())
    } else {
        Evidence::CutShort("it is an XML plist that does not end with </plist>".into())
    }
}

/// Judges an encrypted blob by its length alone: AES-CBC leaves whole 16-byte blocks, so any
/// other length was cut; a whole number of blocks needs the key (`--deep`) to say more.
pub fn judge_encrypted_len(len: u64) -> Evidence {
    if len == 0 {
        Evidence::CutShort("it is empty".into())
    } else if len % 16 != 0 {
        Evidence::CutShort(format!(
            "an encrypted file is made of whole 16-byte blocks, and {len} bytes is not"
        ))
    } else {
        Evidence::Unknown(
            "it is encrypted: its length is whole 16-byte blocks, so only --deep with the \
             backup password can tell a cut-short file from a changed one"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(bytes: &[u8]) -> Ends {
        Ends {
            head: bytes[..bytes.len().min(HEAD_LEN)].to_vec(),
            tail: bytes[bytes.len().saturating_sub(TAIL_LEN)..].to_vec(),
        }
    }

    fn sqlite_header(page_size: u16, pages: u32, counter: u32, valid_for: u32) -> Vec<u8> {
        let mut h = vec![0u8; HEAD_LEN];
        h[..16].copy_from_slice(SQLITE_MAGIC);
        h[16..18].copy_from_slice(&page_size.to_be_bytes());
        h[24..28].copy_from_slice(&counter.to_be_bytes());
        h[28..32].copy_from_slice(&pages.to_be_bytes());
        h[92..96].copy_from_slice(&valid_for.to_be_bytes());
        h
    }

    #[test]
    fn sqlite_length_against_its_header() {
        let mut db = sqlite_header(1024, 3, 7, 7);
        db.resize(3 * 1024, 0);
        assert!(matches!(judge_plain(&ends(&db), 3072), Evidence::Whole(_)));
        assert!(matches!(
            judge_plain(&ends(&db[..2048]), 2048),
            Evidence::CutShort(_)
        ));
        assert!(matches!(
            judge_plain(&ends(&db[..50]), 50),
            Evidence::CutShort(_)
        ));
        // Page size 1 means 65536.
        let big = sqlite_header(1, 2, 1, 1);
        assert!(matches!(
            judge_plain(&ends(&big), 65536 * 2 - 1),
            Evidence::CutShort(_)
        ));
        // A stale page count proves nothing unless a page is split.
        let stale = sqlite_header(1024, 3, 8, 7);
        assert!(matches!(
            judge_plain(&ends(&stale), 2048),
            Evidence::Unknown(_)
        ));
        assert!(matches!(
            judge_plain(&ends(&stale), 2000),
            Evidence::CutShort(_)
        ));
        assert!(matches!(
            judge_plain(&ends(&sqlite_header(1000, 3, 1, 1)), 3000),
            Evidence::Unknown(_)
        ));
    }

    #[test]
    fn binary_plist_trailer_against_its_length() {
        // plistlib's output for {"a": 1}.
        let mut plist = b"bplist00\xd1\x01\x02Qa\x10\x01\x08\x0b\x0d".to_vec();
        let mut trailer = vec![0u8; 6];
        trailer.extend([1, 1]);
        trailer.extend(3u64.to_be_bytes());
        trailer.extend(0u64.to_be_bytes());
        trailer.extend(15u64.to_be_bytes());
        plist.extend(&trailer);
        let len = plist.len() as u64;
        assert!(matches!(
            judge_plain(&ends(&plist), len),
            Evidence::Whole(_)
        ));
        let cut = &plist[..plist.len() - 5];
        assert!(matches!(
            judge_plain(&ends(cut), cut.len() as u64),
            Evidence::CutShort(_)
        ));
    }

    #[test]
    fn xml_plist_must_close() {
        let xml = b"<?xml version=\"1.0\"?>\n<!DOCTYPE plist>\n<plist><dict/></plist>\n";
        assert!(matches!(
            judge_plain(&ends(xml), xml.len() as u64),
            Evidence::Whole(_)
        ));
        assert!(matches!(
            judge_plain(&ends(&xml[..40]), 40),
            Evidence::CutShort(_)
        ));
    }

    #[test]
    fn other_formats_and_empty_blobs() {
        assert!(matches!(
            judge_plain(&ends(b"\xff\xd8\xff\xe0 a jpeg"), 12),
            Evidence::Unknown(_)
        ));
        assert!(matches!(judge_plain(&ends(b""), 0), Evidence::CutShort(_)));
        assert!(matches!(judge_encrypted_len(0), Evidence::CutShort(_)));
        assert!(matches!(judge_encrypted_len(33), Evidence::CutShort(_)));
        assert!(matches!(judge_encrypted_len(48), Evidence::Unknown(_)));
    }

    /// A blob that became a FIFO after the listing is an error at once, not a read that waits
    /// for a writer; a link is not read through.
    #[cfg(unix)]
    #[test]
    fn the_ends_of_a_fifo_or_a_link_are_not_read() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `name` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let start = std::time::Instant::now();
        assert!(read_ends(&fifo, 4096).is_err());
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read_ends(&link, 4096).is_err());
    }
}
