//! Talking to a phone; no terminal, no backup. Three layers, each over a `Read + Write` stream
//! chosen once at the top, importing only from the layers below it:
//!
//! - [`transport`]: how bytes reach a phone, through the usbmuxd daemon or by direct USB,
//!   behind the [`transport::Transport`] trait.
//! - [`lockdown`]: lockdownd and its TLS session pinned to the pair record; the phone's error
//!   strings as [`lockdown::LockdownError`]; the pair record as plain data (below lockdown) and
//!   the "Trust This Computer" flow (above it).
//! - [`services`]: what lockdown starts on other ports, beginning with the StartService
//!   handshake they all share.
//!
//! [`info`] builds the `DeviceState` snapshot from lockdown values; [`backup_info`] gathers and
//! builds the Info.plist a computer writes into a new backup. This file is the top: the
//! entry points the commands call (the choice of transport, [`TransportChoice`], then picking a
//! phone and reading its state) and the [`DeviceError`] every layer returns.

pub mod backup_info;
pub mod info;
pub mod lockdown;
pub mod services;
pub mod transport;

use std::io::{self, Read};
use std::time::{Duration, Instant};

pub use info::DeviceState;
use lockdown::{pairing, LockdownError};
use transport::usb;
use transport::usbmuxd::UsbmuxdTransport;
use transport::{AttachedDevice, Transport};

/// What went wrong talking to a phone, with what was being done and where.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("USBMUXD_SOCKET_ADDRESS={value:?} is not a daemon address: {reason}")]
    BadAddress { value: String, reason: String },
    #[error("could not reach the usbmuxd daemon at {address}: {source}")]
    NoDaemon { address: String, source: io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("timed out after {secs} seconds waiting for {what}")]
    Timeout { what: String, secs: u64 },
    #[error("the connection closed while waiting for {what}")]
    Closed { what: String, at_start: bool },
    #[error("{what} announced {length} bytes, more than the {max} allowed")]
    FrameTooLarge { what: String, length: u64, max: u64 },
    #[error("{what} is not a valid property list: {detail}")]
    BadPlist { what: String, detail: String },
    #[error("unexpected {what}: {detail}")]
    BadReply { what: String, detail: String },
    #[error("usbmuxd refused {request} (result {number})")]
    Usbmux { request: &'static str, number: u64 },
    #[error("the phone refused {request}: {error}")]
    Lockdown {
        request: String,
        error: LockdownError,
    },
    #[error("no iPhone is connected")]
    NoDevice,
    #[error("no connected iPhone has UDID {udid} (connected: {connected})")]
    DeviceNotFound { udid: String, connected: String },
    #[error("several iPhones are connected ({udids})")]
    SeveralDevices { udids: String },
    #[error("the pair record from {origin} is unusable: {detail}")]
    PairRecord { origin: String, detail: String },
    #[error("this computer is not paired with the iPhone {udid}")]
    NotPaired { udid: String },
    #[error("the secure session with the phone failed: {detail}")]
    Tls { detail: String },
    #[error("the phone presented a certificate that is not the one in its pair record")]
    CertificateMismatch,
    #[error("the phone accepted a paired session but would not encrypt it with TLS (EnableSessionSSL {answered}); ibackup does not talk to a paired phone in plain text")]
    NoTls { answered: &'static str },
    #[error("could not create pairing keys: {detail}")]
    KeyGeneration { detail: String },
    #[error("the iPhone's user declined \"Trust This Computer\"")]
    PairingDenied,
    #[error("the iPhone did not accept pairing within {secs} seconds")]
    PairingTimeout {
        secs: u64,
        waiting_for: pairing::PairWait,
    },
    #[error("direct USB cannot start: {cause}")]
    UsbUnavailable { cause: String, fix: String },
    #[error("the iPhone {udid} is held by another program, most likely the usbmuxd daemon, so ibackup cannot claim its USB interface")]
    UsbBusy { udid: String },
    #[error("the iPhone refused a connection to port {port}: {reason}")]
    PortRefused { port: u16, reason: String },
    #[error(
        "no usbmuxd daemon answers at {address} ({daemon}), and direct USB cannot start: {usb}"
    )]
    NoTransport {
        address: String,
        daemon: io::Error,
        usb: String,
        usb_fix: String,
    },
    #[error(
        "another program is syncing with the iPhone: its sync lock stayed taken for {secs} seconds"
    )]
    SyncBusy { secs: u64 },
    #[error("AFC {operation}{} failed: {status}", of_path(.path))]
    Afc {
        operation: &'static str,
        path: String,
        status: services::afc::AfcStatus,
    },
    #[error("{service} refused {request}: {error}")]
    ServiceRefused {
        service: &'static str,
        request: String,
        error: String,
    },
}

