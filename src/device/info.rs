//! A snapshot of a phone's state (`DeviceState`) built from lockdown values: the JSON of
//! `ibackup device --json` (schema `ibackup.device/1`, docs/device.md); and the short
//! [`Listing`] of every attached phone that `ibackup devices` shows. Building them from values is
//! pure; [`read_state`] and [`list`] are the functions here that talk to the phone.
//!
//! [`list`] asks at most [`MAX_LISTED`] phones, [`PROBE_THREADS`] at a time, all within one
//! [`LIST_DEADLINE`]: a daemon listing thousands of phones, or phones that never answer, cost
//! a bounded time and memory.
//!
//! Not here: what the values mean for backups (that is diagnose's job).

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use super::lockdown::pair_record::{self, RecordSource};
use super::lockdown::{self, LockdownClient, LockdownError};
use super::transport::{AttachedDevice, Transport};
use super::DeviceError;
use crate::mobile_backup::{utc_seconds, IcloudBackup, MobileBackupValues};

/// The schema name in the JSON.
pub const SCHEMA: &str = "ibackup.device/1";

/// The phone's live state. Fields that need a paired session are `None` when unpaired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    pub schema: String,
    pub udid: String,
    /// DeviceName ("Alice's iPhone").
    pub name: Option<String>,
    /// ProductType ("iPhone14,5").
    pub product_type: Option<String>,
    /// ProductVersion ("17.5.1").
    pub ios_version: Option<String>,
    /// BuildVersion ("21F90").
    pub build_version: Option<String>,
    /// How the phone is reached: `usbmuxd` (later also `usb`).
    pub connection: String,
    /// `USB` or `Network`, as the transport reports it.
    pub connection_type: String,
    /// Whether a pair record exists and the phone accepted a session with it.
    pub paired: bool,
    /// Where the pair record came from: `usbmuxd`, a file path, or null.
    pub pair_record: Option<String>,
    pub storage: Option<Storage>,
    pub battery: Option<Battery>,
    pub backup: Option<BackupSettings>,
    /// com.apple.mobile.backup's iCloud values: iCloud Backup on or off, the last iCloud backup.
    pub icloud: Option<IcloudBackup>,
    /// com.apple.fmip IsAssociated: Find My is on (a restore needs it off).
    pub find_my: Option<bool>,
}

/// com.apple.disk_usage, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// TotalDiskCapacity.
    pub total_bytes: u64,
    /// AmountDataAvailable (free space for data), else TotalDataAvailable.
    pub available_bytes: u64,
}

/// com.apple.mobile.battery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Battery {
    /// BatteryCurrentCapacity.
    pub percent: Option<u64>,
    /// BatteryIsCharging.
    pub charging: Option<bool>,
    /// ExternalConnected.
    pub external_power: Option<bool>,
}

/// com.apple.mobile.backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupSettings {
    /// WillEncrypt: local backups are encrypted.
    pub will_encrypt: Option<bool>,
    /// RequiresEncryption: a management profile requires encrypted local backups.
    pub requires_encryption: Option<bool>,
    /// LastiTunesBackupDate: the last backup to a computer (Finder, iTunes, Apple Devices).
    #[serde(with = "utc_seconds")]
    pub last_computer_backup: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a paired session adds to the root values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionValues {
    pub disk_usage: Option<Dictionary>,
    pub battery: Option<Dictionary>,
    /// com.apple.mobile.backup.
    pub backup: MobileBackupValues,
    pub find_my: Option<bool>,
}

pub const DISK_USAGE: &str = "com.apple.disk_usage";
pub const BATTERY: &str = "com.apple.mobile.battery";
pub const BACKUP: &str = "com.apple.mobile.backup";
pub const FIND_MY: &str = "com.apple.fmip";

/// One attached phone as `ibackup devices` lists it: who it is, from the values lockdownd gives
/// without pairing, best effort. Fields are in the order the JSON has always printed them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    pub connection: String,
    pub connection_type: String,
    /// Why the phone's identity could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ios_version: Option<String>,
    pub name: Option<String>,
    pub product_type: Option<String>,
    pub udid: String,
}

/// The most phones `devices` lists; a transport that reports more gets the first ones and a
/// count of the rest.
pub const MAX_LISTED: usize = 64;
/// How many phones are asked at the same time.
pub const PROBE_THREADS: usize = 16;
/// How long `devices` waits for all the phones together; a phone that has not answered by then
/// is listed as not answering.
pub const LIST_DEADLINE: Duration = Duration::from_secs(8);

/// What `ibackup devices` shows: the phones listed, and how many more the transport reported
/// beyond [`MAX_LISTED`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceList {
    pub devices: Vec<Listing>,
    pub not_shown: usize,
}

