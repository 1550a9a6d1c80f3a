//! One backup, driven by the phone as iOS drives it: ask for the computer's Status.plist (and,
//! for an incremental backup, its Manifest.plist and Manifest.db), ask for free space, create
//! Snapshot/ and the two-hex-digit folders, upload the files that changed into Snapshot/, then
//! Manifest.db, Manifest.plist and Status.plist, move everything into place file by file,
//! remove what is gone and Snapshot/ itself, and end with ErrorCode 0. The profile's backup
//! fault bends this at one point each.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use plist::{Dictionary, Value};

use super::archive;
use super::content::Entry;
use super::keys::{self, CbcStream, Keys};
use super::link::{Downloaded, Link, CODE_FILE_DATA, CODE_SUCCESS, EMPTY};
use super::{codes, current_content, error_message, BackupFault};
use crate::phone::Phone;
use ibackup::device::lockdown::pairing::new_uuid;
use ibackup::device::DeviceError;

/// How a backup left the connection.
pub enum Outcome {
    /// The conversation goes on (the computer sends Disconnect or another request).
    Continue,
    /// The connection is over.
    Gone,
}

/// How long the phone waits for the computer to answer one request (it may be writing
/// gigabytes).
const ANSWER: Duration = Duration::from_secs(300);
/// How long it waits, with a passcode prompt that nobody answers, for the computer to go.
const NEVER: Duration = Duration::from_secs(600);
/// Bytes of file data per chunk.
const CHUNK: usize = 64 * 1024;
/// Files per UploadFiles message, and bytes.
const BATCH_FILES: usize = 500;
const BATCH_BYTES: u64 = 64 << 20;
/// Moves per MoveItems message.
const MOVE_BATCH: usize = 1000;
/// Caps on what the computer sends back.
const MAX_STATUS: u64 = 1 << 20;
const MAX_MANIFEST_DB: u64 = 1 << 30;

const PRESENTED: &str = "com.apple.LocalAuthentication.ui.presented";
const DISMISSED: &str = "com.apple.LocalAuthentication.ui.dismissed";
const CANCEL: &str = "com.apple.itunes-client.syncCancelRequest";

/// One file to send: where it goes and what it holds.
struct Upload<'a> {
    path: String,
    source: Source<'a>,
}

enum Source<'a> {
    Entry(&'a Entry),
    Bytes(Vec<u8>),
}

/// The phone stopped the backup with an ErrorCode; the computer should now disconnect.
fn stop(link: &mut Link, code: u64, description: &str) -> Result<Outcome, DeviceError> {
    link.send_process_message(error_message(code, description))?;
    Ok(Outcome::Continue)
}

/// A request the computer answered with an error: the phone stops naming it.
fn refused(
    link: &mut Link,
    request: &str,
    status: &super::link::Status,
) -> Result<Outcome, DeviceError> {
    let text = if status.text.is_empty() {
        String::new()
    } else {
        format!(" ({})", status.text)
    };
    stop(
        link,
        codes::COMPUTER_FAILED,
        &format!(
            "the computer answered {request} with error {}{text}; the backup was stopped",
            status.code
        ),
    )
}

fn progress(done: u64, total: u64, from: f64, to: f64) -> Value {
    let share = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    Value::Real(from + (to - from) * share.min(1.0))
}

