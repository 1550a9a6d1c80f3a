//! The host side of the usbmux protocol over a pair of bulk pipes: the VERSION/SETUP handshake,
//! then a small TCP per connection (SYN, SYN|ACK, ACK, RST, sequence and acknowledgement
//! numbers, windows in 256-byte units) and a demultiplexer, so several connections share one
//! phone. Each connection is a `Read + Write` stream, so lockdown and TLS run over it unchanged.
//!
//! The pipes are behind [`BulkPipes`]: libusb in `libusb.rs`, a socket to an emulated phone in
//! `emulated.rs`, in-memory channels in tests. No background thread: whichever connection waits
//! for bytes reads the IN pipe and files each packet under the connection it belongs to.
//!
//! Not here: finding or claiming the phone (libusb.rs), what the bytes mean (lockdown).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::frame::{self, Body, Packet, Sequence, Tcp};
use crate::device::{transport, DeviceError};

/// One bulk IN and one bulk OUT endpoint. Each `write` is one bulk transfer; each `read` returns
/// one transfer (`Ok(0)` is a zero-length packet). A read that times out fails with
/// `ErrorKind::TimedOut`; a device that is gone fails with another kind.
pub trait BulkPipes: Send {
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// wMaxPacketSize of the OUT endpoint.
    fn max_packet_size(&self) -> usize;
}

/// Each pipe read waits at most this long before the lock is released, so a second
/// connection's writer is never held up for longer.
const READ_SLICE: Duration = Duration::from_millis(100);
/// Bytes a connection buffers before the phone has to wait (the window we advertise shrinks).
const INBOX_CAPACITY: usize = 256 * 1024;
/// The largest TCP payload in one packet. [usbmuxd src/device.c max_payload]
const MAX_PAYLOAD: usize = frame::MAX_WRITE - frame::WIDE_HEADER - frame::TCP_HEADER;

/// A CONTROL message from the phone (3 error, 5 warning, 7 info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMessage {
    pub kind: u8,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    /// The phone refused the SYN (RST, with its reason).
    Refused(String),
    /// The phone reset an open connection (its reason), or the stream broke.
    Reset(String),
    /// The phone finished sending (FIN): reads end once the inbox is empty.
    Finished,
}

struct Connection {
    device_port: u16,
    state: State,
    /// Our next sequence number, and the phone's last acknowledgement and window (bytes).
    tx_seq: u32,
    peer_acked: u32,
    peer_window: u32,
    /// The next byte we expect from the phone.
    rx_next: u32,
    inbox: VecDeque<u8>,
}

struct Inner {
    pipes: Box<dyn BulkPipes>,
    /// Protocol-2 headers (magic, sequence numbers) after VERSION 2.
    wide: bool,
    tx_seq: u16,
    rx_seq: u16,
    /// Bytes of a packet that spans transfers.
    partial: Vec<u8>,
    connections: HashMap<u16, Connection>,
    next_port: u16,
    /// Why the phone can no longer be used (unplugged, protocol violation).
    dead: Option<String>,
    controls: Vec<ControlMessage>,
}

/// One phone's mux session, shared by its connections.
pub struct Mux {
    inner: Mutex<Inner>,
    /// Names the phone in messages.
    label: String,
    version: u32,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A thread that panicked mid-packet leaves consistent enough state for the others to fail
    // cleanly on; poisoning must not turn into a second panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn protocol_error(label: &str, detail: impl Into<String>) -> DeviceError {
    DeviceError::BadReply {
        what: format!("usbmux data from {label}"),
        detail: detail.into(),
    }
}

