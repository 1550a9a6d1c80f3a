//! The Info.plist a computer writes into a new backup folder before the phone sends anything:
//! who the phone is (lockdown's root values), its user apps (installation_proxy), the iTunes
//! settings and files it keeps for a computer (lockdown's `com.apple.iTunes` domain and AFC
//! `/iTunes_Control/iTunes/*`), and when. Keys as Finder and idevicebackup2 write them, and as
//! `backup::plists::parse_info` reads them. [libimobiledevice tools/idevicebackup2.c
//! mobilebackup_factory_info_plist_new; the real iOS 14 sample in shared/samples]
//!
//! [`gather`] talks to the phone and returns plain [`InfoFacts`]; [`build`] turns them into the
//! plist and is pure. Everything from the phone is bounded: text values at [`MAX_TEXT`] bytes,
//! each AFC file at [`MAX_ITUNES_FILE`], the apps as installation_proxy bounds them. Not here:
//! writing the file (the backup engine), the apps' icons (springboardservices, which only
//! matters to a restore through iTunes).

use std::collections::BTreeMap;
use std::time::SystemTime;

use plist::{Dictionary, Value};
use rsa::rand_core::{OsRng, RngCore};

use super::lockdown::pair_record::PairRecord;
use super::lockdown::LockdownClient;
use super::services::afc::AfcClient;
use super::services::installation_proxy;
use super::transport::{AttachedDevice, Transport};
use super::DeviceError;

/// The longest text value taken from the phone.
pub const MAX_TEXT: usize = 1024;
/// The largest `/iTunes_Control/iTunes/*` or iBooks file copied.
pub const MAX_ITUNES_FILE: u64 = 16 << 20;
/// Where the iTunes files live on AFC.
pub const ITUNES_FOLDER: &str = "/iTunes_Control/iTunes";
/// The files a computer copies from [`ITUNES_FOLDER`] into "iTunes Files".
pub const ITUNES_FILES: [&str; 11] = [
    "ApertureAlbumPrefs",
    "IC-Info.sidb",
    "IC-Info.sidv",
    "PhotosFolderAlbums",
    "PhotosFolderName",
    "PhotosFolderPrefs",
    "VoiceMemos.plist",
    "iPhotoAlbumPrefs",
    "iTunesApplicationIDs",
    "iTunesPrefs",
    "iTunesPrefs.plist",
];
/// The iBooks data a computer copies into "iBooks Data 2".
pub const IBOOKS_DATA: &str = "/Books/iBooksData2.plist";
/// "iTunes Version" when the phone names no minimum: the oldest iTunes that backs up over
/// mobilebackup2, as idevicebackup2 writes it.
pub const FALLBACK_ITUNES_VERSION: &str = "10.0.1";

/// Everything Info.plist says, as read from the phone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InfoFacts {
    /// The UDID as the transport reports it.
    pub udid: String,
    /// DeviceName.
    pub device_name: Option<String>,
    /// ProductType.
    pub product_type: Option<String>,
    /// ProductVersion.
    pub product_version: Option<String>,
    /// BuildVersion.
    pub build_version: Option<String>,
    /// SerialNumber.
    pub serial_number: Option<String>,
    /// InternationalMobileEquipmentIdentity.
    pub imei: Option<String>,
    /// MobileEquipmentIdentifier.
    pub meid: Option<String>,
    /// IntegratedCircuitCardIdentity.
    pub iccid: Option<String>,
    /// PhoneNumber.
    pub phone_number: Option<String>,
    /// The `com.apple.iTunes` domain, as the phone keeps it.
    pub itunes_settings: Dictionary,
    /// `com.apple.mobile.iTunes` MinITunesVersion.
    pub min_itunes_version: Option<String>,
    /// The user apps, each with CFBundleIdentifier and, when the phone has them,
    /// ApplicationSINF and iTunesMetadata.
    pub apps: Vec<Dictionary>,
    /// The [`ITUNES_FILES`] the phone has, by name.
    pub itunes_files: BTreeMap<String, Vec<u8>>,
    /// [`IBOOKS_DATA`], when the phone has it.
    pub ibooks_data: Option<Vec<u8>>,
    /// A new random identifier for this backup (32 hex digits).
    pub guid: String,
}

