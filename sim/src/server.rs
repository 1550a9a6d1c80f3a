//! The simulated phone's two servers on one socket: usbmuxd (device list, pair record store,
//! BUID, Connect) and, after Connect to port 62078, lockdownd (QueryType, GetValue, sessions
//! with TLS under the device's certificate, Pair, StartService). It answers the way a phone
//! does: unpaired clients get basic root values only; domains and services need a session.
//! StartService gives a fresh port that accepts one connection (through usbmuxd's Connect, or a
//! SYN on emulated USB); [`serve_service`] runs the service there, inside TLS when the answer
//! said so. Faults from the profile are injected here. The phone's state it answers from is
//! phone.rs's.
//!
//! It reuses the client's framing (device::transport::usbmuxd, device::lockdown) so both sides agree on one
//! definition of the wire format.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ServerConfig;
use rustls::{
    DigitallySignedStruct, DistinguishedName, ServerConnection, SignatureScheme, StreamOwned,
};

use super::phone::{lock, Phone, StartedService, TrustedHost, DEVICE_ID, ESCROW_BAG};
use super::profile::{Fault, PairingOutcome};
use super::services::{self, Service, ServiceStream, SERVICE_IDLE};
use ibackup::device::lockdown::pairing::new_uuid;
use ibackup::device::lockdown::{self, encode_message};
use ibackup::device::transport::usbmuxd::{encode_frame, parse_dict, read_frame, xml_bytes};
use ibackup::device::transport::DeviceStream;
use ibackup::device::DeviceError;

/// How long an idle client connection is kept.
const IDLE: Duration = Duration::from_secs(30);

