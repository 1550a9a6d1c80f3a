//! What the commands say when the facts are partial or hostile: an unpaired phone (readiness
//! unknown, never "ready"), `--quiet` agreeing with the exit code, an encrypted backup read
//! without its password, unreadable and linked backup folders, a `--device` that is not there,
//! and plain words (no Rust debug text) for broken plists from a backup or a phone.
#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};

use support::{assert_plain_words, write_backup, Ibackup, Run, SimPhone, Spec, SIM_UDID as UDID};
use tempfile::TempDir;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A folder that does not exist: no daemon socket and no pair records are found there.
const NOWHERE: &str = "/nonexistent/ibackup-tests";

/// A complete backup of the simulated phone, made yesterday on its iOS.
fn backup_of_the_phone(dir: &Path) -> PathBuf {
    let path = dir.join(UDID);
    write_backup(
        &path,
        &Spec {
            udid: UDID.into(),
            device_name: "Simulated iPhone".into(),
            date: now() - 86_400,
            files: 12,
            ..Spec::default()
        },
    );
    path
}

/// `ibackup ARGS` with no phone anywhere and `backups` as the default backup folder.
fn without_a_phone(args: &[&str], backups: &Path) -> Run {
    Ibackup::without_phone(args, Path::new(NOWHERE))
        .env("IBACKUP_BACKUP_DIR", backups)
        .run()
}

fn codes(findings: &serde_json::Value) -> Vec<String> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_unpaired_phone_is_not_ready_to_restore_it_is_unknown() {
    let dir = TempDir::new().unwrap();
    let backup = backup_of_the_phone(dir.path());
    let phone = SimPhone::with_profile("unpaired");
    let path = backup.to_str().unwrap();

    let out = phone.ibackup(&["verify", path, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let v = out.json();
    assert_eq!(v["verdict"], "complete");
    assert_eq!(
        v["restore"]["ready"],
        serde_json::Value::Null,
        "{:#}",
        v["restore"]
    );
    assert_eq!(codes(&v["restore"]["findings"]), ["restore.unknown"]);
    assert_eq!(v["restore"]["findings"][0]["fix"]["id"], "pair");

    let text = phone.ibackup(&["verify", path]).stdout();
    assert!(
        text.contains("Cannot tell yet whether it can be restored"),
        "{text}"
    );
    assert!(!text.contains("Ready to restore"), "{text}");
    assert!(text.contains("ibackup pair"), "{text}");
    // The one word agrees with exit 0: the backup is complete.
    let quiet = phone.ibackup(&["verify", path, "-q"]);
    assert_eq!(
        (quiet.code(), quiet.stdout().as_str()),
        (Some(0), "complete\n")
    );

    let inspect = phone.ibackup(&["inspect", path, "--json"]).json_exit(0);
    assert_eq!(inspect["restore"]["ready"], serde_json::Value::Null);
    assert!(codes(&inspect["findings"]).contains(&"restore.unknown".to_string()));
}

#[test]
fn quiet_verify_says_not_restorable_when_it_exits_1() {
    let dir = TempDir::new().unwrap();
    let backup = backup_of_the_phone(dir.path());
    let phone = SimPhone::with_profile("find-my-on");
    let path = backup.to_str().unwrap();
    let quiet = phone.ibackup(&["verify", path, "-q"]);
    assert_eq!(
        (quiet.code(), quiet.stdout().as_str()),
        (Some(1), "not restorable\n")
    );
    let v = phone.ibackup(&["verify", path, "--json"]).json_exit(1);
    assert_eq!(v["restore"]["ready"], false);
    // Without a phone the same backup is simply complete.
    let alone = without_a_phone(&["verify", path, "-q"], dir.path());
    assert_eq!(
        (alone.code(), alone.stdout().as_str()),
        (Some(0), "complete\n")
    );
}

#[test]
fn an_encrypted_backup_without_its_password_asks_for_it_first_and_counts_nothing() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/third-party/synthetic-encrypted-ios26");
    let path = sample.to_str().unwrap();
    let dir = TempDir::new().unwrap();

    let out = without_a_phone(&["verify", path, "--json"], dir.path());
    assert_eq!(out.code(), Some(2));
    let v = out.json();
    assert_eq!(v["manifest_read"], false);
    for count in [
        "listed",
        "present",
        "intact",
        "orphans",
        "directories",
        "symlinks",
    ] {
        assert_eq!(v["files"][count], 0, "files.{count}: {:#}", v["files"]);
    }
    assert_eq!(v["files"]["blobs_on_disk"], 4);

    let text = without_a_phone(&["inspect", path], dir.path()).stdout();
    assert!(text.contains("Contents    not known"), "{text}");
    assert!(!text.contains("0 files"), "{text}");

    let report = without_a_phone(&["inspect", path, "--json"], dir.path()).json_exit(0);
    let found = codes(&report["findings"]);
    assert_eq!(
        found.first().map(String::as_str),
        Some("backup.encrypted_no_password")
    );
    assert!(!found.contains(&"backup.stale".to_string()), "{found:?}");
    assert_eq!(report["findings"][0]["fix"]["id"], "backup-password");
}

#[test]
fn a_backup_folder_that_cannot_be_read_is_an_error_never_no_backups() {
    let dir = TempDir::new().unwrap();
    // A file where the backup folder should be: reading it as a folder fails.
    let not_a_folder = dir.path().join("Backup");
    std::fs::write(&not_a_folder, b"not a folder").unwrap();
    let out = without_a_phone(&["inspect", "--json"], &not_a_folder);
    assert_eq!(out.code(), Some(2), "{}", out.stderr());
    let v = out.json();
    assert_eq!(v["error"]["code"], "backup.unreadable");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(not_a_folder.to_str().unwrap()),
        "{message}"
    );
    let text = without_a_phone(&["inspect"], &not_a_folder);
    assert!(!text.stderr().contains("no backup"), "{}", text.stderr());
    assert!(
        text.stderr().contains("cannot read the backup folder"),
        "{}",
        text.stderr()
    );
}

