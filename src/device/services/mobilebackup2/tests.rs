//! The DeviceLink conversation, the request decoder and the file streams over scripted
//! streams: exact bytes, hostile lengths, silences and stops.

use std::collections::VecDeque;
use std::io::{self, Cursor};

use super::files::{CODE_ERROR_LOCAL, CODE_ERROR_REMOTE, CODE_FILE_DATA, CODE_SUCCESS};
use super::*;

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
