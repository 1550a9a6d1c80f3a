//! Running the `ibackup` binary, the one way every suite does it: a clean, fixed environment
//! (nothing about daemons, pair records, backup folders, passwords or colour leaks in from the
//! machine running the tests), the test's own arguments and variables on top, and the outcome as
//! exit code, stdout, stderr and parsed JSON.

use std::ffi::OsStr;
use std::io::Write;
use std::ops::Deref;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Variables ibackup reads that a test must set on purpose or not at all.
const CLEARED: [&str; 11] = [
    "USBMUXD_SOCKET_ADDRESS",
    "IBACKUP_LOCKDOWN_DIR",
    "IBACKUP_DEVICE_WAIT",
    "IBACKUP_PAIR_TIMEOUT",
    "IBACKUP_TRANSPORT",
    "IBACKUP_USB_EMULATOR",
    "IBACKUP_BACKUP_DIR",
    "IBACKUP_PASSWORD",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
];

/// One run of `ibackup` being set up: `Ibackup::new(args).env(..).run()`.
pub struct Ibackup {
    command: Command,
    stdin: Option<String>,
}

impl Ibackup {
    /// `ibackup ARGS` in the clean environment, stdin empty, no terminal.
    pub fn new<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Ibackup {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ibackup"));
        command.args(args);
        for key in CLEARED {
            command.env_remove(key);
        }
        Ibackup {
            command,
            stdin: None,
        }
    }

    /// `ibackup ARGS` with no phone to be found: no daemon answers at the address it is given
    /// (a socket that does not exist under `scratch`), its pair records are looked for in
    /// `scratch`, and it waits at most a second for a phone.
    pub fn without_phone<S: AsRef<OsStr>>(
        args: impl IntoIterator<Item = S>,
        scratch: &Path,
    ) -> Ibackup {
        Ibackup::new(args)
            .env(
                "USBMUXD_SOCKET_ADDRESS",
                format!("UNIX:{}/no-daemon.sock", scratch.display()),
            )
            .env("IBACKUP_LOCKDOWN_DIR", scratch)
            .env("IBACKUP_DEVICE_WAIT", "1")
    }

    /// [`Ibackup::without_phone`] for a run that needs no folder of its own: the socket and
    /// the pair records are looked for in a folder that does not exist.
    pub fn offline<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Ibackup {
        Ibackup::without_phone(args, Path::new("/nonexistent/ibackup-tests"))
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Ibackup {
        self.command.env(key, value);
        self
    }

    pub fn envs(mut self, env: &[(&str, &str)]) -> Ibackup {
        self.command.envs(env.iter().copied());
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Ibackup {
        self.command.current_dir(dir);
        self
    }

    /// Text the run reads on stdin (a password, say).
    pub fn stdin(mut self, text: &str) -> Ibackup {
        self.stdin = Some(text.to_string());
        self
    }

    /// Runs as a user that file permissions apply to: through `setpriv` when the tests run as
    /// root, as it is otherwise (see unprivileged.rs).
    #[cfg(unix)]
    pub fn unprivileged(mut self) -> Ibackup {
        self.command = super::unprivileged_command(self.command);
        self
    }

    /// Runs in a mount namespace of its own with `plan` applied (see mounts.rs). Check
    /// [`super::private_mounts`] first: where the namespace cannot be made, the run fails.
    #[cfg(target_os = "linux")]
    pub fn in_private_mounts(mut self, plan: &[super::Mount]) -> Ibackup {
        super::in_private_mounts(&mut self.command, plan);
        self
    }

    /// The prepared command, for a test that must spawn and reap the child itself.
    pub fn command(self) -> Command {
        self.command
    }

    /// Runs it to the end.
    pub fn run(mut self) -> Run {
        let Some(text) = self.stdin else {
            return Run {
                output: self.command.output().expect("run ibackup"),
            };
        };
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ibackup");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).expect("write stdin");
        drop(input);
        Run {
            output: child.wait_with_output().expect("wait for ibackup"),
        }
    }
}

/// What a run of `ibackup` gave. Derefs to the raw [`Output`].
pub struct Run {
    pub output: Output,
}

impl Run {
    /// The exit code; None when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stdout(&self) -> String {
        super::stdout(&self.output)
    }

    pub fn stderr(&self) -> String {
        super::stderr(&self.output)
    }

    /// Stdout parsed as JSON ([`super::json_of`]): fails the test, both streams shown, when it
    /// is not.
    pub fn json(&self) -> serde_json::Value {
        super::json_of(&self.output)
    }

    /// Stdout parsed as JSON, once the run is known to have exited with `code`: for a run whose
    /// JSON is all a test reads, so that its exit code is checked all the same.
    #[track_caller]
    pub fn json_exit(&self, code: i32) -> serde_json::Value {
        assert_eq!(
            self.code(),
            Some(code),
            "stdout {}\nstderr {}",
            self.stdout(),
            self.stderr()
        );
        self.json()
    }
}

impl Deref for Run {
    type Target = Output;
    fn deref(&self) -> &Output {
        &self.output
    }
}

/// `ibackup ARGS` in the clean environment.
pub fn ibackup(args: &[&str]) -> Run {
    Ibackup::new(args).run()
}

/// `ibackup ARGS` in the clean environment plus `env`.
pub fn ibackup_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    Ibackup::new(args).envs(env).run()
}

/// `ibackup extract BACKUP --to TO --json EXTRA...` with `env`.
pub fn extract_run(backup: &Path, to: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec![
        "extract",
        backup.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    Ibackup::new(args).envs(env).run()
}
