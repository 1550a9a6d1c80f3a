//! Setting the modification times of a written backup, so a test can say when it was "last
//! written": a backup made yesterday has files from yesterday; one being written has files from
//! seconds ago. Unix only (utimensat without following symlinks).

use std::path::Path;

/// Sets the modification (and access) time of `root` and of everything under it to `unix`
/// seconds, without following symlinks.
#[cfg(unix)]
pub fn set_tree_mtime(root: &Path, unix: i64) {
    use std::os::unix::ffi::OsStrExt;
    let mut stack = vec![root.to_path_buf()];
    let mut all = Vec::new();
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
        all.push(path);
    }
    // Children before their folders: setting a child's time does not touch its folder's, but
    // keep the order anyway so the folder's time is the last one written.
    for path in all.iter().rev() {
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let time = libc::timespec {
            tv_sec: unix as libc::time_t,
            tv_nsec: 0,
        };
        let times = [time, time];
        // SAFETY: `name` is a NUL-terminated path and `times` two timespecs, both outliving the
        // call.
        let rc = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        assert_eq!(rc, 0, "utimensat {}", path.display());
    }
}
