//! lockdownd, the phone's port 62078: big-endian length-prefixed XML plists, the requests
//! ibackup sends (QueryType, GetValue, StartSession, StopSession, Pair; StartService comes from
//! services/), and the TLS upgrade after StartSession. The phone's certificate is pinned to the
//! pair record's DeviceCertificate and nothing else is accepted; `PinnedTls` does that for
//! the session and for the services lockdown starts. [libimobiledevice src/lockdown.c]
//!
//! Framing is pure and shared with the simulator. Beside this file: [`error`] (the phone's error
//! strings as one enum, built only in [`LockdownClient::request`]), [`pair_record`] (the record
//! as data and files, which this file uses and which imports nothing from lockdown),
//! [`pairing`] (the Trust flow, which uses this file). Not here: the stream itself (transport),
//! what a started service says (services), turning values into a report (info.rs).

pub mod error;
pub mod pair_record;
pub mod pairing;

use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use plist::{Dictionary, Value};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, DigitallySignedStruct, SideData,
    SignatureScheme, StreamOwned,
};

use crate::device::transport::usbmuxd::{parse_dict, xml_bytes};
use crate::device::transport::{BoxStream, IO_TIMEOUT};
use crate::device::{read_exact_within, DeviceError};
pub use error::LockdownError;
use pair_record::PairRecord;

/// lockdownd's port on the device.
pub const PORT: u16 = 62078;
/// The largest message accepted (a full GetValue answer is a few KiB).
pub const MAX_MESSAGE: usize = 1 << 20;
/// What QueryType answers on a phone.
pub const LOCKDOWN_TYPE: &str = "com.apple.mobile.lockdown";
/// Label sent with every request.
const LABEL: &str = "ibackup";

/// One message: u32 big-endian length, then the XML plist.
pub fn encode_message(dict: &Dictionary, what: &str) -> Result<Vec<u8>, DeviceError> {
    let body = xml_bytes(dict, what)?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks a length prefix against [`MAX_MESSAGE`] before anything is allocated.
pub fn parse_length(prefix: [u8; 4], what: &str) -> Result<usize, DeviceError> {
    let length = u32::from_be_bytes(prefix);
    if length as usize > MAX_MESSAGE || length == 0 {
        return Err(DeviceError::FrameTooLarge {
            what: what.to_string(),
            length: length.into(),
            max: MAX_MESSAGE as u64,
        });
    }
    Ok(length as usize)
}

/// Reads one message within [`IO_TIMEOUT`]; `Ok(None)` when the peer closed cleanly before a
/// new message.
pub fn read_message<R: Read + ?Sized>(
    reader: &mut R,
    what: &str,
) -> Result<Option<Dictionary>, DeviceError> {
    read_message_within(reader, what, Instant::now() + IO_TIMEOUT)
}

/// [`read_message`] with the caller's deadline (a server waiting for an idle client).
pub fn read_message_within<R: Read + ?Sized>(
    reader: &mut R,
    what: &str,
    deadline: Instant,
) -> Result<Option<Dictionary>, DeviceError> {
    let mut prefix = [0u8; 4];
    match read_exact_within(reader, &mut prefix, what, deadline) {
        Err(DeviceError::Closed { at_start: true, .. }) => return Ok(None),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    let mut body = vec![0u8; parse_length(prefix, what)?];
    read_exact_within(reader, &mut body, what, deadline)?;
    parse_dict(&body, what).map(Some)
}

/// A lockdownd connection before and inside a session's TLS. The client holds a rustls
/// `ClientConnection`; the simulated phone (the ibackup-sim crate) a `ServerConnection`.
pub enum MaybeTls<C, S: Read + Write> {
    Plain(S),
    Tls(Box<StreamOwned<C, S>>),
}

impl<C, S, D> Read for MaybeTls<C, S>
where
    C: DerefMut + Deref<Target = ConnectionCommon<D>>,
    S: Read + Write,
    D: SideData,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.read(buf),
            MaybeTls::Tls(s) => s.read(buf),
        }
    }
}

