//! Test support: writes an encrypted backup folder with the same RustCrypto crates ibackup uses,
//! so that the independent Python implementation (scripts/independent_encrypted_backup.py) can
//! prove it decrypts what our side encrypts. It builds its keybag, wrapping and encryption here,
//! from the format notes, and does not call ibackup's own keybag or crypto code: a mistake there
//! must not be mirrored here. Test code only; the product never encrypts.

// Shared by several test crates and an example, each using a different part of it.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use aes_kw::KekAes256;
use plist::{Dictionary, Uid, Value};
use sha1::Digest;

/// One file row the writer put in Manifest.db.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    pub file_id: String,
    pub domain: String,
    pub relative_path: String,
    pub flags: u64,
    pub size: u64,
    /// Lowercase hex SHA-256 of the plaintext (files only).
    pub sha256: Option<String>,
    /// The file's AES key in hex (files only), for baselines that decrypt with OpenSSL.
    pub key_hex: Option<String>,
}

/// A tiny deterministic byte source, so a failing test can be rerun on the same backup.
pub struct Bytes(u64);

impl Bytes {
    pub fn new(seed: u64) -> Self {
        Bytes(seed | 1)
    }

    pub fn fill<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.iter_mut().for_each(|b| *b = self.next());
        out
    }

    pub fn vec(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next()).collect()
    }

    fn next(&mut self) -> u8 {
        // xorshift64*: plenty for test data, not for real keys.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tlv(out: &mut Vec<u8>, tag: &[u8; 4], value: &[u8]) {
    out.extend_from_slice(tag);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

fn tlv_u32(out: &mut Vec<u8>, tag: &[u8; 4], value: u32) {
    tlv(out, tag, &value.to_be_bytes());
}

/// AES-256-CBC, zero IV, PKCS#7, as Apple encrypts backup files.
pub fn encrypt(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = plaintext.to_vec();
    buf.resize(plaintext.len() + 16, 0);
    let len = cbc::Encryptor::<aes::Aes256>::new(key.into(), &[0u8; 16].into())
        .encrypt_padded_mut::<Pkcs7>(&mut buf, plaintext.len())
        .expect("the buffer has room for a block of padding")
        .len();
    buf.truncate(len);
    buf
}

/// AES-256-CBC, zero IV, no padding at all, as some tools write Manifest.db; `plaintext` must be
/// a whole number of 16-byte blocks (a SQLite database always is).
pub fn encrypt_unpadded(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    assert_eq!(plaintext.len() % 16, 0, "whole blocks only");
    let mut buf = plaintext.to_vec();
    let len = cbc::Encryptor::<aes::Aes256>::new(key.into(), &[0u8; 16].into())
        .encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf, plaintext.len())
        .expect("whole blocks need no room for padding")
        .len();
    buf.truncate(len);
    buf
}

fn wrap(kek: &[u8; 32], key: &[u8; 32]) -> [u8; 40] {
    let mut out = [0u8; 40];
    KekAes256::new(kek.into())
        .wrap(key, &mut out)
        .expect("a 32-byte key wraps to 40 bytes");
    out
}

/// The `ManifestKey` / `EncryptionKey` layout: little-endian class, then the wrapped key.
fn protected(class: u32, class_key: &[u8; 32], key: &[u8; 32]) -> Vec<u8> {
    let mut out = class.to_le_bytes().to_vec();
    out.extend_from_slice(&wrap(class_key, key));
    out
}

fn uid(n: u64) -> Value {
    Value::Uid(Uid::new(n))
}

fn mbfile(
    path: &str,
    size: u64,
    mode: u64,
    class: u32,
    key: Option<&[u8]>,
    target: Option<&str>,
) -> Vec<u8> {
    let mut root = Dictionary::new();
    root.insert("Size".into(), Value::Integer(size.into()));
    root.insert("Mode".into(), Value::Integer(mode.into()));
    root.insert(
        "ProtectionClass".into(),
        Value::Integer(u64::from(class).into()),
    );
    root.insert(
        "LastModified".into(),
        Value::Integer(1_760_000_000u64.into()),
    );
    root.insert("RelativePath".into(), uid(2));
    let mut objects = vec![
        Value::String("$null".into()),
        Value::Boolean(false),
        Value::String(path.into()),
    ];
    if let Some(target) = target {
        root.insert("Target".into(), uid(objects.len() as u64));
        objects.push(Value::String(target.into()));
    }
    if let Some(key) = key {
        // NS.data as a UID to another object: one of the two forms real writers use.
        let data_at = objects.len() as u64;
        objects.push(Value::Data(key.to_vec()));
        let mut wrapper = Dictionary::new();
        wrapper.insert("NS.data".into(), uid(data_at));
        root.insert("EncryptionKey".into(), uid(objects.len() as u64));
        objects.push(Value::Dictionary(wrapper));
    }
    let mut class_info = Dictionary::new();
    class_info.insert("$classname".into(), Value::String("MBFile".into()));
    class_info.insert(
        "$classes".into(),
        Value::Array(vec![
            Value::String("MBFile".into()),
            Value::String("NSObject".into()),
        ]),
    );
    root.insert("$class".into(), uid(objects.len() as u64));
    objects.push(Value::Dictionary(class_info));
    objects[1] = Value::Dictionary(root);

    let mut top = Dictionary::new();
    top.insert("root".into(), uid(1));
    let mut archive = Dictionary::new();
    archive.insert("$version".into(), Value::Integer(100_000u64.into()));
    archive.insert("$archiver".into(), Value::String("NSKeyedArchiver".into()));
    archive.insert("$top".into(), Value::Dictionary(top));
    archive.insert("$objects".into(), Value::Array(objects));
    let mut out = Vec::new();
    Value::Dictionary(archive)
        .to_writer_binary(&mut out)
        .expect("writing a plist to memory");
    out
}

