//! Backup encryption: AES-256-CBC decryption of Manifest.db and of blobs (issue 4).
//!
//! An encrypted backup encrypts Manifest.db as a whole and every file blob on its own, each with
//! its own 256-bit key, in AES-256-CBC with an all-zero IV and PKCS#7 padding of 1 to 16 bytes.
//! This module only decrypts bytes with a key it is given: getting the keys from a password is
//! [`crate::backup::keybag`]'s job, and finding files is the manifest's. Nothing here touches the
//! disk or keeps plaintext around longer than the caller does: buffers holding plaintext are
//! [`Zeroizing`], so they are wiped when dropped, and the chunk buffer [`check_blob`] keeps on
//! each thread is wiped, as far as plaintext reached, at the end of every blob.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};

use aes::cipher::inout::InOutBuf;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use zeroize::{Zeroize, Zeroizing};

/// Bytes in one AES block: every ciphertext is a whole number of them.
pub const BLOCK_LEN: usize = 16;
/// Bytes in an AES-256 key.
pub const KEY_LEN: usize = 32;
/// The first 16 bytes of every SQLite 3 database file (sqlite.org/fileformat.html, 1.3).
pub const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// How many bytes [`check_blob`] reads and decrypts at a time: large enough that AES-NI's
/// parallel blocks and the read system calls run at full speed, small enough to stay in cache.
const CHUNK_LEN: usize = 256 * 1024;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256Dec>;

/// A 256-bit AES key that decrypts one file of a backup (a blob, or Manifest.db).
///
/// Wiped from memory when dropped; `Debug` never shows it.
#[derive(Clone)]
pub struct FileKey(Zeroizing<[u8; KEY_LEN]>);

impl FileKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        FileKey(Zeroizing::new(*bytes))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

/// Why encrypted bytes could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Zero bytes: even an empty file encrypts to one block of padding.
    #[error("the encrypted data is empty; even an empty file encrypts to one 16-byte block")]
    Empty,
    /// The length is not a multiple of 16, so the file was cut short (or grew).
    #[error(
        "the encrypted data is {len} bytes, not a whole number of 16-byte AES blocks: \
         it was cut short or damaged"
    )]
    NotBlockAligned {
        /// Bytes of ciphertext seen.
        len: u64,
    },
    /// The last block does not end in valid PKCS#7 padding: wrong key, or damaged data.
    #[error("the decrypted data ends in invalid padding: wrong key, or damaged data")]
    BadPadding,
    /// Reading the ciphertext failed.
    #[error("reading the encrypted data failed after {offset} bytes: {source}")]
    Read {
        /// Bytes read successfully before the failure.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// What [`check_blob`] found out about one encrypted blob, without keeping its plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobCheck {
    /// Bytes of ciphertext read (the blob's length on disk).
    pub encrypted_len: u64,
    /// Bytes of plaintext once the padding is removed; `None` when the padding is invalid.
    pub plaintext_len: Option<u64>,
}

impl BlobCheck {
    /// True when the blob ended in valid PKCS#7 padding.
    pub fn padding_valid(&self) -> bool {
        self.plaintext_len.is_some()
    }

    /// True when the padding is valid and the plaintext is exactly `size` bytes, the size the
    /// manifest records for the file.
    pub fn matches_size(&self, size: u64) -> bool {
        self.plaintext_len == Some(size)
    }
}

/// The length on disk of an intact encrypted blob whose plaintext is `size` bytes: PKCS#7 always
/// adds 1 to 16 bytes, so a whole extra block when `size` is already a multiple of 16.
pub fn expected_encrypted_len(size: u64) -> u64 {
    (size - size % BLOCK_LEN as u64).saturating_add(BLOCK_LEN as u64)
}

/// True when `bytes` begin with the SQLite 3 file header, which is how a plain Manifest.db is
/// told from an encrypted one.
pub fn is_sqlite(bytes: &[u8]) -> bool {
    bytes.starts_with(SQLITE_HEADER)
}

/// Decrypts a whole file held in memory (Manifest.db) and removes its padding.
///
/// The plaintext is returned in a buffer that is wiped when dropped.
pub fn decrypt_to_vec(key: &FileKey, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut whole = decrypt_whole(key, ciphertext)?;
    let padding = whole.padding.ok_or(CryptoError::BadPadding)?;
    let plaintext_len = whole.bytes.len() - padding;
    whole.bytes.truncate(plaintext_len);
    Ok(whole.bytes)
}

