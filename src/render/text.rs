//! Human text: the few styles the reports use, each a no-op when colour is off, and the guard
//! every line passes before it reaches a terminal ([`terminal_safe`]).

/// The reports' styles (anstyle), collapsing to plain text when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    pub fn new(color: bool) -> Self {
        Style { color }
    }

    fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    pub fn good(&self, text: &str) -> String {
        self.paint(anstyle::AnsiColor::Green.on_default(), text)
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint(anstyle::AnsiColor::Yellow.on_default(), text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint(anstyle::AnsiColor::Red.on_default().bold(), text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(anstyle::Style::new().bold(), text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(anstyle::Style::new().dimmed(), text)
    }
}

/// The most bytes one value from a backup or a phone takes in text output (its escapes
/// included): a longer value is cut there and ends with `…` and its full length. JSON output
/// carries values whole.
pub const FIELD_MAX: usize = 1024;

/// The most bytes [`field`] adds past [`FIELD_MAX`]: the "… (N bytes in all)" ending.
pub const FIELD_SLACK: usize = 64;

/// One value from a backup or a phone (a name, a path, a message that quotes one) as a piece of
/// a line: every control character (newline and tab included), every character that reorders or
/// hides text (bidi controls, zero-width and other format characters, line and paragraph
/// separators) is shown as a visible escape (`\n`, `\r`, `\t`, else `\u{..}`), so the value
/// stays on its own line, cannot move the cursor or colour the rest of the page, and cannot
/// pass for one of our lines. Cut at [`FIELD_MAX`] bytes. Display only: a backslash in the value
/// is left as it is, so the exact value is the JSON's.
pub fn field(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(FIELD_MAX) + 16);
    for c in text.chars() {
        let before = out.len();
        push_visible(&mut out, c);
        if out.len() > FIELD_MAX {
            out.truncate(before);
            out.push_str(&format!(
                "… ({} bytes in all)",
                crate::units::human_count(text.len() as u64)
            ));
            break;
        }
    }
    out
}

/// [`field`] of an optional value, `missing` when there is none.
pub fn field_or(value: Option<&str>, missing: &str) -> String {
    value.map_or_else(|| missing.to_string(), field)
}

/// Whether `c` must not reach a terminal as it is inside a value: control characters (C0, DEL,
/// C1), and the format characters that reorder or hide text or break a line.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{0600}'..='\u{0605}' | '\u{06DD}'
            | '\u{070F}' | '\u{08E2}' | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Appends `c` as it is shown inside a value.
fn push_visible(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// Text as it may reach a terminal: the last guard every printed page passes, after each value
/// in it went through [`field`]. Escape sequences and invisible characters are shown as
/// `\u{..}`; kept as they are: newlines, tabs, and the colour sequences [`Style`] writes
/// (`ESC [ digits and ; m`), which can only colour text.
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            if let Some(len) = colour_sequence_len(rest) {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        if is_hidden(c) && c != '\n' && c != '\t' {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The length of an SGR (colour) sequence at the start of `text`: ESC, `[`, digits and `;`, `m`.
fn colour_sequence_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix("\x1b[")?;
    let digits = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    (body.as_bytes().get(digits) == Some(&b'm')).then_some(2 + digits + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_colour_survives_of_the_escape_sequences() {
        let style = Style::new(true);
        let ours = format!("{} ok\n\tnext", style.bad("x"));
        assert_eq!(terminal_safe(&ours), ours);
        let hostile = "Robin\x1b]0;owned\x07\x1b[2J\r\u{202E}gnp.exe\x1b[1;31m!";
        let safe = terminal_safe(hostile);
        assert_eq!(
            safe,
            "Robin\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}\\u{202e}gnp.exe\x1b[1;31m!"
        );
        assert!(!safe.contains('\x07') && !safe.contains('\r'));
        // A lone escape at the end, and a colour sequence cut short.
        assert_eq!(terminal_safe("a\x1b"), "a\\u{1b}");
        assert_eq!(terminal_safe("\x1b[31"), "\\u{1b}[31");
    }

    #[test]
    fn a_value_stays_on_its_line_and_shows_what_it_hides() {
        let hostile = "a\nComplete: all\r\x08\t\x1b[31m\x1b]0;t\x07\u{9b}2J\u{85}\u{202e}\u{2066}\u{2069}\u{200b}\u{feff}\u{2028}z";
        assert_eq!(
            field(hostile),
            "a\\nComplete: all\\r\\u{8}\\t\\u{1b}[31m\\u{1b}]0;t\\u{7}\\u{9b}2J\\u{85}\\u{202e}\\u{2066}\\u{2069}\\u{200b}\\u{feff}\\u{2028}z"
        );
        // Ordinary names, accents, emoji and Windows paths are shown as they are.
        for plain in [
            "Robin's iPhone",
            "Zoë’s iPhone 📱",
            r"C:\Users\r\Backup",
            "日本語",
        ] {
            assert_eq!(field(plain), plain);
        }
        // What field() lets through, the line guard keeps as it is.
        assert_eq!(terminal_safe(&field(hostile)), field(hostile));
    }

    #[test]
    fn a_long_value_is_cut_with_its_full_length() {
        let long = "é".repeat(3_000_000);
        let shown = field(&long);
        assert!(shown.len() <= FIELD_MAX + FIELD_SLACK, "{}", shown.len());
        assert!(shown.ends_with("é… (6,000,000 bytes in all)"), "{shown}");
        // Escapes count towards the limit, and the cut never splits one.
        let controls = "\x1b".repeat(10_000);
        let shown = field(&controls);
        assert!(shown.len() <= FIELD_MAX + FIELD_SLACK);
        assert!(shown.ends_with("\\u{1b}… (10,000 bytes in all)"), "{shown}");
        // At the limit exactly, nothing is cut.
        let exact = "x".repeat(FIELD_MAX);
        assert_eq!(field(&exact), exact);
        assert!(field(&format!("{exact}x")).ends_with("… (1,025 bytes in all)"));
    }
}
