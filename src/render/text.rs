//! Human text: the few styles the reports use, each a no-op when colour is off, and the guard
//! every line passes before it reaches a terminal ([`terminal_safe`]).

/// ANSI styling that collapses to plain text when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    pub fn new(color: bool) -> Self {
        Style { color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// Text as it may reach a terminal. Names from a backup or a phone can hold escape sequences that
/// would move the cursor, retitle the window or hide text, or characters that reorder a line;
/// each such character is shown as `\u{..}` instead. Kept as they are: newlines, tabs, and the
/// colour sequences [`Style`] writes (`ESC [ digits and ; m`), which can only colour text.
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
        let hidden = (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if hidden {
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
}
