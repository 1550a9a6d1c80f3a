//! The pages of `ibackup backup`: the line that says what is about to happen, the progress bar
//! (the phone's percentage, bytes and files received, speed) with the passcode announcement,
//! and the end: the verdict of the new backup, or why there is none and what became of the
//! previous one. Every value from the phone passes through the escaper.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::text::{field, field_or, Style};
use super::{report, Output};
use crate::backup::report::{BackupReport, Verdict};
use crate::new_backup::{Observer, PhoneFacts, Progress, SessionReport};
use crate::outcome::Failure;
use crate::units::{human_bytes, human_count};

/// What the run is about to do, before the session starts.
pub fn start_text(
    phone: &PhoneFacts,
    folder: &Path,
    incremental: bool,
    encrypted: bool,
    encryption_already_on: bool,
    style: Style,
) -> String {
    let mut text = format!(
        "Backing up {} ({}, iOS {}) into {}\n",
        style.bold(&field_or(phone.name.as_deref(), "the iPhone")),
        field_or(phone.product_type.as_deref(), "unknown model"),
        field_or(phone.ios_version.as_deref(), "unknown"),
        field(&folder.join(&phone.udid).display().to_string()),
    );
    text.push_str(if incremental {
        "  Incremental: the iPhone sends what changed since the backup already there, which stays restorable until the new one is verified.\n"
    } else {
        "  Full: the iPhone sends everything.\n"
    });
    text.push_str(match (encrypted, encryption_already_on) {
        (true, true) => "  Encrypted: the iPhone already encrypts its backups (the password is the one set before).\n",
        (true, false) => "  Encrypted: the iPhone encrypts this backup with its backup password.\n",
        (false, _) => "  Not encrypted: saved passwords, Health and Wi-Fi settings are left out (`--encrypt` turns encryption on).\n",
    });
    text
}

/// The progress display: a bar on stderr when someone watches, plain lines for the passcode
/// otherwise (nothing with `--quiet`).
pub struct BackupProgress {
    bar: ProgressBar,
    quiet: bool,
    started: Instant,
    last_line: Mutex<Option<Instant>>,
}

