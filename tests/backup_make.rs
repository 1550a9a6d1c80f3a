//! End to end: `ibackup backup` against the simulated phone (its mobilebackup2, notification
//! proxy and AFC, in this process), then the new backup read back by `ibackup verify`. Each test
//! reads as: a phone profile, a run, what the output says and what the folder holds. The
//! previous backup is fingerprinted byte by byte before a run that fails and compared after.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{tree_fingerprint, Ibackup, SimPhone, SIM_UDID as UDID};
use tempfile::TempDir;

fn phone_with(json: &str) -> SimPhone {
    SimPhone::builder().profile_json(json).start()
}

/// `ibackup backup --to DIR --json` against `phone` with `env`: (exit code, JSON).
fn backup(
    phone: &SimPhone,
    to: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, serde_json::Value) {
    let mut args = vec!["backup", "--to", to.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let run = phone.ibackup_with(&args, env);
    let code = run.code().unwrap_or(-1);
    let text = run.stdout();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\nstderr: {}", run.stderr()));
    (code, json)
}

fn verify(path: &Path, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let run = Ibackup::offline(["verify", path.to_str().unwrap(), "--json"])
        .envs(env)
        .run();
    (run.code().unwrap_or(-1), run.json())
}

fn backup_path(to: &Path) -> PathBuf {
    to.join(UDID)
}

/// Waits (a minute at most, for a loaded machine) until a run has taken the phone's sync lock
/// and prepared its `.ibackup-new` folder: the moment a backup is surely under way.
fn wait_for_staging(to: &Path) {
    let staging = to.join(format!("{UDID}.ibackup-new"));
    let until = Instant::now() + Duration::from_secs(60);
    while !staging.is_dir() {
        assert!(Instant::now() < until, "the run never started its backup");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing of ibackup's own is left beside the backup (no `.ibackup-new`, `-old`, `-part`).
fn assert_no_leftovers(to: &Path) {
    let mut names = Vec::new();
    let mut stack = vec![to.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".ibackup-") {
                names.push(entry.path());
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    assert!(names.is_empty(), "left behind: {names:?}");
}

#[test]
fn a_full_then_an_incremental_backup_verify_complete() {
    let phone = phone_with(
        r#"{"backup": {"files": 40, "total_bytes": 3000000,
            "changes_per_backup": {"modified": 3, "added": 2, "removed": 1}}}"#,
    );
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    let (code, first) = backup(&phone, &to, &[], &[]);
    assert_eq!(code, 0, "{first:#}");
    assert_eq!(first["schema"], "ibackup.backup/1");
    assert_eq!(first["outcome"], "complete");
    assert_eq!(first["kind"], "full");
    assert_eq!(first["encrypted"], false);
    assert_eq!(first["session"]["error_code"], 0);
    assert_eq!(first["session"]["status_finished"], true);
    assert_eq!(first["verify"]["verdict"], "complete");
    assert_eq!(first["backup"], backup_path(&to).to_str().unwrap());
    assert!(first["previous"].is_null());
    let sent_first = first["session"]["files"].as_u64().unwrap();
    assert!(sent_first >= 40, "{first:#}");

    // verify on its own agrees, and the computer's Info.plist is there.
    let (code, report) = verify(&backup_path(&to), &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "complete");
    assert_eq!(report["backup"]["udid"], UDID);
    let listed = report["files"]["listed"].as_u64().unwrap();
    assert_eq!(listed, 40, "{report:#}");
    assert!(backup_path(&to).join("Info.plist").is_file());
    assert!(!backup_path(&to).join("Snapshot").exists());

    // The phone changed; the second run sends only what changed.
    let (code, second) = backup(&phone, &to, &[], &[]);
    assert_eq!(code, 0, "{second:#}");
    assert_eq!(second["kind"], "incremental");
    assert_eq!(second["verify"]["verdict"], "complete");
    assert_eq!(second["previous"]["kept"], false);
    let sent_second = second["session"]["files"].as_u64().unwrap();
    assert!(sent_second < sent_first, "{sent_second} >= {sent_first}");
    let (_, report) = verify(&backup_path(&to), &[]);
    assert_eq!(report["files"]["listed"], 41, "{report:#}");
    assert_no_leftovers(&to);

    // --full sends everything again.
    let (code, third) = backup(&phone, &to, &["--full"], &[]);
    assert_eq!(code, 0, "{third:#}");
    assert_eq!(third["kind"], "full");
    assert!(third["session"]["files"].as_u64().unwrap() >= 41);
}

#[test]
fn the_text_output_says_what_happened() {
    let phone = phone_with(r#"{"backup": {"files": 12}}"#);
    let dir = TempDir::new().unwrap();
    let run = phone.ibackup(&["backup", "--to", dir.path().to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let text = run.stdout();
    assert!(text.contains("Backing up Simulated iPhone"), "{text}");
    assert!(text.contains("Full: the iPhone sends everything"), "{text}");
    assert!(text.contains("Not encrypted"), "{text}");
    assert!(text.contains("Done: the new backup is complete"), "{text}");
}

/// Runs a backup that fails with `fault` on top of a complete one and checks the previous
/// backup is byte for byte what it was, and the output says it is restorable.
fn fails_and_keeps_previous(fault: &str, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    {
        let good = phone_with(r#"{"backup": {"files": 20}}"#);
        let (code, first) = backup(&good, &to, &[], &[]);
        assert_eq!(code, 0, "{first:#}");
    }
    let before = tree_fingerprint(&backup_path(&to));
    let phone = phone_with(&format!(
        r#"{{"backup": {{"files": 20, "fault": "{fault}"}}}}"#
    ));
    let (code, result) = backup(&phone, &to, &[], env);
    assert_ne!(code, 0, "{result:#}");
    assert!(result["backup"].is_null(), "{result:#}");
    assert_eq!(result["previous"]["kept"], true, "{result:#}");
    assert_eq!(result["previous"]["verdict"], "complete", "{result:#}");
    assert_eq!(tree_fingerprint(&backup_path(&to)), before, "{fault}");
    assert_no_leftovers(&to);
    (code, result)
}

#[test]
fn no_space_on_the_computer_is_the_phones_error_105() {
    let (code, result) = fails_and_keeps_previous("no_space", &[]);
    assert_eq!(code, 1);
    assert_eq!(result["outcome"], "failed");
    assert_eq!(result["session"]["error_code"], 105);
    assert_eq!(result["error"]["code"], "make.no_space");
}

#[test]
fn file_errors_are_the_phones_error_205() {
    let (code, result) = fails_and_keeps_previous("file_errors", &[]);
    assert_eq!(code, 1);
    assert_eq!(result["session"]["error_code"], 205);
    assert_eq!(result["error"]["code"], "make.phone_error");
    assert!(result["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("move it out"));
}

#[test]
fn a_snapshot_left_unfinished_is_no_backup_even_with_error_code_0() {
    let (code, result) = fails_and_keeps_previous("snapshot_left", &[]);
    assert_eq!(code, 1);
    assert_eq!(result["session"]["error_code"], 0);
    assert_eq!(result["session"]["status_finished"], false);
    assert_eq!(result["error"]["code"], "make.not_finished");
}

#[test]
fn a_phone_that_vanishes_mid_upload_leaves_the_previous_backup() {
    let (code, result) = fails_and_keeps_previous("stop_mid_upload", &[]);
    assert_eq!(code, 2);
    assert_eq!(result["outcome"], "failed");
    assert!(result["error"]["code"]
        .as_str()
        .unwrap()
        .starts_with("device."));
}

#[test]
fn a_cancel_request_from_the_phone_stops_the_backup() {
    let (code, result) = fails_and_keeps_previous("cancel_request", &[]);
    assert_eq!(code, 1);
    assert_eq!(result["outcome"], "stopped");
    assert_eq!(result["error"]["code"], "make.phone_cancelled");
}

#[test]
fn a_passcode_prompt_is_announced_and_a_passcode_never_entered_stops() {
    let (code, result) =
        fails_and_keeps_previous("passcode_never_entered", &[("IBACKUP_PASSCODE_WAIT", "2")]);
    assert_eq!(code, 1);
    assert_eq!(result["error"]["code"], "make.passcode_timeout");

    // A prompt that is answered: announced on stderr, then the backup goes on.
    let phone = phone_with(r#"{"backup": {"files": 10, "fault": "passcode_prompt"}}"#);
    let dir = TempDir::new().unwrap();
    let run = phone.ibackup(&["backup", "--to", dir.path().to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stderr().contains("enter your passcode on the iPhone"),
        "{}",
        run.stderr()
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_and_says_the_previous_backup_is_intact() {
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    let phone = phone_with(r#"{"backup": {"files": 30, "upload_delay_ms": 200}}"#);
    {
        let quick = phone_with(r#"{"backup": {"files": 30}}"#);
        assert_eq!(backup(&quick, &to, &[], &[]).0, 0);
    }
    let before = tree_fingerprint(&backup_path(&to));
    let mut command = phone
        .command(&["backup", "--full", "--to", to.to_str().unwrap()])
        .command();
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the new folder is there the session holds the lock and Ctrl-C is armed; the
    // upload still has about six seconds to go.
    wait_for_staging(&to);
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: the child's pid, still running.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stdout.contains("The previous backup was not changed"),
        "{stdout}"
    );
    assert!(stdout.contains("complete and restorable"), "{stdout}");
    assert_eq!(tree_fingerprint(&backup_path(&to)), before);
    assert_no_leftovers(&to);
}

#[test]
fn an_encrypting_phone_needs_the_password_and_its_backup_unlocks_with_it() {
    let phone =
        phone_with(r#"{"will_encrypt": true, "backup": {"files": 15, "password": "sesame"}}"#);
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    // Without a password (no terminal): refused before anything is written.
    let (code, refused) = backup(&phone, &to, &[], &[]);
    assert_eq!(code, 2, "{refused:#}");
    assert_eq!(refused["error"]["code"], "make.password_needed");
    assert!(!backup_path(&to).exists());
    let env = [("IBACKUP_PASSWORD", "sesame")];
    let (code, made) = backup(&phone, &to, &[], &env);
    assert_eq!(code, 0, "{made:#}");
    assert_eq!(made["encrypted"], true);
    assert_eq!(made["verify"]["verdict"], "complete");
    assert_eq!(made["verify"]["backup"]["encrypted"], true);
    let (code, wrong) = verify(&backup_path(&to), &[("IBACKUP_PASSWORD", "wrong")]);
    assert_eq!(code, 2, "{wrong:#}");
    assert_eq!(wrong["error"]["code"], "backup.wrong_password");
}

#[test]
fn encrypt_turns_encryption_on_with_the_new_password() {
    let phone = phone_with(r#"{"backup": {"files": 15}}"#);
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    let before = phone.ibackup(&["device", "--json"]).json();
    assert_eq!(before["backup"]["will_encrypt"], false);
    let env = [("IBACKUP_PASSWORD", "new secret")];
    let (code, made) = backup(&phone, &to, &["--encrypt"], &env);
    assert_eq!(code, 0, "{made:#}");
    assert_eq!(made["session"]["encryption_turned_on"], true);
    assert_eq!(made["verify"]["backup"]["encrypted"], true);
    let (code, _) = verify(&backup_path(&to), &env);
    assert_eq!(code, 0);
    let after = phone.ibackup(&["device", "--json"]).json();
    assert_eq!(after["backup"]["will_encrypt"], true);
    // The password never reaches the output.
    assert!(!made.to_string().contains("new secret"));
}

#[cfg(unix)]
#[test]
fn a_backup_folder_that_is_a_link_is_refused_and_its_target_untouched() {
    let phone = phone_with(r#"{"backup": {"files": 5}}"#);
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, backup_path(&to)).unwrap();
    let (code, result) = backup(&phone, &to, &[], &[]);
    assert_eq!(code, 2, "{result:#}");
    assert_eq!(result["error"]["code"], "make.folder");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[cfg(target_os = "linux")]
#[test]
fn linux_needs_a_folder() {
    let phone = phone_with(r#"{"backup": {"files": 5}}"#);
    let run = phone.ibackup(&["backup", "--json"]);
    assert_eq!(run.code(), Some(2));
    assert_eq!(run.json()["error"]["code"], "usage.no_backup_folder");
    let dir = TempDir::new().unwrap();
    let run = phone.ibackup_with(
        &["backup", "--json"],
        &[("IBACKUP_BACKUP_DIR", dir.path().to_str().unwrap())],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stdout());
    assert!(backup_path(dir.path()).join("Manifest.db").is_file());
}

#[cfg(unix)]
#[test]
fn over_direct_usb_too() {
    let phone = SimPhone::builder()
        .profile_json(r#"{"backup": {"files": 25, "total_bytes": 2000000}}"#)
        .usb()
        .start();
    let dir = TempDir::new().unwrap();
    let (code, made) = backup(&phone, dir.path(), &["--transport", "usb"], &[]);
    assert_eq!(code, 0, "{made:#}");
    assert_eq!(made["verify"]["verdict"], "complete");
}

#[cfg(unix)]
#[test]
fn a_phone_asking_for_paths_outside_its_backup_is_refused_every_time() {
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    {
        let good = phone_with(r#"{"backup": {"files": 10}}"#);
        assert_eq!(backup(&good, &to, &[], &[]).0, 0);
    }
    // Beside the backups: a secret the phone must not read and a file it must not remove; in
    // the previous backup, a link to a folder outside that it must not write through.
    std::fs::write(to.join("secret.txt"), b"not for the phone").unwrap();
    std::fs::write(to.join("victim"), b"keep me").unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, backup_path(&to).join("Snapshot")).unwrap();
    let phone = phone_with(r#"{"backup": {"files": 10, "fault": "hostile_paths"}}"#);
    let (code, made) = backup(&phone, &to, &["--full"], &[]);
    // The phone judges: had any request gone through, it would have ended with ErrorCode 98.
    assert_eq!(code, 0, "{made:#}");
    assert_eq!(made["session"]["error_code"], 0);
    let refused = made["session"]["refused"].as_array().unwrap();
    assert!(refused.len() >= 8, "{made:#}");
    for name in ["escaped-dir", "escaped-file", "moved-out"] {
        assert!(!to.join(name).exists(), "{name}");
        assert!(!dir.path().join(name).exists(), "{name}");
    }
    assert!(!Path::new("/ibackup-escaped-absolute").exists());
    assert!(!Path::new("/ibackup-escaped-file").exists());
    assert_eq!(std::fs::read(to.join("victim")).unwrap(), b"keep me");
    assert_eq!(
        std::fs::read(to.join("secret.txt")).unwrap(),
        b"not for the phone"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    // The new backup has no link: its Snapshot/ was a real folder, and is gone.
    assert!(std::fs::symlink_metadata(backup_path(&to).join("Snapshot")).is_err());
    assert_no_leftovers(&to);
}

#[test]
fn an_incremental_backup_on_top_of_a_holed_one_is_not_kept_and_full_mends_it() {
    let phone = phone_with(
        r#"{"backup": {"files": 20, "changes_per_backup": {"modified": 1, "added": 0, "removed": 0}}}"#,
    );
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    assert_eq!(backup(&phone, &to, &[], &[]).0, 0);
    // A blob of the backup goes missing (a disk error, a cleaner): the backup is incomplete.
    let (_, report) = verify(&backup_path(&to), &[]);
    let blob = (0..256)
        .map(|i| backup_path(&to).join(format!("{i:02x}")))
        .filter(|d| d.is_dir())
        .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a blob");
    std::fs::remove_file(&blob).unwrap();
    let (code, holed) = verify(&backup_path(&to), &[]);
    assert_eq!(
        (code, holed["verdict"].as_str()),
        (1, Some("incomplete")),
        "{report:#}"
    );
    let before = tree_fingerprint(&backup_path(&to));
    // The phone sends what changed and counts on the rest: the hole is inherited, so the new
    // backup is not kept, and the advice is a full backup.
    let (code, made) = backup(&phone, &to, &[], &[]);
    assert_eq!(code, 1, "{made:#}");
    assert_eq!(made["outcome"], "incomplete");
    assert_eq!(made["kind"], "incremental");
    assert_eq!(made["error"]["code"], "make.incomplete");
    assert!(made["error"]["hint"].as_str().unwrap().contains("--full"));
    assert_eq!(made["previous"]["kept"], true);
    assert_eq!(made["previous"]["verdict"], "incomplete");
    assert_eq!(tree_fingerprint(&backup_path(&to)), before);
    // --full: everything travels again and the new backup replaces the holed one.
    let (code, mended) = backup(&phone, &to, &["--full"], &[]);
    assert_eq!(code, 0, "{mended:#}");
    assert_eq!(verify(&backup_path(&to), &[]).0, 0);
    assert!(blob.is_file(), "the missing blob is back");
}

#[cfg(unix)]
#[test]
fn a_second_run_waits_for_the_sync_lock_and_leaves_the_first_alone() {
    let dir = TempDir::new().unwrap();
    let to = dir.path().join("Backups");
    let phone = phone_with(r#"{"backup": {"files": 30, "upload_delay_ms": 80}}"#);
    let first = phone
        .command(&["backup", "--full", "--json", "--to", to.to_str().unwrap()])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The second starts once the first holds the lock (its `.ibackup-new` folder is there) and
    // is uploading (about 2.5 s of it). The second must wait for the phone's sync lock, which the
    // first holds until its new backup is verified and in place, before it prepares anything.
    wait_for_staging(&to);
    let (code, second) = backup(&phone, &to, &["--full"], &[]);
    let first = first.wait_with_output().unwrap();
    let first_json: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first.status.code(), Some(0), "{first_json:#}");
    assert_eq!(first_json["outcome"], "complete");
    assert_eq!(code, 0, "{second:#}");
    assert_eq!(second["previous"]["kept"], false, "{second:#}");
    assert_eq!(verify(&backup_path(&to), &[]).0, 0);
    assert_no_leftovers(&to);
}
