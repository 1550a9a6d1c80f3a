//! Per-app sizes: the per-domain tallies the scan already made, grouped by app (pure, no I/O,
//! no second pass over the manifest). An app is its `AppDomain-<bundle>` container plus the
//! extensions and groups [`app_of_domain`] gives it (the dot-prefix rule of `select.rs`); the
//! apps that may claim them are those Manifest.plist's `Applications`, Info.plist's
//! `Installed Applications` and `Applications` name, and every `AppDomain-` domain listed. A
//! group or extension no app claims is kept under its own id as a `shared` entry, never dropped.
//!
//! Names: Info.plist's iTunesMetadata (the store name), else Manifest.plist's Path without
//! `.app`, else the bundle id. Names are kept as the backup wrote them; render/ escapes them.
//!
//! The iCloud share: an iCloud backup holds an app's data as it is (only what syncs by itself,
//! Photos with iCloud Photos on, is left out, and that is no app's), so an app's estimate is its
//! declared size. [`IcloudEstimate`] says what the whole backup would take and what it assumes.

use std::collections::HashMap;

use serde::Serialize;

use super::plists::AppName;
use super::report::DomainSize;
use super::select::{app_domain, app_of_domain};

/// Whether an entry is an app or a container no app claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    App,
    /// A group or extension whose id no app's bundle id prefixes.
    Shared,
}

/// Where an app's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// Info.plist `Applications` > iTunesMetadata itemName (or bundleDisplayName).
    InfoPlist,
    /// Manifest.plist `Applications` > Path, its last part without `.app`.
    ManifestPlist,
    /// Neither names it: the bundle id (or a shared entry's id).
    BundleId,
}

/// One app's share of the backup (docs/json.md, `apps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSize {
    /// The bundle id (a shared entry: its group or extension id, `group.` dropped).
    pub bundle: String,
    pub name: String,
    pub name_from: NameSource,
    pub kind: AppKind,
    /// Listed regular files, and the bytes they declare, over all its domains.
    pub files: u64,
    pub bytes: u64,
    /// How many domains it has (container, extensions, groups).
    pub domains: u64,
    /// What an iCloud backup would hold of it: app data is backed up as it is.
    pub icloud_bytes_estimate: u64,
}

/// Apps named by the backup's plists.
#[derive(Debug, Clone, Default)]
pub struct KnownApps<'a> {
    /// Info.plist `Applications` (with store names).
    pub info: &'a [AppName],
    /// Info.plist `Installed Applications`.
    pub installed: &'a [String],
    /// Manifest.plist `Applications` (with Path names).
    pub manifest: &'a [AppName],
}

/// The apps of a backup, biggest first (then by bundle id).
pub fn per_app(domains: &[DomainSize], known: &KnownApps<'_>) -> Vec<AppSize> {
    let mut table = Table::default();
    for app in known.info {
        table.add(&app.bundle, app.name.as_deref(), NameSource::InfoPlist);
    }
    for app in known.manifest {
        table.add(&app.bundle, app.name.as_deref(), NameSource::ManifestPlist);
    }
    for bundle in known.installed {
        table.add(bundle, None, NameSource::BundleId);
    }
    for d in domains {
        if let Some(bundle) = d.domain.strip_prefix("AppDomain-") {
            table.add(bundle, None, NameSource::BundleId);
        }
    }
    let mut shared: HashMap<String, usize> = HashMap::new();
    let mut apps: Vec<AppSize> = Vec::new();
    let mut slot_of_entry: HashMap<usize, usize> = HashMap::new();
    for d in domains {
        let Some((id, _)) = app_domain(&d.domain) else {
            continue;
        };
        let slot = match table.owner(&d.domain, id) {
            Some(entry) => *slot_of_entry.entry(entry).or_insert_with(|| {
                apps.push(table.entries[entry].size(AppKind::App));
                apps.len() - 1
            }),
            None => *shared.entry(id.to_ascii_lowercase()).or_insert_with(|| {
                apps.push(Entry::bare(id).size(AppKind::Shared));
                apps.len() - 1
            }),
        };
        let app = &mut apps[slot];
        app.files += d.files;
        app.bytes += d.bytes;
        app.domains += 1;
        app.icloud_bytes_estimate += d.bytes;
    }
    apps.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.bundle.cmp(&b.bundle)));
    apps
}

/// A known app and the best name found for it so far.
#[derive(Debug, Clone)]
struct Entry {
    bundle: String,
    name: Option<(String, NameSource)>,
}

impl Entry {
    fn bare(id: &str) -> Entry {
        Entry {
            bundle: id.to_string(),
            name: None,
        }
    }

    fn size(&self, kind: AppKind) -> AppSize {
        let (name, name_from) = self
            .name
            .clone()
            .unwrap_or_else(|| (self.bundle.clone(), NameSource::BundleId));
        AppSize {
            bundle: self.bundle.clone(),
            name,
            name_from,
            kind,
            files: 0,
            bytes: 0,
            domains: 0,
            icloud_bytes_estimate: 0,
        }
    }
}

/// Known apps by lowercased bundle id (ids match case-insensitively, as in `select.rs`).
#[derive(Debug, Default)]
struct Table {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Table {
    /// Adds a bundle, or gives a known one a name if it has none yet (sources come in order of
    /// preference).
    fn add(&mut self, bundle: &str, name: Option<&str>, from: NameSource) {
        let key = bundle.to_ascii_lowercase();
        let at = *self.index.entry(key).or_insert_with(|| {
            self.entries.push(Entry::bare(bundle));
            self.entries.len() - 1
        });
        let entry = &mut self.entries[at];
        if entry.name.is_none() {
            entry.name = name.map(|n| (n.to_string(), from));
        }
    }