/// Reads the facts over `lockdown` (in a session) and the services it starts:
/// installation_proxy for the apps, AFC for the files (those the phone does not have or will
/// not give are left out).
pub fn gather(
    transport: &dyn Transport,
    device: &AttachedDevice,
    lockdown: &mut LockdownClient,
    record: &PairRecord,
) -> Result<InfoFacts, DeviceError> {
    let root = match lockdown.get_value(None, None)? {
        Some(Value::Dictionary(root)) => root,
        _ => Dictionary::new(),
    };
    let mut facts = facts_from_root(&device.udid, &root)?;
    facts.itunes_settings = match lockdown.get_value(Some("com.apple.iTunes"), None)? {
        Some(Value::Dictionary(settings)) => settings,
        _ => Dictionary::new(),
    };
    facts.min_itunes_version =
        match lockdown.get_value(Some("com.apple.mobile.iTunes"), Some("MinITunesVersion"))? {
            Some(Value::String(version)) => Some(bounded("MinITunesVersion", version)?),
            _ => None,
        };
    facts.apps = installation_proxy::browse_user_apps(transport, device, lockdown, record)?;
    let mut afc = AfcClient::open(transport, device, lockdown, record)?;
    for name in ITUNES_FILES {
        let path = format!("{ITUNES_FOLDER}/{name}");
        if let Some(bytes) = optional_file(&mut afc, &path)? {
            facts.itunes_files.insert(name.to_string(), bytes);
        }
    }
    facts.ibooks_data = optional_file(&mut afc, IBOOKS_DATA)?;
    facts.guid = new_guid();
    Ok(facts)
}

