//! What changed between two backups (`ibackup diff OLD NEW`): files added, removed and changed,
//! matched by fileID, counted by domain, app and category with their byte deltas, and what the
//! newer backup lost ([`Finding`]s: a domain or app that vanished, a category that shrank
//! sharply, files whose blob is gone).
//!
//! Memory stays bounded whatever the backups: the older backup's files go into a map of fileID
//! to [`Older`] (size, time, kind, domain number, row; no names), the newer backup is then
//! streamed past it, and names are kept only for the files a report lists ([`LIST_CAP`] per
//! list, the largest). Removed files are named afterwards by row, for the listed ones only.
//! Directories are left out on both sides.
//!
//! Not here: reading a backup (that is `catalog`), printing (`render::diff`), exit codes (cli).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::blobs::{FileId, IdMap};
use super::scan::expected_blob_len;
use super::catalog::{Catalog, Entry, Kind, State};
use super::contents::{category_of, Category};
use super::error::BackupError;
use super::folder::read_folder;
use super::keybag::Password;
use super::report::Severity;
use super::select::{app_domain, app_of_domain, AppPart};

/// The most files each list (added, removed, changed, now missing) keeps, the largest first.
pub const LIST_CAP: usize = 1000;

/// A category shrank sharply when the newer backup holds at most half its bytes and at least
/// this many fewer bytes (1 MB), or none of its files.
pub const SHRINK_MIN_BYTES: u64 = 1_000_000;

/// The most distinct domains kept by name; files of further domains count under
/// [`OTHER_DOMAINS`]. Real backups have a few thousand at most; a bound keeps a hostile
/// manifest (a million domains of 4 KB names) from filling memory.
pub const MAX_DOMAINS: usize = 10_000;

/// The name files of domains past [`MAX_DOMAINS`] are counted under.
pub const OTHER_DOMAINS: &str = "(other domains)";

/// Which of the two backups something is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Old,
    New,
}

impl Which {
    pub fn label(self) -> &'static str {
        match self {
            Which::Old => "the older backup",
            Which::New => "the newer backup",
        }
    }
}

/// A backup that could not be read, and which one.
#[derive(Debug)]
pub struct DiffError {
    pub which: Which,
    pub error: BackupError,
}

/// One backup as the comparison saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub path: String,
    /// From Info.plist, else Manifest.plist's Lockdown (never the folder name).
    pub udid: Option<String>,
    pub device_name: Option<String>,
    #[serde(serialize_with = "utc_seconds")]
    pub date: Option<DateTime<Utc>>,
    pub encrypted: bool,
    /// iOS 5-9 (Manifest.mbdb).
    pub legacy: bool,
    /// Listed files (directories left out).
    pub files: u64,
    /// Their recorded sizes, summed.
    pub bytes: u64,
}

/// The whole-backup counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub added: u64,
    pub added_bytes: u64,
    pub removed: u64,
    pub removed_bytes: u64,
    pub changed: u64,
    /// New size minus old size, over the changed files.
    pub changed_bytes_delta: i64,
    pub unchanged: u64,
    /// Newer backup's bytes minus the older one's.
    pub bytes_delta: i64,
}

/// One domain's or app's changes.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// For a domain: the app it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub old_files: u64,
    pub new_files: u64,
    pub old_bytes: u64,
    pub new_bytes: u64,
    pub bytes_delta: i64,
}

impl Group {
    fn add(&mut self, other: &Group) {
        self.added += other.added;
        self.removed += other.removed;
        self.changed += other.changed;
        self.old_files += other.old_files;
        self.new_files += other.new_files;
        self.old_bytes += other.old_bytes;
        self.new_bytes += other.new_bytes;
    }

    fn settle(&mut self) {
        self.bytes_delta = delta(self.old_bytes, self.new_bytes);
    }

    pub fn has_changes(&self) -> bool {
        self.added + self.removed + self.changed > 0
    }
}

/// A category of contents on both sides.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CategoryDelta {
    pub category: Category,
    pub label: &'static str,
    pub old_files: u64,
    pub new_files: u64,
    pub old_bytes: u64,
    pub new_bytes: u64,
}

/// Something the newer backup lost, or a note about the pair.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    /// The domain, app or category concerned, when there is one.
    pub subject: Option<String>,
    pub message: String,
}

