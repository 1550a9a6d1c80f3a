//! Direct USB: ibackup talks to the iPhone itself, as the usbmuxd daemon does, when no daemon
//! runs. [`UsbTransport`] implements [`Transport`], so lockdown, TLS and everything above run
//! unchanged over it.
//!
//! Layers: [`frame`] (pure packet encoder and decoder), [`mux`] (the protocol over a pair of
//! bulk pipes, behind the [`mux::BulkPipes`] trait), `libusb` (finding and claiming a real
//! phone; not in Windows builds), [`emulated`] (pipes to an emulated phone for tests).
//! Pair records: there is no daemon to keep them, so this transport answers that it keeps none
//! and lockdown::pair_record reads and saves them in the OS folder (`/var/lib/lockdown`, or
//! `IBACKUP_LOCKDOWN_DIR`).
//!
//! Not here: the usbmuxd daemon (transport::usbmuxd), anything above the byte stream.

pub mod emulated;
pub mod frame;
#[cfg(not(windows))]
mod libusb;
pub mod mux;

use std::collections::HashMap;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::device::transport::{AttachedDevice, BoxStream, Transport, IO_TIMEOUT};
use crate::device::DeviceError;
use mux::Mux;

/// Whether this build can reach a phone over USB by itself (not on Windows: see Cargo.toml).
pub const AVAILABLE: bool = cfg!(not(windows));

/// The name transports report for direct USB (`connection` in JSON).
pub const NAME: &str = "usb";

/// What to do about a machine where libusb may not open the phone.
pub fn linux_fix() -> String {
    format!(
        "On Linux, let your user open iPhones: add the udev rule\n  {UDEV_RULE}\nto /etc/udev/rules.d/39-ibackup-iphone.rules, run `sudo udevadm control --reload && sudo udevadm trigger`, add yourself to the plugdev group (`sudo usermod -aG plugdev $USER`, then log in again) and replug the iPhone. Or use the usbmuxd daemon: --transport usbmuxd."
    )
}

/// Gives the plugdev group access to Apple's usbmux product ids 0x1290-0x12af.
pub const UDEV_RULE: &str = r#"SUBSYSTEM=="usb", ATTR{idVendor}=="05ac", ATTR{idProduct}=="12[9a][0-9a-f]", MODE="0660", GROUP="plugdev""#;

/// A UDID from the USB serial number: newer phones (24 hex digits) report it without the dash
/// their UDID has after the eighth digit. [usbmuxd src/usb.c usb_device_add, serial fix-up]
pub fn normalize_serial(serial: &str) -> String {
    let serial = serial.trim();
    if serial.len() == 24 && serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{}-{}", &serial[..8], &serial[8..])
    } else {
        serial.to_string()
    }
}

/// Where phones are found.
enum Bus {
    /// A Unix socket to an emulated phone (`IBACKUP_USB_EMULATOR`).
    #[cfg(unix)]
    Emulated(PathBuf),
    #[cfg(not(windows))]
    Libusb(libusb::LibusbBus),
    /// Windows builds have neither: the transport is never constructed there.
    #[cfg(windows)]
    #[allow(dead_code)]
    Unavailable(std::convert::Infallible),
}

/// Phones reached over USB by ibackup itself.
pub struct UsbTransport {
    bus: Bus,
    /// One mux session per phone, shared by its connections (a phone is claimed once).
    sessions: Mutex<HashMap<u64, Arc<Mux>>>,
}

