//! Test support: the backup writer (writer.rs), the one way to run the `ibackup` binary
//! (run.rs), and to measure a run's time and memory (measured.rs), the simulated phone
//! (phone.rs), what the service tests share (services.rs), the files of a test's folders
//! (tree.rs), iOS 5-9 backups made from the writers' (legacy.rs), what the kernel saw done to a
//! tree during a run (watch.rs), a child run with a private view of the mounts (mounts.rs), and small helpers
//! for reading what a run printed.

#![allow(dead_code, unused_imports)]

mod legacy;
#[cfg(unix)]
mod measured;
#[cfg(target_os = "linux")]
mod mounts;
mod mtime;
mod phone;
mod run;
#[cfg(unix)]
mod services;
mod tree;
#[cfg(unix)]
mod unprivileged;
#[cfg(target_os = "linux")]
mod watch;
mod writer;

use std::fs;
use std::path::Path;
use std::process::Output;

pub use legacy::*;
#[cfg(unix)]
pub use measured::*;
#[cfg(target_os = "linux")]
pub use mounts::*;
pub use mtime::*;
pub use phone::*;
pub use run::*;
#[cfg(unix)]
pub use services::*;
pub use tree::*;
#[cfg(unix)]
pub use unprivileged::*;
#[cfg(target_os = "linux")]
pub use watch::*;
pub use writer::*;

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses a run's stdout as JSON, failing with both streams shown when it is not.
pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            stdout(out),
            stderr(out)
        )
    })
}

/// Fails when `text` (what a run printed) holds Rust debug text instead of plain words: a
/// `Name { field: ... }` or `Name(...)` shape, `kind: `, or an error's debug name.
pub fn assert_plain_words(text: &str, what: &str) {
    let bytes = text.as_bytes();
    for (i, window) in bytes.windows(2).enumerate() {
        // An upper-case word glued to "(" or followed by " {" is a type printed with {:?}.
        if !(window[1] == b'(' || (window[1] == b' ' && bytes.get(i + 2) == Some(&b'{'))) {
            continue;
        }
        let start = text[..=i]
            .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(0, |p| p + 1);
        let word = &text[start..=i];
        let camel = word.len() > 1
            && word.starts_with(|c: char| c.is_ascii_uppercase())
            && word.chars().skip(1).any(|c| c.is_ascii_lowercase());
        assert!(
            !(camel && word.chars().all(|c| c.is_ascii_alphanumeric())),
            "{what}: debug text `{word}…` in:\n{text}"
        );
    }
    // A debug name alone in brackets: "(UnexpectedEndOfEventStream)".
    for (open, _) in text.match_indices('(') {
        let inner = &text[open + 1..];
        let Some(close) = inner.find(')') else {
            continue;
        };
        let word = &inner[..close];
        let humps = word.chars().filter(char::is_ascii_uppercase).count();
        assert!(
            !(humps >= 2
                && word.starts_with(|c: char| c.is_ascii_uppercase())
                && word.chars().all(|c| c.is_ascii_alphanumeric())),
            "{what}: debug text `({word})` in:\n{text}"
        );
    }
    for needle in ["kind: ", "Error {", "Some(", "EventStream"] {
        assert!(
            !text.contains(needle),
            "{what}: debug text `{needle}` in:\n{text}"
        );
    }
}

/// Runs `ibackup ARGS --json` and parses stdout.
pub fn json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ibackup(&all);
    (out.status.code().unwrap_or(-1), json_of(&out))
}

/// The finding codes of an inspect report (or of a `restore` object), in order.
pub fn finding_codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// The finding with `code`; fails the test when there is none.
pub fn finding<'a>(report: &'a serde_json::Value, code: &str) -> &'a serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {:#}", report["findings"]))
}

/// Adds a row for a regular file of `size` bytes to `backup`'s Manifest.db, without its blob;
/// returns its fileID.
pub fn add_file_row(backup: &Path, domain: &str, path: &str, size: u64) -> String {
    let id = sha1_hex(&format!("{domain}-{path}"));
    let conn = rusqlite::Connection::open(backup.join("Manifest.db")).unwrap();
    conn.execute(
        "INSERT INTO Files VALUES (?1, ?2, ?3, 1, ?4)",
        rusqlite::params![
            id,
            domain,
            path,
            mbfile(path, 0o100644, Some(size), None, false)
        ],
    )
    .unwrap();
    id
}

/// Adds a file row of `size` bytes to `backup`'s Manifest.db and its blob, written sparse so a
/// test of a multi-gigabyte backup costs no disk.
pub fn add_sparse_file(backup: &Path, domain: &str, path: &str, size: u64) {
    let id = add_file_row(backup, domain, path, size);
    fs::create_dir_all(backup.join(&id[..2])).unwrap();
    fs::File::create(backup.join(&id[..2]).join(&id))
        .unwrap()
        .set_len(size)
        .unwrap();
}

/// The problem codes of a verify report, in order.
pub fn problem_codes(report: &serde_json::Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect()
}
