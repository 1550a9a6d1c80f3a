//! `ibackup extract` against an independent extraction (issue 17, "Proof"): for the encrypted
//! sample in ../shared/samples, for encrypted backups written by the Python writer
//! (scripts/independent_encrypted_backup.py) and by the Rust test writer (tests/support_encrypt),
//! and for plain backups written by tests/support/writer.rs and tests/independent/make_backup.py,
//! `ibackup extract B --to D1` and tests/independent/decrypt_backup.py (Python `cryptography`,
//! written without reading src/) into D2 must give the same files with the same bytes, and every
//! extracted file's modified time must be its record's LastModified.
//!
//! The decryptor itself is checked first, against what each writer knows it wrote (plaintext
//! hashes, blob bytes, the sample's recognisable contents), so a comparison with it means
//! something. These checks need `python3` with PyPI's `cryptography`; without them the tests fail
//! saying so (scripts/install-test-deps.sh installs both), they never pass silently.

mod support;
mod support_encrypt;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::Digest;
use support::{entries, relative_name, sha1_hex, write_backup, Defect, Ibackup, Spec};

const SAMPLE_PASSWORD: &str = "test-password-1234";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The third-party encrypted sample: ../shared/samples when it is beside the checkout (as in
/// CI), otherwise the copy committed under fixtures/third-party (same files, same licence note).
fn sample() -> PathBuf {
    let shared = repo().join("../shared/samples/synthetic-encrypted-ios26");
    if shared.is_dir() {
        shared
    } else {
        repo().join("fixtures/third-party/synthetic-encrypted-ios26")
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    support_encrypt::hex(&sha2::Sha256::digest(bytes))
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("password.txt");
    fs::write(&path, format!("{password}\n")).unwrap();
    path
}

/// What decrypt_backup.py reported: its exit code and JSON.
struct Decrypted {
    code: i32,
    report: Value,
}

impl Decrypted {
    /// (domain/relativePath) -> the written file's entry.
    fn written(&self) -> BTreeMap<String, Value> {
        self.report["written"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                let key = format!(
                    "{}/{}",
                    w["domain"].as_str().unwrap(),
                    w["relativePath"].as_str().unwrap()
                );
                (key, w.clone())
            })
            .collect()
    }

    fn list(&self, key: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["fileID"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }
}

/// Runs the independent decryptor on `backup` into `out` (which must not exist yet).
fn python_decrypt(backup: &Path, out: &Path, password: Option<&str>) -> Decrypted {
    let script = repo().join("tests/independent/decrypt_backup.py");
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(backup)
        .arg(out)
        .arg("--json")
        .env_remove("IBACKUP_PASSWORD");
    let scratch = tempfile::tempdir().unwrap();
    if let Some(password) = password {
        command
            .arg("--password-file")
            .arg(password_file(scratch.path(), password));
    }
    let output = command.output().unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): these tests need python3 with `pip install cryptography`")
    });
    let code = output.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        code != 3,
        "the independent decryptor needs PyPI's `cryptography` package \
         (python3 -m pip install cryptography):\n{stderr}"
    );
    let report = if code == 0 || code == 1 {
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "decrypt_backup.py printed no JSON ({e}):\n{}\n{stderr}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    } else {
        Value::Null
    };
    Decrypted { code, report }
}

/// Every entry under `root` by its path relative to `root` ('/'-separated): files with their
/// bytes and modified time. Fails on anything that is neither a file nor a folder (a symlink:
/// symlink rows must not be made).
fn files_under(root: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    for (path, meta) in entries(root) {
        if meta.is_dir() {
            continue;
        }
        assert!(
            meta.is_file(),
            "{} is neither a file nor a folder",
            path.display()
        );
        let name = relative_name(root, &path);
        out.insert(name, (fs::read(&path).unwrap(), meta.modified().unwrap()));
    }
    out
}

fn unix(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds as u64)
}

/// `ibackup extract BACKUP --to OUT [--password-file F]`.
fn ibackup_extract(backup: &Path, out: &Path, password: Option<&str>) -> support::Run {
    let scratch = tempfile::tempdir().unwrap();
    let mut args = vec![
        "extract".into(),
        backup.as_os_str().to_owned(),
        "--to".into(),
        out.as_os_str().to_owned(),
    ];
    if let Some(password) = password {
        args.push("--password-file".into());
        args.push(password_file(scratch.path(), password).into_os_string());
    }
    Ibackup::new(args).run()
}

