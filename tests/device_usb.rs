//! End to end over direct USB: the real `ibackup` binary against an emulated iPhone (the
//! ibackup_sim USB server, in this process) whose bulk transfers travel over a Unix socket
//! (`IBACKUP_USB_EMULATOR`). No usbmuxd daemon is involved. Each test reads as: phone, command, expected output.
#![cfg(unix)]

mod support;

use std::path::Path;

use ibackup_sim::usb::UsbFault;
use support::{assert_device_contract, Ibackup, SimPhone, SIM_UDID as UDID};
use tempfile::TempDir;

/// The default phone on emulated USB, pre-paired, its record in its pair-record folder.
fn usb_phone() -> SimPhone {
    SimPhone::builder().usb().start()
}

#[test]
fn device_json_over_usb_has_every_contract_field() {
    let phone = usb_phone();
    let out = phone.ibackup(&["device", "--json", "--transport", "usb"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let record = phone.lockdown_dir().join(format!("{UDID}.plist"));
    assert_device_contract(&out.json(), "usb", &record.display().to_string());
}

#[test]
fn auto_uses_usb_when_no_daemon_answers_and_devices_says_so() {
    let phone = usb_phone();
    let out = phone.ibackup(&["devices", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let v = out.json();
    assert_eq!(v["devices"][0]["udid"], UDID);
    assert_eq!(v["devices"][0]["connection"], "usb");
    assert_eq!(v["devices"][0]["name"], "Simulated iPhone");
    let out = phone.ibackup(&["devices"]);
    assert!(out.stdout().contains("via usb (USB)"), "{}", out.stdout());
}

#[test]
fn an_old_protocol_1_phone_works_end_to_end() {
    let phone = SimPhone::builder().usb_protocol(1).start();
    let out = phone.ibackup(&["device", "--transport", "usb"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert!(out.stdout().contains("Connection  usb (USB)"));
    assert!(out.stdout().contains("Paired      yes"));
}

#[test]
fn pairing_over_usb_saves_the_record_in_the_folder() {
    let phone = SimPhone::builder()
        .usb()
        .profile_json(r#"{"paired": false}"#)
        .start();
    let out = phone.ibackup(&["device", "--json", "--transport", "usb"]);
    assert_eq!(out.json()["paired"], false);
    let out = phone.ibackup(&["pair", "--json", "--transport", "usb"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let record = phone.lockdown_dir().join(format!("{UDID}.plist"));
    assert_eq!(out.json()["saved_to"], record.display().to_string());
    assert!(record.is_file());
    let out = phone.ibackup(&["device", "--json", "--transport", "usb"]);
    assert_eq!(out.json()["paired"], true);
}

#[test]
fn a_phone_unplugged_mid_transfer_is_exit_2_with_a_clear_message() {
    let phone = SimPhone::builder()
        .usb_fault(UsbFault::VanishMidTransfer)
        .start();
    let out = phone.ibackup(&["device", "--json", "--transport", "usb"]);
    assert_eq!(out.code(), Some(2));
    let v = out.json();
    assert_eq!(v["error"]["code"], "device.protocol");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("the phone is gone"), "{message}");
}

#[test]
fn a_refused_lockdown_port_names_the_phones_reason() {
    let phone = SimPhone::builder()
        .usb_fault(UsbFault::RefuseLockdown)
        .start();
    let out = phone.ibackup(&["device", "--json", "--transport", "usb"]);
    assert_eq!(out.code(), Some(2));
    let v = out.json();
    assert_eq!(v["error"]["code"], "device.port_refused");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("lockdownd is not ready"));
}

/// The machine's own libusb, no emulator: on a machine without a USB bus (this development
/// machine, most CI containers) the message names the cause and the fix, exit 2.
#[test]
fn no_usb_bus_is_a_clear_libusb_message_and_exit_2() {
    if Path::new("/dev/bus/usb").exists() {
        eprintln!("SKIPPED: this machine has a USB bus, so libusb starts here");
        return;
    }
    let dir = TempDir::new().unwrap();
    let run = |args: &[&str]| {
        Ibackup::new(args)
            .env("USBMUXD_SOCKET_ADDRESS", dir.path().join("none.sock"))
            .run()
    };
    let out = run(&["devices", "--transport", "usb"]);
    assert_eq!(out.code(), Some(2));
    let stderr = out.stderr();
    assert!(stderr.contains("direct USB cannot start"), "{stderr}");
    assert!(stderr.contains("no USB bus"), "{stderr}");
    assert!(stderr.contains("--transport usbmuxd"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = run(&["devices", "--transport", "usb", "--json"]);
    assert_eq!(out.code(), Some(2));
    assert_eq!(out.json()["error"]["code"], "device.usb_unavailable");

    // auto: neither the daemon nor USB; both causes are named, the code stays no_daemon.
    let out = run(&["device", "--json"]);
    assert_eq!(out.code(), Some(2));
    let v = out.json();
    assert_eq!(v["error"]["code"], "device.no_daemon");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("usbmuxd") && message.contains("no USB bus"),
        "{message}"
    );
}
