//! Interop tests for the encryption core (issue 4): ibackup's keybag and crypto code against
//! data nobody on the project wrote (hashcat's keybag vectors, a third-party synthetic encrypted
//! backup), against an independent Python implementation in both directions, and the typed
//! errors for wrong passwords, truncated and corrupted ciphertext.
//!
//! The Python side needs `python3` with PyPI's `cryptography` package; without it these tests
//! fail with a message saying so, they never pass silently.

mod support_encrypt;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ibackup::backup::crypto::{
    check_blob, decrypt_to_vec, expected_encrypted_len, is_sqlite, CryptoError,
};
use ibackup::backup::kdf;
use ibackup::backup::keybag::{derive_kek, ClassKeys, Keybag, KeybagError, Password};
use plist::Value;
use sha1::Digest;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/third-party")
}

fn synthetic_sample() -> PathBuf {
    fixtures().join("synthetic-encrypted-ios26")
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex in a test vector"))
        .collect()
}

// ---- reading an encrypted backup with ibackup's API -------------------------------------

/// What the test reads from Manifest.plist.
struct ManifestPlist {
    keybag: Vec<u8>,
    manifest_key: Vec<u8>,
}

fn manifest_plist(backup: &Path) -> ManifestPlist {
    let value = Value::from_file(backup.join("Manifest.plist")).expect("Manifest.plist parses");
    let dict = value
        .as_dictionary()
        .expect("Manifest.plist is a dictionary");
    let data = |key: &str| {
        dict.get(key)
            .and_then(Value::as_data)
            .unwrap_or_else(|| panic!("Manifest.plist has no {key}"))
            .to_vec()
    };
    assert_eq!(
        dict.get("IsEncrypted").and_then(Value::as_boolean),
        Some(true)
    );
    ManifestPlist {
        keybag: data("BackupKeyBag"),
        manifest_key: data("ManifestKey"),
    }
}

/// One Files row with the MBFile fields these tests need.
struct Row {
    domain: String,
    relative_path: String,
    flags: i64,
    size: Option<u64>,
    encryption_key: Option<Vec<u8>>,
}

/// The few MBFile fields the tests need, read with the `plist` crate on its own (not with
/// ibackup's MBFile decoder, which has its own tests).
fn mbfile(bytes: &[u8]) -> (Option<u64>, Option<Vec<u8>>) {
    let archive = Value::from_reader(Cursor::new(bytes)).expect("MBFile is a plist");
    let archive = archive
        .as_dictionary()
        .expect("an NSKeyedArchiver dictionary");
    let objects = archive["$objects"].as_array().expect("$objects");
    let resolve = |v: &Value| -> Value {
        match v {
            Value::Uid(uid) => objects[uid.get() as usize].clone(),
            other => other.clone(),
        }
    };
    let root = resolve(&archive["$top"].as_dictionary().expect("$top")["root"]);
    let root = root.as_dictionary().expect("MBFile dictionary");
    let size = root.get("Size").and_then(Value::as_unsigned_integer);
    let key = root.get("EncryptionKey").map(|k| {
        let wrapper = resolve(k);
        let data = resolve(&wrapper.as_dictionary().expect("{NS.data}")["NS.data"]);
        data.as_data().expect("NS.data bytes").to_vec()
    });
    (size, key)
}

