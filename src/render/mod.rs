//! Output for people and for programs: the colour policy, progress bars on stderr, human units,
//! and the one place that prints a failure. The per-command text lives in submodules; JSON is
//! the result types serialized as they are (schemas in docs/json.md).
//!
//! Every write to stdout goes through [`Output`], which remembers the first one that failed (a
//! full disk, `> /dev/full`): the run then ends with exit 2 and says so on stderr
//! ([`Output::write_failure`]). A reader that went away (`| head -1`, EPIPE) is not a failure:
//! printing stops quietly and the exit code stays the command's (docs/exit-codes.md). Writes to
//! stderr never fail a run: there is nowhere left to say so.

pub mod backup;
pub mod device;
pub mod diagnosis;
pub mod diff;
pub mod extract;
pub mod inspect;
pub mod ls;
pub mod report;
pub mod text;
pub mod verify;

pub use crate::units::{human_bytes, human_count};

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::outcome::Failure;

/// `--color`: whether text output may carry ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Whether `stream` gets colour: `always` and `never` as asked; `auto` as anstream decides from
/// the environment and the stream, in this order: NO_COLOR (set, not empty) means no colour;
/// else CLICOLOR_FORCE (set, not empty) means colour; else CLICOLOR=0 means none; else colour
/// only on a terminal whose TERM is set and not `dumb` (or with CLICOLOR=1, or under CI). On
/// Windows, anstream also knows which consoles take ANSI sequences.
fn use_color<S: anstream::stream::RawStream>(choice: ColorChoice, stream: &S) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never,
    }
}

/// How this run prints: chosen once from the flags and the terminal, passed to every command.
#[derive(Debug)]
pub struct Output {
    pub json: bool,
    pub color: bool,
    /// Whether failures on stderr are coloured (the same policy, asked of stderr).
    stderr_color: bool,
    pub quiet: bool,
    pub verbose: bool,
    /// Progress bars only where a person watches stderr.
    pub progress: bool,
    /// The first write to stdout that failed, other than a closed pipe.
    stdout_failed: RefCell<Option<std::io::Error>>,
}

impl Output {
    pub fn new(json: bool, color: ColorChoice, quiet: bool, verbose: bool) -> Self {
        Output {
            json,
            color: !json && use_color(color, &std::io::stdout()),
            stderr_color: !json && use_color(color, &std::io::stderr()),
            quiet,
            verbose,
            progress: !quiet && std::io::stderr().is_terminal(),
            stdout_failed: RefCell::new(None),
        }
    }

    /// Prints a serializable result as pretty JSON on stdout, every value exactly as it is.
    pub fn print_json<T: Serialize>(&self, value: &T) {
        self.to_stdout(|stdout| {
            serde_json::to_writer_pretty(&mut *stdout, value)?;
            writeln!(stdout)
        });
    }

    /// Prints a text page on stdout, through the terminal guard ([`text::terminal_safe`]).
    pub fn print_text(&self, text: &str) {
        let text = text::terminal_safe(text);
        if self.color {
            // Through anstream, which turns the colours into console calls on a Windows console
            // that does not take ANSI sequences. Without colour the bytes go out as they are.
            self.to_stdout(|stdout| {
                let mut stream = anstream::AutoStream::new(stdout, anstream::ColorChoice::Always);
                stream.write_all(text.as_bytes())
            });
        } else {
            self.to_stdout(|stdout| stdout.write_all(text.as_bytes()));
        }
    }

    /// Prints a generated file (a completion script, the man page) on stdout as it is.
    pub fn print_generated(&self, bytes: &[u8]) {
        self.to_stdout(|stdout| stdout.write_all(bytes));
    }

