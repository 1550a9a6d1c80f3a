//! Reading an encrypted SQLite database (an encrypted backup's Manifest.db, or a key database
//! under `--deep`) without ever holding its plaintext whole: a read-only SQLite VFS that decrypts
//! the pages SQLite asks for, when it asks, straight from the encrypted file.
//!
//! Backup files are AES-256-CBC with a zero IV, and in CBC each 16-byte block decrypts with the
//! key and the ciphertext block before it alone. So a read of plaintext bytes `a..b` reads the
//! ciphertext blocks that cover them plus the one before, decrypts those, and copies the range
//! out. Memory is one read's worth of blocks (a page) plus SQLite's own page cache, whatever the
//! size of the file; a 4 GiB Manifest.db costs what a 4 MB one does.
//!
//! The VFS (registered once under the name `ibackup-decrypting`) opens only the files handed to
//! [`EncryptedDb::connect`], and only read-only: it writes, truncates and deletes nothing, says
//! no journal, WAL or temporary file exists and refuses to open one, and marks the database
//! immutable so SQLite takes no locks. No plaintext reaches the disk. The key lives in a
//! [`FileKey`] and the decrypted blocks in a [`Zeroizing`] buffer, both wiped when the
//! connection closes; the pages SQLite caches and the rows it hands out live in SQLite's own
//! memory, as with any database.
//!
//! Opening the file (never a link, FIFO or device: `untrusted_file`) and deciding how long its
//! plaintext is (padded or not) are the callers' business (`unlock`, `deep`).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use rusqlite::{ffi, Connection, OpenFlags};
use zeroize::Zeroizing;

use super::crypto::{self, CryptoError, FileKey, BLOCK_LEN};

/// Encrypted databases larger than this are not opened at all: ten times the largest Manifest.db
/// or key database a phone could plausibly have (a backup of a million files has a Manifest.db
/// of well under 1 GB), so only a damaged or hostile backup reaches it.
pub const MAX_ENCRYPTED_DB_BYTES: u64 = 16 << 30;

/// Bytes of plaintext [`EncryptedDb::head`] gives by default: the 100-byte SQLite header, in
/// whole blocks.
pub const HEAD_LEN: usize = 112;

/// The VFS's registered name.
const VFS_NAME: &CStr = c"ibackup-decrypting";
/// How the names of the files waiting to be opened begin; a number follows.
const NAME_PREFIX: &str = "ibackup-decrypting-";
/// Longest file name the VFS hands SQLite.
const MAX_PATHNAME: c_int = 64;

/// An encrypted database file, open for reading, with the key that decrypts it.
pub struct EncryptedDb {
    file: File,
    key: FileKey,
    encrypted_len: u64,
    /// Bytes of plaintext SQLite sees; the ciphertext length until the caller says otherwise.
    len: u64,
    /// PKCS#7 padding at the end of the plaintext, when the last block is valid padding.
    padding: Option<usize>,
    /// The blocks of the last read, decrypted in place; wiped when dropped.
    scratch: Zeroizing<Vec<u8>>,
}

impl EncryptedDb {
    /// Takes an opened regular file and its key, checks that the file is whole AES blocks and
    /// decrypts its last block to see whether it ends in padding. Nothing else is read.
    pub fn new(file: File, key: FileKey) -> Result<Self, CryptoError> {
        let encrypted_len = file
            .metadata()
            .map_err(|source| CryptoError::Read { offset: 0, source })?
            .len();
        crypto::check_aligned(encrypted_len)?;
        let mut db = EncryptedDb {
            file,
            key,
            encrypted_len,
            len: encrypted_len,
            padding: None,
            scratch: Zeroizing::new(Vec::new()),
        };
        let mut last = Zeroizing::new([0u8; BLOCK_LEN]);
        db.read_plain(encrypted_len - BLOCK_LEN as u64, &mut last[..])?;
        db.padding = crypto::padding_len(&last[..]);
        Ok(db)
    }

    /// Bytes of ciphertext on disk.
    pub fn encrypted_len(&self) -> u64 {
        self.encrypted_len
    }

    /// PKCS#7 padding bytes at the end, or `None` when the last block is not valid padding
    /// (wrong key, damaged data, or a writer that did not pad).
    pub fn padding(&self) -> Option<usize> {
        self.padding
    }

    /// The first `len` bytes of plaintext (fewer when the file is shorter), in wiped memory.
    pub fn head(&mut self, len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let len = len.min(usize::try_from(self.encrypted_len).unwrap_or(usize::MAX));
        let mut head = Zeroizing::new(vec![0u8; len]);
        self.read_plain(0, &mut head)?;
        Ok(head)
    }

