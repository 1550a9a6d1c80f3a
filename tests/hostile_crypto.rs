//! Encrypted backups built to exhaust ibackup (issue 12): a multi-gigabyte encrypted Manifest.db,
//! a multi-gigabyte key-database blob under `--deep`, a key-database blob that is a symlink, and
//! keybags that ask for billions of key-derivation iterations. Each must get a clear answer, with
//! one exit code, in seconds and in bounded memory, whatever the sizes on disk. The big files are
//! sparse, so the tests cost no disk.
//!
//! Each run is measured (support::Measure: peak resident memory from wait4) with its address
//! space capped, as `ulimit -v` would, so that a regression fails here at once instead of taking
//! gigabytes from the machine.

#![cfg(unix)]

mod support;
mod support_encrypt;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ibackup::backup::crypto::{decrypt_to_vec, expected_encrypted_len};
use ibackup::backup::keybag::{Keybag, Password};
use plist::Value;
use support::{blob_of, tree_sizes_and_times, Ibackup, Measure, Measured, TIME_LIMIT};

const PASSWORD: &str = "hostile pässword";
/// Address space given to one run: well above what a sound run maps, well below what reading a
/// multi-gigabyte file into memory would need.
const ADDRESS_SPACE_LIMIT: u64 = 3 << 30;

/// Runs ibackup with `--password-file`, its address space capped, killed past twice the time
/// limit, and checks the limits every run must keep and the one exit code expected.
fn check(what: &str, args: &[&str], password_file: &Path, code: i32) -> Measured {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--password-file", password_file.to_str().unwrap()]);
    let r = Measure::new(Ibackup::offline(&all).command())
        .address_space(ADDRESS_SPACE_LIMIT)
        .kill_after(TIME_LIMIT * 2)
        .run();
    r.assert_exit(code, TIME_LIMIT, what);
    r
}

struct Fixture {
    dir: tempfile::TempDir,
    backup: PathBuf,
    password_file: PathBuf,
}

impl Fixture {
    fn path(&self) -> &str {
        self.backup.to_str().unwrap()
    }
}

/// An encrypted backup written by the test-support encryptor, with a Messages database
/// (a real, small SQLite file) among its files.
fn encrypted_backup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-HOSTILECRYPTO");
    fs::create_dir_all(&backup).unwrap();
    let sms = small_database(dir.path());
    support_encrypt::write_encrypted_backup_with(&backup, PASSWORD.as_bytes(), 10, 10, |rng| {
        vec![
            ("HomeDomain", "", 2, vec![], 0, None),
            ("HomeDomain", "Library/note", 1, rng.vec(100), 3, None),
            ("HomeDomain", "Library/SMS/sms.db", 1, sms, 3, None),
        ]
    });
    let password_file = dir.path().join("password.txt");
    fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    Fixture {
        dir,
        backup,
        password_file,
    }
}

fn small_database(scratch: &Path) -> Vec<u8> {
    let path = scratch.join("sms-plain.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE message (ROWID INTEGER PRIMARY KEY, text TEXT);
         INSERT INTO message (text) VALUES ('hello'), ('world');",
    )
    .unwrap();
    drop(conn);
    let bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    bytes
}

