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

use crate::untrusted_dir::{for_each_entry, Entry, FileStat, Kind};
use crate::untrusted_file::{open_regular, Links};

/// A fileID in binary form: the SHA-1 of `domain-relativePath`.
pub type FileId = [u8; 20];

/// Parses 40 hex digits (either case) into a [`FileId`].
pub fn parse_file_id(text: &[u8]) -> Option<FileId> {
    let text: &[u8; 40] = text.try_into().ok()?;
    let mut id = [0u8; 20];
    // Any digit that is not hex sets the high bits of `bad`: one test at the end instead of a
    // branch per digit (every blob name and every manifest row comes through here).
    let mut bad = 0u8;
    for (byte, pair) in id.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        bad |= high | low;
        *byte = (high << 4) | (low & 0x0F);
    }
    (bad & 0xF0 == 0).then_some(id)
}

/// The value of each hex digit, and 0xFF for every other byte.
const HEX: [u8; 256] = {
    let mut table = [0xFFu8; 256];
    let mut c = 0;
    while c < 256 {
        if let Some(value) = hex_digit(c as u8) {
            table[c] = value;
        }
        c += 1;
    }
    table
};

const fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The order of fileIDs as numbers, the same as comparing their bytes, in three integer
/// comparisons rather than a call to `memcmp` (which sorting and searching a million of them
/// felt).
pub fn id_order(a: &FileId, b: &FileId) -> std::cmp::Ordering {
    let words = |id: &FileId| {
        let (head, tail) = id.split_at(8);
        let (middle, last) = tail.split_at(8);
        (
            u64::from_be_bytes(head.try_into().unwrap_or_default()),
            u64::from_be_bytes(middle.try_into().unwrap_or_default()),
            u32::from_be_bytes(last.try_into().unwrap_or_default()),
        )
    };
    words(a).cmp(&words(b))
}

/// Lowercase hex of a [`FileId`].
pub fn file_id_hex(id: &FileId) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(40);
    for byte in id {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
    hex
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

/// One entry of the listing: 32 bytes, so that a million blobs take 32 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    pub id: FileId,
    pub kind: BlobKind,
    /// Bytes, for regular files (readable or not); 0 otherwise.
    pub size: u64,
    /// Set once a manifest row names this blob (matching.rs); what stays unnamed is an orphan.
    pub named: bool,
}

const _: () = assert!(std::mem::size_of::<Blob>() == 32);

impl Blob {
    /// A blob as the listing finds it, before any row has named it.
    pub fn found(id: FileId, kind: BlobKind, size: u64) -> Blob {
        Blob {
            id,
            kind,
            size,
            named: false,
        }
    }
}

/// A map keyed by fileID. foldhash is several times faster than the default SipHash on these
/// 20-byte keys and still seeded per process, so crafted file names cannot force collisions.
pub type IdMap<V> = HashMap<FileId, V, foldhash::fast::RandomState>;

/// Every blob found under a backup folder, once per fileID.
///
/// Kept as sorted arrays rather than a hash table: a fileID is a SHA-1, so the blobs spread
/// evenly over 256 buckets by their first byte (the blob folders themselves), and each bucket
/// has an index by the second byte. A lookup is one index read and a binary search among a
/// handful of neighbours; memory is the 32 bytes of each [`Blob`] and 1 KB per bucket, where a
/// hash table of the same blobs took about 80 bytes each.
#[derive(Debug, Default)]
pub struct BlobStore {
    /// 256 buckets once filled (empty before).
    buckets: Vec<Bucket>,
    /// Total bytes of the regular blob files.
    pub bytes: u64,
    /// Folders, entries or blob files that could not be read: the check is incomplete where
    /// these are.
    pub unreadable: Vec<(PathBuf, io::Error)>,
    /// Where a blob could not even be looked for: see [`Unlisted`].
    pub unlisted: Unlisted,
}

/// The blobs whose fileID starts with one byte, sorted, and where each second byte begins.
#[derive(Debug, Default)]
struct Bucket {
    blobs: Vec<Blob>,
    /// `starts[b]..starts[b + 1]` holds the blobs whose second byte is `b` (empty when the
    /// bucket is).
    starts: Vec<u32>,
}