fn sha1_hex(text: &str) -> String {
    hex(&sha1::Sha1::digest(text.as_bytes()))
}

/// One row to write: domain, relative path, flags, contents, protection class, symlink target.
pub type RowPlan = (
    &'static str,
    &'static str,
    u64,
    Vec<u8>,
    u32,
    Option<&'static str>,
);

/// The rows of [`write_encrypted_backup`]: file sizes around the AES block size, a larger file,
/// folders and a symlink.
fn default_rows(rng: &mut Bytes) -> Vec<RowPlan> {
    vec![
        ("HomeDomain", "", 2, vec![], 0, None),
        ("HomeDomain", "Library", 2, vec![], 0, None),
        ("HomeDomain", "Library/empty", 1, vec![], 3, None),
        ("HomeDomain", "Library/fifteen", 1, rng.vec(15), 1, None),
        ("HomeDomain", "Library/thirty-two", 1, rng.vec(32), 2, None),
        (
            "MediaDomain",
            "Media/Recordings/memo.m4a",
            1,
            rng.vec(70_001),
            4,
            None,
        ),
        (
            "AppDomain-com.example.notes",
            "Documents/notes.txt",
            1,
            "Grüße aus Rust\n".into(),
            3,
            None,
        ),
        (
            "HomeDomain",
            "Library/link",
            4,
            vec![],
            0,
            Some("/var/mobile/Library/fifteen"),
        ),
    ]
}

/// Writes an encrypted backup of a few files into `dir`, with small iteration counts.
/// Password classes are 1-4; class 5 is wrapped with a device key only.
pub fn write_encrypted_backup(
    dir: &Path,
    password: &[u8],
    dpic: u32,
    iter: u32,
) -> Vec<WrittenFile> {
    write_encrypted_backup_with(dir, password, dpic, iter, default_rows)
}

/// [`write_encrypted_backup`] with the rows `rows` makes (from the writer's byte source, once
/// the keys are drawn); the benchmark uses it for large backups.
pub fn write_encrypted_backup_with(
    dir: &Path,
    password: &[u8],
    dpic: u32,
    iter: u32,
    rows: impl FnOnce(&mut Bytes) -> Vec<RowPlan>,
) -> Vec<WrittenFile> {
    write_encrypted(dir, password, dpic, iter, rows, true)
}

/// [`write_encrypted_backup`] with Manifest.db encrypted without PKCS#7 padding, as some tools
/// write it (the blobs stay padded).
pub fn write_encrypted_backup_unpadded_manifest(
    dir: &Path,
    password: &[u8],
    dpic: u32,
    iter: u32,
) -> Vec<WrittenFile> {
    write_encrypted(dir, password, dpic, iter, default_rows, false)
}

