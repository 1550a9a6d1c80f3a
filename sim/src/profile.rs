//! What the simulated iPhone is like: a JSON profile (every field optional, defaults below) with
//! its identity, storage, battery, backup and Find My settings, how pairing goes, and at most one
//! fault. The format is documented in docs/device.md; examples live in sim/profiles/.

use std::path::Path;

use serde::Deserialize;

/// A simulated phone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub udid: String,
    pub name: String,
    pub product_type: String,
    pub hardware_model: String,
    pub ios_version: String,
    pub build_version: String,
    pub serial_number: String,
    pub wifi_address: String,
    /// `USB` or `Network`.
    pub connection_type: String,
    /// Whether the phone is plugged in at all.
    pub attached: bool,
    /// Plugged in this long after the simulator starts (ListDevices is empty before; Listen
    /// announces it).
    pub attach_after_ms: u64,
    /// Whether the simulator starts with a pair record (in its usbmuxd and its lockdownd).
    pub paired: bool,
    /// Whether the phone has a passcode (PasswordProtected).
    pub password_protected: bool,
    pub storage: StorageProfile,
    pub battery: BatteryProfile,
    pub will_encrypt: bool,
    /// RequiresEncryption (a management profile forces encrypted local backups).
    pub requires_encryption: bool,
    /// CloudBackupEnabled; null leaves the key out (an iOS that does not report it).
    pub icloud_backup: Option<bool>,
    /// LastCloudBackupDate, this many hours before the moment it is asked for (so tests never
    /// go stale); null leaves the key out.
    pub last_icloud_backup_hours_ago: Option<u64>,
    /// LastiTunesBackupDate, likewise; null leaves the key out.
    pub last_computer_backup_hours_ago: Option<u64>,
    /// How those dates are sent: seconds since 2001-01-01 as an integer, or a plist date.
    pub backup_dates_as: DateForm,
    pub find_my: bool,
    pub pairing: PairingProfile,
    pub fault: Option<Fault>,
    /// The apps installed (installation_proxy, and their AppDomain- content in backups).
    pub apps: Vec<AppProfile>,
    /// What the phone holds and how its backups go (mobilebackup2).
    pub backup: BackupProfile,
    /// This many AFC lock attempts on the sync lock file answer "would block" first, as when
    /// another program on the phone is syncing.
    pub sync_lock_busy_for: u32,
    /// Root value PhoneNumber; null leaves it out (no SIM).
    pub phone_number: Option<String>,
    /// Root value InternationalMobileEquipmentIdentity; null leaves it out.
    pub imei: Option<String>,
    /// Root value IntegratedCircuitCardIdentity (the SIM's ICCID); null leaves it out.
    pub iccid: Option<String>,
    /// com.apple.mobile.iTunes MinITunesVersion: the oldest iTunes that may sync the phone.
    pub min_itunes_version: String,
}

/// One installed app.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppProfile {
    /// CFBundleIdentifier.
    pub bundle_id: String,
    /// CFBundleDisplayName.
    pub name: String,
    /// CFBundleShortVersionString.
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageProfile {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatteryProfile {
    pub percent: u64,
    pub charging: bool,
    pub external_power: bool,
}

/// How the phone answers Pair requests: `locked_for` answers of PasswordProtected, then
/// `pending_for` answers of PairingDialogResponsePending, then the outcome.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairingProfile {
    pub locked_for: u32,
    pub pending_for: u32,
    pub outcome: PairingOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PairingOutcome {
    #[default]
    Accept,
    Deny,
}

/// The two forms iOS uses for com.apple.mobile.backup's dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DateForm {
    /// An integer: seconds since 2001-01-01 UTC.
    #[default]
    Seconds,
    /// A plist `<date>`.
    Date,
}

