//! The checks about iCloud Backup: on or off, how long since the last iCloud backup finished
//! (from the phone now, or as of a backup's date when no phone is connected), and what stays
//! unknowable over a cable.

use chrono::{DateTime, Duration, Utc};

use super::super::Facts;
use super::*;
use crate::mobile_backup::IcloudBackup;
use crate::units::human_age;

pub(super) fn icloud_not_visible(facts: &Facts) -> Vec<String> {
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
pub(super) enum IcloudSource<'a> {
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

pub(super) fn utc_minutes(date: &DateTime<Utc>) -> String {
    date.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub(super) fn icloud_sources<'a>(facts: &Facts<'a>) -> Vec<IcloudSource<'a>> {
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

pub(super) fn icloud_backup_off(facts: &Facts) -> Vec<String> {
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
pub(super) fn icloud_stale_evidence(facts: &Facts) -> Vec<String> {
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

pub(super) fn icloud_backup_stale(facts: &Facts) -> Vec<String> {
    if phone_ios_bug(facts).is_some() {
        return Vec::new();
    }
    icloud_stale_evidence(facts)
}

pub(super) fn icloud_backup_stale_ios_bug(facts: &Facts) -> Vec<String> {
    if phone_ios_bug(facts).is_none() {
        return Vec::new();
    }
    icloud_stale_evidence(facts)
}

pub(super) fn icloud_backup_recent(facts: &Facts) -> Vec<String> {
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
