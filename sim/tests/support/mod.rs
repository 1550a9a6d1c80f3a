//! Runs the `ibackup-sim` binary as a child process, for the tests of the binary itself: start
//! it on an address, wait for its `ready` line, end it (by its own process id) when dropped.
//! ibackup's own tests run the simulator in-process instead (tests/support/phone.rs).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running simulator.
pub struct SimProcess {
    child: Child,
    /// The value for `USBMUXD_SOCKET_ADDRESS` that reaches it.
    pub address: String,
}

impl SimProcess {
    /// Starts `binary --listen listen [--profile profile]` and waits up to 30 s for `ready`.
    pub fn start(binary: &Path, listen: &str, profile: Option<&Path>) -> std::io::Result<Self> {
        Self::start_with(binary, listen, profile, &[])
    }

    /// Like [`SimProcess::start`], with more arguments (`--usb`, `--usb-fault ...`).
    pub fn start_with(
        binary: &Path,
        listen: &str,
        profile: Option<&Path>,
        extra: &[&str],
    ) -> std::io::Result<Self> {
        let mut command = Command::new(binary);
        command.arg("--listen").arg(listen);
        if let Some(profile) = profile {
            command.arg("--profile").arg(profile);
        }
        command.args(extra);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("ready") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "ibackup-sim did not start: {line:?}"
            )));
        }
        let address = words.next().unwrap_or(listen).to_string();
        Ok(SimProcess { child, address })
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
