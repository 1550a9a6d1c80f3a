//! `ibackup verify` and `ibackup inspect` on backups written by the test-support writer: each
//! defect, each exit code, the JSON contract, folders of backups, and the read-only promise.

mod support;

use support::problem_codes;

use std::fs;
use std::path::Path;

use support::{ibackup, ibackup_with, json, stderr, stdout, write_backup, Defect, Spec};

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes a backup with `defects`, verifies it, and checks the counts against the writer's.
fn check(defects: &[Defect]) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-000A1B2C3D4E5F60");
    let spec = Spec {
        defects: defects.to_vec(),
        ..Spec::default()
    };
    let want = write_backup(&backup, &spec);
    let (code, report) = json(&["verify", path_str(&backup)]);
    let files = &report["files"];
    let len = |key: &str| files[key].as_array().unwrap().len() as u64;
    assert_eq!(files["listed"], want.listed, "{defects:?}");
    assert_eq!(files["directories"], want.directories);
    assert_eq!(files["symlinks"], want.symlinks);
    assert_eq!(files["present"], want.present, "{defects:?}");
    assert_eq!(files["intact"], want.intact, "{defects:?}");
    assert_eq!(len("missing"), want.missing, "{defects:?}");
    assert_eq!(len("size_mismatch"), want.size_mismatch, "{defects:?}");
    assert_eq!(
        len("file_id_mismatch"),
        want.file_id_mismatch,
        "{defects:?}"
    );
    assert_eq!(len("not_a_file"), want.not_a_file, "{defects:?}");
    assert_eq!(files["orphans"], want.orphans, "{defects:?}");
    assert_eq!(files["size_unknown"], want.size_unknown, "{defects:?}");
    assert_eq!(report["size"]["declared_bytes"], want.declared_bytes);
    (code, report)
}

#[test]
fn a_complete_backup_exits_0_with_the_contract_fields() {
    let (code, report) = check(&[]);
    assert_eq!(code, 0);
    assert_eq!(report["schema"], "ibackup.verify/1");
    assert_eq!(report["complete"], true);
    assert_eq!(report["verdict"], "complete");
    let b = &report["backup"];
    assert_eq!(b["udid"], "00008110-000A1B2C3D4E5F60");
    assert_eq!(b["device_name"], "Test iPhone");
    assert_eq!(b["ios_version"], "17.5.1");
    assert_eq!(b["build_version"], "21F90");
    assert_eq!(b["product_type"], "iPhone14,5");
    assert_eq!(b["date"], "2025-11-20T21:03:11Z");
    assert_eq!(b["encrypted"], false);
    assert_eq!(b["snapshot_state"], "finished");
    assert_eq!(b["is_full_backup"], true);
    assert!(b["path"]
        .as_str()
        .unwrap()
        .ends_with("00008110-000A1B2C3D4E5F60"));
    assert!(report["size"]["on_disk_bytes"].as_u64().unwrap() >= 1);
    assert_eq!(
        report["size"]["on_disk_bytes"],
        report["size"]["declared_bytes"]
    );
    assert!(report["problems"].as_array().unwrap().is_empty());
}

#[test]
fn a_missing_blob_is_named_and_exits_1() {
    let (code, report) = check(&[Defect::MissingBlob]);
    assert_eq!(code, 1);
    assert_eq!(report["complete"], false);
    assert_eq!(problem_codes(&report), ["backup.files_missing"]);
    let missing = &report["files"]["missing"][0];
    assert_eq!(missing["domain"], "HealthDomain");
    assert_eq!(missing["path"], "Health/file000005.dat");
    let id = missing["file_id"].as_str().unwrap();
    let want = support::sha1_hex(&format!(
        "{}-{}",
        missing["domain"].as_str().unwrap(),
        missing["path"].as_str().unwrap()
    ));
    assert_eq!(id, want);
}

#[test]
fn a_truncated_blob_reports_both_sizes() {
    let (code, report) = check(&[Defect::TruncatedBlob]);
    assert_eq!(code, 1);
    assert_eq!(problem_codes(&report), ["backup.files_truncated"]);
    let m = &report["files"]["size_mismatch"][0];
    let expected = m["expected_bytes"].as_u64().unwrap();
    assert_eq!(m["actual_bytes"].as_u64().unwrap(), expected / 2);
}

#[test]
fn an_orphan_is_counted_but_harmless() {
    let (code, report) = check(&[Defect::Orphan]);
    assert_eq!(code, 0);
    assert_eq!(problem_codes(&report), ["backup.orphans"]);
}

#[test]
fn an_unfinished_backup_exits_1() {
    let (code, report) = check(&[Defect::Unfinished]);
    assert_eq!(code, 1);
    assert_eq!(report["backup"]["snapshot_state"], "uploading");
    assert_eq!(problem_codes(&report), ["backup.unfinished"]);
}

#[test]
fn a_snapshot_folder_left_behind_exits_1() {
    let (code, report) = check(&[Defect::SnapshotLeft]);
    assert_eq!(code, 1);
    assert_eq!(problem_codes(&report), ["backup.snapshot_left"]);
}

