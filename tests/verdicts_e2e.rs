//! Verdicts true to real backups, through the `ibackup` binary: an encrypted Manifest.db written
//! without padding, rows whose flags are not 1, 2 or 4, paths that climb out of their domain, a
//! Status.plist without SnapshotState, and the contents summary against the files in the folder
//! (partial presence, Health in a plain backup, an encrypted backup without its Manifest.plist).
//! Each backup is generated here by tests/support's writers, then checked as JSON and as text.

mod support;
mod support_encrypt;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{problem_codes, tree_fingerprint, write_backup, Defect, Expected, Ibackup, Spec};

const PASSWORD: &str = "unpadded pässword";

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `ibackup ARGS` with no phone to be found (no daemon, no wait) and the password when given.
fn run(args: &[&str], password: Option<&str>, scratch: &Path) -> support::Run {
    let mut command = Ibackup::without_phone(args, scratch);
    if let Some(password) = password {
        command = command.env("IBACKUP_PASSWORD", password);
    }
    command.run()
}

/// `verify BACKUP --json`: the exit code and the report.
fn verify_json(backup: &Path, password: Option<&str>) -> (Option<i32>, Value) {
    let out = run(
        &["verify", s(backup), "--json"],
        password,
        backup.parent().unwrap(),
    );
    (out.code(), out.json())
}

fn problem<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {:#}", report["problems"]))
}

/// A writer backup with `defects` in a fresh folder.
fn written(defects: &[Defect]) -> (tempfile::TempDir, PathBuf, Expected) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-000A1B2C3D4E5F60");
    let spec = Spec {
        defects: defects.to_vec(),
        ..Spec::default()
    };
    let want = write_backup(&backup, &spec);
    (dir, backup, want)
}

// 1. An encrypted Manifest.db without PKCS#7 padding.

fn unpadded() -> (tempfile::TempDir, PathBuf, u64) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-UNPADDED");
    fs::create_dir_all(&backup).unwrap();
    let rows = support_encrypt::write_encrypted_backup_unpadded_manifest(
        &backup,
        PASSWORD.as_bytes(),
        1000,
        100,
    );
    let files = rows.iter().filter(|r| r.flags == 1).count() as u64;
    (dir, backup, files)
}

#[test]
fn an_unpadded_encrypted_manifest_is_read_with_a_warning() {
    let (_dir, backup, files) = unpadded();
    // The ciphertext is whole SQLite pages: no padding block was added.
    let len = fs::metadata(backup.join("Manifest.db")).unwrap().len();
    assert_eq!(len % 512, 0, "{len}");

    let (code, report) = verify_json(&backup, Some(PASSWORD));
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["verdict"], "complete");
    assert_eq!(report["manifest_read"], true);
    assert_eq!(report["files"]["listed"], files);
    assert_eq!(report["files"]["intact"], files);
    assert_eq!(
        problem(&report, "backup.manifest_unpadded")["severity"],
        "warning"
    );

    // --deep decrypts every blob with the keys the unpadded manifest holds.
    let out = run(
        &["verify", s(&backup), "--deep", "--json"],
        Some(PASSWORD),
        backup.parent().unwrap(),
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert_eq!(out.json()["files"]["decrypted"], files);

    let text = run(
        &["verify", s(&backup)],
        Some(PASSWORD),
        backup.parent().unwrap(),
    )
    .stdout();
    assert!(text.contains("no padding"), "{text}");
}

#[test]
fn a_padded_manifest_gets_no_unpadded_warning() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-PADDED");
    fs::create_dir_all(&backup).unwrap();
    support_encrypt::write_encrypted_backup(&backup, PASSWORD.as_bytes(), 1000, 100);
    let (code, report) = verify_json(&backup, Some(PASSWORD));
    assert_eq!(code, Some(0), "{report:#}");
    assert!(!problem_codes(&report).contains(&"backup.manifest_unpadded".to_string()));
}

#[test]
fn a_wrong_password_is_told_apart_from_an_unpadded_manifest() {
    let (_dir, backup, _) = unpadded();
    let (code, report) = verify_json(&backup, Some("not the password"));
    assert_eq!(code, Some(2));
    assert_eq!(report["schema"], "ibackup.error/1");
    assert_eq!(
        report["error"]["code"], "backup.wrong_password",
        "{report:#}"
    );
}

#[test]
fn an_unpadded_manifest_that_is_not_sqlite_is_still_refused() {
    let (_dir, backup, _) = unpadded();
    let db = backup.join("Manifest.db");
    let mut bytes = fs::read(&db).unwrap();
    // The first block then decrypts to garbage: no SQLite header, whatever the padding.
    bytes[0] ^= 0xFF;
    fs::write(&db, bytes).unwrap();
    let out = run(
        &["verify", s(&backup), "--json"],
        Some(PASSWORD),
        backup.parent().unwrap(),
    );
    assert_eq!(out.code(), Some(2));
    let report = out.json();
    assert_eq!(report["schema"], "ibackup.error/1");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot be decrypted"), "{message}");
    assert!(message.contains("Manifest.db"), "{message}");
}

// 2. Rows whose flags are not 1, 2 or 4.

