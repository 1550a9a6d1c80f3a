//! The simulated phone's services against clients nobody here wrote: Debian's
//! libimobiledevice-utils. `idevicenotificationproxy` posts and observes notifications;
//! `idevicebackup2 backup --full` goes through everything a backup does before and around
//! mobilebackup2 (notification_proxy, the AFC sync lock, the lockdown values,
//! installation_proxy and springboardservices for Info.plist, mobilebackup2 inside TLS with the
//! escrow bag). The phone runs in this process; the tools reach it through
//! `USBMUXD_SOCKET_ADDRESS`. When the tools are not installed each test says so loudly and
//! passes (CI installs them: scripts/install-test-deps.sh).
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{SimPhone, SIM_UDID as UDID};

const WILL_START: &str = "com.apple.itunes-mobdev.syncWillStart";
const LOCK_REQUEST: &str = "com.apple.itunes-mobdev.syncLockRequest";
const DID_START: &str = "com.apple.itunes-mobdev.syncDidStart";
const DID_FINISH: &str = "com.apple.itunes-mobdev.syncDidFinish";

fn tools_present(tools: &[&str]) -> bool {
    let present = tools
        .iter()
        .all(|tool| Command::new(tool).arg("--help").output().is_ok());
    if !present {
        eprintln!(
            "\n*** SKIPPED: {} not installed; the simulated phone's services were NOT checked \
             against libimobiledevice. Install: apt-get install libimobiledevice-utils ***\n",
            tools.join(", ")
        );
    }
    present
}

