//! `ibackup backup`: make a Finder-compatible backup of the connected iPhone, then verify it
//! (issue 15). The order: the folder (`--to`, else the platform's backup folder), the phone
//! and a paired session, the passwords (asked before any progress bar), a free-space floor,
//! Ctrl-C armed, the session (new_backup), then `verify` on the new folder. Only a backup the
//! phone finished and verify calls complete takes the previous backup's place; otherwise the
//! previous backup stays, is verified, and the output says whether it is still restorable.
//! Exit: verify's (0 complete, 1 incomplete or the phone's backup failed, 2 could not start or
//! check), 130 after Ctrl-C.

use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use super::device::seconds_from_env;
use super::{check_backup, CheckContext, CommandResult, Failure, Status};
use crate::backup::report::Verdict;
use crate::backup::{locate, BackupReport};
use crate::device::{open_transport, select_device};
use crate::new_backup::folder::free_space;
use crate::new_backup::{
    BackupError, Made, PhoneFacts, Plan, Session, SessionReport, Stop, StopReason,
};
use crate::platform::Os;
use crate::render::{self, text::Style, Output};

/// Below this many free bytes no backup is started (even an empty phone's backup is larger).
pub const MIN_FREE: u64 = 200 * 1024 * 1024;
/// The longest silence accepted from the phone (`IBACKUP_PHONE_SILENCE` overrides).
const SILENCE: u64 = 600;
/// How long a passcode prompt may stay unanswered (`IBACKUP_PASSCODE_WAIT` overrides).
const PASSCODE_WAIT: u64 = 180;

/// What `backup` was asked to do.
pub struct BackupArgs {
    pub to: Option<PathBuf>,
    pub udid: Option<String>,
    pub full: bool,
    pub encrypt: bool,
}

/// The `ibackup.backup/1` object (docs/json.md).
#[derive(Serialize)]
struct BackupOutput<'a> {
    schema: &'static str,
    /// complete, incomplete, unchecked, failed, stopped.
    outcome: &'static str,
    phone: &'a PhoneFacts,
    /// Where the backup is (or would have been).
    folder: PathBuf,
    /// The new backup's path, when it took its place; null otherwise.
    backup: Option<PathBuf>,
    kind: Option<&'static str>,
    encrypted: bool,
    session: Option<&'a SessionReport>,
    /// The verify report of the new backup, when it was verified.
    verify: Option<&'a BackupReport>,
    previous: Option<PreviousBackup>,
    error: Option<ErrorObject>,
}

/// The previous backup of this phone in that folder.
#[derive(Serialize, Clone)]
pub struct PreviousBackup {
    pub path: PathBuf,
    /// Still in place (false only once a new complete backup replaced it).
    pub kept: bool,
    /// Its verdict, checked again when the new backup did not replace it; null otherwise.
    pub verdict: Option<Verdict>,
}

#[derive(Serialize)]
struct ErrorObject {
    code: &'static str,
    message: String,
    hint: String,
}

fn failure(e: &BackupError) -> Failure {
    Failure::new(e.code(), e.to_string(), e.hint())
}

/// The folder the backup goes into: `--to`, else the platform's backup folder (the first that
/// exists of the defaults, else the first default). Linux has none: `--to` or
/// IBACKUP_BACKUP_DIR.
fn backup_folder(to: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(to) = to {
        return Ok(locate::typed_path(to, Os::current()));
    }
    let defaults = locate::default_backup_dirs(Os::current(), |name| std::env::var_os(name));
    defaults
        .iter()
        .find(|d| d.is_dir())
        .or(defaults.first())
        .cloned()
        .ok_or_else(|| {
            Failure::new(
                "usage.no_backup_folder",
                "there is no default backup folder on this system (Linux has no Finder or iTunes)",
                "Name the folder that holds your backups: `ibackup backup --to FOLDER` (the backup goes into FOLDER/<UDID>), or set IBACKUP_BACKUP_DIR.",
            )
        })
}

/// The nearest folder of `path` that exists (for free space before `--to` is created).
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut at = path.to_path_buf();
    while !at.exists() {
        if !at.pop() {
            return PathBuf::from(".");
        }
    }
    at
}

