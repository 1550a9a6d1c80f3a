//! Writes realistic Finder backups (several domains; file, directory and symlink rows; real
//! NSKeyedArchiver MBFile records made with the plist crate) with chosen defects. Shared by the
//! integration tests and examples/make_backup.rs (the benchmark's generator).
//!
//! The writer is deliberately plain: it knows the format from docs, not from src/. A second,
//! independent writer in Python (tests/independent/) guards against a bug shared by both.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use plist::{Dictionary, Uid, Value};
use rusqlite::{params, Connection};
use sha1::{Digest, Sha1};

/// One defect to plant; each is countable in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// One listed blob is absent.
    MissingBlob,
    /// One blob is shorter than its Size.
    TruncatedBlob,
    /// One blob that no row lists.
    Orphan,
    /// Status.plist says `uploading`.
    Unfinished,
    /// A `Snapshot/` folder is left behind.
    SnapshotLeft,
    NoStatus,
    NoManifestPlist,
    EmptyManifestPlist,
    /// One row's fileID is not SHA-1(domain-relativePath); its blob is stored under that ID.
    DamagedFileId,
    /// One listed blob's path is a folder.
    BlobIsDirectory,
    /// One file record has no Size.
    SizeUnknown,
    /// Status.plist is there but has no SnapshotState key.
    NoSnapshotState,
    /// One file row has flags 0 and one folder row flags 8: their records' Mode says what
    /// they are. A blob lies under the folder row's fileID (named by a row: no orphan).
    OddFlags,
    /// One extra file row (blob present and intact) has the relativePath
    /// `../../outside/escape.txt`, and one extra folder row the domain `HomeDomain/../Evil`.
    SuspiciousPath,
    /// Every file record carries an EncryptionKey and every blob has the padded length of an
    /// encrypted file (use with NoManifestPlist: an encrypted backup without its keybag).
    AllKeyed,
    /// Every file record carries an EncryptionKey but every blob has its plain size: a backup
    /// decrypted by another tool, which keeps the keys in its records.
    KeyedPlainBlobs,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Spec {
    pub udid: String,
    pub device_name: String,
    pub product_type: String,
    pub ios: String,
    pub build: String,
    /// Unix seconds.
    pub date: i64,
    /// Regular-file rows.
    pub files: usize,
    /// Blob sizes are drawn from 0..=max_size.
    pub max_size: u64,
    pub full: bool,
    pub seed: u64,
    pub defects: Vec<Defect>,
    /// Files of chosen sizes (domain, relativePath, size), written present and intact after the
    /// generated ones.
    pub extra_files: Vec<(String, String, u64)>,
    /// Info.plist `Applications`: each bundle id with the iTunesMetadata dictionary stored (as
    /// a binary plist) in its entry; these ids also go into `Installed Applications`.
    pub info_apps: Vec<(String, Dictionary)>,
    /// Info.plist `Installed Applications` beyond those of `info_apps`.
    pub installed_apps: Vec<String>,
    /// Manifest.plist `Applications`: bundle id and Path.
    pub manifest_apps: Vec<(String, String)>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            udid: "00008110-000A1B2C3D4E5F60".into(),
            device_name: "Test iPhone".into(),
            product_type: "iPhone14,5".into(),
            ios: "17.5.1".into(),
            build: "21F90".into(),
            date: 1_763_672_591, // 2025-11-20T21:03:11Z
            files: 40,
            max_size: 4096,
            full: true,
            seed: 7,
            defects: Vec::new(),
            extra_files: Vec::new(),
            info_apps: Vec::new(),
            installed_apps: Vec::new(),
            manifest_apps: Vec::new(),
        }
    }
}

impl Spec {
    pub fn with(mut self, defect: Defect) -> Self {
        self.defects.push(defect);
        self
    }

    fn has(&self, defect: Defect) -> bool {
        self.defects.contains(&defect)
    }
}

/// What a correct verifier must report for the written backup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub listed: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub present: u64,
    pub intact: u64,
    pub missing: u64,
    pub size_mismatch: u64,
    pub orphans: u64,
    pub declared_bytes: u64,
    pub file_id_mismatch: u64,
    pub not_a_file: u64,
    pub size_unknown: u64,
}

const DOMAINS: &[(&str, &str)] = &[
    ("HomeDomain", "Library/SMS/Attachments"),
    ("CameraRollDomain", "Media/DCIM/100APPLE"),
    ("MediaDomain", "Media/Recordings"),
    ("AppDomain-net.whatsapp.WhatsApp", "Documents"),
    (
        "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
        "Message/Media",
    ),
    ("HealthDomain", "Health"),
    ("KeychainDomain", "keychain"),
    ("WirelessDomain", "Library/Preferences"),
];

