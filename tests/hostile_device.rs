//! A hostile phone, daemon, pair-record folder or environment (issue 12): every command answers
//! with its documented exit code and a plain message, within a time limit and bounded memory,
//! never a panic, and never reports values from a phone it could not trust. Also: pair records
//! are written for their owner only, whatever the umask.
//!
//! Each run is bounded here (killed past its time limit, its address space capped), so a
//! regression hangs or bloats one test, not the machine.

#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ibackup::device::transport::usbmuxd::{encode_frame, parse_dict, read_frame};
use plist::{Dictionary, Value};
use support::{mkfifo, Ibackup, Measure, SimPhone, SIM_UDID};
use tempfile::TempDir;

/// A prepared `ibackup`, killed after `kill_after`, with at most 2 GiB of address space (so a
/// read of /dev/zero fails instead of eating the machine).
fn bounded(run: Ibackup, kill_after: Duration) -> Measure {
    Measure::new(run.command())
        .kill_after(kill_after)
        .address_space(2 << 30)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------------
// Break 4: a phone that turns TLS off in a paired session.

/// Session-only values the simulated phone would give: none may reach the output.
fn assert_no_phone_values(text: &str, what: &str) {
    for leaked in [
        "128000000000",
        "54300000000",
        "battery",
        "Battery",
        "find_my\":false",
    ] {
        assert!(!text.contains(leaked), "{what}: `{leaked}` in {text}");
    }
}

#[test]
fn device_refuses_a_paired_session_without_tls() {
    let phone = SimPhone::with_profile("fault-no-tls");
    let out = bounded(
        phone.command(&["device", "--json"]),
        Duration::from_secs(30),
    )
    .run();
    out.assert_exit(2, Duration::from_secs(10), "device --json");
    let v = out.json();
    assert_eq!(v["schema"], "ibackup.error/1");
    assert_eq!(v["error"]["code"], "device.no_tls", "{v}");
    assert!(out.stderr.contains("TLS"), "{}", out.stderr);
    assert_no_phone_values(&out.stdout, "device --json");

    let text = bounded(phone.command(&["device"]), Duration::from_secs(30)).run();
    text.assert_exit(2, Duration::from_secs(10), "device");
    assert!(text.stdout.is_empty(), "{}", text.stdout);
    assert!(
        text.stderr.starts_with("error: ") && text.stderr.contains("plain text"),
        "{}",
        text.stderr
    );
}

#[test]
fn device_over_usb_refuses_a_paired_session_without_tls() {
    let phone = SimPhone::builder().usb().profile("fault-no-tls").start();
    let out = bounded(
        phone.command(&["device", "--json", "--transport", "usb"]),
        Duration::from_secs(30),
    )
    .run();
    out.assert_exit(2, Duration::from_secs(10), "device --transport usb");
    assert_eq!(out.json()["error"]["code"], "device.no_tls");
    assert_no_phone_values(&out.stdout, "device --transport usb");
}

#[test]
fn inspect_reports_no_values_from_a_phone_without_tls() {
    let phone = SimPhone::with_profile("fault-no-tls");
    let backups = TempDir::new().unwrap();
    let run = |args: &[&str]| {
        bounded(
            phone
                .command(args)
                .env("IBACKUP_BACKUP_DIR", backups.path()),
            Duration::from_secs(30),
        )
        .run()
    };
    let out = run(&["inspect", "--json"]);
    out.assert_exit(0, Duration::from_secs(10), "inspect --json");
    let v = out.json();
    assert!(v["device"].is_null(), "{v}");
    let error = v["device_error"].as_str().unwrap_or_default();
    assert!(error.contains("TLS"), "{v}");
    assert_no_phone_values(&out.stdout, "inspect --json");

    let text = run(&["inspect"]);
    text.assert_exit(0, Duration::from_secs(10), "inspect");
    assert!(
        text.stdout.contains("could not be read") && text.stdout.contains("plain text"),
        "{}",
        text.stdout
    );
    assert_no_phone_values(&text.stdout, "inspect");
    // A phone that could not be read is not "nothing to fix".
    assert!(
        !text.stdout.contains("Nothing to fix") && text.stdout.contains("was not checked"),
        "{}",
        text.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Break 1: pair records (and SystemConfiguration.plist) that are not regular files.

/// A pre-paired phone on emulated USB whose record in the folder is replaced by `make`.
fn usb_phone_with_record(make: impl FnOnce(&Path)) -> SimPhone {
    let phone = SimPhone::builder().usb().start();
    let record = phone.lockdown_dir().join(format!("{SIM_UDID}.plist"));
    std::fs::remove_file(&record).unwrap();
    make(&record);
    phone
}

fn assert_record_refused(phone: &SimPhone, words: &str) {
    let out = bounded(
        phone.command(&["device", "--json", "--transport", "usb"]),
        Duration::from_secs(20),
    )
    .run();
    out.assert_exit(2, Duration::from_secs(5), words);
    let v = out.json();
    assert_eq!(v["error"]["code"], "device.bad_pair_record", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{message}");
}

#[test]
fn a_pair_record_linked_to_dev_zero_is_refused_at_once() {
    let phone = usb_phone_with_record(|record| {
        std::os::unix::fs::symlink("/dev/zero", record).unwrap();
    });
    assert_record_refused(&phone, "symbolic link");
}

#[test]
fn a_pair_record_that_is_a_fifo_is_refused_at_once() {
    let phone = usb_phone_with_record(mkfifo);
    assert_record_refused(&phone, "FIFO");
}

#[test]
fn a_huge_pair_record_is_refused_before_it_is_read() {
    let phone = usb_phone_with_record(|record| {
        let file = std::fs::File::create(record).unwrap();
        // Sparse: costs no disk.
        file.set_len(3 << 30).unwrap();
    });
    assert_record_refused(&phone, "bytes allowed");
}

#[test]
fn pairing_does_not_block_on_a_fifo_system_configuration() {
    let phone = SimPhone::builder()
        .usb()
        .profile_json(r#"{"paired": false}"#)
        .start();
    mkfifo(&phone.lockdown_dir().join("SystemConfiguration.plist"));
    let out = bounded(
        phone.command(&["pair", "--json", "--transport", "usb"]),
        Duration::from_secs(60),
    )
    .run();
    out.assert_exit(
        0,
        Duration::from_secs(30),
        "pair with a FIFO SystemConfiguration",
    );
    assert_eq!(out.json()["paired"], true);
}

// ---------------------------------------------------------------------------------------------
// Break 5: the pair record holds private keys: 0600 in a 0700 folder we made, whatever the umask.

#[test]
fn pairing_over_usb_writes_a_private_record_in_a_private_new_folder_under_umask_000() {
    let phone = SimPhone::builder()
        .usb()
        .profile_json(r#"{"paired": false}"#)
        .start();
    let scratch = TempDir::new().unwrap();
    let outer = scratch.path().join("new");
    let folder = outer.join("lockdown");
    let out = bounded(
        phone
            .command(&["pair", "--json", "--transport", "usb"])
            .env("IBACKUP_LOCKDOWN_DIR", &folder),
        Duration::from_secs(60),
    )
    .umask(0)
    .run();
    out.assert_exit(0, Duration::from_secs(30), "pair under umask 000");
    let record = folder.join(format!("{SIM_UDID}.plist"));
    assert_eq!(out.json()["saved_to"], record.display().to_string());
    assert_eq!(mode(&record), 0o600, "the record");
    assert_eq!(mode(&folder), 0o700, "the folder pair made");
    assert_eq!(mode(&outer), 0o700, "the folder above it, made too");
    // Only the record is left: no temporary file beside it.
    let names: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("{SIM_UDID}.plist")], "{names:?}");
    // And the record works.
    let out = phone
        .command(&["device", "--json", "--transport", "usb"])
        .env("IBACKUP_LOCKDOWN_DIR", &folder)
        .run();
    assert_eq!(out.json_exit(0)["paired"], true, "{}", out.stderr());
}

#[test]
fn pairing_again_replaces_a_readable_record_with_a_private_one_and_leaves_our_folder_alone() {
    // The simulator laid the earlier record out 0644, as a careless tool would, in a folder the
    // user made 0777: the new record is 0600, and the folder (not ours) keeps its mode.
    let phone = SimPhone::builder().usb().start();
    let folder = phone.lockdown_dir();
    let record = folder.join(format!("{SIM_UDID}.plist"));
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = std::fs::read(&record).unwrap();
    let out = bounded(
        phone.command(&["pair", "--json", "--transport", "usb"]),
        Duration::from_secs(60),
    )
    .umask(0)
    .run();
    out.assert_exit(0, Duration::from_secs(30), "pair again under umask 000");
    assert_eq!(mode(&record), 0o600);
    assert_ne!(std::fs::read(&record).unwrap(), before, "a new record");
    assert_eq!(
        mode(folder),
        0o777,
        "a folder ibackup did not make is not changed"
    );
}

#[test]
fn pairing_over_usbmuxd_leaves_the_record_to_the_daemon() {
    let phone = SimPhone::with_profile("unpaired");
    let out = bounded(phone.command(&["pair", "--json"]), Duration::from_secs(60))
        .umask(0)
        .run();
    out.assert_exit(0, Duration::from_secs(30), "pair over usbmuxd");
    assert_eq!(out.json()["saved_to"], "usbmuxd");
    let written: Vec<_> = std::fs::read_dir(phone.lockdown_dir()).unwrap().collect();
    assert!(written.is_empty(), "{written:?}");
}

// ---------------------------------------------------------------------------------------------
// Break 6: environment values.

const HUGE: [&str; 4] = [
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "99999999999999999999999",
];

fn assert_bad_environment(run: Ibackup, variable: &str, value: &str) {
    let out = bounded(run, Duration::from_secs(20)).run();
    let what = format!("{variable}={value:?}");
    out.assert_exit(2, Duration::from_secs(5), &what);
    let v = out.json();
    assert_eq!(v["error"]["code"], "usage.bad_environment", "{what}: {v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(variable) && message.contains("0 to 86400"),
        "{what}: {message}"
    );
    assert!(out.stderr.starts_with("error: "), "{what}: {}", out.stderr);
}

#[test]
fn device_wait_values_out_of_range_are_refused_not_panicked() {
    let phone = SimPhone::with_profile("no-phone");
    for value in HUGE
        .iter()
        .copied()
        .chain(["-1", "abc", "1.5", "10s", "86401"])
    {
        for args in [&["device", "--json"][..], &["pair", "--json"][..]] {
            assert_bad_environment(
                phone.command(args).env("IBACKUP_DEVICE_WAIT", value),
                "IBACKUP_DEVICE_WAIT",
                value,
            );
        }
    }
}

#[test]
fn pair_timeout_values_out_of_range_are_refused_not_panicked() {
    let phone = SimPhone::with_profile("pairing-pending");
    for value in HUGE.iter().copied().chain(["-5", "two minutes", "86401"]) {
        assert_bad_environment(
            phone
                .command(&["pair", "--json"])
                .env("IBACKUP_PAIR_TIMEOUT", value),
            "IBACKUP_PAIR_TIMEOUT",
            value,
        );
    }
}

#[test]
fn empty_or_padded_numbers_are_the_default_or_the_number() {
    let phone = SimPhone::with_profile("no-phone");
    // Empty means unset: the default wait (2 s without a terminal), then "no phone".
    for value in ["", "  ", " 0 ", "1"] {
        let out = bounded(
            phone
                .command(&["device", "--json"])
                .env("IBACKUP_DEVICE_WAIT", value),
            Duration::from_secs(20),
        )
        .run();
        out.assert_exit(2, Duration::from_secs(8), value);
        assert_eq!(out.json()["error"]["code"], "device.none", "{value:?}");
    }
    let phone = SimPhone::with_profile("default");
    let out = phone.ibackup_with(&["device", "--json"], &[("IBACKUP_PAIR_TIMEOUT", "")]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
}

#[test]
fn a_non_utf8_variable_is_refused_by_name() {
    use std::os::unix::ffi::OsStrExt;
    let phone = SimPhone::with_profile("no-phone");
    let odd = std::ffi::OsStr::from_bytes(b"\xff\xfe5");
    let out = bounded(
        phone
            .command(&["device", "--json"])
            .env("IBACKUP_DEVICE_WAIT", odd),
        Duration::from_secs(20),
    )
    .run();
    out.assert_exit(2, Duration::from_secs(5), "non-UTF-8 IBACKUP_DEVICE_WAIT");
    assert_eq!(out.json()["error"]["code"], "usage.bad_environment");
    let out = bounded(
        Ibackup::new(["devices", "--json"]).env("USBMUXD_SOCKET_ADDRESS", odd),
        Duration::from_secs(20),
    )
    .run();
    out.assert_exit(
        2,
        Duration::from_secs(5),
        "non-UTF-8 USBMUXD_SOCKET_ADDRESS",
    );
    assert_eq!(out.json()["error"]["code"], "device.bad_address");
}

#[test]
fn a_bad_transport_variable_is_a_usage_error() {
    let out = bounded(
        Ibackup::new(["devices"]).env("IBACKUP_TRANSPORT", "carrier-pigeon"),
        Duration::from_secs(20),
    )
    .run();
    out.assert_exit(
        2,
        Duration::from_secs(5),
        "IBACKUP_TRANSPORT=carrier-pigeon",
    );
    assert!(out.stderr.contains("carrier-pigeon"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// Weakness: `devices` against a daemon listing many phones, some or all of which stall.

/// How the fake daemon answers Connect.
#[derive(Clone, Copy)]
enum OnConnect {
    /// Accepts, then the phone never says a word.
    Stall,
    /// Refuses the port at once.
    Refuse,
}

/// A usbmuxd that lists `count` phones (as a binary plist, as small as the list can be) and
/// answers Connect as `on_connect` says. Its threads live until the test process ends.
struct FakeDaemon {
    socket: PathBuf,
    _dir: TempDir,
}

fn fake_usbmuxd(count: usize, on_connect: OnConnect) -> FakeDaemon {
    let dir = TempDir::new().unwrap();
    let socket = dir.path().join("usbmuxd.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let list = device_list(count);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let list = list.clone();
            std::thread::spawn(move || serve_fake(stream, &list, on_connect));
        }
    });
    FakeDaemon { socket, _dir: dir }
}

fn device_list(count: usize) -> Vec<u8> {
    let devices = (0..count)
        .map(|i| {
            let mut properties = Dictionary::new();
            properties.insert("SerialNumber".into(), format!("{i:08X}-FAKE").into());
            properties.insert("ConnectionType".into(), "USB".into());
            let mut entry = Dictionary::new();
            entry.insert("DeviceID".into(), (i as u64 + 1).into());
            entry.insert("Properties".into(), Value::Dictionary(properties));
            Value::Dictionary(entry)
        })
        .collect();
    let mut answer = Dictionary::new();
    answer.insert("DeviceList".into(), Value::Array(devices));
    let mut bytes = Vec::new();
    plist::to_writer_binary(&mut bytes, &answer).unwrap();
    bytes
}

fn serve_fake(mut stream: UnixStream, list: &[u8], on_connect: OnConnect) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let Ok((header, payload)) = read_frame(&mut stream, "a request", deadline) else {
        return;
    };
    let Ok(request) = parse_dict(&payload, "a request") else {
        return;
    };
    let result = |number: u64| {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), "Result".into());
        d.insert("Number".into(), number.into());
        let mut bytes = Vec::new();
        plist::to_writer_xml(&mut bytes, &d).unwrap();
        encode_frame(header.tag, &bytes)
    };
    let answer = match request.get("MessageType").and_then(Value::as_string) {
        Some("ListDevices") => encode_frame(header.tag, list),
        Some("Connect") => match on_connect {
            OnConnect::Stall => result(0),
            OnConnect::Refuse => result(3),
        },
        Some("ReadPairRecord") => result(2),
        _ => result(1),
    };
    if stream.write_all(&answer).is_err() {
        return;
    }
    // A stalled phone: hold the connection, say nothing, until the client goes away.
    let mut sink = [0u8; 256];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

#[test]
fn devices_with_twenty_stalled_phones_ends_within_one_deadline() {
    let daemon = fake_usbmuxd(20, OnConnect::Stall);
    let out = bounded(
        Ibackup::new(["devices", "--json"]).env("USBMUXD_SOCKET_ADDRESS", &daemon.socket),
        Duration::from_secs(40),
    )
    .run();
    // One overall deadline of 8 s, not 20 phones times 5 s.
    out.assert_exit(0, Duration::from_secs(15), "devices, 20 stalled phones");
    let v = out.json();
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 20, "{v}");
    for d in devices {
        let error = d["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("did not answer") || error.contains("timed out"),
            "{d}"
        );
        assert!(d["name"].is_null(), "{d}");
    }
    assert_eq!(v["not_shown"], 0);
    let text = bounded(
        Ibackup::new(["devices"]).env("USBMUXD_SOCKET_ADDRESS", &daemon.socket),
        Duration::from_secs(40),
    )
    .run();
    text.assert_exit(
        0,
        Duration::from_secs(15),
        "devices (text), 20 stalled phones",
    );
    assert!(
        text.stdout.contains("00000013-FAKE") && text.stdout.contains("could not be read"),
        "{}",
        text.stdout
    );
}

#[test]
fn devices_caps_a_list_of_seven_thousand_phones_and_says_so() {
    let daemon = fake_usbmuxd(7_000, OnConnect::Refuse);
    let out = bounded(
        Ibackup::new(["devices", "--json"]).env("USBMUXD_SOCKET_ADDRESS", &daemon.socket),
        Duration::from_secs(40),
    )
    .run();
    out.assert_exit(0, Duration::from_secs(15), "devices, 7,000 phones");
    let v = out.json();
    assert_eq!(v["devices"].as_array().unwrap().len(), 64, "{}", out.stderr);
    assert_eq!(v["not_shown"], 7_000 - 64);
    let text = bounded(
        Ibackup::new(["devices"]).env("USBMUXD_SOCKET_ADDRESS", &daemon.socket),
        Duration::from_secs(40),
    )
    .run();
    text.assert_exit(0, Duration::from_secs(15), "devices (text), 7,000 phones");
    assert_eq!(
        text.stdout.matches("-FAKE").count(),
        64 * 2,
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("6,936 more"), "{}", text.stdout);
    // `device` with that many phones names a few, not 7,000.
    let out = bounded(
        Ibackup::new(["device", "--json"]).env("USBMUXD_SOCKET_ADDRESS", &daemon.socket),
        Duration::from_secs(40),
    )
    .run();
    out.assert_exit(2, Duration::from_secs(15), "device, 7,000 phones");
    let message = out.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.len() < 2_000, "{} bytes", message.len());
    assert!(message.contains("6,990 more"), "{message}");
}
