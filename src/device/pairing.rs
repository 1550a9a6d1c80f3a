//! Pair records, the host's half of "Trust This Computer": reading them (from usbmuxd first,
//! then the OS folder), creating them (root and host RSA-2048 keys, root/host/device
//! certificates with empty names, as the usual tools make them), and the Pair exchange with its
//! waiting states. [libimobiledevice common/userpref.c, src/lockdown.c]
//!
//! Not here: the TLS session that uses a record (lockdown.rs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData, SerialNumber, SignatureAlgorithm, PKCS_RSA_SHA256,
};
use rsa::pkcs1::{DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, LineEnding};
use rsa::rand_core::{OsRng, RngCore};
use rsa::{RsaPrivateKey, RsaPublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::lockdown::{self, LockdownClient};
use super::transport::{AttachedDevice, Transport};
use super::DeviceError;

/// Overrides the pair record folder (tests, portable setups).
pub const FOLDER_VARIABLE: &str = "IBACKUP_LOCKDOWN_DIR";

/// A pair record: the host's keys and certificates for one phone.
#[derive(Clone, PartialEq, Eq)]
pub struct PairRecord {
    /// PEM.
    pub device_certificate: Vec<u8>,
    /// PEM.
    pub host_certificate: Vec<u8>,
    /// PEM (PKCS#1 or PKCS#8).
    pub host_private_key: Vec<u8>,
    /// PEM.
    pub root_certificate: Vec<u8>,
    /// PEM.
    pub root_private_key: Vec<u8>,
    pub host_id: String,
    pub system_buid: String,
    pub escrow_bag: Option<Vec<u8>>,
    pub wifi_mac_address: Option<String>,
}

impl std::fmt::Debug for PairRecord {
    // Private keys stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairRecord")
            .field("host_id", &self.host_id)
            .field("system_buid", &self.system_buid)
            .finish_non_exhaustive()
    }
}

/// Where a pair record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSource {
    Daemon,
    Folder(PathBuf),
}

