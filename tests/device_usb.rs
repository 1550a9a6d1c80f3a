//! End to end over direct USB: the real `ibackup` binary against an emulated iPhone (the
//! ibackup_sim USB server, in this process) whose bulk transfers travel over a Unix socket
//! (`IBACKUP_USB_EMULATOR`). No usbmuxd daemon is involved. Each test reads as: phone, command, expected output.
#![cfg(unix)]

mod support;

use std::path::Path;

use ibackup_sim::usb::UsbFault;
#[cfg(target_os = "linux")]
use support::Mount;
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

/// The machine's own libusb, no emulator, on a machine without a USB bus: the message names the
/// cause and the fix, exit 2. So that this runs on every machine, a bus or none, ibackup runs in
/// a private mount namespace (mounts.rs) with a fresh tmpfs over /dev: once with no
/// /dev/bus/usb at all, once with an empty one (what libusb itself takes for no usbfs). Where
/// no namespace can be made, the machine's own view serves if it has no bus; with a bus and no
/// namespace the test fails, saying why, rather than prove nothing.
#[cfg(target_os = "linux")]
#[test]
fn no_usb_bus_is_a_clear_libusb_message_and_exit_2() {
    let mut no_folder = vec![Mount::Tmpfs("/dev".into())];
    if Path::new("/proc/bus/usb").exists() {
        // The old usbfs, still looked at by libusb: emptied as well.
        no_folder.push(Mount::Tmpfs("/proc/bus/usb".into()));
    }
    let mut empty_folder = no_folder.clone();
    empty_folder.push(Mount::Mkdir("/dev/bus".into()));
    empty_folder.push(Mount::Mkdir("/dev/bus/usb".into()));
    if let Err(why) = support::private_mounts() {
        let bus = ["/dev/bus/usb", "/proc/bus/usb"]
            .iter()
            .any(|p| std::fs::read_dir(p).is_ok_and(|mut entries| entries.next().is_some()));
        assert!(
            !bus,
            "this machine has a USB bus, and this test cannot hide it from ibackup: a private \
             mount namespace cannot be made here ({why}); run the tests as root, or where \
             unprivileged user namespaces are allowed"
        );
        eprintln!(
            "no private mount namespace here ({why}): the machine's own view, which has no bus"
        );
        assert_no_bus_message("this machine's own", None);
        return;
    }
    for (view, plan) in [
        ("no /dev/bus/usb", &no_folder),
        ("an empty /dev/bus/usb", &empty_folder),
    ] {
        assert_no_bus_message(view, Some(plan));
    }
}

/// The no-bus message for every way of asking, ibackup seeing the machine through `plan` (or
/// as it is).
#[cfg(target_os = "linux")]
fn assert_no_bus_message(view: &str, plan: Option<&[Mount]>) {
    let dir = TempDir::new().unwrap();
    let run = |args: &[&str]| {
        let ibackup =
            Ibackup::new(args).env("USBMUXD_SOCKET_ADDRESS", dir.path().join("none.sock"));
        match plan {
            Some(plan) => ibackup.in_private_mounts(plan).run(),
            None => ibackup.run(),
        }
    };
    let out = run(&["devices", "--transport", "usb"]);
    let stderr = out.stderr();
    assert_eq!(out.code(), Some(2), "{view}: {stderr}");
    assert!(
        stderr.contains("direct USB cannot start"),
        "{view}: {stderr}"
    );
    assert!(stderr.contains("no USB bus"), "{view}: {stderr}");
    assert!(
        stderr.contains("/dev/bus/usb is missing or empty"),
        "{view}: {stderr}"
    );
    assert!(stderr.contains("--transport usbmuxd"), "{view}: {stderr}");
    assert!(!stderr.contains("panicked"), "{view}: {stderr}");

    let out = run(&["devices", "--transport", "usb", "--json"]);
    assert_eq!(out.code(), Some(2), "{view}: {}", out.stderr());
    assert_eq!(
        out.json()["error"]["code"],
        "device.usb_unavailable",
        "{view}"
    );

    // auto: neither the daemon nor USB; both causes are named, the code stays no_daemon.
    let out = run(&["device", "--json"]);
    assert_eq!(out.code(), Some(2), "{view}: {}", out.stderr());
    let v = out.json();
    assert_eq!(v["error"]["code"], "device.no_daemon", "{view}");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("usbmuxd") && message.contains("no USB bus"),
        "{view}: {message}"
    );
}
