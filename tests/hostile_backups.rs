//! Hostile and damaged backups (tests/hostile/make_hostile.py writes them): every command
//! answers each with a report or a clear error, with its documented exit code, in under five
//! seconds, in bounded memory, without a panic, and leaves the folder as it was.

#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{Ibackup, Measure, Measured, TIME_LIMIT};

/// Runs `ibackup ARGS` (no phone), killed past twice the time limit, and checks what every
/// hostile case must give, an exit code among `allowed`, and that exit 2 says `error: ` first.
fn check_run(case: &str, args: &[&str], allowed: &[i32]) -> Measured {
    let r = Measure::new(Ibackup::offline(args).command())
        .kill_after(TIME_LIMIT * 2)
        .run();
    let what = format!("{case}: ibackup {}", args.join(" "));
    r.assert_exit_among(allowed, TIME_LIMIT, &what);
    if r.code == Some(2) && !r.stderr.is_empty() {
        assert!(r.stderr.starts_with("error: "), "{what}: {}", r.stderr);
    }
    r
}

fn corpus() -> (tempfile::TempDir, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/make_hostile.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .output()
        .expect("python3 runs the hostile corpus writer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cases.json")).unwrap())
            .unwrap();
    (dir, cases)
}

#[test]
fn every_hostile_backup_gets_a_clear_answer() {
    let (dir, cases) = corpus();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let path: PathBuf = dir.path().join(name);
        let path_arg = path.to_str().unwrap();
        let allowed: Vec<i32> = case["exits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_i64().unwrap() as i32)
            .collect();
        let before = support::tree_fingerprint(&path);
        let verify = check_run(name, &["verify", path_arg], &allowed);
        if let Some(expect) = case["expect"].as_str() {
            let all = format!("{}{}", verify.stdout, verify.stderr);
            assert!(all.contains(expect), "{name}: {expect:?} not in:\n{all}");
        }
        let json = check_run(name, &["verify", path_arg, "--json"], &allowed);
        let value: Value = serde_json::from_str(&json.stdout)
            .unwrap_or_else(|e| panic!("{name}: --json printed no JSON ({e}): {}", json.stdout));
        assert!(value["schema"].is_string(), "{name}");
        // inspect prints a report (0) or fails (2), never 1.
        check_run(name, &["inspect", path_arg], &[0, 2]);
        check_run(name, &["inspect", path_arg, "--json", "-v"], &[0, 2]);
        assert_eq!(
            support::tree_fingerprint(&path),
            before,
            "{name}: the folder changed"
        );
    }
    // The whole corpus as one folder of backups: the sound parts are still listed.
    check_run("corpus", &["inspect", dir.path().to_str().unwrap()], &[0]);
}

#[test]
fn a_manifest_rewritten_while_it_is_read_gives_a_report_or_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    support::write_backup(
        &backup,
        &support::Spec {
            files: 3000,
            ..support::Spec::default()
        },
    );
    let db = backup.join("Manifest.db");
    let good = std::fs::read(&db).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Rewrite in place, page by page, alternating sound and scrambled content.
                let mut bytes = good.clone();
                if i % 2 == 1 {
                    for b in bytes.iter_mut().skip(4096).step_by(7) {
                        *b ^= 0x5A;
                    }
                }
                let _ = std::fs::write(&db, &bytes);
                i += 1;
            }
        })
    };
    for _ in 0..15 {
        check_run(
            "rewritten",
            &["verify", backup.to_str().unwrap()],
            &[0, 1, 2],
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
}
