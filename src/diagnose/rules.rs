//! The rules, as data: one row per finding, saying when it fires (in words, for docs/fixes.md),
//! how severe it is, which fixes answer it (first is the fix, the rest are next steps), and the
//! check that reads the facts and writes the evidence. Checks are pure functions.

use chrono::Duration;

use super::{Facts, PhoneBackups};
use crate::backup::report::Severity;
use crate::backup::verify::codes;
use crate::device::info::{Battery, Storage};
use crate::units::{human_bytes, human_count, plural};

/// A backup older than this is stale.
pub const STALE_DAYS: i64 = 7;
/// The free iCloud tier (guide, fix 1).
pub const FREE_ICLOUD_BYTES: u64 = 5_000_000_000;
/// Free space under this, or under [`LOW_STORAGE_PERCENT`] of the phone, is low.
pub const LOW_STORAGE_BYTES: u64 = 2_000_000_000;
pub const LOW_STORAGE_PERCENT: u64 = 5;
/// Battery under this, not charging, is low.
pub const LOW_BATTERY_PERCENT: u64 = 20;

pub struct Rule {
    pub code: &'static str,
    pub severity: Severity,
    /// When the rule fires, for people reading docs/fixes.md.
    pub when: &'static str,
    /// Fix ids, most useful first.
    pub fixes: &'static [&'static str],
    /// The evidence for each time the rule fires (none: it does not).
    pub check: fn(&Facts) -> Vec<String>,
}

pub const RULES: &[Rule] = &[
    Rule {
        code: "backup.unfinished",
        severity: Severity::Error,
        when: "The newest backup of a phone did not finish: Status.plist says something other than `finished`, or a `Snapshot/` folder is left.",
        fixes: &["delete-and-redo", "finder-backup"],
        check: unfinished,
    },
    Rule {
        code: "backup.files_missing",
        severity: Severity::Error,
        when: "Files the newest backup's manifest lists are not in the folder.",
        fixes: &["delete-and-redo", "finder-backup"],
        check: files_missing,
    },
    Rule {
        code: "backup.files_truncated",
        severity: Severity::Error,
        when: "Files of the newest backup have another size on disk than the manifest states.",
        fixes: &["delete-and-redo", "finder-backup"],
        check: files_truncated,
    },
    Rule {
        code: "backup.status_missing",
        severity: Severity::Error,
        when: "The newest backup has no Status.plist, so nothing shows it finished.",
        fixes: &["delete-and-redo", "finder-backup"],
        check: status_missing,
    },
    Rule {
        code: "backup.newer_than_device",
        severity: Severity::Error,
        when: "The connected phone runs an older iOS than its newest backup was made on: that backup cannot be restored to it.",
        fixes: &["update-before-restore"],
        check: newer_than_device,
    },
    Rule {
        code: "backup.stale",
        severity: Severity::Warning,
        when: "The newest complete backup of a phone is more than 7 days old (or there is no complete one).",
        fixes: &["finder-backup"],
        check: stale,
    },
    Rule {
        code: "backup.exceeds_free_icloud",
        severity: Severity::Info,
        when: "The newest backup of a phone is bigger than the free 5 GB iCloud tier.",
        fixes: &["icloud-storage"],
        check: exceeds_free_icloud,
    },
    Rule {
        code: "backup.encrypted_no_password",
        severity: Severity::Info,
        when: "A backup is encrypted and no password was given, so its files could not be checked.",
        fixes: &["backup-password"],
        check: encrypted_no_password,
    },
    Rule {
        code: "device.ios_backup_bug",
        severity: Severity::Warning,
        when: "The phone runs an iOS with a known iCloud backup bug: 18.0 (fixed in 18.0.1) or 26.0.x (fixed in 26.1).",
        fixes: &["update-ios"],
        check: ios_backup_bug,
    },
    Rule {
        code: "device.low_storage",
        severity: Severity::Warning,
        when: "The phone has less than 2 GB or less than 5% of its storage free.",
        fixes: &["free-phone-space"],
        check: low_storage,
    },
    Rule {
        code: "device.battery_low",
        severity: Severity::Warning,
        when: "The phone's battery is under 20% and not charging.",
        fixes: &["wifi-power"],
        check: battery_low,
    },
    Rule {
        code: "device.not_charging",
        severity: Severity::Info,
        when: "The phone is not on power: the automatic nightly iCloud backup needs power.",
        fixes: &["wifi-power"],
        check: not_charging,
    },
    Rule {
        code: "device.find_my_on",
        severity: Severity::Info,
        when: "Find My is on (com.apple.fmip IsAssociated): a restore needs it off.",
        fixes: &["turn-off-find-my"],
        check: find_my_on,
    },
    Rule {
        code: "device.not_paired",
        severity: Severity::Warning,
        when: "The phone has not trusted this computer, so its storage, battery, backup settings and Find My cannot be read.",
        fixes: &["pair"],
        check: not_paired,
    },
    Rule {
        code: "device.backups_not_encrypted",
        severity: Severity::Info,
        when: "The phone's local backups are not encrypted (WillEncrypt is false), so they leave out saved passwords, Wi-Fi settings, call history and Health data.",
        fixes: &["finder-backup"],
        check: backups_not_encrypted,
    },
    Rule {
        code: "device.no_local_backup",
        severity: Severity::Warning,
        when: "A phone is connected and no backup of it (by UDID) is in the backup folder.",
        fixes: &["finder-backup"],
        check: no_local_backup,
    },
    Rule {
        code: "icloud.not_visible",
        severity: Severity::Info,
        when: "A phone is connected or an iOS message was given: the iCloud side (quota, last iCloud backup) is out of a local tool's sight.",
        fixes: &["check-icloud"],
        check: icloud_not_visible,
    },
];

