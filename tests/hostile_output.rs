//! What ibackup prints when the names it shows were chosen by an attacker: a backup's rows,
//! folder name and plists, and a phone's name, UDID and connection type. Text output shows every
//! control, bidi and invisible character as a visible escape (a newline in a name can never start
//! a line of ours), cuts each value at 1 KB, and stays small and cheap for huge values; JSON keeps
//! every value exactly. Also: a failed write to stdout is an error, a closed pipe is not.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::{Ibackup, Run, SimPhone, Spec};
#[cfg(unix)]
use support::{Measure, Measured};

/// A name as an attacker would write it: an OSC retitle, clear-screen and colour sequences, CR
/// and BS, bidi and zero-width characters, C1 controls (NEL, CSI), and a newline followed by a
/// forged verdict line.
const HOSTILE: &str = "Evil\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31m\r\u{8}\u{202e}\u{2066}\u{2069}\
                       \u{200b}\u{feff}\u{85}\u{9b}2J\nComplete: all 999 files are present";
/// How the forged line shows once escaped.
const FORGED_SHOWN: &str = "\\nComplete: all 999 files are present";

/// Fails when `text` holds a character that could act on a terminal or hide text: any control
/// character but the newlines between our own lines (no colour is asked for), a bidi, zero-width
/// or line-separator character; or when a line starts with the forged verdict.
fn assert_clean(text: &str, what: &str) {
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' | '\u{feff}');
        assert!(!bad, "{what}: raw {c:?} in:\n{text}");
    }
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("Complete: all 999"),
            "{what}: a forged line:\n{text}"
        );
    }
}

/// [`assert_clean`], and the hostile value was shown (escaped), not dropped.
fn assert_shown_clean(text: &str, what: &str) {
    assert_clean(text, what);
    assert!(
        text.contains(FORGED_SHOWN),
        "{what}: the value is not shown:\n{text}"
    );
}

/// Nothing in an incomplete backup's report may read as the completeness line.
fn assert_no_complete_line(text: &str, what: &str) {
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("Complete"),
            "{what}: a line that says complete:\n{text}"
        );
    }
}

fn run(args: &[&str], scratch: &Path) -> Run {
    Ibackup::without_phone(args, scratch).run()
}

/// An incomplete backup (one blob missing) in `dir`, plus one more row whose domain and path are
/// hostile and whose blob is missing too, so the report names it.
fn backup_with_hostile_row(dir: &Path) -> PathBuf {
    let backup = dir.join("b");
    support::write_backup(&backup, &Spec::default());
    support::add_file_row(&backup, &format!("HomeDomain{HOSTILE}"), HOSTILE, 12);
    backup
}

#[test]
fn a_manifest_row_cannot_forge_a_line_or_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_with_hostile_row(dir.path());
    let b = backup.to_str().unwrap();

    let verify = run(&["verify", b], dir.path());
    assert_eq!(verify.code(), Some(1), "{}", verify.stderr());
    assert_shown_clean(&verify.stdout(), "verify");
    assert_no_complete_line(&verify.stdout(), "verify");
    let verbose = run(&["verify", b, "-v"], dir.path());
    assert_eq!(verbose.code(), Some(1), "{}", verbose.stderr());
    assert_shown_clean(&verbose.stdout(), "verify -v");
    assert_no_complete_line(&verbose.stdout(), "verify -v");

    let inspect = run(&["inspect", b], dir.path());
    assert_eq!(inspect.code(), Some(0), "{}", inspect.stderr());
    assert_shown_clean(&inspect.stdout(), "inspect BACKUP");
    assert_no_complete_line(&inspect.stdout(), "inspect BACKUP");
    let folder = run(&["inspect", dir.path().to_str().unwrap()], dir.path());
    assert_eq!(folder.code(), Some(0), "{}", folder.stderr());
    assert_clean(&folder.stdout(), "inspect FOLDER");

    // JSON carries the row exactly as the manifest has it.
    let json = run(&["verify", b, "--json"], dir.path()).json_exit(1);
    let missing = json["files"]["missing"].as_array().unwrap();
    assert!(missing.iter().any(|f| f["path"] == HOSTILE), "{missing:#?}");
}

