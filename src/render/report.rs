//! Human text for backup reports: the short verdict `verify` prints, the fuller picture
//! `inspect` prints, and the one-line-per-backup table of a folder of backups. Every value that
//! comes from the backup (names, paths, plist strings, problem messages quoting them) is shown
//! through [`field`]: escaped, on one line, cut at 1 KB.

use std::fmt::Write;

use chrono::{DateTime, Local, Utc};

use super::text::{field, field_or, Style};
use crate::backup::report::{AppKind, BackupReport, DamagedRecord, FileRef, Severity, Verdict};
use crate::units::{human_bytes, human_count, plural};

/// How many missing or wrong-size files are named before "and N more".
const SHOWN: usize = 5;

/// A date in the reader's local time, as a person reads it.
pub fn local_date(date: &DateTime<Utc>) -> String {
    date.with_timezone(&Local)
        .format("%-d %b %Y, %H:%M")
        .to_string()
}

fn or_unknown(value: &Option<String>) -> String {
    field_or(value.as_deref(), "unknown")
}

/// "Alex's iPhone (iPhone14,5), iOS 17.5.1 (21F90)".
fn title(report: &BackupReport) -> String {
    let b = &report.backup;
    let mut line = field_or(b.device_name.as_deref(), "Unnamed iPhone");
    if let Some(model) = &b.product_type {
        let _ = write!(line, " ({})", field(model));
    }
    match (&b.ios_version, &b.build_version) {
        (Some(v), Some(build)) => {
            let _ = write!(line, ", iOS {} ({})", field(v), field(build));
        }
        (Some(v), None) => {
            let _ = write!(line, ", iOS {}", field(v));
        }
        _ => {}
    }
    line
}

fn when(report: &BackupReport) -> String {
    let b = &report.backup;
    let mut parts = vec![match &b.date {
        Some(d) => format!("made {}", local_date(d)),
        None => "date unknown".into(),
    }];
    match b.is_full_backup {
        Some(true) => parts.push("full backup".into()),
        Some(false) => parts.push("incremental".into()),
        None => {}
    }
    let keyless = report
        .problems
        .iter()
        .any(|p| p.code == crate::backup::verify::codes::ENCRYPTED_NO_KEYBAG);
    parts.push(
        if keyless {
            "encrypted (no Manifest.plist to unlock it)"
        } else if b.encrypted {
            "encrypted"
        } else {
            "not encrypted"
        }
        .into(),
    );
    parts.join(", ")
}

fn verdict_line(report: &BackupReport, style: Style) -> String {
    let files = &report.files;
    let changed = files
        .size_mismatch
        .iter()
        .filter(|m| !m.judged.is_error())
        .count() as u64;
    match report.verdict {
        Verdict::Complete if changed > 0 => style.good(&format!(
            "Complete: all {} are present and whole ({} changed while the backup ran).",
            plural(files.listed, "file", "files"),
            human_count(changed)
        )),
        Verdict::Complete if report.deep && files.decrypted > 0 => style.good(&format!(
            "Complete: all {} are present with the right size and decrypt intact.",
            plural(files.listed, "file", "files")
        )),
        Verdict::Complete => style.good(&format!(
            "Complete: all {} are present with the right size.",
            plural(files.listed, "file", "files")
        )),
        Verdict::Incomplete => style.bad("Incomplete: this backup cannot be restored as it is."),
        Verdict::Unchecked => style.warn("Could not be fully checked:"),
    }
}

/// A damaged or undecryptable file and why, for the examples under its problem.
fn damaged(file: &DamagedRecord) -> String {
    format!(
        "{} {}: {}",
        field(&file.domain),
        field(&file.path),
        field(&file.reason)
    )
}

fn name(file: &FileRef) -> String {
    format!(
        "{} {}  [{}]",
        field(&file.domain),
        field(&file.path),
        field(&file.file_id)
    )
}

