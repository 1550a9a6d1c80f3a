//! The simulator against client software nobody here wrote: Debian's libimobiledevice-utils
//! (`idevice_id`, `ideviceinfo`, `idevicepair`) talk to the simulated phone (served from this
//! process) through `USBMUXD_SOCKET_ADDRESS`, over a Unix socket and over TCP. Then ibackup reads the pair record
//! libimobiledevice made. When the tools are not installed each test says so loudly and passes
//! (CI installs them: apt-get install libimobiledevice-utils libusbmuxd-tools).

mod support;

use std::process::{Command, Output};

use support::{SimPhone, SIM_UDID as UDID};

fn tools_present() -> bool {
    let present = ["idevice_id", "ideviceinfo", "idevicepair"]
        .iter()
        .all(|tool| Command::new(tool).arg("--help").output().is_ok());
    if !present {
        eprintln!(
            "\n*** SKIPPED: libimobiledevice-utils is not installed (idevice_id, ideviceinfo, \
             idevicepair); the simulator's interop with real clients was NOT checked. \
             Install: apt-get install libimobiledevice-utils libusbmuxd-tools ***\n"
        );
    }
    present
}

/// A simulated phone with a shipped profile, on a Unix socket or a loopback TCP port.
fn phone(profile: &str, tcp: bool) -> SimPhone {
    let builder = SimPhone::builder().profile(profile);
    if tcp { builder.tcp() } else { builder }.start()
}

/// Runs one of libimobiledevice's tools against `phone`.
fn tool(phone: &SimPhone, tool: &str, args: &[&str]) -> Output {
    // The `USBMUXD_SOCKET_ADDRESS` value libusbmuxd understands (`UNIX:` for sockets).
    let address = if phone.address().starts_with("127.0.0.1:") {
        phone.address().to_string()
    } else {
        format!("UNIX:{}", phone.address())
    };
    Command::new(tool)
        .args(args)
        .env("USBMUXD_SOCKET_ADDRESS", address)
        // libimobiledevice may keep its own configuration under HOME.
        .env("HOME", phone.dir())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_ok(out: &Output, what: &str) -> String {
    let text = stdout(out);
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {text}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l.trim() == *line),
            "line {line:?} missing from:\n{text}"
        );
    }
}

fn listing_and_info(tcp: bool) {
    let phone = phone("default", tcp);
    let ids = assert_ok(&tool(&phone, "idevice_id", &["-l"]), "idevice_id -l");
    assert_eq!(ids.trim(), UDID);

    // No session: the basic root values only.
    let simple = assert_ok(&tool(&phone, "ideviceinfo", &["-s"]), "ideviceinfo -s");
    assert_lines(
        &simple,
        &[
            "ProductVersion: 17.5.1",
            "BuildVersion: 21F90",
            "ProductType: iPhone14,5",
            &format!("UniqueDeviceID: {UDID}"),
        ],
    );
    assert!(
        !simple.contains("ActivationState"),
        "session-only value without a session:\n{simple}"
    );

    // Session + TLS with the pair record usbmuxd hands out.
    let full = assert_ok(&tool(&phone, "ideviceinfo", &[]), "ideviceinfo");
    assert_lines(
        &full,
        &[
            "ActivationState: Activated",
            "SerialNumber: F2LSIMULATED",
            "DeviceName: Simulated iPhone",
        ],
    );

    let disk = assert_ok(
        &tool(&phone, "ideviceinfo", &["-q", "com.apple.disk_usage"]),
        "ideviceinfo -q",
    );
    assert_lines(
        &disk,
        &[
            "TotalDiskCapacity: 128000000000",
            "AmountDataAvailable: 54300000000",
            "TotalDataAvailable: 54300000000",
        ],
    );
}

#[test]
fn libimobiledevice_lists_and_reads_the_simulator_over_a_unix_socket() {
    if tools_present() {
        listing_and_info(false);
    }
}

#[test]
fn libimobiledevice_lists_and_reads_the_simulator_over_tcp() {
    if tools_present() {
        listing_and_info(true);
    }
}

#[test]
fn idevicepair_pairs_and_validates_and_ibackup_uses_its_record() {
    if !tools_present() {
        return;
    }
    let phone = phone("unpaired", false);
    // (No "validate fails before pairing" check: libimobiledevice pairs on its own when it
    // finds no record, so validate on an accepting phone pairs it.)
    let paired = assert_ok(&tool(&phone, "idevicepair", &["pair"]), "idevicepair pair");
    assert!(
        paired.contains(&format!("SUCCESS: Paired with device {UDID}")),
        "{paired}"
    );
    let valid = assert_ok(
        &tool(&phone, "idevicepair", &["validate"]),
        "idevicepair validate",
    );
    assert!(
        valid.contains(&format!("SUCCESS: Validated pairing with device {UDID}")),
        "{valid}"
    );

    // The session now works for libimobiledevice ...
    let battery = assert_ok(
        &tool(&phone, "ideviceinfo", &["-q", "com.apple.mobile.battery"]),
        "ideviceinfo -q battery",
    );
    assert_lines(&battery, &["BatteryCurrentCapacity: 80"]);

    // ... and for ibackup, pinned to the DeviceCertificate libimobiledevice wrote.
    let json = phone.ibackup(&["device", "--json"]).json_exit(0);
    assert_eq!(json["paired"], true, "{json}");
    assert_eq!(json["storage"]["total_bytes"], 128_000_000_000u64);
}

#[test]
fn ideviceinfo_accepts_the_record_ibackup_pair_made() {
    if !tools_present() {
        return;
    }
    let phone = phone("unpaired", false);
    let out = phone.ibackup(&["pair"]);
    assert!(out.status.success(), "{}", out.stderr());
    let full = assert_ok(
        &tool(&phone, "ideviceinfo", &[]),
        "ideviceinfo after ibackup pair",
    );
    assert_lines(&full, &["ActivationState: Activated"]);
    let valid = assert_ok(
        &tool(&phone, "idevicepair", &["validate"]),
        "idevicepair validate",
    );
    assert!(valid.contains("SUCCESS: Validated pairing"), "{valid}");
}
