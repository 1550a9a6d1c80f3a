//! Where a new backup is made so that the previous one stays restorable until the new one is
//! proven complete. The phone writes into `FOLDER/<UDID>.ibackup-new`, which starts as a mirror
//! of the previous backup `FOLDER/<UDID>` made of hard links (no bytes copied; a file the phone
//! replaces is written under a temporary name and renamed over its link, so the previous
//! backup's file is never written to). Only a new backup that finished and verified complete
//! takes the previous one's place ([`Staging::commit`]); anything else is thrown away
//! ([`Staging::discard`]) and the previous backup is as it was.
//!
//! A file system without hard links (FAT, exFAT) gets copies instead, after checking they fit.
//! Links and special files in the previous backup are not carried over (a backup has none).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::folder::{copy_tree, free_space};

/// The suffix of the folder a backup is made in.
pub const NEW_SUFFIX: &str = ".ibackup-new";
/// The suffix the previous backup has for the moment of the swap.
pub const OLD_SUFFIX: &str = ".ibackup-old";

/// How the previous backup was carried into the new folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Carried {
    pub files: u64,
    pub bytes: u64,
    /// Files copied because the file system has no hard links.
    pub copied: u64,
}

/// A new backup being made beside the previous one.
#[derive(Debug)]
pub struct Staging {
    /// `FOLDER/<UDID>`: the previous backup, and the new one's place once committed.
    pub target: PathBuf,
    /// `FOLDER/<UDID>.ibackup-new`: where the phone writes.
    pub work: PathBuf,
    /// Whether a previous backup was there.
    pub had_previous: bool,
    pub carried: Carried,
}

/// Why the new folder could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("{path} cannot be used as a backup folder: {detail}")]
    NotAFolder { path: PathBuf, detail: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("this file system cannot hard-link, so the new backup needs a copy of the previous one beside it: {needed} bytes, and {free} are free at {path}")]
    NoRoomToCopy {
        path: PathBuf,
        needed: u64,
        free: u64,
    },
}

fn io_error<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StagingError + 'p {
    move |source| StagingError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The folder with `suffix` added to its name.
fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    target.with_file_name(name)
}

/// Makes `folder` (if missing) and `folder/<udid>.ibackup-new` as a mirror of the previous
/// backup `folder/<udid>` when there is one. A `.ibackup-new` or `.ibackup-old` left by an
/// interrupted run of ibackup is removed first (those names are ibackup's own).
pub fn prepare(folder: &Path, udid: &str) -> Result<Staging, StagingError> {
    fs::create_dir_all(folder).map_err(io_error("cannot create", folder))?;
    let meta = fs::symlink_metadata(folder).map_err(io_error("cannot read", folder))?;
    if !meta.is_dir() {
        return Err(StagingError::NotAFolder {
            path: folder.to_path_buf(),
            detail: "it is not a folder".to_string(),
        });
    }
    let target = folder.join(udid);
    let work = sibling(&target, NEW_SUFFIX);
    let old = sibling(&target, OLD_SUFFIX);
    let had_previous = match fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(StagingError::NotAFolder {
                path: target,
                detail: "it is a link; ibackup writes only into a real folder".to_string(),
            })
        }
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(StagingError::NotAFolder {
                path: target,
                detail: "it is a file, not a folder".to_string(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_error("cannot read", &target)(e)),
    };
    // A swap interrupted between its two renames left the previous backup under the old name
    // and none in its place: put it back first.
    let had_previous = had_previous
        || match fs::symlink_metadata(&old) {
            Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {
                fs::rename(&old, &target).map_err(io_error("cannot restore", &old))?;
                true
            }
            _ => false,
        };
    for leftover in [&work, &old] {
        remove_own(leftover)?;
    }
    create_private_dir(&work).map_err(io_error("cannot create", &work))?;
    let mut staging = Staging {
        target,
        work,
        had_previous,
        carried: Carried::default(),
    };
    if had_previous {
        let result = mirror(&staging.target, &staging.work, folder, &mut staging.carried);
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&staging.work);
            return Err(e);
        }
    }
    Ok(staging)
}

/// Removes a folder of ibackup's own naming left by an earlier run (never a link's target).
fn remove_own(path: &Path) -> Result<(), StagingError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {
            fs::remove_dir_all(path).map_err(io_error("cannot remove the leftover", path))
        }
        Ok(_) => fs::remove_file(path).map_err(io_error("cannot remove the leftover", path)),
        Err(_) => Ok(()),
    }
}

fn create_private_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new().mode(0o700).create(path)
    }
    #[cfg(not(unix))]
    fs::create_dir(path)
}

