//! Tests of the phone's content and of its conversation, with a small computer written here
//! from the protocol notes (docs and design note), that keeps its backup in a temporary folder
//! the way idevicebackup2 does. The end-to-end tests against Debian's idevicebackup2 and
//! ibackup's own client live in tests/backup_interop.rs.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plist::{Dictionary, Value};

use super::content::Content;
use super::keys::{self, Keys};
use super::state::BackupState;
use super::*;
use crate::phone::Phone;
use crate::profile::Profile;

fn profile(json: &str) -> Profile {
    Profile::from_json(json, "test").unwrap()
}

// ---------------------------------------------------------------- content

#[test]
fn content_is_deterministic_and_adds_up() {
    let p = Profile::default();
    let a = Content::at(&p.backup, &p.apps, 0);
    let b = Content::at(&p.backup, &p.apps, 0);
    assert_eq!(a.entries, b.entries);
    assert_eq!(a.file_count(), 60);
    assert_eq!(a.total_bytes(), 4_000_000);
    let other = Content::at(
        &BackupProfile {
            seed: 2,
            ..p.backup.clone()
        },
        &p.apps,
        0,
    );
    assert_ne!(a.entries, other.entries);
}

#[test]
fn content_has_the_realistic_domains_and_folders() {
    let p = Profile::default();
    let c = Content::at(&p.backup, &p.apps, 0);
    let has = |domain: &str, path: &str| {
        c.entries
            .iter()
            .any(|e| e.domain == domain && e.relative_path == path)
    };
    assert!(has("HomeDomain", "Library/SMS/sms.db"));
    assert!(has(
        "HomeDomain",
        "Library/AddressBook/AddressBook.sqlitedb"
    ));
    assert!(has("KeychainDomain", "keychain-backup.plist"));
    assert!(has("HomeDomain", ""));
    assert!(has("HomeDomain", "Library/SMS"));
    assert!(c
        .files()
        .any(|e| e.domain == "CameraRollDomain" && e.relative_path.ends_with(".HEIC")));
    for app in &p.apps {
        let id = &app.bundle_id;
        assert!(c
            .entries
            .iter()
            .any(|e| e.domain == format!("AppDomain-{id}")));
        assert!(c
            .entries
            .iter()
            .any(|e| e.domain == format!("AppDomainGroup-group.{id}")));
        assert!(c
            .entries
            .iter()
            .any(|e| e.domain == format!("AppDomainPlugin-{id}.widget")));
    }
    // Every file's folder is a row, and the databases are real SQLite.
    for file in c.files() {
        let parent = file
            .relative_path
            .rsplit_once('/')
            .map(|(p, _)| p)
            .unwrap_or("");
        assert!(has(&file.domain, parent), "{}", file.relative_path);
    }
    let sms = c
        .files()
        .find(|e| e.relative_path == "Library/SMS/sms.db")
        .unwrap();
    let mut head = [0u8; 16];
    sms.read_at(0, &mut head);
    assert_eq!(&head, b"SQLite format 3\0");
    // A few large files and many small ones.
    let mut sizes: Vec<u64> = c.files().map(|e| e.size()).collect();
    sizes.sort();
    let top: u64 = sizes.iter().rev().take(sizes.len() / 10).sum();
    assert!(
        top * 2 > c.total_bytes(),
        "the largest tenth holds most bytes"
    );
    assert!(sizes[sizes.len() / 2] * 20 < sizes[sizes.len() - 1]);
}

#[test]
fn bytes_come_out_the_same_however_they_are_split() {
    let mut whole = vec![0u8; 1000];
    content::fill(42, 0, &mut whole);
    let mut pieces = vec![0u8; 1000];
    let mut at = 0;
    for len in [3usize, 13, 100, 1, 500, 383] {
        content::fill(42, at as u64, &mut pieces[at..at + len]);
        at += len;
    }
    assert_eq!(whole, pieces);
    let mut other = vec![0u8; 1000];
    content::fill(43, 0, &mut other);
    assert_ne!(whole, other);
}

#[test]
fn each_generation_changes_what_the_profile_says() {
    let p = Profile::default();
    let before = Content::at(&p.backup, &p.apps, 0);
    let after = Content::at(&p.backup, &p.apps, 1);
    let ids = |c: &Content| -> HashMap<String, (u64, u64)> {
        c.files()
            .map(|e| (e.file_id(), (e.version, e.size())))
            .collect()
    };
    let (a, b) = (ids(&before), ids(&after));
    let removed = a.keys().filter(|k| !b.contains_key(*k)).count();
    let added = b.keys().filter(|k| !a.contains_key(*k)).count();
    let modified = b
        .iter()
        .filter(|(k, (v, _))| a.contains_key(*k) && *v == 1)
        .count();
    assert_eq!(
        (removed, added),
        (
            p.backup.changes_per_backup.removed,
            p.backup.changes_per_backup.added
        )
    );
    assert!(modified >= 1 && modified <= p.backup.changes_per_backup.modified);
    assert_eq!(after.file_count(), 60 - 1 + 2);
}