impl PairRecord {
    /// Parses a record's plist bytes (XML or binary).
    pub fn from_plist(bytes: &[u8], origin: &str) -> Result<Self, DeviceError> {
        let dict = super::usbmux::parse_dict(bytes, origin)?;
        let bad = |detail: String| DeviceError::PairRecord {
            origin: origin.to_string(),
            detail,
        };
        let pem = |key: &str| -> Result<Vec<u8>, DeviceError> {
            match dict.get(key) {
                Some(Value::Data(d)) => Ok(d.clone()),
                Some(Value::String(s)) => Ok(s.clone().into_bytes()),
                _ => Err(bad(format!("{key} is missing"))),
            }
        };
        let text = |key: &str| -> Result<String, DeviceError> {
            dict.get(key)
                .and_then(Value::as_string)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("{key} is missing")))
        };
        Ok(PairRecord {
            device_certificate: pem("DeviceCertificate")?,
            host_certificate: pem("HostCertificate")?,
            host_private_key: pem("HostPrivateKey")?,
            root_certificate: pem("RootCertificate")?,
            root_private_key: pem("RootPrivateKey").unwrap_or_default(),
            host_id: text("HostID")?,
            system_buid: text("SystemBUID")?,
            escrow_bag: dict
                .get("EscrowBag")
                .and_then(Value::as_data)
                .map(<[u8]>::to_vec),
            wifi_mac_address: dict
                .get("WiFiMACAddress")
                .and_then(Value::as_string)
                .map(str::to_string),
        })
    }

    /// The whole record as a dictionary, the form usbmuxd and the folder store.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut dict = self.public_dictionary();
        dict.insert(
            "HostPrivateKey".into(),
            Value::Data(self.host_private_key.clone()),
        );
        dict.insert(
            "RootPrivateKey".into(),
            Value::Data(self.root_private_key.clone()),
        );
        if let Some(bag) = &self.escrow_bag {
            dict.insert("EscrowBag".into(), Value::Data(bag.clone()));
        }
        if let Some(mac) = &self.wifi_mac_address {
            dict.insert("WiFiMACAddress".into(), mac.clone().into());
        }
        dict
    }

    /// XML plist bytes of [`Self::to_dictionary`].
    pub fn to_plist(&self) -> Result<Vec<u8>, DeviceError> {
        super::usbmux::xml_bytes(&self.to_dictionary(), "a pair record")
    }

    /// What the Pair request carries: certificates and identifiers, no private keys.
    pub fn public_dictionary(&self) -> Dictionary {
        let mut dict = Dictionary::new();
        dict.insert(
            "DeviceCertificate".into(),
            Value::Data(self.device_certificate.clone()),
        );
        dict.insert(
            "HostCertificate".into(),
            Value::Data(self.host_certificate.clone()),
        );
        dict.insert(
            "RootCertificate".into(),
            Value::Data(self.root_certificate.clone()),
        );
        dict.insert("HostID".into(), self.host_id.clone().into());
        dict.insert("SystemBUID".into(), self.system_buid.clone().into());
        dict
    }

    /// The device certificate as DER, the value the TLS session is pinned to.
    pub fn device_certificate_der(&self) -> Result<CertificateDer<'static>, DeviceError> {
        pem_certificate(&self.device_certificate, "DeviceCertificate")
    }

    /// The host certificate and key the host presents in TLS.
    pub fn host_identity(
        &self,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), DeviceError> {
        let cert = pem_certificate(&self.host_certificate, "HostCertificate")?;
        let key = PrivateKeyDer::from_pem_slice(&self.host_private_key).map_err(|e| {
            DeviceError::PairRecord {
                origin: "HostPrivateKey".to_string(),
                detail: e.to_string(),
            }
        })?;
        Ok((cert, key))
    }

    /// A new record for a device whose public key (PEM, PKCS#1 or SPKI) is `device_public_key`,
    /// with fresh RSA-2048 root and host keys.
    pub fn generate(
        device_public_key: &[u8],
        system_buid: String,
        wifi_mac_address: Option<String>,
    ) -> Result<Self, DeviceError> {
        // The two keys are independent: make them in parallel.
        let root = std::thread::spawn(new_rsa_key);
        let host = new_rsa_key()?;
        let root = root.join().map_err(|_| DeviceError::KeyGeneration {
            detail: "the key generation thread stopped".to_string(),
        })??;
        Self::with_keys(
            &root,
            &host,
            device_public_key,
            system_buid,
            wifi_mac_address,
        )
    }

    /// A record from given root and host keys (the simulator uses fixed ones).
    pub fn with_keys(
        root: &RsaPrivateKey,
        host: &RsaPrivateKey,
        device_public_key: &[u8],
        system_buid: String,
        wifi_mac_address: Option<String>,
    ) -> Result<Self, DeviceError> {
        let device_spki = device_pkcs1_der(device_public_key)?;
        let root_pair = rcgen_key(root)?;
        let host_pair = rcgen_key(host)?;
        let gen = |e: rcgen::Error| DeviceError::KeyGeneration {
            detail: e.to_string(),
        };

        let mut root_params = params(1);
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root_cert = root_params.self_signed(&root_pair).map_err(gen)?;

        let mut leaf = params(2);
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let host_cert = leaf
            .signed_by(&host_pair, &root_cert, &root_pair)
            .map_err(gen)?;

        let device_key = DevicePublicKey(device_spki);
        let mut leaf = params(3);
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let device_cert = leaf
            .signed_by(&device_key, &root_cert, &root_pair)
            .map_err(gen)?;

        Ok(PairRecord {
            device_certificate: device_cert.pem().into_bytes(),
            host_certificate: host_cert.pem().into_bytes(),
            host_private_key: pkcs1_pem(host)?,
            root_certificate: root_cert.pem().into_bytes(),
            root_private_key: pkcs1_pem(root)?,
            host_id: new_uuid(),
            system_buid,
            escrow_bag: None,
            wifi_mac_address,
        })
    }
}

fn params(serial: u64) -> CertificateParams {
    let mut params = CertificateParams::default();
    // Pair record certificates carry empty subject and issuer names.
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2050, 1, 1);
    params
}

fn new_rsa_key() -> Result<RsaPrivateKey, DeviceError> {
    RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| DeviceError::KeyGeneration {
        detail: e.to_string(),
    })
}

fn rcgen_key(key: &RsaPrivateKey) -> Result<KeyPair, DeviceError> {
    let der = key.to_pkcs8_der().map_err(|e| DeviceError::KeyGeneration {
        detail: e.to_string(),
    })?;
    let der = PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_RSA_SHA256).map_err(|e| {
        DeviceError::KeyGeneration {
            detail: e.to_string(),
        }
    })
}

fn pkcs1_pem(key: &RsaPrivateKey) -> Result<Vec<u8>, DeviceError> {
    key.to_pkcs1_pem(LineEnding::LF)
        .map(|pem| pem.as_bytes().to_vec())
        .map_err(|e| DeviceError::KeyGeneration {
            detail: e.to_string(),
        })
}

