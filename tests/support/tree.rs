//! The files of a test's folders: where a listed file's blob lies, a FIFO made where a file
//! should be, and fingerprints of a tree that tell whether a run left it as it was. Not here:
//! writing a backup (writer.rs) or dating its files (mtime.rs).

use std::fs;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

/// Where the blob of the row (`domain`, `path`) lies in `backup`: `<xx>/<fileID>`, the fileID
/// being the SHA-1 of "domain-path" as the writers make it.
pub fn blob_of(backup: &Path, domain: &str, path: &str) -> PathBuf {
    let id = super::sha1_hex(&format!("{domain}-{path}"));
    backup.join(&id[..2]).join(id)
}

/// Makes a FIFO (mode 0600) at `path`: opening it to read blocks until someone writes.
#[cfg(unix)]
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `name` is a NUL-terminated path that outlives the call.
    let made = unsafe { libc::mkfifo(name.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo {}", path.display());
}

/// Every entry under `root` with what `symlink_metadata` says of it, folders walked, links not
/// followed; in no particular order.
pub fn entries(root: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.push((path, meta));
        }
    }
    out
}

/// Names, kinds, sizes, modes and contents of every entry under `root`, sorted: equal
/// fingerprints mean an untouched tree. A file the test cannot read is fingerprinted as
/// unreadable, with the error's kind, never as if it were empty.
pub fn tree_fingerprint(root: &Path) -> Vec<(String, String)> {
    fingerprint(root, false)
}

/// [`tree_fingerprint`] with each entry's modification and inode change times (to the
/// nanosecond) added: a file rewritten with the same bytes, dated back, or chmod-ed and
/// restored still differs, since no one can set a change time back (root included). Only for
/// trees the test itself leaves alone between the two fingerprints: its own chmod shows too.
#[cfg(unix)]
pub fn tree_fingerprint_with_times(root: &Path) -> Vec<(String, String)> {
    fingerprint(root, true)
}

fn fingerprint(root: &Path, times: bool) -> Vec<(String, String)> {
    #[cfg(not(unix))]
    let _ = times;
    let mut out: Vec<_> = entries(root)
        .into_iter()
        .map(|(path, meta)| {
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            #[cfg(unix)]
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            #[cfg(not(unix))]
            let mode = meta.permissions().readonly() as u32;
            let mut what = if meta.is_dir() {
                format!("dir {mode:o}")
            } else if meta.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if !meta.is_file() {
                // A FIFO or a device is never opened: reading one could block or never end.
                format!("special {mode:o}")
            } else {
                format!("file {mode:o} {} {}", meta.len(), content_hash(&path))
            };
            #[cfg(unix)]
            if times {
                use std::os::unix::fs::MetadataExt;
                what += &format!(
                    " mtime {}.{:09} ctime {}.{:09}",
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.ctime(),
                    meta.ctime_nsec()
                );
            }
            (rel, what)
        })
        .collect();
    out.sort();
    out
}

/// The SHA-1 of a file's bytes, or why it could not be read.
fn content_hash(path: &Path) -> String {
    // Streamed, not read whole: the test process's memory counts in what the runs it measures
    // use (see measured.rs).
    let mut hasher = Sha1::new();
    let read = fs::File::open(path).and_then(|mut file| std::io::copy(&mut file, &mut hasher));
    match read {
        Ok(_) => format!("{:x?}", hasher.finalize()),
        Err(e) => format!("unreadable ({:?})", e.kind()),
    }
}

/// Every path under `root` with its size and modification time, sorted: what changes if
/// anything is written, for trees of sparse files of gigabytes that [`tree_fingerprint`] would
/// take minutes to read.
pub fn tree_sizes_and_times(root: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out: Vec<_> = entries(root)
        .into_iter()
        .map(|(path, meta)| {
            let modified = meta.modified().unwrap();
            (path, meta.len(), modified)
        })
        .collect();
    out.sort();
    out
}

/// The path of `path` below `root`, `/`-separated, as the tests compare names.
pub fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .replace(std::path::MAIN_SEPARATOR, "/")
}