impl DeviceError {
    fn io(what: impl Into<String>, source: io::Error) -> Self {
        DeviceError::from_io(what, source)
    }

    /// Maps an I/O error: timeouts and closed connections get their own variants.
    fn from_io(what: impl Into<String>, source: io::Error) -> Self {
        let what = what.into();
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => DeviceError::Timeout {
                what,
                secs: transport::IO_TIMEOUT.as_secs(),
            },
            // Direct USB's errors carry the phone's reason (an RST's text, an unplugged
            // phone): keep it rather than a bare "closed".
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                if source
                    .get_ref()
                    .is_some_and(|e| e.is::<usb::mux::MuxError>()) =>
            {
                DeviceError::Io { what, source }
            }
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => DeviceError::Closed {
                what,
                at_start: false,
            },
            _ => DeviceError::Io { what, source },
        }
    }

    /// A stable identifier for scripts (`--json` error objects).
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::BadAddress { .. } => "device.bad_address",
            DeviceError::NoDaemon { .. } => "device.no_daemon",
            DeviceError::NoDevice => "device.none",
            DeviceError::DeviceNotFound { .. } => "device.not_found",
            DeviceError::SeveralDevices { .. } => "device.several",
            DeviceError::NotPaired { .. } => "device.not_paired",
            DeviceError::CertificateMismatch => "device.certificate_mismatch",
            DeviceError::NoTls { .. } => "device.no_tls",
            DeviceError::KeyGeneration { .. } => "device.pairing_keys",
            DeviceError::PairingDenied => "device.pairing_denied",
            DeviceError::PairingTimeout { .. } => "device.pairing_timeout",
            DeviceError::Timeout { .. } => "device.timeout",
            DeviceError::PairRecord { .. } => "device.bad_pair_record",
            DeviceError::UsbUnavailable { .. } => "device.usb_unavailable",
            DeviceError::UsbBusy { .. } => "device.usb_busy",
            DeviceError::PortRefused { .. } => "device.port_refused",
            DeviceError::NoTransport { .. } => "device.no_daemon",
            DeviceError::SyncBusy { .. } => "device.sync_busy",
            DeviceError::Afc { .. } => "device.afc",
            DeviceError::ServiceRefused { .. } => "device.service_refused",
            _ => "device.protocol",
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            DeviceError::BadAddress { .. } => {
                "Use UNIX:/path, a socket path, host:port or [v6]:port, or unset USBMUXD_SOCKET_ADDRESS.".into()
            }
            DeviceError::NoDaemon { .. } => "Start usbmuxd (Linux: install the usbmuxd package; Windows: install Apple Devices or iTunes; macOS: it is built in), or point USBMUXD_SOCKET_ADDRESS at it.".into(),
            DeviceError::NoDevice => "Plug the iPhone in with a cable, unlock it, then run this again.".into(),
            DeviceError::DeviceNotFound { .. } => "Check the UDID with `ibackup devices`.".into(),
            DeviceError::SeveralDevices { .. } => "Choose one with --device UDID (see `ibackup devices`).".into(),
            DeviceError::NotPaired { .. } => "Run `ibackup pair`, unlock the iPhone and tap Trust.".into(),
            DeviceError::CertificateMismatch => "The phone is not the one this pair record was made for, or the record is stale. Run `ibackup pair` again to make a new record.".into(),
            DeviceError::NoTls { .. } => "An iPhone always encrypts a paired session, so something between this computer and the phone is not what it claims to be: the usbmuxd daemon answering at USBMUXD_SOCKET_ADDRESS, a proxy, or the device on the cable. Unplug it, check which daemon runs, and use a cable straight to the phone.".into(),
            DeviceError::PairRecord { .. } => {
                "Run `ibackup pair` to make a new pair record, then try again.".into()
            }
            DeviceError::PairingDenied => "Run `ibackup pair` again and tap Trust on the iPhone. If the dialog no longer appears: Settings > General > Transfer or Reset iPhone > Reset > Reset Location & Privacy.".into(),
            DeviceError::PairingTimeout { waiting_for, .. } => match waiting_for {
                pairing::PairWait::Unlock => "Unlock the iPhone, then run `ibackup pair` again.".into(),
                pairing::PairWait::TapTrust => "Tap Trust on the iPhone and enter its passcode, then run `ibackup pair` again.".into(),
            },
            DeviceError::Lockdown {
                error: LockdownError::InvalidHostID,
                ..
            } => {
                "The iPhone no longer knows this computer: run `ibackup pair`.".into()
            }
            DeviceError::UsbUnavailable { fix, .. } => fix.clone(),
            DeviceError::UsbBusy { .. } => "Use the daemon instead (--transport usbmuxd, or auto), or stop usbmuxd (`sudo systemctl stop usbmuxd`) and run this again.".into(),
            DeviceError::NoTransport { usb_fix, .. } => format!("Start usbmuxd (Linux: install the usbmuxd package; Windows: install Apple Devices or iTunes; macOS: it is built in). For direct USB instead: {usb_fix}"),
            DeviceError::Lockdown {
                error: LockdownError::PasswordProtected,
                ..
            } => {
                "Unlock the iPhone and run this again.".into()
            }
            DeviceError::SyncBusy { .. } => "Another program is syncing with the iPhone: quit Finder, iTunes, Apple Devices or any other backup tool, then try again.".into(),
            _ => "Unplug and replug the iPhone, unlock it and try again. If it keeps failing, restart usbmuxd (or the Apple Mobile Device Service).".into(),
        }
    }
}

