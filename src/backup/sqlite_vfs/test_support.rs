//! Databases, and every kind of source over them, for the tests of the VFS and its sources.

use std::fs::File;
use std::path::{Path, PathBuf};

use aes::cipher::{block_padding::NoPadding, block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use rusqlite::Connection;

use super::decrypting::EncryptedDb;
use super::{PlainFile, Source};
use crate::backup::crypto::{FileKey, BLOCK_LEN};
use crate::untrusted_file::{open_regular, Links};

/// The key the tests encrypt with.
pub const KEY: [u8; 32] = [0x24; 32];

/// A database of `rows` rows of varied length, written by SQLite itself as `dir/name`.
pub fn database(dir: &Path, name: &str, rows: usize) -> PathBuf {
    let path = dir.join(name);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA page_size = 1024; CREATE TABLE t (n INTEGER, s TEXT); BEGIN;")
        .unwrap();
    for n in 0..rows {
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            rusqlite::params![n as i64, format!("row {n} {}", "x".repeat(n % 300))],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    path
}

/// `plaintext` as a backup encrypts a file: AES-256-CBC under [`KEY`], zero IV, with PKCS#7
/// padding or (as some tools write a Manifest.db) without.
pub fn encrypt(plaintext: &[u8], pad: bool) -> Vec<u8> {
    let mut buf = plaintext.to_vec();
    buf.resize(plaintext.len() + BLOCK_LEN, 0);
    let enc = cbc::Encryptor::<aes::Aes256>::new(&KEY.into(), &[0u8; BLOCK_LEN].into());
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

/// `ciphertext` written to `path` and opened with [`KEY`].
pub fn encrypted_db(path: &Path, ciphertext: &[u8]) -> EncryptedDb {
    std::fs::write(path, ciphertext).unwrap();
    EncryptedDb::new(File::open(path).unwrap(), FileKey::from_bytes(&KEY)).unwrap()
}

/// One source of each kind over the database at `plain`, each with the file it reads: the file
/// itself, and copies beside it encrypted with padding (removed, as `unlock` does) and without.
pub fn every_source(plain: &Path) -> Vec<(PathBuf, Box<dyn Source>)> {
    let bytes = std::fs::read(plain).unwrap();
    let checked = PlainFile::new(open_regular(plain, Links::Refuse).unwrap()).unwrap();
    let mut sources: Vec<(PathBuf, Box<dyn Source>)> =
        vec![(plain.to_path_buf(), Box::new(checked))];
    for pad in [true, false] {
        let path = plain.with_extension(if pad { "padded" } else { "unpadded" });
        let mut db = encrypted_db(&path, &encrypt(&bytes, pad));
        if pad {
            db.set_len(db.encrypted_len() - db.padding().unwrap() as u64);
        }
        sources.push((path, Box::new(db)));
    }
    sources
}
