//! `ibackup extract`: plain, encrypted and legacy backups extracted byte for byte, modified times
//! restored, incomplete backups written as far as they go, selection, and `--overwrite`.

mod support;
mod support_encrypt;

use std::fs;
use std::path::{Path, PathBuf};

use sha2::Digest;
use support::{
    add_file_row, blob_of, entries, extract_run, relative_name, to_legacy, write_backup, Defect,
    Ibackup, Run, Spec,
};

const SAMPLE_PASSWORD: &str = "test-password-1234";
const RUST_PASSWORD: &str = "rust-made pässword";

fn extract(backup: &Path, to: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    extract_run(backup, to, extra, env)
}

/// Every file under `root`, as relative paths with `/`, sorted.
fn files(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = entries(root)
        .into_iter()
        .filter(|(_, meta)| !meta.is_dir())
        .map(|(path, _)| relative_name(root, &path))
        .collect();
    out.sort();
    out
}

/// The rows of a generated backup's files: (domain, relativePath).
fn file_rows(backup: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(backup.join("Manifest.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT domain, relativePath FROM Files WHERE flags = 1 ORDER BY domain, relativePath",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn generated(spec: &Spec) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    write_backup(&backup, spec);
    (dir, backup)
}

#[test]
fn a_plain_backup_is_extracted_byte_for_byte_with_its_times() {
    let (dir, backup) = generated(&Spec::default());
    let to = dir.path().join("out");
    let before = support::tree_fingerprint(&backup);
    let run = extract(&backup, &to, &[], &[]);
    let report = run.json_exit(0);
    assert_eq!(report["schema"], "ibackup.extract/1");
    assert_eq!(report["layout"], "domain");
    assert_eq!(report["selected"]["files"], 40);
    assert_eq!(report["selected"]["links"], 2);
    assert_eq!(report["written"]["files"], 40);
    assert_eq!(report["skipped_links"]["total"], 2);
    assert_eq!(report["complete"], true);
    let rows = file_rows(&backup);
    assert_eq!(rows.len(), 40);
    let mut bytes = 0;
    for (domain, path) in &rows {
        let out = to.join(domain).join(path);
        let want = fs::read(blob_of(&backup, domain, path)).unwrap_or_default();
        assert_eq!(fs::read(&out).unwrap(), want, "{domain} {path}");
        bytes += want.len() as u64;
        let modified = fs::metadata(&out).unwrap().modified().unwrap();
        let secs = modified
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1_700_000_000, "{domain} {path}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{domain} {path}: {mode:o}");
        }
    }
    assert_eq!(report["written"]["bytes"], bytes);
    // Only the files, no links, no empty folders of the manifest.
    assert_eq!(files(&to).len(), 40);
    assert!(!to.join("HomeDomain/Library/link0").exists());
    assert_eq!(support::tree_fingerprint(&backup), before);
}

