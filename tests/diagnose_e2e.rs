//! Diagnosis end to end: a simulated iPhone (in this process) with a profile, fixture backups in the
//! backup folder, `ibackup inspect` with no argument; each test names the findings it expects.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{
    finding, finding_codes as codes, write_backup, Defect, Ibackup, Run, SimPhone, Spec,
    SIM_UDID as UDID,
};
use tempfile::TempDir;

/// A desk: maybe a phone, and a backup folder.
struct Scene {
    phone: Option<SimPhone>,
    dir: TempDir,
}

impl Scene {
    /// A phone with `profile` (JSON; None = no phone at all) and the backups of `specs`.
    fn new(profile: Option<&str>, specs: &[Spec]) -> Scene {
        let dir = TempDir::new().unwrap();
        for (i, spec) in specs.iter().enumerate() {
            let folder = dir
                .path()
                .join("backups")
                .join(format!("{}-{i}", spec.udid));
            write_backup(&folder, spec);
            // Its files were last written when it was made, so an unfinished one is not taken
            // for a backup in progress.
            support::set_tree_mtime(&folder, spec.date);
        }
        std::fs::create_dir_all(dir.path().join("backups")).unwrap();
        let phone = profile.map(|json| SimPhone::builder().profile_json(json).start());
        Scene { phone, dir }
    }

    fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// `ibackup ARGS` at this desk: pointed at its phone, or at no daemon when it has none.
    fn run(&self, args: &[&str]) -> Run {
        let command = match &self.phone {
            Some(phone) => phone.command(args),
            None => Ibackup::without_phone(args, self.dir.path()),
        };
        command.env("IBACKUP_BACKUP_DIR", self.backups()).run()
    }

    fn inspect(&self, extra: &[&str]) -> Value {
        let mut args = vec!["inspect", "--json"];
        args.extend(extra);
        let out = self.run(&args);
        assert_eq!(out.code(), Some(0), "{}", out.stderr());
        out.json()
    }
}

