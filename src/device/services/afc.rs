//! AFC (`com.apple.afc`), the phone's file service, as far as a backup needs it: open, lock and
//! close the sync lock file, and read the small files a computer copies into Info.plist. Every
//! packet is a 40-byte header (magic `CFA6LPAA`, then four little-endian u64: the whole
//! packet's length, the length of header plus header data, the packet number, the operation),
//! then header data, then payload. The phone echoes the packet number; its status replies carry
//! an 8-byte code, turned into [`AfcStatus`] here and nowhere else. [libimobiledevice src/afc.h,
//! src/afc.c, include/libimobiledevice/afc.h]
//!
//! Packet encoding and header checks are pure; [`AfcClient`] is the thin I/O wrapper. Every
//! length the phone announces is checked against [`MAX_REPLY`] before anything is allocated.
//! Not here: what the lock means (sync_lock.rs), which files Info.plist wants (backup_info.rs).

use std::fmt;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::device::lockdown::pair_record::PairRecord;
use crate::device::lockdown::{ClientStream, LockdownClient};
use crate::device::transport::{AttachedDevice, Transport, IO_TIMEOUT};
use crate::device::{read_exact_within, DeviceError};

/// The service's name for StartService.
pub const SERVICE: &str = "com.apple.afc";
/// The largest reply accepted, header data and payload together (reads ask for
/// [`READ_CHUNK`] at a time; file information is a few hundred bytes).
pub const MAX_REPLY: u64 = 1 << 20;
/// How much one FILE_READ asks for.
pub const READ_CHUNK: u64 = 64 * 1024;
/// How long reading one whole file may take.
pub const READ_DEADLINE: Duration = Duration::from_secs(60);
/// The longest path sent.
const MAX_PATH: usize = 1024;

const MAGIC: &[u8; 8] = b"CFA6LPAA";
const HEADER_LEN: usize = 40;

/// The operations this client sends or expects back.
mod op {
    pub const STATUS: u64 = 0x01;
    pub const DATA: u64 = 0x02;
    pub const GET_FILE_INFO: u64 = 0x0A;
    pub const FILE_OPEN: u64 = 0x0D;
    pub const FILE_OPEN_RESULT: u64 = 0x0E;
    pub const FILE_READ: u64 = 0x0F;
    pub const FILE_CLOSE: u64 = 0x14;
    pub const FILE_LOCK: u64 = 0x1B;
}

/// How a file is opened (the fopen modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// `r`.
    ReadOnly = 1,
    /// `r+`, created when missing: the sync lock file.
    ReadWrite = 2,
    /// `w`.
    WriteOnly = 3,
    /// `w+`.
    ReadWriteTruncate = 4,
    /// `a`.
    Append = 5,
    /// `a+`.
    ReadAppend = 6,
}

/// A FILE_LOCK request (flock's bits: 2 exclusive, 4 non-blocking, 8 unlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOp {
    /// Exclusive, answered at once with [`AfcStatus::WouldBlock`] when someone else holds it.
    ExclusiveNonBlocking = 6,
    /// Release.
    Unlock = 12,
}

/// A status code the phone answered, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfcStatus {
    UnknownError,
    HeaderInvalid,
    NoResources,
    ReadError,
    WriteError,
    UnknownPacketType,
    InvalidArgument,
    ObjectNotFound,
    ObjectIsDirectory,
    PermissionDenied,
    ServiceNotConnected,
    Timeout,
    TooMuchData,
    EndOfData,
    NotSupported,
    ObjectExists,
    ObjectBusy,
    NoSpaceLeft,
    WouldBlock,
    IoError,
    Interrupted,
    InProgress,
    InternalError,
    /// A code with no name here.
    Other(u64),
}

