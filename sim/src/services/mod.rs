//! The lockdown services the simulated phone serves besides lockdownd itself, and what they
//! share: which service names exist and how each is started ([`Service`]), the stream a service
//! connection runs on ([`ServiceStream`], whose read timeout a service may shorten to poll), the
//! plist message framing they use ([`FrameReader`], [`send_plist`]), the notification bus every
//! notification_proxy connection listens on (the backup driver posts the phone's own
//! notifications there, such as a cancel request or a passcode prompt), and the state services
//! keep across connections ([`ServiceState`]: what the computer posted, AFC's files and locks).
//! Starting a service (StartService, its port, TLS) is lockdownd's, in server.rs; each service's
//! own messages live in its module.

pub mod afc;
pub mod installation_proxy;
pub mod notification_proxy;
pub mod springboard;

use std::io::{self, Read, Write};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use plist::Dictionary;

use ibackup::device::lockdown::{encode_message, parse_length};
use ibackup::device::transport::usbmuxd::parse_dict;
use ibackup::device::DeviceError;

/// How long a service connection may sit idle before the phone closes it. Long: during a
/// backup the computer keeps notification_proxy and AFC (with the sync lock) open and silent
/// for as long as mobilebackup2 runs.
pub const SERVICE_IDLE: Duration = Duration::from_secs(3600);

/// The services lockdownd starts, by the name a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    NotificationProxy,
    Afc,
    InstallationProxy,
    SpringBoard,
    MobileBackup2,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::NotificationProxy,
        Service::Afc,
        Service::InstallationProxy,
        Service::SpringBoard,
        Service::MobileBackup2,
    ];

    /// The service a StartService `Service` names, if the phone offers it.
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The name clients ask for.
    pub fn name(self) -> &'static str {
        match self {
            Service::NotificationProxy => "com.apple.mobile.notification_proxy",
            Service::Afc => "com.apple.afc",
            Service::InstallationProxy => "com.apple.mobile.installation_proxy",
            Service::SpringBoard => "com.apple.springboardservices",
            Service::MobileBackup2 => "com.apple.mobilebackup2",
        }
    }

    /// EnableServiceSSL in the StartService answer: mobilebackup2 runs inside TLS (as on a
    /// phone, and so that TLS on a service connection is exercised); the others in plain text.
    pub fn tls(self) -> bool {
        self == Service::MobileBackup2
    }

    /// Whether StartService must carry the pair record's EscrowBag: mobilebackup2 reads data
    /// that stays locked while the phone is (this phone is always locked to the computer).
    pub fn needs_escrow_bag(self) -> bool {
        self == Service::MobileBackup2
    }
}

/// A service connection's stream: the bytes, plus a read timeout the service may change (the
/// notification proxy polls its client and the notification bus in turn).
pub trait ServiceStream: Read + Write + Send {
    /// `None` blocks until bytes come; a timeout makes a read fail with `TimedOut` or
    /// `WouldBlock` when nothing came in time.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl ServiceStream for std::net::TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, timeout)
    }
}

#[cfg(unix)]
impl ServiceStream for std::os::unix::net::UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }
}

/// Whether an I/O error is a read timeout running out (not a failure).
pub(crate) fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Sends one plist message (u32 big-endian length + XML plist), the framing of
/// notification_proxy, installation_proxy and springboardservices.
pub(crate) fn send_plist(stream: &mut dyn Write, dict: &Dictionary) -> Result<(), DeviceError> {
    let bytes = encode_message(dict, "a service answer")?;
    stream
        .write_all(&bytes)
        .and_then(|_| stream.flush())
        .map_err(|e| DeviceError::Io {
            what: "answering a service client".to_string(),
            source: e,
        })
}

/// Cuts plist messages (u32 big-endian length + plist, XML or binary) out of bytes that arrive
/// in pieces: a reader that may give up mid-message (a read timeout) loses nothing. A length of
/// 0 or past lockdown's `MAX_MESSAGE` is refused before anything is allocated for it.
#[derive(Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
}

impl FrameReader {
    /// Adds bytes as they came off the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, parsed; `None` until one is complete.
    pub fn next_message(&mut self, what: &str) -> Result<Option<Dictionary>, DeviceError> {
        let Some(prefix) = self.buffer.get(..4) else {
            return Ok(None);
        };
        let length = parse_length([prefix[0], prefix[1], prefix[2], prefix[3]], what)?;
        if self.buffer.len() < 4 + length {
            return Ok(None);
        }
        let body: Vec<u8> = self.buffer.drain(..4 + length).skip(4).collect();
        parse_dict(&body, what).map(Some)
    }