#[test]
fn odd_flags_are_classified_by_mode_and_their_blobs_are_no_orphans() {
    let (_dir, backup, want) = written(&[Defect::OddFlags]);
    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(0), "{report:#}");
    let files = &report["files"];
    // The flags-0 row is a regular file by its Mode: listed, and its blob is checked.
    assert_eq!(files["listed"], want.listed);
    assert_eq!(files["intact"], want.intact);
    // The flags-8 row is a folder by its Mode.
    assert_eq!(files["directories"], want.directories);
    assert_eq!(files["other_rows"], 0);
    // The blob under the folder row's fileID is named by a row: not an orphan.
    assert_eq!(files["orphans"], 0);
    assert_eq!(files["blobs_on_disk"], want.present + 1);
    assert!(!problem_codes(&report).contains(&"backup.orphans".to_string()));
}

// 3. Paths that climb out of their domain.

#[test]
fn suspicious_paths_are_reported_and_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    // Two levels down, so that `<backup>/../../outside` is `<dir>/outside`, inside the test's
    // own folder.
    let backup = dir.path().join("a/b/00008110-000A1B2C3D4E5F60");
    let spec = Spec::default().with(Defect::SuspiciousPath);
    let want = write_backup(&backup, &spec);
    // The file row `../../outside/escape.txt` loses its blob, and a file is put where a naive
    // join of the backup folder and that path would land. ibackup never builds a path from the
    // manifest: blobs are found by fileID only, so the row is missing, whatever lies outside.
    let id = support::sha1_hex("HomeDomain-../../outside/escape.txt");
    fs::remove_file(backup.join(&id[..2]).join(&id)).unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("escape.txt"), b"planted by a tampered backup").unwrap();
    let before = tree_fingerprint(dir.path());

    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(1), "{report:#}");
    let files = &report["files"];
    assert_eq!(files["listed"], want.listed);
    let missing = files["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["path"], "../../outside/escape.txt");
    let suspicious = files["suspicious_paths"].as_array().unwrap();
    assert_eq!(suspicious.len(), 2, "{suspicious:?}");
    assert!(suspicious
        .iter()
        .any(|r| r["domain"] == "HomeDomain/../Evil" && r["path"] == "Library"));
    assert!(suspicious
        .iter()
        .any(|r| r["domain"] == "HomeDomain" && r["path"] == "../../outside/escape.txt"));
    let warning = problem(&report, "backup.suspicious_path");
    assert_eq!(warning["severity"], "warning");
    let message = warning["message"].as_str().unwrap();
    assert!(message.starts_with("2 rows"), "{message}");
    assert_eq!(
        tree_fingerprint(dir.path()),
        before,
        "nothing was written or moved"
    );
}

#[test]
fn a_clean_backup_has_no_suspicious_paths() {
    let (_dir, backup, _) = written(&[]);
    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(0));
    assert_eq!(report["files"]["suspicious_paths"], serde_json::json!([]));
}

#[test]
fn a_suspicious_name_is_escaped_in_the_message() {
    let (_dir, backup, _) = written(&[]);
    let path = "../\u{1b}[2J\u{1b}[31mhidden\u{202e}txt.exe";
    let conn = rusqlite::Connection::open(backup.join("Manifest.db")).unwrap();
    conn.execute(
        "INSERT INTO Files VALUES (?1, 'HomeDomain', ?2, 2, ?3)",
        rusqlite::params![
            support::sha1_hex(&format!("HomeDomain-{path}")),
            path,
            support::mbfile(path, 0o40755, None, None, false)
        ],
    )
    .unwrap();
    drop(conn);

    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(0), "{report:#}");
    let message = problem(&report, "backup.suspicious_path")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(r"../\u{1b}[2J\u{1b}[31mhidden\u{202e}txt.exe"),
        "{message}"
    );
    // JSON keeps the raw name for scripts.
    assert_eq!(report["files"]["suspicious_paths"][0]["path"], path);

    let text = run(&["verify", s(&backup)], None, backup.parent().unwrap()).stdout();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(!text.contains('\u{202e}'), "{text}");
    assert!(text.contains(r"\u{1b}[31mhidden"), "{text}");
}

// 4. Status.plist without SnapshotState.

#[test]
fn a_status_plist_without_snapshot_state_says_so() {
    let (_dir, backup, _) = written(&[Defect::NoSnapshotState]);
    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(1));
    assert_eq!(report["backup"]["snapshot_state"], Value::Null);
    let message = problem(&report, "backup.unfinished")["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("has no SnapshotState"), "{message}");

    let out = run(
        &["inspect", s(&backup), "--json"],
        None,
        backup.parent().unwrap(),
    );
    let all = out.stdout();
    assert!(all.contains("has no SnapshotState"), "{all}");
    assert!(!all.contains("\\\"nothing\\\""), "{all}");
    let text = run(&["inspect", s(&backup)], None, backup.parent().unwrap()).stdout();
    assert!(text.contains("has no SnapshotState"), "{text}");
    assert!(!text.contains("says \"nothing\""), "{text}");
}

// 5. Contents against the files in the folder.