/// One side of a listed file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Version {
    pub kind: Kind,
    pub size: u64,
    /// Seconds since 1970 (UTC), when recorded.
    pub modified: Option<i64>,
    /// The blob's state in that backup (present, missing, wrong_size, unreadable, `-` for a
    /// symlink); null on the older side, whose blobs are looked at only for `now_missing`.
    pub blob: Option<&'static str>,
}

/// A listed file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileChange {
    pub domain: String,
    pub path: String,
    pub old: Option<Version>,
    pub new: Option<Version>,
}

impl FileChange {
    /// New size minus old size.
    pub fn bytes_delta(&self) -> i64 {
        delta(
            self.old.as_ref().map_or(0, |v| v.size),
            self.new.as_ref().map_or(0, |v| v.size),
        )
    }
}

/// The listed files, at most [`LIST_CAP`] each, largest (by size, or size change) first.
#[derive(Debug, Clone, Serialize)]
pub struct Lists {
    pub cap: usize,
    pub added: Vec<FileChange>,
    pub removed: Vec<FileChange>,
    pub changed: Vec<FileChange>,
    pub now_missing: Vec<FileChange>,
}

/// The `ibackup.diff/1` result.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub schema: &'static str,
    pub old: Side,
    pub new: Side,
    pub totals: Totals,
    /// Files present in the older backup whose blob is missing, of the wrong size or unreadable
    /// in the newer one.
    pub now_missing: u64,
    pub findings: Vec<Finding>,
    /// Every domain with files on either side, largest change first.
    pub domains: Vec<Group>,
    /// Every app (from both backups' AppDomain- domains), largest change first.
    pub apps: Vec<Group>,
    pub categories: Vec<CategoryDelta>,
    pub files: Lists,
}

impl Diff {
    /// Whether the newer backup lost something (a finding of warning or error).
    pub fn lost_something(&self) -> bool {
        self.findings.iter().any(|f| f.severity >= Severity::Warning)
    }
}

fn utc_seconds<S: Serializer>(date: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(d) => s.serialize_str(&d.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => s.serialize_none(),
    }
}

fn delta(old: u64, new: u64) -> i64 {
    (i128::from(new) - i128::from(old)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A blob's state, in one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlobState {
    Present,
    Missing,
    WrongSize,
    Unreadable,
    NoBlob,
}

impl BlobState {
    fn of(state: State) -> BlobState {
        match state {
            State::Present => BlobState::Present,
            State::Missing => BlobState::Missing,
            State::WrongSize { .. } => BlobState::WrongSize,
            State::Unreadable => BlobState::Unreadable,
            State::NoBlob => BlobState::NoBlob,
        }
    }

    fn word(self) -> &'static str {
        match self {
            BlobState::Present => "present",
            BlobState::Missing => "missing",
            BlobState::WrongSize => "wrong_size",
            BlobState::Unreadable => "unreadable",
            BlobState::NoBlob => "-",
        }
    }

    fn lost(self) -> bool {
        matches!(
            self,
            BlobState::Missing | BlobState::WrongSize | BlobState::Unreadable
        )
    }
}

/// What is kept of each file of the older backup: 32 bytes, no name.
#[derive(Debug, Clone, Copy)]
struct Older {
    size: u64,
    /// Where the older backup lists it (its rowid or record index), to fetch its name again
    /// if it was removed.
    row: i64,
    /// Seconds since 1970, or [`NO_TIME`].
    modified: i64,
    domain: u32,
    kind: Kind,
    /// Met again in the newer backup.
    seen: bool,
}

/// An unrecorded time, kept in 8 bytes rather than an `Option`'s 16.
const NO_TIME: i64 = i64::MIN;

fn time_of(modified: Option<i64>) -> i64 {
    modified.unwrap_or(NO_TIME)
}

fn time_back(time: i64) -> Option<i64> {
    (time != NO_TIME).then_some(time)
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    files: u64,
    bytes: u64,
}

impl Count {
    fn add(&mut self, size: u64) {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(size);
    }
}

/// Domains numbered as they are met, with their counts; bounded by [`MAX_DOMAINS`].
#[derive(Default)]
struct Domains {
    index: HashMap<Box<[u8]>, u32, foldhash::fast::RandomState>,
    names: Vec<Box<[u8]>>,
    stats: Vec<Group>,
}

