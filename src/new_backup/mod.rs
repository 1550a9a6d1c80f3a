//! Making a backup of a connected phone (`ibackup backup`). In order: a paired lockdown session
//! ([`Session::open`], which also reads whether the phone encrypts), the sync lock and the
//! phone's notifications (device::services::sync_lock, notification_proxy), Info.plist written
//! by the computer (device::backup_info), optionally ChangePassword to turn encryption on, then
//! the mobilebackup2 conversation, every request answered inside one folder ([`folder`]) that
//! starts as a hard-linked mirror of the previous backup ([`staging`]). The result is a
//! [`Made`]: what the phone said at the end and whether Status.plist finished, with the sync
//! lock still held. The command (cli/backup.rs) verifies the new folder, only then lets it
//! replace the previous backup, and gives the lock back last.
//!
//! Stopping: Ctrl-C, a cancel request from the phone, or a passcode prompt left unanswered set
//! one flag that every wait looks at within seconds; the connection is then closed, the lock
//! released and the new folder thrown away. Nothing here prints: progress and prompts go to an
//! [`Observer`].

pub mod folder;
pub mod staging;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use plist::{Dictionary, Value};

use crate::backup::plists::{parse_status, SnapshotState};
use crate::device::lockdown::pair_record::{self, PairRecord};
use crate::device::lockdown::{self, ClientStream, LockdownClient};
use crate::device::services::mobilebackup2::{
    self, status, DeviceLink, LinkError, Patience, PhoneRequest,
};
use crate::device::services::notification_proxy::{
    NotificationProxy, NotificationWatch, PhoneNotice,
};
use crate::device::services::sync_lock::SyncLock;
use crate::device::services::{self as services};
use crate::device::transport::{AttachedDevice, Transport};
use crate::device::{backup_info, DeviceError};
use folder::{Confined, Counters, Receiver};
use staging::{Staging, StagingError};

/// What the phone is, as the session found it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhoneFacts {
    pub udid: String,
    pub name: Option<String>,
    pub product_type: Option<String>,
    pub ios_version: Option<String>,
    /// com.apple.mobile.backup WillEncrypt: the phone encrypts its computer backups.
    pub will_encrypt: Option<bool>,
}

/// Progress as the phone and the files tell it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub files: u64,
    pub bytes: u64,
    /// The phone's own percentage, from its last request.
    pub phone_percent: Option<f64>,
    /// The bytes the phone announced for its current upload.
    pub total_bytes: Option<u64>,
}

/// Where the session reports what it does; called from more than one thread.
pub trait Observer: Sync {
    /// A new step ("Taking the sync lock", ...).
    fn step(&self, text: &str);
    /// The phone shows (true) or took away (false) its passcode prompt.
    fn passcode(&self, shown: bool);
    /// Files are moving.
    fn progress(&self, progress: Progress);
}

/// What ended a backup early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Ctrl-C on this computer.
    Interrupted,
    /// The phone asked the computer to cancel (its user cancelled the sync).
    PhoneCancelled,
    /// The passcode prompt on the phone was not answered in time.
    PasscodeTimeout,
}

/// The flag every wait looks at, and why it was set.
#[derive(Clone, Default)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    reason: Arc<AtomicU8>,
}

impl Stop {
    /// Sets the flag (the first reason wins).
    pub fn request(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Interrupted => 1,
            StopReason::PhoneCancelled => 2,
            StopReason::PasscodeTimeout => 3,
        };
        let _ = self
            .reason
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        self.flag.store(true, Ordering::SeqCst);
    }

    pub fn reason(&self) -> Option<StopReason> {
        match self.reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::Interrupted),
            2 => Some(StopReason::PhoneCancelled),
            3 => Some(StopReason::PasscodeTimeout),
            _ => None,
        }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// How to make the backup.
pub struct Plan {
    /// The folder holding `<UDID>/` (the platform's backup folder, or `--to`).
    pub folder: PathBuf,
    /// ForceFullBackup: send everything even when a previous backup is there.
    pub full: bool,
    /// Turn local backup encryption on with this password first (ChangePassword).
    pub new_password: Option<zeroize::Zeroizing<String>>,
    /// The longest silence accepted from the phone between two messages.
    pub silence: Duration,
    /// How long a passcode prompt on the phone may stay unanswered.
    pub passcode_wait: Duration,
    pub stop: Stop,
}

