//! The files the phone writes about a backup, as Finder keeps them: Manifest.db (SQLite, a
//! `Files` row per folder and file with its NSKeyedArchiver MBFile record), Manifest.plist
//! (Lockdown values, apps, and for an encrypted backup the keybag and ManifestKey) and
//! Status.plist (SnapshotState, a fresh UUID per backup). Also the reverse the phone needs for
//! an incremental backup: reading the computer's copy of Manifest.db back.

use std::collections::HashMap;
use std::time::SystemTime;

use plist::{Dictionary, Uid, Value};

use super::content::{Content, Entry, Kind};
use super::keys::Keys;
use crate::profile::Profile;

fn int(n: i64) -> Value {
    Value::Integer(n.into())
}

fn binary(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing a plist into memory cannot fail for these values.
    let _ = value.to_writer_binary(&mut out);
    out
}

/// One row's MBFile record as the phone archives it, with the file's wrapped key when the
/// backup is encrypted.
pub fn mbfile(entry: &Entry, keys: Option<&Keys>) -> Vec<u8> {
    let mut root = Dictionary::new();
    let (mode, size) = match entry.kind {
        Kind::Directory => (0o040755, 0),
        Kind::File { size, .. } => (0o100644, size),
    };
    let modified = entry.modified();
    root.insert("Mode".into(), int(mode));
    root.insert("UserID".into(), int(501));
    root.insert("GroupID".into(), int(501));
    root.insert("InodeNumber".into(), int(entry.inode as i64));
    root.insert("Size".into(), int(size as i64));
    root.insert("LastModified".into(), int(modified));
    root.insert("LastStatusChange".into(), int(modified));
    root.insert("Birth".into(), int(modified - 86_400 * 30));
    root.insert(
        "ProtectionClass".into(),
        int(i64::from(entry.protection_class)),
    );
    root.insert("Flags".into(), int(0));
    root.insert("RelativePath".into(), Value::Uid(Uid::new(2)));
    let mut objects = vec![
        Value::String("$null".into()),
        Value::Boolean(false),
        Value::String(entry.relative_path.clone()),
    ];
    if let (Some(keys), true) = (keys, entry.is_file()) {
        let key = keys.file_key(&entry.file_id(), entry.version);
        let wrapped = keys.protect(entry.protection_class, &key);
        let mut data = Dictionary::new();
        data.insert("NS.data".into(), Value::Data(wrapped));
        data.insert(
            "$class".into(),
            Value::Uid(Uid::new(objects.len() as u64 + 1)),
        );
        root.insert(
            "EncryptionKey".into(),
            Value::Uid(Uid::new(objects.len() as u64)),
        );
        objects.push(Value::Dictionary(data));
        let mut class = Dictionary::new();
        class.insert("$classname".into(), "NSMutableData".into());
        class.insert(
            "$classes".into(),
            Value::Array(vec![
                "NSMutableData".into(),
                "NSData".into(),
                "NSObject".into(),
            ]),
        );
        objects.push(Value::Dictionary(class));
    }
    let mut class = Dictionary::new();
    class.insert("$classname".into(), "MBFile".into());
    class.insert(
        "$classes".into(),
        Value::Array(vec!["MBFile".into(), "NSObject".into()]),
    );
    root.insert("$class".into(), Value::Uid(Uid::new(objects.len() as u64)));
    objects.push(Value::Dictionary(class));
    objects[1] = Value::Dictionary(root);
    let mut top = Dictionary::new();
    top.insert("root".into(), Value::Uid(Uid::new(1)));
    let mut archive = Dictionary::new();
    archive.insert("$version".into(), int(100_000));
    archive.insert("$archiver".into(), "NSKeyedArchiver".into());
    archive.insert("$top".into(), Value::Dictionary(top));
    archive.insert("$objects".into(), Value::Array(objects));
    binary(&Value::Dictionary(archive))
}

/// The `Files` table's flags: 1 a file, 2 a folder.
fn flags(entry: &Entry) -> i64 {
    if entry.is_file() {
        1
    } else {
        2
    }
}

/// Manifest.db for `content` (plain SQLite; the caller encrypts it for an encrypted backup).
pub fn manifest_db(content: &Content, keys: Option<&Keys>) -> Result<Vec<u8>, String> {
    let db = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
    let build = || -> rusqlite::Result<Vec<u8>> {
        db.execute_batch(
            "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT,
                                 flags INTEGER, file BLOB);
             CREATE INDEX FilesDomainIdx ON Files(domain);
             CREATE INDEX FilesRelativePathIdx ON Files(relativePath);
             CREATE INDEX FilesFlagsIdx ON Files(flags);
             CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);
             BEGIN;",
        )?;
        {
            let mut insert = db.prepare("INSERT INTO Files VALUES (?1, ?2, ?3, ?4, ?5)")?;
            for entry in &content.entries {
                insert.execute(rusqlite::params![
                    entry.file_id(),
                    entry.domain,
                    entry.relative_path,
                    flags(entry),
                    mbfile(entry, keys)
                ])?;
            }
        }
        db.execute_batch("COMMIT;")?;
        Ok(db.serialize(rusqlite::DatabaseName::Main)?.to_vec())
    };
    build().map_err(|e| format!("building Manifest.db: {e}"))
}

