//! Measuring one run of the `ibackup` binary, as the hostile suites do: stdin empty, stdout and
//! stderr read on threads (so a full pipe never stalls it), killed once a time has passed,
//! optionally with its address space capped and under another umask; the outcome is its exit
//! code, output, time and peak resident memory (`ru_maxrss` from `wait4`), with the assertions
//! every hostile case shares. Unix only. Not here: a run whose output is all a test needs
//! (run.rs), or the command line and environment of a run (`Ibackup` builds the `Command`).
//!
//! Why the test process must stay small: Linux carries the memory of the process a child was
//! started from into the child's `ru_maxrss`. A child made by `fork` starts with the pages the
//! test process holds at that moment; one made by `posix_spawn` or `vfork` (what std's `Command`
//! does unless a `pre_exec` hook forces a fork) execs out of the test process's own address
//! space and is charged that process's peak so far, even when that memory was freed long before.
//! Measured on Linux 6.18 with `/bin/true` as the child: a test process that had held 300 MB
//! and dropped it passed 300 MB to a posix-spawned child and 1 MB to a forked one; one still
//! holding 300 MB passed them to both. In hostile_output.rs, whose tests build 60 MB values,
//! every posix-spawned run measured 379 MB, the test process's peak, against 186 to 258 MB
//! forked. (The suites first assumed the opposite, that spawning without a fork kept the test
//! process out of the figure.) So [`Measure::run`] always forks, its `pre_exec` hook also
//! setting the limits, and the tests keep what they hold small while a run is measured,
//! counting every test of the same binary, which share the process: large fixtures are written
//! sparse or by another process, large files are streamed rather than read whole
//! (`tree_fingerprint`), and large output is counted rather than kept
//! ([`Measure::count_stdout`]).

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one run of a hostile case may take.
pub const TIME_LIMIT: Duration = Duration::from_secs(5);
/// The peak resident memory one run may reach, in KiB (200 MiB).
pub const MEMORY_LIMIT_KIB: i64 = 200 * 1024;

/// One run being set up: `Measure::new(command).kill_after(..).run()`.
pub struct Measure {
    command: Command,
    kill_after: Option<Duration>,
    address_space: Option<u64>,
    umask: Option<u32>,
    keep_stdout: bool,
}

impl Measure {
    /// `command` run to its end, however long that takes (see [`Measure::kill_after`]), with
    /// stdin empty and both outputs kept.
    pub fn new(command: Command) -> Measure {
        Measure {
            command,
            kill_after: None,
            address_space: None,
            umask: None,
            keep_stdout: true,
        }
    }

    /// Kills the run once `after` has passed; it then has no exit code. Make it longer than the
    /// time a test asserts, so a slow run fails on its time, with its output, not on the kill.
    pub fn kill_after(mut self, after: Duration) -> Measure {
        self.kill_after = Some(after);
        self
    }

    /// Caps the run's address space at `bytes` (`RLIMIT_AS`, what `ulimit -v` sets), so a run
    /// that reads a device or a huge file into memory fails at once instead of taking the
    /// machine's memory.
    pub fn address_space(mut self, bytes: u64) -> Measure {
        self.address_space = Some(bytes);
        self
    }

    /// Runs under `mask` instead of the test process's umask.
    pub fn umask(mut self, mask: u32) -> Measure {
        self.umask = Some(mask);
        self
    }

    /// Counts the bytes written to stdout without keeping them: for output large enough to
    /// weigh on the test process (whose memory counts in what the next runs measure).
    pub fn count_stdout(mut self) -> Measure {
        self.keep_stdout = false;
        self
    }

    /// Runs it, reaps it with `wait4` and says how it went.
    // The child is reaped by wait4 (which also reports its peak memory), not by Child::wait.
    #[allow(clippy::zombie_processes)]
    pub fn run(self) -> Measured {
        let Measure {
            mut command,
            kill_after,
            address_space,
            umask,
            keep_stdout,
        } = self;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec the hook calls only setrlimit, umask and reads errno,
        // all async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if let Some(bytes) = address_space {
                    let limit = libc::rlimit {
                        rlim_cur: bytes as libc::rlim_t,
                        rlim_max: bytes as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(mask) = umask {
                    libc::umask(mask as libc::mode_t);
                }
                Ok(())
            });
        }
        let start = Instant::now();
        let mut child = command.spawn().expect("start ibackup");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let stdout = thread::spawn(move || drain(stdout, keep_stdout));
        let stderr = thread::spawn(move || drain(stderr, true));
        let (status, usage) = reap(&mut child, start, kill_after);
        let (stdout, stdout_bytes) = stdout.join().expect("stdout reader");
        let (stderr, _) = stderr.join().expect("stderr reader");
        Measured {
            code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
            stdout,
            stdout_bytes,
            stderr,
            elapsed: start.elapsed(),
            max_rss_kib: usage.ru_maxrss,
        }
    }
}

