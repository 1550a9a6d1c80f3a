//! The phone's side of a backup, decoded: each `DLMessage*` array it sends becomes a
//! [`PhoneRequest`] (paths, moves, progress), or an error saying what was malformed. Pure: bytes
//! in, values out, so it is unit-tested and fuzzed without a phone.

use std::io::Cursor;

use plist::{Dictionary, Value};

use super::{as_i64, name_of, truncate};

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
