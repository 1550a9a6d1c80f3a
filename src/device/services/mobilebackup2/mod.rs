//! com.apple.mobilebackup2, the computer's side: the DeviceLink conversation over any stream
//! (u32 big-endian length, then a binary plist array), the version exchange, Hello, the requests
//! a computer makes (Backup, ChangePassword), its status answers, and reads that wait through a
//! silent phone. Beside it: the phone's `DLMessage*` requests decoded (`request.rs`, pure) and
//! the two file streams (`files.rs`: files the phone asks for, sent from a [`FileSource`]; files
//! the phone sends, written to a [`FileSink`]). [libimobiledevice src/mobilebackup2.c,
//! src/device_link_service.c, tools/idevicebackup2.c; ../shared/design/mobilebackup2.md]
//!
//! It owns no file: what a path means on the computer is the sink's and the source's business
//! (src/new_backup/ confines them to one folder). The phone may stay silent for minutes (taking
//! a snapshot, waiting for its passcode): reads wait up to [`Patience::silence`] in the
//! transport's timeout steps and look at [`Patience::stop`] before every read, so Ctrl-C or a
//! cancel request ends a wait, or a busy upload, within seconds. Every length the phone
//! announces is capped before anything is allocated.

mod files;
mod request;
#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};

use super::super::transport::is_waiting;
use super::super::DeviceError;
pub use files::{io_status, FileSink, FileSource, Received};
pub use request::{decode_request, parse_array, DirEntry, PhoneRequest};

/// The service's name for StartService.
pub const SERVICE: &str = "com.apple.mobilebackup2";
/// The DeviceLink major version this client speaks; a phone offering more is refused.
pub const DEVICE_LINK_VERSION: u64 = 400;
/// The mobilebackup2 protocol versions offered in Hello.
pub const PROTOCOL_VERSIONS: [f64; 2] = [2.0, 2.1];
/// The largest DeviceLink message accepted (a RemoveItems of a large backup lists many paths).
pub const MAX_MESSAGE: usize = 64 << 20;
/// The longest file or device name in an upload (PATH_MAX on the phone is 1,024).
pub const MAX_NAME: usize = 4096;
/// The largest chunk of file data accepted in one piece of an upload.
pub const MAX_CHUNK: usize = 16 << 20;
/// The placeholder DeviceLink puts where a status text or value is absent.
pub const EMPTY_PARAMETER: &str = "___EmptyParameterString___";

/// DeviceLink status codes the computer answers with (file errors as the public tools map errno).
pub mod status {
    pub const OK: i64 = 0;
    pub const FAILED: i64 = -1;
    pub const NOT_FOUND: i64 = -6;
    pub const EXISTS: i64 = -7;
    pub const NOT_A_DIRECTORY: i64 = -8;
    pub const IS_A_DIRECTORY: i64 = -9;
    pub const LINK: i64 = -10;
    pub const IO: i64 = -11;
    pub const MULTI_STATUS: i64 = -13;
    pub const NO_SPACE: i64 = -15;
}

/// How long to wait for a silent phone, and what ends a wait early.
#[derive(Clone)]
pub struct Patience {
    /// The longest silence accepted between two messages (or inside a file stream).
    pub silence: Duration,
    /// Set by Ctrl-C or a cancel request: the next wait step ends with [`LinkError::Stopped`].
    pub stop: Arc<AtomicBool>,
}

