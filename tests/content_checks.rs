//! A blob of another size than its record states, judged by its content: a SQLite database or
//! binary plist cut short (incomplete), a database whole at another size (complete, changed while
//! the backup ran), encrypted blobs by their blocks and padding, a format that cannot tell (an
//! error that says why); and `verify --deep` on a plain backup, which checks every database and
//! plist and lists each damaged one once, and finds the README's sample complete.

mod support;
mod support_encrypt;

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use serde_json::Value;

use support::{mbfile, problem_codes, sha1_hex, write_backup, Ibackup, Spec};

const PASSWORD: &str = "content-check pässword";

/// A plain backup from the test writer, complete, in a fresh folder.
fn plain_backup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-000A1B2C3D4E5F60");
    write_backup(&backup, &Spec::default());
    (dir, backup)
}

/// Adds a regular-file row whose record states `size`, and its blob holding `content`.
fn plant(backup: &Path, domain: &str, path: &str, content: &[u8], size: u64) -> PathBuf {
    let id = sha1_hex(&format!("{domain}-{path}"));
    let conn = Connection::open(backup.join("Manifest.db")).unwrap();
    conn.execute(
        "INSERT INTO Files VALUES (?1, ?2, ?3, 1, ?4)",
        params![
            id,
            domain,
            path,
            mbfile(path, 0o100644, Some(size), None, false)
        ],
    )
    .unwrap();
    let blob = backup.join(&id[..2]).join(&id);
    fs::create_dir_all(blob.parent().unwrap()).unwrap();
    fs::write(&blob, content).unwrap();
    blob
}

/// A real SQLite database of 1 KiB pages holding `rows` rows of 300 bytes (and an index).
fn sqlite_bytes(rows: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("made.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024; PRAGMA journal_mode = DELETE;
         CREATE TABLE message (id INTEGER PRIMARY KEY, text TEXT);
         CREATE INDEX message_text ON message(text);",
    )
    .unwrap();
    for i in 0..rows {
        conn.execute(
            "INSERT INTO message (text) VALUES (?1)",
            params![format!("{i:05} {}", "hello ".repeat(50))],
        )
        .unwrap();
    }
    drop(conn);
    fs::read(&path).unwrap()
}

/// A real binary plist of `items` strings.
fn bplist_bytes(items: usize) -> Vec<u8> {
    let list = (0..items)
        .map(|i| plist::Value::String(format!("item {i} of a preferences file")))
        .collect();
    let mut dict = plist::Dictionary::new();
    dict.insert("Items".into(), plist::Value::Array(list));
    let mut out = Vec::new();
    plist::to_writer_binary(&mut out, &plist::Value::Dictionary(dict)).unwrap();
    out
}

fn verify(backup: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify", backup.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let run = Ibackup::new(&args).run();
    let report = run.json();
    (run.code().unwrap(), report)
}

/// The size_mismatch entry for `path`.
fn mismatch<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["files"]["size_mismatch"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not a size mismatch in {report}"))
}

fn message<'a>(report: &'a Value, code: &str) -> &'a str {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
        .and_then(|p| p["message"].as_str())
        .unwrap_or_else(|| panic!("no {code} in {report}"))
}