/// Runs one backup on `link`.
pub fn run(phone: &Phone, link: &mut Link, force_full: bool) -> Result<Outcome, DeviceError> {
    let profile = phone.profile();
    let udid = profile.udid.clone();
    let settings = &profile.backup;
    let fault = settings.fault;
    match fault {
        Some(BackupFault::PasscodeNeverEntered) => {
            phone.post_notification(PRESENTED);
            link.drain_until_gone(NEVER);
            return Ok(Outcome::Gone);
        }
        Some(BackupFault::PasscodePrompt) => {
            phone.post_notification(PRESENTED);
            std::thread::sleep(Duration::from_secs(1));
            phone.post_notification(DISMISSED);
        }
        _ => {}
    }
    if fault == Some(BackupFault::HostilePaths) {
        if let Some(accepted) = probe_outside(phone, link, &udid)? {
            return stop(
                link,
                codes::ESCAPED,
                &format!("the computer accepted a path outside its backup: {accepted}"),
            );
        }
    }
    let content = current_content(phone);
    let keys = phone
        .backup
        .password()
        .map(|p| Keys::new(settings.seed, &p, settings.kdf.dpic, settings.kdf.iter));

    // What the computer already has.
    let status = download(link, &[format!("{udid}/Status.plist")], MAX_STATUS, 0.0)?;
    let status = match status {
        Ok(files) => files,
        Err(answer) => return refused(link, "DLMessageDownloadFiles", &answer),
    };
    let finished = status
        .first()
        .is_some_and(|(_, file)| matches!(file, Downloaded::Data(d) if snapshot_finished(d)));
    // The computer's last backup of this phone, when the phone can read it: it says what is
    // gone since (removed from the computer whatever the kind of backup) and, when it was made
    // with the same encryption and no full backup is asked for, what need not travel again.
    let last = if finished {
        let wanted = [
            format!("{udid}/Manifest.plist"),
            format!("{udid}/Manifest.db"),
        ];
        match download(link, &wanted, MAX_MANIFEST_DB, 1.0)? {
            Ok(files) => readable_previous(&files, &udid, settings.seed),
            Err(answer) => return refused(link, "DLMessageDownloadFiles", &answer),
        }
    } else {
        None
    };
    let incremental = !force_full
        && last
            .as_ref()
            .is_some_and(|(_, encrypted)| *encrypted == keys.is_some());
    let previous: Option<&Rows> = last.as_ref().filter(|_| incremental).map(|(rows, _)| rows);
    if fault == Some(BackupFault::FileErrors) {
        return stop(
            link,
            codes::FILE_ERRORS,
            "some files could not be backed up (simulated fault file_errors)",
        );
    }

    // What to send: every file for a full backup, the changed ones for an incremental one.
    let uploads: Vec<&Entry> = content
        .files()
        .filter(|entry| match &previous {
            None => true,
            Some(rows) => rows
                .get(&entry.file_id())
                .is_none_or(|(_, record)| *record != archive::mbfile(entry, keys.as_ref())),
        })
        .collect();
    let current: BTreeSet<String> = content.files().map(Entry::file_id).collect();
    let removed: Vec<String> = last
        .as_ref()
        .map(|(rows, _)| {
            let mut gone: Vec<String> = rows
                .iter()
                .filter(|(id, (flags, _))| *flags == 1 && !current.contains(*id) && is_file_id(id))
                .map(|(id, _)| id.clone())
                .collect();
            gone.sort();
            gone
        })
        .unwrap_or_default();
    let on_wire = |size: u64| {
        if keys.is_some() {
            keys::encrypted_len(size)
        } else {
            size
        }
    };
    let manifest_db = archive::manifest_db(&content, keys.as_ref())
        .map_err(|e| super::link::bad("the phone's Manifest.db", e))?;
    let manifest_db = match &keys {
        Some(keys) => keys::encrypt(keys.manifest_key(), &manifest_db),
        None => manifest_db,
    };
    let needed: u64 =
        uploads.iter().map(|e| on_wire(e.size())).sum::<u64>() + manifest_db.len() as u64 + 65_536;

    // Free space.
    link.send(vec!["DLMessageGetFreeDiskSpace".into(), EMPTY.into()])?;
    let answer = link.receive_status("DLMessageGetFreeDiskSpace", ANSWER)?;
    if answer.code != 0 {
        return refused(link, "DLMessageGetFreeDiskSpace", &answer);
    }
    let free = answer.value.as_unsigned_integer().unwrap_or(0);
    if fault == Some(BackupFault::NoSpace) || free < needed {
        return stop(
            link,
            codes::NO_SPACE,
            &format!(
                "not enough free space on the computer: the backup needs {needed} bytes, \
                 the computer has {free}"
            ),
        );
    }

    // Folders: Snapshot/, its blob folders, and the final blob folders.
    let mut folders = vec![format!("{udid}/Snapshot")];
    let snapshot_prefixes: BTreeSet<String> = uploads
        .iter()
        .map(|e| e.file_id()[..2].to_string())
        .collect();
    folders.extend(
        snapshot_prefixes
            .iter()
            .map(|p| format!("{udid}/Snapshot/{p}")),
    );
    let prefixes: BTreeSet<String> = content
        .files()
        .map(|e| e.file_id()[..2].to_string())
        .collect();
    folders.extend(prefixes.iter().map(|p| format!("{udid}/{p}")));
    for folder in &folders {
        link.send(vec![
            "DLMessageCreateDirectory".into(),
            folder.clone().into(),
        ])?;
        let answer = link.receive_status("DLMessageCreateDirectory", ANSWER)?;
        // -7 is "it exists already" in DeviceLink's errno mapping: nothing to do.
        if answer.code != 0 && answer.code != -7 {
            return refused(link, &format!("DLMessageCreateDirectory {folder}"), &answer);
        }
    }

    // The files, in batches.
    let snapshot_path = |entry: &Entry| {
        let id = entry.file_id();
        format!("{udid}/Snapshot/{}/{id}", &id[..2])
    };
    // The changed files in batches, then the backup's own files in one batch of their own.
    let mut batches: Vec<Vec<Upload>> = Vec::new();
    let mut batch: Vec<Upload> = Vec::new();
    let mut batch_bytes = 0u64;
    for entry in &uploads {
        if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
            batches.push(std::mem::take(&mut batch));
            batch_bytes = 0;
        }
        batch_bytes += on_wire(entry.size());
        batch.push(Upload {
            path: snapshot_path(entry),
            source: Source::Entry(entry),
        });
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    let now = SystemTime::now();
    let left = fault == Some(BackupFault::SnapshotLeft);
    let full = previous.is_none();
    let status_file = archive::status_plist(
        &new_uuid(),
        full,
        if left { "uploading" } else { "finished" },
        now,
    );
    batches.push(vec![
        Upload {
            path: format!("{udid}/Snapshot/Manifest.db"),
            source: Source::Bytes(manifest_db),
        },
        Upload {
            path: format!("{udid}/Snapshot/Manifest.plist"),
            source: Source::Bytes(archive::manifest_plist(profile, keys.as_ref(), now)),
        },
        Upload {
            path: format!("{udid}/Snapshot/Status.plist"),
            source: Source::Bytes(status_file),
        },
    ]);

    // Faults count over every file sent, so they strike even when little has changed.
    let count = uploads.len() + 3;
    let cancelling = fault == Some(BackupFault::CancelRequest);
    let plan = Plan {
        keys: keys.as_ref(),
        fault,
        delay: Duration::from_millis(settings.upload_delay_ms),
        stop_at: (fault == Some(BackupFault::StopMidUpload)).then_some(count / 2),
        cancel_at: cancelling.then_some(3.min(count / 2)),
    };
    let total: u64 = uploads.iter().map(|e| on_wire(e.size())).sum();
    let mut sent_bytes = 0u64;
    let mut sent_files = 0usize;
    for batch in &batches {
        let result = upload_batch(
            phone,
            link,
            batch,
            &plan,
            &mut sent_files,
            &mut sent_bytes,
            total,
        );
        // After a cancel request the computer going away is the expected end.
        let answer = match result {
            Ok(Sent::All) => link.receive_status("DLMessageUploadFiles", ANSWER),
            Ok(Sent::Stopped) => return Ok(Outcome::Gone),
            Err(e) => Err(e),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(_) if cancelling => return Ok(Outcome::Gone),
            Err(e) => return Err(e),
        };
        if answer.code != 0 {
            return refused(link, "DLMessageUploadFiles", &answer);
        }
    }
    if cancelling {
        // The phone asked to cancel: it never finishes, it waits for the computer to go.
        link.drain_until_gone(NEVER);
        return Ok(Outcome::Gone);
    }
    if left {
        // Everything is in Snapshot/ and nothing was moved: the phone says it is done anyway.
        return stop(link, 0, "");
    }

    // Into place, file by file (moving a folder would replace the one there), Status.plist
    // last.
    let mut moves: Vec<(String, String)> = uploads
        .iter()
        .map(|e| {
            let id = e.file_id();
            (snapshot_path(e), format!("{udid}/{}/{id}", &id[..2]))
        })
        .collect();
    for name in ["Manifest.db", "Manifest.plist"] {
        moves.push((format!("{udid}/Snapshot/{name}"), format!("{udid}/{name}")));
    }
    let count = moves.len() as u64 + 1;
    let mut moved = 0u64;
    let mut groups: Vec<Vec<(String, String)>> =
        moves.chunks(MOVE_BATCH).map(<[_]>::to_vec).collect();
    groups.push(vec![(
        format!("{udid}/Snapshot/Status.plist"),
        format!("{udid}/Status.plist"),
    )]);
    for group in groups {
        moved += group.len() as u64;
        let map: Dictionary = group
            .into_iter()
            .map(|(from, to)| (from, Value::String(to)))
            .collect();
        link.send(vec![
            "DLMessageMoveItems".into(),
            Value::Dictionary(map),
            Value::Dictionary(Dictionary::new()),
            progress(moved, count, 90.0, 99.0),
        ])?;
        let answer = link.receive_status("DLMessageMoveItems", ANSWER)?;
        if answer.code != 0 {
            return refused(link, "DLMessageMoveItems", &answer);
        }
    }

    // What is gone, and Snapshot/.
    let mut removals: Vec<Value> = removed
        .iter()
        .map(|id| Value::String(format!("{udid}/{}/{id}", &id[..2])))
        .collect();
    removals.push(Value::String(format!("{udid}/Snapshot")));
    link.send(vec![
        "DLMessageRemoveItems".into(),
        Value::Array(removals),
        Value::Dictionary(Dictionary::new()),
        Value::Real(100.0),
    ])?;
    let answer = link.receive_status("DLMessageRemoveItems", ANSWER)?;
    if answer.code != 0 {
        return refused(link, "DLMessageRemoveItems", &answer);
    }
    phone.backup.finished_one();
    stop(link, 0, "")
}

