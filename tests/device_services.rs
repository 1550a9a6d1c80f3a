//! Starting the simulated phone's lockdown services and reaching them, with ibackup's own
//! StartService handshake (`ibackup::device::services`): through usbmuxd's Connect and over
//! emulated USB, plain and inside TLS; what lockdownd refuses (no session, an unknown service,
//! mobilebackup2 without the pair record's escrow bag) comes back as the typed error; a started
//! port takes one connection.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;

use ibackup::device::lockdown::pair_record::PairRecord;
use ibackup::device::lockdown::{
    encode_message, read_message, LockdownClient, LockdownError, PORT,
};
use ibackup::device::services::{self, ServiceEndpoint};
use ibackup::device::transport::Transport;
use ibackup::device::DeviceError;
use plist::{Dictionary, Value};
use support::{
    eventually, usb_device, usb_phone, MuxTransport, PairedSession, SimPhone, SIM_UDID as UDID,
};

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

#[test]
fn lockdown_refuses_what_a_phone_refuses() {
    let phone = SimPhone::with_profile("default");
    let mut s = PairedSession::new(&phone);
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
    let mut s = PairedSession::new(&phone);
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
    let mut s = PairedSession::new(&phone);
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
    let mut s = PairedSession::new(&phone);
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

/// One AFC request over `stream`; the answer's (operation, header data, payload), checked to
/// echo the packet number.
fn afc(
    stream: &mut (impl Read + Write),
    num: u64,
    operation: u64,
    header_data: &[u8],
) -> (u64, Vec<u8>, Vec<u8>) {
    stream
        .write_all(&ibackup_sim::services::afc::encode(
            num,
            operation,
            header_data,
            &[],
        ))
        .unwrap();
    let mut header = [0u8; 40];
    stream.read_exact(&mut header).unwrap();
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
    assert_eq!(&header[..8], b"CFA6LPAA");
    assert_eq!(word(24), num, "the packet number is echoed");
    let mut body = vec![0u8; (word(8) - 40) as usize];
    stream.read_exact(&mut body).unwrap();
    let payload = body.split_off((word(16) - 40) as usize);
    (word(32), body, payload)
}

fn afc_status(stream: &mut (impl Read + Write), num: u64, operation: u64, data: &[u8]) -> u64 {
    let (op, header_data, _) = afc(stream, num, operation, data);
    assert_eq!(op, 1, "a status answer");
    u64::from_le_bytes(header_data[..8].try_into().unwrap())
}

fn open_lock_file(stream: &mut (impl Read + Write)) -> [u8; 8] {
    let mut data = 2u64.to_le_bytes().to_vec();
    data.extend_from_slice(b"/com.apple.itunes.lock_sync\0");
    let (op, handle, _) = afc(stream, 1, 0x0D, &data);
    assert_eq!(op, 0x0E, "FILE_OPEN_RES");
    handle.try_into().unwrap()
}

fn lock_op(handle: [u8; 8], op: u64) -> Vec<u8> {
    let mut data = handle.to_vec();
    data.extend_from_slice(&op.to_le_bytes());
    data
}

#[test]
fn the_sync_lock_has_one_holder_across_connections_and_goes_with_its_connection() {
    let phone = SimPhone::with_profile("default");
    let mut s = PairedSession::new(&phone);
    let mut open = || {
        services::open(
            &s.transport,
            &s.device,
            &mut s.lockdown,
            &s.record,
            "com.apple.afc",
        )
        .unwrap()
    };
    let mut first = open();
    let mut second = open();
    let a = open_lock_file(&mut first);
    let b = open_lock_file(&mut second);
    assert_eq!(afc_status(&mut first, 2, 0x1B, &lock_op(a, 6)), 0);
    assert!(phone.phone().sync_lock_held());
    assert_eq!(
        afc_status(&mut second, 2, 0x1B, &lock_op(b, 6)),
        19,
        "would block"
    );
    // The holder goes away without unlocking: the lock goes with its connection.
    drop(first);
    eventually("the lock let go", || !phone.phone().sync_lock_held());
    assert_eq!(afc_status(&mut second, 3, 0x1B, &lock_op(b, 6)), 0);
    assert_eq!(afc_status(&mut second, 4, 0x1B, &lock_op(b, 12)), 0);
    assert!(!phone.phone().sync_lock_held());
    // What idevicebackup2 reads for Info.plist is not there.
    assert_eq!(
        afc_status(
            &mut second,
            5,
            0x0A,
            b"/iTunes_Control/iTunes/iTunesPrefs\0"
        ),
        8
    );
    // A header the phone cannot trust is answered, then the connection ends.
    let mut bogus = ibackup_sim::services::afc::encode(6, 0x0A, b"/\0", &[]);
    bogus[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    second.write_all(&bogus).unwrap();
    let mut answer = [0u8; 48];
    second.read_exact(&mut answer).unwrap();
    assert_eq!(
        u64::from_le_bytes(answer[40..].try_into().unwrap()),
        13,
        "too much data"
    );
    let mut more = [0u8; 1];
    assert!(matches!(second.read(&mut more), Ok(0) | Err(_)));
}

#[test]
fn a_busy_phone_makes_the_first_lock_attempts_wait() {
    let phone = SimPhone::builder()
        .profile_json(r#"{"sync_lock_busy_for": 2}"#)
        .start();
    let mut s = PairedSession::new(&phone);
    let mut afc_stream = services::open(
        &s.transport,
        &s.device,
        &mut s.lockdown,
        &s.record,
        "com.apple.afc",
    )
    .unwrap();
    let h = open_lock_file(&mut afc_stream);
    assert_eq!(afc_status(&mut afc_stream, 2, 0x1B, &lock_op(h, 6)), 19);
    assert_eq!(afc_status(&mut afc_stream, 3, 0x1B, &lock_op(h, 6)), 19);
    assert_eq!(afc_status(&mut afc_stream, 4, 0x1B, &lock_op(h, 6)), 0);
    assert!(phone.phone().sync_lock_held());
}

#[test]
fn installation_proxy_browses_in_pages_and_springboard_reads_binary_plists() {
    let phone = SimPhone::with_profile("default");
    let mut s = PairedSession::new(&phone);
    let mut proxy = services::open(
        &s.transport,
        &s.device,
        &mut s.lockdown,
        &s.record,
        "com.apple.mobile.installation_proxy",
    )
    .unwrap();
    let mut browse = command("Browse", None);
    let mut options = Dictionary::new();
    options.insert("ApplicationType".into(), "User".into());
    browse.insert("ClientOptions".into(), Value::Dictionary(options));
    send(&mut proxy, &browse);
    let mut ids = Vec::new();
    loop {
        let page = read_message(&mut proxy, "a Browse answer")
            .unwrap()
            .unwrap();
        if page["Status"].as_string() == Some("Complete") {
            break;
        }
        let list = page["CurrentList"].as_array().unwrap();
        assert_eq!(
            page["CurrentAmount"].as_unsigned_integer(),
            Some(list.len() as u64)
        );
        for app in list {
            ids.push(
                app.as_dictionary().unwrap()["CFBundleIdentifier"]
                    .as_string()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    assert_eq!(
        ids,
        [
            "net.whatsapp.WhatsApp",
            "com.spotify.client",
            "com.example.notes"
        ]
    );

    let mut board = services::open(
        &s.transport,
        &s.device,
        &mut s.lockdown,
        &s.record,
        "com.apple.springboardservices",
    )
    .unwrap();
    // libimobiledevice sends springboardservices binary plists.
    let mut request = Dictionary::new();
    request.insert("command".into(), "getIconPNGData".into());
    request.insert("bundleId".into(), "com.example.notes".into());
    let mut binary = Vec::new();
    plist::to_writer_binary(&mut binary, &request).unwrap();
    board
        .write_all(&(binary.len() as u32).to_be_bytes())
        .unwrap();
    board.write_all(&binary).unwrap();
    let icon = read_message(&mut board, "an icon").unwrap().unwrap();
    assert!(icon["pngData"].as_data().unwrap().starts_with(b"\x89PNG"));
}
