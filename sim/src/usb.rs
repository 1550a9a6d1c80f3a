//! The simulated iPhone's USB side: the device end of the usbmux protocol over a pair of bulk
//! pipes, with the simulator's lockdownd (server.rs) behind port 62078 and the services it
//! started behind their ports. It answers VERSION (protocol 2, or 1 like an old phone), takes
//! SETUP, accepts SYN to lockdownd or a started service's port with SYN|ACK and refuses other
//! ports with RST and a reason, acknowledges the host's data, and splits its
//! own packets into 16 KiB transfers with a zero-length packet after a multiple of the max
//! packet size, as a phone does. Faults ([`UsbFault`]) make it misbehave on purpose.
//!
//! Reached through [`ibackup::device::transport::usb::emulated`]: in memory for tests, or a Unix socket
//! (`ibackup-sim --usb`) for the real binary. Not for production use.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use super::phone::Phone;
use super::server::{serve_lockdown, serve_service};
use super::services::ServiceStream;
use ibackup::device::lockdown;
use ibackup::device::transport::usb::frame::{self, Body, Packet, Sequence, Tcp};
use ibackup::device::transport::usb::mux::BulkPipes;
use ibackup::device::DeviceError;

/// How the emulated phone behaves on USB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbOptions {
    /// The mux protocol it answers VERSION with: 2 (current phones) or 1 (old ones).
    pub protocol: u32,
    /// wMaxPacketSize of its endpoints (512 for USB 2 high speed).
    pub max_packet_size: usize,
    /// A CONTROL info message sent after the handshake, as phones sometimes do.
    pub greeting: Option<String>,
    pub fault: Option<UsbFault>,
}

impl Default for UsbOptions {
    fn default() -> Self {
        UsbOptions {
            protocol: 2,
            max_packet_size: 512,
            greeting: None,
            fault: None,
        }
    }
}

/// Ways the emulated phone misbehaves, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsbFault {
    /// Refuses lockdownd (RST with a reason) as a phone does before it is ready.
    RefuseLockdown,
    /// Sends every data packet twice (the same sequence numbers again).
    DuplicateData,
    /// Skips 1000 bytes of sequence space before its first data packet.
    OutOfOrder,
    /// Announces a 1 MiB packet instead of its first data packet.
    OversizeFrame,
    /// Sends the first transfer of its first data packet, then disappears (unplugged).
    VanishMidTransfer,
    /// Resets every connection with a reason after its first data packet.
    ResetAfterFirstReply,
}

impl std::str::FromStr for UsbFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "refuse_lockdown" => UsbFault::RefuseLockdown,
            "duplicate_data" => UsbFault::DuplicateData,
            "out_of_order" => UsbFault::OutOfOrder,
            "oversize_frame" => UsbFault::OversizeFrame,
            "vanish_mid_transfer" => UsbFault::VanishMidTransfer,
            "reset_after_first_reply" => UsbFault::ResetAfterFirstReply,
            other => return Err(format!("unknown USB fault {other:?}")),
        })
    }
}

/// What a lockdownd (or service) thread tells the USB loop.
enum Event {
    Data(u16, Vec<u8>),
    Closed(u16),
}

/// One connection from the host.
struct DeviceConnection {
    /// lockdownd's port on the phone.
    port: u16,
    /// Our next sequence number, and the next one we expect from the host.
    seq: u32,
    expected: u32,
    to_lockdown: Sender<Vec<u8>>,
    /// The host's last acknowledgement and its window (bytes): what is sent never runs more
    /// than the window ahead of what the host acknowledged, as a phone's TCP does.
    acked: u32,
    window: u32,
    /// What the service wrote that the window does not allow yet.
    outbox: std::collections::VecDeque<u8>,
    /// The service closed: the connection is reset once the outbox is sent.
    closing: bool,
}

/// The lockdownd (or service) thread's end of a connection.
struct Bridge {
    port: u16,
    from_host: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    to_host: Sender<Event>,
    /// How long a read waits for the host (None: for as long as the connection lives).
    timeout: Option<Duration>,
}

/// How long lockdownd waits for the host before it gives up.
const BRIDGE_IDLE: Duration = Duration::from_secs(30);