#[test]
fn manifest_db_is_real_sqlite_with_mbfile_records() {
    let p = Profile::default();
    let c = Content::at(&p.backup, &p.apps, 0);
    let db = archive::manifest_db(&c, None).unwrap();
    let rows = archive::read_manifest_db(&db).unwrap();
    assert_eq!(rows.len(), c.entries.len());
    let files = rows.values().filter(|(flags, _)| *flags == 1).count();
    assert_eq!(files, c.file_count());
    let sms = c
        .files()
        .find(|e| e.relative_path == "Library/SMS/sms.db")
        .unwrap();
    let record = &rows[&sms.file_id()].1;
    let archive = Value::from_reader(std::io::Cursor::new(record)).unwrap();
    let objects = archive
        .as_dictionary()
        .unwrap()
        .get("$objects")
        .unwrap()
        .as_array()
        .unwrap();
    let root = objects[1].as_dictionary().unwrap();
    assert_eq!(
        root.get("Size").unwrap().as_unsigned_integer(),
        Some(sms.size())
    );
    assert_eq!(objects[2].as_string(), Some("Library/SMS/sms.db"));
    assert!(root.get("EncryptionKey").is_none());
}

#[test]
fn keys_wrap_and_encrypt_as_the_format_says() {
    let keys = Keys::new(7, "secret", 10, 10);
    let file_key = keys.file_key("ab", 0);
    let protected = keys.protect(3, &file_key);
    assert_eq!(protected.len(), 44);
    assert_eq!(&protected[..4], &3u32.to_le_bytes());
    assert_eq!(keys.unprotect(&protected), Some(file_key));
    assert_eq!(Keys::new(8, "secret", 10, 10).unprotect(&protected), None);
    // Streaming encryption equals whole encryption, and decrypts back.
    let plain: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    let whole = keys::encrypt(&file_key, &plain);
    assert_eq!(whole.len() as u64, keys::encrypted_len(1000));
    let mut stream = keys::CbcStream::new(&file_key);
    let mut out = Vec::new();
    for piece in plain.chunks(37) {
        stream.update(piece, &mut out);
    }
    stream.finish(&mut out);
    assert_eq!(out, whole);
    assert_eq!(keys::decrypt(&file_key, &whole).unwrap(), plain);
    // The keybag states the counts it was made with.
    let bag = keys.keybag();
    let find = |tag: &[u8]| {
        let at = bag.windows(4).position(|w| w == tag).unwrap();
        u32::from_be_bytes(bag[at + 8..at + 12].try_into().unwrap())
    };
    assert_eq!(find(b"ITER"), 10);
    assert_eq!(find(b"DPIC"), 10);
}

// ---------------------------------------------------------------- a computer, written here

/// The computer's side of the conversation over a socket pair, keeping the backup in `root`
/// (the folder above `<UDID>/`).
struct Computer {
    stream: UnixStream,
    root: PathBuf,
    free: u64,
    /// Fail this DL message with an error status.
    fail: Option<&'static str>,
    uploaded: usize,
}

impl Computer {
    fn send(&mut self, items: Vec<Value>) {
        let mut body = Vec::new();
        Value::Array(items).to_writer_binary(&mut body).unwrap();
        self.stream
            .write_all(&(body.len() as u32).to_be_bytes())
            .unwrap();
        self.stream.write_all(&body).unwrap();
    }

