//! SQLite reading a database through a file handle ibackup has already opened and checked,
//! instead of opening the path again itself (Unix only).
//!
//! SQLite opens databases by name. Checking a path and then giving SQLite the same path leaves
//! a window in which the file can be swapped for a FIFO (SQLite's own open would then block for
//! ever) or a link to something outside the backup; handing it `/proc/self/fd/N` does not help,
//! since SQLite resolves every link in a name before it opens it. So this module registers a
//! small read-only VFS, `ibackup-handle`, whose only file is "the handle numbered N": SQLite
//! reads the very file that [`crate::untrusted_file::open_regular`] opened and checked.
//!
//! The VFS opens nothing by name: no journal, no WAL, no temporary file (a statement that would
//! need one fails), and it writes nothing. Reads past the end are short reads, as SQLite
//! expects, so a file cut short while it is read is "damaged", never a crash.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name the VFS is registered under.
pub const NAME: &str = "ibackup-handle";
const NAME_C: &CStr = c"ibackup-handle";
/// Every database name this VFS opens starts with this, then the descriptor number.
const PREFIX: &str = "/ibackup-handle/";

/// One open database: SQLite's header, then our own duplicate of the caller's descriptor.
#[repr(C)]
struct HandleFile {
    base: ffi::sqlite3_file,
    fd: c_int,
}

/// The `file:` URI that opens `file` through this VFS, read-only and immutable (no locks, no
/// journal or WAL looked for). Pass it with [`NAME`] and `SQLITE_OPEN_URI`; `file` must stay
/// open until the connection is made (the VFS keeps its own duplicate after that).
pub fn uri(file: &File) -> String {
    format!("file:{PREFIX}{}?mode=ro&immutable=1", file.as_raw_fd())
}

