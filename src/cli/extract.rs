//! `ibackup extract`: opens the backup (asking its password first when it is encrypted), plans
//! the extraction, checks the destination, writes with a bytes progress bar, and hands the
//! report to render/extract.rs. Exit 0 every selected file written whole, 1 something selected
//! was missing, cut short, refused or failed, 2 could not start.

use std::path::Path;

use super::{CheckContext, CommandResult, Failure};
use crate::backup::catalog::Catalog;
use crate::backup::locate;
use crate::backup::select::Selection;
use crate::extract::{self, Request, StartError};
use crate::outcome::Status;
use crate::platform::Os;
use crate::render::Output;

fn failure(e: StartError) -> Failure {
    Failure::new(e.code(), e.to_string(), e.hint())
}

pub fn run(
    out: &Output,
    ctx: &CheckContext,
    backup: &Path,
    to: &Path,
    overwrite: bool,
    selection: &Selection,
) -> CommandResult {
    let backup = &locate::typed_path(backup, Os::current());
    let to = &locate::typed_path(to, Os::current());
    let request = Request {
        backup,
        to,
        overwrite,
        selection,
    };
    // Before anything is read or made: DIR may not be inside the backup.
    extract::check_destination(backup, to).map_err(failure)?;
    // Asked before any spinner, so the prompt is not drawn over.
    let password = if crate::backup::needs_password(backup) {
        ctx.password.get()?
    } else {
        None
    };
    let spinner = out.spinner("Reading the file list");
    let opened = Catalog::open(backup, password);
    let planned = opened
        .map_err(StartError::from)
        .and_then(|catalog| extract::plan(&catalog, &request).map(|plan| (catalog, plan)));
    spinner.finish_and_clear();
    let (catalog, plan) = planned.map_err(failure)?;
    let root = extract::prepare(&plan, to, overwrite).map_err(failure)?;
    let bar = crate::render::extract::bar(out, plan.bytes());
    let report = extract::execute(&catalog, plan, &root, overwrite, &|n| bar.inc(n));
    bar.finish_and_clear();
    if out.json {
        out.print_json(&crate::render::extract::json(&report));
    } else {
        out.print_text(&crate::render::extract::text(
            &report,
            crate::render::text::Style::new(out.color),
        ));
    }
    Ok(if report.complete {
        Status::Ok
    } else {
        Status::Incomplete
    })
}
