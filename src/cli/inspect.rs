//! `ibackup inspect [TARGET]`: the connected phone, the backups (one, a folder of them, or those
//! in this computer's default backup folder), restore readiness, then findings and the fixes to
//! follow.

use std::path::{Path, PathBuf};

use super::{check_backup, connected_phone, CheckContext, CommandResult, Failure, Status};
use crate::backup::locate::{self, Target};
use crate::backup::BackupReport;
use crate::device::DeviceState;
use crate::diagnose::inspection::{InspectReport, UnreadableBackup, INSPECT_SCHEMA};
use crate::diagnose::readiness::restore_readiness;
use crate::diagnose::{diagnose, Facts};
use crate::platform::Os;
use crate::render::{inspect, Output};

/// The backups gathered for one run, and where they came from.
struct Gathered {
    reports: Vec<BackupReport>,
    errors: Vec<UnreadableBackup>,
    /// A single backup was named: show it in full.
    single: bool,
    /// The backups come from a search of a folder (named or default).
    searched: Option<String>,
}

pub fn run(
    out: &Output,
    ctx: &CheckContext,
    target: Option<&Path>,
    udid: Option<&str>,
    message: Option<&str>,
) -> CommandResult {
    let (device, device_error) = connected_phone(out, udid, ctx.transport);
    let gathered = match target {
        Some(target) => gather_target(out, ctx, &locate::typed_path(target, Os::current()))?,
        None => gather_default(
            out,
            ctx,
            device.as_ref(),
            device_error.as_deref(),
            message.is_some(),
        )?,
    };
    let facts = Facts {
        device: device.as_ref(),
        backups: &gathered.reports,
        now: chrono::Utc::now(),
        message,
        password_given: ctx.password.given(),
        looked_for_backups: gathered.searched.is_some(),
        backup_folder: gathered.searched.clone(),
    };
    let mut findings = diagnose(&facts);
    let restore = device.as_ref().and_then(|d| {
        let candidate = if gathered.single {
            gathered.reports.first()
        } else {
            gathered.reports.iter().find(|r| {
                r.backup
                    .udid
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&d.udid))
            })
        };
        candidate.map(|r| restore_readiness(r, d, ctx.password.given()))
    });
    // "Cannot tell whether it can be restored" is a finding like any other, with its fix.
    if let Some(readiness) = &restore {
        findings.extend(readiness.findings.iter().cloned());
    }
    let result = InspectReport {
        schema: INSPECT_SCHEMA,
        device,
        device_error,
        backups: gathered.reports,
        errors: gathered.errors,
        restore,
        findings,
    };
    if out.json {
        out.print_json(&result);
    } else {
        out.print_text(&inspect::inspect_text(&result, gathered.single, out));
    }
    Ok(Status::Ok)
}

