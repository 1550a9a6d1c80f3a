//! Hostile and damaged backups (tests/hostile/make_hostile.py writes them): every command
//! answers each with a report or a clear error, with the one exit code the case documents, in
//! under five seconds, in bounded memory, without a panic, and leaves the folder as it was. The
//! cases about permissions run as a user the permissions apply to (setpriv to an unprivileged
//! user when the tests run as root; see tests/support/unprivileged.rs).

#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{Ibackup, Measure, Measured, TIME_LIMIT};

/// Runs `ibackup` as `run` sets it up (no phone), killed past twice the time limit, and checks
/// what every hostile case must give: exit `code`, and the answer docs/exit-codes.md gives for
/// it (see [`assert_exit_2_explained`]).
fn check_run(what: &str, run: Ibackup, code: i32) -> Measured {
    let r = Measure::new(run.command()).kill_after(TIME_LIMIT * 2).run();
    r.assert_exit(code, TIME_LIMIT, what);
    if code == 2 {
        assert_exit_2_explained(&r, what);
    }
    r
}

/// An exit 2 is explained in one of the two ways docs/exit-codes.md allows, never neither: an
/// error, which stderr gives first as `error: ` (and `--json` as an `ibackup.error/1` object on
/// stdout); or, with stderr empty, the full report of a backup that could not be wholly
/// checked (`verdict: unchecked`, in words "Could not be fully checked").
fn assert_exit_2_explained(r: &Measured, what: &str) {
    let json = what.contains("--json");
    if !r.stderr.is_empty() {
        assert!(
            r.stderr.starts_with("error: "),
            "{what}: exit 2 without `error: ` first on stderr: {}",
            r.stderr
        );
        if json {
            let value = r.json();
            assert_eq!(value["schema"], "ibackup.error/1", "{what}: {value:#}");
            assert!(
                value["error"]["code"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty()),
                "{what}: {value:#}"
            );
        }
        return;
    }
    if json {
        let value = r.json();
        assert_eq!(
            value["verdict"], "unchecked",
            "{what}: exit 2 with nothing on stderr and no unchecked report: {value:#}"
        );
    } else {
        assert!(
            r.stdout.contains("Could not be fully checked"),
            "{what}: exit 2 with nothing on stderr and no unchecked report: {}",
            r.stdout
        );
    }
}

fn corpus() -> (tempfile::TempDir, Vec<Value>) {
    // Reachable by the unprivileged user the permission cases run as.
    let dir = support::reachable_tempdir();
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

/// The one exit code a case gives in `field`: a list of more than one is refused, since a
/// test that accepts two answers accepts a broken ibackup giving the other.
fn one_code(case: &Value, field: &str) -> i32 {
    let name = &case["name"];
    let codes = case[field]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no {field} list"));
    assert_eq!(
        codes.len(),
        1,
        "{name}: {field} must name exactly one exit code, not {codes:?}"
    );
    let code = codes[0].as_i64().unwrap() as i32;
    assert!((0..=2).contains(&code), "{name}: {field} {code}");
    code
}

/// The entries a case made unreadable, with the modes they had.
fn unreadable(case: &Value, backup: &Path) -> Vec<(PathBuf, u32)> {
    case["unreadable"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no unreadable list", case["name"]))
        .iter()
        .map(|e| {
            (
                backup.join(e["path"].as_str().unwrap()),
                e["mode"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

fn set_modes(entries: &[(PathBuf, u32)], locked: bool) {
    for (path, mode) in entries {
        let mode = if locked { 0 } else { *mode };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[test]
fn every_hostile_backup_gets_a_clear_answer() {
    let (dir, cases) = corpus();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let path: PathBuf = dir.path().join(name);
        let path_arg = path.to_str().unwrap();
        let verify_code = one_code(case, "exits");
        let inspect_code = one_code(case, "inspect_exits");
        let locked = unreadable(case, &path);
        // The fingerprint reads every file, which the test process may not do while they are
        // locked (when it is not root).
        set_modes(&locked, false);
        let before = support::tree_fingerprint(&path);
        set_modes(&locked, true);
        // Permissions only mean something to a user they apply to.
        let run = |args: &[&str]| {
            let run = Ibackup::offline(args);
            if locked.is_empty() {
                run
            } else {
                run.unprivileged()
            }
        };
        let what = |args: &[&str]| format!("{name}: ibackup {}", args.join(" "));
        let args = ["verify", path_arg];
        let verify = check_run(&what(&args), run(&args), verify_code);
        if let Some(expect) = case["expect"].as_str() {
            let all = format!("{}{}", verify.stdout, verify.stderr);
            assert!(all.contains(expect), "{name}: {expect:?} not in:\n{all}");
        }
        let args = ["verify", path_arg, "--json"];
        let json = check_run(&what(&args), run(&args), verify_code);
        let value: Value = serde_json::from_str(&json.stdout)
            .unwrap_or_else(|e| panic!("{name}: --json printed no JSON ({e}): {}", json.stdout));
        assert!(value["schema"].is_string(), "{name}");
        for args in [
            vec!["inspect", path_arg],
            vec!["inspect", path_arg, "--json", "-v"],
        ] {
            check_run(&what(&args), run(&args), inspect_code);
        }
        set_modes(&locked, false);
        assert_eq!(
            support::tree_fingerprint(&path),
            before,
            "{name}: the folder changed"
        );
    }
    // The whole corpus as one folder of backups: the sound parts are still listed.
    let args = ["inspect", dir.path().to_str().unwrap()];
    check_run("corpus: ibackup inspect", Ibackup::offline(args), 0);
}

/// Manifest.db rewritten over and over (truncated, then written again) while `verify` reads it:
/// each run is "could not check" (2) with a clear error, never a crash, a hang or a verdict.
///
/// Every version the writer puts down is damaged where any read of the file list must look:
/// the first byte of page 2, the root of `Files`, which both scrambles change into no page
/// type SQLite knows (and a file cut short by the rewrite reads as zeros there). A sound version
/// among them would make the answer depend on timing: a run that read the file whole between
/// two writes would rightly call the backup complete.
#[test]
fn a_manifest_rewritten_while_it_is_read_is_could_not_check() {
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
    let backup_arg = backup.to_str().unwrap();
    let verify = || Ibackup::offline(["verify", backup_arg]);
    check_run("sound, before the rewrites", verify(), 0);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'Files'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            (page_size, root),
            (4096, 2),
            "Files is no longer rooted at byte 4096"
        );
    }
    let good = std::fs::read(&db).unwrap();
    let scrambled = |key: u8| {
        let mut bytes = good.clone();
        for b in bytes.iter_mut().skip(4096).step_by(7) {
            *b ^= key;
        }
        bytes
    };
    let versions = [scrambled(0x5A), scrambled(0xA5)];
    for (i, version) in versions.iter().enumerate() {
        std::fs::write(&db, version).unwrap();
        let what = format!("scramble {i}, left still");
        check_run(&what, verify(), 2);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::write(&db, &versions[i % 2]);
                i += 1;
            }
            i
        })
    };
    for _ in 0..15 {
        check_run("rewritten while read", verify(), 2);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 15, "the writer only wrote {writes} times");
}
