//! The rules, as data: one row per finding, saying when it fires (in words, for docs/fixes.md),
//! how severe it is, which fixes answer it (first is the fix, the rest are next steps), and the
//! check that reads the facts and writes the evidence. Checks are pure functions.

use chrono::{DateTime, Duration, Utc};

use super::version::{BackupBug, IosVersion};
use super::{Facts, PhoneBackups};
use crate::backup::report::{Severity, Verdict};
use crate::backup::verify::codes;
use crate::device::info::{Battery, Storage};
use crate::mobile_backup::IcloudBackup;
use crate::units::{human_age, human_bytes, human_count, plural};

/// A backup older than this is stale.
pub const STALE_DAYS: i64 = 7;
/// The free iCloud tier (guide, fix 1).
pub const FREE_ICLOUD_BYTES: u64 = 5_000_000_000;
/// Free space under this, or under [`LOW_STORAGE_PERCENT`] of the phone, is low.
pub const LOW_STORAGE_BYTES: u64 = 2_000_000_000;
pub const LOW_STORAGE_PERCENT: u64 = 5;
/// Battery under this, not charging, is low.
pub const LOW_BATTERY_PERCENT: u64 = 20;
/// A backup that has not finished and whose folder was written to less than this long ago is
/// taken to be in progress (docs/diagnosis.md): Finder and iTunes add blobs every few seconds
/// while a backup runs, and a stall of 10 minutes is long enough to call it stopped.
pub const IN_PROGRESS_MINUTES: i64 = 10;

/// The rules that judge a backup as broken: they wait while the newest backup of a phone is
/// being written (a backup in progress has not finished and lacks files by nature), and
/// `backup.in_progress` speaks for it instead. `backup.files_changed` is the size-mismatch
/// rule's sibling; naming a code no rule has is harmless.
pub const HELD_WHILE_WRITTEN: &[&str] = &[
    "backup.unfinished",
    "backup.files_missing",
    "backup.files_truncated",
    "backup.files_changed",
    "backup.status_missing",
    "backup.keep_older_complete",
    "backup.only_copy",
    // "No complete backup" or "the last one is old" is what the backup being written answers:
    // advising a new backup while one is running would be advice against the facts.
    "backup.stale",
];