    fn u32(&mut self) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.stream.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.stream.read_exact(&mut b)?;
        Ok(b)
    }

    fn receive(&mut self) -> std::io::Result<Vec<Value>> {
        let n = self.u32()? as usize;
        let body = self.bytes(n)?;
        Ok(Value::from_reader(std::io::Cursor::new(body))
            .unwrap()
            .into_array()
            .unwrap())
    }

    fn status(&mut self, code: i64, value: Value) {
        self.send(vec![
            "DLMessageStatusResponse".into(),
            Value::Integer(code.into()),
            link::EMPTY.into(),
            value,
        ]);
    }

    fn process(&mut self, dict: Dictionary) {
        self.send(vec![
            "DLMessageProcessMessage".into(),
            Value::Dictionary(dict),
        ]);
    }

    fn connect(phone: Arc<Phone>, root: &Path) -> (Computer, std::thread::JoinHandle<()>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let server = std::thread::spawn(move || {
            let _ = serve(&phone, Box::new(theirs));
        });
        let mut computer = Computer {
            stream: ours,
            root: root.to_path_buf(),
            free: u64::MAX / 2,
            fail: None,
            uploaded: 0,
        };
        let exchange = computer.receive().unwrap();
        assert_eq!(exchange[0].as_string(), Some("DLMessageVersionExchange"));
        assert_eq!(exchange[1].as_unsigned_integer(), Some(400));
        computer.send(vec![
            "DLMessageVersionExchange".into(),
            "DLVersionsOk".into(),
            400u64.into(),
        ]);
        assert_eq!(
            computer.receive().unwrap()[0].as_string(),
            Some("DLMessageDeviceReady")
        );
        (computer, server)
    }

    fn hello(&mut self, versions: &[f64]) -> Dictionary {
        let mut hello = Dictionary::new();
        hello.insert("MessageName".into(), "Hello".into());
        hello.insert(
            "SupportedProtocolVersions".into(),
            Value::Array(versions.iter().map(|v| Value::Real(*v)).collect()),
        );
        self.process(hello);
        let answer = self.receive().unwrap();
        answer[1].as_dictionary().unwrap().clone()
    }

    fn request(&mut self, name: &str, fields: Vec<(&str, Value)>) {
        let mut dict = Dictionary::new();
        dict.insert("MessageName".into(), name.into());
        for (k, v) in fields {
            dict.insert(k.into(), v);
        }
        self.process(dict);
    }

    fn path(&self, relative: &str) -> PathBuf {
        assert!(!relative.contains(".."), "{relative}");
        self.root.join(relative)
    }

    /// Answers the phone until its ProcessMessage; returns that, or None if it went away.
    fn run(&mut self) -> Option<Dictionary> {
        loop {
            let Ok(message) = self.receive() else {
                return None;
            };
            let name = message[0].as_string().unwrap().to_string();
            if self.fail == Some(name.as_str()) && name != "DLMessageUploadFiles" {
                self.status(-1, link::EMPTY.into());
                continue;
            }
            match name.as_str() {
                "DLMessageDownloadFiles" => {
                    let mut missing = Dictionary::new();
                    for path in message[1].as_array().unwrap() {
                        let path = path.as_string().unwrap();
                        let name = path.as_bytes();
                        self.stream
                            .write_all(&(name.len() as u32).to_be_bytes())
                            .unwrap();
                        self.stream.write_all(name).unwrap();
                        match std::fs::read(self.path(path)) {
                            Ok(data) => {
                                for piece in data.chunks(32768) {
                                    self.stream
                                        .write_all(&(piece.len() as u32 + 1).to_be_bytes())
                                        .unwrap();
                                    self.stream.write_all(&[0x0C]).unwrap();
                                    self.stream.write_all(piece).unwrap();
                                }
                                self.stream.write_all(&[0, 0, 0, 1, 0]).unwrap();
                            }
                            Err(_) => {
                                let text = b"No such file or directory";
                                self.stream
                                    .write_all(&(text.len() as u32 + 1).to_be_bytes())
                                    .unwrap();
                                self.stream.write_all(&[0x06]).unwrap();
                                self.stream.write_all(text).unwrap();
                                missing.insert(path.into(), Value::Dictionary(Dictionary::new()));
                            }
                        }
                    }
                    self.stream.write_all(&[0, 0, 0, 0]).unwrap();
                    if missing.is_empty() {
                        self.status(0, Value::Dictionary(Dictionary::new()));
                    } else {
                        self.send(vec![
                            "DLMessageStatusResponse".into(),
                            Value::Integer((-13i64).into()),
                            "Multi status".into(),
                            Value::Dictionary(missing),
                        ]);
                    }
                }
                "DLMessageUploadFiles" => {
                    assert!(message[3].as_unsigned_integer().is_some());
                    assert!(message[2].as_real().is_some());
                    loop {
                        let Ok(n) = self.u32() else { return None };
                        if n == 0 {
                            break;
                        }
                        let _device = self.bytes(n as usize).ok()?;
                        let n = self.u32().ok()?;
                        let target = String::from_utf8(self.bytes(n as usize).ok()?).unwrap();
                        let mut data = Vec::new();
                        loop {
                            let n = self.u32().ok()?;
                            let code = self.bytes(1).ok()?[0];
                            let body = self.bytes(n as usize - 1).ok()?;
                            match code {
                                0x0C => data.extend_from_slice(&body),
                                0x00 => break,
                                other => panic!("code {other}"),
                            }
                        }
                        std::fs::write(self.path(&target), data).unwrap();
                        self.uploaded += 1;
                    }
                    if self.fail == Some("DLMessageUploadFiles") {
                        self.status(-13, "Multi status".into());
                    } else {
                        self.status(0, Value::Dictionary(Dictionary::new()));
                    }
                }
                "DLMessageGetFreeDiskSpace" => {
                    let free = self.free;
                    self.status(0, free.into())
                }
                "DLMessageCreateDirectory" => {
                    std::fs::create_dir_all(self.path(message[1].as_string().unwrap())).unwrap();
                    self.status(0, link::EMPTY.into());
                }
                "DLMessageMoveItems" => {
                    assert!(message[3].as_real().is_some());
                    for (from, to) in message[1].as_dictionary().unwrap() {
                        let to = self.path(to.as_string().unwrap());
                        if to.is_dir() {
                            std::fs::remove_dir_all(&to).unwrap();
                        }
                        std::fs::rename(self.path(from), to).unwrap();
                    }
                    self.status(0, Value::Dictionary(Dictionary::new()));
                }
                "DLMessageRemoveItems" => {
                    for path in message[1].as_array().unwrap() {
                        let path = self.path(path.as_string().unwrap());
                        if path.is_dir() {
                            std::fs::remove_dir_all(&path).unwrap();
                        } else {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                    self.status(0, Value::Dictionary(Dictionary::new()));
                }
                "DLMessageProcessMessage" => {
                    return Some(message[1].as_dictionary().unwrap().clone());
                }
                other => panic!("unexpected {other}"),
            }
        }
    }

    fn backup(&mut self, udid: &str, full: bool) -> Option<Dictionary> {
        std::fs::create_dir_all(self.root.join(udid)).unwrap();
        let mut fields = vec![
            ("TargetIdentifier", Value::String(udid.into())),
            ("SourceIdentifier", Value::String(udid.into())),
        ];
        if full {
            let mut options = Dictionary::new();
            options.insert("ForceFullBackup".into(), true.into());
            fields.push(("Options", Value::Dictionary(options)));
        }
        self.request("Backup", fields);
        self.run()
    }

    fn disconnect(mut self, server: std::thread::JoinHandle<()>) {
        self.send(vec!["DLMessageDisconnect".into(), link::EMPTY.into()]);
        server.join().unwrap();
    }
}

fn code(answer: &Dictionary) -> u64 {
    answer
        .get("ErrorCode")
        .unwrap()
        .as_unsigned_integer()
        .unwrap()
}

fn description(answer: &Dictionary) -> String {
    answer
        .get("ErrorDescription")
        .and_then(Value::as_string)
        .unwrap_or("")
        .to_string()
}

fn phone(json: &str) -> Arc<Phone> {
    Arc::new(Phone::new(profile(json)).unwrap())
}

const UDID: &str = "00008110-001A2B3C4D5E801E";

fn status_state(dir: &Path) -> String {
    let status = Value::from_file(dir.join("Status.plist")).unwrap();
    status
        .as_dictionary()
        .unwrap()
        .get("SnapshotState")
        .unwrap()
        .as_string()
        .unwrap()
        .to_string()
}

fn blobs(dir: &Path) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    for folder in std::fs::read_dir(dir).unwrap() {
        let folder = folder.unwrap().path();
        let name = folder.file_name().unwrap().to_string_lossy().to_string();
        if folder.is_dir() && name.len() == 2 {
            for blob in std::fs::read_dir(&folder).unwrap() {
                let blob = blob.unwrap().path();
                out.insert(
                    blob.file_name().unwrap().to_string_lossy().to_string(),
                    std::fs::read(&blob).unwrap(),
                );
            }
        }
    }
    out
}

