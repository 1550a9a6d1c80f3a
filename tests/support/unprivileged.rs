//! Running `ibackup` as a user that file permissions apply to. Root reads a mode-000 file all the
//! same, so a test of "permission denied" run as root (as CI does) would prove nothing. As root,
//! [`unprivileged_command`] wraps the command in `setpriv` to user and group 65534 (nobody) with no
//! supplementary groups, and runs a link to (or copy of) the binary kept in a 0755 folder under
//! /tmp, which that user can reach. Not as root, the command runs as it is. The folders such a
//! run reads must be reachable by that user too: make them under [`reachable_tempdir`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The user and group a root test drops to.
pub const UNPRIVILEGED_ID: u32 = 65534;

/// Whether the tests run as root (where permissions do not stop reads).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A temporary folder under /tmp, mode 0755, so the unprivileged user can reach what a test
/// builds inside it (give the folders inside 0755 and the files 0644, the default umask's).
pub fn reachable_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("ibackup-unprivileged-")
        .tempdir_in("/tmp")
        .expect("a temporary folder under /tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `command` run so that file permissions apply: as it is when not root, else through `setpriv`
/// as [`UNPRIVILEGED_ID`]. Fails the test, saying why, when root cannot drop its privileges.
pub fn unprivileged_command(command: Command) -> Command {
    if !is_root() {
        return command;
    }
    let setpriv_runs = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        setpriv_runs,
        "the tests run as root, where file permissions do not stop reads, and `setpriv` \
         (util-linux) is not there to run ibackup as an unprivileged user: install util-linux \
         or run the tests as another user"
    );
    let program = reachable_copy(Path::new(command.get_program()));
    let id = UNPRIVILEGED_ID;
    let mut wrapped = Command::new("setpriv");
    wrapped
        .arg(format!("--reuid={id}"))
        .arg(format!("--regid={id}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// The folder holding the reachable binary, removed when the test process exits.
static REACHABLE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();

/// A hard link to (or, across file systems, a copy of) `program` in a 0755 folder under /tmp.
/// One per test process; the first program asked for is the one kept.
fn reachable_copy(program: &Path) -> PathBuf {
    let (_, copy) = REACHABLE.get_or_init(|| {
        let dir = reachable_tempdir().keep();
        let name = program.file_name().expect("a program file name");
        let copy = dir.join(name);
        if std::fs::hard_link(program, &copy).is_err() {
            std::fs::copy(program, &copy).expect("copy the binary under /tmp");
        }
        extern "C" fn remove_copy() {
            if let Some((dir, _)) = REACHABLE.get() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registers a plain function with no captured state.
        unsafe { libc::atexit(remove_copy) };
        (dir, copy)
    });
    copy.clone()
}
