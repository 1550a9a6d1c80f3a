//! The simulated phone's side of com.apple.mobilebackup2: what the phone holds (its content,
//! described by the profile's `backup` section) and the DeviceLink conversation that makes a
//! Finder backup of it on the computer. This file owns the conversation's outer loop: the DeviceLink
//! version exchange, Hello, then one request after another (Backup, ChangePassword; anything
//! else is refused with an ErrorCode). Beside it: content.rs (the rows and their bytes),
//! keys.rs (encryption), archive.rs (Manifest.db, Manifest.plist, Status.plist), link.rs (the
//! framing and file streams), backup.rs (one backup, phone-driven, with its faults) and state.rs
//! (what backups change on the phone: generation, encryption password). The profile's `backup`
//! section is profile.rs's.

pub mod archive;
mod backup;
pub mod content;
pub mod keys;
pub mod link;
pub mod state;
#[cfg(test)]
mod tests;

use std::sync::TryLockError;
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};

use super::phone::Phone;
pub use super::profile::{BackupFault, BackupProfile, Changes, KdfProfile};
use ibackup::device::transport::DeviceStream;
use ibackup::device::DeviceError;
use link::Link;

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
