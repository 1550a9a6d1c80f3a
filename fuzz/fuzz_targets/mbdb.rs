//! The legacy Manifest.mbdb parser (iOS 5-9 backups).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ibackup::backup::mbdb::parse(data);
});
