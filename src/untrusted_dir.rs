//! Listing folders others laid out (a backup's blob folders): each entry's name, and on demand
//! its type, size, permission bits and owner, read relative to the open folder and never
//! through a link.
//!
//! It is the listing `find -printf %s` does, and as cheap: on Unix the folder is read with
//! `readdir` and each entry looked at with one `fstatat(..., AT_SYMLINK_NOFOLLOW)` on the open
//! folder, with no allocation per entry (the standard library's `read_dir` allocates the name
//! twice and asks `statx` for every field). An entry whose type the folder already states (a
//! folder, a link, a FIFO) costs no system call at all. Elsewhere the standard library does the
//! work.
//!
//! It knows nothing about backups: names are bytes, and what to make of them is the caller's.

use std::io;
use std::path::Path;

use crate::untrusted_file::Links;

/// What an entry is. Only a regular file carries numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File(FileStat),
    Directory,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// What the listing knows of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    /// The permission bits (`st_mode & 0o7777`); 0o444 where there are none (not Unix).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[cfg(unix)]
pub use unix::{Entry, Folder};

#[cfg(not(unix))]
pub use portable::{Entry, Folder};

#[cfg(unix)]
mod unix {
    use std::ffi::{CStr, CString};
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use super::{FileStat, Kind};
    use crate::untrusted_file::Links;

    /// An open folder being read. Entries come one at a time from [`Folder::next_entry`]; each
    /// borrows the folder until the next is asked for.
    pub struct Folder {
        dir: std::ptr::NonNull<libc::DIR>,
    }

    // SAFETY: the DIR stream is owned by this value alone and only used through `&mut self` or
    // `&self` calls that do not touch the stream's position (fstatat on its descriptor), so
    // moving it to another thread is sound.
    unsafe impl Send for Folder {}

    impl Folder {
        /// Opens `path` as a folder. With [`Links::Refuse`] a link there is an error, never
        /// followed.
        pub fn open(path: &Path, links: Links) -> io::Result<Folder> {
            let name = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
            let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NONBLOCK;
            if links == Links::Refuse {
                flags |= libc::O_NOFOLLOW;
            }
            // SAFETY: `name` is a NUL-terminated path that outlives the call.
            let fd = unsafe { libc::open(name.as_ptr(), flags) };
            if fd < 0 {
                let e = io::Error::last_os_error();
                // O_NOFOLLOW on a link fails with ELOOP (EMLINK on some BSDs), or with ENOTDIR
                // beside O_DIRECTORY (Linux): say what it is, in the words a file opened the
                // same way gets.
                let link = links == Links::Refuse
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::ELOOP) | Some(libc::EMLINK) | Some(libc::ENOTDIR)
                    )
                    && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink());
                return Err(if link {
                    crate::untrusted_file::refused_link()
                } else {
                    e
                });
            }
            // SAFETY: `fd` is an open folder descriptor that the stream takes over; on failure it
            // is still ours to close.
            match std::ptr::NonNull::new(unsafe { libc::fdopendir(fd) }) {
                Some(dir) => Ok(Folder { dir }),
                None => {
                    let e = io::Error::last_os_error();
                    // SAFETY: `fd` is open and owned here.
                    unsafe { libc::close(fd) };
                    Err(e)
                }
            }
        }

        /// The next entry other than `.` and `..`; `None` at the end; an error where the folder
        /// could not be read further (the listing then ends).
        pub fn next_entry(&mut self) -> Option<io::Result<Entry<'_>>> {
            loop {
                // readdir reports errors only through errno, which it leaves alone at the end.
                set_errno(0);
                // SAFETY: the stream is open; the entry it returns stays valid until the next
                // readdir on it, which `&mut self` held by the Entry prevents.
                let raw = unsafe { libc::readdir(self.dir.as_ptr()) };
                if raw.is_null() {
                    let e = io::Error::last_os_error();
                    return (e.raw_os_error() != Some(0)).then_some(Err(e));
                }
                // SAFETY: a non-null readdir result points at a dirent whose d_name is
                // NUL-terminated.
                let (name, d_type) =
                    unsafe { (CStr::from_ptr((*raw).d_name.as_ptr()), (*raw).d_type) };
                if matches!(name.to_bytes(), b"." | b"..") {
                    continue;
                }
                return Some(Ok(Entry {
                    folder: self,
                    name,
                    d_type,
                }));
            }
        }

        fn fd(&self) -> libc::c_int {
            // SAFETY: the stream is open.
            unsafe { libc::dirfd(self.dir.as_ptr()) }
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            // SAFETY: the stream is open and closed only here.
            unsafe { libc::closedir(self.dir.as_ptr()) };
        }
    }

    /// One entry of a [`Folder`].
    pub struct Entry<'a> {
        folder: &'a Folder,
        name: &'a CStr,
        d_type: u8,
    }

    impl Entry<'_> {
        pub fn name(&self) -> &[u8] {
            self.name.to_bytes()
        }

        /// What the entry is: from the folder's own record where it says, otherwise (and for
        /// every regular file, whose size is wanted) from one `fstatat` that does not follow
        /// a link.
        pub fn kind(&self) -> io::Result<Kind> {
            match self.d_type {
                libc::DT_DIR => return Ok(Kind::Directory),
                libc::DT_LNK => return Ok(Kind::Symlink),
                libc::DT_FIFO | libc::DT_SOCK | libc::DT_CHR | libc::DT_BLK => {
                    return Ok(Kind::Other)
                }
                _ => {}
            }
            // SAFETY: an all-zero stat is a valid value of the plain C struct.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: the folder's descriptor is open, the name is NUL-terminated and `st` is a
            // writable stat.
            let rc = unsafe {
                libc::fstatat(
                    self.folder.fd(),
                    self.name.as_ptr(),
                    &mut st,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let mode = widen(st.st_mode);
            Ok(match mode & widen(libc::S_IFMT) {
                m if m == widen(libc::S_IFREG) => Kind::File(FileStat {
                    size: st.st_size.max(0) as u64,
                    mode: mode & 0o7777,
                    uid: st.st_uid,
                    gid: st.st_gid,
                }),
                m if m == widen(libc::S_IFDIR) => Kind::Directory,
                m if m == widen(libc::S_IFLNK) => Kind::Symlink,
                _ => Kind::Other,
            })
        }
    }

    /// A mode as u32: mode_t is u16 on macOS and u32 on Linux.
    #[allow(clippy::useless_conversion)]
    fn widen(mode: libc::mode_t) -> u32 {
        mode.into()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn set_errno(value: libc::c_int) {
        // SAFETY: errno is this thread's own variable.
        unsafe { *libc::__errno_location() = value };
    }

    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    fn set_errno(value: libc::c_int) {
        // SAFETY: errno is this thread's own variable.
        unsafe { *libc::__error() = value };
    }

    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd"
    )))]
    fn set_errno(value: libc::c_int) {
        // SAFETY: errno is this thread's own variable.
        unsafe { *libc::__errno() = value };
    }
}

