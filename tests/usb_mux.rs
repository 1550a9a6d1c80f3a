//! Direct USB against the emulated iPhone: ibackup's mux layer (host side) over in-memory bulk
//! pipes, the simulator's USB device side with its lockdownd behind it. Each test reads as:
//! how the phone behaves, what the host does, what it gets.

use std::sync::Arc;
use std::time::Duration;

use ibackup::device::lockdown::{self, LockdownClient};
use ibackup::device::transport::usb::emulated::channel_pair;
use ibackup::device::transport::usb::mux::Mux;
use ibackup::device::DeviceError;
use ibackup_sim::usb::{serve_usb, UsbFault, UsbOptions};
use ibackup_sim::{Phone, Profile};

/// A plugged-in emulated phone behaving as `options` say; the host side already negotiated.
fn plug_in(options: UsbOptions) -> Arc<Mux> {
    let (host, device) = channel_pair(options.max_packet_size);
    let phone = Arc::new(Phone::new(Profile::default()).unwrap());
    std::thread::spawn(move || {
        let _ = serve_usb(phone, Box::new(device), &options);
    });
    Mux::open(
        Box::new(host),
        "the emulated iPhone",
        Duration::from_secs(5),
    )
    .unwrap()
}

fn with_fault(fault: UsbFault) -> Arc<Mux> {
    plug_in(UsbOptions {
        fault: Some(fault),
        ..Default::default()
    })
}

fn lockdown(mux: &Arc<Mux>) -> LockdownClient {
    LockdownClient::new(Box::new(mux.connect(lockdown::PORT).unwrap()))
}

fn device_name(client: &mut LockdownClient) -> Result<String, DeviceError> {
    let value = client.get_value(None, Some("DeviceName"))?;
    Ok(value
        .and_then(|v| v.as_string().map(str::to_string))
        .unwrap_or_default())
}

#[test]
fn protocol_2_phone_negotiates_and_serves_lockdown() {
    let mux = plug_in(UsbOptions {
        greeting: Some("hello from the phone".into()),
        ..Default::default()
    });
    assert_eq!(mux.version(), 2);
    let mut client = lockdown(&mux);
    client.query_type().unwrap();
    assert_eq!(device_name(&mut client).unwrap(), "Simulated iPhone");
    let controls = mux.control_messages();
    assert_eq!(controls.len(), 1, "{controls:?}");
    assert_eq!(controls[0].kind, 7);
    assert_eq!(controls[0].text, "hello from the phone");
}

#[test]
fn protocol_1_phone_gets_narrow_headers_and_works() {
    let mux = plug_in(UsbOptions {
        protocol: 1,
        ..Default::default()
    });
    assert_eq!(mux.version(), 1);
    let mut client = lockdown(&mux);
    client.query_type().unwrap();
    assert_eq!(device_name(&mut client).unwrap(), "Simulated iPhone");
}

#[test]
fn rst_from_the_phone_refuses_a_port_with_its_reason() {
    let mux = plug_in(UsbOptions::default());
    match mux.connect(1234) {
        Err(DeviceError::PortRefused { port, reason }) => {
            assert_eq!(port, 1234);
            assert_eq!(reason, "nothing listens on port 1234");
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a connection"),
    }
    // The session survives a refused port.
    let mut client = lockdown(&mux);
    client.query_type().unwrap();

    let refusing = with_fault(UsbFault::RefuseLockdown);
    let err = refusing.connect(lockdown::PORT).err().expect("refused");
    assert_eq!(err.code(), "device.port_refused");
    assert!(err.to_string().contains("lockdownd is not ready"), "{err}");
}

#[test]
fn rst_on_an_open_connection_is_reported_with_its_reason() {
    let mux = with_fault(UsbFault::ResetAfterFirstReply);
    let mut client = lockdown(&mux);
    client.query_type().unwrap();
    let err = device_name(&mut client).unwrap_err();
    assert!(
        err.to_string().contains("the phone reset the connection"),
        "{err}"
    );
}

#[test]
fn duplicate_segments_are_dropped() {
    let mux = with_fault(UsbFault::DuplicateData);
    let mut client = lockdown(&mux);
    client.query_type().unwrap();
    for _ in 0..3 {
        assert_eq!(device_name(&mut client).unwrap(), "Simulated iPhone");
    }
}

#[test]
fn out_of_order_segments_break_the_connection_clearly() {
    let mux = with_fault(UsbFault::OutOfOrder);
    let mut client = lockdown(&mux);
    let err = client.query_type().unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");
    assert_eq!(err.code(), "device.protocol");
}

#[test]
fn a_frame_larger_than_allowed_is_refused_before_allocation() {
    let mux = with_fault(UsbFault::OversizeFrame);
    let mut client = lockdown(&mux);
    let err = client.query_type().unwrap_err();
    assert!(
        err.to_string()
            .contains("announced 1048576 bytes, more than the 65536 allowed"),
        "{err}"
    );
    // The session is dead: new connections fail at once, they do not hang.
    assert!(mux.connect(lockdown::PORT).is_err());
}

#[test]
fn a_phone_vanishing_mid_transfer_ends_in_a_clear_error() {
    let mux = with_fault(UsbFault::VanishMidTransfer);
    let mut client = lockdown(&mux);
    let started = std::time::Instant::now();
    let err = client.query_type().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "it waited");
    assert!(err.to_string().contains("the phone is gone"), "{err}");
}

#[test]
fn two_connections_at_once_each_get_their_own_answers() {
    let mux = plug_in(UsbOptions::default());
    // Interleaved on one thread: answers are filed under the right connection.
    let mut first = lockdown(&mux);
    let mut second = lockdown(&mux);
    first.query_type().unwrap();
    second.query_type().unwrap();
    assert_eq!(device_name(&mut second).unwrap(), "Simulated iPhone");
    assert_eq!(device_name(&mut first).unwrap(), "Simulated iPhone");
    // And from two threads at the same time.
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let mux = Arc::clone(&mux);
            std::thread::spawn(move || {
                let mut client = lockdown(&mux);
                client.query_type().unwrap();
                for _ in 0..5 {
                    assert_eq!(device_name(&mut client).unwrap(), "Simulated iPhone");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn zero_length_packets_after_every_packet_are_harmless_both_ways() {
    // With a max packet size of 1 every packet length is a multiple: both sides send a
    // zero-length packet after each one.
    let mux = plug_in(UsbOptions {
        max_packet_size: 1,
        ..Default::default()
    });
    let mut client = lockdown(&mux);
    client.query_type().unwrap();
    assert_eq!(device_name(&mut client).unwrap(), "Simulated iPhone");
}