impl Bucket {
    /// Sorts `blobs` by fileID, keeps the first of any that share one (names differing only
    /// in the case of their hex digits), and indexes them.
    fn new(mut blobs: Vec<Blob>) -> Bucket {
        blobs.sort_unstable_by(|a, b| id_order(&a.id, &b.id));
        blobs.dedup_by(|later, first| later.id == first.id);
        blobs.shrink_to_fit();
        let mut starts = Vec::new();
        if !blobs.is_empty() {
            starts = vec![0u32; 257];
            for blob in &blobs {
                starts[usize::from(blob.id[1]) + 1] += 1;
            }
            for b in 1..257 {
                starts[b] += starts[b - 1];
            }
        }
        Bucket { blobs, starts }
    }

    fn position(&self, id: &FileId) -> Option<usize> {
        let second = usize::from(id[1]);
        let from = *self.starts.get(second)? as usize;
        let to = self.starts[second + 1] as usize;
        let at = self.blobs[from..to]
            .binary_search_by(|b| id_order(&b.id, id))
            .ok()?;
        Some(from + at)
    }
}

impl BlobStore {
    /// Sorts the blobs found into the store's buckets. `found` may hold several lists for one
    /// first byte (blob folders whose names differ only in case), and a fileID more than once.
    fn from_lists(lists: Vec<Vec<Blob>>) -> BlobStore {
        let mut by_byte: Vec<Vec<Blob>> = (0..256).map(|_| Vec::new()).collect();
        for list in lists {
            // A list from one blob folder shares its first byte; the flat listing of an iOS 5-9
            // backup does not and is split here.
            let first = list.first().map(|b| b.id[0]);
            if list.iter().all(|b| Some(b.id[0]) == first) {
                if let Some(first) = first {
                    let slot = &mut by_byte[usize::from(first)];
                    if slot.is_empty() {
                        *slot = list;
                    } else {
                        slot.extend(list);
                    }
                }
            } else {
                for blob in list {
                    by_byte[usize::from(blob.id[0])].push(blob);
                }
            }
        }
        let buckets = by_byte.into_par_iter().map(Bucket::new).collect();
        BlobStore {
            buckets,
            ..BlobStore::default()
        }
    }

    /// How many distinct fileIDs have something at their blob's place.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.blobs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: &FileId) -> Option<&Blob> {
        let bucket = self.buckets.get(usize::from(id[0]))?;
        bucket.position(id).map(|at| &bucket.blobs[at])
    }

    pub fn get_mut(&mut self, id: &FileId) -> Option<&mut Blob> {
        let bucket = self.buckets.get_mut(usize::from(id[0]))?;
        let at = bucket.position(id)?;
        Some(&mut bucket.blobs[at])
    }

    /// Asks the processor to bring the place of `id` into its cache, ahead of a [`get`] that
    /// will want it (a hint: it changes nothing else).
    ///
    /// [`get`]: BlobStore::get
    pub fn prefetch(&self, id: &FileId) {
        let Some(bucket) = self.buckets.get(usize::from(id[0])) else {
            return;
        };
        let second = usize::from(id[1]);
        let (Some(&from), Some(&to)) = (bucket.starts.get(second), bucket.starts.get(second + 1))
        else {
            return;
        };
        let (from, to) = (from as usize, to as usize);
        for at in [from, (from + to) / 2, to.saturating_sub(1)] {
            if let Some(blob) = bucket.blobs.get(at) {
                prefetch_line(blob);
            }
        }
    }

    /// Every blob, in fileID order.
    pub fn iter(&self) -> impl Iterator<Item = &Blob> {
        self.buckets.iter().flat_map(|b| b.blobs.iter())
    }
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
        .map(|(dir, prefix)| list_prefix(dir, Some(*prefix), Links::Refuse, &reader))
        .collect();
    Ok(gather(lists))
}

/// Lists the blobs of an iOS 5-9 backup, which lie flat in the root named by their fileID.
pub fn scan_flat(root: &Path) -> io::Result<BlobStore> {
    // Reading the root itself must work; entries that fail are recorded as unreadable. The
    // root is the folder the user named: a link to it is followed.
    fs::read_dir(root)?;
    Ok(gather(vec![list_prefix(
        root,
        None,
        Links::Follow,
        &Reader::current(),
    )]))
}

