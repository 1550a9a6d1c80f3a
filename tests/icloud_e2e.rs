//! iCloud Backup end to end: what the phone reports in com.apple.mobile.backup (on, off, 30 days
//! stale, recent, and an iOS that does not say), shown by `device` and `inspect` as text and
//! JSON with its findings; and the same keys inside a backup (com.apple.mobile.ldbackup.plist,
//! plain and encrypted), reported with no phone connected as of the backup's date.

mod support;
mod support_encrypt;

use std::path::{Path, PathBuf};

use plist::Value as Plist;
use rusqlite::{params, Connection};
use serde_json::Value;
use support::{
    assert_hours_ago, finding, finding_codes as codes, sha1_hex, write_backup, Ibackup, Run,
    SimPhone, Spec,
};
use tempfile::TempDir;

const LDBACKUP: &str = "Library/Preferences/com.apple.mobile.ldbackup.plist";
const APPLE_EPOCH_UNIX: i64 = 978_307_200;
const PASSWORD: &str = "icloud test pässword";

fn icloud_codes(report: &Value) -> Vec<String> {
    codes(report)
        .into_iter()
        .filter(|c| c.starts_with("icloud.") && c != "icloud.not_visible")
        .collect()
}

fn ok_json(run: &Run) -> Value {
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
    run.json()
}

fn ok_text(run: &Run) -> String {
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
    run.stdout()
}

/// `device --json`, `device`, `inspect --json` and `inspect` against one simulated phone, with an
/// empty backup folder.
struct Seen {
    device_json: Value,
    device_text: String,
    inspect_json: Value,
    inspect_text: String,
}

fn look_at(phone: &SimPhone) -> Seen {
    let backups = phone.dir().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let env = [("IBACKUP_BACKUP_DIR", backups.to_str().unwrap())];
    Seen {
        device_json: ok_json(&phone.ibackup(&["device", "--json"])),
        device_text: ok_text(&phone.ibackup(&["device"])),
        inspect_json: ok_json(&phone.ibackup_with(&["inspect", "--json"], &env)),
        inspect_text: ok_text(&phone.ibackup_with(&["inspect"], &env)),
    }
}