/// Reads exactly `buf.len()` bytes, failing at `deadline` even if the peer drips bytes slowly.
/// A close before the first byte is `Closed { at_start: true }`.
pub(crate) fn read_exact_within<R: Read + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
    what: &str,
    deadline: Instant,
) -> Result<(), DeviceError> {
    let mut filled = 0;
    while filled < buf.len() {
        if Instant::now() > deadline {
            return Err(DeviceError::Timeout {
                what: what.to_string(),
                secs: transport::IO_TIMEOUT.as_secs(),
            });
        }
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(DeviceError::Closed {
                    what: what.to_string(),
                    at_start: filled == 0,
                })
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DeviceError::from_io(what, e)),
        }
    }
    Ok(())
}

/// " of PATH" for an AFC error about a path; nothing for one about a handle.
fn of_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" of {path}")
    }
}

/// How many UDIDs a message about several phones names before "and N more".
const NAMED_IN_MESSAGES: usize = 10;

/// The instant `timeout` from now, or (for a timeout too long for the clock) a century from
/// now: never a panic, whatever a caller passes.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Picks the phone to talk to: the one with `udid`, or the only one attached. With none
/// attached, waits up to `wait` for one (usbmuxd Listen) before giving up.
pub fn select_device(
    transport: &dyn Transport,
    udid: Option<&str>,
    wait: Duration,
) -> Result<AttachedDevice, DeviceError> {
    let mut devices = transport.devices()?;
    if devices.is_empty() && !wait.is_zero() {
        if let Some(device) = transport.wait_for_device(wait)? {
            devices.push(device);
        }
    }
    choose(devices, udid)
}

