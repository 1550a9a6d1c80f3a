//! End to end over direct USB: the real `ibackup` binary against `ibackup-sim --usb`, an
//! emulated iPhone whose bulk transfers travel over a Unix socket (`IBACKUP_USB_EMULATOR`).
//! No usbmuxd daemon is involved. Each test reads as: phone, command, expected output.
#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ibackup::sim::harness::SimProcess;
use support::json_of as json;
use tempfile::TempDir;

const UDID: &str = "00008110-001A2B3C4D5E801E";

struct UsbPhone {
    _sim: SimProcess,
    dir: TempDir,
}

impl UsbPhone {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("usb.sock")
    }

    fn lockdown(&self) -> PathBuf {
        self.dir.path().join("lockdown")
    }
}

/// An emulated USB phone (pre-paired, its record in the test's lockdown folder) with `extra`
/// simulator arguments and an optional profile.
fn usb_phone(extra: &[&str], profile: Option<&str>) -> UsbPhone {
    let dir = TempDir::new().unwrap();
    let socket = dir.path().join("usb.sock");
    let lockdown = dir.path().join("lockdown");
    let profile_path = profile.map(|json| {
        let path = dir.path().join("profile.json");
        std::fs::write(&path, json).unwrap();
        path
    });
    let mut args = vec!["--usb", "--lockdown-dir", lockdown.to_str().unwrap()];
    args.extend_from_slice(extra);
    let sim = SimProcess::start_with(
        Path::new(env!("CARGO_BIN_EXE_ibackup-sim")),
        socket.to_str().unwrap(),
        profile_path.as_deref(),
        &args,
    )
    .unwrap();
    UsbPhone { _sim: sim, dir }
}

/// Runs ibackup with no daemon reachable, pointed at the emulated phone.
fn ibackup(phone: &UsbPhone, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ibackup"))
        .args(args)
        .env(
            "USBMUXD_SOCKET_ADDRESS",
            phone.dir.path().join("no-daemon.sock"),
        )
        .env("IBACKUP_USB_EMULATOR", phone.socket())
        .env("IBACKUP_LOCKDOWN_DIR", phone.lockdown())
        .env("IBACKUP_DEVICE_WAIT", "1")
        .env_remove("IBACKUP_TRANSPORT")
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn device_json_over_usb_has_every_contract_field() {
    let phone = usb_phone(&[], None);
    let out = ibackup(&phone, &["device", "--json", "--transport", "usb"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&out);
    let record = phone.lockdown().join(format!("{UDID}.plist"));
    assert_eq!(v["schema"], "ibackup.device/1");
    assert_eq!(v["udid"], UDID);
    assert_eq!(v["name"], "Simulated iPhone");
    assert_eq!(v["product_type"], "iPhone14,5");
    assert_eq!(v["ios_version"], "17.5.1");
    assert_eq!(v["build_version"], "21F90");
    assert_eq!(v["connection"], "usb");
    assert_eq!(v["connection_type"], "USB");
    assert_eq!(v["paired"], true);
    assert_eq!(v["pair_record"], record.display().to_string());
    assert_eq!(v["storage"]["total_bytes"], 128_000_000_000u64);
    assert_eq!(v["storage"]["available_bytes"], 54_300_000_000u64);
    assert_eq!(v["battery"]["percent"], 80);
    assert_eq!(v["battery"]["charging"], true);
    assert_eq!(v["battery"]["external_power"], true);
    assert_eq!(v["backup"]["will_encrypt"], false);
    assert_eq!(v["find_my"], false);
    assert_eq!(v["findings"], serde_json::json!([]));
}

#[test]
fn auto_uses_usb_when_no_daemon_answers_and_devices_says_so() {
    let phone = usb_phone(&[], None);
    let out = ibackup(&phone, &["devices", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["devices"][0]["udid"], UDID);
    assert_eq!(v["devices"][0]["connection"], "usb");
    assert_eq!(v["devices"][0]["name"], "Simulated iPhone");
    let out = ibackup(&phone, &["devices"]);
    assert!(
        text(&out.stdout).contains("via usb (USB)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn an_old_protocol_1_phone_works_end_to_end() {
    let phone = usb_phone(&["--usb-protocol", "1"], None);
    let out = ibackup(&phone, &["device", "--transport", "usb"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Connection  usb (USB)"));
    assert!(text(&out.stdout).contains("Paired      yes"));
}

#[test]
fn pairing_over_usb_saves_the_record_in_the_folder() {
    let phone = usb_phone(&[], Some(r#"{"paired": false}"#));
    let out = ibackup(&phone, &["device", "--json", "--transport", "usb"]);
    assert_eq!(json(&out)["paired"], false);
    let out = ibackup(&phone, &["pair", "--json", "--transport", "usb"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let record = phone.lockdown().join(format!("{UDID}.plist"));
    assert_eq!(json(&out)["saved_to"], record.display().to_string());
    assert!(record.is_file());
    let out = ibackup(&phone, &["device", "--json", "--transport", "usb"]);
    assert_eq!(json(&out)["paired"], true);
}

#[test]
fn a_phone_unplugged_mid_transfer_is_exit_2_with_a_clear_message() {
    let phone = usb_phone(&["--usb-fault", "vanish_mid_transfer"], None);
    let out = ibackup(&phone, &["device", "--json", "--transport", "usb"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["error"]["code"], "device.protocol");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("the phone is gone"), "{message}");
}

#[test]
fn a_refused_lockdown_port_names_the_phones_reason() {
    let phone = usb_phone(&["--usb-fault", "refuse_lockdown"], None);
    let out = ibackup(&phone, &["device", "--json", "--transport", "usb"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
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
        Command::new(env!("CARGO_BIN_EXE_ibackup"))
            .args(args)
            .env_remove("IBACKUP_USB_EMULATOR")
            .env_remove("IBACKUP_TRANSPORT")
            .env("USBMUXD_SOCKET_ADDRESS", dir.path().join("none.sock"))
            .output()
            .unwrap()
    };
    let out = run(&["devices", "--transport", "usb"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("direct USB cannot start"), "{stderr}");
    assert!(stderr.contains("no USB bus"), "{stderr}");
    assert!(stderr.contains("--transport usbmuxd"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = run(&["devices", "--transport", "usb", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["error"]["code"], "device.usb_unavailable");

    // auto: neither the daemon nor USB; both causes are named, the code stays no_daemon.
    let out = run(&["device", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["error"]["code"], "device.no_daemon");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("usbmuxd") && message.contains("no USB bus"),
        "{message}"
    );
}
