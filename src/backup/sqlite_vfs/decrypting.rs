//! The decrypting source: an encrypted SQLite database (an encrypted backup's Manifest.db, or a
//! key database under `--deep`) read without ever holding its plaintext whole, by decrypting the
//! bytes SQLite asks for, when it asks, straight from the encrypted file.
//!
//! Backup files are AES-256-CBC with a zero IV, and in CBC each 16-byte block decrypts with the
//! key and the ciphertext block before it alone. So a read of plaintext bytes `a..b` reads the
//! ciphertext blocks that cover them plus the one before, decrypts those, and copies the range
//! out. Memory is one read's worth of blocks (a page) plus SQLite's own page cache, whatever the
//! size of the file; a 4 GiB Manifest.db costs what a 4 MB one does.
//!
//! SQLite reads it through the read-only VFS of `sqlite_vfs` ([`EncryptedDb::connect`]), which
//! writes nothing anywhere: no plaintext reaches the disk. The key lives in a [`FileKey`] and the
//! decrypted blocks in a [`Zeroizing`] buffer, both wiped when the connection closes; the pages
//! SQLite caches and the rows it hands out live in SQLite's own memory, as with any database.
//! This file is safe Rust only: the block arithmetic here can be tested without SQLite.
//!
//! Opening the file (never a link, FIFO or device: `untrusted_file`) and deciding how long its
//! plaintext is (padded or not) are the callers' business (`unlock`, `deep`).

use std::fs::File;
use std::io;

use rusqlite::Connection;
use zeroize::Zeroizing;

use super::plain::read_up_to;
use super::Source;
use crate::backup::crypto::{self, CryptoError, FileKey, BLOCK_LEN};

/// Encrypted databases larger than this are not opened at all: ten times the largest Manifest.db
/// or key database a phone could plausibly have (a backup of a million files has a Manifest.db
/// of well under 1 GB), so only a damaged or hostile backup reaches it.
pub const MAX_ENCRYPTED_DB_BYTES: u64 = 16 << 30;

/// Bytes of plaintext [`EncryptedDb::head`] gives by default: the 100-byte SQLite header, in
/// whole blocks.
pub const HEAD_LEN: usize = 112;

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
        super::connect(self)
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
}

impl Source for EncryptedDb {
    /// Bytes of plaintext, as [`EncryptedDb::set_len`] left it.
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.len)
    }

    /// Plaintext up to [`EncryptedDb::set_len`]'s end; a file that no longer holds the blocks its
    /// length promised (it shrank after it was opened) is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.read_plain(offset, &mut buf[..available])
            .map_err(io::Error::other)?;
        Ok(available)
    }
}

/// Reads exactly `buf.len()` bytes at `offset`; a file that ends sooner (it shrank after it was
/// opened) is an error.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    if read_up_to(file, buf, offset)? < buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file ended sooner than its length said (it changed while being read)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::read_for_sqlite;
    use super::super::test_support::{database, encrypt, encrypted_db, KEY};
    use super::*;
    use rusqlite::ffi;

    fn encrypted_file(dir: &tempfile::TempDir, ciphertext: &[u8]) -> EncryptedDb {
        encrypted_db(&dir.path().join("encrypted"), ciphertext)
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
        let short = ffi::SQLITE_IOERR_SHORT_READ;
        let mut out = [9u8; 16];
        assert_eq!(read_for_sqlite(&mut db, 32, &mut out), short);
        assert_eq!(&out[..8], &[7u8; 8]);
        assert_eq!(&out[8..], &[0u8; 8]);
        assert_eq!(read_for_sqlite(&mut db, 1000, &mut out), short);
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
    fn a_wrong_key_gives_sqlite_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let plain = std::fs::read(database(dir.path(), "t.db", 10)).unwrap();
        let path = dir.path().join("encrypted");
        std::fs::write(&path, encrypt(&plain, true)).unwrap();
        let db =
            EncryptedDb::new(File::open(&path).unwrap(), FileKey::from_bytes(&[1; 32])).unwrap();
        let conn = db.connect().unwrap();
        assert!(conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .is_err());
    }
}