/// Info.plist's strings, Status.plist's state, and the folder's own name, all hostile.
fn backup_with_hostile_names(parent: &Path) -> PathBuf {
    let backup = parent.join(format!("00008110-000A1B2C3D4E5F60{HOSTILE}"));
    support::write_backup(
        &backup,
        &Spec {
            device_name: HOSTILE.to_string(),
            ..Spec::default()
        }
        .with(support::Defect::MissingBlob),
    );
    let mut info = plist::Value::from_file(backup.join("Info.plist")).unwrap();
    let dict = info.as_dictionary_mut().unwrap();
    for key in ["Product Type", "Product Version", "Build Version"] {
        dict.insert(key.into(), plist::Value::String(format!("17{HOSTILE}")));
    }
    info.to_file_binary(backup.join("Info.plist")).unwrap();
    let mut status = plist::Value::from_file(backup.join("Status.plist")).unwrap();
    status
        .as_dictionary_mut()
        .unwrap()
        .insert("SnapshotState".into(), plist::Value::String(HOSTILE.into()));
    status.to_file_binary(backup.join("Status.plist")).unwrap();
    backup
}

#[test]
fn the_folder_name_and_the_plists_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("Backup");
    let backup = backup_with_hostile_names(&parent);
    let b = backup.to_str().unwrap();

    // A blob is missing: verify finds the backup incomplete (1); inspect reports (0).
    for (args, code) in [
        (vec!["verify", b], 1),
        (vec!["verify", b, "-v"], 1),
        (vec!["inspect", b], 0),
    ] {
        let out = run(&args, dir.path());
        let what = args.join(" ");
        assert_eq!(out.code(), Some(code), "{what}: {}", out.stderr());
        assert_shown_clean(&out.stdout(), &what);
        assert_no_complete_line(&out.stdout(), &what);
        assert_clean(&out.stderr(), &what);
    }
    let folder = run(&["inspect", parent.to_str().unwrap()], dir.path());
    assert_eq!(folder.code(), Some(0), "{}", folder.stderr());
    assert_shown_clean(&folder.stdout(), "inspect FOLDER");

    let json = run(&["verify", b, "--json"], dir.path()).json_exit(1);
    assert_eq!(json["backup"]["device_name"], HOSTILE);
    assert_eq!(json["backup"]["path"], b);
}

