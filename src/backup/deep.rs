//! The `--deep` pass, run after the matching on a backup whose file list was read: every intact
//! blob of an encrypted backup is decrypted (in parallel, a block at a time) and its plaintext
//! length compared with the size the manifest states, and the key SQLite databases the scan
//! picked out get a `PRAGMA quick_check`, read through the decrypting VFS (a page at a time, never
//! whole) when the backup is encrypted.
//! On an unencrypted backup every other blob of the right size that is a SQLite database or a
//! plist (told by its first bytes) is checked too, in parallel: quick_check, or parsed with a
//! size and shape limit. Each damaged file is reported once, in one list.
//!
//! A blob that cannot be opened when this pass comes to it (swapped since the listing, or refused
//! by an access list the mode bits did not show), and a key database past the size ceiling, are
//! "not checked" (`backup.blobs_unreadable`, exit 2), never "damaged": nothing was seen of them.
//!
//! Unlocking the keybag is `unlock`'s job and AES is `crypto`'s; this module only applies them.
//! Nothing decrypted is written anywhere.

use std::collections::HashSet;
use std::path::Path;

use rayon::prelude::*;

use super::blobs::{blob_path, open_blob};
use super::content_check::{check_open_content, quick_check, quick_check_handle};
use super::crypto;
use super::keybag::ClassKeys;
use super::manifest::ManifestError;
use super::problems::{
    content_problem, database_problems, deep_unread_problem, undecryptable_problem,
};
use super::report::{BackupReport, DamagedRecord, DatabaseCheck};
use super::scan::{FileKeys, FoundDatabase, Listed, Names, Progress};
use super::sqlite_vfs::decrypting::{EncryptedDb, MAX_ENCRYPTED_DB_BYTES};
use crate::untrusted_file::{self, Links};

/// Why one file's check came to nothing.
enum Fault {
    /// It could not be read (or was too big to read): not checked, not damaged.
    Unread(String),
    /// It was read, and it is not what it should be.
    Bad(String),
}

