//! The backup folder as it lies on disk before its file list is read: is it a backup at all,
//! what Info.plist, Manifest.plist and Status.plist say, whether Manifest.db, Manifest.mbdb and a
//! left-over Snapshot/ are there, who the backup belongs to, and when the folder was last written
//! to (the newest modification time of its top-level entries and of Snapshot/'s, a bounded look
//! that never walks the blob folders). Every file here is read through [`read_regular_file`],
//! which refuses anything that is not a regular file of bounded size, and never follows a link.
//!
//! It does not judge what it finds (that is `problems`), nor read the manifest (`scan`). Parsing
//! the plists' bytes is `plists`' job; this module only fetches them.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::error::BackupError;
use super::mbdb;
use super::plists::{self, InfoPlist, ManifestPlist, PlistError, StatusPlist};
use super::report::BackupSummary;
use crate::untrusted_file::{read_capped, Links};

/// Plists larger than this are refused rather than loaded (real ones are a few MB at most).
const MAX_PLIST_BYTES: u64 = 64 << 20;

/// At most this many entries of the backup folder (and of its Snapshot/) are looked at for the
/// last write time: a real backup has 256 blob folders and a handful of files at the top.
const MAX_TOP_LEVEL_ENTRIES: usize = 4096;

/// When the folder was last written to: the newest modification time among its own top-level
/// entries (Info.plist, Status.plist, Manifest.db and its journal, the `<xx>` blob folders,
/// Snapshot/) and the top-level entries of Snapshot/, whose blob folders change as a backup in
/// progress writes into them. A blob folder's time changes whenever a blob is added to it, so a
/// backup being written shows here within seconds, without reading any blob. Symlinks are not
/// followed; entries past [`MAX_TOP_LEVEL_ENTRIES`] and unreadable ones are skipped. None when
/// no time can be read at all.
pub fn last_written(path: &Path) -> Option<DateTime<Utc>> {
    let newest_in = |dir: &Path| {
        let mut newest = std::fs::symlink_metadata(dir)
            .and_then(|m| m.modified())
            .ok();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.take(MAX_TOP_LEVEL_ENTRIES).flatten() {
                if let Ok(time) = entry.metadata().and_then(|m| m.modified()) {
                    newest = newest.max(Some(time));
                }
            }
        }
        newest
    };
    let snapshot = path.join("Snapshot");
    let in_snapshot = match std::fs::symlink_metadata(&snapshot) {
        Ok(meta) if meta.is_dir() => newest_in(&snapshot),
        _ => None,
    };
    newest_in(path).max(in_snapshot).map(DateTime::<Utc>::from)
}

/// Reads a file of the backup, of at most `max` bytes, through the one opener for files others
/// laid out ([`crate::untrusted_file`]): opened without blocking, checked on the open handle to
/// be a regular file, never through a link, and read with a cap. A folder, a FIFO, a device, a
/// symlink (to /dev/zero, or to a file outside the backup) or a file that grows past `max` while
/// it is read is an error saying which, so a hostile folder cannot make ibackup hang, fill
/// memory or read outside the backup.
pub fn read_regular_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    read_capped(path, max, Links::Refuse)
}

/// Whether the backup at `path` says it is encrypted, so that a password must be asked for
/// before it is checked. Only Manifest.plist is read, through [`read_regular_file`] with the same
/// limit as the check itself. A Manifest.plist that is absent, damaged, too big or not a regular
/// file reads as "no password needed": the check that follows reports what is wrong with it.
pub fn needs_password(path: &Path) -> bool {
    read_regular_file(&path.join("Manifest.plist"), MAX_PLIST_BYTES)
        .ok()
        .and_then(|bytes| plists::parse_manifest(&bytes).ok())
        .is_some_and(|m| m.is_encrypted)
}

/// A plist that may be absent or empty without stopping the check.
pub(super) enum Loaded<T> {
    Missing,
    Empty,
    Read(T),
}

