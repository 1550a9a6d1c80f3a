//! The usbmuxd client protocol: 16-byte little-endian frame headers around XML plists, and the
//! requests ibackup needs (ListDevices, Listen, Connect, ReadBUID, ReadPairRecord,
//! SavePairRecord). Framing is pure and shared with the simulator's server side; the client
//! works over any [`BoxStream`]. [usbmuxd src/usbmuxd-proto.h, src/client.c]
//!
//! The XML plist helpers ([`xml_bytes`], [`parse_dict`]) live here, where plists first arrive;
//! lockdown and the pair record use them too.
//!
//! Not here: the daemon's address and socket (transport/mod.rs), what a pair record holds
//! (lockdown::pair_record), what the phone says (lockdown).

use std::io::{Cursor, Read, Write};
use std::time::{Duration, Instant};

use crate::plist_shape;
use plist::{Dictionary, Value};

use crate::device::transport::{self, AttachedDevice, BoxStream, DaemonAddress, Transport};
use crate::device::{read_exact_within, DeviceError};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 16;
/// The largest frame accepted (pair records are a few KiB, device lists smaller).
pub const MAX_FRAME: usize = 1 << 20;
/// Header version for plist messages.
pub const VERSION_PLIST: u32 = 1;
/// Message type: a plist payload.
pub const TYPE_PLIST: u32 = 8;
/// Result number: success.
pub const RESULT_OK: u64 = 0;
/// Result number: the device refused the port.
pub const RESULT_CONNREFUSED: u64 = 3;
/// Result number for a missing pair record (errno ENOENT).
pub const RESULT_NO_RECORD: u64 = 2;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total length, header included.
    pub length: u32,
    pub version: u32,
    pub message_type: u32,
    pub tag: u32,
}

/// Parses a header and checks the length against [`MAX_FRAME`] before anything is allocated.
pub fn parse_header(bytes: &[u8; HEADER_LEN], what: &str) -> Result<Header, DeviceError> {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let header = Header {
        length: word(0),
        version: word(4),
        message_type: word(8),
        tag: word(12),
    };
    let length = header.length as usize;
    if !(HEADER_LEN..=MAX_FRAME).contains(&length) {
        return Err(DeviceError::FrameTooLarge {
            what: what.to_string(),
            length: header.length as u64,
            max: MAX_FRAME as u64,
        });
    }
    Ok(header)
}

/// One plist frame with `tag`, ready to write.
pub fn encode_frame(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    let length = (HEADER_LEN + payload.len()) as u32;
    for word in [length, VERSION_PLIST, TYPE_PLIST, tag] {
        frame.extend_from_slice(&word.to_le_bytes());
    }
    frame.extend_from_slice(payload);
    frame
}

/// Reads one frame: its header and payload.
pub fn read_frame<R: Read + ?Sized>(
    reader: &mut R,
    what: &str,
    deadline: Instant,
) -> Result<(Header, Vec<u8>), DeviceError> {
    let mut head = [0u8; HEADER_LEN];
    read_exact_within(reader, &mut head, what, deadline)?;
    let header = parse_header(&head, what)?;
    let mut payload = vec![0u8; header.length as usize - HEADER_LEN];
    read_exact_within(reader, &mut payload, what, deadline)?;
    Ok((header, payload))
}

