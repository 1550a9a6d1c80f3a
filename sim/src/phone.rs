//! The simulated phone's state, shared by every connection: its profile, its fixed keys and
//! the hosts it trusts, usbmuxd's pair record store and BUID, lockdownd's values and domains,
//! the services started and waiting for their connection, and what the services and backups
//! keep (notifications, the AFC file system and lock, the backup state). server.rs serves
//! usbmuxd and lockdownd over it; the services and mobilebackup2 read and change it. It serves
//! nothing itself, and imports neither server.rs nor the services that use it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plist::{Dictionary, Value};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use super::mobilebackup2::state::BackupState;
use super::profile::{DateForm, Profile};
use super::services::{Service, ServiceState};
use super::SimError;
use ibackup::device::lockdown;
use ibackup::device::lockdown::pair_record::PairRecord;
use ibackup::device::lockdown::pairing::new_uuid;
/// The simulator's fixed test keys (never secret: they only make simulated pairing fast).
pub(crate) const DEVICE_KEY: &str = include_str!("keys/device.pem");
pub(crate) const ROOT_KEY: &str = include_str!("keys/root.pem");
pub(crate) const HOST_KEY: &str = include_str!("keys/host.pem");
pub(crate) const OTHER_KEY: &str = include_str!("keys/other.pem");

/// The escrow bag the phone gives a host when it pairs (fixed: only the simulator's).
pub(crate) const ESCROW_BAG: [u8; 32] = [0x5a; 32];
/// The DeviceID the simulated phone has in usbmuxd.
pub(crate) const DEVICE_ID: u64 = 1;

/// The first port StartService hands out (the dynamic range, as a phone's).
pub(crate) const FIRST_SERVICE_PORT: u16 = 49152;
/// Started services nobody connected to yet, at most: older ones are forgotten first.
pub(crate) const MAX_WAITING_SERVICES: usize = 64;

/// A host the simulated lockdownd trusts (from a Pair request or the initial profile).
#[derive(Clone)]
pub(crate) struct TrustedHost {
    pub(crate) host_id: String,
    pub(crate) device_certificate: CertificateDer<'static>,
    pub(crate) client_certificates: Vec<CertificateDer<'static>>,
}

/// State shared by all connections.
pub struct Phone {
    pub(crate) profile: Profile,
    pub(crate) device_key: PrivatePkcs8KeyDer<'static>,
    pub(crate) device_public_pem: String,
    /// PKCS#1 DER of the phone's public key, as it appears inside a certificate for it.
    pub(crate) device_public_der: Vec<u8>,
    pub(crate) wrong_certificate: (CertificateDer<'static>, PrivatePkcs8KeyDer<'static>),
    pub(crate) buid: String,
    pub(crate) started: Instant,
    /// The clock when the phone started: its backup dates are that many hours before this, and
    /// stay the same however often and however late they are asked for, as on a real phone.
    pub(crate) started_at: SystemTime,
    /// usbmuxd's pair record store: UDID -> plist bytes.
    pub(crate) records: Mutex<HashMap<String, Vec<u8>>>,
    /// lockdownd's trusted hosts.
    pub(crate) trusted: Mutex<Vec<TrustedHost>>,
    pub(crate) pair_attempts: Mutex<u32>,
    /// The phone's notifications, relayed by notification_proxy connections.
    pub(crate) notifications: crate::services::NotificationBus,
    /// What backups change on the phone (mobilebackup2).
    pub(crate) backup: BackupState,
    /// What the services keep across connections (posted notifications, AFC).
    pub(crate) services: ServiceState,
    /// Services started and waiting for their one connection, by port.
    waiting_services: Mutex<StartedServices>,
}

/// A service lockdownd started: which one, and the host whose session started it (its
/// certificates make the service's TLS).
#[derive(Clone)]
pub(crate) struct StartedService {
    pub(crate) service: Service,
    pub(crate) host: TrustedHost,
}

/// The ports StartService handed out that wait for their connection.
pub(crate) struct StartedServices {
    pub(crate) next_port: u16,
    pub(crate) waiting: Vec<(u16, StartedService)>,
}

impl StartedServices {
    /// A port that is neither lockdownd's nor waiting already (from 49152 up, wrapping).
    pub(crate) fn fresh_port(&mut self) -> u16 {
        loop {
            let port = self.next_port;
            self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_SERVICE_PORT);
            if port != lockdown::PORT && !self.waiting.iter().any(|(p, _)| *p == port) {
                return port;
            }
        }
    }
}

