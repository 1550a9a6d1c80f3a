//! `ibackup diff OLD NEW` end to end: a generated backup, a copy of it edited with known changes
//! (rows added, removed, resized and re-dated in its Manifest.db, a domain and an app taken out,
//! a blob deleted), and the report must list exactly those; identical backups, encrypted ones,
//! an iOS 5-9 one, an unreadable NEW and hostile names.

mod support;
mod support_encrypt;

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use plist::Value;
use rusqlite::{params, Connection};
use serde_json::json;
use support::{
    add_file_row, finding_codes, ibackup, mbfile, sha1_hex, write_backup, Ibackup, Spec,
};

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn blob(backup: &Path, id: &str) -> PathBuf {
    backup.join(&id[..2]).join(id)
}

/// The blob lengths (plain backups: the file sizes) of the file rows of `domain`, by path.
fn file_rows(backup: &Path, domain: &str) -> Vec<(String, String, u64)> {
    let conn = Connection::open(backup.join("Manifest.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT fileID, relativePath FROM Files WHERE domain = ?1 AND flags != 2
             ORDER BY relativePath",
        )
        .unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([domain], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.into_iter()
        .map(|(id, path)| {
            let len = fs::metadata(blob(backup, &id)).map_or(0, |m| m.len());
            (id, path, len)
        })
        .collect()
}

fn add_file(backup: &Path, domain: &str, path: &str, size: u64) {
    let id = add_file_row(backup, domain, path, size);
    fs::create_dir_all(backup.join(&id[..2])).unwrap();
    fs::write(blob(backup, &id), vec![7u8; size as usize]).unwrap();
}

/// Sets a row's MBFile LastModified to `time`.
fn redate(backup: &Path, id: &str, time: i64) {
    let conn = Connection::open(backup.join("Manifest.db")).unwrap();
    let record: Vec<u8> = conn
        .query_row("SELECT file FROM Files WHERE fileID = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    let mut archive = Value::from_reader(Cursor::new(record)).unwrap();
    let objects = archive
        .as_dictionary_mut()
        .unwrap()
        .get_mut("$objects")
        .unwrap()
        .as_array_mut()
        .unwrap();
    let file = objects
        .iter_mut()
        .find_map(|o| {
            o.as_dictionary_mut()
                .filter(|d| d.contains_key("LastModified"))
        })
        .unwrap();
    file.insert("LastModified".into(), Value::Integer(time.into()));
    let mut bytes = Vec::new();
    archive.to_writer_binary(&mut bytes).unwrap();
    conn.execute(
        "UPDATE Files SET file = ?1 WHERE fileID = ?2",
        params![bytes, id],
    )
    .unwrap();
}

fn remove_domain(backup: &Path, domain: &str) -> u64 {
    let rows = file_rows(backup, domain);
    for (id, _, _) in &rows {
        let _ = fs::remove_file(blob(backup, id));
    }
    let conn = Connection::open(backup.join("Manifest.db")).unwrap();
    conn.execute("DELETE FROM Files WHERE domain = ?1", [domain])
        .unwrap();
    rows.iter().map(|r| r.2).sum()
}

/// What the edits below took away, in bytes, so the test can check the deltas.
struct Edits {
    removed_bytes: u64,
    health_path: String,
    health_size: u64,
}

const WHATSAPP: &str = "AppDomain-net.whatsapp.WhatsApp";
const WHATSAPP_GROUP: &str = "AppDomainGroup-group.net.whatsapp.WhatsApp.shared";

/// NEW = OLD with: 2 files added (HomeDomain 1,000 bytes, MediaDomain 500), 1 CameraRollDomain
/// file removed, 1 MediaDomain file grown by 100 bytes, 1 HomeDomain file re-dated,
/// WirelessDomain removed (5 files), WhatsApp's two domains removed (10 files), and one
/// HealthDomain blob deleted.
fn edit(new: &Path) -> Edits {
    add_file(new, "HomeDomain", "Library/SMS/added.dat", 1000);
    add_file(new, "MediaDomain", "Media/Recordings/added.m4a", 500);
    let conn = Connection::open(new.join("Manifest.db")).unwrap();

    let camera = file_rows(new, "CameraRollDomain");
    let (gone_id, _, gone_size) = camera
        .iter()
        .find(|r| r.1.ends_with(".dat"))
        .unwrap()
        .clone();
    conn.execute("DELETE FROM Files WHERE fileID = ?1", [&gone_id])
        .unwrap();
    fs::remove_file(blob(new, &gone_id)).unwrap();

    let media = file_rows(new, "MediaDomain");
    let (grown_id, grown_path, grown_size) = media
        .iter()
        .find(|r| r.1.ends_with(".dat"))
        .unwrap()
        .clone();
    conn.execute(
        "UPDATE Files SET file = ?1 WHERE fileID = ?2",
        params![
            mbfile(&grown_path, 0o100644, Some(grown_size + 100), None, false),
            grown_id
        ],
    )
    .unwrap();
    fs::write(blob(new, &grown_id), vec![1u8; grown_size as usize + 100]).unwrap();

    let home = file_rows(new, "HomeDomain");
    let redated = home
        .iter()
        .find(|r| r.1.ends_with(".dat") && !r.1.contains("added"))
        .unwrap();
    redate(new, &redated.0, 1_700_086_400);

    let health = file_rows(new, "HealthDomain");
    let (health_id, health_path, health_size) = health.iter().find(|r| r.2 > 0).unwrap().clone();
    fs::remove_file(blob(new, &health_id)).unwrap();
    drop(conn);

    let removed_bytes = gone_size
        + remove_domain(new, "WirelessDomain")
        + remove_domain(new, WHATSAPP)
        + remove_domain(new, WHATSAPP_GROUP);
    Edits {
        removed_bytes,
        health_path,
        health_size,
    }
}

fn pair() -> (tempfile::TempDir, PathBuf, PathBuf, Edits) {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let new = dir.path().join("new");
    write_backup(&old, &Spec::default());
    copy_dir(&old, &new);
    let edits = edit(&new);
    (dir, old, new, edits)
}

fn diff_json(old: &Path, new: &Path, code: i32) -> serde_json::Value {
    ibackup(&[
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--json",
    ])
    .json_exit(code)
}

fn group<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:#}"))
}

fn paths(list: &serde_json::Value) -> Vec<String> {
    let mut paths: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["domain"].as_str().unwrap(),
                f["path"].as_str().unwrap()
            )
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn known_changes_are_reported_exactly() {
    let (_dir, old, new, edits) = pair();
    let report = diff_json(&old, &new, 1);
    assert_eq!(report["schema"], "ibackup.diff/1");
    // 40 files and 2 symlinks in OLD (directories are not counted).
    assert_eq!(report["old"]["files"], 42);
    assert_eq!(report["new"]["files"], 42 - 16 + 2);
    let removed = edits.removed_bytes as i64;
    assert_eq!(
        report["totals"],
        json!({
            "added": 2, "added_bytes": 1500,
            "removed": 16, "removed_bytes": removed,
            "changed": 2, "changed_bytes_delta": 100,
            "unchanged": 24,
            "bytes_delta": 1500 + 100 - removed,
        })
    );
    assert_eq!(report["now_missing"], 1);
    assert_eq!(
        finding_codes(&report),
        [
            "diff.now_missing",
            "diff.app_vanished",
            "diff.domain_vanished",
            "diff.category_shrank"
        ]
    );
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings[0]["severity"], "error");
    assert_eq!(findings[1]["subject"], "net.whatsapp.WhatsApp");
    assert_eq!(findings[2]["subject"], "WirelessDomain");
    assert_eq!(findings[3]["subject"], "WhatsApp");

    let home = group(&report["domains"], "HomeDomain");
    assert_eq!(
        (
            &home["added"],
            &home["removed"],
            &home["changed"],
            &home["bytes_delta"]
        ),
        (&json!(1), &json!(0), &json!(1), &json!(1000))
    );
    let media = group(&report["domains"], "MediaDomain");
    assert_eq!(
        (&media["added"], &media["changed"], &media["bytes_delta"]),
        (&json!(1), &json!(1), &json!(600))
    );
    let wireless = group(&report["domains"], "WirelessDomain");
    assert_eq!(
        (&wireless["removed"], &wireless["new_files"]),
        (&json!(5), &json!(0))
    );
    let group_domain = group(&report["domains"], WHATSAPP_GROUP);
    assert_eq!(group_domain["app"], "net.whatsapp.WhatsApp");
    let app = group(&report["apps"], "net.whatsapp.WhatsApp");
    assert_eq!(
        (&app["removed"], &app["old_files"], &app["new_files"]),
        (&json!(10), &json!(10), &json!(0))
    );
    assert_eq!(report["apps"].as_array().unwrap().len(), 1);

    assert_eq!(
        paths(&report["files"]["added"]),
        [
            "HomeDomain Library/SMS/added.dat",
            "MediaDomain Media/Recordings/added.m4a"
        ]
    );
    assert_eq!(report["files"]["removed"].as_array().unwrap().len(), 16);
    assert_eq!(report["files"]["changed"].as_array().unwrap().len(), 2);
    let missing = &report["files"]["now_missing"][0];
    assert_eq!(missing["domain"], "HealthDomain");
    assert_eq!(missing["path"], edits.health_path.as_str());
    assert_eq!(missing["old"]["size"], edits.health_size);
    assert_eq!(missing["new"]["blob"], "missing");
}

#[test]
fn the_text_page_puts_the_losses_first() {
    let (_dir, old, new, _) = pair();
    let run = ibackup(&["diff", old.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let text = run.stdout();
    let lost = text.find("What the newer backup lost:").unwrap();
    let by_domain = text.find("By domain").unwrap();
    let added = text.find("Added (2 files").unwrap();
    assert!(lost < by_domain && by_domain < added, "{text}");
    assert!(
        text.contains("the app net.whatsapp.WhatsApp had 10 files"),
        "{text}"
    );
    assert!(
        text.contains("the domain WirelessDomain had 5 files"),
        "{text}"
    );
    assert!(text.contains("  added            2  +1.5 KB"), "{text}");
    let quiet = ibackup(&[
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(
        (quiet.code(), quiet.stdout()),
        (Some(1), "lost\n".to_string())
    );
}

#[test]
fn identical_backups_differ_in_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    write_backup(&old, &Spec::default());
    let report = diff_json(&old, &old, 0);
    assert_eq!(
        report["totals"],
        json!({ "added": 0, "added_bytes": 0, "removed": 0, "removed_bytes": 0, "changed": 0,
                "changed_bytes_delta": 0, "unchanged": 42, "bytes_delta": 0 })
    );
    assert_eq!(finding_codes(&report), Vec::<String>::new());
    let run = ibackup(&["diff", old.to_str().unwrap(), old.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0));
    assert!(run.stdout().contains("The newer backup lost nothing"));
}

#[test]
fn another_phone_and_an_older_new_are_notes_not_losses() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let other = dir.path().join("other");
    write_backup(&old, &Spec::default());
    let spec = Spec {
        udid: "00008030-0000000000000001".into(),
        date: Spec::default().date - 86_400,
        ..Spec::default()
    };
    write_backup(&other, &spec);
    let report = diff_json(&old, &other, 0);
    assert_eq!(
        finding_codes(&report),
        ["diff.different_phones", "diff.new_is_older"]
    );
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["severity"] == "info"));
}

const PASSWORD: &str = "diff pässword";

#[test]
fn encrypted_backups_are_opened_with_the_one_password() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let new = dir.path().join("new");
    fs::create_dir_all(&old).unwrap();
    let written = support_encrypt::write_encrypted_backup(&old, PASSWORD.as_bytes(), 1000, 100);
    copy_dir(&old, &new);
    let victim = written.iter().find(|f| f.flags == 1 && f.size > 0).unwrap();
    fs::remove_file(blob(&new, &victim.file_id)).unwrap();
    let password_file = dir.path().join("pw");
    fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let pw = password_file.to_str().unwrap();
    let (o, n) = (old.to_str().unwrap(), new.to_str().unwrap());

    let report = Ibackup::new(["diff", o, n, "--json", "--password-file", pw])
        .run()
        .json_exit(1);
    assert_eq!(finding_codes(&report), ["diff.now_missing"]);
    assert_eq!(report["new"]["encrypted"], true);
    assert_eq!(
        report["files"]["now_missing"][0]["path"],
        victim.relative_path.as_str()
    );
    assert_eq!(report["totals"]["changed"], 0);

    fs::write(&password_file, "not it\n").unwrap();
    let wrong = Ibackup::new(["diff", o, n, "--json", "--password-file", pw])
        .run()
        .json_exit(2);
    assert_eq!(wrong["error"]["code"], "backup.wrong_password");
}