fn name(backups: &PhoneBackups) -> String {
    backups.name().to_string()
}

fn has_problem(report: &crate::backup::BackupReport, code: &str) -> bool {
    report.problems.iter().any(|p| p.code == code)
}

fn unfinished(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            let state = newest.backup.snapshot_state.as_deref();
            if has_problem(newest, codes::UNFINISHED) {
                Some(match state {
                    Some(state) => format!(
                        "the newest backup of {} says \"{state}\" where a finished one says \"finished\"",
                        name(p)
                    ),
                    None => format!(
                        "the Status.plist of the newest backup of {} has no SnapshotState, so nothing shows that it finished",
                        name(p)
                    ),
                })
            } else if has_problem(newest, codes::SNAPSHOT_LEFT) {
                Some(format!(
                    "a Snapshot folder is left in the newest backup of {}: a backup was interrupted",
                    name(p)
                ))
            } else {
                None
            }
        })
        .collect()
}

fn files_missing(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            let missing = newest.files.missing.len() as u64;
            (missing > 0).then(|| {
                format!(
                    "{} of {} files of the newest backup of {} {} missing",
                    human_count(missing),
                    human_count(newest.files.listed),
                    name(p),
                    if missing == 1 { "is" } else { "are" }
                )
            })
        })
        .collect()
}

fn files_truncated(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            let wrong = newest.files.size_mismatch.len() as u64;
            (wrong > 0).then(|| {
                format!(
                    "{} of the newest backup of {} {} the wrong size",
                    plural(wrong, "file", "files"),
                    name(p),
                    if wrong == 1 { "has" } else { "have" }
                )
            })
        })
        .collect()
}

fn status_missing(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            has_problem(newest, codes::STATUS_MISSING).then(|| {
                format!(
                    "the newest backup of {} has no Status.plist ({})",
                    name(p),
                    newest.backup.path
                )
            })
        })
        .collect()
}

fn newer_than_device(facts: &Facts) -> Vec<String> {
    let Some(device) = facts.device else {
        return Vec::new();
    };
    let Some(phone) = device
        .ios_version
        .as_deref()
        .and_then(super::version::IosVersion::parse)
    else {
        return Vec::new();
    };
    facts
        .phones()
        .iter()
        .filter(|p| p.is_device(device))
        .filter_map(|p| {
            let newest = p.newest()?;
            let made_on = newest.backup.ios_version.as_deref()?;
            let backup = super::version::IosVersion::parse(made_on)?;
            (backup > phone).then(|| {
                format!(
                    "the newest backup was made on iOS {made_on}; the phone runs iOS {}",
                    device.ios_version.as_deref().unwrap_or("?")
                )
            })
        })
        .collect()
}

fn stale(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| match p.newest_complete() {
            None => Some(format!("there is no complete backup of {}", name(p))),
            Some(report) => {
                let date = report.backup.date?;
                let age = facts.now.signed_duration_since(date);
                (age > Duration::days(STALE_DAYS)).then(|| {
                    format!(
                        "the newest complete backup of {} is {} days old",
                        name(p),
                        age.num_days()
                    )
                })
            }
        })
        .collect()
}

