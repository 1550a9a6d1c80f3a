//! Info.plist, Manifest.plist and Status.plist as typed structs. Bytes in, struct out; XML and
//! binary plists alike. Fields are optional because real backups omit them: a missing or
//! oddly-typed field is None, while a file that is not a plist at all is an error.
//!
//! Key names: libimobiledevice tools/idevicebackup2.c (Info.plist, Status.plist) and
//! mvt-project/mvt (Manifest.plist).

use chrono::{DateTime, Utc};
use plist::{Dictionary, Value};

/// Why a plist file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlistError {
    #[error("the file is empty")]
    Empty,
    #[error("it is not a property list: {}", crate::plist_shape::describe(.0))]
    Syntax(#[from] plist::Error),
    #[error("its top level is not a dictionary")]
    NotADictionary,
    #[error("it is not a plausible property list: {0}")]
    Shape(String),
}

/// Written by the computer when a backup starts; its presence proves nothing about completion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InfoPlist {
    pub device_name: Option<String>,
    pub display_name: Option<String>,
    pub product_type: Option<String>,
    pub product_version: Option<String>,
    pub build_version: Option<String>,
    pub serial_number: Option<String>,
    pub unique_identifier: Option<String>,
    pub last_backup_date: Option<DateTime<Utc>>,
    pub itunes_version: Option<String>,
    /// `Installed Applications`: bundle ids (at most [`MAX_APPS`], each a plausible id).
    pub installed_applications: Vec<String>,
    /// `Applications`: each app's store name, from the iTunesMetadata plist it carries.
    pub application_names: Vec<AppName>,
}

/// An app as Info.plist or Manifest.plist names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppName {
    pub bundle: String,
    /// Info.plist: iTunesMetadata's itemName (else bundleDisplayName). Manifest.plist: the
    /// last part of Path without `.app`. None when neither says.
    pub name: Option<String>,
}

/// Apps read from one list: more is not a phone (a phone has a few hundred at most).
pub const MAX_APPS: usize = 10_000;
/// A bundle id longer than this is not one (iOS caps them far below).
const MAX_BUNDLE_BYTES: usize = 255;
/// Names are cut to this many characters.
pub const MAX_NAME_CHARS: usize = 200;
/// An iTunesMetadata plist is a few KB; past this it is not read.
const MAX_METADATA_BYTES: usize = 1 << 20;

/// The phone's side of the device identity, from Manifest.plist's Lockdown dictionary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lockdown {
    pub product_version: Option<String>,
    pub product_type: Option<String>,
    pub build_version: Option<String>,
    pub device_name: Option<String>,
    pub unique_device_id: Option<String>,
    pub serial_number: Option<String>,
}

/// Written by the phone: format version, encryption, keybag.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestPlist {
    pub version: Option<String>,
    pub date: Option<DateTime<Utc>>,
    pub is_encrypted: bool,
    pub was_passcode_set: Option<bool>,
    pub lockdown: Lockdown,
    pub backup_keybag: Option<Vec<u8>>,
    pub manifest_key: Option<Vec<u8>>,
    /// `Applications`: bundle id and the name its Path gives.
    pub applications: Vec<AppName>,
}

/// Where the phone got to: `SnapshotState` is the only proof that a backup finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotState {
    Uploading,
    Moving,
    Removing,
    Finished,
    /// A value we do not know; kept as written.
    Other(String),
}

impl SnapshotState {
    fn parse(text: &str) -> Self {
        match text {
            "uploading" => SnapshotState::Uploading,
            "moving" => SnapshotState::Moving,
            "removing" => SnapshotState::Removing,
            "finished" => SnapshotState::Finished,
            other => SnapshotState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            SnapshotState::Uploading => "uploading",
            SnapshotState::Moving => "moving",
            SnapshotState::Removing => "removing",
            SnapshotState::Finished => "finished",
            SnapshotState::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusPlist {
    pub version: Option<String>,
    pub uuid: Option<String>,
    pub date: Option<DateTime<Utc>>,
    pub backup_state: Option<String>,
    pub is_full_backup: Option<bool>,
    /// None when the key is absent: as unfinished as any state but `finished`.
    pub snapshot_state: Option<SnapshotState>,
}

fn dictionary(bytes: &[u8]) -> Result<Dictionary, PlistError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PlistError::Empty);
    }
    crate::plist_shape::check(bytes).map_err(PlistError::Shape)?;
    match Value::from_reader(std::io::Cursor::new(bytes))? {
        Value::Dictionary(d) => Ok(d),
        _ => Err(PlistError::NotADictionary),
    }
}

