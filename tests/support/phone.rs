//! The simulated iPhone every end-to-end suite uses: [`SimPhone`] runs the `ibackup_sim` server
//! on threads of the test process, on a Unix socket (or loopback TCP port) in a fresh temporary
//! folder, as a usbmuxd daemon or as a phone on emulated USB, with a private pair-record folder.
//! It knows the environment that points `ibackup` at it, and stops when dropped. Also here: the
//! `device --json` contract both transports must meet.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use ibackup_sim::usb::{UsbFault, UsbOptions};
use ibackup_sim::{Phone, Profile, Server};
use tempfile::TempDir;

use super::run::{Ibackup, Run};

/// The simulator's default UDID.
pub const SIM_UDID: &str = "00008110-001A2B3C4D5E801E";

/// What phone to start: `SimPhone::builder().profile("low-storage").start()`.
pub struct SimPhoneBuilder {
    profile: Profile,
    usb: Option<UsbOptions>,
    tcp: bool,
}

impl SimPhoneBuilder {
    /// A shipped profile, sim/profiles/NAME.json.
    pub fn profile(mut self, name: &str) -> SimPhoneBuilder {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sim/profiles")
            .join(format!("{name}.json"));
        self.profile = Profile::load(&path).unwrap_or_else(|e| panic!("profile {name}: {e}"));
        self
    }

    /// A profile written by the test (docs/device.md has the format).
    pub fn profile_json(mut self, json: &str) -> SimPhoneBuilder {
        self.profile =
            Profile::from_json(json, "the test's profile").unwrap_or_else(|e| panic!("{e}"));
        self
    }

    /// Listen on a free loopback TCP port instead of a Unix socket (usbmuxd only).
    pub fn tcp(mut self) -> SimPhoneBuilder {
        self.tcp = true;
        self
    }

    /// A phone on emulated USB (no daemon), pre-paired with its record in the pair-record
    /// folder, speaking mux protocol 2.
    pub fn usb(mut self) -> SimPhoneBuilder {
        self.usb.get_or_insert_with(UsbOptions::default);
        self
    }

    /// On emulated USB, answering with mux protocol `version` (1 like an old phone).
    pub fn usb_protocol(mut self, version: u32) -> SimPhoneBuilder {
        self.usb.get_or_insert_with(UsbOptions::default).protocol = version;
        self
    }

    /// On emulated USB, misbehaving with `fault`.
    pub fn usb_fault(mut self, fault: UsbFault) -> SimPhoneBuilder {
        self.usb.get_or_insert_with(UsbOptions::default).fault = Some(fault);
        self
    }

    pub fn start(self) -> SimPhone {
        let dir = TempDir::new().unwrap();
        let lockdown = dir.path().join("lockdown");
        std::fs::create_dir_all(&lockdown).unwrap();
        let usb = self.usb.is_some();
        let server = match self.usb {
            #[cfg(unix)]
            Some(options) => {
                let socket = dir.path().join("usb.sock");
                Server::start_usb(
                    socket.to_str().unwrap(),
                    self.profile,
                    options,
                    Some(&lockdown),
                )
            }
            #[cfg(not(unix))]
            Some(_) => panic!("emulated USB needs Unix sockets"),
            None if self.tcp => Server::start("127.0.0.1:0", self.profile),
            None => Server::start(
                dir.path().join("usbmuxd.sock").to_str().unwrap(),
                self.profile,
            ),
        }
        .expect("start the simulated phone");
        SimPhone {
            usb,
            server,
            lockdown,
            dir,
        }
    }
}

/// A running simulated phone. Dropping it stops the server (the folder goes with it).
pub struct SimPhone {
    // Declared before `dir` so the server stops before its socket's folder is removed.
    server: Server,
    usb: bool,
    lockdown: PathBuf,
    dir: TempDir,
}

impl SimPhone {
    /// The default phone (paired, iOS 17.5.1) unless the builder says otherwise.
    pub fn builder() -> SimPhoneBuilder {
        SimPhoneBuilder {
            profile: Profile::default(),
            usb: None,
            tcp: false,
        }
    }

    /// A usbmuxd with the shipped profile `name`: the common case.
    pub fn with_profile(name: &str) -> SimPhone {
        SimPhone::builder().profile(name).start()
    }