impl Read for Bridge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            let received = match self.timeout {
                Some(timeout) => self.from_host.recv_timeout(timeout),
                None => self
                    .from_host
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(bytes) => self.pending = bytes,
                Err(RecvTimeoutError::Timeout) => return Err(io::ErrorKind::TimedOut.into()),
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

impl Write for Bridge {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.to_host
            .send(Event::Data(self.port, buf.to_vec()))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ServiceStream for Bridge {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
}

/// The device side of one plug-in: runs until the host goes away (or a fault ends it).
struct Device<'a> {
    phone: Arc<Phone>,
    pipes: Box<dyn BulkPipes>,
    options: &'a UsbOptions,
    wide: bool,
    tx_seq: u16,
    host_seq: u16,
    partial: Vec<u8>,
    connections: HashMap<u16, DeviceConnection>,
    events: (Sender<Event>, Receiver<Event>),
    replies_sent: u32,
}

/// Serves the host at the other end of `pipes` with `phone`'s lockdownd.
pub fn serve_usb(
    phone: Arc<Phone>,
    pipes: Box<dyn BulkPipes>,
    options: &UsbOptions,
) -> Result<(), DeviceError> {
    let mut device = Device {
        phone,
        pipes,
        options,
        wide: false,
        tx_seq: 0,
        host_seq: 0,
        partial: Vec::new(),
        connections: HashMap::new(),
        events: mpsc::channel(),
        replies_sent: 0,
    };
    device.run()
}

fn io_error(what: &str, e: io::Error) -> DeviceError {
    DeviceError::Io {
        what: what.to_string(),
        source: e,
    }
}

impl Device<'_> {
    fn run(&mut self) -> Result<(), DeviceError> {
        let mut buf = vec![0u8; frame::MAX_PACKET];
        loop {
            match self.pipes.read(&mut buf, Duration::from_millis(5)) {
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                // The host let go of the phone: the end of this plug-in.
                Err(_) => return Ok(()),
            }
            while let Some(packet) = self.take_packet()? {
                if !self.handle(packet)? {
                    return Ok(());
                }
            }
            if !self.forward_lockdown()? {
                return Ok(());
            }
        }
    }

    fn take_packet(&mut self) -> Result<Option<Packet>, DeviceError> {
        let bad = |e: frame::FrameError| DeviceError::BadReply {
            what: "a packet from the host".to_string(),
            detail: e.to_string(),
        };
        let length = match frame::announced_length(&self.partial, self.wide).map_err(bad)? {
            Some(length) if self.partial.len() >= length => length,
            _ => return Ok(None),
        };
        let packet = frame::decode(&self.partial[..length], self.wide).map_err(bad)?;
        self.partial.drain(..length);
        if let Some(seq) = packet.sequence {
            self.host_seq = seq.tx;
        }
        Ok(Some(packet))
    }

    /// Sends one packet as a phone does: 16 KiB transfers, then a zero-length packet when the
    /// length is a multiple of the max packet size.
    fn send(&mut self, body: &Body) -> Result<(), DeviceError> {
        let bytes = self.encode(body);
        self.send_bytes(&bytes)
    }

    fn encode(&mut self, body: &Body) -> Vec<u8> {
        let sequence = self.wide.then(|| {
            let s = Sequence {
                tx: self.tx_seq,
                rx: self.host_seq,
            };
            self.tx_seq = self.tx_seq.wrapping_add(1);
            s
        });
        frame::encode(sequence, body)
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), DeviceError> {
        for chunk in bytes.chunks(frame::READ_SIZE) {
            self.pipes
                .write(chunk)
                .map_err(|e| io_error("sending to the host", e))?;
        }
        if bytes.len() % self.options.max_packet_size.max(1) == 0 {
            self.pipes
                .write(&[])
                .map_err(|e| io_error("sending a zero-length packet", e))?;
        }
        Ok(())
    }