fn write_encrypted(
    dir: &Path,
    password: &[u8],
    dpic: u32,
    iter: u32,
    rows: impl FnOnce(&mut Bytes) -> Vec<RowPlan>,
    pad_manifest: bool,
) -> Vec<WrittenFile> {
    let mut rng = Bytes::new(0x1BAC_C0DE);
    let salt: [u8; 20] = rng.fill();
    let dpsl: [u8; 20] = rng.fill();
    let mut first = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &dpsl, dpic, &mut first);
    let mut kek = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(&first, &salt, iter, &mut kek);

    let mut keybag = Vec::new();
    tlv_u32(&mut keybag, b"VERS", 4);
    tlv_u32(&mut keybag, b"TYPE", 1);
    tlv(&mut keybag, b"UUID", &rng.fill::<16>());
    tlv(&mut keybag, b"HMCK", &rng.fill::<40>());
    tlv_u32(&mut keybag, b"WRAP", 0);
    tlv(&mut keybag, b"SALT", &salt);
    tlv_u32(&mut keybag, b"ITER", iter);
    tlv_u32(&mut keybag, b"DPWT", 1);
    tlv_u32(&mut keybag, b"DPIC", dpic);
    tlv(&mut keybag, b"DPSL", &dpsl);
    let mut class_keys = Vec::new();
    for class in 1..=5u32 {
        let key: [u8; 32] = rng.fill();
        let wrap_bits = if class == 5 { 1 } else { 2 };
        let wrapped = if class == 5 {
            rng.fill::<40>()
        } else {
            wrap(&kek, &key)
        };
        tlv(&mut keybag, b"UUID", &rng.fill::<16>());
        tlv_u32(&mut keybag, b"CLAS", class);
        tlv_u32(&mut keybag, b"WRAP", wrap_bits);
        tlv_u32(&mut keybag, b"KTYP", 0);
        tlv(&mut keybag, b"WPKY", &wrapped);
        class_keys.push(key);
    }

    let rows = rows(&mut rng);

    let scratch = tempfile::tempdir().expect("a scratch folder");
    let db_path = scratch.path().join("Manifest.db");
    let db = rusqlite::Connection::open(&db_path).expect("create Manifest.db");
    db.execute_batch(
        "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, \
         flags INTEGER, file BLOB);
         CREATE INDEX FilesDomainIdx ON Files(domain);
         CREATE INDEX FilesRelativePathIdx ON Files(relativePath);
         CREATE INDEX FilesFlagsIdx ON Files(flags);
         CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);",
    )
    .expect("create the schema");
    // One transaction for all rows: a benchmark backup has hundreds of thousands.
    db.execute_batch("BEGIN").expect("begin");
    let mut written = Vec::new();
    for (domain, path, flags, data, class, target) in rows {
        let file_id = sha1_hex(&format!("{domain}-{path}"));
        let mut key_hex = None;
        let (mode, key) = match flags {
            1 => {
                let file_key: [u8; 32] = rng.fill();
                key_hex = Some(hex(&file_key));
                let blob = encrypt(&file_key, &data);
                let folder = dir.join(&file_id[..2]);
                fs::create_dir_all(&folder).expect("create a blob folder");
                fs::write(folder.join(&file_id), blob).expect("write a blob");
                (
                    0o100644,
                    Some(protected(class, &class_keys[class as usize - 1], &file_key)),
                )
            }
            2 => (0o040755, None),
            _ => (0o120755, None),
        };
        let record = mbfile(path, data.len() as u64, mode, class, key.as_deref(), target);
        db.execute(
            "INSERT INTO Files VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![file_id, domain, path, flags, record],
        )
        .expect("insert a row");
        written.push(WrittenFile {
            file_id,
            domain: domain.into(),
            relative_path: path.into(),
            flags,
            size: data.len() as u64,
            sha256: (flags == 1).then(|| hex(&sha2::Sha256::digest(&data))),
            key_hex,
        });
    }
    db.execute_batch("COMMIT").expect("commit");
    db.close().expect("close Manifest.db");
    let manifest_db = fs::read(&db_path).expect("read Manifest.db back");
    let manifest_key: [u8; 32] = rng.fill();
    let encrypted_db = if pad_manifest {
        encrypt(&manifest_key, &manifest_db)
    } else {
        encrypt_unpadded(&manifest_key, &manifest_db)
    };
    fs::write(dir.join("Manifest.db"), encrypted_db).expect("write Manifest.db");

    let mut lockdown = Dictionary::new();
    lockdown.insert("ProductVersion".into(), Value::String("18.1".into()));
    lockdown.insert("ProductType".into(), Value::String("iPhone15,2".into()));
    lockdown.insert(
        "DeviceName".into(),
        Value::String("Rust-made iPhone".into()),
    );
    let mut manifest = Dictionary::new();
    manifest.insert("Version".into(), Value::String("10.0".into()));
    manifest.insert("IsEncrypted".into(), Value::Boolean(true));
    manifest.insert("WasPasscodeSet".into(), Value::Boolean(true));
    manifest.insert("Lockdown".into(), Value::Dictionary(lockdown));
    manifest.insert("Applications".into(), Value::Dictionary(Dictionary::new()));
    manifest.insert("BackupKeyBag".into(), Value::Data(keybag));
    manifest.insert(
        "ManifestKey".into(),
        Value::Data(protected(3, &class_keys[2], &manifest_key)),
    );
    Value::Dictionary(manifest)
        .to_file_binary(dir.join("Manifest.plist"))
        .expect("write Manifest.plist");

    let mut status = Dictionary::new();
    status.insert("Version".into(), Value::String("3.3".into()));
    status.insert("BackupState".into(), Value::String("new".into()));
    status.insert("IsFullBackup".into(), Value::Boolean(false));
    status.insert("SnapshotState".into(), Value::String("finished".into()));
    Value::Dictionary(status)
        .to_file_binary(dir.join("Status.plist"))
        .expect("write Status.plist");
    let mut info = Dictionary::new();
    info.insert(
        "Device Name".into(),
        Value::String("Rust-made iPhone".into()),
    );
    info.insert("Product Version".into(), Value::String("18.1".into()));
    Value::Dictionary(info)
        .to_file_xml(dir.join("Info.plist"))
        .expect("write Info.plist");
    written
}