    /// Sets how many bytes of plaintext SQLite sees (the padding removed, or not); never more
    /// than the ciphertext holds.
    pub fn set_len(&mut self, len: u64) {
        self.len = len.min(self.encrypted_len);
    }

    /// A read-only connection to the database, decrypting as SQLite reads. The connection owns
    /// the file and the key from here on; they are wiped when it closes.
    pub fn connect(self) -> rusqlite::Result<Connection> {
        register()?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        waiting().push((token, self));
        let opened = Connection::open_with_flags_and_vfs(
            format!("{NAME_PREFIX}{token}"),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            VFS_NAME.to_str().expect("the name is ASCII"),
        );
        // Opened or not, the file is no longer waiting: an open that failed before the VFS took
        // it would otherwise leave it (and its key) here for good.
        waiting().retain(|(t, _)| *t != token);
        let conn = opened?;
        // Sorts and temporary tables stay in memory; the VFS would refuse a file for them anyway.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(conn)
    }

    /// Decrypts plaintext bytes `offset..offset + out.len()` into `out`; the range must lie
    /// within the ciphertext.
    fn read_plain(&mut self, offset: u64, out: &mut [u8]) -> Result<(), CryptoError> {
        if out.is_empty() {
            return Ok(());
        }
        let block = BLOCK_LEN as u64;
        let first = offset / block;
        let end = (offset + out.len() as u64).div_ceil(block);
        // The block before the first one is the IV it decrypts with; the file's first block
        // decrypts with zeros.
        let start = first.saturating_sub(1) * block;
        let span = usize::try_from((end * block) - start).map_err(|_| CryptoError::Read {
            offset,
            source: io::Error::other("a read too large for this computer"),
        })?;
        if self.scratch.capacity() < span {
            // A fresh buffer rather than a grown one: growing would free the old plaintext
            // without wiping it.
            self.scratch = Zeroizing::new(Vec::with_capacity(span));
        }
        self.scratch.clear();
        self.scratch.resize(span, 0);
        read_exact_at(&self.file, &mut self.scratch, start).map_err(|source| {
            CryptoError::Read {
                offset: start,
                source,
            }
        })?;
        let mut iv = [0u8; BLOCK_LEN];
        let blocks = if first == 0 {
            &mut self.scratch[..]
        } else {
            let (previous, rest) = self.scratch.split_at_mut(BLOCK_LEN);
            iv.copy_from_slice(previous);
            rest
        };
        crypto::decrypt_in_place(&self.key, &iv, blocks);
        let within = (offset - first * block) as usize;
        out.copy_from_slice(&blocks[within..within + out.len()]);
        Ok(())
    }

    /// SQLite's read: fills `out` from `offset`, with zeros past the end of the plaintext.
    /// `Ok(false)` when the read ran past the end (a short read, in SQLite's terms).
    fn read_for_sqlite(&mut self, offset: u64, out: &mut [u8]) -> Result<bool, CryptoError> {
        let available = self.len.saturating_sub(offset).min(out.len() as u64) as usize;
        let (inside, past) = out.split_at_mut(available);
        self.read_plain(offset, inside)?;
        past.fill(0);
        Ok(past.is_empty())
    }
}

/// Reads exactly `buf.len()` bytes at `offset`; a file that ends sooner (it shrank after it was
/// opened) is an error.
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended sooner than its length said (it changed while being read)",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Files handed to [`EncryptedDb::connect`] that SQLite has not opened yet, by number.
fn waiting() -> std::sync::MutexGuard<'static, Vec<(u64, EncryptedDb)>> {
    static WAITING: Mutex<Vec<(u64, EncryptedDb)>> = Mutex::new(Vec::new());
    WAITING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers the VFS with SQLite, once per process (not as the default).
