//! `ibackup extract`: copies a backup's files out into a folder people can open, decrypting
//! those of an encrypted backup and restoring their modified times. It owns the plan (one walk
//! of the catalog: which files, where each goes, with its size, time and key), the layouts
//! (`layout.rs`), the jail every write goes through (`jail.rs`) and the writing itself, done in
//! parallel, a blob at a time, memory bounded whatever a file's size.
//!
//! It works on incomplete backups: a missing blob is reported and not written, a blob of the
//! wrong length is written as far as it goes and reported, a damaged record is reported. Links
//! in the backup are never made (they are reported as skipped). It prints nothing: the caller
//! gets a [`Report`] (whose serde form is the JSON contract) and a byte counter for its bar.

pub mod jail;
pub mod layout;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;
use zeroize::Zeroize;

use crate::backup::blobs::{open_blob, FileId};
use crate::backup::catalog::{Catalog, Kind, State};
use crate::backup::crypto::{self, FileKey, BLOCK_LEN};
use crate::backup::select::Selection;
use crate::backup::BackupError;
use jail::{Probe, Refusal, Root};

/// Entries kept in each list of the report; the totals count them all.
pub const LIST_CAP: usize = 200;
/// Targets named when existing files stop the run.
pub const EXISTING_SHOWN: usize = 5;
/// Bytes decrypted at a time.
const CHUNK_LEN: usize = 1 << 20;

/// Why extraction could not start (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Backup(#[from] BackupError),
    #[error("the destination {} is inside the backup folder", .0.display())]
    InsideBackup(PathBuf),
    #[error("cannot use {} as the destination: {source}", path.display())]
    Unusable { path: PathBuf, source: io::Error },
    #[error("{} already exist in the destination: {}", count_files(*.total), .shown.join(", "))]
    Exists { shown: Vec<String>, total: u64 },
}

fn count_files(n: u64) -> String {
    crate::units::plural(n, "file", "files")
}

impl StartError {
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Backup(e) => e.code(),
            StartError::InsideBackup(_) => "extract.inside_backup",
            StartError::Unusable { .. } => "extract.dir_unusable",
            StartError::Exists { .. } => "extract.exists",
        }
    }

    pub fn hint(&self) -> &'static str {
        match self {
            StartError::Backup(e) => e.hint(),
            StartError::InsideBackup(_) => {
                "ibackup never writes into a backup: choose a destination outside the backup \
                 folder (a backup inside the destination is fine)."
            }
            StartError::Unusable { .. } => {
                "Choose a folder you can write to (it is created when missing), on a disk with \
                 room for the files."
            }
            StartError::Exists { .. } => {
                "Nothing was written. Choose an empty destination, or add --overwrite to replace \
                 those files (links and folders in their place are still refused)."
            }
        }
    }
}

/// The length of an intact blob of a `size`-byte file.
fn blob_len(size: u64, encrypted: bool) -> u64 {
    if encrypted {
        crypto::expected_encrypted_len(size)
    } else {
        size
    }
}

/// Where blobs are, for the writers (the catalog itself stays on the planning thread).
#[derive(Clone, Copy)]
struct Blobs<'a> {
    root: &'a Path,
    legacy: bool,
}

/// One file to write.
struct Job {
    file_id: FileId,
    domain: String,
    path: String,
    target: String,
    /// The record's size; when the record states none, the blob's length (the whole blob is
    /// written, less its padding when encrypted).
    size: u64,
    size_known: bool,
    modified: Option<i64>,
    key: Option<FileKey>,
    longer_blob: bool,
}

/// A file of the backup named in a list of the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Named {
    pub domain: String,
    pub path: String,
    /// Where it went or would have gone in the destination, relative to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Bytes the record states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Bytes written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<u64>,
    /// Why it was refused, failed or is damaged; a link's target for a skipped link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A list of the report: the first [`LIST_CAP`] entries and how many there were.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct List {
    pub total: u64,
    pub files: Vec<Named>,
}

impl List {
    fn push(&mut self, named: Named) {
        self.total += 1;
        if self.files.len() < LIST_CAP {
            self.files.push(named);
        }
    }

    fn merge(&mut self, other: List) {
        self.total += other.total;
        for n in other.files {
            if self.files.len() < LIST_CAP {
                self.files.push(n);
            }
        }
    }
}