#[test]
fn a_sqlite_database_cut_short_is_incomplete() {
    let (_dir, backup) = plain_backup();
    let db = sqlite_bytes(40);
    let len = db.len() as u64;
    plant(
        &backup,
        "HomeDomain",
        "Library/Notes/notes.sqlite",
        &db[..db.len() / 2],
        len,
    );
    let (code, report) = verify(&backup, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(problem_codes(&report), ["backup.files_truncated"]);
    let m = mismatch(&report, "Library/Notes/notes.sqlite");
    assert_eq!(m["judged"], "cut_short");
    let evidence = m["evidence"].as_str().unwrap();
    assert!(evidence.contains("pages of 1024 bytes"), "{evidence}");
    assert!(
        evidence.contains(&format!("only {} bytes", len / 2)),
        "{evidence}"
    );
}

#[test]
fn a_whole_database_of_another_size_is_complete_and_changed() {
    let (_dir, backup) = plain_backup();
    let db = sqlite_bytes(30);
    // The manifest recorded the database before it grew by four pages.
    let recorded = db.len() as u64 - 4096;
    plant(&backup, "HomeDomain", "Library/SMS/sms.db", &db, recorded);
    let (code, report) = verify(&backup, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["verdict"], "complete");
    assert_eq!(problem_codes(&report), ["backup.files_changed"]);
    let m = mismatch(&report, "Library/SMS/sms.db");
    assert_eq!(m["judged"], "changed");
    assert_eq!(m["expected_bytes"], recorded);
    assert!(message(&report, "backup.files_changed").contains("changed while the backup ran"));

    // --deep agrees: quick_check passes, and the key database is listed once, ok.
    let (code, report) = verify(&backup, &["--deep"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(mismatch(&report, "Library/SMS/sms.db")["judged"], "changed");
    let dbs = report["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 1, "{report}");
    assert_eq!(dbs[0]["name"], "Messages");
    assert_eq!(dbs[0]["result"], "ok");

    // The text report says so in words, and diagnosing it gives a warning, not an error.
    let text = Ibackup::new(["verify", backup.to_str().unwrap()]).run();
    assert_eq!(text.code(), Some(0));
    assert!(
        text.stdout().contains("changed while the backup ran"),
        "{}",
        text.stdout()
    );
}

#[test]
fn a_binary_plist_cut_short_is_incomplete() {
    let (_dir, backup) = plain_backup();
    let plist = bplist_bytes(50);
    let path = "Library/Preferences/com.apple.springboard.plist";
    plant(
        &backup,
        "HomeDomain",
        path,
        &plist[..plist.len() - 20],
        plist.len() as u64,
    );
    let (code, report) = verify(&backup, &[]);
    assert_eq!(code, 1, "{report}");
    let m = mismatch(&report, path);
    assert_eq!(m["judged"], "cut_short");
    assert!(m["evidence"].as_str().unwrap().contains("binary plist"));

    // The same plist whole, recorded at another size: changed, not cut short.
    let (_dir2, backup2) = plain_backup();
    plant(&backup2, "HomeDomain", path, &plist, plist.len() as u64 + 7);
    let (code, report) = verify(&backup2, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(mismatch(&report, path)["judged"], "changed");
}

#[test]
fn a_format_without_evidence_stays_an_error_that_says_why() {
    let (_dir, backup) = plain_backup();
    let photo: Vec<u8> = b"\xff\xd8\xff\xe0\x00\x10JFIF"
        .iter()
        .copied()
        .chain((0..3000u32).map(|i| (i * 7) as u8))
        .collect();
    let path = "Media/DCIM/100APPLE/IMG_0001.JPG";
    plant(&backup, "CameraRollDomain", path, &photo, 6000);
    let (code, report) = verify(&backup, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["verdict"], "incomplete");
    assert_eq!(problem_codes(&report), ["backup.files_truncated"]);
    let m = mismatch(&report, path);
    assert_eq!(m["judged"], "unknown");
    assert!(
        m["evidence"].as_str().unwrap().contains("cannot be told"),
        "{m}"
    );
    let text = message(&report, "backup.files_truncated");
    assert!(text.contains("counted as cut short"), "{text}");
    // An empty blob where the record states bytes is cut short, whatever it was.
    let (_dir2, backup2) = plain_backup();
    plant(&backup2, "CameraRollDomain", path, b"", 6000);
    let (code, report) = verify(&backup2, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(mismatch(&report, path)["judged"], "cut_short");
}

/// ibackup's own Rust-made encrypted backup, with a password file next to it.
fn encrypted_backup() -> (
    tempfile::TempDir,
    PathBuf,
    PathBuf,
    Vec<support_encrypt::WrittenFile>,
) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-CONTENTCHECK");
    fs::create_dir_all(&backup).unwrap();
    let written = support_encrypt::write_encrypted_backup(&backup, PASSWORD.as_bytes(), 1000, 100);
    let pw = dir.path().join("password.txt");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    (dir, backup, pw, written)
}

#[test]
fn an_encrypted_blob_is_judged_by_its_blocks_and_padding() {
    let memo = "Media/Recordings/memo.m4a";
    let (_dir, backup, pw, written) = encrypted_backup();
    let pw = pw.to_str().unwrap();
    let file = written.iter().find(|f| f.relative_path == memo).unwrap();
    let blob = backup.join(&file.file_id[..2]).join(&file.file_id);
    let bytes = fs::read(&blob).unwrap();

    // Not whole 16-byte blocks: cut short, no key needed.
    fs::write(&blob, &bytes[..bytes.len() - 20]).unwrap();
    let (code, report) = verify(&backup, &["--password-file", pw]);
    assert_eq!(code, 1, "{report}");
    let m = mismatch(&report, memo);
    assert_eq!(m["judged"], "cut_short");
    assert!(m["evidence"].as_str().unwrap().contains("16-byte blocks"));

    // Cut at a block boundary: only the padding can tell, so without --deep it is unknown
    // (still an error), and with --deep the broken padding shows it was cut.
    fs::write(&blob, &bytes[..bytes.len() - 32]).unwrap();
    let (code, report) = verify(&backup, &["--password-file", pw]);
    assert_eq!(code, 1, "{report}");
    let m = mismatch(&report, memo);
    assert_eq!(m["judged"], "unknown");
    assert!(m["evidence"].as_str().unwrap().contains("--deep"));
    let (code, report) = verify(&backup, &["--password-file", pw, "--deep"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(mismatch(&report, memo)["judged"], "cut_short");

    // Other content encrypted whole with the file's own key: valid padding, changed.
    let key: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&file.key_hex.as_ref().unwrap()[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .try_into()
        .unwrap();
    let newer = vec![0x5au8; file.size as usize + 1000];
    fs::write(&blob, support_encrypt::encrypt(&key, &newer)).unwrap();
    let (code, report) = verify(&backup, &["--password-file", pw, "--deep"]);
    assert_eq!(code, 0, "{report}");
    let m = mismatch(&report, memo);
    assert_eq!(m["judged"], "changed");
    assert!(m["evidence"]
        .as_str()
        .unwrap()
        .contains(&format!("{} bytes", newer.len())));
    assert_eq!(problem_codes(&report), ["backup.files_changed"]);
}

#[test]
fn deep_lists_each_damaged_database_and_plist_once() {
    let (_dir, backup) = plain_backup();
    // A database of the right size whose second page (the table's root) has a broken header.
    let mut db = sqlite_bytes(40);
    for byte in &mut db[1024..1024 + 12] {
        *byte = 0xA5;
    }
    let db_len = db.len() as u64;
    plant(
        &backup,
        "HomeDomain",
        "Library/Safari/History.db",
        &db,
        db_len,
    );
    // A plist of the right size that does not parse.
    let broken = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict><key>a</key><string>b</dict>\n</plist>\n";
    plant(
        &backup,
        "HomeDomain",
        "Library/Preferences/com.example.broken.plist",
        broken,
        broken.len() as u64,
    );
    // A database cut short: reported as cut short, and not again as damaged.
    let whole = sqlite_bytes(20);
    plant(
        &backup,
        "HomeDomain",
        "Library/Mail/Envelope Index",
        &whole[..whole.len() - 1024],
        whole.len() as u64,
    );
    // Healthy ones are checked and pass.
    plant(
        &backup,
        "HomeDomain",
        "Library/Preferences/com.example.good.plist",
        &bplist_bytes(10),
        bplist_bytes(10).len() as u64,
    );

    // Without --deep only the size is looked at.
    let (code, report) = verify(&backup, &[]);
    assert_eq!(code, 1);
    assert_eq!(problem_codes(&report), ["backup.files_truncated"]);

    let (code, report) = verify(&backup, &["--deep"]);
    assert_eq!(code, 1, "{report}");
    let damaged = report["files"]["content_damaged"].as_array().unwrap();
    let mut paths: Vec<&str> = damaged
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "Library/Preferences/com.example.broken.plist",
            "Library/Safari/History.db"
        ],
        "{report}"
    );
    let reason = |path: &str| {
        damaged.iter().find(|d| d["path"] == path).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason("Library/Safari/History.db").contains("SQLite"));
    let plist_reason = reason("Library/Preferences/com.example.broken.plist");
    assert!(
        plist_reason.contains("does not parse as a plist"),
        "{plist_reason}"
    );
    // In words, not the parser's type names.
    assert!(!plist_reason.contains("InvalidXml"), "{plist_reason}");
    assert_eq!(
        mismatch(&report, "Library/Mail/Envelope Index")["judged"],
        "cut_short"
    );
    // Each problem once, each file in one list only.
    let codes = problem_codes(&report);
    assert_eq!(
        codes,
        ["backup.files_truncated", "backup.content_damaged"],
        "{report}"
    );
    assert_eq!(
        report["files"]["size_mismatch"].as_array().unwrap().len(),
        1
    );
    assert!(report["databases"].as_array().unwrap().is_empty());
    // Checked: the two damaged files and the good plist (the writer's filler blobs are neither
    // databases nor plists, and the cut-short one is already reported).
    assert_eq!(report["files"]["content_checked"], 3);
    let text = Ibackup::new(["verify", backup.to_str().unwrap(), "--deep", "--verbose"]).run();
    let out = text.stdout();
    assert_eq!(out.matches("Library/Safari/History.db").count(), 1, "{out}");
}

#[test]
fn deep_finds_the_readme_sample_complete() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sample-backup/00008110-001A2C3E0E38801E");
    let (code, report) = verify(&sample, &["--deep"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["verdict"], "complete");
    assert!(report["files"]["content_damaged"]
        .as_array()
        .unwrap()
        .is_empty());
    // sms.db, AddressBook, Photos, ChatStorage, CellularUsage.db, Recordings.db, the three
    // plists with a Size, notes.sqlite: every one the writer made real.
    assert_eq!(report["files"]["content_checked"], 10, "{report}");
    let dbs = report["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 4, "{report}");
    assert!(dbs.iter().all(|d| d["result"] == "ok"), "{report}");
}
