//! What the simulated phone holds, as backup rows: a deterministic list of domains, folders and
//! files made from the profile's `backup` section (count, total size, seed) and the phone's
//! apps, changed a little after every finished backup (its generation). File bytes are never
//! stored: each file's bytes come from a counter-based generator keyed by the file and its
//! version, so any range can be produced on the fly at memory speed. The two databases people
//! look for first (Messages' sms.db and Contacts' AddressBook.sqlitedb) are real SQLite files.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::BackupProfile;
use crate::profile::AppProfile;

/// When the phone's files were last changed, before any simulated change (2024-05-01, Unix).
const BASE_TIME: i64 = 1_714_521_600;

/// What a row is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Directory,
    File { size: u64, data: Data },
}

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Generated from this seed (see [`fill`]).
    Generated(u64),
    /// A real SQLite database, built when the content was made.
    Sqlite(Arc<Vec<u8>>),
}

/// One row of the phone's backup: a folder or a file of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub domain: String,
    pub relative_path: String,
    pub kind: Kind,
    /// The data protection class (1-4) the phone keeps it under.
    pub protection_class: u32,
    /// The generation that last changed it (0: as the phone started).
    pub version: u64,
    pub inode: u64,
}

impl Entry {
    /// `SHA-1(domain-relativePath)` in hex: the blob's name in a backup.
    pub fn file_id(&self) -> String {
        use sha1::Digest;
        let digest = sha1::Sha1::digest(format!("{}-{}", self.domain, self.relative_path));
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn is_file(&self) -> bool {
        matches!(self.kind, Kind::File { .. })
    }

    /// The file's size (0 for a folder).
    pub fn size(&self) -> u64 {
        match self.kind {
            Kind::File { size, .. } => size,
            Kind::Directory => 0,
        }
    }

    /// Unix seconds of the last change.
    pub fn modified(&self) -> i64 {
        BASE_TIME + self.version as i64 * 86_400 + (self.inode % 86_400) as i64
    }

    /// Writes the file's bytes from `offset` into `buf` (as many as fit, up to the end).
    /// Returns how many were written.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        let Kind::File { size, data } = &self.kind else {
            return 0;
        };
        let left = size.saturating_sub(offset);
        let n = (left.min(buf.len() as u64)) as usize;
        match data {
            Data::Generated(seed) => fill(*seed, offset, &mut buf[..n]),
            Data::Sqlite(bytes) => {
                let start = offset as usize;
                buf[..n].copy_from_slice(&bytes[start..start + n]);
            }
        }
        n
    }
}

/// The phone's content at one generation.
#[derive(Debug, Clone)]
pub struct Content {
    /// Folders first (parents before children), then files, sorted by domain and path.
    pub entries: Vec<Entry>,
    pub generation: u64,
}

impl Content {
    /// The content of a phone with `profile` and `apps` after `generation` finished backups.
    pub fn at(profile: &BackupProfile, apps: &[AppProfile], generation: u64) -> Content {
        let mut files = initial_files(profile, apps);
        for step in 1..=generation {
            apply_changes(profile, &mut files, step);
        }
        let mut entries = folders_of(&files);
        files.sort_by(|a, b| (&a.domain, &a.relative_path).cmp(&(&b.domain, &b.relative_path)));
        entries.extend(files);
        Content {
            entries,
            generation,
        }
    }

    pub fn files(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.is_file())
    }

    pub fn file_count(&self) -> usize {
        self.files().count()
    }

    pub fn total_bytes(&self) -> u64 {
        self.files().map(Entry::size).sum()
    }

    /// The entry with this fileID.
    pub fn find(&self, file_id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.file_id() == file_id)
    }
}

/// splitmix64: the mixing step of the byte generator and of every choice made here.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bytes of a generated file from `offset`: word `i` of the file is `mix(seed + i*K)`, so
/// any range comes out the same however it is split.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut word = offset / 8;
    let mut at = 0;
    let skip = (offset % 8) as usize;
    if skip != 0 {
        let bytes = mix(seed ^ word.wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes();
        let n = (8 - skip).min(buf.len());
        buf[..n].copy_from_slice(&bytes[skip..skip + n]);
        at = n;
        word += 1;
    }
    let mut chunks = buf[at..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&mix(seed ^ word.wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes());
        word += 1;
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let bytes = mix(seed ^ word.wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&bytes[..n]);
    }
}