/// Counts.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Count {
    pub files: u64,
    pub bytes: u64,
}

/// What an extraction did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub backup: PathBuf,
    pub to: PathBuf,
    /// `domain` (DIR/<domain>/<path>) or `category` (the readable layout).
    pub layout: &'static str,
    pub encrypted: bool,
    pub overwrite: bool,
    /// Files selected (their bytes as the records state), and links and folders selected.
    pub selected: Selected,
    pub written: Count,
    /// Selected files whose blob is not in the backup: not written.
    pub missing: List,
    /// Blobs shorter than their record: written as far as they go.
    pub cut_short: List,
    /// Blobs longer than their record: written to the record's size.
    pub too_long: List,
    /// Files not written for the destination's safety or the backup's (hostile names, links).
    pub refused: List,
    /// Files that could not be read, decrypted or written.
    pub failed: List,
    /// Records that could not be decoded (not written), and encrypted files whose last block
    /// did not decrypt to valid padding (written, `reason` says so).
    pub damaged: List,
    /// Links listed in the backup: never made.
    pub skipped_links: List,
    /// Every selected file was written whole.
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Selected {
    pub files: u64,
    pub bytes: u64,
    pub links: u64,
    pub folders: u64,
}

/// What to extract and where.
pub struct Request<'a> {
    pub backup: &'a Path,
    pub to: &'a Path,
    pub overwrite: bool,
    pub selection: &'a Selection,
}

/// The files to write, grouped by folder, and what the walk already reported.
pub struct Plan {
    folders: BTreeMap<String, Vec<Job>>,
    report: Report,
}

impl Plan {
    /// Bytes the writing phase will write at most (for a progress bar).
    pub fn bytes(&self) -> u64 {
        self.folders.values().flatten().map(|j| j.size).sum()
    }
}

fn named(domain: &str, path: &str) -> Named {
    Named {
        domain: domain.to_string(),
        path: path.to_string(),
        target: None,
        size: None,
        written: None,
        reason: None,
    }
}

/// Refuses a destination inside the backup, before anything is made.
pub fn check_destination(backup: &Path, to: &Path) -> Result<(), StartError> {
    let backup = jail::resolved(backup);
    let to_real = jail::resolved(to);
    if to_real.starts_with(&backup) {
        return Err(StartError::InsideBackup(to.to_path_buf()));
    }
    Ok(())
}