/// A backup the phone made (or tried to), not yet verified nor put in place. It holds the
/// phone's sync lock: whoever verifies and commits the new folder keeps this value until the
/// folder is in place or thrown away, so a second run waiting for the lock cannot prepare (and
/// clear) the same `.ibackup-new` folder in the meantime. Dropping it gives the lock back.
pub struct Made {
    pub staging: Staging,
    pub session: SessionReport,
    pub lock: SyncLock,
}

impl std::fmt::Debug for Made {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Made")
            .field("staging", &self.staging)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// How the conversation with the phone went (part of `backup --json`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SessionReport {
    /// ErrorCode of the phone's last ProcessMessage (0 = success).
    pub error_code: i64,
    pub error_description: Option<String>,
    /// Status.plist was written in this run and says `finished`.
    pub status_finished: bool,
    /// Status.plist's IsFullBackup, when written in this run.
    pub full: Option<bool>,
    /// Files and bytes received from the phone.
    pub files: u64,
    pub bytes: u64,
    /// Files the phone said it could not send, with its words (at most 20 kept).
    pub phone_file_errors: Vec<(String, String)>,
    /// The phone's requests that were refused (paths outside the folder, links; at most 20).
    pub refused: Vec<String>,
    /// Encryption was turned on in this run.
    pub encryption_turned_on: bool,
    pub seconds: f64,
}

impl SessionReport {
    /// The phone said success and Status.plist finished: worth verifying.
    pub fn phone_succeeded(&self) -> bool {
        self.error_code == 0 && self.status_finished
    }
}

/// Why no backup was made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Folder(#[from] StagingError),
    #[error("{what}: {source}")]
    Write {
        what: String,
        source: std::io::Error,
    },
    #[error("the backup was stopped: {}", stop_text(*.reason))]
    Stopped { reason: StopReason },
    #[error("the iPhone refused to turn on backup encryption: ErrorCode {code}{}", describe(.description))]
    Encryption {
        code: i64,
        description: Option<String>,
    },
}

fn stop_text(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Interrupted => "interrupted on this computer (Ctrl-C)",
        StopReason::PhoneCancelled => "the iPhone cancelled the sync",
        StopReason::PasscodeTimeout => "the passcode was not entered on the iPhone in time",
    }
}

fn describe(description: &Option<String>) -> String {
    match description {
        Some(d) => format!(" ({})", d.chars().take(200).collect::<String>()),
        None => String::new(),
    }
}

impl BackupError {
    /// A stable identifier for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            BackupError::Device(e) => e.code(),
            BackupError::Folder(_) | BackupError::Write { .. } => "make.folder",
            BackupError::Stopped {
                reason: StopReason::Interrupted,
            } => "make.interrupted",
            BackupError::Stopped {
                reason: StopReason::PhoneCancelled,
            } => "make.phone_cancelled",
            BackupError::Stopped {
                reason: StopReason::PasscodeTimeout,
            } => "make.passcode_timeout",
            BackupError::Encryption { .. } => "make.encryption_refused",
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            BackupError::Device(e) => e.hint(),
            BackupError::Folder(StagingError::NoRoomToCopy { .. }) => {
                "Free space on that disk, or choose a folder on a disk with room (--to FOLDER)."
                    .into()
            }
            BackupError::Folder(_) | BackupError::Write { .. } => {
                "Choose a folder you can write to with --to FOLDER.".into()
            }
            BackupError::Stopped {
                reason: StopReason::PasscodeTimeout,
            } => "Unlock the iPhone, run the backup again, and enter the passcode when the iPhone asks for it.".into(),
            BackupError::Stopped { .. } => "Run `ibackup backup` again when you are ready.".into(),
            BackupError::Encryption { .. } => "Enter the passcode on the iPhone when it asks, and check that no device management profile forbids the change (Settings > General > VPN & Device Management).".into(),
        }
    }
}

/// A paired lockdown session with the phone, ready to back it up.
pub struct Session {
    transport: Box<dyn Transport>,
    device: AttachedDevice,
    lockdown: LockdownClient,
    record: PairRecord,
    pub phone: PhoneFacts,
}

