//! Manifest.db from mutated bytes, opened in memory through the same path as a real one: the
//! hardening (limits, work budget), the schema check, the row stream and the name lookups.
//! Every row handed over must be within the size limits.
#![no_main]

use ibackup::backup::manifest::{Manifest, MAX_NAME_BYTES, MAX_VALUE_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::from_bytes(data) else {
        return;
    };
    let _ = manifest.row_estimate();
    let mut rowids = Vec::new();
    let _ = manifest.scan(|row| {
        for name in [row.file_id, row.domain, row.relative_path] {
            assert!(name.len() <= MAX_NAME_BYTES);
        }
        assert!(row.file.map_or(0, <[u8]>::len) <= MAX_VALUE_BYTES);
        if rowids.len() < 8 {
            rowids.push(row.rowid);
        }
    });
    for rowid in rowids {
        if let Ok((file_id, domain, path)) = manifest.names(rowid) {
            // Lossy UTF-8 may grow a name, up to three bytes for each byte read.
            assert!(file_id.len().max(domain.len()).max(path.len()) <= 3 * MAX_NAME_BYTES);
        }
    }
});
