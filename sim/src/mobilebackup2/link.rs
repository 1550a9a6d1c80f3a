//! DeviceLink as the phone speaks it on a mobilebackup2 connection: messages are a u32
//! big-endian length and a binary plist array whose first item names the message; file
//! transfers are raw streams in between (a u32 length and a name per file, then chunks of a u32
//! length, a code byte and data). Everything read from the computer is capped before it is
//! allocated, and every wait has a deadline.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};

use ibackup::device::transport::DeviceStream;
use ibackup::device::DeviceError;

/// The largest DeviceLink message accepted from the computer (its answers are small).
pub const MAX_MESSAGE: usize = 4 << 20;
/// The longest file name in a DownloadFiles stream.
pub const MAX_NAME: usize = 4096;
/// The largest chunk in a DownloadFiles stream.
pub const MAX_CHUNK: usize = 16 << 20;
/// What the empty string parameter looks like on the wire.
pub const EMPTY: &str = "___EmptyParameterString___";
/// A chunk of file data.
pub const CODE_FILE_DATA: u8 = 0x0C;
/// The end of a file, sent successfully.
pub const CODE_SUCCESS: u8 = 0x00;
/// The computer could not send a file (followed by its error text).
pub const CODE_ERROR_LOCAL: u8 = 0x06;
/// The phone could not send a file (followed by its error text).
pub const CODE_ERROR_REMOTE: u8 = 0x0B;

/// One mobilebackup2 connection, phone side.
pub struct Link {
    stream: Box<dyn DeviceStream>,
}

/// What the computer answered to a DL request: `["DLMessageStatusResponse", code, text, value]`.
#[derive(Debug)]
pub struct Status {
    pub code: i64,
    pub text: String,
    pub value: Value,
}

/// One file the computer sent in a DownloadFiles stream: its bytes, or its error.
#[derive(Debug, PartialEq)]
pub enum Downloaded {
    Data(Vec<u8>),
    Missing(String),
}

fn closed(what: &str, at_start: bool) -> DeviceError {
    DeviceError::Closed {
        what: what.to_string(),
        at_start,
    }
}

pub fn bad(what: &str, detail: impl Into<String>) -> DeviceError {
    DeviceError::BadReply {
        what: what.to_string(),
        detail: detail.into(),
    }
}

impl Link {
    pub fn new(stream: Box<dyn DeviceStream>) -> Link {
        Link { stream }
    }