impl Domains {
    fn number(&mut self, domain: &[u8]) -> u32 {
        if let Some(&n) = self.index.get(domain) {
            return n;
        }
        let name: &[u8] = if self.names.len() < MAX_DOMAINS {
            domain
        } else {
            OTHER_DOMAINS.as_bytes()
        };
        if let Some(&n) = self.index.get(name) {
            return n;
        }
        let n = self.names.len() as u32;
        self.index.insert(name.into(), n);
        self.names.push(name.into());
        self.stats.push(Group::default());
        n
    }
}

/// The largest `LIST_CAP` files of one list, names kept only for those that may stay.
struct Top {
    kept: Vec<(u64, FileChange)>,
    /// Entries lighter than this cannot enter any more.
    floor: u64,
}

impl Top {
    fn new() -> Top {
        Top {
            kept: Vec::new(),
            floor: 0,
        }
    }

    fn admits(&self, weight: u64) -> bool {
        self.kept.len() < LIST_CAP || weight >= self.floor
    }

    fn push(&mut self, weight: u64, change: impl FnOnce() -> FileChange) {
        if !self.admits(weight) {
            return;
        }
        self.kept.push((weight, change()));
        if self.kept.len() >= 2 * LIST_CAP {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.kept.sort_by(order);
        self.kept.truncate(LIST_CAP);
        if self.kept.len() == LIST_CAP {
            self.floor = self.kept[LIST_CAP - 1].0;
        }
    }

    fn finish(mut self) -> Vec<FileChange> {
        self.trim();
        self.kept.into_iter().map(|(_, c)| c).collect()
    }
}

/// Heaviest first, then by domain and path, so a list is the same every run.
fn order(a: &(u64, FileChange), b: &(u64, FileChange)) -> Ordering {
    b.0.cmp(&a.0)
        .then_with(|| a.1.domain.cmp(&b.1.domain))
        .then_with(|| a.1.path.cmp(&b.1.path))
}

fn version(kind: Kind, size: u64, modified: Option<i64>, blob: Option<BlobState>) -> Version {
    Version {
        kind,
        size,
        modified,
        blob: blob.map(BlobState::word),
    }
}

fn named(entry: &Entry<'_>, old: Option<Version>, new: Option<Version>) -> FileChange {
    FileChange {
        domain: entry.domain_text().into_owned(),
        path: entry.path_text().into_owned(),
        old,
        new,
    }
}

/// The comparison, fed entry by entry (pure: [`compare`] feeds it from two catalogs, the unit
/// tests from made-up entries). The older backup goes into the map first, then the newer one is
/// walked past it; a second walk of the older one names the removed files.
pub struct Comparer {
    older: IdMap<Older>,
    domains: Domains,
    old_categories: Vec<Count>,
    new_categories: Vec<Count>,
    old_total: Count,
    new_total: Count,
    totals: Totals,
    now_missing: u64,
    added: Top,
    removed: Top,
    changed: Top,
    missing: Top,
    /// The removed files to be named: the largest [`LIST_CAP`], by size then row.
    unnamed: Vec<Older>,
}

impl Default for Comparer {
    fn default() -> Self {
        Comparer::new(0)
    }
}

fn category_slot(domain: &[u8], path: &[u8]) -> Option<usize> {
    let category = category_of(domain, path)?;
    Category::ALL.iter().position(|c| *c == category)
}

impl Comparer {
    /// A comparison expecting about `rows` files in the older backup.
    pub fn new(rows: usize) -> Comparer {
        let mut older = IdMap::default();
        older.reserve(rows);
        Comparer {
            older,
            domains: Domains::default(),
            old_categories: vec![Count::default(); Category::ALL.len()],
            new_categories: vec![Count::default(); Category::ALL.len()],
            old_total: Count::default(),
            new_total: Count::default(),
            totals: Totals::default(),
            now_missing: 0,
            added: Top::new(),
            removed: Top::new(),
            changed: Top::new(),
            missing: Top::new(),
            unnamed: Vec::new(),
        }
    }

    /// First walk: one file of the older backup.
    pub fn add_old(&mut self, entry: &Entry<'_>) {
        if entry.kind == Kind::Directory {
            return;
        }
        let domain = self.domains.number(entry.domain);
        let stats = &mut self.domains.stats[domain as usize];
        stats.old_files += 1;
        stats.old_bytes = stats.old_bytes.saturating_add(entry.size);
        self.old_total.add(entry.size);
        if let Some(slot) = category_slot(entry.domain, entry.relative_path) {
            self.old_categories[slot].add(entry.size);
        }
        self.older.insert(
            entry.file_id,
            Older {
                size: entry.size,
                row: entry.row,
                modified: time_of(entry.modified),
                domain,
                kind: entry.kind,
                seen: false,
            },
        );
    }