fn assert_contains(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn a_recent_icloud_backup_is_shown_with_its_age_and_noted() {
    let phone = SimPhone::builder().start();
    let seen = look_at(&phone);
    let d = &seen.device_json;
    assert_eq!(d["icloud"]["backup_enabled"], true);
    assert_hours_ago(&d["icloud"]["last_backup"], 3);
    assert_hours_ago(&d["backup"]["last_computer_backup"], 50);
    assert_eq!(d["backup"]["requires_encryption"], false);
    // `device` lists warnings only: a recent backup is nothing to fix.
    assert_eq!(d["findings"], serde_json::json!([]));
    assert_contains(
        &seen.device_text,
        &[
            "iCloud      Backup on, last iCloud backup ",
            "(3 hours ago)",
            "Computer    last backup to a computer ",
            "(2 days ago)",
            "Not visible how full iCloud is (Settings > [your name] > iCloud > Manage Account Storage)",
            "Back Up Over Cellular",
        ],
    );
    assert!(!seen.device_text.contains("not readable over the cable"));

    let i = &seen.inspect_json;
    assert_eq!(i["device"]["icloud"], d["icloud"]);
    assert_eq!(icloud_codes(i), ["icloud.backup_recent"]);
    let recent = finding(i, "icloud.backup_recent");
    assert_eq!(recent["severity"], "info");
    assert!(
        recent["evidence"].as_str().unwrap().contains("3 hours ago"),
        "{recent}"
    );
    // What stays unknowable is said plainly, without claiming the dates are unknown.
    let hidden = finding(i, "icloud.not_visible")["evidence"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(hidden.contains("how full iCloud is"), "{hidden}");
    assert!(!hidden.contains("last iCloud backup"), "{hidden}");
    assert_contains(
        &seen.inspect_text,
        &[
            "Backup on, last iCloud backup",
            "i The last iCloud backup of Simulated iPhone finished 3 hours ago",
        ],
    );
}

#[test]
fn icloud_backup_off_is_a_warning_with_the_toggle_fix() {
    let phone = SimPhone::with_profile("icloud-off");
    let seen = look_at(&phone);
    let d = &seen.device_json;
    assert_eq!(d["icloud"]["backup_enabled"], false);
    assert_eq!(icloud_codes(d), ["icloud.backup_off"]);
    let off = finding(d, "icloud.backup_off");
    assert_eq!(off["severity"], "warning");
    assert_eq!(off["fix"]["id"], "icloud-backup-on");
    assert_eq!(off["then"], serde_json::json!(["finder-backup"]));
    let steps = off["fix"]["steps"].to_string();
    assert!(
        steps.contains("Settings > [your name] > iCloud > iCloud Backup")
            && steps.contains("Back Up This iPhone"),
        "{steps}"
    );
    assert_contains(
        &seen.device_text,
        &[
            "iCloud      Backup off, last iCloud backup",
            "(50 days ago)",
            "! iCloud Backup is off on Simulated iPhone",
            "1. Turn on iCloud Backup",
        ],
    );
    assert_eq!(icloud_codes(&seen.inspect_json), ["icloud.backup_off"]);
    assert_contains(
        &seen.inspect_text,
        &["! iCloud Backup is off on Simulated iPhone"],
    );
}

#[test]
fn a_thirty_day_old_icloud_backup_gets_the_guides_fixes_in_order() {
    let phone = SimPhone::with_profile("icloud-stale");
    let seen = look_at(&phone);
    let d = &seen.device_json;
    assert_hours_ago(&d["icloud"]["last_backup"], 720);
    assert_eq!(icloud_codes(d), ["icloud.backup_stale"]);
    let stale = finding(d, "icloud.backup_stale");
    assert_eq!(stale["severity"], "warning");
    assert!(
        stale["evidence"].as_str().unwrap().contains("30 days ago"),
        "{stale}"
    );
    assert_eq!(stale["fix"]["id"], "icloud-storage");
    // iOS 17.5.1 has no known iCloud backup bug: no update in the list.
    assert_eq!(
        stale["then"],
        serde_json::json!(["wifi-power", "backup-restart", "apple-id", "finder-backup"])
    );
    assert_contains(
        &seen.device_text,
        &[
            "(30 days ago)",
            "! The last iCloud backup of Simulated iPhone finished 30 days ago",
            "1. Make room in iCloud",
            "2. Give the backup Wi-Fi and power",
            "3. Restart the stuck iCloud backup",
            "4. Sign out of your Apple Account and back in",
            "5. Back up to your computer",
        ],
    );
    assert!(!seen.device_text.contains("Update iOS"));
    assert_eq!(icloud_codes(&seen.inspect_json), ["icloud.backup_stale"]);
}

#[test]
fn on_an_ios_with_the_backup_bug_the_update_joins_in_the_guides_place() {
    let phone = SimPhone::builder()
        .profile_json(
            r#"{ "ios_version": "18.0", "build_version": "22A3354", "last_icloud_backup_hours_ago": 240 }"#,
        )
        .start();
    let report = ok_json(&phone.ibackup(&["device", "--json"]));
    let stale = finding(&report, "icloud.backup_stale");
    assert_eq!(
        stale["then"],
        serde_json::json!([
            "wifi-power",
            "backup-restart",
            "apple-id",
            "update-ios",
            "finder-backup"
        ])
    );
    assert!(
        stale["evidence"].as_str().unwrap().contains("10 days ago"),
        "{stale}"
    );
}

#[test]
fn dates_sent_as_plist_dates_read_the_same() {
    let phone = SimPhone::builder()
        .profile_json(r#"{ "backup_dates_as": "date", "last_icloud_backup_hours_ago": 200 }"#)
        .start();
    let report = ok_json(&phone.ibackup(&["device", "--json"]));
    assert_hours_ago(&report["icloud"]["last_backup"], 200);
    assert_hours_ago(&report["backup"]["last_computer_backup"], 50);
    assert_eq!(icloud_codes(&report), ["icloud.backup_stale"]);
}

#[test]
fn a_phone_that_does_not_report_icloud_is_unknown_and_nothing_is_guessed() {
    let phone = SimPhone::builder()
        .profile_json(
            r#"{ "icloud_backup": null, "last_icloud_backup_hours_ago": null, "last_computer_backup_hours_ago": null }"#,
        )
        .start();
    let seen = look_at(&phone);
    let d = &seen.device_json;
    assert_eq!(d["icloud"]["backup_enabled"], Value::Null);
    assert_eq!(d["icloud"]["last_backup"], Value::Null);
    assert_eq!(d["backup"]["last_computer_backup"], Value::Null);
    assert_eq!(d["findings"], serde_json::json!([]));
    assert_contains(
        &seen.device_text,
        &[
            "iCloud      this iPhone does not say whether iCloud Backup is on or when it last ran: see Settings > [your name] > iCloud > iCloud Backup",
            "Computer    no backup to a computer recorded",
        ],
    );
    let i = &seen.inspect_json;
    assert_eq!(icloud_codes(i), Vec::<String>::new());
    let hidden = finding(i, "icloud.not_visible")["evidence"]
        .as_str()
        .unwrap();
    assert!(
        hidden.contains("does not report whether iCloud Backup is on"),
        "{hidden}"
    );
}

// ---- The same keys inside a backup, with no phone connected ----

/// com.apple.mobile.ldbackup.plist as iOS writes it (binary), with `keys` set.
fn ldbackup(keys: &[(&str, Plist)]) -> Vec<u8> {
    let mut dict = plist::Dictionary::new();
    dict.insert("WillEncrypt".into(), false.into());
    for (k, v) in keys {
        dict.insert((*k).into(), v.clone());
    }
    let mut out = Vec::new();
    Plist::Dictionary(dict).to_writer_binary(&mut out).unwrap();
    out
}

fn apple_seconds(unix: i64) -> Plist {
    Plist::Integer((unix - APPLE_EPOCH_UNIX).into())
}

/// A plain backup written by the test writer (made 2025-11-20T21:03:11Z) with `contents` as
/// its ldbackup.plist, listed in Manifest.db and stored as its blob.
fn plain_backup(root: &Path, contents: Option<&[u8]>) -> PathBuf {
    let spec = Spec {
        files: 8,
        ..Spec::default()
    };
    let dir = root.join(&spec.udid);
    write_backup(&dir, &spec);
    if let Some(bytes) = contents {
        let id = sha1_hex(&format!("HomeDomain-{LDBACKUP}"));
        let record = support::mbfile(LDBACKUP, 0o100600, Some(bytes.len() as u64), None, false);
        let db = Connection::open(dir.join("Manifest.db")).unwrap();
        db.execute(
            "INSERT INTO Files VALUES (?1, 'HomeDomain', ?2, 1, ?3)",
            params![id, LDBACKUP, record],
        )
        .unwrap();
        drop(db);
        std::fs::create_dir_all(dir.join(&id[..2])).unwrap();
        std::fs::write(dir.join(&id[..2]).join(&id), bytes).unwrap();
    }
    dir
}

const MADE: i64 = 1_763_672_591; // the writer's backup date, 2025-11-20T21:03:11Z

/// `ibackup ARGS` with no phone anywhere (no daemon at a private address, no USB).
fn no_phone(args: &[&str], scratch: &Path) -> Run {
    Ibackup::without_phone(args, scratch)
        .env("IBACKUP_TRANSPORT", "usbmuxd")
        .run()
}

#[test]
fn a_plain_backup_reports_icloud_as_of_its_date() {
    let tmp = TempDir::new().unwrap();
    let contents = ldbackup(&[
        ("CloudBackupEnabled", true.into()),
        ("LastCloudBackupDate", apple_seconds(MADE - 30 * 86_400)),
        ("LastCloudBackupTZ", "Europe/Paris".into()),
    ]);
    let dir = plain_backup(tmp.path(), Some(&contents));
    let path = dir.to_str().unwrap();

    let verify = ok_json(&no_phone(&["verify", path, "--json"], tmp.path()));
    assert_eq!(verify["complete"], true);
    assert_eq!(verify["backup"]["icloud"]["backup_enabled"], true);
    assert_eq!(
        verify["backup"]["icloud"]["last_backup"],
        "2025-10-21T21:03:11Z"
    );
    assert_eq!(
        verify["backup"]["icloud"]["last_backup_time_zone"],
        "Europe/Paris"
    );

    let inspect = ok_json(&no_phone(&["inspect", path, "--json"], tmp.path()));
    assert_eq!(inspect["device"], Value::Null);
    assert_eq!(
        inspect["backups"][0]["backup"]["icloud"],
        verify["backup"]["icloud"]
    );
    assert_eq!(icloud_codes(&inspect), ["icloud.backup_stale"]);
    let stale = finding(&inspect, "icloud.backup_stale");
    let evidence = stale["evidence"].as_str().unwrap();
    assert!(
        evidence.starts_with("as of the backup of Test iPhone made 2025-11-20 21:03 UTC, ")
            && evidence.contains("30 days before (2025-10-21 21:03 UTC)"),
        "{evidence}"
    );
    // Without a phone, the iOS version of the phone is unknown: no update advice.
    assert!(!stale["then"].to_string().contains("update-ios"), "{stale}");

    let text = ok_text(&no_phone(&["inspect", path], tmp.path()));
    assert_contains(
        &text,
        &[
            "  iCloud      Backup on, last iCloud backup ",
            "(30 days before this backup), as of this backup's date",
            "! As of the backup of Test iPhone made 2025-11-20 21:03 UTC",
        ],
    );
}

#[test]
fn a_backup_recording_icloud_off_says_so_as_of_its_date() {
    let tmp = TempDir::new().unwrap();
    // A plist <date> this time, as some iOS versions write it.
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs((MADE - 3_600) as u64);
    let contents = ldbackup(&[
        ("CloudBackupEnabled", false.into()),
        ("LastCloudBackupDate", Plist::Date(when.into())),
    ]);
    let dir = plain_backup(tmp.path(), Some(&contents));
    let inspect = ok_json(&no_phone(
        &["inspect", dir.to_str().unwrap(), "--json"],
        tmp.path(),
    ));
    let icloud = &inspect["backups"][0]["backup"]["icloud"];
    assert_eq!(icloud["backup_enabled"], false);
    assert_eq!(icloud["last_backup"], "2025-11-20T20:03:11Z");
    assert_eq!(icloud_codes(&inspect), ["icloud.backup_off"]);
    let off = finding(&inspect, "icloud.backup_off");
    assert!(
        off["evidence"].as_str().unwrap().starts_with(
            "as of the backup of Test iPhone made 2025-11-20 21:03 UTC, iCloud Backup was off"
        ),
        "{off}"
    );
}

#[test]
fn a_missing_or_garbage_settings_file_is_unknown_not_a_problem() {
    let tmp = TempDir::new().unwrap();
    for (name, contents) in [
        ("missing", None),
        ("garbage", Some(b"\x00\x01 not a plist at all".as_slice())),
        (
            "array",
            Some(b"<plist><array><true/></array></plist>".as_slice()),
        ),
    ] {
        let root = tmp.path().join(name);
        let dir = plain_backup(&root, contents);
        let report = ok_json(&no_phone(
            &["verify", dir.to_str().unwrap(), "--json"],
            tmp.path(),
        ));
        assert_eq!(report["complete"], true, "{name}");
        assert_eq!(report["problems"], serde_json::json!([]), "{name}");
        assert_eq!(
            report["backup"]["icloud"],
            serde_json::json!({ "backup_enabled": null, "last_backup": null, "last_backup_time_zone": null }),
            "{name}"
        );
        let inspect = ok_json(&no_phone(
            &["inspect", dir.to_str().unwrap(), "--json"],
            tmp.path(),
        ));
        assert_eq!(icloud_codes(&inspect), Vec::<String>::new(), "{name}");
        let text = ok_text(&no_phone(&["inspect", dir.to_str().unwrap()], tmp.path()));
        assert_contains(&text, &["  iCloud      not recorded in this backup"]);
    }
}

#[cfg(unix)]
#[test]
fn a_settings_blob_that_is_a_symlink_is_not_followed() {
    let tmp = TempDir::new().unwrap();
    let contents = ldbackup(&[("CloudBackupEnabled", false.into())]);
    let dir = plain_backup(tmp.path(), Some(&contents));
    let id = sha1_hex(&format!("HomeDomain-{LDBACKUP}"));
    let blob = dir.join(&id[..2]).join(&id);
    let outside = tmp.path().join("outside.plist");
    std::fs::rename(&blob, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &blob).unwrap();
    let report = no_phone(&["verify", dir.to_str().unwrap(), "--json"], tmp.path()).json_exit(2);
    assert_eq!(report["backup"]["icloud"]["backup_enabled"], Value::Null);
    // And the same file in place is read: the null above is the symlink's doing.
    std::fs::remove_file(&blob).unwrap();
    std::fs::rename(&outside, &blob).unwrap();
    let report = ok_json(&no_phone(
        &["verify", dir.to_str().unwrap(), "--json"],
        tmp.path(),
    ));
    assert_eq!(report["backup"]["icloud"]["backup_enabled"], false);
}

/// An encrypted backup (the test writer's own crypto) holding an ldbackup.plist.
fn encrypted_backup(root: &Path, contents: Vec<u8>) -> PathBuf {
    let dir = root.join("00008110-ENCRYPTEDICLOUD");
    std::fs::create_dir_all(&dir).unwrap();
    support_encrypt::write_encrypted_backup_with(&dir, PASSWORD.as_bytes(), 1000, 100, |rng| {
        vec![
            ("HomeDomain", "", 2, vec![], 0, None),
            ("HomeDomain", "Library/fifteen", 1, rng.vec(15), 1, None),
            ("HomeDomain", LDBACKUP, 1, contents, 4, None),
        ]
    });
    dir
}

#[test]
fn an_encrypted_backup_gives_its_icloud_values_only_with_its_password() {
    let tmp = TempDir::new().unwrap();
    let last = 1_760_000_000; // 2025-10-09T08:53:20Z
    let dir = encrypted_backup(
        tmp.path(),
        ldbackup(&[
            ("CloudBackupEnabled", true.into()),
            ("LastCloudBackupDate", apple_seconds(last)),
        ]),
    );
    let path = dir.to_str().unwrap();
    let with = Ibackup::new(["verify", path, "--json"])
        .env("IBACKUP_PASSWORD", PASSWORD)
        .run();
    let report = ok_json(&with);
    assert_eq!(report["complete"], true);
    assert_eq!(report["backup"]["icloud"]["backup_enabled"], true);
    assert_eq!(
        report["backup"]["icloud"]["last_backup"],
        "2025-10-09T08:53:20Z"
    );
    // The blob on disk is ciphertext: the value came from decrypting it.
    let id = sha1_hex(&format!("HomeDomain-{LDBACKUP}"));
    let blob = std::fs::read(dir.join(&id[..2]).join(&id)).unwrap();
    assert!(!blob.starts_with(b"bplist00"));

    let without = Ibackup::new(["verify", path, "--json"]).run();
    let report = without.json_exit(2);
    assert_eq!(report["backup"]["icloud"]["backup_enabled"], Value::Null);
    assert_eq!(report["backup"]["icloud"]["last_backup"], Value::Null);

    let text = no_phone(&["inspect", path], tmp.path()).stdout();
    assert_contains(
        &text,
        &["iCloud      unknown: the backup is encrypted and no password was given"],
    );

    // A wrong key for that one file (its blob replaced by other ciphertext) is unknown too.
    let other = support_encrypt::encrypt(&[7u8; 32], b"not the settings");
    std::fs::write(dir.join(&id[..2]).join(&id), other).unwrap();
    let report = Ibackup::new(["verify", path, "--json"])
        .env("IBACKUP_PASSWORD", PASSWORD)
        .run()
        .json_exit(1);
    assert_eq!(report["backup"]["icloud"]["backup_enabled"], Value::Null);
}
