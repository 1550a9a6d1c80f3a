//! Completeness: did the backup finish, is every file the manifest lists present with the right
//! size, is the manifest itself intact. Reads the plists, then lists the blob folders while it
//! streams Manifest.db (both at once, on separate cores), then matches the two.
//!
//! The rules are those of docs/json.md: a backup is complete only when Status.plist says
//! `finished`, no `Snapshot/` is left, Manifest.plist and Manifest.db are there and intact, and
//! every listed file is present at `<first two hex>/<fileID>` with the right size.
//!
//! This module only runs the steps in order; each lives in its own room: `folder` (the folder
//! and its plists), `unlock` (an encrypted Manifest.db), `scan` (the file list), `blobs` and
//! `matching` (the files on disk against the list), `judge` (a wrong size told cut short or
//! changed by the content), `deep` (`--deep`), `icloud` (the iCloud Backup settings the backup
//! holds), `problems` (their wording) and `verdict`.

use std::path::Path;

use super::apps;
use super::blobs;
use super::deep::Deep;
use super::error::BackupError;
use super::folder::read_folder;
use super::icloud;
use super::judge::Judge;
use super::keybag::Password;
use super::manifest::{self, Manifest};
use super::matching::match_blobs;
use super::mbdb;
use super::problems::{
    deep_needs_password, encrypted_without_keybag, file_problems, folder_problems,
    manifest_needs_password, manifest_unpadded, suspicious_paths, unreadable_problem,
};
use super::report::{BackupReport, FileCounts, SizeCounts, Verdict, VERIFY_SCHEMA};
use super::scan::{expected_blob_len as padded_len, read_mbdb, Listing, Mode, Names, Scan};
use super::unlock;
use super::verdict::verdict;

// Kept at the paths other code (and scripts built on the library) already use.
pub use super::folder::read_regular_file;
pub use super::locate::is_backup_folder;
pub use super::problems::codes;
pub use super::scan::{expected_blob_len, file_id_of, Progress, KEY_DATABASES};

/// How to check a backup beyond the defaults.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options<'a> {
    /// The backup password, for an encrypted backup (ignored for a plain one).
    pub password: Option<&'a Password>,
    /// Decrypt every blob of an encrypted backup, quick_check the key SQLite databases, and on
    /// an unencrypted backup quick_check every SQLite database and parse every plist.
    pub deep: bool,
}

/// Checks the backup at `path` with the default options (no password, not deep).
pub fn verify(path: &Path, progress: &dyn Progress) -> Result<BackupReport, BackupError> {
    verify_with(path, Options::default(), progress)
}