pub fn run(out: &Output, ctx: &CheckContext, args: &BackupArgs) -> CommandResult {
    let folder = backup_folder(args.to.as_deref())?;
    let silence = seconds_from_env("IBACKUP_PHONE_SILENCE", SILENCE)?;
    let passcode_wait = seconds_from_env("IBACKUP_PASSCODE_WAIT", PASSCODE_WAIT)?;
    let wait = super::device::device_wait(out)?;
    let transport = open_transport(ctx.transport).map_err(super::device::failure)?;
    let spinner = out.spinner("Waiting for an iPhone: plug it in with a cable and unlock it");
    let device = select_device(transport.as_ref(), args.udid.as_deref(), wait);
    spinner.finish_and_clear();
    let device = device.map_err(super::device::failure)?;
    let spinner = out.spinner("Starting a session with the iPhone");
    let session = Session::open(transport, device);
    spinner.finish_and_clear();
    let session = session.map_err(|e| failure(&e))?;

    // Passwords before any bar is drawn: the one that unlocks the new backup for verify, and
    // a new one when encryption is to be turned on.
    let already_encrypts = session.phone.will_encrypt == Some(true);
    let new_password = if args.encrypt && !already_encrypts {
        let password = ctx.password.get_new()?.ok_or_else(|| {
            Failure::new(
                "make.password_needed",
                "--encrypt needs the new backup password",
                "Give it with --password-file FILE or IBACKUP_PASSWORD, or run this in a terminal to be asked (twice).",
            )
        })?;
        Some(password_text(password.as_bytes())?)
    } else {
        None
    };
    let encrypted = already_encrypts || new_password.is_some();
    if already_encrypts && ctx.password.get()?.is_none() {
        return Err(Failure::new(
            "make.password_needed",
            "this iPhone encrypts its backups, and the new backup cannot be verified without the backup password",
            "Give the backup password with --password-file FILE or IBACKUP_PASSWORD (or run this in a terminal to be asked).",
        ));
    }

    let free = free_space(&existing_ancestor(&folder)).unwrap_or(u64::MAX);
    if free < MIN_FREE {
        return Err(Failure::new(
            "make.no_space",
            format!(
                "only {} are free at {}, too little for a backup",
                crate::units::human_bytes(free),
                folder.display()
            ),
            "Free space on that disk, or choose a folder on a disk with room (--to FOLDER).",
        ));
    }

    let stop = Stop::default();
    {
        let stop = stop.clone();
        // A second handler cannot be set in one process; the first run's is enough.
        let _ = ctrlc::set_handler(move || stop.request(StopReason::Interrupted));
    }
    let previous_path = folder.join(&session.phone.udid);
    let had_previous = previous_path.is_dir();
    if !out.json && !out.quiet {
        out.print_text(&render::backup::start_text(
            &session.phone,
            &folder,
            had_previous && !args.full,
            encrypted,
            args.encrypt && already_encrypts,
            Style::new(out.color),
        ));
    }
    let plan = Plan {
        folder: folder.clone(),
        full: args.full,
        new_password,
        silence,
        passcode_wait,
        stop: stop.clone(),
    };
    let phone = session.phone.clone();
    let observer = render::backup::BackupProgress::new(out);
    let result = session.run(&plan, &observer);
    observer.finish();
    // The new password (wiped on drop) is no longer needed once the phone has it; the verify
    // below uses the password source, which holds the same one.
    drop(plan);

    let previous = |kept: bool, out: &Output| -> Option<PreviousBackup> {
        had_previous.then(|| PreviousBackup {
            path: previous_path.clone(),
            kept,
            verdict: kept.then(|| recheck(out, ctx, &previous_path)).flatten(),
        })
    };
    let report = Report {
        out,
        stop: &stop,
        phone: &phone,
        folder: &folder,
        encrypted,
    };
    match result {
        Err(e) => {
            let previous = previous(true, out);
            report.failed(&e, None, None, previous.as_ref());
            Ok(match e {
                BackupError::Stopped {
                    reason: StopReason::Interrupted,
                } => Status::Interrupted,
                BackupError::Stopped { .. } | BackupError::Encryption { .. } => Status::Incomplete,
                _ => Status::CouldNotCheck,
            })
        }
        Ok(made) => finish(ctx, &report, made, &previous),
    }
}

/// What is printed at the end, for people or programs.
struct Report<'a> {
    out: &'a Output,
    stop: &'a Stop,
    phone: &'a PhoneFacts,
    folder: &'a Path,
    encrypted: bool,
}

