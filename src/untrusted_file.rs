//! Opening and reading files that someone else may have laid out: backup plists, manifests,
//! blobs, pair records, password files. Every open here is made so that it cannot block or be
//! redirected, and every read is capped:
//!
//! - the open never blocks: on Unix it is made with `O_NONBLOCK` (a FIFO with no writer, or a
//!   device, answers at once instead of waiting for ever), then the type is checked on the open
//!   handle with `fstat`, so a file swapped for a FIFO or a device between a directory scan and
//!   the open is still caught;
//! - inside a backup, links are never followed: [`Links::Refuse`] opens with `O_NOFOLLOW`, so a
//!   Manifest.plist or blob that is a symlink (to /dev/zero, or to a file outside the backup) is
//!   refused rather than read. Only a path the user typed is followed ([`Links::Follow`]);
//! - reads stop one byte past the caller's cap, so /dev/zero-like growth is an error, not a
//!   memory blow-up.
//!
//! It knows nothing about backups or phones: callers turn its [`std::io::Error`]s into their own
//! messages. Errors of its own carry plain words ("it is a FIFO, not a regular file").

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Whether a symlink as the last component of the path may be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it: for paths the user named (a password file, a pair-record folder they chose).
    Follow,
    /// Refuse it: for everything found inside a backup or a daemon's folder.
    Refuse,
}

/// Opens `path` for reading as a regular file without ever blocking, and checks on the open
/// handle that it is one. Folders, FIFOs, sockets, devices and (with [`Links::Refuse`]) symlinks
/// are errors of kind [`io::ErrorKind::InvalidInput`] with a sentence saying what the path is.
pub fn open_regular(path: &Path, links: Links) -> io::Result<File> {
    let file = open_nonblocking(path, links)?;
    check_regular(&file)?;
    Ok(file)
}

/// Checks on an open handle that it is a regular file; anything else is an error of kind
/// [`io::ErrorKind::InvalidInput`] saying what it is, as [`open_regular`] gives.
pub fn check_regular(file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    Ok(())
}

/// Reads a whole regular file of at most `max` bytes (see [`open_regular`]). A file longer than
/// `max`, or one that grows past it while being read, is an error of kind
/// [`io::ErrorKind::InvalidData`] saying so.
pub fn read_capped(path: &Path, max: u64, links: Links) -> io::Result<Vec<u8>> {
    let file = open_regular(path, links)?;
    read_handle_capped(file, max)
}

/// Reads at most `max` bytes from an already opened regular file; more is an error.
pub fn read_handle_capped(file: File, max: u64) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    if len > max {
        return Err(too_large(len, max));
    }
    // The length is only a hint (the file may change under us): the read itself is capped.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it grew past its limit of {max} bytes while being read"),
        ));
    }
    Ok(bytes)
}

/// The error for a link met where links are refused ([`Links::Refuse`]): of kind
/// [`io::ErrorKind::InvalidInput`], like every "not a regular file" error here.
pub fn refused_link() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "it is a symbolic link, which ibackup does not follow inside a backup",
    )
}

/// Whether an error from this module means "this path is not a regular file we may read"
/// (rather than missing, unreadable or too large).
pub fn is_not_regular(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidInput
}

fn too_large(len: u64, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("it is {len} bytes, more than the {max} bytes allowed for it"),
    )
}

fn not_regular(meta: &std::fs::Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {}, not a regular file", describe_type(meta)),
    )
}

/// What kind of thing a non-regular file is, in plain words.
pub fn describe_type(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a folder";
    }
    if kind.is_symlink() {
        return "a symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    "a special file"
}

#[cfg(unix)]
fn open_nonblocking(path: &Path, links: Links) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(file) => Ok(file),
        // O_NOFOLLOW on a symlink fails with ELOOP (EMLINK on some BSDs): say what it is.
        Err(e)
            if links == Links::Refuse
                && matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EMLINK))
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            Err(refused_link())
        }
        Err(e) => Err(e),
    }
}

#[cfg(windows)]
fn open_nonblocking(path: &Path, links: Links) -> io::Result<File> {
    // Windows opens do not block on pipes the way a Unix FIFO does. A reparse point (symlink or
    // junction) is opened as itself when links are refused, and then fails the regular-file
    // check on the handle.
    use std::os::windows::fs::OpenOptionsExt;
    const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if links == Links::Refuse {
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(refused_link());
        }
    }
    options.open(path)
}

/// Makes a FIFO at `path`, for the unit tests of every module that must not block on one.
#[cfg(all(test, unix))]
pub(crate) fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `name` is a valid NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(read_capped(&path, 5, Links::Refuse).unwrap(), b"hello");
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello!").unwrap();
        let e = read_capped(&path, 5, Links::Refuse).unwrap_err();
        assert!(e.to_string().contains("6 bytes"), "{e}");
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        mkfifo(&path);
        let start = std::time::Instant::now();
        let e = read_capped(&path, 5, Links::Follow).unwrap_err();
        assert!(is_not_regular(&e));
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn dev_zero_is_refused_through_a_link_and_directly() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let refused = read_capped(&link, 5, Links::Refuse).unwrap_err();
        assert!(refused.to_string().contains("symbolic link"), "{refused}");
        let followed = read_capped(&link, 5, Links::Follow).unwrap_err();
        assert!(followed.to_string().contains("device"), "{followed}");
    }

    #[test]
    fn a_link_to_a_regular_file_is_followed_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_capped(&link, 5, Links::Follow).unwrap(), b"x");
        assert!(is_not_regular(
            &read_capped(&link, 5, Links::Refuse).unwrap_err()
        ));
    }

    #[test]
    fn a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_capped(dir.path(), 5, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("folder"), "{e}");
    }
}
