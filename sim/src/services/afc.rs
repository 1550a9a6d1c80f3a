//! com.apple.afc on the simulated phone: the Apple File Conduit over a small in-memory file
//! system shared by every connection of the phone. What a backup needs of it: the sync lock
//! (`/com.apple.itunes.lock_sync`, created by FILE_OPEN, locked with FILE_LOCK: exclusive,
//! never blocking, one holder per phone; a closed handle or an ended connection lets go), and
//! the reads a computer makes for Info.plist (`/iTunes_Control/iTunes/*`, `/Books/...`:
//! folders that exist, files that do not, so "not found" is the answer). Also served, small and
//! real: READ_DIR, GET_FILE_INFO, GET_DEVINFO, MAKE_DIR, REMOVE_PATH, FILE_WRITE.
//!
//! Packets: a 40-byte header (magic `CFA6LPAA`, entire length, this length = header + header
//! data, packet number, operation; numbers u64 little-endian), header data, payload. Every
//! answer echoes the request's packet number; a status answer carries its 8-byte code.
//! [`Connection::handle`] turns one request into its answer's bytes (tested alone);
//! [`read_packet`] checks and caps what comes off the wire; [`serve`] runs a connection.
//! Operation and status numbers as libimobiledevice's afc.h lists them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{lock, ServiceStream, SERVICE_IDLE};
use crate::profile::Profile;
use ibackup::device::DeviceError;

/// The file a computer locks while it syncs or backs up.
pub const SYNC_LOCK_FILE: &str = "/com.apple.itunes.lock_sync";
/// Every packet starts with it.
pub const MAGIC: &[u8; 8] = b"CFA6LPAA";
/// The fixed header's length.
pub const HEADER_LEN: usize = 40;
/// The most a request may carry after its header (a path, or data to write).
pub const MAX_BODY: u64 = 1 << 20;
/// The most one FILE_READ answers with.
pub const MAX_READ: u64 = 1 << 20;
/// The largest file, the most bytes and files the phone's AFC holds.
const MAX_FILE: usize = 8 << 20;
const MAX_TOTAL: usize = 32 << 20;
const MAX_ENTRIES: usize = 4096;
/// Open handles per connection.
const MAX_HANDLES: usize = 64;
/// The longest path accepted.
const MAX_PATH: usize = 1024;

/// Operation numbers.
pub mod op {
    pub const STATUS: u64 = 0x01;
    pub const DATA: u64 = 0x02;
    pub const READ_DIR: u64 = 0x03;
    pub const REMOVE_PATH: u64 = 0x08;
    pub const MAKE_DIR: u64 = 0x09;
    pub const GET_FILE_INFO: u64 = 0x0A;
    pub const GET_DEVINFO: u64 = 0x0B;
    pub const FILE_OPEN: u64 = 0x0D;
    pub const FILE_OPEN_RES: u64 = 0x0E;
    pub const FILE_READ: u64 = 0x0F;
    pub const FILE_WRITE: u64 = 0x10;
    pub const FILE_CLOSE: u64 = 0x14;
    pub const FILE_LOCK: u64 = 0x1B;
    /// The highest operation number AFC defines (FileRefWriteWithOffset).
    pub const LAST_KNOWN: u64 = 0x28;
}

/// Status codes.
pub mod code {
    pub const SUCCESS: u64 = 0;
    pub const OP_HEADER_INVALID: u64 = 2;
    pub const NO_RESOURCES: u64 = 3;
    pub const UNKNOWN_PACKET_TYPE: u64 = 6;
    pub const INVALID_ARG: u64 = 7;
    pub const OBJECT_NOT_FOUND: u64 = 8;
    pub const OBJECT_IS_DIR: u64 = 9;
    pub const PERM_DENIED: u64 = 10;
    pub const TOO_MUCH_DATA: u64 = 13;
    pub const OP_NOT_SUPPORTED: u64 = 15;
    pub const OBJECT_EXISTS: u64 = 16;
    pub const NO_SPACE_LEFT: u64 = 18;
    pub const OP_WOULD_BLOCK: u64 = 19;
    pub const DIR_NOT_EMPTY: u64 = 33;
}

/// FILE_LOCK operations: shared 1, exclusive 2, unlock 8, each with 4 for "do not block".
const LOCK_SHARED: u64 = 1;
const LOCK_EXCLUSIVE: u64 = 2;
const LOCK_NONBLOCKING: u64 = 4;
const LOCK_UNLOCK: u64 = 8;

/// One request or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub packet_num: u64,
    pub operation: u64,
    /// What the header's this_length covers after the 40 bytes (handles, paths, codes).
    pub header_data: Vec<u8>,
    /// What follows (data read or written).
    pub payload: Vec<u8>,
}