impl Mux {
    /// Negotiates the protocol with the phone behind `pipes`: VERSION 2 (a protocol-1 phone
    /// answers 1 and gets narrow headers), then SETUP 0x07 for protocol 2.
    pub fn open(
        pipes: Box<dyn BulkPipes>,
        label: &str,
        timeout: Duration,
    ) -> Result<Arc<Mux>, DeviceError> {
        let mut inner = Inner {
            pipes,
            wide: false,
            tx_seq: 0,
            rx_seq: 0,
            partial: Vec::new(),
            connections: HashMap::new(),
            next_port: 1,
            dead: None,
            controls: Vec::new(),
        };
        inner
            .send(&Body::Version { major: 2, minor: 0 })
            .map_err(|e| DeviceError::io(format!("sending VERSION to {label}"), e))?;
        let deadline = crate::device::deadline_after(timeout);
        let version = inner.version_reply(deadline, label)?;
        match version {
            1 => {}
            2 => {
                inner.wide = true;
                // SETUP restarts the header sequence numbers. [usbmuxd src/device.c send_packet]
                inner.tx_seq = 0;
                inner.rx_seq = 0xffff;
                inner
                    .send(&Body::Setup(frame::SETUP_BYTE))
                    .map_err(|e| DeviceError::io(format!("sending SETUP to {label}"), e))?;
            }
            other => {
                return Err(protocol_error(
                    label,
                    format!("the phone speaks mux protocol {other}; only 1 and 2 are known"),
                ))
            }
        }
        Ok(Arc::new(Mux {
            inner: Mutex::new(inner),
            label: label.to_string(),
            version,
        }))
    }

    /// The negotiated protocol version (1 or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// CONTROL messages the phone sent so far (at most the last 16).
    pub fn control_messages(&self) -> Vec<ControlMessage> {
        lock(&self.inner).controls.clone()
    }

    /// Opens a connection to `port` on the phone.
    pub fn connect(self: &Arc<Self>, port: u16) -> Result<MuxStream, DeviceError> {
        let what = format!("the phone's answer to a connection to port {port}");
        let deadline = Instant::now() + transport::IO_TIMEOUT;
        let local = {
            let mut inner = lock(&self.inner);
            inner.alive(&what)?;
            let local = inner.free_port().ok_or_else(|| {
                protocol_error(&self.label, "every local port is in use".to_string())
            })?;
            inner.connections.insert(
                local,
                Connection {
                    device_port: port,
                    state: State::Connecting,
                    tx_seq: 0,
                    peer_acked: 0,
                    peer_window: 0,
                    rx_next: 0,
                    inbox: VecDeque::new(),
                },
            );
            if let Err(e) = inner.send_tcp(local, frame::SYN, &[]) {
                inner.connections.remove(&local);
                return Err(DeviceError::io(format!("sending SYN for port {port}"), e));
            }
            local
        };
        let stream = MuxStream {
            mux: Arc::clone(self),
            local,
            port,
        };
        loop {
            let mut inner = lock(&self.inner);
            match inner.connections.get(&local).map(|c| c.state.clone()) {
                Some(State::Connecting) => {}
                Some(State::Refused(reason)) => {
                    return Err(DeviceError::PortRefused { port, reason });
                }
                Some(_) => return Ok(stream),
                None => {
                    return Err(DeviceError::PortRefused {
                        port,
                        reason: String::new(),
                    })
                }
            }
            if Instant::now() >= deadline {
                return Err(DeviceError::Timeout {
                    what,
                    secs: transport::IO_TIMEOUT.as_secs(),
                });
            }
            inner.pump(deadline, &self.label)?;
        }
    }
}

impl Inner {
    fn alive(&self, what: &str) -> Result<(), DeviceError> {
        match &self.dead {
            Some(why) => Err(DeviceError::Closed {
                what: format!("{what} ({why})"),
                at_start: false,
            }),
            None => Ok(()),
        }
    }

