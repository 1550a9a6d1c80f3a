//! What the kernel saw done to a tree while a run went on: an inotify watch on every folder under
//! a root, for every kind of change (a file opened for writing and closed, even with nothing
//! written; a write; a change of mode, owner or times; an entry made, removed or renamed; the
//! folder itself removed or moved). Unlike a before-and-after fingerprint it holds for root too,
//! and it sees what was undone before the run ended. Linux only.
//!
//! Not here: fingerprints of a tree (tree.rs), private mount namespaces (mounts.rs).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Every event that means the tree was changed or opened to be changed. Reads (open, access,
/// close after reading) are left out.
const CHANGES: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

const NAMES: [(u32, &str); 12] = [
    (libc::IN_CLOSE_WRITE, "closed after opening for writing"),
    (libc::IN_MODIFY, "written"),
    (libc::IN_ATTRIB, "mode, owner or times changed"),
    (libc::IN_CREATE, "created"),
    (libc::IN_DELETE, "deleted"),
    (libc::IN_MOVED_FROM, "moved away"),
    (libc::IN_MOVED_TO, "moved in"),
    (libc::IN_DELETE_SELF, "folder deleted"),
    (libc::IN_MOVE_SELF, "folder moved"),
    (libc::IN_UNMOUNT, "unmounted"),
    (libc::IN_Q_OVERFLOW, "too many events to keep"),
    (libc::IN_IGNORED, "watch dropped"),
];

/// Watches on every folder of one tree, open until dropped.
pub struct TreeWatch {
    inotify: OwnedFd,
    folders: HashMap<i32, PathBuf>,
}

impl TreeWatch {
    /// Starts watching `root` and every folder under it (links not followed).
    pub fn new(root: &Path) -> TreeWatch {
        // SAFETY: inotify_init1 has no preconditions; the descriptor is owned from here on.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify: {}", io::Error::last_os_error());
        // SAFETY: `fd` was just opened and nothing else owns it.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut watch = TreeWatch {
            inotify,
            folders: HashMap::new(),
        };
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            watch.add(&dir);
            for entry in fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                }
            }
        }
        watch
    }

    fn add(&mut self, dir: &Path) {
        let name = CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: `name` is NUL-terminated and the descriptor is open.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.inotify.as_raw_fd(),
                name.as_ptr(),
                CHANGES | libc::IN_DONT_FOLLOW | libc::IN_ONLYDIR,
            )
        };
        assert!(
            wd >= 0,
            "inotify watch on {}: {}",
            dir.display(),
            io::Error::last_os_error()
        );
        self.folders.insert(wd, dir.to_path_buf());
    }

    /// Every change seen since the watch began (or since the last call), one line each: the
    /// path and what was done to it. Empty when the tree was left alone.
    pub fn changes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: the buffer is writable for its whole length.
            let read = unsafe {
                libc::read(
                    self.inotify.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if read < 0 {
                let error = io::Error::last_os_error();
                assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "inotify: {error}");
                return out;
            }
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= read as usize {
                // SAFETY: the kernel wrote a whole event header here; read unaligned.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buffer[at..].as_ptr().cast()) };
                let name_bytes = &buffer[at + header..at + header + event.len as usize];
                let name = name_bytes.split(|&b| b == 0).next().unwrap_or(&[]);
                let mut path = self
                    .folders
                    .get(&event.wd)
                    .cloned()
                    .unwrap_or_else(|| PathBuf::from("?"));
                if !name.is_empty() {
                    path.push(std::ffi::OsStr::from_bytes(name));
                }
                let what: Vec<&str> = NAMES
                    .iter()
                    .filter(|(bit, _)| event.mask & bit != 0)
                    .map(|(_, name)| *name)
                    .collect();
                out.push(format!("{}: {}", path.display(), what.join(", ")));
                at += header + event.len as usize;
            }
        }
    }
}
