//! The `--deep` pass, run after the matching on a backup whose file list was read: every intact
//! blob of an encrypted backup is decrypted (in parallel, a block at a time) and its plaintext
//! length compared with the size the manifest states, and the key SQLite databases the scan
//! picked out get a `PRAGMA quick_check`, decrypted in memory first when the backup is encrypted.
//!
//! Unlocking the keybag is `unlock`'s job and AES is `crypto`'s; this module only applies them.
//! Nothing decrypted is written anywhere.

use std::path::Path;

use rayon::prelude::*;
use rusqlite::{Connection, OpenFlags};

use super::blobs::blob_path;
use super::crypto;
use super::keybag::ClassKeys;
use super::manifest::{self, ManifestError};
use super::problems::{database_problems, undecryptable_problem};
use super::report::{BackupReport, DamagedRecord, DatabaseCheck};
use super::scan::{FoundDatabase, Listed, Names, Progress};

/// The `--deep` pass over a backup whose manifest was read.
pub(super) struct Deep<'a> {
    pub(super) root: &'a Path,
    /// Blobs lie flat in the root (iOS 5-9).
    pub(super) flat: bool,
    pub(super) keys: Option<&'a ClassKeys>,
    pub(super) encrypted: bool,
    pub(super) progress: &'a dyn Progress,
}

impl Deep<'_> {
    pub(super) fn run(
        &self,
        intact: &[Listed],
        databases: Vec<FoundDatabase>,
        manifest: &dyn Names,
        report: &mut BackupReport,
    ) -> Result<(), ManifestError> {
        if let Some(keys) = self.keys {
            self.decrypt_all(keys, intact, manifest, report)?;
        }
        for found in databases {
            let check = self.check_database(&found);
            let Some(result) = check else { continue };
            let (file_id, domain, path) = manifest.names(found.rowid)?;
            report.databases.push(DatabaseCheck {
                name: found.name,
                file_id,
                domain,
                path,
                result,
            });
        }
        database_problems(report);
        Ok(())
    }

    /// Decrypts every intact blob in parallel, in constant memory per thread.
    fn decrypt_all(
        &self,
        keys: &ClassKeys,
        intact: &[Listed],
        manifest: &dyn Names,
        report: &mut BackupReport,
    ) -> Result<(), ManifestError> {
        let total = intact.iter().filter_map(|l| l.expected).sum();
        self.progress.bytes_phase("Decrypting files", total);
        let failures: Vec<(i64, String)> = intact
            .par_iter()
            .filter_map(|listed| {
                self.decrypt_one(keys, listed)
                    .err()
                    .map(|reason| (listed.rowid, reason))
            })
            .collect();
        report.files.decrypted = (intact.len() - failures.len()) as u64;
        for (rowid, reason) in failures {
            let (file_id, domain, path) = manifest.names(rowid)?;
            report.files.undecryptable.push(DamagedRecord {
                file_id,
                domain,
                path,
                reason,
            });
        }
        undecryptable_problem(report);
        Ok(())
    }

    fn decrypt_one(&self, keys: &ClassKeys, listed: &Listed) -> Result<(), String> {
        let (Some(size), Some(wrapped)) = (listed.size, listed.key.as_deref()) else {
            return Err("its record has no EncryptionKey".into());
        };
        let key = keys
            .unwrap_key(wrapped)
            .map_err(|e| format!("its EncryptionKey cannot be unwrapped ({e})"))?;
        let path = blob_path(self.root, &listed.id, self.flat);
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open it: {e}"))?;
        let check = crypto::check_blob_with_progress(file, &key, |n| self.progress.advance(n))
            .map_err(|e| e.to_string())?;
        match check.plaintext_len {
            None => Err("it ends in invalid padding (wrong key, or damaged data)".into()),
            Some(len) if len != size => Err(format!(
                "it decrypts to {len} bytes where the manifest states {size}"
            )),
            Some(_) => Ok(()),
        }
    }

    /// `PRAGMA quick_check` on one key database, opened read-only from its blob (decrypted in
    /// memory for an encrypted backup). None when its blob is absent (already a missing file).
    fn check_database(&self, found: &FoundDatabase) -> Option<String> {
        let path = blob_path(self.root, &found.id, self.flat);
        if !path.is_file() {
            return None;
        }
        let result = if self.encrypted {
            let keys = self.keys?;
            decrypted_quick_check(&path, keys, found)
        } else {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            Connection::open_with_flags(manifest::readonly_uri(&path), flags)
                .map_err(|e| e.to_string())
                .and_then(|conn| quick_check(&conn))
        };
        Some(result.unwrap_or_else(|e| e))
    }
}

fn decrypted_quick_check(
    path: &Path,
    keys: &ClassKeys,
    found: &FoundDatabase,
) -> Result<String, String> {
    let wrapped = found
        .key
        .as_deref()
        .ok_or("its record has no EncryptionKey")?;
    let key = keys
        .unwrap_key(wrapped)
        .map_err(|e| format!("its EncryptionKey cannot be unwrapped ({e})"))?;
    let ciphertext = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let plaintext = crypto::decrypt_to_vec(&key, &ciphertext).map_err(|e| e.to_string())?;
    if found
        .size
        .is_some_and(|size| size != plaintext.len() as u64)
    {
        return Err("it does not decrypt to the size the manifest states".into());
    }
    let conn = manifest::open_in_memory(&plaintext).map_err(|e| e.to_string())?;
    let result = quick_check(&conn);
    // The connection reads `plaintext` in place: close it before the bytes are wiped.
    drop(conn);
    result
}

/// The first line `PRAGMA quick_check` returns: `ok`, or SQLite's first complaint.
fn quick_check(conn: &Connection) -> Result<String, String> {
    conn.query_row("PRAGMA quick_check", [], |row| row.get::<_, String>(0))
        .map_err(|e| e.to_string())
}