impl Report<'_> {
    fn print(
        &self,
        outcome: &'static str,
        session: Option<&SessionReport>,
        verify: Option<&BackupReport>,
        placed: Option<PathBuf>,
        previous: Option<&PreviousBackup>,
        error: Option<Failure>,
    ) {
        let kind = session
            .and_then(|s| s.full)
            .map(|full| if full { "full" } else { "incremental" });
        if self.out.json {
            self.out.print_json(&BackupOutput {
                schema: "ibackup.backup/1",
                outcome,
                phone: self.phone,
                folder: self.folder.to_path_buf(),
                backup: placed,
                kind,
                encrypted: self.encrypted,
                session,
                verify,
                previous: previous.cloned(),
                error: error.map(|f| ErrorObject {
                    code: f.code,
                    message: f.message,
                    hint: f.hint,
                }),
            });
            return;
        }
        if let Some(failure) = &error {
            self.out.failure(failure);
        }
        let style = Style::new(self.out.color);
        if self.out.quiet {
            self.out.print_text(&format!("{outcome}\n"));
            return;
        }
        self.out.print_text(&render::backup::end_text(
            outcome,
            session,
            verify,
            placed.as_deref(),
            previous.map(|p| (p.path.as_path(), p.kept, p.verdict)),
            kind,
            style,
            self.out.verbose,
        ));
    }

    fn failed(
        &self,
        e: &BackupError,
        session: Option<&SessionReport>,
        verify: Option<&BackupReport>,
        previous: Option<&PreviousBackup>,
    ) {
        let outcome = match e {
            BackupError::Stopped { .. } => "stopped",
            _ => "failed",
        };
        self.print(outcome, session, verify, None, previous, Some(failure(e)));
    }
}

/// The previous backup's verdict, checked again (it was never written to, but a person deciding
/// what to do next needs to know whether it restores). None when it could not be checked.
fn recheck(out: &Output, ctx: &CheckContext, path: &Path) -> Option<Verdict> {
    check_backup(out, ctx, path).ok().map(|r| r.verdict)
}

/// After the phone ended: verify, then put the new backup in place or throw it away.
fn finish(
    ctx: &CheckContext,
    report: &Report<'_>,
    made: Made,
    previous: &dyn Fn(bool, &Output) -> Option<PreviousBackup>,
) -> CommandResult {
    let out = report.out;
    // The phone's sync lock stays held until this function returns: the new folder is
    // verified and put in place (or thrown away) before a second run may prepare its own.
    let Made {
        staging,
        session,
        lock: _lock,
    } = made;
    if !session.phone_succeeded() {
        let _ = staging.discard();
        let failure = render::backup::phone_failure(&session);
        report.print(
            "failed",
            Some(&session),
            None,
            None,
            previous(true, out).as_ref(),
            Some(failure),
        );
        return Ok(Status::Incomplete);
    }
    let checked = check_backup(out, ctx, &staging.work);
    let mut verified = match checked {
        Ok(verified) => verified,
        Err(failure) => {
            let _ = staging.discard();
            report.print(
                "unchecked",
                Some(&session),
                None,
                None,
                previous(true, out).as_ref(),
                Some(failure),
            );
            return Ok(Status::CouldNotCheck);
        }
    };
    if verified.verdict != Verdict::Complete {
        let _ = staging.discard();
        let (outcome, status) = match verified.verdict {
            Verdict::Unchecked => ("unchecked", Status::CouldNotCheck),
            _ => ("incomplete", Status::Incomplete),
        };
        report.print(
            outcome,
            Some(&session),
            Some(&verified),
            None,
            previous(true, out).as_ref(),
            Some(render::backup::not_kept(verified.verdict, session.full)),
        );
        return Ok(status);
    }
    // Ctrl-C while the new backup was being verified: the person asked to stop before the
    // previous backup was replaced, so it is not.
    if report.stop.reason() == Some(StopReason::Interrupted) {
        let _ = staging.discard();
        let e = BackupError::Stopped {
            reason: StopReason::Interrupted,
        };
        report.failed(
            &e,
            Some(&session),
            Some(&verified),
            previous(true, out).as_ref(),
        );
        return Ok(Status::Interrupted);
    }
    let had_previous = staging.had_previous;
    match staging.commit() {
        Ok(placed) => {
            // Verified where it was made; it is the same backup under its own name now.
            verified.backup.path = placed.display().to_string();
            let previous = had_previous.then(|| PreviousBackup {
                path: placed.clone(),
                kept: false,
                verdict: None,
            });
            report.print(
                "complete",
                Some(&session),
                Some(&verified),
                Some(placed),
                previous.as_ref(),
                None,
            );
            Ok(Status::Ok)
        }
        Err(e) => {
            let e = BackupError::Folder(e);
            report.print(
                "failed",
                Some(&session),
                Some(&verified),
                None,
                previous(true, out).as_ref(),
                Some(failure(&e)),
            );
            Ok(Status::CouldNotCheck)
        }
    }
}

/// Zeroized text of a new password (for ChangePassword, which takes a string).
pub fn password_text(bytes: &[u8]) -> Result<Zeroizing<String>, Failure> {
    std::str::from_utf8(bytes)
        .map(|s| Zeroizing::new(s.to_string()))
        .map_err(|_| {
            Failure::new(
                "password.unreadable",
                "the new backup password is not UTF-8 text",
                "Choose a password of ordinary characters.",
            )
        })
}
