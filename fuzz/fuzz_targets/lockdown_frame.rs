//! A lockdownd message as a phone (or something pretending to be one) sends it.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ibackup::device::lockdown::read_message(&mut Cursor::new(data), "fuzz");
});
