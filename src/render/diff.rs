//! The text page of `ibackup diff`: the two backups, the headline counts with their byte deltas,
//! what the newer backup lost (findings) and notes, the domains and apps that changed (largest
//! change first), then the first files of each list. Every name from a backup goes through
//! [`field`]. The JSON is the [`Diff`] value itself (docs/json.md, `ibackup.diff/1`).

use super::text::{field, Style};
use crate::backup::diff::{Diff, FileChange, Group, Side};
use crate::backup::report::Severity;
use crate::units::{human_bytes, human_count, plural};

/// Files of each list shown without `--verbose`.
pub const TEXT_LIST: usize = 20;
/// Domains and apps shown without `--verbose`.
pub const TEXT_GROUPS: usize = 15;

/// Bytes with a sign: "+1.2 MB", "-300 bytes", "0 bytes".
pub fn signed_bytes(delta: i64) -> String {
    let size = human_bytes(delta.unsigned_abs());
    match delta.signum() {
        1 => format!("+{size}"),
        -1 => format!("-{size}"),
        _ => size,
    }
}

fn side_line(label: &str, side: &Side) -> String {
    let date = side.date.map_or("date unknown".to_string(), |d| {
        d.format("%Y-%m-%d %H:%M UTC").to_string()
    });
    let name = side
        .device_name
        .as_deref()
        .map_or(String::new(), |n| format!(", {}", field(n)));
    format!(
        "{label} {}\n    {date}{name}, {} ({}){}\n",
        field(&side.path),
        plural(side.files, "file", "files"),
        human_bytes(side.bytes),
        if side.encrypted { ", encrypted" } else { "" }
    )
}

/// The whole page; `verbose` shows every kept file and every changed domain and app.
pub fn diff_text(diff: &Diff, style: Style, verbose: bool) -> String {
    let t = &diff.totals;
    let mut out = String::new();
    out.push_str(&side_line("Older:", &diff.old));
    out.push_str(&side_line("Newer:", &diff.new));
    out.push('\n');
    out.push_str(&format!(
        "  added    {:>9}  {}\n  removed  {:>9}  {}\n  changed  {:>9}  {}\n  same     {:>9}\n  in all              {}\n",
        human_count(t.added),
        signed_bytes(i64::try_from(t.added_bytes).unwrap_or(i64::MAX)),
        human_count(t.removed),
        signed_bytes(-i64::try_from(t.removed_bytes).unwrap_or(i64::MAX)),
        human_count(t.changed),
        signed_bytes(t.changed_bytes_delta),
        human_count(t.unchanged),
        signed_bytes(t.bytes_delta),
    ));
    out.push('\n');
    let lost: Vec<_> = diff
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .collect();
    if lost.is_empty() {
        out.push_str(&format!(
            "{}\n",
            style.good("The newer backup lost nothing the older one had.")
        ));
    } else {
        out.push_str(&format!("{}\n", style.bad("What the newer backup lost:")));
        for f in lost {
            out.push_str(&format!("  {} {}\n", style.bad("-"), field(&f.message)));
        }
    }
    for f in diff
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Info)
    {
        out.push_str(&format!("{} {}\n", style.warn("Note:"), field(&f.message)));
    }
    out.push_str(&groups("By domain", &diff.domains, style, verbose));
    out.push_str(&groups("By app", &diff.apps, style, verbose));
    let lists = [
        ("Added", false, &diff.files.added, diff.totals.added),
        ("Removed", false, &diff.files.removed, diff.totals.removed),
        ("Changed", false, &diff.files.changed, diff.totals.changed),
        (
            "Missing or cut short in the newer backup",
            true,
            &diff.files.now_missing,
            diff.now_missing,
        ),
    ];
    for (title, missing, files, total) in lists {
        out.push_str(&file_list(title, missing, files, total, style, verbose));
    }
    out
}

fn groups(title: &str, groups: &[Group], style: Style, verbose: bool) -> String {
    let changed: Vec<&Group> = groups.iter().filter(|g| g.has_changes()).collect();
    if changed.is_empty() {
        return String::new();
    }
    let shown = if verbose {
        changed.len()
    } else {
        TEXT_GROUPS.min(changed.len())
    };
    let mut out = format!(
        "\n{} ({} changed, largest change first)\n    {:>8} {:>8} {:>8} {:>10}  name\n",
        style.bold(title),
        human_count(changed.len() as u64),
        "added",
        "removed",
        "changed",
        "bytes"
    );
    for g in &changed[..shown] {
        out.push_str(&format!(
            "    {:>8} {:>8} {:>8} {:>10}  {}\n",
            human_count(g.added),
            human_count(g.removed),
            human_count(g.changed),
            signed_bytes(g.bytes_delta),
            field(&g.name)
        ));
    }
    if shown < changed.len() {
        out.push_str(&format!(
            "    {}\n",
            style.dim(&format!(
                "and {} more (--verbose shows them)",
                changed.len() - shown
            ))
        ));
    }
    out
}

fn file_list(
    title: &str,
    missing: bool,
    files: &[FileChange],
    total: u64,
    style: Style,
    verbose: bool,
) -> String {
    if files.is_empty() {
        return String::new();
    }
    let shown = if verbose {
        files.len()
    } else {
        TEXT_LIST.min(files.len())
    };
    let mut out = format!(
        "\n{} ({}, largest first)\n",
        style.bold(title),
        plural(total, "file", "files")
    );
    for f in &files[..shown] {
        let sizes = match (&f.old, &f.new) {
            (Some(o), Some(n)) if missing => {
                format!(
                    "{}, now {}",
                    human_bytes(o.size),
                    n.blob.unwrap_or("-").replace('_', " ")
                )
            }
            (Some(o), Some(n)) if o.size != n.size => {
                format!("{} -> {}", human_bytes(o.size), human_bytes(n.size))
            }
            (Some(o), Some(_)) => format!("{}, re-dated", human_bytes(o.size)),
            (Some(v), None) | (None, Some(v)) => human_bytes(v.size),
            (None, None) => String::new(),
        };
        out.push_str(&format!(
            "    {}  {}  {}\n",
            field(&f.domain),
            field(&f.path),
            style.dim(&sizes)
        ));
    }
    let more = total.saturating_sub(shown as u64);
    if more > 0 {
        let hint = if verbose || shown == files.len() {
            "--json lists up to 1,000 per kind"
        } else {
            "--verbose shows up to 1,000"
        };
        out.push_str(&format!(
            "    {}\n",
            style.dim(&format!("and {} more ({hint})", human_count(more)))
        ));
    }
    out
}