fn register() -> rusqlite::Result<()> {
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

/// What SQLite allocates per open file (`szOsFile` bytes): its own header, then ours.
#[repr(C)]
struct OpenFile {
    base: ffi::sqlite3_file,
    db: *mut EncryptedDb,
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

/// The database behind an open file, or None once closed.
///
/// # Safety
/// `file` is one [`x_open`] filled in, and SQLite calls one method of it at a time.
unsafe fn db_of<'a>(file: *mut ffi::sqlite3_file) -> Option<&'a mut EncryptedDb> {
    (*file.cast::<OpenFile>()).db.as_mut()
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // Left null on failure, SQLite then does not call xClose.
    (*file).pMethods = std::ptr::null();
    let writable = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
    if name.is_null() || flags & ffi::SQLITE_OPEN_MAIN_DB == 0 || flags & writable != 0 {
        return ffi::SQLITE_CANTOPEN;
    }
    let token = CStr::from_ptr(name)
        .to_str()
        .ok()
        .and_then(|name| name.strip_prefix(NAME_PREFIX))
        .and_then(|number| number.parse::<u64>().ok());
    let db = token.and_then(|token| {
        let mut waiting = waiting();
        let at = waiting.iter().position(|(t, _)| *t == token)?;
        Some(waiting.swap_remove(at).1)
    });
    let Some(db) = db else {
        return ffi::SQLITE_CANTOPEN;
    };
    file.cast::<OpenFile>().write(OpenFile {
        base: ffi::sqlite3_file {
            pMethods: &IO_METHODS,
        },
        db: Box::into_raw(Box::new(db)),
    });
    if !out_flags.is_null() {
        *out_flags = ffi::SQLITE_OPEN_READONLY;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    let open = file.cast::<OpenFile>();
    if !(*open).db.is_null() {
        drop(Box::from_raw((*open).db));
        (*open).db = std::ptr::null_mut();
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let (Some(db), Ok(amount), Ok(offset)) =
        (db_of(file), usize::try_from(amount), u64::try_from(offset))
    else {
        return ffi::SQLITE_IOERR_READ;
    };
    let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), amount);
    match db.read_for_sqlite(offset, out) {
        Ok(true) => ffi::SQLITE_OK,
        Ok(false) => ffi::SQLITE_IOERR_SHORT_READ,
        Err(_) => ffi::SQLITE_IOERR_READ,
    }
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
    match db_of(file).and_then(|db| i64::try_from(db.len).ok()) {
        Some(len) => {
            *size = len;
            ffi::SQLITE_OK
        }
        None => ffi::SQLITE_IOERR_FSTAT,
    }
}

/// Locks and unlocks: nothing to do, nobody else writes through this VFS.
unsafe extern "C" fn x_lock(_file: *mut ffi::sqlite3_file, _level: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(
    _file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
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
    // Immutable: no locks, no hot-journal check, nothing written.
    ffi::SQLITE_IOCAP_IMMUTABLE
}

unsafe extern "C" fn x_delete(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
    _sync_dir: c_int,
) -> c_int {
    ffi::SQLITE_IOERR_DELETE
}

/// No journal, WAL or other file exists as far as SQLite is told.
unsafe extern "C" fn x_access(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
    _flags: c_int,
    out: *mut c_int,
) -> c_int {
    *out = 0;
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    size: c_int,
    out: *mut c_char,
) -> c_int {
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

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{block_padding::NoPadding, block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};

    type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

    const KEY: [u8; 32] = [0x24; 32];

    fn encrypt(plaintext: &[u8], pad: bool) -> Vec<u8> {
        let mut buf = plaintext.to_vec();
        buf.resize(plaintext.len() + BLOCK_LEN, 0);
        let enc = Aes256CbcEnc::new(&KEY.into(), &[0u8; BLOCK_LEN].into());
        let len = if pad {
            enc.encrypt_padded_mut::<Pkcs7>(&mut buf, plaintext.len())
                .unwrap()
                .len()
        } else {
            enc.encrypt_padded_mut::<NoPadding>(&mut buf, plaintext.len())
                .unwrap()
                .len()
        };
        buf.truncate(len);
        buf
    }

    fn database(rows: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA page_size = 1024; CREATE TABLE t (n INTEGER, s TEXT);")
            .unwrap();
        for n in 0..rows {
            conn.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                rusqlite::params![n as i64, format!("row {n} {}", "x".repeat(n % 300))],
            )
            .unwrap();
        }
        drop(conn);
        std::fs::read(&path).unwrap()
    }

    fn encrypted_file(dir: &tempfile::TempDir, ciphertext: &[u8]) -> EncryptedDb {
        let path = dir.path().join("encrypted");
        std::fs::write(&path, ciphertext).unwrap();
        EncryptedDb::new(File::open(&path).unwrap(), FileKey::from_bytes(&KEY)).unwrap()
    }

    #[test]
    fn any_range_decrypts_to_the_plaintext() {
        let plaintext: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut db = encrypted_file(&dir, &encrypt(&plaintext, true));
        assert_eq!(db.padding(), Some(BLOCK_LEN - 5000 % BLOCK_LEN));
        for (offset, len) in [
            (0, 1),
            (0, 16),
            (1, 31),
            (15, 2),
            (16, 16),
            (4000, 1000),
            (4999, 1),
        ] {
            let mut out = vec![0u8; len];
            db.read_plain(offset as u64, &mut out).unwrap();
            assert_eq!(out, &plaintext[offset..offset + len], "{offset}+{len}");
        }
        assert_eq!(&db.head(HEAD_LEN).unwrap()[..], &plaintext[..HEAD_LEN]);
    }

    #[test]
    fn reads_past_the_end_are_short_and_zero_filled() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = encrypted_file(&dir, &encrypt(&[7u8; 40], true));
        db.set_len(40);
        let mut out = [9u8; 16];
        assert!(!db.read_for_sqlite(32, &mut out).unwrap());
        assert_eq!(&out[..8], &[7u8; 8]);
        assert_eq!(&out[8..], &[0u8; 8]);
        assert!(!db.read_for_sqlite(1000, &mut out).unwrap());
        assert_eq!(out, [0u8; 16]);
    }

    #[test]
    fn damaged_lengths_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        for (bytes, empty) in [(vec![], true), (vec![0u8; 20], false)] {
            let path = dir.path().join("odd");
            std::fs::write(&path, &bytes).unwrap();
            match EncryptedDb::new(File::open(&path).unwrap(), FileKey::from_bytes(&KEY)) {
                Err(CryptoError::Empty) => assert!(empty),
                Err(CryptoError::NotBlockAligned { len: 20 }) => assert!(!empty),
                Err(e) => panic!("unexpected {e}"),
                Ok(_) => panic!("accepted {} bytes", bytes.len()),
            }
        }
    }

    #[test]
    fn sqlite_reads_a_padded_and_an_unpadded_database_through_the_vfs() {
        let plain = database(3000);
        for pad in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut db = encrypted_file(&dir, &encrypt(&plain, pad));
            if let (true, Some(padding)) = (pad, db.padding()) {
                db.set_len(db.encrypted_len() - padding as u64);
            }
            let conn = db.connect().unwrap();
            let (count, sum): (i64, i64) = conn
                .query_row("SELECT count(*), sum(length(s)) FROM t", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!(count, 3000);
            assert!(sum > 3000);
            let check: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
            // Sorting needs temporary space: it stays in memory.
            let last: i64 = conn
                .query_row("SELECT n FROM t ORDER BY s DESC, n LIMIT 1", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(last >= 0);
        }
    }

    #[test]
    fn the_database_cannot_be_written_and_nothing_lands_beside_it() {
        let plain = database(10);
        let dir = tempfile::tempdir().unwrap();
        let db = encrypted_file(&dir, &encrypt(&plain, false));
        let conn = db.connect().unwrap();
        assert!(conn.execute("INSERT INTO t VALUES (1, 'x')", []).is_err());
        assert!(conn.execute_batch("CREATE TABLE u (x)").is_err());
        drop(conn);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["encrypted"]);
    }

    #[test]
    fn a_database_in_wal_mode_is_read_from_its_main_file() {
        // Immutable: SQLite looks for no -wal beside it and reads what the file holds.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (n); INSERT INTO t VALUES (1);",
        )
        .unwrap();
        drop(conn);
        let plain = std::fs::read(&path).unwrap();
        assert_eq!(plain[18], 2, "the header says WAL");
        let db = encrypted_file(&dir, &encrypt(&plain, false));
        let count = db
            .connect()
            .and_then(|conn| conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)));
        assert_eq!(count.unwrap(), 1);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| n == "wal.db" || n == "encrypted"),
            "{names:?}"
        );
    }

    #[test]
    fn a_wrong_key_gives_sqlite_an_error_not_a_crash() {
        let plain = database(10);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encrypted");
        std::fs::write(&path, encrypt(&plain, true)).unwrap();
        let db =
            EncryptedDb::new(File::open(&path).unwrap(), FileKey::from_bytes(&[1; 32])).unwrap();
        let conn = db.connect().unwrap();
        assert!(conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .is_err());
    }

    #[test]
    fn a_file_that_shrinks_after_it_is_opened_is_a_read_error() {
        let plain = database(500);
        let dir = tempfile::tempdir().unwrap();
        let db = encrypted_file(&dir, &encrypt(&plain, false));
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("encrypted"))
            .unwrap()
            .set_len(4096)
            .unwrap();
        let conn = db.connect().unwrap();
        assert!(conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .is_err());
    }

    #[test]
    fn only_files_handed_over_are_opened() {
        register().unwrap();
        let refused = Connection::open_with_flags_and_vfs(
            format!("{NAME_PREFIX}{}", u64::MAX),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
            VFS_NAME.to_str().unwrap(),
        );
        assert!(refused.is_err());
        let dir = tempfile::tempdir().unwrap();
        let writable = Connection::open_with_flags_and_vfs(
            dir.path().join("new.db"),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            VFS_NAME.to_str().unwrap(),
        );
        assert!(writable.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