#[test]
fn text_output_names_what_was_written() {
    let (dir, backup) = generated(&Spec::default());
    let to = dir.path().join("out");
    let run = Ibackup::new([
        "extract",
        backup.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let text = run.stdout();
    assert!(text.contains("Wrote 40 files"), "{text}");
    assert!(text.contains("2 links in the backup not made"), "{text}");
    assert!(
        run.stderr().is_empty(),
        "no bar when piped: {}",
        run.stderr()
    );
}

#[test]
fn messages_from_an_incomplete_backup_are_written_and_the_missing_attachment_named() {
    let (dir, backup) = generated(&Spec::default());
    let conn = rusqlite::Connection::open(backup.join("Manifest.db")).unwrap();
    drop(conn);
    // sms.db and one attachment are there; a second attachment's blob is missing.
    let sms = b"SQLite format 3\0 pretend messages".to_vec();
    add_file_row(
        &backup,
        "HomeDomain",
        "Library/SMS/sms.db",
        sms.len() as u64,
    );
    let blob = blob_of(&backup, "HomeDomain", "Library/SMS/sms.db");
    fs::create_dir_all(blob.parent().unwrap()).unwrap();
    fs::write(&blob, &sms).unwrap();
    let photo = b"\xff\xd8\xff pretend jpeg".to_vec();
    let there = "Library/SMS/Attachments/0a/10/IMG_0001.jpeg";
    add_file_row(&backup, "MediaDomain", there, photo.len() as u64);
    let blob = blob_of(&backup, "MediaDomain", there);
    fs::create_dir_all(blob.parent().unwrap()).unwrap();
    fs::write(&blob, &photo).unwrap();
    let gone = "Library/SMS/Attachments/0b/11/IMG_0002.heic";
    add_file_row(&backup, "MediaDomain", gone, 12_345);

    let to = dir.path().join("rescued");
    let run = extract(&backup, &to, &["--category", "messages"], &[]);
    let report = run.json_exit(1);
    assert_eq!(report["layout"], "category");
    // The three added, and the generated backup's five HomeDomain Library/SMS/Attachments files.
    assert_eq!(report["selected"]["files"], 8);
    assert_eq!(report["written"]["files"], 7);
    assert_eq!(report["missing"]["total"], 1);
    let missing = &report["missing"]["files"][0];
    assert_eq!(missing["domain"], "MediaDomain");
    assert_eq!(missing["path"], gone);
    assert_eq!(missing["size"], 12_345);
    assert_eq!(report["complete"], false);
    assert_eq!(fs::read(to.join("Messages/sms.db")).unwrap(), sms);
    assert_eq!(
        fs::read(to.join("Messages/Attachments/0a/10/IMG_0001.jpeg")).unwrap(),
        photo
    );
    let all = files(&to);
    assert!(all.iter().all(|f| f.starts_with("Messages/")), "{all:?}");
    assert_eq!(
        all.len() as u64,
        report["written"]["files"].as_u64().unwrap()
    );

    // The text names the missing attachment.
    fs::remove_dir_all(&to).unwrap();
    let run = Ibackup::new([
        "extract",
        backup.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--category",
        "messages",
    ])
    .run();
    assert_eq!(run.code(), Some(1));
    let text = run.stdout();
    assert!(
        text.contains("Missing from the backup, not written (1)"),
        "{text}"
    );
    assert!(text.contains(&format!("MediaDomain {gone}")), "{text}");
}

#[test]
fn a_blob_cut_short_is_written_as_far_as_it_goes() {
    let (dir, backup) = generated(&Spec::default().with(Defect::TruncatedBlob));
    let to = dir.path().join("out");
    let report = extract(&backup, &to, &[], &[]).json_exit(1);
    assert_eq!(report["cut_short"]["total"], 1);
    let cut = &report["cut_short"]["files"][0];
    let size = cut["size"].as_u64().unwrap();
    assert_eq!(cut["written"].as_u64().unwrap(), size / 2);
    let target = to.join(cut["target"].as_str().unwrap());
    assert_eq!(fs::metadata(target).unwrap().len(), size / 2);
    assert_eq!(report["written"]["files"], 40);
}

fn sha256_hex(bytes: &[u8]) -> String {
    support_encrypt::hex(&sha2::Sha256::digest(bytes))
}

#[test]
fn an_encrypted_backup_is_decrypted_to_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("enc");
    fs::create_dir_all(&backup).unwrap();
    let written =
        support_encrypt::write_encrypted_backup(&backup, RUST_PASSWORD.as_bytes(), 1000, 100);
    let pw = dir.path().join("pw");
    fs::write(&pw, format!("{RUST_PASSWORD}\n")).unwrap();
    let to = dir.path().join("out");
    let report = extract(
        &backup,
        &to,
        &["--password-file", pw.to_str().unwrap()],
        &[],
    )
    .json_exit(0);
    assert_eq!(report["encrypted"], true);
    let files_written: Vec<_> = written.iter().filter(|f| f.flags == 1).collect();
    assert_eq!(files_written.len(), 5);
    assert_eq!(report["written"]["files"], 5);
    assert_eq!(report["skipped_links"]["total"], 1);
    for f in files_written {
        let bytes = fs::read(to.join(&f.domain).join(&f.relative_path)).unwrap();
        assert_eq!(bytes.len() as u64, f.size, "{}", f.relative_path);
        assert_eq!(Some(sha256_hex(&bytes)), f.sha256, "{}", f.relative_path);
    }
}

#[test]
fn the_encrypted_sample_is_extracted() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/third-party/synthetic-encrypted-ios26");
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("out");
    let before = support::tree_fingerprint(&sample);
    let report = extract(&sample, &to, &[], &[("IBACKUP_PASSWORD", SAMPLE_PASSWORD)]).json_exit(0);
    assert_eq!(report["written"]["files"], 4);
    let mut sizes: Vec<u64> = files(&to)
        .iter()
        .map(|f| fs::metadata(to.join(f)).unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [4, 32, 316, 768]);
    assert_eq!(report["written"]["bytes"], 4 + 32 + 316 + 768);
    assert_eq!(support::tree_fingerprint(&sample), before);
}

