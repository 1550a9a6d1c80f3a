//! What a backup holds, in the terms people ask about: Messages, Photos, WhatsApp, Contacts,
//! Notes, Call history, Health and Keychain. Each category is a set of (domain, path prefix)
//! pairs; the manifest scan adds every listed file to the category it falls in, and the
//! matching counts those whose blob is in the folder. A category is `present` when at least one
//! of its listed files is there; `files_present` of `files` tells partial presence.
//!
//! Locations: mvt-project/mvt src/mvt/ios/modules (sms.db, AddressBook.sqlitedb,
//! CallHistory.storedata, ChatStorage.sqlite, NoteStore.sqlite). iOS puts Health and Keychain
//! only in encrypted backups [Apple support: "About encrypted backups on your iPhone"], but the
//! report follows what the manifest lists, so a plain backup that lists them holds them.

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
    // Messages' attachments (photos, videos, voice notes sent and received).
    (Category::Messages, "MediaDomain", "Library/SMS/"),
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
    /// At least one listed file of this category is in the folder. Health and Keychain count
    /// like the rest: the manifest, not the encryption, says whether the backup holds them.
    pub present: bool,
    /// Files of this category the manifest lists.
    pub files: u64,
    /// Bytes those listed files state.
    pub bytes: u64,
    /// Listed files of this category whose blob is in the folder (whatever its size); equal to
    /// `files` when all are there, smaller when some are missing.
    pub files_present: u64,
}

/// Per-category counters filled during the manifest scan. The places of each domain are
/// looked up once, under the number the caller gives the domain (its place in the caller's own
/// list of domains), so that rows of many domains mixed together cost no string comparison
/// beyond the caller's own.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    counts: [(u64, u64); Category::ALL.len()],
    present: [u64; Category::ALL.len()],
    /// By domain number: the places of that domain, once it has been seen.
    places: Vec<Option<Vec<(Category, &'static str)>>>,
}

impl Tally {
    /// Counts one listed file and returns its category, if it has one. `number` names `domain`
    /// and must name no other domain in calls to this tally.
    pub fn add(
        &mut self,
        number: usize,
        domain: &[u8],
        relative_path: &[u8],
        bytes: u64,
    ) -> Option<Category> {
        if self.places.len() <= number {
            self.places.resize(number + 1, None);
        }
        let places = self.places[number].get_or_insert_with(|| {
            PLACES
                .iter()
                .filter(|(_, d, _)| d.as_bytes() == domain)
                .map(|&(category, _, prefix)| (category, prefix))
                .collect()
        });
        let found = places
            .iter()
            .find(|(_, prefix)| relative_path.starts_with(prefix.as_bytes()));
        let &(category, _) = found?;
        let slot = &mut self.counts[category as usize];
        slot.0 += 1;
        slot.1 += bytes;
        Some(category)
    }

    /// Counts one listed file of `category` as found in the folder.
    pub fn found(&mut self, category: Category) {
        self.present[category as usize] += 1;
    }

    pub fn holdings(&self) -> Vec<Holding> {
        Category::ALL
            .iter()
            .map(|&category| {
                let (files, bytes) = self.counts[category as usize];
                let files_present = self.present[category as usize];
                Holding {
                    category,
                    label: category.label(),
                    present: files_present > 0,
                    files,
                    bytes,
                    files_present,
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
    fn health_counts_as_the_manifest_lists_it_and_presence_follows_the_files() {
        let mut tally = Tally::default();
        assert_eq!(
            tally.add(0, b"HealthDomain", b"Health/healthdb.sqlite", 100),
            Some(Category::Health)
        );
        assert_eq!(
            tally.add(1, b"HomeDomain", b"Library/SMS/sms.db", 50),
            Some(Category::Messages)
        );
        tally.add(1, b"HomeDomain", b"Library/SMS/Attachments/a.jpg", 10);
        assert_eq!(tally.add(1, b"HomeDomain", b"Library/Other", 1), None);
        tally.found(Category::Health);
        tally.found(Category::Messages);
        let holdings = tally.holdings();
        let get = |c| holdings.iter().find(|h| h.category == c).unwrap();
        let health = get(Category::Health);
        assert!(
            health.present,
            "an unencrypted backup that lists Health holds it"
        );
        assert_eq!(
            (health.files, health.files_present, health.bytes),
            (1, 1, 100)
        );
        let messages = get(Category::Messages);
        assert!(messages.present);
        assert_eq!((messages.files, messages.files_present), (2, 1));
        let photos = get(Category::Photos);
        assert!(!photos.present);
    }

    /// Rows of several domains mixed together each fall in their own domain's places.
    #[test]
    fn mixed_domains_keep_their_own_places() {
        let mut tally = Tally::default();
        for _ in 0..3 {
            assert_eq!(
                tally.add(0, b"HomeDomain", b"Library/SMS/sms.db", 1),
                Some(Category::Messages)
            );
            assert_eq!(
                tally.add(1, b"MediaDomain", b"Library/Notes/notes.sqlite", 1),
                None
            );
            assert_eq!(
                tally.add(2, b"CameraRollDomain", b"Library/1.HEIC", 1),
                Some(Category::Photos)
            );
        }
        assert_eq!(tally.holdings()[Category::Messages as usize].files, 3);
    }

    #[test]
    fn a_category_whose_files_are_all_missing_is_not_present() {
        let mut tally = Tally::default();
        tally.add(
            0,
            b"CameraRollDomain",
            b"Media/DCIM/100APPLE/IMG_1.HEIC",
            10,
        );
        let photos = tally.holdings()[Category::Photos as usize].clone();
        assert_eq!(
            (photos.present, photos.files, photos.files_present),
            (false, 1, 0)
        );
    }
}