/// The proof: ibackup and the independent decryptor extract the same files, byte for byte, and
/// ibackup dates each one with its record's LastModified (as read by the decryptor). `code` is
/// the exit code both must give (0 whole, 1 when some blobs are missing). Returns the number of
/// files compared.
fn extract_matches_python(backup: &Path, password: Option<&str>, code: i32) -> usize {
    let before = support::tree_fingerprint(backup);
    let scratch = tempfile::tempdir().unwrap();
    let (ours, theirs) = (scratch.path().join("d1"), scratch.path().join("d2"));

    let run = ibackup_extract(backup, &ours, password);
    assert_eq!(
        run.code(),
        Some(code),
        "ibackup extract\nstdout {}\nstderr {}",
        run.stdout(),
        run.stderr()
    );
    let python = python_decrypt(backup, &theirs, password);
    assert_eq!(python.code, code, "decrypt_backup.py: {:#}", python.report);

    let ours = files_under(&ours);
    let theirs = files_under(&theirs);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, (bytes, _)) in &theirs {
        let mine = &ours[name].0;
        assert!(
            mine == bytes,
            "{name}: ibackup wrote {} bytes (sha256 {}), the independent decryption {} (sha256 {})",
            mine.len(),
            sha256_hex(mine),
            bytes.len(),
            sha256_hex(bytes)
        );
    }
    let written = python.written();
    assert_eq!(written.len(), theirs.len());
    for (name, entry) in &written {
        let modified = entry["last_modified"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: the test backups date every file"));
        assert_eq!(ours[name].1, unix(modified), "{name}: modified time");
    }
    assert_eq!(
        support::tree_fingerprint(backup),
        before,
        "extract never writes inside the backup"
    );
    theirs.len()
}