#[test]
fn a_wrong_or_missing_password_stops_before_anything_is_written() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/third-party/synthetic-encrypted-ios26");
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("out");
    let run = extract(&sample, &to, &[], &[("IBACKUP_PASSWORD", "wrong")]);
    let report = run.json_exit(2);
    assert_eq!(report["error"]["code"], "backup.wrong_password", "{report}");
    assert!(!to.exists());
    let run = extract(&sample, &to, &[], &[]);
    assert_eq!(run.code(), Some(2));
    assert!(!to.exists());
}

/// One Manifest.mbdb record (big-endian), for a plain legacy backup.
#[test]
fn a_legacy_mbdb_backup_is_extracted() {
    let (dir, backup) = generated(&Spec::default());
    let rows = file_rows(&backup);
    let contents: Vec<Vec<u8>> = rows
        .iter()
        .map(|(domain, path)| fs::read(blob_of(&backup, domain, path)).unwrap_or_default())
        .collect();
    to_legacy(&backup, None);
    let to = dir.path().join("out");
    let report = extract(&backup, &to, &[], &[]).json_exit(0);
    assert_eq!(report["written"]["files"], 40);
    for ((domain, path), content) in rows.iter().zip(&contents) {
        let out = to.join(domain).join(path);
        assert_eq!(&fs::read(&out).unwrap(), content);
        let secs = fs::metadata(&out)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1_420_000_000);
    }
}

#[test]
fn existing_files_stop_the_run_unless_overwrite() {
    let (dir, backup) = generated(&Spec::default());
    let to = dir.path().join("out");
    extract(&backup, &to, &[], &[]).json_exit(0);
    let (domain, path) = file_rows(&backup)[3].clone();
    let target = to.join(&domain).join(&path);
    fs::write(&target, b"changed by the user").unwrap();
    let before = support::tree_fingerprint(&to);
    let run = extract(&backup, &to, &[], &[]);
    let report = run.json_exit(2);
    assert_eq!(report["error"]["code"], "extract.exists");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("40 files already exist"),
        "{report}"
    );
    assert_eq!(support::tree_fingerprint(&to), before, "nothing written");

    let report = extract(&backup, &to, &["--overwrite"], &[]).json_exit(0);
    assert_eq!(report["written"]["files"], 40);
    assert_eq!(
        fs::read(&target).unwrap(),
        fs::read(blob_of(&backup, &domain, &path)).unwrap_or_default()
    );
    // No temporary file left behind.
    assert!(files(&to).iter().all(|f| !f.contains(".ibackup-extract-")));
    assert_eq!(files(&to).len(), 40);
}

#[test]
fn domain_app_and_pattern_choose_the_files() {
    let (dir, backup) = generated(&Spec::default());
    let rows = file_rows(&backup);
    let count = |f: &dyn Fn(&(String, String)) -> bool| rows.iter().filter(|r| f(r)).count() as u64;

    let to = dir.path().join("d");
    let report = extract(&backup, &to, &["--domain", "CameraRollDomain"], &[]).json_exit(0);
    let want = count(&|r| r.0 == "CameraRollDomain");
    assert_eq!(want, 5);
    assert_eq!(report["written"]["files"], want);
    assert!(files(&to)
        .iter()
        .all(|f| f.starts_with("CameraRollDomain/Media/DCIM/")));

    let to = dir.path().join("a");
    let report = extract(&backup, &to, &["--app", "net.whatsapp.WhatsApp"], &[]).json_exit(0);
    let want = count(&|r| r.0.contains("net.whatsapp.WhatsApp"));
    assert_eq!(want, 10);
    assert_eq!(report["written"]["files"], want);

    let to = dir.path().join("p");
    let report = extract(&backup, &to, &["*/file00001?.dat"], &[]).json_exit(0);
    assert_eq!(report["written"]["files"], 10);
    assert_eq!(files(&to).len(), 10);

    let to = dir.path().join("c");
    let report = extract(&backup, &to, &["--category", "photos"], &[]).json_exit(0);
    assert_eq!(report["written"]["files"], 5);
    assert!(
        files(&to)
            .iter()
            .all(|f| f.starts_with("Photos/100APPLE/file")),
        "{:?}",
        files(&to)
    );

    let to = dir.path().join("none");
    let report = extract(&backup, &to, &["no-such-name"], &[]).json_exit(0);
    assert_eq!(report["selected"]["files"], 0);
}