/// One walk of the catalog: the selected files with their targets, and what cannot be written.
pub fn plan(catalog: &Catalog, request: &Request<'_>) -> Result<Plan, StartError> {
    let selection = request.selection;
    let readable = !selection.categories.is_empty();
    let mut report = Report {
        backup: request.backup.to_path_buf(),
        to: request.to.to_path_buf(),
        layout: if readable { "category" } else { "domain" },
        encrypted: catalog.encrypted,
        overwrite: request.overwrite,
        ..Report::default()
    };
    let mut jobs: Vec<Job> = Vec::new();
    // Lower-cased targets taken so far: two files never share a name, on a file system that
    // ignores case too.
    let mut taken: HashSet<String> = HashSet::new();
    catalog.each(|entry| {
        if !selection.matches(entry.domain, entry.relative_path) {
            return ControlFlow::Continue(());
        }
        let domain = entry.domain_text().into_owned();
        let path = entry.path_text().into_owned();
        match entry.kind {
            Kind::Directory => {
                report.selected.folders += 1;
                return ControlFlow::Continue(());
            }
            Kind::Symlink => {
                report.selected.links += 1;
                let mut n = named(&domain, &path);
                n.reason = entry
                    .target
                    .as_ref()
                    .map(|t| String::from_utf8_lossy(t).into_owned());
                report.skipped_links.push(n);
                return ControlFlow::Continue(());
            }
            Kind::File | Kind::Other => {}
        }
        report.selected.files += 1;
        report.selected.bytes += entry.size;
        let mut n = named(&domain, &path);
        if entry.kind == Kind::Other {
            n.reason = Some("the record is neither a file, a folder nor a link".into());
            report.refused.push(n);
            return ControlFlow::Continue(());
        }
        if let Some(why) = &entry.damaged {
            n.reason = Some(format!("its record could not be read: {why}"));
            report.damaged.push(n);
            return ControlFlow::Continue(());
        }
        let target = if readable {
            match layout::category_targets(entry.domain, entry.relative_path) {
                Some(Ok((short, fallback))) => {
                    if !taken.contains(&short.to_lowercase()) {
                        Ok(short)
                    } else {
                        Ok(fallback)
                    }
                }
                Some(Err(why)) => Err(why),
                None => layout::domain_target(entry.domain, entry.relative_path),
            }
        } else {
            layout::domain_target(entry.domain, entry.relative_path)
        };
        let target = match target {
            Ok(t) => t,
            Err(why) => {
                n.reason = Some(format!("its name is unsafe: {why}"));
                report.refused.push(n);
                return ControlFlow::Continue(());
            }
        };
        n.target = Some(target.clone());
        n.size = Some(entry.size);
        if !taken.insert(target.to_lowercase()) {
            n.reason = Some("another file of the backup goes to the same name".into());
            report.refused.push(n);
            return ControlFlow::Continue(());
        }
        let longer_blob = match entry.state {
            State::Present => false,
            State::WrongSize { on_disk } => {
                on_disk > blob_len(entry.size, catalog.encrypted)
            }
            State::Missing => {
                report.missing.push(n);
                return ControlFlow::Continue(());
            }
            State::Unreadable => {
                n.reason =
                    Some("its blob is not a regular file this process may read (a link, a folder or a locked file)".into());
                report.refused.push(n);
                return ControlFlow::Continue(());
            }
            State::NoBlob => return ControlFlow::Continue(()),
        };
        let key = match catalog.file_key(entry) {
            Ok(key) => key,
            Err(e) => {
                n.reason = Some(format!("its key could not be had: {e}"));
                report.failed.push(n);
                return ControlFlow::Continue(());
            }
        };
        jobs.push(Job {
            file_id: entry.file_id,
            domain,
            path,
            target,
            size: if entry.size_known {
                entry.size
            } else {
                entry.blob_len.unwrap_or(0)
            },
            size_known: entry.size_known,
            modified: entry.modified,
            key,
            longer_blob,
        });
        ControlFlow::Continue(())
    })?;
    let mut folders: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    for job in jobs {
        let (folder, _) = layout::split(&job.target);
        folders.entry(folder.to_string()).or_default().push(job);
    }
    Ok(Plan { folders, report })
}

/// DIR made and opened; without `overwrite`, stops when any target already exists.
pub fn prepare(plan: &Plan, to: &Path, overwrite: bool) -> Result<Root, StartError> {
    let unusable = |source| StartError::Unusable {
        path: to.to_path_buf(),
        source,
    };
    let root = jail::make_root(to).map_err(unusable)?;
    if overwrite || std::fs::read_dir(to).map_err(unusable)?.next().is_none() {
        return Ok(root);
    }
    // Folders first (parents before children, as the BTreeMap orders them): a file is looked
    // for only where its folder is a real folder.
    let mut state: HashMap<&str, Option<Probe>> = HashMap::new();
    let mut shown = Vec::new();
    let mut total = 0u64;
    for (folder, jobs) in &plan.folders {
        let mut here = Some(Probe::Folder);
        let mut walked = 0;
        for part in folder.split('/').filter(|c| !c.is_empty()) {
            walked += part.len() + usize::from(walked > 0);
            let prefix = &folder[..walked];
            let found = *state.entry(prefix).or_insert_with(|| {
                if here == Some(Probe::Folder) {
                    root.probe(prefix)
                } else {
                    None
                }
            });
            here = found;
        }
        if here != Some(Probe::Folder) {
            continue;
        }
        for job in jobs {
            if root.probe(&job.target).is_some() {
                total += 1;
                if shown.len() < EXISTING_SHOWN {
                    shown.push(job.target.clone());
                }
            }
        }
    }
    if total > 0 {
        return Err(StartError::Exists { shown, total });
    }
    Ok(root)
}

/// The outcome of one file.
enum Done {
    Written(u64),
    CutShort(u64),
    TooLong(u64),
    BadPadding(u64),
    Refused(String),
    Failed(String),
}