/// A fileID as the phone names blobs: 40 lowercase hex digits (a row with anything else is
/// not one the phone would remove).
fn is_file_id(id: &str) -> bool {
    id.len() == 40
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether a Status.plist says `SnapshotState = finished`.
fn snapshot_finished(bytes: &[u8]) -> bool {
    Value::from_reader(std::io::Cursor::new(bytes))
        .ok()
        .and_then(|v| {
            v.as_dictionary()?
                .get("SnapshotState")?
                .as_string()
                .map(|s| s == "finished")
        })
        .unwrap_or(false)
}

type Rows = HashMap<String, (i64, Vec<u8>)>;

/// The computer's Manifest.db rows, when its copy is a backup of this phone that the phone can
/// read (same encryption, its own ManifestKey); `None` means a full backup.
fn readable_previous(
    files: &[(String, Downloaded)],
    udid: &str,
    seed: u64,
) -> Option<(Rows, bool)> {
    let find = |name: &str| {
        files.iter().find_map(|(path, file)| match file {
            Downloaded::Data(d) if path.ends_with(name) => Some(d),
            _ => None,
        })
    };
    let manifest = Value::from_reader(std::io::Cursor::new(find("/Manifest.plist")?)).ok()?;
    let manifest = manifest.as_dictionary()?;
    let owner = manifest
        .get("Lockdown")?
        .as_dictionary()?
        .get("UniqueDeviceID")?
        .as_string()?;
    if owner != udid {
        return None;
    }
    let encrypted = manifest
        .get("IsEncrypted")
        .and_then(Value::as_boolean)
        .unwrap_or(false);
    let db = find("/Manifest.db")?;
    let plain = if encrypted {
        // The phone's class keys do not depend on the password: it reads its own ManifestKey
        // even after the password changed or encryption was turned off.
        let keys = Keys::class_keys_of(seed);
        let key = keys.unprotect(manifest.get("ManifestKey")?.as_data()?)?;
        keys::decrypt(&key, db)?
    } else {
        db.clone()
    };
    Some((archive::read_manifest_db(&plain).ok()?, encrypted))
}

/// The hostile_paths fault: requests for paths outside `<udid>/`, each of which a careful
/// computer refuses with an error status. The first one it accepts, if any.
fn probe_outside(
    phone: &Phone,
    link: &mut Link,
    udid: &str,
) -> Result<Option<String>, DeviceError> {
    let outside = [
        format!("{udid}/../escaped-dir"),
        "/ibackup-escaped-absolute".to_string(),
        format!("{udid}/Snapshot/../../escaped-dir"),
        format!("{udid}/ab\\..\\..\\escaped-dir"),
    ];
    for path in &outside {
        link.send(vec!["DLMessageCreateDirectory".into(), path.clone().into()])?;
        if link
            .receive_status("DLMessageCreateDirectory", ANSWER)?
            .code
            == 0
        {
            return Ok(Some(format!("CreateDirectory {path}")));
        }
    }
    for path in [
        format!("{udid}/../escaped-file"),
        format!("{udid}/Snapshot/../../../escaped-file"),
        "/ibackup-escaped-file".to_string(),
    ] {
        let plan = Plan {
            keys: None,
            fault: None,
            delay: Duration::ZERO,
            stop_at: None,
            cancel_at: None,
        };
        let batch = [Upload {
            path: path.clone(),
            source: Source::Bytes(b"written outside the backup".to_vec()),
        }];
        let (mut files, mut bytes) = (0, 0);
        upload_batch(phone, link, &batch, &plan, &mut files, &mut bytes, 26)?;
        if link.receive_status("DLMessageUploadFiles", ANSWER)?.code == 0 {
            return Ok(Some(format!("UploadFiles {path}")));
        }
    }
    let secret = format!("{udid}/../secret.txt");
    if let Ok(files) = download(link, std::slice::from_ref(&secret), MAX_STATUS, 0.0)? {
        if files.iter().any(|(_, f)| matches!(f, Downloaded::Data(_))) {
            return Ok(Some(format!("DownloadFiles {secret}")));
        }
    }
    let mut moves = Dictionary::new();
    moves.insert(
        format!("{udid}/Info.plist"),
        format!("{udid}/../moved-out").into(),
    );
    link.send(vec![
        "DLMessageMoveItems".into(),
        Value::Dictionary(moves),
        Value::Dictionary(Dictionary::new()),
        Value::Real(0.0),
    ])?;
    if link.receive_status("DLMessageMoveItems", ANSWER)?.code == 0 {
        return Ok(Some("MoveItems Info.plist to ../moved-out".to_string()));
    }
    link.send(vec![
        "DLMessageRemoveItems".into(),
        Value::Array(vec![format!("{udid}/../victim").into()]),
        Value::Dictionary(Dictionary::new()),
        Value::Real(0.0),
    ])?;
    if link.receive_status("DLMessageRemoveItems", ANSWER)?.code == 0 {
        return Ok(Some(format!("RemoveItems {udid}/../victim")));
    }
    Ok(None)
}

/// DownloadFiles `paths`: the files, or the computer's error answer.
fn download(
    link: &mut Link,
    paths: &[String],
    cap: u64,
    at: f64,
) -> Result<Result<Vec<(String, Downloaded)>, super::link::Status>, DeviceError> {
    link.send(vec![
        "DLMessageDownloadFiles".into(),
        Value::Array(paths.iter().cloned().map(Value::String).collect()),
        Value::Dictionary(Dictionary::new()),
        Value::Real(at),
    ])?;
    let files = link.receive_files(cap, ANSWER)?;
    let answer = link.receive_status("DLMessageDownloadFiles", ANSWER)?;
    // -13 "Multi status" lists the files the computer does not have: a first backup.
    if answer.code != 0 && answer.code != -13 {
        return Ok(Err(answer));
    }
    Ok(Ok(files))
}

/// How one batch is sent.
struct Plan<'a> {
    keys: Option<&'a Keys>,
    fault: Option<BackupFault>,
    delay: Duration,
    /// Close the connection inside this file (counted over the whole backup).
    stop_at: Option<usize>,
    /// Post the cancel request after this many files.
    cancel_at: Option<usize>,
}

