//! The simulated phone's side of com.apple.mobilebackup2: what the phone holds (its content,
//! described by the profile's `backup` section) and the DeviceLink conversation that makes a
//! Finder backup of it on the computer. This file owns the profile section, the state backups
//! change (generation, encryption password) and the conversation's outer loop: the DeviceLink
//! version exchange, Hello, then one request after another (Backup, ChangePassword; anything
//! else is refused with an ErrorCode). Beside it: content.rs (the rows and their bytes),
//! keys.rs (encryption), archive.rs (Manifest.db, Manifest.plist, Status.plist), link.rs (the
//! framing and file streams) and backup.rs (one backup, phone-driven, with its faults).

pub mod archive;
mod backup;
pub mod content;
pub mod keys;
pub mod link;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};
use serde::Deserialize;

use super::server::Phone;
use ibackup::device::transport::DeviceStream;
use ibackup::device::DeviceError;
use link::Link;

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

/// What changes on the phone as backups are made (encryption turned on, content changing).
pub struct BackupState {
    will_encrypt: AtomicBool,
    /// The backup password while encryption is on.
    password: Mutex<Option<String>>,
    /// Finished backups so far: the content is `Content::at(.., generation)`.
    generation: AtomicU64,
    /// Held while a backup runs: a second one at the same time is refused.
    busy: Mutex<()>,
}

impl BackupState {
    pub fn new(profile: &super::Profile) -> Self {
        BackupState {
            will_encrypt: profile.will_encrypt.into(),
            password: Mutex::new(
                profile
                    .will_encrypt
                    .then(|| profile.backup.password.clone()),
            ),
            generation: AtomicU64::new(0),
            busy: Mutex::new(()),
        }
    }

    /// Whether the next backup will be encrypted (com.apple.mobile.backup WillEncrypt).
    pub fn will_encrypt(&self) -> bool {
        self.will_encrypt.load(Ordering::SeqCst)
    }

    /// How many backups have finished (the content's generation).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn password(&self) -> Option<String> {
        self.password
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_password(&self, password: Option<String>) {
        self.will_encrypt
            .store(password.is_some(), Ordering::SeqCst);
        *self.password.lock().unwrap_or_else(|p| p.into_inner()) = password;
    }