impl AfcStatus {
    /// The status for a non-zero code.
    pub fn from_code(code: u64) -> Self {
        use AfcStatus::*;
        match code {
            1 => UnknownError,
            2 => HeaderInvalid,
            3 => NoResources,
            4 => ReadError,
            5 => WriteError,
            6 => UnknownPacketType,
            7 => InvalidArgument,
            8 => ObjectNotFound,
            9 => ObjectIsDirectory,
            10 => PermissionDenied,
            11 => ServiceNotConnected,
            12 => Timeout,
            13 => TooMuchData,
            14 => EndOfData,
            15 => NotSupported,
            16 => ObjectExists,
            17 => ObjectBusy,
            18 => NoSpaceLeft,
            19 => WouldBlock,
            20 => IoError,
            21 => Interrupted,
            22 => InProgress,
            23 => InternalError,
            other => Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u64 {
        use AfcStatus::*;
        match self {
            UnknownError => 1,
            HeaderInvalid => 2,
            NoResources => 3,
            ReadError => 4,
            WriteError => 5,
            UnknownPacketType => 6,
            InvalidArgument => 7,
            ObjectNotFound => 8,
            ObjectIsDirectory => 9,
            PermissionDenied => 10,
            ServiceNotConnected => 11,
            Timeout => 12,
            TooMuchData => 13,
            EndOfData => 14,
            NotSupported => 15,
            ObjectExists => 16,
            ObjectBusy => 17,
            NoSpaceLeft => 18,
            WouldBlock => 19,
            IoError => 20,
            Interrupted => 21,
            InProgress => 22,
            InternalError => 23,
            Other(code) => code,
        }
    }

    /// The code's name, in words.
    pub fn name(self) -> &'static str {
        use AfcStatus::*;
        match self {
            UnknownError => "unknown error",
            HeaderInvalid => "invalid packet header",
            NoResources => "no resources",
            ReadError => "read error",
            WriteError => "write error",
            UnknownPacketType => "unknown packet type",
            InvalidArgument => "invalid argument",
            ObjectNotFound => "not found",
            ObjectIsDirectory => "is a folder",
            PermissionDenied => "permission denied",
            ServiceNotConnected => "service not connected",
            Timeout => "timed out",
            TooMuchData => "too much data",
            EndOfData => "end of data",
            NotSupported => "operation not supported",
            ObjectExists => "already exists",
            ObjectBusy => "busy",
            NoSpaceLeft => "no space left",
            WouldBlock => "would block",
            IoError => "I/O error",
            Interrupted => "interrupted",
            InProgress => "in progress",
            InternalError => "internal error",
            Other(_) => "unknown status",
        }
    }
}

impl fmt::Display for AfcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (AFC status {})", self.name(), self.code())
    }
}

/// A packet's header as the phone sent it, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Header data length (after the 40 bytes).
    pub data_len: u64,
    /// Payload length (after the header data).
    pub payload_len: u64,
    pub packet_num: u64,
    pub operation: u64,
}

/// One packet: header, `header_data`, `payload`.
pub fn encode_packet(
    packet_num: u64,
    operation: u64,
    header_data: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let this_length = (HEADER_LEN + header_data.len()) as u64;
    let entire_length = this_length + payload.len() as u64;
    let mut out = Vec::with_capacity(entire_length as usize);
    out.extend_from_slice(MAGIC);
    for field in [entire_length, this_length, packet_num, operation] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(header_data);
    out.extend_from_slice(payload);
    out
}

/// Checks a header from the phone: the magic, lengths that add up, and a body within
/// [`MAX_REPLY`].
pub fn parse_header(bytes: &[u8; HEADER_LEN]) -> Result<Header, DeviceError> {
    let bad = |detail: String| DeviceError::BadReply {
        what: "an AFC packet header".to_string(),
        detail,
    };
    if &bytes[..8] != MAGIC {
        return Err(bad(format!(
            "the magic is {:?}, not CFA6LPAA",
            String::from_utf8_lossy(&bytes[..8])
        )));
    }
    let field = |i: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[8 + 8 * i..16 + 8 * i]);
        u64::from_le_bytes(word)
    };
    let (entire, this, packet_num, operation) = (field(0), field(1), field(2), field(3));
    if this < HEADER_LEN as u64 || entire < this {
        return Err(bad(format!(
            "impossible lengths (whole packet {entire}, header {this})"
        )));
    }
    let body = entire - HEADER_LEN as u64;
    if body > MAX_REPLY {
        return Err(DeviceError::FrameTooLarge {
            what: "an AFC packet".to_string(),
            length: body,
            max: MAX_REPLY,
        });
    }
    Ok(Header {
        data_len: this - HEADER_LEN as u64,
        payload_len: entire - this,
        packet_num,
        operation,
    })
}

/// What one reply said once its status was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// A status of 0.
    Ok,
    /// Any other operation with its header data and payload together.
    Body { operation: u64, bytes: Vec<u8> },
}

