//! Finding and claiming a real iPhone with libusb (the `rusb` crate, linked against the system
//! libusb): Apple's vendor id, the iPhone/iPad product range, the configuration that has the
//! usbmux interface (class 255, subclass 254, protocol 2) with a bulk IN and a bulk OUT
//! endpoint; kernel drivers detached where they hold the interface, then claimed. The claimed
//! endpoints are [`BulkPipes`] for the mux layer. [usbmuxd src/usb.c usb_device_add]
//!
//! Not here: the mux protocol (mux.rs). Every libusb failure becomes a `DeviceError` that says
//! what failed and what to do (no USB bus, no permission, the daemon holds the phone).

use std::io;
use std::time::Duration;

use rusb::{Context, Device, DeviceHandle, Direction, TransferType, UsbContext};

use super::mux::BulkPipes;
use super::{linux_fix, normalize_serial};
use crate::device::transport::{AttachedDevice, IO_TIMEOUT};
use crate::device::DeviceError;

/// Apple's USB vendor id and the product ids of iPhones, iPads and iPods that speak usbmux.
/// [usbmuxd src/usb.h VID_APPLE, PID_RANGE_LOW, PID_RANGE_MAX]
pub const APPLE_VENDOR: u16 = 0x05ac;
pub const PRODUCT_FIRST: u16 = 0x1290;
pub const PRODUCT_LAST: u16 = 0x12af;
/// The usbmux interface. [usbmuxd src/usb.h INTERFACE_CLASS, _SUBCLASS, _PROTOCOL]
const MUX_CLASS: u8 = 255;
const MUX_SUBCLASS: u8 = 254;
const MUX_PROTOCOL: u8 = 2;

/// A started libusb.
pub struct LibusbBus {
    context: Context,
}

/// Where the mux interface is on one phone.
struct MuxInterface {
    configuration: u8,
    interface: u8,
    endpoint_in: u8,
    endpoint_out: u8,
    max_packet: usize,
}

/// The machine has no USB device files, so libusb would start and see nothing. Checked first:
/// libusb itself starts happily there and lists no devices, which would read as "no iPhone".
#[cfg(target_os = "linux")]
fn missing_usb_bus() -> Option<DeviceError> {
    // libusb's Linux backend opens devices under usbfs, and takes a usbfs folder only when it
    // lists an entry: a machine with a USB controller has one per bus there, so an empty folder
    // (a container given an empty /dev) has no bus either. [libusb libusb/os/linux_usbfs.c
    // find_usbfs_path]
    let usbfs = ["/dev/bus/usb", "/proc/bus/usb"];
    if usbfs
        .iter()
        .any(|p| lists_an_entry(std::path::Path::new(p)))
    {
        return None;
    }
    Some(DeviceError::UsbUnavailable {
        cause: "this machine has no USB bus that libusb can use (/dev/bus/usb is missing or empty)".to_string(),
        fix: "Run ibackup on the machine the iPhone is plugged into (in a container or VM, pass the USB bus through, for example `--device /dev/bus/usb` for Docker), or use the usbmuxd daemon: --transport usbmuxd.".to_string(),
    })
}

/// Whether the usbfs folder `path` holds an entry. One we may not list counts as there: libusb
/// then says what it may not do, which is the more useful message.
#[cfg(target_os = "linux")]
fn lists_an_entry(path: &std::path::Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) => e.kind() == io::ErrorKind::PermissionDenied,
    }
}

#[cfg(not(target_os = "linux"))]
fn missing_usb_bus() -> Option<DeviceError> {
    None
}

/// Why libusb could not start, in the user's words, with the fix.
fn unavailable(error: rusb::Error) -> DeviceError {
    if let Some(no_bus) = missing_usb_bus() {
        return no_bus;
    }
    let cause = if error == rusb::Error::Access {
        format!("no permission to use the USB devices (libusb: {error})")
    } else {
        format!("libusb could not start ({error})")
    };
    DeviceError::UsbUnavailable {
        cause,
        fix: linux_fix(),
    }
}