impl Session {
    /// Finds the pair record, starts the session and reads who the phone is and whether it
    /// encrypts. An unpaired phone is [`DeviceError::NotPaired`].
    pub fn open(
        transport: Box<dyn Transport>,
        device: AttachedDevice,
    ) -> Result<Session, BackupError> {
        let (record, _) =
            pair_record::find_record(transport.as_ref(), &device.udid)?.ok_or_else(|| {
                DeviceError::NotPaired {
                    udid: device.udid.clone(),
                }
            })?;
        let mut lockdown = LockdownClient::new(transport.connect(&device, lockdown::PORT)?);
        lockdown.query_type()?;
        lockdown.start_session(&record)?;
        let text =
            |lockdown: &mut LockdownClient, key: &str| -> Result<Option<String>, DeviceError> {
                Ok(lockdown
                    .get_value(None, Some(key))?
                    .and_then(|v| v.as_string().map(str::to_string)))
            };
        let name = text(&mut lockdown, "DeviceName")?;
        let product_type = text(&mut lockdown, "ProductType")?;
        let ios_version = text(&mut lockdown, "ProductVersion")?;
        let will_encrypt = lockdown
            .get_value(Some("com.apple.mobile.backup"), Some("WillEncrypt"))?
            .and_then(|v| v.as_boolean());
        let phone = PhoneFacts {
            udid: device.udid.clone(),
            name,
            product_type,
            ios_version,
            will_encrypt,
        };
        Ok(Session {
            transport,
            device,
            lockdown,
            record,
            phone,
        })
    }

    /// Makes the backup into `plan.folder/<UDID>.ibackup-new`. On an error or a stop the new
    /// folder is thrown away before returning, and the previous backup was never touched.
    pub fn run(mut self, plan: &Plan, observer: &dyn Observer) -> Result<Made, BackupError> {
        let started = Instant::now();
        observer.step("Asking the iPhone for the sync lock");
        // The lock before the folder: another program backing up this phone (Finder, or a
        // second ibackup) is turned away before anything is prepared, so no run ever clears
        // the `.ibackup-new` folder of a run in progress.
        let lock = SyncLock::acquire(
            self.transport.as_ref(),
            &self.device,
            &mut self.lockdown,
            &self.record,
        )?;
        observer.step("Preparing the backup folder");
        let staging = staging::prepare(&plan.folder, &self.phone.udid)?;
        match self.converse(plan, &staging, observer) {
            Ok(mut session) => {
                session.seconds = started.elapsed().as_secs_f64();
                Ok(Made {
                    staging,
                    session,
                    lock,
                })
            }
            Err(e) => {
                let _ = staging.discard();
                // The lock goes back whatever happened (a vanished phone makes this fail:
                // that is fine).
                let _ = lock.release();
                Err(e)
            }
        }
    }

    /// The notification watcher beside the conversation; the files and bytes received are
    /// added to the report here.
    fn converse(
        &mut self,
        plan: &Plan,
        staging: &Staging,
        observer: &dyn Observer,
    ) -> Result<SessionReport, BackupError> {
        let watch_proxy = NotificationProxy::open(
            self.transport.as_ref(),
            &self.device,
            &mut self.lockdown,
            &self.record,
        )?;
        let watch = NotificationWatch::start(watch_proxy)?;
        let counters = Counters::default();
        let percent = AtomicU64::new(f64::NAN.to_bits());
        let total = AtomicU64::new(0);
        let done = AtomicBool::new(false);

        let outcome = std::thread::scope(|scope| {
            scope.spawn(|| {
                watch_phone(
                    watch,
                    plan,
                    observer,
                    &done,
                    Shared {
                        counters: &counters,
                        percent: &percent,
                        total: &total,
                    },
                )
            });
            let result = self.talk(plan, staging, observer, &counters, &percent, &total);
            done.store(true, Ordering::SeqCst);
            result
        });
        let mut report = outcome?;
        report.files = counters.files.load(Ordering::Relaxed);
        report.bytes = counters.bytes.load(Ordering::Relaxed);
        Ok(report)
    }