/// Registers the VFS once per process (SQLite keeps it for the life of the process).
pub fn register() -> Result<(), rusqlite::Error> {
    static REGISTERED: OnceLock<c_int> = OnceLock::new();
    let rc = *REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS (initialising SQLite if need
        // be), which lives as long as the process. The struct handed to sqlite3_vfs_register is
        // leaked on purpose: SQLite keeps a pointer to it for ever.
        unsafe {
            let default = ffi::sqlite3_vfs_find(std::ptr::null());
            if default.is_null() {
                return ffi::SQLITE_ERROR;
            }
            let d = &*default;
            let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
                iVersion: 2,
                szOsFile: std::mem::size_of::<HandleFile>() as c_int,
                mxPathname: 64,
                pNext: std::ptr::null_mut(),
                zName: NAME_C.as_ptr(),
                pAppData: std::ptr::null_mut(),
                xOpen: Some(x_open),
                xDelete: Some(x_delete),
                xAccess: Some(x_access),
                xFullPathname: Some(x_full_pathname),
                // The rest touches no file: the default VFS's own functions, which do not look
                // at the VFS pointer they are given (clock, randomness, sleep, errno, dlopen).
                xDlOpen: d.xDlOpen,
                xDlError: d.xDlError,
                xDlSym: d.xDlSym,
                xDlClose: d.xDlClose,
                xRandomness: d.xRandomness,
                xSleep: d.xSleep,
                xCurrentTime: d.xCurrentTime,
                xGetLastError: d.xGetLastError,
                xCurrentTimeInt64: d.xCurrentTimeInt64,
                xSetSystemCall: None,
                xGetSystemCall: None,
                xNextSystemCall: None,
            }));
            ffi::sqlite3_vfs_register(vfs, 0)
        }
    });
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_lock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// The descriptor a name made by [`uri`] stands for.
fn descriptor_in(name: &CStr) -> Option<c_int> {
    let digits = name.to_str().ok()?.strip_prefix(PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY (whole function): SQLite hands a buffer of szOsFile bytes for `file`, a
    // NUL-terminated name (or NULL for a temporary file) and an optional out pointer.
    let file = file.cast::<HandleFile>();
    (*file).base.pMethods = std::ptr::null();
    let wanted = ffi::SQLITE_OPEN_MAIN_DB | ffi::SQLITE_OPEN_READONLY;
    if name.is_null() || flags & wanted != wanted || flags & ffi::SQLITE_OPEN_READWRITE != 0 {
        return ffi::SQLITE_CANTOPEN;
    }
    let Some(fd) = descriptor_in(CStr::from_ptr(name)) else {
        return ffi::SQLITE_CANTOPEN;
    };
    let own = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
    if own < 0 {
        return ffi::SQLITE_CANTOPEN;
    }
    // The caller checked the handle; checked again here, on the descriptor SQLite will read.
    let mut stat: libc::stat = std::mem::zeroed();
    if libc::fstat(own, &mut stat) != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        libc::close(own);
        return ffi::SQLITE_CANTOPEN;
    }
    (*file).fd = own;
    (*file).base.pMethods = &METHODS;
    if !out_flags.is_null() {
        *out_flags = flags;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_delete(_: *mut ffi::sqlite3_vfs, _: *const c_char, _: c_int) -> c_int {
    ffi::SQLITE_IOERR_DELETE
}

/// Nothing exists beside the database: no journal to roll back, no WAL to read.
unsafe extern "C" fn x_access(
    _: *mut ffi::sqlite3_vfs,
    _: *const c_char,
    _: c_int,
    out: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes a valid out pointer.
    *out = 0;
    ffi::SQLITE_OK
}

/// Names are used as they are: they are ours, not paths.
unsafe extern "C" fn x_full_pathname(
    _: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    out_len: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: `name` is NUL-terminated and `out` holds `out_len` bytes.
    let bytes = CStr::from_ptr(name).to_bytes_with_nul();
    if bytes.len() > out_len.max(0) as usize {
        return ffi::SQLITE_CANTOPEN;
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), out, bytes.len());
    ffi::SQLITE_OK
}

unsafe fn fd_of(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: every file with our methods is a HandleFile.
    (*file.cast::<HandleFile>()).fd
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    libc::close(fd_of(file));
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let (fd, want) = (fd_of(file), amount.max(0) as usize);
    let buf = buf.cast::<u8>();
    let mut got = 0usize;
    while got < want {
        // SAFETY: `buf` holds `amount` bytes; the read stays within them.
        let n = libc::pread(
            fd,
            buf.add(got).cast(),
            want - got,
            (offset + got as i64) as libc::off_t,
        );
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return ffi::SQLITE_IOERR_READ,
        }
    }
    if got < want {
        // SQLite wants the rest zeroed on a short read.
        std::ptr::write_bytes(buf.add(got), 0, want - got);
        return ffi::SQLITE_IOERR_SHORT_READ;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_write(
    _: *mut ffi::sqlite3_file,
    _: *const c_void,
    _: c_int,
    _: ffi::sqlite3_int64,
) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_truncate(_: *mut ffi::sqlite3_file, _: ffi::sqlite3_int64) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_sync(_: *mut ffi::sqlite3_file, _: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    let mut stat: libc::stat = std::mem::zeroed();
    if libc::fstat(fd_of(file), &mut stat) != 0 {
        return ffi::SQLITE_IOERR_FSTAT;
    }
    // SAFETY: SQLite passes a valid out pointer.
    *size = stat.st_size as ffi::sqlite3_int64;
    ffi::SQLITE_OK
}

/// Immutable: no locks are taken, so none can block or be left behind.
unsafe extern "C" fn x_lock(_: *mut ffi::sqlite3_file, _: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(_: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: SQLite passes a valid out pointer.
    *out = 0;
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_control(_: *mut ffi::sqlite3_file, _: c_int, _: *mut c_void) -> c_int {
    ffi::SQLITE_NOTFOUND
}

unsafe extern "C" fn x_sector_size(_: *mut ffi::sqlite3_file) -> c_int {
    4096
}

unsafe extern "C" fn x_device_characteristics(_: *mut ffi::sqlite3_file) -> c_int {
    ffi::SQLITE_IOCAP_IMMUTABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_made_here_stand_for_a_descriptor() {
        assert_eq!(descriptor_in(c"/ibackup-handle/7"), Some(7));
        assert_eq!(descriptor_in(c"/ibackup-handle/"), None);
        assert_eq!(descriptor_in(c"/ibackup-handle/7/x"), None);
        assert_eq!(descriptor_in(c"/ibackup-handle/-1"), None);
        assert_eq!(descriptor_in(c"/tmp/Manifest.db"), None);
    }
}