/// A small deterministic generator (xorshift), so fixtures are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn sha1_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn binary_plist(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    value.to_writer_binary(&mut out).expect("write plist");
    out
}

fn dict(entries: Vec<(&str, Value)>) -> Value {
    let mut d = Dictionary::new();
    for (k, v) in entries {
        d.insert(k.to_string(), v);
    }
    Value::Dictionary(d)
}

fn int(n: i64) -> Value {
    Value::Integer(n.into())
}

/// An MBFile keyed archive as the phone writes it.
pub fn mbfile(
    path: &str,
    mode: i64,
    size: Option<u64>,
    target: Option<&str>,
    key: bool,
) -> Vec<u8> {
    let mut objects = vec![Value::String("$null".into()), Value::Boolean(false)];
    let mut fields = vec![
        ("Mode", int(mode)),
        ("UserID", int(501)),
        ("GroupID", int(501)),
        ("InodeNumber", int(12345)),
        ("LastModified", int(1_700_000_000)),
        ("LastStatusChange", int(1_700_000_000)),
        ("Birth", int(1_700_000_000)),
        ("ProtectionClass", int(3)),
        ("Flags", int(0)),
    ];
    if let Some(size) = size {
        fields.push(("Size", int(size as i64)));
    }
    objects.push(Value::String(path.into()));
    fields.push(("RelativePath", Value::Uid(Uid::new(2))));
    if let Some(target) = target {
        objects.push(Value::String(target.into()));
        fields.push(("Target", Value::Uid(Uid::new(objects.len() as u64 - 1))));
    }
    if key {
        let mut wrapped = vec![3u8, 0, 0, 0];
        wrapped.extend_from_slice(&[0xA5; 40]);
        objects.push(dict(vec![
            ("NS.data", Value::Data(wrapped)),
            ("$class", Value::Uid(Uid::new(objects.len() as u64 + 1))),
        ]));
        fields.push((
            "EncryptionKey",
            Value::Uid(Uid::new(objects.len() as u64 - 1)),
        ));
        objects.push(dict(vec![(
            "$classname",
            Value::String("NSMutableData".into()),
        )]));
    }
    objects.push(dict(vec![("$classname", Value::String("MBFile".into()))]));
    fields.push(("$class", Value::Uid(Uid::new(objects.len() as u64 - 1))));
    objects[1] = dict(fields);
    binary_plist(&dict(vec![
        ("$version", int(100000)),
        ("$archiver", Value::String("NSKeyedArchiver".into())),
        ("$top", dict(vec![("root", Value::Uid(Uid::new(1)))])),
        ("$objects", Value::Array(objects)),
    ]))
}

fn date(unix: i64) -> Value {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64);
    Value::Date(when.into())
}