/// Every decrypted block of a file held in memory, padding included, and the length of that
/// padding when the last block ends in valid PKCS#7 padding.
pub struct Decrypted {
    /// The decrypted blocks, padding not removed; wiped when dropped.
    pub bytes: Zeroizing<Vec<u8>>,
    /// PKCS#7 padding bytes at the end, or `None` when the last block is not valid padding
    /// (wrong key, damaged data, or a writer that did not pad).
    pub padding: Option<usize>,
}

/// Decrypts a whole file held in memory without judging its padding: the caller decides what
/// an unpadded plaintext means (some tools write Manifest.db without PKCS#7 padding).
pub fn decrypt_whole(key: &FileKey, ciphertext: &[u8]) -> Result<Decrypted, CryptoError> {
    check_aligned(ciphertext.len() as u64)?;
    let mut bytes = Zeroizing::new(ciphertext.to_vec());
    let mut decryptor = new_decryptor(key);
    decrypt_blocks(&mut decryptor, &mut bytes);
    let last = bytes.len() - BLOCK_LEN;
    let padding = padding_len(&bytes[last..]);
    Ok(Decrypted { bytes, padding })
}

/// The length a SQLite database says it has: page size times the in-header page count, when
/// that count is valid (its "version-valid-for" number matches the change counter;
/// sqlite.org/fileformat.html, 1.3.2 and 1.3.9). `None` for anything else.
pub fn sqlite_declared_len(bytes: &[u8]) -> Option<u64> {
    if !is_sqlite(bytes) || bytes.len() < 100 {
        return None;
    }
    let be32 = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b))
    };
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        _ => return None,
    };
    let pages = be32(28)?;
    (pages > 0 && be32(24)? == be32(92)?).then(|| page_size * u64::from(pages))
}

/// Decrypts a blob from `reader` in fixed-size chunks (memory use does not grow with the blob)
/// and reports its length and padding; the plaintext is discarded as it goes.
///
/// Invalid padding is reported in the result, not as an error, so that `verify --deep` can call
/// it a damaged file; a length that is not whole blocks is an error, because then no block
/// boundary can be trusted.
pub fn check_blob<R: Read>(reader: R, key: &FileKey) -> Result<BlobCheck, CryptoError> {
    check_blob_with_progress(reader, key, |_| {})
}

/// [`check_blob`], calling `progress` with the number of ciphertext bytes decrypted after each
/// chunk, for a progress bar.
pub fn check_blob_with_progress<R: Read>(
    mut reader: R,
    key: &FileKey,
    mut progress: impl FnMut(u64),
) -> Result<BlobCheck, CryptoError> {
    let mut buf = ChunkBuffer::take();
    let mut decryptor = new_decryptor(key);
    let mut last_block = Zeroizing::new([0u8; BLOCK_LEN]);
    let mut total: u64 = 0;
    loop {
        let filled = fill(&mut reader, &mut buf.bytes, total)?;
        let whole = filled - filled % BLOCK_LEN;
        buf.used = buf.used.max(whole);
        decrypt_blocks(&mut decryptor, &mut buf.bytes[..whole]);
        if whole > 0 {
            last_block.copy_from_slice(&buf.bytes[whole - BLOCK_LEN..whole]);
        }
        total += filled as u64;
        progress(filled as u64);
        // A short fill means end of input: `fill` only stops early at EOF.
        if filled < buf.bytes.len() {
            break;
        }
    }
    check_aligned(total)?;
    let plaintext_len = padding_len(&last_block[..]).map(|pad| total - pad as u64);
    Ok(BlobCheck {
        encrypted_len: total,
        plaintext_len,
    })
}