/// Makes `path` a sparse file of `len` bytes, keeping what it holds at the front.
fn extend_sparse(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn manifest_plist(backup: &Path) -> plist::Dictionary {
    Value::from_file(backup.join("Manifest.plist"))
        .unwrap()
        .into_dictionary()
        .unwrap()
}

/// Rewrites the record of `relative_path` in the encrypted Manifest.db so that it states `size`,
/// or no size at all (decrypted and encrypted again with the backup's own ManifestKey).
fn set_recorded_size(fixture: &Fixture, relative_path: &str, size: Option<u64>) {
    let plist = manifest_plist(&fixture.backup);
    let keybag = Keybag::parse(plist["BackupKeyBag"].as_data().unwrap()).unwrap();
    let keys = keybag.unlock(&Password::from(PASSWORD)).unwrap();
    let key = keys
        .unwrap_key(plist["ManifestKey"].as_data().unwrap())
        .unwrap();
    let db_path = fixture.backup.join("Manifest.db");
    let plain = decrypt_to_vec(&key, &fs::read(&db_path).unwrap()).unwrap();
    let scratch = fixture.dir.path().join("Manifest-plain.db");
    fs::write(&scratch, &plain[..]).unwrap();
    let conn = rusqlite::Connection::open(&scratch).unwrap();
    let record: Vec<u8> = conn
        .query_row(
            "SELECT file FROM Files WHERE relativePath = ?1",
            [relative_path],
            |row| row.get(0),
        )
        .unwrap();
    let mut archive = Value::from_reader(std::io::Cursor::new(record))
        .unwrap()
        .into_dictionary()
        .unwrap();
    let objects = archive
        .get_mut("$objects")
        .and_then(Value::as_array_mut)
        .unwrap();
    let fields = objects[1].as_dictionary_mut().unwrap();
    match size {
        Some(size) => fields.insert("Size".into(), Value::Integer(size.into())),
        None => fields.remove("Size"),
    };
    let mut record = Vec::new();
    Value::Dictionary(archive)
        .to_writer_binary(&mut record)
        .unwrap();
    conn.execute(
        "UPDATE Files SET file = ?1 WHERE relativePath = ?2",
        rusqlite::params![record, relative_path],
    )
    .unwrap();
    drop(conn);
    let plain = fs::read(&scratch).unwrap();
    fs::remove_file(&scratch).unwrap();
    fs::write(&db_path, support_encrypt::encrypt(key.as_bytes(), &plain)).unwrap();
}

/// Replaces one 4-byte number of the keybag in Manifest.plist (the first record tagged `tag`).
fn set_keybag_number(backup: &Path, tag: &[u8; 4], value: u32) {
    let mut plist = manifest_plist(backup);
    let mut bag = plist["BackupKeyBag"].as_data().unwrap().to_vec();
    let mut header = tag.to_vec();
    header.extend_from_slice(&4u32.to_be_bytes());
    let at = bag
        .windows(8)
        .position(|w| w == &header[..])
        .unwrap_or_else(|| panic!("no {} record", String::from_utf8_lossy(tag)))
        + 8;
    bag[at..at + 4].copy_from_slice(&value.to_be_bytes());
    plist.insert("BackupKeyBag".into(), Value::Data(bag));
    Value::Dictionary(plist)
        .to_file_binary(backup.join("Manifest.plist"))
        .unwrap();
}

// ---- an encrypted Manifest.db of gigabytes --------------------------------------------

#[test]
fn a_4_gib_encrypted_manifest_of_nothing_is_refused_quickly_in_bounded_memory() {
    let fixture = encrypted_backup();
    let db = fixture.backup.join("Manifest.db");
    fs::remove_file(&db).unwrap();
    fs::File::create(&db).unwrap();
    extend_sparse(&db, 4 << 30);
    let before = tree_sizes_and_times(&fixture.backup);
    let r = check(
        "4 GiB of zeros as Manifest.db",
        &["verify", fixture.path()],
        &fixture.password_file,
        2,
    );
    assert!(r.stderr.contains("cannot be decrypted"), "{}", r.stderr);
    check(
        "inspect, 4 GiB of zeros as Manifest.db",
        &["inspect", fixture.path()],
        &fixture.password_file,
        2,
    );
    assert_eq!(tree_sizes_and_times(&fixture.backup), before);
}

#[test]
fn a_4_gib_encrypted_manifest_holding_a_real_database_is_read_in_bounded_memory() {
    // The sound ciphertext stays in front; what follows it decrypts to noise that the database
    // (whose header states its own length) never reads.
    let fixture = encrypted_backup();
    extend_sparse(&fixture.backup.join("Manifest.db"), 4 << 30);
    let r = check(
        "a real Manifest.db in 4 GiB",
        &["verify", fixture.path(), "--json"],
        &fixture.password_file,
        0,
    );
    let report = r.json();
    assert_eq!(report["files"]["listed"], 2, "{report:#}");
    assert_eq!(report["files"]["present"], 2, "{report:#}");
    check(
        "inspect, a real Manifest.db in 4 GiB",
        &["inspect", fixture.path()],
        &fixture.password_file,
        0,
    );
}

#[test]
fn an_encrypted_manifest_past_the_ceiling_is_refused_by_its_size() {
    let fixture = encrypted_backup();
    let db = fixture.backup.join("Manifest.db");
    let len: u64 = (16 << 30) + 16;
    extend_sparse(&db, len);
    let r = check(
        "Manifest.db past the ceiling",
        &["verify", fixture.path()],
        &fixture.password_file,
        2,
    );
    assert!(
        r.stderr.contains(&len.to_string()) && r.stderr.contains(&(16u64 << 30).to_string()),
        "the message names the size and the ceiling: {}",
        r.stderr
    );
}

#[test]
fn an_encrypted_manifest_that_is_a_symlink_is_not_followed() {
    let fixture = encrypted_backup();
    let db = fixture.backup.join("Manifest.db");
    let outside = fixture.dir.path().join("elsewhere.db");
    fs::rename(&db, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &db).unwrap();
    let r = check(
        "Manifest.db as a symlink",
        &["verify", fixture.path()],
        &fixture.password_file,
        2,
    );
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
}

// ---- --deep and the key databases ------------------------------------------------------

#[test]
fn a_2_gb_sparse_key_database_blob_gets_a_clear_answer_in_bounded_memory() {
    // Its record states no size, so the blob is not among those `--deep` decrypts whole first
    // (2 GB of AES takes a second optimised, over a minute in a debug build): what is measured
    // is the key-database check alone, which used to read the blob into memory twice.
    let fixture = encrypted_backup();
    set_recorded_size(&fixture, "Library/SMS/sms.db", None);
    extend_sparse(
        &blob_of(&fixture.backup, "HomeDomain", "Library/SMS/sms.db"),
        expected_encrypted_len(2_000_000_000),
    );
    let r = check(
        "a 2 GB key database",
        &["verify", fixture.path(), "--deep", "--json"],
        &fixture.password_file,
        1,
    );
    let report = r.json();
    let databases = report["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 1, "{report:#}");
    assert_eq!(databases[0]["name"], "Messages");
    assert!(
        databases[0]["result"].as_str().unwrap().contains("padding"),
        "{report:#}"
    );
}

#[test]
fn a_key_database_blob_that_is_a_symlink_is_not_read_through_the_link() {
    let fixture = encrypted_backup();
    let sms = blob_of(&fixture.backup, "HomeDomain", "Library/SMS/sms.db");
    let outside = fixture.dir.path().join("sms-elsewhere");
    fs::rename(&sms, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &sms).unwrap();
    let r = check(
        "sms.db blob as a symlink",
        &["verify", fixture.path(), "--deep", "--json"],
        &fixture.password_file,
        2,
    );
    let report = r.json();
    let checked_ok = report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["result"] == "ok");
    assert!(
        !checked_ok,
        "the database behind the link was opened: {report:#}"
    );
}

#[test]
fn a_sound_key_database_still_passes_quick_check() {
    let fixture = encrypted_backup();
    let r = check(
        "sound backup, --deep",
        &["verify", fixture.path(), "--deep", "--json"],
        &fixture.password_file,
        0,
    );
    let report = r.json();
    assert_eq!(report["databases"][0]["name"], "Messages", "{report:#}");
    assert_eq!(report["databases"][0]["result"], "ok", "{report:#}");
}

// ---- keybag iteration counts -----------------------------------------------------------

#[test]
fn keybags_asking_for_billions_of_iterations_are_refused_at_once() {
    for (tag, ceiling) in [(b"DPIC", 1_000_000_000u64), (b"ITER", 1_000_000)] {
        let fixture = encrypted_backup();
        set_keybag_number(&fixture.backup, tag, u32::MAX);
        let what = format!("{} = 0xFFFFFFFF", String::from_utf8_lossy(tag));
        let r = check(
            &what,
            &["verify", fixture.path()],
            &fixture.password_file,
            2,
        );
        assert!(
            r.elapsed < Duration::from_secs(2),
            "{what}: {:?}",
            r.elapsed
        );
        let text = r.stderr.replace(',', "");
        assert!(
            text.contains(&u32::MAX.to_string()) && text.contains(&ceiling.to_string()),
            "{what}: the message names the count and the ceiling: {}",
            r.stderr
        );
    }
}