/// Writes the plan's files into `root`, folders in parallel and the files of a folder in
/// parallel, calling `progress` with bytes as they are written.
pub fn execute(
    catalog: &Catalog,
    plan: Plan,
    root: &Root,
    overwrite: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Report {
    let Plan {
        folders,
        mut report,
    } = plan;
    let folders: Vec<(String, Vec<Job>)> = folders.into_iter().collect();
    let blobs = Blobs {
        root: &catalog.root,
        legacy: catalog.legacy,
    };
    let parts: Vec<Report> = folders
        .par_iter()
        .map(|(folder, jobs)| {
            let mut part = Report::default();
            let opened = root.folder(folder);
            let results: Vec<(usize, Done)> = match &opened {
                Err(refusal) => {
                    let reason = refusal.reason();
                    (0..jobs.len())
                        .map(|i| (i, Done::Refused(reason.clone())))
                        .collect()
                }
                Ok(dir) => jobs
                    .par_iter()
                    .enumerate()
                    .map(|(i, job)| (i, write_one(blobs, dir, job, overwrite, progress)))
                    .collect(),
            };
            for (i, done) in results {
                let job = &jobs[i];
                let mut n = named(&job.domain, &job.path);
                n.target = Some(job.target.clone());
                n.size = Some(job.size);
                let wrote = |w: u64, part: &mut Report| {
                    part.written.files += 1;
                    part.written.bytes += w;
                };
                match done {
                    Done::Written(w) => wrote(w, &mut part),
                    Done::CutShort(w) => {
                        wrote(w, &mut part);
                        n.written = Some(w);
                        part.cut_short.push(n);
                    }
                    Done::TooLong(w) => {
                        wrote(w, &mut part);
                        n.written = Some(w);
                        part.too_long.push(n);
                    }
                    Done::BadPadding(w) => {
                        wrote(w, &mut part);
                        n.written = Some(w);
                        n.reason = Some(
                            "written, but its last block does not decrypt to valid padding: \
                             the blob is damaged"
                                .into(),
                        );
                        part.damaged.push(n);
                    }
                    Done::Refused(why) => {
                        n.reason = Some(why);
                        part.refused.push(n);
                    }
                    Done::Failed(why) => {
                        n.reason = Some(why);
                        part.failed.push(n);
                    }
                }
            }
            part
        })
        .collect();
    for part in parts {
        report.written.files += part.written.files;
        report.written.bytes += part.written.bytes;
        report.cut_short.merge(part.cut_short);
        report.too_long.merge(part.too_long);
        report.refused.merge(part.refused);
        report.failed.merge(part.failed);
        report.damaged.merge(part.damaged);
    }
    report.complete = [
        &report.missing,
        &report.cut_short,
        &report.too_long,
        &report.refused,
        &report.failed,
        &report.damaged,
    ]
    .iter()
    .all(|l| l.total == 0);
    report
}

/// Writes one file into its folder.
fn write_one(
    blobs: Blobs<'_>,
    dir: &jail::Folder,
    job: &Job,
    overwrite: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Done {
    let (_, name) = layout::split(&job.target);
    let blob = match open_blob(&crate::backup::blobs::blob_path(
        blobs.root,
        &job.file_id,
        blobs.legacy,
    )) {
        Ok(blob) => blob,
        Err(e) if e.kind() == io::ErrorKind::NotFound && job.size == 0 && job.key.is_none() => {
            // An empty file has no blob in a plain backup.
            return match dir.create(name, overwrite) {
                Ok(new) => finish(new, job, 0, false),
                Err(r) => refusal(r),
            };
        }
        Err(e) if crate::untrusted_file::is_not_regular(&e) => {
            return Done::Refused(format!("its blob is not a regular file: {e}"))
        }
        Err(e) => return Done::Failed(format!("its blob could not be opened: {e}")),
    };
    let mut new = match dir.create(name, overwrite) {
        Ok(new) => new,
        Err(r) => return refusal(r),
    };
    let copied = match &job.key {
        None => copy_plain(blob, &mut new.file, job.size, progress),
        Some(key) => copy_decrypted(blob, &mut new.file, job, key, progress),
    };
    match copied {
        Ok((written, padding_ok)) => finish(new, job, written, !padding_ok),
        Err(e) => {
            new.abandon(name);
            Done::Failed(format!("it could not be copied: {e}"))
        }
    }
}

fn refusal(r: Refusal) -> Done {
    match r {
        Refusal::Io(e) => Done::Failed(format!("it could not be created: {e}")),
        other => Done::Refused(other.reason()),
    }
}

/// Dates the file, gives it its name and says how it went.
fn finish(new: jail::NewFile<'_>, job: &Job, written: u64, bad_padding: bool) -> Done {
    if let Some(seconds) = job.modified {
        let time = if seconds >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds as u64))
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))
        };
        if let Some(time) = time {
            // A time the file system cannot hold is not worth losing the file for.
            let _ = new.file.set_modified(time);
        }
    }
    if let Err(e) = new.finish() {
        return Done::Failed(format!("it could not take its name: {e}"));
    }
    if job.size_known && written < job.size {
        Done::CutShort(written)
    } else if job.longer_blob {
        Done::TooLong(written)
    } else if bad_padding {
        Done::BadPadding(written)
    } else {
        Done::Written(written)
    }
}