/// The bytes of a packet.
pub fn encode(packet_num: u64, operation: u64, header_data: &[u8], payload: &[u8]) -> Vec<u8> {
    let this = (HEADER_LEN + header_data.len()) as u64;
    let entire = this + payload.len() as u64;
    let mut out = Vec::with_capacity(entire as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&entire.to_le_bytes());
    out.extend_from_slice(&this.to_le_bytes());
    out.extend_from_slice(&packet_num.to_le_bytes());
    out.extend_from_slice(&operation.to_le_bytes());
    out.extend_from_slice(header_data);
    out.extend_from_slice(payload);
    out
}

/// A status answer with `code`.
pub fn status(packet_num: u64, code: u64) -> Vec<u8> {
    encode(packet_num, op::STATUS, &code.to_le_bytes(), &[])
}

/// Why a request could not be read: the stream failed, or the header is one the phone
/// refuses (then it answers `code` to `packet_num` and closes: the stream cannot be trusted to
/// be at a packet boundary any more).
#[derive(Debug)]
pub enum ReadError {
    Stream(DeviceError),
    Refused {
        packet_num: u64,
        code: u64,
        detail: String,
    },
}

fn read_full(
    reader: &mut dyn Read,
    buf: &mut [u8],
    deadline: Instant,
    at_start: bool,
) -> Result<bool, DeviceError> {
    let mut filled = 0;
    while filled < buf.len() {
        if Instant::now() > deadline {
            return Err(DeviceError::Timeout {
                what: "an AFC request".to_string(),
                secs: SERVICE_IDLE.as_secs(),
            });
        }
        match reader.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 && at_start => return Ok(false),
            Ok(0) => {
                return Err(DeviceError::Closed {
                    what: "an AFC request".to_string(),
                    at_start: false,
                })
            }
            Ok(n) => filled += n,
            Err(e) if super::timed_out(&e) => {}
            Err(e) => {
                return Err(DeviceError::Io {
                    what: "reading an AFC request".to_string(),
                    source: e,
                })
            }
        }
    }
    Ok(true)
}

/// Reads one request; `Ok(None)` when the client closed between requests. The header is
/// checked (magic, lengths that agree, at most [`MAX_BODY`] after it) before anything is
/// allocated for the body.
pub fn read_packet(reader: &mut dyn Read, deadline: Instant) -> Result<Option<Packet>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    if !read_full(reader, &mut header, deadline, true).map_err(ReadError::Stream)? {
        return Ok(None);
    }
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
    let (entire, this, packet_num, operation) = (word(8), word(16), word(24), word(32));
    let refuse = |code: u64, detail: String| {
        Err(ReadError::Refused {
            packet_num,
            code,
            detail,
        })
    };
    if &header[..8] != MAGIC {
        return refuse(
            code::OP_HEADER_INVALID,
            format!("the magic is {:?}, not CFA6LPAA", &header[..8]),
        );
    }
    if this < HEADER_LEN as u64 || entire < this {
        return refuse(
            code::OP_HEADER_INVALID,
            format!("lengths that do not fit: entire {entire}, this {this}"),
        );
    }
    if entire - HEADER_LEN as u64 > MAX_BODY {
        return refuse(
            code::TOO_MUCH_DATA,
            format!(
                "{} bytes after the header, more than the {MAX_BODY} allowed",
                entire - HEADER_LEN as u64
            ),
        );
    }
    let mut body = vec![0u8; (entire as usize) - HEADER_LEN];
    read_full(reader, &mut body, deadline, false).map_err(ReadError::Stream)?;
    let payload = body.split_off((this as usize) - HEADER_LEN);
    Ok(Some(Packet {
        packet_num,
        operation,
        header_data: body,
        payload,
    }))
}

struct File {
    data: Vec<u8>,
    modified: SystemTime,
}

/// The phone's AFC: its files and folders, and who holds which lock.
struct Fs {
    dirs: BTreeSet<String>,
    files: BTreeMap<String, File>,
    /// path -> (connection, handle) holding its lock.
    locks: HashMap<String, (u64, u64)>,
    /// Lock attempts on the sync lock file still to answer "would block".
    busy_left: u32,
    created: SystemTime,
}

/// What all AFC connections of one phone share.
pub struct Shared {
    fs: Mutex<Fs>,
    next_connection: AtomicU64,
}

