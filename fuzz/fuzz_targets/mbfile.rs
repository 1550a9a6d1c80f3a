//! The MBFile keyed-archive decoder (one per Manifest.db row): full, size-only, and the size
//! and time `diff` reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let full = ibackup::backup::mbfile::decode(data);
    let size = ibackup::backup::mbfile::size(data);
    let brief = ibackup::backup::mbfile::size_and_time(data);
    // All read the same Size: they must agree whenever the full decode succeeds.
    if let (Ok(file), Ok(size)) = (&full, &size) {
        assert_eq!(file.size, *size);
    }
    if let (Ok(file), Ok((size, _))) = (&full, &brief) {
        assert_eq!(file.size, *size);
    }
});
