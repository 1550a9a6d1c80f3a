//! A usbmuxd frame as a daemon (or something pretending to be one) sends it: header, payload,
//! and the plist inside.
#![no_main]

use std::io::Cursor;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let deadline = Instant::now() + Duration::from_secs(1);
    if let Ok((_, payload)) =
        ibackup::device::transport::usbmuxd::read_frame(&mut Cursor::new(data), "fuzz", deadline)
    {
        let _ = ibackup::device::transport::usbmuxd::parse_dict(&payload, "fuzz");
    }
});