/// The size mismatches that are errors (`errors`) or whole content of another size, with both
/// sizes and what the content showed.
fn mismatches(report: &BackupReport, errors: bool) -> Vec<String> {
    report
        .files
        .size_mismatch
        .iter()
        .filter(|m| m.judged.is_error() == errors)
        .map(|m| {
            format!(
                "{} {}: {} expected, {} on disk; {}",
                field(&m.domain),
                field(&m.path),
                plural(m.expected_bytes, "byte", "bytes"),
                human_count(m.actual_bytes),
                field(&m.evidence)
            )
        })
        .collect()
}

/// The verdict, the problems with their examples, and the file counts.
fn problems(report: &BackupReport, style: Style, verbose: bool, out: &mut String) {
    let _ = writeln!(out, "{}", verdict_line(report, style));
    let limit = if verbose { usize::MAX } else { SHOWN };
    for problem in &report.problems {
        let mark = match problem.severity {
            Severity::Error => style.bad("✗"),
            Severity::Warning => style.warn("!"),
            Severity::Info => style.dim("i"),
        };
        let _ = writeln!(out, "  {mark} {}", field(&problem.message));
        let examples: Vec<String> = match problem.code {
            "backup.files_missing" => report.files.missing.iter().map(name).collect(),
            "backup.files_truncated" => mismatches(report, true),
            "backup.files_changed" => mismatches(report, false),
            "backup.content_damaged" => report.files.content_damaged.iter().map(damaged).collect(),
            "backup.file_id_mismatch" => report.files.file_id_mismatch.iter().map(name).collect(),
            "backup.blobs_undecryptable" => {
                report.files.undecryptable.iter().map(damaged).collect()
            }
            "backup.database_damaged" => report
                .databases
                .iter()
                .filter(|d| d.result != "ok")
                .map(database)
                .collect(),
            _ => Vec::new(),
        };
        for example in examples.iter().take(limit) {
            let _ = writeln!(out, "      {}", style.dim(example));
        }
        if examples.len() > limit {
            let _ = writeln!(
                out,
                "      {}",
                style.dim(&format!(
                    "... and {} more (--verbose or --json lists them all)",
                    human_count((examples.len() - limit) as u64)
                ))
            );
        }
    }
}

fn counts(report: &BackupReport) -> String {
    let f = &report.files;
    if !report.manifest_read {
        return format!(
            "Files: not listed (the file list could not be read); {} on disk, {}",
            plural(f.blobs_on_disk, "file", "files"),
            crate::units::human_bytes(report.size.on_disk_bytes)
        );
    }
    let mut parts = vec![
        format!("{} listed", human_count(f.listed)),
        format!("{} present and intact", human_count(f.intact)),
    ];
    if !f.size_mismatch.is_empty() {
        parts.push(format!(
            "{} with the wrong size",
            human_count(f.size_mismatch.len() as u64)
        ));
    }
    if f.size_unknown > 0 {
        parts.push(format!("{} of unknown size", human_count(f.size_unknown)));
    }
    parts.push(format!("{} missing", human_count(f.missing.len() as u64)));
    if !f.unreachable.is_empty() {
        parts.push(format!(
            "{} not looked for (unreadable folder)",
            human_count(f.unreachable.len() as u64)
        ));
    }
    parts.push(plural(f.orphans, "orphan", "orphans"));
    let mut line = format!("Files: {}", parts.join(", "));
    if report.deep && report.backup.encrypted {
        line.push_str(&format!(
            "\nDecrypted: {} intact, {} damaged",
            human_count(f.decrypted),
            human_count(f.undecryptable.len() as u64)
        ));
    }
    if report.deep && !report.backup.encrypted {
        line.push_str(&format!(
            "\nDatabases and plists checked: {}, {} damaged",
            human_count(f.content_checked),
            human_count(f.content_damaged.len() as u64)
        ));
    }
    for db in &report.databases {
        line.push_str(&format!("\nDatabase {}", database(db)));
    }
    line
}

/// "Messages (HomeDomain Library/SMS/sms.db): ok".
fn database(db: &crate::backup::report::DatabaseCheck) -> String {
    format!(
        "{} ({} {}): {}",
        db.name,
        field(&db.domain),
        field(&db.path),
        field(&db.result)
    )
}