/// An iCloud backup that finished within this many hours is recent.
pub const ICLOUD_RECENT_HOURS: i64 = 24;

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
        fixes: &["redo-local-backup", "finder-backup"],
        check: unfinished,
    },
    Rule {
        code: "backup.files_missing",
        severity: Severity::Error,
        when: "Files the newest backup's manifest lists are not in the folder.",
        fixes: &["redo-local-backup", "finder-backup"],
        check: files_missing,
    },
    Rule {
        code: "backup.files_truncated",
        severity: Severity::Error,
        when: "Files of the newest backup have another size on disk than the manifest states and their content shows they were cut short (a SQLite database short of the pages its header counts, a plist without its ending, an encrypted file of broken blocks), or cannot show that they were not.",
        fixes: &["redo-local-backup", "finder-backup"],
        check: files_truncated,
    },
    Rule {
        code: "backup.status_missing",
        severity: Severity::Error,
        when: "The newest backup has no Status.plist, so nothing shows it finished.",
        fixes: &["redo-local-backup", "finder-backup"],
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
        when: "The newest backup of a phone is bigger than the free 5 GB iCloud tier. The evidence gives its size with and without the camera roll (`CameraRollDomain`), since an iCloud backup leaves out what already syncs (Photos when iCloud Photos is on, iCloud Drive, Contacts, Calendars, Notes, Mail, Safari).",
        fixes: &["icloud-storage"],
        check: exceeds_free_icloud,
    },
    Rule {
        code: "backup.encrypted_no_password",
        severity: Severity::Warning,
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
        when: "A phone is connected or an iOS message was given: how full iCloud is (and whether Wi-Fi is up or Back Up Over Cellular is on) cannot be read over USB; nor, when the phone does not report it (older iOS, or not trusted), whether iCloud Backup is on and when it last ran.",
        fixes: &["check-icloud"],
        check: icloud_not_visible,
    },
    Rule {
        code: "backup.in_progress",
        severity: Severity::Warning,
        when: "The newest backup of a phone has not finished (Status.plist not `finished`, or missing, or a `Snapshot/` folder left) and its folder was written to in the last 10 minutes: a backup is being written now, so it is not judged as broken.",
        fixes: &["wait-for-backup"],
        check: in_progress,
    },
    Rule {
        code: "backup.keep_older_complete",
        severity: Severity::Warning,
        when: "The newest backup of a phone is incomplete but an older backup of the same phone is complete: that one must be kept.",
        fixes: &["keep-complete-backup"],
        check: keep_older_complete,
    },
    Rule {
        code: "backup.only_copy",
        severity: Severity::Warning,
        when: "The newest backup of a phone is incomplete and no backup of it is complete: the broken folder is the only copy and must be kept (moved aside, not deleted) until a new backup verifies.",
        fixes: &["keep-only-copy"],
        check: only_copy,
    },
    Rule {
        code: "icloud.backup_off",
        severity: Severity::Warning,
        when: "iCloud Backup is off (com.apple.mobile.backup CloudBackupEnabled is false): on the connected phone, or with no phone connected, as of the newest backup's date (from its com.apple.mobile.ldbackup.plist).",
        fixes: &["icloud-backup-on", "finder-backup"],
        check: icloud_backup_off,
    },
    Rule {
        code: "icloud.backup_stale",
        severity: Severity::Warning,
        when: "iCloud Backup is on but the last iCloud backup (LastCloudBackupDate) finished more than 7 days ago, or never; with no phone connected, judged as of the newest backup's date. The phone's iOS has no known iCloud backup bug.",
        fixes: &[
            "icloud-storage",
            "wifi-power",
            "backup-restart",
            "apple-id",
            "finder-backup",
        ],
        check: icloud_backup_stale,
    },
    Rule {
        code: "icloud.backup_stale",
        severity: Severity::Warning,
        when: "As above, on a connected phone whose iOS has a known iCloud backup bug (18.0, 26.0.x): updating iOS joins the fixes, in the guide's place.",
        fixes: &[
            "icloud-storage",
            "wifi-power",
            "backup-restart",
            "apple-id",
            "update-ios",
            "finder-backup",
        ],
        check: icloud_backup_stale_ios_bug,
    },
    Rule {
        code: "icloud.backup_recent",
        severity: Severity::Info,
        when: "The last iCloud backup finished less than a day ago (from the phone, or as recorded in the newest backup).",
        fixes: &["check-icloud"],
        check: icloud_backup_recent,
    },
    Rule {
        code: "backup.files_changed",
        severity: Severity::Warning,
        when: "Files of the newest backup have another size on disk than the manifest states, but their content is whole (a database written to while it was copied): the backup is still complete.",
        fixes: &["finder-backup"],
        check: files_changed,
    },
];

/// Whether `report` looks like a backup being written now: it has not finished (Status.plist
/// not `finished` or missing, or a Snapshot/ left) and its folder was written to within
/// [`IN_PROGRESS_MINUTES`] of `now`. A time more than that far in the future (a wrong clock)
/// does not count.
pub fn being_written(report: &crate::backup::BackupReport, now: DateTime<Utc>) -> bool {
    let unfinished = [
        codes::UNFINISHED,
        codes::SNAPSHOT_LEFT,
        codes::STATUS_MISSING,
    ]
    .iter()
    .any(|code| has_problem(report, code));
    let window = Duration::minutes(IN_PROGRESS_MINUTES);
    unfinished
        && report.backup.last_written.is_some_and(|written| {
            let age = now.signed_duration_since(written);
            age <= window && age >= -window
        })
}

