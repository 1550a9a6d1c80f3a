//! Lockdown services: what the phone serves on ports of its own once lockdown starts them, one
//! module each: [`afc`] (files: the sync lock file, the files Info.plist copies),
//! [`notification_proxy`] (posting and observing notifications, and the watch that hands the
//! phone's cancel and passcode notices over), [`installation_proxy`] (the user's apps), and
//! [`sync_lock`], the sequence over AFC and notification_proxy that takes and gives back the
//! lock a computer holds while it backs a phone up. This file holds the part every service
//! shares: in a lockdown session, StartService NAME; the phone answers with the port it now
//! listens on and whether it wants TLS there; then a new stream to that port through the
//! transport, inside TLS pinned to the pair record when asked. [libimobiledevice
//! src/lockdown.c lockdownd_start_service, src/service.c]
//!
//! Sits above lockdown and the transport and imports from both; nothing below imports it. Not
//! here: the lockdown session itself (lockdown/), what a backup writes from these services'
//! answers (backup_info.rs).

pub mod afc;
pub mod installation_proxy;
pub mod notification_proxy;
pub mod sync_lock;

pub mod mobilebackup2;

use plist::{Dictionary, Value};

use super::lockdown::pair_record::PairRecord;
use super::lockdown::{ClientStream, LockdownClient, MaybeTls, PinnedTls};
use super::transport::{AttachedDevice, Transport};
use super::DeviceError;

/// Where a started service listens, as lockdown's answer to StartService says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// The service's name (`com.apple.afc`).
    pub name: String,
    /// The port on the phone.
    pub port: u16,
    /// EnableServiceSSL: the service talks inside TLS, with the pair record's identities.
    pub tls: bool,
}

/// StartService `name` over `lockdown`, which must be in a session (the phone answers
/// SessionInactive otherwise). `escrow_bag` is the pair record's, for services that must reach
/// data protected while the phone is locked (mobilebackup2). A refusal is
/// [`DeviceError::Lockdown`] with the phone's error (`InvalidService`, `ServiceProhibited`, ...).
pub fn start(
    lockdown: &mut LockdownClient,
    name: &str,
    escrow_bag: Option<&[u8]>,
) -> Result<ServiceEndpoint, DeviceError> {
    let mut fields = Dictionary::new();
    fields.insert("Service".into(), name.into());
    if let Some(bag) = escrow_bag {
        fields.insert("EscrowBag".into(), Value::Data(bag.to_vec()));
    }
    let reply = lockdown.request("StartService", fields)?;
    endpoint_from_reply(name, &reply)
}

/// Reads the port and the TLS flag out of StartService's answer.
fn endpoint_from_reply(name: &str, reply: &Dictionary) -> Result<ServiceEndpoint, DeviceError> {
    let port = reply
        .get("Port")
        .and_then(Value::as_unsigned_integer)
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port != 0)
        .ok_or_else(|| DeviceError::BadReply {
            what: "lockdownd's answer to StartService".to_string(),
            detail: format!("no usable Port for {name}"),
        })?;
    let tls = reply
        .get("EnableServiceSSL")
        .and_then(Value::as_boolean)
        .unwrap_or(false);
    Ok(ServiceEndpoint {
        name: name.to_string(),
        port,
        tls,
    })
}

/// A new stream to a started service, through the same transport as lockdown. When the
/// service wants TLS, the handshake uses the record's host identity and accepts only its
/// DeviceCertificate, as the lockdown session does.
pub fn connect(
    transport: &dyn Transport,
    device: &AttachedDevice,
    endpoint: &ServiceEndpoint,
    record: &PairRecord,
) -> Result<ClientStream, DeviceError> {
    let stream = transport.connect(device, endpoint.port)?;
    if endpoint.tls {
        Ok(MaybeTls::Tls(PinnedTls::new(record)?.handshake(stream)?))
    } else {
        Ok(MaybeTls::Plain(stream))
    }
}

/// [`start`] then [`connect`]: the stream to service `name`, with the record's escrow bag.
pub fn open(
    transport: &dyn Transport,
    device: &AttachedDevice,
    lockdown: &mut LockdownClient,
    record: &PairRecord,
    name: &str,
) -> Result<ClientStream, DeviceError> {
    let endpoint = start(lockdown, name, record.escrow_bag.as_deref())?;
    connect(transport, device, &endpoint, record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_gives_port_and_tls() {
        let mut reply = Dictionary::new();
        reply.insert("Port".into(), 49152u64.into());
        reply.insert("EnableServiceSSL".into(), true.into());
        let endpoint = endpoint_from_reply("com.apple.afc", &reply).unwrap();
        assert_eq!(
            endpoint,
            ServiceEndpoint {
                name: "com.apple.afc".to_string(),
                port: 49152,
                tls: true,
            }
        );
        reply.remove("EnableServiceSSL");
        assert!(!endpoint_from_reply("s", &reply).unwrap().tls);
    }

    #[test]
    fn a_missing_or_impossible_port_is_a_bad_reply() {
        for port in [None, Some(0u64), Some(70_000)] {
            let mut reply = Dictionary::new();
            if let Some(port) = port {
                reply.insert("Port".into(), port.into());
            }
            let err = endpoint_from_reply("s", &reply).unwrap_err();
            assert!(
                matches!(err, DeviceError::BadReply { .. }),
                "{port:?}: {err}"
            );
        }
    }
}
