//! The sync lock a computer holds while it backs a phone up, as one value: before, post
//! syncWillStart, open `/com.apple.itunes.lock_sync` on AFC, post syncLockRequest, take an
//! exclusive non-blocking lock (retried while another program holds it), post syncDidStart;
//! after, unlock, close, post syncDidFinish and shut notification_proxy down. Finder, iTunes
//! and idevicebackup2 take the same lock, so two of them never back the same phone up at once.
//! [libimobiledevice tools/idevicebackup2.c; design note mobilebackup2.md section 1]
//!
//! Built on [`afc`](super::afc) and [`notification_proxy`](super::notification_proxy); the
//! sequence itself ([`SyncLock::over`]) runs over any pair of those clients, so it is tested
//! without a phone. Not here: watching for the phone's cancel requests (that is
//! `NotificationWatch`, on a connection of its own).

use std::time::Duration;

use super::afc::{AfcClient, AfcStatus, FileMode, LockOp};
use super::notification_proxy::{
    NotificationProxy, SYNC_DID_FINISH, SYNC_DID_START, SYNC_LOCK_REQUEST, SYNC_WILL_START,
};
use crate::device::lockdown::pair_record::PairRecord;
use crate::device::lockdown::LockdownClient;
use crate::device::transport::{AttachedDevice, Transport};
use crate::device::DeviceError;

/// The lock file on AFC.
pub const LOCK_FILE: &str = "/com.apple.itunes.lock_sync";

/// How often, and how far apart, a lock someone else holds is asked for again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRetry {
    pub attempts: u32,
    pub interval: Duration,
}

impl Default for LockRetry {
    /// 50 tries 0.2 s apart, as the public tools do: about ten seconds.
    fn default() -> Self {
        LockRetry {
            attempts: 50,
            interval: Duration::from_millis(200),
        }
    }
}

/// The sync lock, held. Release it with [`SyncLock::release`]; dropping it releases it too,
/// ignoring errors.
pub struct SyncLock {
    held: Option<Held>,
}

struct Held {
    proxy: NotificationProxy,
    afc: AfcClient,
    handle: u64,
}

impl SyncLock {
    /// Starts notification_proxy and AFC in `lockdown`'s session and takes the lock, retrying
    /// as [`LockRetry::default`] says. Another program holding it all along is
    /// [`DeviceError::SyncBusy`].
    pub fn acquire(
        transport: &dyn Transport,
        device: &AttachedDevice,
        lockdown: &mut LockdownClient,
        record: &PairRecord,
    ) -> Result<SyncLock, DeviceError> {
        Self::acquire_with(transport, device, lockdown, record, LockRetry::default())
    }

    /// [`SyncLock::acquire`] with its own retries.
    pub fn acquire_with(
        transport: &dyn Transport,
        device: &AttachedDevice,
        lockdown: &mut LockdownClient,
        record: &PairRecord,
        retry: LockRetry,
    ) -> Result<SyncLock, DeviceError> {
        let proxy = NotificationProxy::open(transport, device, lockdown, record)?;
        let afc = AfcClient::open(transport, device, lockdown, record)?;
        Self::over(proxy, afc, retry)
    }

    /// The sequence over clients already connected.
    pub fn over(
        mut proxy: NotificationProxy,
        mut afc: AfcClient,
        retry: LockRetry,
    ) -> Result<SyncLock, DeviceError> {
        proxy.post(SYNC_WILL_START)?;
        let handle = afc.open_file(LOCK_FILE, FileMode::ReadWrite)?;
        let locked = proxy
            .post(SYNC_LOCK_REQUEST)
            .and_then(|()| lock_with_retries(&mut afc, handle, retry));
        if let Err(e) = locked.and_then(|()| proxy.post(SYNC_DID_START)) {
            // The lock is not ours (or is, with the phone gone quiet): give back what was taken.
            // No syncDidFinish: the sync that is running is someone else's.
            let _ = afc.lock(handle, LockOp::Unlock);
            let _ = afc.close_file(handle);
            let _ = proxy.shutdown();
            return Err(e);
        }
        Ok(SyncLock {
            held: Some(Held { proxy, afc, handle }),
        })
    }