fn gather_target(out: &Output, ctx: &CheckContext, target: &Path) -> Result<Gathered, Failure> {
    match locate::classify(target) {
        Ok(Target::Backup(path)) => Ok(Gathered {
            reports: vec![check_backup(out, ctx, &path)?],
            errors: Vec::new(),
            single: true,
            searched: None,
        }),
        Ok(Target::Folder(backups)) if backups.is_empty() => Err(Failure::new(
            "backup.none_found",
            format!("{} holds no backup", target.display()),
            "Point ibackup at a backup folder (the one holding Manifest.db and Info.plist) or at \
             the MobileSync/Backup folder that holds them.",
        )),
        Ok(Target::Folder(backups)) => {
            Ok(check_all(out, ctx, &backups, target.display().to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(
            "backup.not_found",
            format!("{} does not exist", target.display()),
            "Check the path; `ibackup inspect` with no argument looks in this computer's default \
             backup folder.",
        )),
        Err(e) => Err(Failure::new(
            "backup.unreadable",
            format!("cannot read {}: {e}", target.display()),
            unreadable_folder_hint(Os::current()),
        )),
    }
}

/// What to do about a backup folder that cannot be read. macOS guards the backup folder with
/// privacy protection: a terminal without Full Disk Access gets "Operation not permitted".
fn unreadable_folder_hint(os: Os) -> String {
    let mut hint = String::from(
        "Check that the folder is readable by your user and that its disk is connected.",
    );
    if os == Os::MacOs {
        hint.push_str(
            " On macOS, give your terminal app Full Disk Access (System Settings > Privacy & \
             Security > Full Disk Access), then open a new terminal window and run this again.",
        );
    }
    hint
}

fn check_all(out: &Output, ctx: &CheckContext, paths: &[PathBuf], searched: String) -> Gathered {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match check_backup(out, ctx, path) {
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
    Gathered {
        reports,
        errors,
        single: false,
        searched: Some(searched),
    }
}

/// The default backup folder: with a phone connected, its backups (by UDID); without, all. With
/// no phone and no backup there is nothing to look at, which is an error, unless the person
/// brought the words iOS showed (`has_message`): the fixes for those need neither.
fn gather_default(
    out: &Output,
    ctx: &CheckContext,
    device: Option<&DeviceState>,
    device_error: Option<&str>,
    has_message: bool,
) -> Result<Gathered, Failure> {
    let dirs = locate::default_backup_dirs(Os::current(), |name| std::env::var_os(name));
    let mut paths = Vec::new();
    // A folder that is there but cannot be read is never "no backups": it is reported.
    let mut unreadable = Vec::new();
    for dir in &dirs {
        match locate::backups_in(dir) {
            Ok(found) => paths.extend(found),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => unreadable.push((dir.display().to_string(), e)),
        }
    }
    let where_ = if dirs.is_empty() {
        "the backup folder (none on this system: set IBACKUP_BACKUP_DIR)".to_string()
    } else {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let mut gathered = check_all(out, ctx, &paths, where_.clone());
    if !unreadable.is_empty() {
        // Whether a phone has a backup there cannot be told.
        gathered.searched = None;
        let hint = unreadable_folder_hint(Os::current());
        if device.is_none() && gathered.reports.is_empty() && device_error.is_none() {
            let (folder, e) = &unreadable[0];
            return Err(Failure::new(
                "backup.unreadable",
                format!("cannot read the backup folder {folder}: {e}"),
                hint,
            ));
        }
        gathered
            .errors
            .extend(unreadable.into_iter().map(|(folder, e)| UnreadableBackup {
                message: format!("cannot read the backup folder {folder}: {e}. {hint}"),
                path: folder,
                code: "backup.unreadable",
            }));
    }
    if let Some(device) = device {
        gathered.reports.retain(|r| {
            r.backup
                .udid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&device.udid))
        });
        return Ok(gathered);
    }
    if gathered.reports.is_empty()
        && gathered.errors.is_empty()
        && device_error.is_none()
        && !has_message
    {
        let looked = if dirs.is_empty() {
            "This system has no default backup folder (Finder and iTunes keep backups on macOS \
             and Windows only)"
                .to_string()
        } else {
            format!("No backup found in {where_}")
        };
        return Err(Failure::new(
            "backup.none_found",
            format!("no iPhone is connected and there is no backup to look at. {looked}"),
            "Plug in the iPhone with a USB cable and run `ibackup inspect` again, or point \
             ibackup at a backup: `ibackup inspect PATH` (a backup folder or a folder of \
             backups), or set IBACKUP_BACKUP_DIR to the folder where your backups are.",
        ));
    }
    Ok(gathered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_access_is_named_on_macos_only() {
        assert!(unreadable_folder_hint(Os::MacOs).contains("Full Disk Access"));
        assert!(!unreadable_folder_hint(Os::Linux).contains("Full Disk Access"));
        assert!(!unreadable_folder_hint(Os::Windows).contains("Full Disk Access"));
    }
}
