//! The lockdown services the simulated phone serves besides lockdownd itself. This file holds
//! what they share: the notification bus every notification_proxy connection listens on (the
//! backup driver posts the phone's own notifications here, such as a cancel request or a
//! passcode prompt). Starting services (StartService, their ports, TLS) and the services
//! themselves come next, one module each.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

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
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    /// Posts `name` as the phone: every live subscriber gets it.
    pub fn post(&self, name: &str) {
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|tx| tx.send(name.to_string()).is_ok());
    }
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
}
