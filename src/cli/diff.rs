//! `ibackup diff OLD NEW`: what changed between two backups and what the newer one lost. Both
//! are opened with the one password the run has (a phone's backups share it). Exit 0 compared
//! and nothing lost, 1 the newer backup lost something, 2 either could not be read.

use std::path::Path;

use super::{CheckContext, CommandResult, Failure, Status};
use crate::backup::diff::{diff, DiffError};
use crate::backup::{locate, needs_password};
use crate::platform::Os;
use crate::render::{diff as page, text::Style, Output};

fn failure(e: DiffError) -> Failure {
    Failure::new(
        e.error.code(),
        format!("{} ({})", e.error, e.which.label()),
        e.error.hint(),
    )
}

pub fn run(out: &Output, ctx: &CheckContext, old: &Path, new: &Path) -> CommandResult {
    let old = locate::typed_path(old, Os::current());
    let new = locate::typed_path(new, Os::current());
    // Asked before the spinner starts, so the prompt is not drawn over.
    let password = if needs_password(&old) || needs_password(&new) {
        ctx.password.get()?
    } else {
        None
    };
    let spinner = out.spinner("Comparing the two backups");
    let result = diff(&old, &new, password);
    spinner.finish_and_clear();
    let diff = result.map_err(failure)?;
    if out.json {
        out.print_json(&diff);
    } else if out.quiet {
        let word = if diff.lost_something() {
            "lost"
        } else {
            "nothing lost"
        };
        out.print_text(&format!("{word}\n"));
    } else {
        out.print_text(&page::diff_text(&diff, Style::new(out.color), out.verbose));
    }
    Ok(if diff.lost_something() {
        Status::Incomplete
    } else {
        Status::Ok
    })
}
