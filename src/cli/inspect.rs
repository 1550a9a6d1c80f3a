//! `ibackup inspect [TARGET]`: the report on one backup, a table of the backups in a folder, or
//! (with no TARGET) the backups in this computer's default backup folder.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{check_backup, CommandResult, Failure, Status};
use crate::backup::locate::{self, Os, Target};
use crate::backup::BackupReport;
use crate::render::{report, text::Style, Output};

/// JSON schema identifier of `inspect --json`.
pub const INSPECT_SCHEMA: &str = "ibackup.inspect/1";

/// `inspect --json`: see docs/json.md.
#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub schema: &'static str,
    /// The connected phone's state; null when none is connected or it could not be read.
    pub device: Option<serde_json::Value>,
    /// Newest first.
    pub backups: Vec<BackupReport>,
    /// Backups that could not be read at all.
    pub errors: Vec<UnreadableBackup>,
    pub findings: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct UnreadableBackup {
    pub path: String,
    pub code: &'static str,
    pub message: String,
}

pub fn run(out: &Output, target: Option<&Path>, _udid: Option<&str>) -> CommandResult {
    let Some(target) = target else {
        return default_folders(out);
    };
    match locate::classify(target) {
        Ok(Target::Backup(path)) => one_backup(out, &path),
        Ok(Target::Folder(backups)) if backups.is_empty() => Err(Failure::new(
            "backup.none_found",
            format!("{} holds no backup", target.display()),
            "Point ibackup at a backup folder (the one holding Manifest.db and Info.plist) or at \
             the MobileSync/Backup folder that holds them.",
        )),
        Ok(Target::Folder(backups)) => many_backups(out, &backups),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(
            "backup.not_found",
            format!("{} does not exist", target.display()),
            "Check the path; `ibackup inspect` with no argument looks in this computer's default \
             backup folder.",
        )),
        Err(e) => Err(Failure::new(
            "backup.unreadable",
            format!("cannot read {}: {e}", target.display()),
            "Check that the folder is readable by your user and that its disk is connected.",
        )),
    }
}

fn one_backup(out: &Output, path: &Path) -> CommandResult {
    let report = check_backup(out, path)?;
    if out.json {
        out.print_json(&InspectReport {
            schema: INSPECT_SCHEMA,
            device: None,
            backups: vec![report],
            errors: Vec::new(),
            findings: Vec::new(),
        });
    } else {
        out.print_text(&report::inspect_text(
            &report,
            Style::new(out.color),
            out.verbose,
        ));
    }
    Ok(Status::Ok)
}

fn many_backups(out: &Output, paths: &[PathBuf]) -> CommandResult {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match check_backup(out, path) {
            Ok(r) => reports.push(r),
            Err(f) => errors.push(UnreadableBackup {
                path: path.display().to_string(),
                code: f.code,
                message: f.message,
            }),
        }
    }
    // Newest first; undated backups last.
    reports.sort_by_key(|r| std::cmp::Reverse(r.backup.date));
    if out.json {
        out.print_json(&InspectReport {
            schema: INSPECT_SCHEMA,
            device: None,
            backups: reports,
            errors,
            findings: Vec::new(),
        });
    } else {
        let style = Style::new(out.color);
        let mut text = report::backup_list_text(&reports, style);
        for e in &errors {
            text.push_str(&format!(
                "{}  {}\n  {}\n",
                e.path,
                style.bad("unreadable"),
                e.message
            ));
        }
        out.print_text(&text);
    }
    Ok(Status::Ok)
}

fn default_folders(out: &Output) -> CommandResult {
    let dirs = locate::default_backup_dirs(Os::current(), |name| std::env::var(name).ok());
    let mut backups = Vec::new();
    for dir in &dirs {
        if let Ok(found) = locate::backups_in(dir) {
            backups.extend(found);
        }
    }
    if !backups.is_empty() {
        return many_backups(out, &backups);
    }
    let looked = if dirs.is_empty() {
        "This system has no default backup folder (Finder and iTunes keep backups on macOS and \
         Windows only)"
            .to_string()
    } else {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!("No backup found in {}", list.join(" or "))
    };
    Err(Failure::new(
        "backup.none_found",
        format!("no iPhone is connected and there is no backup to look at. {looked}"),
        "Plug in the iPhone with a USB cable and run `ibackup inspect` again, or point ibackup \
         at a backup: `ibackup inspect PATH` (a backup folder or a folder of backups), or set \
         IBACKUP_BACKUP_DIR to the folder where your backups are.",
    ))
}
