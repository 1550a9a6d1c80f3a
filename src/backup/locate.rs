//! Where backups are: the default backup folder of each OS (pure functions: OS and environment
//! in, paths out, so every OS is tested on any host), and telling one backup from a folder of
//! backups.
//!
//! Default folders: macOS `~/Library/Application Support/MobileSync/Backup`; Windows
//! `%APPDATA%\Apple Computer\MobileSync\Backup` (iTunes from apple.com) and
//! `%USERPROFILE%\Apple\MobileSync\Backup` (Microsoft Store iTunes, Apple Devices).
//! Linux has no Finder or iTunes, so no default: `IBACKUP_BACKUP_DIR` or a path names one.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::platform::Os;

/// Overrides the default backup folder on every OS.
pub const BACKUP_DIR_ENV: &str = "IBACKUP_BACKUP_DIR";

/// The folders where Finder, iTunes or Apple Devices keep backups on `os`, most likely first.
/// `env` reads an environment variable (empty values count as unset). `IBACKUP_BACKUP_DIR` is
/// taken as it is, even when it is not UTF-8 (a Linux path may be any bytes); the home folders
/// the defaults are built from are used only when they are text.
pub fn default_backup_dirs(os: Os, env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    if let Some(dir) = env(BACKUP_DIR_ENV).filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    let var = |name: &str| {
        env(name)
            .and_then(|v| v.into_string().ok())
            .filter(|v| !v.is_empty())
    };
    let mut dirs = Vec::new();
    match os {
        Os::MacOs => {
            if let Some(home) = var("HOME") {
                let home = home.trim_end_matches('/');
                dirs.push(format!(
                    "{home}/Library/Application Support/MobileSync/Backup"
                ));
            }
        }
        Os::Windows => {
            if let Some(appdata) = var("APPDATA") {
                let appdata = appdata.trim_end_matches('\\');
                dirs.push(format!("{appdata}\\Apple Computer\\MobileSync\\Backup"));
            }
            if let Some(profile) = var("USERPROFILE") {
                let profile = profile.trim_end_matches('\\');
                dirs.push(format!("{profile}\\Apple\\MobileSync\\Backup"));
            }
        }
        Os::Linux | Os::Other => {}
    }
    dirs.into_iter().map(PathBuf::from).collect()
}

/// A path as it was typed on the command line, tidied for `os`. On Windows, cmd.exe hands
/// `"C:\My Backups\"` to the program as `C:\My Backups"`: under the C runtime's rules (which
/// Rust's standard library follows) the backslash before the closing quote escapes it. No
/// Windows file name may hold a `"`, so one at the end can only be that quote, and is dropped;
/// without this the folder would be reported missing under a name the user never typed. Other
/// OSes allow `"` in names: their paths are kept as they are.
pub fn typed_path(arg: &Path, os: Os) -> PathBuf {
    if os == Os::Windows {
        if let Some(kept) = arg.to_str().and_then(|s| s.strip_suffix('"')) {
            return PathBuf::from(kept);
        }
    }
    arg.to_path_buf()
}

/// What a path given on the command line is.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// One backup folder.
    Backup(PathBuf),
    /// A folder holding backups (may hold none).
    Folder(Vec<PathBuf>),
}

/// Whether `path` looks like one backup (as opposed to a folder of backups or anything else).
pub fn is_backup_folder(path: &Path) -> bool {
    looks_like_backup(path).unwrap_or(false)
}