impl<C, S, D> Write for MaybeTls<C, S>
where
    C: DerefMut + Deref<Target = ConnectionCommon<D>>,
    S: Read + Write,
    D: SideData,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.write(buf),
            MaybeTls::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush(),
            MaybeTls::Tls(s) => s.flush(),
        }
    }
}

/// The client's side of a lockdown (or service) connection, plain or inside TLS.
pub type ClientStream = MaybeTls<ClientConnection, BoxStream>;

type Conn = ClientStream;

/// A lockdownd connection, plain or inside a session's TLS.
pub struct LockdownClient {
    conn: Conn,
    session_id: Option<String>,
}

impl LockdownClient {
    /// Wraps a stream already connected to the device's port 62078.
    pub fn new(stream: BoxStream) -> Self {
        LockdownClient {
            conn: Conn::Plain(stream),
            session_id: None,
        }
    }

    /// Whether a session (and so TLS) is active.
    pub fn in_session(&self) -> bool {
        self.session_id.is_some()
    }

    /// Sends a request and returns the answer; an `Error` in the answer becomes
    /// [`DeviceError::Lockdown`], the phone's string turned into a [`LockdownError`] here and
    /// nowhere else.
    pub fn request(
        &mut self,
        request: &str,
        mut fields: Dictionary,
    ) -> Result<Dictionary, DeviceError> {
        let what = format!("lockdownd's answer to {request}");
        fields.insert("Label".into(), LABEL.into());
        fields.insert("Request".into(), request.into());
        let message = encode_message(&fields, &what)?;
        self.conn
            .write_all(&message)
            .and_then(|_| self.conn.flush())
            .map_err(|e| DeviceError::io(format!("sending {request} to lockdownd"), e))?;
        let reply = read_message(&mut self.conn, &what)?.ok_or_else(|| DeviceError::Closed {
            what: what.clone(),
            at_start: true,
        })?;
        if let Some(error) = reply.get("Error").and_then(Value::as_string) {
            return Err(DeviceError::Lockdown {
                request: request.to_string(),
                error: LockdownError::from_phone(error),
            });
        }
        Ok(reply)
    }

    /// QueryType: checks that lockdownd is what answers.
    pub fn query_type(&mut self) -> Result<(), DeviceError> {
        let reply = self.request("QueryType", Dictionary::new())?;
        match reply.get("Type").and_then(Value::as_string) {
            Some(LOCKDOWN_TYPE) => Ok(()),
            other => Err(DeviceError::BadReply {
                what: "lockdownd's answer to QueryType".to_string(),
                detail: format!("expected {LOCKDOWN_TYPE}, got {other:?}"),
            }),
        }
    }

