//! The phone's iCloud Backup settings as of the backup's date: every backup carries HomeDomain
//! `Library/Preferences/com.apple.mobile.ldbackup.plist`, a copy of lockdown's
//! com.apple.mobile.backup values (CloudBackupEnabled, LastCloudBackupDate...). This module reads
//! that one blob (bounded, regular files only, never through a link, decrypted in memory with
//! the file's own key when the backup is encrypted and unlocked) and hands the values to
//! [`crate::mobile_backup`].
//!
//! A file that is not listed, missing, too big, garbage or undecryptable is simply unknown: it
//! never makes a problem or stops the check. Nothing is written anywhere.

use std::path::Path;

use plist::Value;

use super::blobs::{blob_path, open_blob};
use super::crypto;
use super::keybag::ClassKeys;
use super::scan::FoundFile;
use crate::mobile_backup::{IcloudBackup, MobileBackupValues};
use crate::untrusted_file::read_handle_capped;

pub use super::scan::{LDBACKUP_DOMAIN, LDBACKUP_PATH};

/// Real ones are a few hundred bytes; anything past this is not the settings file.
const MAX_LDBACKUP_BYTES: u64 = 1 << 20;

/// How to reach the blob.
pub(super) struct Source<'a> {
    pub(super) root: &'a Path,
    /// Blobs lie flat in the root (iOS 5-9).
    pub(super) flat: bool,
    pub(super) encrypted: bool,
    /// The unlocked class keys of an encrypted backup, when its password was given.
    pub(super) keys: Option<&'a ClassKeys>,
}

/// The iCloud values the backup holds; all unknown when the file cannot be read.
pub(super) fn read(source: &Source<'_>, found: Option<&FoundFile>) -> IcloudBackup {
    found
        .and_then(|found| settings(source, found))
        .map(|values| values.icloud())
        .unwrap_or_default()
}

fn settings(source: &Source<'_>, found: &FoundFile) -> Option<MobileBackupValues> {
    let path = blob_path(source.root, &found.id, source.flat);
    // Opened like every blob: a link, a FIFO or a device in its place is not read.
    let bytes = read_handle_capped(open_blob(&path).ok()?, MAX_LDBACKUP_BYTES).ok()?;
    if source.encrypted {
        let wrapped = found.key.as_deref()?;
        let key = source.keys?.unwrap_key(wrapped).ok()?;
        let plain = crypto::decrypt_to_vec(&key, &bytes).ok()?;
        if found.size.is_some_and(|size| size != plain.len() as u64) {
            return None;
        }
        parse(&plain)
    } else {
        parse(&bytes)
    }
}

/// The settings from the plist's bytes (XML or binary); None unless it is a dictionary.
pub fn parse(bytes: &[u8]) -> Option<MobileBackupValues> {
    crate::plist_shape::check(bytes).ok()?;
    match Value::from_reader(std::io::Cursor::new(bytes)).ok()? {
        Value::Dictionary(dict) => Some(MobileBackupValues::from_dictionary(&dict)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_non_dictionaries_are_unknown() {
        assert_eq!(parse(b"not a plist"), None);
        assert_eq!(parse(b""), None);
        let mut array = Vec::new();
        Value::Array(vec![true.into()])
            .to_writer_binary(&mut array)
            .unwrap();
        assert_eq!(parse(&array), None);
    }

    #[test]
    fn a_binary_settings_plist_is_read() {
        let mut dict = plist::Dictionary::new();
        dict.insert("CloudBackupEnabled".into(), false.into());
        dict.insert("LastCloudBackupDate".into(), 700_000_000i64.into());
        let mut bytes = Vec::new();
        Value::Dictionary(dict)
            .to_writer_binary(&mut bytes)
            .unwrap();
        let values = parse(&bytes).expect("a dictionary");
        assert_eq!(values.cloud_backup_enabled, Some(false));
        assert!(values.last_cloud_backup.is_some());
    }
}