    /// Reads exactly `buf.len()` bytes by `deadline`, waiting out read timeouts.
    pub fn read_full(
        &mut self,
        buf: &mut [u8],
        what: &str,
        deadline: Instant,
    ) -> Result<(), DeviceError> {
        let began = Instant::now();
        let mut filled = 0;
        while filled < buf.len() {
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(closed(what, filled == 0)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline {
                        return Err(DeviceError::Timeout {
                            what: what.to_string(),
                            secs: deadline.saturating_duration_since(began).as_secs(),
                        });
                    }
                }
                Err(e) => {
                    return Err(DeviceError::Io {
                        what: what.to_string(),
                        source: e,
                    })
                }
            }
        }
        Ok(())
    }

    fn read_u32(&mut self, what: &str, deadline: Instant) -> Result<u32, DeviceError> {
        let mut prefix = [0u8; 4];
        self.read_full(&mut prefix, what, deadline)?;
        Ok(u32::from_be_bytes(prefix))
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), DeviceError> {
        self.stream.write_all(bytes).map_err(|e| DeviceError::Io {
            what: "sending to the computer".to_string(),
            source: e,
        })
    }

    pub fn flush(&mut self) -> Result<(), DeviceError> {
        self.stream.flush().map_err(|e| DeviceError::Io {
            what: "sending to the computer".to_string(),
            source: e,
        })
    }

    /// Sends one DeviceLink message.
    pub fn send(&mut self, items: Vec<Value>) -> Result<(), DeviceError> {
        let mut body = Vec::new();
        Value::Array(items)
            .to_writer_binary(&mut body)
            .map_err(|e| bad("a message to the computer", e.to_string()))?;
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        self.write_all(&out)?;
        self.flush()
    }

    /// `["DLMessageProcessMessage", dict]`.
    pub fn send_process_message(&mut self, dict: Dictionary) -> Result<(), DeviceError> {
        self.send(vec![
            "DLMessageProcessMessage".into(),
            Value::Dictionary(dict),
        ])
    }

    /// Receives one message by `deadline`; `None` when the computer closed the connection
    /// cleanly before it.
    pub fn receive(
        &mut self,
        what: &str,
        deadline: Instant,
    ) -> Result<Option<Vec<Value>>, DeviceError> {
        let length = match self.read_u32(what, deadline) {
            Err(DeviceError::Closed { at_start: true, .. }) => return Ok(None),
            other => other? as usize,
        };
        if length == 0 || length > MAX_MESSAGE {
            return Err(DeviceError::FrameTooLarge {
                what: what.to_string(),
                length: length as u64,
                max: MAX_MESSAGE as u64,
            });
        }
        let mut body = vec![0u8; length];
        self.read_full(&mut body, what, deadline)?;
        let value =
            Value::from_reader(std::io::Cursor::new(&body)).map_err(|e| DeviceError::BadPlist {
                what: what.to_string(),
                detail: e.to_string(),
            })?;
        match value {
            Value::Array(items) if items.first().and_then(Value::as_string).is_some() => {
                Ok(Some(items))
            }
            _ => Err(bad(
                what,
                "a DeviceLink message must be an array starting with its name",
            )),
        }
    }

    /// Receives the computer's status answer to `request`.
    pub fn receive_status(&mut self, request: &str, wait: Duration) -> Result<Status, DeviceError> {
        let what = format!("the computer's answer to {request}");
        let items = self
            .receive(&what, Instant::now() + wait)?
            .ok_or_else(|| closed(&what, true))?;
        if items[0].as_string() != Some("DLMessageStatusResponse") || items.len() < 2 {
            return Err(bad(
                &what,
                format!(
                    "{} instead of DLMessageStatusResponse",
                    items[0].as_string().unwrap_or("?")
                ),
            ));
        }
        let code = match &items[1] {
            Value::Integer(n) => n
                .as_signed()
                .or_else(|| n.as_unsigned().map(|u| u as i64))
                .unwrap_or(-1),
            _ => return Err(bad(&what, "the status code is not an integer")),
        };
        let text = items
            .get(2)
            .and_then(Value::as_string)
            .filter(|t| *t != EMPTY)
            .unwrap_or("")
            .to_string();
        Ok(Status {
            code,
            text,
            value: items.get(3).cloned().unwrap_or(Value::Boolean(false)),
        })
    }

    /// Reads the files of a DownloadFiles stream, at most `cap` bytes each, until its end
    /// (a name length of 0).
    pub fn receive_files(
        &mut self,
        cap: u64,
        wait: Duration,
    ) -> Result<Vec<(String, Downloaded)>, DeviceError> {
        let what = "the files the phone asked for";
        let mut files = Vec::new();
        loop {
            let deadline = Instant::now() + wait;
            let length = self.read_u32(what, deadline)? as usize;
            if length == 0 {
                return Ok(files);
            }
            if length > MAX_NAME {
                return Err(DeviceError::FrameTooLarge {
                    what: "a file name".to_string(),
                    length: length as u64,
                    max: MAX_NAME as u64,
                });
            }
            let mut name = vec![0u8; length];
            self.read_full(&mut name, what, deadline)?;
            let name = String::from_utf8_lossy(&name).into_owned();
            let mut data = Vec::new();
            let outcome = loop {
                let deadline = Instant::now() + wait;
                let length = self.read_u32(what, deadline)? as usize;
                if length == 0 || length > MAX_CHUNK + 1 {
                    return Err(DeviceError::FrameTooLarge {
                        what: format!("a chunk of {name}"),
                        length: length as u64,
                        max: MAX_CHUNK as u64 + 1,
                    });
                }
                let mut code = [0u8; 1];
                self.read_full(&mut code, what, deadline)?;
                let body = length - 1;
                match code[0] {
                    CODE_FILE_DATA => {
                        if data.len() as u64 + body as u64 > cap {
                            return Err(DeviceError::FrameTooLarge {
                                what: name,
                                length: data.len() as u64 + body as u64,
                                max: cap,
                            });
                        }
                        let start = data.len();
                        data.resize(start + body, 0);
                        self.read_full(&mut data[start..], what, deadline)?;
                    }
                    CODE_SUCCESS if body == 0 => {
                        break Downloaded::Data(std::mem::take(&mut data));
                    }
                    CODE_SUCCESS => {
                        return Err(bad(
                            what,
                            format!("the end marker of {name} carries {body} bytes, not 0"),
                        ))
                    }
                    other => {
                        if body > MAX_NAME {
                            return Err(DeviceError::FrameTooLarge {
                                what: format!("the error text for {name}"),
                                length: body as u64,
                                max: MAX_NAME as u64,
                            });
                        }
                        let mut text = vec![0u8; body];
                        self.read_full(&mut text, what, deadline)?;
                        let text = String::from_utf8_lossy(&text).into_owned();
                        break Downloaded::Missing(if other == CODE_ERROR_LOCAL {
                            text
                        } else {
                            format!("code {other:#04x}: {text}")
                        });
                    }
                }
            };
            files.push((name, outcome));
        }
    }

    /// Waits until the computer goes away (EOF or an error) or `wait` passes, discarding what
    /// it sends.
    pub fn drain_until_gone(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut sink = [0u8; 4096];
        while Instant::now() < until {
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        }
    }
}