/// Copies at most `size` bytes of a plain blob (the kernel copies when it can).
fn copy_plain(
    blob: std::fs::File,
    out: &mut std::fs::File,
    size: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<(u64, bool)> {
    let written = io::copy(&mut blob.take(size), out)?;
    progress(written);
    Ok((written, true))
}

thread_local! {
    /// Each thread's decryption buffer, kept from one file to the next; wiped after each file.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decrypts a blob in chunks, writing at most `size` bytes of plaintext (the padding and
/// anything beyond the record's size are dropped). Returns the bytes written and whether the
/// padding was valid (true when the blob was cut short: nothing to judge).
fn copy_decrypted(
    mut blob: std::fs::File,
    out: &mut std::fs::File,
    job: &Job,
    key: &FileKey,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<(u64, bool)> {
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() != CHUNK_LEN {
            *buf = vec![0u8; CHUNK_LEN];
        }
        // How far into the buffer this file's bytes reached: only that much is wiped after it
        // (wiping the whole megabyte for each of 250,000 small files cost more than the AES).
        let mut touched = 0usize;
        let result = decrypt_loop(
            &mut blob,
            out,
            job.size,
            key,
            &mut buf,
            &mut touched,
            progress,
        )
        .and_then(|(written, padding_ok, padding)| {
            if job.size_known {
                return Ok((written, padding_ok));
            }
            // No size in the record: the whole blob was decrypted, and its last block's
            // padding says where the file ends.
            match padding.filter(|&p| p as u64 <= written) {
                Some(p) => {
                    out.set_len(written - p as u64)?;
                    Ok((written - p as u64, true))
                }
                None => Ok((written, false)),
            }
        });
        buf[..touched].zeroize();
        result
    })
}

fn decrypt_loop(
    blob: &mut std::fs::File,
    out: &mut std::fs::File,
    size: u64,
    key: &FileKey,
    buf: &mut [u8],
    touched: &mut usize,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<(u64, bool, Option<usize>)> {
    let mut iv = [0u8; BLOCK_LEN];
    let mut written = 0u64;
    let mut total = 0u64;
    let mut last = [0u8; BLOCK_LEN];
    let mut carry = 0usize;
    loop {
        let mut filled = carry;
        while filled < buf.len() {
            match blob.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    *touched = (*touched).max(filled);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let read_more = filled - carry;
        let whole = filled - filled % BLOCK_LEN;
        if whole > 0 {
            let mut next_iv = [0u8; BLOCK_LEN];
            next_iv.copy_from_slice(&buf[whole - BLOCK_LEN..whole]);
            crypto::decrypt_in_place(key, &iv, &mut buf[..whole]);
            iv = next_iv;
            last.copy_from_slice(&buf[whole - BLOCK_LEN..whole]);
            total += whole as u64;
            let keep = (size - written).min(whole as u64) as usize;
            out.write_all(&buf[..keep])?;
            written += keep as u64;
            progress(keep as u64);
        }
        carry = filled - whole;
        if read_more == 0 || filled < buf.len() {
            // End of the blob: a trailing part block (cut short) cannot be decrypted.
            break;
        }
        buf.copy_within(whole..filled, 0);
    }
    // Only a blob of the intact length is judged: its padding must be what the sizes imply.
    let padding = (total > 0).then(|| crypto::padding_len(&last)).flatten();
    let padding_ok =
        total != crypto::expected_encrypted_len(size) || padding == Some((total - size) as usize);
    last.zeroize();
    Ok((written, padding_ok, padding))
}