    /// Unlocks, closes the lock file, posts syncDidFinish and shuts notification_proxy down.
    /// Every step is tried; the first error is returned.
    pub fn release(mut self) -> Result<(), DeviceError> {
        match self.held.take() {
            Some(held) => held.release(),
            None => Ok(()),
        }
    }
}

impl Drop for SyncLock {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let _ = held.release();
        }
    }
}

impl Held {
    fn release(mut self) -> Result<(), DeviceError> {
        let mut first = None;
        let mut note = |result: Result<(), DeviceError>| -> bool {
            let gone = matches!(
                result,
                Err(DeviceError::Closed { .. } | DeviceError::Timeout { .. })
            );
            if let Err(e) = result {
                first.get_or_insert(e);
            }
            // A phone that went away answers nothing more on this connection.
            !gone
        };
        if note(self.afc.lock(self.handle, LockOp::Unlock)) {
            note(self.afc.close_file(self.handle));
        }
        if note(self.proxy.post(SYNC_DID_FINISH)) {
            note(self.proxy.shutdown());
        }
        first.map_or(Ok(()), Err)
    }
}

/// The exclusive lock, asked for up to `retry.attempts` times while it would block.
fn lock_with_retries(
    afc: &mut AfcClient,
    handle: u64,
    retry: LockRetry,
) -> Result<(), DeviceError> {
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        match afc.lock(handle, LockOp::ExclusiveNonBlocking) {
            Ok(()) => return Ok(()),
            Err(DeviceError::Afc {
                status: AfcStatus::WouldBlock,
                ..
            }) if attempt < attempts => std::thread::sleep(retry.interval),
            Err(DeviceError::Afc {
                status: AfcStatus::WouldBlock,
                ..
            }) => break,
            Err(e) => return Err(e),
        }
    }
    let waited = retry.interval.saturating_mul(attempts - 1);
    Err(DeviceError::SyncBusy {
        secs: waited.as_secs_f64().round() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::lockdown::encode_message;
    use crate::device::lockdown::MaybeTls;
    use crate::device::services::afc::encode_packet;
    use crate::device::services::afc::tests::{client, status, FakeAfc};
    use crate::device::transport::usbmuxd::parse_dict;
    use plist::{Dictionary, Value};
    use std::io::{self, Read, Write};
    use std::sync::{Arc, Mutex};

    /// Both services write what they are asked into one log, so the order across them shows.
    type Log = Arc<Mutex<Vec<String>>>;

    /// notification_proxy that logs each post and answers Shutdown with ProxyDeath.
    struct LoggingProxy {
        log: Log,
        inbox: Vec<u8>,
        outbox: io::Cursor<Vec<u8>>,
    }

    impl Read for LoggingProxy {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.outbox.read(buf)
        }
    }

    impl Write for LoggingProxy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.inbox.extend_from_slice(buf);
            let len = u32::from_be_bytes(self.inbox[..4].try_into().unwrap()) as usize;
            if self.inbox.len() >= 4 + len {
                let body: Vec<u8> = self.inbox.drain(..4 + len).skip(4).collect();
                let message = parse_dict(&body, "t").unwrap();
                let command = message["Command"].as_string().unwrap().to_string();
                match message.get("Name").and_then(Value::as_string) {
                    Some(name) => self.log.lock().unwrap().push(format!("post {name}")),
                    None => self.log.lock().unwrap().push(command.clone()),
                }
                if command == "Shutdown" {
                    let mut death = Dictionary::new();
                    death.insert("Command".into(), "ProxyDeath".into());
                    self.outbox = io::Cursor::new(encode_message(&death, "t").unwrap());
                }
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn proxy(log: &Log) -> NotificationProxy {
        NotificationProxy::over(MaybeTls::Plain(Box::new(LoggingProxy {
            log: log.clone(),
            inbox: Vec::new(),
            outbox: io::Cursor::new(Vec::new()),
        })))
    }

    /// AFC whose lock would block `busy_for` times, logging each operation.
    fn afc(log: &Log, mut busy_for: u32) -> AfcClient {
        let log = log.clone();
        client(FakeAfc::new(move |num, operation, data| {
            let mut log = log.lock().unwrap();
            match operation {
                0x0D => {
                    assert_eq!(&data[..8], &2u64.to_le_bytes(), "opened read-write");
                    assert_eq!(&data[8..], b"/com.apple.itunes.lock_sync\0");
                    log.push("open".into());
                    encode_packet(num, 0x0E, &9u64.to_le_bytes(), &[])
                }
                0x1B => {
                    assert_eq!(&data[..8], &9u64.to_le_bytes());
                    let op = u64::from_le_bytes(data[8..16].try_into().unwrap());
                    if op == 6 && busy_for > 0 {
                        busy_for -= 1;
                        log.push("lock busy".into());
                        return status(num, 19);
                    }
                    log.push(if op == 6 { "lock" } else { "unlock" }.into());
                    status(num, 0)
                }
                0x14 => {
                    log.push("close".into());
                    status(num, 0)
                }
                other => panic!("unexpected AFC operation {other:#x}"),
            }
        }))
    }

    fn quick(attempts: u32) -> LockRetry {
        LockRetry {
            attempts,
            interval: Duration::from_millis(1),
        }
    }

    #[test]
    fn acquire_and_release_in_the_documented_order() {
        let log = Log::default();
        let lock = SyncLock::over(proxy(&log), afc(&log, 2), quick(50)).unwrap();
        lock.release().unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                format!("post {SYNC_WILL_START}"),
                "open".into(),
                format!("post {SYNC_LOCK_REQUEST}"),
                "lock busy".into(),
                "lock busy".into(),
                "lock".into(),
                format!("post {SYNC_DID_START}"),
                "unlock".into(),
                "close".into(),
                format!("post {SYNC_DID_FINISH}"),
                "Shutdown".into(),
            ]
        );
    }

    #[test]
    fn a_lock_held_all_along_is_sync_busy_and_gives_the_file_back() {
        let log = Log::default();
        let err = SyncLock::over(proxy(&log), afc(&log, u32::MAX), quick(5))
            .err()
            .unwrap();
        assert!(matches!(err, DeviceError::SyncBusy { .. }), "{err}");
        assert_eq!(err.code(), "device.sync_busy");
        assert!(err.hint().contains("Finder"));
        let log = log.lock().unwrap();
        assert_eq!(log.iter().filter(|l| *l == "lock busy").count(), 5);
        assert!(
            log.ends_with(&["close".into(), "Shutdown".into()]),
            "{log:?}"
        );
        assert!(!log.contains(&format!("post {SYNC_DID_START}")));
        assert!(!log.contains(&format!("post {SYNC_DID_FINISH}")));
    }

    #[test]
    fn the_default_retry_waits_about_ten_seconds() {
        let retry = LockRetry::default();
        assert_eq!(retry.attempts, 50);
        assert_eq!(retry.interval, Duration::from_millis(200));
    }

    #[test]
    fn dropping_the_lock_releases_it() {
        let log = Log::default();
        let lock = SyncLock::over(proxy(&log), afc(&log, 0), quick(1)).unwrap();
        drop(lock);
        let log = log.lock().unwrap();
        assert!(log.ends_with(&[
            "unlock".into(),
            "close".into(),
            format!("post {SYNC_DID_FINISH}"),
            "Shutdown".into()
        ]));
    }

    #[test]
    fn other_lock_errors_are_not_retried() {
        let log = Log::default();
        let afc = client(FakeAfc::new(|num, operation, _| match operation {
            0x0D => encode_packet(num, 0x0E, &9u64.to_le_bytes(), &[]),
            0x1B => status(num, 10),
            _ => status(num, 0),
        }));
        let err = SyncLock::over(proxy(&log), afc, quick(50)).err().unwrap();
        assert!(
            matches!(
                err,
                DeviceError::Afc {
                    status: AfcStatus::PermissionDenied,
                    ..
                }
            ),
            "{err}"
        );
    }
}
