//! The simulated iPhone: a usbmuxd + lockdownd server for tests and `ibackup-sim`, or (usb.rs) a
//! phone on emulated USB with the same lockdownd. It speaks the
//! real wire protocols (usbmux plist frames, lockdown messages, TLS with pair-record
//! certificates) so that real clients (ibackup, libimobiledevice's tools) accept it. Profiles
//! (profile.rs) say what the phone is like and which fault to inject; phone.rs keeps its state;
//! server.rs answers usbmuxd and lockdownd, services/ the lockdown services, mobilebackup2/ the
//! backups.
//! [`Server`] is one listening phone: the `ibackup-sim` binary runs one until it is ended,
//! ibackup's tests run one in-process and stop it by dropping it.
//!
//! Not for production use: its keys are fixed test keys. It is a crate of its own, outside the
//! `ibackup` package, so that none of this reaches the shipped binary (docs/design.md).

#[cfg(target_os = "linux")]
pub mod ffs;
pub mod mobilebackup2;
pub mod phone;
pub mod profile;
pub mod server;
pub mod services;
pub mod usb;

use std::io::Write;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use ibackup::device::transport::{parse_address, DaemonAddress};
pub use phone::Phone;
pub use profile::Profile;

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Profile(#[from] profile::ProfileError),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: String, reason: String },
    #[error("{0}")]
    Setup(String),
}

/// A line from the middle of each of the simulator's fixed private keys: text that occurs in
/// any binary that links the simulator, and must occur in no binary that ships (ibackup's
/// tests/shipped_binary.rs looks for it in `ibackup`).
pub fn fixed_key_markers() -> Vec<&'static str> {
    [
        include_str!("keys/device.pem"),
        include_str!("keys/root.pem"),
        include_str!("keys/host.pem"),
        include_str!("keys/other.pem"),
    ]
    .iter()
    .map(|pem| pem.lines().nth(1).unwrap_or_default())
    .collect()
}

/// One simulated phone listening on a socket, served by threads of this process. Dropping it
/// stops the accept loop and removes its Unix socket; connections already open run to their
/// end on their own threads.
pub struct Server {
    address: String,
    /// The phone it serves, for tests to look at (what was posted, whether the lock is held).
    phone: Arc<Phone>,
    /// What `ibackup-sim` prints after `ready` (the chosen address when port 0 was asked for).
    announced: Option<String>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    wake: Wake,
}

