//! `ibackup ls BACKUP [--domain D] [--app BUNDLE] [--category C] [PATTERN]`: the backup's files
//! and symlinks, one line each, in the file list's own order, with whether each file's blob is
//! in the folder. Streams: nothing is gathered, so a million files list in constant memory, and
//! `| head` stops the walk. Exit 0 every listed file present, 1 some listed file missing, cut
//! short, unreadable or with a damaged record, 2 could not read the backup.

use std::ops::ControlFlow;
use std::path::Path;

use super::{CheckContext, CommandResult, Failure, Status};
use crate::backup::catalog::Catalog;
use crate::backup::locate;
use crate::backup::select::Selection;
use crate::platform::Os;
use crate::render::ls::{is_listed, json_line, summary_text, text_line, LsSummary};
use crate::render::Output;

pub fn run(
    out: &Output,
    ctx: &CheckContext,
    backup: &Path,
    selection: &Selection,
) -> CommandResult {
    let backup = locate::typed_path(backup, Os::current());
    let catalog = open(out, ctx, &backup)?;
    let mut summary = LsSummary::new();
    let mut sink = out.lines();
    let mut open_sink = true;
    catalog
        .each(|entry| {
            if !is_listed(entry) || !selection.matches(entry.domain, entry.relative_path) {
                return ControlFlow::Continue(());
            }
            summary.add(entry);
            if open_sink {
                open_sink = if out.json {
                    sink.json(&json_line(entry))
                } else {
                    sink.text(&text_line(entry))
                };
            }
            // A closed stdout ends the listing; the tally still needs the rest only for the
            // exit code, which a reader that went away does not see.
            if open_sink {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))?;
    // After a closed stdout the tally is partial: nobody reads it, and it is not printed.
    if open_sink {
        if out.json {
            sink.json(&summary);
        } else if !out.quiet {
            crate::render::to_stderr(&summary_text(&summary));
        }
    }
    sink.finish();
    Ok(if summary.has_gaps() {
        Status::Incomplete
    } else {
        Status::Ok
    })
}

/// Opens the backup, asking for the password first when it is encrypted.
pub(super) fn open(out: &Output, ctx: &CheckContext, backup: &Path) -> Result<Catalog, Failure> {
    let password = if crate::backup::needs_password(backup) {
        ctx.password.get()?
    } else {
        None
    };
    let spinner = out.spinner("Reading the backup's file list");
    let catalog = Catalog::open(backup, password);
    spinner.finish_and_clear();
    catalog.map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))
}