    fn free_port(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let port = self.next_port;
            self.next_port = self.next_port.checked_add(1).unwrap_or(1);
            if port != 0 && !self.connections.contains_key(&port) {
                return Some(port);
            }
        }
        None
    }

    fn note_control(&mut self, kind: u8, text: String) {
        if self.controls.len() == 16 {
            self.controls.remove(0);
        }
        self.controls.push(ControlMessage { kind, text });
    }

    /// Sends one packet, then a zero-length packet when its length is a multiple of the
    /// endpoint's max packet size, or the phone would wait for more. [usbmuxd src/usb.c usb_send]
    fn send(&mut self, body: &Body) -> io::Result<()> {
        let sequence = if self.wide {
            Some(Sequence {
                tx: self.tx_seq,
                rx: self.rx_seq,
            })
        } else {
            None
        };
        let bytes = frame::encode(sequence, body);
        if self.wide {
            self.tx_seq = self.tx_seq.wrapping_add(1);
        }
        self.pipes.write(&bytes)?;
        let packet_size = self.pipes.max_packet_size();
        if packet_size > 0 && bytes.len() % packet_size == 0 {
            self.pipes.write(&[])?;
        }
        Ok(())
    }

    fn send_tcp(&mut self, local: u16, flags: u8, payload: &[u8]) -> io::Result<()> {
        let Some(conn) = self.connections.get(&local) else {
            return Ok(());
        };
        let room = INBOX_CAPACITY.saturating_sub(conn.inbox.len());
        let header = Tcp {
            source_port: local,
            dest_port: conn.device_port,
            seq: conn.tx_seq,
            ack: conn.rx_next,
            flags,
            window: u16::try_from(room >> 8).unwrap_or(u16::MAX),
        };
        self.send(&Body::Tcp {
            header,
            payload: payload.to_vec(),
        })
    }

    /// Reads until the phone answers VERSION. What comes before is stale: what the phone still
    /// had queued for an earlier program on the same plug-in (replies it never read, with
    /// protocol-2 headers, or the rest of a packet it stopped reading halfway). Such packets
    /// are skipped, and bytes that do not even frame are dropped a transfer at a time (the
    /// phone starts each packet on a new transfer), so they never spoil the new session.
    fn version_reply(&mut self, deadline: Instant, label: &str) -> Result<u32, DeviceError> {
        loop {
            loop {
                let length = match frame::announced_length(&self.partial, false) {
                    Ok(Some(length)) if self.partial.len() >= length => length,
                    Ok(_) => break,
                    Err(_) => {
                        self.partial.clear();
                        break;
                    }
                };
                let bytes: Vec<u8> = self.partial.drain(..length).collect();
                match frame::decode(&bytes, false).map(|p| p.body) {
                    Ok(Body::Version { major, .. }) => return Ok(major),
                    Ok(Body::Control { kind, text }) => self.note_control(kind, text),
                    _ => {}
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DeviceError::Timeout {
                    what: format!("the answer of {label} to VERSION"),
                    secs: transport::IO_TIMEOUT.as_secs(),
                });
            }
            self.read_transfer((deadline - now).min(READ_SLICE), label)?;
        }
    }

    /// One packet from the bytes gathered so far, if a whole one is there.
    fn take_packet(&mut self, label: &str) -> Result<Option<Packet>, DeviceError> {
        let length = match frame::announced_length(&self.partial, self.wide) {
            Ok(Some(length)) if self.partial.len() >= length => length,
            Ok(_) => return Ok(None),
            Err(e) => return Err(self.kill(label, e.to_string())),
        };
        let packet = frame::decode(&self.partial[..length], self.wide);
        self.partial.drain(..length);
        match packet {
            Ok(packet) => {
                if let Some(seq) = packet.sequence {
                    // The phone's receive counter is echoed back. [usbmuxd src/device.c device_data_input]
                    self.rx_seq = seq.rx;
                }
                Ok(Some(packet))
            }
            Err(e) => Err(self.kill(label, e.to_string())),
        }
    }

    /// Marks the session dead after a protocol violation: the byte stream can no longer be
    /// split into packets.
    fn kill(&mut self, label: &str, detail: String) -> DeviceError {
        self.dead = Some(format!("the phone sent bad data: {detail}"));
        self.partial.clear();
        for conn in self.connections.values_mut() {
            conn.state = State::Reset(format!("the phone sent bad data: {detail}"));
        }
        protocol_error(label, detail)
    }

    fn read_transfer(&mut self, timeout: Duration, label: &str) -> Result<(), DeviceError> {
        if let Some(why) = &self.dead {
            return Err(DeviceError::Closed {
                what: format!("usbmux data from {label} ({why})"),
                at_start: false,
            });
        }
        let mut buf = vec![0u8; frame::READ_SIZE];
        match self.pipes.read(&mut buf, timeout) {
            Ok(n) => {
                self.partial.extend_from_slice(&buf[..n.min(buf.len())]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => {
                let why = format!("the phone is gone ({e})");
                for conn in self.connections.values_mut() {
                    conn.state = State::Reset(why.clone());
                }
                self.dead = Some(why.clone());
                Err(DeviceError::Closed {
                    what: format!("usbmux data from {label} ({why})"),
                    at_start: false,
                })
            }
        }
    }

    /// Reads one slice of input and files every whole packet.
    fn pump(&mut self, deadline: Instant, label: &str) -> Result<(), DeviceError> {
        let now = Instant::now();
        let slice = deadline.saturating_duration_since(now).min(READ_SLICE);
        self.read_transfer(slice, label)?;
        while let Some(packet) = self.take_packet(label)? {
            self.dispatch(packet);
        }
        Ok(())
    }

    fn dispatch(&mut self, packet: Packet) {
        match packet.body {
            Body::Tcp { header, payload } => self.tcp_input(header, &payload),
            Body::Control { kind, text } => self.note_control(kind, text),
            // A second VERSION or a SETUP from the phone changes nothing once running.
            Body::Version { .. } | Body::Setup(_) => {}
        }
    }

    fn tcp_input(&mut self, header: Tcp, payload: &[u8]) {
        let local = header.dest_port;
        let Some(conn) = self.connections.get_mut(&local) else {
            // A packet for no connection of ours: reset it, as usbmuxd does (never answer a RST).
            if header.flags & frame::RST == 0 {
                let body = Body::Tcp {
                    header: Tcp {
                        source_port: local,
                        dest_port: header.source_port,
                        seq: 0,
                        ack: header.seq,
                        flags: frame::RST,
                        window: 0,
                    },
                    payload: Vec::new(),
                };
                let _ = self.send(&body);
            }
            return;
        };
        conn.peer_acked = header.ack;
        conn.peer_window = u32::from(header.window) << 8;
        let reason = || {
            let text = frame::text_of(payload);
            if text.is_empty() {
                "no reason given".to_string()
            } else {
                text
            }
        };
        match conn.state {
            State::Connecting => {
                if header.flags == frame::SYN | frame::ACK {
                    conn.state = State::Open;
                    conn.tx_seq = conn.tx_seq.wrapping_add(1);
                    conn.rx_next = header.seq.wrapping_add(1);
                    let _ = self.send_tcp(local, frame::ACK, &[]);
                } else if header.flags & frame::RST != 0 {
                    conn.state = State::Refused(reason());
                } else {
                    conn.state = State::Refused(format!(
                        "answered the SYN with flags {:#04x}",
                        header.flags
                    ));
                }
            }
            State::Open => {
                if header.flags & frame::RST != 0 {
                    conn.state = State::Reset(reason());
                    return;
                }
                if header.flags & frame::SYN != 0 {
                    conn.state = State::Reset("the phone sent a second SYN".to_string());
                    let _ = self.send_tcp(local, frame::RST, &[]);
                    return;
                }
                let fresh = match accept_segment(conn.rx_next, header.seq, payload) {
                    Ok(fresh) => fresh,
                    Err(detail) => {
                        conn.state = State::Reset(detail);
                        let _ = self.send_tcp(local, frame::RST, &[]);
                        return;
                    }
                };
                if conn.inbox.len() + fresh.len() > INBOX_CAPACITY {
                    conn.state = State::Reset(format!(
                        "the phone sent more than the {INBOX_CAPACITY} bytes our window allows"
                    ));
                    let _ = self.send_tcp(local, frame::RST, &[]);
                    return;
                }
                conn.inbox.extend(fresh);
                conn.rx_next = conn.rx_next.wrapping_add(fresh.len() as u32);
                if header.flags & frame::FIN != 0 {
                    conn.state = State::Finished;
                }
                if !payload.is_empty() || header.flags & frame::FIN != 0 {
                    // The phone likes prompt ACKs. [usbmuxd src/device.c device_tcp_input]
                    let _ = self.send_tcp(local, frame::ACK, &[]);
                }
            }
            // Late packets for a connection that is already over change nothing.
            State::Refused(_) | State::Reset(_) | State::Finished => {}
        }
    }
}

/// The part of a segment at `seq` that is new when `expected` is the next byte wanted: all of
/// it in order, the tail of a partly repeated one, nothing of a duplicate. A gap (bytes after a
/// missing piece) breaks the stream: USB does not lose packets, so something is wrong.
pub fn accept_segment(expected: u32, seq: u32, payload: &[u8]) -> Result<&[u8], String> {
    let ahead = seq.wrapping_sub(expected);
    if ahead == 0 {
        return Ok(payload);
    }
    // Sequence numbers wrap: "before" means within half the space behind.
    if ahead > u32::MAX / 2 {
        let behind = expected.wrapping_sub(seq) as usize;
        return Ok(payload.get(behind..).unwrap_or(&[]));
    }
    Err(format!(
        "the phone sent bytes out of order (expected sequence {expected}, got {seq})"
    ))
}

/// One connection to a port on the phone.
pub struct MuxStream {
    mux: Arc<Mux>,
    local: u16,
    port: u16,
}

impl MuxStream {
    fn what(&self) -> String {
        format!("port {} on {}", self.port, self.mux.label)
    }
}

/// The text of a connection's failure, marked as ours so the error mapping keeps it.
#[derive(Debug)]
pub struct MuxError(pub String);

impl std::fmt::Display for MuxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MuxError {}

fn io_error(kind: io::ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, MuxError(message))
}