fn denied(what: &str, error: rusb::Error) -> DeviceError {
    match error {
        rusb::Error::Access => DeviceError::UsbUnavailable {
            cause: format!("no permission to open {what} (libusb: {error})"),
            fix: linux_fix(),
        },
        other => DeviceError::Io {
            what: format!("opening {what} over USB"),
            source: io::Error::other(other.to_string()),
        },
    }
}

/// The id a phone keeps while it stays plugged into the same port.
fn device_id(device: &Device<Context>) -> u64 {
    (u64::from(device.bus_number()) << 8) | u64::from(device.address())
}

fn describe(device: &Device<Context>) -> String {
    format!(
        "the iPhone on USB bus {} address {}",
        device.bus_number(),
        device.address()
    )
}

impl LibusbBus {
    /// Starts libusb; fails with a clear message where it cannot (no bus, no permission).
    pub fn start() -> Result<LibusbBus, DeviceError> {
        if let Some(no_bus) = missing_usb_bus() {
            return Err(no_bus);
        }
        let context = Context::new().map_err(unavailable)?;
        // Listing devices is where a missing usbfs or udev shows on some systems.
        context.devices().map_err(unavailable)?;
        Ok(LibusbBus { context })
    }

    fn apple_devices(&self) -> Result<Vec<Device<Context>>, DeviceError> {
        let list = self.context.devices().map_err(unavailable)?;
        Ok(list
            .iter()
            .filter(|d| {
                d.device_descriptor().is_ok_and(|desc| {
                    desc.vendor_id() == APPLE_VENDOR
                        && (PRODUCT_FIRST..=PRODUCT_LAST).contains(&desc.product_id())
                })
            })
            .collect())
    }

    /// The attached phones: their UDIDs come from the serial number string.
    pub fn devices(&self) -> Result<Vec<AttachedDevice>, DeviceError> {
        let mut found = Vec::new();
        let mut refusal = None;
        for device in self.apple_devices()? {
            if find_interface(&device).is_none() {
                continue;
            }
            match serial(&device) {
                Ok(serial) => found.push(AttachedDevice {
                    udid: normalize_serial(&serial),
                    device_id: device_id(&device),
                    connection_type: "USB".to_string(),
                }),
                Err(e) => refusal = Some(e),
            }
        }
        // A phone we may not open is worth an error only when it is the only news.
        match (found.is_empty(), refusal) {
            (true, Some(e)) => Err(e),
            _ => Ok(found),
        }
    }

    /// Opens and claims the mux interface of the phone with `device_id`.
    pub fn open(
        &self,
        target: &AttachedDevice,
    ) -> Result<(Box<dyn BulkPipes>, String), DeviceError> {
        let device = self
            .apple_devices()?
            .into_iter()
            .find(|d| device_id(d) == target.device_id)
            .ok_or(DeviceError::NoDevice)?;
        let what = describe(&device);
        let mux = find_interface(&device).ok_or_else(|| DeviceError::BadReply {
            what: format!("the USB descriptors of {what}"),
            detail: "no usbmux interface (class 255, subclass 254, protocol 2) with bulk endpoints"
                .to_string(),
        })?;
        let handle = device.open().map_err(|e| denied(&what, e))?;
        select_configuration(&handle, &mux, &what, &target.udid)?;
        if handle.kernel_driver_active(mux.interface) == Ok(true) {
            // Detaching fails where it is not supported (macOS): claiming then says why.
            let _ = handle.detach_kernel_driver(mux.interface);
        }
        match handle.claim_interface(mux.interface) {
            Ok(()) => {}
            Err(rusb::Error::Busy) => {
                return Err(DeviceError::UsbBusy {
                    udid: target.udid.clone(),
                })
            }
            Err(e) => return Err(denied(&what, e)),
        }
        let pipes = LibusbPipes {
            handle,
            interface: mux.interface,
            endpoint_in: mux.endpoint_in,
            endpoint_out: mux.endpoint_out,
            max_packet: mux.max_packet,
        };
        Ok((Box::new(pipes), what))
    }
}