impl UsbTransport {
    /// The emulated phone when `IBACKUP_USB_EMULATOR` names one, otherwise libusb. Fails with
    /// `UsbUnavailable` (cause and fix) where libusb cannot start.
    pub fn open() -> Result<UsbTransport, DeviceError> {
        let emulator = std::env::var_os(emulated::EMULATOR_VARIABLE).filter(|v| !v.is_empty());
        let bus = match emulator {
            #[cfg(unix)]
            Some(path) => Bus::Emulated(PathBuf::from(path)),
            #[cfg(not(unix))]
            Some(_) => {
                return Err(DeviceError::UsbUnavailable {
                    cause: "the USB emulator needs Unix sockets".to_string(),
                    fix: "Unset IBACKUP_USB_EMULATOR.".to_string(),
                })
            }
            None => Self::libusb()?,
        };
        Ok(UsbTransport {
            bus,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    #[cfg(not(windows))]
    fn libusb() -> Result<Bus, DeviceError> {
        libusb::LibusbBus::start().map(Bus::Libusb)
    }

    #[cfg(windows)]
    fn libusb() -> Result<Bus, DeviceError> {
        Err(DeviceError::UsbUnavailable {
            cause: "direct USB is not available in this build".to_string(),
            fix: "On Windows, install Apple Devices (or iTunes) and use --transport usbmuxd."
                .to_string(),
        })
    }

    fn session(&self, device: &AttachedDevice) -> Result<Arc<Mux>, DeviceError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mux) = sessions.get(&device.device_id) {
            return Ok(Arc::clone(mux));
        }
        let (pipes, label) = self.open_pipes(device)?;
        let mux = Mux::open(pipes, &label, IO_TIMEOUT)?;
        sessions.insert(device.device_id, Arc::clone(&mux));
        Ok(mux)
    }

    /// Claims the phone's pipes and names it for messages.
    fn open_pipes(
        &self,
        device: &AttachedDevice,
    ) -> Result<(Box<dyn mux::BulkPipes>, String), DeviceError> {
        #[cfg(windows)]
        let _ = device;
        match &self.bus {
            #[cfg(unix)]
            Bus::Emulated(path) => {
                let (pipes, _) = emulated::SocketPipes::connect(path, IO_TIMEOUT).map_err(|e| {
                    DeviceError::io(
                        format!("reaching the emulated iPhone at {}", path.display()),
                        e,
                    )
                })?;
                let pipes: Box<dyn mux::BulkPipes> = Box::new(pipes);
                Ok((pipes, format!("the emulated iPhone at {}", path.display())))
            }
            #[cfg(not(windows))]
            Bus::Libusb(bus) => bus.open(device),
            #[cfg(windows)]
            Bus::Unavailable(never) => match *never {},
        }
    }
}

impl Transport for UsbTransport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn devices(&self) -> Result<Vec<AttachedDevice>, DeviceError> {
        match &self.bus {
            #[cfg(unix)]
            Bus::Emulated(path) => match emulated::SocketPipes::connect(path, IO_TIMEOUT) {
                Ok((_, descriptor)) => Ok(vec![AttachedDevice {
                    udid: normalize_serial(&descriptor.serial),
                    device_id: 1,
                    connection_type: "USB".to_string(),
                }]),
                // No emulated phone listening is an unplugged phone.
                Err(_) => Ok(Vec::new()),
            },
            #[cfg(not(windows))]
            Bus::Libusb(bus) => bus.devices(),
            #[cfg(windows)]
            Bus::Unavailable(never) => match *never {},
        }
    }

    fn wait_for_device(&self, timeout: Duration) -> Result<Option<AttachedDevice>, DeviceError> {
        // libusb hotplug is not everywhere: poll, as usbmuxd does without it.
        let deadline = crate::device::deadline_after(timeout);
        loop {
            if let Some(device) = self.devices()?.into_iter().next() {
                return Ok(Some(device));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            std::thread::sleep(left.min(Duration::from_millis(500)));
        }
    }

    fn connect(&self, device: &AttachedDevice, port: u16) -> Result<BoxStream, DeviceError> {
        let mux = self.session(device)?;
        match mux.connect(port) {
            Ok(stream) => Ok(Box::new(stream)),
            Err(e) => {
                // A dead session is dropped so the next attempt starts afresh.
                if matches!(e, DeviceError::Closed { .. } | DeviceError::BadReply { .. }) {
                    let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                    sessions.remove(&device.device_id);
                }
                Err(e)
            }
        }
    }

    fn read_pair_record(&self, _udid: &str) -> Result<Option<Vec<u8>>, DeviceError> {
        // No daemon: lockdown::pair_record reads the OS folder next.
        Ok(None)
    }

    fn save_pair_record(&self, _: &AttachedDevice, _: &[u8]) -> Result<bool, DeviceError> {
        // No daemon: lockdown::pair_record saves to the OS folder.
        Ok(false)
    }

    fn system_buid(&self) -> Result<Option<String>, DeviceError> {
        // No daemon: lockdown::pair_record reads the folder's SystemConfiguration.plist.
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_become_udids() {
        assert_eq!(
            normalize_serial("00008110001A2B3C4D5E801E"),
            "00008110-001A2B3C4D5E801E"
        );
        let old = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(normalize_serial(old), old);
        assert_eq!(normalize_serial(" x "), "x");
    }

    #[test]
    fn the_udev_rule_covers_the_product_range() {
        assert!(UDEV_RULE.contains("05ac"));
        assert!(linux_fix().contains("plugdev"));
    }
}