impl Read for MuxStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + transport::IO_TIMEOUT;
        loop {
            let mut inner = lock(&self.mux.inner);
            let Some(conn) = inner.connections.get_mut(&self.local) else {
                return Ok(0);
            };
            if !conn.inbox.is_empty() {
                let n = buf.len().min(conn.inbox.len());
                for (slot, byte) in buf.iter_mut().zip(conn.inbox.drain(..n)) {
                    *slot = byte;
                }
                // A window that had closed opens again: tell the phone.
                if conn.inbox.len() + n >= INBOX_CAPACITY / 2
                    && conn.inbox.len() < INBOX_CAPACITY / 2
                {
                    let _ = inner.send_tcp(self.local, frame::ACK, &[]);
                }
                return Ok(n);
            }
            match &conn.state {
                State::Finished => return Ok(0),
                State::Reset(reason) | State::Refused(reason) => {
                    return Err(io_error(
                        io::ErrorKind::ConnectionReset,
                        format!("{} was reset: {reason}", self.what()),
                    ))
                }
                State::Open | State::Connecting => {}
            }
            if Instant::now() >= deadline {
                return Err(io_error(
                    io::ErrorKind::TimedOut,
                    format!("nothing arrived from {}", self.what()),
                ));
            }
            let label = self.mux.label.clone();
            if let Err(e) = inner.pump(deadline, &label) {
                return Err(io_error(io::ErrorKind::ConnectionAborted, e.to_string()));
            }
        }
    }
}

