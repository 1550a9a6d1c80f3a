//! The simulated iPhone on a real USB gadget: the device end of usbmux on Linux FunctionFS.
//! `ibackup-sim --ffs DIR` writes the interface descriptors and strings to `DIR/ep0` (Apple's
//! usbmux interface, class 0xFF / subclass 0xFE / protocol 2, one bulk OUT and one bulk IN
//! endpoint, full and high speed), then follows the gadget's life through ep0's events: each
//! ENABLE (the host chose the configuration that carries the interface) starts a fresh mux
//! session on the bulk endpoint files `ep1` (OUT) and `ep2` (IN), served by usb.rs exactly as
//! `--usb` serves its emulated pipes; DISABLE (host reset, configuration change, unplug) ends it.
//! Setup requests sent to the interface are refused with a stall, as nothing here needs one.
//!
//! `--ffs-ptp DIR` adds a still-image (PTP-like) interface on a second FunctionFS instance, so
//! the gadget's first configuration looks like a phone's camera roll and hosts have to switch
//! to the configuration that carries usbmux. It only answers ep0 events.
//!
//! The descriptor and event layouts follow the kernel's uapi header `linux/usb/functionfs.h`
//! (`struct usb_functionfs_descs_head_v2`, `usb_functionfs_strings_head`,
//! `usb_functionfs_event`). Not for production use; see docs/device.md for the VM rig.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::phone::Phone;
use super::usb::{serve_usb, UsbOptions};
use super::SimError;
use ibackup::device::transport::usb::frame;
use ibackup::device::transport::usb::mux::BulkPipes;

/// `FUNCTIONFS_DESCRIPTORS_MAGIC_V2` and `FUNCTIONFS_STRINGS_MAGIC`.
const DESCRIPTORS_MAGIC_V2: u32 = 3;
const STRINGS_MAGIC: u32 = 2;
/// `FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC`: full- and high-speed descriptor sets.
const HAS_FULL_AND_HIGH_SPEED: u32 = 1 | 2;
/// Standard descriptor types and endpoint attributes (USB 2.0, chapter 9).
const INTERFACE_DESCRIPTOR: u8 = 4;
const ENDPOINT_DESCRIPTOR: u8 = 5;
const BULK: u8 = 2;
const INTERRUPT: u8 = 3;
const DIRECTION_IN: u8 = 0x80;
/// US English, the only language of the interface strings.
const LANGUAGE_EN_US: u16 = 0x0409;

/// One endpoint of an interface. FunctionFS numbers the endpoint files `ep1`, `ep2`, ... in the
/// order the descriptors list them; the kernel picks the addresses the host sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub number: u8,
    pub input: bool,
    pub attributes: u8,
    pub full_speed_packet: u16,
    pub high_speed_packet: u16,
    /// bInterval at full speed (frames) and at high speed (2^(n-1) microframes).
    pub full_speed_interval: u8,
    pub high_speed_interval: u8,
}

/// One interface, as FunctionFS describes it to the gadget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub name: &'static str,
    pub endpoints: Vec<Endpoint>,
}

/// A bulk endpoint: 64-byte packets at full speed, 512 at high speed.
fn bulk(number: u8, input: bool) -> Endpoint {
    Endpoint {
        number,
        input,
        attributes: BULK,
        full_speed_packet: 64,
        high_speed_packet: 512,
        full_speed_interval: 0,
        high_speed_interval: 0,
    }
}

impl Interface {
    /// Apple's usbmux interface: bulk OUT (`ep1`) then bulk IN (`ep2`), 512-byte packets at
    /// high speed.
    pub fn usbmux() -> Interface {
        Interface {
            class: 0xff,
            subclass: 0xfe,
            protocol: 2,
            name: "Apple USB Multiplexor",
            endpoints: vec![bulk(1, false), bulk(2, true)],
        }
    }

    /// A still-image (PTP) interface: bulk IN, bulk OUT and an interrupt IN for events.
    pub fn still_image() -> Interface {
        // Events every 8 ms: 8 frames at full speed, 2^6 microframes at high speed.
        let events = Endpoint {
            number: 3,
            input: true,
            attributes: INTERRUPT,
            full_speed_packet: 16,
            high_speed_packet: 16,
            full_speed_interval: 8,
            high_speed_interval: 7,
        };
        Interface {
            class: 6,
            subclass: 1,
            protocol: 1,
            name: "PTP",
            endpoints: vec![bulk(1, true), bulk(2, false), events],
        }
    }

