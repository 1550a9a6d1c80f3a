//! DIR, the one folder `extract` writes into, and the folders and files made inside it. On Unix
//! every step is taken relative to an open folder handle (`openat`, `mkdirat`, `renameat`) with
//! `O_NOFOLLOW`, so a link planted in DIR, before or during the run, is refused and never
//! followed: a folder is walked only when it is a real folder, a file is created only where
//! nothing is (`O_EXCL`), and `--overwrite` writes a temporary file beside the old one and
//! renames it over it (a rename replaces a link, never what it points to). Elsewhere the same
//! rules are kept with `symlink_metadata` checks. Folders are made 0700 and files 0600: what is
//! extracted is personal data.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a folder or a file could not be made where it must go.
#[derive(Debug)]
pub enum Refusal {
    /// A link, or something that is not a folder, is where a folder must be.
    NotAFolder(String),
    /// Something is already at the file's name (without `--overwrite`).
    Exists,
    /// A link is at the file's name.
    Link,
    /// A folder is at the file's name.
    Folder,
    Io(io::Error),
}

impl Refusal {
    pub fn reason(&self) -> String {
        match self {
            Refusal::NotAFolder(at) => {
                format!("a link or a file is at {at} in the destination, where a folder must be")
            }
            Refusal::Exists => "a file is already there (use --overwrite to replace it)".into(),
            Refusal::Link => "a link is already there (never followed nor replaced)".into(),
            Refusal::Folder => "a folder is already there".into(),
            Refusal::Io(e) => format!("it could not be written: {e}"),
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name() -> String {
    format!(
        ".ibackup-extract-{}-{}.part",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new file under a temporary name beside `name` in `folder` (made by `create`, which must
/// refuse a name already taken), to take `name` in [`NewFile::finish`].
fn beside<'f>(
    folder: &'f Folder,
    name: &str,
    create: impl Fn(&str) -> io::Result<File>,
) -> Result<NewFile<'f>, Refusal> {
    loop {
        let temp = temp_name();
        match create(&temp) {
            Ok(file) => {
                return Ok(NewFile {
                    file,
                    folder,
                    rename: Some((temp, name.to_string())),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Refusal::Io(e)),
        }
    }
}

/// A file being written: under its own name, or under a temporary one that takes the real name
/// in [`NewFile::finish`].
pub struct NewFile<'f> {
    pub file: File,
    folder: &'f Folder,
    rename: Option<(String, String)>,
}

impl NewFile<'_> {
    /// Gives the file its real name (when it was written under a temporary one).
    pub fn finish(self) -> io::Result<()> {
        drop(self.file);
        match &self.rename {
            Some((temp, name)) => self.folder.rename(temp, name),
            None => Ok(()),
        }
    }

    /// Removes what was written, when the file is not to stay.
    pub fn abandon(self, name: &str) {
        drop(self.file);
        let remove = self.rename.as_ref().map_or(name, |(temp, _)| temp.as_str());
        let _ = self.folder.remove(remove);
    }
}

#[cfg(unix)]
mod imp {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    /// DIR, opened.
    pub struct Root {
        fd: OwnedFd,
    }

    /// A folder inside DIR, opened.
    pub struct Folder {
        fd: OwnedFd,
    }

    fn c_name(name: &str) -> io::Result<CString> {
        CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
    }

    const DIR_FLAGS: libc::c_int =
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

    fn open_dir_at(parent: libc::c_int, name: &CString) -> io::Result<OwnedFd> {
        // SAFETY: a valid descriptor and a NUL-terminated name; the result is checked.
        let fd = unsafe { libc::openat(parent, name.as_ptr(), DIR_FLAGS) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn is_not_a_folder(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EMLINK)
        )
    }

    impl Root {
        /// Opens DIR (the path the user gave: links in it are theirs to choose).
        pub fn open(path: &Path) -> io::Result<Root> {
            let name = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
            // SAFETY: as in open_dir_at.
            let fd = unsafe {
                libc::open(
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: as in open_dir_at.
            Ok(Root {
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
            })
        }

        /// Walks to the folder `rel` (components joined by `/`, already checked), making the
        /// folders that are not there; a link or a non-folder on the way is refused.
        pub fn folder(&self, rel: &str) -> Result<Folder, Refusal> {
            // SAFETY: duplicating a descriptor this Root owns.
            let dup = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
            if dup < 0 {
                return Err(Refusal::Io(io::Error::last_os_error()));
            }
            // SAFETY: just duplicated, owned here.
            let mut current = unsafe { OwnedFd::from_raw_fd(dup) };
            let mut walked = String::new();
            for component in rel.split('/').filter(|c| !c.is_empty()) {
                if !walked.is_empty() {
                    walked.push('/');
                }
                walked.push_str(component);
                let name = c_name(component).map_err(Refusal::Io)?;
                let next = match open_dir_at(current.as_raw_fd(), &name) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // SAFETY: as in open_dir_at.
                        let made =
                            unsafe { libc::mkdirat(current.as_raw_fd(), name.as_ptr(), 0o700) };
                        if made != 0 {
                            let e = io::Error::last_os_error();
                            if e.kind() != io::ErrorKind::AlreadyExists {
                                return Err(Refusal::Io(e));
                            }
                        }
                        open_dir_at(current.as_raw_fd(), &name).map_err(|e| {
                            if is_not_a_folder(&e) {
                                Refusal::NotAFolder(walked.clone())
                            } else {
                                Refusal::Io(e)
                            }
                        })?
                    }
                    Err(e) if is_not_a_folder(&e) => return Err(Refusal::NotAFolder(walked)),
                    Err(e) => return Err(Refusal::Io(e)),
                };
                current = next;
            }
            Ok(Folder { fd: current })
        }

        /// What is at `rel` inside DIR, links not followed on the way nor at the end: `None`
        /// when nothing is (or a folder on the way is missing).
        pub fn probe(&self, rel: &str) -> Option<Probe> {
            let name = c_name(rel).ok()?;
            Some(match type_at(&self.fd, &name).ok()? {
                libc::S_IFDIR => Probe::Folder,
                libc::S_IFLNK => Probe::Link,
                _ => Probe::Other,
            })
        }
    }

    /// The file type bits of what is at `name` in the folder `dir`, a link not followed.
    fn type_at(dir: &OwnedFd, name: &CString) -> io::Result<libc::mode_t> {
        // SAFETY: a zeroed stat buffer, filled by fstatat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor, a NUL-terminated name and a buffer of the right type.
        let r = unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st.st_mode & libc::S_IFMT)
    }

    impl Folder {
        fn stat(&self, name: &CString) -> io::Result<libc::mode_t> {
            type_at(&self.fd, name)
        }

        fn create_exclusive(&self, name: &CString) -> io::Result<File> {
            let flags =
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: as in open_dir_at; mode passed as the variadic argument.
            let fd = unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    name.as_ptr(),
                    flags,
                    0o600 as libc::c_uint,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: just opened, owned here.
            Ok(unsafe { File::from_raw_fd(fd) })
        }

        /// Creates the file `name` here: only where nothing is, or with `overwrite`, under a
        /// temporary name that replaces a file already there when finished.
        pub fn create(&self, name: &str, overwrite: bool) -> Result<NewFile<'_>, Refusal> {
            let c = c_name(name).map_err(Refusal::Io)?;
            let existing = match self.stat(&c) {
                Ok(mode) => Some(mode),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(Refusal::Io(e)),
            };
            match existing {
                Some(libc::S_IFLNK) => return Err(Refusal::Link),
                Some(libc::S_IFDIR) => return Err(Refusal::Folder),
                Some(_) if !overwrite => return Err(Refusal::Exists),
                None => match self.create_exclusive(&c) {
                    Ok(file) => {
                        return Ok(NewFile {
                            file,
                            folder: self,
                            rename: None,
                        })
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && overwrite => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(Refusal::Exists)
                    }
                    Err(e) if is_not_a_folder(&e) => return Err(Refusal::Link),
                    Err(e) => return Err(Refusal::Io(e)),
                },
                Some(_) => {}
            }
            beside(self, name, |temp| self.create_exclusive(&c_name(temp)?))
        }

        pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            let (from, to) = (c_name(from)?, c_name(to)?);
            // A link put at `to` since the check is replaced, not followed; a folder fails.
            if let Ok(libc::S_IFLNK) = self.stat(&to) {
                let _ = self.remove_c(&from);
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a link appeared at its name",
                ));
            }
            let fd = self.fd.as_raw_fd();
            // SAFETY: valid descriptors and names.
            let r = unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) };
            if r != 0 {
                let e = io::Error::last_os_error();
                let _ = self.remove_c(&from);
                return Err(e);
            }
            Ok(())
        }

        fn remove_c(&self, name: &CString) -> io::Result<()> {
            // SAFETY: valid descriptor and name.
            let r = unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        pub(super) fn remove(&self, name: &str) -> io::Result<()> {
            self.remove_c(&c_name(name)?)
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::*;
    use std::fs;

    /// DIR.
    pub struct Root {
        path: PathBuf,
    }

    /// A folder inside DIR.
    pub struct Folder {
        path: PathBuf,
    }

    impl Root {
        pub fn open(path: &Path) -> io::Result<Root> {
            if !fs::metadata(path)?.is_dir() {
                return Err(io::Error::new(io::ErrorKind::Other, "not a folder"));
            }
            Ok(Root {
                path: path.to_path_buf(),
            })
        }

        pub fn folder(&self, rel: &str) -> Result<Folder, Refusal> {
            let mut path = self.path.clone();
            let mut walked = String::new();
            for component in rel.split('/').filter(|c| !c.is_empty()) {
                if !walked.is_empty() {
                    walked.push('/');
                }
                walked.push_str(component);
                path.push(component);
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
                    Ok(_) => return Err(Refusal::NotAFolder(walked)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            let m = fs::symlink_metadata(&path).map_err(Refusal::Io)?;
                            if !m.is_dir() || m.file_type().is_symlink() {
                                return Err(Refusal::NotAFolder(walked));
                            }
                        }
                        Err(e) => return Err(Refusal::Io(e)),
                    },
                    Err(e) => return Err(Refusal::Io(e)),
                }
            }
            Ok(Folder { path })
        }

        pub fn probe(&self, rel: &str) -> Option<Probe> {
            let m = fs::symlink_metadata(self.path.join(rel)).ok()?;
            Some(if m.file_type().is_symlink() {
                Probe::Link
            } else if m.is_dir() {
                Probe::Folder
            } else {
                Probe::Other
            })
        }
    }

    impl Folder {
        pub fn create(&self, name: &str, overwrite: bool) -> Result<NewFile<'_>, Refusal> {
            let target = self.path.join(name);
            let exists = match fs::symlink_metadata(&target) {
                Ok(m) if m.file_type().is_symlink() => return Err(Refusal::Link),
                Ok(m) if m.is_dir() => return Err(Refusal::Folder),
                Ok(_) if !overwrite => return Err(Refusal::Exists),
                Ok(_) => true,
                Err(_) => false,
            };
            let create = |path: &Path| {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
            };
            if !exists {
                match create(&target) {
                    Ok(file) => {
                        return Ok(NewFile {
                            file,
                            folder: self,
                            rename: None,
                        })
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && overwrite => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(Refusal::Exists)
                    }
                    Err(e) => return Err(Refusal::Io(e)),
                }
            }
            beside(self, name, |temp| create(&self.path.join(temp)))
        }

        pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            let target = self.path.join(to);
            if let Ok(m) = fs::symlink_metadata(&target) {
                if m.file_type().is_symlink() || m.is_dir() {
                    let _ = fs::remove_file(self.path.join(from));
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a link or a folder appeared at its name",
                    ));
                }
            }
            fs::rename(self.path.join(from), target)
        }

        pub(super) fn remove(&self, name: &str) -> io::Result<()> {
            fs::remove_file(self.path.join(name))
        }
    }
}

pub use imp::{Folder, Root};

/// What [`Root::probe`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Folder,
    Link,
    Other,
}

/// DIR made when missing (its parents too: the user named it), then opened.
pub fn make_root(path: &Path) -> io::Result<Root> {
    match std::fs::create_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Root::open(path)
}

/// `path` made absolute and free of links as far as it exists, the rest appended: where DIR
/// will be, before it is made.
pub fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}