/// A status reply's code as a result: 0 is success, anything else [`DeviceError::Afc`].
fn check_status(body: &[u8], operation: &'static str, path: &str) -> Result<Reply, DeviceError> {
    let code = body
        .get(..8)
        .map(|b| u64::from_le_bytes(word(b)))
        .ok_or_else(|| DeviceError::BadReply {
            what: format!("the phone's AFC answer to {operation}"),
            detail: format!("a status of {} bytes, not 8", body.len()),
        })?;
    match code {
        0 => Ok(Reply::Ok),
        code => Err(DeviceError::Afc {
            operation,
            path: path.to_string(),
            status: AfcStatus::from_code(code),
        }),
    }
}

/// Size and kind of a file, from GET_FILE_INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// `st_size`.
    pub size: u64,
    /// `st_ifmt` (`S_IFREG`, `S_IFDIR`, `S_IFLNK`...).
    pub kind: String,
}

/// GET_FILE_INFO's answer: NUL-terminated key and value strings, one after the other.
pub fn parse_file_info(bytes: &[u8], path: &str) -> Result<FileInfo, DeviceError> {
    let bad = |detail: &str| DeviceError::BadReply {
        what: format!("the phone's file information for {path}"),
        detail: detail.to_string(),
    };
    // The final NUL ends the last word; it does not start another.
    let words = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    let mut words = words.split(|&b| b == 0);
    let (mut size, mut kind) = (None, None);
    while let (Some(key), Some(value)) = (words.next(), words.next()) {
        let value = std::str::from_utf8(value).map_err(|_| bad("a value is not UTF-8"))?;
        match key {
            b"st_size" => {
                size = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| bad("st_size is not a number"))?,
                )
            }
            b"st_ifmt" => kind = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(FileInfo {
        size: size.ok_or_else(|| bad("no st_size"))?,
        kind: kind.unwrap_or_else(|| "S_IFREG".to_string()),
    })
}

/// A connection to AFC.
pub struct AfcClient {
    stream: ClientStream,
    packet_num: u64,
}

impl AfcClient {
    /// StartService `com.apple.afc` in `lockdown`'s session and connect to it.
    pub fn open(
        transport: &dyn Transport,
        device: &AttachedDevice,
        lockdown: &mut LockdownClient,
        record: &PairRecord,
    ) -> Result<Self, DeviceError> {
        let stream = super::open(transport, device, lockdown, record, SERVICE)?;
        Ok(Self::over(stream))
    }

    /// AFC over a stream already connected to the service.
    pub fn over(stream: ClientStream) -> Self {
        AfcClient {
            stream,
            packet_num: 0,
        }
    }

    /// Sends one request and reads its reply within [`IO_TIMEOUT`].
    fn request(
        &mut self,
        operation: u64,
        name: &'static str,
        path: &str,
        header_data: &[u8],
    ) -> Result<Reply, DeviceError> {
        self.packet_num += 1;
        let packet = encode_packet(self.packet_num, operation, header_data, &[]);
        self.stream
            .write_all(&packet)
            .and_then(|_| self.stream.flush())
            .map_err(|e| DeviceError::from_io(format!("sending AFC {name} to the phone"), e))?;
        let what = format!("the phone's AFC answer to {name}");
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut head = [0u8; HEADER_LEN];
        read_exact_within(&mut self.stream, &mut head, &what, deadline)?;
        let header = parse_header(&head)?;
        // Within MAX_REPLY, checked above.
        let mut body = vec![0u8; (header.data_len + header.payload_len) as usize];
        read_exact_within(&mut self.stream, &mut body, &what, deadline)?;
        if header.packet_num != self.packet_num {
            return Err(DeviceError::BadReply {
                what,
                detail: format!(
                    "packet number {} answers request {}",
                    header.packet_num, self.packet_num
                ),
            });
        }
        match header.operation {
            op::STATUS => check_status(&body, name, path),
            operation => Ok(Reply::Body {
                operation,
                bytes: body,
            }),
        }
    }

