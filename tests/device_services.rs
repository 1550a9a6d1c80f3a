//! The StartService handshake every lockdown service shares (`ibackup::device::services`),
//! against the simulated phone. The simulated phone offers no services yet: it refuses every
//! StartService with `InvalidService`, which must reach the caller as the typed error.
#![cfg(unix)]

mod support;

use ibackup::device::lockdown::pair_record::PairRecord;
use ibackup::device::lockdown::{LockdownClient, LockdownError, PORT};
use ibackup::device::services;
use ibackup::device::transport::usbmuxd::UsbmuxdTransport;
use ibackup::device::transport::{parse_address, Transport};
use ibackup::device::DeviceError;
use support::{SimPhone, SIM_UDID as UDID};

#[test]
fn a_service_the_phone_does_not_offer_is_a_typed_refusal() {
    let phone = SimPhone::with_profile("default");
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

    match services::start(&mut lockdown, "com.apple.afc", None) {
        Err(DeviceError::Lockdown {
            request,
            error: LockdownError::InvalidService,
        }) => assert_eq!(request, "StartService"),
        other => panic!("the simulator offers no services: {other:?}"),
    }
    // The same refusal through the whole handshake, escrow bag and all; the message reads as
    // the phone's string.
    let err = services::open(
        &transport,
        &device,
        &mut lockdown,
        &record,
        "com.apple.mobilebackup2",
    )
    .err()
    .expect("the simulator offers no services");
    assert!(matches!(
        err,
        DeviceError::Lockdown {
            error: LockdownError::InvalidService,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "the phone refused StartService: InvalidService"
    );

    // A refusal leaves the session usable.
    lockdown.stop_session().unwrap();
}