/// `ibackup verify`: who, when, the verdict and why.
pub fn verify_text(report: &BackupReport, style: Style, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold(&title(report)));
    let _ = writeln!(out, "{}", when(report));
    let _ = writeln!(out, "{}", style.dim(&field(&report.backup.path)));
    let _ = writeln!(out);
    problems(report, style, verbose, &mut out);
    let _ = writeln!(out, "{}", counts(report));
    out
}

/// How many apps `inspect` lists before "and N more" (all with `--verbose`).
const APPS_SHOWN: usize = 10;
/// Names wider than this are cut in the table (the JSON has them whole).
const APP_NAME_WIDTH: usize = 32;

/// "Apps, biggest first": name, bundle id, size and estimated iCloud share, then what the
/// estimate assumes.
fn apps_table(report: &BackupReport, verbose: bool, out: &mut String) {
    if report.apps.is_empty() {
        return;
    }
    let shown = if verbose {
        report.apps.len()
    } else {
        APPS_SHOWN.min(report.apps.len())
    };
    let names: Vec<String> = report.apps[..shown]
        .iter()
        .map(|a| {
            let name = match a.kind {
                AppKind::App => field(&a.name),
                AppKind::Shared => "(shared)".to_string(),
            };
            cut(&name, APP_NAME_WIDTH)
        })
        .collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(out, "\nApps, biggest first:");
    let _ = writeln!(
        out,
        "  {:<width$}  {:>9}  {:>9}  Bundle ID",
        "Name", "Size", "iCloud"
    );
    for (app, name) in report.apps[..shown].iter().zip(&names) {
        let _ = writeln!(
            out,
            "  {name:<width$}  {:>9}  {:>9}  {}",
            human_bytes(app.bytes),
            human_bytes(app.icloud_bytes_estimate),
            field(&app.bundle)
        );
    }
    if shown < report.apps.len() {
        let _ = writeln!(
            out,
            "  and {} more (--verbose lists them all)",
            human_count((report.apps.len() - shown) as u64)
        );
    }
    let _ = writeln!(
        out,
        "  iCloud: an estimate of the app's share of an iCloud backup (its data, as it is)."
    );
    if let Some(estimate) = &report.icloud_estimate {
        let photos = match estimate.icloud_photos {
            Some(true) => format!("{} of photos left out", human_bytes(estimate.photos_bytes)),
            Some(false) => format!("{} of photos counted", human_bytes(estimate.photos_bytes)),
            None => format!(
                "iCloud Photos unknown, so its {} of photos counted",
                human_bytes(estimate.photos_bytes)
            ),
        };
        let _ = writeln!(
            out,
            "  A whole iCloud backup: about {} ({photos}).",
            human_bytes(estimate.bytes)
        );
    }
}

/// `text` cut to `width` characters, the last one `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut short: String = text.chars().take(width - 1).collect();
    short.push('…');
    short
}