impl<T> Loaded<T> {
    pub(super) fn read(&self) -> Option<&T> {
        match self {
            Loaded::Read(t) => Some(t),
            _ => None,
        }
    }
}

fn load<T>(
    path: &Path,
    parse: fn(&[u8]) -> Result<T, PlistError>,
) -> Result<Loaded<T>, BackupError> {
    let io = |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match read_regular_file(path, MAX_PLIST_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(io(e)),
    };
    match parse(&bytes) {
        Ok(value) => Ok(Loaded::Read(value)),
        Err(PlistError::Empty) => Ok(Loaded::Empty),
        Err(source) => Err(BackupError::Plist {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The facts read from the folder before the manifest and blobs are matched.
pub(super) struct Folder {
    pub(super) info: Loaded<InfoPlist>,
    pub(super) manifest: Loaded<ManifestPlist>,
    pub(super) status: Loaded<StatusPlist>,
    pub(super) has_db: bool,
    /// An iOS 5-9 Manifest.mbdb (used when there is no Manifest.db).
    pub(super) has_mbdb: bool,
    pub(super) snapshot_left: bool,
}

pub(super) fn read_folder(path: &Path) -> Result<Folder, BackupError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(BackupError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(BackupError::NotABackup {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => {}
    }
    let folder = Folder {
        info: load(&path.join("Info.plist"), plists::parse_info)?,
        manifest: load(&path.join("Manifest.plist"), plists::parse_manifest)?,
        status: load(&path.join("Status.plist"), plists::parse_status)?,
        has_db: path.join("Manifest.db").symlink_metadata().is_ok(),
        has_mbdb: path.join(mbdb::MBDB_NAME).symlink_metadata().is_ok(),
        snapshot_left: path.join("Snapshot").symlink_metadata().is_ok(),
    };
    let nothing = matches!(folder.info, Loaded::Missing)
        && matches!(folder.manifest, Loaded::Missing)
        && matches!(folder.status, Loaded::Missing)
        && !folder.has_db
        && !folder.has_mbdb;
    if nothing {
        return Err(BackupError::NotABackup {
            path: path.to_path_buf(),
        });
    }
    Ok(folder)
}

impl Folder {
    /// Who and when, from the plists (see docs/design.md, "Backup date" and "Identity").
    pub(super) fn summary(&self, path: &Path, encrypted: bool) -> BackupSummary {
        let info = self.info.read();
        let lockdown = self.manifest.read().map(|m| &m.lockdown);
        let status = self.status.read();
        let pick = |a: Option<&Option<String>>, b: Option<&Option<String>>| {
            a.cloned().flatten().or_else(|| b.cloned().flatten())
        };
        let date = status
            .and_then(|s| s.date)
            .or_else(|| self.manifest.read().and_then(|m| m.date))
            .or_else(|| info.and_then(|i| i.last_backup_date));
        let folder_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        BackupSummary {
            path: path.display().to_string(),
            udid: pick(
                info.map(|i| &i.unique_identifier),
                lockdown.map(|l| &l.unique_device_id),
            )
            .or(folder_name),
            device_name: pick(
                info.map(|i| &i.device_name),
                lockdown.map(|l| &l.device_name),
            ),
            ios_version: pick(
                info.map(|i| &i.product_version),
                lockdown.map(|l| &l.product_version),
            ),
            build_version: pick(
                info.map(|i| &i.build_version),
                lockdown.map(|l| &l.build_version),
            ),
            product_type: pick(
                info.map(|i| &i.product_type),
                lockdown.map(|l| &l.product_type),
            ),
            date,
            encrypted,
            snapshot_state: status
                .and_then(|s| s.snapshot_state.as_ref())
                .map(|s| s.as_str().to_string()),
            is_full_backup: status.and_then(|s| s.is_full_backup),
            last_written: last_written(path),
            // Read from a blob once the file list is known (`icloud`).
            icloud: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plist::{Dictionary, Value};

    fn manifest_plist(encrypted: bool) -> Vec<u8> {
        let mut d = Dictionary::new();
        d.insert("IsEncrypted".into(), Value::Boolean(encrypted));
        let mut bytes = Vec::new();
        Value::Dictionary(d).to_writer_xml(&mut bytes).unwrap();
        bytes
    }

    fn backup_with_manifest(bytes: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Manifest.plist"), bytes).unwrap();
        dir
    }

    #[test]
    fn an_encrypted_backup_needs_a_password() {
        let dir = backup_with_manifest(&manifest_plist(true));
        assert!(needs_password(dir.path()));
    }

    #[test]
    fn a_plain_backup_needs_none() {
        let dir = backup_with_manifest(&manifest_plist(false));
        assert!(!needs_password(dir.path()));
    }

    #[test]
    fn a_missing_manifest_plist_needs_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!needs_password(dir.path()));
        assert!(!needs_password(&dir.path().join("no such backup")));
    }

    #[test]
    fn a_garbage_or_empty_manifest_plist_needs_none() {
        for bytes in [&b"\x00\x01garbage"[..], b"", b"<plist>"] {
            let dir = backup_with_manifest(bytes);
            assert!(!needs_password(dir.path()));
        }
    }

    #[test]
    fn a_folder_named_manifest_plist_needs_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Manifest.plist")).unwrap();
        assert!(!needs_password(dir.path()));
    }

    #[test]
    fn last_written_is_the_newest_top_level_time() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let new = old + std::time::Duration::from_secs(600);
        let set = |path: &Path, time| {
            std::fs::File::open(path)
                .unwrap()
                .set_modified(time)
                .unwrap();
        };
        std::fs::write(root.join("Status.plist"), b"x").unwrap();
        std::fs::create_dir_all(root.join("Snapshot").join("ab")).unwrap();
        let all = [
            root.join("Snapshot").join("ab"),
            root.join("Snapshot"),
            root.join("Status.plist"),
            root.to_path_buf(),
        ];
        for path in &all {
            set(path, old);
        }
        assert_eq!(
            last_written(root).map(|t| t.timestamp()),
            Some(1_700_000_000)
        );
        // A blob folder inside Snapshot/ counts...
        set(&root.join("Snapshot").join("ab"), new);
        assert_eq!(
            last_written(root).map(|t| t.timestamp()),
            Some(1_700_000_600)
        );
        // ...and so does a top-level file.
        set(&root.join("Snapshot").join("ab"), old);
        set(&root.join("Status.plist"), new);
        assert_eq!(
            last_written(root).map(|t| t.timestamp()),
            Some(1_700_000_600)
        );
        assert_eq!(last_written(&root.join("no such folder")), None);
    }

    /// A FIFO is never opened: opening one with no writer would block for ever.
    #[cfg(unix)]
    #[test]
    fn a_fifo_named_manifest_plist_does_not_block() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("Manifest.plist");
        let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `name` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(!needs_password(dir.path()));
    }

    /// A Manifest.plist that links elsewhere is not read, even when what it points at is a sound
    /// plist: links inside a backup are never followed.
    #[cfg(unix)]
    #[test]
    fn a_linked_plist_is_refused_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.plist");
        std::fs::write(&outside, manifest_plist(true)).unwrap();
        let backup = dir.path().join("backup");
        std::fs::create_dir(&backup).unwrap();
        std::os::unix::fs::symlink(&outside, backup.join("Manifest.plist")).unwrap();
        assert!(!needs_password(&backup));
        let Err(e) = read_folder(&backup) else {
            panic!("a linked Manifest.plist was read");
        };
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(e.to_string().contains("Manifest.plist"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_plist_linking_to_dev_zero_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("Status.plist")).unwrap();
        let Err(e) = read_folder(dir.path()) else {
            panic!("Status.plist linking to /dev/zero was read");
        };
        assert!(e.to_string().contains("Status.plist"), "{e}");
    }
}