/// Ways the simulator misbehaves, one per profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// usbmuxd answers ListDevices with a frame header announcing ~4 GiB.
    AbsurdFrameLength,
    /// lockdownd answers QueryType with a length prefix announcing ~4 GiB.
    AbsurdLockdownLength,
    /// lockdownd answers QueryType with bytes that are not a property list.
    GarbagePlist,
    /// lockdownd accepts the connection and never answers.
    Stall,
    /// lockdownd drip-feeds its first answer, one byte a second (a slow-loris peer).
    SlowLoris,
    /// usbmuxd accepts the connection and never answers any request.
    DaemonSilent,
    /// lockdownd closes the connection at the first request inside the TLS session.
    DropMidSession,
    /// lockdownd presents a TLS certificate other than the pair record's DeviceCertificate.
    WrongCertificate,
    /// lockdownd accepts StartSession with `EnableSessionSSL` false and goes on in plain text,
    /// answering session-only values to anyone who listens on the cable.
    NoTls,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            udid: "00008110-001A2B3C4D5E801E".to_string(),
            name: "Simulated iPhone".to_string(),
            product_type: "iPhone14,5".to_string(),
            hardware_model: "D17AP".to_string(),
            ios_version: "17.5.1".to_string(),
            build_version: "21F90".to_string(),
            serial_number: "F2LSIMULATED".to_string(),
            wifi_address: "a4:c3:f0:12:34:56".to_string(),
            connection_type: "USB".to_string(),
            attached: true,
            attach_after_ms: 0,
            paired: true,
            password_protected: true,
            storage: StorageProfile::default(),
            battery: BatteryProfile::default(),
            will_encrypt: false,
            requires_encryption: false,
            icloud_backup: Some(true),
            last_icloud_backup_hours_ago: Some(3),
            last_computer_backup_hours_ago: Some(50),
            backup_dates_as: DateForm::Seconds,
            find_my: false,
            pairing: PairingProfile::default(),
            fault: None,
            apps: [
                ("net.whatsapp.WhatsApp", "WhatsApp", "24.10.74"),
                ("com.spotify.client", "Spotify", "8.9.40"),
                ("com.example.notes", "Field Notes", "3.2"),
            ]
            .into_iter()
            .map(|(bundle_id, name, version)| AppProfile {
                bundle_id: bundle_id.to_string(),
                name: name.to_string(),
                version: version.to_string(),
            })
            .collect(),
            backup: Default::default(),
            sync_lock_busy_for: 0,
            phone_number: None,
            imei: None,
            iccid: None,
            min_itunes_version: "12.5.1".to_string(),
        }
    }
}

impl Default for StorageProfile {
    fn default() -> Self {
        StorageProfile {
            total_bytes: 128_000_000_000,
            available_bytes: 54_300_000_000,
        }
    }
}

impl Default for BatteryProfile {
    fn default() -> Self {
        BatteryProfile {
            percent: 80,
            charging: true,
            external_power: true,
        }
    }
}

impl Default for PairingProfile {
    fn default() -> Self {
        PairingProfile {
            locked_for: 0,
            pending_for: 0,
            outcome: PairingOutcome::Accept,
        }
    }
}