enum Sent {
    All,
    Stopped,
}

/// One UploadFiles message and its stream, ended by a name length of 0.
fn upload_batch(
    phone: &Phone,
    link: &mut Link,
    batch: &[Upload],
    plan: &Plan,
    sent_files: &mut usize,
    sent_bytes: &mut u64,
    total: u64,
) -> Result<Sent, DeviceError> {
    let batch_bytes: u64 = batch
        .iter()
        .map(|u| match &u.source {
            Source::Entry(e) if plan.keys.is_some() => keys::encrypted_len(e.size()),
            Source::Entry(e) => e.size(),
            Source::Bytes(b) => b.len() as u64,
        })
        .sum();
    link.send(vec![
        "DLMessageUploadFiles".into(),
        Value::Dictionary(Dictionary::new()),
        progress(*sent_bytes, total, 5.0, 90.0),
        batch_bytes.into(),
    ])?;
    let mut out: Vec<u8> = Vec::with_capacity(CHUNK + 64);
    let mut plain = vec![0u8; CHUNK];
    let mut sealed: Vec<u8> = Vec::with_capacity(CHUNK + 32);
    for upload in batch {
        let slow = plan.fault == Some(BackupFault::CancelRequest)
            && plan.cancel_at.is_some_and(|at| *sent_files >= at);
        let delay = if slow {
            plan.delay.max(Duration::from_millis(300))
        } else {
            plan.delay
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if plan.cancel_at == Some(*sent_files) {
            phone.post_notification(CANCEL);
        }
        let device_name = match &upload.source {
            Source::Entry(e) => format!("{}/{}", e.domain, e.relative_path),
            Source::Bytes(_) => upload
                .path
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        out.clear();
        for name in [device_name.as_bytes(), upload.path.as_bytes()] {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name);
        }
        link.write_all(&out)?;
        if plan.stop_at == Some(*sent_files) {
            // A chunk announced in full, half of it sent, then the cable is pulled.
            let mut cut = Vec::new();
            cut.extend_from_slice(&(CHUNK as u32 + 1).to_be_bytes());
            cut.push(CODE_FILE_DATA);
            cut.extend(std::iter::repeat_n(0u8, CHUNK / 2));
            link.write_all(&cut)?;
            let _ = link.flush();
            return Ok(Sent::Stopped);
        }
        match &upload.source {
            Source::Bytes(bytes) => {
                for piece in bytes.chunks(CHUNK) {
                    send_chunk(link, &mut out, piece)?;
                }
            }
            Source::Entry(entry) => {
                let size = entry.size();
                let mut offset = 0u64;
                let mut cipher = plan
                    .keys
                    .map(|k| CbcStream::new(&k.file_key(&entry.file_id(), entry.version)));
                while offset < size {
                    match &mut cipher {
                        None => {
                            // The bytes are generated straight behind the chunk's header.
                            if out.len() != 5 + CHUNK {
                                out.clear();
                                out.resize(5 + CHUNK, 0);
                            }
                            let n = entry.read_at(offset, &mut out[5..]);
                            offset += n as u64;
                            out[..4].copy_from_slice(&(n as u32 + 1).to_be_bytes());
                            out[4] = CODE_FILE_DATA;
                            link.write_all(&out[..5 + n])?;
                        }
                        Some(c) => {
                            let n = entry.read_at(offset, &mut plain);
                            offset += n as u64;
                            sealed.clear();
                            c.update(&plain[..n], &mut sealed);
                            if !sealed.is_empty() {
                                send_chunk(link, &mut out, &sealed)?;
                            }
                        }
                    }
                }
                if let Some(c) = cipher {
                    sealed.clear();
                    c.finish(&mut sealed);
                    send_chunk(link, &mut out, &sealed)?;
                }
            }
        }
        link.write_all(&[0, 0, 0, 1, CODE_SUCCESS])?;
        *sent_files += 1;
        *sent_bytes += match &upload.source {
            Source::Entry(e) if plan.keys.is_some() => keys::encrypted_len(e.size()),
            Source::Entry(e) => e.size(),
            Source::Bytes(b) => b.len() as u64,
        };
    }
    link.write_all(&0u32.to_be_bytes())?;
    link.flush()?;
    Ok(Sent::All)
}

/// One chunk: length (data + 1), CODE_FILE_DATA, data.
fn send_chunk(link: &mut Link, out: &mut Vec<u8>, data: &[u8]) -> Result<(), DeviceError> {
    out.clear();
    out.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
    out.push(CODE_FILE_DATA);
    out.extend_from_slice(data);
    link.write_all(out)
}
