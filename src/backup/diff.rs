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
use super::catalog::{self, Catalog, Entry, Kind, State};
use super::contents::{category_of, Category};
use super::error::BackupError;
use super::folder::read_folder;
use super::keybag::Password;
use super::report::Severity;
use super::scan::expected_blob_len;
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

/// At most this many files are made room for ahead: the row estimate of a Manifest.db is its
/// largest rowid, which a hostile one sets as high as it likes. Past it, the map and list grow
/// as files come.
const RESERVE_MAX: usize = 1 << 18;

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
        self.findings
            .iter()
            .any(|f| f.severity >= Severity::Warning)
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

/// A listed file before its name is fetched: how heavy it is, where its backup lists it, and
/// its two sides.
#[derive(Debug, Clone)]
struct Pending {
    weight: u64,
    row: i64,
    old: Option<Version>,
    new: Option<Version>,
}

/// The heaviest [`LIST_CAP`] files of one list, by weight then row, kept without names.
#[derive(Default)]
struct Top {
    kept: Vec<Pending>,
    /// Entries lighter than this cannot enter any more.
    floor: u64,
}

impl Top {
    fn push(&mut self, weight: u64, pending: impl FnOnce() -> Pending) {
        if self.kept.len() >= LIST_CAP && weight < self.floor {
            return;
        }
        self.kept.push(pending());
        if self.kept.len() >= 2 * LIST_CAP {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.kept
            .sort_unstable_by(|a, b| b.weight.cmp(&a.weight).then(a.row.cmp(&b.row)));
        self.kept.truncate(LIST_CAP);
        if self.kept.len() == LIST_CAP {
            self.floor = self.kept[LIST_CAP - 1].weight;
        }
    }

    /// The rows to name, in the order [`named`](Self::named) takes their names.
    fn rows(&mut self) -> Vec<i64> {
        self.trim();
        self.kept.iter().map(|p| p.row).collect()
    }

    /// The list with its names, heaviest first, then by domain and path.
    fn named(self, names: Vec<(String, String)>) -> Vec<FileChange> {
        let mut named: Vec<(u64, FileChange)> = self
            .kept
            .into_iter()
            .zip(names)
            .map(|(p, (domain, path))| {
                let change = FileChange {
                    domain,
                    path,
                    old: p.old,
                    new: p.new,
                };
                (p.weight, change)
            })
            .collect();
        named.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1.domain.cmp(&b.1.domain))
                .then_with(|| a.1.path.cmp(&b.1.path))
        });
        named.into_iter().map(|(_, c)| c).collect()
    }
}

fn version(kind: Kind, size: u64, modified: Option<i64>, blob: Option<BlobState>) -> Version {
    Version {
        kind,
        size,
        modified,
        blob: blob.map(BlobState::word),
    }
}

fn category_slot(domain: &[u8], path: &[u8]) -> Option<usize> {
    let category = category_of(domain, path)?;
    Category::ALL.iter().position(|c| *c == category)
}

/// One side's counts: files and bytes by domain and by category, and in all.
struct Tally {
    domains: Domains,
    categories: Vec<Count>,
    total: Count,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            domains: Domains::default(),
            categories: vec![Count::default(); Category::ALL.len()],
            total: Count::default(),
        }
    }

    /// Counts a file; returns its domain's number.
    fn add(&mut self, entry: &Entry<'_>) -> u32 {
        let domain = self.domains.number(entry.domain);
        let stats = &mut self.domains.stats[domain as usize];
        stats.old_files += 1;
        stats.old_bytes = stats.old_bytes.saturating_add(entry.size);
        self.total.add(entry.size);
        if let Some(slot) = category_slot(entry.domain, entry.relative_path) {
            self.categories[slot].add(entry.size);
        }
        domain
    }
}

/// What is kept of each file of the newer backup while the older one is read: 56 bytes, no name.
#[derive(Debug, Clone, Copy)]
struct NewFile {
    id: FileId,
    size: u64,
    modified: i64,
    row: i64,
    domain: u32,
    kind: Kind,
    /// The record states the size (a file without one is whole whatever its blob's length).
    size_known: bool,
}