    fn tcp(&mut self, host_port: u16, flags: u8, payload: &[u8]) -> Result<(), DeviceError> {
        let (port, seq, ack) = match self.connections.get(&host_port) {
            Some(c) => (c.port, c.seq, c.expected),
            None => return Ok(()),
        };
        let body = Body::Tcp {
            header: Tcp {
                source_port: port,
                dest_port: host_port,
                seq,
                ack,
                flags,
                window: 0x200,
            },
            payload: payload.to_vec(),
        };
        self.send(&body)
    }

    /// Handles one packet from the host; `false` ends the plug-in.
    fn handle(&mut self, packet: Packet) -> Result<bool, DeviceError> {
        match packet.body {
            Body::Version { .. } => {
                // A new host session (on a real gadget the next host program on the same
                // plug-in): the earlier host's connections are gone with it.
                self.connections.clear();
                let reply = Body::Version {
                    major: self.options.protocol,
                    minor: 0,
                };
                let bytes = frame::encode(None, &reply);
                self.send_bytes(&bytes)?;
                if self.options.protocol >= 2 {
                    self.wide = true;
                } else {
                    self.greet()?;
                }
            }
            Body::Setup(_) => {
                self.tx_seq = 0;
                self.greet()?;
            }
            Body::Control { .. } => {}
            Body::Tcp { header, payload } => return self.tcp_input(header, payload),
        }
        Ok(true)
    }

    fn greet(&mut self) -> Result<(), DeviceError> {
        if let Some(text) = self.options.greeting.clone() {
            self.send(&Body::Control {
                kind: frame::CONTROL_INFO,
                text,
            })?;
        }
        Ok(())
    }

    fn tcp_input(&mut self, header: Tcp, payload: Vec<u8>) -> Result<bool, DeviceError> {
        let host_port = header.source_port;
        if header.flags & frame::RST != 0 {
            // Dropping the sender ends the lockdownd thread's reads.
            self.connections.remove(&host_port);
            return Ok(true);
        }
        if header.flags & frame::SYN != 0 {
            return self.accept(header).map(|_| true);
        }
        let Some(conn) = self.connections.get_mut(&host_port) else {
            return Ok(true);
        };
        if header.flags & frame::ACK != 0 {
            conn.acked = header.ack;
            conn.window = u32::from(header.window) << 8;
        }
        if payload.is_empty() {
            return self.flush(host_port);
        }
        if header.seq != conn.expected {
            return Err(DeviceError::BadReply {
                what: "a host packet".to_string(),
                detail: format!("sequence {} where {} was due", header.seq, conn.expected),
            });
        }
        conn.expected = conn.expected.wrapping_add(payload.len() as u32);
        // lockdownd may have finished: its end is gone, nothing to forward to.
        let _ = conn.to_lockdown.send(payload);
        self.tcp(host_port, frame::ACK, &[])?;
        Ok(true)
    }

    fn accept(&mut self, header: Tcp) -> Result<(), DeviceError> {
        let host_port = header.source_port;
        let port = header.dest_port;
        // A started service's port takes this one connection.
        let service = (port != lockdown::PORT)
            .then(|| self.phone.claim_service(port))
            .flatten();
        let refuse = if port != lockdown::PORT && service.is_none() {
            Some(format!("nothing listens on port {port}\n"))
        } else if port == lockdown::PORT && self.options.fault == Some(UsbFault::RefuseLockdown) {
            Some("lockdownd is not ready\n".to_string())
        } else {
            None
        };
        if let Some(reason) = refuse {
            let body = Body::Tcp {
                header: Tcp {
                    source_port: port,
                    dest_port: host_port,
                    seq: 0,
                    ack: header.seq.wrapping_add(1),
                    flags: frame::RST,
                    window: 0,
                },
                payload: reason.into_bytes(),
            };
            return self.send(&body);
        }
        let (to_lockdown, from_host) = mpsc::channel();
        let bridge = Bridge {
            port: host_port,
            from_host,
            pending: Vec::new(),
            to_host: self.events.0.clone(),
            timeout: Some(BRIDGE_IDLE),
        };
        let phone = Arc::clone(&self.phone);
        let events = self.events.0.clone();
        std::thread::spawn(move || {
            let _ = match service {
                Some(started) => serve_service(&phone, started, Box::new(bridge)),
                None => serve_lockdown(&phone, Box::new(bridge)),
            };
            let _ = events.send(Event::Closed(host_port));
        });
        self.connections.insert(
            host_port,
            DeviceConnection {
                port,
                seq: 0,
                expected: header.seq.wrapping_add(1),
                to_lockdown,
                acked: 1,
                window: u32::from(header.window) << 8,
                outbox: Default::default(),
                closing: false,
            },
        );
        self.tcp(host_port, frame::SYN | frame::ACK, &[])?;
        if let Some(conn) = self.connections.get_mut(&host_port) {
            conn.seq = 1;
        }
        Ok(())
    }