    /// Second walk: one file of the newer backup, compared with the older one's.
    /// `old_blob_whole(id, size)` says whether the older backup's blob of that file is there
    /// with its length; it is asked only for a file whose blob the newer backup lacks.
    pub fn compare_new(
        &mut self,
        entry: &Entry<'_>,
        old_blob_whole: impl FnOnce(&FileId, u64) -> bool,
    ) {
        if entry.kind == Kind::Directory {
            return;
        }
        let domain = self.domains.number(entry.domain) as usize;
        let stats = &mut self.domains.stats[domain];
        stats.new_files += 1;
        stats.new_bytes = stats.new_bytes.saturating_add(entry.size);
        self.new_total.add(entry.size);
        if let Some(slot) = category_slot(entry.domain, entry.relative_path) {
            self.new_categories[slot].add(entry.size);
        }
        let new_blob = BlobState::of(entry.state);
        let new = || version(entry.kind, entry.size, entry.modified, Some(new_blob));
        let Some(older) = self.older.get_mut(&entry.file_id) else {
            stats.added += 1;
            self.totals.added += 1;
            self.totals.added_bytes = self.totals.added_bytes.saturating_add(entry.size);
            self.added.push(entry.size, || named(entry, None, Some(new())));
            return;
        };
        older.seen = true;
        let o = *older;
        let old = |blob| version(o.kind, o.size, time_back(o.modified), blob);
        if o.kind != entry.kind || o.size != entry.size || time_back(o.modified) != entry.modified
        {
            stats.changed += 1;
            self.totals.changed += 1;
            let d = delta(o.size, entry.size);
            self.totals.changed_bytes_delta = self.totals.changed_bytes_delta.saturating_add(d);
            self.changed
                .push(d.unsigned_abs(), || named(entry, Some(old(None)), Some(new())));
        } else {
            self.totals.unchanged += 1;
        }
        if new_blob.lost() && o.kind == Kind::File && old_blob_whole(&entry.file_id, o.size) {
            self.now_missing += 1;
            self.missing.push(o.size, || {
                named(entry, Some(old(Some(BlobState::Present))), Some(new()))
            });
        }
    }

    /// After the newer backup: counts the files of the older one that were not met (removed),
    /// and returns the rows of those to be named (the largest [`LIST_CAP`], by size then row).
    pub fn removed_rows(&mut self) -> Vec<i64> {
        let by_size = |a: &Older, b: &Older| b.size.cmp(&a.size).then(a.row.cmp(&b.row));
        let mut unnamed = Vec::new();
        for o in self.older.values().filter(|o| !o.seen) {
            self.domains.stats[o.domain as usize].removed += 1;
            self.totals.removed += 1;
            self.totals.removed_bytes = self.totals.removed_bytes.saturating_add(o.size);
            unnamed.push(*o);
            // Trimmed as it grows, so a backup whose files were all removed costs no more.
            if unnamed.len() >= 2 * LIST_CAP {
                unnamed.sort_unstable_by(by_size);
                unnamed.truncate(LIST_CAP);
            }
        }
        unnamed.sort_unstable_by(by_size);
        unnamed.truncate(LIST_CAP);
        let rows = unnamed.iter().map(|o| o.row).collect();
        self.unnamed = unnamed;
        rows
    }

    /// The (domain, path) of each row [`removed_rows`](Self::removed_rows) gave, in its order.
    pub fn name_removed(&mut self, names: Vec<(String, String)>) {
        for (o, (domain, path)) in std::mem::take(&mut self.unnamed).into_iter().zip(names) {
            let old = version(o.kind, o.size, time_back(o.modified), None);
            self.removed.push(o.size, || FileChange {
                domain,
                path,
                old: Some(old),
                new: None,
            });
        }
    }

