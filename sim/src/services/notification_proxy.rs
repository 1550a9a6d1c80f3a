//! com.apple.mobile.notification_proxy on the simulated phone: the computer observes names
//! (ObserveNotification) and posts its own (PostNotification, kept in the phone's log of what
//! computers posted); the phone relays every notification posted on its [`NotificationBus`]
//! whose name the client observes, as `RelayNotification`, for as long as the client stays
//! connected; `Shutdown` is answered with `ProxyDeath` and ends the connection.
//!
//! [`Proxy`] is the message handling alone (a request in, answers out), tested without a
//! stream; [`serve`] runs it on a connection, polling the client (a short read timeout) and the
//! bus in turn.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};

use super::SERVICE_IDLE;
use super::{lock, send_plist, timed_out, FrameReader, NotificationBus, ServiceStream};
use ibackup::device::DeviceError;

/// How long one read waits before the bus is looked at again: a relayed notification reaches
/// the client at most this late.
const POLL: Duration = Duration::from_millis(50);
/// The longest notification name accepted (real ones are under 100 bytes).
const MAX_NAME: usize = 1024;
/// How many names one connection may observe.
const MAX_OBSERVED: usize = 256;

/// What one request asks of the proxy.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Messages to send back, in order.
    pub answers: Vec<Dictionary>,
    /// A notification the computer posted.
    pub posted: Option<String>,
    /// The connection ends after the answers.
    pub end: bool,
}

/// One connection's state: the names its client observes.
#[derive(Debug, Default)]
pub struct Proxy {
    observed: BTreeSet<String>,
}

fn bad(detail: String) -> DeviceError {
    DeviceError::BadReply {
        what: "a notification_proxy request".to_string(),
        detail,
    }
}

fn command(name: &str) -> Dictionary {
    let mut dict = Dictionary::new();
    dict.insert("Command".into(), name.into());
    dict
}

impl Proxy {
    /// Handles one request. A request without a usable Command or Name is an error (the
    /// connection ends), as is observing more than [`MAX_OBSERVED`] names.
    pub fn handle(&mut self, request: &Dictionary) -> Result<Outcome, DeviceError> {
        let name = || -> Result<String, DeviceError> {
            let name = request
                .get("Name")
                .and_then(Value::as_string)
                .ok_or_else(|| bad("no Name string".to_string()))?;
            if name.is_empty() || name.len() > MAX_NAME {
                return Err(bad(format!(
                    "a Name of {} bytes (1 to {MAX_NAME} allowed)",
                    name.len()
                )));
            }
            Ok(name.to_string())
        };
        match request.get("Command").and_then(Value::as_string) {
            Some("ObserveNotification") => {
                let name = name()?;
                if !self.observed.contains(&name) && self.observed.len() >= MAX_OBSERVED {
                    return Err(bad(format!("more than {MAX_OBSERVED} names observed")));
                }
                self.observed.insert(name);
                Ok(Outcome::default())
            }
            Some("PostNotification") => Ok(Outcome {
                posted: Some(name()?),
                ..Outcome::default()
            }),
            Some("Shutdown") => Ok(Outcome {
                answers: vec![command("ProxyDeath")],
                end: true,
                ..Outcome::default()
            }),
            Some(other) => Err(bad(format!("unknown Command {other:?}"))),
            None => Err(bad("no Command string".to_string())),
        }
    }

    /// The message relaying `name`, posted by the phone, when this client observes it.
    pub fn relay(&self, name: &str) -> Option<Dictionary> {
        self.observed.contains(name).then(|| {
            let mut dict = command("RelayNotification");
            dict.insert("Name".into(), name.into());
            dict
        })
    }
}