/// Every phone the transport sees (at most [`MAX_LISTED`]), each with its unpaired identity. A
/// phone that cannot be read, or does not answer within [`LIST_DEADLINE`], is listed with its
/// `error`; only a transport that cannot list phones fails.
///
/// Phones are asked on threads of their own; one that hangs past the deadline is left to its
/// own I/O timeouts (its thread ends with them) while the list is returned.
pub fn list(transport: Arc<dyn Transport>) -> Result<DeviceList, DeviceError> {
    let mut attached = transport.devices()?;
    let not_shown = attached.len().saturating_sub(MAX_LISTED);
    attached.truncate(MAX_LISTED);
    let deadline = Instant::now() + LIST_DEADLINE;
    Ok(DeviceList {
        devices: probe_all(transport, attached, deadline, LIST_DEADLINE),
        not_shown,
    })
}

/// Asks each phone for its identity, [`PROBE_THREADS`] at a time, until `deadline`; rows come
/// back in the order of `devices`. `allowed` is what the deadline allowed, for the message.
fn probe_all(
    transport: Arc<dyn Transport>,
    devices: Vec<AttachedDevice>,
    deadline: Instant,
    allowed: Duration,
) -> Vec<Listing> {
    let count = devices.len();
    let queue = Arc::new(Mutex::new(
        devices.iter().cloned().enumerate().collect::<VecDeque<_>>(),
    ));
    let (sender, answers) = mpsc::channel();
    for _ in 0..count.min(PROBE_THREADS) {
        let (transport, queue, sender) = (transport.clone(), queue.clone(), sender.clone());
        std::thread::spawn(move || loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some((index, device)) = next else { break };
            if Instant::now() >= deadline {
                break;
            }
            if sender
                .send((index, listing(transport.as_ref(), &device)))
                .is_err()
            {
                break;
            }
        });
    }
    drop(sender);
    let mut rows: Vec<Option<Listing>> = vec![None; count];
    let mut received = 0;
    while received < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match answers.recv_timeout(left) {
            Ok((index, row)) => {
                rows[index] = Some(row);
                received += 1;
            }
            // The deadline passed, or every thread stopped: the rest did not answer.
            Err(_) => break,
        }
    }
    rows.into_iter()
        .zip(devices)
        .map(|(row, device)| {
            row.unwrap_or_else(|| {
                let mut row = blank_listing(transport.name(), &device);
                row.error = Some(format!(
                    "did not answer within {} seconds",
                    allowed.as_secs()
                ));
                row
            })
        })
        .collect()
}

fn blank_listing(connection: &str, device: &AttachedDevice) -> Listing {
    Listing {
        connection: connection.to_string(),
        connection_type: device.connection_type.clone(),
        error: None,
        ios_version: None,
        name: None,
        product_type: None,
        udid: device.udid.clone(),
    }
}

fn listing(transport: &dyn Transport, device: &AttachedDevice) -> Listing {
    let mut row = blank_listing(transport.name(), device);
    let root = transport
        .connect(device, lockdown::PORT)
        .and_then(|stream| {
            let mut client = LockdownClient::new(stream);
            client.query_type()?;
            client.get_value(None, None)
        });
    match root {
        Ok(Some(Value::Dictionary(root))) => {
            row.name = text(&root, "DeviceName");
            row.product_type = text(&root, "ProductType");
            row.ios_version = text(&root, "ProductVersion");
        }
        Ok(_) => {}
        Err(e) => row.error = Some(e.to_string()),
    }
    row
}

fn text(dict: &Dictionary, key: &str) -> Option<String> {
    dict.get(key).and_then(Value::as_string).map(str::to_string)
}

fn number(dict: &Dictionary, key: &str) -> Option<u64> {
    match dict.get(key)? {
        Value::Integer(i) => i.as_unsigned(),
        Value::Real(r) if *r >= 0.0 => Some(*r as u64),
        _ => None,
    }
}

fn flag(dict: &Dictionary, key: &str) -> Option<bool> {
    dict.get(key).and_then(Value::as_boolean)
}

