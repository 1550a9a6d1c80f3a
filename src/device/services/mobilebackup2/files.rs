//! mobilebackup2's two file streams. DownloadFiles: for each path the phone names, its length
//! and name, then the file in chunks (`u32 1 + length, 0x0C, data`), ended by `u32 1, 0x00`, or
//! an error chunk (0x06 and the reason) and a Multi status naming it; a zero length ends the
//! batch. UploadFiles: the phone's device name and file name, then its chunks, ended by 0x00 (or
//! 0x0B and its reason); a zero name length ends the batch. Where the bytes come from and go is
//! a [`FileSource`]'s and a [`FileSink`]'s business.

use std::io::{self, Read, Write};

use plist::{Dictionary, Value};

use super::{bad, status, DeviceLink, LinkError, MAX_CHUNK, MAX_NAME};

/// Chunk codes of the file streams.
pub(super) const CODE_SUCCESS: u8 = 0x00;
pub(super) const CODE_ERROR_LOCAL: u8 = 0x06;
pub(super) const CODE_ERROR_REMOTE: u8 = 0x0b;
pub(super) const CODE_FILE_DATA: u8 = 0x0c;
/// How much of a file goes in one chunk sent to the phone.
const SEND_CHUNK: usize = 1 << 20;

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

impl<S: Read + Write> DeviceLink<S> {
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
