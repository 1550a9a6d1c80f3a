//! The blob store on disk: which `<xx>/<fileID>` files exist, how big they are, and whether
//! ibackup may read them. Lists the 256 prefix folders in parallel without following links, the
//! way `find -printf %s` would, and never forms a path from manifest data. [`open_blob`] is the
//! one way a blob is opened for reading (by `judge`, `content_check`, `deep` and `icloud`).
//!
//! Whether a blob may be read is told from the mode bits the listing already has (no extra
//! system call for a readable blob); a blob they do not let this process read is then opened to
//! be sure (root, or an access list, may read it all the same).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::untrusted_file::{open_regular, Links};

/// A fileID in binary form: the SHA-1 of `domain-relativePath`.
pub type FileId = [u8; 20];

/// Parses 40 hex digits (either case) into a [`FileId`].
pub fn parse_file_id(text: &[u8]) -> Option<FileId> {
    if text.len() != 40 {
        return None;
    }
    let mut id = [0u8; 20];
    for (byte, pair) in id.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(id)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex of a [`FileId`].
pub fn file_id_hex(id: &FileId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a listed file's blob lives: `<first two hex>/<fileID>` under the backup root, or flat
/// in the root for iOS 5-9 backups. The name comes from a parsed [`FileId`], never from the
/// manifest's text, so it cannot point outside the backup.
pub fn blob_path(root: &Path, id: &FileId, flat: bool) -> PathBuf {
    let hex = file_id_hex(id);
    if flat {
        root.join(hex)
    } else {
        root.join(&hex[..2]).join(hex)
    }
}

/// Opens a blob for reading: without blocking, never through a link, and only when the open
/// handle is a regular file, so a blob swapped for a FIFO, a device or a link after the listing
/// is refused at once instead of hanging a reader or reading outside the backup.
pub fn open_blob(path: &Path) -> io::Result<fs::File> {
    open_regular(path, Links::Refuse)
}

/// What sits at a blob's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    File,
    /// A regular file this process may not read (its permissions deny it): it is there, but
    /// what it holds cannot be checked. Also recorded in [`BlobStore::unreadable`].
    Unreadable,
    Directory,
    Symlink,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    pub kind: BlobKind,
    /// Bytes, for regular files (readable or not); 0 otherwise.
    pub size: u64,
    /// Set once a manifest row names this blob (matching.rs); what stays unnamed is an orphan.
    pub named: bool,
}

impl Blob {
    /// A blob as the listing finds it, before any row has named it.
    pub fn found(kind: BlobKind, size: u64) -> Blob {
        Blob {
            kind,
            size,
            named: false,
        }
    }
}

/// A map keyed by fileID. foldhash is several times faster than the default SipHash on these
/// 20-byte keys and still seeded per process, so crafted file names cannot force collisions.
pub type IdMap<V> = HashMap<FileId, V, foldhash::fast::RandomState>;

/// Every blob found under a backup folder.
#[derive(Debug, Default)]
pub struct BlobStore {
    pub blobs: IdMap<Blob>,
    /// Total bytes of the regular blob files.
    pub bytes: u64,
    /// Folders, entries or blob files that could not be read: the check is incomplete where
    /// these are.
    pub unreadable: Vec<(PathBuf, io::Error)>,
    /// Where a blob could not even be looked for: see [`Unlisted`].
    pub unlisted: Unlisted,
}

/// The places a listing could not see into. A row whose blob is not found there is neither
/// present nor missing: nobody could look.
#[derive(Debug, Default)]
pub struct Unlisted {
    /// Blob folders, by the byte their two hex digits stand for, that could not be read or
    /// whose listing broke off.
    prefixes: Vec<u8>,
    /// The whole listing (an iOS 5-9 backup keeps its blobs in the root, one listing).
    everything: bool,
    /// Entries whose name was seen but whose type could not be read.
    ids: IdMap<()>,
}

impl Unlisted {
    /// Whether the blob of `id` could have been there without the listing seeing it.
    pub fn hides(&self, id: &FileId) -> bool {
        self.everything || self.prefixes.contains(&id[0]) || self.ids.contains_key(id)
    }

    fn add(&mut self, other: Unlisted) {
        self.prefixes.extend(other.prefixes);
        self.everything |= other.everything;
        self.ids.extend(other.ids);
    }
}

fn is_prefix_dir(name: &[u8]) -> bool {
    name.len() == 2 && name.iter().all(|&c| hex_digit(c).is_some())
}

/// Lists `root/<xx>/<fileID>` for every two-hex-digit folder `xx`. A blob counts only in the
/// folder named after its first two digits, as restore looks for it there.
pub fn scan(root: &Path) -> io::Result<BlobStore> {
    let mut prefixes = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        if is_prefix_dir(name) && entry.file_type()?.is_dir() {
            prefixes.push((entry.path(), [name[0], name[1]]));
        }
    }
    let reader = Reader::current();
    let lists: Vec<_> = prefixes
        .par_iter()
        .map(|(dir, prefix)| list_prefix(dir, Some(*prefix), &reader))
        .collect();
    let mut store = BlobStore::default();
    store
        .blobs
        .reserve(lists.iter().map(|l| l.found.len()).sum());
    for list in lists {
        store.bytes += list.found.iter().map(|(_, b)| b.size).sum::<u64>();
        store.blobs.extend(list.found);
        store.unreadable.extend(list.unreadable);
        store.unlisted.add(list.unlisted);
    }
    Ok(store)
}