    /// GetValue: one value, a domain's dictionary, or (neither) the root dictionary. A value
    /// the device does not have (`MissingValue`) is `None`.
    pub fn get_value(
        &mut self,
        domain: Option<&str>,
        key: Option<&str>,
    ) -> Result<Option<Value>, DeviceError> {
        let mut fields = Dictionary::new();
        if let Some(domain) = domain {
            fields.insert("Domain".into(), domain.into());
        }
        if let Some(key) = key {
            fields.insert("Key".into(), key.into());
        }
        match self.request("GetValue", fields) {
            Ok(mut reply) => Ok(reply.remove("Value")),
            Err(DeviceError::Lockdown {
                error: LockdownError::MissingValue,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// StartSession with the record's HostID and SystemBUID, then TLS on the same stream:
    /// the record's host certificate as client certificate, the device pinned to the record's
    /// DeviceCertificate.
    pub fn start_session(&mut self, record: &PairRecord) -> Result<(), DeviceError> {
        let mut fields = Dictionary::new();
        fields.insert("HostID".into(), record.host_id.clone().into());
        fields.insert("SystemBUID".into(), record.system_buid.clone().into());
        let reply = self.request("StartSession", fields)?;
        let session_id = reply
            .get("SessionID")
            .and_then(Value::as_string)
            .ok_or_else(|| DeviceError::BadReply {
                what: "lockdownd's answer to StartSession".to_string(),
                detail: "no SessionID".to_string(),
            })?
            .to_string();
        // A paired session is only worth anything inside TLS pinned to the record: a phone (or
        // whatever sits on the cable) that turns it off, or does not say, is not trusted with
        // the session's values. No iOS answers a paired StartSession without TLS.
        let tls = reply.get("EnableSessionSSL").and_then(Value::as_boolean);
        if tls != Some(true) {
            return Err(DeviceError::NoTls {
                answered: match tls {
                    Some(false) => "false",
                    _ => "missing",
                },
            });
        }
        self.upgrade(record)?;
        self.session_id = Some(session_id);
        Ok(())
    }

    fn upgrade(&mut self, record: &PairRecord) -> Result<(), DeviceError> {
        let tls = PinnedTls::new(record)?;
        let plain = match std::mem::replace(&mut self.conn, Conn::Plain(Box::new(Detached))) {
            Conn::Plain(stream) => stream,
            tls @ Conn::Tls(_) => {
                self.conn = tls;
                return Ok(());
            }
        };
        self.conn = Conn::Tls(tls.handshake(plain)?);
        Ok(())
    }

    /// StopSession; the connection is closed afterwards by dropping the client.
    pub fn stop_session(&mut self) -> Result<(), DeviceError> {
        if let Some(id) = self.session_id.take() {
            let mut fields = Dictionary::new();
            fields.insert("SessionID".into(), id.into());
            self.request("StopSession", fields)?;
            if let Conn::Tls(tls) = &mut self.conn {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
        Ok(())
    }

    /// Pair (or another pairing request) with the record's public parts; the answer or the
    /// device's error (PairingDialogResponsePending, PasswordProtected, ...).
    pub fn pair(&mut self, request: &str, record: &PairRecord) -> Result<Dictionary, DeviceError> {
        let mut fields = Dictionary::new();
        fields.insert(
            "PairRecord".into(),
            Value::Dictionary(record.public_dictionary()),
        );
        fields.insert("ProtocolVersion".into(), "2".into());
        let mut options = Dictionary::new();
        options.insert("ExtendedPairingErrors".into(), true.into());
        fields.insert("PairingOptions".into(), Value::Dictionary(options));
        self.request(request, fields)
    }
}

/// The client side of a TLS session pinned to a pair record, set up but not yet started: the
/// lockdown session and the services lockdown starts use the same one.
pub(crate) struct PinnedTls {
    connection: ClientConnection,
    pin: Arc<PinnedDevice>,
}

impl PinnedTls {
    /// rustls set up from the record; fails before a byte is sent when the record is unusable.
    pub(crate) fn new(record: &PairRecord) -> Result<Self, DeviceError> {
        let pin = Arc::new(PinnedDevice::new(record.device_certificate_der()?));
        let config = client_config(record, pin.clone())?;
        let server_name =
            ServerName::try_from("lockdown.invalid").map_err(|e| DeviceError::Tls {
                detail: e.to_string(),
            })?;
        let connection =
            ClientConnection::new(Arc::new(config), server_name).map_err(|e| DeviceError::Tls {
                detail: e.to_string(),
            })?;
        Ok(PinnedTls { connection, pin })
    }

    /// The handshake over `plain`, within [`IO_TIMEOUT`] in all; a certificate other than the
    /// record's is [`DeviceError::CertificateMismatch`].
    pub(crate) fn handshake(
        self,
        plain: BoxStream,
    ) -> Result<Box<StreamOwned<ClientConnection, BoxStream>>, DeviceError> {
        let PinnedTls { connection, pin } = self;
        let mut tls = StreamOwned::new(connection, plain);
        let deadline = Instant::now() + IO_TIMEOUT;
        while tls.conn.is_handshaking() {
            if Instant::now() > deadline {
                return Err(DeviceError::Timeout {
                    what: "the TLS handshake with the device".to_string(),
                    secs: IO_TIMEOUT.as_secs(),
                });
            }
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                if pin.mismatch.load(Ordering::SeqCst) {
                    return Err(DeviceError::CertificateMismatch);
                }
                return Err(DeviceError::from_io("the TLS handshake with the device", e));
            }
        }
        Ok(Box::new(tls))
    }
}

/// rustls with the ring provider, TLS 1.2 and 1.3, the host certificate as client identity.
fn client_config(record: &PairRecord, pin: Arc<PinnedDevice>) -> Result<ClientConfig, DeviceError> {
    let tls = |e: rustls::Error| DeviceError::Tls {
        detail: e.to_string(),
    };
    let (cert, key) = record.host_identity()?;
    let mut config = ClientConfig::builder_with_provider(pin.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(pin)
        .with_client_auth_cert(vec![cert], key)
        .map_err(tls)?;
    config.enable_sni = false;
    Ok(config)
}

/// Accepts exactly one certificate (the pair record's DeviceCertificate) and checks the
/// handshake signatures against it.
#[derive(Debug)]
struct PinnedDevice {
    pinned: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
    mismatch: AtomicBool,
}

impl PinnedDevice {
    fn new(pinned: CertificateDer<'static>) -> Self {
        PinnedDevice {
            pinned,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            mismatch: AtomicBool::new(false),
        }
    }
}

impl ServerCertVerifier for PinnedDevice {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatch.store(true, Ordering::SeqCst);
            Err(rustls::Error::General(
                "the device's certificate is not the pair record's DeviceCertificate".to_string(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What the connection holds for the instant its plain stream moves into TLS.
struct Detached;

impl Read for Detached {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for Detached {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "connection closed",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let mut dict = Dictionary::new();
        dict.insert("Request".into(), "QueryType".into());
        let bytes = encode_message(&dict, "t").unwrap();
        assert_eq!(
            u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - 4
        );
        let back = read_message(&mut std::io::Cursor::new(bytes), "t")
            .unwrap()
            .unwrap();
        assert_eq!(back, dict);
    }

    #[test]
    fn absurd_length_refused() {
        let err =
            read_message(&mut std::io::Cursor::new(vec![0xff, 0xff, 0xff, 0xf0]), "t").unwrap_err();
        assert!(
            matches!(
                err,
                DeviceError::FrameTooLarge {
                    length: 0xffff_fff0,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn clean_close_is_none_and_truncation_an_error() {
        assert!(read_message(&mut std::io::Cursor::new(Vec::new()), "t")
            .unwrap()
            .is_none());
        let err = read_message(&mut std::io::Cursor::new(vec![0, 0, 0, 9, b'<']), "t").unwrap_err();
        assert!(
            matches!(
                err,
                DeviceError::Closed {
                    at_start: false,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;

    /// A phone that plays back canned answers and swallows whatever is sent to it.
    struct Scripted(io::Cursor<Vec<u8>>);

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn record() -> PairRecord {
        PairRecord {
            device_certificate: b"device".to_vec(),
            host_certificate: b"host".to_vec(),
            host_private_key: b"key".to_vec(),
            root_certificate: b"root".to_vec(),
            root_private_key: Vec::new(),
            host_id: "HOST".to_string(),
            system_buid: "BUID".to_string(),
            escrow_bag: None,
            wifi_mac_address: None,
        }
    }

    fn session_answer(tls: Option<bool>) -> Result<(), DeviceError> {
        let mut answer = Dictionary::new();
        answer.insert("Request".into(), "StartSession".into());
        answer.insert("SessionID".into(), "S".into());
        if let Some(tls) = tls {
            answer.insert("EnableSessionSSL".into(), tls.into());
        }
        let bytes = encode_message(&answer, "t").unwrap();
        let mut client = LockdownClient::new(Box::new(Scripted(io::Cursor::new(bytes))));
        let result = client.start_session(&record());
        assert!(!client.in_session());
        result
    }

    #[test]
    fn a_session_without_tls_is_refused() {
        for (tls, said) in [(Some(false), "false"), (None, "missing")] {
            match session_answer(tls) {
                Err(e @ DeviceError::NoTls { answered }) => {
                    assert_eq!(answered, said);
                    assert_eq!(e.code(), "device.no_tls");
                    assert!(e.to_string().contains("plain text"), "{e}");
                }
                other => panic!("{tls:?}: {other:?}"),
            }
        }
        // With TLS asked for, the handshake is tried (and fails here on the fake record).
        assert!(!matches!(
            session_answer(Some(true)),
            Err(DeviceError::NoTls { .. })
        ));
    }
}