fn python_encrypted_backup(dir: &Path, password: &str, seed: &str) -> Value {
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new("python3")
        .arg(repo().join("scripts/independent_encrypted_backup.py"))
        .arg("--password-file")
        .arg(password_file(scratch.path(), password))
        .args(["make", dir.to_str().unwrap(), "--seed", seed])
        .args(["--dpic", "1000", "--iter", "100"])
        .env_remove("IBACKUP_PASSWORD")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e})"));
    assert!(
        output.status.success(),
        "independent_encrypted_backup.py make (exit {:?}; 3 means `pip install cryptography`):\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A plain backup from tests/support/writer.rs: 8 domains, folder and symlink rows, files of 0
/// to 70,000 bytes.
fn plain_spec() -> Spec {
    Spec {
        files: 160,
        max_size: 70_000,
        ..Spec::default()
    }
}

// ---- the independent decryptor against what each writer knows it wrote ---------------------

/// The sample's four files hold recognisable bytes (its README gives their sizes): a 4-byte
/// plist stand-in, a SQLite header padded with 'A', 32 'B's and a byte ramp.
#[test]
fn the_decryptor_recovers_the_samples_plaintexts() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let python = python_decrypt(&sample(), &out, Some(SAMPLE_PASSWORD));
    assert_eq!(python.code, 0, "{:#}", python.report);
    assert_eq!(python.report["encrypted"], true);
    let mut sqlite = b"SQLite format 3\0".to_vec();
    sqlite.extend_from_slice(&[b'A'; 300]);
    let want: BTreeMap<String, Vec<u8>> = [
        (
            "HomeDomain/Library/Preferences/com.apple.example.plist",
            b"tiny".to_vec(),
        ),
        ("HomeDomain/Library/SMS/sms.db", sqlite),
        (
            "AppDomain-com.example.app/Documents/exact.bin",
            vec![b'B'; 32],
        ),
        (
            "CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.JPG",
            (0..768).map(|i| i as u8).collect(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let got = files_under(&out);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, (bytes, modified)) in &got {
        assert_eq!(bytes, &want[name], "{name}");
        assert_eq!(*modified, unix(1_787_292_000), "{name}");
    }

    let wrong = python_decrypt(&sample(), &scratch.path().join("wrong"), Some("not it"));
    assert_eq!(wrong.code, 2, "a wrong password stops the run");
    let none = python_decrypt(&sample(), &scratch.path().join("none"), None);
    assert_eq!(none.code, 2, "no password stops the run");
}

/// The Python writer reports each file's plaintext SHA-256; it dates row n (from 0) at
/// 1,700,001,000 + n.
#[test]
fn the_decryptor_recovers_what_the_python_writer_encrypted() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let password = "correct horse ✓ battery";
    let made = python_encrypted_backup(&backup, password, "42");
    let out = scratch.path().join("out");
    let python = python_decrypt(&backup, &out, Some(password));
    assert_eq!(python.code, 0, "{:#}", python.report);
    let got = files_under(&out);
    let rows = made["files"].as_array().unwrap();
    let mut files = 0;
    for (n, row) in rows.iter().enumerate() {
        let name = format!(
            "{}/{}",
            row["domain"].as_str().unwrap(),
            row["relativePath"].as_str().unwrap()
        );
        if row["flags"] != 1 {
            assert!(
                !got.contains_key(&name),
                "{name}: only file rows are written"
            );
            continue;
        }
        files += 1;
        let (bytes, modified) = &got[&name];
        assert_eq!(bytes.len() as u64, row["size"].as_u64().unwrap(), "{name}");
        assert_eq!(sha256_hex(bytes), row["sha256"].as_str().unwrap(), "{name}");
        assert_eq!(*modified, unix(1_700_001_000 + n as i64), "{name}");
    }
    assert_eq!(got.len(), files);
    assert!(
        !out.join("HomeDomain/Library/Preferences/link").exists(),
        "symlink rows are not made"
    );
}

/// tests/support_encrypt reports each file's plaintext SHA-256; every record is dated
/// 1,760,000,000. NS.data is a UID there (the other form of EncryptionKey).
#[test]
fn the_decryptor_recovers_what_the_rust_test_writer_encrypted() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let password = "rust-made pässword";
    let written = support_encrypt::write_encrypted_backup(&backup, password.as_bytes(), 1000, 100);
    let out = scratch.path().join("out");
    let python = python_decrypt(&backup, &out, Some(password));
    assert_eq!(python.code, 0, "{:#}", python.report);
    let got = files_under(&out);
    let mut files = 0;
    for w in &written {
        let name = format!("{}/{}", w.domain, w.relative_path);
        let Some(sha256) = &w.sha256 else {
            assert!(!got.contains_key(&name), "{name}: only file rows");
            continue;
        };
        files += 1;
        let (bytes, modified) = &got[&name];
        assert_eq!(bytes.len() as u64, w.size, "{name}");
        assert_eq!(&sha256_hex(bytes), sha256, "{name}");
        assert_eq!(*modified, unix(1_760_000_000), "{name}");
    }
    assert_eq!(got.len(), files);
    assert_eq!(files, 5);
}

/// A plain backup: every file is its blob, dated 1,700,000,000 by the writer.
#[test]
fn the_decryptor_copies_a_plain_backup() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let spec = plain_spec();
    let expected = write_backup(&backup, &spec);
    let out = scratch.path().join("out");
    let python = python_decrypt(&backup, &out, None);
    assert_eq!(python.code, 0, "{:#}", python.report);
    assert_eq!(python.report["encrypted"], false);
    let got = files_under(&out);
    assert_eq!(got.len() as u64, expected.listed);
    let mut bytes_total = 0;
    for (name, (bytes, modified)) in &got {
        let (domain, path) = name.split_once('/').unwrap();
        let id = sha1_hex(&format!("{domain}-{path}"));
        let blob = fs::read(backup.join(&id[..2]).join(&id)).unwrap();
        assert!(bytes == &blob, "{name}");
        assert_eq!(*modified, unix(1_700_000_000), "{name}");
        bytes_total += bytes.len() as u64;
    }
    assert_eq!(bytes_total, expected.declared_bytes);
}