impl DeviceState {
    /// Builds the snapshot from lockdown values. `session` is `None` when no paired session
    /// could be opened.
    pub fn from_values(
        device: &AttachedDevice,
        connection: &str,
        root: &Dictionary,
        session: Option<&SessionValues>,
        pair_record: Option<String>,
    ) -> Self {
        let storage = session.and_then(|s| s.disk_usage.as_ref()).and_then(|d| {
            Some(Storage {
                total_bytes: number(d, "TotalDiskCapacity")?,
                available_bytes: number(d, "AmountDataAvailable")
                    .or_else(|| number(d, "TotalDataAvailable"))?,
            })
        });
        let battery = session.and_then(|s| s.battery.as_ref()).map(|b| Battery {
            percent: number(b, "BatteryCurrentCapacity"),
            charging: flag(b, "BatteryIsCharging"),
            external_power: flag(b, "ExternalConnected"),
        });
        DeviceState {
            schema: SCHEMA.to_string(),
            udid: text(root, "UniqueDeviceID").unwrap_or_else(|| device.udid.clone()),
            name: text(root, "DeviceName"),
            product_type: text(root, "ProductType"),
            ios_version: text(root, "ProductVersion"),
            build_version: text(root, "BuildVersion"),
            connection: connection.to_string(),
            connection_type: device.connection_type.clone(),
            paired: session.is_some(),
            pair_record,
            storage,
            battery,
            backup: session.map(|s| BackupSettings {
                will_encrypt: s.backup.will_encrypt,
                requires_encryption: s.backup.requires_encryption,
                last_computer_backup: s.backup.last_computer_backup,
            }),
            icloud: session.map(|s| s.backup.icloud()),
            find_my: session.and_then(|s| s.find_my),
        }
    }
}

/// com.apple.mobile.backup in one request; a phone that will not give the whole domain is asked
/// for WillEncrypt alone, and the rest stays unknown.
fn read_backup_domain(lockdown: &mut LockdownClient) -> Result<MobileBackupValues, DeviceError> {
    if let Some(Value::Dictionary(domain)) = lockdown.get_value(Some(BACKUP), None)? {
        return Ok(MobileBackupValues::from_dictionary(&domain));
    }
    Ok(MobileBackupValues {
        will_encrypt: lockdown
            .get_value(Some(BACKUP), Some("WillEncrypt"))?
            .and_then(|v| v.as_boolean()),
        ..MobileBackupValues::default()
    })
}

