//! End to end: the real `ibackup` binary against a simulated phone behind a usbmuxd socket (the
//! ibackup_sim server, in this process), one phone per test. Each test reads as: profile,
//! command, expected output.

mod support;

use std::time::{Duration, Instant};

use support::{assert_device_contract, Ibackup, SimPhone, SIM_UDID as UDID};
use tempfile::TempDir;

fn phone(name: &str) -> SimPhone {
    SimPhone::with_profile(name)
}

fn phone_with(json: &str) -> SimPhone {
    SimPhone::builder().profile_json(json).start()
}

#[test]
fn device_json_has_every_contract_field() {
    let phone = phone("default");
    let out = phone.ibackup(&["device", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert_device_contract(&out.json(), "usbmuxd", "usbmuxd");
}

#[test]
fn device_text_reports_the_state() {
    let phone = phone("default");
    let out = phone.ibackup(&["device"]);
    assert_eq!(out.code(), Some(0));
    let stdout = out.stdout();
    for expected in [
        "Simulated iPhone (iPhone14,5), iOS 17.5.1 (21F90)",
        UDID,
        "usbmuxd (USB)",
        "54 GB free of 128 GB",
        "80%, charging",
        "not encrypted",
        "Find My     off",
        "iCloud Backup",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn low_storage_profile() {
    let phone = phone("low-storage");
    let v = phone.ibackup(&["device", "--json"]).json_exit(0);
    assert_eq!(v["storage"]["total_bytes"], 64_000_000_000u64);
    assert_eq!(v["storage"]["available_bytes"], 850_000_000u64);
    assert!(phone
        .ibackup(&["device"])
        .stdout()
        .contains("850 MB free of 64 GB (low)"));
}

#[test]
fn battery_low_and_not_charging_profile() {
    let phone = phone("battery-low");
    let v = phone.ibackup(&["device", "--json"]).json_exit(0);
    assert_eq!(
        v["battery"],
        serde_json::json!({"percent": 9, "charging": false, "external_power": false})
    );
    assert!(phone
        .ibackup(&["device"])
        .stdout()
        .contains("9%, not charging"));
}

#[test]
fn find_my_on_profile() {
    let phone = phone("find-my-on");
    let v = phone.ibackup(&["device", "--json"]).json_exit(0);
    assert_eq!(v["find_my"], true);
    assert_eq!(v["backup"]["will_encrypt"], true);
    assert!(phone
        .ibackup(&["device"])
        .stdout()
        .contains("on (turn it off before restoring"));
}

#[test]
fn ios_version_profile() {
    let phone = phone("ios-18.0");
    let v = phone.ibackup(&["device", "--json"]).json_exit(0);
    assert_eq!(v["ios_version"], "18.0");
    assert_eq!(v["build_version"], "22A3354");
    assert_eq!(v["product_type"], "iPhone16,1");
}

#[test]
fn unpaired_phone_reports_what_it_can_and_how_to_pair() {
    let phone = phone("unpaired");
    let out = phone.ibackup(&["device", "--json"]);
    assert_eq!(out.code(), Some(0));
    let v = out.json();
    assert_eq!(v["paired"], false);
    assert_eq!(v["ios_version"], "17.5.1");
    assert_eq!(v["name"], "Simulated iPhone");
    for key in ["storage", "battery", "backup", "find_my", "pair_record"] {
        assert!(v[key].is_null(), "{key} should be null: {v}");
    }
    assert_eq!(v["findings"][0]["code"], "device.not_paired");
    let stdout = phone.ibackup(&["device"]).stdout();
    assert!(stdout.contains("ibackup pair"), "{stdout}");
}

#[test]
fn pairing_waits_for_unlock_and_trust_then_saves_the_record() {
    let phone = phone("pairing-pending");
    let out = phone.ibackup(&["pair"]);
    let stderr = out.stderr();
    assert_eq!(out.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Unlock your iPhone"), "{stderr}");
    assert!(stderr.contains("Tap Trust"), "{stderr}");
    assert!(out
        .stdout()
        .contains("Paired with 00008110-001A2B3C4D5E801E"));
    // The record went to usbmuxd and opens a session now.
    let v = phone.ibackup(&["device", "--json"]).json_exit(0);
    assert_eq!(v["paired"], true);
    assert_eq!(v["pair_record"], "usbmuxd");
    assert_eq!(v["battery"]["percent"], 80);
}

#[test]
fn denied_pairing_is_a_clear_failure() {
    let phone = phone("pairing-denied");
    let out = phone.ibackup(&["pair", "--json"]);
    assert_eq!(out.code(), Some(2));
    assert_eq!(out.json()["error"]["code"], "device.pairing_denied");
    assert!(out.stderr().contains("Trust"));
}

#[test]
fn pairing_gives_up_after_the_timeout() {
    let phone = phone_with(r#"{"paired": false, "pairing": {"pending_for": 1000}}"#);
    let out = phone.ibackup_with(&["pair", "--json"], &[("IBACKUP_PAIR_TIMEOUT", "2")]);
    assert_eq!(out.code(), Some(2));
    assert_eq!(out.json()["error"]["code"], "device.pairing_timeout");
}

/// Each fault ends in exit 2, a one-paragraph error and a JSON error object, quickly.
fn assert_fault(profile_name: &str, code: &str, words: &str) {
    let phone = phone(profile_name);
    let started = Instant::now();
    let out = phone.ibackup(&["device", "--json"]);
    let took = started.elapsed();
    assert_eq!(out.code(), Some(2), "{profile_name}: {}", out.stderr());
    assert!(
        took < Duration::from_secs(10),
        "{profile_name} took {took:?}"
    );
    let v = out.json();
    assert_eq!(v["schema"], "ibackup.error/1");
    assert_eq!(v["error"]["code"], code, "{profile_name}: {v}");
    let stderr = out.stderr();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(words),
        "{profile_name}: {words:?} not in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn fault_absurd_usbmux_frame_length() {
    assert_fault(
        "fault-absurd-frame-length",
        "device.protocol",
        "announced 4294967280 bytes",
    );
}

#[test]
fn fault_absurd_lockdown_length() {
    assert_fault(
        "fault-absurd-lockdown-length",
        "device.protocol",
        "announced 4294967280 bytes",
    );
}

#[test]
fn fault_garbage_plist() {
    assert_fault(
        "fault-garbage-plist",
        "device.protocol",
        "not a valid property list",
    );
}

#[test]
fn fault_stall() {
    assert_fault("fault-stall", "device.timeout", "timed out after 5 seconds");
}

#[test]
fn fault_drop_mid_session() {
    assert_fault(
        "fault-drop-mid-session",
        "device.protocol",
        "connection closed",
    );
}

#[test]
fn wrong_pinned_certificate_is_refused() {
    assert_fault(
        "fault-wrong-certificate",
        "device.certificate_mismatch",
        "not the one in its pair record",
    );
}

#[test]
fn no_daemon_is_a_clear_failure() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nothing.sock");
    let out = Ibackup::new(["device", "--json"])
        .env("USBMUXD_SOCKET_ADDRESS", &missing)
        .env("IBACKUP_LOCKDOWN_DIR", dir.path())
        .env("IBACKUP_DEVICE_WAIT", "1")
        .run();
    assert_eq!(out.code(), Some(2));
    assert_eq!(out.json()["error"]["code"], "device.no_daemon");
    assert!(out.stderr().contains("usbmuxd"));
}

#[test]
fn no_phone_waits_then_fails_and_devices_lists_none() {
    let phone = phone("no-phone");
    let started = Instant::now();
    let out = phone.ibackup(&["device", "--json"]);
    assert_eq!(out.code(), Some(2));
    assert_eq!(out.json()["error"]["code"], "device.none");
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = phone.ibackup(&["devices", "--json"]);
    assert_eq!(out.code(), Some(0));
    assert_eq!(out.json()["devices"], serde_json::json!([]));
    assert!(phone
        .ibackup(&["devices"])
        .stdout()
        .contains("No iPhone is connected"));
}

#[test]
fn a_phone_plugged_in_while_waiting_is_found_through_listen() {
    let phone = phone_with(r#"{"attach_after_ms": 700}"#);
    let out = phone.ibackup_with(&["device", "--json"], &[("IBACKUP_DEVICE_WAIT", "5")]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert_eq!(out.json()["udid"], UDID);
}

#[test]
fn unknown_udid_is_refused() {
    let phone = phone("default");
    let out = phone.ibackup(&["device", "--device", "nope", "--json"]);
    assert_eq!(out.code(), Some(2));
    assert_eq!(out.json()["error"]["code"], "device.not_found");
    let out = phone.ibackup(&["device", "--device", UDID, "--json"]);
    assert_eq!(out.code(), Some(0));
}

#[test]
fn devices_lists_the_phone() {
    let phone = phone("default");
    let out = phone.ibackup(&["devices", "--json"]);
    assert_eq!(out.code(), Some(0));
    let v = out.json();
    assert_eq!(v["schema"], "ibackup.devices/1");
    assert_eq!(v["devices"][0]["udid"], UDID);
    assert_eq!(v["devices"][0]["name"], "Simulated iPhone");
    assert_eq!(v["devices"][0]["connection"], "usbmuxd");
    let stdout = phone.ibackup(&["devices"]).stdout();
    assert!(
        stdout.contains(UDID) && stdout.contains("iOS 17.5.1"),
        "{stdout}"
    );
}

#[test]
fn every_address_form_reaches_the_simulator() {
    let phone = phone("default");
    let path = phone.address();
    for address in [path.to_string(), format!("UNIX:{path}")] {
        let out = phone
            .command(&["device", "--json"])
            .env("USBMUXD_SOCKET_ADDRESS", &address)
            .run();
        assert_eq!(out.code(), Some(0), "{address}: {}", out.stderr());
    }
    let tcp = SimPhone::builder().tcp().start();
    assert!(tcp.address().starts_with("127.0.0.1:"), "{}", tcp.address());
    let out = tcp.ibackup(&["device", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert_eq!(out.json()["paired"], true);
}

#[test]
fn fault_slow_loris() {
    // One byte a second: the 5-second deadline covers the whole message, not each byte.
    assert_fault(
        "fault-slow-loris",
        "device.timeout",
        "timed out after 5 seconds",
    );
}

#[test]
fn fault_daemon_that_never_answers() {
    assert_fault(
        "fault-daemon-silent",
        "device.timeout",
        "timed out after 5 seconds",
    );
}