fn serial(device: &Device<Context>) -> Result<String, DeviceError> {
    let what = describe(device);
    let descriptor = device.device_descriptor().map_err(|e| denied(&what, e))?;
    let handle = device.open().map_err(|e| denied(&what, e))?;
    handle
        .read_serial_number_string_ascii(&descriptor)
        .map_err(|e| denied(&what, e))
}

/// The configuration and interface that carry usbmux, scanning every configuration (the mux
/// interface is often not in the default one).
fn find_interface(device: &Device<Context>) -> Option<MuxInterface> {
    let count = device.device_descriptor().ok()?.num_configurations();
    (0..count).find_map(|index| {
        let config = device.config_descriptor(index).ok()?;
        config.interfaces().find_map(|interface| {
            interface.descriptors().find_map(|alt| {
                if (alt.class_code(), alt.sub_class_code(), alt.protocol_code())
                    != (MUX_CLASS, MUX_SUBCLASS, MUX_PROTOCOL)
                {
                    return None;
                }
                let bulk = |direction| {
                    alt.endpoint_descriptors().find(|e| {
                        e.transfer_type() == TransferType::Bulk && e.direction() == direction
                    })
                };
                let (input, output) = (bulk(Direction::In)?, bulk(Direction::Out)?);
                Some(MuxInterface {
                    configuration: config.number(),
                    interface: alt.interface_number(),
                    endpoint_in: input.address(),
                    endpoint_out: output.address(),
                    max_packet: usize::from(output.max_packet_size()).max(1),
                })
            })
        })
    })
}

/// Switches to the mux configuration when another one is active, detaching the kernel drivers
/// that hold the active one's interfaces first (the switch fails otherwise).
fn select_configuration(
    handle: &DeviceHandle<Context>,
    mux: &MuxInterface,
    what: &str,
    udid: &str,
) -> Result<(), DeviceError> {
    if handle.active_configuration().ok() == Some(mux.configuration) {
        return Ok(());
    }
    if let Ok(active) = handle.device().active_config_descriptor() {
        for interface in active.interfaces() {
            let number = interface.number();
            if handle.kernel_driver_active(number) == Ok(true) {
                let _ = handle.detach_kernel_driver(number);
            }
        }
    }
    handle
        .set_active_configuration(mux.configuration)
        .map_err(|e| match e {
            rusb::Error::Busy => DeviceError::UsbBusy {
                udid: udid.to_string(),
            },
            other => denied(what, other),
        })
}

/// The claimed bulk endpoints.
struct LibusbPipes {
    handle: DeviceHandle<Context>,
    interface: u8,
    endpoint_in: u8,
    endpoint_out: u8,
    max_packet: usize,
}

fn io_from(error: rusb::Error) -> io::Error {
    let kind = match error {
        rusb::Error::Timeout => io::ErrorKind::TimedOut,
        rusb::Error::Interrupted => io::ErrorKind::Interrupted,
        rusb::Error::NoDevice => io::ErrorKind::NotConnected,
        rusb::Error::Pipe | rusb::Error::Io => io::ErrorKind::BrokenPipe,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("libusb: {error}"))
}

impl BulkPipes for LibusbPipes {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let written = self
            .handle
            .write_bulk(self.endpoint_out, data, IO_TIMEOUT)
            .map_err(io_from)?;
        if written != data.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the phone took {written} of {} bytes", data.len()),
            ));
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        // libusb treats a zero timeout as "wait forever". Short reads in slices lose nothing
        // between them: the phone only sends while an IN transfer is pending.
        let timeout = timeout.max(Duration::from_millis(1));
        self.handle
            .read_bulk(self.endpoint_in, buf, timeout)
            .map_err(io_from)
    }

    fn max_packet_size(&self) -> usize {
        self.max_packet
    }
}

impl Drop for LibusbPipes {
    fn drop(&mut self) {
        let _ = self.handle.release_interface(self.interface);
    }
}