/// `ibackup inspect BACKUP`: the verify text plus identity, sizes and the biggest domains.
pub fn inspect_text(report: &BackupReport, style: Style, verbose: bool) -> String {
    let b = &report.backup;
    let f = &report.files;
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold(&title(report)));
    let _ = writeln!(out, "{}", when(report));
    let _ = writeln!(out, "  Folder      {}", field(&b.path));
    let _ = writeln!(out, "  UDID        {}", or_unknown(&b.udid));
    let _ = writeln!(
        out,
        "  State       {}",
        field_or(b.snapshot_state.as_deref(), "unknown (no Status.plist)")
    );
    if report.manifest_read {
        let _ = writeln!(
            out,
            "  Contents    {}, {}, {}",
            plural(f.listed, "file", "files"),
            plural(f.directories, "folder", "folders"),
            plural(f.symlinks, "symlink", "symlinks")
        );
        let _ = writeln!(
            out,
            "  Size        {} listed, {} on disk",
            human_bytes(report.size.declared_bytes),
            human_bytes(report.size.on_disk_bytes)
        );
    } else {
        // Nothing was listed because the list could not be read: say so rather than "0 files".
        let why = if b.encrypted {
            "the file list is encrypted: give the backup password to read it"
        } else {
            "the file list could not be read"
        };
        let _ = writeln!(out, "  Contents    not known ({why})");
        let _ = writeln!(
            out,
            "  Size        {} on disk",
            human_bytes(report.size.on_disk_bytes)
        );
    }
    let _ = writeln!(out, "  iCloud      {}", icloud_as_of(report));
    if !report.domains.is_empty() {
        let _ = writeln!(out, "\nBiggest domains:");
        for d in report.domains.iter().filter(|d| d.files > 0).take(10) {
            let _ = writeln!(
                out,
                "  {:>9}  {:>7}  {}",
                human_bytes(d.bytes),
                human_count(d.files),
                field(&d.domain)
            );
        }
    }
    if !report.contents.is_empty() {
        let _ = writeln!(out, "\nWhat it holds:");
        for h in &report.contents {
            let what = if h.present && h.files_present == h.files {
                format!(
                    "{} ({})",
                    human_bytes(h.bytes),
                    plural(h.files, "file", "files")
                )
            } else if h.present {
                format!(
                    "{} listed, only {} of {} files in the folder",
                    human_bytes(h.bytes),
                    human_count(h.files_present),
                    human_count(h.files)
                )
            } else if h.files > 0 {
                format!(
                    "{} listed, but none of them is in the folder",
                    plural(h.files, "file", "files")
                )
            } else if h.category.needs_encryption() && !report.backup.encrypted {
                "not kept: only encrypted backups hold it".to_string()
            } else {
                "none".to_string()
            };
            let _ = writeln!(out, "  {:<28} {what}", h.label);
        }
    }
    apps_table(report, verbose, &mut out);
    let _ = writeln!(out);
    problems(report, style, verbose, &mut out);
    let _ = writeln!(out, "{}", counts(report));
    out
}

/// What the backup recorded of iCloud Backup, said as of the backup's date: whether it was on
/// and when the last iCloud backup before it had finished.
fn icloud_as_of(report: &BackupReport) -> String {
    let icloud = &report.backup.icloud;
    if icloud.is_unknown() {
        return if report.backup.encrypted && !report.manifest_read {
            "unknown: the backup is encrypted and no password was given".to_string()
        } else {
            "not recorded in this backup".to_string()
        };
    }
    let state = match icloud.backup_enabled {
        Some(true) => "Backup on",
        Some(false) => "Backup off",
        None => "Backup on or off: unknown",
    };
    let last = match (&icloud.last_backup, &report.backup.date) {
        (Some(last), Some(made)) => format!(
            "last iCloud backup {} ({} before this backup)",
            local_date(last),
            crate::units::human_age(made.signed_duration_since(*last).num_seconds())
        ),
        (Some(last), None) => format!("last iCloud backup {}", local_date(last)),
        (None, _) => "no iCloud backup recorded".to_string(),
    };
    format!("{state}, {last}, as of this backup's date")
}

/// One line per backup, newest first (the caller sorts).
pub fn backup_list_text(reports: &[BackupReport], style: Style) -> String {
    let mut out = String::new();
    for r in reports {
        let state = match r.verdict {
            Verdict::Complete => style.good("complete"),
            Verdict::Incomplete => style.bad("incomplete"),
            Verdict::Unchecked => style.warn("not fully checked"),
        };
        let date = r
            .backup
            .date
            .as_ref()
            .map_or("date unknown".into(), local_date);
        let _ = writeln!(
            out,
            "{}  iOS {}  {}  {}  {}{}",
            field_or(r.backup.device_name.as_deref(), "Unnamed iPhone"),
            or_unknown(&r.backup.ios_version),
            date,
            human_bytes(r.size.declared_bytes),
            state,
            if r.backup.encrypted {
                "  encrypted"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "  {}", style.dim(&field(&r.backup.path)));
        if !r.backup.icloud.is_unknown() {
            let _ = writeln!(out, "  iCloud: {}", icloud_as_of(r));
        }
        if r.verdict != Verdict::Complete {
            for p in r.problems.iter().filter(|p| p.severity == Severity::Error) {
                let _ = writeln!(out, "    {} {}", style.bad("✗"), field(&p.message));
            }
        }
    }
    out
}