#[test]
fn errors_that_name_a_hostile_folder_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("Backup");
    // Not there at all: the error names the path.
    let absent = parent.join(HOSTILE);
    let out = run(&["verify", absent.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(2));
    assert_shown_clean(&out.stderr(), "verify ABSENT (stderr)");
    // A backup whose Manifest.db is garbage, inside a folder of backups: listed as unreadable.
    let broken = parent.join(format!("x{HOSTILE}"));
    support::write_backup(&broken, &Spec::default());
    fs::write(
        broken.join("Manifest.db"),
        b"not a database at all, not at all",
    )
    .unwrap();
    let out = run(&["verify", broken.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(2));
    assert_shown_clean(&out.stderr(), "verify BROKEN (stderr)");
    let folder = run(&["inspect", parent.to_str().unwrap()], dir.path());
    assert_eq!(folder.code(), Some(0), "{}", folder.stderr());
    assert_shown_clean(&folder.stdout(), "inspect FOLDER");
}

/// A phone whose name, UDID (usbmuxd's SerialNumber) and connection type are hostile.
fn hostile_phone() -> SimPhone {
    let profile = serde_json::json!({
        "name": HOSTILE,
        "udid": format!("00008110-001A2B3C4D5E801E{HOSTILE}"),
        "connection_type": format!("USB{HOSTILE}"),
        "product_type": format!("iPhone14,5{HOSTILE}"),
        "ios_version": format!("17.5.1{HOSTILE}"),
        "build_version": format!("21F90{HOSTILE}"),
    });
    SimPhone::builder()
        .profile_json(&profile.to_string())
        .start()
}

#[test]
fn the_phones_values_are_escaped_on_every_page() {
    let phone = hostile_phone();
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_with_hostile_row(dir.path());
    let b = backup.to_str().unwrap();
    let empty = dir.path().join("none");
    fs::create_dir_all(&empty).unwrap();
    // The phone answers: the phone commands and inspect report (0); the backup misses blobs,
    // so verify finds it incomplete (1).
    for (args, code) in [
        (vec!["devices"], 0),
        (vec!["device"], 0),
        (vec!["inspect"], 0),
        (vec!["inspect", b], 0),
        (vec!["verify", b], 1),
    ] {
        let out = phone.command(&args).env("IBACKUP_BACKUP_DIR", &empty).run();
        let what = args.join(" ");
        assert_eq!(out.code(), Some(code), "{what}: {}", out.stderr());
        assert_shown_clean(&out.stdout(), &what);
        assert_clean(&out.stderr(), &what);
    }
    // JSON keeps the phone's values exactly.
    let devices = phone.ibackup(&["devices", "--json"]).json_exit(0);
    assert_eq!(devices["devices"][0]["name"], HOSTILE);
    let device = phone.ibackup(&["device", "--json"]).json_exit(0);
    assert_eq!(device["name"], HOSTILE);
    assert_eq!(device["connection_type"], format!("USB{HOSTILE}"));
}

/// Runs `ibackup ARGS` (no phone), counting what it prints without keeping it.
#[cfg(unix)]
fn measured(args: &[&str], scratch: &Path) -> Measured {
    Measure::new(Ibackup::without_phone(args, scratch).command())
        .count_stdout()
        .run()
}

/// Text output of a page whose values are huge: a few KB. Memory: what reading the value takes,
/// not several copies of it.
#[cfg(unix)]
fn assert_small(run: &Measured, what: &str, max_rss_mb: i64) {
    eprintln!(
        "{what}: exit {:?}, {} bytes out, {} MB peak",
        run.code,
        run.stdout_bytes,
        run.max_rss_kib / 1024
    );
    run.assert_no_panic(what);
    assert!(
        run.stdout_bytes < 64 * 1024,
        "{what}: printed {} bytes",
        run.stdout_bytes
    );
    run.assert_memory_below(max_rss_mb * 1024, what);
}

#[cfg(unix)]
#[test]
fn a_60_mb_device_name_prints_a_few_kb_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let name = "A".repeat(60 << 20);
    let backup = dir.path().join("Backup").join("b");
    support::write_backup(&backup, &Spec::default());
    let mut info = plist::Value::from_file(backup.join("Info.plist")).unwrap();
    info.as_dictionary_mut()
        .unwrap()
        .insert("Device Name".into(), plist::Value::String(name.clone()));
    info.to_file_xml(backup.join("Info.plist")).unwrap();
    let b = backup.to_str().unwrap();
    let parent = dir.path().join("Backup");
    for args in [
        vec!["verify", b],
        vec!["inspect", b],
        vec!["inspect", parent.to_str().unwrap()],
    ] {
        let run = measured(&args, dir.path());
        // The backup itself is whole: only its name is absurd.
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        assert_small(&run, &args.join(" "), 400);
    }
    // JSON carries the name whole, and needs no more memory for it.
    let json = measured(&["verify", b, "--json"], dir.path());
    assert!(json.stdout_bytes > name.len());
    json.assert_memory_below(400 * 1024, "verify --json");
}