// ---------------------------------------------------------------- the conversation

#[test]
fn hello_agrees_on_2_1_or_answers_error_1() {
    let dir = tempfile::tempdir().unwrap();
    let (mut computer, server) = Computer::connect(phone("{}"), dir.path());
    let refused = computer.hello(&[2.0]);
    assert_eq!(code(&refused), codes::NO_COMMON_VERSION);
    // A request before an agreed Hello is refused.
    computer.request("Backup", vec![("TargetIdentifier", UDID.into())]);
    assert_eq!(code(&computer.run().unwrap()), codes::BAD_REQUEST);
    let answer = computer.hello(&[2.0, 2.1]);
    assert_eq!(
        answer.get("MessageName").unwrap().as_string(),
        Some("Response")
    );
    assert_eq!(code(&answer), 0);
    assert_eq!(answer.get("ProtocolVersion"), Some(&Value::Real(2.1)));
    computer.disconnect(server);
}

#[test]
fn a_full_then_an_incremental_backup() {
    let dir = tempfile::tempdir().unwrap();
    let phone = phone("{}");
    let (mut computer, server) = Computer::connect(Arc::clone(&phone), dir.path());
    computer.hello(&[2.0, 2.1]);
    let end = computer.backup(UDID, false).unwrap();
    assert_eq!(code(&end), 0, "{}", description(&end));
    let backup = dir.path().join(UDID);
    assert_eq!(status_state(&backup), "finished");
    assert!(!backup.join("Snapshot").exists());
    let first = Content::at(&phone.profile().backup, &phone.profile().apps, 0);
    let first_blobs = blobs(&backup);
    assert_eq!(first_blobs.len(), first.file_count());
    for file in first.files() {
        let blob = &first_blobs[&file.file_id()];
        assert_eq!(blob.len() as u64, file.size());
        let mut expected = vec![0u8; blob.len()];
        file.read_at(0, &mut expected);
        assert_eq!(*blob, expected, "{}", file.relative_path);
    }
    assert_eq!(computer.uploaded, first.file_count() + 3);
    assert_eq!(phone.backup.generation(), 1);

    // Incremental: only what changed travels; what is gone is removed.
    computer.uploaded = 0;
    let end = computer.backup(UDID, false).unwrap();
    assert_eq!(code(&end), 0, "{}", description(&end));
    let second = Content::at(&phone.profile().backup, &phone.profile().apps, 1);
    let second_blobs = blobs(&backup);
    assert_eq!(second_blobs.len(), second.file_count());
    let changed = second.files().filter(|f| f.version == 1).count();
    assert_eq!(computer.uploaded, changed + 3);
    for file in second.files().filter(|f| f.version == 1) {
        let blob = &second_blobs[&file.file_id()];
        let mut expected = vec![0u8; blob.len()];
        file.read_at(0, &mut expected);
        assert_eq!(*blob, expected);
    }
    let status = Value::from_file(backup.join("Status.plist")).unwrap();
    assert_eq!(
        status.as_dictionary().unwrap().get("IsFullBackup"),
        Some(&Value::Boolean(false))
    );
    let rows =
        archive::read_manifest_db(&std::fs::read(backup.join("Manifest.db")).unwrap()).unwrap();
    assert_eq!(rows.len(), second.entries.len());

    // ForceFullBackup sends everything again.
    computer.uploaded = 0;
    let now = Content::at(&phone.profile().backup, &phone.profile().apps, 2);
    let end = computer.backup(UDID, true).unwrap();
    assert_eq!(code(&end), 0);
    assert_eq!(computer.uploaded, now.file_count() + 3);
    // What is gone since the last backup is removed in a full backup too: no orphans.
    assert_eq!(blobs(&backup).len(), now.file_count());
    computer.disconnect(server);
}

