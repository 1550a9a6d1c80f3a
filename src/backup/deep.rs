//! The `--deep` pass, run after the matching on a backup whose file list was read: every intact
//! blob of an encrypted backup is decrypted (in parallel, a block at a time) and its plaintext
//! length compared with the size the manifest states, and the key SQLite databases the scan
//! picked out get a `PRAGMA quick_check`, decrypted in memory first when the backup is encrypted.
//! On an unencrypted backup every other blob of the right size that is a SQLite database or a
//! plist (told by its first bytes) is checked too, in parallel: quick_check, or parsed with a
//! size and shape limit. Each damaged file is reported once, in one list.
//!
//! Unlocking the keybag is `unlock`'s job and AES is `crypto`'s; this module only applies them.
//! Nothing decrypted is written anywhere.

use std::collections::HashSet;
use std::path::Path;

use rayon::prelude::*;

use super::blobs::{blob_path, open_blob};
use super::content_check::{check_content, quick_check, quick_check_file};
use super::crypto;
use super::keybag::ClassKeys;
use super::manifest::{self, ManifestError};
use super::problems::{content_problem, database_problems, undecryptable_problem};
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
    /// `skip`: rowids of files already reported with the wrong size (not checked again);
    /// `changed`: rowids of files of another size whose content is whole.
    pub(super) fn run(
        &self,
        intact: &[Listed],
        databases: Vec<FoundDatabase>,
        skip: &HashSet<i64>,
        changed: &HashSet<i64>,
        manifest: &dyn Names,
        report: &mut BackupReport,
    ) -> Result<(), ManifestError> {
        if let Some(keys) = self.keys {
            self.decrypt_all(keys, intact, manifest, report)?;
        }
        if !self.encrypted {
            let keyed: HashSet<i64> = databases.iter().map(|d| d.rowid).collect();
            self.check_contents(intact, &keyed, manifest, report)?;
        }
        for found in databases {
            if skip.contains(&found.rowid) {
                continue;
            }
            let check = self.check_database(&found, changed.contains(&found.rowid));
            let Some(result) = check else { continue };
            if !self.encrypted {
                report.files.content_checked += 1;
            }
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
        let file = open_blob(&path).map_err(|e| format!("cannot open it: {e}"))?;
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

    /// Checks every intact SQLite database and plist of an unencrypted backup other than the key
    /// databases (`keyed`, listed in `databases` instead), in parallel.
    fn check_contents(
        &self,
        intact: &[Listed],
        keyed: &HashSet<i64>,
        manifest: &dyn Names,
        report: &mut BackupReport,
    ) -> Result<(), ManifestError> {
        let total = intact.iter().filter_map(|l| l.size).sum();
        self.progress
            .bytes_phase("Checking databases and plists", total);
        let results: Vec<(i64, Result<(), String>)> = intact
            .par_iter()
            .filter(|listed| !keyed.contains(&listed.rowid))
            .filter_map(|listed| {
                let path = blob_path(self.root, &listed.id, self.flat);
                let result = check_content(&path);
                self.progress.advance(listed.size.unwrap_or(0));
                result.map(|r| (listed.rowid, r))
            })
            .collect();
        report.files.content_checked += results.len() as u64;
        for (rowid, result) in results {
            if let Err(reason) = result {
                let (file_id, domain, path) = manifest.names(rowid)?;
                report.files.content_damaged.push(DamagedRecord {
                    file_id,
                    domain,
                    path,
                    reason,
                });
            }
        }
        content_problem(report);
        Ok(())
    }

    /// `PRAGMA quick_check` on one key database, opened read-only from its blob (decrypted in
    /// memory for an encrypted backup). None when its blob is absent (already a missing file).
    /// `changed`: its size differs from the record's but its content is whole.
    fn check_database(&self, found: &FoundDatabase, changed: bool) -> Option<String> {
        let path = blob_path(self.root, &found.id, self.flat);
        if !path.is_file() {
            return None;
        }
        let result = if self.encrypted {
            let keys = self.keys?;
            decrypted_quick_check(&path, keys, found, changed)
        } else {
            quick_check_file(&path)
        };
        Some(result.unwrap_or_else(|e| e))
    }
}

fn decrypted_quick_check(
    path: &Path,
    keys: &ClassKeys,
    found: &FoundDatabase,
    changed: bool,
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
    if !changed
        && found
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