/// A file Info.plist copies when the phone has it: one the phone will not give (not found,
/// permission denied, a folder: any AFC status) is left out, as Finder leaves it out; a broken
/// connection or a hostile answer (too large, malformed) is still an error.
fn optional_file(afc: &mut AfcClient, path: &str) -> Result<Option<Vec<u8>>, DeviceError> {
    match afc.read_file(path, MAX_ITUNES_FILE) {
        Ok(contents) => Ok(contents),
        Err(DeviceError::Afc { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The identity fields from lockdown's root values; only strings count, each at most
/// [`MAX_TEXT`] bytes.
pub fn facts_from_root(udid: &str, root: &Dictionary) -> Result<InfoFacts, DeviceError> {
    let text = |key: &str| -> Result<Option<String>, DeviceError> {
        match root.get(key) {
            Some(Value::String(value)) => bounded(key, value.clone()).map(Some),
            _ => Ok(None),
        }
    };
    Ok(InfoFacts {
        udid: bounded("the UDID", udid.to_string())?,
        device_name: text("DeviceName")?,
        product_type: text("ProductType")?,
        product_version: text("ProductVersion")?,
        build_version: text("BuildVersion")?,
        serial_number: text("SerialNumber")?,
        imei: text("InternationalMobileEquipmentIdentity")?,
        meid: text("MobileEquipmentIdentifier")?,
        iccid: text("IntegratedCircuitCardIdentity")?,
        phone_number: text("PhoneNumber")?,
        ..InfoFacts::default()
    })
}

fn bounded(key: &str, value: String) -> Result<String, DeviceError> {
    if value.len() > MAX_TEXT {
        return Err(DeviceError::BadReply {
            what: format!("the phone's {key}"),
            detail: format!("{} bytes, more than {MAX_TEXT}", value.len()),
        });
    }
    Ok(value)
}

/// 32 random upper-case hex digits.
fn new_guid() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Info.plist from the facts, written `now`.
pub fn build(facts: &InfoFacts, now: SystemTime) -> Dictionary {
    let mut info = Dictionary::new();
    let mut put = |key: &str, value: Option<&String>| {
        if let Some(value) = value {
            info.insert(key.into(), Value::String(value.clone()));
        }
    };
    put("Build Version", facts.build_version.as_ref());
    put("Device Name", facts.device_name.as_ref());
    put("Display Name", facts.device_name.as_ref());
    put("GUID", Some(&facts.guid));
    put("ICCID", facts.iccid.as_ref());
    put("IMEI", facts.imei.as_ref());
    put("MEID", facts.meid.as_ref());
    put("Phone Number", facts.phone_number.as_ref());
    put("Product Type", facts.product_type.as_ref());
    put("Product Version", facts.product_version.as_ref());
    put("Serial Number", facts.serial_number.as_ref());
    put("Target Identifier", Some(&facts.udid));
    put("Unique Identifier", Some(&facts.udid.to_uppercase()));
    put(
        "iTunes Version",
        Some(
            &facts
                .min_itunes_version
                .clone()
                .unwrap_or_else(|| FALLBACK_ITUNES_VERSION.to_string()),
        ),
    );
    info.insert("Target Type".into(), "Device".into());
    info.insert("Last Backup Date".into(), Value::Date(now.into()));
    let (installed, applications) = apps(&facts.apps);
    info.insert("Installed Applications".into(), Value::Array(installed));
    info.insert("Applications".into(), Value::Dictionary(applications));
    let files = facts
        .itunes_files
        .iter()
        .map(|(name, bytes)| (name.clone(), Value::Data(bytes.clone())))
        .collect();
    info.insert("iTunes Files".into(), Value::Dictionary(files));
    info.insert(
        "iTunes Settings".into(),
        Value::Dictionary(facts.itunes_settings.clone()),
    );
    if let Some(bytes) = &facts.ibooks_data {
        info.insert("iBooks Data 2".into(), Value::Data(bytes.clone()));
    }
    info
}

/// "Installed Applications" (every bundle identifier) and "Applications" (the apps with both
/// ApplicationSINF and iTunesMetadata, which a restore needs to reinstall them).
fn apps(apps: &[Dictionary]) -> (Vec<Value>, Dictionary) {
    let mut installed = Vec::new();
    let mut applications = Dictionary::new();
    for app in apps {
        let Some(id) = app.get("CFBundleIdentifier").and_then(Value::as_string) else {
            continue;
        };
        installed.push(Value::String(id.to_string()));
        if let (Some(sinf), Some(metadata)) =
            (app.get("ApplicationSINF"), app.get("iTunesMetadata"))
        {
            let mut entry = Dictionary::new();
            entry.insert("ApplicationSINF".into(), sinf.clone());
            entry.insert("iTunesMetadata".into(), metadata.clone());
            applications.insert(id.to_string(), Value::Dictionary(entry));
        }
    }
    (installed, applications)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::plists::parse_info;
    use std::time::Duration;

    fn root() -> Dictionary {
        let mut root = Dictionary::new();
        for (key, value) in [
            ("DeviceName", "Alice's iPhone"),
            ("ProductType", "iPhone14,5"),
            ("ProductVersion", "17.5.1"),
            ("BuildVersion", "21F90"),
            ("SerialNumber", "F2LXXXXXXX"),
            ("InternationalMobileEquipmentIdentity", "350000000000000"),
            ("IntegratedCircuitCardIdentity", "8901000000000000000"),
        ] {
            root.insert(key.into(), value.into());
        }
        // Not a string: left out, as a phone without a SIM number.
        root.insert("PhoneNumber".into(), 5u64.into());
        root
    }

    fn app(id: &str, store: bool) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("CFBundleIdentifier".into(), id.into());
        if store {
            d.insert("ApplicationSINF".into(), Value::Data(vec![1, 2]));
            d.insert("iTunesMetadata".into(), Value::Data(vec![3]));
        }
        d
    }

    fn facts() -> InfoFacts {
        let mut facts = facts_from_root("00008110-001a2b3c", &root()).unwrap();
        facts.apps = vec![
            app("com.example.store", true),
            app("com.example.dev", false),
        ];
        facts.itunes_files.insert("iTunesPrefs".into(), vec![9; 3]);
        facts.min_itunes_version = Some("12.8".into());
        facts.guid = "0123456789ABCDEF0123456789ABCDEF".into();
        facts
    }

    #[test]
    fn keys_as_finder_writes_them() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let info = build(&facts(), now);
        let text = |key: &str| info.get(key).and_then(Value::as_string);
        assert_eq!(text("Device Name"), Some("Alice's iPhone"));
        assert_eq!(text("Display Name"), Some("Alice's iPhone"));
        assert_eq!(text("Product Type"), Some("iPhone14,5"));
        assert_eq!(text("Product Version"), Some("17.5.1"));
        assert_eq!(text("Build Version"), Some("21F90"));
        assert_eq!(text("Serial Number"), Some("F2LXXXXXXX"));
        assert_eq!(text("IMEI"), Some("350000000000000"));
        assert_eq!(text("ICCID"), Some("8901000000000000000"));
        assert_eq!(text("Phone Number"), None);
        assert_eq!(text("Target Identifier"), Some("00008110-001a2b3c"));
        assert_eq!(text("Unique Identifier"), Some("00008110-001A2B3C"));
        assert_eq!(text("Target Type"), Some("Device"));
        assert_eq!(text("GUID"), Some("0123456789ABCDEF0123456789ABCDEF"));
        assert_eq!(text("iTunes Version"), Some("12.8"));
        let installed = info["Installed Applications"].as_array().unwrap();
        assert_eq!(installed.len(), 2);
        let applications = info["Applications"].as_dictionary().unwrap();
        assert_eq!(applications.len(), 1);
        assert!(applications["com.example.store"]
            .as_dictionary()
            .unwrap()
            .contains_key("ApplicationSINF"));
        let files = info["iTunes Files"].as_dictionary().unwrap();
        assert_eq!(files["iTunesPrefs"].as_data(), Some(&[9u8; 3][..]));
        assert!(info["iTunes Settings"].as_dictionary().unwrap().is_empty());
        assert!(!info.contains_key("iBooks Data 2"));
        let when: SystemTime = info["Last Backup Date"].as_date().unwrap().into();
        assert_eq!(when, now);
    }

    #[test]
    fn the_same_keys_as_the_real_sample() {
        // shared/samples/real-ios14-partial/Info.plist (a Finder backup) holds exactly these
        // keys; what ibackup writes holds them all.
        let sample = [
            "Build Version",
            "Device Name",
            "Display Name",
            "GUID",
            "ICCID",
            "IMEI",
            "Installed Applications",
            "Last Backup Date",
            "Product Type",
            "Product Version",
            "Serial Number",
            "Target Identifier",
            "Target Type",
            "Unique Identifier",
            "iTunes Version",
        ];
        let info = build(&facts(), SystemTime::now());
        for key in sample {
            assert!(info.contains_key(key), "{key}");
        }
    }

    #[test]
    fn ibackups_own_reader_reads_what_is_written() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for binary in [false, true] {
            let mut bytes = Vec::new();
            let value = Value::Dictionary(build(&facts(), now));
            if binary {
                value.to_writer_binary(&mut bytes).unwrap();
            } else {
                value.to_writer_xml(&mut bytes).unwrap();
            }
            let read = parse_info(&bytes).unwrap();
            assert_eq!(read.device_name.as_deref(), Some("Alice's iPhone"));
            assert_eq!(read.unique_identifier.as_deref(), Some("00008110-001A2B3C"));
            assert_eq!(read.product_version.as_deref(), Some("17.5.1"));
            assert_eq!(read.itunes_version.as_deref(), Some("12.8"));
            assert_eq!(
                read.installed_applications,
                ["com.example.store", "com.example.dev"]
            );
            assert_eq!(
                read.last_backup_date.map(|d| d.timestamp()),
                Some(1_700_000_000)
            );
        }
    }

    #[test]
    fn a_phone_without_the_optional_values() {
        let facts = facts_from_root("u", &Dictionary::new()).unwrap();
        let info = build(&facts, SystemTime::now());
        assert_eq!(
            info["iTunes Version"].as_string(),
            Some(FALLBACK_ITUNES_VERSION)
        );
        for absent in ["Device Name", "IMEI", "ICCID", "Phone Number", "MEID"] {
            assert!(!info.contains_key(absent), "{absent}");
        }
        assert!(info["Installed Applications"]
            .as_array()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn absurd_values_from_the_phone_are_refused() {
        let mut root = root();
        root.insert("DeviceName".into(), "x".repeat(MAX_TEXT + 1).into());
        let err = facts_from_root("u", &root).unwrap_err();
        assert!(err.to_string().contains("DeviceName"), "{err}");
    }

    #[test]
    fn optional_files_skip_refusals_but_not_broken_answers() {
        use crate::device::services::afc::encode_packet;
        use crate::device::services::afc::tests::{client, status, FakeAfc};
        // GET_FILE_INFO answers permission denied: left out.
        let mut afc = client(FakeAfc::new(|num, _, _| status(num, 10)));
        assert_eq!(
            optional_file(&mut afc, "/iTunes_Control/iTunes/x").unwrap(),
            None
        );
        // A size over the limit: an error, not a quiet gap.
        let mut afc = client(FakeAfc::new(|num, _, _| {
            let info = format!("st_size\0{}\0", MAX_ITUNES_FILE + 1);
            encode_packet(num, 0x02, &[], info.as_bytes())
        }));
        assert!(matches!(
            optional_file(&mut afc, "/iTunes_Control/iTunes/x"),
            Err(DeviceError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn guids_are_random_hex() {
        let (a, b) = (new_guid(), new_guid());
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }
}
