//! iOS 5-9 backups for tests: a backup from the test writers rewritten with a Manifest.mbdb and
//! its blobs flat in the root. Its rows become big-endian mbdb records (written here, from the
//! format notes). Reading an encrypted writer's Manifest.db back uses ibackup's decryption,
//! which the interop tests check against an independent implementation.

use std::fs;
use std::path::Path;

use ibackup::backup::{crypto, keybag, mbfile};
use rusqlite::Connection;

pub fn mbdb_string(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s);
        }
        None => out.extend_from_slice(&[0xFF, 0xFF]),
    }
}

/// One Manifest.mbdb record, all big-endian.
pub fn mbdb_record(domain: &str, path: &str, mode: u16, size: u64, key: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    mbdb_string(&mut out, Some(domain.as_bytes()));
    mbdb_string(&mut out, Some(path.as_bytes()));
    mbdb_string(&mut out, None);
    mbdb_string(&mut out, None);
    mbdb_string(&mut out, key);
    out.extend_from_slice(&mode.to_be_bytes());
    out.extend_from_slice(&42u64.to_be_bytes());
    out.extend_from_slice(&501u32.to_be_bytes());
    out.extend_from_slice(&501u32.to_be_bytes());
    for time in [1_420_000_000u32; 3] {
        out.extend_from_slice(&time.to_be_bytes());
    }
    out.extend_from_slice(&size.to_be_bytes());
    out.push(3);
    out.push(0);
    out
}

/// The plaintext Manifest.db of `backup`, decrypted with `password` when given.
pub fn manifest_db_bytes(backup: &Path, password: Option<&str>) -> Vec<u8> {
    let bytes = fs::read(backup.join("Manifest.db")).unwrap();
    let Some(password) = password else {
        return bytes;
    };
    let plist = plist::Value::from_file(backup.join("Manifest.plist")).unwrap();
    let dict = plist.as_dictionary().unwrap();
    let bag = dict["BackupKeyBag"].as_data().unwrap();
    let manifest_key = dict["ManifestKey"].as_data().unwrap();
    let keys = keybag::Keybag::parse(bag)
        .unwrap()
        .unlock(&keybag::Password::from(password))
        .unwrap();
    let key = keys.unwrap_key(manifest_key).unwrap();
    crypto::decrypt_to_vec(&key, &bytes).unwrap().to_vec()
}

/// Rewrites a Manifest.db backup as an iOS 5-9 one: Manifest.mbdb, blobs flat in the root.
pub fn to_legacy(backup: &Path, password: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let db_path = scratch.path().join("plain.db");
    fs::write(&db_path, manifest_db_bytes(backup, password)).unwrap();
    let conn = Connection::open(&db_path).unwrap();
    let mut stmt = conn
        .prepare("SELECT fileID, domain, relativePath, file FROM Files ORDER BY rowid")
        .unwrap();
    let rows: Vec<(String, String, String, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut mbdb = b"mbdb\x05\x00".to_vec();
    for (file_id, domain, path, record) in rows {
        let file = mbfile::decode(&record).unwrap();
        let mode = file.mode.unwrap() as u16;
        mbdb.extend(mbdb_record(
            &domain,
            &path,
            mode,
            file.size.unwrap_or(0),
            file.encryption_key,
        ));
        let nested = backup.join(&file_id[..2]).join(&file_id);
        if nested.is_file() {
            fs::rename(&nested, backup.join(&file_id)).unwrap();
        }
    }
    fs::write(backup.join("Manifest.mbdb"), mbdb).unwrap();
    fs::remove_file(backup.join("Manifest.db")).unwrap();
    for entry in fs::read_dir(backup).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() && entry.file_name().len() == 2 {
            fs::remove_dir_all(entry.path()).unwrap();
        }
    }
}
