//! The checks about the connected phone: its iOS's known backup bugs, storage, battery, power,
//! Find My, trust, encryption of its local backups, and whether this computer holds a backup of
//! it. The thresholds here are the ones every command shows and judges by.

use super::super::Facts;
use super::*;
use crate::device::info::{Battery, Storage};
use crate::diagnose::version::{BackupBug, IosVersion};
use crate::units::human_bytes;

pub(super) fn ios_backup_bug(facts: &Facts) -> Vec<String> {
    phone_ios_bug(facts)
        .map(|(text, bug)| format!("the phone runs iOS {text}: {bug}"))
        .into_iter()
        .collect()
}

/// The connected phone's iOS version and its known iCloud backup bug, if it has one.
pub(super) fn phone_ios_bug<'a>(facts: &Facts<'a>) -> Option<(&'a str, &'static str)> {
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

pub(super) fn low_storage(facts: &Facts) -> Vec<String> {
    match facts.device.and_then(|d| d.storage.as_ref()) {
        Some(storage) if storage_is_low(storage) => vec![format!(
            "{} free of {}",
            human_bytes(storage.available_bytes),
            human_bytes(storage.total_bytes)
        )],
        _ => Vec::new(),
    }
}

pub(super) fn battery_low(facts: &Facts) -> Vec<String> {
    match facts.device.and_then(|d| d.battery.as_ref()) {
        Some(battery) if battery_is_low(battery) => vec![format!(
            "battery at {}% and not charging",
            battery.percent.unwrap_or_default()
        )],
        _ => Vec::new(),
    }
}

pub(super) fn not_charging(facts: &Facts) -> Vec<String> {
    let Some(battery) = facts.device.and_then(|d| d.battery.as_ref()) else {
        return Vec::new();
    };
    match battery.external_power {
        Some(false) => vec!["the phone is not connected to power".to_string()],
        _ => Vec::new(),
    }
}

pub(super) fn find_my_on(facts: &Facts) -> Vec<String> {
    match facts.device.and_then(|d| d.find_my) {
        Some(true) => vec!["Find My iPhone is on".to_string()],
        _ => Vec::new(),
    }
}

pub(super) fn not_paired(facts: &Facts) -> Vec<String> {
    match facts.device {
        Some(d) if !d.paired => vec![format!(
            "{} has not trusted this computer",
            d.name.as_deref().unwrap_or(&d.udid)
        )],
        _ => Vec::new(),
    }
}

pub(super) fn backups_not_encrypted(facts: &Facts) -> Vec<String> {
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

pub(super) fn no_local_backup(facts: &Facts) -> Vec<String> {
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