/// The backup folder of the scene's first backup.
fn first_backup(scene: &Scene) -> PathBuf {
    let first = std::fs::read_dir(scene.backups()).unwrap().next().unwrap();
    first.unwrap().path()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A complete backup of the simulated phone, made yesterday on its iOS.
fn recent() -> Spec {
    Spec {
        udid: UDID.into(),
        device_name: "Simulated iPhone".into(),
        date: now() - 86_400,
        files: 20,
        ..Spec::default()
    }
}

#[test]
fn a_healthy_phone_and_backup_have_nothing_to_fix() {
    let scene = Scene::new(Some(r#"{ "will_encrypt": true }"#), &[recent()]);
    let report = scene.inspect(&[]);
    assert_eq!(report["schema"], "ibackup.inspect/1");
    assert_eq!(report["device"]["udid"], UDID);
    assert_eq!(report["backups"].as_array().unwrap().len(), 1);
    // The simulated phone's last iCloud backup was a few hours ago: noted, nothing to fix.
    assert_eq!(
        codes(&report),
        ["icloud.not_visible", "icloud.backup_recent"]
    );
    assert_eq!(report["restore"]["ready"], true, "{:#}", report["restore"]);
    let finding = &report["findings"][0];
    assert_eq!(finding["severity"], "info");
    assert_eq!(finding["fix"]["id"], "check-icloud");
    assert!(finding["fix"]["steps"].as_array().unwrap().len() >= 2);
    assert!(finding["evidence"].as_str().unwrap().contains("iCloud"));
}

#[test]
fn ios_18_0_phone_with_a_backup_made_on_18_1() {
    let scene = Scene::new(
        Some(r#"{ "ios_version": "18.0", "build_version": "22A3354" }"#),
        &[Spec {
            ios: "18.1".into(),
            build: "22B83".into(),
            ..recent()
        }],
    );
    let report = scene.inspect(&[]);
    let found = codes(&report);
    assert!(
        found.contains(&"device.ios_backup_bug".to_string()),
        "{found:?}"
    );
    assert!(
        found.contains(&"backup.newer_than_device".to_string()),
        "{found:?}"
    );
    assert_eq!(found[0], "backup.newer_than_device", "errors come first");
    assert_eq!(report["restore"]["ready"], false);
    let blockers = report["restore"]["blockers"].to_string();
    assert!(
        blockers.contains("iOS 18.1") && blockers.contains("iOS 18.0"),
        "{blockers}"
    );
    let bug = finding(&report, "device.ios_backup_bug");
    assert_eq!(bug["fix"]["id"], "update-ios");
    assert!(bug["evidence"].as_str().unwrap().contains("18.0.1"));
}

#[test]
fn low_storage_is_found_with_its_numbers() {
    let scene = Scene::new(
        Some(r#"{ "storage": { "total_bytes": 64000000000, "available_bytes": 850000000 } }"#),
        &[recent()],
    );
    let report = scene.inspect(&[]);
    let f = finding(&report, "device.low_storage");
    assert_eq!(f["evidence"], "850 MB free of 64 GB");
    assert_eq!(f["fix"]["id"], "free-phone-space");
}

#[test]
fn low_battery_not_charging() {
    let scene = Scene::new(
        Some(r#"{ "battery": { "percent": 9, "charging": false, "external_power": false } }"#),
        &[recent()],
    );
    let found = codes(&scene.inspect(&[]));
    assert!(
        found.contains(&"device.battery_low".to_string()),
        "{found:?}"
    );
    assert!(
        found.contains(&"device.not_charging".to_string()),
        "{found:?}"
    );
}

#[test]
fn find_my_on_blocks_a_restore() {
    let scene = Scene::new(Some(r#"{ "find_my": true }"#), &[recent()]);
    let report = scene.inspect(&[]);
    assert!(codes(&report).contains(&"device.find_my_on".to_string()));
    assert_eq!(report["restore"]["ready"], false);
    // verify with the phone connected: complete, but not restorable to it.
    let backup = first_backup(&scene);
    let out = scene.run(&["verify", backup.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    let text = out.stdout();
    assert!(text.contains("Not ready to restore"), "{text}");
    assert!(text.contains("Find My is on"), "{text}");
}

#[test]
fn verify_with_a_ready_phone_exits_0() {
    let scene = Scene::new(Some("{}"), &[recent()]);
    let backup = first_backup(&scene);
    let out = scene.run(&["verify", backup.to_str().unwrap(), "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stdout());
    let value = out.json();
    assert_eq!(value["schema"], "ibackup.verify/1");
    assert_eq!(value["restore"]["ready"], true);
    assert_eq!(value["restore"]["device"], UDID);
}

#[test]
fn an_unfinished_backup_of_the_phone() {
    let scene = Scene::new(
        Some("{}"),
        &[recent().with(Defect::Unfinished).with(Defect::MissingBlob)],
    );
    let report = scene.inspect(&[]);
    let found = codes(&report);
    for code in ["backup.unfinished", "backup.files_missing", "backup.stale"] {
        assert!(found.contains(&code.to_string()), "{code} not in {found:?}");
    }
    let unfinished = &report["findings"][0];
    assert_eq!(unfinished["code"], "backup.unfinished");
    assert_eq!(unfinished["fix"]["id"], "redo-local-backup");
    assert_eq!(unfinished["then"][0], "finder-backup");
    assert_eq!(report["restore"]["ready"], false);
}

#[test]
fn no_local_backup_of_the_connected_phone() {
    let other = Spec {
        udid: "00008030-000000000000002E".into(),
        device_name: "Someone else's iPhone".into(),
        ..recent()
    };
    let scene = Scene::new(Some("{}"), &[other]);
    let report = scene.inspect(&[]);
    assert!(codes(&report).contains(&"device.no_local_backup".to_string()));
    assert_eq!(
        report["backups"].as_array().unwrap().len(),
        0,
        "only this phone's backups"
    );
    assert_eq!(report["restore"], Value::Null);
}

#[test]
fn a_stale_backup_is_found() {
    let scene = Scene::new(
        Some("{}"),
        &[Spec {
            date: now() - 40 * 86_400,
            ..recent()
        }],
    );
    let report = scene.inspect(&[]);
    let stale = finding(&report, "backup.stale");
    assert!(
        stale["evidence"].as_str().unwrap().contains("40 days old"),
        "{stale}"
    );
}

#[test]
fn an_unpaired_phone_says_how_to_pair() {
    let scene = Scene::new(Some(r#"{ "paired": false }"#), &[recent()]);
    let report = scene.inspect(&[]);
    assert!(codes(&report).contains(&"device.not_paired".to_string()));
    assert_eq!(report["device"]["paired"], false);
    let notes = report["restore"]["notes"].to_string();
    assert!(notes.contains("ibackup pair"), "{notes}");
}

#[test]
fn every_message_steers_the_fixes_typos_included() {
    let scene = Scene::new(Some("{}"), &[recent()]);
    let cases = [
        (
            "Not Enough iCloud Storage",
            "message.storage_full",
            "icloud-storage",
        ),
        (
            "not enuogh icloud storage",
            "message.storage_full",
            "icloud-storage",
        ),
        (
            "“Backup needs restart”",
            "message.needs_restart",
            "backup-restart",
        ),
        (
            "backup neds restrat",
            "message.needs_restart",
            "backup-restart",
        ),
        (
            "Last backup could not be completed",
            "message.could_not_complete",
            "delete-and-redo",
        ),
        (
            "last backup couldnt be completed",
            "message.could_not_complete",
            "delete-and-redo",
        ),
        ("stuck at 0%", "message.stuck_at_zero", "wifi-power"),
        // The phone runs iOS 17.5.1, which never had the "Preparing" bug: no update advised.
        ("Preparing...", "message.preparing", "wifi-power"),
        ("stuck on 'preparing'", "message.preparing", "wifi-power"),
    ];
    for (text, code, fix) in cases {
        let report = scene.inspect(&["--message", text]);
        let first = &report["findings"][0];
        assert_eq!(first["code"], code, "{text}");
        assert_eq!(first["fix"]["id"], fix, "{text}");
    }
    let report = scene.inspect(&["--message", "my screen is purple"]);
    assert_eq!(report["findings"][0]["code"], "message.unrecognized");
}

#[test]
fn a_message_without_a_phone_or_backup_still_helps() {
    let scene = Scene::new(None, &[recent()]);
    let report = scene.inspect(&["--message", "Backup needs restart"]);
    assert_eq!(report["device"], Value::Null);
    let found = codes(&report);
    assert_eq!(found[0], "message.needs_restart");
    assert!(found.contains(&"icloud.not_visible".to_string()));
}

#[test]
fn human_report_for_a_troubled_phone_reads_well() {
    let scene = Scene::new(
        Some(
            r#"{ "ios_version": "18.0", "find_my": true, "battery": { "percent": 12, "charging": false, "external_power": false } }"#,
        ),
        &[recent().with(Defect::Unfinished)],
    );
    let out = scene.run(&["inspect", "--message", "backup needs restart"]);
    assert_eq!(out.code(), Some(0));
    let text = out.stdout();
    for want in [
        "What ibackup found",
        "What to do",
        "1. Restart the stuck iCloud backup",
        "Settings > [your name] > iCloud > iCloud Backup",
        "Not ready to restore to the connected iPhone",
        "Update iOS",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn backups_that_are_not_encrypted_are_mentioned() {
    let scene = Scene::new(Some(r#"{ "will_encrypt": false }"#), &[recent()]);
    let report = scene.inspect(&[]);
    let f = finding(&report, "device.backups_not_encrypted");
    assert!(f["evidence"].as_str().unwrap().contains("Health"));
}

#[test]
fn truncated_files_and_a_missing_status_are_found() {
    let scene = Scene::new(
        Some("{}"),
        &[recent().with(Defect::TruncatedBlob).with(Defect::NoStatus)],
    );
    let found = codes(&scene.inspect(&[]));
    for code in ["backup.files_truncated", "backup.status_missing"] {
        assert!(found.contains(&code.to_string()), "{code} not in {found:?}");
    }
}

#[test]
fn a_backup_bigger_than_free_icloud() {
    let scene = Scene::new(Some("{}"), &[recent()]);
    // One 6 GB file, written sparse so the test costs no disk.
    let backup = first_backup(&scene);
    support::add_sparse_file(
        &backup,
        "CameraRollDomain",
        "Media/DCIM/100APPLE/IMG_0001.MOV",
        6_000_000_000,
    );
    let report = scene.inspect(&[]);
    let f = finding(&report, "backup.exceeds_free_icloud");
    assert!(f["evidence"].as_str().unwrap().contains("6.0 GB"), "{f}");
    assert_eq!(f["fix"]["id"], "icloud-storage");
}

#[test]
fn an_encrypted_backup_without_its_password() {
    let scene = Scene::new(None, &[]);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/third-party/synthetic-encrypted-ios26");
    let out = scene.run(&["inspect", sample.to_str().unwrap(), "--json"]);
    let report = out.json_exit(0);
    let f = finding(&report, "backup.encrypted_no_password");
    assert_eq!(f["fix"]["id"], "backup-password");
    assert_eq!(report["backups"][0]["backup"]["encrypted"], true);
}

#[test]
fn a_phone_that_drip_feeds_its_answers_does_not_hold_up_inspect() {
    let scene = Scene::new(Some(r#"{ "fault": "slow_loris" }"#), &[recent()]);
    let started = std::time::Instant::now();
    let report = scene.inspect(&[]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(report["device"], Value::Null);
    let error = report["device_error"].as_str().unwrap();
    assert!(error.contains("timed out"), "{error}");
    // Without the phone, the backups in the folder are still judged.
    assert_eq!(report["backups"].as_array().unwrap().len(), 1);
}