    /// The descriptor set for one speed: the interface, then its endpoints.
    fn descriptor_set(&self, high_speed: bool) -> Vec<u8> {
        let mut out = vec![
            9,
            INTERFACE_DESCRIPTOR,
            0, // bInterfaceNumber: FunctionFS renumbers it within the configuration
            0, // bAlternateSetting
            self.endpoints.len() as u8,
            self.class,
            self.subclass,
            self.protocol,
            1, // iInterface: the first string below
        ];
        for e in &self.endpoints {
            let (packet, interval) = if high_speed {
                (e.high_speed_packet, e.high_speed_interval)
            } else {
                (e.full_speed_packet, e.full_speed_interval)
            };
            out.extend_from_slice(&[
                7,
                ENDPOINT_DESCRIPTOR,
                e.number | if e.input { DIRECTION_IN } else { 0 },
                e.attributes,
            ]);
            out.extend_from_slice(&packet.to_le_bytes());
            out.push(interval);
        }
        out
    }

    /// What is written first to ep0: the v2 header (magic, length, flags), the count of
    /// descriptors per speed, then the full-speed and high-speed sets. Little-endian.
    pub fn descriptors(&self) -> Vec<u8> {
        let count = 1 + self.endpoints.len() as u32;
        let full = self.descriptor_set(false);
        let high = self.descriptor_set(true);
        let length = 12 + 4 + 4 + full.len() + high.len();
        let mut out = Vec::with_capacity(length);
        out.extend_from_slice(&DESCRIPTORS_MAGIC_V2.to_le_bytes());
        out.extend_from_slice(&(length as u32).to_le_bytes());
        out.extend_from_slice(&HAS_FULL_AND_HIGH_SPEED.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&full);
        out.extend_from_slice(&high);
        out
    }

    /// What is written second to ep0: one language with one NUL-terminated string.
    pub fn strings(&self) -> Vec<u8> {
        let length = 16 + 2 + self.name.len() + 1;
        let mut out = Vec::with_capacity(length);
        out.extend_from_slice(&STRINGS_MAGIC.to_le_bytes());
        out.extend_from_slice(&(length as u32).to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // str_count
        out.extend_from_slice(&1u32.to_le_bytes()); // lang_count
        out.extend_from_slice(&LANGUAGE_EN_US.to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.push(0);
        out
    }
}

/// A control request the host sent to the interface (`struct usb_ctrlrequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupPacket {
    pub request_type: u8,
    pub request: u8,
    pub value: u16,
    pub index: u16,
    pub length: u16,
}

impl SetupPacket {
    /// Device-to-host: the data stage is ours to send.
    pub fn is_in(&self) -> bool {
        self.request_type & DIRECTION_IN != 0
    }
}

/// One event read from ep0 (`enum usb_functionfs_event_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GadgetEvent {
    Bind,
    Unbind,
    Enable,
    Disable,
    Setup(SetupPacket),
    Suspend,
    Resume,
    Unknown(u8),
}

/// The size of `struct usb_functionfs_event`: 8 bytes of setup packet, the type, 3 of padding.
pub const EVENT_SIZE: usize = 12;

/// Decodes the events in one read of ep0 (whole events only; a trailing fragment is ignored,
/// the kernel never returns one).
pub fn decode_events(bytes: &[u8]) -> Vec<GadgetEvent> {
    bytes
        .chunks_exact(EVENT_SIZE)
        .map(|e| match e[8] {
            0 => GadgetEvent::Bind,
            1 => GadgetEvent::Unbind,
            2 => GadgetEvent::Enable,
            3 => GadgetEvent::Disable,
            4 => GadgetEvent::Setup(SetupPacket {
                request_type: e[0],
                request: e[1],
                value: u16::from_le_bytes([e[2], e[3]]),
                index: u16::from_le_bytes([e[4], e[5]]),
                length: u16::from_le_bytes([e[6], e[7]]),
            }),
            5 => GadgetEvent::Suspend,
            6 => GadgetEvent::Resume,
            other => GadgetEvent::Unknown(other),
        })
        .collect()
}

/// Gadget events and session ends, on stderr when `IBACKUP_SIM_LOG` is set.
fn note(text: &str) {
    if std::env::var_os("IBACKUP_SIM_LOG").is_some() {
        eprintln!("ibackup-sim: ffs: {text}");
    }
}

fn setup_error(what: String, e: io::Error) -> SimError {
    SimError::Setup(format!("{what}: {e}"))
}

