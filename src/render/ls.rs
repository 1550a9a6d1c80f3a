//! What `ibackup ls` prints: one line per listed file (text), or one JSON object per line
//! (`ibackup.ls/1`, docs/json.md), and the closing tally. Every name from the backup passes
//! through [`field`], so a hostile path cannot reach the terminal as anything but text.

use serde::Serialize;

use super::text::field;
use crate::backup::catalog::{Entry, Kind, State};
use crate::units::{human_bytes, human_count, plural};

pub const LS_SCHEMA: &str = "ibackup.ls/1";

/// The tally of one listing.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LsSummary {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Files listed (symlinks not counted) and their stated bytes.
    pub files: u64,
    pub bytes: u64,
    pub present: u64,
    pub missing: u64,
    pub wrong_size: u64,
    pub unreadable: u64,
    /// Records that could not be decoded (size and time unknown).
    pub damaged: u64,
    pub symlinks: u64,
}

impl LsSummary {
    pub fn new() -> Self {
        LsSummary {
            schema: LS_SCHEMA,
            kind: "summary",
            ..LsSummary::default()
        }
    }

    pub fn add(&mut self, entry: &Entry<'_>) {
        if entry.kind == Kind::Symlink {
            self.symlinks += 1;
            return;
        }
        self.files += 1;
        self.bytes += entry.size;
        if entry.damaged.is_some() {
            self.damaged += 1;
        }
        match entry.state {
            State::Present => self.present += 1,
            State::Missing => self.missing += 1,
            State::WrongSize { .. } => self.wrong_size += 1,
            State::Unreadable => self.unreadable += 1,
            State::NoBlob => {}
        }
    }

    /// Some listed file is not there whole.
    pub fn has_gaps(&self) -> bool {
        self.missing + self.wrong_size + self.unreadable + self.damaged > 0
    }
}

/// One `--json` line.
#[derive(Serialize)]
pub struct LsLine<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub domain: std::borrow::Cow<'a, str>,
    pub path: std::borrow::Cow<'a, str>,
    pub size: u64,
    /// RFC 3339, UTC; null when the record has no time.
    pub modified: Option<String>,
    /// present, missing, wrong_size, unreadable; null for a symlink.
    pub state: Option<&'static str>,
    /// The blob's length when it is not the one the record implies.
    pub on_disk_bytes: Option<u64>,
    pub file_id: String,
    /// A symlink's recorded target.
    pub target: Option<String>,
    /// Why the record could not be decoded.
    pub damaged: Option<&'a str>,
}

/// Files and symlinks are listed; directories are only structure.
pub fn is_listed(entry: &Entry<'_>) -> bool {
    matches!(entry.kind, Kind::File | Kind::Symlink)
}

fn modified(entry: &Entry<'_>, format: &str) -> Option<String> {
    entry
        .modified
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format(format).to_string())
}

pub fn json_line<'a>(entry: &'a Entry<'a>) -> LsLine<'a> {
    let symlink = entry.kind == Kind::Symlink;
    LsLine {
        kind: if symlink { "symlink" } else { "file" },
        domain: entry.domain_text(),
        path: entry.path_text(),
        size: entry.size,
        modified: modified(entry, "%Y-%m-%dT%H:%M:%SZ"),
        state: (!symlink).then(|| state_word(entry)),
        on_disk_bytes: match entry.state {
            State::WrongSize { on_disk } => Some(on_disk),
            _ => None,
        },
        file_id: crate::backup::blobs::file_id_hex(&entry.file_id),
        target: entry
            .target
            .as_ref()
            .map(|t| String::from_utf8_lossy(t).into_owned()),
        damaged: entry.damaged.as_deref(),
    }
}

fn state_word(entry: &Entry<'_>) -> &'static str {
    if entry.damaged.is_some() && entry.state == State::Present {
        return "damaged";
    }
    entry.state.word()
}

/// One text line: state, size, modified time (UTC), domain, path.
pub fn text_line(entry: &Entry<'_>) -> String {
    let (state, size) = if entry.kind == Kind::Symlink {
        ("link", String::from("-"))
    } else {
        (state_word(entry), human_bytes(entry.size))
    };
    let when = modified(entry, "%Y-%m-%d %H:%M").unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{state:<10} {size:>9}  {when:<16}  {}  {}",
        field(&entry.domain_text()),
        field(&entry.path_text())
    );
    if let Some(target) = &entry.target {
        line.push_str(" -> ");
        line.push_str(&field(&String::from_utf8_lossy(target)));
    }
    if let State::WrongSize { on_disk } = entry.state {
        line.push_str(&format!(" ({} on disk)", human_bytes(on_disk)));
    }
    line
}

/// The closing line (on stderr, so it never mixes with the listing a pipe reads).
pub fn summary_text(s: &LsSummary) -> String {
    let mut text = format!(
        "{}, {}",
        plural(s.files, "file", "files"),
        human_bytes(s.bytes)
    );
    let gaps: Vec<String> = [
        (s.missing, "missing"),
        (s.wrong_size, "of the wrong size"),
        (s.unreadable, "unreadable"),
        (s.damaged, "with a damaged record"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{} {what}", human_count(*n)))
    .collect();
    if gaps.is_empty() {
        text.push_str(", all present");
    } else {
        text.push_str(&format!("; {}", gaps.join(", ")));
    }
    if s.symlinks > 0 {
        text.push_str(&format!("; {}", plural(s.symlinks, "symlink", "symlinks")));
    }
    text.push('\n');
    text
}
