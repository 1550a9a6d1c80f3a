//! The text escaper every value from a backup or a phone passes before it is printed
//! (`render::text::field`), and the line guard every printed page passes (`terminal_safe`).
#![no_main]

use ibackup::render::text::{field, is_hidden, terminal_safe, FIELD_MAX, FIELD_SLACK};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Names reach the printer as text: paths through `display()`, plist strings as they are.
    let text = String::from_utf8_lossy(data);
    let shown = field(&text);
    // Nothing hidden is left: no control character at all (newline, tab, escape included), no
    // bidi, zero-width or other format character.
    assert!(!shown.chars().any(is_hidden), "{shown:?}");
    // Bounded: never past the cap, and never more than ten bytes for one input character.
    assert!(shown.len() <= FIELD_MAX + FIELD_SLACK, "{} bytes", shown.len());
    assert!(shown.len() <= 10 * text.len().max(1) + FIELD_SLACK);
    // A value under the cap is shown whole; a longer one says how long it was.
    if text.len() <= FIELD_MAX / 10 {
        assert!(!shown.contains("bytes in all") || text.contains("bytes in all"));
    }
    if shown.len() > FIELD_MAX {
        assert!(shown.ends_with(&format!(
            " ({} bytes in all)",
            ibackup::units::human_count(text.len() as u64)
        )));
    }
    // The line guard lets an escaped value through unchanged.
    assert_eq!(terminal_safe(&shown), shown);
    // And on anything, it leaves only newlines, tabs and colour sequences.
    let page = terminal_safe(&text);
    let mut rest = page.as_str();
    while let Some(at) = rest.find(|c: char| is_hidden(c) && c != '\n' && c != '\t') {
        let tail = &rest[at..];
        let colour = tail
            .strip_prefix("\x1b[")
            .map(|body| body.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';'))
            .is_some_and(|after| after.starts_with('m'));
        assert!(colour, "raw {:?} in {page:?}", tail.chars().next());
        rest = &tail[1..];
    }
});