/// How long ago, in words: "just now", "4 minutes ago".
fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let minutes = now.signed_duration_since(then).num_minutes();
    if minutes < 1 {
        "less than a minute ago".to_string()
    } else {
        format!("{} ago", plural(minutes as u64, "minute", "minutes"))
    }
}

fn in_progress(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            let written = newest.backup.last_written?;
            being_written(newest, facts.now).then(|| {
                format!(
                    "a backup of {} is being written now: {} has not finished and was last \
                     written to {}; wait for it to finish, then verify it",
                    name(p),
                    newest.backup.path,
                    ago(facts.now, written)
                )
            })
        })
        .collect()
}

/// The newest backup of the phone, when it is incomplete (not unchecked: an encrypted backup
/// without its password is not known to be broken).
fn broken_newest<'a>(p: &PhoneBackups<'a>) -> Option<&'a crate::backup::BackupReport> {
    p.newest().filter(|r| r.verdict == Verdict::Incomplete)
}

fn keep_older_complete(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let broken = broken_newest(p)?;
            let good = p.newest_complete()?;
            let when = good
                .backup
                .date
                .map(|d| format!(" from {}", d.format("%-d %b %Y")))
                .unwrap_or_default();
            Some(format!(
                "the newest backup of {} ({}) is incomplete, but the older backup{when} at {} is \
                 complete: keep that one where it is, it is the one to restore from; set aside \
                 only the broken one",
                name(p),
                broken.backup.path,
                good.backup.path
            ))
        })
        .collect()
}

fn only_copy(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let broken = broken_newest(p)?;
            if p.newest_complete().is_some() {
                return None;
            }
            Some(if p.backups.len() == 1 {
                format!(
                    "the only backup of {} here, {}, is incomplete, but it is still the only \
                     copy: keep it (moved aside, not deleted) until a new backup verifies complete",
                    name(p),
                    broken.backup.path
                )
            } else {
                format!(
                    "none of the {} backups of {} here is complete: the newest, {}, may hold the \
                     only copy of recent data, so keep it (moved aside, not deleted) and the \
                     others until a new backup verifies complete",
                    human_count(p.backups.len() as u64),
                    name(p),
                    broken.backup.path
                )
            })
        })
        .collect()
}

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
            let wrong = newest
                .files
                .size_mismatch
                .iter()
                .filter(|m| m.judged.is_error())
                .count() as u64;
            (wrong > 0).then(|| {
                format!(
                    "{} of the newest backup of {} {} the wrong size and cut short (or of a kind whose content cannot tell)",
                    plural(wrong, "file", "files"),
                    name(p),
                    if wrong == 1 { "has" } else { "have" }
                )
            })
        })
        .collect()
}