/// The rows of a Manifest.db the computer sent back: fileID -> (flags, record bytes).
pub fn read_manifest_db(bytes: &[u8]) -> Result<HashMap<String, (i64, Vec<u8>)>, String> {
    if !bytes.starts_with(b"SQLite format 3\0") {
        return Err("not an SQLite database".into());
    }
    let mut db = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
    deserialize(&mut db, bytes).map_err(|e| format!("opening Manifest.db: {e}"))?;
    let mut rows = HashMap::new();
    let mut query = db
        .prepare("SELECT fileID, flags, file FROM Files")
        .map_err(|e| format!("reading Manifest.db: {e}"))?;
    let mapped = query
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<Vec<u8>>>(2)?.unwrap_or_default(),
            ))
        })
        .map_err(|e| format!("reading Manifest.db: {e}"))?;
    for row in mapped {
        let (id, flags, record) = row.map_err(|e| format!("reading Manifest.db: {e}"))?;
        rows.insert(id, (flags, record));
    }
    Ok(rows)
}

/// Loads `bytes` as the main database of `db` (a copy SQLite owns).
fn deserialize(db: &mut rusqlite::Connection, bytes: &[u8]) -> rusqlite::Result<()> {
    use rusqlite::serialize::OwnedData;
    let size = bytes.len();
    // SQLite frees what it owns with sqlite3_free, so the copy is made with sqlite3_malloc64.
    let raw = unsafe { rusqlite::ffi::sqlite3_malloc64(size.max(1) as u64) } as *mut u8;
    let Some(pointer) = std::ptr::NonNull::new(raw) else {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOMEM),
            None,
        ));
    };
    // SAFETY: `pointer` is a fresh allocation of at least `size` bytes; OwnedData takes it
    // over and SQLite frees it with sqlite3_free.
    let data = unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), pointer.as_ptr(), size);
        OwnedData::from_raw_nonnull(pointer, size)
    };
    db.deserialize(rusqlite::DatabaseName::Main, data, true)
}

fn date(unix: SystemTime) -> Value {
    Value::Date(unix.into())
}

/// Manifest.plist for a backup of `profile`'s phone.
pub fn manifest_plist(profile: &Profile, keys: Option<&Keys>, now: SystemTime) -> Vec<u8> {
    let mut lockdown = Dictionary::new();
    lockdown.insert("ProductVersion".into(), profile.ios_version.clone().into());
    lockdown.insert("ProductType".into(), profile.product_type.clone().into());
    lockdown.insert("BuildVersion".into(), profile.build_version.clone().into());
    lockdown.insert("DeviceName".into(), profile.name.clone().into());
    lockdown.insert("UniqueDeviceID".into(), profile.udid.clone().into());
    lockdown.insert("SerialNumber".into(), profile.serial_number.clone().into());
    let mut apps = Dictionary::new();
    for app in &profile.apps {
        let mut info = Dictionary::new();
        info.insert("CFBundleIdentifier".into(), app.bundle_id.clone().into());
        info.insert("CFBundleVersion".into(), app.version.clone().into());
        info.insert("ContainerContentClass".into(), "Data/Application".into());
        apps.insert(app.bundle_id.clone(), Value::Dictionary(info));
    }
    let mut manifest = Dictionary::new();
    manifest.insert("Version".into(), "10.0".into());
    manifest.insert("SystemDomainsVersion".into(), "24.0".into());
    manifest.insert("Date".into(), date(now));
    manifest.insert("IsEncrypted".into(), keys.is_some().into());
    manifest.insert("WasPasscodeSet".into(), profile.password_protected.into());
    manifest.insert("Lockdown".into(), Value::Dictionary(lockdown));
    manifest.insert("Applications".into(), Value::Dictionary(apps));
    if let Some(keys) = keys {
        manifest.insert("BackupKeyBag".into(), Value::Data(keys.keybag().to_vec()));
        manifest.insert(
            "ManifestKey".into(),
            Value::Data(keys.protected_manifest_key()),
        );
    }
    binary(&Value::Dictionary(manifest))
}

/// Status.plist: `state` is `finished` only once everything is in place.
pub fn status_plist(uuid: &str, full: bool, state: &str, now: SystemTime) -> Vec<u8> {
    let mut status = Dictionary::new();
    status.insert("Version".into(), "3.3".into());
    status.insert("UUID".into(), uuid.into());
    status.insert("Date".into(), date(now));
    status.insert("BackupState".into(), "new".into());
    status.insert("IsFullBackup".into(), full.into());
    status.insert("SnapshotState".into(), state.into());
    binary(&Value::Dictionary(status))
}