#[test]
fn no_status_plist_still_gives_a_full_report() {
    let (code, report) = check(&[Defect::NoStatus, Defect::NoManifestPlist]);
    assert_eq!(code, 1);
    assert_eq!(report["backup"]["snapshot_state"], serde_json::Value::Null);
    assert_eq!(
        problem_codes(&report),
        ["backup.status_missing", "backup.manifest_plist_missing"]
    );
    // Identity still comes from Info.plist.
    assert_eq!(report["backup"]["ios_version"], "17.5.1");
}

#[test]
fn an_empty_manifest_plist_is_a_problem_not_a_crash() {
    let (code, report) = check(&[Defect::EmptyManifestPlist]);
    assert_eq!(code, 1);
    assert_eq!(problem_codes(&report), ["backup.manifest_plist_empty"]);
}

#[test]
fn a_damaged_file_id_is_reported() {
    let (code, report) = check(&[Defect::DamagedFileId]);
    assert_eq!(
        code, 0,
        "the blob is where the row points: still restorable"
    );
    assert_eq!(problem_codes(&report), ["backup.file_id_mismatch"]);
}

#[test]
fn a_record_without_size_is_unknown_not_zero() {
    let (code, report) = check(&[Defect::SizeUnknown]);
    assert_eq!(code, 0);
    assert_eq!(problem_codes(&report), ["backup.size_unknown"]);
}

#[test]
fn a_blob_path_that_is_a_folder_cannot_be_checked() {
    let (code, report) = check(&[Defect::BlobIsDirectory]);
    assert_eq!(code, 2);
    assert_eq!(report["verdict"], "unchecked");
    assert_eq!(problem_codes(&report), ["backup.blob_not_a_file"]);
    let message = report["problems"][0]["message"].as_str().unwrap();
    let id = report["files"]["not_a_file"][0]["file_id"]
        .as_str()
        .unwrap();
    assert!(message.contains(id), "{message}");
}

#[test]
fn many_defects_at_once_are_all_reported() {
    let all = [
        Defect::MissingBlob,
        Defect::TruncatedBlob,
        Defect::Orphan,
        Defect::Unfinished,
        Defect::SnapshotLeft,
        Defect::DamagedFileId,
        Defect::SizeUnknown,
    ];
    let (code, report) = check(&all);
    assert_eq!(code, 1);
    assert_eq!(problem_codes(&report).len(), 7, "{report:#}");
}

#[test]
fn human_output_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    let spec = Spec::default()
        .with(Defect::MissingBlob)
        .with(Defect::Unfinished);
    write_backup(&backup, &spec);
    let out = ibackup(&["verify", path_str(&backup)]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("Incomplete: this backup cannot be restored as it is."),
        "{text}"
    );
    assert!(
        text.contains("1 of the 40 files listed in the manifest is missing"),
        "{text}"
    );
    assert!(text.contains("\"uploading\""), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let coloured = ibackup(&["verify", path_str(&backup), "--color", "always"]);
    assert!(stdout(&coloured).contains("\x1b["));
    let quiet = ibackup(&["verify", path_str(&backup), "-q"]);
    assert_eq!(stdout(&quiet), "incomplete\n");
}

#[test]
fn inspect_shows_counts_sizes_and_biggest_domains() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    write_backup(&backup, &Spec::default());
    let out = ibackup(&["inspect", path_str(&backup)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "Test iPhone (iPhone14,5), iOS 17.5.1 (21F90)",
        "full backup, not encrypted",
        "40 files, 16 folders, 2 symlinks",
        "Biggest domains:",
        "HomeDomain",
        "Complete: all 40 files are present with the right size.",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let (code, value) = json(&["inspect", path_str(&backup)]);
    assert_eq!(code, 0);
    assert_eq!(value["schema"], "ibackup.inspect/1");
    assert_eq!(value["device"], serde_json::Value::Null);
    assert_eq!(value["backups"][0]["schema"], "ibackup.verify/1");
    assert!(value["findings"].is_array());
    let domains = value["backups"][0]["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 8);
    let bytes: Vec<u64> = domains
        .iter()
        .map(|d| d["bytes"].as_u64().unwrap())
        .collect();
    assert!(
        bytes.windows(2).all(|w| w[0] >= w[1]),
        "biggest first: {bytes:?}"
    );
}

#[test]
fn a_folder_of_backups_lists_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        ("AAAA", "Old iPhone", 1_600_000_000, vec![]),
        (
            "BBBB",
            "New iPhone",
            1_760_000_000,
            vec![Defect::Unfinished],
        ),
        ("CCCC", "Mid iPhone", 1_700_000_000, vec![]),
    ];
    for (udid, name, date, defects) in specs {
        let spec = Spec {
            udid: udid.into(),
            device_name: name.into(),
            date,
            files: 10,
            defects,
            ..Spec::default()
        };
        write_backup(&dir.path().join(udid), &spec);
    }
    fs::create_dir_all(dir.path().join("not-a-backup")).unwrap();
    let (code, value) = json(&["inspect", path_str(dir.path())]);
    assert_eq!(code, 0);
    let names: Vec<&str> = value["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup"]["device_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["New iPhone", "Mid iPhone", "Old iPhone"]);
    let text = stdout(&ibackup(&["inspect", path_str(dir.path())]));
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("iPhone  iOS")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("New iPhone") && lines[0].ends_with("incomplete"));
    assert!(lines[2].starts_with("Old iPhone") && lines[2].ends_with("complete"));
}