impl Patience {
    pub fn new(silence: Duration) -> Self {
        Patience {
            silence,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Why a conversation ended early.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// [`Patience::stop`] was set while waiting.
    #[error("stopped on request")]
    Stopped,
}

pub(crate) fn bad(what: &str, detail: impl Into<String>) -> LinkError {
    LinkError::Device(DeviceError::BadReply {
        what: what.to_string(),
        detail: detail.into(),
    })
}

/// A DeviceLink connection to mobilebackup2 over any stream.
pub struct DeviceLink<S: Read + Write> {
    stream: S,
    patience: Patience,
}

impl<S: Read + Write> DeviceLink<S> {
    pub fn new(stream: S, patience: Patience) -> Self {
        DeviceLink { stream, patience }
    }

    /// The phone's DLMessageVersionExchange, our DLVersionsOk, then DLMessageDeviceReady.
    pub fn version_exchange(&mut self) -> Result<(), LinkError> {
        let what = "mobilebackup2's version exchange";
        let message = self.receive_array(what)?;
        if name_of(&message) != Some("DLMessageVersionExchange") {
            return Err(bad(what, describe_message(&message)));
        }
        let major = message.get(1).and_then(as_i64).unwrap_or(-1);
        if major < 0 || major as u64 > DEVICE_LINK_VERSION {
            return Err(bad(
                what,
                format!("the phone speaks DeviceLink {major}, this client at most {DEVICE_LINK_VERSION}"),
            ));
        }
        self.send(&Value::Array(vec![
            "DLMessageVersionExchange".into(),
            "DLVersionsOk".into(),
            Value::Integer(DEVICE_LINK_VERSION.into()),
        ]))?;
        let ready = self.receive_array(what)?;
        if name_of(&ready) != Some("DLMessageDeviceReady") {
            return Err(bad(what, describe_message(&ready)));
        }
        Ok(())
    }

    /// Hello: the protocol version both sides speak.
    pub fn hello(&mut self) -> Result<f64, LinkError> {
        let mut hello = Dictionary::new();
        hello.insert("MessageName".into(), "Hello".into());
        hello.insert(
            "SupportedProtocolVersions".into(),
            Value::Array(PROTOCOL_VERSIONS.iter().map(|v| Value::Real(*v)).collect()),
        );
        self.send_process_message(hello)?;
        let what = "the phone's answer to Hello";
        let message = self.receive_array(what)?;
        let reply = match (name_of(&message), message.get(1)) {
            (Some("DLMessageProcessMessage"), Some(Value::Dictionary(d))) => d,
            _ => return Err(bad(what, describe_message(&message))),
        };
        let code = reply.get("ErrorCode").and_then(as_i64).unwrap_or(-1);
        if code != 0 {
            return Err(bad(
                what,
                format!("ErrorCode {code} (no protocol version in common with the phone)"),
            ));
        }
        reply
            .get("ProtocolVersion")
            .and_then(|v| v.as_real().or_else(|| as_i64(v).map(|i| i as f64)))
            .ok_or_else(|| bad(what, "no ProtocolVersion"))
    }

    /// Asks for a backup of `udid` (into the folder named after it), full when `force_full`.
    pub fn request_backup(&mut self, udid: &str, force_full: bool) -> Result<(), LinkError> {
        let mut options = Dictionary::new();
        if force_full {
            options.insert("ForceFullBackup".into(), true.into());
        }
        let mut request = Dictionary::new();
        request.insert("MessageName".into(), "Backup".into());
        request.insert("TargetIdentifier".into(), udid.into());
        request.insert("SourceIdentifier".into(), udid.into());
        request.insert("Options".into(), Value::Dictionary(options));
        self.send_process_message(request)
    }

    /// Turns local backup encryption on (`old` None), changes its password, or (with `new`
    /// None) turns it off. The phone may ask for its passcode; the answer ends with
    /// ProcessMessage like a backup.
    pub fn request_change_password(
        &mut self,
        udid: &str,
        old: Option<&str>,
        new: Option<&str>,
    ) -> Result<(), LinkError> {
        let mut request = Dictionary::new();
        request.insert("MessageName".into(), "ChangePassword".into());
        request.insert("TargetIdentifier".into(), udid.into());
        if let Some(old) = old {
            request.insert("OldPassword".into(), old.into());
        }
        if let Some(new) = new {
            request.insert("NewPassword".into(), new.into());
        }
        let mut message = Value::Array(vec![
            "DLMessageProcessMessage".into(),
            Value::Dictionary(request),
        ]);
        // `send` wipes the encoded bytes; the plist's copies of the passwords are wiped here,
        // and the caller wipes its own.
        let result = self.send(&message);
        if let Some(Value::Dictionary(request)) = message.as_array_mut().and_then(|m| m.get_mut(1))
        {
            for key in ["OldPassword", "NewPassword"] {
                if let Some(Value::String(text)) = request.get_mut(key) {
                    zeroize::Zeroize::zeroize(text);
                }
            }
        }
        result
    }

    fn send_process_message(&mut self, dict: Dictionary) -> Result<(), LinkError> {
        self.send(&Value::Array(vec![
            "DLMessageProcessMessage".into(),
            Value::Dictionary(dict),
        ]))
    }

    /// The phone's next request, waiting as long as [`Patience`] allows.
    pub fn next_request(&mut self) -> Result<PhoneRequest, LinkError> {
        let message = self.receive_array("the phone's next backup request")?;
        decode_request(&message).map_err(|detail| bad("a mobilebackup2 request", detail))
    }

    /// Answers the phone's last request: `code` 0 for success or a negative DeviceLink code,
    /// an optional text, and a value (an empty dictionary when there is nothing to say).
    pub fn send_status(
        &mut self,
        code: i64,
        text: Option<&str>,
        value: Value,
    ) -> Result<(), LinkError> {
        self.send(&Value::Array(vec![
            "DLMessageStatusResponse".into(),
            Value::Integer(code.into()),
            text.unwrap_or(EMPTY_PARAMETER).into(),
            value,
        ]))
    }

    /// Tells the phone the conversation is over.
    pub fn disconnect(&mut self) -> Result<(), LinkError> {
        self.send(&Value::Array(vec![
            "DLMessageDisconnect".into(),
            EMPTY_PARAMETER.into(),
        ]))
    }

    /// Answers ContentsOfDirectory.
    pub fn send_directory(&mut self, entries: &[DirEntry]) -> Result<(), LinkError> {
        let mut listing = Dictionary::new();
        for entry in entries {
            let mut d = Dictionary::new();
            d.insert(
                "DLFileType".into(),
                if entry.is_dir {
                    "DLFileTypeDirectory"
                } else {
                    "DLFileTypeRegular"
                }
                .into(),
            );
            d.insert("DLFileSize".into(), entry.size.into());
            d.insert(
                "DLFileModificationDate".into(),
                Value::Date(entry.modified.into()),
            );
            listing.insert(entry.name.clone(), Value::Dictionary(d));
        }
        self.send_status(status::OK, None, Value::Dictionary(listing))
    }

    fn send(&mut self, message: &Value) -> Result<(), LinkError> {
        let mut body = Vec::new();
        plist::to_writer_binary(&mut body, message).map_err(|e| {
            LinkError::Device(DeviceError::BadPlist {
                what: "a mobilebackup2 message".to_string(),
                detail: e.to_string(),
            })
        })?;
        let mut framed = Vec::with_capacity(body.len() + 4);
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
        let result = self.write_all(&framed);
        // A ChangePassword request carries passwords: leave none of it in freed memory.
        zeroize::Zeroize::zeroize(&mut body);
        zeroize::Zeroize::zeroize(&mut framed);
        result
    }

    fn receive_array(&mut self, what: &str) -> Result<Vec<Value>, LinkError> {
        let mut prefix = [0u8; 4];
        self.read_exact(&mut prefix, what)?;
        let length = u32::from_be_bytes(prefix) as usize;
        if length == 0 || length > MAX_MESSAGE {
            return Err(LinkError::Device(DeviceError::FrameTooLarge {
                what: what.to_string(),
                length: length as u64,
                max: MAX_MESSAGE as u64,
            }));
        }
        let mut body = vec![0u8; length];
        self.read_exact(&mut body, what)?;
        parse_array(&body).map_err(|detail| {
            LinkError::Device(DeviceError::BadPlist {
                what: what.to_string(),
                detail,
            })
        })
    }

    /// Fills `buf`, waiting through the phone's silences as [`Patience`] allows.
    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), LinkError> {
        // A phone that keeps sending never makes a read wait: look at the flag every time.
        if self.patience.stopped() {
            return Err(LinkError::Stopped);
        }
        let mut filled = 0;
        let mut heard = Instant::now();
        while filled < buf.len() {
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(LinkError::Device(DeviceError::Closed {
                        what: what.to_string(),
                        at_start: filled == 0,
                    }))
                }
                Ok(n) => {
                    filled += n;
                    heard = Instant::now();
                }
                Err(e) if is_waiting(&e) => {
                    if self.patience.stopped() {
                        return Err(LinkError::Stopped);
                    }
                    if heard.elapsed() >= self.patience.silence {
                        return Err(LinkError::Device(DeviceError::Timeout {
                            what: what.to_string(),
                            secs: self.patience.silence.as_secs(),
                        }));
                    }
                }
                Err(e) => return Err(LinkError::Device(DeviceError::from_io(what, e))),
            }
        }
        Ok(())
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.write_all_from(bytes, bytes.len())
    }

    /// Writes `bytes[..len]`, retrying while the phone is slow to read.
    fn write_all_from(&mut self, bytes: &[u8], len: usize) -> Result<(), LinkError> {
        let what = "sending to mobilebackup2";
        let mut done = 0;
        let mut moved = Instant::now();
        while done < len {
            match self.stream.write(&bytes[done..len]) {
                Ok(0) => {
                    return Err(LinkError::Device(DeviceError::Closed {
                        what: what.to_string(),
                        at_start: false,
                    }))
                }
                Ok(n) => {
                    done += n;
                    moved = Instant::now();
                }
                Err(e) if is_waiting(&e) => self.still_waiting(moved, what)?,
                Err(e) => return Err(LinkError::Device(DeviceError::from_io(what, e))),
            }
        }
        loop {
            match self.stream.flush() {
                Ok(()) => return Ok(()),
                Err(e) if is_waiting(&e) => self.still_waiting(moved, what)?,
                Err(e) => return Err(LinkError::Device(DeviceError::from_io(what, e))),
            }
        }
    }

    fn still_waiting(&self, since: Instant, what: &str) -> Result<(), LinkError> {
        if self.patience.stopped() {
            return Err(LinkError::Stopped);
        }
        if since.elapsed() >= self.patience.silence {
            return Err(LinkError::Device(DeviceError::Timeout {
                what: what.to_string(),
                secs: self.patience.silence.as_secs(),
            }));
        }
        Ok(())
    }
}

/// The text of `value` as an integer (the phone sends unsigned, signed or, rarely, real).
pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(i) => i.as_signed().or_else(|| i.as_unsigned().map(|u| u as i64)),
        Value::Real(r) if r.is_finite() => Some(*r as i64),
        _ => None,
    }
}

pub(crate) fn name_of(message: &[Value]) -> Option<&str> {
    message.first().and_then(Value::as_string)
}

/// A message for an error text: its name, or what it was instead.
fn describe_message(message: &[Value]) -> String {
    match name_of(message) {
        Some(name) => format!("{:?} where another message was due", truncate(name)),
        None => "a message without a name".to_string(),
    }
}

pub(crate) fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}