/// The store made of the lists of every folder.
fn gather(lists: Vec<PrefixList>) -> BlobStore {
    let mut found = Vec::with_capacity(lists.len());
    let (mut bytes, mut unreadable, mut unlisted) = (0, Vec::new(), Unlisted::default());
    for list in lists {
        bytes += list.found.iter().map(|b| b.size).sum::<u64>();
        found.push(list.found);
        unreadable.extend(list.unreadable);
        unlisted.add(list.unlisted);
    }
    BlobStore {
        bytes,
        unreadable,
        unlisted,
        ..BlobStore::from_lists(found)
    }
}

#[derive(Default)]
struct PrefixList {
    found: Vec<Blob>,
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
fn list_prefix(dir: &Path, prefix: Option<[u8; 2]>, links: Links, reader: &Reader) -> PrefixList {
    let mut list = PrefixList::default();
    let listed = for_each_entry(dir, links, |entry| {
        let name = entry.name();
        let Some(id) = parse_file_id(name) else {
            return;
        };
        if prefix.is_some_and(|prefix| !name[..2].eq_ignore_ascii_case(&prefix)) {
            return;
        }
        match blob_at(&entry, id, dir, reader) {
            Ok((blob, None)) => list.found.push(blob),
            Ok((blob, Some(denied))) => {
                list.found.push(blob);
                list.unreadable.push((dir.join(bytes_name(name)), denied));
            }
            Err(e) => {
                list.unreadable.push((dir.join(bytes_name(name)), e));
                list.unlisted.ids.insert(id, ());
            }
        }
    });
    if let Err(e) = listed {
        list.unreadable.push((dir.to_path_buf(), e));
        list.broke_off(prefix);
    }
    list
}

/// A name the listing gave, as a path component. Blob names are 40 hex digits, so this is
/// only ever ASCII.
fn bytes_name(name: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(name).into_owned())
}

/// The blob at `entry`, and for a regular file this process may not read, why.
fn blob_at(
    entry: &Entry<'_>,
    id: FileId,
    dir: &Path,
    reader: &Reader,
) -> io::Result<(Blob, Option<io::Error>)> {
    let stat = match entry.kind()? {
        Kind::Symlink => return Ok((Blob::found(id, BlobKind::Symlink, 0), None)),
        Kind::Directory => return Ok((Blob::found(id, BlobKind::Directory, 0), None)),
        Kind::Other => return Ok((Blob::found(id, BlobKind::Other, 0), None)),
        Kind::File(stat) => stat,
    };
    if !reader.bits_allow(&stat) {
        // The bits say no; root or an access list may still say yes: only an open can tell.
        if let Err(denied) = open_blob(&dir.join(bytes_name(entry.name()))) {
            return Ok((
                Blob::found(id, BlobKind::Unreadable, stat.size),
                Some(denied),
            ));
        }
    }
    Ok((Blob::found(id, BlobKind::File, stat.size), None))
}

