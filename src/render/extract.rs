//! The page of `ibackup extract`: how many files were written where, then what was not (missing,
//! cut short, refused, failed, damaged), each file named (escaped: the names come from the
//! backup); the JSON document `ibackup.extract/1`; the bytes progress bar.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::text::{field, Style};
use super::Output;
use crate::extract::{List, Named, Report};
use crate::units::{human_bytes, plural};

/// How many files of each list the text names (the JSON carries more).
const SHOWN: usize = 10;

/// The bytes bar on stderr, hidden when nobody watches.
pub fn bar(out: &Output, total: u64) -> ProgressBar {
    let bar = out.spinner("Extracting");
    if bar.is_hidden() {
        return bar;
    }
    bar.disable_steady_tick();
    let style = ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} ({binary_bytes_per_sec}, {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_length(total);
    bar.set_position(0);
    bar
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

/// The `--json` document.
pub fn json(report: &Report) -> impl Serialize + '_ {
    Document {
        schema: "ibackup.extract/1",
        report,
    }
}

fn name(n: &Named) -> String {
    format!("{} {}", field(&n.domain), field(&n.path))
}

fn section(out: &mut String, list: &List, heading: &str, line: impl Fn(&Named) -> String) {
    if list.total == 0 {
        return;
    }
    out.push_str(&format!("\n{heading}:\n"));
    for n in list.files.iter().take(SHOWN) {
        out.push_str(&format!("  {}\n", line(n)));
    }
    let shown = list.files.len().min(SHOWN) as u64;
    if list.total > shown {
        out.push_str(&format!(
            "  ... and {} more (--json lists up to {})\n",
            plural(list.total - shown, "other", "others"),
            crate::extract::LIST_CAP
        ));
    }
}

/// The text page.
pub fn text(report: &Report, style: Style) -> String {
    let mut out = String::new();
    let to = field(&report.to.display().to_string());
    if report.selected.files == 0 && report.selected.links == 0 {
        out.push_str(&format!(
            "Nothing in the backup matched the selection; nothing was written to {to}.\n"
        ));
        return out;
    }
    out.push_str(&format!(
        "Wrote {} ({}) of {} selected to {to}{}.\n",
        plural(report.written.files, "file", "files"),
        human_bytes(report.written.bytes),
        plural(report.selected.files, "file", "files"),
        if report.layout == "category" {
            ", by category"
        } else {
            ""
        }
    ));
    section(
        &mut out,
        &report.missing,
        &style.warn(&format!(
            "Missing from the backup, not written ({})",
            report.missing.total
        )),
        name,
    );
    section(
        &mut out,
        &report.cut_short,
        &style.warn(&format!(
            "Cut short: written as far as the backup holds them ({})",
            report.cut_short.total
        )),
        |n| {
            format!(
                "{}: {} of {}",
                name(n),
                human_bytes(n.written.unwrap_or(0)),
                human_bytes(n.size.unwrap_or(0))
            )
        },
    );
    section(
        &mut out,
        &report.too_long,
        &style.warn(&format!(
            "Longer in the backup than their record: written to the recorded size ({})",
            report.too_long.total
        )),
        name,
    );
    let with_reason = |n: &Named| match &n.reason {
        Some(r) => format!("{}: {}", name(n), field(r)),
        None => name(n),
    };
    section(
        &mut out,
        &report.refused,
        &style.bad(&format!("Refused, not written ({})", report.refused.total)),
        with_reason,
    );
    section(
        &mut out,
        &report.failed,
        &style.bad(&format!("Failed ({})", report.failed.total)),
        with_reason,
    );
    section(
        &mut out,
        &report.damaged,
        &style.bad(&format!("Damaged ({})", report.damaged.total)),
        with_reason,
    );
    if report.skipped_links.total > 0 {
        out.push_str(&format!(
            "\n{} in the backup not made (ibackup never creates links).\n",
            plural(report.skipped_links.total, "link", "links")
        ));
    }
    if report.complete {
        out.push_str(&format!(
            "{}\n",
            style.good("Every selected file was written whole.")
        ));
    }
    out
}
