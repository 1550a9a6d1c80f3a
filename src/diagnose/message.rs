//! The words iOS showed, matched forgivingly: case, quotes, punctuation and small typos do not
//! matter. Each recognised message steers the order of the fixes the way the troubleshooting
//! guide orders them (../shared/reference/icloud-backup-fixes.md).

use serde::Serialize;

/// A message iOS shows when an iCloud backup fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    StorageFull,
    NeedsRestart,
    CouldNotComplete,
    StuckAtZero,
    Preparing,
    PausesOvernight,
}

/// Phrases people type for each message, normalized (lowercase, no punctuation).
const PHRASES: &[(Message, &str)] = &[
    (Message::StorageFull, "not enough icloud storage"),
    (Message::StorageFull, "icloud storage full"),
    (Message::StorageFull, "icloud storage is full"),
    (Message::StorageFull, "not enough storage"),
    (Message::NeedsRestart, "backup needs restart"),
    (Message::NeedsRestart, "needs restart"),
    (
        Message::CouldNotComplete,
        "last backup could not be completed",
    ),
    (Message::CouldNotComplete, "backup could not be completed"),
    (Message::CouldNotComplete, "could not be completed"),
    (Message::StuckAtZero, "stuck at 0%"),
    (Message::StuckAtZero, "0%"),
    (Message::StuckAtZero, "stuck at zero"),
    (Message::StuckAtZero, "zero percent"),
    (Message::Preparing, "preparing"),
    (Message::Preparing, "stuck on preparing"),
    (Message::Preparing, "preparing backup"),
    (Message::PausesOvernight, "paused"),
    (Message::PausesOvernight, "pauses overnight"),
    (Message::PausesOvernight, "backup paused"),
];

impl Message {
    /// A stable code for findings: `message.<name>`.
    pub fn code(self) -> &'static str {
        match self {
            Message::StorageFull => "message.storage_full",
            Message::NeedsRestart => "message.needs_restart",
            Message::CouldNotComplete => "message.could_not_complete",
            Message::StuckAtZero => "message.stuck_at_zero",
            Message::Preparing => "message.preparing",
            Message::PausesOvernight => "message.pauses_overnight",
        }
    }

    /// What the message means, in a sentence.
    pub fn meaning(self) -> &'static str {
        match self {
            Message::StorageFull => "iCloud has no room for the backup, so it never started.",
            Message::NeedsRestart => "The previous backup session hung part way through.",
            Message::CouldNotComplete => {
                "A backup started but stopped before iOS could write its final manifest; a \
                 half-finished backup cannot be restored."
            }
            Message::StuckAtZero => {
                "A backup that never leaves 0% is waiting for Wi-Fi, power, or an Apple ID \
                 sign-in it has not shown."
            }
            Message::Preparing => {
                "Backups stuck on \"Preparing\" were a known iOS bug, fixed in iOS 26.1."
            }
            Message::PausesOvernight => {
                "Overnight backups that pause and never resume were a known bug of iOS 18.0, \
                 fixed in iOS 18.0.1; the other causes are Wi-Fi and power."
            }
        }
    }

    /// The fixes in the order the guide tries them for this message.
    pub fn fix_order(self) -> &'static [&'static str] {
        match self {
            Message::StorageFull => &["icloud-storage", "finder-backup"],
            Message::NeedsRestart => &["backup-restart", "wifi-power", "finder-backup"],
            Message::CouldNotComplete => &[
                "delete-and-redo",
                "icloud-storage",
                "wifi-power",
                "finder-backup",
            ],
            Message::StuckAtZero => &["wifi-power", "apple-id", "icloud-storage", "finder-backup"],
            Message::Preparing => &["update-ios", "wifi-power", "finder-backup"],
            Message::PausesOvernight => &["update-ios", "wifi-power", "finder-backup"],
        }
    }
}

/// Lowercase words, with quotes and punctuation dropped ('%' kept: "0%" is a message).
fn normalize(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '%' {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// How far `phrase` is from the closest run of words in `text`, relative to its length
/// (0 = it is there as typed).
fn closeness(text: &[&str], phrase: &str) -> f64 {
    let words = phrase.split(' ').count();
    let mut best = f64::MAX;
    for width in words.saturating_sub(1).max(1)..=words + 1 {
        for start in 0..text.len().saturating_sub(width - 1).max(1) {
            let end = (start + width).min(text.len());
            let window = text[start..end].join(" ");
            let d = distance(&window, phrase) as f64 / phrase.chars().count() as f64;
            best = best.min(d);
        }
    }
    best
}

/// The message `text` stands for, if any: the closest phrase within one edit in five characters.
/// Short phrases (under 8 characters, like "0%") must appear exactly.
pub fn recognize(text: &str) -> Option<Message> {
    let normalized = normalize(text);
    let words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return None;
    }
    PHRASES
        .iter()
        .map(|&(message, phrase)| {
            let score = if phrase.len() < 8 {
                if words.contains(&phrase) {
                    0.0
                } else {
                    f64::MAX
                }
            } else {
                closeness(&words, phrase)
            };
            (score, message)
        })
        .filter(|(score, _)| *score <= 0.2)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, message)| message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_messages() {
        assert_eq!(
            recognize("Not Enough iCloud Storage"),
            Some(Message::StorageFull)
        );
        assert_eq!(
            recognize("Backup needs restart"),
            Some(Message::NeedsRestart)
        );
        assert_eq!(
            recognize("Last backup could not be completed"),
            Some(Message::CouldNotComplete)
        );
        assert_eq!(recognize("stuck at 0%"), Some(Message::StuckAtZero));
        assert_eq!(recognize("Preparing..."), Some(Message::Preparing));
    }

    #[test]
    fn forgiving_of_case_quotes_and_typos() {
        assert_eq!(
            recognize("“not enough icloud storage”"),
            Some(Message::StorageFull)
        );
        assert_eq!(
            recognize("Not enuogh iCloud storage"),
            Some(Message::StorageFull)
        );
        assert_eq!(
            recognize("'backup neds restart'"),
            Some(Message::NeedsRestart)
        );
        assert_eq!(
            recognize("BACKUP NEEDS RESTART!!"),
            Some(Message::NeedsRestart)
        );
        assert_eq!(
            recognize("last backup couldnt be completed"),
            Some(Message::CouldNotComplete)
        );
        assert_eq!(
            recognize("It says: The last backup could not be compelted."),
            Some(Message::CouldNotComplete)
        );
        assert_eq!(
            recognize("its stuck on preparing"),
            Some(Message::Preparing)
        );
        assert_eq!(
            recognize("the spinner stays at 0%"),
            Some(Message::StuckAtZero)
        );
    }

    #[test]
    fn unrelated_text_is_not_a_message() {
        assert_eq!(recognize("my phone is blue"), None);
        assert_eq!(recognize(""), None);
        assert_eq!(recognize("100% done"), None);
    }
}
