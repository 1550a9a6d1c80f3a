//! The simulated phone's backups against a client nobody here wrote: Debian's `idevicebackup2`
//! (libimobiledevice-utils) backs up the in-process simulator through USBMUXD_SOCKET_ADDRESS,
//! and `ibackup verify` must call the result complete, listing exactly the phone's files. Then
//! an incremental backup on top after the phone's content changed; an encrypted phone's backup
//! that verify unlocks with the password and not without it; and the faults idevicebackup2
//! must see as failures. When the tool is not installed each test says so loudly and passes
//! (CI installs it: apt-get install libimobiledevice-utils).

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ibackup_sim::mobilebackup2::{self, content::Content};
use support::{SimPhone, SIM_UDID as UDID};

fn tool_present() -> bool {
    let present = Command::new("idevicebackup2")
        .arg("--help")
        .output()
        .is_ok();
    if !present {
        eprintln!(
            "\n*** SKIPPED: idevicebackup2 (libimobiledevice-utils) is not installed; the \
             simulator's backups were NOT checked against an independent client. Install: \
             apt-get install libimobiledevice-utils ***\n"
        );
    }
    present
}

/// What one idevicebackup2 run did.
struct Backup2 {
    success: bool,
    output: String,
}

/// `idevicebackup2 ARGS` against `phone`, killed after `limit` (a hang is a failure).
fn idevicebackup2(phone: &SimPhone, args: &[&str], limit: Duration) -> Backup2 {
    let log = phone
        .dir()
        .join(format!("idevicebackup2-{}.log", args.join("_").len()));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("idevicebackup2")
        .args(args)
        .env(
            "USBMUXD_SOCKET_ADDRESS",
            format!("UNIX:{}", phone.address()),
        )
        .env("HOME", phone.dir())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let Some(status) = status else {
        panic!("idevicebackup2 {args:?} did not finish within {limit:?}:\n{output}");
    };
    Backup2 {
        success: status.success(),
        output,
    }
}

/// `ibackup verify --json DIR` with `env` on top: (exit code, report).
fn verify(dir: &Path, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    verify_with(&["verify", "--json", dir.to_str().unwrap()], env)
}

/// `ibackup verify --deep --json DIR`: every blob read (and decrypted, when encrypted).
fn verify_deep(dir: &Path, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    verify_with(&["verify", "--deep", "--json", dir.to_str().unwrap()], env)
}

fn verify_with(args: &[&str], env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let run = support::Ibackup::new(args).envs(env).run();
    (run.code().unwrap_or(-1), run.json())
}