/// Reads the phone's state: the pair record (daemon, then folder), root values, and with a
/// paired session the storage, battery, backup and Find My values.
pub fn read_state(
    transport: &dyn Transport,
    device: &AttachedDevice,
) -> Result<DeviceState, DeviceError> {
    let record = pair_record::find_record(transport, &device.udid)?;
    let mut lockdown = LockdownClient::new(transport.connect(device, lockdown::PORT)?);
    lockdown.query_type()?;
    let mut source = None;
    if let Some((record, from)) = &record {
        match lockdown.start_session(record) {
            Ok(()) => {
                source = Some(match from {
                    RecordSource::Daemon => transport.name().to_string(),
                    RecordSource::Folder(path) => path.display().to_string(),
                })
            }
            // The phone forgot this computer (or never knew it): read what an unpaired phone
            // shows.
            Err(DeviceError::Lockdown {
                error: LockdownError::InvalidHostID,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    let root = match lockdown.get_value(None, None)? {
        Some(Value::Dictionary(d)) => d,
        _ => Dictionary::new(),
    };
    let session = if lockdown.in_session() {
        let dict = |v: Option<Value>| v.and_then(Value::into_dictionary);
        let values = SessionValues {
            disk_usage: dict(lockdown.get_value(Some(DISK_USAGE), None)?),
            battery: dict(lockdown.get_value(Some(BATTERY), None)?),
            backup: read_backup_domain(&mut lockdown)?,
            find_my: lockdown
                .get_value(Some(FIND_MY), Some("IsAssociated"))?
                .and_then(|v| v.as_boolean()),
        };
        lockdown.stop_session()?;
        Some(values)
    } else {
        None
    };
    Ok(DeviceState::from_values(
        device,
        transport.name(),
        &root,
        session.as_ref(),
        source,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> AttachedDevice {
        AttachedDevice {
            udid: "u1".to_string(),
            device_id: 1,
            connection_type: "USB".to_string(),
        }
    }

    fn dict(pairs: &[(&str, Value)]) -> Dictionary {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// A transport whose phones take `delay` to refuse every connection.
    struct Slow {
        delay: Duration,
        count: usize,
    }

    impl Transport for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn devices(&self) -> Result<Vec<AttachedDevice>, DeviceError> {
            Ok((0..self.count)
                .map(|i| AttachedDevice {
                    udid: format!("u{i}"),
                    device_id: i as u64,
                    connection_type: "USB".to_string(),
                })
                .collect())
        }
        fn wait_for_device(&self, _: Duration) -> Result<Option<AttachedDevice>, DeviceError> {
            Ok(None)
        }
        fn connect(
            &self,
            _: &AttachedDevice,
            _: u16,
        ) -> Result<super::super::transport::BoxStream, DeviceError> {
            std::thread::sleep(self.delay);
            Err(DeviceError::NoDevice)
        }
        fn read_pair_record(&self, _: &str) -> Result<Option<Vec<u8>>, DeviceError> {
            Ok(None)
        }
        fn save_pair_record(&self, _: &AttachedDevice, _: &[u8]) -> Result<bool, DeviceError> {
            Ok(false)
        }
        fn system_buid(&self) -> Result<Option<String>, DeviceError> {
            Ok(None)
        }
    }

    #[test]
    fn stalled_phones_cost_one_deadline_in_all() {
        let slow = Slow {
            delay: Duration::from_secs(3),
            count: 40,
        };
        let devices = slow.devices().unwrap();
        let started = Instant::now();
        let allowed = Duration::from_millis(300);
        let rows = probe_all(Arc::new(slow), devices, started + allowed, allowed);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(rows.len(), 40);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.udid, format!("u{i}"));
            assert_eq!(
                row.error.as_deref(),
                Some("did not answer within 0 seconds")
            );
        }
    }

    #[test]
    fn phones_that_answer_are_listed_in_order_and_the_list_is_capped() {
        let quick = Arc::new(Slow {
            delay: Duration::ZERO,
            count: MAX_LISTED * 3,
        });
        let listed = list(quick).unwrap();
        assert_eq!(listed.devices.len(), MAX_LISTED);
        assert_eq!(listed.not_shown, MAX_LISTED * 2);
        for (i, row) in listed.devices.iter().enumerate() {
            assert_eq!(row.udid, format!("u{i}"));
            assert_eq!(row.connection, "slow");
            assert_eq!(row.error.as_deref(), Some("no iPhone is connected"));
        }
    }

    #[test]
    fn unpaired_has_no_session_fields() {
        let root = dict(&[
            ("ProductVersion", "17.5.1".into()),
            ("DeviceName", "A".into()),
        ]);
        let state = DeviceState::from_values(&device(), "usbmuxd", &root, None, None);
        assert!(!state.paired);
        assert_eq!(state.udid, "u1");
        assert_eq!(state.ios_version.as_deref(), Some("17.5.1"));
        let json = serde_json::to_value(&state).unwrap();
        for key in ["storage", "battery", "backup", "icloud", "find_my"] {
            assert!(json[key].is_null(), "{key}");
        }
        assert_eq!(json["schema"], "ibackup.device/1");
    }

    #[test]
    fn session_values_fill_the_contract() {
        let session = SessionValues {
            disk_usage: Some(dict(&[
                ("TotalDiskCapacity", 128_000_000_000u64.into()),
                ("TotalDataAvailable", 9u64.into()),
                ("AmountDataAvailable", 5_000_000_000u64.into()),
            ])),
            battery: Some(dict(&[
                ("BatteryCurrentCapacity", 57u64.into()),
                ("BatteryIsCharging", true.into()),
                ("ExternalConnected", true.into()),
            ])),
            backup: MobileBackupValues::from_dictionary(&dict(&[
                ("WillEncrypt", false.into()),
                ("RequiresEncryption", true.into()),
                ("CloudBackupEnabled", true.into()),
                ("LastCloudBackupDate", 700_000_000i64.into()),
                ("LastCloudBackupTZ", "Europe/Paris".into()),
                ("LastiTunesBackupDate", 600_000_000i64.into()),
            ])),
            find_my: Some(true),
        };
        let state = DeviceState::from_values(
            &device(),
            "usbmuxd",
            &Dictionary::new(),
            Some(&session),
            None,
        );
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["paired"], true);
        assert_eq!(json["storage"]["total_bytes"], 128_000_000_000u64);
        assert_eq!(json["storage"]["available_bytes"], 5_000_000_000u64);
        assert_eq!(json["battery"]["percent"], 57);
        assert_eq!(json["battery"]["charging"], true);
        assert_eq!(json["battery"]["external_power"], true);
        assert_eq!(json["backup"]["will_encrypt"], false);
        assert_eq!(json["backup"]["requires_encryption"], true);
        assert_eq!(
            json["backup"]["last_computer_backup"],
            "2020-01-06T10:40:00Z"
        );
        assert_eq!(json["icloud"]["backup_enabled"], true);
        assert_eq!(json["icloud"]["last_backup"], "2023-03-08T20:26:40Z");
        assert_eq!(json["icloud"]["last_backup_time_zone"], "Europe/Paris");
        assert_eq!(json["find_my"], true);
        let back: DeviceState = serde_json::from_value(json).unwrap();
        assert_eq!(back, state);
    }
}