impl Shared {
    /// An AFC with the media folders a phone has (no files in them), whose sync lock answers
    /// "would block" to the first `sync_lock_busy_for` attempts.
    pub fn new(sync_lock_busy_for: u32) -> Self {
        let dirs = [
            "/",
            "/Books",
            "/DCIM",
            "/Downloads",
            "/iTunes_Control",
            "/iTunes_Control/iTunes",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        Shared {
            fs: Mutex::new(Fs {
                dirs,
                files: BTreeMap::new(),
                locks: HashMap::new(),
                busy_left: sync_lock_busy_for,
                created: SystemTime::now(),
            }),
            next_connection: AtomicU64::new(1),
        }
    }

    /// Whether some connection holds the lock of `path`.
    pub fn locked(&self, path: &str) -> bool {
        lock(&self.fs).locks.contains_key(path)
    }

    /// Whether `path` is a file.
    pub fn exists(&self, path: &str) -> bool {
        lock(&self.fs).files.contains_key(path)
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new(0)
    }
}

struct Handle {
    path: String,
    readable: bool,
    writable: bool,
    append: bool,
    position: usize,
}

/// One AFC connection: its open handles. Dropping it lets go of its locks.
pub struct Connection<'a> {
    shared: &'a Shared,
    id: u64,
    handles: HashMap<u64, Handle>,
    next_handle: u64,
    model: String,
    total_bytes: u64,
    free_bytes: u64,
}

/// Turns a client's path into the phone's: absolute, no `.`, `..` or empty parts (`..` stops
/// at the root). `None` for a path that is not UTF-8, empty, or too long.
fn normalize(raw: &[u8]) -> Option<String> {
    let raw = raw.split(|b| *b == 0).next().unwrap_or(&[]);
    if raw.is_empty() || raw.len() > MAX_PATH {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(at) => &path[..at],
    }
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

fn nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// NUL-separated strings, as AFC's DATA answers list names and key/value pairs.
fn nul_list<S: AsRef<str>>(items: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        out.extend_from_slice(item.as_ref().as_bytes());
        out.push(0);
    }
    out
}

impl<'a> Connection<'a> {
    /// A new connection to `shared`, answering device info from `profile`.
    pub fn new(shared: &'a Shared, profile: &Profile) -> Self {
        Connection {
            shared,
            id: shared.next_connection.fetch_add(1, Ordering::SeqCst),
            handles: HashMap::new(),
            next_handle: 1,
            model: profile.product_type.clone(),
            total_bytes: profile.storage.total_bytes,
            free_bytes: profile.storage.available_bytes,
        }
    }

    /// The answer to one request, as bytes.
    pub fn handle(&mut self, request: &Packet) -> Vec<u8> {
        let num = request.packet_num;
        let data = &request.header_data;
        let answer = match request.operation {
            op::FILE_OPEN => self
                .open(data)
                .map(|h| (op::FILE_OPEN_RES, h.to_le_bytes().to_vec(), Vec::new())),
            op::FILE_READ => self.read(data).map(|bytes| (op::DATA, Vec::new(), bytes)),
            op::FILE_WRITE => self.write(data, &request.payload).map(|_| ok()),
            op::FILE_CLOSE => self.close(data).map(|_| ok()),
            op::FILE_LOCK => self.lock(data).map(|_| ok()),
            op::GET_FILE_INFO => self.info(data).map(|list| (op::DATA, Vec::new(), list)),
            op::READ_DIR => self.read_dir(data).map(|list| (op::DATA, Vec::new(), list)),
            op::MAKE_DIR => self.make_dir(data).map(|_| ok()),
            op::REMOVE_PATH => self.remove(data).map(|_| ok()),
            op::GET_DEVINFO => Ok((op::DATA, Vec::new(), self.device_info())),
            0 | op::STATUS | op::DATA => Err(code::INVALID_ARG),
            known if known <= op::LAST_KNOWN => Err(code::OP_NOT_SUPPORTED),
            _ => Err(code::UNKNOWN_PACKET_TYPE),
        };
        match answer {
            Ok((op::STATUS, _, _)) => status(num, code::SUCCESS),
            Ok((operation, header_data, payload)) => encode(num, operation, &header_data, &payload),
            Err(code) => status(num, code),
        }
    }

    fn handle_of(&mut self, data: &[u8]) -> Result<(u64, &mut Handle), u64> {
        let handle = u64_at(data, 0).ok_or(code::INVALID_ARG)?;
        let open = self.handles.get_mut(&handle).ok_or(code::INVALID_ARG)?;
        Ok((handle, open))
    }

