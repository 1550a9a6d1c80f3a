//! The C side of the `ibackup-readonly` VFS: its registration and the functions SQLite calls.
//! Each one is a thin, unsafe shim over the safe code of `mod.rs` and the sources; everything
//! that writes, deletes, locks or opens by path is refused or a no-op here, once for every source.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

use super::{read_for_sqlite, take_waiting, Source, VFS_NAME};

/// Longest file name the VFS hands SQLite (ours are the prefix and a number).
const MAX_PATHNAME: c_int = 64;

/// Registers the VFS with SQLite, once per process (not as the default).
pub(super) fn register() -> rusqlite::Result<()> {
    static REGISTERED: OnceLock<c_int> = OnceLock::new();
    let rc = *REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find initialises SQLite if needed and returns the default VFS,
        // which lives as long as the process. The VFS given to sqlite3_vfs_register is leaked,
        // so it outlives every use SQLite makes of it.
        unsafe {
            let base = ffi::sqlite3_vfs_find(std::ptr::null());
            if base.is_null() {
                return ffi::SQLITE_ERROR;
            }
            let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
                iVersion: 2,
                szOsFile: std::mem::size_of::<OpenFile>() as c_int,
                mxPathname: MAX_PATHNAME,
                pNext: std::ptr::null_mut(),
                zName: VFS_NAME.as_ptr(),
                pAppData: base.cast(),
                xOpen: Some(x_open),
                xDelete: Some(x_delete),
                xAccess: Some(x_access),
                xFullPathname: Some(x_full_pathname),
                xDlOpen: Some(x_dl_open),
                xDlError: Some(x_dl_error),
                xDlSym: Some(x_dl_sym),
                xDlClose: Some(x_dl_close),
                xRandomness: Some(x_randomness),
                xSleep: Some(x_sleep),
                xCurrentTime: Some(x_current_time),
                xGetLastError: Some(x_get_last_error),
                xCurrentTimeInt64: Some(x_current_time_int64),
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

/// What SQLite allocates per open file (`szOsFile` bytes): its own header, then the source.
#[repr(C)]
struct OpenFile {
    base: ffi::sqlite3_file,
    source: Option<Box<dyn Source>>,
}

static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
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

/// The VFS SQLite would otherwise use, for clocks, sleep and randomness.
///
/// # Safety
/// `vfs` is the VFS [`register`] made.
unsafe fn base(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    (*vfs).pAppData.cast()
}

/// The source behind an open file, or None once closed.
///
/// # Safety
/// `file` is one [`x_open`] filled in, and SQLite calls one method of it at a time.
unsafe fn source_of<'a>(file: *mut ffi::sqlite3_file) -> Option<&'a mut (dyn Source + 'static)> {
    (*file.cast::<OpenFile>()).source.as_deref_mut()
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
    // Left null on failure, SQLite then does not call xClose.
    (*file).pMethods = std::ptr::null();
    let writable = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
    if name.is_null() || flags & ffi::SQLITE_OPEN_MAIN_DB == 0 || flags & writable != 0 {
        return ffi::SQLITE_CANTOPEN;
    }
    let Some(source) = take_waiting(CStr::from_ptr(name)) else {
        return ffi::SQLITE_CANTOPEN;
    };
    file.cast::<OpenFile>().write(OpenFile {
        base: ffi::sqlite3_file {
            pMethods: &IO_METHODS,
        },
        source: Some(source),
    });
    if !out_flags.is_null() {
        *out_flags = ffi::SQLITE_OPEN_READONLY;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes only files x_open filled in, once; the source is dropped here.
    drop((*file.cast::<OpenFile>()).source.take());
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let (Some(source), Ok(amount), Ok(offset)) = (
        source_of(file),
        usize::try_from(amount),
        u64::try_from(offset),
    ) else {
        return ffi::SQLITE_IOERR_READ;
    };
    // SAFETY: `buf` holds `amount` writable bytes that SQLite may not have initialised. They are
    // zeroed first, so the slice made over them never refers to uninitialised memory (which Rust
    // does not allow), whatever a source does with it. It costs about 3 % of an encrypted
    // manifest's read time, measured; soundness comes first.
    std::ptr::write_bytes(buf.cast::<u8>(), 0, amount);
    let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), amount);
    read_for_sqlite(source, offset, out)
}

unsafe extern "C" fn x_write(
    _file: *mut ffi::sqlite3_file,
    _buf: *const c_void,
    _amount: c_int,
    _offset: ffi::sqlite3_int64,
) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_truncate(_file: *mut ffi::sqlite3_file, _size: ffi::sqlite3_int64) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_sync(_file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    let len = source_of(file).and_then(|source| source.size().ok());
    match len.and_then(|len| i64::try_from(len).ok()) {
        Some(len) => {
            // SAFETY: SQLite passes a valid out pointer.
            *size = len;
            ffi::SQLITE_OK
        }
        None => ffi::SQLITE_IOERR_FSTAT,
    }
}

/// Locks and unlocks: immutable, so none are taken, and none can block or be left behind.
unsafe extern "C" fn x_lock(_file: *mut ffi::sqlite3_file, _level: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(
    _file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes a valid out pointer.
    *out = 0;
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_control(
    _file: *mut ffi::sqlite3_file,
    _op: c_int,
    _arg: *mut c_void,
) -> c_int {
    ffi::SQLITE_NOTFOUND
}

unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    4096
}

unsafe extern "C" fn x_device_characteristics(_file: *mut ffi::sqlite3_file) -> c_int {
    // Immutable: no locks, no hot-journal check, no WAL looked for, nothing written.
    ffi::SQLITE_IOCAP_IMMUTABLE
}

unsafe extern "C" fn x_delete(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
    _sync_dir: c_int,
) -> c_int {
    ffi::SQLITE_IOERR_DELETE
}

/// Nothing exists beside the database: no journal to roll back, no WAL to read.
unsafe extern "C" fn x_access(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
    _flags: c_int,
    out: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes a valid out pointer.
    *out = 0;
    ffi::SQLITE_OK
}

/// Names are used as they are: they are ours, not paths.
unsafe extern "C" fn x_full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    size: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: `name` is NUL-terminated and `out` holds `size` bytes.
    let bytes = CStr::from_ptr(name).to_bytes_with_nul();
    if usize::try_from(size).map_or(true, |size| bytes.len() > size) {
        return ffi::SQLITE_CANTOPEN;
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), out, bytes.len());
    ffi::SQLITE_OK
}

