//! The one folder a backup in progress may change, and the phone's paths inside it. The phone
//! names everything relative to the backup root (`<UDID>/Snapshot/ab/ab12…`); [`Confined`]
//! maps those names into its folder and nowhere else: a name that is not `<UDID>` or under it,
//! that has an empty, `.` or `..` component, or a character outside `A-Z a-z 0-9 . _ -` is
//! refused, and no link is followed, whether it is a folder on the way or the file at the end.
//! Files arrive under a temporary name (`<name>.ibackup-part`) and take their real name only
//! when complete, so a file cut short never sits under a real name.
//!
//! It answers the phone's file requests (it is the [`FileSource`] for DownloadFiles and, through
//! [`Receiver`], the [`FileSink`] for UploadFiles) and reports free space. The previous backup is
//! never this folder: see `staging.rs`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::device::services::mobilebackup2::{DirEntry, FileSink, FileSource};

/// The suffix of a file still being received.
pub const PART_SUFFIX: &str = ".ibackup-part";
/// The longest phone path accepted.
const MAX_PATH: usize = 1024;

/// A folder the phone's paths are confined to.
pub struct Confined {
    root: PathBuf,
    udid: String,
}

fn refused(path: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("refused the phone's path {:?}: {why}", shown(path)),
    )
}

/// A phone path as it may appear in a message: at most 120 characters, controls escaped by
/// `{:?}` where it is printed.
fn shown(path: &str) -> String {
    path.chars().take(120).collect()
}

fn link_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is a link; ibackup does not follow links in a backup it writes",
            path.display()
        ),
    )
}

/// Whether `c` may appear in a component of a phone path.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl Confined {
    /// Paths `udid/...` map to `root/...`; `root` must exist and is never left.
    pub fn new(root: PathBuf, udid: &str) -> Self {
        Confined {
            root,
            udid: udid.to_string(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The components of a phone path below the root (empty for the root itself).
    pub fn components<'p>(&self, path: &'p str) -> io::Result<Vec<&'p str>> {
        if path.len() > MAX_PATH {
            return Err(refused(path, "longer than 1,024 bytes"));
        }
        let mut parts = path.split('/');
        if parts.next() != Some(self.udid.as_str()) {
            return Err(refused(path, "not inside this phone's backup folder"));
        }
        let mut out = Vec::new();
        for part in parts {
            if part.is_empty() || part == "." || part == ".." {
                return Err(refused(path, "an empty, `.` or `..` component"));
            }
            if !part.chars().all(allowed) {
                return Err(refused(path, "a character a backup name never has"));
            }
            if part.ends_with(PART_SUFFIX) {
                return Err(refused(path, "ibackup's own temporary name"));
            }
            out.push(part);
        }
        Ok(out)
    }

    /// The local path for a phone path. Every folder on the way that exists must be a real
    /// folder (not a link); what the last component is, is the caller's business.
    pub fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let parts = self.components(path)?;
        let mut local = self.root.clone();
        if let Some((_, parents)) = parts.split_last() {
            for part in parents {
                local.push(part);
                match fs::symlink_metadata(&local) {
                    Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&local)),
                    Ok(m) if !m.is_dir() => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("{} is not a folder", local.display()),
                        ))
                    }
                    // A folder that does not exist yet: the operation reports it.
                    _ => {}
                }
            }
        }
        if let Some(last) = parts.last() {
            local.push(last);
        }
        Ok(local)
    }

    /// CreateDirectory: the folder and any missing parents, never through a link.
    pub fn create_dir(&self, path: &str) -> io::Result<()> {
        let parts = self.components(path)?;
        let mut local = self.root.clone();
        for part in parts {
            local.push(part);
            match fs::symlink_metadata(&local) {
                Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&local)),
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a folder", local.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&local) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// MoveItems: `from` takes the place of `to`; a folder at `to` is replaced, as the phone
    /// expects.
    pub fn move_item(&self, from: &str, to: &str) -> io::Result<()> {
        let source = self.resolve(from)?;
        let target = self.resolve(to)?;
        if self.components(to)?.is_empty() || self.components(from)?.is_empty() {
            return Err(refused(to, "the backup folder itself cannot be moved"));
        }
        fs::symlink_metadata(&source)?;
        if let Ok(m) = fs::symlink_metadata(&target) {
            if m.is_dir() && !m.file_type().is_symlink() {
                fs::remove_dir_all(&target)?;
            }
        }
        fs::rename(&source, &target)
    }

    /// RemoveItems: a file, a link (itself) or a folder with everything in it; gone already is
    /// fine. The backup folder itself is never removed.
    pub fn remove(&self, path: &str) -> io::Result<()> {
        if self.components(path)?.is_empty() {
            return Err(refused(path, "the backup folder itself cannot be removed"));
        }
        let local = self.resolve(path)?;
        let result = match fs::symlink_metadata(&local) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&local),
            Ok(_) => fs::remove_file(&local),
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// CopyItem: a regular file or a folder of them; links and special files are refused.
    pub fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        let source = self.resolve(from)?;
        let target = self.resolve(to)?;
        copy_tree(&source, &target)
    }

    /// ContentsOfDirectory: the folder's entries (links and special files left out).
    pub fn list(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        let local = self.resolve(path)?;
        let meta = fs::symlink_metadata(&local)?;
        if meta.file_type().is_symlink() {
            return Err(link_refused(&local));
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(&local)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.ends_with(PART_SUFFIX) {
                continue;
            }
            let meta = entry.metadata()?;
            if !(meta.is_dir() || meta.is_file()) || meta.file_type().is_symlink() {
                continue;
            }
            entries.push(DirEntry {
                name,
                is_dir: meta.is_dir(),
                size: meta.len(),
                modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// A regular file of the folder, opened without following a link.
    pub fn open_read(&self, path: &str) -> io::Result<File> {
        let local = self.resolve(path)?;
        let file = open_no_follow(&local)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", local.display()),
            ));
        }
        Ok(file)
    }

    /// Writes a whole file under a temporary name, then gives it its name (replacing a file,
    /// never a folder or what a link points to).
    pub fn write_file(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let mut part = PartFile::create(self.resolve(path)?)?;
        part.file.write_all(bytes)?;
        part.file.sync_all()?;
        part.finish()
    }
}