/// The newer backup's files, read on their own thread while the older backup goes into the
/// map (pure: fed entry by entry).
pub struct NewSide {
    files: Vec<NewFile>,
    tally: Tally,
}

impl NewSide {
    pub fn new(rows: usize) -> NewSide {
        NewSide {
            files: Vec::with_capacity(rows.min(RESERVE_MAX)),
            tally: Tally::new(),
        }
    }

    /// One entry of the newer backup.
    pub fn add(&mut self, entry: &Entry<'_>) {
        if entry.kind == Kind::Directory {
            return;
        }
        let domain = self.tally.add(entry);
        self.files.push(NewFile {
            id: entry.file_id,
            size: entry.size,
            modified: time_of(entry.modified),
            row: entry.row,
            domain,
            kind: entry.kind,
            size_known: entry.size_known,
        });
    }
}

/// The comparison (pure: [`diff`] feeds it from two catalogs, the unit tests from made-up
/// entries). The older backup goes into the map ([`add_old`](Self::add_old)), the newer one's
/// files are compared with it ([`compare`](Self::compare)), and the listed files are named
/// afterwards by row ([`rows_to_name`](Self::rows_to_name), [`finish`](Self::finish)).
pub struct Comparer {
    older: IdMap<Older>,
    old: Tally,
    new: Option<Tally>,
    totals: Totals,
    now_missing: u64,
    added: Top,
    removed: Top,
    changed: Top,
    missing: Top,
}

impl Default for Comparer {
    fn default() -> Self {
        Comparer::new(0)
    }
}

impl Comparer {
    /// A comparison expecting about `rows` files in the older backup.
    pub fn new(rows: usize) -> Comparer {
        let mut older = IdMap::default();
        older.reserve(rows.min(RESERVE_MAX));
        Comparer {
            older,
            old: Tally::new(),
            new: None,
            totals: Totals::default(),
            now_missing: 0,
            added: Top::default(),
            removed: Top::default(),
            changed: Top::default(),
            missing: Top::default(),
        }
    }

