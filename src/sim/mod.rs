//! The simulated iPhone: a usbmuxd + lockdownd server for tests and `ibackup-sim`, or (usb.rs) a
//! phone on emulated USB with the same lockdownd. It speaks the
//! real wire protocols (usbmux plist frames, lockdown messages, TLS with pair-record
//! certificates) so that real clients (ibackup, libimobiledevice's tools) accept it. Profiles
//! (profile.rs) say what the phone is like and which fault to inject; server.rs answers.
//!
//! Not for production use: its keys are fixed test keys.

pub mod harness;
pub mod profile;
pub mod server;
pub mod usb;

use std::io::Write;
use std::sync::Arc;

use crate::device::transport::{parse_address, DaemonAddress};
pub use profile::Profile;
pub use server::Phone;

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

/// Listens on `address` (a Unix socket path, `UNIX:/path`, or a loopback `127.0.0.1:PORT`),
/// prints `ready` on stdout (`ready ADDRESS` when port 0 was asked for), and serves clients
/// until the process is ended.
pub fn run(address: &str, profile: Profile) -> Result<(), SimError> {
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
            let listener =
                std::net::TcpListener::bind((ip, port)).map_err(|e| listen_error(e.to_string()))?;
            let local = listener
                .local_addr()
                .map_err(|e| listen_error(e.to_string()))?;
            announce(if port == 0 {
                Some(local.to_string())
            } else {
                None
            });
            for stream in listener.incoming().flatten() {
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                spawn(&phone, Box::new(stream));
            }
        }
        #[cfg(unix)]
        DaemonAddress::Unix(path) => {
            use std::os::unix::fs::FileTypeExt;
            // A socket left by an earlier run would make bind fail: replace it, nothing else.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(&path);
            }
            let listener = std::os::unix::net::UnixListener::bind(&path)
                .map_err(|e| listen_error(e.to_string()))?;
            announce(None);
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                spawn(&phone, Box::new(stream));
            }
        }
        #[cfg(not(unix))]
        DaemonAddress::Unix(_) => {
            return Err(listen_error(
                "Unix sockets are not supported here; use 127.0.0.1:PORT".into(),
            ))
        }
    }
    Ok(())
}

/// Serves the emulated USB phone (sim/usb.rs) on a Unix socket: each client connection is one
/// plug-in. With `lockdown_dir`, the pre-paired record is written there first as
/// `<UDID>.plist`, where a host that paired earlier keeps it (direct USB has no daemon to
/// hold it). Prints `ready` once it listens.
#[cfg(unix)]
pub fn run_usb(
    address: &str,
    profile: Profile,
    options: usb::UsbOptions,
    lockdown_dir: Option<&std::path::Path>,
) -> Result<(), SimError> {
    use crate::device::transport::usb::emulated::{Descriptor, SocketPipes};
    use std::os::unix::fs::FileTypeExt;
    let listen_error = |reason: String| SimError::Listen {
        address: address.to_string(),
        reason,
    };
    let path = std::path::PathBuf::from(address.strip_prefix("UNIX:").unwrap_or(address));
    let phone = Arc::new(Phone::new(profile)?);
    let udid = phone.profile().udid.clone();
    if let (Some(dir), Some(record)) = (lockdown_dir, phone.pair_record(&udid)) {
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(dir.join(format!("{udid}.plist")), record))
            .map_err(|e| {
                SimError::Setup(format!("writing the pair record to {}: {e}", dir.display()))
            })?;
    }
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(&path);
    }
    let listener =
        std::os::unix::net::UnixListener::bind(&path).map_err(|e| listen_error(e.to_string()))?;
    announce(None);
    let descriptor = Descriptor {
        // A phone reports its serial without the UDID's dash.
        serial: udid.replace('-', ""),
        product_id: 0x12a8,
        max_packet_size: options.max_packet_size,
    };
    for stream in listener.incoming().flatten() {
        let phone = Arc::clone(&phone);
        let options = options.clone();
        let descriptor = descriptor.clone();
        std::thread::spawn(move || {
            let result = SocketPipes::serve(stream, &descriptor)
                .map_err(|e| crate::device::DeviceError::Io {
                    what: "greeting the host".to_string(),
                    source: e,
                })
                .and_then(|pipes| usb::serve_usb(phone, Box::new(pipes), &options));
            if let Err(e) = result {
                if std::env::var_os("IBACKUP_SIM_LOG").is_some() {
                    eprintln!("ibackup-sim: {e}");
                }
            }
        });
    }
    Ok(())
}

fn announce(address: Option<String>) {
    let mut out = std::io::stdout().lock();
    let _ = match address {
        Some(a) => writeln!(out, "ready {a}"),
        None => writeln!(out, "ready"),
    };
    let _ = out.flush();
}

fn spawn(phone: &Arc<Phone>, stream: Box<dyn crate::device::transport::DeviceStream>) {
    let phone = Arc::clone(phone);
    std::thread::spawn(move || {
        if let Err(e) = server::serve(&phone, stream) {
            if std::env::var_os("IBACKUP_SIM_LOG").is_some() {
                eprintln!("ibackup-sim: {e}");
            }
        }
    });
}