#[test]
fn no_argument_looks_in_the_backup_dir_variable() {
    let dir = tempfile::tempdir().unwrap();
    write_backup(&dir.path().join("AAAA"), &Spec::default());
    let out = ibackup_with(
        &["inspect"],
        &[("IBACKUP_BACKUP_DIR", path_str(dir.path()))],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Test iPhone  iOS 17.5.1"));

    let empty = tempfile::tempdir().unwrap();
    let out = ibackup_with(
        &["inspect"],
        &[("IBACKUP_BACKUP_DIR", path_str(empty.path()))],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no iPhone is connected and there is no backup"),
        "{err}"
    );
    assert!(err.contains("IBACKUP_BACKUP_DIR"), "{err}");
}

#[test]
fn verify_and_inspect_leave_the_backup_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    let spec = Spec::default()
        .with(Defect::MissingBlob)
        .with(Defect::Orphan);
    write_backup(&backup, &spec);
    let before = support::tree_fingerprint(dir.path());
    for args in [
        vec!["verify", path_str(&backup)],
        vec!["verify", path_str(&backup), "--json"],
        vec!["inspect", path_str(&backup)],
        vec!["inspect", path_str(&backup), "--json", "-v"],
        vec!["inspect", path_str(dir.path())],
    ] {
        ibackup(&args);
    }
    let after = support::tree_fingerprint(dir.path());
    assert_eq!(before, after);
    for (name, _) in &after {
        for suffix in ["-wal", "-shm", "-journal"] {
            assert!(!name.ends_with(suffix), "{name} appeared");
        }
    }
}

/// Malformed input: one paragraph naming the file, exit 2, no panic.
fn assert_clear_failure(backup: &Path, names: &str) {
    let out = ibackup(&["verify", path_str(backup)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(names), "{err} should name {names}");
    assert!(!err.contains("panicked"), "{err}");
    let (code, value) = json(&["verify", path_str(backup)]);
    assert_eq!(code, 2);
    assert_eq!(value["schema"], "ibackup.error/1");
    assert!(value["error"]["hint"].as_str().unwrap().len() > 20);
}

#[test]
fn a_truncated_manifest_db_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    write_backup(
        &backup,
        &Spec {
            files: 2000,
            ..Spec::default()
        },
    );
    let db = backup.join("Manifest.db");
    let bytes = fs::read(&db).unwrap();
    fs::write(&db, &bytes[..bytes.len() / 3]).unwrap();
    assert_clear_failure(&backup, "Manifest.db");
}

#[test]
fn a_manifest_db_that_is_not_sqlite_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    write_backup(&backup, &Spec::default());
    fs::write(backup.join("Manifest.db"), b"garbage, not a database").unwrap();
    assert_clear_failure(&backup, "Manifest.db");
    fs::write(backup.join("Manifest.db"), b"").unwrap();
    assert_clear_failure(&backup, "Manifest.db");
}

#[test]
fn a_sqlite_file_of_another_schema_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    write_backup(&backup, &Spec::default());
    fs::remove_file(backup.join("Manifest.db")).unwrap();
    rusqlite::Connection::open(backup.join("Manifest.db"))
        .unwrap()
        .execute_batch("CREATE TABLE Other (x)")
        .unwrap();
    assert_clear_failure(&backup, "Manifest.db");
}

#[test]
fn a_garbage_plist_is_a_clear_error() {
    for name in ["Info.plist", "Status.plist", "Manifest.plist"] {
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("b");
        write_backup(&backup, &Spec::default());
        fs::write(backup.join(name), b"\x00\x01\x02 not a plist <<<").unwrap();
        assert_clear_failure(&backup, name);
    }
}

#[test]
fn paths_that_are_not_backups_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert_clear_failure(&dir.path().join("absent"), "does not exist");
    assert_clear_failure(dir.path(), "is not a backup folder");
    let out = ibackup(&["inspect", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("holds no backup"));
}

#[test]
fn a_folder_with_one_unreadable_backup_still_lists_the_others() {
    let dir = tempfile::tempdir().unwrap();
    write_backup(&dir.path().join("good"), &Spec::default());
    write_backup(&dir.path().join("bad"), &Spec::default());
    fs::write(dir.path().join("bad").join("Manifest.db"), b"junk").unwrap();
    let (code, value) = json(&["inspect", path_str(dir.path())]);
    assert_eq!(code, 0);
    assert_eq!(value["backups"].as_array().unwrap().len(), 1);
    assert_eq!(value["errors"][0]["code"], "backup.manifest_damaged");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ibackup(&["verify"]).status.code(), Some(2));
    assert_eq!(ibackup(&["frobnicate"]).status.code(), Some(2));
}
