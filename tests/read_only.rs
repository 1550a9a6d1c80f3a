//! The read-only promise, over every command and every fixture, proved in ways that hold for
//! root too (CI runs as root, whom file permissions do not stop):
//!
//! - while each command runs, the kernel watches every folder of the tree (inotify, watch.rs)
//!   and any change fails the test, a file opened for writing and closed unwritten included;
//! - a fingerprint of the whole tree (names, kinds, sizes, modes, contents, modification and
//!   inode change times) is identical before and after: no one, root included, can set an inode
//!   change time back;
//! - a backup bind-mounted read-only in a private mount namespace (mounts.rs), where the kernel
//!   refuses root's writes too, is checked all the same.
//!
//! Nothing appears in the working folder either.

mod support;

use std::path::{Path, PathBuf};

use support::{write_backup, Defect, Ibackup, Spec};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every command line ibackup offers on a backup or a folder of backups.
fn commands(target: &Path) -> Vec<Vec<String>> {
    let t = target.to_string_lossy().to_string();
    [
        vec!["verify", &t],
        vec!["verify", &t, "--json"],
        vec!["verify", &t, "-q"],
        vec!["inspect", &t],
        vec!["inspect", &t, "--json", "-v"],
        vec!["inspect", &t, "--message", "Backup needs restart"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect()
}

/// Everything the test can see of a tree without the kernel's help.
fn fingerprint(target: &Path) -> Vec<(String, String)> {
    #[cfg(unix)]
    return support::tree_fingerprint_with_times(target);
    #[cfg(not(unix))]
    return support::tree_fingerprint(target);
}

/// Runs every command on `target` and checks that none changed it. Each run must also give its
/// one known exit code (`verify_exit` for `verify`, 0 for `inspect`), so that an ibackup that
/// gave up before reading anything could not pass for one that read and wrote nothing.
fn assert_untouched(target: &Path, verify_exit: i32) {
    let before = fingerprint(target);
    let cwd = tempfile::tempdir().unwrap();
    for args in commands(target) {
        #[cfg(target_os = "linux")]
        let watch = support::TreeWatch::new(target);
        let out = Ibackup::without_phone(&args, std::path::Path::new("/nonexistent/ibackup-tests"))
            .current_dir(cwd.path())
            .env("IBACKUP_BACKUP_DIR", target)
            .run();
        let expected = if args[0] == "verify" { verify_exit } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "ibackup {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if expected == 2 {
            assert!(
                out.stderr.starts_with(b"error: ") || !out.stdout.is_empty(),
                "ibackup {}: exit 2 with nothing said",
                args.join(" ")
            );
        } else if !args.contains(&"-q".to_string()) {
            assert!(
                !out.stdout.is_empty(),
                "ibackup {}: no report",
                args.join(" ")
            );
        }
        #[cfg(target_os = "linux")]
        {
            let changes = watch.changes();
            assert!(
                changes.is_empty(),
                "ibackup {} changed the tree:\n{}",
                args.join(" "),
                changes.join("\n")
            );
        }
        let after = fingerprint(target);
        let gone: Vec<_> = before.iter().filter(|e| !after.contains(e)).collect();
        let new: Vec<_> = after.iter().filter(|e| !before.contains(e)).collect();
        assert!(
            gone.is_empty() && new.is_empty(),
            "ibackup {} changed the tree:\nbefore: {gone:#?}\nafter: {new:#?}",
            args.join(" ")
        );
    }
    let stray: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(
        stray.is_empty(),
        "files appeared in the working folder: {stray:?}"
    );
}

#[test]
fn committed_fixtures_are_never_changed() {
    // `verify` takes one backup, not a folder of them (exit 2); the encrypted one cannot be
    // checked whole without its password (exit 2 with its report).
    for (fixture, verify_exit) in [
        ("fixtures/sample-backup/00008110-001A2C3E0E38801E", 0),
        ("fixtures/sample-backup", 2),
        ("fixtures/sample-backups", 2),
        ("fixtures/third-party/synthetic-encrypted-ios26", 2),
    ] {
        assert_untouched(&repo().join(fixture), verify_exit);
    }
}

#[test]
fn written_backups_with_every_defect_are_never_changed() {
    let dir = tempfile::tempdir().unwrap();
    // Each defect with the exit code `verify` gives it.
    let defects = [
        (Defect::MissingBlob, 1),
        (Defect::TruncatedBlob, 1),
        (Defect::Orphan, 0),
        (Defect::Unfinished, 1),
        (Defect::SnapshotLeft, 1),
        (Defect::NoStatus, 1),
        (Defect::NoManifestPlist, 1),
        (Defect::EmptyManifestPlist, 1),
        (Defect::DamagedFileId, 0),
        (Defect::BlobIsDirectory, 2),
        (Defect::SizeUnknown, 0),
    ];
    for (i, (defect, _)) in defects.iter().enumerate() {
        let spec = Spec {
            udid: format!("00008110-{i:016X}"),
            files: 30,
            ..Spec::default()
        }
        .with(*defect);
        write_backup(&dir.path().join(format!("b{i}")), &spec);
    }
    for (i, (_, verify_exit)) in defects.iter().enumerate() {
        assert_untouched(&dir.path().join(format!("b{i}")), *verify_exit);
    }
    assert_untouched(dir.path(), 2);
}

#[test]
fn read_only_folders_can_be_checked() {
    // A backup on a read-only mount or with read-only permissions must still be checked: SQLite
    // is opened immutable, so it needs no write access for locks or journals.
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    write_backup(&backup, &Spec::default());
    // Read-only permissions stop every user but root.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let (code, report) = support::json(&["verify", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{report}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A read-only mount stops root too.
    #[cfg(target_os = "linux")]
    on_a_read_only_mount(dir.path(), &backup);
}

/// `verify` and `inspect` of a backup seen through a read-only bind mount of the folder that
/// holds it: exit 0, the same report as on the writable folder.
#[cfg(target_os = "linux")]
fn on_a_read_only_mount(folder: &Path, backup: &Path) {
    use support::Mount;
    if let Err(why) = support::private_mounts() {
        eprintln!("SKIPPED (the read-only mount part of this test only): {why}");
        return;
    }
    let plan = [Mount::ReadOnly(folder.to_path_buf())];
    // The mount must refuse a write, root's included, or what follows proves nothing.
    let probe = folder.join("written-through-the-mount");
    let mut touch = std::process::Command::new("touch");
    touch.arg(&probe);
    support::in_private_mounts(&mut touch, &plan);
    let out = touch.output().expect("run touch");
    assert!(
        !out.status.success(),
        "touch wrote through the read-only mount"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!probe.exists());

    let b = backup.to_str().unwrap();
    for args in [vec!["verify", b, "--json"], vec!["inspect", b, "--json"]] {
        let writable = Ibackup::offline(&args).run();
        let read_only = Ibackup::offline(&args).in_private_mounts(&plan).run();
        assert_eq!(
            read_only.code(),
            Some(0),
            "{args:?}: {}",
            read_only.stderr()
        );
        assert_eq!(read_only.json(), writable.json(), "{args:?}");
    }
}

/// An unreadable file must not fingerprint as an empty one, or a test comparing fingerprints
/// would miss what happened to it. As root, the reading thread gives up root's file access (its
/// file-system user becomes nobody), so the file is unreadable to it as to any other user.
#[cfg(target_os = "linux")]
#[test]
fn an_unreadable_file_is_not_fingerprinted_as_empty() {
    use std::os::unix::fs::PermissionsExt;
    let dir = support::reachable_tempdir();
    let file = dir.path().join("locked");
    std::fs::write(&file, b"").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let root = dir.path().to_path_buf();
    let seen = std::thread::spawn(move || {
        if support::is_root() {
            // SAFETY: setfsuid changes this thread's file-system user only (a raw system call,
            // not shared with the other threads); the thread ends right after.
            unsafe { libc::setfsuid(support::UNPRIVILEGED_ID) };
        }
        support::tree_fingerprint(&root)
    })
    .join()
    .unwrap();
    let expected = (
        "locked".to_string(),
        "file 100000 0 unreadable (PermissionDenied)".to_string(),
    );
    assert_eq!(seen, [expected]);
}
