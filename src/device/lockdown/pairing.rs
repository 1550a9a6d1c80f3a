//! "Trust This Computer": making a new pair record (fresh root and host RSA-2048 keys;
//! root, host and device certificates with empty names, as the usual tools make them) and the
//! Pair exchange, which keeps asking while the phone is locked or its dialog is up and tells
//! the caller what it is waiting for. [libimobiledevice common/userpref.c, src/lockdown.c]
//!
//! Uses lockdown (the requests, the checking session) and pair_record (the data, where it is
//! saved). Not here: reading or storing records (pair_record.rs), the TLS session (mod.rs).

use std::time::{Duration, Instant};

use plist::Value;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData, SerialNumber, SignatureAlgorithm, PKCS_RSA_SHA256,
};
use rsa::pkcs1::{DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, LineEnding};
use rsa::rand_core::{OsRng, RngCore};
use rsa::{RsaPrivateKey, RsaPublicKey};
use rustls::pki_types::PrivatePkcs8KeyDer;

use super::pair_record::{self, PairRecord};
use super::{LockdownClient, LockdownError, PORT};
use crate::device::transport::{AttachedDevice, Transport};
use crate::device::DeviceError;

impl PairRecord {
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

/// What the phone is waiting for during pairing, reported so the user can act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairWait {
    /// PasswordProtected: the phone must be unlocked.
    Unlock,
    /// PairingDialogResponsePending: the "Trust This Computer?" dialog is up.
    TapTrust,
}

/// A pairing that worked: the new record, and where it was saved (the transport's name when the
/// transport keeps records, as usbmuxd does, or the record file's path).
pub struct Paired {
    pub record: PairRecord,
    pub saved_to: String,
}

/// Pairs with the device: creates a record, sends Pair until the phone accepts (calling
/// `waiting` on each change of state), saves the record through the transport, and checks it
/// by opening a session.
pub fn pair(
    transport: &dyn Transport,
    device: &AttachedDevice,
    timeout: Duration,
    waiting: &mut dyn FnMut(PairWait),
) -> Result<Paired, DeviceError> {
    let (public_key, wifi) = {
        let mut lockdown = LockdownClient::new(transport.connect(device, PORT)?);
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
    let buid = pair_record::system_buid(transport).unwrap_or_else(new_uuid);
    // Key generation takes a while: no connection is held open meanwhile.
    let mut record = PairRecord::generate(&public_key, buid, wifi)?;

    let mut lockdown = LockdownClient::new(transport.connect(device, PORT)?);
    lockdown.query_type()?;
    let deadline = crate::device::deadline_after(timeout);
    let mut last = None;
    let reply = loop {
        match lockdown.pair("Pair", &record) {
            Ok(reply) => break reply,
            Err(DeviceError::Lockdown { error, .. }) => {
                let state = match error {
                    LockdownError::PasswordProtected => PairWait::Unlock,
                    LockdownError::PairingDialogResponsePending => PairWait::TapTrust,
                    LockdownError::UserDeniedPairing => return Err(DeviceError::PairingDenied),
                    error => {
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

    let saved_to = pair_record::save(transport, device, &record)?;
    let mut check = LockdownClient::new(transport.connect(device, PORT)?);
    check.query_type()?;
    check.start_session(&record)?;
    check.stop_session()?;
    Ok(Paired { record, saved_to })
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

    fn sample_record() -> PairRecord {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let key = |pem: &str| RsaPrivateKey::from_pkcs1_pem(pem).unwrap();
        let device = key(include_str!("../../../sim/src/keys/device.pem"));
        let public = device.to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        PairRecord::with_keys(
            &key(include_str!("../../../sim/src/keys/root.pem")),
            &key(include_str!("../../../sim/src/keys/host.pem")),
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
    fn bad_device_keys_are_refused() {
        assert!(device_pkcs1_der(b"not a key").is_err());
        assert!(device_pkcs1_der(&[0xff, 0xfe]).is_err());
    }
}
