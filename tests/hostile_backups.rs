//! Hostile and damaged backups (tests/hostile/make_hostile.py writes them): every command
//! answers each with a report or a clear error, with its documented exit code, in under five
//! seconds, in bounded memory, without a panic, and leaves the folder as it was.

#![cfg(unix)]

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TIME_LIMIT: Duration = Duration::from_secs(5);
/// Peak resident memory allowed to one run, in KiB.
const MEMORY_LIMIT_KB: i64 = 200 * 1024;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    max_rss_kb: i64,
}

/// Runs ibackup, killing it past the time limit, and measures its peak memory with wait4.
// The child is reaped by wait4 (which also reports its peak memory), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn run(args: &[&str]) -> Run {
    let start = Instant::now();
    // The shared helper's clean environment, but spawned here: wait4 must reap the child.
    let mut child = support::Ibackup::without_phone(args, Path::new("/nonexistent/ibackup-tests"))
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let (mut status, mut usage): (libc::c_int, libc::rusage) = (0, unsafe { std::mem::zeroed() });
    loop {
        // SAFETY: plain wait4 on our own child with valid out-pointers.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        if start.elapsed() > TIME_LIMIT * 2 {
            let _ = child.kill();
            // SAFETY: as above, now blocking.
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Run {
        code,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
        elapsed: start.elapsed(),
        max_rss_kb: usage.ru_maxrss,
    }
}

fn check_run(case: &str, args: &[&str], allowed: &[i32]) -> Run {
    let r = run(args);
    let what = format!("{case}: ibackup {}", args.join(" "));
    assert!(r.elapsed < TIME_LIMIT, "{what} took {:?}", r.elapsed);
    assert!(
        r.code.is_some(),
        "{what} did not exit normally: {}",
        r.stderr
    );
    let code = r.code.unwrap();
    assert!(
        allowed.contains(&code),
        "{what} exited {code}, allowed {allowed:?}: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("panicked"),
        "{what} panicked: {}",
        r.stderr
    );
    assert!(
        r.max_rss_kb < MEMORY_LIMIT_KB,
        "{what} used {} KiB",
        r.max_rss_kb
    );
    support::assert_plain_words(&format!("{}{}", r.stdout, r.stderr), &what);
    if code == 2 && !r.stderr.is_empty() {
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
