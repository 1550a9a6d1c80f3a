//! Manifest.db as an attack surface (issue 12): a Manifest.db that is a special file or a link,
//! a `Files` that is a view, a virtual table or has generated columns, values far larger than
//! any real backup holds, and rows that live only in Manifest.db-wal. Each must get a clear
//! answer (one exact exit code and words naming what is wrong) within seconds and in bounded
//! memory, and the folder must be left as it was.

#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use support::{mkfifo, Ibackup, Measure, TIME_LIMIT};

/// `verify BACKUP` (no phone, killed at twice the time limit) answers `code` in time and memory,
/// with all of `words` in what it printed; returns that.
fn assert_answer(backup: &Path, code: i32, words: &[&str]) -> String {
    let run = Measure::new(Ibackup::offline(["verify", backup.to_str().unwrap()]).command())
        .kill_after(TIME_LIMIT * 2)
        .run();
    let what = format!("verify {}", backup.display());
    run.assert_exit(code, TIME_LIMIT, &what);
    let out = run.all();
    for word in words {
        assert!(out.contains(word), "{what}: {word:?} not in:\n{out}");
    }
    out
}

/// A sound backup in a fresh folder.
fn backup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-000A1B2C3D4E5F60");
    support::write_backup(&backup, &support::Spec::default());
    (dir, backup)
}

/// Replaces the backup's Manifest.db by a fresh database built by `sql`.
fn replace_manifest(backup: &Path, sql: &str) {
    let db = backup.join("Manifest.db");
    std::fs::remove_file(&db).unwrap();
    Connection::open(&db).unwrap().execute_batch(sql).unwrap();
}

#[test]
fn a_manifest_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let (_dir, backup) = backup();
    let db = backup.join("Manifest.db");
    std::fs::remove_file(&db).unwrap();
    mkfifo(&db);
    assert_answer(&backup, 2, &["Manifest.db", "FIFO"]);
    std::fs::remove_file(&db).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &db).unwrap();
    assert_answer(&backup, 2, &["Manifest.db", "symbolic link"]);
}

#[test]
fn a_manifest_that_links_to_a_database_outside_the_backup_is_not_followed() {
    let (dir, backup) = backup();
    let db = backup.join("Manifest.db");
    let outside = dir.path().join("elsewhere.db");
    std::fs::rename(&db, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &db).unwrap();
    assert_answer(&backup, 2, &["Manifest.db", "symbolic link"]);
}

/// Files as a view, a virtual table or with a generated column: refused before any row is read.
#[test]
fn a_files_that_is_not_a_plain_table_is_refused_at_once() {
    let cases = [
        (
            "CREATE VIEW Files AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
             SELECT i AS rowid, hex(i) AS fileID, 'HomeDomain' AS domain, 'a' AS relativePath, 1 AS flags,
                    NULL AS file FROM n",
            "a view",
        ),
        (
            "CREATE TABLE t (x);
             INSERT INTO t VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10);
             CREATE VIEW Files AS SELECT a.rowid AS rowid, hex(a.x) AS fileID, 'D' AS domain, 'p' AS relativePath,
                    1 AS flags, NULL AS file
             FROM t a, t b, t c, t d, t e, t f, t g, t h, t i, t j, t k, t l",
            "a view",
        ),
        (
            "CREATE VIEW Files AS SELECT 1 AS rowid, 'ab' AS fileID, 'D' AS domain, 'p' AS relativePath,
                    1 AS flags, zeroblob(1000000000) AS file",
            "a view",
        ),
        (
            "CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT, flags INTEGER,
                    file BLOB GENERATED ALWAYS AS (zeroblob(1000000000)) VIRTUAL);
             INSERT INTO Files (fileID, domain, relativePath, flags) VALUES ('ab', 'D', 'p', 1);",
            "generated",
        ),
        (
            "CREATE VIRTUAL TABLE Files USING fts5(fileID, domain, relativePath, flags, file);
             INSERT INTO Files VALUES ('ab', 'D', 'p', 1, NULL);",
            "virtual table",
        ),
    ];
    for (sql, words) in cases {
        let (_dir, backup) = backup();
        replace_manifest(&backup, sql);
        let before = support::tree_fingerprint(&backup);
        assert_answer(&backup, 2, &["Manifest.db", words]);
        assert_eq!(support::tree_fingerprint(&backup), before, "{sql}");
    }
}