    fn open(&mut self, data: &[u8]) -> Result<u64, u64> {
        let mode = u64_at(data, 0).ok_or(code::INVALID_ARG)?;
        let path = normalize(&data[8..]).ok_or(code::INVALID_ARG)?;
        // r, r+, w, w+, a, a+: (readable, writable, creates, truncates, appends)
        let (readable, writable, creates, truncates, append) = match mode {
            1 => (true, false, false, false, false),
            2 => (true, true, true, false, false),
            3 => (false, true, true, true, false),
            4 => (true, true, true, true, false),
            5 => (false, true, true, false, true),
            6 => (true, true, true, false, true),
            _ => return Err(code::INVALID_ARG),
        };
        if self.handles.len() >= MAX_HANDLES {
            return Err(code::NO_RESOURCES);
        }
        let mut fs = lock(&self.shared.fs);
        if fs.dirs.contains(&path) {
            return Err(code::OBJECT_IS_DIR);
        }
        match fs.files.get_mut(&path) {
            Some(file) if truncates => {
                file.data.clear();
                file.modified = SystemTime::now();
            }
            Some(_) => {}
            None if !creates => return Err(code::OBJECT_NOT_FOUND),
            None => {
                if !fs.dirs.contains(parent(&path)) {
                    return Err(code::OBJECT_NOT_FOUND);
                }
                if fs.files.len() + fs.dirs.len() >= MAX_ENTRIES {
                    return Err(code::NO_SPACE_LEFT);
                }
                fs.files.insert(
                    path.clone(),
                    File {
                        data: Vec::new(),
                        modified: SystemTime::now(),
                    },
                );
            }
        }
        drop(fs);
        let handle = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(
            handle,
            Handle {
                path,
                readable,
                writable,
                append,
                position: 0,
            },
        );
        Ok(handle)
    }

    fn read(&mut self, data: &[u8]) -> Result<Vec<u8>, u64> {
        let wanted = u64_at(data, 8).ok_or(code::INVALID_ARG)?.min(MAX_READ) as usize;
        let shared = self.shared;
        let (_, open) = self.handle_of(data)?;
        if !open.readable {
            return Err(code::PERM_DENIED);
        }
        let fs = lock(&shared.fs);
        let file = fs.files.get(&open.path).ok_or(code::OBJECT_NOT_FOUND)?;
        let start = open.position.min(file.data.len());
        let end = start + wanted.min(file.data.len() - start);
        open.position = end;
        Ok(file.data[start..end].to_vec())
    }

    fn write(&mut self, data: &[u8], payload: &[u8]) -> Result<(), u64> {
        let shared = self.shared;
        let (_, open) = self.handle_of(data)?;
        if !open.writable {
            return Err(code::PERM_DENIED);
        }
        let mut fs = lock(&shared.fs);
        let total: usize = fs.files.values().map(|f| f.data.len()).sum();
        let file = fs.files.get_mut(&open.path).ok_or(code::OBJECT_NOT_FOUND)?;
        let start = if open.append {
            file.data.len()
        } else {
            open.position
        };
        let end = start + payload.len();
        let growth = end.saturating_sub(file.data.len());
        if end > MAX_FILE || total + growth > MAX_TOTAL {
            return Err(code::NO_SPACE_LEFT);
        }
        if file.data.len() < end {
            file.data.resize(end, 0);
        }
        file.data[start..end].copy_from_slice(payload);
        file.modified = SystemTime::now();
        open.position = end;
        Ok(())
    }

    fn close(&mut self, data: &[u8]) -> Result<(), u64> {
        let (handle, _) = self.handle_of(data)?;
        self.handles.remove(&handle);
        let id = self.id;
        lock(&self.shared.fs)
            .locks
            .retain(|_, holder| *holder != (id, handle));
        Ok(())
    }

    /// FILE_LOCK: shared and exclusive locks are both held alone (one holder per file), and
    /// never wait: a lock someone else holds is "would block" at once, with or without the
    /// non-blocking bit (a phone that blocked would stall the connection).
    fn lock(&mut self, data: &[u8]) -> Result<(), u64> {
        let operation = u64_at(data, 8).ok_or(code::INVALID_ARG)?;
        let id = self.id;
        let shared = self.shared;
        let (handle, open) = self.handle_of(data)?;
        let path = open.path.clone();
        let mut fs = lock(&shared.fs);
        match operation & !LOCK_NONBLOCKING {
            LOCK_SHARED | LOCK_EXCLUSIVE => {
                if fs.locks.get(&path) == Some(&(id, handle)) {
                    return Ok(());
                }
                if path == SYNC_LOCK_FILE && fs.busy_left > 0 {
                    fs.busy_left -= 1;
                    return Err(code::OP_WOULD_BLOCK);
                }
                if fs.locks.contains_key(&path) {
                    return Err(code::OP_WOULD_BLOCK);
                }
                fs.locks.insert(path, (id, handle));
                Ok(())
            }
            LOCK_UNLOCK => {
                if fs.locks.get(&path) == Some(&(id, handle)) {
                    fs.locks.remove(&path);
                }
                Ok(())
            }
            _ => Err(code::INVALID_ARG),
        }
    }

