//! What the service tests share: a paired lockdown session with a simulated phone behind its
//! usbmuxd ([`PairedSession`]), the phone on emulated USB with the host's mux ([`usb_phone`]) and
//! that mux as a transport ([`MuxTransport`]), and waiting for something the phone does on its
//! own threads ([`eventually`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ibackup::device::lockdown::pair_record::PairRecord;
use ibackup::device::lockdown::{LockdownClient, PORT};
use ibackup::device::transport::usb::emulated::channel_pair;
use ibackup::device::transport::usb::mux::Mux;
use ibackup::device::transport::usbmuxd::UsbmuxdTransport;
use ibackup::device::transport::{parse_address, AttachedDevice, BoxStream, Transport};
use ibackup::device::DeviceError;
use ibackup_sim::usb::{serve_usb, UsbOptions};
use ibackup_sim::{Phone, Profile};

use super::{SimPhone, SIM_UDID};

/// A paired lockdown session with the simulated phone behind usbmuxd, and what it takes to
/// start services.
pub struct PairedSession {
    pub transport: UsbmuxdTransport,
    pub device: AttachedDevice,
    pub record: PairRecord,
    pub lockdown: LockdownClient,
}

impl PairedSession {
    pub fn new(phone: &SimPhone) -> PairedSession {
        let transport = UsbmuxdTransport {
            address: parse_address(phone.address()).unwrap(),
        };
        let device = transport.devices().unwrap().remove(0);
        assert_eq!(device.udid, SIM_UDID);
        let bytes = transport
            .read_pair_record(SIM_UDID)
            .unwrap()
            .expect("a pre-paired simulator has a record");
        let record = PairRecord::from_plist(&bytes, "sim").unwrap();
        let mut lockdown = LockdownClient::new(transport.connect(&device, PORT).unwrap());
        lockdown.query_type().unwrap();
        lockdown.start_session(&record).unwrap();
        PairedSession {
            transport,
            device,
            record,
            lockdown,
        }
    }
}

/// The emulated USB phone as a transport for ibackup's service handshake (a test's stand-in for
/// the libusb transport, which needs a bus).
pub struct MuxTransport(pub Arc<Mux>);

impl Transport for MuxTransport {
    fn name(&self) -> &'static str {
        "usb"
    }
    fn devices(&self) -> Result<Vec<AttachedDevice>, DeviceError> {
        Ok(vec![usb_device()])
    }
    fn wait_for_device(&self, _: Duration) -> Result<Option<AttachedDevice>, DeviceError> {
        Ok(Some(usb_device()))
    }
    fn connect(&self, _: &AttachedDevice, port: u16) -> Result<BoxStream, DeviceError> {
        Ok(Box::new(self.0.connect(port)?))
    }
    fn read_pair_record(&self, _: &str) -> Result<Option<Vec<u8>>, DeviceError> {
        Ok(None)
    }
    fn save_pair_record(&self, _: &AttachedDevice, _: &[u8]) -> Result<bool, DeviceError> {
        Ok(false)
    }
    fn system_buid(&self) -> Result<Option<String>, DeviceError> {
        Ok(None)
    }
}

/// The simulated phone as the emulated USB transport lists it.
pub fn usb_device() -> AttachedDevice {
    AttachedDevice {
        udid: SIM_UDID.to_string(),
        device_id: 1,
        connection_type: "USB".to_string(),
    }
}

/// A default phone on emulated USB, with the host's mux and the phone's own state.
pub fn usb_phone() -> (Arc<Mux>, Arc<Phone>) {
    let (host, device) = channel_pair(512);
    let phone = Arc::new(Phone::new(Profile::default()).unwrap());
    let served = Arc::clone(&phone);
    std::thread::spawn(move || {
        let _ = serve_usb(served, Box::new(device), &UsbOptions::default());
    });
    let mux = Mux::open(
        Box::new(host),
        "the emulated iPhone",
        Duration::from_secs(5),
    )
    .unwrap();
    (mux, phone)
}

/// Waits up to five seconds for `condition`, failing the test with `what` if it never holds.
pub fn eventually(what: &str, condition: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