/// Unlocks `backup` with `password` and reads its Manifest.db rows: the path every encrypted
/// backup takes in ibackup.
fn open_encrypted(backup: &Path, password: &str) -> Result<(ClassKeys, Vec<Row>), KeybagError> {
    let plist = manifest_plist(backup);
    let keybag = Keybag::parse(&plist.keybag).expect("the keybag parses");
    let keys = keybag.unlock(&Password::from(password))?;
    let manifest_key = keys
        .unwrap_key(&plist.manifest_key)
        .expect("ManifestKey unwraps");
    let encrypted = fs::read(backup.join("Manifest.db")).expect("Manifest.db is readable");
    assert!(
        !is_sqlite(&encrypted),
        "Manifest.db must be encrypted on disk"
    );
    let plain = decrypt_to_vec(&manifest_key, &encrypted).expect("Manifest.db decrypts");
    assert!(
        is_sqlite(&plain),
        "decrypted Manifest.db starts with the SQLite header"
    );

    // The product opens this from memory; a test may use a temporary file.
    let scratch = tempfile::tempdir().expect("scratch folder");
    let db_path = scratch.path().join("Manifest.db");
    fs::write(&db_path, &plain[..]).expect("write scratch copy");
    let db = rusqlite::Connection::open(&db_path).expect("decrypted Manifest.db opens");
    let mut statement = db
        .prepare("SELECT fileID, domain, relativePath, flags, file FROM Files")
        .expect("Files table");
    let rows = statement
        .query_map([], |row| {
            let file_id: String = row.get(0)?;
            let domain: String = row.get(1)?;
            let relative_path: String = row.get(2)?;
            let record: Vec<u8> = row.get(4)?;
            assert_eq!(
                support_encrypt::hex(&sha1::Sha1::digest(format!("{domain}-{relative_path}"))),
                file_id,
                "fileID is SHA-1 of domain-relativePath"
            );
            let (size, encryption_key) = mbfile(&record);
            Ok(Row {
                domain,
                relative_path,
                flags: row.get(3)?,
                size,
                encryption_key,
            })
        })
        .expect("query Files")
        .collect::<Result<Vec<_>, _>>()
        .expect("read Files rows");
    Ok((keys, rows))
}

fn blob_path(backup: &Path, row: &Row) -> PathBuf {
    let id = support_encrypt::hex(&sha1::Sha1::digest(format!(
        "{}-{}",
        row.domain, row.relative_path
    )));
    backup.join(&id[..2]).join(id)
}

/// Checks and decrypts every file blob; returns (path, plaintext SHA-256) per file.
fn decrypt_all_blobs(backup: &Path, keys: &ClassKeys, rows: &[Row]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for row in rows.iter().filter(|r| r.flags == 1) {
        let size = row.size.expect("every file row has a Size");
        let key = keys
            .unwrap_key(
                row.encryption_key
                    .as_deref()
                    .expect("files have an EncryptionKey"),
            )
            .expect("EncryptionKey unwraps");
        let path = blob_path(backup, row);
        let check =
            check_blob(fs::File::open(&path).expect("blob exists"), &key).expect("blob reads");
        assert_eq!(
            check.encrypted_len,
            expected_encrypted_len(size),
            "{}",
            row.relative_path
        );
        assert!(check.matches_size(size), "{}: {check:?}", row.relative_path);
        let plain = decrypt_to_vec(&key, &fs::read(&path).unwrap()).expect("blob decrypts");
        assert_eq!(plain.len() as u64, size);
        out.insert(
            format!("{}-{}", row.domain, row.relative_path),
            support_encrypt::hex(&sha2::Sha256::digest(&plain[..])),
        );
    }
    out
}

// ---- the independent Python implementation -----------------------------------------------

fn python(args: &[&str], password: &str) -> (i32, String) {
    let scratch = tempfile::tempdir().expect("scratch folder");
    let password_file = scratch.path().join("password");
    fs::write(&password_file, format!("{password}\n")).expect("write password file");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/independent_encrypted_backup.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg("--password-file")
        .arg(&password_file)
        .args(args)
        .env_remove("IBACKUP_PASSWORD")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): these tests need python3 with `pip install cryptography`"));
    let code = output.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        code != 3,
        "the independent implementation needs PyPI's `cryptography` package \
         (python3 -m pip install cryptography):\n{stderr}"
    );
    assert!(
        code == 0 || code == 2,
        "{} {args:?} failed with exit {code}:\n{stderr}",
        script.display()
    );
    (code, String::from_utf8(output.stdout).expect("UTF-8 JSON"))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON from Python ({e}):\n{text}"))
}

fn python_made_backup(dir: &Path, password: &str, extra: &[&str]) -> serde_json::Value {
    let out = dir.to_str().expect("UTF-8 temp path");
    let mut args = vec![
        "make", out, "--seed", "42", "--dpic", "1000", "--iter", "100",
    ];
    args.extend_from_slice(extra);
    let (code, stdout) = python(&args, password);
    assert_eq!(code, 0);
    json(&stdout)
}