/// One Manifest.mbdb record (big-endian), as iOS 5-9 wrote them.
fn mbdb_record(domain: &str, path: &str, mode: u16, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for text in [Some(domain), Some(path), None, None, None] {
        match text {
            Some(t) => {
                out.extend((t.len() as u16).to_be_bytes());
                out.extend(t.as_bytes());
            }
            None => out.extend([0xFF, 0xFF]),
        }
    }
    out.extend(mode.to_be_bytes());
    out.extend(7u64.to_be_bytes()); // inode
    out.extend(501u32.to_be_bytes());
    out.extend(501u32.to_be_bytes());
    for _ in 0..3 {
        out.extend(1_400_000_000u32.to_be_bytes());
    }
    out.extend(size.to_be_bytes());
    out.extend([3, 0]); // protection class, no properties
    out
}

/// An iOS 5-9 backup of `files` in HomeDomain (and its Library folder), blobs flat in the root.
fn write_legacy(dir: &Path, files: &[(&str, u64)]) {
    fs::create_dir_all(dir).unwrap();
    let mut mbdb = b"mbdb\x05\x00".to_vec();
    mbdb.extend(mbdb_record("HomeDomain", "Library", 0o040755, 0));
    for (path, size) in files {
        mbdb.extend(mbdb_record("HomeDomain", path, 0o100644, *size));
        let id = sha1_hex(&format!("HomeDomain-{path}"));
        fs::write(dir.join(id), vec![0u8; *size as usize]).unwrap();
    }
    fs::write(dir.join("Manifest.mbdb"), mbdb).unwrap();
}

