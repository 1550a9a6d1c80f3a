//! Matching the file list with the blobs on disk: each listed file is looked up by fileID in
//! the blob store and counted as present, missing, not a regular file, the wrong size or intact;
//! what is left in the store is an orphan. The counts, the per-domain sizes and the contents
//! summary go into the report, and `problems` words what they amount to.
//!
//! Nothing here opens a blob: sizes come from the listing `blobs` made. A blob this process may
//! not read counts as present but goes no further (the listing reported it as unreadable). Judging a wrong size by
//! the blob's content is `judge`'s job and decrypting blobs is `deep`'s, on the files this
//! module hands back.

use super::blobs::{BlobKind, BlobStore};
use super::contents::Tally;
use super::manifest::ManifestError;
use super::report::{BackupReport, DomainSize, FileCounts, FileRef, Judged, SizeMismatch};
use super::scan::{lossy, Listed, Names, Scan};

/// The listed files whose blob is a regular file, by how its length compares with the record.
pub(super) struct Matched {
    /// The right length.
    pub(super) intact: Vec<Listed>,
    /// Another length, in the order of `report.files.size_mismatch`, for `judge` to look at.
    pub(super) mismatched: Vec<(Listed, u64)>,
}

/// Matches the listed files with the blobs found and fills the counts. Returns the present
/// files for the content checks (`judge`, `deep`); the problems are worded once those ran.
pub(super) fn match_blobs(
    mut scan: Scan,
    store: &mut BlobStore,
    manifest: &dyn Names,
    report: &mut BackupReport,
) -> Result<Matched, ManifestError> {
    let files = &mut report.files;
    files.listed = scan.listed.len() as u64 + scan.unnamed.len() as u64;
    files.directories = scan.directories;
    files.symlinks = scan.symlinks;
    files.other_rows = scan.other_rows;
    files.size_unknown = scan.size_unknown;
    files.file_id_mismatch = scan.file_id_mismatch;
    files.damaged_records = scan.damaged;
    files.missing = scan.unnamed;
    files.suspicious_paths = scan.suspicious;
    report.size.declared_bytes = scan.declared_bytes;

    let named = |rowid| -> Result<FileRef, ManifestError> {
        let (file_id, domain, path) = manifest.names(rowid)?;
        Ok(FileRef {
            file_id,
            domain,
            path,
        })
    };
    // The listed files are sorted in place: those found intact stay in `scan.listed` (no second
    // list of a million entries), those of another length move to `mismatched`, the rest are
    // counted and dropped. Rows come in manifest order, which is random by fileID, so each
    // lookup would wait on memory: the blob of the row a few places ahead is asked for early.
    const AHEAD: usize = 8;
    let mut mismatched = Vec::new();
    let listed = &mut scan.listed;
    let mut kept = 0;
    for at in 0..listed.len() {
        if let Some(ahead) = listed.get(at + AHEAD) {
            store.prefetch(&ahead.id);
        }
        let one = listed[at];
        match sort_one(&one, store, files, &mut scan.contents, &named)? {
            Some(Fate::Intact) => {
                listed[kept] = one;
                kept += 1;
            }
            Some(Fate::Mismatched(len)) => mismatched.push((one, len)),
            None => {}
        }
    }
    listed.truncate(kept);
    let intact = scan.listed;
    // A blob under the fileID of a folder, symlink or other row is named by the manifest,
    // whatever the row's flags: it is no orphan.
    for id in &scan.other_ids {
        if let Some(blob) = store.get_mut(id) {
            blob.named = true;
        }
    }
    files.orphans = store.iter().filter(|blob| !blob.named).count() as u64;

    let mut domains: Vec<DomainSize> = scan
        .domains
        .totals
        .into_iter()
        .map(|(domain, files, bytes)| DomainSize {
            domain: lossy(&domain),
            files,
            bytes,
        })
        .collect();
    domains.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.domain.cmp(&b.domain)));
    report.domains = domains;
    report.contents = scan.contents.holdings();
    Ok(Matched { intact, mismatched })
}

/// Where one listed file goes once its blob has been looked at.
enum Fate {
    /// A regular file of the right length: kept for `deep`.
    Intact,
    /// A regular file of this other length: for `judge`.
    Mismatched(u64),
}

/// Looks up one listed file's blob and counts it; `None` when it goes no further (missing, not
/// a regular file, unreadable, or of a size the record does not state).
fn sort_one(
    listed: &Listed,
    store: &mut BlobStore,
    files: &mut FileCounts,
    contents: &mut Tally,
    named: &dyn Fn(i64) -> Result<FileRef, ManifestError>,
) -> Result<Option<Fate>, ManifestError> {
    // A blob stays in the store once named: a Manifest.db without its primary key can list
    // a fileID twice, and the second row's blob is the same file, there, not missing.
    let found = store.get_mut(&listed.id).map(|blob| {
        blob.named = true;
        *blob
    });
    let blob = match found {
        Some(blob) => blob,
        None if store.unlisted.hides(&listed.id) => {
            files.unreachable.push(named(listed.rowid)?);
            return Ok(None);
        }
        None => {
            files.missing.push(named(listed.rowid)?);
            return Ok(None);
        }
    };
    if !matches!(blob.kind, BlobKind::File | BlobKind::Unreadable) {
        files.not_a_file.push(named(listed.rowid)?);
        return Ok(None);
    }
    files.present += 1;
    if let Some(category) = listed.category {
        contents.found(category);
    }
    if blob.kind == BlobKind::Unreadable {
        // There, but not ours to read: the listing named it among the unreadable (the check
        // is incomplete there), and nothing judges or opens it.
        return Ok(None);
    }
    match listed.expected() {
        Some(expected) if expected != blob.size => {
            let FileRef {
                file_id,
                domain,
                path,
            } = named(listed.rowid)?;
            files.size_mismatch.push(SizeMismatch {
                file_id,
                domain,
                path,
                expected_bytes: expected,
                actual_bytes: blob.size,
                // Until `judge` has looked at the content.
                judged: Judged::Unknown,
                evidence: String::new(),
            });
            Ok(Some(Fate::Mismatched(blob.size)))
        }
        Some(_) => {
            files.intact += 1;
            Ok(Some(Fate::Intact))
        }
        None => Ok(None),
    }
}