    fn info(&self, data: &[u8]) -> Result<Vec<u8>, u64> {
        let path = normalize(data).ok_or(code::INVALID_ARG)?;
        let fs = lock(&self.shared.fs);
        let (size, kind, modified, links) = if let Some(file) = fs.files.get(&path) {
            (file.data.len() as u64, "S_IFREG", file.modified, 1)
        } else if fs.dirs.contains(&path) {
            let children = fs
                .dirs
                .iter()
                .filter(|d| parent(d) == path && *d != "/")
                .count();
            (64, "S_IFDIR", fs.created, 2 + children)
        } else {
            return Err(code::OBJECT_NOT_FOUND);
        };
        let when = nanos(modified).to_string();
        Ok(nul_list(&[
            "st_size".to_string(),
            size.to_string(),
            "st_blocks".to_string(),
            size.div_ceil(512).to_string(),
            "st_nlink".to_string(),
            links.to_string(),
            "st_ifmt".to_string(),
            kind.to_string(),
            "st_mtime".to_string(),
            when.clone(),
            "st_birthtime".to_string(),
            when,
        ]))
    }

    fn read_dir(&self, data: &[u8]) -> Result<Vec<u8>, u64> {
        let path = normalize(data).ok_or(code::INVALID_ARG)?;
        let fs = lock(&self.shared.fs);
        if !fs.dirs.contains(&path) {
            return Err(if fs.files.contains_key(&path) {
                code::INVALID_ARG
            } else {
                code::OBJECT_NOT_FOUND
            });
        }
        let mut names = vec![".".to_string(), "..".to_string()];
        let children = fs
            .dirs
            .iter()
            .filter(|d| *d != "/")
            .chain(fs.files.keys())
            .filter(|p| parent(p) == path)
            .map(|p| p[p.rfind('/').map_or(0, |at| at + 1)..].to_string());
        names.extend(children);
        Ok(nul_list(&names))
    }

    fn make_dir(&self, data: &[u8]) -> Result<(), u64> {
        let path = normalize(data).ok_or(code::INVALID_ARG)?;
        let mut fs = lock(&self.shared.fs);
        let mut missing = Vec::new();
        let mut at = path.as_str();
        while !fs.dirs.contains(at) {
            if fs.files.contains_key(at) {
                return Err(code::OBJECT_EXISTS);
            }
            missing.push(at.to_string());
            at = parent(at);
        }
        if fs.files.len() + fs.dirs.len() + missing.len() > MAX_ENTRIES {
            return Err(code::NO_SPACE_LEFT);
        }
        fs.dirs.extend(missing);
        Ok(())
    }

    fn remove(&self, data: &[u8]) -> Result<(), u64> {
        let path = normalize(data).ok_or(code::INVALID_ARG)?;
        let mut fs = lock(&self.shared.fs);
        if path == "/" {
            return Err(code::PERM_DENIED);
        }
        if fs.files.remove(&path).is_some() {
            fs.locks.remove(&path);
            return Ok(());
        }
        if !fs.dirs.contains(&path) {
            return Err(code::OBJECT_NOT_FOUND);
        }
        let inside = |p: &String| parent(p) == path;
        if fs.files.keys().any(inside) || fs.dirs.iter().filter(|d| *d != "/").any(inside) {
            return Err(code::DIR_NOT_EMPTY);
        }
        fs.dirs.remove(&path);
        Ok(())
    }

    fn device_info(&self) -> Vec<u8> {
        nul_list(&[
            "Model".to_string(),
            self.model.clone(),
            "FSTotalBytes".to_string(),
            self.total_bytes.to_string(),
            "FSFreeBytes".to_string(),
            self.free_bytes.to_string(),
            "FSBlockSize".to_string(),
            "4096".to_string(),
        ])
    }
}

fn ok() -> (u64, Vec<u8>, Vec<u8>) {
    (op::STATUS, Vec::new(), Vec::new())
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        let id = self.id;
        lock(&self.shared.fs)
            .locks
            .retain(|_, (holder, _)| *holder != id);
    }
}