    /// Runs `write` on stdout and flushes it, remembering the first failure other than a closed
    /// pipe (after which nothing more is written).
    fn to_stdout(
        &self,
        write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
    ) {
        if self.stdout_failed.borrow().is_some() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        match write(&mut stdout).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                *self.stdout_failed.borrow_mut() = Some(e);
            }
            _ => {}
        }
    }

    /// What failed when stdout could not be written (not a closed pipe): the run must end with
    /// exit 2, whatever the command found.
    pub fn write_failure(&self) -> Option<Failure> {
        self.stdout_failed.borrow().as_ref().map(|e| {
            Failure::new(
                "output.unwritable",
                format!("cannot write the output: {e}"),
                "Check where standard output goes: a full disk, a file that cannot grow, or a \
                 device that refuses writes. Nothing printed before this can be trusted to be \
                 whole.",
            )
        })
    }

    /// Prints a failure: one paragraph on stderr, and in `--json` mode an error object on stdout
    /// so that a script reading stdout always gets JSON.
    pub fn failure(&self, failure: &Failure) {
        if self.json {
            self.print_json(&serde_json::json!({
                "schema": "ibackup.error/1",
                "error": { "code": failure.code, "message": failure.message, "hint": failure.hint },
            }));
        }
        let style = text::Style::new(self.stderr_color);
        let text = text::terminal_safe(&format!(
            "{} {}.\n{}\n",
            style.bad("error:"),
            text::field(&failure.message),
            textwrap_paragraph(&failure.hint)
        ));
        if self.stderr_color {
            // Through anstream, as coloured text on stdout is (a Windows console may need it).
            let stderr = std::io::stderr().lock();
            let mut stream = anstream::AutoStream::new(stderr, anstream::ColorChoice::Always);
            let _ = stream.write_all(text.as_bytes());
        } else {
            to_stderr(&text);
        }
    }

    /// A spinner on stderr saying what is being waited for, or a hidden one when nobody watches:
    /// for every wait whose length is not known (a bar would read 0/0).
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}

/// Many lines on stdout, buffered, for listings as long as a backup (`ls`): one line per call,
/// text through the terminal guard or one JSON object. Once stdout is closed (`| head`) or
/// fails, every later call returns false so the caller stops walking; a failure other than a
/// closed pipe is kept for [`Output::write_failure`], as for the other writes.
pub struct LineSink<'a> {
    out: &'a Output,
    writer: Option<std::io::BufWriter<std::io::StdoutLock<'static>>>,
}

impl Output {
    /// A [`LineSink`] on stdout (nothing is written after an earlier write failed).
    pub fn lines(&self) -> LineSink<'_> {
        let writer = self
            .stdout_failed
            .borrow()
            .is_none()
            .then(|| std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock()));
        LineSink { out: self, writer }
    }
}

impl LineSink<'_> {
    /// One line of text (a newline is added); false once nothing more can be written.
    pub fn text(&mut self, line: &str) -> bool {
        let line = text::terminal_safe(line);
        self.write(|w| {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")
        })
    }

    /// One JSON object on one line; false once nothing more can be written.
    pub fn json<T: Serialize>(&mut self, value: &T) -> bool {
        self.write(|w| {
            serde_json::to_writer(&mut *w, value)?;
            w.write_all(b"\n")
        })
    }

    /// Flushes what is buffered.
    pub fn finish(mut self) {
        self.write(|w| w.flush());
    }

    fn write(
        &mut self,
        f: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>) -> std::io::Result<()>,
    ) -> bool {
        let Some(writer) = self.writer.as_mut() else {
            return false;
        };
        match f(writer) {
            Ok(()) => true,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    *self.out.stdout_failed.borrow_mut() = Some(e);
                }
                // What is still buffered has nowhere to go: dropped without another write.
                if let Some(writer) = self.writer.take() {
                    let (_, _) = writer.into_parts();
                }
                false
            }
        }
    }
}

impl Drop for LineSink<'_> {
    fn drop(&mut self) {
        self.write(|w| w.flush());
    }
}

/// Tells the person what is awaited of them: on the spinner when one is drawn, else one line on
/// stderr (not at all with `--quiet`).
pub fn say_waiting(spinner: &ProgressBar, quiet: bool, message: &str) {
    if !spinner.is_hidden() {
        spinner.set_message(message.to_string());
    } else if !quiet {
        to_stderr(&format!("{message}...\n"));
    }
}

/// Writes to stderr. A failure there is ignored: there is nowhere left to report it, and it must
/// not become a panic (`eprintln!` panics).
pub(crate) fn to_stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn textwrap_paragraph(hint: &str) -> String {
    hint.lines()
        .map(|l| format!("  {}", text::field(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Drives an indicatif bar from the backup scan's progress callbacks: a spinner (from
/// [`Output::spinner`]) until the scan knows how many rows it reads, then a bar.
pub struct ScanProgress(pub ProgressBar);

impl crate::backup::verify::Progress for ScanProgress {
    fn start(&self, rows: u64) {
        if self.0.is_hidden() {
            return;
        }
        let style =
            ProgressStyle::with_template("{msg} {wide_bar} {human_pos}/{human_len} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        self.0.set_style(style);
        self.0.set_length(rows);
        self.0.set_position(0);
    }

    fn advance(&self, rows: u64) {
        self.0.inc(rows);
    }

    fn bytes_phase(&self, what: &str, total: u64) {
        if self.0.is_hidden() {
            return;
        }
        let style = ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} ({binary_bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        self.0.set_style(style);
        self.0.set_message(what.to_string());
        self.0.set_length(total);
        self.0.set_position(0);
    }
}
