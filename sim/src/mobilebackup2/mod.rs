//! The simulated phone's side of com.apple.mobilebackup2: what the phone holds (its content,
//! described by the profile's `backup` section) and the DeviceLink conversation that makes a
//! Finder backup of it on the computer. (Being built: issue 15.)

use serde::Deserialize;

use super::server::Phone;
use ibackup::device::transport::DeviceStream;
use ibackup::device::DeviceError;

/// The profile's `backup` section: what the phone holds and how its backups go.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupProfile {}

/// What changes on the phone as backups are made (encryption turned on, content changing).
pub struct BackupState {
    will_encrypt: std::sync::atomic::AtomicBool,
}

impl BackupState {
    pub fn new(profile: &super::Profile) -> Self {
        BackupState {
            will_encrypt: profile.will_encrypt.into(),
        }
    }

    /// Whether the next backup will be encrypted (com.apple.mobile.backup WillEncrypt).
    pub fn will_encrypt(&self) -> bool {
        self.will_encrypt.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Serves one mobilebackup2 connection (already inside TLS when the service asked for it).
pub fn serve(_phone: &Phone, _stream: Box<dyn DeviceStream>) -> Result<(), DeviceError> {
    Err(DeviceError::BadReply {
        what: "mobilebackup2".to_string(),
        detail: "not served yet".to_string(),
    })
}