    /// One entry of the older backup.
    pub fn add_old(&mut self, entry: &Entry<'_>) {
        if entry.kind == Kind::Directory {
            return;
        }
        let domain = self.old.add(entry);
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

    /// Compares the newer backup's files with the map, then counts what was not met (removed).
    /// `new_blob(kind, id, size)` is where a newer file's blob stands; `old_blob_whole(id,
    /// size)` says whether the older backup's blob of that file is there with its length (asked
    /// only for a file whose blob the newer backup lacks).
    pub fn compare(
        &mut self,
        new: NewSide,
        new_blob: impl Fn(Kind, &FileId, Option<u64>) -> State,
        mut old_blob_whole: impl FnMut(&FileId, u64) -> bool,
    ) {
        let mut tally = new.tally;
        for n in &new.files {
            let blob = BlobState::of(new_blob(n.kind, &n.id, n.size_known.then_some(n.size)));
            let stats = &mut tally.domains.stats[n.domain as usize];
            let new_version = || version(n.kind, n.size, time_back(n.modified), Some(blob));
            let Some(older) = self.older.get_mut(&n.id) else {
                stats.added += 1;
                self.totals.added += 1;
                self.totals.added_bytes = self.totals.added_bytes.saturating_add(n.size);
                self.added.push(n.size, || Pending {
                    weight: n.size,
                    row: n.row,
                    old: None,
                    new: Some(new_version()),
                });
                continue;
            };
            older.seen = true;
            let o = *older;
            let old_version = |blob| version(o.kind, o.size, time_back(o.modified), blob);
            if o.kind != n.kind || o.size != n.size || o.modified != n.modified {
                stats.changed += 1;
                self.totals.changed += 1;
                let d = delta(o.size, n.size);
                self.totals.changed_bytes_delta = self.totals.changed_bytes_delta.saturating_add(d);
                self.changed.push(d.unsigned_abs(), || Pending {
                    weight: d.unsigned_abs(),
                    row: n.row,
                    old: Some(old_version(None)),
                    new: Some(new_version()),
                });
            } else {
                self.totals.unchanged += 1;
            }
            if blob.lost() && o.kind == Kind::File && old_blob_whole(&n.id, o.size) {
                self.now_missing += 1;
                self.missing.push(o.size, || Pending {
                    weight: o.size,
                    row: n.row,
                    old: Some(old_version(Some(BlobState::Present))),
                    new: Some(new_version()),
                });
            }
        }
        for o in self.older.values().filter(|o| !o.seen) {
            self.old.domains.stats[o.domain as usize].removed += 1;
            self.totals.removed += 1;
            self.totals.removed_bytes = self.totals.removed_bytes.saturating_add(o.size);
            self.removed.push(o.size, || Pending {
                weight: o.size,
                row: o.row,
                old: Some(version(o.kind, o.size, time_back(o.modified), None)),
                new: None,
            });
        }
        self.new = Some(tally);
    }

    /// The rows whose names the lists need: the older backup's (removed files) and the newer
    /// one's (added, changed and now missing, in that order).
    pub fn rows_to_name(&mut self) -> (Vec<i64>, Vec<i64>) {
        let mut new_rows = self.added.rows();
        new_rows.extend(self.changed.rows());
        new_rows.extend(self.missing.rows());
        (self.removed.rows(), new_rows)
    }

    /// The result, with the findings; `old_names` and `new_names` are the names of the rows
    /// [`rows_to_name`](Self::rows_to_name) gave, in its order.
    pub fn finish(
        self,
        mut old: Side,
        mut new: Side,
        old_names: Vec<(String, String)>,
        mut new_names: Vec<(String, String)>,
    ) -> Diff {
        let new_tally = self.new.unwrap_or_else(Tally::new);
        old.files = self.old.total.files;
        old.bytes = self.old.total.bytes;
        new.files = new_tally.total.files;
        new.bytes = new_tally.total.bytes;
        let mut totals = self.totals;
        totals.bytes_delta = delta(old.bytes, new.bytes);

        let mut rest = new_names.split_off(self.added.kept.len().min(new_names.len()));
        let added = self.added.named(new_names);
        let missing_names = rest.split_off(self.changed.kept.len().min(rest.len()));
        let changed = self.changed.named(rest);
        let now_missing_list = self.missing.named(missing_names);
        let removed = self.removed.named(old_names);

        // The two sides' domains, merged by name: the older side counted its files as old_*,
        // the newer side as old_* too (one Tally type), moved to new_* here.
        let mut merged: Vec<(String, Group)> = Vec::new();
        let mut at: HashMap<Box<[u8]>, usize> = HashMap::new();
        let sides = [(self.old.domains, false), (new_tally.domains, true)];
        for (domains, newer) in sides {
            for (name, stats) in domains.names.into_iter().zip(domains.stats) {
                let i = *at.entry(name.clone()).or_insert_with(|| {
                    merged.push((
                        String::from_utf8_lossy(&name).into_owned(),
                        Group::default(),
                    ));
                    merged.len() - 1
                });
                let g = &mut merged[i].1;
                g.added += stats.added;
                g.removed += stats.removed;
                g.changed += stats.changed;
                if newer {
                    g.new_files += stats.old_files;
                    g.new_bytes += stats.old_bytes;
                } else {
                    g.old_files += stats.old_files;
                    g.old_bytes += stats.old_bytes;
                }
            }
        }
        let mut apps: Vec<String> = merged
            .iter()
            .filter_map(|(d, _)| match app_domain(d) {
                Some((id, AppPart::Container)) => Some(id.to_string()),
                _ => None,
            })
            .collect();
        apps.sort_unstable();
        apps.dedup();
        let mut by_app: HashMap<String, Group> = HashMap::new();
        let mut domains = Vec::with_capacity(merged.len());
        for (name, mut group) in merged {
            group.settle();
            let app = app_of_domain(&name, apps.iter().map(String::as_str));
            if let Some(app) = app {
                by_app.entry(app.to_string()).or_default().add(&group);
            }
            group.app = app.map(str::to_string);
            group.name = name;
            domains.push(group);
        }
        let mut apps: Vec<Group> = by_app
            .into_iter()
            .map(|(name, mut g)| {
                g.name = name;
                g.settle();
                g
            })
            .collect();
        domains.sort_by(biggest_change);
        apps.sort_by(biggest_change);

        let categories: Vec<CategoryDelta> = Category::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.old.categories[*i].files + new_tally.categories[*i].files > 0)
            .map(|(i, c)| CategoryDelta {
                category: *c,
                label: c.label(),
                old_files: self.old.categories[i].files,
                new_files: new_tally.categories[i].files,
                old_bytes: self.old.categories[i].bytes,
                new_bytes: new_tally.categories[i].bytes,
            })
            .collect();

        let findings = findings(&old, &new, &domains, &apps, &categories, self.now_missing);
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
                added,
                removed,
                changed,
                now_missing: now_missing_list,
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
    let rows = |c: &Catalog| usize::try_from(c.row_estimate()).unwrap_or(0);
    // Three jobs at once: the newer backup's blobs listed, its file list read, and the older
    // one's file list read into the map.
    let ((newer, listing), older) = rayon::join(
        || {
            rayon::join(
                || -> Result<(Catalog, NewSide), BackupError> {
                    let catalog = Catalog::open_unlisted(new, password)?.brief();
                    let mut side = NewSide::new(rows(&catalog));
                    catalog.each(|e| {
                        side.add(e);
                        ControlFlow::Continue(())
                    })?;
                    Ok((catalog, side))
                },
                || catalog::list_blobs(new),
            )
        },
        || -> Result<(Catalog, Comparer), BackupError> {
            let catalog = Catalog::open_unlisted(old, password)?.brief();
            let mut comparer = Comparer::new(rows(&catalog));
            catalog.each(|e| {
                comparer.add_old(e);
                ControlFlow::Continue(())
            })?;
            Ok((catalog, comparer))
        },
    );
    let (old_catalog, mut comparer) = older.map_err(at(Which::Old))?;
    let (new_catalog, new_side) = newer.map_err(at(Which::New))?;
    let store = listing.map_err(at(Which::New))?;
    comparer.compare(
        new_side,
        |kind, id, size| catalog::blob_state(&store, new_catalog.encrypted, kind, id, size).0,
        |id, size| {
            let expected = expected_blob_len(size, old_catalog.encrypted);
            // Not followed if a link: a blob that is one is not a whole blob.
            std::fs::symlink_metadata(old_catalog.blob_path(id))
                .map_or(expected == 0, |m| m.is_file() && m.len() == expected)
        },
    );
    let (old_rows, new_rows) = comparer.rows_to_name();
    let old_names = old_catalog.names_at(&old_rows).map_err(at(Which::Old))?;
    let new_names = new_catalog.names_at(&new_rows).map_err(at(Which::New))?;
    let old_side = side(&old_catalog).map_err(at(Which::Old))?;
    let new_side = side(&new_catalog).map_err(at(Which::New))?;
    Ok(comparer.finish(old_side, new_side, old_names, new_names))
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
            size_known: true,
            blob_len: Some(size),
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
        let mut n = NewSide::new(new.len());
        let name = |e: &Entry<'_>| (e.domain_text().into_owned(), e.path_text().into_owned());
        for (i, e) in old.iter().enumerate() {
            c.add_old(&Entry {
                row: i as i64,
                ..e.clone()
            });
        }
        for (i, e) in new.iter().enumerate() {
            n.add(&Entry {
                row: i as i64,
                ..e.clone()
            });
        }
        c.compare(n, |_, _, _| State::Present, |_, _| true);
        let (old_rows, new_rows) = c.rows_to_name();
        let old_names = old_rows.iter().map(|&r| name(&old[r as usize])).collect();
        let new_names = new_rows.iter().map(|&r| name(&new[r as usize])).collect();
        c.finish(side(), side(), old_names, new_names)
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
        assert_eq!(
            d.files.removed[0].old.as_ref().unwrap().size,
            3 * LIST_CAP as u64 - 1
        );
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