/// Serves one AFC connection until the client closes it (its locks are let go then), stays
/// silent for [`SERVICE_IDLE`], or sends a header the phone refuses (answered, then closed).
pub fn serve(
    shared: &Shared,
    profile: &Profile,
    mut stream: Box<dyn ServiceStream>,
) -> Result<(), DeviceError> {
    let mut connection = Connection::new(shared, profile);
    let send = |stream: &mut Box<dyn ServiceStream>, bytes: &[u8]| {
        stream
            .write_all(bytes)
            .and_then(|_| stream.flush())
            .map_err(|e| DeviceError::Io {
                what: "answering an AFC request".to_string(),
                source: e,
            })
    };
    loop {
        match read_packet(&mut stream, Instant::now() + SERVICE_IDLE) {
            Ok(None) => return Ok(()),
            Ok(Some(request)) => {
                let answer = connection.handle(&request);
                send(&mut stream, &answer)?;
            }
            Err(ReadError::Stream(e)) => return Err(e),
            Err(ReadError::Refused {
                packet_num,
                code,
                detail,
            }) => {
                let _ = send(&mut stream, &status(packet_num, code));
                return Err(DeviceError::BadReply {
                    what: "an AFC request".to_string(),
                    detail,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(num: u64, operation: u64, header_data: &[u8]) -> Packet {
        Packet {
            packet_num: num,
            operation,
            header_data: header_data.to_vec(),
            payload: Vec::new(),
        }
    }

    fn open_data(mode: u64, path: &str) -> Vec<u8> {
        let mut data = mode.to_le_bytes().to_vec();
        data.extend_from_slice(path.as_bytes());
        data.push(0);
        data
    }

    fn two(a: u64, b: u64) -> Vec<u8> {
        let mut data = a.to_le_bytes().to_vec();
        data.extend_from_slice(&b.to_le_bytes());
        data
    }

    /// The answer's (packet number, operation, header data, payload).
    fn parse(bytes: &[u8]) -> Packet {
        read_packet(&mut &bytes[..], Instant::now() + SERVICE_IDLE)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .unwrap()
    }

    fn status_of(bytes: &[u8]) -> u64 {
        let answer = parse(bytes);
        assert_eq!(answer.operation, op::STATUS);
        assert_eq!(
            answer.header_data.len(),
            8,
            "a status carries its 8-byte code"
        );
        u64_at(&answer.header_data, 0).unwrap()
    }

    fn open(conn: &mut Connection, mode: u64, path: &str) -> u64 {
        let answer = parse(&conn.handle(&request(1, op::FILE_OPEN, &open_data(mode, path))));
        assert_eq!(answer.operation, op::FILE_OPEN_RES, "{answer:?}");
        u64_at(&answer.header_data, 0).unwrap()
    }

    #[test]
    fn a_status_is_a_48_byte_packet_with_the_code_and_the_packet_number() {
        let bytes = status(77, code::OP_WOULD_BLOCK);
        assert_eq!(bytes.len(), 48);
        assert_eq!(&bytes[..8], b"CFA6LPAA");
        assert_eq!(u64_at(&bytes, 8), Some(48));
        assert_eq!(u64_at(&bytes, 16), Some(48));
        assert_eq!(u64_at(&bytes, 24), Some(77));
        assert_eq!(u64_at(&bytes, 32), Some(op::STATUS));
        assert_eq!(u64_at(&bytes, 40), Some(19));
    }

    #[test]
    fn the_lock_file_is_created_locked_alone_and_let_go() {
        let shared = Shared::default();
        let profile = Profile::default();
        let mut first = Connection::new(&shared, &profile);
        let mut second = Connection::new(&shared, &profile);
        assert!(!shared.exists(SYNC_LOCK_FILE));
        let a = open(&mut first, 2, SYNC_LOCK_FILE);
        assert!(shared.exists(SYNC_LOCK_FILE));
        let b = open(&mut second, 2, SYNC_LOCK_FILE);

        let answer = first.handle(&request(5, op::FILE_LOCK, &two(a, 6)));
        assert_eq!(u64_at(&answer, 24), Some(5), "the packet number is echoed");
        assert_eq!(status_of(&answer), code::SUCCESS);
        assert!(shared.locked(SYNC_LOCK_FILE));
        // Another connection would block; the holder locking again is fine.
        assert_eq!(
            status_of(&second.handle(&request(6, op::FILE_LOCK, &two(b, 6)))),
            code::OP_WOULD_BLOCK
        );
        assert_eq!(
            status_of(&first.handle(&request(7, op::FILE_LOCK, &two(a, 6)))),
            code::SUCCESS
        );
        // Unlock, then the other one gets it.
        assert_eq!(
            status_of(&first.handle(&request(8, op::FILE_LOCK, &two(a, 12)))),
            code::SUCCESS
        );
        assert!(!shared.locked(SYNC_LOCK_FILE));
        assert_eq!(
            status_of(&second.handle(&request(9, op::FILE_LOCK, &two(b, 6)))),
            code::SUCCESS
        );
        // A connection that ends lets go of its locks.
        drop(second);
        assert!(!shared.locked(SYNC_LOCK_FILE));
        // Closing the handle lets go too.
        first.handle(&request(10, op::FILE_LOCK, &two(a, 6)));
        assert!(shared.locked(SYNC_LOCK_FILE));
        assert_eq!(
            status_of(&first.handle(&request(11, op::FILE_CLOSE, &a.to_le_bytes()))),
            code::SUCCESS
        );
        assert!(!shared.locked(SYNC_LOCK_FILE));
        // A closed handle is no handle.
        assert_eq!(
            status_of(&first.handle(&request(12, op::FILE_LOCK, &two(a, 6)))),
            code::INVALID_ARG
        );
    }

    #[test]
    fn a_busy_phone_answers_would_block_that_many_times_first() {
        let shared = Shared::new(2);
        let profile = Profile::default();
        let mut conn = Connection::new(&shared, &profile);
        let h = open(&mut conn, 2, SYNC_LOCK_FILE);
        for num in 0..2 {
            assert_eq!(
                status_of(&conn.handle(&request(num, op::FILE_LOCK, &two(h, 6)))),
                code::OP_WOULD_BLOCK
            );
            assert!(!shared.locked(SYNC_LOCK_FILE));
        }
        assert_eq!(
            status_of(&conn.handle(&request(3, op::FILE_LOCK, &two(h, 6)))),
            code::SUCCESS
        );
    }

    #[test]
    fn itunes_files_are_not_found_and_their_folder_exists() {
        let shared = Shared::default();
        let profile = Profile::default();
        let mut conn = Connection::new(&shared, &profile);
        for path in [
            "/iTunes_Control/iTunes/iTunesPrefs",
            "/iTunes_Control/iTunes/IC-Info.sidb",
            "/Books/iBooksData2.plist",
        ] {
            let mut data = path.as_bytes().to_vec();
            data.push(0);
            assert_eq!(
                status_of(&conn.handle(&request(1, op::GET_FILE_INFO, &data))),
                code::OBJECT_NOT_FOUND,
                "{path}"
            );
            assert_eq!(
                status_of(&conn.handle(&request(2, op::FILE_OPEN, &open_data(1, path)))),
                code::OBJECT_NOT_FOUND,
                "{path}"
            );
        }
        let answer = parse(&conn.handle(&request(3, op::READ_DIR, b"/iTunes_Control\0")));
        assert_eq!(answer.operation, op::DATA);
        assert_eq!(answer.payload, b".\0..\0iTunes\0");
        let info = parse(&conn.handle(&request(4, op::GET_FILE_INFO, b"/Books\0")));
        let text = String::from_utf8(info.payload).unwrap();
        assert!(text.contains("st_ifmt\0S_IFDIR\0"), "{text:?}");
    }

    #[test]
    fn files_written_are_read_back_with_their_size() {
        let shared = Shared::default();
        let profile = Profile::default();
        let mut conn = Connection::new(&shared, &profile);
        let h = open(&mut conn, 3, "/Downloads/../Books/./notes.txt");
        let mut write = request(2, op::FILE_WRITE, &h.to_le_bytes());
        write.payload = b"hello, phone".to_vec();
        assert_eq!(status_of(&conn.handle(&write)), code::SUCCESS);
        // Write-only: no reading.
        assert_eq!(
            status_of(&conn.handle(&request(3, op::FILE_READ, &two(h, 100)))),
            code::PERM_DENIED
        );
        conn.handle(&request(4, op::FILE_CLOSE, &h.to_le_bytes()));
        let info = parse(&conn.handle(&request(5, op::GET_FILE_INFO, b"/Books/notes.txt\0")));
        let text = String::from_utf8(info.payload).unwrap();
        assert!(text.starts_with("st_size\x0012\0"), "{text:?}");
        let h = open(&mut conn, 1, "Books/notes.txt");
        let first = parse(&conn.handle(&request(6, op::FILE_READ, &two(h, 5))));
        assert_eq!(
            (first.operation, first.payload.as_slice()),
            (op::DATA, &b"hello"[..])
        );
        let rest = parse(&conn.handle(&request(7, op::FILE_READ, &two(h, 1 << 40))));
        assert_eq!(rest.payload, b", phone");
        let end = parse(&conn.handle(&request(8, op::FILE_READ, &two(h, 10))));
        assert_eq!((end.operation, end.payload.len()), (op::DATA, 0));
    }

    #[test]
    fn odd_requests_get_their_status_codes() {
        let shared = Shared::default();
        let profile = Profile::default();
        let mut conn = Connection::new(&shared, &profile);
        for (req, expected) in [
            (request(1, 0x99, b""), code::UNKNOWN_PACKET_TYPE),
            (request(2, 0x1C, b""), code::OP_NOT_SUPPORTED),
            (request(3, op::FILE_OPEN, b"\x01"), code::INVALID_ARG),
            (
                request(4, op::FILE_OPEN, &open_data(9, "/x")),
                code::INVALID_ARG,
            ),
            (
                request(5, op::FILE_OPEN, &open_data(2, "/Books")),
                code::OBJECT_IS_DIR,
            ),
            (
                request(6, op::FILE_OPEN, &open_data(2, "/no/such/dir/f")),
                code::OBJECT_NOT_FOUND,
            ),
            (
                request(7, op::FILE_OPEN, &{
                    let mut d = 2u64.to_le_bytes().to_vec();
                    d.extend_from_slice(b"/\xff\xfe");
                    d
                }),
                code::INVALID_ARG,
            ),
            (
                request(
                    8,
                    op::FILE_OPEN,
                    &open_data(2, &format!("/{}", "a".repeat(2000))),
                ),
                code::INVALID_ARG,
            ),
            (request(9, op::FILE_READ, &two(42, 10)), code::INVALID_ARG),
            (request(10, op::FILE_CLOSE, b"abc"), code::INVALID_ARG),
            (
                request(11, op::READ_DIR, b"/nowhere\0"),
                code::OBJECT_NOT_FOUND,
            ),
            (request(12, op::REMOVE_PATH, b"/\0"), code::PERM_DENIED),
        ] {
            let answer = conn.handle(&req);
            assert_eq!(u64_at(&answer, 24), Some(req.packet_num));
            assert_eq!(status_of(&answer), expected, "{req:?}");
        }
        let h = open(&mut conn, 2, "/f");
        assert_eq!(
            status_of(&conn.handle(&request(13, op::FILE_LOCK, &two(h, 3)))),
            code::INVALID_ARG
        );
    }

    #[test]
    fn handles_and_file_sizes_are_capped() {
        let shared = Shared::default();
        let profile = Profile::default();
        let mut conn = Connection::new(&shared, &profile);
        for _ in 0..MAX_HANDLES {
            open(&mut conn, 2, "/f");
        }
        assert_eq!(
            status_of(&conn.handle(&request(1, op::FILE_OPEN, &open_data(2, "/f")))),
            code::NO_RESOURCES
        );
        let mut write = request(2, op::FILE_WRITE, &1u64.to_le_bytes());
        write.payload = vec![7; MAX_BODY as usize];
        for _ in 0..(MAX_FILE / MAX_BODY as usize) {
            assert_eq!(status_of(&conn.handle(&write)), code::SUCCESS);
        }
        assert_eq!(status_of(&conn.handle(&write)), code::NO_SPACE_LEFT);
    }

    #[test]
    fn bad_headers_are_refused_before_any_allocation() {
        let good = encode(3, op::GET_DEVINFO, b"", b"");
        let mut bad_magic = good.clone();
        bad_magic[..8].copy_from_slice(b"CFA6LPAB");
        let mut short_this = good.clone();
        short_this[16..24].copy_from_slice(&8u64.to_le_bytes());
        let mut this_past_entire = good.clone();
        this_past_entire[16..24].copy_from_slice(&100u64.to_le_bytes());
        let mut huge = good.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        for (bytes, expected) in [
            (bad_magic, code::OP_HEADER_INVALID),
            (short_this, code::OP_HEADER_INVALID),
            (this_past_entire, code::OP_HEADER_INVALID),
            (huge, code::TOO_MUCH_DATA),
        ] {
            match read_packet(&mut &bytes[..], Instant::now() + SERVICE_IDLE) {
                Err(ReadError::Refused {
                    packet_num, code, ..
                }) => {
                    assert_eq!((packet_num, code), (3, expected));
                }
                other => panic!("{other:?}"),
            }
        }
        // A header cut short is a closed connection, not a packet.
        assert!(matches!(
            read_packet(&mut &good[..20], Instant::now() + SERVICE_IDLE),
            Err(ReadError::Stream(DeviceError::Closed { .. }))
        ));
        assert!(matches!(
            read_packet(&mut &b""[..], Instant::now() + SERVICE_IDLE),
            Ok(None)
        ));
    }

    #[test]
    fn device_info_comes_from_the_profile() {
        let shared = Shared::default();
        let profile = Profile::default();
        let mut conn = Connection::new(&shared, &profile);
        let answer = parse(&conn.handle(&request(1, op::GET_DEVINFO, b"")));
        let text = String::from_utf8(answer.payload).unwrap();
        assert!(
            text.starts_with("Model\0iPhone14,5\0FSTotalBytes\x00128000000000\0"),
            "{text:?}"
        );
    }
}