fn text(d: &Dictionary, key: &str) -> Option<String> {
    match d.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn boolean(d: &Dictionary, key: &str) -> Option<bool> {
    d.get(key)?.as_boolean()
}

fn date(d: &Dictionary, key: &str) -> Option<DateTime<Utc>> {
    let when: std::time::SystemTime = d.get(key)?.as_date()?.into();
    Some(DateTime::<Utc>::from(when))
}

fn data(d: &Dictionary, key: &str) -> Option<Vec<u8>> {
    d.get(key)?.as_data().map(<[u8]>::to_vec)
}

/// A plausible bundle id: not empty, not too long, no control characters.
fn bundle_id(text: &str) -> Option<String> {
    let ok = !text.is_empty()
        && text.len() <= MAX_BUNDLE_BYTES
        && !text.chars().any(|c| c.is_control() || c == '/');
    ok.then(|| text.to_string())
}

/// A name as shown: trimmed, cut to [`MAX_NAME_CHARS`]; None when empty.
fn app_label(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(MAX_NAME_CHARS).collect())
}

/// The store name inside an app's iTunesMetadata (a plist of its own, as data).
fn store_name(entry: &Dictionary) -> Option<String> {
    let metadata = entry.get("iTunesMetadata")?.as_data()?;
    if metadata.len() > MAX_METADATA_BYTES || crate::plist_shape::check(metadata).is_err() {
        return None;
    }
    let Ok(Value::Dictionary(meta)) = Value::from_reader(std::io::Cursor::new(metadata)) else {
        return None;
    };
    ["itemName", "bundleDisplayName"]
        .iter()
        .find_map(|key| meta.get(key)?.as_string().and_then(app_label))
}

/// Manifest.plist's Path (`/var/containers/Bundle/Application/<uuid>/WhatsApp.app`): the last
/// part without `.app`.
fn path_name(entry: &Dictionary) -> Option<String> {
    let path = entry.get("Path")?.as_string()?;
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    app_label(last.strip_suffix(".app").unwrap_or(last))
}

/// An `Applications` dictionary, bundle id to entry, with the name `name` finds in an entry.
fn applications(d: &Dictionary, name: fn(&Dictionary) -> Option<String>) -> Vec<AppName> {
    let Some(apps) = d.get("Applications").and_then(Value::as_dictionary) else {
        return Vec::new();
    };
    apps.iter()
        .filter_map(|(bundle, entry)| {
            Some(AppName {
                bundle: bundle_id(bundle)?,
                name: entry.as_dictionary().and_then(name),
            })
        })
        .take(MAX_APPS)
        .collect()
}

pub fn parse_info(bytes: &[u8]) -> Result<InfoPlist, PlistError> {
    let d = dictionary(bytes)?;
    let apps = d
        .get("Installed Applications")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_string().and_then(bundle_id))
                .take(MAX_APPS)
                .collect()
        })
        .unwrap_or_default();
    Ok(InfoPlist {
        device_name: text(&d, "Device Name"),
        display_name: text(&d, "Display Name"),
        product_type: text(&d, "Product Type"),
        product_version: text(&d, "Product Version"),
        build_version: text(&d, "Build Version"),
        serial_number: text(&d, "Serial Number"),
        unique_identifier: text(&d, "Unique Identifier"),
        last_backup_date: date(&d, "Last Backup Date"),
        itunes_version: text(&d, "iTunes Version"),
        installed_applications: apps,
        application_names: applications(&d, store_name),
    })
}

pub fn parse_manifest(bytes: &[u8]) -> Result<ManifestPlist, PlistError> {
    let d = dictionary(bytes)?;
    let lockdown = d
        .get("Lockdown")
        .and_then(Value::as_dictionary)
        .map(|l| Lockdown {
            product_version: text(l, "ProductVersion"),
            product_type: text(l, "ProductType"),
            build_version: text(l, "BuildVersion"),
            device_name: text(l, "DeviceName"),
            unique_device_id: text(l, "UniqueDeviceID"),
            serial_number: text(l, "SerialNumber"),
        })
        .unwrap_or_default();
    Ok(ManifestPlist {
        version: text(&d, "Version"),
        date: date(&d, "Date"),
        is_encrypted: boolean(&d, "IsEncrypted").unwrap_or(false),
        was_passcode_set: boolean(&d, "WasPasscodeSet"),
        lockdown,
        backup_keybag: data(&d, "BackupKeyBag"),
        manifest_key: data(&d, "ManifestKey"),
        applications: applications(&d, path_name),
    })
}

