//! Starting the simulated phone's lockdown services and reaching them, with ibackup's own
//! StartService handshake (`ibackup::device::services`): through usbmuxd's Connect and over
//! emulated USB, plain and inside TLS; what lockdownd refuses (no session, an unknown service,
//! mobilebackup2 without the pair record's escrow bag) comes back as the typed error; a started
//! port takes one connection.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ibackup::device::lockdown::pair_record::PairRecord;
use ibackup::device::lockdown::{
    encode_message, read_message, LockdownClient, LockdownError, PORT,
};
use ibackup::device::services::{self, ServiceEndpoint};
use ibackup::device::transport::usb::emulated::channel_pair;
use ibackup::device::transport::usb::mux::Mux;
use ibackup::device::transport::usbmuxd::UsbmuxdTransport;
use ibackup::device::transport::{parse_address, AttachedDevice, Transport};
use ibackup::device::DeviceError;
use ibackup_sim::usb::{serve_usb, UsbOptions};
use ibackup_sim::{Phone, Profile};
use plist::{Dictionary, Value};
use support::{SimPhone, SIM_UDID as UDID};

/// A session with the simulated phone behind usbmuxd, and what it takes to open services.
struct Session {
    transport: UsbmuxdTransport,
    device: AttachedDevice,
    record: PairRecord,
    lockdown: LockdownClient,
}

fn session(phone: &SimPhone) -> Session {
    let transport = UsbmuxdTransport {
        address: parse_address(phone.address()).unwrap(),
    };
    let device = transport.devices().unwrap().remove(0);
    assert_eq!(device.udid, UDID);
    let bytes = transport
        .read_pair_record(UDID)
        .unwrap()
        .expect("a pre-paired simulator has a record");
    let record = PairRecord::from_plist(&bytes, "sim").unwrap();
    let mut lockdown = LockdownClient::new(transport.connect(&device, PORT).unwrap());
    lockdown.query_type().unwrap();
    lockdown.start_session(&record).unwrap();
    Session {
        transport,
        device,
        record,
        lockdown,
    }
}

fn refusal(result: Result<ServiceEndpoint, DeviceError>) -> LockdownError {
    match result {
        Err(DeviceError::Lockdown { request, error }) => {
            assert_eq!(request, "StartService");
            error
        }
        other => panic!("expected a refusal: {other:?}"),
    }
}

fn command(command: &str, name: Option<&str>) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("Command".into(), command.into());
    if let Some(name) = name {
        d.insert("Name".into(), name.into());
    }
    d
}

fn send(stream: &mut impl Write, dict: &Dictionary) {
    stream
        .write_all(&encode_message(dict, "a request").unwrap())
        .unwrap();
    stream.flush().unwrap();
}

/// Polls `condition` for up to five seconds.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lockdown_refuses_what_a_phone_refuses() {
    let phone = SimPhone::with_profile("default");
    let mut s = session(&phone);
    assert_eq!(
        refusal(services::start(
            &mut s.lockdown,
            "com.apple.mobile.house_arrest",
            None
        )),
        LockdownError::InvalidService
    );
    // mobilebackup2 needs the pair record's escrow bag: none, or another, is EscrowLocked.
    assert_eq!(
        refusal(services::start(
            &mut s.lockdown,
            "com.apple.mobilebackup2",
            None
        )),
        LockdownError::EscrowLocked
    );
    assert_eq!(
        refusal(services::start(
            &mut s.lockdown,
            "com.apple.mobilebackup2",
            Some(&[0x11; 32])
        )),
        LockdownError::EscrowLocked
    );
    let err = services::start(&mut s.lockdown, "com.apple.mobile.house_arrest", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the phone refused StartService: InvalidService"
    );
    // Refusals leave the session usable.
    assert!(services::start(&mut s.lockdown, "com.apple.afc", None).is_ok());
    s.lockdown.stop_session().unwrap();
    // Outside a session nothing starts.
    let mut plain = LockdownClient::new(s.transport.connect(&s.device, PORT).unwrap());
    plain.query_type().unwrap();
    assert_eq!(
        refusal(services::start(&mut plain, "com.apple.afc", None)),
        LockdownError::SessionInactive
    );
}

