//! A mux packet as it comes off the USB bulk IN pipe, in both header forms (protocol 1 and 2).
#![no_main]

use ibackup::device::transport::usb::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for wide in [false, true] {
        let _ = frame::announced_length(data, wide);
        let _ = frame::decode(data, wide);
    }
});