pub fn parse_status(bytes: &[u8]) -> Result<StatusPlist, PlistError> {
    let d = dictionary(bytes)?;
    Ok(StatusPlist {
        version: text(&d, "Version"),
        uuid: text(&d, "UUID"),
        date: date(&d, "Date"),
        backup_state: text(&d, "BackupState"),
        is_full_backup: boolean(&d, "IsFullBackup"),
        snapshot_state: text(&d, "SnapshotState").map(|s| SnapshotState::parse(&s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>BackupState</key><string>new</string>
<key>Date</key><date>2026-11-20T21:03:11Z</date>
<key>IsFullBackup</key><false/>
<key>SnapshotState</key><string>uploading</string>
<key>UUID</key><string>0C8AB2F6-0000-0000-0000-000000000000</string>
<key>Version</key><string>3.3</string>
</dict></plist>"#;

    #[test]
    fn reads_an_xml_status() {
        let status = parse_status(STATUS_XML.as_bytes()).unwrap();
        assert_eq!(status.snapshot_state, Some(SnapshotState::Uploading));
        assert_eq!(status.is_full_backup, Some(false));
        assert_eq!(status.backup_state.as_deref(), Some("new"));
        assert_eq!(
            status.date.unwrap().to_rfc3339(),
            "2026-11-20T21:03:11+00:00"
        );
    }

    #[test]
    fn reads_a_binary_manifest() {
        let mut lockdown = Dictionary::new();
        lockdown.insert("ProductVersion".into(), Value::String("17.5.1".into()));
        lockdown.insert("UniqueDeviceID".into(), Value::String("00008110-X".into()));
        let mut d = Dictionary::new();
        d.insert("IsEncrypted".into(), Value::Boolean(true));
        d.insert("ManifestKey".into(), Value::Data(vec![1; 44]));
        d.insert("Lockdown".into(), Value::Dictionary(lockdown));
        let mut bytes = Vec::new();
        Value::Dictionary(d).to_writer_binary(&mut bytes).unwrap();
        let manifest = parse_manifest(&bytes).unwrap();
        assert!(manifest.is_encrypted);
        assert_eq!(manifest.manifest_key.as_deref(), Some(&[1u8; 44][..]));
        assert_eq!(manifest.lockdown.product_version.as_deref(), Some("17.5.1"));
        assert_eq!(manifest.lockdown.device_name, None);
    }

    fn binary(value: Value) -> Vec<u8> {
        let mut bytes = Vec::new();
        value.to_writer_binary(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn app_names_come_from_both_plists_and_hostile_values_are_dropped() {
        let mut meta = Dictionary::new();
        meta.insert("bundleDisplayName".into(), Value::String("Chat".into()));
        meta.insert(
            "itemName".into(),
            Value::String(format!(" {} ", "N".repeat(500))),
        );
        let mut chat = Dictionary::new();
        chat.insert(
            "iTunesMetadata".into(),
            Value::Data(binary(Value::Dictionary(meta))),
        );
        let mut garbage = Dictionary::new();
        garbage.insert(
            "iTunesMetadata".into(),
            Value::Data(b"not a plist".to_vec()),
        );
        let mut apps = Dictionary::new();
        apps.insert("com.a.chat".into(), Value::Dictionary(chat));
        apps.insert("com.a.garbage".into(), Value::Dictionary(garbage));
        apps.insert("com.a.number".into(), Value::Integer(7.into()));
        apps.insert("bad/id".into(), Value::Dictionary(Dictionary::new()));
        apps.insert("x".repeat(300), Value::Dictionary(Dictionary::new()));
        let mut d = Dictionary::new();
        d.insert("Applications".into(), Value::Dictionary(apps.clone()));
        d.insert(
            "Installed Applications".into(),
            Value::Array(vec![
                "com.a.chat".into(),
                5.into(),
                "".into(),
                "a\nb".into(),
            ]),
        );
        let info = parse_info(&binary(Value::Dictionary(d))).unwrap();
        assert_eq!(info.installed_applications, ["com.a.chat"]);
        let names: Vec<_> = info
            .application_names
            .iter()
            .map(|a| {
                (
                    a.bundle.as_str(),
                    a.name.as_ref().map(|n| n.chars().count()),
                )
            })
            .collect();
        // itemName first (trimmed, cut to 200 characters); garbage metadata is no name.
        assert_eq!(
            names,
            [
                ("com.a.chat", Some(200)),
                ("com.a.garbage", None),
                ("com.a.number", None)
            ]
        );

        let mut entry = Dictionary::new();
        entry.insert(
            "Path".into(),
            Value::String("/var/containers/Bundle/Application/0A/Chat Plus.app".into()),
        );
        let mut bare = Dictionary::new();
        bare.insert("Path".into(), Value::String("/".into()));
        let mut apps = Dictionary::new();
        apps.insert("com.a.chat".into(), Value::Dictionary(entry));
        apps.insert("com.a.bare".into(), Value::Dictionary(bare));
        let mut d = Dictionary::new();
        d.insert("Applications".into(), Value::Dictionary(apps));
        let manifest = parse_manifest(&binary(Value::Dictionary(d))).unwrap();
        assert_eq!(
            manifest.applications,
            [
                AppName {
                    bundle: "com.a.chat".into(),
                    name: Some("Chat Plus".into())
                },
                AppName {
                    bundle: "com.a.bare".into(),
                    name: None
                },
            ]
        );
    }

    #[test]
    fn garbage_and_empty_files_are_errors() {
        assert!(matches!(parse_status(b""), Err(PlistError::Empty)));
        assert!(matches!(parse_info(b"\n  \n"), Err(PlistError::Empty)));
        assert!(parse_info(b"\x00\x01garbage").is_err());
        assert!(parse_manifest(&STATUS_XML.as_bytes()[..120]).is_err());
        let mut array = Vec::new();
        Value::Array(vec![]).to_writer_xml(&mut array).unwrap();
        assert!(matches!(
            parse_info(&array),
            Err(PlistError::NotADictionary)
        ));
    }
}