    /// Sends what lockdownd wrote; `false` ends the plug-in (a fault that unplugs the phone).
    fn forward_lockdown(&mut self) -> Result<bool, DeviceError> {
        loop {
            let event = match self.events.1.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(true),
            };
            let host_port = match event {
                Event::Data(host_port, bytes) => {
                    if let Some(conn) = self.connections.get_mut(&host_port) {
                        conn.outbox.extend(bytes);
                    }
                    host_port
                }
                Event::Closed(host_port) => {
                    if let Some(conn) = self.connections.get_mut(&host_port) {
                        conn.closing = true;
                    }
                    host_port
                }
            };
            if !self.flush(host_port)? {
                return Ok(false);
            }
        }
    }

    /// Sends what the window allows of a connection's outbox (in packets of at most 32 KiB),
    /// then the reset of a closed service once nothing is left; `false` ends the plug-in.
    fn flush(&mut self, host_port: u16) -> Result<bool, DeviceError> {
        loop {
            let Some(conn) = self.connections.get_mut(&host_port) else {
                return Ok(true);
            };
            let in_flight = conn.seq.wrapping_sub(conn.acked);
            let room = conn.window.saturating_sub(in_flight) as usize;
            let take = conn.outbox.len().min(room).min(32 * 1024);
            if take == 0 {
                if conn.outbox.is_empty() && conn.closing {
                    self.tcp(host_port, frame::RST, b"lockdownd closed the connection")?;
                    self.connections.remove(&host_port);
                }
                return Ok(true);
            }
            let chunk: Vec<u8> = conn.outbox.drain(..take).collect();
            if !self.reply(host_port, &chunk)? {
                return Ok(false);
            }
        }
    }

    /// One data packet to the host, with the fault applied to the first one.
    fn reply(&mut self, host_port: u16, data: &[u8]) -> Result<bool, DeviceError> {
        let Some(conn) = self.connections.get_mut(&host_port) else {
            return Ok(true);
        };
        let first = self.replies_sent == 0;
        self.replies_sent += 1;
        let fault = self.options.fault.filter(|_| first);
        if fault == Some(UsbFault::OutOfOrder) {
            conn.seq = conn.seq.wrapping_add(1000);
        }
        let (port, seq, ack) = (conn.port, conn.seq, conn.expected);
        conn.seq = conn.seq.wrapping_add(data.len() as u32);
        let body = Body::Tcp {
            header: Tcp {
                source_port: port,
                dest_port: host_port,
                seq,
                ack,
                flags: frame::ACK,
                window: 0x200,
            },
            payload: data.to_vec(),
        };
        let bytes = self.encode(&body);
        match self.options.fault {
            Some(UsbFault::OversizeFrame) if first => {
                let mut bogus = bytes[..frame::WIDE_HEADER.min(bytes.len())].to_vec();
                bogus[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
                self.send_bytes(&bogus)?;
            }
            Some(UsbFault::VanishMidTransfer) if first => {
                let half = &bytes[..bytes.len() / 2];
                let _ = self.pipes.write(half);
                return Ok(false);
            }
            Some(UsbFault::DuplicateData) => {
                self.send_bytes(&bytes)?;
                let again = self.encode(&body);
                self.send_bytes(&again)?;
            }
            Some(UsbFault::ResetAfterFirstReply) if first => {
                self.send_bytes(&bytes)?;
                self.tcp(host_port, frame::RST, b"the phone reset the connection\n")?;
                self.connections.remove(&host_port);
            }
            _ => self.send_bytes(&bytes)?,
        }
        Ok(true)
    }
}