/// Extensions are never loaded through this VFS.
unsafe extern "C" fn x_dl_open(_vfs: *mut ffi::sqlite3_vfs, _name: *const c_char) -> *mut c_void {
    std::ptr::null_mut()
}

unsafe extern "C" fn x_dl_error(_vfs: *mut ffi::sqlite3_vfs, size: c_int, out: *mut c_char) {
    let message = c"loading extensions is not supported here".to_bytes_with_nul();
    if let Ok(size) = usize::try_from(size) {
        if size > 0 {
            // SAFETY: `out` holds `size` bytes; at most that many are written, the last a NUL.
            let n = message.len().min(size);
            std::ptr::copy_nonoverlapping(message.as_ptr().cast::<c_char>(), out, n);
            *out.add(n - 1) = 0;
        }
    }
}

type Symbol = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char);

unsafe extern "C" fn x_dl_sym(
    _vfs: *mut ffi::sqlite3_vfs,
    _handle: *mut c_void,
    _symbol: *const c_char,
) -> Option<Symbol> {
    None
}

unsafe extern "C" fn x_dl_close(_vfs: *mut ffi::sqlite3_vfs, _handle: *mut c_void) {}

// Randomness, sleep and the clock touch no file: they are the default VFS's own, called with
// the default VFS.

unsafe extern "C" fn x_randomness(
    vfs: *mut ffi::sqlite3_vfs,
    size: c_int,
    out: *mut c_char,
) -> c_int {
    let base = base(vfs);
    match (*base).xRandomness {
        Some(f) => f(base, size, out),
        None => 0,
    }
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    let base = base(vfs);
    match (*base).xSleep {
        Some(f) => f(base, micros),
        None => 0,
    }
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    let base = base(vfs);
    match (*base).xCurrentTime {
        Some(f) => f(base, out),
        None => ffi::SQLITE_ERROR,
    }
}

unsafe extern "C" fn x_current_time_int64(
    vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    let base = base(vfs);
    match ((*base).iVersion >= 2, (*base).xCurrentTimeInt64) {
        (true, Some(f)) => f(base, out),
        _ => {
            let mut days = 0f64;
            let rc = x_current_time(vfs, &mut days);
            *out = (days * 86_400_000.0) as ffi::sqlite3_int64;
            rc
        }
    }
}

unsafe extern "C" fn x_get_last_error(
    _vfs: *mut ffi::sqlite3_vfs,
    _size: c_int,
    _out: *mut c_char,
) -> c_int {
    0
}
