//! How bytes reach a phone, chosen once at the top: the [`Transport`] trait every way of
//! reaching a phone implements, the owned stream the layers above read and write
//! ([`BoxStream`]), the phone as a transport lists it ([`AttachedDevice`]), the I/O timeout, and
//! the usbmuxd daemon's address (default per OS, or `USBMUXD_SOCKET_ADDRESS` in every form the
//! common clients accept) with the socket to it. The two ways in are [`usbmuxd`] (through the
//! daemon) and [`usb`] (direct USB, no daemon).
//!
//! Address parsing is a pure function; only [`connect`] does I/O. Not here: anything the phone
//! says once a stream is open (lockdown), or pair record files (lockdown::pair_record): a
//! transport only says whether its daemon keeps records.

pub mod usb;
pub mod usbmuxd;

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use super::DeviceError;

/// Environment variable naming the daemon address (libusbmuxd, pymobiledevice3 and idevice read
/// the same one).
pub const ADDRESS_VARIABLE: &str = "USBMUXD_SOCKET_ADDRESS";
/// The daemon's socket on Linux and macOS.
pub const DEFAULT_UNIX_PATH: &str = "/var/run/usbmuxd";
/// Apple Mobile Device Service listens here on Windows.
pub const DEFAULT_WINDOWS_TCP: &str = "127.0.0.1:27015";

/// How long one read or write may wait before the peer is declared stalled.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A read or write that gave up for now (the stream's own timeout, or a signal), not the end:
/// the caller may try again.
pub fn is_waiting(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A byte stream to a daemon or to a device port: what every protocol layer is written against.
pub trait DeviceStream: Read + Write + Send {}
impl<T: Read + Write + Send> DeviceStream for T {}

/// An owned stream of any transport.
pub type BoxStream = Box<dyn DeviceStream>;

/// One phone as a transport sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedDevice {
    /// The UDID (usbmuxd's SerialNumber property).
    pub udid: String,
    /// The transport's handle for the device (usbmuxd's DeviceID).
    pub device_id: u64,
    /// `USB` or `Network`, as usbmuxd names it.
    pub connection_type: String,
}

/// A way of reaching phones: list them and open a stream to a port on one of them. The daemon
/// also stores pair records; a transport without a daemon answers `None` / an error there and
/// the caller falls back to the OS folder. Shared between threads: `devices` asks several phones
/// at once.
pub trait Transport: Send + Sync {
    /// A short name for messages and JSON (`usbmuxd`).
    fn name(&self) -> &'static str;
    /// The phones attached right now.
    fn devices(&self) -> Result<Vec<AttachedDevice>, DeviceError>;
    /// Waits up to `timeout` for a phone to be attached; `None` when none came.
    fn wait_for_device(&self, timeout: Duration) -> Result<Option<AttachedDevice>, DeviceError>;
    /// A stream to `port` on the device (62078 for lockdownd).
    fn connect(&self, device: &AttachedDevice, port: u16) -> Result<BoxStream, DeviceError>;
    /// The pair record the transport keeps for `udid`, as plist bytes; `None` when it has none
    /// or keeps none (no daemon).
    fn read_pair_record(&self, udid: &str) -> Result<Option<Vec<u8>>, DeviceError>;
    /// Stores a pair record for `device`: `true` when the transport kept it, `false` when it
    /// keeps none (no daemon) and the caller must store it itself (lockdown::pair_record does).
    fn save_pair_record(&self, device: &AttachedDevice, record: &[u8])
        -> Result<bool, DeviceError>;
    /// The host's SystemBUID, when the transport keeps one (`None` without a daemon).
    fn system_buid(&self) -> Result<Option<String>, DeviceError>;
}

/// Where the usbmuxd daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAddress {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A TCP `host:port` (IPv6 hosts without brackets).
    Tcp { host: String, port: u16 },
}

impl std::fmt::Display for DaemonAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonAddress::Unix(path) => write!(f, "{}", path.display()),
            DaemonAddress::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            DaemonAddress::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// The daemon address for this run: `USBMUXD_SOCKET_ADDRESS` when set and not empty, otherwise
/// the platform default. Pure: the caller passes the variable's value and the platform.
pub fn daemon_address(variable: Option<&str>, windows: bool) -> Result<DaemonAddress, DeviceError> {
    match variable.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => parse_address(value),
        None if windows => parse_address(DEFAULT_WINDOWS_TCP),
        None => Ok(DaemonAddress::Unix(PathBuf::from(DEFAULT_UNIX_PATH))),
    }
}