/// How Drop reaches the accept loop blocked in `accept()`: one connection of its own.
enum Wake {
    Tcp(std::net::SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

impl Server {
    /// A server accepting on the Unix socket at `path` (removed again when it stops).
    #[cfg(unix)]
    fn on_unix_socket(
        path: std::path::PathBuf,
        stop: Arc<AtomicBool>,
        accept: std::thread::JoinHandle<()>,
        phone: Arc<Phone>,
    ) -> Server {
        Server {
            address: path.display().to_string(),
            phone,
            announced: None,
            stop,
            accept: Some(accept),
            wake: Wake::Unix(path),
        }
    }

    /// Listens on `address` (a Unix socket path, `UNIX:/path`, or a loopback `127.0.0.1:PORT`,
    /// port 0 picking a free one) as a usbmuxd with `profile`'s phone behind it.
    pub fn start(address: &str, profile: Profile) -> Result<Server, SimError> {
        let listen_error = |reason: String| SimError::Listen {
            address: address.to_string(),
            reason,
        };
        // A numeric socket address (port 0 included) first, then the daemon address forms.
        let parsed = match address.parse::<std::net::SocketAddr>() {
            Ok(socket) => DaemonAddress::Tcp {
                host: socket.ip().to_string(),
                port: socket.port(),
            },
            Err(_) => parse_address(address).map_err(|e| listen_error(e.to_string()))?,
        };
        let phone = Arc::new(Phone::new(profile)?);
        let stop = Arc::new(AtomicBool::new(false));
        match parsed {
            DaemonAddress::Tcp { host, port } => {
                let ip: std::net::IpAddr = host.parse().map_err(|_| {
                    listen_error("use a numeric loopback address such as 127.0.0.1".into())
                })?;
                if !ip.is_loopback() {
                    return Err(listen_error(
                        "the simulator only listens on loopback addresses".into(),
                    ));
                }
                let listener = std::net::TcpListener::bind((ip, port))
                    .map_err(|e| listen_error(e.to_string()))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| listen_error(e.to_string()))?;
                let stopped = Arc::clone(&stop);
                let served = Arc::clone(&phone);
                let accept = std::thread::spawn(move || {
                    for stream in listener.incoming().flatten() {
                        if stopped.load(Ordering::SeqCst) {
                            break;
                        }
                        let _ = stream.set_nodelay(true);
                        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                        spawn(&phone, Box::new(stream));
                    }
                });
                Ok(Server {
                    address: local.to_string(),
                    phone: served,
                    announced: (port == 0).then(|| local.to_string()),
                    stop,
                    accept: Some(accept),
                    wake: Wake::Tcp(local),
                })
            }
            #[cfg(unix)]
            DaemonAddress::Unix(path) => {
                let listener = bind_unix(&path).map_err(listen_error)?;
                let stopped = Arc::clone(&stop);
                let served = Arc::clone(&phone);
                let accept = std::thread::spawn(move || {
                    for stream in listener.incoming().flatten() {
                        if stopped.load(Ordering::SeqCst) {
                            break;
                        }
                        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                        spawn(&phone, Box::new(stream));
                    }
                });
                Ok(Server::on_unix_socket(path, stop, accept, served))
            }
            #[cfg(not(unix))]
            DaemonAddress::Unix(_) => Err(listen_error(
                "Unix sockets are not supported here; use 127.0.0.1:PORT".into(),
            )),
        }
    }

    /// Serves the emulated USB phone (usb.rs) on a Unix socket: each client connection is one
    /// plug-in. With `lockdown_dir`, the pre-paired record is written there first as
    /// `<UDID>.plist`, where a host that paired earlier keeps it (direct USB has no daemon to
    /// hold it).
    #[cfg(unix)]
    pub fn start_usb(
        address: &str,
        profile: Profile,
        options: usb::UsbOptions,
        lockdown_dir: Option<&std::path::Path>,
    ) -> Result<Server, SimError> {
        use ibackup::device::transport::usb::emulated::{Descriptor, SocketPipes};
        let listen_error = |reason: String| SimError::Listen {
            address: address.to_string(),
            reason,
        };
        let path = PathBuf::from(address.strip_prefix("UNIX:").unwrap_or(address));
        let phone = Arc::new(Phone::new(profile)?);
        let udid = phone.profile().udid.clone();
        write_pair_record(&phone, lockdown_dir)?;
        let listener = bind_unix(&path).map_err(listen_error)?;
        let descriptor = Descriptor {
            // A phone reports its serial without the UDID's dash.
            serial: udid.replace('-', ""),
            product_id: 0x12a8,
            max_packet_size: options.max_packet_size,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let served = Arc::clone(&phone);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let phone = Arc::clone(&phone);
                let options = options.clone();
                let descriptor = descriptor.clone();
                std::thread::spawn(move || {
                    let result = SocketPipes::serve(stream, &descriptor)
                        .map_err(|e| ibackup::device::DeviceError::Io {
                            what: "greeting the host".to_string(),
                            source: e,
                        })
                        .and_then(|pipes| usb::serve_usb(phone, Box::new(pipes), &options));
                    if let Err(e) = result {
                        log(&e);
                    }
                });
            }
        });
        Ok(Server::on_unix_socket(path, stop, accept, served))
    }

    /// The phone this server serves: tests read what computers did to it
    /// ([`Phone::posted_by_computer`], [`Phone::sync_lock_held`]).
    pub fn phone(&self) -> Arc<Phone> {
        Arc::clone(&self.phone)
    }

    /// Where clients reach it: the socket path, or `127.0.0.1:PORT`; a value for
    /// `USBMUXD_SOCKET_ADDRESS` (or `IBACKUP_USB_EMULATOR` for a USB phone).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Serves until the process is ended.
    pub fn serve_forever(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(accept) = self.accept.take() else {
            return;
        };
        // The accept loop sees the flag on its next connection: make one.
        let woke = match &self.wake {
            Wake::Tcp(address) => std::net::TcpStream::connect(address).is_ok(),
            #[cfg(unix)]
            Wake::Unix(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
        };
        if woke {
            let _ = accept.join();
        }
        #[cfg(unix)]
        if let Wake::Unix(path) = &self.wake {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds a Unix socket; a socket left by an earlier run would make bind fail, so it (and
/// nothing else) is replaced.
#[cfg(unix)]
fn bind_unix(path: &std::path::Path) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
    std::os::unix::net::UnixListener::bind(path).map_err(|e| e.to_string())
}

/// Listens on `address` (a Unix socket path, `UNIX:/path`, or a loopback `127.0.0.1:PORT`),
/// prints `ready` on stdout (`ready ADDRESS` when port 0 was asked for), and serves clients
/// until the process is ended.
pub fn run(address: &str, profile: Profile) -> Result<(), SimError> {
    let server = Server::start(address, profile)?;
    announce(server.announced.clone());
    server.serve_forever();
    Ok(())
}

/// Serves the emulated USB phone on a Unix socket ([`Server::start_usb`]), prints `ready` once
/// it listens, and serves until the process is ended.
#[cfg(unix)]
pub fn run_usb(
    address: &str,
    profile: Profile,
    options: usb::UsbOptions,
    lockdown_dir: Option<&std::path::Path>,
) -> Result<(), SimError> {
    let server = Server::start_usb(address, profile, options, lockdown_dir)?;
    announce(None);
    server.serve_forever();
    Ok(())
}

/// Writes the phone's pre-paired record to `dir/<UDID>.plist` (when there is a folder and a
/// record), where a host that paired earlier keeps it.
#[cfg(unix)]
fn write_pair_record(phone: &Phone, dir: Option<&std::path::Path>) -> Result<(), SimError> {
    let udid = &phone.profile().udid;
    if let (Some(dir), Some(record)) = (dir, phone.pair_record(udid)) {
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(dir.join(format!("{udid}.plist")), record))
            .map_err(|e| {
                SimError::Setup(format!("writing the pair record to {}: {e}", dir.display()))
            })?;
    }
    Ok(())
}

/// Serves the phone on a USB gadget's FunctionFS instance mounted at `dir` (ffs.rs), with a
/// still-image interface on `still_image` when given; prints `ready` once the gadget may be
/// bound to its controller, and serves until ep0 fails or the process is ended.
#[cfg(target_os = "linux")]
pub fn run_ffs(
    dir: &std::path::Path,
    still_image: Option<&std::path::Path>,
    profile: Profile,
    options: usb::UsbOptions,
    lockdown_dir: Option<&std::path::Path>,
) -> Result<(), SimError> {
    let phone = Arc::new(Phone::new(profile)?);
    write_pair_record(&phone, lockdown_dir)?;
    ffs::serve(dir, still_image, phone, &options, || announce(None))
}

fn announce(address: Option<String>) {
    let mut out = std::io::stdout().lock();
    let _ = match address {
        Some(a) => writeln!(out, "ready {a}"),
        None => writeln!(out, "ready"),
    };
    let _ = out.flush();
}

fn spawn(phone: &Arc<Phone>, stream: Box<dyn services::ServiceStream>) {
    let phone = Arc::clone(phone);
    std::thread::spawn(move || {
        if let Err(e) = server::serve(&phone, stream) {
            log(&e);
        }
    });
}

/// A connection's end, shown only when `IBACKUP_SIM_LOG` is set.
fn log(error: &ibackup::device::DeviceError) {
    if std::env::var_os("IBACKUP_SIM_LOG").is_some() {
        eprintln!("ibackup-sim: {error}");
    }
}
