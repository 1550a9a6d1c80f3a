//! The blob store on disk: which `<xx>/<fileID>` files exist and how big they are. Lists the
//! 256 prefix folders in parallel without following links, the way `find -printf %s` would,
//! and never forms a path from manifest data.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

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

/// What sits at a blob's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    File,
    Directory,
    Symlink,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    pub kind: BlobKind,
    /// Bytes, for regular files; 0 otherwise.
    pub size: u64,
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
    /// Folders or entries that could not be read: the check is incomplete where these are.
    pub unreadable: Vec<(PathBuf, io::Error)>,
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
    let lists: Vec<_> = prefixes
        .par_iter()
        .map(|(dir, prefix)| list_prefix(dir, Some(*prefix)))
        .collect();
    let mut store = BlobStore::default();
    store
        .blobs
        .reserve(lists.iter().map(|l| l.found.len()).sum());
    for list in lists {
        store.bytes += list.found.iter().map(|(_, b)| b.size).sum::<u64>();
        store.blobs.extend(list.found);
        store.unreadable.extend(list.unreadable);
    }
    Ok(store)
}

/// Lists the blobs of an iOS 5-9 backup, which lie flat in the root named by their fileID.
pub fn scan_flat(root: &Path) -> io::Result<BlobStore> {
    // Reading the root itself must work; entries that fail are recorded as unreadable.
    fs::read_dir(root)?;
    let list = list_prefix(root, None);
    let mut store = BlobStore {
        bytes: list.found.iter().map(|(_, b)| b.size).sum(),
        unreadable: list.unreadable,
        ..BlobStore::default()
    };
    store.blobs.extend(list.found);
    Ok(store)
}

#[derive(Default)]
struct PrefixList {
    found: Vec<(FileId, Blob)>,
    unreadable: Vec<(PathBuf, io::Error)>,
}

/// Lists the blobs in `dir`; with a `prefix`, only those whose name starts with it.
fn list_prefix(dir: &Path, prefix: Option<[u8; 2]>) -> PrefixList {
    let mut list = PrefixList::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            list.unreadable.push((dir.to_path_buf(), e));
            return list;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                list.unreadable.push((dir.to_path_buf(), e));
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
        match blob_at(&entry) {
            Ok(blob) => list.found.push((id, blob)),
            Err(e) => list.unreadable.push((entry.path(), e)),
        }
    }
    list
}

fn blob_at(entry: &fs::DirEntry) -> io::Result<Blob> {
    let kind = entry.file_type()?;
    if kind.is_symlink() {
        return Ok(Blob {
            kind: BlobKind::Symlink,
            size: 0,
        });
    }
    if kind.is_dir() {
        return Ok(Blob {
            kind: BlobKind::Directory,
            size: 0,
        });
    }
    if !kind.is_file() {
        return Ok(Blob {
            kind: BlobKind::Other,
            size: 0,
        });
    }
    Ok(Blob {
        kind: BlobKind::File,
        size: entry.metadata()?.len(),
    })
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
        assert_eq!(
            good,
            Blob {
                kind: BlobKind::File,
                size: 5
            }
        );
        let folder = store.blobs[&parse_file_id(folder.as_bytes()).unwrap()];
        assert_eq!(folder.kind, BlobKind::Directory);
        assert_eq!(store.bytes, 5);
    }
}