thread_local! {
    /// Each thread's chunk buffer for [`check_blob`], kept from one blob to the next: allocating
    /// and wiping 256 KiB for every blob cost more than decrypting a small one. It is all zeros
    /// whenever no check is running on the thread.
    static CHUNK: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The thread's chunk buffer, lent to one check. When the check ends, however it ends, the
/// bytes that held plaintext (`..used`) are wiped and the buffer goes back to the thread.
struct ChunkBuffer {
    bytes: Vec<u8>,
    /// How far from the start plaintext was written.
    used: usize,
}

impl ChunkBuffer {
    fn take() -> ChunkBuffer {
        // Empty when this is the thread's first check, or when a check is already running on
        // the thread (a progress callback that checks another blob): then a buffer of its own.
        let mut bytes = CHUNK.with(Cell::take);
        if bytes.len() != CHUNK_LEN {
            bytes = vec![0u8; CHUNK_LEN];
        }
        ChunkBuffer { bytes, used: 0 }
    }
}

impl Drop for ChunkBuffer {
    fn drop(&mut self) {
        self.bytes[..self.used].zeroize();
        let bytes = std::mem::take(&mut self.bytes);
        // While the thread is being torn down there is no slot to return to: it is dropped, and
        // it is zeros already.
        let _ = CHUNK.try_with(|slot| slot.set(bytes));
    }
}

fn new_decryptor(key: &FileKey) -> Aes256CbcDec {
    // Apple encrypts every backup file with an all-zero IV [mvt src/mvt/ios/decrypt.py].
    Aes256CbcDec::new(key.as_bytes().into(), &[0u8; BLOCK_LEN].into())
}

/// A ciphertext of `len` bytes can be decrypted only when it is a whole, non-zero number of
/// blocks.
pub(crate) fn check_aligned(len: u64) -> Result<(), CryptoError> {
    if len == 0 {
        Err(CryptoError::Empty)
    } else if len % BLOCK_LEN as u64 != 0 {
        Err(CryptoError::NotBlockAligned { len })
    } else {
        Ok(())
    }
}

/// Decrypts whole blocks in place, CBC-chained from `iv`: the previous ciphertext block, or
/// zeros at the start of a file. This is what lets a file be decrypted from any block on
/// (`sqlite_vfs::decrypting`). `data.len()` must be a multiple of [`BLOCK_LEN`].
pub(crate) fn decrypt_in_place(key: &FileKey, iv: &[u8; BLOCK_LEN], data: &mut [u8]) {
    let mut decryptor = Aes256CbcDec::new(key.as_bytes().into(), iv.into());
    decrypt_blocks(&mut decryptor, data);
}

/// Decrypts whole blocks in place; `data.len()` must be a multiple of [`BLOCK_LEN`].
fn decrypt_blocks(decryptor: &mut Aes256CbcDec, data: &mut [u8]) {
    let (blocks, rest) = InOutBuf::from(data).into_chunks();
    debug_assert!(rest.is_empty(), "callers pass whole blocks only");
    decryptor.decrypt_blocks_inout_mut(blocks);
}

/// The PKCS#7 padding length of a final plaintext block, or `None` when it is not valid padding.
pub(crate) fn padding_len(block: &[u8]) -> Option<usize> {
    let pad = usize::from(*block.last()?);
    if pad == 0 || pad > BLOCK_LEN || pad > block.len() {
        return None;
    }
    // Checks every padding byte without an early exit, so timing does not reveal where it failed.
    let bad = block[block.len() - pad..]
        .iter()
        .fold(0u8, |acc, &b| acc | (b ^ pad as u8));
    (bad == 0).then_some(pad)
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn fill<R: Read>(reader: &mut R, buf: &mut [u8], offset: u64) -> Result<usize, CryptoError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(CryptoError::Read {
                    offset: offset + filled as u64,
                    source,
                })
            }
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut};

    type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

    fn key() -> FileKey {
        FileKey::from_bytes(&[7u8; KEY_LEN])
    }

    fn encrypt(key: &FileKey, plaintext: &[u8]) -> Vec<u8> {
        let mut buf = plaintext.to_vec();
        buf.resize(plaintext.len() + BLOCK_LEN, 0);
        let len = Aes256CbcEnc::new(key.as_bytes().into(), &[0u8; BLOCK_LEN].into())
            .encrypt_padded_mut::<Pkcs7>(&mut buf, plaintext.len())
            .unwrap()
            .len();
        buf.truncate(len);
        buf
    }

    /// A reader that hands out at most `step` bytes per call, to exercise chunk boundaries.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn expected_len_adds_one_to_sixteen_bytes_of_padding() {
        assert_eq!(expected_encrypted_len(0), 16);
        assert_eq!(expected_encrypted_len(4), 16);
        assert_eq!(expected_encrypted_len(15), 16);
        assert_eq!(expected_encrypted_len(16), 32);
        assert_eq!(expected_encrypted_len(316), 320);
        assert_eq!(expected_encrypted_len(768), 784);
        assert_eq!(expected_encrypted_len(u64::MAX), u64::MAX);
    }

    #[test]
    fn sqlite_header_is_recognised() {
        assert!(is_sqlite(b"SQLite format 3\0\x10\x00"));
        assert!(!is_sqlite(b"SQLite format 3"));
        assert!(!is_sqlite(&[0u8; 100]));
    }

    #[test]
    fn round_trip_at_every_small_length() {
        for len in 0..70 {
            let plaintext: Vec<u8> = (0..len as u8).collect();
            let ciphertext = encrypt(&key(), &plaintext);
            assert_eq!(ciphertext.len() as u64, expected_encrypted_len(len as u64));
            assert_eq!(
                &decrypt_to_vec(&key(), &ciphertext).unwrap()[..],
                &plaintext[..]
            );
            let check = check_blob(&ciphertext[..], &key()).unwrap();
            assert!(check.matches_size(len as u64), "len {len}: {check:?}");
        }
    }

    #[test]
    fn streaming_check_is_independent_of_read_sizes() {
        let plaintext: Vec<u8> = (0..(CHUNK_LEN * 2 + 37)).map(|i| i as u8).collect();
        let ciphertext = encrypt(&key(), &plaintext);
        for step in [1, 7, 16, 4096, CHUNK_LEN - 1, CHUNK_LEN + 5] {
            let reader = Trickle {
                data: &ciphertext,
                step,
            };
            let mut seen = 0;
            let check = check_blob_with_progress(reader, &key(), |n| seen += n).unwrap();
            assert_eq!(check.encrypted_len, ciphertext.len() as u64);
            assert_eq!(check.plaintext_len, Some(plaintext.len() as u64));
            assert_eq!(seen, ciphertext.len() as u64);
        }
    }

    #[test]
    fn blob_of_exactly_one_chunk_is_checked() {
        let plaintext = vec![1u8; CHUNK_LEN - 16];
        let ciphertext = encrypt(&key(), &plaintext);
        assert_eq!(ciphertext.len(), CHUNK_LEN);
        let check = check_blob(&ciphertext[..], &key()).unwrap();
        assert!(check.matches_size(plaintext.len() as u64));
    }

    #[test]
    fn wrong_key_gives_bad_padding_or_garbage() {
        let ciphertext = encrypt(&key(), b"some plaintext that is long enough");
        let other = FileKey::from_bytes(&[8u8; KEY_LEN]);
        match decrypt_to_vec(&other, &ciphertext) {
            Err(CryptoError::BadPadding) => {}
            Ok(plain) => assert_ne!(&plain[..], b"some plaintext that is long enough"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn corrupted_last_block_is_bad_padding() {
        let mut ciphertext = encrypt(&key(), &[0u8; 40]);
        // Flipping a bit in the second-to-last block flips the same bit of the last plaintext
        // block, which is all padding here.
        let n = ciphertext.len();
        ciphertext[n - 17] ^= 0x01;
        assert!(matches!(
            decrypt_to_vec(&key(), &ciphertext),
            Err(CryptoError::BadPadding)
        ));
        let check = check_blob(&ciphertext[..], &key()).unwrap();
        assert!(!check.padding_valid());
        assert!(!check.matches_size(40));
    }

    #[test]
    fn truncated_and_empty_ciphertexts_are_typed_errors() {
        let ciphertext = encrypt(&key(), &[0u8; 40]);
        assert!(matches!(
            decrypt_to_vec(&key(), &ciphertext[..20]),
            Err(CryptoError::NotBlockAligned { len: 20 })
        ));
        assert!(matches!(
            check_blob(&ciphertext[..47], &key()),
            Err(CryptoError::NotBlockAligned { len: 47 })
        ));
        assert!(matches!(
            decrypt_to_vec(&key(), &[]),
            Err(CryptoError::Empty)
        ));
        assert!(matches!(
            check_blob(&[][..], &key()),
            Err(CryptoError::Empty)
        ));
    }

    #[test]
    fn decrypt_whole_keeps_the_padding_and_says_how_long_it_is() {
        let ciphertext = encrypt(&key(), &[9u8; 40]);
        let whole = decrypt_whole(&key(), &ciphertext).unwrap();
        assert_eq!(whole.bytes.len(), 48);
        assert_eq!(whole.padding, Some(8));
        // Whole blocks encrypted with no padding: the last block is plaintext, not padding.
        let unpadded = [0u8; 32];
        let ciphertext = {
            use aes::cipher::block_padding::NoPadding;
            let mut buf = unpadded.to_vec();
            Aes256CbcEnc::new(key().as_bytes().into(), &[0u8; BLOCK_LEN].into())
                .encrypt_padded_mut::<NoPadding>(&mut buf, 32)
                .unwrap();
            buf
        };
        let whole = decrypt_whole(&key(), &ciphertext).unwrap();
        assert_eq!(&whole.bytes[..], &unpadded[..]);
        assert_eq!(whole.padding, None);
    }

    #[test]
    fn sqlite_declared_length_comes_from_its_header() {
        let mut header = vec![0u8; 100];
        header[..16].copy_from_slice(SQLITE_HEADER);
        header[16..18].copy_from_slice(&4096u16.to_be_bytes());
        header[24..28].copy_from_slice(&7u32.to_be_bytes());
        header[28..32].copy_from_slice(&3u32.to_be_bytes());
        header[92..96].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(sqlite_declared_len(&header), Some(3 * 4096));
        header[16..18].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(sqlite_declared_len(&header), Some(3 * 65_536));
        // A stale page count (version-valid-for not the change counter) is not trusted.
        header[92..96].copy_from_slice(&6u32.to_be_bytes());
        assert_eq!(sqlite_declared_len(&header), None);
        header[92..96].copy_from_slice(&7u32.to_be_bytes());
        header[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(sqlite_declared_len(&header), None);
        assert_eq!(sqlite_declared_len(&header[..50]), None);
        assert_eq!(sqlite_declared_len(&[0u8; 100]), None);
    }

    #[test]
    fn padding_rules() {
        let mut block = [0u8; 16];
        assert_eq!(padding_len(&block), None);
        block[15] = 1;
        assert_eq!(padding_len(&block), Some(1));
        block[15] = 17;
        assert_eq!(padding_len(&block), None);
        block = [16u8; 16];
        assert_eq!(padding_len(&block), Some(16));
        block[0] = 15;
        assert_eq!(padding_len(&block), None);
        block[14] = 3;
        block[15] = 2;
        assert_eq!(padding_len(&block), None);
    }

    #[test]
    fn read_errors_say_where() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk gone"));
                }
                let n = self.0.min(buf.len());
                self.0 -= n;
                Ok(n)
            }
        }
        match check_blob(Failing(32), &key()) {
            Err(CryptoError::Read { offset: 32, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The chunk buffer this thread keeps between checks, taken out of its slot to look at.
    fn thread_buffer() -> Vec<u8> {
        let bytes = CHUNK.with(Cell::take);
        assert_eq!(
            bytes.len(),
            CHUNK_LEN,
            "the buffer was kept for the next blob"
        );
        bytes
    }

    #[test]
    fn no_plaintext_is_left_in_the_reused_buffer() {
        // Two whole chunks and a short third: the last fill reaches less far than the first two.
        let plaintext = vec![0xA5u8; CHUNK_LEN * 2 + 37];
        let ciphertext = encrypt(&key(), &plaintext);
        let check = check_blob(&ciphertext[..], &key()).unwrap();
        assert!(check.matches_size(plaintext.len() as u64));
        let left = thread_buffer();
        assert!(left.iter().all(|&b| b == 0), "plaintext left after a check");
        CHUNK.with(|slot| slot.set(left));

        // A read that fails after a whole chunk was decrypted is wiped too.
        struct FailAfter<'a>(&'a [u8]);
        impl Read for FailAfter<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("disk gone"));
                }
                let n = self.0.len().min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let failed = check_blob(FailAfter(&ciphertext[..CHUNK_LEN]), &key());
        assert!(
            matches!(failed, Err(CryptoError::Read { offset, .. }) if offset == CHUNK_LEN as u64)
        );
        assert!(
            thread_buffer().iter().all(|&b| b == 0),
            "plaintext left after a failure"
        );
    }

    #[test]
    fn a_check_started_inside_another_gets_its_own_buffer() {
        let outer_plain = vec![1u8; CHUNK_LEN + 100];
        let inner_plain = vec![2u8; 3000];
        let outer = encrypt(&key(), &outer_plain);
        let inner = encrypt(&key(), &inner_plain);
        let mut inner_checks = Vec::new();
        let check = check_blob_with_progress(&outer[..], &key(), |_| {
            inner_checks.push(check_blob(&inner[..], &key()).unwrap());
        })
        .unwrap();
        assert!(check.matches_size(outer_plain.len() as u64));
        assert_eq!(inner_checks.len(), 2, "one progress call per chunk");
        assert!(inner_checks
            .iter()
            .all(|c| c.matches_size(inner_plain.len() as u64)));
        assert!(thread_buffer().iter().all(|&b| b == 0));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let text = format!("{:?}", FileKey::from_bytes(&[0xAB; KEY_LEN]));
        assert!(!text.to_lowercase().contains("ab"), "{text}");
    }
}