/// The device's RSA public key (PKCS#1 DER) for the device certificate.
struct DevicePublicKey(Vec<u8>);

impl PublicKeyData for DevicePublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &SignatureAlgorithm {
        &PKCS_RSA_SHA256
    }
}

/// The device's public key as PKCS#1 DER. Phones send PKCS#1 PEM (`BEGIN RSA PUBLIC KEY`);
/// SPKI PEM (`BEGIN PUBLIC KEY`) is accepted too.
pub fn device_pkcs1_der(pem: &[u8]) -> Result<Vec<u8>, DeviceError> {
    let bad = |detail: String| DeviceError::BadReply {
        what: "the device's DevicePublicKey".to_string(),
        detail,
    };
    let text = std::str::from_utf8(pem).map_err(|_| bad("not PEM text".to_string()))?;
    let key = RsaPublicKey::from_pkcs1_pem(text.trim())
        .or_else(|_| RsaPublicKey::from_public_key_pem(text.trim()))
        .map_err(|e| bad(e.to_string()))?;
    key.to_pkcs1_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| bad(e.to_string()))
}

fn pem_certificate(pem: &[u8], what: &str) -> Result<CertificateDer<'static>, DeviceError> {
    CertificateDer::from_pem_slice(pem).map_err(|e| DeviceError::PairRecord {
        origin: what.to_string(),
        detail: e.to_string(),
    })
}

/// A random UUID (version 4), upper case as the usual tools write HostIDs.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The OS folders that hold pair records, in the order they are tried.
pub fn record_folders() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(FOLDER_VARIABLE).filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| "C:\\ProgramData".into());
        vec![base.join("Apple").join("Lockdown")]
    } else if cfg!(target_os = "macos") {
        vec![PathBuf::from("/var/db/lockdown")]
    } else {
        vec![PathBuf::from("/var/lib/lockdown")]
    }
}

