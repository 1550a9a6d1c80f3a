//! End-to-end tests of encrypted backups through the `ibackup` binary (issue 4): every password
//! source, a wrong password, truncated and corrupted blobs under `--deep`, key databases checked
//! with quick_check, interop with the independent Python implementation, and proof that neither
//! the password nor any plaintext leaves the process.

mod support;

use support::{json_of, problem_codes};
mod support_encrypt;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{stderr, stdout, tree_fingerprint, Ibackup, Run};

/// Arguments, environment, standard input.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Option<String>);

const SAMPLE_PASSWORD: &str = "test-password-1234";
const RUST_PASSWORD: &str = "rust-made pässword";

fn synthetic_sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/third-party/synthetic-encrypted-ios26")
}

/// Runs ibackup (no inherited password, no terminal); `stdin` is piped in when given.
fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let command = Ibackup::new(args).envs(env);
    match stdin {
        Some(text) => command.stdin(text),
        None => command,
    }
    .run()
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("password.txt");
    fs::write(&path, format!("{password}\n")).unwrap();
    path
}

/// A copy of ibackup's own Rust-made encrypted backup (support_encrypt) in a fresh folder.
fn rust_made() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("00008110-RUSTMADE");
    fs::create_dir_all(&backup).unwrap();
    support_encrypt::write_encrypted_backup(&backup, RUST_PASSWORD.as_bytes(), 1000, 100);
    (dir, backup)
}

#[test]
fn the_synthetic_sample_verifies_complete_with_its_password() {
    let sample = synthetic_sample();
    let out = run(
        &["verify", sample.to_str().unwrap(), "--json"],
        &[("IBACKUP_PASSWORD", SAMPLE_PASSWORD)],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["complete"], true);
    assert_eq!(report["backup"]["encrypted"], true);
    assert_eq!(report["manifest_read"], true);
    assert_eq!(report["files"]["listed"], 4);
    assert_eq!(report["files"]["intact"], 4);
    assert_eq!(report["files"]["directories"], 1);
}

