//! The values iOS keeps under com.apple.mobile.backup: whether iCloud Backup is on, when the
//! last iCloud backup and the last computer backup finished, and the encryption settings. The
//! phone serves them through lockdownd (device/info.rs reads them live) and every backup carries
//! a copy as of its own date in HomeDomain `Library/Preferences/com.apple.mobile.ldbackup.plist`
//! (backup/icloud.rs reads that one). Turning a dictionary into [`MobileBackupValues`] lives here
//! once, so the two sources agree; pure, no I/O.
//!
//! A value of an unexpected kind is unknown (`None`), never an error: older iOS lacks some keys.

use chrono::{DateTime, TimeZone, Utc};
use plist::{Dictionary, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds from 1970-01-01 to 2001-01-01, the epoch Apple's dates count from.
const APPLE_EPOCH_UNIX: i64 = 978_307_200;

/// com.apple.mobile.backup as typed values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MobileBackupValues {
    /// CloudBackupEnabled.
    pub cloud_backup_enabled: Option<bool>,
    /// LastCloudBackupDate: when the last iCloud backup finished.
    pub last_cloud_backup: Option<DateTime<Utc>>,
    /// LastCloudBackupTZ: the phone's time zone then, as the phone names it.
    pub last_cloud_backup_tz: Option<String>,
    /// LastiTunesBackupDate: when the last backup to a computer finished.
    pub last_computer_backup: Option<DateTime<Utc>>,
    /// RequiresEncryption: a management profile forces encrypted local backups.
    pub requires_encryption: Option<bool>,
    /// WillEncrypt: local backups are encrypted.
    pub will_encrypt: Option<bool>,
}

impl MobileBackupValues {
    /// Reads the keys from the domain's dictionary; anything absent or odd is unknown.
    pub fn from_dictionary(dict: &Dictionary) -> Self {
        let flag = |key: &str| dict.get(key).and_then(Value::as_boolean);
        MobileBackupValues {
            cloud_backup_enabled: flag("CloudBackupEnabled"),
            last_cloud_backup: dict.get("LastCloudBackupDate").and_then(apple_date),
            last_cloud_backup_tz: dict
                .get("LastCloudBackupTZ")
                .and_then(Value::as_string)
                .filter(|tz| !tz.is_empty() && tz.len() <= 64)
                .map(str::to_string),
            last_computer_backup: dict.get("LastiTunesBackupDate").and_then(apple_date),
            requires_encryption: flag("RequiresEncryption"),
            will_encrypt: flag("WillEncrypt"),
        }
    }

    /// The iCloud part, as the JSON reports it.
    pub fn icloud(&self) -> IcloudBackup {
        IcloudBackup {
            backup_enabled: self.cloud_backup_enabled,
            last_backup: self.last_cloud_backup,
            last_backup_time_zone: self.last_cloud_backup_tz.clone(),
        }
    }
}

/// What is known of the phone's iCloud Backup: the `icloud` object of the JSON (docs/json.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IcloudBackup {
    /// CloudBackupEnabled: iCloud Backup is on; null when the phone does not say.
    pub backup_enabled: Option<bool>,
    /// LastCloudBackupDate, RFC 3339 in UTC; null when unknown (or never).
    #[serde(with = "utc_seconds")]
    pub last_backup: Option<DateTime<Utc>>,
    /// LastCloudBackupTZ as the phone gives it.
    pub last_backup_time_zone: Option<String>,
}

impl IcloudBackup {
    /// Whether nothing at all is known.
    pub fn is_unknown(&self) -> bool {
        self.backup_enabled.is_none() && self.last_backup.is_none()
    }
}