    fn finished_one(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// How many backups of `phone` have finished.
pub fn generation(phone: &Phone) -> u64 {
    phone.backup.generation()
}

/// Whether `phone`'s next backup will be encrypted.
pub fn will_encrypt(phone: &Phone) -> bool {
    phone.backup.will_encrypt()
}

/// The phone's content now (what the next backup will hold).
pub fn current_content(phone: &Phone) -> content::Content {
    let profile = phone.profile();
    content::Content::at(&profile.backup, &profile.apps, phone.backup.generation())
}

/// Error codes the simulated phone answers with. 1, 105 and 205 are the ones public clients
/// know; the others are this simulator's, each sent with a description that says what happened.
pub mod codes {
    /// Hello offered no protocol version the phone speaks.
    pub const NO_COMMON_VERSION: u64 = 1;
    /// The request was malformed, for another phone, or one the simulator does not serve.
    pub const BAD_REQUEST: u64 = 2;
    /// ChangePassword with a wrong or missing old password, or nothing to change.
    pub const WRONG_PASSWORD: u64 = 3;
    /// The computer answered one of the phone's requests with an error.
    pub const COMPUTER_FAILED: u64 = 4;
    /// Another backup of this phone is running.
    pub const BUSY: u64 = 6;
    /// Not enough free space on the computer.
    pub const NO_SPACE: u64 = 105;
    /// Some files could not be backed up.
    pub const FILE_ERRORS: u64 = 205;
    /// The hostile_paths fault: the computer did what it was asked outside its backup.
    pub const ESCAPED: u64 = 98;
}

/// How long the phone waits for the computer's next request (Hello, Backup, Disconnect).
const IDLE: Duration = Duration::from_secs(120);

/// The DeviceLink major version the phone offers: iOS 14 and later say 400, older ones 300.
fn devicelink_major(ios_version: &str) -> u64 {
    let major: u64 = ios_version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(17);
    if major >= 14 {
        400
    } else {
        300
    }
}

/// `{ErrorCode, ErrorDescription}` as a ProcessMessage.
fn error_message(code: u64, description: &str) -> Dictionary {
    let mut dict = Dictionary::new();
    dict.insert("ErrorCode".into(), code.into());
    if !description.is_empty() {
        dict.insert("ErrorDescription".into(), description.into());
    }
    dict
}

/// Serves one mobilebackup2 connection (already inside TLS when the service asked for it).
pub fn serve(phone: &Phone, stream: Box<dyn DeviceStream>) -> Result<(), DeviceError> {
    let mut link = Link::new(stream);
    // DeviceLink version exchange.
    link.send(vec![
        "DLMessageVersionExchange".into(),
        devicelink_major(&phone.profile().ios_version).into(),
        0u64.into(),
    ])?;
    let Some(answer) = link.receive("DLVersionsOk", Instant::now() + IDLE)? else {
        return Ok(());
    };
    if answer.first().and_then(Value::as_string) != Some("DLMessageVersionExchange")
        || answer.get(1).and_then(Value::as_string) != Some("DLVersionsOk")
    {
        return Err(link::bad(
            "the answer to DLMessageVersionExchange",
            "not DLVersionsOk: the computer refused the DeviceLink version",
        ));
    }
    link.send(vec!["DLMessageDeviceReady".into()])?;
    let mut hello_done = false;
    loop {
        let Some(message) = link.receive("the computer's next request", Instant::now() + IDLE)?
        else {
            return Ok(());
        };
        let kind = message[0].as_string().unwrap_or("");
        if kind == "DLMessageDisconnect" {
            return Ok(());
        }
        let request = match (kind, message.get(1)) {
            ("DLMessageProcessMessage", Some(Value::Dictionary(d))) => d.clone(),
            _ => {
                link.send_process_message(error_message(
                    codes::BAD_REQUEST,
                    &format!("the phone expected DLMessageProcessMessage, not {kind}"),
                ))?;
                continue;
            }
        };
        let name = request
            .get("MessageName")
            .and_then(Value::as_string)
            .unwrap_or("")
            .to_string();
        match name.as_str() {
            "Hello" => {
                hello_done = hello(&mut link, &request)?;
            }
            _ if !hello_done => link.send_process_message(error_message(
                codes::BAD_REQUEST,
                &format!("{name} before Hello: say Hello first"),
            ))?,
            "Backup" => {
                let target = request.get("TargetIdentifier").and_then(Value::as_string);
                if target != Some(phone.profile().udid.as_str()) {
                    link.send_process_message(error_message(
                        codes::BAD_REQUEST,
                        &format!(
                            "Backup is for TargetIdentifier {}, but this phone is {}",
                            target.unwrap_or("(none)"),
                            phone.profile().udid
                        ),
                    ))?;
                    continue;
                }
                let _running = match phone.backup.busy.try_lock() {
                    Ok(guard) => guard,
                    // A backup thread that panicked leaves nothing running.
                    Err(TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(TryLockError::WouldBlock) => {
                        link.send_process_message(error_message(
                            codes::BUSY,
                            "another backup of this phone is in progress",
                        ))?;
                        continue;
                    }
                };
                let force_full = request
                    .get("Options")
                    .and_then(Value::as_dictionary)
                    .and_then(|o| o.get("ForceFullBackup"))
                    .and_then(Value::as_boolean)
                    .unwrap_or(false);
                match backup::run(phone, &mut link, force_full)? {
                    backup::Outcome::Continue => {}
                    backup::Outcome::Gone => return Ok(()),
                }
            }
            "ChangePassword" => change_password(phone, &mut link, &request)?,
            other => link.send_process_message(error_message(
                codes::BAD_REQUEST,
                &format!("the simulated phone does not serve {other:?} requests"),
            ))?,
        }
    }
}

/// Answers Hello: protocol 2.1 when offered, ErrorCode 1 otherwise. Returns whether a
/// version was agreed.
fn hello(link: &mut Link, request: &Dictionary) -> Result<bool, DeviceError> {
    let offered = request
        .get("SupportedProtocolVersions")
        .and_then(Value::as_array)
        .map(|versions| {
            versions.iter().any(|v| {
                v.as_real()
                    .or_else(|| v.as_signed_integer().map(|i| i as f64))
                    .is_some_and(|v| (v - 2.1).abs() < 1e-6)
            })
        })
        .unwrap_or(false);
    let mut answer = Dictionary::new();
    answer.insert("MessageName".into(), "Response".into());
    if offered {
        answer.insert("ErrorCode".into(), 0u64.into());
        answer.insert("ProtocolVersion".into(), Value::Real(2.1));
    } else {
        answer.insert("ErrorCode".into(), codes::NO_COMMON_VERSION.into());
        answer.insert(
            "ErrorDescription".into(),
            "no common protocol version: the phone speaks 2.1".into(),
        );
    }
    link.send_process_message(answer)?;
    Ok(offered)
}

/// ChangePassword {OldPassword?, NewPassword?}: turns encryption on (new only), off (old
/// only) or changes the password (both); a wrong old password changes nothing.
fn change_password(
    phone: &Phone,
    link: &mut Link,
    request: &Dictionary,
) -> Result<(), DeviceError> {
    let text = |key: &str| {
        request
            .get(key)
            .and_then(Value::as_string)
            .map(str::to_string)
    };
    let (old, new) = (text("OldPassword"), text("NewPassword"));
    let current = phone.backup.password();
    let reply = match (&current, &old, &new) {
        (_, _, Some(new)) if new.is_empty() => Err("the new backup password is empty".to_string()),
        (None, _, Some(new)) => {
            phone.backup.set_password(Some(new.clone()));
            Ok(())
        }
        (None, _, None) => Err("backup encryption is off: there is no password to remove".into()),
        (Some(_), None, _) => Err(
            "backup encryption is on: the current password (OldPassword) is needed to change it"
                .into(),
        ),
        (Some(current), Some(old), _) if current != old => {
            Err("the old backup password is wrong; nothing was changed".into())
        }
        (Some(_), Some(_), new) => {
            phone.backup.set_password(new.clone());
            Ok(())
        }
    };
    match reply {
        Ok(()) => link.send_process_message(error_message(0, "")),
        Err(description) => {
            link.send_process_message(error_message(codes::WRONG_PASSWORD, &description))
        }
    }
}