/// `tool ARGS` pointed at `phone` (libusbmuxd's `UNIX:` form), ready to run.
fn tool(phone: &SimPhone, tool: &str, args: &[&str]) -> Command {
    let mut command = Command::new(tool);
    command
        .args(args)
        .env(
            "USBMUXD_SOCKET_ADDRESS",
            format!("UNIX:{}", phone.address()),
        )
        // libimobiledevice may keep its own configuration under HOME.
        .env("HOME", phone.dir());
    command
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits up to `limit` for `child`, killing it (by its handle) when it runs over.
fn wait_within(mut child: Child, limit: Duration) -> Output {
    let until = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Whether `wanted` occur in `log` in this order (other names may come between).
fn in_order(log: &[String], wanted: &[&str]) -> bool {
    let mut rest = log.iter();
    wanted.iter().all(|w| rest.any(|name| name == w))
}

#[test]
fn idevicenotificationproxy_posts_reach_the_phone() {
    if !tools_present(&["idevicenotificationproxy"]) {
        return;
    }
    let phone = SimPhone::with_profile("default");
    let out = tool(
        &phone,
        "idevicenotificationproxy",
        &["post", WILL_START, DID_FINISH],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The tool does not wait for ProxyDeath once it closes: the phone may log a moment later.
    let until = Instant::now() + Duration::from_secs(5);
    while phone.phone().posted_by_computer().len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(phone.phone().posted_by_computer(), [WILL_START, DID_FINISH]);
}

#[test]
fn idevicenotificationproxy_observes_what_the_phone_posts() {
    if !tools_present(&["idevicenotificationproxy", "stdbuf"]) {
        return;
    }
    let phone = SimPhone::with_profile("default");
    let cancel = "com.apple.itunes-client.syncCancelRequest";
    // Line-buffered, so that each line is read as the tool prints it.
    let mut child = tool(
        &phone,
        "stdbuf",
        &["-oL", "idevicenotificationproxy", "observe", cancel],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The phone posts until the tool prints the relayed name (it may start observing a little
    // after it connects); something it does not observe is never printed.
    let until = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == &format!("> {cancel}")) {
        assert!(
            Instant::now() < until,
            "never relayed; the tool printed {seen:?}"
        );
        phone
            .phone()
            .post_notification("com.apple.itunes-client.syncSuspendRequest");
        phone.phone().post_notification(cancel);
        if let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    assert!(
        !seen.iter().any(|l| l.contains("syncSuspendRequest")),
        "relayed a name not observed: {seen:?}"
    );
    // SIGTERM (its own clean exit) by its process id.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = wait_within(child, Duration::from_secs(10));
    assert!(out.status.success(), "{}", text(&out));
}

/// `idevicebackup2 backup --full DIR` against `phone`; its output.
fn backup(phone: &SimPhone, dir: &Path) -> Output {
    let child = tool(
        phone,
        "idevicebackup2",
        &["backup", "--full", dir.to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_within(child, Duration::from_secs(240))
}

/// What a backup by idevicebackup2 must have done with the phone's services: the sync lock
/// taken with the notifications around it and let go, and Info.plist written from lockdown's
/// values and installation_proxy's apps. Before the phone's mobilebackup2 answers the
/// DeviceLink handshake, idevicebackup2 (1.3.0 starts mobilebackup2 before it takes the lock)
/// stops there: then only that much is checked, and the test says so loudly.
fn check_backup(profile_json: &str) {
    if !tools_present(&["idevicebackup2"]) {
        return;
    }
    let phone = SimPhone::builder().profile_json(profile_json).start();
    let dir = phone.dir().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let out = backup(&phone, &dir);
    let printed = text(&out);
    let posted = phone.phone().posted_by_computer();
    assert!(
        printed.contains("Started \"com.apple.mobilebackup2\" service on port"),
        "mobilebackup2 did not start (escrow bag, TLS?): {printed}"
    );
    if printed.contains("Could not perform backup protocol version exchange") {
        assert!(
            mobilebackup2_is_a_placeholder(),
            "the phone's mobilebackup2 is served but idevicebackup2 could not complete its \
             handshake: {printed}"
        );
        eprintln!(
            "\n*** PARTLY CHECKED: the simulated phone's mobilebackup2 does not answer the \
             DeviceLink handshake yet, so idevicebackup2 stopped before the sync lock and \
             Info.plist. Checked: notification_proxy, AFC and mobilebackup2 (TLS, escrow bag) \
             started. ***\n"
        );
        assert!(posted.is_empty(), "{posted:?}");
        assert!(!phone.phone().sync_lock_held());
        return;
    }

    // The sync lock, with the notifications around it, and let go at the end.
    assert!(
        in_order(&posted, &[WILL_START, LOCK_REQUEST, DID_START, DID_FINISH]),
        "posted {posted:?}\n{printed}"
    );
    assert!(!phone.phone().sync_lock_held(), "the lock is still held");

    // Info.plist, from the phone's values.
    let info = plist::Value::from_file(dir.join(UDID).join("Info.plist"))
        .unwrap_or_else(|e| panic!("Info.plist: {e}\n{printed}"));
    let info = info.as_dictionary().unwrap();
    let string = |key: &str| {
        info.get(key)
            .and_then(plist::Value::as_string)
            .unwrap_or_else(|| panic!("Info.plist has no string {key}: {info:?}"))
    };
    assert_eq!(string("Device Name"), "Simulated iPhone");
    assert_eq!(string("Display Name"), "Simulated iPhone");
    assert_eq!(string("Product Type"), "iPhone14,5");
    assert_eq!(string("Product Version"), "17.5.1");
    assert_eq!(string("Build Version"), "21F90");
    assert_eq!(string("Serial Number"), "F2LSIMULATED");
    assert_eq!(string("Target Identifier"), UDID);
    assert_eq!(string("Unique Identifier"), UDID.to_uppercase());
    assert_eq!(string("iTunes Version"), "12.5.1");
    let apps: Vec<&str> = info["Installed Applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(plist::Value::as_string)
        .collect();
    assert_eq!(
        apps,
        [
            "net.whatsapp.WhatsApp",
            "com.spotify.client",
            "com.example.notes"
        ],
        "installation_proxy's pages, all of them"
    );
    // No app has ApplicationSINF and iTunesMetadata: nothing under Applications, no icons.
    assert_eq!(
        info["Applications"].as_dictionary().map(|d| d.len()),
        Some(0)
    );
    assert!(info["iTunes Settings"].as_dictionary().is_some());
    // The AFC reads for iTunes Files found nothing, as the phone has none.
    assert_eq!(
        info["iTunes Files"].as_dictionary().map(|d| d.len()),
        Some(0)
    );
    assert!(info.get("iBooks Data 2").is_none());
    for (key, value) in [
        ("Phone Number", "+1 555 0100"),
        ("IMEI", "356789012345678"),
        ("ICCID", "8901410321111851072"),
    ] {
        if profile_json.contains(value) {
            assert_eq!(string(key), value);
        } else {
            assert!(info.get(key).is_none(), "{key} without a SIM");
        }
    }
}

/// Whether the simulator's mobilebackup2 is still the placeholder that serves nothing (it
/// says "not served yet" at once): only then may idevicebackup2 stop at the handshake.
fn mobilebackup2_is_a_placeholder() -> bool {
    /// A connection whose computer has gone: reads end at once, writes go nowhere.
    struct Gone;
    impl std::io::Read for Gone {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Ok(0)
        }
    }
    impl std::io::Write for Gone {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let phone = ibackup_sim::Phone::new(ibackup_sim::Profile::default()).unwrap();
        let said = ibackup_sim::mobilebackup2::serve(&phone, Box::new(Gone))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let _ = tx.send(said);
    });
    rx.recv_timeout(Duration::from_secs(30))
        .is_ok_and(|said| said.contains("not served yet"))
}

#[test]
fn idevicebackup2_takes_the_sync_lock_and_writes_info_plist() {
    check_backup("{}");
}

#[test]
fn idevicebackup2_waits_out_a_busy_sync_lock_and_reads_the_sim_values() {
    check_backup(
        r#"{"sync_lock_busy_for": 3, "phone_number": "+1 555 0100",
            "imei": "356789012345678", "iccid": "8901410321111851072"}"#,
    );
}
