//! The text of the phone commands: `ibackup device` (the phone's state, then what the rules
//! found), `ibackup devices` (one line a phone) and `ibackup pair`. The labels "(low)" and the
//! battery warning use the diagnosis's own thresholds, so `device` and `inspect` never disagree.
//! Every value the phone sends (name, UDID, connection type, versions) is shown through
//! [`field`]: escaped, on one line, cut at 1 KB.

use chrono::{DateTime, Utc};

use super::diagnosis::findings_text;
use super::human_bytes;
use super::report::local_date;
use super::text::{field, field_or, Style};
use crate::device::info::Listing;
use crate::device::DeviceState;
use crate::diagnose::rules::{battery_is_low, storage_is_low, STALE_DAYS};
use crate::diagnose::Finding;
use crate::mobile_backup::IcloudBackup;
use crate::units::human_age;

fn or_unknown(value: &Option<String>) -> String {
    field_or(value.as_deref(), "unknown")
}

/// The page for `ibackup device`: the state, then the findings and their fixes, if any.
pub fn device_page(state: &DeviceState, findings: &[Finding], style: Style, quiet: bool) -> String {
    let mut text = device_text(state, style, quiet);
    if !quiet && !findings.is_empty() {
        text.push('\n');
        text.push_str(&findings_text(findings, style));
    }
    text
}

/// The phone's state as a block of labelled lines (also the first section of `inspect`).
pub fn device_text(state: &DeviceState, style: Style, quiet: bool) -> String {
    device_text_at(state, style, quiet, Utc::now())
}

/// "20 Nov 2025, 21:03 (3 hours ago)": a date in local time and how long before `now`.
fn date_and_age(date: &DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "{} ({} ago)",
        local_date(date),
        human_age(now.signed_duration_since(*date).num_seconds())
    )
}

/// [`device_text`] with the ages counted from `now`.
fn device_text_at(state: &DeviceState, style: Style, quiet: bool, now: DateTime<Utc>) -> String {
    let mut text = format!(
        "{} ({}), iOS {} ({})\n",
        style.bold(&field_or(state.name.as_deref(), "iPhone")),
        or_unknown(&state.product_type),
        or_unknown(&state.ios_version),
        or_unknown(&state.build_version),
    );
    if quiet {
        return text;
    }
    let mut line = |label: &str, value: String| text.push_str(&format!("  {label:<11} {value}\n"));
    line("UDID", field(&state.udid));
    line(
        "Connection",
        format!(
            "{} ({})",
            field(&state.connection),
            field(&state.connection_type)
        ),
    );
    if !state.paired {
        line(
            "Paired",
            style.warn("no: storage, battery, backups and Find My stay hidden until it trusts this computer"),
        );
        return text;
    }
    line("Paired", style.good("yes"));
    if let Some(s) = &state.storage {
        let free = format!(
            "{} free of {}",
            human_bytes(s.available_bytes),
            human_bytes(s.total_bytes)
        );
        line(
            "Storage",
            if storage_is_low(s) {
                style.warn(&format!("{free} (low)"))
            } else {
                free
            },
        );
    }
    if let Some(b) = &state.battery {
        let percent = b.percent.map_or("unknown".to_string(), |p| format!("{p}%"));
        let power = match (b.charging, b.external_power) {
            (Some(true), _) => "charging".to_string(),
            (_, Some(true)) => "on power, not charging".to_string(),
            _ => "not charging".to_string(),
        };
        let value = format!("{percent}, {power}");
        line(
            "Battery",
            if battery_is_low(b) {
                style.warn(&value)
            } else {
                value
            },
        );
    }
    if let Some(b) = &state.backup {
        let mut value = match b.will_encrypt {
            Some(true) => "local backups are encrypted",
            Some(false) => "local backups are not encrypted",
            None => "encryption setting unknown",
        }
        .to_string();
        if b.requires_encryption == Some(true) {
            value.push_str(" (a management profile requires it)");
        }
        line("Backups", value);
        line(
            "Computer",
            match &b.last_computer_backup {
                Some(date) => format!("last backup to a computer {}", date_and_age(date, now)),
                None => "no backup to a computer recorded".to_string(),
            },
        );
    }
    let find_my = match state.find_my {
        Some(true) => style.warn("on (turn it off before restoring a backup)"),
        Some(false) => "off".to_string(),
        None => "unknown".to_string(),
    };
    line("Find My", find_my);
    if let Some(icloud) = &state.icloud {
        line("iCloud", icloud_value(icloud, style, now));
    }
    line(
        "Not visible",
        style.dim(
            "how full iCloud is (Settings > [your name] > iCloud > Manage Account Storage), \
             Wi-Fi and Back Up Over Cellular (Settings > [your name] > iCloud > iCloud Backup)",
        ),
    );
    text
}

/// The iCloud line: on or off, and when the last iCloud backup finished; or that the phone
/// does not say, and where Settings shows it.
fn icloud_value(icloud: &IcloudBackup, style: Style, now: DateTime<Utc>) -> String {
    let last = match &icloud.last_backup {
        Some(date) => {
            let value = format!("last iCloud backup {}", date_and_age(date, now));
            if now.signed_duration_since(*date) > chrono::Duration::days(STALE_DAYS) {
                style.warn(&value)
            } else {
                value
            }
        }
        None => "no iCloud backup recorded".to_string(),
    };
    match icloud.backup_enabled {
        Some(true) => format!("Backup on, {last}"),
        Some(false) if icloud.last_backup.is_some() => {
            format!("{}, {last}", style.warn("Backup off"))
        }
        Some(false) => style.warn("Backup off"),
        None if icloud.last_backup.is_some() => format!("Backup on or off: unknown, {last}"),
        None => style.dim(
            "this iPhone does not say whether iCloud Backup is on or when it last ran: see \
             Settings > [your name] > iCloud > iCloud Backup",
        ),
    }
}