fn check_python_made_backup(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let password = "correct horse ✓ battery";
    let made = python_made_backup(dir.path(), password, extra);
    let (keys, rows) = open_encrypted(dir.path(), password).expect("ibackup unlocks it");
    let mut classes: Vec<u32> = keys.classes().collect();
    classes.sort_unstable();
    let expected: Vec<u32> = made["password_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(classes, expected, "device-only classes are skipped");

    let hashes = decrypt_all_blobs(dir.path(), &keys, &rows);
    let files = made["files"].as_array().unwrap();
    assert_eq!(rows.len(), files.len());
    let expected: BTreeMap<String, String> = files
        .iter()
        .filter(|f| f["flags"] == 1)
        .map(|f| {
            (
                format!(
                    "{}-{}",
                    f["domain"].as_str().unwrap(),
                    f["relativePath"].as_str().unwrap()
                ),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(hashes, expected);
    assert!(
        hashes.len() >= 8,
        "the Python backup holds files of many sizes"
    );

    assert!(matches!(
        open_encrypted(dir.path(), "correct horse battery"),
        Err(KeybagError::WrongPassword)
    ));
}

#[test]
fn ibackup_decrypts_a_backup_made_by_the_independent_python_implementation() {
    check_python_made_backup(&[]);
}

#[test]
fn ibackup_decrypts_a_python_backup_with_the_pre_ios_10_2_key_derivation() {
    check_python_made_backup(&["--no-sha256-step"]);
}

#[test]
fn the_independent_python_implementation_decrypts_a_backup_made_with_our_crates() {
    let dir = tempfile::tempdir().unwrap();
    let password = "rust-made pässword";
    let written =
        support_encrypt::write_encrypted_backup(dir.path(), password.as_bytes(), 1000, 100);
    let (code, stdout) = python(&["decrypt", dir.path().to_str().unwrap()], password);
    assert_eq!(code, 0);
    let found = json(&stdout);
    assert_eq!(found["manifest_db"]["sqlite"], true);
    assert_eq!(found["classes_unlocked"], serde_json::json!([1, 2, 3, 4]));
    let files = found["files"].as_array().unwrap();
    assert_eq!(files.len(), written.len());
    for w in &written {
        let f = files
            .iter()
            .find(|f| f["fileID"] == w.file_id.as_str())
            .unwrap_or_else(|| panic!("Python did not find {}", w.relative_path));
        assert_eq!(f["id_matches"], true);
        assert_eq!(f["domain"], w.domain.as_str());
        assert_eq!(f["relativePath"], w.relative_path.as_str());
        assert_eq!(f["flags"], w.flags);
        assert_eq!(f["size"], w.size);
        if let Some(sha256) = &w.sha256 {
            assert_eq!(f["blob"], "ok", "{}", w.relative_path);
            assert_eq!(f["sha256"], sha256.as_str(), "{}", w.relative_path);
        }
    }

    // Our own reader agrees with the writer too.
    let (keys, rows) = open_encrypted(dir.path(), password).expect("ibackup unlocks it");
    assert_eq!(decrypt_all_blobs(dir.path(), &keys, &rows).len(), 5);

    let (code, stdout) = python(&["decrypt", dir.path().to_str().unwrap()], "wrong");
    assert_eq!(code, 2, "Python reports the wrong password: {stdout}");
}

/// The product's PBKDF2 (src/backup/kdf.rs) against Python's `hashlib.pbkdf2_hmac`, an
/// implementation nobody on the project wrote: passwords shorter than, equal to and longer than
/// the 64-byte HMAC block, salts past one block, outputs of several digests with a partial last.
#[test]
fn pbkdf2_agrees_with_python_hashlib() {
    let mut rng = support_encrypt::Bytes::new(0x5EED_0F4B_0F00);
    let mut cases = Vec::new();
    for (password_len, salt_len, count, len) in [
        (0, 0, 1, 20),
        (7, 16, 3, 32),
        (63, 20, 1000, 33),
        (64, 65, 17, 64),
        (65, 8, 2, 100),
        (200, 130, 250, 41),
    ] {
        for hash in ["sha1", "sha256"] {
            cases.push((hash, rng.vec(password_len), rng.vec(salt_len), count, len));
        }
    }
    let input: String = cases
        .iter()
        .map(|(hash, password, salt, count, len)| {
            let (password, salt) = (support_encrypt::hex(password), support_encrypt::hex(salt));
            format!("{hash} {count} {len} {password} {salt}\n")
        })
        .collect();
    // One case a line; an empty password or salt is an empty field, hence split(" ").
    let script = r#"
import hashlib, sys
for line in sys.stdin:
    name, count, length, password, salt = line.rstrip("\n").split(" ")
    key = hashlib.pbkdf2_hmac(name, bytes.fromhex(password), bytes.fromhex(salt), int(count), int(length))
    print(key.hex())
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): this test needs python3"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python3 hashlib failed");
    let theirs: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(theirs.len(), cases.len(), "one line per case from Python");
    for ((hash, password, salt, count, len), expected) in cases.iter().zip(&theirs) {
        let mut ours = vec![0u8; *len];
        let derive = match *hash {
            "sha1" => kdf::pbkdf2_hmac_sha1,
            _ => kdf::pbkdf2_hmac_sha256,
        };
        derive(password, salt, *count, &mut ours);
        assert_eq!(
            &support_encrypt::hex(&ours),
            expected,
            "{hash}: password {} bytes, salt {} bytes, {count} iterations, {len} bytes",
            password.len(),
            salt.len()
        );
    }
}

// ---- third-party data ----------------------------------------------------------------------

/// A keybag holding just what a hashcat `$itunes_backup$` line carries, in the TLV layout.
fn keybag_from_hashcat_line(line: &str) -> (u32, Vec<u8>) {
    let fields: Vec<&str> = line
        .strip_prefix("$itunes_backup$*")
        .expect("a hashcat itunes line")
        .split('*')
        .collect();
    let [version, wpky, iter, salt, dpic, dpsl] = fields[..] else {
        panic!("unexpected vector layout: {line}");
    };
    let mut out = Vec::new();
    let mut tlv = |tag: &[u8; 4], value: &[u8]| {
        out.extend_from_slice(tag);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    };
    tlv(b"VERS", &3u32.to_be_bytes());
    tlv(b"TYPE", &1u32.to_be_bytes());
    tlv(b"UUID", &[0u8; 16]);
    tlv(b"SALT", &unhex(salt));
    tlv(b"ITER", &iter.parse::<u32>().unwrap().to_be_bytes());
    if !dpic.is_empty() {
        tlv(b"DPIC", &dpic.parse::<u32>().unwrap().to_be_bytes());
        tlv(b"DPSL", &unhex(dpsl));
    }
    tlv(b"UUID", &[1u8; 16]);
    tlv(b"CLAS", &1u32.to_be_bytes());
    tlv(b"WRAP", &2u32.to_be_bytes());
    tlv(b"KTYP", &0u32.to_be_bytes());
    tlv(b"WPKY", &unhex(wpky));
    (version.parse().unwrap(), out)
}

fn hashcat_vectors() -> Vec<String> {
    fs::read_to_string(fixtures().join("hashcat_itunes_vectors.txt"))
        .expect("hashcat vectors fixture")
        .lines()
        .filter(|l| l.starts_with("$itunes_backup$"))
        .map(str::to_string)
        .collect()
}

/// Unlocks every hashcat vector with a DPIC of at most 1,000 (or none), with the right password
/// and a wrong one; returns how many it checked.
fn check_fast_hashcat_vectors() -> usize {
    let mut checked = 0;
    for line in hashcat_vectors() {
        let (version, bytes) = keybag_from_hashcat_line(&line);
        let keybag = Keybag::parse(&bytes).expect("vector keybag parses");
        assert_eq!(keybag.kdf.sha256.is_some(), version == 10, "{line}");
        let dpic = keybag.kdf.sha256.as_ref().map_or(0, |s| s.iterations);
        if dpic > 1000 {
            continue;
        }
        let keys = keybag
            .unlock(&Password::from("hashcat"))
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(keys.classes().collect::<Vec<_>>(), [1]);
        assert!(matches!(
            keybag.unlock(&Password::from("hashcat!")),
            Err(KeybagError::WrongPassword)
        ));
        checked += 1;
    }
    checked
}

#[test]
fn hashcat_vectors_with_small_iteration_counts_unlock_with_hashcat_only() {
    assert_eq!(check_fast_hashcat_vectors(), 3);
}

/// The vector with iOS's real parameters (DPIC 10,000,000, ITER 10,000) goes through the
/// product's own derivation once: about 30 s in a debug build, where the generic HMAC loop is
/// compiled unoptimised into ibackup whatever the profile overrides say, and a second in release
/// (docs/testing.md, "The slow key-derivation test"). A wrong password would cost another 30 s,
/// so the refusal is checked with a key-encryption key one bit away from the right one.
#[test]
fn hashcat_vector_with_real_iteration_counts_unlocks_with_hashcat_only() {
    let real: Vec<String> = hashcat_vectors()
        .into_iter()
        .filter(|line| line.contains("*10000000*"))
        .collect();
    assert_eq!(real.len(), 1, "one vector with iOS's real DPIC");
    let (version, bytes) = keybag_from_hashcat_line(&real[0]);
    assert_eq!(version, 10);
    let keybag = Keybag::parse(&bytes).expect("vector keybag parses");
    assert_eq!(keybag.kdf.sha1.iterations, 10_000);
    assert_eq!(
        keybag.kdf.sha256.as_ref().map(|s| s.iterations),
        Some(10_000_000)
    );

    // `Keybag::unlock` is these two steps; the key is kept for the refusal below.
    let kek = derive_kek(&Password::from("hashcat"), &keybag.kdf);
    let keys = keybag
        .unlock_with_kek(&kek)
        .unwrap_or_else(|e| panic!("{}: {e}", real[0]));
    assert_eq!(keys.classes().collect::<Vec<_>>(), [1]);

    let mut wrong = *kek;
    wrong[31] ^= 1;
    assert!(matches!(
        keybag.unlock_with_kek(&wrong),
        Err(KeybagError::WrongPassword)
    ));
}

#[test]
fn synthetic_ios26_sample_unlocks_and_its_blobs_have_their_sizes() {
    let sample = synthetic_sample();
    let keybag = Keybag::parse(&manifest_plist(&sample).keybag).expect("sample keybag parses");
    assert_eq!(
        keybag.kdf.sha1.iterations, 1000,
        "ITER per the sample's README"
    );
    assert_eq!(
        keybag.kdf.sha256.as_ref().map(|s| s.iterations),
        Some(1000),
        "DPIC per the sample's README"
    );
    let (keys, rows) = open_encrypted(&sample, "test-password-1234").expect("sample unlocks");
    let mut sizes: Vec<u64> = rows
        .iter()
        .filter(|r| r.flags == 1)
        .filter_map(|r| r.size)
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [4, 32, 316, 768]);
    assert_eq!(rows.iter().filter(|r| r.flags == 2).count(), 1);
    assert_eq!(decrypt_all_blobs(&sample, &keys, &rows).len(), 4);
}

#[test]
fn synthetic_ios26_sample_rejects_a_wrong_password() {
    assert!(matches!(
        open_encrypted(&synthetic_sample(), "test-password-1235"),
        Err(KeybagError::WrongPassword)
    ));
}

#[test]
fn truncated_and_corrupted_blobs_are_typed_errors() {
    let sample = synthetic_sample();
    let (keys, rows) = open_encrypted(&sample, "test-password-1234").unwrap();
    let row = rows
        .iter()
        .find(|r| r.size == Some(768))
        .expect("the 768-byte file");
    let key = keys
        .unwrap_key(row.encryption_key.as_deref().unwrap())
        .unwrap();
    let blob = fs::read(blob_path(&sample, row)).unwrap();
    assert_eq!(blob.len(), 784);

    // Cut mid-block: no block boundary can be trusted.
    assert!(matches!(
        check_blob(&blob[..783], &key),
        Err(CryptoError::NotBlockAligned { len: 783 })
    ));
    assert!(matches!(
        decrypt_to_vec(&key, &blob[..700]),
        Err(CryptoError::NotBlockAligned { len: 700 })
    ));
    assert!(matches!(
        check_blob(&blob[..0], &key),
        Err(CryptoError::Empty)
    ));

    // Cut at a block boundary: the padding block is gone, so the last block is file data.
    let check = check_blob(&blob[..768], &key).unwrap();
    assert!(!check.matches_size(768), "{check:?}");

    // A damaged byte in the second-to-last block garbles the padding block.
    let mut damaged = blob.clone();
    damaged[784 - 17] ^= 0x5A;
    let check = check_blob(&damaged[..], &key).unwrap();
    assert!(!check.padding_valid(), "{check:?}");
    assert!(matches!(
        decrypt_to_vec(&key, &damaged),
        Err(CryptoError::BadPadding)
    ));

    // Decrypting with another file's key is caught the same way, or gives the wrong size.
    let other = rows.iter().find(|r| r.size == Some(316)).unwrap();
    let other_key = keys
        .unwrap_key(other.encryption_key.as_deref().unwrap())
        .unwrap();
    assert!(!check_blob(&blob[..], &other_key).unwrap().matches_size(768));
}

#[test]
fn damaged_manifest_key_and_keybag_are_typed_errors() {
    let plist = manifest_plist(&synthetic_sample());
    let keys = Keybag::parse(&plist.keybag)
        .unwrap()
        .unlock(&Password::from("test-password-1234"))
        .unwrap();
    let mut manifest_key = plist.manifest_key.clone();
    manifest_key[10] ^= 1;
    assert!(matches!(
        keys.unwrap_key(&manifest_key),
        Err(KeybagError::DamagedFileKey { class: 4 })
    ));
    assert!(matches!(
        keys.unwrap_key(&manifest_key[..40]),
        Err(KeybagError::BadWrappedKeyLength { found: 40 })
    ));
    check_every_cut(&plist.keybag);
}

/// (start, tag, end) of each TLV record of a keybag, read here on its own: 4-byte tag, 4-byte
/// big-endian length, value.
fn keybag_records(bytes: &[u8]) -> Vec<(usize, [u8; 4], usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let tag: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        let len = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((at, tag, at + 8 + len));
        at += 8 + len;
    }
    assert_eq!(at, bytes.len(), "the test keybag is whole");
    out
}