fn holding<'a>(report: &'a Value, category: &str) -> &'a Value {
    report["contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["category"] == category)
        .unwrap_or_else(|| panic!("no {category} in {:#}", report["contents"]))
}

/// Removes the blobs of the file rows of `domain` whose path starts with `prefix`, at most
/// `limit` of them; returns how many.
fn remove_blobs(backup: &Path, domain: &str, prefix: &str, limit: usize) -> u64 {
    let conn = rusqlite::Connection::open(backup.join("Manifest.db")).unwrap();
    let mut query = conn
        .prepare(
            "SELECT fileID FROM Files WHERE domain = ?1 AND flags = 1 AND relativePath LIKE ?2",
        )
        .unwrap();
    let ids: Vec<String> = query
        .query_map(rusqlite::params![domain, format!("{prefix}%")], |r| {
            r.get(0)
        })
        .unwrap()
        .map(Result::unwrap)
        .take(limit)
        .collect();
    for id in &ids {
        fs::remove_file(backup.join(&id[..2]).join(id)).unwrap();
    }
    ids.len() as u64
}

#[test]
fn contents_follow_the_files_in_the_folder() {
    let (_dir, backup, _) = written(&[]);
    let photos_gone = remove_blobs(&backup, "CameraRollDomain", "", usize::MAX);
    assert!(photos_gone > 0);
    let sms_gone = remove_blobs(&backup, "HomeDomain", "Library/SMS/", 1);
    assert_eq!(sms_gone, 1);

    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(1));
    assert_eq!(report["backup"]["encrypted"], false);
    let photos = holding(&report, "photos");
    assert_eq!(photos["present"], false, "{photos}");
    assert_eq!(photos["files"], photos_gone);
    assert_eq!(photos["files_present"], 0);
    let messages = holding(&report, "messages");
    assert_eq!(messages["present"], true, "{messages}");
    let listed = messages["files"].as_u64().unwrap();
    assert!(listed > 1);
    assert_eq!(messages["files_present"], listed - 1);
    // The writer's plain backup lists HealthDomain and KeychainDomain files: it holds them.
    for category in ["health", "keychain"] {
        let h = holding(&report, category);
        assert_eq!(h["present"], true, "{h}");
        assert!(h["files"].as_u64().unwrap() > 0);
        assert_eq!(h["files_present"], h["files"]);
    }
    // A category the backup does not list.
    let notes = holding(&report, "notes");
    assert_eq!(
        (notes["present"].clone(), notes["files"].clone()),
        (false.into(), 0.into())
    );

    let text = run(&["inspect", s(&backup)], None, backup.parent().unwrap()).stdout();
    let line = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in:\n{text}"))
            .to_string()
    };
    assert!(
        line("Photos").contains("none of them is in the folder"),
        "{text}"
    );
    assert!(
        line("Messages").contains(&format!("only {} of {listed} files", listed - 1)),
        "{text}"
    );
    let health = line("Health");
    assert!(!health.contains("not kept"), "{health}");
    assert!(
        health.contains("files)") || health.contains("file)"),
        "{health}"
    );
}

#[test]
fn keyed_records_without_a_manifest_plist_are_an_encrypted_backup() {
    let (_dir, backup, want) = written(&[Defect::NoManifestPlist, Defect::AllKeyed]);
    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["backup"]["encrypted"], true);
    let codes = problem_codes(&report);
    assert!(codes.contains(&"backup.manifest_plist_missing".to_string()));
    let problem = problem(&report, "backup.encrypted_no_keybag");
    assert_eq!(problem["severity"], "warning");
    // Blobs are judged at the padded length of an encrypted file: all intact.
    assert_eq!(report["files"]["intact"], want.listed);
    assert_eq!(report["files"]["size_mismatch"], serde_json::json!([]));

    let text = run(&["verify", s(&backup)], None, backup.parent().unwrap()).stdout();
    assert!(
        text.contains("encrypted (no Manifest.plist to unlock it)"),
        "{text}"
    );
    assert!(!text.contains("not encrypted"), "{text}");
}

#[test]
fn a_plain_backup_without_a_manifest_plist_stays_not_encrypted() {
    // The writer gives a third of its plain records a key: not most of them.
    let (_dir, backup, want) = written(&[Defect::NoManifestPlist]);
    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(1));
    assert_eq!(report["backup"]["encrypted"], false);
    assert!(!problem_codes(&report).contains(&"backup.encrypted_no_keybag".to_string()));
    assert_eq!(report["files"]["intact"], want.intact);
}

#[test]
fn a_backup_decrypted_by_another_tool_is_not_taken_for_encrypted() {
    // Keys in every record, as a decrypting tool leaves them, but blobs of their plain size.
    let (_dir, backup, want) = written(&[Defect::NoManifestPlist, Defect::KeyedPlainBlobs]);
    let (code, report) = verify_json(&backup, None);
    assert_eq!(code, Some(1));
    assert_eq!(report["backup"]["encrypted"], false);
    assert!(!problem_codes(&report).contains(&"backup.encrypted_no_keybag".to_string()));
    assert_eq!(report["files"]["intact"], want.intact);
}