fn choose(
    mut devices: Vec<AttachedDevice>,
    udid: Option<&str>,
) -> Result<AttachedDevice, DeviceError> {
    // The same phone on USB and Wi-Fi appears twice: prefer the cable.
    devices.sort_by_key(|d| d.connection_type != "USB");
    let mut seen = std::collections::HashSet::new();
    devices.retain(|d| seen.insert(d.udid.clone()));
    let list = |devices: &[AttachedDevice]| {
        let mut named = devices
            .iter()
            .take(NAMED_IN_MESSAGES)
            .map(|d| d.udid.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // A daemon may list thousands: a message names a few.
        if devices.len() > NAMED_IN_MESSAGES {
            named.push_str(&format!(
                ", and {} more",
                crate::units::human_count((devices.len() - NAMED_IN_MESSAGES) as u64)
            ));
        }
        named
    };
    match udid {
        Some(udid) => match devices
            .iter()
            .position(|d| d.udid.eq_ignore_ascii_case(udid))
        {
            Some(i) => Ok(devices.swap_remove(i)),
            None => Err(DeviceError::DeviceNotFound {
                udid: udid.to_string(),
                connected: if devices.is_empty() {
                    "none".to_string()
                } else {
                    list(&devices)
                },
            }),
        },
        None => match devices.len() {
            0 => Err(DeviceError::NoDevice),
            1 => Ok(devices.swap_remove(0)),
            _ => Err(DeviceError::SeveralDevices {
                udids: list(&devices),
            }),
        },
    }
}

/// How to reach phones (`--transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportChoice {
    /// The usbmuxd daemon when one answers, otherwise direct USB.
    #[default]
    Auto,
    /// Only the usbmuxd daemon.
    Usbmuxd,
    /// Only direct USB (libusb, or the emulated phone of `IBACKUP_USB_EMULATOR`).
    Usb,
}

