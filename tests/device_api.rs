//! The library entry point `inspect` uses: `ibackup::device::connected_device`, against a
//! simulated phone in this process. One test in this file, because it sets the process
//! environment.

mod support;

use ibackup::device::connected_device;
use support::SimPhone;
use tempfile::TempDir;

#[test]
fn connected_device_reports_a_phone_or_none() {
    let dir = TempDir::new().unwrap();
    std::env::set_var("IBACKUP_LOCKDOWN_DIR", dir.path());

    // No daemon at all: None, so inspect falls back to the backup folder.
    let missing = dir.path().join("missing.sock");
    std::env::set_var("USBMUXD_SOCKET_ADDRESS", &missing);
    assert_eq!(connected_device(None).unwrap(), None);

    // A daemon without a phone: None too.
    let empty = SimPhone::with_profile("no-phone");
    std::env::set_var("USBMUXD_SOCKET_ADDRESS", empty.address());
    assert_eq!(connected_device(None).unwrap(), None);
    drop(empty);

    // A phone: its state; a UDID that is not there: an error naming it and the phone that is
    // there (the person asked for that phone: silence would hide the typo).
    let phone = SimPhone::with_profile("find-my-on");
    std::env::set_var("USBMUXD_SOCKET_ADDRESS", phone.address());
    let state = connected_device(None).unwrap().expect("a phone");
    assert!(state.paired);
    assert_eq!(state.find_my, Some(true));
    assert_eq!(state.udid, "00008110-001A2B3C4D5E801E");
    let err = connected_device(Some("someone-else")).unwrap_err();
    assert_eq!(err.code(), "device.not_found");
    assert!(err.to_string().contains("someone-else"), "{err}");
    assert!(
        err.to_string().contains("00008110-001A2B3C4D5E801E"),
        "{err}"
    );
    assert!(connected_device(Some("00008110-001A2B3C4D5E801E"))
        .unwrap()
        .is_some());
    drop(phone);

    // A phone that misbehaves: an error worth showing, not a silent None.
    let bad = SimPhone::with_profile("fault-wrong-certificate");
    std::env::set_var("USBMUXD_SOCKET_ADDRESS", bad.address());
    let err = connected_device(None).unwrap_err();
    assert_eq!(err.code(), "device.certificate_mismatch");
}