    /// The result, with the findings.
    pub fn finish(self, mut old: Side, mut new: Side) -> Diff {
        old.files = self.old_total.files;
        old.bytes = self.old_total.bytes;
        new.files = self.new_total.files;
        new.bytes = self.new_total.bytes;
        let mut totals = self.totals;
        totals.bytes_delta = delta(old.bytes, new.bytes);

        let names: Vec<String> = self
            .domains
            .names
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        let mut apps: Vec<&str> = names
            .iter()
            .filter_map(|d| match app_domain(d) {
                Some((id, AppPart::Container)) => Some(id),
                _ => None,
            })
            .collect();
        apps.sort_unstable();
        apps.dedup();
        let mut by_app: HashMap<&str, Group> = HashMap::new();
        let mut domains = Vec::with_capacity(names.len());
        for (name, mut group) in names.iter().zip(self.domains.stats) {
            group.settle();
            let app = app_of_domain(name, apps.iter().copied());
            if let Some(app) = app {
                by_app.entry(app).or_default().add(&group);
            }
            group.name = name.clone();
            group.app = app.map(str::to_string);
            domains.push(group);
        }
        let mut apps: Vec<Group> = by_app
            .into_iter()
            .map(|(name, mut g)| {
                g.name = name.to_string();
                g.settle();
                g
            })
            .collect();
        domains.sort_by(biggest_change);
        apps.sort_by(biggest_change);

        let categories: Vec<CategoryDelta> = Category::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.old_categories[*i].files + self.new_categories[*i].files > 0)
            .map(|(i, c)| CategoryDelta {
                category: *c,
                label: c.label(),
                old_files: self.old_categories[i].files,
                new_files: self.new_categories[i].files,
                old_bytes: self.old_categories[i].bytes,
                new_bytes: self.new_categories[i].bytes,
            })
            .collect();

        let findings = findings(
            &old,
            &new,
            &domains,
            &apps,
            &categories,
            self.now_missing,
        );
        Diff {
            schema: "ibackup.diff/1",
            old,
            new,
            totals,
            now_missing: self.now_missing,
            findings,
            domains,
            apps,
            categories,
            files: Lists {
                cap: LIST_CAP,
                added: self.added.finish(),
                removed: self.removed.finish(),
                changed: self.changed.finish(),
                now_missing: self.missing.finish(),
            },
        }
    }
}

/// Largest byte change first, then most files changed, then by name.
fn biggest_change(a: &Group, b: &Group) -> Ordering {
    let files = |g: &Group| g.added + g.removed + g.changed;
    b.bytes_delta
        .unsigned_abs()
        .cmp(&a.bytes_delta.unsigned_abs())
        .then_with(|| files(b).cmp(&files(a)))
        .then_with(|| a.name.cmp(&b.name))
}

/// Whether a category shrank sharply (see [`SHRINK_MIN_BYTES`]).
pub fn shrank(c: &CategoryDelta) -> bool {
    let all_gone = c.old_files > 0 && c.new_files == 0;
    let halved = c.new_bytes.saturating_mul(2) <= c.old_bytes
        && c.old_bytes - c.new_bytes >= SHRINK_MIN_BYTES;
    all_gone || halved
}

fn files_and_bytes(files: u64, bytes: u64) -> String {
    format!(
        "{} ({})",
        crate::units::plural(files, "file", "files"),
        crate::units::human_bytes(bytes)
    )
}

