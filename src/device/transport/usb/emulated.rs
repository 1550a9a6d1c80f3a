//! Bulk pipes without hardware, for tests: an in-memory pair ([`channel_pair`]) and a Unix
//! socket to an emulated iPhone (`ibackup-sim --usb`) that carries one record per bulk transfer.
//!
//! Socket records are a little-endian u32 length, then that many bytes; a zero-length record is
//! a zero-length packet. The first record from the emulated phone is its USB descriptor as JSON
//! (`{"serial", "product_id", "max_packet_size"}`), standing in for what libusb reads from a
//! real device. `IBACKUP_USB_EMULATOR=/path/to/socket` makes `--transport usb` use it instead
//! of libusb (docs/device.md).
//!
//! Not here: the phone's side of the protocol (the ibackup-sim crate, sim/src/usb.rs).

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use super::mux::BulkPipes;

/// Names the emulated phone's socket; when set, direct USB talks to it instead of libusb.
pub const EMULATOR_VARIABLE: &str = "IBACKUP_USB_EMULATOR";
/// The largest record accepted on the socket (a transfer is at most one 48 KiB packet).
pub const MAX_RECORD: usize = 64 * 1024;

/// What the emulated phone says about itself before any transfer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    /// iSerialNumber, as a real phone reports it.
    pub serial: String,
    pub product_id: u16,
    pub max_packet_size: usize,
}

/// One end of an in-memory pipe pair: what one end writes, the other reads, transfer by
/// transfer.
pub struct ChannelPipes {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    max_packet: usize,
}

/// Two connected ends (host, device) with the given wMaxPacketSize.
pub fn channel_pair(max_packet: usize) -> (ChannelPipes, ChannelPipes) {
    let (to_device, from_host) = mpsc::channel();
    let (to_host, from_device) = mpsc::channel();
    (
        ChannelPipes {
            tx: to_device,
            rx: from_device,
            max_packet,
        },
        ChannelPipes {
            tx: to_host,
            rx: from_host,
            max_packet,
        },
    )
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the other end is gone")
}

fn copy_transfer(transfer: &[u8], buf: &mut [u8]) -> io::Result<usize> {
    // A real IN transfer longer than the buffer is a libusb overflow error.
    if transfer.len() > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a transfer of {} bytes overflows a {}-byte read",
                transfer.len(),
                buf.len()
            ),
        ));
    }
    buf[..transfer.len()].copy_from_slice(transfer);
    Ok(transfer.len())
}

impl BulkPipes for ChannelPipes {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.tx.send(data.to_vec()).map_err(|_| gone())
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        match self.rx.recv_timeout(timeout) {
            Ok(transfer) => copy_transfer(&transfer, buf),
            Err(RecvTimeoutError::Timeout) => Err(io::ErrorKind::TimedOut.into()),
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }

    fn max_packet_size(&self) -> usize {
        self.max_packet
    }
}

#[cfg(unix)]
pub use socket::SocketPipes;

#[cfg(unix)]
mod socket {
    use std::io::{self, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::{copy_transfer, Descriptor, MAX_RECORD};
    use crate::device::transport::usb::mux::BulkPipes;

    /// Bulk transfers as length-prefixed records on a Unix socket (either end).
    pub struct SocketPipes {
        stream: UnixStream,
        /// Bytes received but not yet returned as a whole record.
        pending: Vec<u8>,
        max_packet: usize,
    }

    impl SocketPipes {
        /// The host end: connects to the emulated phone and reads its descriptor.
        pub fn connect(path: &Path, timeout: Duration) -> io::Result<(SocketPipes, Descriptor)> {
            let stream = UnixStream::connect(path)?;
            stream.set_write_timeout(Some(timeout))?;
            let mut pipes = SocketPipes {
                stream,
                pending: Vec::new(),
                max_packet: 512,
            };
            let mut buf = vec![0u8; MAX_RECORD];
            let n = pipes.read(&mut buf, timeout)?;
            let descriptor: Descriptor = serde_json::from_slice(&buf[..n]).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the emulated phone's descriptor: {e}"),
                )
            })?;
            pipes.max_packet = descriptor.max_packet_size;
            Ok((pipes, descriptor))
        }

        /// The phone's end of an accepted connection: sends the descriptor first.
        pub fn serve(stream: UnixStream, descriptor: &Descriptor) -> io::Result<SocketPipes> {
            let mut pipes = SocketPipes {
                stream,
                pending: Vec::new(),
                max_packet: descriptor.max_packet_size,
            };
            let json = serde_json::to_vec(descriptor).map_err(io::Error::other)?;
            pipes.write(&json)?;
            Ok(pipes)
        }

        /// A whole record from what has arrived, if there is one.
        fn take_record(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            let Some(head) = self.pending.get(..4) else {
                return Ok(None);
            };
            let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if length > MAX_RECORD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a record of {length} bytes is more than {MAX_RECORD}"),
                ));
            }
            if self.pending.len() < 4 + length {
                return Ok(None);
            }
            let n = copy_transfer(&self.pending[4..4 + length], buf)?;
            self.pending.drain(..4 + length);
            Ok(Some(n))
        }
    }

    impl BulkPipes for SocketPipes {
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            let mut record = (data.len() as u32).to_le_bytes().to_vec();
            record.extend_from_slice(data);
            self.stream.write_all(&record)
        }

        fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
            let deadline = crate::device::deadline_after(timeout);
            let mut chunk = [0u8; 16 * 1024];
            loop {
                if let Some(n) = self.take_record(buf)? {
                    return Ok(n);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                // A zero timeout means "block forever" to the socket: never pass one.
                self.stream
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
                match self.stream.read(&mut chunk) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotConnected,
                            "the emulated phone closed its end",
                        ))
                    }
                    Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                    Err(e) if crate::device::transport::is_waiting(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }

        fn max_packet_size(&self) -> usize {
            self.max_packet
        }
    }
}
