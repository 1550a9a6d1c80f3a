//! Test support: the backup writer (writer.rs), the one way to run the `ibackup` binary
//! (run.rs), the simulated phone (phone.rs), and small helpers for reading what a run printed.

#![allow(dead_code, unused_imports)]

mod mtime;
mod phone;
mod run;
mod writer;

use std::fs;
use std::path::Path;
use std::process::Output;

use sha1::{Digest, Sha1};

pub use mtime::*;
pub use phone::*;
pub use run::*;
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

/// Runs `ibackup ARGS --json` and parses stdout.
pub fn json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ibackup(&all);
    (out.status.code().unwrap_or(-1), json_of(&out))
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

/// Names, kinds, sizes, modes and contents of every entry under `root`, sorted: equal
/// fingerprints mean an untouched tree.
pub fn tree_fingerprint(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            #[cfg(unix)]
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            #[cfg(not(unix))]
            let mode = meta.permissions().readonly() as u32;
            let what = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else if meta.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else {
                let bytes = fs::read(&path).unwrap_or_default();
                format!("file {mode:o} {} {:x?}", meta.len(), Sha1::digest(&bytes))
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}
