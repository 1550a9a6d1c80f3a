//! A child run in a mount namespace of its own, so that a test can change what that one process
//! sees of the file system and nothing else: a folder bind-mounted read-only onto itself (the
//! kernel refuses every write there, root's included), a fresh tmpfs laid over a folder, a folder
//! made in such a tmpfs. As root the namespace is made directly; as another user inside a user
//! namespace that maps the user to itself, so the child keeps its own ids. Linux only.
//!
//! Not here: watching a tree for writes (watch.rs) or fingerprinting it (tree.rs).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One change to the child's view, applied in order after the namespace is made.
#[derive(Clone, Debug)]
pub enum Mount {
    /// The folder, bind-mounted onto itself read-only.
    ReadOnly(PathBuf),
    /// An empty tmpfs over the folder, hiding what it held.
    Tmpfs(PathBuf),
    /// A new folder (mode 0755), normally inside a tmpfs laid earlier.
    Mkdir(PathBuf),
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("a path without NUL")
}

/// Writes `text` to the file `path` with raw calls (safe between fork and exec).
fn write_file(path: &CString, text: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed on every path out.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, text.as_ptr().cast(), text.len());
        let error = io::Error::last_os_error();
        libc::close(fd);
        if written != text.len() as isize {
            return Err(error);
        }
    }
    Ok(())
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Arranges for `command` to run in a private mount namespace with `plan` applied. Spawning
/// fails (with the kernel's error) where the namespace cannot be made: see [`private_mounts`].
pub fn in_private_mounts(command: &mut Command, plan: &[Mount]) {
    // Everything the child needs is prepared here: between fork and exec nothing may allocate.
    // SAFETY: getuid, getgid and geteuid have no preconditions.
    let (uid, gid, root) = unsafe { (libc::getuid(), libc::getgid(), libc::geteuid() == 0) };
    let uid_map = format!("{uid} {uid} 1");
    let gid_map = format!("{gid} {gid} 1");
    let files = [
        c_path(Path::new("/proc/self/setgroups")),
        c_path(Path::new("/proc/self/uid_map")),
        c_path(Path::new("/proc/self/gid_map")),
    ];
    let steps: Vec<(Mount, CString)> = plan
        .iter()
        .map(|step| {
            let path = match step {
                Mount::ReadOnly(p) | Mount::Tmpfs(p) | Mount::Mkdir(p) => p,
            };
            (step.clone(), c_path(path))
        })
        .collect();
    let tmpfs = CString::new("tmpfs").unwrap();
    let slash = CString::new("/").unwrap();
    let options = CString::new("mode=0755").unwrap();
    let step_fn = move || -> io::Result<()> {
        // SAFETY: only system calls on NUL-terminated strings made before the fork.
        unsafe {
            if root {
                check(libc::unshare(libc::CLONE_NEWNS))?;
            } else {
                check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS))?;
                write_file(&files[0], b"deny")?;
                write_file(&files[1], uid_map.as_bytes())?;
                write_file(&files[2], gid_map.as_bytes())?;
            }
            // Nothing done below may reach the mounts of the rest of the machine.
            check(libc::mount(
                std::ptr::null(),
                slash.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for (step, path) in &steps {
                match step {
                    Mount::ReadOnly(_) => {
                        check(libc::mount(
                            path.as_ptr(),
                            path.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        ))?;
                        // A remount must keep the flags the mount below locks (nosuid, nodev...),
                        // or a user namespace is refused it.
                        let mut stat: libc::statvfs = std::mem::zeroed();
                        check(libc::statvfs(path.as_ptr(), &mut stat))?;
                        let kept = stat.f_flag
                            & (libc::ST_NOSUID
                                | libc::ST_NODEV
                                | libc::ST_NOEXEC
                                | libc::ST_NOATIME
                                | libc::ST_NODIRATIME
                                | libc::ST_RELATIME);
                        check(libc::mount(
                            std::ptr::null(),
                            path.as_ptr(),
                            std::ptr::null(),
                            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | kept,
                            std::ptr::null(),
                        ))?;
                    }
                    Mount::Tmpfs(_) => check(libc::mount(
                        tmpfs.as_ptr(),
                        path.as_ptr(),
                        tmpfs.as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        options.as_ptr().cast(),
                    ))?,
                    Mount::Mkdir(_) => check(libc::mkdir(path.as_ptr(), 0o755))?,
                }
            }
        }
        Ok(())
    };
    // SAFETY: the closure makes system calls only; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(step_fn);
    }
}

/// Whether this machine lets the tests make private mount namespaces (root: `unshare`; other
/// users: unprivileged user namespaces), probed once by laying a tmpfs over a scratch folder
/// in a child. The error says why not.
pub fn private_mounts() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
            let mut probe = Command::new("true");
            in_private_mounts(&mut probe, &[Mount::Tmpfs(scratch.path().to_path_buf())]);
            match probe.status() {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(format!("the probe child ended with {status}")),
                Err(e) => Err(format!(
                    "a private mount namespace cannot be made here: {e}"
                )),
            }
        })
        .clone()
}
