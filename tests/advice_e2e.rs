//! Advice that fits the situation, end to end: a broken computer backup gets local remedies and
//! never advice that risks the only good copy; a backup being written is left to finish; the
//! words iOS showed help with no phone and no backup; iOS updates are advised only to phones
//! that need them; a big backup is measured with and without its camera roll.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{
    finding, finding_codes as codes, write_backup, Defect, Ibackup, Run, SimPhone, Spec,
    SIM_UDID as UDID,
};
use tempfile::TempDir;

/// A desk: maybe a phone, and a backup folder of backups, each last written when it was made
/// unless a test says otherwise.
struct Desk {
    phone: Option<SimPhone>,
    dir: TempDir,
}

impl Desk {
    fn new(profile: Option<&str>) -> Desk {
        let dir = TempDir::new().unwrap();
        std::fs::create_dir_all(dir.path().join("backups")).unwrap();
        let phone = profile.map(|json| SimPhone::builder().profile_json(json).start());
        Desk { phone, dir }
    }

    /// Writes `spec` as backup folder `name`, its files dated `written` (Unix seconds).
    fn backup(&self, name: &str, spec: &Spec, written: i64) -> PathBuf {
        let folder = self.backups().join(name);
        write_backup(&folder, spec);
        support::set_tree_mtime(&folder, written);
        folder
    }

    fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// `ibackup ARGS` here: pointed at the phone, or at no daemon; IBACKUP_BACKUP_DIR is
    /// `backup_dir`.
    fn run_in(&self, backup_dir: &Path, args: &[&str]) -> Run {
        let command = match &self.phone {
            Some(phone) => phone.command(args),
            None => Ibackup::without_phone(args, self.dir.path()),
        };
        command.env("IBACKUP_BACKUP_DIR", backup_dir).run()
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.backups(), args)
    }

    fn inspect(&self, extra: &[&str]) -> Value {
        let mut args = vec!["inspect", "--json"];
        args.extend(extra);
        let out = self.run(&args);
        assert_eq!(out.code(), Some(0), "{}", out.stderr());
        out.json()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const DAY: i64 = 86_400;

/// A complete backup of the simulated phone made `days` ago.
fn made(days: i64) -> Spec {
    Spec {
        udid: UDID.into(),
        device_name: "Simulated iPhone".into(),
        date: now() - days * DAY,
        files: 20,
        ..Spec::default()
    }
}

/// Every fix id the findings ask for, first fixes and next ones.
fn fix_ids(report: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    for f in report["findings"].as_array().unwrap() {
        ids.push(f["fix"]["id"].as_str().unwrap().to_string());
        for id in f["then"].as_array().unwrap() {
            ids.push(id.as_str().unwrap().to_string());
        }
    }
    ids
}

// 1. A broken computer backup: local remedies, and never at the cost of the only good copy.

#[test]
fn a_broken_newest_backup_with_an_older_complete_one_keeps_the_older() {
    let desk = Desk::new(Some("{}"));
    let good = made(5);
    let older = desk.backup("older-complete", &good, good.date);
    let broken = made(1).with(Defect::Unfinished).with(Defect::MissingBlob);
    let newest = desk.backup("newest-broken", &broken, broken.date);
    let report = desk.inspect(&[]);
    let found = codes(&report);
    for code in [
        "backup.unfinished",
        "backup.files_missing",
        "backup.keep_older_complete",
    ] {
        assert!(found.contains(&code.to_string()), "{code} not in {found:?}");
    }
    assert!(
        !found.contains(&"backup.only_copy".to_string()),
        "{found:?}"
    );
    let unfinished = finding(&report, "backup.unfinished");
    assert_eq!(unfinished["fix"]["id"], "redo-local-backup");
    let steps = unfinished["fix"]["steps"].to_string();
    assert!(steps.contains("move the broken folder"), "{steps}");
    assert!(steps.contains("ibackup verify"), "{steps}");
    let keep = finding(&report, "backup.keep_older_complete");
    let evidence = keep["evidence"].as_str().unwrap();
    assert!(evidence.contains(older.to_str().unwrap()), "{evidence}");
    assert!(evidence.contains(newest.to_str().unwrap()), "{evidence}");
    assert!(evidence.contains("keep that one"), "{evidence}");
    assert_eq!(keep["fix"]["id"], "keep-complete-backup");
    // No iCloud deletion for a computer backup, in JSON or text.
    assert!(!fix_ids(&report).contains(&"delete-and-redo".to_string()));
    assert!(!report["findings"]
        .to_string()
        .contains("Turn Off and Delete from iCloud"));
    let text = desk.run(&["inspect"]).stdout();
    assert!(!text.contains("Turn Off and Delete"), "{text}");
    assert!(text.contains("Keep the older complete backup"), "{text}");
}

#[test]
fn a_broken_only_backup_is_called_the_only_copy_and_kept() {
    let desk = Desk::new(Some("{}"));
    let broken = made(2).with(Defect::TruncatedBlob).with(Defect::NoStatus);
    let only = desk.backup("only", &broken, broken.date);
    let report = desk.inspect(&[]);
    let found = codes(&report);
    for code in [
        "backup.files_truncated",
        "backup.status_missing",
        "backup.only_copy",
    ] {
        assert!(found.contains(&code.to_string()), "{code} not in {found:?}");
    }
    assert!(
        !found.contains(&"backup.keep_older_complete".to_string()),
        "{found:?}"
    );
    let copy = finding(&report, "backup.only_copy");
    let evidence = copy["evidence"].as_str().unwrap();
    assert!(evidence.contains(only.to_str().unwrap()), "{evidence}");
    assert!(evidence.contains("only copy"), "{evidence}");
    assert!(evidence.contains("not deleted"), "{evidence}");
    assert_eq!(copy["fix"]["id"], "keep-only-copy");
    for code in ["backup.files_truncated", "backup.status_missing"] {
        assert_eq!(finding(&report, code)["fix"]["id"], "redo-local-backup");
    }
    assert!(!report["findings"]
        .to_string()
        .contains("Turn Off and Delete from iCloud"));
}

#[test]
fn turn_off_and_delete_from_icloud_comes_only_with_the_icloud_message() {
    let desk = Desk::new(Some("{}"));
    let good = made(1);
    desk.backup("good", &good, good.date);
    let report = desk.inspect(&["--message", "Last backup could not be completed"]);
    let first = &report["findings"][0];
    assert_eq!(first["code"], "message.could_not_complete");
    assert_eq!(first["fix"]["id"], "delete-and-redo");
    let steps = first["fix"]["steps"].to_string();
    assert!(steps.contains("Turn Off and Delete from iCloud"), "{steps}");
    // It says to make (and verify) a computer backup before deleting anything in iCloud.
    assert!(steps.contains("first make a computer backup"), "{steps}");
    assert!(steps.contains("ibackup verify"), "{steps}");
}

// 2. A backup in progress is not broken.

#[test]
fn an_unfinished_backup_written_just_now_is_in_progress() {
    let desk = Desk::new(Some("{}"));
    let spec = made(0).with(Defect::Unfinished).with(Defect::MissingBlob);
    let folder = desk.backup("writing", &spec, now() - 30);
    let report = desk.inspect(&[]);
    let found = codes(&report);
    assert!(
        found.contains(&"backup.in_progress".to_string()),
        "{found:?}"
    );
    for held in [
        "backup.unfinished",
        "backup.files_missing",
        "backup.only_copy",
        "backup.stale",
    ] {
        assert!(!found.contains(&held.to_string()), "{held} in {found:?}");
    }
    // Nothing asks for a new backup while one is being made.
    assert_eq!(
        fix_ids(&report).first().map(String::as_str),
        Some("wait-for-backup")
    );
    let f = finding(&report, "backup.in_progress");
    assert_eq!(f["fix"]["id"], "wait-for-backup");
    let evidence = f["evidence"].as_str().unwrap();
    assert!(evidence.contains("being written now"), "{evidence}");
    assert!(evidence.contains(folder.to_str().unwrap()), "{evidence}");
    assert!(!fix_ids(&report).contains(&"redo-local-backup".to_string()));
    // The fact behind it is in the report: when the folder was last written to.
    let written = report["backups"][0]["backup"]["last_written"]
        .as_str()
        .unwrap();
    assert!(written.ends_with('Z'), "{written}");
    // verify: still incomplete (exit 1: not restorable yet), and it says why.
    let out = desk.run(&["verify", folder.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{}", out.stdout());
    assert!(
        out.stdout().contains("being written"),
        "verify page:\n{}",
        out.stdout()
    );
}

#[test]
fn a_fresh_snapshot_folder_is_in_progress_too() {
    let desk = Desk::new(None);
    let spec = made(0).with(Defect::SnapshotLeft);
    desk.backup("snapshot", &spec, now() - 60);
    let found = codes(&desk.inspect(&[]));
    assert!(
        found.contains(&"backup.in_progress".to_string()),
        "{found:?}"
    );
    assert!(
        !found.contains(&"backup.unfinished".to_string()),
        "{found:?}"
    );
}

#[test]
fn an_unfinished_backup_last_written_an_hour_ago_is_unfinished() {
    let desk = Desk::new(Some("{}"));
    let spec = made(0).with(Defect::Unfinished);
    let folder = desk.backup("stopped", &spec, now() - 3_600);
    let report = desk.inspect(&[]);
    let found = codes(&report);
    assert!(
        found.contains(&"backup.unfinished".to_string()),
        "{found:?}"
    );
    assert!(
        !found.contains(&"backup.in_progress".to_string()),
        "{found:?}"
    );
    assert_eq!(
        finding(&report, "backup.unfinished")["fix"]["id"],
        "redo-local-backup"
    );
    assert!(found.contains(&"backup.only_copy".to_string()), "{found:?}");
    let out = desk.run(&["verify", folder.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    assert!(!out.stdout().contains("being written"), "{}", out.stdout());
}

// 3. The words iOS showed help with no phone and no backup.

#[test]
fn a_message_with_no_phone_and_no_backup_folder_gives_its_fixes() {
    let desk = Desk::new(None);
    let missing = desk.dir.path().join("no such folder");
    for dir in [desk.backups(), missing] {
        let out = desk.run_in(
            &dir,
            &["inspect", "--message", "Backup needs restart", "--json"],
        );
        assert_eq!(out.code(), Some(0), "{}", out.stderr());
        let report = out.json();
        assert_eq!(report["device"], Value::Null);
        assert_eq!(report["backups"].as_array().unwrap().len(), 0);
        let first = &report["findings"][0];
        assert_eq!(first["code"], "message.needs_restart");
        assert_eq!(first["fix"]["id"], "backup-restart");
        let text = desk.run_in(&dir, &["inspect", "--message", "Backup needs restart"]);
        assert_eq!(text.code(), Some(0), "{}", text.stderr());
        assert!(
            text.stdout().contains("Restart the stuck iCloud backup"),
            "{}",
            text.stdout()
        );
    }
    // Without a message there is still nothing to look at: the old error stands.
    let out = desk.run(&["inspect", "--json"]);
    assert_eq!(out.code(), Some(2));
    assert!(
        out.stdout().contains("backup.none_found"),
        "{}",
        out.stdout()
    );
}

// 4. iOS updates only for the phones that need them.

#[test]
fn preparing_on_a_phone_past_the_fix_advises_no_update() {
    let desk = Desk::new(Some(
        r#"{ "ios_version": "26.1", "build_version": "23B85" }"#,
    ));
    let good = made(1);
    desk.backup("good", &good, good.date);
    let report = desk.inspect(&["--message", "stuck on Preparing"]);
    let first = &report["findings"][0];
    assert_eq!(first["code"], "message.preparing");
    let ids = fix_ids(&report);
    assert!(
        !ids.iter().any(|id| id.starts_with("update-ios")),
        "{ids:?}"
    );
    assert_eq!(first["fix"]["id"], "wifi-power");
    let evidence = first["evidence"].as_str().unwrap();
    assert!(evidence.contains("runs iOS 26.1"), "{evidence}");
    assert!(evidence.contains("not the fix"), "{evidence}");
}

#[test]
fn overnight_pauses_on_18_0_1_advise_no_update() {
    let desk = Desk::new(Some(r#"{ "ios_version": "18.0.1" }"#));
    let good = made(1);
    desk.backup("good", &good, good.date);
    let report = desk.inspect(&["--message", "backup paused"]);
    assert_eq!(report["findings"][0]["code"], "message.pauses_overnight");
    let ids = fix_ids(&report);
    assert!(
        !ids.iter().any(|id| id.starts_with("update-ios")),
        "{ids:?}"
    );
}

#[test]
fn preparing_on_26_0_1_advises_the_update() {
    let desk = Desk::new(Some(r#"{ "ios_version": "26.0.1" }"#));
    let good = made(1);
    desk.backup("good", &good, good.date);
    let report = desk.inspect(&["--message", "Preparing"]);
    let first = &report["findings"][0];
    assert_eq!(first["fix"]["id"], "update-ios");
    let evidence = first["evidence"].as_str().unwrap();
    assert!(evidence.contains("has this bug"), "{evidence}");
}

#[test]
fn preparing_with_no_phone_advises_the_update_conditionally() {
    let desk = Desk::new(None);
    let report = desk.inspect(&["--message", "Preparing"]);
    let first = &report["findings"][0];
    assert_eq!(first["fix"]["id"], "update-ios-if-affected");
    let evidence = first["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("If your iPhone runs iOS 26.0.x"),
        "{evidence}"
    );
    let steps = first["fix"]["steps"].to_string();
    assert!(steps.contains("Settings > General > About"), "{steps}");
    assert!(!fix_ids(&report).contains(&"update-ios".to_string()));
}

// 5. A big backup against free iCloud, with and without the camera roll.

#[test]
fn a_big_backup_is_measured_without_its_camera_roll() {
    let desk = Desk::new(None);
    let spec = made(1);
    let backup = desk.backup("big", &spec, spec.date);
    // One 6 GB video in the camera roll, written sparse so the test costs no disk.
    support::add_sparse_file(
        &backup,
        "CameraRollDomain",
        "Media/DCIM/100APPLE/IMG_0002.MOV",
        6_000_000_000,
    );
    let report = desk.inspect(&[]);
    let declared = report["backups"][0]["size"]["declared_bytes"]
        .as_u64()
        .unwrap();
    let camera: u64 = report["backups"][0]["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["domain"] == "CameraRollDomain")
        .map(|d| d["bytes"].as_u64().unwrap())
        .sum();
    assert!(camera >= 6_000_000_000);
    let f = finding(&report, "backup.exceeds_free_icloud");
    let evidence = f["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("6.0 GB in this computer backup"),
        "{evidence}"
    );
    // The rest is a few KB: shown in the units ibackup prints sizes in.
    let rest = declared - camera;
    assert!(rest < 1_000_000, "{rest}");
    assert!(
        evidence.contains(" KB without the camera roll"),
        "{evidence}"
    );
    assert!(evidence.contains("would fit"), "{evidence}");
    for synced in [
        "iCloud Photos",
        "iCloud Drive",
        "Contacts",
        "Calendars",
        "Notes",
        "Mail",
        "Safari",
    ] {
        assert!(evidence.contains(synced), "{synced} not in {evidence}");
    }
    assert_eq!(f["fix"]["id"], "icloud-storage");
}