fn findings(
    old: &Side,
    new: &Side,
    domains: &[Group],
    apps: &[Group],
    categories: &[CategoryDelta],
    now_missing: u64,
) -> Vec<Finding> {
    let mut found = Vec::new();
    if now_missing > 0 {
        found.push(Finding {
            code: "diff.now_missing",
            severity: Severity::Error,
            subject: None,
            message: format!(
                "{} whose blob was in the older backup {} missing, cut short or unreadable in \
                 the newer one",
                crate::units::plural(now_missing, "file", "files"),
                if now_missing == 1 { "is" } else { "are" }
            ),
        });
    }
    let vanished = |g: &&Group| g.old_files > 0 && g.new_files == 0;
    let gone_apps: Vec<&Group> = apps.iter().filter(vanished).collect();
    for app in &gone_apps {
        found.push(Finding {
            code: "diff.app_vanished",
            severity: Severity::Warning,
            subject: Some(app.name.clone()),
            message: format!(
                "the app {} had {} in the older backup and none in the newer one",
                app.name,
                files_and_bytes(app.old_files, app.old_bytes)
            ),
        });
    }
    for domain in domains.iter().filter(vanished) {
        // A domain of an app that vanished is said by the app's finding.
        if domain
            .app
            .as_deref()
            .is_some_and(|a| gone_apps.iter().any(|g| g.name == a))
        {
            continue;
        }
        found.push(Finding {
            code: "diff.domain_vanished",
            severity: Severity::Warning,
            subject: Some(domain.name.clone()),
            message: format!(
                "the domain {} had {} in the older backup and none in the newer one",
                domain.name,
                files_and_bytes(domain.old_files, domain.old_bytes)
            ),
        });
    }
    for c in categories.iter().filter(|c| shrank(c)) {
        found.push(Finding {
            code: "diff.category_shrank",
            severity: Severity::Warning,
            subject: Some(c.label.to_string()),
            message: format!(
                "{} went from {} in the older backup to {} in the newer one",
                c.label,
                files_and_bytes(c.old_files, c.old_bytes),
                files_and_bytes(c.new_files, c.new_bytes)
            ),
        });
    }
    if let (Some(a), Some(b)) = (&old.udid, &new.udid) {
        if !a.eq_ignore_ascii_case(b) {
            found.push(Finding {
                code: "diff.different_phones",
                severity: Severity::Info,
                subject: None,
                message: format!(
                    "the backups are of different phones ({a} and {b}): what differs may be the \
                     phones, not a loss"
                ),
            });
        }
    }
    if let (Some(a), Some(b)) = (old.date, new.date) {
        if b < a {
            found.push(Finding {
                code: "diff.new_is_older",
                severity: Severity::Info,
                subject: None,
                message: format!(
                    "the backup given as NEW ({}) is older than the one given as OLD ({}): \
                     swap them to see what the later one lost",
                    b.format("%Y-%m-%d %H:%M UTC"),
                    a.format("%Y-%m-%d %H:%M UTC")
                ),
            });
        }
    }
    found
}

/// Who and when one backup is, from its plists.
fn side(catalog: &Catalog) -> Result<Side, BackupError> {
    let folder = read_folder(&catalog.root)?;
    // The plists' UDID only: the folder name, which the summary falls back on, is no proof.
    let udid = folder
        .info
        .read()
        .and_then(|i| i.unique_identifier.clone())
        .or_else(|| {
            folder
                .manifest
                .read()
                .and_then(|m| m.lockdown.unique_device_id.clone())
        });
    let summary = folder.summary(&catalog.root, catalog.encrypted);
    Ok(Side {
        path: catalog.root.display().to_string(),
        udid,
        device_name: summary.device_name,
        date: summary.date,
        encrypted: catalog.encrypted,
        legacy: catalog.legacy,
        files: 0,
        bytes: 0,
    })
}