fn write_plists(dir: &Path, spec: &Spec) {
    let info = dict(vec![
        ("Device Name", Value::String(spec.device_name.clone())),
        ("Display Name", Value::String(spec.device_name.clone())),
        ("Product Type", Value::String(spec.product_type.clone())),
        ("Product Version", Value::String(spec.ios.clone())),
        ("Build Version", Value::String(spec.build.clone())),
        ("Serial Number", Value::String("F2LTEST0000".into())),
        ("Unique Identifier", Value::String(spec.udid.clone())),
        ("Last Backup Date", date(spec.date - 600)),
        ("iTunes Version", Value::String("12.13".into())),
    ]);
    let mut info = info;
    if !spec.info_apps.is_empty() || !spec.installed_apps.is_empty() {
        let Value::Dictionary(d) = &mut info else {
            unreachable!()
        };
        let mut installed: Vec<Value> = Vec::new();
        let mut applications = Dictionary::new();
        for (bundle, metadata) in &spec.info_apps {
            installed.push(Value::String(bundle.clone()));
            let entry = dict(vec![
                ("ApplicationSINF", Value::Data(vec![0x53; 16])),
                (
                    "iTunesMetadata",
                    Value::Data(binary_plist(&Value::Dictionary(metadata.clone()))),
                ),
            ]);
            applications.insert(bundle.clone(), entry);
        }
        installed.extend(spec.installed_apps.iter().cloned().map(Value::String));
        d.insert("Installed Applications".into(), Value::Array(installed));
        d.insert("Applications".into(), Value::Dictionary(applications));
    }
    info.to_file_xml(dir.join("Info.plist"))
        .expect("Info.plist");
    if spec.has(Defect::EmptyManifestPlist) {
        fs::write(dir.join("Manifest.plist"), b"").unwrap();
    } else if !spec.has(Defect::NoManifestPlist) {
        let manifest = dict(vec![
            ("Version", Value::String("10.0".into())),
            ("Date", date(spec.date - 300)),
            ("IsEncrypted", Value::Boolean(false)),
            ("WasPasscodeSet", Value::Boolean(true)),
            (
                "Lockdown",
                dict(vec![
                    ("ProductVersion", Value::String(spec.ios.clone())),
                    ("ProductType", Value::String(spec.product_type.clone())),
                    ("BuildVersion", Value::String(spec.build.clone())),
                    ("DeviceName", Value::String(spec.device_name.clone())),
                    ("UniqueDeviceID", Value::String(spec.udid.clone())),
                ]),
            ),
        ]);
        let mut manifest = manifest;
        if !spec.manifest_apps.is_empty() {
            let mut applications = Dictionary::new();
            for (bundle, path) in &spec.manifest_apps {
                let entry = dict(vec![
                    ("CFBundleIdentifier", Value::String(bundle.clone())),
                    ("CFBundleVersion", Value::String("1.0".into())),
                    ("Path", Value::String(path.clone())),
                ]);
                applications.insert(bundle.clone(), entry);
            }
            if let Value::Dictionary(d) = &mut manifest {
                d.insert("Applications".into(), Value::Dictionary(applications));
            }
        }
        fs::write(dir.join("Manifest.plist"), binary_plist(&manifest)).unwrap();
    }
    if !spec.has(Defect::NoStatus) {
        let state = if spec.has(Defect::Unfinished) {
            "uploading"
        } else {
            "finished"
        };
        let mut status = dict(vec![
            ("Version", Value::String("3.3".into())),
            (
                "UUID",
                Value::String("5D3A0B1C-0000-4000-8000-00000000CAFE".into()),
            ),
            ("Date", date(spec.date)),
            ("BackupState", Value::String("new".into())),
            ("IsFullBackup", Value::Boolean(spec.full)),
            ("SnapshotState", Value::String(state.into())),
        ]);
        if spec.has(Defect::NoSnapshotState) {
            if let Value::Dictionary(d) = &mut status {
                d.remove("SnapshotState");
            }
        }
        fs::write(dir.join("Status.plist"), binary_plist(&status)).unwrap();
    }
}

fn blob_path(dir: &Path, file_id: &str) -> PathBuf {
    dir.join(&file_id[..2]).join(file_id)
}

fn content(size: u64, seed: u64) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(31) ^ seed) as u8)
        .collect()
}