    /// FILE_OPEN: the phone's handle for `path`.
    pub fn open_file(&mut self, path: &str, mode: FileMode) -> Result<u64, DeviceError> {
        let mut data = (mode as u64).to_le_bytes().to_vec();
        data.extend_from_slice(&path_bytes(path)?);
        match self.request(op::FILE_OPEN, "file open", path, &data)? {
            Reply::Body {
                operation: op::FILE_OPEN_RESULT,
                bytes,
            } if bytes.len() >= 8 => Ok(u64::from_le_bytes(word(&bytes))),
            other => Err(unexpected("file open", &other)),
        }
    }

    /// FILE_LOCK on an open handle. Someone else holding the lock is
    /// `DeviceError::Afc { status: AfcStatus::WouldBlock, .. }`.
    pub fn lock(&mut self, handle: u64, lock: LockOp) -> Result<(), DeviceError> {
        let mut data = handle.to_le_bytes().to_vec();
        data.extend_from_slice(&(lock as u64).to_le_bytes());
        let name = match lock {
            LockOp::ExclusiveNonBlocking => "lock",
            LockOp::Unlock => "unlock",
        };
        self.expect_ok(op::FILE_LOCK, name, &data)
    }

    /// FILE_CLOSE.
    pub fn close_file(&mut self, handle: u64) -> Result<(), DeviceError> {
        self.expect_ok(op::FILE_CLOSE, "file close", &handle.to_le_bytes())
    }

