//! notification_proxy (`com.apple.mobile.notification_proxy`), the phone's notification
//! relay: the computer posts names (a sync starts, asks for the lock, has started, has
//! finished) and observes names the phone relays back (the person tapped cancel, a passcode
//! prompt is up). Messages are lockdown's framing (u32 big-endian length, XML plist):
//! `{Command: PostNotification | ObserveNotification, Name}`, `{Command: Shutdown}`; the phone
//! sends `{Command: RelayNotification, Name}` and, on Shutdown, `{Command: ProxyDeath}`.
//! [libimobiledevice src/notification_proxy.c, include/libimobiledevice/notification_proxy.h]
//!
//! [`NotificationProxy`] is one connection; [`NotificationWatch`] runs one on a thread of its
//! own, observing the five names a phone sends during a sync and handing them over as
//! [`PhoneNotice`]s. Reads keep partial messages across timeouts, so waiting briefly never
//! loses one. Not here: when to post what (sync_lock.rs, the backup engine).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};

use crate::device::lockdown::pair_record::PairRecord;
use crate::device::lockdown::{encode_message, parse_length, ClientStream, LockdownClient};
use crate::device::transport::usbmuxd::parse_dict;
use crate::device::transport::{AttachedDevice, Transport};
use crate::device::{deadline_after, DeviceError};

/// The service's name for StartService.
pub const SERVICE: &str = "com.apple.mobile.notification_proxy";

/// Posted by the computer before it takes the sync lock.
pub const SYNC_WILL_START: &str = "com.apple.itunes-mobdev.syncWillStart";
/// Posted by the computer just before it locks the sync lock file.
pub const SYNC_LOCK_REQUEST: &str = "com.apple.itunes-mobdev.syncLockRequest";
/// Posted by the computer once it holds the lock.
pub const SYNC_DID_START: &str = "com.apple.itunes-mobdev.syncDidStart";
/// Posted by the computer after it released the lock.
pub const SYNC_DID_FINISH: &str = "com.apple.itunes-mobdev.syncDidFinish";
/// Posted by the phone: the person asked to cancel the sync (`itunes-client`, not `-mobdev`).
pub const SYNC_CANCEL_REQUEST: &str = "com.apple.itunes-client.syncCancelRequest";
/// Posted by the phone: pause the sync.
pub const SYNC_SUSPEND_REQUEST: &str = "com.apple.itunes-client.syncSuspendRequest";
/// Posted by the phone: go on after a pause.
pub const SYNC_RESUME_REQUEST: &str = "com.apple.itunes-client.syncResumeRequest";
/// Posted by the phone: it shows a passcode prompt (asked for since iOS 16.1).
pub const PASSCODE_PROMPT_SHOWN: &str = "com.apple.LocalAuthentication.ui.presented";
/// Posted by the phone: the passcode prompt went away.
pub const PASSCODE_PROMPT_DISMISSED: &str = "com.apple.LocalAuthentication.ui.dismissed";

/// The names a computer observes during a sync.
pub const PHONE_NAMES: [&str; 5] = [
    SYNC_CANCEL_REQUEST,
    SYNC_SUSPEND_REQUEST,
    SYNC_RESUME_REQUEST,
    PASSCODE_PROMPT_SHOWN,
    PASSCODE_PROMPT_DISMISSED,
];

/// The longest notification name accepted from the phone.
pub const MAX_NAME: usize = 512;
/// How long [`NotificationProxy::shutdown`] waits for ProxyDeath.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);
/// How long [`NotificationWatch::stop`] waits for its thread before leaving it to end alone:
/// long enough for a thread between reads, short enough not to slow the end of a backup. A
/// thread inside a read of a silent phone finishes that read (at most the transport's timeout),
/// then shuts the proxy down by itself.
pub const STOP_WAIT: Duration = Duration::from_millis(500);
/// The most notices kept for the caller; later ones are dropped until it takes some.
pub const MAX_WAITING_NOTICES: usize = 256;
/// How often the watch's thread looks whether it was asked to stop.
const WATCH_POLL: Duration = Duration::from_millis(200);
/// How much one read takes from the stream.
const READ_SIZE: usize = 4096;

/// A connection to notification_proxy.
pub struct NotificationProxy {
    stream: ClientStream,
    /// Bytes read but not yet a whole message.
    pending: Vec<u8>,
}

impl NotificationProxy {
    /// StartService notification_proxy in `lockdown`'s session and connect to it.
    pub fn open(
        transport: &dyn Transport,
        device: &AttachedDevice,
        lockdown: &mut LockdownClient,
        record: &PairRecord,
    ) -> Result<Self, DeviceError> {
        let stream = super::open(transport, device, lockdown, record, SERVICE)?;
        Ok(Self::over(stream))
    }