/// Serves one client connection until it closes or misbehaves: usbmuxd requests, then
/// whatever its Connect reached (lockdownd, or a started service).
pub fn serve(phone: &Phone, mut stream: Box<dyn ServiceStream>) -> Result<(), DeviceError> {
    loop {
        let (header, payload) =
            match read_frame(&mut stream, "a usbmuxd request", Instant::now() + IDLE) {
                Err(DeviceError::Closed { at_start: true, .. }) => return Ok(()),
                other => other?,
            };
        let request = parse_dict(&payload, "a usbmuxd request")?;
        let kind = request
            .get("MessageType")
            .and_then(Value::as_string)
            .unwrap_or("");
        let tag = header.tag;
        if phone.profile.fault == Some(Fault::DaemonSilent) {
            std::thread::sleep(IDLE);
            return Ok(());
        }
        match kind {
            "ListDevices" => {
                if phone.profile.fault == Some(Fault::AbsurdFrameLength) {
                    let mut bogus = encode_frame(tag, b"");
                    bogus[..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
                    return send(&mut stream, &bogus);
                }
                let list: Vec<Value> = if phone.attached() {
                    vec![phone.device_properties()]
                } else {
                    Vec::new()
                };
                reply(&mut stream, tag, [("DeviceList", Value::Array(list))])?;
            }
            "Listen" => return listen(phone, Box::new(stream), tag),
            "ReadBUID" => reply(&mut stream, tag, [("BUID", phone.buid.clone().into())])?,
            "ReadPairRecord" => {
                let id = request
                    .get("PairRecordID")
                    .and_then(Value::as_string)
                    .unwrap_or("");
                match lock(&phone.records).get(id).cloned() {
                    Some(data) => reply(&mut stream, tag, [("PairRecordData", Value::Data(data))])?,
                    None => result(&mut stream, tag, 2)?,
                }
            }
            "SavePairRecord" => {
                let id = request.get("PairRecordID").and_then(Value::as_string);
                let data = request.get("PairRecordData").and_then(Value::as_data);
                match (id, data) {
                    (Some(id), Some(data)) => {
                        lock(&phone.records).insert(id.to_string(), data.to_vec());
                        result(&mut stream, tag, 0)?;
                    }
                    _ => result(&mut stream, tag, 22)?,
                }
            }
            "DeletePairRecord" => {
                let id = request
                    .get("PairRecordID")
                    .and_then(Value::as_string)
                    .unwrap_or("");
                let found = lock(&phone.records).remove(id).is_some();
                result(&mut stream, tag, if found { 0 } else { 2 })?;
            }
            "Connect" => {
                let device = request.get("DeviceID").and_then(Value::as_unsigned_integer);
                let port = request
                    .get("PortNumber")
                    .and_then(Value::as_unsigned_integer)
                    .and_then(|p| u16::try_from(p).ok())
                    .map(u16::from_be);
                if device == Some(DEVICE_ID) && port == Some(lockdown::PORT) && phone.attached() {
                    result(&mut stream, tag, 0)?;
                    return serve_lockdown(phone, Box::new(stream));
                }
                let started = port
                    .filter(|_| device == Some(DEVICE_ID) && phone.attached())
                    .and_then(|port| phone.claim_service(port));
                if let Some(started) = started {
                    result(&mut stream, tag, 0)?;
                    return serve_service(phone, started, stream);
                }
                let number = if device == Some(DEVICE_ID) && phone.attached() {
                    3
                } else {
                    2
                };
                result(&mut stream, tag, number)?;
            }
            _ => result(&mut stream, tag, 1)?,
        }
    }
}

fn send(stream: &mut dyn Write, bytes: &[u8]) -> Result<(), DeviceError> {
    stream
        .write_all(bytes)
        .and_then(|_| stream.flush())
        .map_err(|e| DeviceError::Io {
            what: "answering a client".to_string(),
            source: e,
        })
}

fn reply<const N: usize>(
    stream: &mut dyn Write,
    tag: u32,
    fields: [(&str, Value); N],
) -> Result<(), DeviceError> {
    let dict: Dictionary = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    send(stream, &encode_frame(tag, &xml_bytes(&dict, "an answer")?))
}

fn result(stream: &mut dyn Write, tag: u32, number: u64) -> Result<(), DeviceError> {
    reply(
        stream,
        tag,
        [("MessageType", "Result".into()), ("Number", number.into())],
    )
}

/// Listen: OK, then Attached when the phone is (or becomes) plugged in; then idle until the
/// client goes away.
fn listen(phone: &Phone, mut stream: Box<dyn DeviceStream>, tag: u32) -> Result<(), DeviceError> {
    result(&mut stream, tag, 0)?;
    if phone.profile.attached {
        let at = Duration::from_millis(phone.profile.attach_after_ms);
        if let Some(wait) = at.checked_sub(phone.started.elapsed()) {
            std::thread::sleep(wait);
        }
        send(
            &mut stream,
            &encode_frame(
                0,
                &xml_bytes(
                    phone
                        .device_properties()
                        .as_dictionary()
                        .unwrap_or(&Dictionary::new()),
                    "Attached",
                )?,
            ),
        )?;
    }
    let mut sink = [0u8; 64];
    let until = Instant::now() + IDLE;
    while Instant::now() < until {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The lockdownd connection, before and inside TLS.
type Lockdown = lockdown::MaybeTls<ServerConnection, Box<dyn DeviceStream>>;

fn answer(conn: &mut Lockdown, request: &str, mut fields: Dictionary) -> Result<(), DeviceError> {
    fields.insert("Request".into(), request.into());
    send(conn, &encode_message(&fields, "an answer")?)
}

fn error(conn: &mut Lockdown, request: &str, error: &str) -> Result<(), DeviceError> {
    let mut fields = Dictionary::new();
    fields.insert("Error".into(), error.into());
    answer(conn, request, fields)
}

/// lockdownd on one connection (after usbmuxd's Connect, or a direct-USB SYN to port 62078).
pub(crate) fn serve_lockdown(
    phone: &Phone,
    stream: Box<dyn DeviceStream>,
) -> Result<(), DeviceError> {
    let fault = phone.profile.fault;
    let mut conn = Lockdown::Plain(stream);
    let mut session: Option<String> = None;
    // The host whose session is open: StartService's services are started for it.
    let mut session_host: Option<TrustedHost> = None;
    loop {
        let waiting = Instant::now() + IDLE;
        let request = match lockdown::read_message_within(&mut conn, "a lockdown request", waiting)
        {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            // A client that stopped TLS without a close_notify, or went away: the end.
            Err(DeviceError::Closed { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let name = request
            .get("Request")
            .and_then(Value::as_string)
            .unwrap_or("")
            .to_string();
        match fault {
            Some(Fault::Stall) => {
                std::thread::sleep(IDLE);
                return Ok(());
            }
            Some(Fault::SlowLoris) => {
                let mut fields = Dictionary::new();
                fields.insert("Type".into(), lockdown::LOCKDOWN_TYPE.into());
                let bytes = encode_message(&fields, "an answer")?;
                for byte in bytes {
                    send(&mut conn, &[byte])?;
                    std::thread::sleep(Duration::from_secs(1));
                }
                return Ok(());
            }
            Some(Fault::AbsurdLockdownLength) if name == "QueryType" => {
                return send(&mut conn, &0xffff_fff0u32.to_be_bytes());
            }
            Some(Fault::GarbagePlist) if name == "QueryType" => {
                let garbage = b"\x00\x01not a plist at all<<<";
                let mut bytes = (garbage.len() as u32).to_be_bytes().to_vec();
                bytes.extend_from_slice(garbage);
                return send(&mut conn, &bytes);
            }
            Some(Fault::DropMidSession) if session.is_some() => return Ok(()),
            _ => {}
        }
        let mut out = Dictionary::new();
        match name.as_str() {
            "QueryType" => {
                out.insert("Type".into(), lockdown::LOCKDOWN_TYPE.into());
                answer(&mut conn, &name, out)?;
            }
            "GetValue" => {
                let domain = request.get("Domain").and_then(Value::as_string);
                let key = request.get("Key").and_then(Value::as_string);
                match phone.get_value(session.is_some(), domain, key) {
                    Some(value) => {
                        if let Some(domain) = domain {
                            out.insert("Domain".into(), domain.into());
                        }
                        if let Some(key) = key {
                            out.insert("Key".into(), key.into());
                        }
                        out.insert("Value".into(), value);
                        answer(&mut conn, &name, out)?;
                    }
                    None => error(&mut conn, &name, "MissingValue")?,
                }
            }
            "StartSession" => {
                let host_id = request
                    .get("HostID")
                    .and_then(Value::as_string)
                    .unwrap_or("");
                let Some(host) = phone.trusted_host(host_id) else {
                    error(&mut conn, &name, "InvalidHostID")?;
                    continue;
                };
                let id = new_uuid();
                let tls = fault != Some(Fault::NoTls);
                out.insert("SessionID".into(), id.clone().into());
                out.insert("EnableSessionSSL".into(), tls.into());
                answer(&mut conn, &name, out)?;
                if tls {
                    conn = start_tls(phone, conn, &host)?;
                }
                session = Some(id);
                session_host = Some(host);
            }
            "StopSession" => {
                answer(&mut conn, &name, out)?;
                session = None;
                session_host = None;
                conn = stop_tls(conn)?;
            }
            "Pair" => pair(phone, &mut conn, &request)?,
            "ValidatePair" => {
                let host_id = request
                    .get("PairRecord")
                    .and_then(Value::as_dictionary)
                    .and_then(|r| r.get("HostID"))
                    .and_then(Value::as_string)
                    .unwrap_or("");
                if phone.trusted_host(host_id).is_some() {
                    answer(&mut conn, &name, out)?;
                } else {
                    error(&mut conn, &name, "InvalidHostID")?;
                }
            }
            "Unpair" => {
                let host_id = request
                    .get("PairRecord")
                    .and_then(Value::as_dictionary)
                    .and_then(|r| r.get("HostID"))
                    .and_then(Value::as_string)
                    .unwrap_or("");
                lock(&phone.trusted).retain(|h| h.host_id != host_id);
                answer(&mut conn, &name, out)?;
            }
            "Goodbye" => {
                answer(&mut conn, &name, out)?;
                return Ok(());
            }
            "StartService" => match &session_host {
                None => error(&mut conn, &name, "SessionInactive")?,
                Some(host) => match start_service(phone, &request, host) {
                    Ok(fields) => answer(&mut conn, &name, fields)?,
                    Err(refusal) => error(&mut conn, &name, refusal)?,
                },
            },
            _ => error(&mut conn, &name, "UnknownRequest")?,
        }
    }
}

/// StartService inside `host`'s session: the answer's fields (Service, Port, EnableServiceSSL),
/// or the error name a phone answers with. mobilebackup2 needs the escrow bag of the pair
/// record this phone holds: without it, or with another, the phone cannot unlock what a backup
/// reads, and says `EscrowLocked` (the name lockdownd gives a StartService whose escrow bag
/// cannot be used).
fn start_service(
    phone: &Phone,
    request: &Dictionary,
    host: &TrustedHost,
) -> Result<Dictionary, &'static str> {
    let name = request
        .get("Service")
        .and_then(Value::as_string)
        .unwrap_or("");
    let service = Service::from_name(name).ok_or("InvalidService")?;
    if service.needs_escrow_bag() {
        let bag = request.get("EscrowBag").and_then(Value::as_data);
        if bag != Some(ESCROW_BAG.as_slice()) {
            return Err("EscrowLocked");
        }
    }
    let port = phone.start_service(service, host);
    let mut fields = Dictionary::new();
    fields.insert("Service".into(), service.name().into());
    fields.insert("Port".into(), u64::from(port).into());
    fields.insert("EnableServiceSSL".into(), service.tls().into());
    Ok(fields)
}

/// One connection to a started service, until its client is done. The stream is wrapped in TLS
/// (the session host's certificates, as lockdownd's session) when StartService said so.
pub(crate) fn serve_service(
    phone: &Phone,
    started: StartedService,
    mut stream: Box<dyn ServiceStream>,
) -> Result<(), DeviceError> {
    // A computer keeps some services open and silent for a whole backup.
    let _ = stream.set_read_timeout(Some(SERVICE_IDLE));
    let service = started.service;
    let stream: Box<dyn ServiceStream> = if service.tls() {
        let tls = tls_server(phone, Box::new(stream), &started.host)?;
        Box::new(TlsService(tls))
    } else {
        stream
    };
    match service {
        Service::NotificationProxy => services::notification_proxy::serve(
            &phone.notifications,
            &phone.services.posted,
            stream,
        ),
        Service::Afc => services::afc::serve(&phone.services.afc, &phone.profile, stream),
        Service::InstallationProxy => {
            services::installation_proxy::serve(&phone.profile.apps, stream)
        }
        Service::SpringBoard => services::springboard::serve(&phone.profile.apps, stream),
        Service::MobileBackup2 => crate::mobilebackup2::serve(phone, Box::new(stream)),
    }
}

/// A service inside TLS. Its read timeout stays the one set before the handshake (the
/// underlying stream is not reachable through rustls for a change).
struct TlsService(StreamOwned<ServerConnection, Box<dyn DeviceStream>>);

impl Read for TlsService {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsService {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ServiceStream for TlsService {
    fn set_read_timeout(&mut self, _timeout: Option<Duration>) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a TLS service keeps its read timeout",
        ))
    }
}

fn pair(phone: &Phone, conn: &mut Lockdown, request: &Dictionary) -> Result<(), DeviceError> {
    let plan = &phone.profile.pairing;
    let attempt = {
        let mut attempts = lock(&phone.pair_attempts);
        *attempts += 1;
        *attempts
    };
    if attempt <= plan.locked_for {
        return error(conn, "Pair", "PasswordProtected");
    }
    if attempt <= plan.locked_for + plan.pending_for {
        return error(conn, "Pair", "PairingDialogResponsePending");
    }
    if plan.outcome == PairingOutcome::Deny {
        *lock(&phone.pair_attempts) = 0;
        return error(conn, "Pair", "UserDeniedPairing");
    }
    let Some(record) = request.get("PairRecord").and_then(Value::as_dictionary) else {
        return error(conn, "Pair", "InvalidPairRecord");
    };
    // A DeviceCertificate must certify this phone's key, or TLS would fail later: refuse now.
    let for_this_phone = record
        .get("DeviceCertificate")
        .and_then(Value::as_data)
        .and_then(|pem| CertificateDer::from_pem_slice(pem).ok())
        .is_some_and(|der| contains(der.as_ref(), &phone.device_public_der));
    if !for_this_phone || phone.trust(record).is_err() {
        return error(conn, "Pair", "InvalidPairRecord");
    }
    let mut out = Dictionary::new();
    out.insert("EscrowBag".into(), Value::Data(ESCROW_BAG.to_vec()));
    answer(conn, "Pair", out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn start_tls(phone: &Phone, conn: Lockdown, host: &TrustedHost) -> Result<Lockdown, DeviceError> {
    let Lockdown::Plain(stream) = conn else {
        return Ok(conn);
    };
    Ok(Lockdown::Tls(Box::new(tls_server(phone, stream, host)?)))
}

/// The server side of a TLS handshake on `stream`, with the phone's certificate for `host` (or
/// the wrong one, as the fault says) and only `host`'s certificates accepted from the client.
fn tls_server(
    phone: &Phone,
    stream: Box<dyn DeviceStream>,
    host: &TrustedHost,
) -> Result<StreamOwned<ServerConnection, Box<dyn DeviceStream>>, DeviceError> {
    let tls_error = |e: rustls::Error| DeviceError::Tls {
        detail: e.to_string(),
    };
    let (cert, key) = if phone.profile.fault == Some(Fault::WrongCertificate) {
        (
            phone.wrong_certificate.0.clone(),
            phone.wrong_certificate.1.clone_key(),
        )
    } else {
        (
            host.device_certificate.clone(),
            phone.device_key.clone_key(),
        )
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(KnownHosts {
        certificates: host.client_certificates.clone(),
        provider: provider.clone(),
    });
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], PrivateKeyDer::Pkcs8(key))
        .map_err(tls_error)?;
    let connection = ServerConnection::new(Arc::new(config)).map_err(tls_error)?;
    let mut tls = StreamOwned::new(connection, stream);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| DeviceError::Tls {
                detail: e.to_string(),
            })?;
    }
    Ok(tls)
}

/// After StopSession: close TLS and wait for the client's close_notify, then go on in plain
/// text as lockdownd does.
fn stop_tls(conn: Lockdown) -> Result<Lockdown, DeviceError> {
    let Lockdown::Tls(mut tls) = conn else {
        return Ok(conn);
    };
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let mut scratch = [0u8; 256];
    loop {
        match tls.read(&mut scratch) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(DeviceError::Closed {
                    what: format!("the client's TLS close ({e})"),
                    at_start: true,
                })
            }
        }
    }
    Ok(Lockdown::Plain(tls.sock))
}

/// Accepts the client certificates of the host this session belongs to (its HostCertificate,
/// or its RootCertificate, which libimobiledevice presents) and checks the signatures.
#[derive(Debug)]
struct KnownHosts {
    certificates: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for KnownHosts {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self
            .certificates
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "client certificate is not from a paired host".to_string(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{StartedServices, FIRST_SERVICE_PORT, MAX_WAITING_SERVICES};
    use crate::profile::Profile;

    fn phone(json: &str) -> Phone {
        Phone::new(Profile::from_json(json, "t").unwrap()).unwrap()
    }

    #[test]
    fn the_values_a_backup_reads_for_info_plist() {
        let plain = phone("{}");
        let root = plain.get_value(true, None, None).unwrap();
        let root = root.as_dictionary().unwrap();
        for absent in [
            "PhoneNumber",
            "InternationalMobileEquipmentIdentity",
            "IntegratedCircuitCardIdentity",
        ] {
            assert!(root.get(absent).is_none(), "{absent}");
            // Asked for by key, a value the phone lacks is MissingValue (None here).
            assert_eq!(plain.get_value(true, None, Some(absent)), None);
        }
        assert_eq!(
            plain.get_value(
                true,
                Some("com.apple.mobile.iTunes"),
                Some("MinITunesVersion")
            ),
            Some(Value::from("12.5.1"))
        );
        assert_eq!(
            plain.get_value(true, Some("com.apple.iTunes"), None),
            Some(Value::Dictionary(Dictionary::new()))
        );
        // Domains need a session.
        assert_eq!(plain.get_value(false, Some("com.apple.iTunes"), None), None);

        let with_sim = phone(
            r#"{"phone_number":"+33 6 12 34 56 78","imei":"356789012345678",
                "iccid":"8933150319000000000","min_itunes_version":"12.8"}"#,
        );
        let root = with_sim.get_value(true, None, None).unwrap();
        let root = root.as_dictionary().unwrap();
        assert_eq!(root["PhoneNumber"].as_string(), Some("+33 6 12 34 56 78"));
        assert_eq!(
            root["InternationalMobileEquipmentIdentity"].as_string(),
            Some("356789012345678")
        );
        assert_eq!(
            root["IntegratedCircuitCardIdentity"].as_string(),
            Some("8933150319000000000")
        );
        // Not to a client without a session.
        assert_eq!(with_sim.get_value(false, None, Some("PhoneNumber")), None);
        assert_eq!(
            with_sim.get_value(true, Some("com.apple.mobile.iTunes"), None),
            Some(Value::Dictionary(
                [("MinITunesVersion".to_string(), Value::from("12.8"))]
                    .into_iter()
                    .collect()
            ))
        );
    }

    #[test]
    fn started_ports_skip_lockdownd_and_wrap() {
        let mut started = StartedServices {
            next_port: lockdown::PORT - 1,
            waiting: Vec::new(),
        };
        assert_eq!(started.fresh_port(), lockdown::PORT - 1);
        assert_eq!(started.fresh_port(), lockdown::PORT + 1);
        started.next_port = u16::MAX;
        assert_eq!(started.fresh_port(), u16::MAX);
        assert_eq!(started.fresh_port(), FIRST_SERVICE_PORT);
    }

    #[test]
    fn a_started_port_is_claimed_once_and_old_ones_are_forgotten() {
        let phone = phone("{}");
        let host = lock(&phone.trusted)[0].clone();
        let first = phone.start_service(Service::Afc, &host);
        assert!(phone.claim_service(first).is_some());
        assert!(phone.claim_service(first).is_none());
        let ports: Vec<u16> = (0..=MAX_WAITING_SERVICES)
            .map(|_| phone.start_service(Service::NotificationProxy, &host))
            .collect();
        // The oldest waiting one went when one more than the limit was started.
        assert!(phone.claim_service(ports[0]).is_none());
        assert_eq!(
            phone
                .claim_service(ports[MAX_WAITING_SERVICES])
                .map(|s| s.service),
            Some(Service::NotificationProxy)
        );
    }
}