impl Write for MuxStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + transport::IO_TIMEOUT;
        loop {
            let mut inner = lock(&self.mux.inner);
            let Some(conn) = inner.connections.get(&self.local) else {
                return Err(io_error(io::ErrorKind::NotConnected, self.what()));
            };
            match &conn.state {
                State::Open => {}
                State::Reset(reason) | State::Refused(reason) => {
                    return Err(io_error(
                        io::ErrorKind::ConnectionReset,
                        format!("{} was reset: {reason}", self.what()),
                    ))
                }
                State::Finished | State::Connecting => {
                    return Err(io_error(
                        io::ErrorKind::BrokenPipe,
                        format!("{} is closed", self.what()),
                    ))
                }
            }
            let in_flight = conn.tx_seq.wrapping_sub(conn.peer_acked);
            let sendable = conn.peer_window.saturating_sub(in_flight) as usize;
            if sendable > 0 {
                let n = data.len().min(sendable).min(MAX_PAYLOAD);
                inner.send_tcp(self.local, frame::ACK, &data[..n])?;
                if let Some(conn) = inner.connections.get_mut(&self.local) {
                    conn.tx_seq = conn.tx_seq.wrapping_add(n as u32);
                }
                return Ok(n);
            }
            // The phone's window is full: wait for its ACKs.
            if Instant::now() >= deadline {
                return Err(io_error(
                    io::ErrorKind::TimedOut,
                    format!("{} did not accept more data", self.what()),
                ));
            }
            let label = self.mux.label.clone();
            if let Err(e) = inner.pump(deadline, &label) {
                return Err(io_error(io::ErrorKind::ConnectionAborted, e.to_string()));
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        let mut inner = lock(&self.mux.inner);
        let open = matches!(
            inner.connections.get(&self.local).map(|c| &c.state),
            Some(State::Open | State::Finished | State::Connecting)
        );
        if open && inner.dead.is_none() {
            let _ = inner.send_tcp(self.local, frame::RST, &[]);
        }
        inner.connections.remove(&self.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::transport::usb::emulated::{channel_pair, ChannelPipes};

    /// Records every transfer the host writes; reads time out.
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        packet: usize,
    }

    impl BulkPipes for Recorder {
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            self.writes.lock().unwrap().push(data.to_vec());
            Ok(())
        }
        fn read(&mut self, _: &mut [u8], timeout: Duration) -> io::Result<usize> {
            std::thread::sleep(timeout.min(Duration::from_millis(5)));
            Err(io::ErrorKind::TimedOut.into())
        }
        fn max_packet_size(&self) -> usize {
            self.packet
        }
    }

    /// A scripted phone: reads the host's packets and answers by hand.
    struct Script {
        pipes: ChannelPipes,
        wide: bool,
        seq: u16,
    }

    impl Script {
        fn next(&mut self) -> Packet {
            let mut buf = vec![0u8; frame::MAX_PACKET];
            loop {
                let n = self.pipes.read(&mut buf, Duration::from_secs(5)).unwrap();
                if n > 0 {
                    return frame::decode(&buf[..n], self.wide).unwrap();
                }
            }
        }

        fn send(&mut self, body: &Body) {
            let sequence = self.wide.then_some(Sequence {
                tx: self.seq,
                rx: 0,
            });
            self.seq = self.seq.wrapping_add(1);
            self.pipes.write(&frame::encode(sequence, body)).unwrap();
        }

        fn tcp(&mut self, dest: u16, seq: u32, flags: u8, payload: &[u8]) {
            let header = Tcp {
                source_port: 62078,
                dest_port: dest,
                seq,
                ack: 1,
                flags,
                window: 0x200,
            };
            self.send(&Body::Tcp {
                header,
                payload: payload.to_vec(),
            });
        }
    }

    /// Host and scripted phone after VERSION 2 / SETUP, with one connection open (local port 1).
    fn connected() -> (Arc<Mux>, MuxStream, Script) {
        let (host, device) = channel_pair(512);
        let phone = std::thread::spawn(move || {
            let mut script = Script {
                pipes: device,
                wide: false,
                seq: 0,
            };
            assert!(matches!(script.next().body, Body::Version { major: 2, .. }));
            script.send(&Body::Version { major: 2, minor: 0 });
            script.wide = true;
            assert_eq!(script.next().body, Body::Setup(frame::SETUP_BYTE));
            let Body::Tcp { header, .. } = script.next().body else {
                panic!("no SYN")
            };
            assert_eq!(header.flags, frame::SYN);
            script.tcp(header.source_port, 0, frame::SYN | frame::ACK, b"");
            let Body::Tcp { header, .. } = script.next().body else {
                panic!("no ACK")
            };
            assert_eq!(header.flags, frame::ACK);
            assert_eq!(header.ack, 1);
            script
        });
        let mux = Mux::open(Box::new(host), "test phone", Duration::from_secs(5)).unwrap();
        let stream = mux.connect(62078).unwrap();
        (mux, stream, phone.join().unwrap())
    }

    #[test]
    fn a_zero_length_packet_follows_exact_multiples_only() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let mut inner = Inner {
            pipes: Box::new(Recorder {
                writes: Arc::clone(&writes),
                packet: 64,
            }),
            wide: true,
            tx_seq: 0,
            rx_seq: 0,
            partial: Vec::new(),
            connections: HashMap::new(),
            next_port: 1,
            dead: None,
            controls: Vec::new(),
        };
        // 16 + 1 + 47 = 64 bytes: one ZLP. 16 + 1 + 48 = 65 bytes: none.
        let control = |n: usize| Body::Control {
            kind: 7,
            text: "x".repeat(n),
        };
        inner.send(&control(47)).unwrap();
        inner.send(&control(48)).unwrap();
        inner.send(&control(111)).unwrap();
        let sizes: Vec<usize> = writes.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [64, 0, 65, 128, 0]);
    }

    #[test]
    fn big_writes_are_cut_to_48_kib_packets_within_the_window() {
        let (_mux, mut stream, mut script) = connected();
        let data = vec![0xabu8; 100 * 1024];
        let writer = std::thread::spawn(move || {
            stream.write_all(&data).unwrap();
            stream
        });
        let mut got = 0;
        let mut acked = 1u32;
        while got < 100 * 1024 {
            let packet = script.next();
            let Body::Tcp { header, payload } = packet.body else {
                continue;
            };
            assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
            assert!(payload.len() + frame::WIDE_HEADER + frame::TCP_HEADER <= frame::MAX_WRITE);
            assert_eq!(header.seq, acked, "in order, no gaps");
            got += payload.len();
            acked += payload.len() as u32;
            // Acknowledge so the window (0x200 * 256 = 128 KiB) keeps moving.
            let ack = Tcp {
                source_port: 62078,
                dest_port: header.source_port,
                seq: 1,
                ack: acked,
                flags: frame::ACK,
                window: 0x200,
            };
            script.send(&Body::Tcp {
                header: ack,
                payload: Vec::new(),
            });
        }
        assert_eq!(got, 100 * 1024);
        writer.join().unwrap();
    }

    #[test]
    fn a_packet_spanning_several_transfers_is_put_together() {
        let (_mux, mut stream, mut script) = connected();
        let payload: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let body = Body::Tcp {
            header: Tcp {
                source_port: 62078,
                dest_port: 1,
                seq: 1,
                ack: 1,
                flags: frame::ACK,
                window: 0x200,
            },
            payload: payload.clone(),
        };
        let bytes = frame::encode(Some(Sequence { tx: 9, rx: 0 }), &body);
        for chunk in bytes.chunks(frame::READ_SIZE) {
            script.pipes.write(chunk).unwrap();
        }
        let mut got = vec![0u8; payload.len()];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(got, payload);
    }

    #[test]
    fn packets_for_unknown_connections_get_a_reset() {
        let (_mux, mut stream, mut script) = connected();
        script.tcp(77, 5, frame::ACK, b"stray");
        script.tcp(1, 1, frame::ACK, b"ok");
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
        let Body::Tcp { header, .. } = script.next().body else {
            panic!("no RST")
        };
        assert_eq!((header.flags, header.source_port), (frame::RST, 77));
    }

    #[test]
    fn a_partly_repeated_segment_keeps_only_its_new_tail() {
        let (_mux, mut stream, mut script) = connected();
        script.tcp(1, 1, frame::ACK, b"abc");
        script.tcp(1, 2, frame::ACK, b"bcdef");
        script.tcp(1, 1, frame::ACK, b"abcdef");
        script.tcp(1, 7, frame::FIN | frame::ACK, b"");
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abcdef");
    }

    #[test]
    fn segments_are_accepted_in_order_and_trimmed_when_repeated() {
        assert_eq!(accept_segment(10, 10, b"abc").unwrap(), b"abc");
        assert_eq!(accept_segment(10, 8, b"abcd").unwrap(), b"cd");
        assert_eq!(accept_segment(10, 5, b"abc").unwrap(), b"");
        assert!(accept_segment(10, 11, b"abc").is_err());
        // Across the wrap of the 32-bit sequence space.
        assert_eq!(accept_segment(2, u32::MAX, b"abcd").unwrap(), b"d");
    }

    #[test]
    fn unknown_versions_and_silent_phones_fail_cleanly() {
        let (host, device) = channel_pair(512);
        let phone = std::thread::spawn(move || {
            let mut script = Script {
                pipes: device,
                wide: false,
                seq: 0,
            };
            script.next();
            script.send(&Body::Version { major: 3, minor: 0 });
            script
        });
        let err = Mux::open(Box::new(host), "p", Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(err.to_string().contains("mux protocol 3"), "{err}");
        drop(phone.join());

        let (host, _device) = channel_pair(512);
        let err = Mux::open(Box::new(host), "p", Duration::from_millis(200))
            .err()
            .unwrap();
        assert!(matches!(err, DeviceError::Timeout { .. }), "{err}");
    }

    /// What a phone still had queued for an earlier program on the same plug-in comes before
    /// its answer to VERSION: a protocol-2 reset that program never read, and the tail of a
    /// packet it stopped reading halfway. The new session skips both.
    #[test]
    fn stale_traffic_before_the_version_answer_is_skipped() {
        let (host, device) = channel_pair(512);
        let phone = std::thread::spawn(move || {
            let mut script = Script {
                pipes: device,
                wide: true,
                seq: 7,
            };
            script.tcp(3, 40, frame::RST, b"lockdownd closed the connection");
            script.pipes.write(&[0xab; 300]).unwrap();
            script.wide = false;
            assert!(matches!(script.next().body, Body::Version { major: 2, .. }));
            script.send(&Body::Version { major: 2, minor: 0 });
            script.wide = true;
            assert_eq!(script.next().body, Body::Setup(frame::SETUP_BYTE));
        });
        let mux = Mux::open(Box::new(host), "p", Duration::from_secs(5)).unwrap();
        assert_eq!(mux.version(), 2);
        phone.join().unwrap();
    }
}