pub(crate) fn key_error(e: impl std::fmt::Display) -> SimError {
    SimError::Setup(format!("simulator keys: {e}"))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the whole simulator down.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Phone {
    /// Prepares the phone; with `profile.paired`, a pair record already exists on both sides.
    pub fn new(profile: Profile) -> Result<Self, SimError> {
        let device = RsaPrivateKey::from_pkcs1_pem(DEVICE_KEY).map_err(key_error)?;
        let device_public_pem = device
            .to_public_key()
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(key_error)?;
        let device_key = pkcs8(&device)?;
        let device_public_der = device
            .to_public_key()
            .to_pkcs1_der()
            .map_err(key_error)?
            .into_vec();
        let other = RsaPrivateKey::from_pkcs1_pem(OTHER_KEY).map_err(key_error)?;
        let other_pkcs8 = pkcs8(&other)?;
        let other_pair =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&other_pkcs8, &rcgen::PKCS_RSA_SHA256)
                .map_err(key_error)?;
        let other_cert = rcgen::CertificateParams::default()
            .self_signed(&other_pair)
            .map_err(key_error)?;
        let phone = Phone {
            device_key,
            device_public_pem,
            device_public_der,
            wrong_certificate: (other_cert.der().clone(), other_pkcs8),
            buid: new_uuid(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            records: Mutex::new(HashMap::new()),
            trusted: Mutex::new(Vec::new()),
            pair_attempts: Mutex::new(0),
            notifications: Default::default(),
            backup: BackupState::new(&profile),
            services: ServiceState::new(profile.sync_lock_busy_for),
            waiting_services: Mutex::new(StartedServices {
                next_port: FIRST_SERVICE_PORT,
                waiting: Vec::new(),
            }),
            profile,
        };
        if phone.profile.paired {
            let root = RsaPrivateKey::from_pkcs1_pem(ROOT_KEY).map_err(key_error)?;
            let host = RsaPrivateKey::from_pkcs1_pem(HOST_KEY).map_err(key_error)?;
            let mut record = PairRecord::with_keys(
                &root,
                &host,
                phone.device_public_pem.as_bytes(),
                phone.buid.clone(),
                Some(phone.profile.wifi_address.clone()),
            )
            .map_err(|e| SimError::Setup(e.to_string()))?;
            record.escrow_bag = Some(ESCROW_BAG.to_vec());
            phone
                .trust(&record.public_dictionary())
                .map_err(SimError::Setup)?;
            let bytes = record
                .to_plist()
                .map_err(|e| SimError::Setup(e.to_string()))?;
            lock(&phone.records).insert(phone.profile.udid.clone(), bytes);
        }
        Ok(phone)
    }

    /// The pair record the simulated usbmuxd keeps for `udid` (plist bytes), as a host that
    /// paired earlier would have it in its lockdown folder.
    pub fn pair_record(&self, udid: &str) -> Option<Vec<u8>> {
        lock(&self.records).get(udid).cloned()
    }

    /// Posts `name` as the phone: every notification_proxy connection observing it relays it.
    pub fn post_notification(&self, name: &str) {
        self.notifications.post(name);
    }

    /// The phone's profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Every notification a computer posted through notification_proxy, in order (the phone's
    /// own posts are not in it).
    pub fn posted_by_computer(&self) -> Vec<String> {
        self.services.posted_by_computer()
    }

    /// Whether a computer holds the sync lock (an AFC lock on /com.apple.itunes.lock_sync)
    /// right now.
    pub fn sync_lock_held(&self) -> bool {
        self.services
            .afc
            .locked(super::services::afc::SYNC_LOCK_FILE)
    }

    /// Opens a port for `service`, started by `host`'s session; it accepts one connection.
    pub(crate) fn start_service(&self, service: Service, host: &TrustedHost) -> u16 {
        let mut started = lock(&self.waiting_services);
        if started.waiting.len() >= MAX_WAITING_SERVICES {
            started.waiting.remove(0);
        }
        let port = started.fresh_port();
        started.waiting.push((
            port,
            StartedService {
                service,
                host: host.clone(),
            },
        ));
        port
    }

    /// The service started on `port`, taken: a port accepts one connection.
    pub(crate) fn claim_service(&self, port: u16) -> Option<StartedService> {
        let mut started = lock(&self.waiting_services);
        let at = started.waiting.iter().position(|(p, _)| *p == port)?;
        Some(started.waiting.remove(at).1)
    }

    pub(crate) fn attached(&self) -> bool {
        self.profile.attached
            && self.started.elapsed() >= Duration::from_millis(self.profile.attach_after_ms)
    }

    /// Adds a host from the public part of a pair record; the error says what is missing.
    pub(crate) fn trust(&self, record: &Dictionary) -> Result<(), String> {
        let cert = |key: &str| -> Result<CertificateDer<'static>, String> {
            let pem = record
                .get(key)
                .and_then(Value::as_data)
                .ok_or_else(|| format!("{key} is missing"))?;
            CertificateDer::from_pem_slice(pem).map_err(|e| format!("{key}: {e}"))
        };
        let host = TrustedHost {
            host_id: record
                .get("HostID")
                .and_then(Value::as_string)
                .ok_or("HostID is missing")?
                .to_string(),
            device_certificate: cert("DeviceCertificate")?,
            client_certificates: vec![cert("HostCertificate")?, cert("RootCertificate")?],
        };
        let mut trusted = lock(&self.trusted);
        trusted.retain(|h| h.host_id != host.host_id);
        trusted.push(host);
        Ok(())
    }

    pub(crate) fn trusted_host(&self, host_id: &str) -> Option<TrustedHost> {
        lock(&self.trusted)
            .iter()
            .find(|h| h.host_id == host_id)
            .cloned()
    }

    pub(crate) fn device_properties(&self) -> Value {
        let p = &self.profile;
        let mut props = Dictionary::new();
        props.insert("ConnectionType".into(), p.connection_type.clone().into());
        props.insert("DeviceID".into(), DEVICE_ID.into());
        props.insert("SerialNumber".into(), p.udid.clone().into());
        props.insert("ProductID".into(), 0x12a8u64.into());
        props.insert("LocationID".into(), 0x0110_0000u64.into());
        props.insert("ConnectionSpeed".into(), 480_000_000u64.into());
        if p.connection_type == "Network" {
            props.insert(
                "NetworkAddress".into(),
                Value::Data(vec![0x10, 0x02, 0, 0, 127, 0, 0, 1]),
            );
        }
        let mut entry = Dictionary::new();
        entry.insert("DeviceID".into(), DEVICE_ID.into());
        entry.insert("MessageType".into(), "Attached".into());
        entry.insert("Properties".into(), Value::Dictionary(props));
        Value::Dictionary(entry)
    }

    /// Root values any client may read, paired or not.
    pub(crate) fn basic_values(&self) -> Dictionary {
        let p = &self.profile;
        let mut d = Dictionary::new();
        d.insert("BuildVersion".into(), p.build_version.clone().into());
        d.insert("DeviceClass".into(), "iPhone".into());
        d.insert("DeviceColor".into(), "1".into());
        d.insert("DeviceName".into(), p.name.clone().into());
        d.insert("HardwareModel".into(), p.hardware_model.clone().into());
        d.insert("ProductName".into(), "iPhone OS".into());
        d.insert("ProductType".into(), p.product_type.clone().into());
        d.insert("ProductVersion".into(), p.ios_version.clone().into());
        d.insert("ProtocolVersion".into(), "2".into());
        d.insert("TelephonyCapability".into(), true.into());
        d.insert("UniqueDeviceID".into(), p.udid.clone().into());
        d.insert("WiFiAddress".into(), p.wifi_address.clone().into());
        d
    }

    /// Root values inside a session.
    pub(crate) fn session_values(&self) -> Dictionary {
        let p = &self.profile;
        let mut d = self.basic_values();
        d.insert("ActivationState".into(), "Activated".into());
        d.insert("CPUArchitecture".into(), "arm64e".into());
        d.insert("PasswordProtected".into(), p.password_protected.into());
        d.insert("SerialNumber".into(), p.serial_number.clone().into());
        d.insert("TimeZone".into(), "Europe/Paris".into());
        d.insert("TrustedHostAttached".into(), true.into());
        d.insert(
            "DevicePublicKey".into(),
            Value::Data(self.device_public_pem.as_bytes().to_vec()),
        );
        // What a phone without a SIM (or a number) leaves out, the profile may leave out too.
        for (key, value) in [
            ("PhoneNumber", &p.phone_number),
            ("InternationalMobileEquipmentIdentity", &p.imei),
            ("IntegratedCircuitCardIdentity", &p.iccid),
        ] {
            if let Some(value) = value {
                d.insert(key.into(), value.clone().into());
            }
        }
        d
    }

    pub(crate) fn domain(&self, domain: &str) -> Option<Dictionary> {
        let p = &self.profile;
        let mut d = Dictionary::new();
        match domain {
            "com.apple.disk_usage" => {
                let total = p.storage.total_bytes;
                let system = total / 10;
                d.insert("TotalDiskCapacity".into(), total.into());
                d.insert("TotalSystemCapacity".into(), system.into());
                d.insert("TotalSystemAvailable".into(), (system / 4).into());
                d.insert("TotalDataCapacity".into(), (total - system).into());
                d.insert(
                    "TotalDataAvailable".into(),
                    p.storage.available_bytes.into(),
                );
                d.insert(
                    "AmountDataAvailable".into(),
                    p.storage.available_bytes.into(),
                );
                d.insert("AmountDataReserved".into(), 209_715_200u64.into());
            }
            "com.apple.mobile.battery" => {
                d.insert("BatteryCurrentCapacity".into(), p.battery.percent.into());
                d.insert("BatteryIsCharging".into(), p.battery.charging.into());
                d.insert("ExternalConnected".into(), p.battery.external_power.into());
                d.insert(
                    "ExternalChargeCapable".into(),
                    p.battery.external_power.into(),
                );
                d.insert("FullyCharged".into(), (p.battery.percent >= 100).into());
                d.insert("HasBattery".into(), true.into());
            }
            "com.apple.mobile.backup" => {
                d.insert("WillEncrypt".into(), self.backup.will_encrypt().into());
                d.insert("RequiresEncryption".into(), p.requires_encryption.into());
                if let Some(on) = p.icloud_backup {
                    d.insert("CloudBackupEnabled".into(), on.into());
                }
                if let Some(hours) = p.last_icloud_backup_hours_ago {
                    d.insert(
                        "LastCloudBackupDate".into(),
                        backup_date(p, self.started_at, hours),
                    );
                    d.insert("LastCloudBackupTZ".into(), "Europe/Paris".into());
                }
                if let Some(hours) = p.last_computer_backup_hours_ago {
                    d.insert(
                        "LastiTunesBackupDate".into(),
                        backup_date(p, self.started_at, hours),
                    );
                    d.insert("LastiTunesBackupTZ".into(), "Europe/Paris".into());
                    d.insert("LastBackupComputerName".into(), "Simulated Mac".into());
                    d.insert("LastBackupComputerType".into(), "Mac".into());
                }
            }
            // Find My's state is only answered when asked for by key.
            "com.apple.fmip" => {}
            // What iTunes stored on the phone when it last synced: this phone never synced
            // with iTunes, so the domain is there and empty.
            "com.apple.iTunes" => {}
            "com.apple.mobile.iTunes" => {
                d.insert(
                    "MinITunesVersion".into(),
                    p.min_itunes_version.clone().into(),
                );
            }
            _ => return None,
        }
        Some(d)
    }

    pub(crate) fn get_value(
        &self,
        in_session: bool,
        domain: Option<&str>,
        key: Option<&str>,
    ) -> Option<Value> {
        match (domain, key) {
            (None, None) if in_session => Some(Value::Dictionary(self.session_values())),
            (None, None) => Some(Value::Dictionary(self.basic_values())),
            (None, Some("DevicePublicKey")) => {
                Some(Value::Data(self.device_public_pem.as_bytes().to_vec()))
            }
            (None, Some(key)) if in_session => self.session_values().get(key).cloned(),
            (None, Some(key)) => self.basic_values().get(key).cloned(),
            (Some(_), _) if !in_session => None,
            (Some("com.apple.fmip"), Some("IsAssociated")) => Some(self.profile.find_my.into()),
            (Some(domain), None) => self.domain(domain).map(Value::Dictionary),
            (Some(domain), Some(key)) => self.domain(domain)?.get(key).cloned(),
        }
    }
}

/// Seconds from 1970-01-01 to 2001-01-01, where Apple's dates count from.
pub(crate) const APPLE_EPOCH_UNIX: u64 = 978_307_200;

/// `hours` before `now`, in the form the profile asks for.
pub(crate) fn backup_date(profile: &Profile, now: SystemTime, hours: u64) -> Value {
    let at = now
        .checked_sub(Duration::from_secs(hours.saturating_mul(3_600)))
        .unwrap_or(UNIX_EPOCH);
    match profile.backup_dates_as {
        DateForm::Date => Value::Date(at.into()),
        DateForm::Seconds => {
            let unix = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            Value::Integer((unix as i64 - APPLE_EPOCH_UNIX as i64).into())
        }
    }
}

pub(crate) fn pkcs8(key: &RsaPrivateKey) -> Result<PrivatePkcs8KeyDer<'static>, SimError> {
    let der = key.to_pkcs8_der().map_err(key_error)?;
    Ok(PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()))
}
