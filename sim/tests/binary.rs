//! The `ibackup-sim` binary itself: its command line, its `ready` line, and that what it serves
//! is a phone ibackup's own clients can reach, on a Unix socket, on TCP and on emulated USB.
//! It also holds the positive control for ibackup's tests/shipped_binary.rs: the simulator's key
//! markers are found in a binary that links the simulator.

mod support;

use std::path::Path;
use std::process::Command;

use ibackup::device::transport::usbmuxd::UsbmuxdTransport;
use ibackup::device::transport::{parse_address, Transport};
use support::SimProcess;
use tempfile::TempDir;

const UDID: &str = "00008110-001A2B3C4D5E801E";

fn sim_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ibackup-sim"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The UDIDs a usbmuxd at `address` lists.
fn listed(address: &str) -> Vec<String> {
    let transport = UsbmuxdTransport {
        address: parse_address(address).unwrap(),
    };
    transport
        .devices()
        .unwrap()
        .into_iter()
        .map(|d| d.udid)
        .collect()
}

#[test]
fn simulator_refuses_bad_arguments() {
    let sim = sim_binary();
    let out = Command::new(sim)
        .args(["--listen", "10.1.2.3:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("loopback"));
    let dir = TempDir::new().unwrap();
    let bad = dir.path().join("p.json");
    std::fs::write(&bad, r#"{"batery": {}}"#).unwrap();
    let socket = dir.path().join("s.sock");
    let out = Command::new(sim)
        .args([
            "--listen",
            socket.to_str().unwrap(),
            "--profile",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("batery"));
}

#[test]
fn usb_options_need_usb() {
    let out = Command::new(sim_binary())
        .args(["--listen", "/nonexistent/s.sock", "--usb-protocol", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--usb"), "{}", text(&out.stderr));
}

#[cfg(unix)]
#[test]
fn on_a_unix_socket_it_says_ready_and_serves_the_profile() {
    let dir = TempDir::new().unwrap();
    let socket = dir.path().join("usbmuxd.sock");
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/no-phone.json");
    let sim = SimProcess::start(sim_binary(), socket.to_str().unwrap(), Some(&profile)).unwrap();
    assert_eq!(sim.address, socket.to_str().unwrap());
    assert_eq!(listed(&sim.address), Vec::<String>::new());
    drop(sim);

    let sim = SimProcess::start(sim_binary(), socket.to_str().unwrap(), None).unwrap();
    assert_eq!(listed(&sim.address), [UDID]);
}

#[test]
fn on_port_0_it_announces_the_port_it_chose() {
    let sim = SimProcess::start(sim_binary(), "127.0.0.1:0", None).unwrap();
    assert!(sim.address.starts_with("127.0.0.1:"), "{}", sim.address);
    assert_ne!(sim.address, "127.0.0.1:0");
    assert_eq!(listed(&sim.address), [UDID]);
}

#[cfg(unix)]
#[test]
fn with_usb_it_writes_the_pair_record_and_says_ready() {
    let dir = TempDir::new().unwrap();
    let socket = dir.path().join("usb.sock");
    let lockdown = dir.path().join("lockdown");
    let _sim = SimProcess::start_with(
        sim_binary(),
        socket.to_str().unwrap(),
        None,
        &["--usb", "--lockdown-dir", lockdown.to_str().unwrap()],
    )
    .unwrap();
    assert!(lockdown.join(format!("{UDID}.plist")).is_file());
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok());
}

/// The control for ibackup's tests/shipped_binary.rs: the markers it looks for are there in a
/// binary that does link the simulator, so their absence from `ibackup` means something.
#[test]
fn the_key_markers_are_in_a_binary_that_links_the_simulator() {
    let bytes = std::fs::read(sim_binary()).unwrap();
    for marker in ibackup_sim::fixed_key_markers() {
        assert!(
            marker.len() >= 40,
            "{marker:?} is too short to be distinctive"
        );
        assert!(
            bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{marker} not found in ibackup-sim"
        );
    }
}