#[cfg(target_arch = "x86_64")]
fn prefetch_line<T>(value: &T) {
    // SAFETY: a prefetch has no effect a program can observe but timing, and the address is
    // that of a live value.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        )
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch_line<T>(_value: &T) {}

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
    fn bits_allow(&self, stat: &FileStat) -> bool {
        let mode = stat.mode;
        let bits = if stat.uid == self.uid {
            mode >> 6
        } else if self.groups.contains(&stat.gid) {
            mode >> 3
        } else {
            mode
        };
        bits & 0o4 != 0
    }

    /// Elsewhere every regular file the listing sees is taken as readable.
    #[cfg(not(unix))]
    fn bits_allow(&self, _stat: &FileStat) -> bool {
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
        // Every byte at every place: only the 22 hex digits pass, and each has its value.
        for place in 0..40 {
            for c in 0..=255u8 {
                let mut text = *b"e79835db903d8fd76a82abf9dda1294ec027e317";
                text[place] = c;
                let parsed = parse_file_id(&text);
                assert_eq!(parsed.is_some(), c.is_ascii_hexdigit(), "{c} at {place}");
                if let Some(parsed) = parsed {
                    let lower = String::from_utf8(text.to_vec()).unwrap().to_lowercase();
                    assert_eq!(file_id_hex(&parsed), lower);
                }
            }
        }
    }

    /// Sorting and searching by [`id_order`] is sorting by the bytes.
    #[test]
    fn the_order_of_ids_is_the_order_of_their_bytes() {
        let mut ids: Vec<FileId> = (0u32..2000)
            .map(|n| {
                let mut id = [0u8; 20];
                // Ids alike in their first bytes and different late, and the reverse.
                id[(n % 20) as usize] = (n / 20) as u8;
                id[19 - (n % 7) as usize] ^= n as u8;
                id
            })
            .collect();
        let mut by_bytes = ids.clone();
        by_bytes.sort();
        ids.sort_by(id_order);
        assert_eq!(ids, by_bytes);
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
        assert_eq!(store.len(), 2);
        let good_id = parse_file_id(good.as_bytes()).unwrap();
        let good = *store.get(&good_id).unwrap();
        assert_eq!(good, Blob::found(good_id, BlobKind::File, 5));
        let folder = *store
            .get(&parse_file_id(folder.as_bytes()).unwrap())
            .unwrap();
        assert_eq!(folder.kind, BlobKind::Directory);
        assert_eq!(store.bytes, 5);
    }

    /// Ids spread over every bucket and crowded into a few, looked up: each present one is
    /// found with its own entry, each absent one is not, and the store holds each id once.
    #[test]
    fn the_store_finds_every_blob_and_nothing_else() {
        let mut next = 0x9E37_79B9_7F4A_7C15u64;
        let mut random_id = || {
            let mut id = [0u8; 20];
            for chunk in id.chunks_mut(8) {
                next ^= next << 13;
                next ^= next >> 7;
                next ^= next << 17;
                chunk.copy_from_slice(&next.to_be_bytes()[..chunk.len()]);
            }
            id
        };
        let mut ids: Vec<FileId> = (0..6000).map(|_| random_id()).collect();
        // Crowded: many ids that share their first two bytes, and some that share 19.
        for n in 0..300u32 {
            let mut id = random_id();
            id[..2].copy_from_slice(&[0x5A, 0x5A]);
            if n % 3 == 0 {
                id[2..19].fill(7);
            }
            ids.push(id);
        }
        let absent: Vec<FileId> = (0..2000).map(|_| random_id()).collect();
        let blob = |id: FileId, n: usize| Blob::found(id, BlobKind::File, n as u64);
        // One list per first byte, as the blob folders give them, plus one flat list mixing
        // every byte (an iOS 5-9 backup) that repeats some ids.
        let mut lists: Vec<Vec<Blob>> = vec![Vec::new(); 256];
        for (n, &id) in ids.iter().enumerate().skip(500) {
            lists[usize::from(id[0])].push(blob(id, n));
        }
        let mut flat: Vec<Blob> = ids[..500]
            .iter()
            .enumerate()
            .map(|(n, &id)| blob(id, n))
            .collect();
        flat.extend(ids[..50].iter().map(|&id| blob(id, 999_999)));
        lists.push(flat);
        let store = BlobStore::from_lists(lists);
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert!(sorted.len() > 6200, "the test's ids are mostly distinct");
        assert_eq!(store.len(), sorted.len());
        for (n, id) in ids.iter().enumerate() {
            let found = store.get(id).unwrap_or_else(|| panic!("id {n} not found"));
            assert_eq!(found.id, *id);
            store.prefetch(id);
        }
        for id in &absent {
            assert!(store.get(id).is_none());
        }
        let listed: Vec<FileId> = store.iter().map(|b| b.id).collect();
        assert_eq!(listed, sorted);
    }

    /// Blob folders whose names differ only in case both count, and a fileID spelled twice
    /// (in either case) is one blob.
    #[test]
    fn folders_and_names_in_either_case_are_one_blob_per_id() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let lower = "ab00000000000000000000000000000000000000";
        let other = "ab11111111111111111111111111111111111111";
        for (folder, name) in [("ab", lower), ("AB", &lower.to_uppercase()), ("AB", other)] {
            fs::create_dir_all(root.join(folder)).unwrap();
            fs::write(root.join(folder).join(name), b"123").unwrap();
        }
        let store = scan(root).unwrap();
        assert_eq!(store.len(), 2);
        assert!(store
            .get(&parse_file_id(lower.as_bytes()).unwrap())
            .is_some());
        assert!(store
            .get(&parse_file_id(other.as_bytes()).unwrap())
            .is_some());
        // Bytes count every file found, as `find` would.
        assert_eq!(store.bytes, 9);
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
        let blob = *store.get(&parse_file_id(id.as_bytes()).unwrap()).unwrap();
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
            use std::os::unix::fs::MetadataExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let meta = fs::metadata(&path).unwrap();
            FileStat {
                size: meta.len(),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            }
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