fn files_changed(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            let changed = newest
                .files
                .size_mismatch
                .iter()
                .filter(|m| !m.judged.is_error())
                .count() as u64;
            (changed > 0).then(|| {
                format!(
                    "{} of the newest backup of {} changed while it was copied: another size than \
                     the manifest states, whole content",
                    plural(changed, "file", "files"),
                    name(p)
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
            // An encrypted backup read without its password is not known to be incomplete:
            // `backup.encrypted_no_password` asks for the password first.
            None if p.newest().is_some_and(locked) => None,
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

/// Whether a backup's file list stayed unread because it is encrypted and no password was given.
fn locked(report: &crate::backup::BackupReport) -> bool {
    report.backup.encrypted && !report.manifest_read
}

/// What an iCloud backup leaves out because it already syncs to iCloud (guide, fix 1).
pub const ICLOUD_BACKUP_LEAVES_OUT: &str = "Photos (when iCloud Photos is on), iCloud Drive, \
     Contacts, Calendars, Notes, Mail and Safari";

fn exceeds_free_icloud(facts: &Facts) -> Vec<String> {
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let newest = p.newest()?;
            let bytes = newest.size.declared_bytes;
            if bytes <= FREE_ICLOUD_BYTES {
                return None;
            }
            let camera_roll: u64 = newest
                .domains
                .iter()
                .filter(|d| d.domain == "CameraRollDomain")
                .map(|d| d.bytes)
                .sum();
            let without = bytes.saturating_sub(camera_roll);
            let verdict = if without > FREE_ICLOUD_BYTES {
                "even without the camera roll it is more than the free 5 GB of iCloud"
            } else {
                "more than the free 5 GB of iCloud, though without the camera roll it would fit"
            };
            Some(format!(
                "{} in this computer backup of {}, {} without the camera roll: {verdict}. An \
                 iCloud backup leaves out what already syncs to iCloud ({}), so with iCloud \
                 Photos on it needs about the smaller figure",
                human_bytes(bytes),
                name(p),
                human_bytes(without),
                ICLOUD_BACKUP_LEAVES_OUT
            ))
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
            newest.backup.encrypted.then(|| {
                if locked(newest) {
                    format!(
                        "the newest backup of {} is encrypted: without its password its files \
                         could not be checked",
                        name(p)
                    )
                } else {
                    format!("the newest backup of {} is encrypted", name(p))
                }
            })
        })
        .collect()
}

fn ios_backup_bug(facts: &Facts) -> Vec<String> {
    phone_ios_bug(facts)
        .map(|(text, bug)| format!("the phone runs iOS {text}: {bug}"))
        .into_iter()
        .collect()
}

/// The connected phone's iOS version and its known iCloud backup bug, if it has one.
fn phone_ios_bug<'a>(facts: &Facts<'a>) -> Option<(&'a str, &'static str)> {
    let text = facts.device.and_then(|d| d.ios_version.as_deref())?;
    let v = IosVersion::parse(text)?;
    let bug = if BackupBug::OvernightPause.affects(&v) {
        "iOS 18.0 can pause iCloud backups overnight for good; 18.0.1 fixed it"
    } else if BackupBug::StuckPreparing.affects(&v) {
        "iOS 26.0 can leave iCloud backups stuck on \"Preparing\"; 26.1 fixed it"
    } else {
        return None;
    };
    Some((text, bug))
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
    const QUOTA: &str = "how full iCloud is, whether Wi-Fi is up and whether Back Up Over \
                         Cellular is on cannot be read over USB";
    let evidence = match facts.device {
        None if facts.message.is_none() => return Vec::new(),
        None => format!("{QUOTA}; with no phone connected, neither can iCloud Backup's state now"),
        Some(d) => match &d.icloud {
            Some(icloud) if !icloud.is_unknown() => QUOTA.to_string(),
            Some(_) => format!(
                "this phone does not report whether iCloud Backup is on or when it last ran \
                 (older iOS), and {QUOTA}"
            ),
            None => format!(
                "whether iCloud Backup is on stays hidden until the phone trusts this \
                 computer, and {QUOTA}"
            ),
        },
    };
    vec![evidence]
}

/// Where what is known of iCloud Backup comes from: the connected phone now, or with no phone,
/// the newest backup of each phone that recorded it, as of that backup's date.
enum IcloudSource<'a> {
    Phone {
        name: String,
        icloud: &'a IcloudBackup,
    },
    Backup {
        name: String,
        date: DateTime<Utc>,
        icloud: &'a IcloudBackup,
    },
}

impl IcloudSource<'_> {
    fn icloud(&self) -> &IcloudBackup {
        match self {
            IcloudSource::Phone { icloud, .. } | IcloudSource::Backup { icloud, .. } => icloud,
        }
    }

    /// "as of the backup of Alex's iPhone made 2026-11-20 21:03 UTC, ".
    fn as_of(&self) -> String {
        match self {
            IcloudSource::Phone { .. } => String::new(),
            IcloudSource::Backup { name, date, .. } => {
                format!("as of the backup of {name} made {}, ", utc_minutes(date))
            }
        }
    }
}

