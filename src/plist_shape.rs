//! Checks a plist's shape before the plist crate builds a value tree from it: that crate
//! recurses, so a deeply nested plist would overflow the stack, and a binary plist that reuses
//! objects can expand enormously. Used for everything read from a phone or a backup folder.
//! Also here: [`describe`], which says in plain words why the plist crate refused a plist (its
//! own messages are Rust debug text, not for people).

/// Deepest nesting accepted (real messages and backup plists nest five levels at most).
pub const MAX_PLIST_DEPTH: usize = 32;
/// Most values accepted in one plist (a binary plist can reuse objects to expand enormously).
pub const MAX_PLIST_EVENTS: usize = 1 << 18;

/// Ok when `bytes` (XML or binary) nest at most [`MAX_PLIST_DEPTH`] levels and hold at most
/// [`MAX_PLIST_EVENTS`] values; otherwise what is wrong, in words.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.starts_with(b"bplist00") {
        check_binary_shape(bytes)
    } else {
        check_xml_shape(bytes)
    }
}

/// Why the plist crate could not read a plist, in words a person can read: that it ends too
/// early, the I/O error that stopped it, or that it is malformed, with the byte offset where the
/// crate gives one.
pub fn describe(error: &plist::Error) -> String {
    if error.is_eof() {
        return "it ends before its content is complete".to_string();
    }
    if let Some(io) = error.as_io() {
        return format!("it could not be read: {io}");
    }
    // The crate's text is its error kind in debug form, then "(offset N)" when it knows where.
    let text = error.to_string();
    let offset = text
        .rsplit_once("(offset ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .and_then(|n| n.parse::<u64>().ok());
    match offset {
        Some(at) => format!("its content is malformed at byte {at}"),
        None => "its content is malformed".to_string(),
    }
}

fn too_deep() -> String {
    format!("nested deeper than {MAX_PLIST_DEPTH} levels")
}

fn too_many() -> String {
    format!("more than {MAX_PLIST_EVENTS} values")
}

/// Counts `<array>`/`<dict>` nesting and elements in XML without parsing it.
fn check_xml_shape(bytes: &[u8]) -> Result<(), String> {
    let (mut depth, mut elements) = (0usize, 0usize);
    let mut rest = bytes;
    while let Some(start) = rest.iter().position(|&b| b == b'<') {
        rest = &rest[start + 1..];
        let end = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
        let tag = &rest[..end];
        let name_end = tag
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/' && tag.first() != Some(&b'/'))
            .unwrap_or(tag.len());
        let name = &tag[..name_end];
        let self_closing = tag.last() == Some(&b'/');
        match name {
            b"/array" | b"/dict" => depth = depth.saturating_sub(1),
            b"array" | b"dict" if !self_closing => {
                depth += 1;
                if depth > MAX_PLIST_DEPTH {
                    return Err(too_deep());
                }
            }
            _ => {}
        }
        if !name.starts_with(b"/") {
            elements += 1;
            if elements > MAX_PLIST_EVENTS {
                return Err(too_many());
            }
        }
        rest = &rest[end.min(rest.len())..];
    }
    Ok(())
}

/// Walks a binary plist's containers with an explicit stack: depth and visits are bounded, so
/// cycles and shared-object explosions are refused. [Apple CF CFBinaryPList.c trailer layout]
fn check_binary_shape(bytes: &[u8]) -> Result<(), String> {
    let bad = || "a malformed binary plist".to_string();
    let uint = |at: usize, width: usize| -> Option<u64> {
        let chunk = bytes.get(at..at.checked_add(width)?)?;
        Some(chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    let trailer = bytes.len().checked_sub(32).ok_or_else(bad)?;
    let offset_width = usize::from(bytes[trailer + 6]);
    let ref_width = usize::from(bytes[trailer + 7]);
    let count = uint(trailer + 8, 8).ok_or_else(bad)?;
    let top = uint(trailer + 16, 8).ok_or_else(bad)?;
    let table = usize::try_from(uint(trailer + 24, 8).ok_or_else(bad)?).map_err(|_| bad())?;
    if !(1..=8).contains(&offset_width) || !(1..=8).contains(&ref_width) || top >= count {
        return Err(bad());
    }
    let object_at = |index: u64| -> Option<usize> {
        let slot = table.checked_add(usize::try_from(index).ok()?.checked_mul(offset_width)?)?;
        if slot.checked_add(offset_width)? > trailer || index >= count {
            return None;
        }
        usize::try_from(uint(slot, offset_width)?)
            .ok()
            .filter(|&at| at < trailer)
    };
    let mut stack = vec![(top, 1usize)];
    let mut visits = 0usize;
    while let Some((index, depth)) = stack.pop() {
        visits += 1;
        if visits > MAX_PLIST_EVENTS {
            return Err(too_many());
        }
        let at = object_at(index).ok_or_else(bad)?;
        let marker = bytes[at];
        let refs_per_item = match marker >> 4 {
            0xA | 0xC => 1,
            0xD => 2,
            _ => continue,
        };
        if depth >= MAX_PLIST_DEPTH {
            return Err(too_deep());
        }
        let (items, header) = if marker & 0x0f == 0x0f {
            let int_marker = *bytes.get(at + 1).ok_or_else(bad)?;
            let width = 1usize << (int_marker & 0x0f).min(3);
            (uint(at + 2, width).ok_or_else(bad)?, 2 + width)
        } else {
            (u64::from(marker & 0x0f), 1)
        };
        let refs = usize::try_from(items)
            .map_err(|_| bad())?
            .checked_mul(refs_per_item)
            .ok_or_else(bad)?;
        if refs > MAX_PLIST_EVENTS {
            return Err(too_many());
        }
        for i in 0..refs {
            let child = uint(at + header + i * ref_width, ref_width).ok_or_else(bad)?;
            stack.push((child, depth + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_described_in_plain_words() {
        let cases: [&[u8]; 4] = [
            b"<plist><dict><key>a</key>",
            b"<?xml version=\"1.0\"?><plist><string>x</string><string>y</string></plist>",
            b"bplist00\xff\xff",
            b"not a plist at all",
        ];
        for bytes in cases {
            let error =
                plist::Value::from_reader(std::io::Cursor::new(bytes)).expect_err("a broken plist");
            let text = describe(&error);
            assert!(
                text.starts_with("it"),
                "{text:?} for {:?}",
                String::from_utf8_lossy(bytes)
            );
            assert!(
                !text.contains('{') && !text.contains("Expected") && !text.contains("Io("),
                "debug text leaked: {text:?} (from {error})"
            );
        }
    }

    #[test]
    fn shapes_within_bounds_pass() {
        assert!(check(b"<plist><dict><key>a</key><string>b</string></dict></plist>").is_ok());
        let deep = "<array>".repeat(MAX_PLIST_DEPTH + 2);
        assert!(check(deep.as_bytes()).is_err());
    }
}
