//! com.apple.mobilebackup2, the computer's side: the DeviceLink framing (u32 big-endian length,
//! then a binary plist array), the version exchange, Hello, the requests a computer makes
//! (Backup, ChangePassword), the phone's `DLMessage*` requests decoded into [`PhoneRequest`], the
//! computer's status answers, and the two file streams: files the phone asks for
//! (DownloadFiles, sent from a [`FileSource`]) and files the phone sends (UploadFiles, written
//! to a [`FileSink`]). [libimobiledevice src/mobilebackup2.c, src/device_link_service.c,
//! tools/idevicebackup2.c; ../shared/design/mobilebackup2.md]
//!
//! It owns no file: what a path means on the computer is the sink's and the source's business
//! (src/new_backup/ confines them to one folder). The phone may stay silent for minutes (taking
//! a snapshot, waiting for its passcode): reads wait up to [`Patience::silence`] in the
//! transport's timeout steps and look at [`Patience::stop`] between steps, so Ctrl-C or a cancel
//! request ends a wait within seconds. Every length the phone announces is capped before
//! anything is allocated.

use std::io::{self, Cursor, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};

use super::super::transport::is_waiting;
use super::super::DeviceError;

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

/// Chunk codes of the file streams.
const CODE_SUCCESS: u8 = 0x00;
const CODE_ERROR_LOCAL: u8 = 0x06;
const CODE_ERROR_REMOTE: u8 = 0x0b;
const CODE_FILE_DATA: u8 = 0x0c;
/// How much of a file goes in one chunk sent to the phone.
const SEND_CHUNK: usize = 1 << 20;

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

    fn stopped(&self) -> bool {
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

fn bad(what: &str, detail: impl Into<String>) -> LinkError {
    LinkError::Device(DeviceError::BadReply {
        what: what.to_string(),
        detail: detail.into(),
    })
}

/// What the phone asks of the computer during a backup.
#[derive(Debug, Clone, PartialEq)]
pub enum PhoneRequest {
    /// Send these files (paths relative to the backup root) to the phone.
    DownloadFiles {
        paths: Vec<String>,
        progress: Option<f64>,
    },
    /// The phone sends files; read them with [`DeviceLink::receive_files`].
    UploadFiles {
        progress: Option<f64>,
        total_bytes: Option<u64>,
    },
    GetFreeDiskSpace,
    PurgeDiskSpace,
    CreateDirectory {
        path: String,
        progress: Option<f64>,
    },
    /// `from -> to` renames, in the order the phone listed them.
    MoveItems {
        moves: Vec<(String, String)>,
        progress: Option<f64>,
    },
    RemoveItems {
        paths: Vec<String>,
        progress: Option<f64>,
    },
    CopyItem {
        from: String,
        to: String,
    },
    ContentsOfDirectory {
        path: String,
    },
    /// The end of the operation: ErrorCode 0 is success.
    ProcessMessage {
        error_code: Option<i64>,
        description: Option<String>,
        content: Dictionary,
    },
    Disconnect,
    /// A request this client does not know (answered with an error status).
    Other(String),
}

/// One entry of a ContentsOfDirectory answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// Where the files the phone asks for come from.
pub trait FileSource {
    /// The file at `path` (as the phone named it), or the error to report for it.
    fn open(&mut self, path: &str) -> io::Result<Box<dyn Read + '_>>;
}

/// Where the files the phone sends go.
pub trait FileSink {
    /// A new file named `path` (as the phone named it) is coming.
    fn begin(&mut self, path: &str) -> io::Result<()>;
    /// The next bytes of the current file.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// The current file is complete: make it visible under its name.
    fn finish(&mut self) -> io::Result<()>;
    /// The current file will not be completed (the phone reported an error, or the stream broke):
    /// drop what was written.
    fn abandon(&mut self);
}

/// What one UploadFiles batch brought.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Received {
    pub files: u64,
    pub bytes: u64,
    /// Files the phone said it could not send, with its words.
    pub phone_errors: Vec<(String, String)>,
    /// The first file the computer could not write: (path, DeviceLink code, text).
    pub local_error: Option<(String, i64, String)>,
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
        // `send` wipes the encoded bytes; the caller wipes its own copies of the passwords.
        self.send_process_message(request)
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

    /// Answers a DownloadFiles request: each file's stream, the end marker, then the status
    /// (Multi status naming the files that could not be sent).
    pub fn send_files(
        &mut self,
        paths: &[String],
        source: &mut dyn FileSource,
    ) -> Result<(), LinkError> {
        let mut errors = Dictionary::new();
        let mut buffer = vec![0u8; SEND_CHUNK + 5];
        for path in paths {
            self.write_all(&(path.len() as u32).to_be_bytes())?;
            self.write_all(path.as_bytes())?;
            let failure = match source.open(path) {
                Ok(mut file) => loop {
                    let n = match read_some(&mut *file, &mut buffer[5..]) {
                        Ok(n) => n,
                        Err(e) => break Some(e),
                    };
                    if n == 0 {
                        break None;
                    }
                    buffer[..4].copy_from_slice(&(n as u32 + 1).to_be_bytes());
                    buffer[4] = CODE_FILE_DATA;
                    self.write_all_from(&buffer, 5 + n)?;
                },
                Err(e) => Some(e),
            };
            match failure {
                None => self.write_all(&[0, 0, 0, 1, CODE_SUCCESS])?,
                Some(e) => {
                    let text = error_text(&e);
                    let mut chunk = Vec::with_capacity(5 + text.len());
                    chunk.extend_from_slice(&(text.len() as u32 + 1).to_be_bytes());
                    chunk.push(CODE_ERROR_LOCAL);
                    chunk.extend_from_slice(text.as_bytes());
                    self.write_all(&chunk)?;
                    let mut entry = Dictionary::new();
                    entry.insert("DLFileErrorString".into(), text.into());
                    entry.insert(
                        "DLFileErrorCode".into(),
                        Value::Integer(io_status(&e).into()),
                    );
                    errors.insert(path.clone(), Value::Dictionary(entry));
                }
            }
        }
        self.write_all(&[0, 0, 0, 0])?;
        if errors.is_empty() {
            self.send_status(status::OK, None, Value::Dictionary(Dictionary::new()))
        } else {
            self.send_status(
                status::MULTI_STATUS,
                Some("Multi status"),
                Value::Dictionary(errors),
            )
        }
    }

    /// Reads one UploadFiles batch into `sink` and answers it. A file the phone reports an
    /// error for is abandoned and listed; the first file the sink cannot write ends writing
    /// (the rest of the batch is read and dropped, so the stream stays in step) and is answered
    /// with its code, after which the phone stops the backup.
    pub fn receive_files(&mut self, sink: &mut dyn FileSink) -> Result<Received, LinkError> {
        let mut got = Received::default();
        // One buffer for the whole batch; it grows to the largest chunk seen, at most 1 MiB.
        let mut buffer = Vec::new();
        // Each file: the phone's own name for it (unused), then its name in the backup.
        while self.read_name("an uploaded file's device name")?.is_some() {
            let Some(name) = self.read_name("an uploaded file's name")? else {
                return Err(bad("an upload", "a file without a name"));
            };
            let mut writing = got.local_error.is_none();
            if writing {
                if let Err(e) = sink.begin(&name) {
                    got.local_error = Some((name.clone(), io_status(&e), error_text(&e)));
                    writing = false;
                }
            }
            let mut file_bytes = 0u64;
            loop {
                let (length, code) = self.read_chunk_header()?;
                match code {
                    CODE_FILE_DATA => {
                        if buffer.len() < length.min(SEND_CHUNK) {
                            buffer.resize(length.min(SEND_CHUNK), 0);
                        }
                        let mut left = length;
                        while left > 0 {
                            let take = left.min(SEND_CHUNK);
                            let data = &mut buffer[..take];
                            self.read_exact(data, "an uploaded file's data")?;
                            if writing {
                                if let Err(e) = sink.write(data) {
                                    sink.abandon();
                                    got.local_error =
                                        Some((name.clone(), io_status(&e), error_text(&e)));
                                    writing = false;
                                }
                            }
                            left -= take;
                            file_bytes += take as u64;
                        }
                    }
                    CODE_SUCCESS => {
                        if length > 0 {
                            let mut rest = vec![0u8; length];
                            self.read_exact(&mut rest, "an upload's end marker")?;
                        }
                        if writing {
                            if let Err(e) = sink.finish() {
                                got.local_error =
                                    Some((name.clone(), io_status(&e), error_text(&e)));
                            } else {
                                got.files += 1;
                                got.bytes += file_bytes;
                            }
                        }
                        break;
                    }
                    CODE_ERROR_REMOTE | CODE_ERROR_LOCAL => {
                        let mut text = vec![0u8; length.min(MAX_NAME)];
                        self.read_exact(&mut text, "the phone's error text")?;
                        if length > text.len() {
                            self.skip(length - text.len())?;
                        }
                        if writing {
                            sink.abandon();
                        }
                        got.phone_errors
                            .push((name.clone(), String::from_utf8_lossy(&text).into_owned()));
                        break;
                    }
                    other => {
                        if writing {
                            sink.abandon();
                        }
                        return Err(bad(
                            "an upload",
                            format!("unknown chunk code 0x{other:02x} in {name:?}"),
                        ));
                    }
                }
            }
        }
        match &got.local_error {
            None => self.send_status(status::OK, None, Value::Dictionary(Dictionary::new()))?,
            Some((_, code, text)) => {
                self.send_status(*code, Some(text), Value::Dictionary(Dictionary::new()))?
            }
        }
        Ok(got)
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

    /// A name in an upload: `None` for the zero length that ends the batch.
    fn read_name(&mut self, what: &str) -> Result<Option<String>, LinkError> {
        let mut prefix = [0u8; 4];
        self.read_exact(&mut prefix, what)?;
        let length = u32::from_be_bytes(prefix) as usize;
        if length == 0 {
            return Ok(None);
        }
        if length > MAX_NAME {
            return Err(bad(
                what,
                format!("{length} bytes, more than the {MAX_NAME} allowed"),
            ));
        }
        let mut name = vec![0u8; length];
        self.read_exact(&mut name, what)?;
        String::from_utf8(name)
            .map(Some)
            .map_err(|_| bad(what, "not UTF-8 text"))
    }

    /// A chunk's length (without its code byte) and code.
    fn read_chunk_header(&mut self) -> Result<(usize, u8), LinkError> {
        let what = "an upload's chunk header";
        let mut header = [0u8; 5];
        self.read_exact(&mut header[..4], what)?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if length == 0 {
            return Err(bad(what, "a chunk of length 0 inside a file"));
        }
        if length - 1 > MAX_CHUNK {
            return Err(bad(
                what,
                format!("{} bytes, more than the {MAX_CHUNK} allowed", length - 1),
            ));
        }
        self.read_exact(&mut header[4..], what)?;
        Ok((length - 1, header[4]))
    }

    fn skip(&mut self, mut left: usize) -> Result<(), LinkError> {
        let mut scratch = [0u8; 4096];
        while left > 0 {
            let take = left.min(scratch.len());
            self.read_exact(&mut scratch[..take], "an upload")?;
            left -= take;
        }
        Ok(())
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

/// Reads what is there (at least one byte unless at the end), retrying interruptions.
fn read_some(file: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The DeviceLink code for a local error, as the public tools map errno.
pub fn io_status(e: &io::Error) -> i64 {
    match e.kind() {
        io::ErrorKind::NotFound => status::NOT_FOUND,
        io::ErrorKind::AlreadyExists => status::EXISTS,
        io::ErrorKind::NotADirectory => status::NOT_A_DIRECTORY,
        io::ErrorKind::IsADirectory => status::IS_A_DIRECTORY,
        io::ErrorKind::StorageFull => status::NO_SPACE,
        _ if e.raw_os_error() == Some(libc_eloop()) => status::LINK,
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => status::IO,
        _ => status::FAILED,
    }
}

#[cfg(unix)]
fn libc_eloop() -> i32 {
    libc::ELOOP
}

#[cfg(not(unix))]
fn libc_eloop() -> i32 {
    -1
}

/// An error's text for the phone: short, one line.
fn error_text(e: &io::Error) -> String {
    let mut text = e.to_string().replace(['\n', '\r'], " ");
    text.truncate(200);
    text
}

/// The text of `value` as an integer (the phone sends unsigned, signed or, rarely, real).
fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(i) => i.as_signed().or_else(|| i.as_unsigned().map(|u| u as i64)),
        Value::Real(r) if r.is_finite() => Some(*r as i64),
        _ => None,
    }
}

fn name_of(message: &[Value]) -> Option<&str> {
    message.first().and_then(Value::as_string)
}

/// A message for an error text: its name, or what it was instead.
fn describe_message(message: &[Value]) -> String {
    match name_of(message) {
        Some(name) => format!("{:?} where another message was due", truncate(name)),
        None => "a message without a name".to_string(),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// A DeviceLink body: a plist array, its shape checked before a value tree is built.
pub fn parse_array(bytes: &[u8]) -> Result<Vec<Value>, String> {
    crate::plist_shape::check(bytes)?;
    let value =
        Value::from_reader(Cursor::new(bytes)).map_err(|e| crate::plist_shape::describe(&e))?;
    value
        .into_array()
        .ok_or_else(|| "the message is not a plist array".to_string())
}

/// Decodes one `DLMessage*` array into a request; the error says what was malformed.
pub fn decode_request(message: &[Value]) -> Result<PhoneRequest, String> {
    let name = name_of(message).ok_or("a message without a name")?;
    let string = |i: usize| -> Result<String, String> {
        message
            .get(i)
            .and_then(Value::as_string)
            .map(str::to_string)
            .ok_or_else(|| format!("{name} without a path at {i}"))
    };
    let strings = |i: usize| -> Result<Vec<String>, String> {
        let items = message
            .get(i)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{name} without a list of paths"))?;
        items
            .iter()
            .map(|v| {
                v.as_string()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{name} lists something that is not a path"))
            })
            .collect()
    };
    let progress = |i: usize| -> Option<f64> {
        message
            .get(i)
            .and_then(|v| v.as_real().or_else(|| as_i64(v).map(|i| i as f64)))
            .filter(|p| p.is_finite())
    };
    Ok(match name {
        "DLMessageDownloadFiles" => PhoneRequest::DownloadFiles {
            paths: strings(1)?,
            progress: progress(3),
        },
        "DLMessageUploadFiles" => PhoneRequest::UploadFiles {
            progress: progress(2),
            total_bytes: message
                .get(3)
                .and_then(as_i64)
                .and_then(|n| u64::try_from(n).ok()),
        },
        "DLMessageGetFreeDiskSpace" => PhoneRequest::GetFreeDiskSpace,
        "DLMessagePurgeDiskSpace" => PhoneRequest::PurgeDiskSpace,
        "DLMessageCreateDirectory" => PhoneRequest::CreateDirectory {
            path: string(1)?,
            progress: progress(3),
        },
        "DLMessageMoveFiles" | "DLMessageMoveItems" => {
            let moves = message
                .get(1)
                .and_then(Value::as_dictionary)
                .ok_or_else(|| format!("{name} without a dictionary of moves"))?;
            PhoneRequest::MoveItems {
                moves: moves
                    .iter()
                    .map(|(from, to)| {
                        to.as_string()
                            .map(|to| (from.clone(), to.to_string()))
                            .ok_or_else(|| {
                                format!("{name}: {from:?} moves to something that is not a path")
                            })
                    })
                    .collect::<Result<_, _>>()?,
                progress: progress(3),
            }
        }
        "DLMessageRemoveFiles" | "DLMessageRemoveItems" => PhoneRequest::RemoveItems {
            paths: strings(1)?,
            progress: progress(3),
        },
        "DLMessageCopyItem" => PhoneRequest::CopyItem {
            from: string(1)?,
            to: string(2)?,
        },
        "DLContentsOfDirectory" | "DLMessageContentsOfDirectory" => {
            PhoneRequest::ContentsOfDirectory { path: string(1)? }
        }
        "DLMessageProcessMessage" => {
            let content = message
                .get(1)
                .and_then(Value::as_dictionary)
                .cloned()
                .ok_or_else(|| format!("{name} without a dictionary"))?;
            PhoneRequest::ProcessMessage {
                error_code: content.get("ErrorCode").and_then(as_i64),
                description: content
                    .get("ErrorDescription")
                    .and_then(Value::as_string)
                    .map(str::to_string),
                content,
            }
        }
        "DLMessageDisconnect" => PhoneRequest::Disconnect,
        other => PhoneRequest::Other(truncate(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A stream whose reads come from a script and whose writes are kept.
    struct Scripted {
        input: VecDeque<u8>,
        output: Vec<u8>,
        /// Reads that time out before each byte arrives (a silent phone).
        stalls: usize,
    }

    impl Scripted {
        fn new(input: Vec<u8>) -> Self {
            Scripted {
                input: input.into(),
                output: Vec::new(),
                stalls: 0,
            }
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.stalls > 0 {
                self.stalls -= 1;
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "nothing yet"));
            }
            let n = buf.len().min(self.input.len());
            for slot in buf.iter_mut().take(n) {
                *slot = self.input.pop_front().unwrap_or(0);
            }
            Ok(n)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn frame(value: &Value) -> Vec<u8> {
        let mut body = Vec::new();
        plist::to_writer_binary(&mut body, value).unwrap();
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    fn frames(output: &[u8]) -> Vec<Vec<Value>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 4 <= output.len() {
            let len = u32::from_be_bytes(output[at..at + 4].try_into().unwrap()) as usize;
            out.push(parse_array(&output[at + 4..at + 4 + len]).unwrap());
            at += 4 + len;
        }
        out
    }

    fn link(input: Vec<u8>) -> DeviceLink<Scripted> {
        DeviceLink::new(Scripted::new(input), Patience::new(Duration::from_secs(5)))
    }

    fn array(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    #[test]
    fn the_version_exchange_and_hello() {
        let mut input = frame(&array(vec![
            "DLMessageVersionExchange".into(),
            Value::Integer(300.into()),
            Value::Integer(0.into()),
        ]));
        input.extend(frame(&array(vec!["DLMessageDeviceReady".into()])));
        let mut reply = Dictionary::new();
        reply.insert("MessageName".into(), "Response".into());
        reply.insert("ErrorCode".into(), 0u64.into());
        reply.insert("ProtocolVersion".into(), Value::Real(2.1));
        input.extend(frame(&array(vec![
            "DLMessageProcessMessage".into(),
            Value::Dictionary(reply),
        ])));
        let mut link = link(input);
        link.version_exchange().unwrap();
        assert_eq!(link.hello().unwrap(), 2.1);
        let sent = frames(&link.stream.output);
        assert_eq!(sent[0][1].as_string(), Some("DLVersionsOk"));
        assert_eq!(as_i64(&sent[0][2]), Some(400));
        let hello = sent[1][1].as_dictionary().unwrap();
        assert_eq!(hello["MessageName"].as_string(), Some("Hello"));
        assert_eq!(
            hello["SupportedProtocolVersions"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn a_newer_device_link_or_no_common_version_is_refused() {
        let input = frame(&array(vec![
            "DLMessageVersionExchange".into(),
            Value::Integer(500.into()),
        ]));
        let err = link(input).version_exchange().unwrap_err();
        assert!(err.to_string().contains("DeviceLink 500"), "{err}");
        let mut reply = Dictionary::new();
        reply.insert("ErrorCode".into(), 1u64.into());
        let input = frame(&array(vec![
            "DLMessageProcessMessage".into(),
            Value::Dictionary(reply),
        ]));
        let err = link(input).hello().unwrap_err();
        assert!(err.to_string().contains("ErrorCode 1"), "{err}");
    }

    #[test]
    fn requests_decode_with_their_progress() {
        let mut moves = Dictionary::new();
        moves.insert("U/Snapshot/ab/abc".into(), "U/ab/abc".into());
        let cases = vec![
            (
                array(vec![
                    "DLMessageDownloadFiles".into(),
                    array(vec!["U/Status.plist".into()]),
                    Dictionary::new().into(),
                    Value::Real(1.5),
                ]),
                PhoneRequest::DownloadFiles {
                    paths: vec!["U/Status.plist".into()],
                    progress: Some(1.5),
                },
            ),
            (
                array(vec![
                    "DLMessageUploadFiles".into(),
                    Dictionary::new().into(),
                    Value::Real(12.0),
                    Value::Integer(4096.into()),
                ]),
                PhoneRequest::UploadFiles {
                    progress: Some(12.0),
                    total_bytes: Some(4096),
                },
            ),
            (
                array(vec![
                    "DLMessageMoveItems".into(),
                    Value::Dictionary(moves),
                    Dictionary::new().into(),
                    Value::Real(99.0),
                ]),
                PhoneRequest::MoveItems {
                    moves: vec![("U/Snapshot/ab/abc".into(), "U/ab/abc".into())],
                    progress: Some(99.0),
                },
            ),
            (
                array(vec!["DLMessageCopyItem".into(), "U/a".into(), "U/b".into()]),
                PhoneRequest::CopyItem {
                    from: "U/a".into(),
                    to: "U/b".into(),
                },
            ),
            (
                array(vec!["DLContentsOfDirectory".into(), "U".into()]),
                PhoneRequest::ContentsOfDirectory { path: "U".into() },
            ),
            (
                array(vec!["DLMessageGetFreeDiskSpace".into()]),
                PhoneRequest::GetFreeDiskSpace,
            ),
            (
                array(vec!["DLMessageFrobnicate".into()]),
                PhoneRequest::Other("DLMessageFrobnicate".into()),
            ),
        ];
        for (message, expected) in cases {
            let decoded = decode_request(message.as_array().unwrap()).unwrap();
            assert_eq!(decoded, expected);
        }
        for malformed in [
            array(vec![]),
            array(vec!["DLMessageDownloadFiles".into()]),
            array(vec![
                "DLMessageDownloadFiles".into(),
                array(vec![1u64.into()]),
            ]),
            array(vec!["DLMessageCreateDirectory".into(), 5u64.into()]),
            array(vec!["DLMessageMoveItems".into(), "x".into()]),
            array(vec!["DLMessageProcessMessage".into(), "x".into()]),
        ] {
            assert!(decode_request(malformed.as_array().unwrap()).is_err());
        }
    }

    #[test]
    fn process_message_carries_the_error_code() {
        let mut d = Dictionary::new();
        d.insert("ErrorCode".into(), 105u64.into());
        d.insert("ErrorDescription".into(), "Not enough space".into());
        let message = array(vec!["DLMessageProcessMessage".into(), Value::Dictionary(d)]);
        match decode_request(message.as_array().unwrap()).unwrap() {
            PhoneRequest::ProcessMessage {
                error_code,
                description,
                ..
            } => {
                assert_eq!(error_code, Some(105));
                assert_eq!(description.as_deref(), Some("Not enough space"));
            }
            other => panic!("{other:?}"),
        }
    }

    struct Files(Vec<(String, Vec<u8>)>);

    impl FileSource for Files {
        fn open(&mut self, path: &str) -> io::Result<Box<dyn Read + '_>> {
            self.0
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, data)| Box::new(Cursor::new(data.clone())) as Box<dyn Read>)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file"))
        }
    }

    #[test]
    fn download_files_streams_each_file_and_reports_the_missing() {
        let mut link = link(Vec::new());
        let mut files = Files(vec![("U/Status.plist".into(), b"status!".to_vec())]);
        link.send_files(
            &["U/Status.plist".to_string(), "U/Manifest.db".to_string()],
            &mut files,
        )
        .unwrap();
        let out = &link.stream.output;
        let mut expected = Vec::new();
        expected.extend_from_slice(&14u32.to_be_bytes());
        expected.extend_from_slice(b"U/Status.plist");
        expected.extend_from_slice(&8u32.to_be_bytes());
        expected.push(CODE_FILE_DATA);
        expected.extend_from_slice(b"status!");
        expected.extend_from_slice(&[0, 0, 0, 1, CODE_SUCCESS]);
        expected.extend_from_slice(&13u32.to_be_bytes());
        expected.extend_from_slice(b"U/Manifest.db");
        assert_eq!(&out[..expected.len()], &expected[..]);
        let rest = &out[expected.len()..];
        let text_len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert_eq!(rest[4], CODE_ERROR_LOCAL);
        let after = &rest[4 + text_len..];
        assert_eq!(&after[..4], &[0, 0, 0, 0]);
        let status = &frames(&after[4..])[0];
        assert_eq!(status[0].as_string(), Some("DLMessageStatusResponse"));
        assert_eq!(as_i64(&status[1]), Some(status::MULTI_STATUS));
        let entry = status[3].as_dictionary().unwrap()["U/Manifest.db"]
            .as_dictionary()
            .unwrap();
        assert_eq!(as_i64(&entry["DLFileErrorCode"]), Some(status::NOT_FOUND));
    }

    #[derive(Default)]
    struct Sink {
        current: Option<(String, Vec<u8>)>,
        done: Vec<(String, Vec<u8>)>,
        abandoned: Vec<String>,
        refuse: Option<&'static str>,
    }

    impl FileSink for Sink {
        fn begin(&mut self, path: &str) -> io::Result<()> {
            if self.refuse == Some(path) {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, "refused"));
            }
            self.current = Some((path.to_string(), Vec::new()));
            Ok(())
        }
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            self.current.as_mut().unwrap().1.extend_from_slice(data);
            Ok(())
        }
        fn finish(&mut self) -> io::Result<()> {
            self.done.push(self.current.take().unwrap());
            Ok(())
        }
        fn abandon(&mut self) {
            if let Some((path, _)) = self.current.take() {
                self.abandoned.push(path);
            }
        }
    }

    fn upload(name: &str, chunks: &[&[u8]], end: Result<(), &str>) -> Vec<u8> {
        let mut out = Vec::new();
        for part in ["device", name] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        for chunk in chunks {
            out.extend_from_slice(&(chunk.len() as u32 + 1).to_be_bytes());
            out.push(CODE_FILE_DATA);
            out.extend_from_slice(chunk);
        }
        match end {
            Ok(()) => out.extend_from_slice(&[0, 0, 0, 1, CODE_SUCCESS]),
            Err(text) => {
                out.extend_from_slice(&(text.len() as u32 + 1).to_be_bytes());
                out.push(CODE_ERROR_REMOTE);
                out.extend_from_slice(text.as_bytes());
            }
        }
        out
    }

    #[test]
    fn upload_files_writes_each_file_and_answers() {
        let mut input = upload("U/Snapshot/ab/ab1", &[b"hello ", b"world"], Ok(()));
        input.extend(upload("U/Snapshot/cd/cd2", &[], Ok(())));
        input.extend(upload("U/Snapshot/ef/ef3", &[b"par"], Err("gone")));
        input.extend_from_slice(&[0, 0, 0, 0]);
        let mut link = link(input);
        link.stream.stalls = 3;
        let mut sink = Sink::default();
        let got = link.receive_files(&mut sink).unwrap();
        assert_eq!(got.files, 2);
        assert_eq!(got.bytes, 11);
        assert_eq!(
            sink.done[0],
            ("U/Snapshot/ab/ab1".into(), b"hello world".to_vec())
        );
        assert_eq!(sink.done[1], ("U/Snapshot/cd/cd2".into(), Vec::new()));
        assert_eq!(sink.abandoned, vec!["U/Snapshot/ef/ef3".to_string()]);
        assert_eq!(
            got.phone_errors,
            vec![("U/Snapshot/ef/ef3".into(), "gone".into())]
        );
        let status = &frames(&link.stream.output)[0];
        assert_eq!(as_i64(&status[1]), Some(0));
    }

    #[test]
    fn a_file_the_computer_cannot_write_is_answered_with_its_code() {
        let mut input = upload("U/a", &[b"x"], Ok(()));
        input.extend(upload("U/b", &[b"y"], Ok(())));
        input.extend_from_slice(&[0, 0, 0, 0]);
        let mut link = link(input);
        let mut sink = Sink {
            refuse: Some("U/a"),
            ..Sink::default()
        };
        let got = link.receive_files(&mut sink).unwrap();
        assert_eq!(
            got.files, 0,
            "nothing more is written after the first failure"
        );
        assert!(got.local_error.is_some());
        let status = &frames(&link.stream.output)[0];
        assert_eq!(as_i64(&status[1]), Some(status::FAILED));
        assert_eq!(status[2].as_string(), Some("refused"));
    }

    #[test]
    fn hostile_streams_are_clear_errors() {
        // A name longer than allowed.
        let mut input = 5_000u32.to_be_bytes().to_vec();
        input.extend(vec![b'a'; 16]);
        let err = link(input).receive_files(&mut Sink::default()).unwrap_err();
        assert!(err.to_string().contains("more than the 4096"), "{err}");
        // A chunk announcing 4 GiB.
        let mut input = upload("U/a", &[], Ok(()));
        input.truncate(input.len() - 5);
        input.extend_from_slice(&u32::MAX.to_be_bytes());
        let err = link(input).receive_files(&mut Sink::default()).unwrap_err();
        assert!(err.to_string().contains("more than the"), "{err}");
        // A message announcing more than allowed, and one cut short.
        let err = link(u32::MAX.to_be_bytes().to_vec())
            .next_request()
            .unwrap_err();
        assert!(matches!(
            err,
            LinkError::Device(DeviceError::FrameTooLarge { .. })
        ));
        let err = link(vec![0, 0, 0, 9, b'b']).next_request().unwrap_err();
        assert!(matches!(err, LinkError::Device(DeviceError::Closed { .. })));
        // Not a plist, and a plist that is not an array.
        let mut input = 4u32.to_be_bytes().to_vec();
        input.extend_from_slice(b"junk");
        assert!(link(input).next_request().is_err());
        let input = frame(&Value::String("x".into()));
        assert!(link(input).next_request().is_err());
    }

    #[test]
    fn a_silent_phone_times_out_and_a_stop_ends_the_wait() {
        let mut silent = DeviceLink::new(
            Scripted {
                stalls: usize::MAX,
                ..Scripted::new(Vec::new())
            },
            Patience::new(Duration::from_millis(30)),
        );
        let started = Instant::now();
        let err = silent.next_request().unwrap_err();
        assert!(
            matches!(err, LinkError::Device(DeviceError::Timeout { .. })),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let patience = Patience::new(Duration::from_secs(3600));
        patience.stop.store(true, Ordering::SeqCst);
        let mut stopped = DeviceLink::new(
            Scripted {
                stalls: usize::MAX,
                ..Scripted::new(Vec::new())
            },
            patience,
        );
        assert!(matches!(stopped.next_request(), Err(LinkError::Stopped)));
    }

    #[test]
    fn a_stop_ends_an_upload_that_never_pauses() {
        let mut input = Vec::new();
        for i in 0..50 {
            input.extend(upload(&format!("U/f{i}"), &[&[7u8; 1000]], Ok(())));
        }
        input.extend_from_slice(&[0, 0, 0, 0]);
        let patience = Patience::new(Duration::from_secs(3600));
        let stop = patience.stop.clone();
        let mut link = DeviceLink::new(Scripted::new(input), patience);
        struct StopAfter(Arc<AtomicBool>, Sink);
        impl FileSink for StopAfter {
            fn begin(&mut self, path: &str) -> io::Result<()> {
                if self.1.done.len() == 3 {
                    self.0.store(true, Ordering::SeqCst);
                }
                self.1.begin(path)
            }
            fn write(&mut self, data: &[u8]) -> io::Result<()> {
                self.1.write(data)
            }
            fn finish(&mut self) -> io::Result<()> {
                self.1.finish()
            }
            fn abandon(&mut self) {
                self.1.abandon()
            }
        }
        let mut sink = StopAfter(stop, Sink::default());
        assert!(matches!(
            link.receive_files(&mut sink),
            Err(LinkError::Stopped)
        ));
        assert_eq!(sink.1.done.len(), 3);
    }

    #[test]
    fn status_answers_have_the_device_link_shape() {
        let mut link = link(Vec::new());
        link.send_status(0, None, Value::Integer(1234u64.into()))
            .unwrap();
        link.disconnect().unwrap();
        let sent = frames(&link.stream.output);
        assert_eq!(sent[0][2].as_string(), Some(EMPTY_PARAMETER));
        assert_eq!(as_i64(&sent[0][3]), Some(1234));
        assert_eq!(sent[1][0].as_string(), Some("DLMessageDisconnect"));
    }
}