    fn talk(
        &mut self,
        plan: &Plan,
        staging: &Staging,
        observer: &dyn Observer,
        counters: &Counters,
        percent: &AtomicU64,
        total: &AtomicU64,
    ) -> Result<SessionReport, BackupError> {
        let transport = self.transport.as_ref();
        let udid = self.phone.udid.clone();
        let folder = Confined::new(staging.work.clone(), &udid);
        let stopped = |e: LinkError| -> BackupError {
            match e {
                LinkError::Stopped => BackupError::Stopped {
                    reason: plan.stop.reason().unwrap_or(StopReason::Interrupted),
                },
                LinkError::Device(e) => BackupError::Device(e),
            }
        };
        let patience = Patience {
            silence: plan.silence,
            stop: plan.stop.flag.clone(),
        };

        observer.step("Reading what the iPhone holds for Info.plist");
        let facts = backup_info::gather(transport, &self.device, &mut self.lockdown, &self.record)?;
        let info = backup_info::build(&facts, SystemTime::now());
        let mut bytes = Vec::new();
        plist::to_writer_xml(&mut bytes, &info).map_err(|e| BackupError::Write {
            what: "writing Info.plist".to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        folder
            .write_file(&format!("{udid}/Info.plist"), &bytes)
            .map_err(|source| BackupError::Write {
                what: format!("writing {}", staging.work.join("Info.plist").display()),
                source,
            })?;
        let previous_status = std::fs::read(staging.work.join("Status.plist")).ok();

        let mut encryption_turned_on = false;
        if let Some(password) = &plan.new_password {
            observer
                .step("Turning on backup encryption: enter the passcode on the iPhone if it asks");
            let mut link = self.open_link(patience.clone()).map_err(stopped)?;
            link.request_change_password(&udid, None, Some(password))
                .map_err(stopped)?;
            let end = serve(
                &mut link,
                &folder,
                counters,
                percent,
                total,
                &mut Vec::new(),
                &mut Vec::new(),
            )
            .map_err(stopped)?;
            let _ = link.disconnect();
            if end.0 != 0 {
                return Err(BackupError::Encryption {
                    code: end.0,
                    description: end.1,
                });
            }
            encryption_turned_on = true;
        }

        observer.step("Starting the backup on the iPhone");
        let mut link = self.open_link(patience).map_err(stopped)?;
        link.request_backup(&udid, plan.full).map_err(stopped)?;
        observer.step("Backing up");
        let mut phone_file_errors = Vec::new();
        let mut refused = Vec::new();
        let (error_code, error_description) = serve(
            &mut link,
            &folder,
            counters,
            percent,
            total,
            &mut phone_file_errors,
            &mut refused,
        )
        .map_err(stopped)?;
        let _ = link.disconnect();

        // Status.plist must be this run's: the previous backup's (a hard link here) says
        // finished too.
        let status_bytes = std::fs::read(staging.work.join("Status.plist")).ok();
        let written = status_bytes.is_some() && status_bytes != previous_status;
        let status = status_bytes
            .filter(|_| written)
            .and_then(|b| parse_status(&b).ok());
        let status_finished = status
            .as_ref()
            .is_some_and(|s| s.snapshot_state == Some(SnapshotState::Finished));
        Ok(SessionReport {
            error_code,
            error_description,
            status_finished,
            full: status.and_then(|s| s.is_full_backup),
            phone_file_errors,
            refused,
            encryption_turned_on,
            ..SessionReport::default()
        })
    }

    /// A new mobilebackup2 connection, past the version exchange and Hello.
    fn open_link(&mut self, patience: Patience) -> Result<DeviceLink<ClientStream>, LinkError> {
        let stream = services::open(
            self.transport.as_ref(),
            &self.device,
            &mut self.lockdown,
            &self.record,
            mobilebackup2::SERVICE,
        )?;
        let mut link = DeviceLink::new(stream, patience);
        link.version_exchange()?;
        link.hello()?;
        Ok(link)
    }
}

/// The progress values shared with the watcher thread.
struct Shared<'a> {
    counters: &'a Counters,
    percent: &'a AtomicU64,
    total: &'a AtomicU64,
}

/// The watcher: relays the phone's notices (cancel, passcode prompt) and ticks progress until
/// `done`. A prompt left unanswered longer than the plan allows stops the backup.
fn watch_phone(
    watch: NotificationWatch,
    plan: &Plan,
    observer: &dyn Observer,
    done: &AtomicBool,
    shared: Shared<'_>,
) {
    let mut prompt_since: Option<Instant> = None;
    let mut last = (u64::MAX, u64::MAX, u64::MAX);
    while !done.load(Ordering::SeqCst) {
        while let Some(notice) = watch.try_notice() {
            match notice {
                PhoneNotice::CancelRequest => plan.stop.request(StopReason::PhoneCancelled),
                PhoneNotice::PasscodePrompt => {
                    prompt_since.get_or_insert_with(Instant::now);
                    observer.passcode(true);
                }
                PhoneNotice::PasscodeDismissed => {
                    prompt_since = None;
                    observer.passcode(false);
                }
                _ => {}
            }
        }
        if prompt_since.is_some_and(|since| since.elapsed() >= plan.passcode_wait) {
            plan.stop.request(StopReason::PasscodeTimeout);
        }
        let now = (
            shared.counters.files.load(Ordering::Relaxed),
            shared.counters.bytes.load(Ordering::Relaxed),
            shared.percent.load(Ordering::Relaxed),
        );
        if now != last {
            last = now;
            let percent = f64::from_bits(now.2);
            let total = shared.total.load(Ordering::Relaxed);
            observer.progress(Progress {
                files: now.0,
                bytes: now.1,
                phone_percent: percent.is_finite().then_some(percent),
                total_bytes: (total > 0).then_some(total),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    watch.stop();
}

/// The most failures of each kind kept for the report.
const KEPT: usize = 20;

/// Answers the phone's requests until its ProcessMessage: (ErrorCode, ErrorDescription).
fn serve<S: std::io::Read + std::io::Write>(
    link: &mut DeviceLink<S>,
    folder: &Confined,
    counters: &Counters,
    percent: &AtomicU64,
    total: &AtomicU64,
    phone_file_errors: &mut Vec<(String, String)>,
    refused: &mut Vec<String>,
) -> Result<(i64, Option<String>), LinkError> {
    let empty = || Value::Dictionary(Dictionary::new());
    let note = |result: std::io::Result<()>, refused: &mut Vec<String>| -> (i64, Option<String>) {
        match result {
            Ok(()) => (status::OK, None),
            Err(e) => {
                if e.kind() == std::io::ErrorKind::PermissionDenied && refused.len() < KEPT {
                    refused.push(e.to_string());
                }
                (mobilebackup2::io_status(&e), Some(e.to_string()))
            }
        }
    };
    loop {
        let request = link.next_request()?;
        let progress = match &request {
            PhoneRequest::DownloadFiles { progress, .. }
            | PhoneRequest::UploadFiles { progress, .. }
            | PhoneRequest::CreateDirectory { progress, .. }
            | PhoneRequest::MoveItems { progress, .. }
            | PhoneRequest::RemoveItems { progress, .. } => *progress,
            _ => None,
        };
        if let Some(p) = progress {
            percent.store(p.to_bits(), Ordering::Relaxed);
        }
        match request {
            PhoneRequest::DownloadFiles { paths, .. } => {
                link.send_files(&paths, &mut folder::Source(folder))?;
            }
            PhoneRequest::UploadFiles { total_bytes, .. } => {
                if let Some(t) = total_bytes {
                    total.store(t, Ordering::Relaxed);
                }
                let mut receiver = Receiver::new(folder, counters);
                let got = link.receive_files(&mut receiver)?;
                for error in got.phone_errors {
                    if phone_file_errors.len() < KEPT {
                        phone_file_errors.push(error);
                    }
                }
                if let Some((path, _, text)) = got.local_error {
                    if refused.len() < KEPT && text.contains("refused") {
                        refused.push(format!("{path}: {text}"));
                    }
                }
            }
            PhoneRequest::GetFreeDiskSpace => match folder::free_space(folder.root()) {
                Ok(free) => link.send_status(status::OK, None, Value::Integer(free.into()))?,
                Err(e) => link.send_status(
                    status::FAILED,
                    Some(&e.to_string()),
                    Value::Integer(0u64.into()),
                )?,
            },
            PhoneRequest::PurgeDiskSpace => {
                link.send_status(status::FAILED, Some("Operation not supported"), empty())?
            }
            PhoneRequest::CreateDirectory { path, .. } => {
                let (code, text) = note(folder.create_dir(&path), refused);
                link.send_status(code, text.as_deref(), empty())?;
            }
            PhoneRequest::MoveItems { moves, .. } => {
                let result = moves
                    .iter()
                    .try_for_each(|(from, to)| folder.move_item(from, to));
                let (code, text) = note(result, refused);
                link.send_status(code, text.as_deref(), empty())?;
            }
            PhoneRequest::RemoveItems { paths, .. } => {
                let result = paths.iter().try_for_each(|p| folder.remove(p));
                let (code, text) = note(result, refused);
                link.send_status(code, text.as_deref(), empty())?;
            }
            PhoneRequest::CopyItem { from, to } => {
                let (code, text) = note(folder.copy(&from, &to), refused);
                link.send_status(code, text.as_deref(), empty())?;
            }
            PhoneRequest::ContentsOfDirectory { path } => match folder.list(&path) {
                Ok(entries) => link.send_directory(&entries)?,
                Err(e) => {
                    let (code, text) = note(Err(e), refused);
                    link.send_status(code, text.as_deref(), empty())?;
                }
            },
            PhoneRequest::ProcessMessage {
                error_code,
                description,
                ..
            } => return Ok((error_code.unwrap_or(-1), description)),
            PhoneRequest::Disconnect => {
                return Err(LinkError::Device(DeviceError::Closed {
                    what: "the backup (the iPhone disconnected before saying how it ended)"
                        .to_string(),
                    at_start: false,
                }))
            }
            PhoneRequest::Other(_) => {
                link.send_status(status::FAILED, Some("Operation not supported"), empty())?
            }
        }
    }
}