#[test]
fn a_legacy_mbdb_backup_diffs_against_itself_and_names_what_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let files = [
        ("Library/SMS/sms.db", 300u64),
        ("Library/Notes/notes.sqlite", 40),
    ];
    write_legacy(&legacy, &files);
    let report = diff_json(&legacy, &legacy, 0);
    assert_eq!(report["old"]["legacy"], true);
    assert_eq!(report["old"]["files"], 2);
    assert_eq!(report["old"]["bytes"], 340);
    assert_eq!(report["totals"]["unchanged"], 2);
    assert_eq!(finding_codes(&report), Vec::<String>::new());

    // The removed file is named from the older mbdb by its record number.
    let newer = dir.path().join("newer");
    write_legacy(&newer, &files[1..]);
    let report = diff_json(&legacy, &newer, 1);
    assert_eq!(report["totals"]["removed"], 1);
    assert_eq!(
        paths(&report["files"]["removed"]),
        ["HomeDomain Library/SMS/sms.db"]
    );
    assert_eq!(finding_codes(&report), ["diff.category_shrank"]);
}

#[test]
fn a_blob_already_missing_in_the_older_backup_is_not_a_loss() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let new = dir.path().join("new");
    write_backup(&old, &Spec::default());
    let health = file_rows(&old, "HealthDomain");
    let (id, _, _) = health.iter().find(|r| r.2 > 0).unwrap().clone();
    fs::remove_file(blob(&old, &id)).unwrap();
    copy_dir(&old, &new);
    let report = diff_json(&old, &new, 0);
    assert_eq!(report["now_missing"], 0);
    assert_eq!(report["totals"]["unchanged"], 42);
}