/// Missing, cut short and damaged blobs are named and the run exits 1; the other files are
/// written whole.
#[test]
fn the_decryptor_names_missing_short_and_damaged_blobs() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let password = "pw";
    let made = python_encrypted_backup(&backup, password, "1");
    let rows = made["files"].as_array().unwrap();
    let pick = |size: u64| {
        rows.iter()
            .find(|r| r["flags"] == 1 && r["size"] == size)
            .map(|r| r["fileID"].as_str().unwrap().to_string())
            .unwrap()
    };
    let blob = |id: &str| backup.join(&id[..2]).join(id);
    let (missing, short, damaged) = (pick(15), pick(100_000), pick(17));
    fs::remove_file(blob(&missing)).unwrap();
    fs::File::options()
        .write(true)
        .open(blob(&short))
        .unwrap()
        .set_len(4096 + 5)
        .unwrap();
    let mut bytes = fs::read(blob(&damaged)).unwrap();
    *bytes.last_mut().unwrap() ^= 0x55;
    fs::write(blob(&damaged), bytes).unwrap();

    let out = scratch.path().join("out");
    let python = python_decrypt(&backup, &out, Some(password));
    assert_eq!(python.code, 1);
    assert_eq!(python.list("missing"), vec![missing]);
    assert_eq!(python.list("wrong_size"), vec![short.clone()]);
    assert_eq!(python.list("damaged"), vec![damaged]);
    let written = python.written();
    assert_eq!(written.len(), 6, "8 files, one missing, one damaged");
    let cut = &written["CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.HEIC"];
    assert_eq!(cut["fileID"], short.as_str());
    assert_eq!(cut["size"], 4096, "the whole blocks there are");
    assert_eq!(files_under(&out).len(), 6);
}

// ---- ibackup extract against the independent decryptor ------------------------------------

#[test]
fn extract_of_the_encrypted_sample_matches_the_independent_decryption() {
    assert_eq!(
        extract_matches_python(&sample(), Some(SAMPLE_PASSWORD), 0),
        4
    );
}

#[test]
fn extract_of_a_python_written_encrypted_backup_matches_the_independent_decryption() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let password = "correct horse ✓ battery";
    python_encrypted_backup(&backup, password, "42");
    assert_eq!(extract_matches_python(&backup, Some(password), 0), 8);
}

#[test]
fn extract_of_a_rust_written_encrypted_backup_matches_the_independent_decryption() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let password = "rust-made pässword";
    support_encrypt::write_encrypted_backup(&backup, password.as_bytes(), 1000, 100);
    assert_eq!(extract_matches_python(&backup, Some(password), 0), 5);
}

/// A larger encrypted backup from the Rust test writer: 300 files of 0 to 40,000 bytes (every
/// padding length), several protection classes.
#[test]
fn extract_of_many_encrypted_files_matches_the_independent_decryption() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let password = "many files";
    support_encrypt::write_encrypted_backup_with(&backup, password.as_bytes(), 1000, 100, |rng| {
        (0..300usize)
            .map(|i| {
                let len = if i < 40 {
                    i
                } else {
                    usize::from(u16::from_le_bytes(rng.fill::<2>())) % 40_000
                };
                let domain = ["HomeDomain", "MediaDomain", "AppDomain-com.example.notes"][i % 3];
                let path: &'static str =
                    Box::leak(format!("Library/many/{:02}/file{i}.bin", i % 17).into_boxed_str());
                (domain, path, 1, rng.vec(len), 1 + (i % 4) as u32, None)
            })
            .collect()
    });
    assert_eq!(extract_matches_python(&backup, Some(password), 0), 300);
}

#[test]
fn extract_of_a_plain_backup_matches_the_independent_copy() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let expected = write_backup(&backup, &plain_spec());
    assert_eq!(
        extract_matches_python(&backup, None, 0) as u64,
        expected.listed
    );
}

#[test]
fn extract_of_a_plain_python_written_backup_matches_the_independent_copy() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let output = Command::new("python3")
        .arg(repo().join("tests/independent/make_backup.py"))
        .arg(&backup)
        .args(["--files", "120", "--seed", "17"])
        .output()
        .expect("python3 runs the independent writer");
    assert!(output.status.success());
    let made: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        extract_matches_python(&backup, None, 0) as u64,
        made["listed"].as_u64().unwrap()
    );
}

/// An incomplete backup: the files whose blobs are there come out the same; both exit 1.
#[test]
fn extract_of_an_incomplete_backup_matches_the_independent_copy() {
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("b");
    let expected = write_backup(&backup, &plain_spec().with(Defect::MissingBlob));
    assert_eq!(expected.missing, 1);
    assert_eq!(
        extract_matches_python(&backup, None, 1) as u64,
        expected.listed - 1
    );
}
