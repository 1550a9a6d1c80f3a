//! The files of a backup that are not what they should be (issue 12, backup side): a plist or
//! Manifest.mbdb that is a FIFO or a link to a device, a blob that is a link, and files and
//! folders ibackup may not read. Each run answers with its exact exit code in under five seconds
//! and 200 MB, names the file at fault, never blocks the other backups of a folder, and leaves
//! the folders as they were. (The same special files, one backup each, are also in the hostile
//! corpus, tests/hostile/make_hostile.py.)
//!
//! Permissions do not stop root, so the "permission denied" runs go through
//! `Ibackup::unprivileged` (setpriv to an unprivileged user when the tests run as root).

#![cfg(unix)]

mod support;
mod support_encrypt;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{blob_of, mkfifo, Ibackup, Measure, Measured, Spec, TIME_LIMIT};

/// Runs `ibackup`, killed after twice the time limit, and checks the exit code, the time, the
/// peak memory, that nothing panicked and that it printed plain words.
fn run(what: &str, ibackup: Ibackup, expected: i32) -> Measured {
    let outcome = Measure::new(ibackup.command())
        .kill_after(TIME_LIMIT * 2)
        .run();
    outcome.assert_exit(expected, TIME_LIMIT, what);
    outcome
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn backup(folder: &Path, name: &str) -> PathBuf {
    let path = folder.join(name);
    support::write_backup(&path, &Spec::default());
    path
}

/// The first regular blob of a backup written by `support::write_backup`.
fn some_blob(backup: &Path) -> PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(backup)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 2 && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .map(|e| e.path())
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() > 0))
        .expect("a blob")
}

/// Backups whose plists or Manifest.mbdb are FIFOs or links to devices, by folder name, with
/// the words the reason must hold.
fn special_file_backups(folder: &Path) -> Vec<(&'static str, &'static str)> {
    let cases: [(&str, &str, &str, Option<&str>); 6] = [
        ("manifest-plist-fifo", "Manifest.plist", "FIFO", None),
        (
            "info-plist-urandom",
            "Info.plist",
            "symbolic link",
            Some("/dev/urandom"),
        ),
        (
            "status-plist-zero",
            "Status.plist",
            "symbolic link",
            Some("/dev/zero"),
        ),
        ("mbdb-fifo", "Manifest.mbdb", "FIFO", None),
        (
            "mbdb-zero",
            "Manifest.mbdb",
            "symbolic link",
            Some("/dev/zero"),
        ),
        (
            "mbdb-urandom",
            "Manifest.mbdb",
            "symbolic link",
            Some("/dev/urandom"),
        ),
    ];
    let mut names = Vec::new();
    for (name, file, reason, link) in cases {
        let path = backup(folder, name);
        if file == "Manifest.mbdb" {
            // An iOS 5-9 backup as far as the folder shows: its file list is Manifest.mbdb.
            std::fs::remove_file(path.join("Manifest.db")).unwrap();
        }
        let target = path.join(file);
        let _ = std::fs::remove_file(&target);
        match link {
            Some(device) => std::os::unix::fs::symlink(device, &target).unwrap(),
            None => mkfifo(&target),
        }
        names.push((name, reason));
    }
    names
}

/// The backups an inspect report lists, and its errors as (path, code, message).
fn listed(report: &Value) -> (Vec<String>, Vec<(String, String, String)>) {
    let backups = report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup"]["path"].as_str().unwrap().to_string())
        .collect();
    let errors = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("path"), s("code"), s("message"))
        })
        .collect();
    (backups, errors)
}

/// Every bad backup is named among the errors with its reason; the good one is reported.
fn assert_others_reported(
    what: &str,
    report: &Value,
    folder: &Path,
    good: &Path,
    bad: &[(&str, &str)],
) {
    let (backups, errors) = listed(report);
    assert_eq!(backups, [good.display().to_string()], "{what}: {report:#}");
    assert_eq!(errors.len(), bad.len(), "{what}: {report:#}");
    for (name, reason) in bad {
        let path = folder.join(name).display().to_string();
        let (_, code, message) = errors
            .iter()
            .find(|(p, _, _)| *p == path)
            .unwrap_or_else(|| panic!("{what}: {name} is not named: {report:#}"));
        assert_eq!(code, "backup.unreadable", "{what}: {name}");
        assert!(message.contains(reason), "{what}: {name}: {message}");
    }
}