/// The profile's `backup` section: what the phone holds and how its backups go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupProfile {
    /// Regular files on the phone (folders come on top).
    pub files: usize,
    /// Their total size in bytes (sms.db and the address book are real SQLite files of their
    /// own size; the others share the rest).
    pub total_bytes: u64,
    /// What the content and the phone's keys are made from.
    pub seed: u64,
    /// The backup password when `will_encrypt` is set in the profile.
    pub password: String,
    /// The keybag's PBKDF2 counts (real phones: 10,000,000 and 10,000; low here for speed).
    pub kdf: KdfProfile,
    /// What changes on the phone after each finished backup.
    pub changes_per_backup: Changes,
    /// A pause before each uploaded file, so that a test can interrupt a backup.
    pub upload_delay_ms: u64,
    pub fault: Option<BackupFault>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KdfProfile {
    /// DPIC: PBKDF2-HMAC-SHA256 iterations.
    pub dpic: u32,
    /// ITER: PBKDF2-HMAC-SHA1 iterations.
    pub iter: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Changes {
    pub modified: usize,
    pub added: usize,
    pub removed: usize,
}

/// How a backup goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupFault {
    /// The connection closes in the middle of a file, about half way through the upload.
    StopMidUpload,
    /// ErrorCode 105 after GetFreeDiskSpace, whatever the computer has.
    NoSpace,
    /// ErrorCode 205 once the computer's copy has been read.
    FileErrors,
    /// Everything is uploaded into Snapshot/, then ErrorCode 0 without moving it into place
    /// (its Status.plist says `uploading`).
    SnapshotLeft,
    /// The passcode prompt appears (com.apple.LocalAuthentication.ui.presented) and the phone
    /// sends nothing more until the computer goes away.
    PasscodeNeverEntered,
    /// The passcode prompt appears, is answered after about a second (`.dismissed`), then the
    /// backup goes on normally.
    PasscodePrompt,
    /// After a few files the phone asks the computer to cancel
    /// (com.apple.itunes-client.syncCancelRequest) and goes on slowly until it goes away.
    CancelRequest,
    /// Before the backup, the phone asks for paths outside `<UDID>/` (`..`, absolute paths,
    /// backslashes) to be created, written, read, moved and removed. A computer that does any
    /// of it gets ErrorCode 98 naming the request; one that refuses them all gets a normal
    /// backup.
    HostilePaths,
}

impl Default for BackupProfile {
    fn default() -> Self {
        BackupProfile {
            files: 60,
            total_bytes: 4_000_000,
            seed: 1,
            password: "simulated-password".to_string(),
            kdf: KdfProfile::default(),
            changes_per_backup: Changes::default(),
            upload_delay_ms: 0,
            fault: None,
        }
    }
}

impl Default for KdfProfile {
    fn default() -> Self {
        KdfProfile {
            dpic: 1000,
            iter: 100,
        }
    }
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            modified: 3,
            added: 2,
            removed: 1,
        }
    }
}

/// A profile file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("profile {path}: {detail}")]
pub struct ProfileError {
    pub path: String,
    pub detail: String,
}

impl Profile {
    /// Parses a profile (JSON).
    pub fn from_json(text: &str, path: &str) -> Result<Self, ProfileError> {
        serde_json::from_str(text).map_err(|e| ProfileError {
            path: path.to_string(),
            detail: e.to_string(),
        })
    }

    /// Reads a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::from_json(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_profile_is_the_default_phone() {
        assert_eq!(Profile::from_json("{}", "t").unwrap(), Profile::default());
    }

    #[test]
    fn fields_and_faults_parse() {
        let p = Profile::from_json(
            r#"{"ios_version":"18.0","battery":{"percent":12,"charging":false},
                "pairing":{"pending_for":2},"fault":"drop_mid_session"}"#,
            "t",
        )
        .unwrap();
        assert_eq!(p.ios_version, "18.0");
        assert_eq!(p.battery.percent, 12);
        assert!(!p.battery.charging);
        assert!(p.battery.external_power);
        assert_eq!(p.pairing.pending_for, 2);
        assert_eq!(p.fault, Some(Fault::DropMidSession));
        let older = Profile::from_json(
            r#"{"icloud_backup":null,"last_icloud_backup_hours_ago":null,"backup_dates_as":"date"}"#,
            "t",
        )
        .unwrap();
        assert_eq!(older.icloud_backup, None);
        assert_eq!(older.last_icloud_backup_hours_ago, None);
        assert_eq!(older.last_computer_backup_hours_ago, Some(50));
        assert_eq!(older.backup_dates_as, DateForm::Date);
    }

    #[test]
    fn typos_are_refused() {
        let err = Profile::from_json(r#"{"ios_verison":"18.0"}"#, "p.json").unwrap_err();
        assert!(err.to_string().contains("ios_verison"), "{err}");
    }

    #[test]
    fn shipped_profiles_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            Profile::load(&path).unwrap();
            count += 1;
        }
        assert!(count >= 8);
    }
}