/// One FunctionFS instance: its ep0, once the descriptors and strings are written.
struct Function {
    dir: PathBuf,
    ep0: File,
}

impl Function {
    fn start(dir: &Path, interface: &Interface) -> Result<Function, SimError> {
        let path = dir.join("ep0");
        let mut ep0 = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| setup_error(format!("opening {}", path.display()), e))?;
        ep0.write_all(&interface.descriptors())
            .map_err(|e| setup_error(format!("writing descriptors to {}", path.display()), e))?;
        ep0.write_all(&interface.strings())
            .map_err(|e| setup_error(format!("writing strings to {}", path.display()), e))?;
        Ok(Function {
            dir: dir.to_path_buf(),
            ep0,
        })
    }

    /// Blocks for the next events.
    fn events(&mut self) -> io::Result<Vec<GadgetEvent>> {
        let mut buf = [0u8; 4 * EVENT_SIZE];
        loop {
            match self.ep0.read(&mut buf) {
                Ok(n) => return Ok(decode_events(&buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Refuses a control request: FunctionFS stalls when ep0 is used in the direction opposite
    /// to the request's data stage.
    fn stall(&mut self, setup: &SetupPacket) {
        note(&format!("stalling control request {setup:?}"));
        let _ = if setup.is_in() {
            self.ep0.read(&mut []).map(|_| ())
        } else {
            self.ep0.write(&[]).map(|_| ())
        };
    }
}

/// Opens an endpoint file so that it fails (EAGAIN) rather than waits while the endpoint is
/// disabled: a session never outlives the configuration it was started for.
fn open_endpoint(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// What crossed the endpoints in one session, for the log: transfers, bytes and zero-length
/// packets each way.
#[derive(Debug, Default)]
pub struct Traffic {
    pub from_host: AtomicU64,
    pub from_host_bytes: AtomicU64,
    pub from_host_empty: AtomicU64,
    pub to_host: AtomicU64,
    pub to_host_bytes: AtomicU64,
    pub to_host_empty: AtomicU64,
}

impl Traffic {
    fn count(transfers: &AtomicU64, bytes: &AtomicU64, empty: &AtomicU64, n: usize) {
        transfers.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            empty.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn summary(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "from the host {} transfers, {} bytes, {} zero-length; to the host {} transfers, {} bytes, {} zero-length",
            get(&self.from_host),
            get(&self.from_host_bytes),
            get(&self.from_host_empty),
            get(&self.to_host),
            get(&self.to_host_bytes),
            get(&self.to_host_empty),
        )
    }
}

/// The bulk endpoint files as [`BulkPipes`]. FunctionFS reads block, so a thread reads OUT
/// transfers into a channel, which gives the mux loop its read timeouts; writes go straight to
/// the IN endpoint, one transfer each (a zero-length write is a zero-length packet).
pub struct FfsPipes {
    input: File,
    transfers: Receiver<io::Result<Vec<u8>>>,
    ended: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    max_packet: usize,
    traffic: Arc<Traffic>,
}

impl FfsPipes {
    /// Opens `ep1` (OUT, from the host) and `ep2` (IN, to the host) in `dir`.
    pub fn open(dir: &Path, max_packet: usize) -> io::Result<FfsPipes> {
        let mut output = open_endpoint(&dir.join("ep1"), false)?;
        let input = open_endpoint(&dir.join("ep2"), true)?;
        let ended = Arc::new(AtomicBool::new(false));
        let traffic = Arc::new(Traffic::default());
        let (tx, transfers) = mpsc::channel();
        let stop = Arc::clone(&ended);
        let counted = Arc::clone(&traffic);
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; frame::MAX_PACKET];
            while !stop.load(Ordering::SeqCst) {
                match output.read(&mut buf) {
                    Ok(n) => {
                        let t = &counted;
                        Traffic::count(&t.from_host, &t.from_host_bytes, &t.from_host_empty, n);
                        if n == 0 {
                            note("received a zero-length packet");
                        }
                        if tx.send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        Ok(FfsPipes {
            input,
            transfers,
            ended,
            reader: Some(reader),
            max_packet,
            traffic,
        })
    }

    /// This session's counters.
    pub fn traffic(&self) -> Arc<Traffic> {
        Arc::clone(&self.traffic)
    }

    /// A handle that ends this session's reads (the gadget was disabled).
    pub fn end_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.ended)
    }
}

fn ended() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the host disabled the gadget")
}

impl BulkPipes for FfsPipes {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.ended.load(Ordering::SeqCst) {
            return Err(ended());
        }
        let written = self.input.write(data)?;
        let t = &self.traffic;
        Traffic::count(&t.to_host, &t.to_host_bytes, &t.to_host_empty, written);
        if data.is_empty() {
            note("sent a zero-length packet");
        }
        if written != data.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the gadget took {written} of {} bytes", data.len()),
            ));
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if self.ended.load(Ordering::SeqCst) {
            return Err(ended());
        }
        match self.transfers.recv_timeout(timeout) {
            Ok(Ok(transfer)) if transfer.len() <= buf.len() => {
                buf[..transfer.len()].copy_from_slice(&transfer);
                Ok(transfer.len())
            }
            Ok(Ok(transfer)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a {}-byte transfer for a {}-byte read",
                    transfer.len(),
                    buf.len()
                ),
            )),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Err(io::ErrorKind::TimedOut.into()),
            Err(RecvTimeoutError::Disconnected) => Err(ended()),
        }
    }

    fn max_packet_size(&self) -> usize {
        self.max_packet
    }
}