    /// The entry `domain` (whose app id is `id`) belongs to. Only the dot-prefixes of `id` can
    /// own it, so those known are handed to [`app_of_domain`]: the rule stays select.rs's, and
    /// the cost is the id's length, not the number of apps.
    fn owner(&self, domain: &str, id: &str) -> Option<usize> {
        let candidates = dot_prefixes(id)
            .filter_map(|prefix| self.index.get(&prefix.to_ascii_lowercase()).copied())
            .collect::<Vec<_>>();
        let bundles = candidates.iter().map(|&i| self.entries[i].bundle.as_str());
        let owner = app_of_domain(domain, bundles)?;
        candidates
            .into_iter()
            .find(|&i| self.entries[i].bundle == owner)
    }
}

/// `a.b.c`, `a.b`, `a`.
fn dot_prefixes(id: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(id), |s| s.rfind('.').map(|at| &s[..at]))
}

/// What an iCloud backup of the phone would hold, as far as the backup tells (docs/json.md,
/// `icloud_estimate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IcloudEstimate {
    /// Declared bytes an iCloud backup would take, on the assumption in `assumes`.
    pub bytes: u64,
    /// The camera roll's declared bytes (CameraRollDomain, MediaDomain `Media/DCIM/`): left out
    /// of an iCloud backup when iCloud Photos is on.
    pub photos_bytes: u64,
    /// Whether iCloud Photos is on; null when the backup does not say.
    pub icloud_photos: Option<bool>,
    /// What the estimate takes for granted, in words.
    pub assumes: &'static str,
}

/// Said when iCloud Photos is not known (a computer backup does not record it).
pub const ASSUMES_PHOTOS_UNKNOWN: &str = "whether iCloud Photos is on is not known, so the \
     camera roll is counted; with iCloud Photos on, an iCloud backup leaves out photos_bytes. \
     App data is counted as it is";

/// The estimate from the backup's declared total and its camera roll, iCloud Photos unknown.
pub fn icloud_estimate(declared_bytes: u64, photos_bytes: u64) -> IcloudEstimate {
    IcloudEstimate {
        bytes: declared_bytes,
        photos_bytes,
        icloud_photos: None,
        assumes: ASSUMES_PHOTOS_UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str, files: u64, bytes: u64) -> DomainSize {
        DomainSize {
            domain: name.into(),
            files,
            bytes,
        }
    }

    fn named(bundle: &str, name: Option<&str>) -> AppName {
        AppName {
            bundle: bundle.into(),
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn domains_are_grouped_by_app_with_names_in_order_of_preference() {
        let domains = [
            domain("AppDomain-net.whatsapp.WhatsApp", 10, 1_000),
            domain(
                "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
                5,
                4_000,
            ),
            domain("AppDomainPlugin-net.whatsapp.WhatsApp.Share", 1, 7),
            domain("AppDomainGroup-group.org.vendor.common", 2, 300),
            domain("AppDomain-com.example.notes", 3, 50),
            domain("AppDomain-com.example.bare", 0, 0),
            domain("HomeDomain", 9, 9_999),
        ];
        let info = [named("net.whatsapp.WhatsApp", Some("WhatsApp Messenger"))];
        let manifest = [
            named("net.whatsapp.WhatsApp", Some("WhatsApp")),
            named("com.example.notes", Some("Notes+")),
        ];
        let installed = ["com.example.unused".to_string()];
        let apps = per_app(
            &domains,
            &KnownApps {
                info: &info,
                installed: &installed,
                manifest: &manifest,
            },
        );
        let rows: Vec<_> = apps
            .iter()
            .map(|a| {
                (
                    a.bundle.as_str(),
                    a.name.as_str(),
                    a.kind,
                    a.files,
                    a.bytes,
                    a.domains,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "net.whatsapp.WhatsApp",
                    "WhatsApp Messenger",
                    AppKind::App,
                    16,
                    5_007,
                    3
                ),
                (
                    "org.vendor.common",
                    "org.vendor.common",
                    AppKind::Shared,
                    2,
                    300,
                    1
                ),
                ("com.example.notes", "Notes+", AppKind::App, 3, 50, 1),
                (
                    "com.example.bare",
                    "com.example.bare",
                    AppKind::App,
                    0,
                    0,
                    1
                ),
            ]
        );
        assert_eq!(apps[0].name_from, NameSource::InfoPlist);
        assert_eq!(apps[2].name_from, NameSource::ManifestPlist);
        assert_eq!(apps[3].name_from, NameSource::BundleId);
        assert_eq!(apps[0].icloud_bytes_estimate, 5_007);
    }

    #[test]
    fn an_installed_app_claims_its_groups_without_a_container() {
        let domains = [domain("AppDomainGroup-group.com.a.b.x", 1, 10)];
        let installed = ["com.a".to_string(), "com.a.b".to_string()];
        let apps = per_app(
            &domains,
            &KnownApps {
                installed: &installed,
                ..KnownApps::default()
            },
        );
        assert_eq!(apps.len(), 1);
        assert_eq!(
            (apps[0].bundle.as_str(), apps[0].kind),
            ("com.a.b", AppKind::App)
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            dot_prefixes("a.b.c").collect::<Vec<_>>(),
            ["a.b.c", "a.b", "a"]
        );
        assert_eq!(dot_prefixes("").collect::<Vec<_>>(), [""]);
    }
}