/// Checks the backup at `path`. Errors only when nothing useful can be said (or the password is
/// wrong); every defect of a readable backup is a [`Problem`](super::report::Problem) in the report.
pub fn verify_with(
    path: &Path,
    options: Options<'_>,
    progress: &dyn Progress,
) -> Result<BackupReport, BackupError> {
    let folder = read_folder(path)?;
    let encrypted = folder.manifest.read().is_some_and(|m| m.is_encrypted);
    let db_path = manifest::manifest_db_path(path);
    let listing_path = if !folder.has_db && folder.has_mbdb {
        path.join(mbdb::MBDB_NAME)
    } else {
        db_path.clone()
    };
    let manifest_error = |source| BackupError::Manifest {
        path: listing_path.clone(),
        source,
    };

    let mut problems = Vec::new();
    let mut keys = None;
    let legacy = !folder.has_db && folder.has_mbdb;
    let manifest = if legacy {
        let bytes = read_mbdb(&listing_path)?;
        // Manifest.mbdb is plain even in an encrypted backup; the password only matters for
        // decrypting blobs.
        match (options.password, folder.manifest.read()) {
            (Some(password), Some(plist)) if encrypted => {
                keys = Some(unlock::unlock_keybag(path, plist, password)?);
            }
            _ if encrypted && options.deep => problems.push(deep_needs_password()),
            _ => {}
        }
        Some(Listing::Legacy(bytes))
    } else if !folder.has_db {
        None
    } else if encrypted && !manifest::has_sqlite_header(&db_path).unwrap_or(true) {
        match (options.password, folder.manifest.read()) {
            (Some(password), Some(plist)) => {
                let opened = unlock::open_encrypted(path, &db_path, plist, password)?;
                if opened.unpadded {
                    problems.push(manifest_unpadded());
                }
                keys = Some(opened.keys);
                Some(Listing::Db(opened.manifest))
            }
            _ => {
                problems.push(manifest_needs_password());
                None
            }
        }
    } else {
        Some(Listing::Db(
            Manifest::open(&db_path).map_err(manifest_error)?,
        ))
    };
    let mode = Mode {
        encrypted,
        deep: options.deep,
        sniff_keys: folder.manifest.read().is_none(),
    };

    // The connection moves to the scanning thread and comes back: it is Send, not Sync.
    let (store, scanned) = rayon::join(
        || {
            if legacy {
                blobs::scan_flat(path)
            } else {
                blobs::scan(path)
            }
        },
        move || manifest.map(|listing| listing.scan(mode, progress)),
    );
    let mut store = store.map_err(|source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (mut scan, manifest) = match scanned {
        Some((scan, m)) => (Some(scan.map_err(manifest_error)?), Some(m)),
        None => (None, None),
    };
    let keyless = scan
        .as_mut()
        .and_then(|scan| encrypted_by_records(scan, &store, mode));
    let encrypted = encrypted || keyless.is_some();

    let icloud = icloud::read(
        &icloud::Source {
            root: path,
            flat: legacy,
            encrypted,
            keys: keys.as_ref(),
        },
        scan.as_ref().and_then(|s| s.ldbackup.as_ref()),
    );
    let mut report = BackupReport {
        schema: VERIFY_SCHEMA,
        backup: folder.summary(path, encrypted),
        complete: false,
        verdict: Verdict::Incomplete,
        files: FileCounts::default(),
        size: SizeCounts {
            declared_bytes: 0,
            on_disk_bytes: store.bytes,
        },
        domains: Vec::new(),
        apps: Vec::new(),
        icloud_estimate: None,
        contents: Vec::new(),
        manifest_read: manifest.is_some(),
        deep: options.deep,
        databases: Vec::new(),
        problems,
    };
    report.backup.icloud = icloud;
    report.files.blobs_on_disk = store.len() as u64;
    folder_problems(&folder, &mut report.problems);
    if let Some(problem) = keyless {
        report.problems.push(problem);
    }
    match (scan, manifest) {
        (Some(mut scan), Some(names)) => {
            let databases = std::mem::take(&mut scan.databases);
            let file_keys = std::mem::take(&mut scan.keys);
            let names: &dyn Names = &names;
            let matched =
                match_blobs(scan, &mut store, names, &mut report).map_err(manifest_error)?;
            let judge = Judge {
                root: path,
                flat: legacy,
                encrypted,
                deep: options.deep,
                keys: keys.as_ref(),
                file_keys: &file_keys,
            };
            per_app_sizes(&folder, &mut report);
            let sorted = judge.judge_all(&matched.mismatched, &mut report);
            file_problems(&mut report);
            suspicious_paths(&mut report);
            unreadable_problem(&store, &mut report.problems);
            if options.deep {
                let deep = Deep {
                    root: path,
                    flat: legacy,
                    keys: keys.as_ref(),
                    file_keys: &file_keys,
                    encrypted,
                    progress,
                };
                deep.run(
                    &matched.intact,
                    databases,
                    &sorted.reported,
                    &sorted.changed,
                    names,
                    &mut report,
                )
                .map_err(manifest_error)?;
            }
        }
        // Without the file list nothing can be counted against it: the counts stay 0 (as
        // docs/json.md says), and only `blobs_on_disk` tells what is there.
        _ => {
            unreadable_problem(&store, &mut report.problems);
        }
    }
    report.verdict = verdict(&report.problems);
    report.complete = report.verdict == Verdict::Complete;
    Ok(report)
}

/// `apps` and `icloud_estimate`, from the domain tallies and contents the matching made and the
/// app names the plists give.
fn per_app_sizes(folder: &super::folder::Folder, report: &mut BackupReport) {
    let info = folder.info.read();
    let manifest = folder.manifest.read();
    let known = apps::KnownApps {
        info: info.map_or(&[], |i| &i.application_names),
        installed: info.map_or(&[], |i| &i.installed_applications),
        manifest: manifest.map_or(&[], |m| &m.applications),
    };
    report.apps = apps::per_app(&report.domains, &known);
    let photos = report
        .contents
        .iter()
        .find(|h| h.category == super::contents::Category::Photos)
        .map_or(0, |h| h.bytes);
    report.icloud_estimate = Some(apps::icloud_estimate(report.size.declared_bytes, photos));
}

/// With no Manifest.plist to say so, a backup is taken as encrypted when every file record
/// that decodes carries an EncryptionKey (an encrypted backup gives every file one, a plain
/// backup none) and its blobs do not say otherwise: no more of them have exactly their plain
/// size than have the padded size of an encrypted file. (A backup decrypted by another tool
/// keeps the keys in its records, but its blobs have their plain sizes.) Its blobs are then
/// judged at their padded length; the problem returned says that nothing can unlock it.
fn encrypted_by_records(
    scan: &mut Scan,
    store: &blobs::BlobStore,
    mode: Mode,
) -> Option<super::report::Problem> {
    if !mode.sniff_keys
        || mode.encrypted
        || scan.keyed_files == 0
        || scan.keyed_files != scan.sniffed_files
    {
        return None;
    }
    let (mut plain, mut padded) = (0u64, 0u64);
    for listed in &scan.listed {
        let (Some(size), Some(blob)) = (listed.size(), store.get(&listed.id)) else {
            continue;
        };
        plain += u64::from(blob.size == size);
        padded += u64::from(blob.size == padded_len(size, true));
    }
    if plain > padded {
        return None;
    }
    for listed in &mut scan.listed {
        listed.expect_padded();
    }
    let files = (scan.listed.len() + scan.unnamed.len()) as u64;
    Some(encrypted_without_keybag(scan.keyed_files, files))
}
