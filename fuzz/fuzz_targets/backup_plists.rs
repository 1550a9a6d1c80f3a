//! Info.plist, Manifest.plist and Status.plist loading (XML and binary), shape check included.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => drop(ibackup::backup::plists::parse_info(bytes)),
        1 => drop(ibackup::backup::plists::parse_manifest(bytes)),
        _ => drop(ibackup::backup::plists::parse_status(bytes)),
    }
});