impl BackupProgress {
    pub fn new(out: &Output) -> Self {
        let bar = if out.progress {
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {wide_bar} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        BackupProgress {
            bar,
            quiet: out.quiet,
            started: Instant::now(),
            last_line: Mutex::new(Some(Instant::now())),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn say(&self, line: &str) {
        if self.bar.is_hidden() {
            if !self.quiet {
                super::to_stderr(line);
            }
        } else {
            self.bar.println(line.trim_end());
        }
    }
}

impl Observer for BackupProgress {
    fn step(&self, text: &str) {
        self.bar.set_prefix(text.to_string());
    }

    fn passcode(&self, shown: bool) {
        if shown {
            self.say("The iPhone asks for its passcode: enter your passcode on the iPhone to let the backup go on.\n");
        } else {
            self.say("Passcode entered: the backup goes on.\n");
        }
    }

    fn progress(&self, progress: Progress) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let speed = (progress.bytes as f64 / elapsed) as u64;
        let message = format!(
            "{} · {} {} · {}/s",
            human_bytes(progress.bytes),
            human_count(progress.files),
            if progress.files == 1 { "file" } else { "files" },
            human_bytes(speed),
        );
        if let Some(percent) = progress.phone_percent {
            self.bar.set_position(percent.clamp(0.0, 100.0) as u64);
        }
        self.bar.set_message(message.clone());
        // Without a bar, a line now and then (every 10 s) shows the backup is alive.
        if self.bar.is_hidden() && !self.quiet {
            let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                *last = Some(Instant::now());
                let percent = progress
                    .phone_percent
                    .map(|p| format!("{:.0}% · ", p.clamp(0.0, 100.0)))
                    .unwrap_or_default();
                self.say(&format!("Backing up: {percent}{message}\n"));
            }
        }
    }
}

/// The failure paragraph for a backup the phone did not finish.
pub fn phone_failure(session: &SessionReport) -> Failure {
    let said = session
        .error_description
        .as_deref()
        .map(|d| format!(": {}", d.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    match session.error_code {
        0 => Failure::new(
            "make.not_finished",
            "the iPhone said the backup ended well, but the backup's Status.plist does not say finished, so it is not a backup a restore accepts",
            "Run `ibackup backup` again. If this repeats, run `ibackup backup --full`.",
        ),
        105 => Failure::new(
            "make.no_space",
            format!("the iPhone stopped the backup: not enough free space on this computer (ErrorCode 105{said})"),
            "Free space on the disk that holds the backup folder, or choose a folder on a disk with room (--to FOLDER), then run `ibackup backup` again.",
        ),
        205 => Failure::new(
            "make.phone_error",
            format!("the iPhone stopped the backup: it could not use files of the backup already there (ErrorCode 205{said})"),
            "Run `ibackup backup --full`: the iPhone then sends everything instead of building on the backup already there, which stays until the new one is complete. If that fails with 205 too, run `ibackup verify` on the backup already there; if it is incomplete, move it out of the backup folder (keep it until a new backup verifies) and run `ibackup backup` again.",
        ),
        code => Failure::new(
            "make.phone_error",
            format!("the iPhone stopped the backup with ErrorCode {code}{said}"),
            "Keep the iPhone unlocked and connected and run `ibackup backup` again. If it fails again, restart the iPhone and try once more.",
        ),
    }
}

/// The failure paragraph for a new backup verify did not call complete (thrown away). After an
/// incremental backup the likely cause is the backup already there: the phone sent only what
/// changed and counted on the rest, so a full backup is what mends it.
pub fn not_kept(verdict: Verdict, full: Option<bool>) -> Failure {
    let (code, what) = match verdict {
        Verdict::Unchecked => ("make.unchecked", "could not be checked"),
        _ => ("make.incomplete", "is incomplete"),
    };
    let hint = if full == Some(false) {
        "The iPhone sent only what changed and counted on the backup already there for the rest; \
         if that backup lacks files, so does the new one. Run `ibackup backup --full`: the \
         iPhone then sends everything, and the backup already there still stays until the new \
         one is complete."
    } else {
        "Keep the iPhone unlocked and connected and run `ibackup backup` again; the report above \
         names what is missing."
    };
    Failure::new(
        code,
        format!("verify says the new backup {what}, so it was not kept"),
        hint,
    )
}

/// The end of the run.
#[allow(clippy::too_many_arguments)]
pub fn end_text(
    outcome: &str,
    session: Option<&SessionReport>,
    verify: Option<&BackupReport>,
    placed: Option<&Path>,
    previous: Option<(&Path, bool, Option<Verdict>)>,
    kind: Option<&str>,
    style: Style,
    verbose: bool,
) -> String {
    let mut text = String::new();
    if let Some(s) = session {
        if s.files > 0 || s.error_code == 0 {
            text.push_str(&format!(
                "Received {} ({} {}) in {}{}.\n",
                human_bytes(s.bytes),
                human_count(s.files),
                if s.files == 1 { "file" } else { "files" },
                seconds(s.seconds),
                match kind {
                    Some("full") => ", a full backup",
                    Some(_) => ", an incremental backup",
                    None => "",
                },
            ));
        }
        if s.encryption_turned_on {
            text.push_str("Backup encryption is now on: keep the password safe, no one can restore this backup without it.\n");
        }
        for (path, said) in &s.phone_file_errors {
            text.push_str(&format!(
                "  The iPhone could not send {}: {}\n",
                field(path),
                field(said)
            ));
        }
        for refused in &s.refused {
            text.push_str(&format!("  Refused: {}\n", field(refused)));
        }
    }
    if let Some(report) = verify {
        text.push('\n');
        text.push_str(&report::verify_text(report, style, verbose));
    }
    text.push('\n');
    match (outcome, placed) {
        ("complete", Some(path)) => text.push_str(&format!(
            "{} the new backup is complete and ready to restore: {}\n",
            style.good("Done:"),
            field(&path.display().to_string())
        )),
        _ => text.push_str(&format!(
            "{} no new backup was made{}.\n",
            style.bad("Not backed up:"),
            match outcome {
                "incomplete" => " (verify found the new one incomplete, so it was not kept)",
                "unchecked" => " (the new one could not be checked, so it was not kept)",
                "stopped" => " (stopped before the end)",
                _ => "",
            }
        )),
    }
    if let Some((path, kept, verdict)) = previous {
        if kept {
            let said = match verdict {
                Some(Verdict::Complete) => style.good("complete and restorable"),
                Some(Verdict::Incomplete) => {
                    style.warn("incomplete (it was already, before this run)")
                }
                Some(Verdict::Unchecked) | None => style.warn("not checked"),
            };
            text.push_str(&format!(
                "The previous backup was not changed: {} is {}.\n",
                field(&path.display().to_string()),
                said
            ));
        } else if outcome == "complete" {
            text.push_str("It replaced the previous backup of this iPhone.\n");
        }
    }
    text
}

fn seconds(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        format!("{} min {} s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    }
}
