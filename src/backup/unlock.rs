//! Opening an encrypted backup with its password: the keybag from Manifest.plist is unlocked,
//! the ManifestKey unwrapped, and Manifest.db decrypted into wiped-on-drop memory and opened
//! from there. Nothing decrypted is written anywhere. The per-file keys are unwrapped later, by
//! `verify --deep`, from the [`ClassKeys`] returned here.

use std::path::Path;

use super::crypto;
use super::error::BackupError;
use super::keybag::{ClassKeys, Keybag, KeybagError, Password};
use super::manifest::Manifest;
use super::plists::ManifestPlist;

/// Manifest.db files larger than this are refused rather than decrypted in memory (the largest
/// real ones are a few hundred MB).
const MAX_MANIFEST_BYTES: u64 = 4 << 30;

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
    let len = std::fs::metadata(db_path).map_err(io)?.len();
    if len > MAX_MANIFEST_BYTES {
        return Err(io(std::io::Error::other(format!(
            "it is {len} bytes, more than any real Manifest.db"
        ))));
    }
    let ciphertext = std::fs::read(db_path).map_err(io)?;
    let whole =
        crypto::decrypt_whole(&key, &ciphertext).map_err(|e| locked(db_path, e.to_string()))?;
    let (plaintext, unpadded) = unpad(whole).map_err(|e| locked(db_path, e.to_string()))?;
    if !crypto::is_sqlite(&plaintext) {
        return Err(locked(
            db_path,
            "it decrypts to something other than a SQLite database (the ManifestKey or the file \
             is damaged)"
                .into(),
        ));
    }
    let manifest = Manifest::from_plaintext(plaintext).map_err(|source| BackupError::Manifest {
        path: db_path.to_path_buf(),
        source,
    })?;
    Ok(Opened {
        manifest,
        keys,
        unpadded,
    })
}

/// The plaintext of a decrypted Manifest.db and whether it was written without padding.
///
/// The whole decrypted text is taken as unpadded when it is exactly the length its SQLite header
/// declares (which a padded one never is: padding adds 1 to 16 bytes to a whole number of pages),
/// or when its last block is not valid padding but it is SQLite all the same. Otherwise the
/// padding is removed as usual; anything else is bad padding (a damaged file or ManifestKey).
fn unpad(
    whole: crypto::Decrypted,
) -> Result<(zeroize::Zeroizing<Vec<u8>>, bool), crypto::CryptoError> {
    let crypto::Decrypted { mut bytes, padding } = whole;
    let full = bytes.len() as u64;
    let declared = crypto::sqlite_declared_len(&bytes);
    match padding {
        _ if declared == Some(full) => Ok((bytes, true)),
        Some(pad) => {
            let len = bytes.len() - pad;
            bytes.truncate(len);
            Ok((bytes, false))
        }
        None if crypto::is_sqlite(&bytes) => Ok((bytes, true)),
        None => Err(crypto::CryptoError::BadPadding),
    }
}