    /// Bytes held for a message not complete yet (at most 4 + lockdown's `MAX_MESSAGE` plus one read).
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// The phone's notifications: what the phone posts reaches every connection that subscribed.
#[derive(Default)]
pub struct NotificationBus {
    subscribers: Mutex<Vec<Sender<String>>>,
}

impl NotificationBus {
    /// Every notification posted from now on, in order, for one notification_proxy connection
    /// (which relays those its client observes). Dropping the receiver unsubscribes.
    pub fn subscribe(&self) -> Receiver<String> {
        let (tx, rx) = channel();
        lock(&self.subscribers).push(tx);
        rx
    }

    /// Posts `name` as the phone: every live subscriber gets it.
    pub fn post(&self, name: &str) {
        lock(&self.subscribers).retain(|tx| tx.send(name.to_string()).is_ok());
    }
}

/// What the services keep across connections, for the whole life of the phone.
#[derive(Default)]
pub struct ServiceState {
    /// Every notification a computer posted through notification_proxy, in order.
    pub(crate) posted: Mutex<Vec<String>>,
    /// AFC's files, open handles' locks, and the busy answers still to give.
    pub(crate) afc: afc::Shared,
}

impl ServiceState {
    /// A fresh state for a phone whose profile says how many lock attempts find the sync lock
    /// busy first (another program syncing).
    pub fn new(sync_lock_busy_for: u32) -> Self {
        ServiceState {
            posted: Mutex::new(Vec::new()),
            afc: afc::Shared::new(sync_lock_busy_for),
        }
    }

    /// The notifications computers posted so far.
    pub fn posted_by_computer(&self) -> Vec<String> {
        lock(&self.posted).clone()
    }
}

/// A lock whose holder panicked is still usable: one connection's bug must not stop the phone.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_reaches_every_live_subscriber() {
        let bus = NotificationBus::default();
        let first = bus.subscribe();
        let gone = bus.subscribe();
        drop(gone);
        bus.post("com.apple.itunes-client.syncCancelRequest");
        assert_eq!(
            first.try_recv().unwrap(),
            "com.apple.itunes-client.syncCancelRequest"
        );
        assert_eq!(bus.subscribers.lock().unwrap().len(), 1);
    }

    #[test]
    fn service_names_round_trip_and_only_mobilebackup2_wants_tls_and_the_bag() {
        for service in Service::ALL {
            assert_eq!(Service::from_name(service.name()), Some(service));
            assert_eq!(service.tls(), service == Service::MobileBackup2);
            assert_eq!(
                service.needs_escrow_bag(),
                service == Service::MobileBackup2
            );
        }
        assert_eq!(Service::from_name("com.apple.mobile.house_arrest"), None);
        assert_eq!(Service::from_name(""), None);
    }

    #[test]
    fn frames_come_out_whole_whatever_the_pieces() {
        let mut dict = Dictionary::new();
        dict.insert("Command".into(), "ObserveNotification".into());
        let bytes = encode_message(&dict, "t").unwrap();
        let mut twice = bytes.clone();
        twice.extend_from_slice(&bytes);
        let mut reader = FrameReader::default();
        for byte in &twice[..bytes.len() - 1] {
            assert!(reader.next_message("t").unwrap().is_none());
            reader.push(&[*byte]);
        }
        reader.push(&twice[bytes.len() - 1..]);
        assert_eq!(reader.next_message("t").unwrap(), Some(dict.clone()));
        assert_eq!(reader.next_message("t").unwrap(), Some(dict));
        assert_eq!(reader.pending(), 0);
    }

    #[test]
    fn absurd_or_empty_lengths_and_garbage_are_refused() {
        let mut reader = FrameReader::default();
        reader.push(&0xffff_fff0u32.to_be_bytes());
        let err = reader.next_message("a request").unwrap_err();
        assert!(matches!(err, DeviceError::FrameTooLarge { .. }), "{err}");
        let mut reader = FrameReader::default();
        reader.push(&0u32.to_be_bytes());
        assert!(reader.next_message("a request").is_err());
        let mut reader = FrameReader::default();
        reader.push(&5u32.to_be_bytes());
        reader.push(b"<<<<<");
        let err = reader.next_message("a request").unwrap_err();
        assert!(matches!(err, DeviceError::BadPlist { .. }), "{err}");
    }
}