/// A small deterministic choice source.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn seed_of(profile_seed: u64, domain: &str, path: &str, version: u64) -> u64 {
    let mut h = mix(profile_seed ^ version.wrapping_mul(0xA24B_AED4_963E_E407));
    for b in domain.bytes().chain([b'-']).chain(path.bytes()) {
        h = mix(h ^ u64::from(b));
    }
    h
}

/// How a planned file gets its size: a weight against the others, or its own bytes.
enum Plan {
    Weight(u64),
    Sqlite(&'static str),
}

/// The rows every phone has, then as many photos, attachments and app documents as the count
/// asks for. Photos and videos are heavy, preferences light.
fn initial_files(profile: &BackupProfile, apps: &[AppProfile]) -> Vec<Entry> {
    let mut rng = Rng::new(profile.seed);
    let mut plans: Vec<(String, String, Plan, u32)> = vec![
        (
            "HomeDomain".into(),
            "Library/SMS/sms.db".into(),
            Plan::Sqlite("sms"),
            3,
        ),
        (
            "HomeDomain".into(),
            "Library/AddressBook/AddressBook.sqlitedb".into(),
            Plan::Sqlite("contacts"),
            3,
        ),
        (
            "HomeDomain".into(),
            "Library/Preferences/com.apple.springboard.plist".into(),
            Plan::Weight(2),
            4,
        ),
        (
            "HomeDomain".into(),
            "Library/Preferences/.GlobalPreferences.plist".into(),
            Plan::Weight(1),
            4,
        ),
        (
            "KeychainDomain".into(),
            "keychain-backup.plist".into(),
            Plan::Weight(8),
            4,
        ),
    ];
    for app in apps {
        let id = &app.bundle_id;
        plans.push((
            format!("AppDomain-{id}"),
            format!("Library/Preferences/{id}.plist"),
            Plan::Weight(1),
            3,
        ));
        plans.push((
            format!("AppDomainGroup-group.{id}"),
            "Library/Preferences/group.plist".to_string(),
            Plan::Weight(1),
            3,
        ));
        plans.push((
            format!("AppDomainPlugin-{id}.widget"),
            format!("Library/Preferences/{id}.widget.plist"),
            Plan::Weight(1),
            3,
        ));
    }
    plans.truncate(profile.files);
    let mut photo = 0u64;
    let mut n = 0u64;
    while plans.len() < profile.files {
        n += 1;
        let plan = match n % 8 {
            0..=2 => {
                photo += 1;
                (
                    "CameraRollDomain".to_string(),
                    format!("Media/DCIM/100APPLE/IMG_{:04}.HEIC", photo),
                    Plan::Weight(400 + rng.below(800)),
                    2,
                )
            }
            3 if n % 24 == 3 => {
                photo += 1;
                (
                    "CameraRollDomain".to_string(),
                    format!("Media/DCIM/100APPLE/IMG_{:04}.MOV", photo),
                    Plan::Weight(3000 + rng.below(3000)),
                    2,
                )
            }
            3 | 4 => (
                "HomeDomain".to_string(),
                format!(
                    "Library/SMS/Attachments/{:02x}/{:02}/IMG_{n}.jpeg",
                    n % 256,
                    n % 16
                ),
                Plan::Weight(60 + rng.below(200)),
                3,
            ),
            5 if !apps.is_empty() => {
                let app = &apps[(n as usize / 8) % apps.len()];
                (
                    format!("AppDomain-{}", app.bundle_id),
                    format!("Documents/item-{n:05}.dat"),
                    Plan::Weight(5 + rng.below(40)),
                    3,
                )
            }
            6 if !apps.is_empty() => {
                let app = &apps[(n as usize / 8) % apps.len()];
                (
                    format!("AppDomainGroup-group.{}", app.bundle_id),
                    format!("Library/Caches/cache-{n:05}.bin"),
                    Plan::Weight(2 + rng.below(20)),
                    1,
                )
            }
            _ => (
                "HomeDomain".to_string(),
                format!("Library/Notes/note-{n:05}.txt"),
                Plan::Weight(1 + rng.below(6)),
                3,
            ),
        };
        plans.push(plan);
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(plans.len());
    let databases: Vec<Option<Arc<Vec<u8>>>> = plans
        .iter()
        .map(|(_, _, plan, _)| match plan {
            Plan::Sqlite(which) => Some(Arc::new(sqlite_file(which, profile.seed, 0))),
            Plan::Weight(_) => None,
        })
        .collect();
    let sqlite_bytes: u64 = databases.iter().flatten().map(|b| b.len() as u64).sum();
    let budget = profile.total_bytes.saturating_sub(sqlite_bytes);
    let weights: u64 = plans
        .iter()
        .map(|(_, _, p, _)| match p {
            Plan::Weight(w) => *w,
            Plan::Sqlite(_) => 0,
        })
        .sum();
    let mut given = 0u64;
    let mut heaviest: Option<usize> = None;
    for (i, (domain, path, plan, class)) in plans.into_iter().enumerate() {
        let inode = 100_000 + i as u64;
        let kind = match plan {
            Plan::Sqlite(_) => {
                let bytes = databases[i].clone().unwrap_or_default();
                Kind::File {
                    size: bytes.len() as u64,
                    data: Data::Sqlite(bytes),
                }
            }
            Plan::Weight(w) => {
                let size = if weights == 0 {
                    0
                } else {
                    ((budget as u128 * u128::from(w)) / u128::from(weights)) as u64
                };
                given += size;
                if heaviest.is_none_or(|h: usize| entries[h].size() < size) {
                    heaviest = Some(i);
                }
                Kind::File {
                    size,
                    data: Data::Generated(seed_of(profile.seed, &domain, &path, 0)),
                }
            }
        };
        entries.push(Entry {
            domain,
            relative_path: path,
            kind,
            protection_class: class,
            version: 0,
            inode,
        });
    }
    // Rounding leaves a few bytes: the largest file takes them, so the sizes add up.
    if let Some(h) = heaviest {
        if let Kind::File { size, .. } = &mut entries[h].kind {
            *size += budget - given;
        }
    }
    entries
}

/// One finished backup's worth of change: some files rewritten, some photos added, some
/// removed (never sms.db or the address book, which are only rewritten).
fn apply_changes(profile: &BackupProfile, files: &mut Vec<Entry>, step: u64) {
    let changes = &profile.changes_per_backup;
    let mut rng = Rng::new(profile.seed ^ step.wrapping_mul(0x5851_F42D_4C95_7F2D));
    let mut removed = 0;
    let mut guard = 0;
    while removed < changes.removed && guard < 10_000 {
        guard += 1;
        let removable: Vec<usize> = (0..files.len())
            .filter(|&i| {
                !matches!(
                    files[i].kind,
                    Kind::File {
                        data: Data::Sqlite(_),
                        ..
                    }
                )
            })
            .collect();
        if removable.is_empty() {
            break;
        }
        let i = removable[rng.below(removable.len() as u64) as usize];
        files.remove(i);
        removed += 1;
    }
    let mut touched = BTreeSet::new();
    let wanted = changes.modified.min(files.len());
    while touched.len() < wanted {
        touched.insert(rng.below(files.len() as u64) as usize);
    }
    for i in touched {
        let entry = &mut files[i];
        entry.version = step;
        let seed = seed_of(profile.seed, &entry.domain, &entry.relative_path, step);
        if let Kind::File { size, data } = &mut entry.kind {
            match data {
                Data::Sqlite(_) => {
                    let which = if entry.relative_path.ends_with("sms.db") {
                        "sms"
                    } else {
                        "contacts"
                    };
                    let bytes = Arc::new(sqlite_file(which, profile.seed, step));
                    *size = bytes.len() as u64;
                    *data = Data::Sqlite(bytes);
                }
                Data::Generated(_) => *data = Data::Generated(seed),
            }
        }
    }
    let average = profile.total_bytes / (profile.files.max(1) as u64);
    for j in 0..changes.added {
        let path = format!("Media/DCIM/101APPLE/IMG_{:04}.HEIC", step * 1000 + j as u64);
        let size = average.saturating_add(rng.below(average.max(1)));
        files.push(Entry {
            kind: Kind::File {
                size,
                data: Data::Generated(seed_of(profile.seed, "CameraRollDomain", &path, step)),
            },
            domain: "CameraRollDomain".to_string(),
            relative_path: path,
            protection_class: 2,
            version: step,
            inode: 500_000 + step * 1000 + j as u64,
        });
    }
}

/// Every folder the files need, down to each domain's root (`""`), parents first.
fn folders_of(files: &[Entry]) -> Vec<Entry> {
    let mut folders: BTreeSet<(String, String)> = BTreeSet::new();
    for file in files {
        folders.insert((file.domain.clone(), String::new()));
        let mut path = file.relative_path.as_str();
        while let Some(cut) = path.rfind('/') {
            path = &path[..cut];
            folders.insert((file.domain.clone(), path.to_string()));
        }
    }
    folders
        .into_iter()
        .enumerate()
        .map(|(i, (domain, relative_path))| Entry {
            domain,
            relative_path,
            kind: Kind::Directory,
            protection_class: 0,
            version: 0,
            inode: 10_000 + i as u64,
        })
        .collect()
}

/// A real SQLite database for `which` ("sms" or "contacts") at `version`: a few hundred rows
/// whose text depends on the seed and the version.
pub fn sqlite_file(which: &str, seed: u64, version: u64) -> Vec<u8> {
    let Ok(db) = rusqlite::Connection::open_in_memory() else {
        return Vec::new();
    };
    let mut rng = Rng::new(seed ^ mix(version) ^ which.len() as u64);
    let built = (|| -> rusqlite::Result<()> {
        if which == "sms" {
            db.execute_batch(
                "CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE,
                 text TEXT, handle_id INTEGER, date INTEGER, is_from_me INTEGER);
                 CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT,
                 service TEXT);
                 BEGIN;",
            )?;
            for h in 0..20u64 {
                db.execute(
                    "INSERT INTO handle (id, service) VALUES (?1, 'iMessage')",
                    [format!("+3361234{:04}", rng.below(9_000) + h)],
                )?;
            }
            for m in 0..300 + version * 10 {
                db.execute(
                    "INSERT INTO message (guid, text, handle_id, date, is_from_me)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        format!("{:016X}-{m}", rng.next()),
                        format!("Message {m}: see you at {} o'clock", rng.below(24)),
                        rng.below(20) as i64 + 1,
                        (700_000_000 + m * 3600) as i64,
                        rng.below(2) as i64
                    ],
                )?;
            }
        } else {
            db.execute_batch(
                "CREATE TABLE ABPerson (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, First TEXT,
                 Last TEXT, Organization TEXT);
                 CREATE TABLE ABMultiValue (UID INTEGER PRIMARY KEY, record_id INTEGER,
                 property INTEGER, value TEXT);
                 BEGIN;",
            )?;
            const FIRST: [&str; 8] = ["Ana", "Ben", "Chloé", "Dev", "Emil", "Fatou", "Gus", "Hana"];
            for p in 0..120 + version * 2 {
                db.execute(
                    "INSERT INTO ABPerson (First, Last, Organization) VALUES (?1, ?2, ?3)",
                    rusqlite::params![
                        FIRST[rng.below(8) as usize],
                        format!("Person{p}"),
                        "Simulated Ltd"
                    ],
                )?;
                db.execute(
                    "INSERT INTO ABMultiValue (record_id, property, value) VALUES (?1, 3, ?2)",
                    rusqlite::params![p as i64 + 1, format!("+336{:08}", rng.below(100_000_000))],
                )?;
            }
        }
        db.execute_batch("COMMIT;")
    })();
    if built.is_err() {
        return Vec::new();
    }
    db.serialize(rusqlite::DatabaseName::Main)
        .map(|data| data.to_vec())
        .unwrap_or_default()
}