fn phone_content(phone: &Phone) -> Content {
    Content::at(
        &phone.profile().backup,
        &phone.profile().apps,
        phone.backup.generation() - 1,
    )
}

#[test]
fn a_backup_for_another_phone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut computer, server) = Computer::connect(phone("{}"), dir.path());
    computer.hello(&[2.1]);
    let end = computer.backup("00008110-000000000000000A", false).unwrap();
    assert_eq!(code(&end), codes::BAD_REQUEST);
    assert!(description(&end).contains("00008110-000000000000000A"));
    computer.request("Restore", vec![]);
    let end = computer.run().unwrap();
    assert_eq!(code(&end), codes::BAD_REQUEST);
    assert!(description(&end).contains("Restore"));
    computer.disconnect(server);
}

#[test]
fn too_little_space_is_error_105() {
    let dir = tempfile::tempdir().unwrap();
    let (mut computer, server) = Computer::connect(phone("{}"), dir.path());
    computer.hello(&[2.1]);
    computer.free = 1000;
    let end = computer.backup(UDID, false).unwrap();
    assert_eq!(code(&end), codes::NO_SPACE);
    assert!(description(&end).contains("1000"), "{}", description(&end));
    assert!(!dir.path().join(UDID).join("Snapshot").exists());
    computer.disconnect(server);
}

#[test]
fn an_error_answer_stops_the_backup_naming_it() {
    for request in [
        "DLMessageCreateDirectory",
        "DLMessageUploadFiles",
        "DLMessageMoveItems",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let phone = phone("{}");
        let (mut computer, server) = Computer::connect(Arc::clone(&phone), dir.path());
        computer.hello(&[2.1]);
        computer.fail = Some(request);
        let end = computer.backup(UDID, false).unwrap();
        assert_eq!(code(&end), codes::COMPUTER_FAILED);
        assert!(description(&end).contains(request), "{}", description(&end));
        assert_eq!(phone.backup.generation(), 0);
        computer.disconnect(server);
    }
}