#[test]
fn a_huge_relative_path_is_refused_naming_its_row_without_reading_it() {
    let (_dir, backup) = backup();
    let db = backup.join("Manifest.db");
    let rowid: i64 = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT rowid FROM Files WHERE flags = 1 ORDER BY rowid LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Written by another process: what this one holds counts in the ru_maxrss of the runs it
    // measures (tests/support/measured.rs), and it must stay small for the measure to mean
    // anything.
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1])\n\
                  c.execute(\"UPDATE Files SET relativePath = printf('%.*c', 300000000, 'a') \
                  WHERE rowid = ?\", (int(sys.argv[2]),))\n\
                  c.commit()\n";
    let status = std::process::Command::new("python3")
        .args(["-c", script, db.to_str().unwrap(), &rowid.to_string()])
        .status()
        .expect("python3 writes the 300 MB path");
    assert!(status.success());
    assert!(std::fs::metadata(&db).unwrap().len() > 300_000_000);
    let out = assert_answer(&backup, 2, &["Manifest.db", "relativePath", "300,000,000"]);
    assert!(out.contains(&format!("row {rowid}")), "{out}");
}

#[test]
fn a_long_path_within_real_limits_is_read() {
    let (_dir, backup) = backup();
    let conn = Connection::open(backup.join("Manifest.db")).unwrap();
    conn.execute(
        "INSERT INTO Files VALUES ('0000000000000000000000000000000000000000', 'HomeDomain',
                 printf('%.*c', 1024, 'a'), 2, NULL)",
        [],
    )
    .unwrap();
    drop(conn);
    assert_answer(&backup, 0, &[]);
}

/// A Manifest.db in WAL mode whose rows were never checkpointed into it: they are only in
/// Manifest.db-wal, which ibackup does not merge (that would write beside the backup).
#[test]
fn rows_that_live_only_in_the_wal_get_a_clear_answer() {
    for table_in_main in [false, true] {
        let (dir, backup) = backup();
        let db = backup.join("Manifest.db");
        // Written elsewhere, copied while the writer still holds it open (so nothing is
        // checkpointed), as a copy of a backup being written would be.
        let work = dir.path().join("work.db");
        let conn = Connection::open(&work).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT,
                                 flags INTEGER, file BLOB);",
        )
        .unwrap();
        if table_in_main {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
        conn.execute("ATTACH DATABASE ?1 AS sound", [db.to_str().unwrap()])
            .unwrap();
        conn.execute_batch("INSERT INTO main.Files SELECT * FROM sound.Files; DETACH sound;")
            .unwrap();
        std::fs::copy(&work, &db).unwrap();
        std::fs::copy(
            dir.path().join("work.db-wal"),
            backup.join("Manifest.db-wal"),
        )
        .unwrap();
        drop(conn);
        let before = support::tree_fingerprint(&backup);
        assert_answer(&backup, 2, &["Manifest.db-wal", "sqlite3"]);
        assert_eq!(support::tree_fingerprint(&backup), before);
    }
}

#[test]
fn the_json_error_names_the_wal_case() {
    let (dir, backup) = backup();
    let work = dir.path().join("work.db");
    let conn = Connection::open(&work).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE Files (fileID TEXT, domain TEXT, relativePath TEXT, flags INTEGER,
                             file BLOB);",
    )
    .unwrap();
    std::fs::copy(&work, backup.join("Manifest.db")).unwrap();
    std::fs::copy(
        dir.path().join("work.db-wal"),
        backup.join("Manifest.db-wal"),
    )
    .unwrap();
    drop(conn);
    let run = Ibackup::offline(["verify", backup.to_str().unwrap(), "--json"]).run();
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    let value = run.json();
    assert_eq!(value["error"]["code"], "backup.manifest_in_wal", "{value}");
}