/// Opens a file for reading; a link at the end is refused.
fn open_no_follow(path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    link_refused(path)
                } else {
                    e
                }
            })
    }
    #[cfg(not(unix))]
    {
        if fs::symlink_metadata(path)?.file_type().is_symlink() {
            return Err(link_refused(path));
        }
        File::open(path)
    }
}

/// Copies a regular file or a folder tree; links and special files are refused.
pub(crate) fn copy_tree(source: &Path, target: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(source)?;
    if meta.file_type().is_symlink() {
        return Err(link_refused(source));
    }
    if meta.is_dir() {
        match fs::create_dir(target) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        for entry in fs::read_dir(source)? {
            let entry = entry?;
            copy_tree(&entry.path(), &target.join(entry.file_name()))?;
        }
        Ok(())
    } else if meta.is_file() {
        let mut from = open_no_follow(source)?;
        let mut part = PartFile::create(target.to_path_buf())?;
        io::copy(&mut from, &mut part.file)?;
        part.finish()
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file or folder", source.display()),
        ))
    }
}

/// A file being written under `<name>.ibackup-part`.
struct PartFile {
    file: File,
    part: PathBuf,
    target: PathBuf,
}

impl PartFile {
    fn create(target: PathBuf) -> io::Result<Self> {
        if let Ok(m) = fs::symlink_metadata(&target) {
            if m.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a folder", target.display()),
                ));
            }
        }
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(PART_SUFFIX);
        let part = target.with_file_name(name);
        // A part left by an interrupted run is ibackup's own: start it again.
        match fs::remove_file(&part) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&part)?;
        Ok(PartFile { file, part, target })
    }

    /// Gives the file its name (a rename replaces a file or a link itself, never its target).
    fn finish(self) -> io::Result<()> {
        drop(self.file);
        fs::rename(&self.part, &self.target)
    }

    fn abandon(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.part);
    }
}

/// The [`FileSource`] of a download from a [`Confined`] folder.
pub struct Source<'a>(pub &'a Confined);

impl FileSource for Source<'_> {
    fn open(&mut self, path: &str) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.0.open_read(path)?))
    }
}

/// Counters the progress display reads while files arrive.
#[derive(Default)]
pub struct Counters {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
}

/// The [`FileSink`] of an upload into a [`Confined`] folder.
pub struct Receiver<'a> {
    folder: &'a Confined,
    current: Option<PartFile>,
    counters: &'a Counters,
}

impl<'a> Receiver<'a> {
    pub fn new(folder: &'a Confined, counters: &'a Counters) -> Self {
        Receiver {
            folder,
            current: None,
            counters,
        }
    }
}

impl FileSink for Receiver<'_> {
    fn begin(&mut self, path: &str) -> io::Result<()> {
        if let Some(previous) = self.current.take() {
            previous.abandon();
        }
        self.current = Some(PartFile::create(self.folder.resolve(path)?)?);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let part = self
            .current
            .as_mut()
            .ok_or_else(|| io::Error::other("data before a file name"))?;
        part.file.write_all(data)?;
        self.counters
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let part = self
            .current
            .take()
            .ok_or_else(|| io::Error::other("the end of a file that did not begin"))?;
        part.finish()?;
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn abandon(&mut self) {
        if let Some(part) = self.current.take() {
            part.abandon();
        }
    }
}