/// Serializes a dictionary as an XML plist.
pub fn xml_bytes(dict: &Dictionary, what: &str) -> Result<Vec<u8>, DeviceError> {
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, dict).map_err(|e| DeviceError::BadPlist {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    Ok(out)
}

/// Parses a plist payload (XML or binary) that must be a dictionary. The shape is checked first
/// with the streaming reader, which does not recurse: a deeply nested or self-multiplying plist
/// is refused before a value tree is built.
pub fn parse_dict(bytes: &[u8], what: &str) -> Result<Dictionary, DeviceError> {
    let bad = |detail: String| DeviceError::BadPlist {
        what: what.to_string(),
        detail,
    };
    plist_shape::check(bytes).map_err(bad)?;
    let value =
        Value::from_reader(Cursor::new(bytes)).map_err(|e| bad(plist_shape::describe(&e)))?;
    value
        .into_dictionary()
        .ok_or_else(|| bad("the plist is not a dictionary".to_string()))
}

/// A client connection to usbmuxd. One request per connection, as libusbmuxd does; `Connect`
/// turns the connection into the device stream.
pub struct UsbmuxClient {
    stream: BoxStream,
    tag: u32,
}

impl UsbmuxClient {
    pub fn new(stream: BoxStream) -> Self {
        UsbmuxClient { stream, tag: 0 }
    }

    fn request(
        &mut self,
        message_type: &str,
        mut fields: Dictionary,
    ) -> Result<Dictionary, DeviceError> {
        let what = format!("usbmuxd's answer to {message_type}");
        fields.insert("MessageType".into(), message_type.into());
        fields.insert("ClientVersionString".into(), "ibackup".into());
        fields.insert("ProgName".into(), "ibackup".into());
        fields.insert("kLibUSBMuxVersion".into(), 3u64.into());
        self.tag = self.tag.wrapping_add(1);
        let frame = encode_frame(self.tag, &xml_bytes(&fields, &what)?);
        self.stream
            .write_all(&frame)
            .and_then(|_| self.stream.flush())
            .map_err(|e| DeviceError::io(format!("sending {message_type} to usbmuxd"), e))?;
        let deadline = Instant::now() + transport::IO_TIMEOUT;
        loop {
            let (header, payload) = read_frame(&mut self.stream, &what, deadline)?;
            // Notifications (tag 0) may come before the answer; skip anything not ours.
            if header.tag == self.tag {
                return parse_dict(&payload, &what);
            }
        }
    }

    fn expect_ok(reply: &Dictionary, request: &'static str) -> Result<(), DeviceError> {
        match reply.get("Number").and_then(Value::as_unsigned_integer) {
            Some(RESULT_OK) => Ok(()),
            Some(number) => Err(DeviceError::Usbmux { request, number }),
            None => Err(DeviceError::BadReply {
                what: format!("usbmuxd's answer to {request}"),
                detail: "no result number".to_string(),
            }),
        }
    }

    /// ListDevices: the attached phones.
    pub fn list_devices(mut self) -> Result<Vec<AttachedDevice>, DeviceError> {
        let reply = self.request("ListDevices", Dictionary::new())?;
        let list = reply
            .get("DeviceList")
            .and_then(Value::as_array)
            .ok_or_else(|| DeviceError::BadReply {
                what: "usbmuxd's answer to ListDevices".to_string(),
                detail: "no DeviceList array".to_string(),
            })?;
        Ok(list.iter().filter_map(device_from_record).collect())
    }

    /// Listen: waits up to `timeout` for an Attached notification.
    pub fn wait_attached(
        mut self,
        timeout: Duration,
    ) -> Result<Option<AttachedDevice>, DeviceError> {
        let reply = self.request("Listen", Dictionary::new())?;
        Self::expect_ok(&reply, "Listen")?;
        let deadline = crate::device::deadline_after(timeout);
        while Instant::now() < deadline {
            match read_frame(&mut self.stream, "a usbmuxd notification", deadline) {
                Ok((_, payload)) => {
                    let note = parse_dict(&payload, "a usbmuxd notification")?;
                    if note.get("MessageType").and_then(Value::as_string) == Some("Attached") {
                        if let Some(device) = device_from_record(&Value::Dictionary(note)) {
                            return Ok(Some(device));
                        }
                    }
                }
                Err(DeviceError::Timeout { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Connect: after success the stream is the raw byte stream to `port` on the device.
    pub fn connect(mut self, device_id: u64, port: u16) -> Result<BoxStream, DeviceError> {
        let mut fields = Dictionary::new();
        fields.insert("DeviceID".into(), device_id.into());
        // usbmuxd wants the port in network byte order read as a host integer.
        fields.insert("PortNumber".into(), u64::from(port.to_be()).into());
        let reply = self.request("Connect", fields)?;
        Self::expect_ok(&reply, "Connect")?;
        Ok(self.stream)
    }

    /// ReadBUID: the host's SystemBUID.
    pub fn read_buid(mut self) -> Result<String, DeviceError> {
        let reply = self.request("ReadBUID", Dictionary::new())?;
        match reply.get("BUID").and_then(Value::as_string) {
            Some(buid) => Ok(buid.to_string()),
            None => {
                Self::expect_ok(&reply, "ReadBUID")?;
                Err(DeviceError::BadReply {
                    what: "usbmuxd's answer to ReadBUID".to_string(),
                    detail: "no BUID".to_string(),
                })
            }
        }
    }

    /// ReadPairRecord: the record's plist bytes, `None` when the daemon has none.
    pub fn read_pair_record(mut self, udid: &str) -> Result<Option<Vec<u8>>, DeviceError> {
        let mut fields = Dictionary::new();
        fields.insert("PairRecordID".into(), udid.into());
        let reply = self.request("ReadPairRecord", fields)?;
        if let Some(data) = reply.get("PairRecordData").and_then(Value::as_data) {
            return Ok(Some(data.to_vec()));
        }
        match Self::expect_ok(&reply, "ReadPairRecord") {
            Err(DeviceError::Usbmux { number, .. }) if number == RESULT_NO_RECORD => Ok(None),
            Err(e) => Err(e),
            Ok(()) => Ok(None),
        }
    }

    /// SavePairRecord for the device.
    pub fn save_pair_record(
        mut self,
        udid: &str,
        device_id: u64,
        record: &[u8],
    ) -> Result<(), DeviceError> {
        let mut fields = Dictionary::new();
        fields.insert("PairRecordID".into(), udid.into());
        fields.insert("PairRecordData".into(), Value::Data(record.to_vec()));
        fields.insert("DeviceID".into(), device_id.into());
        let reply = self.request("SavePairRecord", fields)?;
        Self::expect_ok(&reply, "SavePairRecord")
    }
}

/// A DeviceList entry or Attached notification, when it names a device.
fn device_from_record(record: &Value) -> Option<AttachedDevice> {
    let record = record.as_dictionary()?;
    let properties = record.get("Properties").and_then(Value::as_dictionary)?;
    let device_id = record
        .get("DeviceID")
        .or_else(|| properties.get("DeviceID"))
        .and_then(Value::as_unsigned_integer)?;
    Some(AttachedDevice {
        udid: properties.get("SerialNumber")?.as_string()?.to_string(),
        device_id,
        connection_type: properties
            .get("ConnectionType")
            .and_then(Value::as_string)
            .unwrap_or("USB")
            .to_string(),
    })
}

/// Phones reached through the usbmuxd daemon.
pub struct UsbmuxdTransport {
    pub address: DaemonAddress,
}

impl UsbmuxdTransport {
    /// The daemon at the address for this process (`USBMUXD_SOCKET_ADDRESS` or the default).
    pub fn from_env() -> Result<Self, DeviceError> {
        Ok(UsbmuxdTransport {
            address: transport::address_from_env()?,
        })
    }

    fn client(&self) -> Result<UsbmuxClient, DeviceError> {
        Ok(UsbmuxClient::new(transport::connect(&self.address)?))
    }
}

impl Transport for UsbmuxdTransport {
    fn name(&self) -> &'static str {
        "usbmuxd"
    }

    fn devices(&self) -> Result<Vec<AttachedDevice>, DeviceError> {
        self.client()?.list_devices()
    }

    fn wait_for_device(&self, timeout: Duration) -> Result<Option<AttachedDevice>, DeviceError> {
        // Reads on the listening socket must not outlast the wait itself.
        let stream =
            transport::connect_with_timeout(&self.address, timeout.min(transport::IO_TIMEOUT))?;
        UsbmuxClient::new(stream).wait_attached(timeout)
    }

    fn connect(&self, device: &AttachedDevice, port: u16) -> Result<BoxStream, DeviceError> {
        self.client()?.connect(device.device_id, port)
    }

    fn read_pair_record(&self, udid: &str) -> Result<Option<Vec<u8>>, DeviceError> {
        self.client()?.read_pair_record(udid)
    }

    fn save_pair_record(
        &self,
        device: &AttachedDevice,
        record: &[u8],
    ) -> Result<bool, DeviceError> {
        self.client()?
            .save_pair_record(&device.udid, device.device_id, record)
            .map(|()| true)
    }

    fn system_buid(&self) -> Result<Option<String>, DeviceError> {
        self.client()?.read_buid().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frame = encode_frame(7, b"<plist/>");
        assert_eq!(frame.len(), 24);
        let head: [u8; 16] = frame[..16].try_into().unwrap();
        let header = parse_header(&head, "test").unwrap();
        assert_eq!(
            header,
            Header {
                length: 24,
                version: 1,
                message_type: 8,
                tag: 7
            }
        );
        let (h, payload) = read_frame(
            &mut Cursor::new(frame),
            "test",
            Instant::now() + Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(h.tag, 7);
        assert_eq!(payload, b"<plist/>");
    }

    #[test]
    fn absurd_lengths_are_refused_before_allocation() {
        let mut head = [0u8; 16];
        head[..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(
            parse_header(&head, "t"),
            Err(DeviceError::FrameTooLarge { .. })
        ));
        head[..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            parse_header(&head, "t"),
            Err(DeviceError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let frame = encode_frame(1, b"<plist/>");
        let err = read_frame(
            &mut Cursor::new(&frame[..20]),
            "t",
            Instant::now() + Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, DeviceError::Closed { .. }), "{err}");
    }

    #[test]
    fn garbage_plist_is_an_error() {
        assert!(matches!(
            parse_dict(b"\x00garbage", "t"),
            Err(DeviceError::BadPlist { .. })
        ));
        assert!(matches!(
            parse_dict(b"", "t"),
            Err(DeviceError::BadPlist { .. })
        ));
    }

    #[test]
    fn deep_or_huge_plists_are_refused_without_recursion() {
        let n = 200_000;
        let xml = format!(
            "<?xml version=\"1.0\"?><plist version=\"1.0\">{}{}</plist>",
            "<array>".repeat(n),
            "</array>".repeat(n)
        );
        let err = parse_dict(xml.as_bytes(), "t").unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
        let many = format!(
            "<plist version=\"1.0\"><dict><key>a</key><array>{}</array></dict></plist>",
            "<true/>".repeat(crate::plist_shape::MAX_PLIST_EVENTS)
        );
        let err = parse_dict(many.as_bytes(), "t").unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn binary_plists_are_walked_without_recursion() {
        let mut dict = Dictionary::new();
        dict.insert(
            "a".into(),
            Value::Array(vec![Value::Array(vec![1u64.into()])]),
        );
        let mut bin = Vec::new();
        plist::to_writer_binary(&mut bin, &dict).unwrap();
        assert_eq!(parse_dict(&bin, "t").unwrap(), dict);
        // An array that contains itself: object 0 = [ref 0].
        let mut cyclic = b"bplist00".to_vec();
        cyclic.extend_from_slice(&[0xA1, 0x00]); // array of 1, ref -> object 0
        let table = cyclic.len() as u64;
        cyclic.push(8); // object 0 at offset 8
        let mut trailer = vec![0u8; 6];
        trailer.extend_from_slice(&[1, 1]);
        trailer.extend_from_slice(&1u64.to_be_bytes());
        trailer.extend_from_slice(&0u64.to_be_bytes());
        trailer.extend_from_slice(&table.to_be_bytes());
        cyclic.extend_from_slice(&trailer);
        let err = parse_dict(&cyclic, "t").unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
        assert!(parse_dict(b"bplist00\x00", "t").is_err());
    }

    #[test]
    fn port_is_sent_in_network_byte_order() {
        assert_eq!(
            62078u16.to_be(),
            if cfg!(target_endian = "little") {
                32498
            } else {
                62078
            }
        );
    }

    #[test]
    fn device_records_are_read() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>
            <key>DeviceID</key><integer>3</integer><key>MessageType</key><string>Attached</string>
            <key>Properties</key><dict><key>ConnectionType</key><string>USB</string>
            <key>SerialNumber</key><string>abc</string></dict></dict></plist>"#;
        let dict = parse_dict(xml, "t").unwrap();
        let device = device_from_record(&Value::Dictionary(dict)).unwrap();
        assert_eq!(device.udid, "abc");
        assert_eq!(device.device_id, 3);
        assert_eq!(device.connection_type, "USB");
    }
}