/// Whether `path` holds one of a backup's own files; an error when that cannot be told (the
/// folder may not be looked into). Links are not followed.
fn looks_like_backup(path: &Path) -> io::Result<bool> {
    for name in [
        "Manifest.db",
        "Manifest.plist",
        "Info.plist",
        "Status.plist",
        "Manifest.mbdb",
    ] {
        match path.join(name).symlink_metadata() {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// One backup if `path` looks like one, otherwise the backups directly inside it.
pub fn classify(path: &Path) -> io::Result<Target> {
    if is_backup_folder(path) {
        return Ok(Target::Backup(path.to_path_buf()));
    }
    Ok(Target::Folder(backups_in(path)?))
}

/// The backup folders directly inside `folder`, by name. A folder that cannot be looked into
/// (no permission) is listed too: whether it is a backup cannot be told, and checking it names
/// it with the reason, where skipping it would hide a backup.
pub fn backups_in(folder: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        // A backup moved to another disk and linked back is still a backup: follow the link to
        // see what it points at (only ever to read it). A dangling link is skipped.
        let is_dir = kind.is_dir()
            || (kind.is_symlink() && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()));
        if is_dir && looks_like_backup(&entry.path()).unwrap_or(true) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).map(OsString::from)
    }

    fn strings(dirs: Vec<PathBuf>) -> Vec<String> {
        dirs.into_iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn macos_default() {
        assert_eq!(
            strings(default_backup_dirs(
                Os::MacOs,
                env(&[("HOME", "/Users/alex/")])
            )),
            ["/Users/alex/Library/Application Support/MobileSync/Backup"]
        );
        assert!(default_backup_dirs(Os::MacOs, env(&[])).is_empty());
    }

    #[test]
    fn windows_has_two_locations() {
        let vars = env(&[
            ("APPDATA", r"C:\Users\alex\AppData\Roaming"),
            ("USERPROFILE", r"C:\Users\alex"),
        ]);
        assert_eq!(
            strings(default_backup_dirs(Os::Windows, vars)),
            [
                r"C:\Users\alex\AppData\Roaming\Apple Computer\MobileSync\Backup",
                r"C:\Users\alex\Apple\MobileSync\Backup"
            ]
        );
    }

    #[test]
    fn a_quote_escaped_by_a_trailing_backslash_is_dropped_on_windows_only() {
        // What cmd.exe hands over for "C:\My Backups\" (the escaped quote kept, the
        // backslash gone).
        let typed = Path::new(r#"C:\My Backups""#);
        assert_eq!(
            typed_path(typed, Os::Windows),
            PathBuf::from(r"C:\My Backups")
        );
        for os in [Os::MacOs, Os::Linux, Os::Other] {
            assert_eq!(typed_path(typed, os), typed);
        }
        for plain in [r"C:\My Backups", r"D:\b\", "relative\\x", r#"a"b"#] {
            assert_eq!(typed_path(Path::new(plain), Os::Windows), Path::new(plain));
        }
    }

    #[test]
    fn linux_has_none_and_the_variable_wins_everywhere() {
        assert!(default_backup_dirs(Os::Linux, env(&[("HOME", "/home/alex")])).is_empty());
        for os in [Os::MacOs, Os::Windows, Os::Linux, Os::Other] {
            let vars = env(&[(BACKUP_DIR_ENV, "/srv/backups"), ("HOME", "/home/a")]);
            assert_eq!(strings(default_backup_dirs(os, vars)), ["/srv/backups"]);
        }
        let empty = env(&[(BACKUP_DIR_ENV, ""), ("HOME", "/Users/a")]);
        assert_eq!(default_backup_dirs(Os::MacOs, empty).len(), 1);
    }

    /// A backup folder whose name is not UTF-8 is still a folder: the variable is not ignored.
    #[cfg(unix)]
    #[test]
    fn a_backup_dir_that_is_not_utf8_is_used_as_it_is() {
        use std::os::unix::ffi::OsStrExt;
        let raw = std::ffi::OsStr::from_bytes(b"/srv/b\xffckups").to_owned();
        let vars = |name: &str| (name == BACKUP_DIR_ENV).then(|| raw.clone());
        assert_eq!(default_backup_dirs(Os::Linux, vars), [PathBuf::from(&raw)]);
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_backup_is_found_and_a_dangling_link_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let real = elsewhere.path().join("00008110-CCCC");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("Info.plist"), b"").unwrap();
        let folder = dir.path().join("Backup");
        std::fs::create_dir_all(&folder).unwrap();
        std::os::unix::fs::symlink(&real, folder.join("00008110-CCCC")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), folder.join("00008110-DDDD")).unwrap();
        assert_eq!(
            backups_in(&folder).unwrap(),
            vec![folder.join("00008110-CCCC")]
        );
    }

    #[test]
    fn tells_a_backup_from_a_folder_of_backups() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("00008110-AAAA");
        let two = dir.path().join("00008110-BBBB");
        for b in [&one, &two] {
            std::fs::create_dir_all(b).unwrap();
            std::fs::write(b.join("Info.plist"), b"").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("not-a-backup")).unwrap();
        assert_eq!(classify(&one).unwrap(), Target::Backup(one.clone()));
        assert_eq!(
            classify(dir.path()).unwrap(),
            Target::Folder(vec![one, two])
        );
    }

    /// A backup folder that cannot be looked into is listed (checking it then names it with the
    /// reason), never skipped; one that is readable and holds no backup file is left out.
    #[cfg(unix)]
    #[test]
    fn a_folder_that_cannot_be_looked_into_is_listed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::write(locked.join("Info.plist"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("not a backup")).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let found = backups_in(dir.path());
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(found.unwrap(), vec![locked]);
    }
}