/// Runs `ibackup` as an unprivileged user, so that file permissions apply (root ignores them).
fn as_nobody(args: &[&str], backups: &Path) -> std::process::Output {
    let mut command = Ibackup::without_phone(args, Path::new(NOWHERE))
        .env("IBACKUP_BACKUP_DIR", backups)
        .command();
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        let envs: Vec<_> = command
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        let mut wrapped = std::process::Command::new("setpriv");
        wrapped
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program)
            .args(args);
        for (k, v) in envs {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        command = wrapped;
    }
    command.output().unwrap()
}

#[test]
fn a_backup_folder_without_permission_names_the_folder() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = dir.path().join("Backup");
    std::fs::create_dir(&locked).unwrap();
    backup_of_the_phone(&locked);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = as_nobody(&["inspect"], &locked);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(locked.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("ermission denied"), "{stderr}");
    assert!(!stderr.contains("no backup"), "{stderr}");
}

#[test]
fn a_linked_backup_in_a_folder_of_backups_is_found_and_left_as_it_was() {
    let dir = TempDir::new().unwrap();
    let elsewhere = TempDir::new().unwrap();
    let real = backup_of_the_phone(elsewhere.path());
    let folder = dir.path().join("Backup");
    std::fs::create_dir(&folder).unwrap();
    std::os::unix::fs::symlink(&real, folder.join(UDID)).unwrap();
    let before = support::tree_fingerprint(&real);
    let out = without_a_phone(&["inspect", folder.to_str().unwrap(), "--json"], dir.path());
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let v = out.json();
    assert_eq!(v["backups"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["backups"][0]["verdict"], "complete");
    // Found by default too.
    let v = without_a_phone(&["inspect", "--json"], &folder).json_exit(0);
    assert_eq!(v["backups"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(support::tree_fingerprint(&real), before);
}

#[test]
fn a_device_that_is_not_connected_is_said_to_be_missing() {
    let dir = TempDir::new().unwrap();
    let backup = backup_of_the_phone(dir.path());
    let phone = SimPhone::with_profile("default");
    let out = phone.ibackup(&[
        "inspect",
        backup.to_str().unwrap(),
        "--device",
        "00008110-FFFFFFFFFFFFFFFF",
        "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let v = out.json();
    let error = v["device_error"].as_str().unwrap_or_default();
    assert!(error.contains("00008110-FFFFFFFFFFFFFFFF"), "{v:#}");
    assert!(
        error.contains(UDID),
        "names the phones that are there: {error}"
    );
    // And with no phone or daemon at all.
    let alone = without_a_phone(
        &[
            "inspect",
            backup.to_str().unwrap(),
            "--device",
            "ABC",
            "--json",
        ],
        dir.path(),
    )
    .json_exit(0);
    assert!(
        alone["device_error"]
            .as_str()
            .unwrap_or_default()
            .contains("ABC"),
        "{alone:#}"
    );
}

#[test]
fn quiet_inspect_prints_the_findings_alone() {
    let dir = TempDir::new().unwrap();
    let backups = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-backups");
    let full = without_a_phone(&["inspect", backups.to_str().unwrap()], dir.path());
    let quiet = without_a_phone(&["inspect", backups.to_str().unwrap(), "-q"], dir.path());
    assert_eq!(quiet.code(), Some(0));
    let stdout = quiet.stdout();
    assert!(!stdout.is_empty());
    for line in stdout.lines() {
        assert!(
            line.starts_with('✗') || line.starts_with('!') || line.starts_with('i'),
            "not a finding line: {line}"
        );
        assert!(
            full.stdout().contains(&line[line.find(' ').unwrap() + 1..]),
            "{line}"
        );
    }
    assert!(!quiet.stdout().contains("What to do"));
    assert!(quiet.stderr().is_empty(), "{}", quiet.stderr());
}

#[test]
fn broken_plists_are_described_in_plain_words() {
    let dir = TempDir::new().unwrap();
    let backup = backup_of_the_phone(dir.path());
    for broken in [
        &b"<?xml version=\"1.0\"?><plist><dict><key>Device Name</key>"[..],
        &b"<plist><string>x</string><string>y</string></plist>"[..],
    ] {
        std::fs::write(backup.join("Info.plist"), broken).unwrap();
        for args in [["verify", ""], ["inspect", ""]] {
            let out = without_a_phone(&[args[0], backup.to_str().unwrap()], dir.path());
            assert_eq!(out.code(), Some(2));
            assert!(out.stderr().contains("Info.plist"), "{}", out.stderr());
            assert_plain_words(&out.stderr(), "a broken Info.plist");
        }
    }
    // A phone that answers with a broken plist.
    let phone = SimPhone::with_profile("fault-garbage-plist");
    for args in [
        &["device"][..],
        &["device", "--json"],
        &["devices", "--json"],
        &["inspect", backup.to_str().unwrap()],
        &["inspect", backup.to_str().unwrap(), "--json"],
    ] {
        let out = phone.ibackup(args);
        let all = format!("{}{}", out.stdout(), out.stderr());
        assert!(all.contains("property list"), "{args:?}: {all}");
        assert_plain_words(&all, &format!("{args:?} with a garbage-plist phone"));
    }
}

#[test]
fn names_from_a_backup_cannot_drive_the_terminal() {
    let dir = TempDir::new().unwrap();
    let backup = backup_of_the_phone(dir.path());
    // A row renamed to hold escape sequences (window title, clear screen, bell), a carriage
    // return and a right-to-left override; its blob removed so that the name is printed.
    let hostile = "Library/\u{1b}]0;owned\u{7}\u{1b}[2J\r\u{202e}txt.exe";
    let conn = rusqlite::Connection::open(backup.join("Manifest.db")).unwrap();
    let id: String = conn
        .query_row(
            "SELECT fileID FROM Files WHERE flags = 1 LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE Files SET relativePath = ?1 WHERE fileID = ?2",
        rusqlite::params![hostile, id],
    )
    .unwrap();
    drop(conn);
    std::fs::remove_file(backup.join(&id[..2]).join(&id)).unwrap();
    for args in [["verify", "-v"], ["inspect", "-v"]] {
        for color in ["--color=never", "--color=always"] {
            let out = without_a_phone(
                &[args[0], backup.to_str().unwrap(), args[1], color],
                dir.path(),
            );
            let text = out.stdout();
            assert!(text.contains("txt.exe"), "{text}");
            assert!(text.contains("\\u{1b}]0;owned\\u{7}"), "{text}");
            for raw in ['\u{7}', '\r', '\u{202e}'] {
                assert!(
                    !text.contains(raw),
                    "{args:?} {color}: raw {raw:?} in {text:?}"
                );
            }
            assert!(!text.contains("\u{1b}]"), "{args:?} {color}");
            assert!(!text.contains("\u{1b}[2J"), "{args:?} {color}");
        }
    }
    // JSON keeps the name as it is (escaped by JSON itself).
    let v =
        without_a_phone(&["verify", backup.to_str().unwrap(), "--json"], dir.path()).json_exit(1);
    assert!(v.to_string().contains("\\u001b]0;owned"), "{v}");
}