/// A date as Apple stores it: a plist date, or a number of seconds since 2001-01-01 UTC
/// (integer or real). Anything else, or a date outside what chrono can hold, is `None`.
pub fn apple_date(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Date(date) => {
            let time: std::time::SystemTime = (*date).into();
            Some(DateTime::<Utc>::from(time))
        }
        Value::Integer(i) => {
            let secs = i.as_signed()?;
            Utc.timestamp_opt(secs.checked_add(APPLE_EPOCH_UNIX)?, 0)
                .single()
        }
        Value::Real(r) if r.is_finite() && r.abs() < 1e12 => Utc
            .timestamp_opt((*r as i64).checked_add(APPLE_EPOCH_UNIX)?, 0)
            .single(),
        _ => None,
    }
}

/// Dates as `2026-11-20T21:03:11Z` (UTC, whole seconds), the form every ibackup JSON date has.
pub mod utc_seconds {
    use super::*;

    pub fn serialize<S: Serializer>(date: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match date {
            Some(d) => s.serialize_str(&d.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(None),
            Some(t) => DateTime::parse_from_rfc3339(&t)
                .map(|d| Some(d.with_timezone(&Utc)))
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: &[(&str, Value)]) -> Dictionary {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn integer_seconds_and_plist_dates_are_both_read() {
        // 2025-11-20T21:03:11Z is 1763672591 Unix seconds.
        let seconds = Value::Integer((1_763_672_591i64 - APPLE_EPOCH_UNIX).into());
        let expected = Utc.with_ymd_and_hms(2025, 11, 20, 21, 3, 11).unwrap();
        assert_eq!(apple_date(&seconds), Some(expected));
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_763_672_591);
        assert_eq!(
            apple_date(&Value::Date(plist::Date::from(time))),
            Some(expected)
        );
        assert_eq!(
            apple_date(&Value::Real(0.0)),
            Utc.timestamp_opt(APPLE_EPOCH_UNIX, 0).single()
        );
    }

    #[test]
    fn odd_values_are_unknown_not_errors() {
        for odd in [
            Value::String("yesterday".into()),
            Value::Boolean(true),
            Value::Integer(i64::MAX.into()),
            Value::Integer(u64::MAX.into()),
            Value::Real(f64::NAN),
            Value::Real(1e300),
            Value::Data(vec![1, 2, 3]),
        ] {
            assert_eq!(apple_date(&odd), None, "{odd:?}");
        }
        let values = MobileBackupValues::from_dictionary(&dict(&[
            ("CloudBackupEnabled", "yes".into()),
            ("LastCloudBackupDate", "never".into()),
            ("LastCloudBackupTZ", 3u64.into()),
        ]));
        assert_eq!(values, MobileBackupValues::default());
        assert!(values.icloud().is_unknown());
    }

    #[test]
    fn every_key_is_read() {
        let values = MobileBackupValues::from_dictionary(&dict(&[
            ("CloudBackupEnabled", true.into()),
            ("LastCloudBackupDate", 700_000_000i64.into()),
            ("LastCloudBackupTZ", "Europe/Paris".into()),
            ("LastiTunesBackupDate", 699_000_000i64.into()),
            ("RequiresEncryption", false.into()),
            ("WillEncrypt", true.into()),
        ]));
        assert_eq!(values.cloud_backup_enabled, Some(true));
        assert_eq!(
            values.last_cloud_backup,
            Utc.timestamp_opt(700_000_000 + APPLE_EPOCH_UNIX, 0)
                .single()
        );
        assert_eq!(values.last_cloud_backup_tz.as_deref(), Some("Europe/Paris"));
        assert!(values.last_computer_backup < values.last_cloud_backup);
        assert_eq!(values.requires_encryption, Some(false));
        assert_eq!(values.will_encrypt, Some(true));
        let json = serde_json::to_value(values.icloud()).unwrap();
        assert_eq!(json["backup_enabled"], true);
        assert_eq!(json["last_backup"], "2023-03-08T20:26:40Z");
        let back: IcloudBackup = serde_json::from_value(json).unwrap();
        assert_eq!(back, values.icloud());
    }
}