#[test]
fn every_service_gets_a_fresh_port_and_only_mobilebackup2_wants_tls() {
    let phone = SimPhone::with_profile("default");
    let mut s = session(&phone);
    let mut ports = Vec::new();
    for name in [
        "com.apple.mobile.notification_proxy",
        "com.apple.afc",
        "com.apple.mobile.installation_proxy",
        "com.apple.springboardservices",
    ] {
        let endpoint = services::start(&mut s.lockdown, name, None).unwrap();
        assert_eq!(endpoint.name, name);
        assert!(!endpoint.tls, "{name} is plain text");
        assert!(
            endpoint.port >= 49152 && endpoint.port != PORT,
            "{endpoint:?}"
        );
        ports.push(endpoint.port);
    }
    let bag = s.record.escrow_bag.clone().expect("the record has the bag");
    assert_eq!(bag, vec![0x5a; 32]);
    let backup = services::start(&mut s.lockdown, "com.apple.mobilebackup2", Some(&bag)).unwrap();
    assert!(backup.tls, "{backup:?}");
    ports.push(backup.port);
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "{ports:?}");
}

#[test]
fn a_started_port_takes_one_connection_and_other_ports_are_refused() {
    let phone = SimPhone::with_profile("default");
    let mut s = session(&phone);
    let endpoint =
        services::start(&mut s.lockdown, "com.apple.mobile.notification_proxy", None).unwrap();
    let mut stream = services::connect(&s.transport, &s.device, &endpoint, &s.record).unwrap();
    send(
        &mut stream,
        &command(
            "PostNotification",
            Some("com.apple.itunes-mobdev.syncWillStart"),
        ),
    );
    send(&mut stream, &command("Shutdown", None));
    let death = read_message(&mut stream, "the answer to Shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(death, command("ProxyDeath", None));
    assert_eq!(
        phone.phone().posted_by_computer(),
        ["com.apple.itunes-mobdev.syncWillStart"]
    );
    // The port was for one connection.
    for port in [endpoint.port, 49999, 1] {
        match s.transport.connect(&s.device, port) {
            Err(DeviceError::Usbmux { number: 3, .. }) => {}
            Err(other) => panic!("port {port}: {other}"),
            Ok(_) => panic!("port {port} was open"),
        }
    }
}

#[test]
fn mobilebackup2_runs_inside_tls_pinned_to_the_pair_record() {
    let phone = SimPhone::with_profile("default");
    let mut s = session(&phone);
    // services::open starts it with the record's bag and does the TLS handshake, which accepts
    // only the record's DeviceCertificate: reaching the service proves the phone spoke TLS
    // there with the session's certificates.
    let stream = services::open(
        &s.transport,
        &s.device,
        &mut s.lockdown,
        &s.record,
        "com.apple.mobilebackup2",
    )
    .unwrap();
    assert!(matches!(
        stream,
        ibackup::device::lockdown::MaybeTls::Tls(_)
    ));
}

/// The emulated USB phone as a transport for ibackup's service handshake (a test's stand-in for
/// the libusb transport, which needs a bus).
struct MuxTransport(Arc<Mux>);

impl Transport for MuxTransport {
    fn name(&self) -> &'static str {
        "usb"
    }
    fn devices(&self) -> Result<Vec<AttachedDevice>, DeviceError> {
        Ok(vec![usb_device()])
    }
    fn wait_for_device(&self, _: Duration) -> Result<Option<AttachedDevice>, DeviceError> {
        Ok(Some(usb_device()))
    }
    fn connect(
        &self,
        _: &AttachedDevice,
        port: u16,
    ) -> Result<ibackup::device::transport::BoxStream, DeviceError> {
        Ok(Box::new(self.0.connect(port)?))
    }
    fn read_pair_record(&self, _: &str) -> Result<Option<Vec<u8>>, DeviceError> {
        Ok(None)
    }
    fn save_pair_record(&self, _: &AttachedDevice, _: &[u8]) -> Result<bool, DeviceError> {
        Ok(false)
    }
    fn system_buid(&self) -> Result<Option<String>, DeviceError> {
        Ok(None)
    }
}