/// `ibackup devices`: one line a phone, or what to do when there is none.
pub fn devices_text(listed: &[Listing]) -> String {
    if listed.is_empty() {
        return "No iPhone is connected. Plug one in with a cable and unlock it.\n".to_string();
    }
    let mut text = String::new();
    for phone in listed {
        let known = |v: &Option<String>| field_or(v.as_deref(), "?");
        text.push_str(&format!(
            "{}  {} ({}, iOS {})  via {} ({})\n",
            field(&phone.udid),
            known(&phone.name),
            known(&phone.product_type),
            known(&phone.ios_version),
            field(&phone.connection),
            field(&phone.connection_type),
        ));
    }
    text
}

/// `ibackup pair`: the one line that says it worked and where the record went.
pub fn paired_text(udid: &str, saved_to: &str, style: Style) -> String {
    format!(
        "{} with {}. The pair record was saved to {}.\n",
        style.good("Paired"),
        field(udid),
        field(saved_to)
    )
}

/// `ibackup devices`, after the list: why each phone that could not be read could not, and how
/// many phones were left out past the listing's limit.
pub fn devices_notes(listed: &[Listing], not_shown: usize) -> String {
    let mut text = String::new();
    for phone in listed {
        if let Some(error) = &phone.error {
            text.push_str(&format!(
                "{} could not be read: {}\n",
                field(&phone.udid),
                field(error)
            ));
        }
    }
    if not_shown > 0 {
        text.push_str(&format!(
            "{} more {} not listed: ibackup lists at most {}.\n",
            crate::units::human_count(not_shown as u64),
            if not_shown == 1 {
                "phone is"
            } else {
                "phones are"
            },
            crate::device::info::MAX_LISTED,
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::info::{Battery, Storage};
    use crate::diagnose::device_findings;

    fn phone(available_bytes: u64, percent: u64, charging: bool) -> DeviceState {
        DeviceState {
            schema: "ibackup.device/1".into(),
            udid: "00008110-0000000000000001".into(),
            name: Some("Test iPhone".into()),
            product_type: Some("iPhone14,5".into()),
            ios_version: Some("17.5.1".into()),
            build_version: Some("21F90".into()),
            connection: "usbmuxd".into(),
            connection_type: "USB".into(),
            paired: true,
            pair_record: Some("usbmuxd".into()),
            storage: Some(Storage {
                total_bytes: 32_000_000_000,
                available_bytes,
            }),
            battery: Some(Battery {
                percent: Some(percent),
                charging: Some(charging),
                external_power: Some(charging),
            }),
            backup: None,
            icloud: None,
            find_my: Some(false),
        }
    }

    fn codes(state: &DeviceState) -> Vec<&'static str> {
        device_findings(state, chrono::Utc::now())
            .iter()
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn the_low_labels_and_the_findings_agree() {
        // 3 GB of 32 GB is neither under 2 GB nor under 5% (1.6 GB): no label, no finding.
        let roomy = phone(3_000_000_000, 50, false);
        let text = device_text(&roomy, Style::new(false), false);
        assert!(!text.contains("(low)"), "{text}");
        assert!(!codes(&roomy).contains(&"device.low_storage"));
        // 1.5 GB is under 2 GB: both say so.
        let full = phone(1_500_000_000, 50, false);
        assert!(device_text(&full, Style::new(false), false).contains("1.5 GB free of 32 GB (low)"));
        assert!(codes(&full).contains(&"device.low_storage"));
    }

    #[test]
    fn the_device_page_lists_the_phones_warnings_with_their_fixes() {
        let healthy = phone(50_000_000_000, 80, true);
        assert_eq!(codes(&healthy), Vec::<&str>::new());
        let page = device_page(&healthy, &[], Style::new(false), false);
        assert!(!page.contains("What to do"), "{page}");

        let weak = phone(50_000_000_000, 9, false);
        let findings = device_findings(&weak, chrono::Utc::now());
        assert_eq!(
            findings.iter().map(|f| f.code).collect::<Vec<_>>(),
            ["device.battery_low"]
        );
        let page = device_page(&weak, &findings, Style::new(false), false);
        assert!(page.contains("! Battery at 9% and not charging"), "{page}");
        assert!(
            page.contains("1. Give the backup Wi-Fi and power"),
            "{page}"
        );
        // Quiet: the heading line only.
        assert_eq!(
            device_page(&weak, &findings, Style::new(false), true)
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn an_unpaired_phone_gets_the_one_pair_fix() {
        let mut unpaired = phone(0, 0, false);
        unpaired.paired = false;
        unpaired.storage = None;
        unpaired.battery = None;
        unpaired.find_my = None;
        let findings = device_findings(&unpaired, chrono::Utc::now());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "device.not_paired");
        let pair = crate::diagnose::fixes::fix("pair").expect("the pair fix exists");
        assert_eq!(findings[0].fix.steps, pair.steps);
    }
}