/// Reads `stream` to its end: the text (empty unless `keep`) and the number of bytes.
fn drain(mut stream: impl Read, keep: bool) -> (String, usize) {
    let (mut kept, mut total, mut buf) = (Vec::new(), 0, vec![0u8; 1 << 16]);
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                if keep {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), total)
}

/// Waits for `child` with `wait4`, killing it once `kill_after` has passed since `start`; its
/// wait status and resource usage.
fn reap(
    child: &mut Child,
    start: Instant,
    kill_after: Option<Duration>,
) -> (libc::c_int, libc::rusage) {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, valid when all zeroes.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut wait = |options: libc::c_int| {
        // SAFETY: wait4 on our own child, not reaped yet, with valid out-pointers.
        let done = unsafe { libc::wait4(pid, &mut status, options, &mut usage) };
        if done < 0 {
            let error = io::Error::last_os_error();
            assert_eq!(error.kind(), io::ErrorKind::Interrupted, "wait4: {error}");
        }
        done == pid
    };
    match kill_after {
        None => while !wait(0) {},
        Some(limit) => loop {
            if wait(libc::WNOHANG) {
                break;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                while !wait(0) {}
                break;
            }
            thread::sleep(Duration::from_millis(5));
        },
    }
    (status, usage)
}

/// How a measured run went.
pub struct Measured {
    /// The exit code; None when a signal ended the run (the kill past its time, say).
    pub code: Option<i32>,
    /// What it printed on stdout; empty when only counted ([`Measure::count_stdout`]).
    pub stdout: String,
    /// How many bytes it printed on stdout.
    pub stdout_bytes: usize,
    pub stderr: String,
    /// From the start to the end of the run and of its output.
    pub elapsed: Duration,
    /// Peak resident memory, in KiB (`ru_maxrss`; see the module's note on what it counts).
    pub max_rss_kib: i64,
}

impl Measured {
    /// Stdout then stderr, as one text.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Stdout parsed as JSON; fails the test, both streams shown, when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// What every hostile case must give: an exit with `code` (one: a test that accepts two
    /// answers accepts a broken ibackup giving the other) in less than `limit`, no panic, a
    /// peak below [`MEMORY_LIMIT_KIB`], and plain words (no Rust debug text).
    pub fn assert_exit(&self, code: i32, limit: Duration, what: &str) {
        assert!(
            self.elapsed < limit,
            "{what}: took {:?} (limit {limit:?}); stdout {}\nstderr {}",
            self.elapsed,
            self.stdout,
            self.stderr
        );
        let exited = self.code.unwrap_or_else(|| {
            panic!(
                "{what}: did not exit normally; stdout {}\nstderr {}",
                self.stdout, self.stderr
            )
        });
        assert_eq!(
            exited, code,
            "{what}: exited {exited}, expected {code}; stdout {}\nstderr {}",
            self.stdout, self.stderr
        );
        self.assert_no_panic(what);
        self.assert_memory_below(MEMORY_LIMIT_KIB, what);
        // The phone list names each phone's connection as "via usbmuxd (USB)": our words, which
        // the debug-text check would take for a type in brackets.
        let text = self.all().replace("via usbmuxd (USB)", "via usbmuxd");
        super::assert_plain_words(&text, what);
    }

    /// The peak resident memory stayed below `kib`.
    pub fn assert_memory_below(&self, kib: i64, what: &str) {
        assert!(
            self.max_rss_kib < kib,
            "{what}: used {} KiB at its peak (limit {kib} KiB)",
            self.max_rss_kib
        );
    }

    pub fn assert_no_panic(&self, what: &str) {
        assert!(!self.stderr.contains("panicked"), "{what}: {}", self.stderr);
    }
}