    /// notification_proxy over a stream already connected to it.
    pub fn over(stream: ClientStream) -> Self {
        NotificationProxy {
            stream,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, command: &str, name: Option<&str>) -> Result<(), DeviceError> {
        let mut message = Dictionary::new();
        message.insert("Command".into(), command.into());
        if let Some(name) = name {
            message.insert("Name".into(), name.into());
        }
        let bytes = encode_message(&message, "a notification_proxy request")?;
        self.stream
            .write_all(&bytes)
            .and_then(|_| self.stream.flush())
            .map_err(|e| {
                DeviceError::from_io(format!("sending {command} to notification_proxy"), e)
            })
    }

    /// Posts `name` as the computer.
    pub fn post(&mut self, name: &str) -> Result<(), DeviceError> {
        self.send("PostNotification", Some(name))
    }

    /// Asks the phone to relay `name` from now on.
    pub fn observe(&mut self, name: &str) -> Result<(), DeviceError> {
        self.send("ObserveNotification", Some(name))
    }

    /// The next relayed name within `timeout`; `Ok(None)` when none came. ProxyDeath or a
    /// closed stream is an error. A read already under way finishes first, so the wait can
    /// pass `timeout` by one read of the transport's timeout.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<String>, DeviceError> {
        let deadline = deadline_after(timeout);
        while let Some(message) = self.next_message(deadline)? {
            match command(&message) {
                Some("RelayNotification") => return relayed_name(&message).map(Some),
                Some("ProxyDeath") => {
                    return Err(DeviceError::Closed {
                        what: "a notification (notification_proxy said ProxyDeath)".to_string(),
                        at_start: false,
                    })
                }
                // Other commands carry nothing a computer acts on.
                _ => {}
            }
        }
        Ok(None)
    }