/// Writes the backup described by `spec` into `dir` (created) and returns what a verifier must
/// report.
pub fn write_backup(dir: &Path, spec: &Spec) -> Expected {
    fs::create_dir_all(dir).unwrap();
    write_plists(dir, spec);
    let conn = Connection::open(dir.join("Manifest.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT,
                             flags INTEGER, file BLOB);
         CREATE INDEX FilesDomainIdx ON Files(domain);
         CREATE INDEX FilesRelativePathIdx ON Files(relativePath);
         CREATE INDEX FilesFlagsIdx ON Files(flags);
         CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);
         BEGIN;",
    )
    .unwrap();
    let mut insert = conn
        .prepare("INSERT INTO Files VALUES (?1, ?2, ?3, ?4, ?5)")
        .unwrap();
    let mut expected = Expected::default();
    let mut rng = Rng(spec.seed.max(1));
    // Domain roots and their folders.
    for (d, (domain, folder)) in DOMAINS.iter().enumerate() {
        for path in ["", *folder] {
            let id = sha1_hex(&format!("{domain}-{path}"));
            let odd = spec.has(Defect::OddFlags) && d == 2 && !path.is_empty();
            insert
                .execute(params![
                    id,
                    domain,
                    path,
                    if odd { 8 } else { 2 },
                    mbfile(path, 0o40755, None, None, false)
                ])
                .unwrap();
            expected.directories += 1;
            if odd {
                // A stray blob under a folder row's fileID: named by a row, so no orphan.
                let blob = blob_path(dir, &id);
                fs::create_dir_all(blob.parent().unwrap()).unwrap();
                fs::write(blob, b"named by a folder row").unwrap();
            }
        }
    }
    if spec.has(Defect::SuspiciousPath) {
        let (domain, path) = ("HomeDomain/../Evil", "Library");
        let id = sha1_hex(&format!("{domain}-{path}"));
        let record = mbfile(path, 0o40755, None, None, false);
        insert
            .execute(params![id, domain, path, 2, record])
            .unwrap();
        expected.directories += 1;
        let (domain, path) = ("HomeDomain", "../../outside/escape.txt");
        let id = sha1_hex(&format!("{domain}-{path}"));
        let data = b"planted by a tampered backup";
        let record = mbfile(path, 0o100644, Some(data.len() as u64), None, false);
        insert
            .execute(params![id, domain, path, 1, record])
            .unwrap();
        let blob = blob_path(dir, &id);
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        fs::write(blob, data).unwrap();
        expected.listed += 1;
        expected.present += 1;
        expected.intact += 1;
        expected.declared_bytes += data.len() as u64;
    }
    for (i, (domain, _)) in DOMAINS.iter().take(2).enumerate() {
        let path = format!("Library/link{i}");
        let id = sha1_hex(&format!("{domain}-{path}"));
        let record = mbfile(&path, 0o120755, Some(0), Some("/private/var/mobile"), false);
        insert
            .execute(params![id, domain, path, 4, record])
            .unwrap();
        expected.symlinks += 1;
    }
    // Which file gets which defect: fixed positions, spread across the rows.
    let victim = |n: usize| (spec.files * (n + 1)) / 7;
    for i in 0..spec.files {
        let (domain, folder) = DOMAINS[i % DOMAINS.len()];
        let path = format!("{folder}/file{i:06}.dat");
        let size = rng.next() % (spec.max_size + 1);
        let mut id = sha1_hex(&format!("{domain}-{path}"));
        if spec.has(Defect::DamagedFileId) && i == victim(4) {
            id = sha1_hex(&format!("{domain}/{path}"));
            expected.file_id_mismatch += 1;
        }
        let unknown = spec.has(Defect::SizeUnknown) && i == victim(5);
        let keyed = spec.has(Defect::AllKeyed) || spec.has(Defect::KeyedPlainBlobs);
        let record = mbfile(
            &path,
            0o100644,
            (!unknown).then_some(size),
            None,
            keyed || i % 3 == 0,
        );
        let flags = if spec.has(Defect::OddFlags) && i == victim(2) {
            0
        } else {
            1
        };
        insert
            .execute(params![id, domain, path, flags, record])
            .unwrap();
        // An encrypted file's blob is its size padded to the next whole 16-byte block.
        let blob_len = if spec.has(Defect::AllKeyed) {
            size - size % 16 + 16
        } else {
            size
        };
        expected.listed += 1;
        if !unknown {
            expected.declared_bytes += size;
        }
        let blob = blob_path(dir, &id);
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        if spec.has(Defect::MissingBlob) && i == victim(0) {
            expected.missing += 1;
            continue;
        }
        if spec.has(Defect::BlobIsDirectory) && i == victim(3) {
            fs::create_dir_all(&blob).unwrap();
            expected.not_a_file += 1;
            continue;
        }
        expected.present += 1;
        if spec.has(Defect::TruncatedBlob) && i == victim(1) {
            fs::write(&blob, content(size / 2, i as u64)).unwrap();
            expected.size_mismatch += u64::from(size / 2 != size);
            expected.intact += u64::from(size / 2 == size);
            continue;
        }
        fs::write(&blob, content(blob_len, i as u64)).unwrap();
        if unknown {
            expected.size_unknown += 1;
        } else {
            expected.intact += 1;
        }
    }
    for (n, (domain, path, size)) in spec.extra_files.iter().enumerate() {
        let id = sha1_hex(&format!("{domain}-{path}"));
        let record = mbfile(path, 0o100644, Some(*size), None, false);
        insert
            .execute(params![id, domain, path, 1, record])
            .unwrap();
        let blob = blob_path(dir, &id);
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        fs::write(&blob, content(*size, 1_000 + n as u64)).unwrap();
        expected.listed += 1;
        expected.present += 1;
        expected.intact += 1;
        expected.declared_bytes += size;
    }
    drop(insert);
    conn.execute_batch("COMMIT;").unwrap();
    drop(conn);
    if spec.has(Defect::Orphan) {
        let id = sha1_hex("HomeDomain-Library/left/over.dat");
        let blob = blob_path(dir, &id);
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        fs::write(blob, b"left over from an earlier backup").unwrap();
        expected.orphans += 1;
    }
    if spec.has(Defect::SnapshotLeft) {
        fs::create_dir_all(dir.join("Snapshot")).unwrap();
        fs::write(dir.join("Snapshot").join("Manifest.db"), b"partial").unwrap();
    }
    expected
}