#[test]
fn an_unreadable_new_backup_is_exit_2_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let new = dir.path().join("new");
    write_backup(&old, &Spec::default());
    copy_dir(&old, &new);
    fs::write(
        new.join("Manifest.db"),
        b"this is not a database at all, just text",
    )
    .unwrap();
    let run = ibackup(&[
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--json",
    ]);
    let error = run.json_exit(2);
    assert_eq!(error["error"]["code"], "backup.manifest_damaged");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("(the newer backup)"),
        "{error:#}"
    );
    let missing = dir.path().join("nowhere");
    let run = ibackup(&[
        "diff",
        old.to_str().unwrap(),
        missing.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(run.json_exit(2)["error"]["code"], "backup.not_found");
}

#[test]
fn hostile_names_are_escaped_in_text() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let new = dir.path().join("new");
    write_backup(&old, &Spec::default());
    copy_dir(&old, &new);
    add_file(
        &new,
        "HomeDomain",
        "evil\u{1b}[31mred\nfake line\u{202e}.txt",
        10,
    );
    let run = ibackup(&["diff", old.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let text = run.stdout();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text:?}"
    );
    assert!(!text.lines().any(|l| l.starts_with("fake line")), "{text}");
    assert!(
        text.contains("evil\\u{1b}[31mred\\nfake line\\u{202e}.txt"),
        "{text}"
    );
    let report = diff_json(&old, &new, 0);
    assert_eq!(
        report["files"]["added"][0]["path"],
        "evil\u{1b}[31mred\nfake line\u{202e}.txt"
    );
}
