//! What a backup holds, in the terms people ask about: Messages, Photos, WhatsApp, Contacts,
//! Notes, Call history, Health and Keychain. Each category is a set of (domain, path prefix)
//! pairs; the manifest scan adds every listed file to the category it falls in.
//!
//! Locations: mvt-project/mvt src/mvt/ios/modules (sms.db, AddressBook.sqlitedb,
//! CallHistory.storedata, ChatStorage.sqlite, NoteStore.sqlite); Health and Keychain are only
//! in an encrypted backup [Apple support: "About encrypted backups on your iPhone"].

use serde::Serialize;

/// A kind of data people look for in a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Messages,
    Photos,
    Whatsapp,
    Contacts,
    Notes,
    CallHistory,
    Health,
    Keychain,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Messages,
        Category::Photos,
        Category::Whatsapp,
        Category::Contacts,
        Category::Notes,
        Category::CallHistory,
        Category::Health,
        Category::Keychain,
    ];

    /// The name a person knows it by.
    pub fn label(self) -> &'static str {
        match self {
            Category::Messages => "Messages",
            Category::Photos => "Photos",
            Category::Whatsapp => "WhatsApp",
            Category::Contacts => "Contacts",
            Category::Notes => "Notes",
            Category::CallHistory => "Call history",
            Category::Health => "Health",
            Category::Keychain => "Keychain (saved passwords)",
        }
    }

    /// Whether iOS puts this category only in encrypted backups.
    pub fn needs_encryption(self) -> bool {
        matches!(self, Category::Health | Category::Keychain)
    }
}

/// (category, domain, relative path prefix); an empty prefix takes the whole domain.
const PLACES: &[(Category, &str, &str)] = &[
    (Category::Messages, "HomeDomain", "Library/SMS/"),
    (Category::Photos, "CameraRollDomain", ""),
    (Category::Photos, "MediaDomain", "Media/DCIM/"),
    (Category::Whatsapp, "AppDomain-net.whatsapp.WhatsApp", ""),
    (
        Category::Whatsapp,
        "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
        "",
    ),
    (Category::Contacts, "HomeDomain", "Library/AddressBook/"),
    (Category::Notes, "HomeDomain", "Library/Notes/"),
    (Category::Notes, "AppDomainGroup-group.com.apple.notes", ""),
    (
        Category::CallHistory,
        "HomeDomain",
        "Library/CallHistoryDB/",
    ),
    (
        Category::CallHistory,
        "WirelessDomain",
        "Library/CallHistory/",
    ),
    (Category::Health, "HealthDomain", ""),
    (Category::Keychain, "KeychainDomain", ""),
];

/// The category of a file, if it has one.
pub fn category_of(domain: &[u8], relative_path: &[u8]) -> Option<Category> {
    PLACES
        .iter()
        .find(|(_, d, prefix)| {
            domain == d.as_bytes() && relative_path.starts_with(prefix.as_bytes())
        })
        .map(|(category, _, _)| *category)
}

/// One category's share of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holding {
    pub category: Category,
    pub label: &'static str,
    /// Files of this category are listed (for Health and Keychain: and the backup is
    /// encrypted, without which iOS leaves them out).
    pub present: bool,
    pub files: u64,
    pub bytes: u64,
}

/// Per-category counters filled during the manifest scan. The places of the current domain
/// are kept at hand: rows come grouped by domain, and most domains have none.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    counts: [(u64, u64); Category::ALL.len()],
    domain: Vec<u8>,
    places: Vec<(Category, &'static str)>,
}

impl Tally {
    pub fn add(&mut self, domain: &[u8], relative_path: &[u8], bytes: u64) {
        if self.domain != domain {
            self.domain = domain.to_vec();
            self.places = PLACES
                .iter()
                .filter(|(_, d, _)| d.as_bytes() == domain)
                .map(|&(category, _, prefix)| (category, prefix))
                .collect();
        }
        let found = self
            .places
            .iter()
            .find(|(_, prefix)| relative_path.starts_with(prefix.as_bytes()));
        if let Some(&(category, _)) = found {
            let slot = &mut self.counts[category as usize];
            slot.0 += 1;
            slot.1 += bytes;
        }
    }

    pub fn holdings(&self, encrypted: bool) -> Vec<Holding> {
        Category::ALL
            .iter()
            .map(|&category| {
                let (files, bytes) = self.counts[category as usize];
                Holding {
                    category,
                    label: category.label(),
                    present: files > 0 && (encrypted || !category.needs_encryption()),
                    files,
                    bytes,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_fall_in_their_category() {
        let cat = |d: &str, p: &str| category_of(d.as_bytes(), p.as_bytes());
        assert_eq!(
            cat("HomeDomain", "Library/SMS/sms.db"),
            Some(Category::Messages)
        );
        assert_eq!(cat("HomeDomain", "Library/SMSX"), None);
        assert_eq!(
            cat("CameraRollDomain", "Media/DCIM/100APPLE/IMG_1.HEIC"),
            Some(Category::Photos)
        );
        assert_eq!(
            cat(
                "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
                "ChatStorage.sqlite"
            ),
            Some(Category::Whatsapp)
        );
        assert_eq!(
            cat("HomeDomain", "Library/CallHistoryDB/CallHistory.storedata"),
            Some(Category::CallHistory)
        );
        assert_eq!(cat("HomeDomain", "Library/Preferences/x.plist"), None);
    }

    #[test]
    fn health_and_keychain_count_only_in_encrypted_backups() {
        let mut tally = Tally::default();
        tally.add(b"HealthDomain", b"Health/healthdb.sqlite", 100);
        tally.add(b"HomeDomain", b"Library/SMS/sms.db", 50);
        let plain = tally.holdings(false);
        let health = plain
            .iter()
            .find(|h| h.category == Category::Health)
            .unwrap();
        assert!(!health.present);
        assert_eq!(health.bytes, 100);
        assert!(
            plain
                .iter()
                .find(|h| h.category == Category::Messages)
                .unwrap()
                .present
        );
        let encrypted = tally.holdings(true);
        assert!(
            encrypted
                .iter()
                .find(|h| h.category == Category::Health)
                .unwrap()
                .present
        );
    }
}