/// Lists the blobs of an iOS 5-9 backup, which lie flat in the root named by their fileID.
pub fn scan_flat(root: &Path) -> io::Result<BlobStore> {
    // Reading the root itself must work; entries that fail are recorded as unreadable.
    fs::read_dir(root)?;
    let list = list_prefix(root, None, &Reader::current());
    let mut store = BlobStore {
        bytes: list.found.iter().map(|(_, b)| b.size).sum(),
        unreadable: list.unreadable,
        unlisted: list.unlisted,
        ..BlobStore::default()
    };
    store.blobs.extend(list.found);
    Ok(store)
}

#[derive(Default)]
struct PrefixList {
    found: Vec<(FileId, Blob)>,
    unreadable: Vec<(PathBuf, io::Error)>,
    unlisted: Unlisted,
}

impl PrefixList {
    /// The listing of the folder for `prefix` (the root without one) failed or broke off.
    fn broke_off(&mut self, prefix: Option<[u8; 2]>) {
        match prefix.and_then(|p| Some((hex_digit(p[0])? << 4) | hex_digit(p[1])?)) {
            Some(byte) => self.unlisted.prefixes.push(byte),
            None => self.unlisted.everything = true,
        }
    }
}

/// Lists the blobs in `dir`; with a `prefix`, only those whose name starts with it.
fn list_prefix(dir: &Path, prefix: Option<[u8; 2]>, reader: &Reader) -> PrefixList {
    let mut list = PrefixList::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            list.unreadable.push((dir.to_path_buf(), e));
            list.broke_off(prefix);
            return list;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                list.unreadable.push((dir.to_path_buf(), e));
                list.broke_off(prefix);
                continue;
            }
        };
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        let Some(id) = parse_file_id(name) else {
            continue;
        };
        if prefix.is_some_and(|prefix| !name[..2].eq_ignore_ascii_case(&prefix)) {
            continue;
        }
        match blob_at(&entry, reader) {
            Ok((blob, None)) => list.found.push((id, blob)),
            Ok((blob, Some(denied))) => {
                list.found.push((id, blob));
                list.unreadable.push((entry.path(), denied));
            }
            Err(e) => {
                list.unreadable.push((entry.path(), e));
                list.unlisted.ids.insert(id, ());
            }
        }
    }
    list
}

/// The blob at `entry`, and for a regular file this process may not read, why.
fn blob_at(entry: &fs::DirEntry, reader: &Reader) -> io::Result<(Blob, Option<io::Error>)> {
    let kind = entry.file_type()?;
    let other = |kind| Ok((Blob::found(kind, 0), None));
    if kind.is_symlink() {
        return other(BlobKind::Symlink);
    }
    if kind.is_dir() {
        return other(BlobKind::Directory);
    }
    if !kind.is_file() {
        return other(BlobKind::Other);
    }
    let meta = entry.metadata()?;
    let size = meta.len();
    if !reader.bits_allow(&meta) {
        // The bits say no; root or an access list may still say yes: only an open can tell.
        if let Err(denied) = open_blob(&entry.path()) {
            return Ok((Blob::found(BlobKind::Unreadable, size), Some(denied)));
        }
    }
    Ok((Blob::found(BlobKind::File, size), None))
}

/// Who this process is, to tell from a file's mode bits whether it may read it.
struct Reader {
    #[cfg(unix)]
    uid: u32,
    #[cfg(unix)]
    groups: Vec<u32>,
}

impl Reader {
    #[cfg(unix)]
    fn current() -> Reader {
        // SAFETY: geteuid, getegid and getgroups have no preconditions; getgroups writes at
        // most `count` ids into a buffer of that many.
        unsafe {
            let mut groups = vec![libc::getegid()];
            let count = libc::getgroups(0, std::ptr::null_mut());
            if count > 0 {
                let mut more = vec![0 as libc::gid_t; count as usize];
                let got = libc::getgroups(count, more.as_mut_ptr());
                more.truncate(got.max(0) as usize);
                groups.extend(more);
            }
            Reader {
                uid: libc::geteuid(),
                groups,
            }
        }
    }