impl Drop for FfsPipes {
    fn drop(&mut self) {
        self.ended.store(true, Ordering::SeqCst);
        // The reader leaves on its next read, which fails once the endpoint is disabled; a
        // reader still blocked on an enabled endpoint is left to end with the process.
        self.reader.take();
    }
}

/// One mux session: a thread serving the host through the endpoints, and the flag that ends it.
struct Session {
    ended: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Session {
    fn start(dir: &Path, phone: &Arc<Phone>, options: &UsbOptions) -> io::Result<Session> {
        let pipes = FfsPipes::open(dir, options.max_packet_size)?;
        let ended = pipes.end_handle();
        let traffic = pipes.traffic();
        let phone = Arc::clone(phone);
        let options = options.clone();
        let thread = std::thread::spawn(move || {
            let result = serve_usb(phone, Box::new(pipes), &options);
            let why = match result {
                Ok(()) => String::new(),
                Err(e) => format!(" ({e})"),
            };
            note(&format!("mux session ended{why}: {}", traffic.summary()));
        });
        Ok(Session { ended, thread })
    }

    fn stop(self) {
        self.ended.store(true, Ordering::SeqCst);
        // The endpoints are disabled, so the session's reads and writes fail and it ends
        // within a read slice; it is not worth hanging the gadget for if it does not.
        for _ in 0..200 {
            if self.thread.is_finished() {
                let _ = self.thread.join();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        note("an earlier mux session is still running");
    }
}

/// Answers a still-image interface's ep0 events (stalls every control request) until the
/// function is closed.
fn serve_still_image(mut function: Function) {
    loop {
        match function.events() {
            Ok(events) => {
                for event in events {
                    match event {
                        GadgetEvent::Setup(setup) => function.stall(&setup),
                        other => note(&format!("PTP interface: {other:?}")),
                    }
                }
            }
            Err(e) => {
                note(&format!("PTP interface: ep0 failed: {e}"));
                return;
            }
        }
    }
}

/// Serves `phone` on the FunctionFS instance mounted at `dir` (and a still-image interface at
/// `still_image`, when given): writes the descriptors, prints `ready` through `ready` once
/// the gadget may be bound to a controller, then runs a mux session per ENABLE until ep0
/// fails (the instance was unmounted or the process ended).
pub fn serve(
    dir: &Path,
    still_image: Option<&Path>,
    phone: Arc<Phone>,
    options: &UsbOptions,
    ready: impl FnOnce(),
) -> Result<(), SimError> {
    let mut mux = Function::start(dir, &Interface::usbmux())?;
    if let Some(ptp_dir) = still_image {
        let ptp = Function::start(ptp_dir, &Interface::still_image())?;
        std::thread::spawn(move || serve_still_image(ptp));
    }
    ready();
    let mut session: Option<Session> = None;
    loop {
        let events = mux.events().map_err(|e| {
            setup_error(format!("reading events from {}/ep0", mux.dir.display()), e)
        })?;
        for event in events {
            match event {
                GadgetEvent::Enable => {
                    // A reset or a configuration switch can enable again without a DISABLE
                    // seen in between: never let two sessions share the endpoints.
                    if let Some(old) = session.take() {
                        old.stop();
                    }
                    note("ENABLE: starting a mux session");
                    match Session::start(&mux.dir, &phone, options) {
                        Ok(s) => session = Some(s),
                        Err(e) => note(&format!("cannot open the endpoints: {e}")),
                    }
                }
                GadgetEvent::Disable | GadgetEvent::Unbind => {
                    note(&format!("{event:?}: ending the mux session"));
                    if let Some(old) = session.take() {
                        old.stop();
                    }
                }
                GadgetEvent::Setup(setup) => mux.stall(&setup),
                other => note(&format!("{other:?}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The usbmux interface's ep0 descriptors, written out by hand from the layout in
    /// `linux/usb/functionfs.h` and chapter 9 of USB 2.0.
    #[test]
    fn usbmux_descriptors_match_the_kernel_layout() {
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // usb_functionfs_descs_head_v2: magic 3, length 66, flags FS|HS
            3, 0, 0, 0,   66, 0, 0, 0,   3, 0, 0, 0,
            // fs_count 3, hs_count 3
            3, 0, 0, 0,   3, 0, 0, 0,
            // full speed: interface 0, alt 0, 2 endpoints, class ff/fe/02, string 1
            9, 4, 0, 0, 2, 0xff, 0xfe, 0x02, 1,
            // bulk OUT 1, 64 bytes; bulk IN 0x82, 64 bytes
            7, 5, 0x01, 2, 64, 0, 0,
            7, 5, 0x82, 2, 64, 0, 0,
            // high speed: the same with 512-byte packets
            9, 4, 0, 0, 2, 0xff, 0xfe, 0x02, 1,
            7, 5, 0x01, 2, 0x00, 0x02, 0,
            7, 5, 0x82, 2, 0x00, 0x02, 0,
        ];
        assert_eq!(Interface::usbmux().descriptors(), expected);
        assert_eq!(expected.len(), 66);
    }

    #[test]
    fn still_image_descriptors_carry_three_endpoints() {
        let bytes = Interface::still_image().descriptors();
        // 20 bytes of head and counts, then 9 + 3 * 7 per speed.
        assert_eq!(bytes.len(), 20 + 2 * 30);
        assert_eq!(&bytes[12..20], &[4, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(&bytes[20..29], &[9, 4, 0, 0, 3, 6, 1, 1, 1]);
        // bulk IN, bulk OUT, interrupt IN at full speed.
        assert_eq!(&bytes[29..36], &[7, 5, 0x81, 2, 64, 0, 0]);
        assert_eq!(&bytes[36..43], &[7, 5, 0x02, 2, 64, 0, 0]);
        assert_eq!(&bytes[43..50], &[7, 5, 0x83, 3, 16, 0, 8]);
    }

    #[test]
    fn strings_match_the_kernel_layout() {
        let mut expected: Vec<u8> = vec![
            2, 0, 0, 0, // magic
            40, 0, 0, 0, // length: 16 + 2 + 21 + 1
            1, 0, 0, 0, // str_count
            1, 0, 0, 0, // lang_count
            0x09, 0x04, // en-US
        ];
        expected.extend_from_slice(b"Apple USB Multiplexor\0");
        assert_eq!(Interface::usbmux().strings(), expected);
    }

    #[test]
    fn events_decode_from_the_kernel_layout() {
        #[rustfmt::skip]
        let bytes: Vec<u8> = vec![
            0, 0, 0, 0, 0, 0, 0, 0,   0, 0, 0, 0, // BIND
            0, 0, 0, 0, 0, 0, 0, 0,   2, 0, 0, 0, // ENABLE
            // SETUP: vendor IN request 0x45 to the interface, wValue 0x0102, wIndex 3, wLength 4
            0xc1, 0x45, 0x02, 0x01, 0x03, 0x00, 0x04, 0x00,   4, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0,   3, 0, 0, 0, // DISABLE
        ];
        let events = decode_events(&bytes);
        let setup = SetupPacket {
            request_type: 0xc1,
            request: 0x45,
            value: 0x0102,
            index: 3,
            length: 4,
        };
        assert_eq!(
            events,
            vec![
                GadgetEvent::Bind,
                GadgetEvent::Enable,
                GadgetEvent::Setup(setup),
                GadgetEvent::Disable
            ]
        );
        assert!(setup.is_in());
        let tail: Vec<u8> = [
            [0u8; 8].as_slice(),
            &[1, 0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0],
            &[1, 2, 3],
        ]
        .concat();
        assert_eq!(
            decode_events(&tail),
            vec![
                GadgetEvent::Unbind,
                GadgetEvent::Suspend,
                GadgetEvent::Resume,
                GadgetEvent::Unknown(9)
            ]
        );
    }
}
