//! The simulated phone (in this process) at the protocol level, through ibackup's own usbmux and lockdown
//! clients: it answers like a phone (limited values before a session, domains inside one,
//! InvalidHostID for strangers, refused ports), keeps pair records like usbmuxd, and survives
//! clients that send garbage.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ibackup::device::lockdown::pair_record::PairRecord;
use ibackup::device::lockdown::{LockdownClient, LockdownError, PORT};
use ibackup::device::transport::usbmuxd::{UsbmuxClient, UsbmuxdTransport};
use ibackup::device::transport::{parse_address, Transport};
use ibackup::device::DeviceError;
use plist::Value;
use support::{SimPhone, SIM_UDID as UDID};

/// A simulated phone with a shipped profile, and ibackup's usbmuxd client pointed at it.
fn start(profile: &str) -> (SimPhone, UsbmuxdTransport) {
    let phone = SimPhone::with_profile(profile);
    let transport = UsbmuxdTransport {
        address: parse_address(phone.address()).unwrap(),
    };
    (phone, transport)
}

fn lockdown(transport: &UsbmuxdTransport) -> LockdownClient {
    let device = transport.devices().unwrap().remove(0);
    let mut client = LockdownClient::new(transport.connect(&device, PORT).unwrap());
    client.query_type().unwrap();
    client
}

#[test]
fn usbmuxd_side_lists_the_phone_and_keeps_pair_records() {
    let (_phone, transport) = start("unpaired");
    let devices = transport.devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].udid, UDID);
    assert_eq!(devices[0].connection_type, "USB");
    assert!(transport.system_buid().unwrap().is_some());

    assert_eq!(transport.read_pair_record(UDID).unwrap(), None);
    transport
        .save_pair_record(&devices[0], b"<plist/>")
        .unwrap();
    assert_eq!(
        transport.read_pair_record(UDID).unwrap().as_deref(),
        Some(&b"<plist/>"[..])
    );

    // Only lockdownd's port is open.
    let stream = ibackup::device::transport::connect(&transport.address).unwrap();
    match UsbmuxClient::new(stream).connect(devices[0].device_id, 22) {
        Err(DeviceError::Usbmux {
            request: "Connect",
            number: 3,
        }) => {}
        Err(e) => panic!("wrong refusal: {e}"),
        Ok(_) => panic!("port 22 must be refused"),
    }
}

#[test]
fn without_a_session_only_basic_values_are_answered() {
    let (_phone, transport) = start("default");
    let mut client = lockdown(&transport);
    let root = client
        .get_value(None, None)
        .unwrap()
        .unwrap()
        .into_dictionary()
        .unwrap();
    assert_eq!(
        root.get("ProductVersion").and_then(Value::as_string),
        Some("17.5.1")
    );
    assert!(root.get("SerialNumber").is_none());
    assert!(root.get("ActivationState").is_none());
    assert!(client
        .get_value(None, Some("DevicePublicKey"))
        .unwrap()
        .is_some());
    assert_eq!(
        client
            .get_value(Some("com.apple.disk_usage"), None)
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .get_value(Some("com.apple.mobile.battery"), None)
            .unwrap(),
        None
    );
}

#[test]
fn sessions_need_a_known_host_and_open_the_domains() {
    let (_phone, transport) = start("default");
    let bytes = transport
        .read_pair_record(UDID)
        .unwrap()
        .expect("a pre-paired simulator has a record");
    let record = PairRecord::from_plist(&bytes, "sim").unwrap();

    let mut stranger = record.clone();
    stranger.host_id = "00000000-0000-0000-0000-000000000000".to_string();
    let mut client = lockdown(&transport);
    match client.start_session(&stranger) {
        Err(DeviceError::Lockdown {
            error: LockdownError::InvalidHostID,
            ..
        }) => {}
        other => panic!("a stranger must be refused: {other:?}"),
    }

    let mut client = lockdown(&transport);
    client.start_session(&record).unwrap();
    assert!(client.in_session());
    let disk = client
        .get_value(Some("com.apple.disk_usage"), None)
        .unwrap()
        .unwrap();
    let disk = disk.as_dictionary().unwrap();
    assert_eq!(
        disk.get("TotalDiskCapacity")
            .and_then(Value::as_unsigned_integer),
        Some(128_000_000_000)
    );
    let find_my = client
        .get_value(Some("com.apple.fmip"), Some("IsAssociated"))
        .unwrap();
    assert_eq!(find_my.and_then(|v| v.as_boolean()), Some(false));
    let root = client
        .get_value(None, None)
        .unwrap()
        .unwrap()
        .into_dictionary()
        .unwrap();
    assert_eq!(
        root.get("ActivationState").and_then(Value::as_string),
        Some("Activated")
    );
    assert_eq!(client.get_value(None, Some("NoSuchKey")).unwrap(), None);
    client.stop_session().unwrap();
}

#[test]
fn the_simulator_survives_clients_that_send_garbage() {
    let (phone, transport) = start("default");
    let path = phone.address().to_string();
    let garbage: [&[u8]; 3] = [
        &[0xf0, 0xff, 0xff, 0xff, 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0],
        b"this is not a usbmux frame at all",
        &[
            32, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xfe, 0xfd, 0xfc, 0, 1, 2, 3, 4,
            5, 6, 7, 8, 9, 10, 11,
        ],
    ];
    for bytes in garbage {
        let mut stream = UnixStream::connect(&path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(bytes).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        // The simulator closes the connection rather than answering nonsense.
        let _ = stream.read_to_end(&mut sink);
    }
    assert_eq!(transport.devices().unwrap().len(), 1, "still serving");
}