fn utc_minutes(date: &DateTime<Utc>) -> String {
    date.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn icloud_sources<'a>(facts: &Facts<'a>) -> Vec<IcloudSource<'a>> {
    if let Some(device) = facts.device {
        return device
            .icloud
            .as_ref()
            .map(|icloud| IcloudSource::Phone {
                name: device.name.clone().unwrap_or_else(|| "this iPhone".into()),
                icloud,
            })
            .into_iter()
            .collect();
    }
    facts
        .phones()
        .iter()
        .filter_map(|p| {
            let report = p.backups.iter().find(|r| !r.backup.icloud.is_unknown())?;
            Some(IcloudSource::Backup {
                name: name(p),
                date: report.backup.date?,
                icloud: &report.backup.icloud,
            })
        })
        .collect()
}

fn icloud_backup_off(facts: &Facts) -> Vec<String> {
    icloud_sources(facts)
        .iter()
        .filter(|s| s.icloud().backup_enabled == Some(false))
        .map(|s| match s {
            IcloudSource::Phone { name, .. } => {
                format!("iCloud Backup is off on {name}: nothing of it goes to iCloud")
            }
            IcloudSource::Backup { .. } => format!(
                "{}iCloud Backup was off (it may have been turned on since)",
                s.as_of()
            ),
        })
        .collect()
}

/// The evidence that iCloud Backup is on but has not finished a backup for more than
/// [`STALE_DAYS`]: judged now for the phone, and as of the backup's date for a backup.
fn icloud_stale_evidence(facts: &Facts) -> Vec<String> {
    icloud_sources(facts)
        .iter()
        .filter(|s| s.icloud().backup_enabled == Some(true))
        .filter_map(|s| {
            let (name, then) = match s {
                IcloudSource::Phone { name, .. } => (name, facts.now),
                IcloudSource::Backup { name, date, .. } => (name, *date),
            };
            let Some(last) = s.icloud().last_backup else {
                return Some(format!(
                    "{}iCloud Backup is on but no iCloud backup of {name} has finished",
                    s.as_of()
                ));
            };
            let age = then.signed_duration_since(last);
            (age > Duration::days(STALE_DAYS)).then(|| match s {
                IcloudSource::Phone { .. } => format!(
                    "the last iCloud backup of {name} finished {} ago ({})",
                    human_age(age.num_seconds()),
                    utc_minutes(&last)
                ),
                IcloudSource::Backup { .. } => format!(
                    "{}the last iCloud backup had finished {} before ({}); later ones cannot \
                     be seen without the phone",
                    s.as_of(),
                    human_age(age.num_seconds()),
                    utc_minutes(&last)
                ),
            })
        })
        .collect()
}

fn icloud_backup_stale(facts: &Facts) -> Vec<String> {
    if phone_ios_bug(facts).is_some() {
        return Vec::new();
    }
    icloud_stale_evidence(facts)
}

fn icloud_backup_stale_ios_bug(facts: &Facts) -> Vec<String> {
    if phone_ios_bug(facts).is_none() {
        return Vec::new();
    }
    icloud_stale_evidence(facts)
}

fn icloud_backup_recent(facts: &Facts) -> Vec<String> {
    icloud_sources(facts)
        .iter()
        .filter(|s| s.icloud().backup_enabled != Some(false))
        .filter_map(|s| {
            let last = s.icloud().last_backup?;
            let age = facts.now.signed_duration_since(last);
            (age <= Duration::hours(ICLOUD_RECENT_HOURS)).then(|| {
                let ago = human_age(age.num_seconds());
                match s {
                    IcloudSource::Phone { name, .. } => format!(
                        "the last iCloud backup of {name} finished {ago} ago ({})",
                        utc_minutes(&last)
                    ),
                    IcloudSource::Backup { name, .. } => format!(
                        "an iCloud backup of {name} finished {ago} ago ({}), {}the last one",
                        utc_minutes(&last),
                        s.as_of()
                    ),
                }
            })
        })
        .collect()
}
