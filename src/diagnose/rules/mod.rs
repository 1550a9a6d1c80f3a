//! The rules, as data: one row per finding, saying when it fires (in words, for docs/fixes.md),
//! how severe it is, which fixes answer it (first is the fix, the rest are next steps), and the
//! check that reads the facts and writes the evidence. Checks are pure functions, grouped by what
//! they look at: the backups (`backup.rs`), the phone (`device.rs`), iCloud Backup (`icloud.rs`).

mod backup;
mod device;
mod icloud;

use super::{Facts, PhoneBackups};
use crate::backup::report::Severity;

use backup::*;
pub use backup::{being_written, ICLOUD_BACKUP_LEAVES_OUT};
use device::*;
pub use device::{battery_is_low, storage_is_low};
use icloud::*;

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

fn name(backups: &PhoneBackups) -> String {
    backups.name().to_string()
}

fn has_problem(report: &crate::backup::BackupReport, code: &str) -> bool {
    report.problems.iter().any(|p| p.code == code)
}