/// Opens the chosen transport. `Auto` asks the daemon first (one connection, closed at once);
/// when none answers it starts direct USB, and when that cannot start either, the error names
/// both causes.
pub fn open_transport(choice: TransportChoice) -> Result<Box<dyn Transport>, DeviceError> {
    match choice {
        TransportChoice::Usbmuxd => Ok(Box::new(UsbmuxdTransport::from_env()?)),
        TransportChoice::Usb => Ok(Box::new(usb::UsbTransport::open()?)),
        TransportChoice::Auto => {
            let daemon = UsbmuxdTransport::from_env()?;
            match transport::connect(&daemon.address) {
                Ok(_) => Ok(Box::new(daemon)),
                Err(DeviceError::NoDaemon { address, source }) => match usb::UsbTransport::open() {
                    Ok(direct) => Ok(Box::new(direct)),
                    Err(DeviceError::UsbUnavailable { cause, fix }) => {
                        Err(DeviceError::NoTransport {
                            address,
                            daemon: source,
                            usb: cause,
                            usb_fix: fix,
                        })
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
    }
}

/// The connected phone's state, for `ibackup inspect` with no backup named, over the default
/// transport choice (`auto`). See [`connected_device_via`].
pub fn connected_device(udid: Option<&str>) -> Result<Option<DeviceState>, DeviceError> {
    connected_device_via(TransportChoice::Auto, udid)
}

/// The connected phone's state over `choice`.
///
/// Does not wait for a phone to be plugged in. Returns `Ok(None)` when no transport reaches a
/// phone (no daemon and no direct USB under `auto`, no daemon under `usbmuxd`) or there is no
/// phone, so the caller can fall back to the default backup folder; but when `udid` names a phone
/// that is not there, that is `Err(DeviceNotFound)`: the person asked for it.
/// Returns `Ok(Some(state))` for a phone, paired or not: an unpaired phone has `paired == false`
/// and null session-only fields (storage, battery, backup, find_my). Returns `Err` when a phone
/// is there but talking to it failed (timeout, protocol error, wrong certificate, several
/// phones and no `udid`), or when `--transport usb` was asked for and USB cannot start: worth
/// reporting, not worth hiding.
pub fn connected_device_via(
    choice: TransportChoice,
    udid: Option<&str>,
) -> Result<Option<DeviceState>, DeviceError> {
    // A phone named with --device that is not there is worth saying; no phone at all is not.
    let not_there = |udid: &str| DeviceError::DeviceNotFound {
        udid: udid.to_string(),
        connected: "none".to_string(),
    };
    let transport = match open_transport(choice) {
        Ok(transport) => transport,
        Err(DeviceError::NoDaemon { .. } | DeviceError::NoTransport { .. }) => {
            return udid.map_or(Ok(None), |u| Err(not_there(u)))
        }
        Err(e) => return Err(e),
    };
    let devices = match transport.devices() {
        Ok(devices) => devices,
        Err(DeviceError::NoDaemon { .. }) => return udid.map_or(Ok(None), |u| Err(not_there(u))),
        Err(e) => return Err(e),
    };
    let device = match choose(devices, udid) {
        Ok(device) => device,
        Err(DeviceError::NoDevice) => return Ok(None),
        Err(e) => return Err(e),
    };
    info::read_state(transport.as_ref(), &device).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(udid: &str, kind: &str) -> AttachedDevice {
        AttachedDevice {
            udid: udid.to_string(),
            device_id: 1,
            connection_type: kind.to_string(),
        }
    }

    #[test]
    fn choosing_a_device() {
        assert!(matches!(choose(vec![], None), Err(DeviceError::NoDevice)));
        assert_eq!(choose(vec![dev("a", "USB")], None).unwrap().udid, "a");
        assert!(matches!(
            choose(vec![dev("a", "USB"), dev("b", "USB")], None),
            Err(DeviceError::SeveralDevices { .. })
        ));
        assert_eq!(
            choose(vec![dev("a", "USB"), dev("b", "USB")], Some("B"))
                .unwrap()
                .udid,
            "b"
        );
        assert!(matches!(
            choose(vec![dev("a", "USB")], Some("c")),
            Err(DeviceError::DeviceNotFound { .. })
        ));
        let both = choose(vec![dev("a", "Network"), dev("a", "USB")], None).unwrap();
        assert_eq!(both.connection_type, "USB");
    }

    #[test]
    fn messages_about_many_phones_name_a_few() {
        let many: Vec<_> = (0..7_000).map(|i| dev(&format!("{i:05}"), "USB")).collect();
        let err = choose(many.clone(), None).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("00009, and 6,990 more"), "{message}");
        assert!(!message.contains("00010"), "{message}");
        let err = choose(many, Some("nope")).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
    }

    #[test]
    fn deadlines_never_overflow() {
        assert!(deadline_after(Duration::MAX) > Instant::now());
        assert!(deadline_after(Duration::from_secs(u64::MAX / 2)) > Instant::now());
        let soon = deadline_after(Duration::from_secs(1));
        assert!(soon <= Instant::now() + Duration::from_secs(1));
    }

    #[test]
    fn direct_usb_errors_say_what_to_do() {
        let busy = DeviceError::UsbBusy { udid: "u1".into() };
        assert_eq!(busy.code(), "device.usb_busy");
        assert!(busy.to_string().contains("usbmuxd daemon"), "{busy}");
        assert!(busy.hint().contains("--transport usbmuxd"));
        let unavailable = DeviceError::UsbUnavailable {
            cause: "no permission".into(),
            fix: usb::linux_fix(),
        };
        assert_eq!(unavailable.code(), "device.usb_unavailable");
        assert!(unavailable.hint().contains(usb::UDEV_RULE));
        assert!(unavailable.hint().contains("plugdev"));
        let refused = DeviceError::PortRefused {
            port: 1,
            reason: "why".into(),
        };
        assert_eq!(refused.code(), "device.port_refused");
    }

    #[test]
    fn drip_fed_reads_hit_the_deadline() {
        struct Drip;
        impl Read for Drip {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                buf[0] = 0;
                Ok(1)
            }
        }
        let mut buf = [0u8; 1000];
        let deadline = Instant::now() + Duration::from_millis(100);
        let err = read_exact_within(&mut Drip, &mut buf, "t", deadline).unwrap_err();
        assert!(matches!(err, DeviceError::Timeout { .. }));
    }
}