fn exceeds_free_icloud(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            let bytes = newest.size.declared_bytes;
            (bytes > FREE_ICLOUD_BYTES).then(|| {
                format!(
                    "the newest backup of {} holds {}, more than the free 5 GB of iCloud",
                    name(p),
                    human_bytes(bytes)
                )
            })
        })
        .collect()
}

fn encrypted_no_password(facts: &Facts) -> Vec<String> {
    if facts.password_given {
        return Vec::new();
    }
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            newest
                .backup
                .encrypted
                .then(|| format!("the newest backup of {} is encrypted", name(p)))
        })
        .collect()
}

fn ios_backup_bug(facts: &Facts) -> Vec<String> {
    let Some(text) = facts.device.and_then(|d| d.ios_version.as_deref()) else {
        return Vec::new();
    };
    let Some(v) = super::version::IosVersion::parse(text) else {
        return Vec::new();
    };
    let bug = match (v.major(), v.part(1), v.part(2)) {
        (18, 0, 0) => "iOS 18.0 can pause iCloud backups overnight for good; 18.0.1 fixed it",
        (26, 0, _) => "iOS 26.0 can leave iCloud backups stuck on \"Preparing\"; 26.1 fixed it",
        _ => return Vec::new(),
    };
    vec![format!("the phone runs iOS {text}: {bug}")]
}

/// Whether the phone's free space is low: the threshold every command shows and judges by.
pub fn storage_is_low(storage: &Storage) -> bool {
    let low_share = storage.available_bytes.saturating_mul(100)
        < storage.total_bytes.saturating_mul(LOW_STORAGE_PERCENT);
    storage.available_bytes < LOW_STORAGE_BYTES || low_share
}

/// Whether the battery is low and not being charged: the one test every command uses.
pub fn battery_is_low(battery: &Battery) -> bool {
    matches!(
        (battery.percent, battery.charging),
        (Some(percent), Some(false)) if percent < LOW_BATTERY_PERCENT
    )
}

fn low_storage(facts: &Facts) -> Vec<String> {
    match facts.device.and_then(|d| d.storage.as_ref()) {
        Some(storage) if storage_is_low(storage) => vec![format!(
            "{} free of {}",
            human_bytes(storage.available_bytes),
            human_bytes(storage.total_bytes)
        )],
        _ => Vec::new(),
    }
}

fn battery_low(facts: &Facts) -> Vec<String> {
    match facts.device.and_then(|d| d.battery.as_ref()) {
        Some(battery) if battery_is_low(battery) => vec![format!(
            "battery at {}% and not charging",
            battery.percent.unwrap_or_default()
        )],
        _ => Vec::new(),
    }
}

fn not_charging(facts: &Facts) -> Vec<String> {
    let Some(battery) = facts.device.and_then(|d| d.battery.as_ref()) else {
        return Vec::new();
    };
    match battery.external_power {
        Some(false) => vec!["the phone is not connected to power".to_string()],
        _ => Vec::new(),
    }
}

fn find_my_on(facts: &Facts) -> Vec<String> {
    match facts.device.and_then(|d| d.find_my) {
        Some(true) => vec!["Find My iPhone is on".to_string()],
        _ => Vec::new(),
    }
}

fn not_paired(facts: &Facts) -> Vec<String> {
    match facts.device {
        Some(d) if !d.paired => vec![format!(
            "{} has not trusted this computer",
            d.name.as_deref().unwrap_or(&d.udid)
        )],
        _ => Vec::new(),
    }
}

fn backups_not_encrypted(facts: &Facts) -> Vec<String> {
    match facts
        .device
        .and_then(|d| d.backup.as_ref())
        .and_then(|b| b.will_encrypt)
    {
        Some(false) => vec![
            "local backups of this phone are not encrypted, so they leave out saved passwords, \
             Wi-Fi settings, call history and Health data"
                .to_string(),
        ],
        _ => Vec::new(),
    }
}

fn no_local_backup(facts: &Facts) -> Vec<String> {
    let Some(device) = facts.device else {
        return Vec::new();
    };
    if !facts.looked_for_backups || facts.phones().iter().any(|p| p.is_device(device)) {
        return Vec::new();
    }
    vec![format!(
        "no backup of {} ({}) in {}",
        device.name.as_deref().unwrap_or("this iPhone"),
        device.udid,
        facts
            .backup_folder
            .as_deref()
            .unwrap_or("the backup folder")
    )]
}

fn icloud_not_visible(facts: &Facts) -> Vec<String> {
    if facts.device.is_none() && facts.message.is_none() {
        return Vec::new();
    }
    vec!["how full iCloud is and when the last iCloud backup ran cannot be read over USB".into()]
}