#[cfg(not(unix))]
mod portable {
    use std::ffi::OsString;
    use std::fs;
    use std::io;
    use std::path::Path;

    use super::{FileStat, Kind};
    use crate::untrusted_file::Links;

    /// An open folder being read (through the standard library).
    pub struct Folder {
        entries: fs::ReadDir,
        current: Option<(OsString, fs::DirEntry)>,
    }

    impl Folder {
        pub fn open(path: &Path, links: Links) -> io::Result<Folder> {
            if links == Links::Refuse && fs::symlink_metadata(path)?.file_type().is_symlink() {
                return Err(crate::untrusted_file::refused_link());
            }
            Ok(Folder {
                entries: fs::read_dir(path)?,
                current: None,
            })
        }

        pub fn next_entry(&mut self) -> Option<io::Result<Entry<'_>>> {
            match self.entries.next()? {
                Ok(entry) => {
                    self.current = Some((entry.file_name(), entry));
                    let (name, entry) = self.current.as_ref()?;
                    Some(Ok(Entry { name, entry }))
                }
                Err(e) => Some(Err(e)),
            }
        }
    }

    pub struct Entry<'a> {
        name: &'a OsString,
        entry: &'a fs::DirEntry,
    }

    impl Entry<'_> {
        pub fn name(&self) -> &[u8] {
            self.name.as_encoded_bytes()
        }

        pub fn kind(&self) -> io::Result<Kind> {
            let kind = self.entry.file_type()?;
            if kind.is_symlink() {
                return Ok(Kind::Symlink);
            }
            if kind.is_dir() {
                return Ok(Kind::Directory);
            }
            if !kind.is_file() {
                return Ok(Kind::Other);
            }
            let meta = self.entry.metadata()?;
            Ok(Kind::File(FileStat {
                size: meta.len(),
                mode: if meta.permissions().readonly() {
                    0o444
                } else {
                    0o644
                },
                uid: 0,
                gid: 0,
            }))
        }
    }
}

/// Calls `each` with every entry of the folder at `path` (see [`Folder`]), then returns how the
/// listing ended: `Ok` at the end of the folder, or the error that broke it off.
pub fn for_each_entry(
    path: &Path,
    links: Links,
    mut each: impl FnMut(Entry<'_>),
) -> io::Result<()> {
    let mut folder = Folder::open(path, links)?;
    while let Some(entry) = folder.next_entry() {
        each(entry?);
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs;

    fn listing(path: &Path) -> Vec<(Vec<u8>, Kind)> {
        let mut out = Vec::new();
        for_each_entry(path, Links::Refuse, |entry| {
            out.push((entry.name().to_vec(), entry.kind().unwrap()))
        })
        .unwrap();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn lists_names_types_and_sizes_without_following_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("file"), b"12345").unwrap();
        fs::set_permissions(root.join("file"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(root.join("file"), root.join("link")).unwrap();
        crate::untrusted_file::mkfifo(&root.join("fifo"));
        let got = listing(root);
        let names: Vec<&[u8]> = got.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(names, [&b"fifo"[..], b"file", b"link", b"sub"]);
        assert_eq!(got[0].1, Kind::Other);
        let Kind::File(stat) = got[1].1 else {
            panic!("{:?}", got[1].1)
        };
        assert_eq!((stat.size, stat.mode), (5, 0o640));
        // SAFETY: geteuid has no preconditions.
        assert_eq!(stat.uid, unsafe { libc::geteuid() });
        assert_eq!(got[2].1, Kind::Symlink);
        assert_eq!(got[3].1, Kind::Directory);
    }

    #[test]
    fn a_linked_folder_is_refused_unless_links_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        fs::write(dir.path().join("real").join("x"), b"1").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("real"), &link).unwrap();
        let refused = for_each_entry(&link, Links::Refuse, |_| {}).unwrap_err();
        assert!(refused.to_string().contains("symbolic link"), "{refused}");
        let mut seen = 0;
        for_each_entry(&link, Links::Follow, |_| seen += 1).unwrap();
        assert_eq!(seen, 1);
        let file = dir.path().join("real").join("x");
        assert!(for_each_entry(&file, Links::Follow, |_| {}).is_err());
    }
}