#[test]
fn faults_bend_the_backup() {
    // 205 before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let (mut computer, server) =
        Computer::connect(phone(r#"{"backup":{"fault":"file_errors"}}"#), dir.path());
    computer.hello(&[2.1]);
    assert_eq!(
        code(&computer.backup(UDID, false).unwrap()),
        codes::FILE_ERRORS
    );
    computer.disconnect(server);

    // Snapshot/ left behind, never finished.
    let dir = tempfile::tempdir().unwrap();
    let phone_left = phone(r#"{"backup":{"fault":"snapshot_left"}}"#);
    let (mut computer, server) = Computer::connect(Arc::clone(&phone_left), dir.path());
    computer.hello(&[2.1]);
    assert_eq!(code(&computer.backup(UDID, false).unwrap()), 0);
    let backup = dir.path().join(UDID);
    assert!(!backup.join("Status.plist").exists());
    assert_eq!(status_state(&backup.join("Snapshot")), "uploading");
    assert_eq!(phone_left.backup.generation(), 0);
    computer.disconnect(server);

    // The connection closes in the middle of the upload.
    let dir = tempfile::tempdir().unwrap();
    let (mut computer, server) = Computer::connect(
        phone(r#"{"backup":{"fault":"stop_mid_upload"}}"#),
        dir.path(),
    );
    computer.hello(&[2.1]);
    assert!(computer.backup(UDID, false).is_none());
    // Half of the 60 files and the 3 of the backup itself.
    assert_eq!(computer.uploaded, 31);
    server.join().unwrap();

    // no_space whatever the computer has.
    let dir = tempfile::tempdir().unwrap();
    let (mut computer, server) =
        Computer::connect(phone(r#"{"backup":{"fault":"no_space"}}"#), dir.path());
    computer.hello(&[2.1]);
    assert_eq!(
        code(&computer.backup(UDID, false).unwrap()),
        codes::NO_SPACE
    );
    computer.disconnect(server);
}

#[test]
fn passcode_and_cancel_notifications_are_posted() {
    let dir = tempfile::tempdir().unwrap();
    let phone_prompt = phone(r#"{"backup":{"fault":"passcode_prompt"}}"#);
    let notes = phone_prompt.notifications.subscribe();
    let (mut computer, server) = Computer::connect(Arc::clone(&phone_prompt), dir.path());
    computer.hello(&[2.1]);
    assert_eq!(code(&computer.backup(UDID, false).unwrap()), 0);
    assert_eq!(
        notes.try_recv().unwrap(),
        "com.apple.LocalAuthentication.ui.presented"
    );
    assert_eq!(
        notes.try_recv().unwrap(),
        "com.apple.LocalAuthentication.ui.dismissed"
    );
    computer.disconnect(server);

    let dir = tempfile::tempdir().unwrap();
    let phone_never = phone(r#"{"backup":{"fault":"passcode_never_entered"}}"#);
    let notes = phone_never.notifications.subscribe();
    let (mut computer, server) = Computer::connect(Arc::clone(&phone_never), dir.path());
    computer.hello(&[2.1]);
    computer.request("Backup", vec![("TargetIdentifier", UDID.into())]);
    assert_eq!(
        notes.recv_timeout(Duration::from_secs(10)).unwrap(),
        "com.apple.LocalAuthentication.ui.presented"
    );
    // Nothing more comes; the computer gives up and goes.
    computer
        .stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(computer.receive().is_err());
    drop(computer);
    server.join().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let phone_cancel = phone(r#"{"backup":{"fault":"cancel_request"}}"#);
    let notes = phone_cancel.notifications.subscribe();
    let (mut computer, server) = Computer::connect(Arc::clone(&phone_cancel), dir.path());
    computer.hello(&[2.1]);
    computer.request("Backup", vec![("TargetIdentifier", UDID.into())]);
    // The computer answers until the cancel request arrives, then goes away.
    let shutter = computer.stream.try_clone().unwrap();
    let runner = std::thread::spawn(move || computer.run());
    let name = notes.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(name, "com.apple.itunes-client.syncCancelRequest");
    shutter.shutdown(std::net::Shutdown::Both).unwrap();
    let _ = runner.join();
    server.join().unwrap();
    assert_eq!(phone_cancel.backup.generation(), 0);
}

#[test]
fn change_password_turns_encryption_on_changes_and_off() {
    let dir = tempfile::tempdir().unwrap();
    let phone = phone("{}");
    let (mut computer, server) = Computer::connect(Arc::clone(&phone), dir.path());
    computer.hello(&[2.1]);
    let mut ask = |fields: Vec<(&str, Value)>| {
        computer.request("ChangePassword", fields);
        computer.run().unwrap()
    };
    assert!(!phone.backup.will_encrypt());
    assert_eq!(code(&ask(vec![("NewPassword", "one".into())])), 0);
    assert!(phone.backup.will_encrypt());
    let wrong = ask(vec![
        ("OldPassword", "two".into()),
        ("NewPassword", "three".into()),
    ]);
    assert_eq!(code(&wrong), codes::WRONG_PASSWORD);
    assert!(description(&wrong).contains("wrong"));
    assert_eq!(phone.backup.password().as_deref(), Some("one"));
    let changed = ask(vec![
        ("OldPassword", "one".into()),
        ("NewPassword", "two".into()),
    ]);
    assert_eq!(code(&changed), 0);
    assert_eq!(code(&ask(vec![("OldPassword", "two".into())])), 0);
    assert!(!phone.backup.will_encrypt());
    computer.disconnect(server);
}

#[test]
fn an_encrypted_backup_decrypts_with_the_phone_keys_and_goes_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let phone = phone(
        r#"{"will_encrypt":true,"backup":{"password":"pw","files":20,"total_bytes":200000}}"#,
    );
    let (mut computer, server) = Computer::connect(Arc::clone(&phone), dir.path());
    computer.hello(&[2.1]);
    assert_eq!(code(&computer.backup(UDID, false).unwrap()), 0);
    let backup = dir.path().join(UDID);
    let manifest = Value::from_file(backup.join("Manifest.plist")).unwrap();
    let manifest = manifest.as_dictionary().unwrap();
    assert_eq!(manifest.get("IsEncrypted"), Some(&Value::Boolean(true)));
    let keys = Keys::new(1, "pw", 1000, 100);
    assert_eq!(
        manifest.get("BackupKeyBag").unwrap().as_data().unwrap(),
        keys.keybag()
    );
    let manifest_key = keys
        .unprotect(manifest.get("ManifestKey").unwrap().as_data().unwrap())
        .unwrap();
    let db = keys::decrypt(
        &manifest_key,
        &std::fs::read(backup.join("Manifest.db")).unwrap(),
    )
    .unwrap();
    assert_eq!(archive::read_manifest_db(&db).unwrap().len(), {
        Content::at(&phone.profile().backup, &phone.profile().apps, 0)
            .entries
            .len()
    });
    let content = Content::at(&phone.profile().backup, &phone.profile().apps, 0);
    let found = blobs(&backup);
    for file in content.files() {
        let blob = &found[&file.file_id()];
        assert_eq!(blob.len() as u64, keys::encrypted_len(file.size()));
        let plain = keys::decrypt(&keys.file_key(&file.file_id(), file.version), blob).unwrap();
        let mut expected = vec![0u8; file.size() as usize];
        file.read_at(0, &mut expected);
        assert_eq!(plain, expected);
    }
    computer.uploaded = 0;
    assert_eq!(code(&computer.backup(UDID, false).unwrap()), 0);
    let changed = phone_content(&phone)
        .files()
        .filter(|f| f.version == 1)
        .count();
    assert_eq!(computer.uploaded, changed + 3);
    computer.disconnect(server);
}

#[test]
fn the_shipped_backup_profiles_say_what_their_names_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let load = |name: &str| Profile::load(&dir.join(format!("backup-{name}.json"))).unwrap();
    for (name, fault) in [
        ("stop-mid-upload", BackupFault::StopMidUpload),
        ("no-space", BackupFault::NoSpace),
        ("file-errors", BackupFault::FileErrors),
        ("snapshot-left", BackupFault::SnapshotLeft),
        ("passcode-never-entered", BackupFault::PasscodeNeverEntered),
        ("passcode-prompt", BackupFault::PasscodePrompt),
        ("cancel-request", BackupFault::CancelRequest),
    ] {
        assert_eq!(load(name).backup.fault, Some(fault), "{name}");
    }
    let encrypted = load("encrypted");
    assert!(encrypted.will_encrypt);
    assert!(BackupState::new(&encrypted).will_encrypt());
    let large = load("large");
    let content = Content::at(&large.backup, &large.apps, 0);
    assert_eq!(content.file_count(), 20_000);
    assert_eq!(content.total_bytes(), 2_000_000_000);
    let biggest = content.files().map(|e| e.size()).max().unwrap();
    assert!(biggest < 10_000_000, "no single file dominates: {biggest}");
}

#[test]
fn generated_bytes_stream_fast_in_an_optimised_build() {
    // 64 MiB in 64 KiB pieces, as the upload reads them.
    let mut buf = vec![0u8; 64 * 1024];
    let started = std::time::Instant::now();
    for piece in 0..1024u64 {
        content::fill(9, piece * buf.len() as u64, &mut buf);
    }
    let per_second = (64u64 << 20) as f64 / started.elapsed().as_secs_f64();
    // Unoptimised code is an order of magnitude slower; the figure that matters (well over
    // 1 GB/s) is the release build's, which the benchmark uses.
    let floor = if cfg!(debug_assertions) { 50e6 } else { 1.5e9 };
    assert!(per_second > floor, "{per_second:.0} bytes/s");
}

#[test]
fn the_download_stream_is_capped_and_checked() {
    let send = |bytes: Vec<u8>, cap: u64| {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        theirs
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        ours.write_all(&bytes).unwrap();
        drop(ours);
        let mut link = link::Link::new(Box::new(theirs));
        link.receive_files(cap, Duration::from_secs(5))
    };
    let file = |name: &str, chunks: &[&[u8]], end: &[u8]| {
        let mut out = (name.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(name.as_bytes());
        for chunk in chunks {
            out.extend_from_slice(&(chunk.len() as u32 + 1).to_be_bytes());
            out.push(0x0C);
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(end);
        out
    };
    let mut good = file("a", &[b"hello ", b"world"], &[0, 0, 0, 1, 0]);
    good.extend(file("b", &[], &[0, 0, 0, 3, 6, b'n', b'o']));
    good.extend([0, 0, 0, 0]);
    let files = send(good, 100).unwrap();
    assert_eq!(
        files[0],
        ("a".into(), link::Downloaded::Data(b"hello world".to_vec()))
    );
    assert_eq!(
        files[1],
        ("b".into(), link::Downloaded::Missing("no".into()))
    );
    // Over the cap, an absurd name length, an absurd chunk, a cut stream: errors, no panic.
    let big = file("a", &[&[7u8; 64]], &[0, 0, 0, 1, 0]);
    assert!(matches!(
        send(big, 10),
        Err(DeviceError::FrameTooLarge { .. })
    ));
    assert!(matches!(
        send(0xFFFF_FFF0u32.to_be_bytes().to_vec(), 10),
        Err(DeviceError::FrameTooLarge { .. })
    ));
    let mut absurd = file("a", &[], &[]);
    absurd.extend(0xFFFF_FFF0u32.to_be_bytes());
    assert!(matches!(
        send(absurd, 10),
        Err(DeviceError::FrameTooLarge { .. })
    ));
    let cut = file("a", &[b"hello"], &[])[..12].to_vec();
    assert!(matches!(send(cut, 100), Err(DeviceError::Closed { .. })));
}

#[test]
fn an_oversized_or_malformed_message_is_refused() {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut link = link::Link::new(Box::new(theirs));
    ours.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    assert!(matches!(
        link.receive("a message", deadline),
        Err(DeviceError::FrameTooLarge { .. })
    ));
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut link = link::Link::new(Box::new(theirs));
    let mut body = Vec::new();
    Value::Dictionary(Dictionary::new())
        .to_writer_binary(&mut body)
        .unwrap();
    ours.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    ours.write_all(&body).unwrap();
    assert!(matches!(
        link.receive("a message", deadline),
        Err(DeviceError::BadReply { .. })
    ));
}

#[test]
fn faults_strike_even_when_nothing_changed_since_the_last_backup() {
    for fault in ["stop_mid_upload", "cancel_request"] {
        let dir = tempfile::tempdir().unwrap();
        // A first phone makes a backup; a second one, just like it but faulty, finds nothing
        // changed.
        let good = phone(r#"{"backup":{"files":20}}"#);
        let (mut computer, server) = Computer::connect(good, dir.path());
        computer.hello(&[2.1]);
        assert_eq!(code(&computer.backup(UDID, false).unwrap()), 0);
        computer.disconnect(server);
        let faulty = phone(&format!(r#"{{"backup":{{"files":20,"fault":"{fault}"}}}}"#));
        let notes = faulty.notifications.subscribe();
        let (mut computer, server) = Computer::connect(Arc::clone(&faulty), dir.path());
        computer.hello(&[2.1]);
        let shutter = computer.stream.try_clone().unwrap();
        let runner = std::thread::spawn(move || computer.backup(UDID, false));
        if fault == "cancel_request" {
            let name = notes.recv_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(name, "com.apple.itunes-client.syncCancelRequest");
            shutter.shutdown(std::net::Shutdown::Both).unwrap();
        }
        assert!(runner.join().unwrap_or(None).is_none(), "{fault}");
        server.join().unwrap();
        assert_eq!(faulty.backup.generation(), 0, "{fault}");
        assert_eq!(status_state(&dir.path().join(UDID)), "finished");
    }
}