/// The `--deep` pass over a backup whose manifest was read.
pub(super) struct Deep<'a> {
    pub(super) root: &'a Path,
    /// Blobs lie flat in the root (iOS 5-9).
    pub(super) flat: bool,
    pub(super) keys: Option<&'a ClassKeys>,
    /// The listed files' own keys (encrypted backups).
    pub(super) file_keys: &'a FileKeys,
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
        let mut unread = Vec::new();
        if let Some(keys) = self.keys {
            unread.extend(self.decrypt_all(keys, intact, manifest, report)?);
        }
        if !self.encrypted {
            let keyed: HashSet<i64> = databases.iter().map(|d| d.rowid).collect();
            unread.extend(self.check_contents(intact, &keyed, manifest, report)?);
        }
        for found in databases {
            if skip.contains(&found.rowid) {
                continue;
            }
            let check = self.check_database(&found, changed.contains(&found.rowid));
            let result = match check {
                None => continue,
                Some(Err(Fault::Unread(reason))) => {
                    unread.push((found.rowid, reason));
                    continue;
                }
                Some(Err(Fault::Bad(result))) | Some(Ok(result)) => result,
            };
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
        let named = unread
            .into_iter()
            .map(|(rowid, reason)| record(manifest, rowid, reason))
            .collect::<Result<Vec<_>, _>>()?;
        deep_unread_problem(&named, report);
        Ok(())
    }

    /// Decrypts every intact blob in parallel, in constant memory per thread. Returns the blobs
    /// that could not be read (rowid and why), which are neither decrypted nor undecryptable.
    fn decrypt_all(
        &self,
        keys: &ClassKeys,
        intact: &[Listed],
        manifest: &dyn Names,
        report: &mut BackupReport,
    ) -> Result<Vec<(i64, String)>, ManifestError> {
        let total = intact.iter().filter_map(|l| l.expected()).sum();
        self.progress.bytes_phase("Decrypting files", total);
        let failures: Vec<(i64, Fault)> = intact
            .par_iter()
            .filter_map(|listed| {
                self.decrypt_one(keys, listed)
                    .err()
                    .map(|fault| (listed.rowid, fault))
            })
            .collect();
        report.files.decrypted = (intact.len() - failures.len()) as u64;
        let mut unread = Vec::new();
        for (rowid, fault) in failures {
            let reason = match fault {
                Fault::Unread(reason) => {
                    unread.push((rowid, reason));
                    continue;
                }
                Fault::Bad(reason) => reason,
            };
            report
                .files
                .undecryptable
                .push(record(manifest, rowid, reason)?);
        }
        undecryptable_problem(report);
        Ok(unread)
    }

    fn decrypt_one(&self, keys: &ClassKeys, listed: &Listed) -> Result<(), Fault> {
        let (Some(size), Some(wrapped)) = (listed.size(), self.file_keys.get(listed.rowid)) else {
            return Err(Fault::Bad("its record has no EncryptionKey".into()));
        };
        let key = keys
            .unwrap_key(wrapped)
            .map_err(|e| Fault::Bad(format!("its EncryptionKey cannot be unwrapped ({e})")))?;
        let path = blob_path(self.root, &listed.id, self.flat);
        let file = open_blob(&path).map_err(|e| Fault::Unread(format!("cannot open it: {e}")))?;
        let check = crypto::check_blob_with_progress(file, &key, |n| self.progress.advance(n))
            .map_err(|e| match e {
                crypto::CryptoError::Read { .. } => Fault::Unread(e.to_string()),
                e => Fault::Bad(e.to_string()),
            })?;
        match check.plaintext_len {
            None => Err(Fault::Bad(
                "it ends in invalid padding (wrong key, or damaged data)".into(),
            )),
            Some(len) if len != size => Err(Fault::Bad(format!(
                "it decrypts to {len} bytes where the manifest states {size}"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Checks every intact SQLite database and plist of an unencrypted backup other than the key
    /// databases (`keyed`, listed in `databases` instead), in parallel. Returns the blobs that
    /// could not be opened (rowid and why): not checked, not damaged.
    fn check_contents(
        &self,
        intact: &[Listed],
        keyed: &HashSet<i64>,
        manifest: &dyn Names,
        report: &mut BackupReport,
    ) -> Result<Vec<(i64, String)>, ManifestError> {
        let total = intact.iter().filter_map(|l| l.size()).sum();
        self.progress
            .bytes_phase("Checking databases and plists", total);
        let results: Vec<(i64, Result<(), Fault>)> = intact
            .par_iter()
            .filter(|listed| !keyed.contains(&listed.rowid))
            .filter_map(|listed| {
                let path = blob_path(self.root, &listed.id, self.flat);
                let result = match open_blob(&path) {
                    Err(e) => Some(Err(Fault::Unread(format!("cannot open it: {e}")))),
                    Ok(file) => check_open_content(file).map(|r| r.map_err(Fault::Bad)),
                };
                self.progress.advance(listed.size().unwrap_or(0));
                result.map(|r| (listed.rowid, r))
            })
            .collect();
        let mut unread = Vec::new();
        for (rowid, result) in results {
            if let Err(Fault::Unread(reason)) = result {
                unread.push((rowid, reason));
                continue;
            }
            report.files.content_checked += 1;
            if let Err(Fault::Bad(reason)) = result {
                report
                    .files
                    .content_damaged
                    .push(record(manifest, rowid, reason)?);
            }
        }
        content_problem(report);
        Ok(unread)
    }

    /// `PRAGMA quick_check` on one key database, opened read-only from its blob (decrypted as
    /// SQLite reads it for an encrypted backup). None when its blob is absent (already a missing file).
    /// `changed`: its size differs from the record's but its content is whole.
    fn check_database(
        &self,
        found: &FoundDatabase,
        changed: bool,
    ) -> Option<Result<String, Fault>> {
        let path = blob_path(self.root, &found.id, self.flat);
        // Only a regular file is checked, and a link is never followed: anything else in the
        // blob's place is already reported by the matching.
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
            return None;
        }
        if self.encrypted {
            let keys = self.keys?;
            return Some(decrypted_quick_check(
                &path,
                keys,
                found,
                changed,
                MAX_ENCRYPTED_DB_BYTES,
            ));
        }
        match open_blob(&path) {
            Err(e) => Some(Err(Fault::Unread(format!("cannot open it: {e}")))),
            Ok(file) => Some(Ok(quick_check_handle(file).unwrap_or_else(|e| e))),
        }
    }
}

/// The file at `rowid`, named from the manifest, with what was wrong with it.
fn record(
    manifest: &dyn Names,
    rowid: i64,
    reason: String,
) -> Result<DamagedRecord, ManifestError> {
    let (file_id, domain, path) = manifest.names(rowid)?;
    Ok(DamagedRecord {
        file_id,
        domain,
        path,
        reason,
    })
}

/// `PRAGMA quick_check` on an encrypted key database, read through the decrypting VFS: only the
/// pages SQLite reads are decrypted, so memory stays bounded whatever the blob's size. A blob
/// above `max_bytes` is refused unread, with a message saying so.
fn decrypted_quick_check(
    path: &Path,
    keys: &ClassKeys,
    found: &FoundDatabase,
    changed: bool,
    max_bytes: u64,
) -> Result<String, Fault> {
    let bad = |reason: String| Fault::Bad(reason);
    let wrapped = found
        .key
        .as_deref()
        .ok_or_else(|| bad("its record has no EncryptionKey".into()))?;
    let key = keys
        .unwrap_key(wrapped)
        .map_err(|e| bad(format!("its EncryptionKey cannot be unwrapped ({e})")))?;
    let file = untrusted_file::open_regular(path, Links::Refuse)
        .map_err(|e| Fault::Unread(format!("cannot open it: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| Fault::Unread(format!("cannot read it: {e}")))?
        .len();
    if len > max_bytes {
        return Err(Fault::Unread(format!(
            "not checked: it is {len} bytes, more than the {max_bytes} bytes ibackup decrypts to \
             check a database, far more than any real one"
        )));
    }
    let mut db = EncryptedDb::new(file, key).map_err(|e| bad(e.to_string()))?;
    let padding = db
        .padding()
        .ok_or_else(|| bad(crypto::CryptoError::BadPadding.to_string()))?;
    let plaintext_len = db.encrypted_len() - padding as u64;
    if !changed && found.size.is_some_and(|size| size != plaintext_len) {
        return Err(bad(
            "it does not decrypt to the size the manifest states".into()
        ));
    }
    db.set_len(plaintext_len);
    let conn = db.connect().map_err(|e| bad(e.to_string()))?;
    quick_check(&conn).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::blobs::FileId;
    use crate::backup::keybag::{Keybag, Password};

    #[test]
    fn a_key_database_above_the_ceiling_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, [0u8; 64]).unwrap();
        // A keybag of one password class, so that a file key can be unwrapped.
        let (keys, wrapped) = one_class_keys();
        let found = FoundDatabase {
            name: "Messages",
            id: FileId::default(),
            size: Some(48),
            key: Some(wrapped.into_boxed_slice()),
            rowid: 1,
        };
        let Err(Fault::Unread(refused)) = decrypted_quick_check(&path, &keys, &found, false, 63)
        else {
            panic!("a key database over the ceiling must be 'not checked'");
        };
        assert!(
            refused.contains("64 bytes") && refused.contains("63 bytes"),
            "{refused}"
        );
        let Err(Fault::Bad(read)) = decrypted_quick_check(&path, &keys, &found, false, 64) else {
            panic!("a key database under the ceiling is read, and these bytes are no database");
        };
        assert!(!read.contains("not checked"), "{read}");
    }

    /// Names for the unit tests below: every rowid is "HomeDomain/file".
    struct SameNames;
    impl Names for SameNames {
        fn names(&self, _rowid: i64) -> Result<(String, String, String), ManifestError> {
            Ok(("00".into(), "HomeDomain".into(), "file".into()))
        }
    }

    /// A blob swapped for a FIFO after the listing, or refused by an access list the mode bits
    /// did not show, is "not checked" (exit 2), never "damaged" (exit 1).
    #[cfg(unix)]
    #[test]
    fn a_blob_that_cannot_be_opened_at_deep_time_is_not_checked_not_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let id = FileId::default();
        let path = blob_path(dir.path(), &id, true);
        crate::untrusted_file::mkfifo(&path);
        let deep = Deep {
            root: dir.path(),
            flat: true,
            keys: None,
            file_keys: &FileKeys::default(),
            encrypted: false,
            progress: &(),
        };
        let listed = Listed::new(id, Some(10), false, 7, None);
        let mut report = BackupReport {
            schema: crate::backup::report::VERIFY_SCHEMA,
            backup: Default::default(),
            complete: false,
            verdict: crate::backup::report::Verdict::Incomplete,
            files: Default::default(),
            size: crate::backup::report::SizeCounts {
                declared_bytes: 0,
                on_disk_bytes: 0,
            },
            domains: Vec::new(),
            apps: Vec::new(),
            icloud_estimate: None,
            contents: Vec::new(),
            manifest_read: true,
            deep: true,
            databases: Vec::new(),
            problems: Vec::new(),
        };
        deep.run(
            &[listed],
            Vec::new(),
            &HashSet::new(),
            &HashSet::new(),
            &SameNames,
            &mut report,
        )
        .unwrap();
        let codes: Vec<&str> = report.problems.iter().map(|p| p.code).collect();
        assert_eq!(codes, ["backup.blobs_unreadable"], "{:?}", report.problems);
        assert!(report.problems[0].message.contains("HomeDomain file"));
        assert!(report.files.content_damaged.is_empty());
        assert_eq!(report.files.content_checked, 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_database_blob_that_is_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, [0u8; 64]).unwrap();
        let link = dir.path().join("blob");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (keys, wrapped) = one_class_keys();
        let found = FoundDatabase {
            name: "Messages",
            id: FileId::default(),
            size: None,
            key: Some(wrapped.into_boxed_slice()),
            rowid: 1,
        };
        let Err(Fault::Unread(refused)) =
            decrypted_quick_check(&link, &keys, &found, false, u64::MAX)
        else {
            panic!("a link in a key database's place must be refused unread");
        };
        assert!(refused.contains("symbolic link"), "{refused}");
    }

    fn one_class_keys() -> (ClassKeys, Vec<u8>) {
        use aes_kw::KekAes256;
        fn tlv(out: &mut Vec<u8>, tag: &[u8; 4], value: &[u8]) {
            out.extend_from_slice(tag);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        let salt = [3u8; 20];
        let mut kek = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(b"pw", &salt, 1, &mut kek);
        let class_key = [5u8; 32];
        let mut wrapped_class = [0u8; 40];
        KekAes256::new(&kek.into())
            .wrap(&class_key, &mut wrapped_class)
            .unwrap();
        let mut bag = Vec::new();
        tlv(&mut bag, b"SALT", &salt);
        tlv(&mut bag, b"ITER", &1u32.to_be_bytes());
        // The keybag's own UUID, then the class's.
        tlv(&mut bag, b"UUID", &[0; 16]);
        tlv(&mut bag, b"UUID", &[1; 16]);
        tlv(&mut bag, b"CLAS", &3u32.to_be_bytes());
        tlv(&mut bag, b"WRAP", &2u32.to_be_bytes());
        tlv(&mut bag, b"WPKY", &wrapped_class);
        let keys = Keybag::parse(&bag)
            .unwrap()
            .unlock(&Password::from("pw"))
            .unwrap();
        let mut wrapped_file = 3u32.to_le_bytes().to_vec();
        let mut out = [0u8; 40];
        KekAes256::new(&class_key.into())
            .wrap(&[9u8; 32], &mut out)
            .unwrap();
        wrapped_file.extend_from_slice(&out);
        (keys, wrapped_file)
    }
}