/// Every cut of a whole keybag: inside a record it is `Truncated` at that record's start with
/// the bytes left; at a record boundary it parses exactly when SALT and ITER (and DPSL with
/// DPIC, or neither) are in, holding the class records whose key is in, else it names a
/// missing record. Never a panic, never a cut record accepted.
fn check_every_cut(bytes: &[u8]) {
    let whole = Keybag::parse(bytes).expect("the whole keybag parses");
    let records = keybag_records(bytes);
    let mut parsed = 0;
    for len in 0..=bytes.len() {
        let ended = |tag: &[u8; 4]| records.iter().filter(|r| &r.1 == tag && r.2 <= len).count();
        let start = records
            .iter()
            .map(|r| r.0)
            .chain([bytes.len()])
            .filter(|&s| s <= len)
            .max()
            .unwrap();
        let result = Keybag::parse(&bytes[..len]);
        if start != len {
            match result {
                Err(KeybagError::Truncated {
                    offset,
                    needed,
                    available,
                }) => {
                    assert_eq!((offset, available), (start, len - start), "cut at {len}");
                    assert!(needed > available as u64, "cut at {len}: {needed}");
                }
                other => panic!("a cut inside a record at {len} gave {other:?}"),
            }
            continue;
        }
        let complete = ended(b"SALT") > 0
            && ended(b"ITER") > 0
            && (ended(b"DPSL") > 0) == (ended(b"DPIC") > 0);
        match result {
            Ok(keybag) => {
                assert!(complete, "cut at {len} accepted without its KDF records");
                assert_eq!(keybag.kdf.sha1, whole.kdf.sha1, "cut at {len}");
                if ended(b"DPIC") > 0 {
                    assert_eq!(keybag.kdf.sha256, whole.kdf.sha256, "cut at {len}");
                }
                assert_eq!(keybag.classes.len(), ended(b"WPKY"), "cut at {len}");
                for (got, want) in keybag.classes.iter().zip(&whole.classes) {
                    assert_eq!(
                        (got.class, got.wrap, &got.wrapped_key),
                        (want.class, want.wrap, &want.wrapped_key),
                        "cut at {len}"
                    );
                }
                parsed += 1;
            }
            Err(KeybagError::Missing { tag }) => {
                assert!(!complete, "cut at {len}: {tag} reported missing");
                assert_eq!(ended(tag.as_bytes().try_into().unwrap()), 0, "cut at {len}");
            }
            Err(other) => panic!("a cut at the record boundary {len} gave {other}"),
        }
    }
    assert!(parsed > whole.classes.len(), "{parsed} cuts parsed");
}
