//! Opening an encrypted backup with its password: the keybag from Manifest.plist is unlocked,
//! the ManifestKey unwrapped, and Manifest.db opened through the decrypting VFS, which decrypts
//! only the pages SQLite reads (memory stays bounded whatever its size). Nothing decrypted is
//! written anywhere. The per-file keys are unwrapped later, by `verify --deep`, from the
//! [`ClassKeys`] returned here.

use std::path::Path;

use super::crypto;
use super::error::BackupError;
use super::keybag::{ClassKeys, Keybag, KeybagError, Password};
use super::manifest::Manifest;
use super::plists::ManifestPlist;
use super::sqlite_vfs::decrypting::{EncryptedDb, HEAD_LEN, MAX_ENCRYPTED_DB_BYTES};
use crate::untrusted_file::{self, Links};

/// Unlocks the keybag in Manifest.plist with `password` (iOS 5-9 backups, whose manifest is
/// not encrypted, need nothing more).
pub fn unlock_keybag(
    backup: &Path,
    plist: &ManifestPlist,
    password: &Password,
) -> Result<ClassKeys, BackupError> {
    let plist_path = backup.join("Manifest.plist");
    let locked = |reason: String| BackupError::Locked {
        path: plist_path.clone(),
        reason,
    };
    let keybag_bytes = plist.backup_keybag.as_deref().ok_or_else(|| {
        locked("Manifest.plist says the backup is encrypted but holds no BackupKeyBag".into())
    })?;
    let keybag = Keybag::parse(keybag_bytes).map_err(|e| locked(e.to_string()))?;
    keybag.unlock(password).map_err(|e| match e {
        KeybagError::WrongPassword => BackupError::WrongPassword {
            path: plist_path.clone(),
        },
        other => locked(other.to_string()),
    })
}

/// An encrypted Manifest.db, decrypted and open, with what unlocked it.
pub struct Opened {
    pub manifest: Manifest,
    pub keys: ClassKeys,
    /// The ciphertext had no PKCS#7 padding (as some tools write it), though its plaintext is
    /// a whole SQLite database.
    pub unpadded: bool,
}

/// Unlocks the keybag with `password` and opens the decrypted Manifest.db at `db_path`.
///
/// A wrong password fails here, at the keybag, before Manifest.db is read at all. Manifest.db
/// itself is accepted padded (as Finder writes it) or unpadded (a whole number of SQLite pages
/// with no padding block, as some tools write it): what matters is that it decrypts to SQLite.
pub fn open_encrypted(
    backup: &Path,
    db_path: &Path,
    plist: &ManifestPlist,
    password: &Password,
) -> Result<Opened, BackupError> {
    let keys = unlock_keybag(backup, plist, password)?;
    let plist_path = backup.join("Manifest.plist");
    let locked = |path: &Path, reason: String| BackupError::Locked {
        path: path.to_path_buf(),
        reason,
    };
    let manifest_key = plist.manifest_key.as_deref().ok_or_else(|| {
        locked(
            &plist_path,
            "Manifest.plist holds no ManifestKey, so Manifest.db cannot be decrypted".into(),
        )
    })?;
    let key = keys
        .unwrap_key(manifest_key)
        .map_err(|e| locked(&plist_path, format!("its ManifestKey: {e}")))?;
    let io = |source| BackupError::Io {
        path: db_path.to_path_buf(),
        source,
    };
    // Never a link, FIFO or device, and the size checked on the open handle.
    let file = untrusted_file::open_regular(db_path, Links::Refuse).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_ENCRYPTED_DB_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is {len} bytes, more than the {MAX_ENCRYPTED_DB_BYTES} bytes (16 GiB) ibackup \
                 accepts for an encrypted Manifest.db; a backup of a million files has one of \
                 well under 1 GB, so this one is damaged or not a Manifest.db"
            ),
        )));
    }
    let mut db = EncryptedDb::new(file, key).map_err(|e| locked(db_path, e.to_string()))?;
    let head = db
        .head(HEAD_LEN)
        .map_err(|e| locked(db_path, e.to_string()))?;
    let (plaintext_len, unpadded) = plaintext_len(&head, db.encrypted_len(), db.padding())
        .map_err(|e| locked(db_path, e.to_string()))?;
    if !crypto::is_sqlite(&head) {
        return Err(locked(
            db_path,
            "it decrypts to something other than a SQLite database (the ManifestKey or the file \
             is damaged)"
                .into(),
        ));
    }
    drop(head);
    db.set_len(plaintext_len);
    let manifest = Manifest::from_encrypted(db).map_err(|source| BackupError::Manifest {
        path: db_path.to_path_buf(),
        source,
    })?;
    Ok(Opened {
        manifest,
        keys,
        unpadded,
    })
}

/// How many bytes of a decrypted Manifest.db are the database, and whether it was written
/// without padding, from its first decrypted bytes (`head`), its length and its padding.
///
/// The whole decrypted text is taken as unpadded when it is exactly the length its SQLite header
/// declares (which a padded one never is: padding adds 1 to 16 bytes to a whole number of pages),
/// or when its last block is not valid padding but it is SQLite all the same. Otherwise the
/// padding is removed as usual; anything else is bad padding (a damaged file or ManifestKey).
fn plaintext_len(
    head: &[u8],
    full: u64,
    padding: Option<usize>,
) -> Result<(u64, bool), crypto::CryptoError> {
    match padding {
        _ if crypto::sqlite_declared_len(head) == Some(full) => Ok((full, true)),
        Some(pad) => Ok((full - pad as u64, false)),
        None if crypto::is_sqlite(head) => Ok((full, true)),
        None => Err(crypto::CryptoError::BadPadding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page_size: u16, pages: u32) -> Vec<u8> {
        let mut head = vec![0u8; HEAD_LEN];
        head[..16].copy_from_slice(crypto::SQLITE_HEADER);
        head[16..18].copy_from_slice(&page_size.to_be_bytes());
        head[24..28].copy_from_slice(&1u32.to_be_bytes());
        head[28..32].copy_from_slice(&pages.to_be_bytes());
        head[92..96].copy_from_slice(&1u32.to_be_bytes());
        head
    }

    #[test]
    fn padding_is_removed_unless_the_database_fills_the_whole_plaintext() {
        let head = header(4096, 2);
        assert_eq!(
            plaintext_len(&head, 8192 + 16, Some(16)).unwrap(),
            (8192, false)
        );
        // Exactly the declared length: unpadded, even if the last bytes look like padding.
        assert_eq!(plaintext_len(&head, 8192, Some(1)).unwrap(), (8192, true));
        // No valid padding but SQLite: unpadded.
        assert_eq!(
            plaintext_len(&head, 8192 * 3, None).unwrap(),
            (8192 * 3, true)
        );
        assert!(matches!(
            plaintext_len(&[0u8; HEAD_LEN], 4096, None),
            Err(crypto::CryptoError::BadPadding)
        ));
    }
}