impl Drop for Receiver<'_> {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// The free bytes for an unprivileged writer on the file system holding `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid NUL-terminated path and a statvfs the call fills.
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(clippy::unnecessary_cast)]
        Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
    }
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStrExt;
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        let mut available = 0u64;
        // SAFETY: a NUL-terminated wide path and an out value the call fills; the other
        // outputs are optional.
        let ok = unsafe {
            windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW(
                wide.as_ptr(),
                &mut available,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(available)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        Err(io::Error::new(io::ErrorKind::Unsupported, "free space"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "00008110-001A2B3C4D5E801E";

    fn folder() -> (tempfile::TempDir, Confined) {
        let dir = tempfile::TempDir::new().unwrap();
        let root = dir.path().join("work");
        fs::create_dir(&root).unwrap();
        let confined = Confined::new(root, U);
        (dir, confined)
    }

    #[test]
    fn phone_paths_stay_inside() {
        let (_dir, f) = folder();
        assert!(f.components(U).unwrap().is_empty());
        assert_eq!(
            f.components(&format!("{U}/Snapshot/ab/ab12")).unwrap(),
            vec!["Snapshot", "ab", "ab12"]
        );
        for hostile in [
            "/etc/passwd".to_string(),
            "OTHER/Status.plist".to_string(),
            format!("{U}/../escape"),
            format!("{U}/Snapshot/../../x"),
            format!("{U}//x"),
            format!("{U}/./x"),
            format!("{U}/a\\..\\..\\x"),
            format!("{U}/C:x"),
            format!("{U}/new\nline"),
            format!("{U}/x{PART_SUFFIX}"),
            format!("{U}/{}", "a".repeat(2000)),
            format!("{U}x/Status.plist"),
        ] {
            let err = f.components(&hostile).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{hostile:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn links_are_never_followed() {
        let (dir, f) = folder();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, f.root().join("ab")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), f.root().join("Status.plist")).unwrap();
        fs::write(outside.join("secret"), b"do not send").unwrap();
        // Through a linked folder: refused for every operation.
        let through = format!("{U}/ab/ab12");
        let counters = Counters::default();
        let mut receiver = Receiver::new(&f, &counters);
        assert!(receiver.begin(&through).is_err());
        assert!(f.create_dir(&format!("{U}/ab/cd")).is_err());
        assert!(f.list(&format!("{U}/ab")).is_err());
        // A linked file is not read, and writing its name replaces the link, not the target.
        assert!(f.open_read(&format!("{U}/Status.plist")).is_err());
        f.write_file(&format!("{U}/Status.plist"), b"new").unwrap();
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"do not send");
        assert!(!fs::symlink_metadata(f.root().join("Status.plist"))
            .unwrap()
            .file_type()
            .is_symlink());
        // Removing the link removes the link only.
        f.remove(&format!("{U}/ab")).unwrap();
        assert!(outside.exists());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn a_received_file_takes_its_name_only_when_complete() {
        let (_dir, f) = folder();
        f.create_dir(&format!("{U}/Snapshot/ab")).unwrap();
        let counters = Counters::default();
        let mut receiver = Receiver::new(&f, &counters);
        let name = format!("{U}/Snapshot/ab/ab12");
        receiver.begin(&name).unwrap();
        receiver.write(b"half").unwrap();
        let target = f.root().join("Snapshot/ab/ab12");
        assert!(!target.exists());
        receiver.finish().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"half");
        receiver.begin(&format!("{U}/Snapshot/ab/ab13")).unwrap();
        receiver.write(b"cut").unwrap();
        drop(receiver);
        let left: Vec<_> = fs::read_dir(f.root().join("Snapshot/ab"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["ab12"]);
        assert_eq!(counters.files.load(Ordering::Relaxed), 1);
        assert_eq!(counters.bytes.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn moves_replace_folders_and_removes_tolerate_absence() {
        let (_dir, f) = folder();
        f.create_dir(&format!("{U}/Snapshot/ab")).unwrap();
        f.write_file(&format!("{U}/Snapshot/ab/ab12"), b"x")
            .unwrap();
        f.create_dir(&format!("{U}/ab/old")).unwrap();
        f.move_item(&format!("{U}/Snapshot/ab"), &format!("{U}/ab"))
            .unwrap();
        assert!(f.root().join("ab/ab12").is_file());
        assert!(!f.root().join("ab/old").exists());
        f.remove(&format!("{U}/Snapshot")).unwrap();
        f.remove(&format!("{U}/Snapshot")).unwrap();
        assert!(f.remove(U).is_err());
        assert!(f.move_item(U, &format!("{U}/x")).is_err());
        f.copy(&format!("{U}/ab"), &format!("{U}/cd")).unwrap();
        assert_eq!(fs::read(f.root().join("cd/ab12")).unwrap(), b"x");
        let listed = f.list(U).unwrap();
        let names: Vec<_> = listed.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["ab", "cd"]);
        assert!(listed.iter().all(|e| e.is_dir));
    }

    #[test]
    fn free_space_is_known() {
        let (dir, _) = folder();
        assert!(free_space(dir.path()).unwrap() > 0);
    }
}
