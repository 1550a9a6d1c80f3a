//! The backup keybag TLV parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ibackup::backup::keybag::Keybag::parse(data);
});
