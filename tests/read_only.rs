//! The read-only promise, over every command and every fixture: a fingerprint of the whole tree
//! (names, kinds, sizes, modes, contents) is identical before and after, no file appears in it,
//! and nothing appears in the working folder either.

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

fn assert_untouched(target: &Path) {
    let before = support::tree_fingerprint(target);
    let cwd = tempfile::tempdir().unwrap();
    for args in commands(target) {
        let out = Ibackup::without_phone(&args, std::path::Path::new("/nonexistent/ibackup-tests"))
            .current_dir(cwd.path())
            .env("IBACKUP_BACKUP_DIR", target)
            .run();
        assert!(out.status.code().is_some(), "{args:?}");
        assert_eq!(
            support::tree_fingerprint(target),
            before,
            "ibackup {} changed the tree",
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
    for fixture in [
        "fixtures/sample-backup/00008110-001A2C3E0E38801E",
        "fixtures/sample-backup",
        "fixtures/sample-backups",
        "fixtures/third-party/synthetic-encrypted-ios26",
    ] {
        assert_untouched(&repo().join(fixture));
    }
}

#[test]
fn written_backups_with_every_defect_are_never_changed() {
    let dir = tempfile::tempdir().unwrap();
    let defects = [
        Defect::MissingBlob,
        Defect::TruncatedBlob,
        Defect::Orphan,
        Defect::Unfinished,
        Defect::SnapshotLeft,
        Defect::NoStatus,
        Defect::NoManifestPlist,
        Defect::EmptyManifestPlist,
        Defect::DamagedFileId,
        Defect::BlobIsDirectory,
        Defect::SizeUnknown,
    ];
    for (i, defect) in defects.iter().enumerate() {
        let spec = Spec {
            udid: format!("00008110-{i:016X}"),
            files: 30,
            ..Spec::default()
        }
        .with(*defect);
        write_backup(&dir.path().join(format!("b{i}")), &spec);
    }
    for i in 0..defects.len() {
        assert_untouched(&dir.path().join(format!("b{i}")));
    }
    assert_untouched(dir.path());
}

#[test]
fn read_only_folders_can_be_checked() {
    // A backup on a read-only mount or with read-only permissions must still be checked: SQLite
    // is opened immutable, so it needs no write access for locks or journals.
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    write_backup(&backup, &Spec::default());
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
}