#[test]
fn a_fifo_or_device_in_one_backup_does_not_stop_the_others_in_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("Backup");
    let good = backup(&folder, "good");
    let bad = special_file_backups(&folder);
    let before = support::tree_fingerprint(&folder);
    let folder_arg = folder.to_str().unwrap();

    let named = run(
        "inspect FOLDER --json",
        Ibackup::offline(["inspect", folder_arg, "--json"]),
        0,
    );
    assert_others_reported("inspect FOLDER", &named.json(), &folder, &good, &bad);
    let by_default = run(
        "inspect --json (IBACKUP_BACKUP_DIR)",
        Ibackup::offline(["inspect", "--json"]).env("IBACKUP_BACKUP_DIR", &folder),
        0,
    );
    assert_others_reported("inspect", &by_default.json(), &folder, &good, &bad);
    let text = run(
        "inspect FOLDER",
        Ibackup::offline(["inspect", folder_arg]),
        0,
    );
    for (name, reason) in &bad {
        assert!(
            text.all().contains(name),
            "{name} not named:\n{}",
            text.all()
        );
        assert!(
            text.all().contains(reason),
            "{reason} not said:\n{}",
            text.all()
        );
    }
    // Each one alone: verify and inspect name the file and what it is.
    for (name, reason) in &bad {
        let path = folder.join(name);
        let path_arg = path.to_str().unwrap();
        for args in [vec!["verify", path_arg], vec!["inspect", path_arg]] {
            let what = format!("{} {name}", args[0]);
            let out = run(&what, Ibackup::offline(&args), 2);
            assert!(out.stderr.contains(reason), "{what}: {}", out.stderr);
            assert!(out.stderr.contains(path_arg), "{what}: {}", out.stderr);
        }
    }
    assert_eq!(support::tree_fingerprint(&folder), before);
}

/// A blob that is a link is never read through, even with --deep and even when it is a key
/// database that --deep opens with SQLite: the link points at a sound database outside the
/// backup, which would pass quick_check if it were followed.
#[test]
fn a_blob_that_is_a_link_is_never_read_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = backup(dir.path(), "b");
    let outside = dir.path().join("outside.db");
    {
        let conn = rusqlite::Connection::open(&outside).unwrap();
        conn.execute_batch("CREATE TABLE message (text); INSERT INTO message VALUES ('hi');")
            .unwrap();
    }
    let len = std::fs::metadata(&outside).unwrap().len();
    support::add_sparse_file(&path, "HomeDomain", "Library/SMS/sms.db", len);
    let sms = blob_of(&path, "HomeDomain", "Library/SMS/sms.db");
    std::fs::remove_file(&sms).unwrap();
    std::os::unix::fs::symlink(&outside, &sms).unwrap();
    // And an ordinary blob that links to a FIFO: following it would block.
    let other = some_blob(&path);
    let fifo = dir.path().join("outside.fifo");
    mkfifo(&fifo);
    std::fs::remove_file(&other).unwrap();
    std::os::unix::fs::symlink(&fifo, &other).unwrap();
    let before = support::tree_fingerprint(&path);
    let path_arg = path.to_str().unwrap();
    for args in [
        vec!["verify", path_arg, "--json"],
        vec!["verify", path_arg, "--json", "--deep"],
    ] {
        let what = args.join(" ");
        let report = run(&what, Ibackup::offline(&args), 2).json();
        assert_eq!(report["verdict"], "unchecked", "{what}: {report:#}");
        assert_eq!(
            report["files"]["not_a_file"].as_array().unwrap().len(),
            2,
            "{what}: {report:#}"
        );
        for database in report["databases"].as_array().unwrap() {
            assert_ne!(database["result"], "ok", "{what}: read through: {report:#}");
        }
    }
    assert_eq!(support::tree_fingerprint(&path), before);
}

/// A blob ibackup may not read is "could not check" (exit 2), named, never "complete"; with
/// --deep too.
#[test]
fn an_unreadable_blob_is_could_not_check_and_named() {
    let dir = support::reachable_tempdir();
    let path = backup(dir.path(), "b");
    let locked = some_blob(&path);
    let before = support::tree_fingerprint(&path);
    chmod(&locked, 0o000);
    let path_arg = path.to_str().unwrap();
    let mut outcomes = Vec::new();
    for args in [
        vec!["verify", path_arg],
        vec!["verify", path_arg, "--deep"],
        vec!["verify", path_arg, "--json"],
        vec!["verify", path_arg, "--json", "--deep"],
    ] {
        let what = args.join(" ");
        outcomes.push((
            what.clone(),
            run(&what, Ibackup::offline(&args).unprivileged(), 2),
        ));
    }
    chmod(&locked, 0o644);
    for (what, out) in &outcomes {
        let all = out.all();
        assert!(all.contains(locked.to_str().unwrap()), "{what}: {all}");
        assert!(all.contains("ermission denied"), "{what}: {all}");
        if what.contains("--json") {
            let report = out.json();
            assert_eq!(report["verdict"], "unchecked", "{what}: {report:#}");
            let codes = support::problem_codes(&report);
            assert!(
                codes.contains(&"backup.blobs_unreadable".to_string()),
                "{what}: {codes:?}"
            );
            // Present (it is there), not missing, and not reported damaged.
            assert!(report["files"]["missing"].as_array().unwrap().is_empty());
            assert!(
                !codes.contains(&"backup.content_damaged".to_string()),
                "{codes:?}"
            );
        }
    }
    assert_eq!(support::tree_fingerprint(&path), before);
}

