//! The checks about the backups on this computer: unfinished, missing or cut-short files, a
//! backup being written now, which copy to keep, age, size against free iCloud, a locked
//! (encrypted) backup. Each reads the facts and returns the evidence, one string each time it
//! fires; the table in `rules` says what each means.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::backup::report::Verdict;
use crate::backup::verify::codes;
use crate::diagnose::version::IosVersion;
use crate::diagnose::{Facts, PhoneBackups};
use crate::units::{human_bytes, human_count, plural};

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
pub(super) fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let minutes = now.signed_duration_since(then).num_minutes();
    if minutes < 1 {
        "less than a minute ago".to_string()
    } else {
        format!("{} ago", plural(minutes as u64, "minute", "minutes"))
    }
}

pub(super) fn in_progress(facts: &Facts) -> Vec<String> {
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
pub(super) fn broken_newest<'a>(p: &PhoneBackups<'a>) -> Option<&'a crate::backup::BackupReport> {
    p.newest().filter(|r| r.verdict == Verdict::Incomplete)
}

pub(super) fn keep_older_complete(facts: &Facts) -> Vec<String> {
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

pub(super) fn only_copy(facts: &Facts) -> Vec<String> {
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

pub(super) fn unfinished(facts: &Facts) -> Vec<String> {
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

pub(super) fn files_missing(facts: &Facts) -> Vec<String> {
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

pub(super) fn files_truncated(facts: &Facts) -> Vec<String> {
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

pub(super) fn files_changed(facts: &Facts) -> Vec<String> {
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

pub(super) fn status_missing(facts: &Facts) -> Vec<String> {
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

pub(super) fn newer_than_device(facts: &Facts) -> Vec<String> {
    let Some(device) = facts.device else {
        return Vec::new();
    };
    let Some(phone) = device.ios_version.as_deref().and_then(IosVersion::parse) else {
        return Vec::new();
    };
    facts
        .phones()
        .iter()
        .filter(|p| p.is_device(device))
        .filter_map(|p| {
            let newest = p.newest()?;
            let made_on = newest.backup.ios_version.as_deref()?;
            let backup = IosVersion::parse(made_on)?;
            (backup > phone).then(|| {
                format!(
                    "the newest backup was made on iOS {made_on}; the phone runs iOS {}",
                    device.ios_version.as_deref().unwrap_or("?")
                )
            })
        })
        .collect()
}

pub(super) fn stale(facts: &Facts) -> Vec<String> {
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
pub(super) fn locked(report: &crate::backup::BackupReport) -> bool {
    report.backup.encrypted && !report.manifest_read
}

/// What an iCloud backup leaves out because it already syncs to iCloud (guide, fix 1).
pub const ICLOUD_BACKUP_LEAVES_OUT: &str = "Photos (when iCloud Photos is on), iCloud Drive, \
     Contacts, Calendars, Notes, Mail and Safari";

pub(super) fn exceeds_free_icloud(facts: &Facts) -> Vec<String> {
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

pub(super) fn encrypted_no_password(facts: &Facts) -> Vec<String> {
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