/// A backup whose manifest lists a missing file at `path`, so that every page names it.
#[cfg(unix)]
fn backup_missing_a_file_at(dir: &Path, path: &str) -> PathBuf {
    let backup = dir.join("b");
    support::write_backup(&backup, &Spec::default());
    let conn = rusqlite::Connection::open(backup.join("Manifest.db")).unwrap();
    conn.execute(
        "INSERT INTO Files VALUES (?1, 'HomeDomain', ?2, 1, ?3)",
        rusqlite::params![
            support::sha1_hex("huge"),
            path,
            support::mbfile("x", 0o100644, Some(12), None, false)
        ],
    )
    .unwrap();
    backup
}

/// The longest path a manifest row may have (4 KiB) is printed cut at the 1 KB cap, with its
/// length; the backup is still judged (incomplete: its blob is missing).
#[cfg(unix)]
#[test]
fn the_longest_path_a_row_may_have_is_printed_cut_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_missing_a_file_at(dir.path(), &"p".repeat(4096));
    let b = backup.to_str().unwrap();
    for (args, code) in [
        (vec!["verify", b], 1),
        (vec!["verify", b, "-v"], 1),
        (vec!["inspect", b], 0),
    ] {
        let what = args.join(" ");
        let run = Measure::new(Ibackup::without_phone(&args, dir.path()).command()).run();
        assert_eq!(run.code, Some(code), "{what}: {}", run.stderr);
        assert!(
            run.stdout.contains("(4,096 bytes in all)")
                || run.stdout.contains("(4096 bytes in all)"),
            "{what}: the path is not shown cut with its length:\n{}",
            run.stdout
        );
        assert!(
            !run.stdout.contains(&"p".repeat(1100)),
            "{what}: the path was printed past the cap"
        );
    }
}

/// A 60 MB path is refused by the manifest's limits (naming its row, never printing it), at
/// once and in bounded memory.
#[cfg(unix)]
#[test]
fn a_huge_path_in_the_manifest_prints_a_few_kb_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_missing_a_file_at(dir.path(), &"p".repeat(60 << 20));
    let b = backup.to_str().unwrap();
    for args in [
        vec!["verify", b],
        vec!["verify", b, "-v"],
        vec!["inspect", b],
    ] {
        let run = measured(&args, dir.path());
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.len() < 4096,
            "{args:?}: {} bytes on stderr",
            run.stderr.len()
        );
        assert_small(&run, &args.join(" "), 400);
    }
}

/// `ibackup ARGS` with stdout on /dev/full, where every write fails with "no space left".
#[cfg(target_os = "linux")]
fn to_full_disk(command: Ibackup) -> Run {
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = command
        .command()
        .stdin(std::process::Stdio::null())
        .stdout(full)
        .output()
        .unwrap();
    Run { output }
}

#[cfg(target_os = "linux")]
#[test]
fn a_result_that_cannot_be_written_is_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    support::write_backup(&backup, &Spec::default());
    let b = backup.to_str().unwrap();
    let phone = SimPhone::builder().start();
    let runs = [
        (
            "verify --json",
            Ibackup::without_phone(["verify", b, "--json"], dir.path()),
        ),
        ("verify", Ibackup::without_phone(["verify", b], dir.path())),
        (
            "verify -q",
            Ibackup::without_phone(["verify", b, "-q"], dir.path()),
        ),
        (
            "inspect",
            Ibackup::without_phone(["inspect", b], dir.path()),
        ),
        (
            "inspect --json",
            Ibackup::without_phone(["inspect", b, "--json"], dir.path()),
        ),
        ("devices", phone.command(&["devices"])),
        ("device --json", phone.command(&["device", "--json"])),
        ("--help", Ibackup::new(["--help"])),
        ("--version", Ibackup::new(["--version"])),
    ];
    for (what, command) in runs {
        let run = to_full_disk(command);
        assert_eq!(run.code(), Some(2), "{what}: {}", run.stderr());
        assert!(
            run.stderr().contains("error: cannot write the output: "),
            "{what}: {}",
            run.stderr()
        );
        assert!(
            !run.stderr().contains("panicked"),
            "{what}: {}",
            run.stderr()
        );
    }
    // With stderr full as well, the error cannot be said, but it is still exit 2, not a panic.
    let full = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let status = Ibackup::without_phone(["verify", "/nonexistent/backup"], dir.path())
        .command()
        .stdout(full())
        .stderr(full())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