fn usb_device() -> AttachedDevice {
    AttachedDevice {
        udid: UDID.to_string(),
        device_id: 1,
        connection_type: "USB".to_string(),
    }
}

/// A phone on emulated USB, with the host's mux and the phone's own state.
fn usb_phone() -> (Arc<Mux>, Arc<Phone>) {
    let (host, device) = channel_pair(512);
    let phone = Arc::new(Phone::new(Profile::default()).unwrap());
    let served = Arc::clone(&phone);
    std::thread::spawn(move || {
        let _ = serve_usb(served, Box::new(device), &UsbOptions::default());
    });
    let mux = Mux::open(
        Box::new(host),
        "the emulated iPhone",
        Duration::from_secs(5),
    )
    .unwrap();
    (mux, phone)
}

#[test]
fn services_are_reached_over_emulated_usb_and_relay_the_phones_notifications() {
    let (mux, phone) = usb_phone();
    let record = PairRecord::from_plist(&phone.pair_record(UDID).unwrap(), "sim").unwrap();
    let mut lockdown = LockdownClient::new(Box::new(mux.connect(PORT).unwrap()));
    lockdown.start_session(&record).unwrap();
    let endpoint =
        services::start(&mut lockdown, "com.apple.mobile.notification_proxy", None).unwrap();
    let mut np = mux.connect(endpoint.port).unwrap();
    send(
        &mut np,
        &command(
            "ObserveNotification",
            Some("com.apple.itunes-client.syncCancelRequest"),
        ),
    );
    send(
        &mut np,
        &command(
            "PostNotification",
            Some("com.apple.itunes-mobdev.syncDidStart"),
        ),
    );
    eventually("the phone logged the computer's post", || {
        phone.posted_by_computer() == ["com.apple.itunes-mobdev.syncDidStart"]
    });
    // What the phone posts reaches the observer, and only what it observes.
    phone.post_notification("com.apple.LocalAuthentication.ui.presented");
    phone.post_notification("com.apple.itunes-client.syncCancelRequest");
    let relayed = read_message(&mut np, "a relayed notification")
        .unwrap()
        .unwrap();
    let mut expected = command("RelayNotification", None);
    expected.insert(
        "Name".into(),
        Value::from("com.apple.itunes-client.syncCancelRequest"),
    );
    assert_eq!(relayed, expected);
    send(&mut np, &command("Shutdown", None));
    assert_eq!(
        read_message(&mut np, "ProxyDeath").unwrap().unwrap(),
        command("ProxyDeath", None)
    );
    // A port nobody started is refused with the phone's reason.
    match mux.connect(50_000) {
        Err(DeviceError::PortRefused { port, reason }) => {
            assert_eq!(
                (port, reason.as_str()),
                (50_000, "nothing listens on port 50000")
            );
        }
        other => panic!("{:?}", other.map(|_| "connected")),
    }
    // mobilebackup2 inside TLS over USB too, pinned to the record's DeviceCertificate.
    let transport = MuxTransport(Arc::clone(&mux));
    let stream = services::open(
        &transport,
        &usb_device(),
        &mut lockdown,
        &record,
        "com.apple.mobilebackup2",
    )
    .unwrap();
    assert!(matches!(
        stream,
        ibackup::device::lockdown::MaybeTls::Tls(_)
    ));
    // notification_proxy ended after ProxyDeath: the stream is at its end.
    let mut sink = [0u8; 1];
    assert!(matches!(np.read(&mut sink), Ok(0) | Err(_)));
}
