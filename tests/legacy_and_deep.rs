//! End-to-end tests of iOS 5-9 backups (Manifest.mbdb, blobs flat in the root), plain and
//! encrypted, and of `--deep`'s quick_check of key databases in a plain backup.
//!
//! The mbdb fixtures are made by rewriting a backup from the test writers (support/legacy.rs).

mod support;

use support::{json_of, problem_codes};
mod support_encrypt;

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use support::{ibackup_with, sha1_hex, stderr, stdout, to_legacy, write_backup, Defect, Run, Spec};

const PASSWORD: &str = "rust-made pässword";

fn verify(backup: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec!["verify", backup.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    ibackup_with(&args, env)
}

#[test]
fn a_plain_mbdb_backup_verifies_like_a_manifest_db_one() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("legacy");
    let expected = write_backup(&backup, &Spec::default());
    to_legacy(&backup, None);
    let out = verify(&backup, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json_of(&out);
    assert_eq!(report["files"]["listed"], expected.listed);
    assert_eq!(report["files"]["intact"], expected.intact);
    assert_eq!(report["files"]["directories"], expected.directories);
    assert_eq!(report["files"]["symlinks"], expected.symlinks);
    assert_eq!(report["size"]["declared_bytes"], expected.declared_bytes);

    let inspect = ibackup_with(&["inspect", backup.to_str().unwrap(), "--json"], &[]);
    assert_eq!(inspect.status.code(), Some(0), "{}", stderr(&inspect));
    assert_eq!(
        json_of(&inspect)["backups"][0]["files"]["listed"],
        expected.listed
    );
}

#[test]
fn a_missing_and_a_truncated_blob_in_an_mbdb_backup_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("legacy");
    let spec = Spec::default()
        .with(Defect::MissingBlob)
        .with(Defect::TruncatedBlob);
    let expected = write_backup(&backup, &spec);
    to_legacy(&backup, None);
    let out = verify(&backup, &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(
        report["files"]["missing"].as_array().unwrap().len() as u64,
        expected.missing
    );
    assert_eq!(
        report["files"]["size_mismatch"].as_array().unwrap().len() as u64,
        expected.size_mismatch
    );
    assert!(problem_codes(&report).contains(&"backup.files_missing".to_string()));
}

#[test]
fn a_damaged_mbdb_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("legacy");
    write_backup(&backup, &Spec::default());
    to_legacy(&backup, None);
    let mbdb = backup.join("Manifest.mbdb");
    let bytes = fs::read(&mbdb).unwrap();
    fs::write(&mbdb, &bytes[..bytes.len() - 7]).unwrap();
    let out = ibackup_with(&["verify", backup.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Manifest.mbdb"), "{}", stderr(&out));
    assert!(stderr(&out).contains("cut short"), "{}", stderr(&out));
}

fn encrypted_legacy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("legacy-encrypted");
    fs::create_dir_all(&backup).unwrap();
    support_encrypt::write_encrypted_backup(&backup, PASSWORD.as_bytes(), 1000, 100);
    to_legacy(&backup, Some(PASSWORD));
    (dir, backup)
}

#[test]
fn an_encrypted_mbdb_backup_verifies_and_decrypts_deep() {
    let (_dir, backup) = encrypted_legacy();
    // The file list is plain: the sizes are checked without the password.
    let out = verify(&backup, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json_of(&out);
    assert_eq!(report["backup"]["encrypted"], true);
    assert_eq!(report["files"]["listed"], 5);
    assert_eq!(report["files"]["intact"], 5);

    // --deep without it cannot decrypt: unchecked.
    let out = verify(&backup, &["--deep"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(problem_codes(&json_of(&out)).contains(&"backup.encrypted_no_password".to_string()));

    let env = [("IBACKUP_PASSWORD", PASSWORD)];
    let out = verify(&backup, &["--deep"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(json_of(&out)["files"]["decrypted"], 5);

    let wrong = verify(&backup, &["--deep"], &[("IBACKUP_PASSWORD", "nope")]);
    assert_eq!(wrong.status.code(), Some(2));

    // Bad padding in one flat blob.
    let blob = backup.join(sha1_hex("HomeDomain-Library/thirty-two"));
    let mut bytes = fs::read(&blob).unwrap();
    bytes[31] ^= 0xFF;
    fs::write(&blob, bytes).unwrap();
    let out = verify(&backup, &["--deep"], &env);
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(
        report["files"]["undecryptable"][0]["path"],
        "Library/thirty-two"
    );
}

/// A SQLite database of several pages, as bytes.
fn database(rows: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 4096; CREATE TABLE message (id INTEGER PRIMARY KEY, text TEXT);",
    )
    .unwrap();
    for i in 0..rows {
        conn.execute(
            "INSERT INTO message (text) VALUES (?1)",
            [format!("message {i} {}", "x".repeat(100))],
        )
        .unwrap();
    }
    drop(conn);
    fs::read(path).unwrap()
}

/// Adds a file row and its blob to a plain backup made by the writer.
fn add_file(backup: &Path, domain: &str, path: &str, data: &[u8]) {
    let id = sha1_hex(&format!("{domain}-{path}"));
    let record = support::mbfile(path, 0o100644, Some(data.len() as u64), None, false);
    let conn = Connection::open(backup.join("Manifest.db")).unwrap();
    conn.execute(
        "INSERT INTO Files VALUES (?1, ?2, ?3, 1, ?4)",
        rusqlite::params![id, domain, path, record],
    )
    .unwrap();
    fs::create_dir_all(backup.join(&id[..2])).unwrap();
    fs::write(backup.join(&id[..2]).join(&id), data).unwrap();
}

#[test]
fn deep_quick_checks_the_key_databases_of_a_plain_backup() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("plain");
    write_backup(&backup, &Spec::default());
    let good = database(300);
    let mut damaged = database(300);
    assert!(damaged.len() > 4 * 4096);
    // Overwrite the interior of page 3 with noise: the header stays valid.
    for (i, byte) in damaged[2 * 4096..2 * 4096 + 600].iter_mut().enumerate() {
        *byte = (i * 37 % 251) as u8;
    }
    add_file(&backup, "HomeDomain", "Library/SMS/sms.db", &damaged);
    add_file(
        &backup,
        "CameraRollDomain",
        "Media/PhotoData/Photos.sqlite",
        &good,
    );
    let before = support::tree_fingerprint(dir.path());

    let shallow = verify(&backup, &[], &[]);
    assert_eq!(shallow.status.code(), Some(0), "{}", stdout(&shallow));
    assert_eq!(json_of(&shallow)["databases"].as_array().unwrap().len(), 0);

    let out = verify(&backup, &["--deep"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = json_of(&out);
    let databases = report["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 2);
    let sms = databases.iter().find(|d| d["name"] == "Messages").unwrap();
    assert_eq!(sms["domain"], "HomeDomain");
    assert_eq!(sms["path"], "Library/SMS/sms.db");
    assert_ne!(sms["result"], "ok");
    let photos = databases.iter().find(|d| d["name"] == "Photos").unwrap();
    assert_eq!(photos["result"], "ok");
    assert!(problem_codes(&report).contains(&"backup.database_damaged".to_string()));
    assert_eq!(support::tree_fingerprint(dir.path()), before);
}

#[test]
fn ls_lists_an_mbdb_backup_and_names_its_missing_blob() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("legacy");
    let expected = write_backup(&backup, &Spec::default().with(Defect::MissingBlob));
    to_legacy(&backup, None);
    let out = ibackup_with(&["ls", backup.to_str().unwrap(), "--json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.last().unwrap();
    assert_eq!(summary["files"], expected.listed);
    assert_eq!(summary["missing"], 1);
    assert_eq!(summary["present"], expected.listed - 1);
    assert_eq!(summary["symlinks"], expected.symlinks);
    assert_eq!(summary["bytes"], expected.declared_bytes);
    // The blobs of an mbdb backup lie flat in its root, named by SHA-1(domain-path).
    let missing = lines.iter().find(|l| l["state"] == "missing").unwrap();
    let id = missing["file_id"].as_str().unwrap();
    assert_eq!(
        id,
        sha1_hex(&format!(
            "{}-{}",
            missing["domain"].as_str().unwrap(),
            missing["path"].as_str().unwrap()
        ))
    );
    assert!(!backup.join(id).exists());
}