/// Manifest.db's file rows (flags 1) of a plain backup: fileID -> (domain, relativePath).
fn listed(backup: &Path) -> HashMap<String, (String, String)> {
    let db = rusqlite::Connection::open_with_flags(
        backup.join("Manifest.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut query = db
        .prepare("SELECT fileID, domain, relativePath FROM Files WHERE flags = 1")
        .unwrap();
    let rows = query
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn blob(backup: &Path, id: &str) -> PathBuf {
    backup.join(&id[..2]).join(id)
}

fn content_of(phone: &SimPhone, generation: u64) -> Content {
    let p = phone.phone();
    let profile = p.profile();
    Content::at(&profile.backup, &profile.apps, generation)
}

/// A file's bytes as the phone holds them.
fn bytes_of(entry: &mobilebackup2::content::Entry) -> Vec<u8> {
    let mut data = vec![0u8; entry.size() as usize];
    entry.read_at(0, &mut data);
    data
}

/// A fresh folder for idevicebackup2 to back `phone` up into.
fn backups_folder(phone: &SimPhone) -> PathBuf {
    let root = phone.dir().join("backups");
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn assert_success(run: &Backup2, what: &str) {
    assert!(
        run.success && run.output.contains("Backup Successful"),
        "{what}:\n{}",
        run.output
    );
}

#[test]
fn a_full_backup_verifies_complete_and_an_incremental_one_on_top() {
    if !tool_present() {
        return;
    }
    let phone = SimPhone::with_profile("default");
    let root = backups_folder(&phone);
    let root_str = root.to_str().unwrap();
    let backup = root.join(UDID);

    let full = idevicebackup2(
        &phone,
        &["backup", "--full", root_str],
        Duration::from_secs(120),
    );
    assert_success(&full, "idevicebackup2 backup --full");
    assert!(
        backup.join("Info.plist").is_file(),
        "the computer's Info.plist"
    );
    assert!(!backup.join("Snapshot").exists());
    let first = content_of(&phone, 0);
    let (code, report) = verify(&backup, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "complete", "{report:#}");
    assert_eq!(report["files"]["listed"], first.file_count() as u64);
    assert_eq!(report["files"]["intact"], first.file_count() as u64);
    assert_eq!(report["backup"]["encrypted"], false);
    // The file lists agree: Manifest.db lists exactly the phone's files, and every blob holds
    // the phone's bytes.
    let rows = listed(&backup);
    let phone_ids: HashSet<String> = first.files().map(|e| e.file_id()).collect();
    assert_eq!(rows.keys().cloned().collect::<HashSet<_>>(), phone_ids);
    for entry in first.files() {
        assert_eq!(
            std::fs::read(blob(&backup, &entry.file_id())).unwrap(),
            bytes_of(entry),
            "{} {}",
            entry.domain,
            entry.relative_path
        );
    }
    assert_eq!(mobilebackup2::generation(&phone.phone()), 1);

    // The phone changed; an incremental backup brings only that.
    let second = content_of(&phone, 1);
    let changed: Vec<_> = second
        .files()
        .filter(|e| e.version == 1 && phone_ids.contains(&e.file_id()))
        .collect();
    assert!(!changed.is_empty());
    let before: HashMap<String, Vec<u8>> = changed
        .iter()
        .map(|e| {
            (
                e.file_id(),
                std::fs::read(blob(&backup, &e.file_id())).unwrap(),
            )
        })
        .collect();
    let incremental = idevicebackup2(&phone, &["backup", root_str], Duration::from_secs(120));
    assert_success(&incremental, "idevicebackup2 backup (incremental)");
    assert!(
        incremental.output.contains("Incremental"),
        "{}",
        incremental.output
    );
    let (code, report) = verify(&backup, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "complete", "{report:#}");
    assert_eq!(report["files"]["listed"], second.file_count() as u64);
    assert_eq!(
        report["files"]["orphans"], 0,
        "removed files' blobs are gone"
    );
    let rows = listed(&backup);
    let now_ids: HashSet<String> = second.files().map(|e| e.file_id()).collect();
    assert_eq!(rows.keys().cloned().collect::<HashSet<_>>(), now_ids);
    for entry in &changed {
        let now = std::fs::read(blob(&backup, &entry.file_id())).unwrap();
        assert_ne!(
            now,
            before[&entry.file_id()],
            "{} was not updated",
            entry.relative_path
        );
        assert_eq!(now, bytes_of(entry));
    }
    for entry in second.files().filter(|e| !phone_ids.contains(&e.file_id())) {
        assert_eq!(
            std::fs::read(blob(&backup, &entry.file_id())).unwrap(),
            bytes_of(entry)
        );
    }
    let status = plist::Value::from_file(backup.join("Status.plist")).unwrap();
    assert_eq!(
        status.as_dictionary().unwrap()["IsFullBackup"],
        plist::Value::Boolean(false)
    );
}

#[test]
fn an_encrypted_phone_backup_unlocks_with_its_password_only() {
    if !tool_present() {
        return;
    }
    let phone = SimPhone::with_profile("backup-encrypted");
    let root = backups_folder(&phone);
    let backup = root.join(UDID);
    let run = idevicebackup2(
        &phone,
        &["backup", "--full", root.to_str().unwrap()],
        Duration::from_secs(120),
    );
    assert_success(&run, "idevicebackup2 backup --full (encrypted)");
    let password = phone.phone().profile().backup.password.clone();
    let (code, report) = verify_deep(&backup, &[("IBACKUP_PASSWORD", &password)]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "complete", "{report:#}");
    assert_eq!(report["backup"]["encrypted"], true);
    let files = content_of(&phone, 0).file_count() as u64;
    assert_eq!(report["files"]["listed"], files);
    assert_eq!(report["files"]["decrypted"], files, "{report:#}");
    let (code, report) = verify(&backup, &[("IBACKUP_PASSWORD", "not the password")]);
    assert_eq!(code, 2, "{report:#}");
    assert_ne!(report["verdict"], "complete", "{report:#}");

    // An incremental backup on top: the phone reads its own encrypted Manifest.db back.
    let run = idevicebackup2(
        &phone,
        &["backup", root.to_str().unwrap()],
        Duration::from_secs(120),
    );
    assert_success(&run, "idevicebackup2 backup (incremental, encrypted)");
    assert!(run.output.contains("Incremental"), "{}", run.output);
    let (code, report) = verify_deep(&backup, &[("IBACKUP_PASSWORD", &password)]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "complete", "{report:#}");
    assert_eq!(
        report["files"]["listed"],
        content_of(&phone, 1).file_count() as u64
    );
    assert_eq!(report["files"]["orphans"], 0, "{report:#}");
}

#[test]
fn faults_end_idevicebackup2_without_a_finished_backup() {
    if !tool_present() {
        return;
    }
    for (profile, says) in [
        ("backup-no-space", "ErrorCode 105"),
        ("backup-file-errors", "ErrorCode 205"),
        ("backup-snapshot-left", "Backup Failed"),
        ("backup-stop-mid-upload", ""),
    ] {
        let phone = SimPhone::with_profile(profile);
        let root = phone.dir().join("backups");
        std::fs::create_dir_all(&root).unwrap();
        let run = idevicebackup2(
            &phone,
            &["backup", "--full", root.to_str().unwrap()],
            Duration::from_secs(60),
        );
        assert!(
            !run.output.contains("Backup Successful"),
            "{profile}:\n{}",
            run.output
        );
        assert!(run.output.contains(says), "{profile}:\n{}", run.output);
        let (code, report) = verify(&root.join(UDID), &[]);
        assert_ne!(code, 0, "{profile}: {report:#}");
        assert_ne!(report["verdict"], "complete", "{profile}: {report:#}");
        assert_eq!(mobilebackup2::generation(&phone.phone()), 0, "{profile}");
    }
}

#[test]
fn a_passcode_prompt_delays_the_backup_and_a_cancel_request_ends_it() {
    if !tool_present() {
        return;
    }
    let phone = SimPhone::with_profile("backup-passcode-prompt");
    let root = backups_folder(&phone);
    let started = Instant::now();
    let run = idevicebackup2(
        &phone,
        &["backup", "--full", root.to_str().unwrap()],
        Duration::from_secs(120),
    );
    assert_success(&run, "idevicebackup2 backup after a passcode prompt");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(verify(&root.join(UDID), &[]).0, 0);

    // idevicebackup2 observes syncCancelRequest and stops; the phone never finishes.
    let phone = SimPhone::with_profile("backup-cancel-request");
    let root = backups_folder(&phone);
    let run = idevicebackup2(
        &phone,
        &["backup", "--full", root.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(!run.output.contains("Backup Successful"), "{}", run.output);
    assert_eq!(mobilebackup2::generation(&phone.phone()), 0);
    assert_ne!(verify(&root.join(UDID), &[]).0, 0);
}

#[test]
fn idevicebackup2_turns_encryption_on_and_off_with_change_password() {
    if !tool_present() {
        return;
    }
    let phone = SimPhone::with_profile("default");
    let root = backups_folder(&phone);
    let root_str = root.to_str().unwrap();
    let limit = Duration::from_secs(60);
    let on = idevicebackup2(&phone, &["encryption", "on", "s3cret", root_str], limit);
    assert!(on.output.contains("enabled successfully"), "{}", on.output);
    let backup = idevicebackup2(&phone, &["backup", root_str], limit);
    assert_success(&backup, "an encrypted backup");
    let (code, report) = verify(&root.join(UDID), &[("IBACKUP_PASSWORD", "s3cret")]);
    assert_eq!(
        (code, &report["verdict"]),
        (0, &"complete".into()),
        "{report:#}"
    );
    assert_eq!(report["backup"]["encrypted"], true);

    let wrong = idevicebackup2(&phone, &["encryption", "off", "guess", root_str], limit);
    assert!(
        wrong.output.contains("password is wrong"),
        "{}",
        wrong.output
    );
    assert!(phone_will_encrypt(&phone));
    let off = idevicebackup2(&phone, &["encryption", "off", "s3cret", root_str], limit);
    assert!(
        off.output.contains("disabled successfully"),
        "{}",
        off.output
    );
    assert!(!phone_will_encrypt(&phone));
    // The copy on the computer is encrypted and the phone no longer is: a full backup.
    let plain = idevicebackup2(&phone, &["backup", root_str], limit);
    assert_success(&plain, "a plain backup after encryption was turned off");
    let (code, report) = verify(&root.join(UDID), &[]);
    assert_eq!(
        (code, &report["verdict"]),
        (0, &"complete".into()),
        "{report:#}"
    );
    assert_eq!(report["backup"]["encrypted"], false);
    assert_eq!(report["files"]["orphans"], 0, "{report:#}");
    let status = plist::Value::from_file(root.join(UDID).join("Status.plist")).unwrap();
    assert_eq!(
        status.as_dictionary().unwrap()["IsFullBackup"],
        plist::Value::Boolean(true)
    );
}

fn phone_will_encrypt(phone: &SimPhone) -> bool {
    mobilebackup2::will_encrypt(&phone.phone())
}
