//! `ibackup ls` end to end: generated backups (plain, with a missing blob, hostile names), the
//! encrypted third-party sample, a legacy Manifest.mbdb backup, and the selections. What the
//! listing says is checked against the Manifest.db rows read here with rusqlite, not against
//! ibackup's own reader.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::{add_file_row, tree_fingerprint, write_backup, Defect, Ibackup, Run, Spec};
use tempfile::TempDir;

fn ls(args: &[&str]) -> Run {
    Ibackup::offline(std::iter::once("ls").chain(args.iter().copied())).run()
}

/// `ls --json`: the file lines and the closing summary.
fn ls_json(args: &[&str]) -> (i32, Vec<serde_json::Value>, serde_json::Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let run = ls(&all);
    let mut lines: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["schema"], "ibackup.ls/1");
    (run.code().unwrap_or(-1), lines, summary)
}

/// Domain and path of every file (flags 1) and symlink (flags 4) row, with its flags.
fn rows(backup: &Path) -> BTreeMap<(String, String), i64> {
    let conn = rusqlite::Connection::open(backup.join("Manifest.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT domain, relativePath, flags FROM Files WHERE flags IN (1, 4)")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

fn listed(lines: &[serde_json::Value]) -> BTreeMap<(String, String), String> {
    lines
        .iter()
        .map(|l| {
            (
                (
                    l["domain"].as_str().unwrap().to_string(),
                    l["path"].as_str().unwrap().to_string(),
                ),
                l["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn generated(spec: Spec) -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let backup = dir.path().join("backup");
    write_backup(&backup, &spec);
    (dir, backup)
}

#[test]
fn every_file_and_symlink_is_listed_once_with_its_state() {
    let (_dir, backup) = generated(Spec::default());
    let before = tree_fingerprint(&backup);
    let (code, lines, summary) = ls_json(&[backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{summary}");
    let want = rows(&backup);
    assert_eq!(lines.len(), want.len());
    let got = listed(&lines);
    for ((domain, path), flags) in &want {
        let kind = &got[&(domain.clone(), path.clone())];
        assert_eq!(kind, if *flags == 1 { "file" } else { "symlink" });
    }
    let files = want.values().filter(|&&f| f == 1).count() as u64;
    assert_eq!(summary["files"], files);
    assert_eq!(summary["present"], files);
    assert_eq!(summary["missing"], 0);
    assert_eq!(summary["symlinks"], want.len() as u64 - files);
    let bytes: u64 = lines.iter().map(|l| l["size"].as_u64().unwrap()).sum();
    assert_eq!(summary["bytes"], bytes);
    assert!(lines
        .iter()
        .filter(|l| l["type"] == "file")
        .all(|l| l["state"] == "present" && l["modified"].as_str().unwrap().ends_with('Z')));
    // Listing reads; it never changes the backup.
    assert_eq!(tree_fingerprint(&backup), before);
}

#[test]
fn a_missing_blob_is_named_and_exits_1() {
    let (_dir, backup) = generated(Spec::default().with(Defect::MissingBlob));
    let (code, lines, summary) = ls_json(&[backup.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(summary["missing"], 1);
    let missing: Vec<_> = lines.iter().filter(|l| l["state"] == "missing").collect();
    assert_eq!(missing.len(), 1);
    let id = missing[0]["file_id"].as_str().unwrap();
    assert!(!backup.join(&id[..2]).join(id).exists());
    // The text listing says the same, and the tally goes to stderr.
    let run = ls(&[backup.to_str().unwrap()]);
    assert_eq!(run.code(), Some(1));
    let text = run.stdout();
    assert_eq!(text.lines().count(), lines.len());
    assert_eq!(
        text.lines().filter(|l| l.starts_with("missing ")).count(),
        1
    );
    assert!(run.stderr().contains("1 missing"), "{}", run.stderr());
}

#[test]
fn domain_app_and_pattern_select() {
    let (_dir, backup) = generated(Spec {
        files: 120,
        ..Spec::default()
    });
    let b = backup.to_str().unwrap();
    let all = rows(&backup);
    let count = |keep: &dyn Fn(&str, &str) -> bool| all.keys().filter(|(d, p)| keep(d, p)).count();

    let (_, lines, _) = ls_json(&[b, "--domain", "CameraRollDomain"]);
    assert_eq!(lines.len(), count(&|d, _| d == "CameraRollDomain"));
    assert!(!lines.is_empty());

    let (_, lines, _) = ls_json(&[b, "--app", "net.whatsapp.WhatsApp"]);
    assert_eq!(
        lines.len(),
        count(&|d, _| d == "AppDomain-net.whatsapp.WhatsApp"
            || d == "AppDomainGroup-group.net.whatsapp.WhatsApp.shared")
    );
    assert!(lines
        .iter()
        .any(|l| l["domain"].as_str().unwrap().starts_with("AppDomainGroup-")));

    // Case does not matter in a pattern; `*` crosses folders.
    let (_, lines, _) = ls_json(&[b, "MEDIA/DCIM/*"]);
    assert_eq!(
        lines.len(),
        count(&|_, p| p.to_ascii_lowercase().starts_with("media/dcim/"))
    );
    assert!(!lines.is_empty());

    let (code, lines, summary) = ls_json(&[b, "--domain", "NoSuchDomain"]);
    assert_eq!((code, lines.len()), (0, 0));
    assert_eq!(summary["files"], 0);
}

#[test]
fn hostile_names_stay_on_their_line_and_are_shown_escaped() {
    let (_dir, backup) = generated(Spec::default());
    add_file_row(
        &backup,
        "HomeDomain",
        "evil\x1b[2J\nrm -rf ~\u{202e}txt.exe",
        0,
    );
    let run = ls(&[backup.to_str().unwrap(), "evil"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let text = run.stdout();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\u{202e}'));
    assert!(
        text.contains("evil\\u{1b}[2J\\nrm -rf ~\\u{202e}txt.exe"),
        "{text}"
    );
    // JSON keeps the exact name.
    let (_, lines, _) = ls_json(&[backup.to_str().unwrap(), "evil"]);
    assert_eq!(lines[0]["path"], "evil\x1b[2J\nrm -rf ~\u{202e}txt.exe");
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/third-party/synthetic-encrypted-ios26")
}

#[test]
fn the_encrypted_sample_lists_with_its_password_and_not_without() {
    let dir = TempDir::new().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "test-password-1234\n").unwrap();
    let b = sample();
    let (code, lines, summary) =
        ls_json(&[b.to_str().unwrap(), "--password-file", pw.to_str().unwrap()]);
    assert_eq!(code, 0, "{summary}");
    let mut got: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                format!(
                    "{}/{}",
                    l["domain"].as_str().unwrap(),
                    l["path"].as_str().unwrap()
                ),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "AppDomain-com.example.app/Documents/exact.bin".to_string(),
                32
            ),
            (
                "CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.JPG".to_string(),
                768
            ),
            (
                "HomeDomain/Library/Preferences/com.apple.example.plist".to_string(),
                4
            ),
            ("HomeDomain/Library/SMS/sms.db".to_string(), 316),
        ]
    );
    // No password, no terminal: a clear error, exit 2.
    let run = ls(&["--json", b.to_str().unwrap()]);
    assert_eq!(run.code(), Some(2));
    assert_eq!(
        run.json()["error"]["code"],
        "backup.encrypted_no_password",
        "{}",
        run.stdout()
    );
    // A wrong one is named as such.
    std::fs::write(&pw, "not it\n").unwrap();
    let run = ls(&[
        "--json",
        b.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(2));
    assert_eq!(run.json()["error"]["code"], "backup.wrong_password");
    assert!(!run.stdout().contains("not it") && !run.stderr().contains("not it"));
}

#[test]
fn a_listing_that_is_not_a_backup_is_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let run = ls(&["--json", dir.path().to_str().unwrap()]);
    assert_eq!(run.code(), Some(2));
    assert_eq!(run.json()["error"]["code"], "backup.not_a_backup");
    let run = ls(&["--json", dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(run.code(), Some(2));
    assert_eq!(run.json()["error"]["code"], "backup.not_found");
}