/// Parses one address in any of the forms the usual clients accept:
/// `UNIX:/path` (libusbmuxd), a bare path (pymobiledevice3, idevice), `host:port`, and
/// `[v6]:port`. [libusbmuxd src/libusbmuxd.c connect_usbmuxd_socket]
pub fn parse_address(value: &str) -> Result<DaemonAddress, DeviceError> {
    let bad = |reason: &str| DeviceError::BadAddress {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if let Some(path) = value.strip_prefix("UNIX:") {
        if path.is_empty() {
            return Err(bad("`UNIX:` needs a socket path after it"));
        }
        return Ok(DaemonAddress::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = value.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or_else(|| bad("an IPv6 address needs the form [address]:port"))?;
        if host.is_empty() {
            return Err(bad("the IPv6 address between the brackets is empty"));
        }
        let port = port
            .parse()
            .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        return tcp(host, port, value);
    }
    let looks_like_path =
        value.starts_with('/') || value.starts_with('.') || value.starts_with('~');
    if !looks_like_path {
        if let Some((host, port)) = value.rsplit_once(':') {
            // A Windows drive path (`C:\...`) is not a host:port.
            let drive_path = host.len() == 1 && (port.starts_with('\\') || port.starts_with('/'));
            if !drive_path && !host.contains(':') {
                let port = port
                    .parse()
                    .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
                if host.is_empty() {
                    return Err(bad("the host before the port is empty"));
                }
                return tcp(host, port, value);
            }
            if !drive_path {
                return Err(bad("an IPv6 address needs brackets: [address]:port"));
            }
        }
    }
    Ok(DaemonAddress::Unix(PathBuf::from(value)))
}

fn tcp(host: &str, port: u16, value: &str) -> Result<DaemonAddress, DeviceError> {
    if port == 0 {
        return Err(DeviceError::BadAddress {
            value: value.to_string(),
            reason: "the port is not a number from 1 to 65535".to_string(),
        });
    }
    Ok(DaemonAddress::Tcp {
        host: host.to_string(),
        port,
    })
}

/// The address for this process: reads `USBMUXD_SOCKET_ADDRESS` and the target OS.
pub fn address_from_env() -> Result<DaemonAddress, DeviceError> {
    let variable = match std::env::var(ADDRESS_VARIABLE) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        // Not silently the default: the person meant some address.
        Err(std::env::VarError::NotUnicode(value)) => {
            return Err(DeviceError::BadAddress {
                value: value.to_string_lossy().into_owned(),
                reason: "it is not valid UTF-8 text".to_string(),
            })
        }
    };
    daemon_address(variable.as_deref(), cfg!(windows))
}

/// Opens a stream to the daemon with read and write timeouts of [`IO_TIMEOUT`].
pub fn connect(address: &DaemonAddress) -> Result<BoxStream, DeviceError> {
    connect_with_timeout(address, IO_TIMEOUT)
}

/// Opens a stream to the daemon whose reads give up after `read_timeout`.
pub fn connect_with_timeout(
    address: &DaemonAddress,
    read_timeout: Duration,
) -> Result<BoxStream, DeviceError> {
    let read_timeout = read_timeout.max(Duration::from_millis(10));
    let no_daemon = |source: io::Error| DeviceError::NoDaemon {
        address: address.to_string(),
        source,
    };
    match address {
        DaemonAddress::Tcp { host, port } => {
            let target = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(no_daemon)?
                .next()
                .ok_or_else(|| {
                    no_daemon(io::Error::new(io::ErrorKind::NotFound, "no such host"))
                })?;
            let stream = TcpStream::connect_timeout(&target, IO_TIMEOUT).map_err(no_daemon)?;
            stream
                .set_read_timeout(Some(read_timeout))
                .map_err(no_daemon)?;
            stream
                .set_write_timeout(Some(IO_TIMEOUT))
                .map_err(no_daemon)?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream))
        }
        #[cfg(unix)]
        DaemonAddress::Unix(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path).map_err(no_daemon)?;
            stream
                .set_read_timeout(Some(read_timeout))
                .map_err(no_daemon)?;
            stream
                .set_write_timeout(Some(IO_TIMEOUT))
                .map_err(no_daemon)?;
            Ok(Box::new(stream))
        }
        #[cfg(not(unix))]
        DaemonAddress::Unix(path) => Err(no_daemon(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "Unix sockets are not supported here; use host:port instead of {}",
                path.display()
            ),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(p: &str) -> DaemonAddress {
        DaemonAddress::Unix(PathBuf::from(p))
    }

    fn tcp(h: &str, port: u16) -> DaemonAddress {
        DaemonAddress::Tcp {
            host: h.to_string(),
            port,
        }
    }

    #[test]
    fn defaults_per_platform() {
        assert_eq!(
            daemon_address(None, false).unwrap(),
            unix("/var/run/usbmuxd")
        );
        assert_eq!(
            daemon_address(Some(""), false).unwrap(),
            unix("/var/run/usbmuxd")
        );
        assert_eq!(daemon_address(None, true).unwrap(), tcp("127.0.0.1", 27015));
        assert_eq!(
            daemon_address(Some("  "), true).unwrap(),
            tcp("127.0.0.1", 27015)
        );
    }

    #[test]
    fn every_address_form() {
        let cases = [
            ("UNIX:/var/run/usbmuxd", unix("/var/run/usbmuxd")),
            ("UNIX:relative/sock", unix("relative/sock")),
            ("/tmp/sim.sock", unix("/tmp/sim.sock")),
            ("./sim.sock", unix("./sim.sock")),
            ("sim.sock", unix("sim.sock")),
            ("127.0.0.1:27015", tcp("127.0.0.1", 27015)),
            ("localhost:5000", tcp("localhost", 5000)),
            ("[::1]:27015", tcp("::1", 27015)),
            ("[fe80::1%eth0]:9", tcp("fe80::1%eth0", 9)),
            ("C:\\usbmuxd.sock", unix("C:\\usbmuxd.sock")),
        ];
        for (input, expected) in cases {
            assert_eq!(
                daemon_address(Some(input), false).unwrap(),
                expected,
                "{input}"
            );
            assert_eq!(
                daemon_address(Some(input), true).unwrap(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn bad_addresses_say_why() {
        for input in [
            "UNIX:",
            "[::1]",
            "[]:80",
            "host:port",
            "host:0",
            ":80",
            "::1:27015",
            "h:99999",
        ] {
            let err = parse_address(input).unwrap_err();
            assert!(
                matches!(err, DeviceError::BadAddress { .. }),
                "{input}: {err}"
            );
        }
    }

    #[test]
    fn addresses_print_back() {
        assert_eq!(tcp("::1", 5).to_string(), "[::1]:5");
        assert_eq!(tcp("127.0.0.1", 5).to_string(), "127.0.0.1:5");
        assert_eq!(unix("/a").to_string(), "/a");
    }
}