/// The same with an encrypted backup and --deep with its password: the blob that cannot be read
/// is not reported as undecryptable (a known defect, exit 1) but as not checked (exit 2).
#[test]
fn an_unreadable_encrypted_blob_is_could_not_check_with_deep() {
    let dir = support::reachable_tempdir();
    let path = dir.path().join("enc");
    std::fs::create_dir(&path).unwrap();
    let written = support_encrypt::write_encrypted_backup(&path, b"pw", 10, 10);
    let file = written
        .iter()
        .find(|f| f.flags == 1 && f.size > 0)
        .expect("a file");
    let locked = blob_of(&path, &file.domain, &file.relative_path);
    chmod(&locked, 0o000);
    let path_arg = path.to_str().unwrap();
    let out = run(
        "verify --deep --json (encrypted)",
        Ibackup::offline(["verify", path_arg, "--deep", "--json"])
            .env("IBACKUP_PASSWORD", "pw")
            .unprivileged(),
        2,
    );
    chmod(&locked, 0o644);
    let report = out.json();
    assert_eq!(report["verdict"], "unchecked", "{report:#}");
    let codes = support::problem_codes(&report);
    assert!(
        codes.contains(&"backup.blobs_unreadable".to_string()),
        "{codes:?}"
    );
    assert!(
        !codes.contains(&"backup.blobs_undecryptable".to_string()),
        "{codes:?}"
    );
    assert!(
        out.all().contains(locked.to_str().unwrap()),
        "{}",
        out.all()
    );
}

/// In a folder of backups, one that cannot be read (its folder, its Manifest.plist, its
/// Manifest.mbdb) is named with the reason; the others are still reported.
#[test]
fn an_unreadable_backup_in_a_folder_is_named_never_skipped() {
    let dir = support::reachable_tempdir();
    let folder = dir.path().join("Backup");
    let good = backup(&folder, "good");
    let locked_folder = backup(&folder, "locked-folder");
    let locked_plist = backup(&folder, "locked-manifest-plist").join("Manifest.plist");
    let locked_mbdb = backup(&folder, "locked-mbdb");
    std::fs::remove_file(locked_mbdb.join("Manifest.db")).unwrap();
    let locked_mbdb = locked_mbdb.join("Manifest.mbdb");
    std::fs::write(&locked_mbdb, b"mbdb\x05\x00").unwrap();
    let before = support::tree_fingerprint(&folder);
    let locked = [
        (locked_folder.as_path(), 0o755),
        (locked_plist.as_path(), 0o644),
        (locked_mbdb.as_path(), 0o644),
    ];
    for (path, _) in locked {
        chmod(path, 0o000);
    }
    let folder_arg = folder.to_str().unwrap();
    let named = run(
        "inspect FOLDER --json",
        Ibackup::offline(["inspect", folder_arg, "--json"]).unprivileged(),
        0,
    );
    let by_default = run(
        "inspect --json (IBACKUP_BACKUP_DIR)",
        Ibackup::offline(["inspect", "--json"])
            .env("IBACKUP_BACKUP_DIR", &folder)
            .unprivileged(),
        0,
    );
    let text = run(
        "inspect FOLDER",
        Ibackup::offline(["inspect", folder_arg]).unprivileged(),
        0,
    );
    for (path, mode) in locked {
        chmod(path, mode);
    }
    let bad = [
        ("locked-folder", "ermission denied"),
        ("locked-manifest-plist", "ermission denied"),
        ("locked-mbdb", "ermission denied"),
    ];
    assert_others_reported("inspect FOLDER", &named.json(), &folder, &good, &bad);
    assert_others_reported("inspect", &by_default.json(), &folder, &good, &bad);
    for (name, _) in bad {
        assert!(
            text.all().contains(name),
            "{name} not named:\n{}",
            text.all()
        );
    }
    assert_eq!(support::tree_fingerprint(&folder), before);
}