    /// The socket path or `127.0.0.1:PORT`: the daemon's `USBMUXD_SOCKET_ADDRESS`, or the
    /// emulated USB phone's `IBACKUP_USB_EMULATOR`.
    pub fn address(&self) -> &str {
        self.server.address()
    }

    /// The simulated phone itself: what computers posted to it, whether its sync lock is held.
    pub fn phone(&self) -> Arc<Phone> {
        self.server.phone()
    }

    /// The private pair-record folder (`IBACKUP_LOCKDOWN_DIR`).
    pub fn lockdown_dir(&self) -> &Path {
        &self.lockdown
    }

    /// The phone's temporary folder (socket, pair records), a scratch place for the test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The variables that point `ibackup` at this phone and nothing else: its socket (for a
    /// USB phone, no daemon at all), its pair-record folder, a one-second wait for a phone.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("IBACKUP_LOCKDOWN_DIR", self.lockdown.display().to_string()),
            ("IBACKUP_DEVICE_WAIT", "1".to_string()),
        ];
        if self.usb {
            let nothing = self.dir.path().join("no-daemon.sock");
            env.push(("USBMUXD_SOCKET_ADDRESS", nothing.display().to_string()));
            env.push(("IBACKUP_USB_EMULATOR", self.address().to_string()));
        } else {
            env.push(("USBMUXD_SOCKET_ADDRESS", self.address().to_string()));
        }
        env
    }

    /// `ibackup ARGS` against this phone, ready for more variables before `.run()`.
    pub fn command(&self, args: &[&str]) -> Ibackup {
        self.env()
            .into_iter()
            .fold(Ibackup::new(args), |run, (key, value)| run.env(key, value))
    }

    /// `ibackup ARGS` against this phone.
    pub fn ibackup(&self, args: &[&str]) -> Run {
        self.command(args).run()
    }

    /// `ibackup ARGS` against this phone with `env` on top.
    pub fn ibackup_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.command(args).envs(env).run()
    }
}

/// `device --json` for the default simulated phone reached over `connection` ("usbmuxd" or
/// "usb"), its pair record from `pair_record`: every field of the contract, value by value.
pub fn assert_device_contract(v: &serde_json::Value, connection: &str, pair_record: &str) {
    assert_eq!(v["schema"], "ibackup.device/1");
    assert_eq!(v["udid"], SIM_UDID);
    assert_eq!(v["name"], "Simulated iPhone");
    assert_eq!(v["product_type"], "iPhone14,5");
    assert_eq!(v["ios_version"], "17.5.1");
    assert_eq!(v["build_version"], "21F90");
    assert_eq!(v["connection"], connection);
    assert_eq!(v["connection_type"], "USB");
    assert_eq!(v["paired"], true);
    assert_eq!(v["pair_record"], pair_record);
    assert_eq!(v["storage"]["total_bytes"], 128_000_000_000u64);
    assert_eq!(v["storage"]["available_bytes"], 54_300_000_000u64);
    assert_eq!(v["battery"]["percent"], 80);
    assert_eq!(v["battery"]["charging"], true);
    assert_eq!(v["battery"]["external_power"], true);
    assert_eq!(v["backup"]["will_encrypt"], false);
    assert_eq!(v["backup"]["requires_encryption"], false);
    assert_hours_ago(&v["backup"]["last_computer_backup"], 50);
    assert_eq!(v["icloud"]["backup_enabled"], true);
    assert_hours_ago(&v["icloud"]["last_backup"], 3);
    assert_eq!(v["icloud"]["last_backup_time_zone"], "Europe/Paris");
    assert_eq!(v["find_my"], false);
    assert_eq!(v["findings"], serde_json::json!([]));
}

/// `date` is an RFC 3339 UTC date (as ibackup prints them) about `hours` before now (the
/// simulator serves its backup dates relative to the moment they are asked for).
pub fn assert_hours_ago(date: &serde_json::Value, hours: i64) {
    let text = date
        .as_str()
        .unwrap_or_else(|| panic!("not a date: {date}"));
    assert!(text.ends_with('Z') && text.len() == 20, "{text}");
    let at = chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let age = chrono::Utc::now().signed_duration_since(at);
    let expected = chrono::Duration::hours(hours);
    assert!(
        (age - expected).num_seconds().abs() < 600,
        "{text} is {age} ago, not {hours} hours"
    );
}