/// The pair record for `udid`: from the transport's daemon first, then the OS folders.
pub fn find_record(
    transport: &dyn Transport,
    udid: &str,
) -> Result<Option<(PairRecord, RecordSource)>, DeviceError> {
    // A daemon that cannot answer is not fatal: the folder may still hold the record.
    if let Ok(Some(bytes)) = transport.read_pair_record(udid) {
        let record = PairRecord::from_plist(&bytes, &format!("usbmuxd's pair record for {udid}"))?;
        return Ok(Some((record, RecordSource::Daemon)));
    }
    for folder in record_folders() {
        if let Some(record) = read_folder_record(&folder, udid)? {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

fn read_folder_record(
    folder: &Path,
    udid: &str,
) -> Result<Option<(PairRecord, RecordSource)>, DeviceError> {
    let path = folder.join(format!("{udid}.plist"));
    match std::fs::read(&path) {
        Ok(bytes) => {
            let record = PairRecord::from_plist(&bytes, &path.display().to_string())?;
            Ok(Some((record, RecordSource::Folder(path))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // An unreadable folder (permissions) means "no record we can use" for a read.
        Err(_) => Ok(None),
    }
}

/// What the phone is waiting for during pairing, reported so the user can act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairWait {
    /// PasswordProtected: the phone must be unlocked.
    Unlock,
    /// PairingDialogResponsePending: the "Trust This Computer?" dialog is up.
    TapTrust,
}

/// Pairs with the device: creates a record, sends Pair until the phone accepts (calling
/// `waiting` on each change of state), saves the record through the transport, and checks it
/// by opening a session.
pub fn pair(
    transport: &dyn Transport,
    device: &AttachedDevice,
    timeout: Duration,
    waiting: &mut dyn FnMut(PairWait),
) -> Result<PairRecord, DeviceError> {
    let (public_key, wifi) = {
        let mut lockdown = LockdownClient::new(transport.connect(device, lockdown::PORT)?);
        lockdown.query_type()?;
        let public_key = match lockdown.get_value(None, Some("DevicePublicKey"))? {
            Some(Value::Data(d)) => d,
            Some(Value::String(s)) => s.into_bytes(),
            _ => {
                return Err(DeviceError::BadReply {
                    what: "lockdownd's answer to GetValue DevicePublicKey".to_string(),
                    detail: "no public key".to_string(),
                })
            }
        };
        let wifi = lockdown
            .get_value(None, Some("WiFiAddress"))?
            .and_then(|v| v.as_string().map(str::to_string));
        (public_key, wifi)
    };
    let buid = match transport.system_buid() {
        Ok(Some(buid)) => buid,
        _ => new_uuid(),
    };
    // Key generation takes a while: no connection is held open meanwhile.
    let mut record = PairRecord::generate(&public_key, buid, wifi)?;

    let mut lockdown = LockdownClient::new(transport.connect(device, lockdown::PORT)?);
    lockdown.query_type()?;
    let deadline = Instant::now() + timeout;
    let mut last = None;
    let reply = loop {
        match lockdown.pair("Pair", &record) {
            Ok(reply) => break reply,
            Err(DeviceError::Lockdown { error, .. }) => {
                let state = match error.as_str() {
                    "PasswordProtected" => PairWait::Unlock,
                    "PairingDialogResponsePending" => PairWait::TapTrust,
                    "UserDeniedPairing" => return Err(DeviceError::PairingDenied),
                    _ => {
                        return Err(DeviceError::Lockdown {
                            request: "Pair".to_string(),
                            error,
                        })
                    }
                };
                if last != Some(state) {
                    waiting(state);
                    last = Some(state);
                }
                if Instant::now() + Duration::from_secs(1) > deadline {
                    return Err(DeviceError::PairingTimeout {
                        secs: timeout.as_secs(),
                        waiting_for: state,
                    });
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    };
    record.escrow_bag = reply
        .get("EscrowBag")
        .and_then(Value::as_data)
        .map(<[u8]>::to_vec);
    drop(lockdown);

    transport.save_pair_record(device, &record.to_plist()?)?;
    let mut check = LockdownClient::new(transport.connect(device, lockdown::PORT)?);
    check.query_type()?;
    check.start_session(&record)?;
    check.stop_session()?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_host_ids() {
        let id = new_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.chars().filter(|c| *c == '-').count(), 4);
        assert_eq!(id, id.to_uppercase());
        assert_ne!(id, new_uuid());
    }

    #[test]
    fn records_need_their_certificates() {
        let mut dict = Dictionary::new();
        dict.insert("HostID".into(), "X".into());
        let bytes = super::super::usbmux::xml_bytes(&dict, "t").unwrap();
        let err = PairRecord::from_plist(&bytes, "test").unwrap_err();
        assert!(err.to_string().contains("DeviceCertificate"), "{err}");
    }

    fn sample_record() -> PairRecord {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let key = |pem: &str| RsaPrivateKey::from_pkcs1_pem(pem).unwrap();
        let device = key(include_str!("../../sim/src/keys/device.pem"));
        let public = device.to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        PairRecord::with_keys(
            &key(include_str!("../../sim/src/keys/root.pem")),
            &key(include_str!("../../sim/src/keys/host.pem")),
            public.as_bytes(),
            "BUID".to_string(),
            Some("aa:bb".to_string()),
        )
        .unwrap()
    }

    #[test]
    fn records_round_trip_and_hold_usable_identities() {
        let record = sample_record();
        let back = PairRecord::from_plist(&record.to_plist().unwrap(), "t").unwrap();
        assert_eq!(back, record);
        assert!(back.host_identity().is_ok());
        assert!(back.device_certificate_der().is_ok());
        assert!(String::from_utf8_lossy(&record.host_private_key)
            .starts_with("-----BEGIN RSA PRIVATE KEY"));
        let public = record.public_dictionary();
        assert!(public.get("HostPrivateKey").is_none() && public.get("RootPrivateKey").is_none());
    }

    #[test]
    fn the_folder_is_read_when_the_daemon_has_nothing() {
        let dir = tempfile::TempDir::new().unwrap();
        let record = sample_record();
        std::fs::write(dir.path().join("UDID1.plist"), record.to_plist().unwrap()).unwrap();
        let (found, source) = read_folder_record(dir.path(), "UDID1").unwrap().unwrap();
        assert_eq!(found, record);
        assert_eq!(source, RecordSource::Folder(dir.path().join("UDID1.plist")));
        assert!(read_folder_record(dir.path(), "OTHER").unwrap().is_none());
        std::fs::write(dir.path().join("BAD.plist"), b"garbage").unwrap();
        assert!(read_folder_record(dir.path(), "BAD").is_err());
    }

    #[test]
    fn bad_device_keys_are_refused() {
        assert!(device_pkcs1_der(b"not a key").is_err());
        assert!(device_pkcs1_der(&[0xff, 0xfe]).is_err());
    }
}