    /// Shutdown, then ProxyDeath within [`SHUTDOWN_WAIT`] (names relayed meanwhile are
    /// dropped). A phone that closes instead of answering is fine too.
    pub fn shutdown(mut self) -> Result<(), DeviceError> {
        self.send("Shutdown", None)?;
        let deadline = deadline_after(SHUTDOWN_WAIT);
        loop {
            match self.next_message(deadline) {
                Ok(Some(message)) if command(&message) == Some("ProxyDeath") => return Ok(()),
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(DeviceError::Timeout {
                        what: "notification_proxy's ProxyDeath".to_string(),
                        secs: SHUTDOWN_WAIT.as_secs(),
                    })
                }
                Err(DeviceError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// One whole message, `None` at `deadline`; partial messages stay in `pending`.
    fn next_message(&mut self, deadline: Instant) -> Result<Option<Dictionary>, DeviceError> {
        const WHAT: &str = "a message from notification_proxy";
        loop {
            if self.pending.len() >= 4 {
                let prefix = [
                    self.pending[0],
                    self.pending[1],
                    self.pending[2],
                    self.pending[3],
                ];
                let length = parse_length(prefix, WHAT)?;
                if self.pending.len() >= 4 + length {
                    let body: Vec<u8> = self.pending.drain(..4 + length).skip(4).collect();
                    return parse_dict(&body, WHAT).map(Some);
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let mut chunk = [0u8; READ_SIZE];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(DeviceError::Closed {
                        what: WHAT.to_string(),
                        at_start: self.pending.is_empty(),
                    })
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if crate::device::transport::is_waiting(&e) => {}
                Err(e) => return Err(DeviceError::from_io(WHAT, e)),
            }
        }
    }
}

fn command(message: &Dictionary) -> Option<&str> {
    message.get("Command").and_then(Value::as_string)
}

fn relayed_name(message: &Dictionary) -> Result<String, DeviceError> {
    let bad = |detail: String| DeviceError::BadReply {
        what: "notification_proxy's RelayNotification".to_string(),
        detail,
    };
    let name = message
        .get("Name")
        .and_then(Value::as_string)
        .ok_or_else(|| bad("no Name".to_string()))?;
    if name.len() > MAX_NAME {
        return Err(bad(format!(
            "a name of {} bytes, more than {MAX_NAME}",
            name.len()
        )));
    }
    Ok(name.to_string())
}

/// What the phone tells the computer during a sync, from the names it relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneNotice {
    /// The person asked to cancel the sync on the phone.
    CancelRequest,
    /// The phone asks to pause.
    SuspendRequest,
    /// The phone asks to go on.
    ResumeRequest,
    /// A passcode prompt is up on the phone.
    PasscodePrompt,
    /// The passcode prompt went away.
    PasscodeDismissed,
    /// A name the computer did not ask about.
    Other(String),
}

impl PhoneNotice {
    /// The notice a relayed name means.
    pub fn from_name(name: &str) -> Self {
        match name {
            SYNC_CANCEL_REQUEST => PhoneNotice::CancelRequest,
            SYNC_SUSPEND_REQUEST => PhoneNotice::SuspendRequest,
            SYNC_RESUME_REQUEST => PhoneNotice::ResumeRequest,
            PASSCODE_PROMPT_SHOWN => PhoneNotice::PasscodePrompt,
            PASSCODE_PROMPT_DISMISSED => PhoneNotice::PasscodeDismissed,
            other => PhoneNotice::Other(other.to_string()),
        }
    }
}

/// A thread that observes [`PHONE_NAMES`] on its own notification_proxy connection and hands
/// the notices over. Stopping (or dropping) it shuts the proxy down; the caller never waits more
/// than [`STOP_WAIT`] for that.
pub struct NotificationWatch {
    notices: Receiver<PhoneNotice>,
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<String>>>,
    done: Option<(Receiver<()>, JoinHandle<()>)>,
}

impl NotificationWatch {
    /// Observes the five names on `proxy` (errors here are returned), then watches on a thread.
    pub fn start(mut proxy: NotificationProxy) -> Result<NotificationWatch, DeviceError> {
        for name in PHONE_NAMES {
            proxy.observe(name)?;
        }
        let (notice_tx, notices) = mpsc::sync_channel(MAX_WAITING_NOTICES);
        let (done_tx, done_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Mutex::new(None));
        let (thread_stop, thread_failure) = (stop.clone(), failure.clone());
        let handle = std::thread::Builder::new()
            .name("notification-watch".to_string())
            .spawn(move || {
                let outcome = watch(&mut proxy, &thread_stop, &notice_tx);
                match outcome {
                    Ok(()) => {
                        let _ = proxy.shutdown();
                    }
                    Err(e) => {
                        if let Ok(mut slot) = thread_failure.lock() {
                            *slot = Some(e.to_string());
                        }
                    }
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| DeviceError::Io {
                what: "starting the notification watch".to_string(),
                source: e,
            })?;
        Ok(NotificationWatch {
            notices,
            stop,
            failure,
            done: Some((done_rx, handle)),
        })
    }

    /// The next notice the phone sent, if one is waiting.
    pub fn try_notice(&self) -> Option<PhoneNotice> {
        self.notices.try_recv().ok()
    }

    /// Why the watch ended on its own (the phone closed the proxy, went away...), if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|slot| slot.clone())
    }

    /// Stops the thread and shuts the proxy down, waiting at most [`STOP_WAIT`] (the thread
    /// finishes alone when it is inside a read).
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some((done, handle)) = self.done.take() {
            match done.recv_timeout(STOP_WAIT) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = handle.join();
                }
                // A read stuck on a silent phone: the thread ends on its own at its timeout.
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

impl Drop for NotificationWatch {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The watch's loop: relays until asked to stop or the proxy fails.
fn watch(
    proxy: &mut NotificationProxy,
    stop: &AtomicBool,
    notices: &mpsc::SyncSender<PhoneNotice>,
) -> Result<(), DeviceError> {
    while !stop.load(Ordering::SeqCst) {
        if let Some(name) = proxy.next(WATCH_POLL)? {
            match notices.try_send(PhoneNotice::from_name(&name)) {
                // Nobody reads them: a phone repeating itself costs no memory.
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::lockdown::MaybeTls;
    use std::collections::VecDeque;
    use std::io;

    /// The phone's side: a message from the computer in, the messages to send back out.
    type Answer = Box<dyn FnMut(&Dictionary) -> Vec<Dictionary> + Send>;

    /// A phone scripted per request, over lockdown framing: `answer` sees each message the
    /// computer sends and returns the messages to queue. Between messages, reads answer
    /// "would block" after a short pause, as a socket with a read timeout does.
    struct FakeProxy {
        sent: Arc<Mutex<Vec<Dictionary>>>,
        inbox: Vec<u8>,
        outbox: Arc<Mutex<VecDeque<u8>>>,
        answer: Answer,
        closed: bool,
        /// How long a read with nothing to give waits before "would block".
        stall: Duration,
    }

    fn message(fields: &[(&str, &str)]) -> Dictionary {
        let mut d = Dictionary::new();
        for (k, v) in fields {
            d.insert((*k).into(), (*v).into());
        }
        d
    }

    fn framed(d: &Dictionary) -> Vec<u8> {
        encode_message(d, "t").unwrap()
    }

    impl FakeProxy {
        fn new(answer: impl FnMut(&Dictionary) -> Vec<Dictionary> + Send + 'static) -> Self {
            FakeProxy {
                sent: Arc::default(),
                inbox: Vec::new(),
                outbox: Arc::default(),
                answer: Box::new(answer),
                closed: false,
                stall: Duration::from_millis(5),
            }
        }

        /// Answers Shutdown with ProxyDeath and nothing else.
        fn polite() -> Self {
            FakeProxy::new(|m| match command(m) {
                Some("Shutdown") => vec![message(&[("Command", "ProxyDeath")])],
                _ => vec![],
            })
        }
    }

    impl Read for FakeProxy {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut outbox = self.outbox.lock().unwrap();
            if outbox.is_empty() {
                drop(outbox);
                if self.closed {
                    return Ok(0);
                }
                std::thread::sleep(self.stall);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // One byte at a time: messages arrive in pieces.
            buf[0] = outbox.pop_front().unwrap();
            Ok(1)
        }
    }

    impl Write for FakeProxy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.inbox.extend_from_slice(buf);
            while self.inbox.len() >= 4 {
                let len = u32::from_be_bytes(self.inbox[..4].try_into().unwrap()) as usize;
                if self.inbox.len() < 4 + len {
                    break;
                }
                let body: Vec<u8> = self.inbox.drain(..4 + len).skip(4).collect();
                let request = parse_dict(&body, "t").unwrap();
                self.sent.lock().unwrap().push(request.clone());
                for reply in (self.answer)(&request) {
                    self.outbox.lock().unwrap().extend(framed(&reply));
                }
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn proxy(fake: FakeProxy) -> NotificationProxy {
        NotificationProxy::over(MaybeTls::Plain(Box::new(fake)))
    }

    #[test]
    fn requests_are_lockdown_framed_plists() {
        let fake = FakeProxy::polite();
        let sent = fake.sent.clone();
        let mut np = proxy(fake);
        np.post(SYNC_WILL_START).unwrap();
        np.observe(SYNC_CANCEL_REQUEST).unwrap();
        np.shutdown().unwrap();
        let sent = sent.lock().unwrap();
        assert_eq!(
            *sent,
            vec![
                message(&[("Command", "PostNotification"), ("Name", SYNC_WILL_START)]),
                message(&[
                    ("Command", "ObserveNotification"),
                    ("Name", SYNC_CANCEL_REQUEST)
                ]),
                message(&[("Command", "Shutdown")]),
            ]
        );
    }

    #[test]
    fn relayed_names_arrive_whole_across_short_waits() {
        let fake = FakeProxy::new(|m| match m.get("Name").and_then(Value::as_string) {
            Some(name) if command(m) == Some("ObserveNotification") => {
                vec![message(&[("Command", "RelayNotification"), ("Name", name)])]
            }
            _ => vec![],
        });
        let mut np = proxy(fake);
        assert_eq!(np.next(Duration::from_millis(20)).unwrap(), None);
        np.observe(PASSCODE_PROMPT_SHOWN).unwrap();
        // A wait too short for the whole message keeps what came so far.
        let mut got = None;
        for _ in 0..1000 {
            if let Some(name) = np.next(Duration::from_millis(1)).unwrap() {
                got = Some(name);
                break;
            }
        }
        assert_eq!(got.as_deref(), Some(PASSCODE_PROMPT_SHOWN));
        assert_eq!(
            PhoneNotice::from_name(PASSCODE_PROMPT_SHOWN),
            PhoneNotice::PasscodePrompt
        );
    }

    #[test]
    fn proxy_death_and_a_closed_stream_are_errors() {
        let fake = FakeProxy::new(|_| vec![message(&[("Command", "ProxyDeath")])]);
        let mut np = proxy(fake);
        np.post("x").unwrap();
        assert!(matches!(
            np.next(Duration::from_secs(1)),
            Err(DeviceError::Closed { .. })
        ));
        let mut fake = FakeProxy::polite();
        fake.closed = true;
        let mut np = proxy(fake);
        assert!(matches!(
            np.next(Duration::from_secs(1)),
            Err(DeviceError::Closed { .. })
        ));
    }

    #[test]
    fn hostile_messages_are_clear_errors() {
        // A length prefix far over the limit: refused before any allocation.
        let fake = FakeProxy::polite();
        fake.outbox.lock().unwrap().extend([0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            proxy(fake).next(Duration::from_secs(1)),
            Err(DeviceError::FrameTooLarge { .. })
        ));
        // Not a plist.
        let fake = FakeProxy::polite();
        fake.outbox.lock().unwrap().extend(b"\0\0\0\x03abc");
        assert!(matches!(
            proxy(fake).next(Duration::from_secs(1)),
            Err(DeviceError::BadPlist { .. })
        ));
        // A relay without a name, and one with an absurd name.
        for relay in [
            message(&[("Command", "RelayNotification")]),
            message(&[
                ("Command", "RelayNotification"),
                ("Name", &"n".repeat(10_000)),
            ]),
        ] {
            let fake = FakeProxy::polite();
            fake.outbox.lock().unwrap().extend(framed(&relay));
            assert!(matches!(
                proxy(fake).next(Duration::from_secs(1)),
                Err(DeviceError::BadReply { .. })
            ));
        }
    }

    #[test]
    fn a_proxy_that_never_answers_shutdown_does_not_hang() {
        let np = proxy(FakeProxy::new(|_| vec![]));
        let started = Instant::now();
        let err = np.shutdown().unwrap_err();
        assert!(matches!(err, DeviceError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < SHUTDOWN_WAIT + Duration::from_secs(1));
    }

    #[test]
    fn the_watch_observes_the_five_names_and_hands_notices_over() {
        let fake = FakeProxy::polite();
        let (sent, outbox) = (fake.sent.clone(), fake.outbox.clone());
        let watch = NotificationWatch::start(proxy(fake)).unwrap();
        let observed: Vec<String> = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| command(m) == Some("ObserveNotification"))
            .filter_map(|m| m.get("Name").and_then(Value::as_string).map(str::to_string))
            .collect();
        assert_eq!(observed, PHONE_NAMES);
        for name in [SYNC_CANCEL_REQUEST, "com.example.other"] {
            let relay = message(&[("Command", "RelayNotification"), ("Name", name)]);
            outbox.lock().unwrap().extend(framed(&relay));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut notices = Vec::new();
        while notices.len() < 2 && Instant::now() < deadline {
            match watch.try_notice() {
                Some(notice) => notices.push(notice),
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        assert_eq!(
            notices,
            vec![
                PhoneNotice::CancelRequest,
                PhoneNotice::Other("com.example.other".into())
            ]
        );
        let started = Instant::now();
        watch.stop();
        assert!(started.elapsed() < STOP_WAIT + Duration::from_millis(200));
        let shut_down = || {
            sent.lock()
                .unwrap()
                .iter()
                .any(|m| command(m) == Some("Shutdown"))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !shut_down() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(shut_down());
    }

    #[test]
    fn a_flood_of_notices_nobody_reads_is_capped() {
        let fake = FakeProxy::polite();
        let outbox = fake.outbox.clone();
        let relay = framed(&message(&[
            ("Command", "RelayNotification"),
            ("Name", SYNC_SUSPEND_REQUEST),
        ]));
        for _ in 0..(MAX_WAITING_NOTICES * 3) {
            outbox.lock().unwrap().extend(relay.iter().copied());
        }
        let watch = NotificationWatch::start(proxy(fake)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !outbox.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(outbox.lock().unwrap().is_empty(), "the watch kept reading");
        std::thread::sleep(Duration::from_millis(50));
        let kept = std::iter::from_fn(|| watch.try_notice()).count();
        assert_eq!(kept, MAX_WAITING_NOTICES);
        assert_eq!(watch.failure(), None);
    }

    #[test]
    fn stopping_a_watch_stuck_in_a_read_returns_at_once() {
        let mut fake = FakeProxy::polite();
        fake.stall = Duration::from_secs(3);
        let sent = fake.sent.clone();
        let watch = NotificationWatch::start(proxy(fake)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        watch.stop();
        assert!(started.elapsed() < STOP_WAIT + Duration::from_millis(200));
        // The thread shuts the proxy down once its read ends.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if sent
                .lock()
                .unwrap()
                .iter()
                .any(|m| command(m) == Some("Shutdown"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the watch never shut the proxy down");
    }

    #[test]
    fn a_watch_whose_phone_goes_away_says_why_and_still_stops() {
        let mut fake = FakeProxy::polite();
        fake.closed = true;
        let watch = NotificationWatch::start(proxy(fake)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while watch.failure().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(watch.failure().unwrap().contains("closed"));
        let started = Instant::now();
        drop(watch);
        assert!(started.elapsed() < STOP_WAIT + Duration::from_millis(200));
    }
}