    #[cfg(not(unix))]
    fn current() -> Reader {
        Reader {}
    }

    /// Whether the owner, group or other read bit that applies to this process is set. Only a
    /// first look: it ignores root's privilege and access lists, so a "no" is confirmed by
    /// opening the file.
    #[cfg(unix)]
    fn bits_allow(&self, meta: &fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        let bits = if meta.uid() == self.uid {
            mode >> 6
        } else if self.groups.contains(&meta.gid()) {
            mode >> 3
        } else {
            mode
        };
        bits & 0o4 != 0
    }

    /// Elsewhere every regular file the listing sees is taken as readable.
    #[cfg(not(unix))]
    fn bits_allow(&self, _meta: &fs::Metadata) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_round_trip() {
        let hex = "e79835db903d8fd76a82abf9dda1294ec027e317";
        let id = parse_file_id(hex.as_bytes()).unwrap();
        assert_eq!(file_id_hex(&id), hex);
        assert_eq!(parse_file_id(hex.to_uppercase().as_bytes()), Some(id));
        assert_eq!(
            parse_file_id(b"../../../../etc/passwd00000000000000000"),
            None
        );
        assert_eq!(parse_file_id(&hex.as_bytes()[..39]), None);
    }

    #[test]
    fn lists_blobs_where_restore_looks_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let good = "ab00000000000000000000000000000000000000";
        let misplaced = "cd00000000000000000000000000000000000000";
        let folder = "ab11111111111111111111111111111111111111";
        fs::create_dir_all(root.join("ab")).unwrap();
        fs::write(root.join("ab").join(good), b"12345").unwrap();
        fs::write(root.join("ab").join(misplaced), b"1").unwrap();
        fs::write(root.join("ab").join(".DS_Store"), b"1").unwrap();
        fs::create_dir_all(root.join("ab").join(folder)).unwrap();
        fs::write(root.join("Info.plist"), b"x").unwrap();
        let store = scan(root).unwrap();
        assert_eq!(store.blobs.len(), 2);
        let good = store.blobs[&parse_file_id(good.as_bytes()).unwrap()];
        assert_eq!(good, Blob::found(BlobKind::File, 5));
        let folder = store.blobs[&parse_file_id(folder.as_bytes()).unwrap()];
        assert_eq!(folder.kind, BlobKind::Directory);
        assert_eq!(store.bytes, 5);
    }

    #[cfg(unix)]
    use crate::untrusted_file::mkfifo;

    /// A blob swapped for a FIFO after the listing is refused at once, and a link is never
    /// opened through.
    #[cfg(unix)]
    #[test]
    fn a_blob_is_opened_only_as_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let start = std::time::Instant::now();
        let e = open_blob(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let target = dir.path().join("target");
        fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_blob(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(open_blob(&target).is_ok());
    }

    /// A blob whose permissions deny reading is listed as there but unreadable, and named; root
    /// reads it all the same, and then it is an ordinary blob.
    #[cfg(unix)]
    #[test]
    fn a_blob_that_may_not_be_read_is_listed_and_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let id = "ab00000000000000000000000000000000000000";
        fs::create_dir_all(dir.path().join("ab")).unwrap();
        let path = dir.path().join("ab").join(id);
        fs::write(&path, b"12345").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        let store = scan(dir.path()).unwrap();
        let blob = store.blobs[&parse_file_id(id.as_bytes()).unwrap()];
        assert_eq!(blob.size, 5);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(blob.kind, BlobKind::File);
            assert!(store.unreadable.is_empty());
        } else {
            assert_eq!(blob.kind, BlobKind::Unreadable);
            assert_eq!(store.unreadable.len(), 1);
            assert_eq!(store.unreadable[0].0, path);
            assert_eq!(
                store.unreadable[0].1.kind(),
                io::ErrorKind::PermissionDenied
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_read_bit_that_applies_is_the_one_looked_at() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        let reader = Reader::current();
        let meta = |mode| {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            fs::metadata(&path).unwrap()
        };
        // The test process owns the file: only the owner's bit counts.
        assert!(reader.bits_allow(&meta(0o400)));
        assert!(!reader.bits_allow(&meta(0o044)));
        let stranger = Reader {
            uid: reader.uid.wrapping_add(1),
            groups: vec![],
        };
        assert!(stranger.bits_allow(&meta(0o004)));
        assert!(!stranger.bits_allow(&meta(0o440)));
    }
}