/// Serves one notification_proxy connection until the client shuts it down, goes away, sends
/// something malformed, or stays silent for [`SERVICE_IDLE`].
pub fn serve(
    bus: &NotificationBus,
    posted: &Mutex<Vec<String>>,
    mut stream: Box<dyn ServiceStream>,
) -> Result<(), DeviceError> {
    let relayed = bus.subscribe();
    let mut proxy = Proxy::default();
    let mut frames = FrameReader::default();
    stream
        .set_read_timeout(Some(POLL))
        .map_err(|e| DeviceError::Io {
            what: "setting up notification_proxy".to_string(),
            source: e,
        })?;
    let mut buf = [0u8; 4096];
    let mut heard = Instant::now();
    loop {
        while let Ok(name) = relayed.try_recv() {
            if let Some(message) = proxy.relay(&name) {
                send_plist(&mut stream, &message)?;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                frames.push(&buf[..n]);
                heard = Instant::now();
            }
            Err(e) if timed_out(&e) => {
                if heard.elapsed() > SERVICE_IDLE {
                    return Ok(());
                }
                continue;
            }
            Err(e) => {
                return Err(DeviceError::Io {
                    what: "reading a notification_proxy request".to_string(),
                    source: e,
                })
            }
        }
        while let Some(request) = frames.next_message("a notification_proxy request")? {
            let outcome = proxy.handle(&request)?;
            if let Some(name) = outcome.posted {
                lock(posted).push(name);
            }
            for answer in &outcome.answers {
                send_plist(&mut stream, answer)?;
            }
            if outcome.end {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(command: &str, name: Option<&str>) -> Dictionary {
        let mut dict = Dictionary::new();
        dict.insert("Command".into(), command.into());
        if let Some(name) = name {
            dict.insert("Name".into(), name.into());
        }
        dict
    }

    #[test]
    fn observed_names_are_relayed_and_others_are_not() {
        let mut proxy = Proxy::default();
        let out = proxy
            .handle(&request(
                "ObserveNotification",
                Some("com.apple.itunes-client.syncCancelRequest"),
            ))
            .unwrap();
        assert_eq!(out, Outcome::default());
        let relay = proxy
            .relay("com.apple.itunes-client.syncCancelRequest")
            .unwrap();
        assert_eq!(relay, {
            let mut d = request("RelayNotification", None);
            d.insert(
                "Name".into(),
                "com.apple.itunes-client.syncCancelRequest".into(),
            );
            d
        });
        assert_eq!(
            proxy.relay("com.apple.itunes-client.syncSuspendRequest"),
            None
        );
    }

    #[test]
    fn a_post_is_reported_and_shutdown_answers_proxy_death() {
        let mut proxy = Proxy::default();
        let out = proxy
            .handle(&request(
                "PostNotification",
                Some("com.apple.itunes-mobdev.syncWillStart"),
            ))
            .unwrap();
        assert_eq!(
            out.posted.as_deref(),
            Some("com.apple.itunes-mobdev.syncWillStart")
        );
        assert!(out.answers.is_empty() && !out.end);
        let out = proxy.handle(&request("Shutdown", None)).unwrap();
        assert_eq!(out.answers, vec![request("ProxyDeath", None)]);
        assert!(out.end);
    }

    #[test]
    fn malformed_requests_are_clear_errors() {
        let mut proxy = Proxy::default();
        for (req, words) in [
            (Dictionary::new(), "no Command"),
            (request("Launch", None), "unknown Command \"Launch\""),
            (request("PostNotification", None), "no Name"),
            (request("ObserveNotification", Some("")), "0 bytes"),
            (
                request("ObserveNotification", Some(&"x".repeat(MAX_NAME + 1))),
                "1025 bytes",
            ),
        ] {
            let err = proxy.handle(&req).unwrap_err().to_string();
            assert!(err.contains(words), "{err}");
        }
        let mut wrong_type = Dictionary::new();
        wrong_type.insert("Command".into(), Value::Integer(3.into()));
        assert!(proxy.handle(&wrong_type).is_err());
    }

    #[test]
    fn observing_is_capped() {
        let mut proxy = Proxy::default();
        for i in 0..MAX_OBSERVED {
            proxy
                .handle(&request("ObserveNotification", Some(&format!("n{i}"))))
                .unwrap();
        }
        // The same name again is fine; one more is not.
        proxy
            .handle(&request("ObserveNotification", Some("n0")))
            .unwrap();
        let err = proxy
            .handle(&request("ObserveNotification", Some("one too many")))
            .unwrap_err();
        assert!(err.to_string().contains("more than 256"), "{err}");
    }
}