    fn expect_ok(
        &mut self,
        operation: u64,
        name: &'static str,
        data: &[u8],
    ) -> Result<(), DeviceError> {
        match self.request(operation, name, "", data)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected(name, &other)),
        }
    }

    /// GET_FILE_INFO; `None` when there is no such file.
    pub fn file_info(&mut self, path: &str) -> Result<Option<FileInfo>, DeviceError> {
        match self.request(
            op::GET_FILE_INFO,
            "file information",
            path,
            &path_bytes(path)?,
        ) {
            Ok(Reply::Body {
                operation: op::DATA,
                bytes,
            }) => parse_file_info(&bytes, path).map(Some),
            Ok(other) => Err(unexpected("file information", &other)),
            Err(DeviceError::Afc {
                status: AfcStatus::ObjectNotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The whole of a regular file, `None` when it does not exist. A file larger than
    /// `max_bytes` (by its size or by what the reads return) is
    /// [`DeviceError::FrameTooLarge`]; a folder is `Afc { status: ObjectIsDirectory }`; all of
    /// it within [`READ_DEADLINE`].
    pub fn read_file(
        &mut self,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, DeviceError> {
        self.read_file_within(path, max_bytes, READ_DEADLINE)
    }

    /// [`AfcClient::read_file`], all of it within `time` (a [`DeviceError::Timeout`] after).
    pub fn read_file_within(
        &mut self,
        path: &str,
        max_bytes: u64,
        time: Duration,
    ) -> Result<Option<Vec<u8>>, DeviceError> {
        let Some(info) = self.file_info(path)? else {
            return Ok(None);
        };
        if info.kind == "S_IFDIR" {
            return Err(DeviceError::Afc {
                operation: "file read",
                path: path.to_string(),
                status: AfcStatus::ObjectIsDirectory,
            });
        }
        let too_large = |length: u64| DeviceError::FrameTooLarge {
            what: format!("the file {path} on the phone"),
            length,
            max: max_bytes,
        };
        if info.size > max_bytes {
            return Err(too_large(info.size));
        }
        let handle = match self.open_file(path, FileMode::ReadOnly) {
            Ok(handle) => handle,
            // Gone between the two requests.
            Err(DeviceError::Afc {
                status: AfcStatus::ObjectNotFound,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let contents = self.read_to_end(handle, path, max_bytes, time, too_large);
        let closed = self.close_file(handle);
        let contents = contents?;
        closed?;
        Ok(Some(contents))
    }

    /// FILE_READ until the phone sends nothing more; each reply at most what was asked.
    fn read_to_end(
        &mut self,
        handle: u64,
        path: &str,
        max_bytes: u64,
        time: Duration,
        too_large: impl Fn(u64) -> DeviceError,
    ) -> Result<Vec<u8>, DeviceError> {
        let mut contents = Vec::new();
        // A phone that drips a byte per reply stays within the size but not within the time.
        let deadline = crate::device::deadline_after(time);
        loop {
            if Instant::now() > deadline {
                return Err(DeviceError::Timeout {
                    what: format!("the whole of {path} from the phone"),
                    secs: time.as_secs(),
                });
            }
            let mut data = handle.to_le_bytes().to_vec();
            data.extend_from_slice(&READ_CHUNK.to_le_bytes());
            let bytes = match self.request(op::FILE_READ, "file read", path, &data) {
                Ok(Reply::Body {
                    operation: op::DATA,
                    bytes,
                }) => bytes,
                // Some phones end a file with a status rather than an empty DATA packet.
                Ok(Reply::Ok)
                | Err(DeviceError::Afc {
                    status: AfcStatus::EndOfData,
                    ..
                }) => Vec::new(),
                Ok(other) => return Err(unexpected("file read", &other)),
                Err(e) => return Err(e),
            };
            if bytes.is_empty() {
                return Ok(contents);
            }
            if bytes.len() as u64 > READ_CHUNK {
                return Err(DeviceError::BadReply {
                    what: format!("the phone's AFC answer to reading {path}"),
                    detail: format!("{} bytes for a read of {READ_CHUNK}", bytes.len()),
                });
            }
            let total = contents.len() as u64 + bytes.len() as u64;
            if total > max_bytes {
                return Err(too_large(total));
            }
            contents.extend_from_slice(&bytes);
        }
    }
}

/// A path as AFC sends it: the bytes and a final NUL.
fn path_bytes(path: &str) -> Result<Vec<u8>, DeviceError> {
    if path.contains('\0') || path.len() > MAX_PATH {
        return Err(DeviceError::Io {
            what: format!("an AFC path of {} bytes", path.len()),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "AFC paths hold no NUL and at most 1024 bytes",
            ),
        });
    }
    let mut bytes = path.as_bytes().to_vec();
    bytes.push(0);
    Ok(bytes)
}

fn word(bytes: &[u8]) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[..8]);
    w
}

fn unexpected(name: &str, reply: &Reply) -> DeviceError {
    let detail = match reply {
        Reply::Ok => "a bare success status".to_string(),
        Reply::Body { operation, bytes } => {
            format!("operation {operation:#x} with {} bytes", bytes.len())
        }
    };
    DeviceError::BadReply {
        what: format!("the phone's AFC answer to {name}"),
        detail,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::device::lockdown::MaybeTls;
    use std::collections::VecDeque;
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    /// Every request: its operation and its bytes.
    type Sent = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;
    /// Packet number, operation, header data in; the reply's bytes out.
    type Answer = Box<dyn FnMut(u64, u64, &[u8]) -> Vec<u8> + Send>;

    /// A phone scripted per request: each request written is parsed and answered by `answer`,
    /// which sees the request's packet number, operation and header data.
    pub(crate) struct FakeAfc {
        pub(crate) sent: Sent,
        inbox: Vec<u8>,
        outbox: VecDeque<u8>,
        answer: Answer,
    }

    impl FakeAfc {
        pub(crate) fn new(answer: impl FnMut(u64, u64, &[u8]) -> Vec<u8> + Send + 'static) -> Self {
            FakeAfc {
                sent: Arc::default(),
                inbox: Vec::new(),
                outbox: VecDeque::new(),
                answer: Box::new(answer),
            }
        }
    }

    impl Read for FakeAfc {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.outbox.read(buf)
        }
    }

    impl Write for FakeAfc {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.inbox.extend_from_slice(buf);
            while self.inbox.len() >= HEADER_LEN {
                let entire = u64::from_le_bytes(word(&self.inbox[8..16])) as usize;
                if self.inbox.len() < entire {
                    break;
                }
                let packet: Vec<u8> = self.inbox.drain(..entire).collect();
                let num = u64::from_le_bytes(word(&packet[24..32]));
                let operation = u64::from_le_bytes(word(&packet[32..40]));
                self.sent.lock().unwrap().push((operation, packet.clone()));
                let reply = (self.answer)(num, operation, &packet[HEADER_LEN..]);
                self.outbox.extend(reply);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    pub(crate) fn status(num: u64, code: u64) -> Vec<u8> {
        encode_packet(num, op::STATUS, &code.to_le_bytes(), &[])
    }

    pub(crate) fn client(fake: FakeAfc) -> AfcClient {
        AfcClient::over(MaybeTls::Plain(Box::new(fake)))
    }

    #[test]
    fn requests_are_laid_out_as_the_wire_format_says() {
        let fake = FakeAfc::new(|num, operation, _| match operation {
            op::FILE_OPEN => encode_packet(num, op::FILE_OPEN_RESULT, &7u64.to_le_bytes(), &[]),
            _ => status(num, 0),
        });
        let sent = fake.sent.clone();
        let mut afc = client(fake);
        assert_eq!(afc.open_file("/a", FileMode::ReadWrite).unwrap(), 7);
        afc.lock(7, LockOp::ExclusiveNonBlocking).unwrap();
        afc.lock(7, LockOp::Unlock).unwrap();
        afc.close_file(7).unwrap();
        let sent = sent.lock().unwrap();
        let mut open = b"CFA6LPAA".to_vec();
        for field in [51u64, 51, 1, 0x0D, 2] {
            open.extend_from_slice(&field.to_le_bytes());
        }
        open.extend_from_slice(b"/a\0");
        assert_eq!(sent[0].1, open);
        let lock = &sent[1].1;
        assert_eq!(&lock[8..16], &56u64.to_le_bytes());
        assert_eq!(&lock[24..32], &2u64.to_le_bytes());
        assert_eq!(&lock[32..40], &0x1Bu64.to_le_bytes());
        assert_eq!(&lock[40..48], &7u64.to_le_bytes());
        assert_eq!(&lock[48..56], &6u64.to_le_bytes());
        assert_eq!(&sent[2].1[48..56], &12u64.to_le_bytes());
        assert_eq!(sent[3].0, 0x14);
        assert_eq!(&sent[3].1[40..48], &7u64.to_le_bytes());
    }

    #[test]
    fn status_codes_become_named_errors() {
        let mut afc = client(FakeAfc::new(|num, _, _| status(num, 19)));
        let err = afc.lock(1, LockOp::ExclusiveNonBlocking).unwrap_err();
        assert!(
            matches!(
                err,
                DeviceError::Afc {
                    status: AfcStatus::WouldBlock,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("would block (AFC status 19)"),
            "{err}"
        );
        assert_eq!(err.code(), "device.afc");
        let mut afc = client(FakeAfc::new(|num, _, _| status(num, 8)));
        let err = afc.open_file("/nope", FileMode::ReadOnly).unwrap_err();
        assert!(err.to_string().contains("/nope"), "{err}");
        assert!(err.to_string().contains("not found"), "{err}");
        assert_eq!(AfcStatus::from_code(99), AfcStatus::Other(99));
        for code in 1..=23 {
            assert_eq!(AfcStatus::from_code(code).code(), code);
        }
    }

    #[test]
    fn a_status_without_its_code_is_a_bad_reply() {
        let mut afc = client(FakeAfc::new(|num, _, _| {
            encode_packet(num, op::STATUS, &[0, 0], &[])
        }));
        assert!(matches!(
            afc.close_file(1),
            Err(DeviceError::BadReply { .. })
        ));
    }

    #[test]
    fn a_reply_to_another_packet_is_refused() {
        let mut afc = client(FakeAfc::new(|num, _, _| status(num + 1, 0)));
        let err = afc.close_file(1).unwrap_err();
        assert!(err.to_string().contains("packet number 2"), "{err}");
    }

    #[test]
    fn hostile_headers_are_refused_before_allocating() {
        let mut bad_magic = status(1, 0);
        bad_magic[..8].copy_from_slice(b"XXXXXXXX");
        let mut huge = encode_packet(1, op::DATA, &[], &[]);
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut short_this = status(1, 0);
        short_this[16..24].copy_from_slice(&3u64.to_le_bytes());
        let mut this_past_entire = status(1, 0);
        this_past_entire[16..24].copy_from_slice(&100u64.to_le_bytes());
        for (name, packet) in [
            ("magic", bad_magic),
            ("huge", huge),
            ("short", short_this),
            ("past", this_past_entire),
        ] {
            let head: [u8; HEADER_LEN] = packet[..HEADER_LEN].try_into().unwrap();
            let err = parse_header(&head).unwrap_err();
            assert!(
                matches!(
                    err,
                    DeviceError::BadReply { .. } | DeviceError::FrameTooLarge { .. }
                ),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn a_phone_that_stops_mid_reply_is_a_closed_connection() {
        let mut afc = client(FakeAfc::new(|num, _, _| status(num, 0)[..44].to_vec()));
        assert!(matches!(afc.close_file(1), Err(DeviceError::Closed { .. })));
    }

    /// A phone with one file: information, open, reads of at most what was asked, close.
    fn one_file(contents: Vec<u8>, announced: u64, chunk_cap: usize) -> FakeAfc {
        let mut offset = 0;
        FakeAfc::new(move |num, operation, data| match operation {
            op::GET_FILE_INFO if data == b"/f\0" => {
                let info = format!("st_size\0{announced}\0st_ifmt\0S_IFREG\0st_nlink\0001\0");
                encode_packet(num, op::DATA, &[], info.as_bytes())
            }
            op::GET_FILE_INFO => status(num, 8),
            op::FILE_OPEN => encode_packet(num, op::FILE_OPEN_RESULT, &5u64.to_le_bytes(), &[]),
            op::FILE_READ => {
                let asked = u64::from_le_bytes(word(&data[8..16])) as usize;
                let end = contents.len().min(offset + asked.min(chunk_cap));
                let part = contents[offset..end].to_vec();
                offset = end;
                encode_packet(num, op::DATA, &[], &part)
            }
            _ => status(num, 0),
        })
    }

    #[test]
    fn reading_a_file_in_chunks() {
        let contents: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut afc = client(one_file(contents.clone(), 200_000, usize::MAX));
        assert_eq!(afc.read_file("/f", 1 << 20).unwrap(), Some(contents));
        assert_eq!(afc.read_file("/missing", 10).unwrap(), None);
    }

    #[test]
    fn a_file_over_the_limit_is_an_error_whatever_its_size_says() {
        let mut afc = client(one_file(vec![1; 100], 100, usize::MAX));
        let err = afc.read_file("/f", 99).unwrap_err();
        assert!(
            matches!(err, DeviceError::FrameTooLarge { length: 100, .. }),
            "{err}"
        );
        // A size that lies: the reads are counted too.
        let mut afc = client(one_file(vec![1; 100_000], 10, usize::MAX));
        let err = afc.read_file("/f", 70_000).unwrap_err();
        assert!(matches!(err, DeviceError::FrameTooLarge { .. }), "{err}");
    }

    #[test]
    fn a_phone_dripping_a_file_hits_the_deadline() {
        let mut afc = client(FakeAfc::new(|num, operation, _| match operation {
            op::GET_FILE_INFO => encode_packet(num, op::DATA, &[], b"st_size\x001\0"),
            op::FILE_OPEN => encode_packet(num, op::FILE_OPEN_RESULT, &5u64.to_le_bytes(), &[]),
            op::FILE_READ => {
                std::thread::sleep(Duration::from_millis(1));
                encode_packet(num, op::DATA, &[], &[7])
            }
            _ => status(num, 0),
        }));
        let started = Instant::now();
        let err = afc
            .read_file_within("/f", u64::MAX, Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, DeviceError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_read_answered_with_more_than_asked_is_refused() {
        let mut afc = client(FakeAfc::new(|num, operation, _| match operation {
            op::GET_FILE_INFO => encode_packet(num, op::DATA, &[], b"st_size\x001\0"),
            op::FILE_OPEN => encode_packet(num, op::FILE_OPEN_RESULT, &5u64.to_le_bytes(), &[]),
            op::FILE_READ => encode_packet(num, op::DATA, &[], &vec![0; READ_CHUNK as usize + 1]),
            _ => status(num, 0),
        }));
        assert!(matches!(
            afc.read_file("/f", u64::MAX),
            Err(DeviceError::BadReply { .. })
        ));
    }

    #[test]
    fn file_information_parsing() {
        let info = parse_file_info(b"st_size\x0042\0st_ifmt\0S_IFDIR\0", "/p").unwrap();
        assert_eq!(
            info,
            FileInfo {
                size: 42,
                kind: "S_IFDIR".into()
            }
        );
        for bad in [
            &b""[..],
            b"st_size\0x\0",
            b"st_ifmt\0S_IFREG\0",
            b"st_size\0\xff\0",
        ] {
            assert!(parse_file_info(bad, "/p").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_with_nul_are_refused_before_sending() {
        let mut afc = client(FakeAfc::new(|num, _, _| status(num, 0)));
        assert!(afc.open_file("/a\0b", FileMode::ReadOnly).is_err());
        assert!(afc
            .open_file(&"a".repeat(2000), FileMode::ReadOnly)
            .is_err());
    }
}