/// Hard-links every regular file of `from` into `to` (folders recreated); copies instead when
/// the file system refuses links, after checking the copies fit.
fn mirror(
    from: &Path,
    to: &Path,
    folder: &Path,
    carried: &mut Carried,
) -> Result<(), StagingError> {
    let mut copying = false;
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((source, target)) = stack.pop() {
        let entries = fs::read_dir(&source).map_err(io_error("cannot list", &source))?;
        for entry in entries {
            let entry = entry.map_err(io_error("cannot list", &source))?;
            let kind = entry
                .file_type()
                .map_err(io_error("cannot read", &entry.path()))?;
            let (from_path, to_path) = (entry.path(), target.join(entry.file_name()));
            if kind.is_dir() {
                fs::create_dir(&to_path).map_err(io_error("cannot create", &to_path))?;
                stack.push((from_path, to_path));
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if !copying {
                match fs::hard_link(&from_path, &to_path) {
                    Ok(()) => {
                        carried.files += 1;
                        carried.bytes += size;
                        continue;
                    }
                    Err(e) if carried.files == 0 && cannot_link(&e) => {
                        let needed = tree_size(from);
                        let free = free_space(folder).unwrap_or(u64::MAX);
                        if needed > free {
                            return Err(StagingError::NoRoomToCopy {
                                path: folder.to_path_buf(),
                                needed,
                                free,
                            });
                        }
                        copying = true;
                    }
                    Err(e) => return Err(io_error("cannot link", &to_path)(e)),
                }
            }
            copy_tree(&from_path, &to_path).map_err(io_error("cannot copy", &from_path))?;
            carried.files += 1;
            carried.bytes += size;
            carried.copied += 1;
        }
    }
    Ok(())
}

/// An error that says the file system has no hard links (rather than a problem with one file).
fn cannot_link(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(exdev_or_eperm())
}

#[cfg(unix)]
fn exdev_or_eperm() -> i32 {
    libc::EPERM
}

#[cfg(not(unix))]
fn exdev_or_eperm() -> i32 {
    // ERROR_INVALID_FUNCTION: what Windows answers for a volume without hard links.
    1
}

/// The bytes of the regular files under `path`.
fn tree_size(path: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    total
}

impl Staging {
    /// The new backup takes the previous one's place: previous → `.ibackup-old`, new →
    /// `<UDID>`, then the old one is removed. If the second rename fails, the previous backup
    /// is put back.
    pub fn commit(self) -> Result<PathBuf, StagingError> {
        let old = sibling(&self.target, OLD_SUFFIX);
        if self.had_previous {
            fs::rename(&self.target, &old).map_err(io_error("cannot move aside", &self.target))?;
        }
        if let Err(e) = fs::rename(&self.work, &self.target) {
            if self.had_previous {
                let _ = fs::rename(&old, &self.target);
            }
            return Err(io_error("cannot move into place", &self.work)(e));
        }
        if self.had_previous {
            fs::remove_dir_all(&old)
                .map_err(io_error("cannot remove the replaced backup", &old))?;
        }
        Ok(self.target)
    }

    /// Throws the new folder away; the previous backup is untouched.
    pub fn discard(self) -> Result<(), StagingError> {
        remove_own(&self.work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "00008110-001A2B3C4D5E801E";

    fn previous(folder: &Path) -> PathBuf {
        let target = folder.join(U);
        fs::create_dir_all(target.join("ab")).unwrap();
        fs::write(target.join("Manifest.db"), b"old manifest").unwrap();
        fs::write(target.join("ab/ab12"), b"old blob").unwrap();
        target
    }

    #[test]
    fn a_first_backup_starts_empty_and_commits() {
        let dir = tempfile::TempDir::new().unwrap();
        let folder = dir.path().join("Backup");
        let staging = prepare(&folder, U).unwrap();
        assert!(!staging.had_previous);
        fs::write(staging.work.join("Status.plist"), b"s").unwrap();
        let placed = staging.commit().unwrap();
        assert_eq!(fs::read(placed.join("Status.plist")).unwrap(), b"s");
        assert!(!sibling(&placed, NEW_SUFFIX).exists());
    }

    #[test]
    fn the_previous_backup_is_untouched_until_commit() {
        let dir = tempfile::TempDir::new().unwrap();
        let target = previous(dir.path());
        let staging = prepare(dir.path(), U).unwrap();
        assert!(staging.had_previous);
        assert_eq!(staging.carried.files, 2);
        assert_eq!(fs::read(staging.work.join("ab/ab12")).unwrap(), b"old blob");
        // The phone replaces a file the way the folder writes: a new file renamed over the link.
        let confined = super::super::folder::Confined::new(staging.work.clone(), U);
        confined
            .write_file(&format!("{U}/ab/ab12"), b"new blob")
            .unwrap();
        confined.remove(&format!("{U}/Manifest.db")).unwrap();
        assert_eq!(fs::read(target.join("ab/ab12")).unwrap(), b"old blob");
        assert_eq!(
            fs::read(target.join("Manifest.db")).unwrap(),
            b"old manifest"
        );
        staging.discard().unwrap();
        assert_eq!(fs::read(target.join("ab/ab12")).unwrap(), b"old blob");
        assert!(!sibling(&target, NEW_SUFFIX).exists());
        // Commit replaces it.
        let staging = prepare(dir.path(), U).unwrap();
        fs::write(staging.work.join("Status.plist"), b"new").unwrap();
        let placed = staging.commit().unwrap();
        assert_eq!(fs::read(placed.join("Status.plist")).unwrap(), b"new");
        assert_eq!(fs::read(placed.join("ab/ab12")).unwrap(), b"old blob");
        assert!(!sibling(&placed, OLD_SUFFIX).exists());
    }

    #[test]
    fn leftovers_of_an_interrupted_run_are_removed() {
        let dir = tempfile::TempDir::new().unwrap();
        previous(dir.path());
        let stale = dir.path().join(format!("{U}{NEW_SUFFIX}"));
        fs::create_dir_all(stale.join("junk")).unwrap();
        let staging = prepare(dir.path(), U).unwrap();
        assert!(!staging.work.join("junk").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_backup_folder_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(U)).unwrap();
        let err = prepare(dir.path(), U).unwrap_err();
        assert!(err.to_string().contains("link"), "{err}");
        fs::remove_file(dir.path().join(U)).unwrap();
        fs::write(dir.path().join(U), b"x").unwrap();
        assert!(prepare(dir.path(), U).is_err());
    }
}