/// `ibackup ARGS` writing into a pipe whose reader is already gone: every write gets EPIPE.
#[cfg(unix)]
fn to_closed_pipe(command: Ibackup) -> Run {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two new descriptors, each then owned exactly once.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let output = command
        .command()
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .output()
        .unwrap();
    Run { output }
}

#[cfg(unix)]
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly_with_the_commands_code() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    support::write_backup(&backup, &Spec::default().with(support::Defect::MissingBlob));
    let b = backup.to_str().unwrap();
    for (args, code) in [
        (vec!["verify", b, "-v"], 1),
        (vec!["verify", b, "--json"], 1),
        (vec!["inspect", b], 0),
        (vec!["--help"], 0),
    ] {
        let run = to_closed_pipe(Ibackup::without_phone(&args, dir.path()));
        assert_eq!(run.code(), Some(code), "{args:?}: {}", run.stderr());
        assert_eq!(run.stderr(), "", "{args:?}");
    }
}

/// The synthetic encrypted sample (fixtures/third-party): small key derivation, known password.
fn encrypted_sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/third-party/synthetic-encrypted-ios26")
}
const SAMPLE_PASSWORD: &str = "test-password-1234";

#[test]
fn a_password_file_is_read_to_its_first_line_only() {
    let dir = tempfile::tempdir().unwrap();
    let sample = encrypted_sample();
    let file = dir.path().join("password.txt");
    fs::write(
        &file,
        format!("{SAMPLE_PASSWORD}\r\nthe old one: hunter2\n"),
    )
    .unwrap();
    let out = run(
        &[
            "verify",
            sample.to_str().unwrap(),
            "--password-file",
            file.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout(), out.stderr());
    let piped = Ibackup::without_phone(
        ["verify", sample.to_str().unwrap(), "--password-file", "-"],
        dir.path(),
    )
    .stdin(&format!("{SAMPLE_PASSWORD}\nsecond line\n"))
    .run();
    assert_eq!(piped.code(), Some(0), "{}", piped.stderr());
}

/// The password prompt on a pseudo-terminal, as a person at a keyboard meets it.
#[cfg(unix)]
mod prompt {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::Child;
    use std::time::{Duration, Instant};

    use super::support::Ibackup;
    use super::{encrypted_sample, SAMPLE_PASSWORD};

    const PROMPT: &str = "Backup password (not shown): ";

    /// A pseudo-terminal: the side the test types on, and the side ibackup gets as its
    /// controlling terminal (kept open here too, to read its settings after ibackup exits).
    struct Pty {
        keyboard: File,
        terminal: OwnedFd,
    }

    fn open_pty() -> Pty {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty fills two new descriptors, each then owned exactly once.
        let done = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(done, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: as above; the keyboard side is non-blocking so the test can poll it. Both
        // sides close on exec: the tests run side by side, and a child spawned for one must
        // not hold the other's terminal open.
        unsafe {
            let flags = libc::fcntl(master, libc::F_GETFL);
            libc::fcntl(master, libc::F_SETFL, flags | libc::O_NONBLOCK);
            for fd in [master, slave] {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            Pty {
                keyboard: File::from_raw_fd(master),
                terminal: OwnedFd::from_raw_fd(slave),
            }
        }
    }

    /// Whether the terminal echoes what is typed now.
    fn echo_on(pty: &Pty) -> bool {
        // SAFETY: tcgetattr fills the struct on success; a zeroed termios is valid.
        let mut settings: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::tcgetattr(pty.terminal.as_raw_fd(), &mut settings) },
            0
        );
        settings.c_lflag & libc::ECHO != 0
    }

    /// `ibackup verify SAMPLE` in its own session, with the pty as its controlling terminal
    /// and as stdin, stdout and stderr, and no other password source.
    fn spawn_on(pty: &Pty, scratch: &std::path::Path) -> Child {
        let sample = encrypted_sample();
        let mut command =
            Ibackup::without_phone(["verify", sample.to_str().unwrap()], scratch).command();
        let fd = || pty.terminal.try_clone().unwrap();
        command.stdin(fd()).stdout(fd()).stderr(fd());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // As a shell starts a job in the foreground: the keyboard's signals do what
                // they do by default, even when this test runs where they are ignored (a job
                // started in the background by a script inherits SIGINT ignored, and ibackup
                // rightly leaves an ignored signal ignored).
                for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(signal, libc::SIG_DFL);
                }
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn().unwrap()
    }

    /// Reads what the terminal shows until `done` says so (or ten seconds pass).
    fn read_until(pty: &mut Pty, seen: &mut Vec<u8>, mut done: impl FnMut(&[u8]) -> bool) {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while !done(seen) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited in vain; the terminal shows: {:?}",
                String::from_utf8_lossy(seen)
            );
            match pty.keyboard.read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// Waits for the child, reading the terminal meanwhile so its output never blocks it.
    fn finish(pty: &mut Pty, mut child: Child, seen: &mut Vec<u8>) -> std::process::ExitStatus {
        let mut status = None;
        read_until(pty, seen, |_| {
            status = status.or_else(|| child.try_wait().unwrap());
            status.is_some()
        });
        // What it printed last.
        std::thread::sleep(Duration::from_millis(20));
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pty.keyboard.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
        status.unwrap()
    }

    #[test]
    fn a_password_typed_the_instant_the_prompt_appears_is_never_shown() {
        let scratch = tempfile::tempdir().unwrap();
        // The race this guards against is narrow (a prompt shown before echo goes off lost it
        // in about one run of three): try it a dozen times.
        for attempt in 0..12 {
            let mut pty = open_pty();
            let child = spawn_on(&pty, scratch.path());
            let mut seen = Vec::new();
            read_until(&mut pty, &mut seen, |s| contains(s, PROMPT));
            assert!(
                !echo_on(&pty),
                "attempt {attempt}: echo on while the prompt shows"
            );
            pty.keyboard
                .write_all(format!("{SAMPLE_PASSWORD}\n").as_bytes())
                .unwrap();
            let status = finish(&mut pty, child, &mut seen);
            let shown = String::from_utf8_lossy(&seen);
            assert!(
                !shown.contains(SAMPLE_PASSWORD),
                "attempt {attempt}: the password was echoed:\n{shown}"
            );
            assert_eq!(status.code(), Some(0), "attempt {attempt}:\n{shown}");
            assert!(shown.contains("Complete:"), "{shown}");
            assert!(echo_on(&pty), "attempt {attempt}: echo left off");
        }
    }

    #[test]
    fn ctrl_c_at_the_prompt_puts_echo_back() {
        let scratch = tempfile::tempdir().unwrap();
        let mut pty = open_pty();
        assert!(echo_on(&pty));
        let child = spawn_on(&pty, scratch.path());
        let mut seen = Vec::new();
        read_until(&mut pty, &mut seen, |s| contains(s, PROMPT));
        assert!(!echo_on(&pty), "echo on while the prompt shows");
        // Half a password, then Ctrl-C (the terminal turns it into SIGINT).
        pty.keyboard.write_all(b"half-typ").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!echo_on(&pty));
        pty.keyboard.write_all(b"\x03").unwrap();
        let status = finish(&mut pty, child, &mut seen);
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
        assert!(echo_on(&pty), "Ctrl-C left the terminal with echo off");
        assert!(!contains(&seen, "half-typ"));
    }
}