#[test]
fn without_a_password_the_sample_reports_what_it_can_and_is_unchecked() {
    let sample = synthetic_sample();
    let out = run(&["verify", sample.to_str().unwrap(), "--json"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    let report = json_of(&out);
    assert_eq!(report["verdict"], "unchecked");
    assert_eq!(report["manifest_read"], false);
    assert_eq!(report["files"]["blobs_on_disk"], 4);
    assert_eq!(report["size"]["on_disk_bytes"], 16 + 320 + 48 + 784);
    assert_eq!(report["backup"]["ios_version"], "26.2");
    assert!(problem_codes(&report).contains(&"backup.encrypted_no_password".to_string()));

    let text = run(&["verify", sample.to_str().unwrap()], &[], None);
    let text = stdout(&text);
    assert!(text.contains("4 files on disk"), "{text}");
    assert!(
        text.contains("--password-file"),
        "says how to give it: {text}"
    );
}

#[test]
fn a_wrong_password_exits_2_with_a_clear_message_and_never_echoes_it() {
    let sample = synthetic_sample();
    let wrong = "not-the-Password-9876";
    for json in [false, true] {
        let mut args = vec!["verify", sample.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let out = run(&args, &[("IBACKUP_PASSWORD", wrong)], None);
        assert_eq!(out.status.code(), Some(2));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            all.contains("does not unlock this backup's keybag"),
            "{all}"
        );
        assert!(all.contains("Encrypt local backup"), "{all}");
        assert!(all.contains("backup.wrong_password") || !json, "{all}");
        assert!(!all.contains(wrong), "the password leaked: {all}");
    }
}

#[test]
fn each_password_source_unlocks_the_sample() {
    let sample = synthetic_sample();
    let scratch = tempfile::tempdir().unwrap();
    let file = password_file(scratch.path(), SAMPLE_PASSWORD);
    let path = sample.to_str().unwrap();
    let cases: Vec<Case> = vec![
        (
            vec!["verify", path, "--password-file", file.to_str().unwrap()],
            vec![],
            None,
        ),
        (
            vec!["verify", path, "--password-file", "-"],
            vec![],
            Some(format!("{SAMPLE_PASSWORD}\r\n")),
        ),
        (
            vec!["verify", path],
            vec![("IBACKUP_PASSWORD", SAMPLE_PASSWORD)],
            None,
        ),
        // The file comes first: a wrong variable does not matter when the file is right.
        (
            vec!["verify", path, "--password-file", file.to_str().unwrap()],
            vec![("IBACKUP_PASSWORD", "wrong")],
            None,
        ),
    ];
    for (args, env, input) in cases {
        let out = run(&args, &env, input.as_deref());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    let missing = run(
        &["verify", path, "--password-file", "/nonexistent/pw"],
        &[],
        None,
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/pw"));
}

#[test]
fn ibackup_verifies_deep_a_backup_made_by_the_independent_python_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("python-made");
    let password = "correct horse ✓ battery";
    let pw = password_file(dir.path(), password);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/independent_encrypted_backup.py");
    let made = Command::new("python3")
        .arg(&script)
        .arg("--password-file")
        .arg(&pw)
        .args(["make", backup.to_str().unwrap(), "--seed", "7"])
        .args(["--dpic", "1000", "--iter", "100"])
        .output()
        .expect("python3 with `pip install cryptography` is needed");
    assert!(made.status.success(), "{}", stderr(&made));
    let out = run(
        &[
            "verify",
            backup.to_str().unwrap(),
            "--deep",
            "--json",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json_of(&out);
    assert_eq!(report["deep"], true);
    let listed = report["files"]["listed"].as_u64().unwrap();
    assert!(listed >= 8);
    assert_eq!(report["files"]["decrypted"], listed);
    assert_eq!(report["databases"][0]["name"], "Messages");
    assert_eq!(report["databases"][0]["result"], "ok");
}

#[test]
fn our_own_encrypted_fixture_verifies_deep_and_python_decrypts_it() {
    let (dir, backup) = rust_made();
    let pw = password_file(dir.path(), RUST_PASSWORD);
    let out = run(
        &[
            "verify",
            backup.to_str().unwrap(),
            "--deep",
            "--json",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json_of(&out);
    assert_eq!(report["files"]["decrypted"], report["files"]["listed"]);

    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/independent_encrypted_backup.py");
    let decrypted = Command::new("python3")
        .arg(&script)
        .arg("--password-file")
        .arg(&pw)
        .args(["decrypt", backup.to_str().unwrap()])
        .output()
        .expect("python3");
    assert!(decrypted.status.success(), "{}", stderr(&decrypted));
    let found: serde_json::Value = serde_json::from_slice(&decrypted.stdout).unwrap();
    let files = found["files"].as_array().unwrap();
    assert!(files
        .iter()
        .filter(|f| f["flags"] == 1)
        .all(|f| f["blob"] == "ok"));
}

#[test]
fn a_truncated_encrypted_blob_is_the_wrong_size() {
    let (dir, backup) = rust_made();
    let pw = password_file(dir.path(), RUST_PASSWORD);
    let memo = support::blob_of(&backup, "MediaDomain", "Media/Recordings/memo.m4a");
    let bytes = fs::read(&memo).unwrap();
    fs::write(&memo, &bytes[..70_000]).unwrap();
    let out = run(
        &[
            "verify",
            backup.to_str().unwrap(),
            "--json",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    let mismatch = &report["files"]["size_mismatch"][0];
    assert_eq!(mismatch["path"], "Media/Recordings/memo.m4a");
    assert_eq!(mismatch["expected_bytes"], 70_016);
    assert_eq!(mismatch["actual_bytes"], 70_000);
    assert!(problem_codes(&report).contains(&"backup.files_truncated".to_string()));
}

#[test]
fn a_corrupted_blob_with_bad_padding_is_found_only_by_deep() {
    let (dir, backup) = rust_made();
    let pw = password_file(dir.path(), RUST_PASSWORD);
    // 32 bytes of plaintext encrypt to 48: flipping the last byte of the second ciphertext block
    // flips the last plaintext byte of the padding block, 0x10 -> 0xEF, which is not padding.
    let path = support::blob_of(&backup, "HomeDomain", "Library/thirty-two");
    let mut bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 48);
    bytes[31] ^= 0xFF;
    fs::write(&path, &bytes).unwrap();
    let args = |deep: bool| {
        let mut a = vec![
            "verify".to_string(),
            backup.display().to_string(),
            "--json".into(),
            "--password-file".into(),
            pw.display().to_string(),
        ];
        if deep {
            a.push("--deep".into());
        }
        a
    };
    let shallow: Vec<String> = args(false);
    let shallow: Vec<&str> = shallow.iter().map(String::as_str).collect();
    assert_eq!(run(&shallow, &[], None).status.code(), Some(0));

    let deep: Vec<String> = args(true);
    let deep: Vec<&str> = deep.iter().map(String::as_str).collect();
    let out = run(&deep, &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = json_of(&out);
    assert!(problem_codes(&report).contains(&"backup.blobs_undecryptable".to_string()));
    let bad = report["files"]["undecryptable"].as_array().unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["path"], "Library/thirty-two");
    assert!(bad[0]["reason"].as_str().unwrap().contains("padding"));
}

#[test]
fn the_password_appears_in_no_output_of_any_command() {
    let (dir, backup) = rust_made();
    let pw = password_file(dir.path(), RUST_PASSWORD);
    let b = backup.to_str().unwrap();
    let parent = dir.path().to_str().unwrap();
    let p = pw.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["verify", b],
        vec!["verify", b, "--deep"],
        vec!["verify", b, "--json"],
        vec!["verify", b, "--deep", "--json"],
        vec!["verify", b, "-v", "--deep"],
        vec!["verify", b, "-q"],
        vec!["inspect", b],
        vec!["inspect", b, "--json"],
        vec!["inspect", b, "-v"],
        vec!["inspect", parent],
        vec!["inspect", parent, "--json"],
    ];
    for command in &commands {
        let mut with_file = command.clone();
        with_file.extend(["--password-file", p]);
        let outputs = [
            run(&with_file, &[], None),
            run(command, &[("IBACKUP_PASSWORD", RUST_PASSWORD)], None),
        ];
        for out in outputs {
            let all = format!("{}{}", stdout(&out), stderr(&out));
            assert!(
                !all.contains(RUST_PASSWORD) && !all.contains("pässword"),
                "{command:?} printed the password: {all}"
            );
            // A sound backup and the right password: every command succeeds.
            assert_eq!(out.status.code(), Some(0), "{command:?}: {all}");
        }
    }
}

#[test]
fn encrypted_verify_and_deep_leave_the_tree_untouched_and_write_nothing() {
    let (dir, backup) = rust_made();
    let pw = password_file(dir.path(), RUST_PASSWORD);
    let tmp = tempfile::tempdir().unwrap();
    let before = tree_fingerprint(dir.path());
    for deep in [false, true] {
        let mut args = vec![
            "verify",
            backup.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ];
        if deep {
            args.push("--deep");
        }
        let out = run(&args, &[("TMPDIR", tmp.path().to_str().unwrap())], None);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    }
    assert_eq!(tree_fingerprint(dir.path()), before);
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing is written to the temporary folder"
    );
}

#[test]
fn deep_on_the_synthetic_sample_decrypts_all_and_finds_its_placeholder_sms_db() {
    // The third-party sample's "sms.db" is 316 bytes of placeholder, not SQLite: every blob
    // decrypts intact, and quick_check rightly calls the database damaged.
    let sample = synthetic_sample();
    let out = run(
        &["verify", sample.to_str().unwrap(), "--deep", "--json"],
        &[("IBACKUP_PASSWORD", SAMPLE_PASSWORD)],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["files"]["decrypted"], 4);
    assert_eq!(
        report["files"]["undecryptable"].as_array().unwrap().len(),
        0
    );
    assert_eq!(report["databases"][0]["name"], "Messages");
    assert_eq!(report["databases"][0]["result"], "file is not a database");
    assert_eq!(
        problem_codes(&report),
        vec!["backup.database_damaged".to_string()]
    );
}