/// Compares the backups at `old` and `new`, both opened with `password` (when they are
/// encrypted). The newer backup is opened with its blobs listed while, at the same time, the
/// older one's file list (its blobs are not listed) goes into the map; the newer one is then
/// walked past the map, and the older one walked again for the names of removed files when
/// there are any. An older blob is looked at only for a file whose blob the newer backup lacks.
pub fn diff(old: &Path, new: &Path, password: Option<&Password>) -> Result<Diff, DiffError> {
    let at = |which| move |error| DiffError { which, error };
    let (new_catalog, older) = rayon::join(
        || Catalog::open(new, password),
        || -> Result<(Catalog, Comparer), BackupError> {
            let catalog = Catalog::open_unlisted(old, password)?;
            let mut comparer = Comparer::new(usize::try_from(catalog.row_estimate()).unwrap_or(0));
            catalog.each(|e| {
                comparer.add_old(e);
                ControlFlow::Continue(())
            })?;
            Ok((catalog, comparer))
        },
    );
    let (old_catalog, mut comparer) = older.map_err(at(Which::Old))?;
    let new_catalog = new_catalog.map_err(at(Which::New))?;
    let whole = |id: &FileId, size: u64| {
        let expected = expected_blob_len(size, old_catalog.encrypted);
        // Not followed if a link: a blob that is one is not a whole blob.
        std::fs::symlink_metadata(old_catalog.blob_path(id))
            .map_or(expected == 0, |m| m.is_file() && m.len() == expected)
    };
    new_catalog
        .each(|e| {
            comparer.compare_new(e, whole);
            ControlFlow::Continue(())
        })
        .map_err(at(Which::New))?;
    let rows = comparer.removed_rows();
    let names = old_catalog.names_at(&rows).map_err(at(Which::Old))?;
    comparer.name_removed(names);
    let old_side = side(&old_catalog).map_err(at(Which::Old))?;
    let new_side = side(&new_catalog).map_err(at(Which::New))?;
    Ok(comparer.finish(old_side, new_side))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::scan::file_id_of;

    fn entry<'a>(domain: &'a str, path: &'a str, size: u64, modified: i64) -> Entry<'a> {
        Entry {
            row: 0,
            domain: domain.as_bytes(),
            relative_path: path.as_bytes(),
            file_id: file_id_of(domain.as_bytes(), path.as_bytes()),
            kind: Kind::File,
            size,
            modified: Some(modified),
            mode: None,
            target: None,
            wrapped_key: None,
            state: State::Present,
            damaged: None,
        }
    }

    fn side() -> Side {
        Side {
            path: "x".into(),
            udid: Some("A".into()),
            device_name: None,
            date: None,
            encrypted: false,
            legacy: false,
            files: 0,
            bytes: 0,
        }
    }

    fn run(old: &[Entry<'_>], new: &[Entry<'_>]) -> Diff {
        let mut c = Comparer::new(old.len());
        let mut names = Vec::new();
        for (i, e) in old.iter().enumerate() {
            let mut e = e.clone();
            e.row = i as i64;
            c.add_old(&e);
            names.push((e.domain_text().into_owned(), e.path_text().into_owned()));
        }
        new.iter().for_each(|e| c.compare_new(e, |_, _| true));
        let rows = c.removed_rows();
        c.name_removed(rows.iter().map(|&r| names[r as usize].clone()).collect());
        c.finish(side(), side())
    }

    #[test]
    fn added_removed_changed_and_their_bytes() {
        let old = [
            entry("HomeDomain", "a", 10, 1),
            entry("HomeDomain", "b", 20, 1),
            entry("HomeDomain", "c", 30, 1),
            entry("HomeDomain", "d", 40, 1),
        ];
        let new = [
            entry("HomeDomain", "a", 10, 1),
            entry("HomeDomain", "b", 25, 1),
            entry("HomeDomain", "c", 30, 2),
            entry("MediaDomain", "e", 7, 1),
        ];
        let d = run(&old, &new);
        assert_eq!(
            d.totals,
            Totals {
                added: 1,
                added_bytes: 7,
                removed: 1,
                removed_bytes: 40,
                changed: 2,
                changed_bytes_delta: 5,
                unchanged: 1,
                bytes_delta: -28,
            }
        );
        let paths = |l: &[FileChange]| l.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&d.files.changed), ["b", "c"]);
        assert_eq!(paths(&d.files.added), ["e"]);
        assert_eq!(paths(&d.files.removed), ["d"]);
        assert_eq!(d.domains[0].name, "HomeDomain");
        assert_eq!(d.domains[0].bytes_delta, -35);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
    }

    #[test]
    fn a_vanished_app_is_one_finding_not_one_per_domain() {
        let old = [
            entry("AppDomain-com.example.Notes", "x", 5, 1),
            entry("AppDomainGroup-group.com.example.Notes.shared", "y", 5, 1),
            entry("HomeDomain", "a", 1, 1),
        ];
        let new = [entry("HomeDomain", "a", 1, 1)];
        let d = run(&old, &new);
        let codes: Vec<_> = d.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["diff.app_vanished"]);
        assert_eq!(d.apps[0].old_files, 2);
        assert!(d.lost_something());
    }

    #[test]
    fn a_list_keeps_the_largest_files_and_stays_bounded() {
        let names: Vec<String> = (0..3 * LIST_CAP).map(|i| format!("f{i:05}")).collect();
        let old: Vec<Entry<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| entry("HomeDomain", n, i as u64, 1))
            .collect();
        let d = run(&old, &[]);
        assert_eq!(d.files.removed.len(), LIST_CAP);
        assert_eq!(d.files.removed[0].old.as_ref().unwrap().size, 3 * LIST_CAP as u64 - 1);
        assert_eq!(d.totals.removed, 3 * LIST_CAP as u64);
    }

    #[test]
    fn the_shrink_threshold() {
        let c = |old_files, new_files, old_bytes, new_bytes| CategoryDelta {
            category: Category::Photos,
            label: "Photos",
            old_files,
            new_files,
            old_bytes,
            new_bytes,
        };
        assert!(shrank(&c(10, 5, 2_000_000, 1_000_000)));
        assert!(!shrank(&c(10, 5, 2_000_000, 1_000_001)));
        assert!(!shrank(&c(10, 5, 999_999, 0)));
        assert!(shrank(&c(10, 0, 10, 0)));
    }
}
