//! Where each extracted file goes inside DIR, as a relative path of checked components (pure).
//! The default layout is `<domain>/<relativePath>`; with `--category` each category has a folder
//! named for people (`Messages/sms.db`, `Messages/Attachments/...`, `Photos/100APPLE/...`) and,
//! when two files would meet at one name, the second keeps its domain layout under that folder.
//! Every name from a backup is checked here before it can become a path: `..`, `.`, empty
//! components, absolute paths, NUL, backslashes, drive prefixes and over-long components are
//! refused with the reason.

use crate::backup::contents::{category_of, Category};

/// The longest file name (one component) most file systems take.
pub const MAX_COMPONENT: usize = 255;

/// The folder a category's files go to with `--category`: its label, short enough for a
/// folder name.
pub fn category_folder(category: Category) -> &'static str {
    match category {
        Category::Keychain => "Keychain",
        other => other.label(),
    }
}

/// The part of a category's paths that says nothing to a person, stripped in the readable
/// layout (the first that fits).
fn stripped_prefixes(category: Category) -> &'static [&'static str] {
    match category {
        Category::Messages => &["Library/SMS/"],
        Category::Photos => &["Media/DCIM/", "Media/"],
        Category::Contacts => &["Library/AddressBook/"],
        Category::Notes => &["Library/Notes/"],
        Category::CallHistory => &["Library/CallHistoryDB/", "Library/CallHistory/"],
        Category::Whatsapp | Category::Health | Category::Keychain => &[],
    }
}

/// Checks one component of a name from the backup.
fn check_component(component: &str) -> Result<(), &'static str> {
    match component {
        "" => Err("it has an empty component (an absolute path or a doubled or trailing /)"),
        "." => Err("it has a . component"),
        ".." => Err("it has a .. component"),
        c if c.len() > MAX_COMPONENT => Err("a component is longer than 255 bytes"),
        c if c.contains('\0') => Err("it contains a NUL character"),
        c if c.contains('\\') => Err("it contains a backslash"),
        c if cfg!(windows) && !windows_safe(c) => {
            Err("a component is not a valid Windows file name")
        }
        _ => Ok(()),
    }
}

/// Whether a component is a name Windows can hold as it is: no reserved characters or
/// controls, no trailing dot or space, no device name (CON, NUL, COM1...).
fn windows_safe(component: &str) -> bool {
    const RESERVED: &[&str] = &["CON", "PRN", "AUX", "NUL"];
    if component
        .chars()
        .any(|c| c < ' ' || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*'))
        || component.ends_with('.')
        || component.ends_with(' ')
    {
        return false;
    }
    let stem = component
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let numbered = (stem.starts_with("COM") || stem.starts_with("LPT"))
        && stem.len() == 4
        && stem.as_bytes()[3].is_ascii_digit();
    !(RESERVED.contains(&stem.as_str()) || numbered)
}

/// A drive prefix (`C:`) at the start: Windows would take it for another disk.
fn has_drive_prefix(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Checks a relative path from the backup, component by component.
pub fn check_relative(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the file has no name");
    }
    if path.starts_with('/') {
        return Err("it is an absolute path");
    }
    if has_drive_prefix(path) {
        return Err("it starts with a drive prefix");
    }
    path.split('/').try_for_each(check_component)
}

/// Checks a domain: one component.
pub fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.contains('/') {
        return Err("its domain contains a /");
    }
    if has_drive_prefix(domain) {
        return Err("its domain starts with a drive prefix");
    }
    check_component(domain).map_err(|_| "its domain is not a usable folder name")
}

/// Where a file goes in the default layout, or why it may not be written.
pub fn domain_target(domain: &[u8], path: &[u8]) -> Result<String, &'static str> {
    let (Ok(domain), Ok(path)) = (std::str::from_utf8(domain), std::str::from_utf8(path)) else {
        return Err("its name is not valid UTF-8");
    };
    check_domain(domain)?;
    check_relative(path)?;
    Ok(format!("{domain}/{path}"))
}

/// Where a file goes in the readable layout: the short name first, and its domain layout under
/// the category folder for when the short name is taken. `None` when the file has no category.
pub fn category_targets(
    domain: &[u8],
    path: &[u8],
) -> Option<Result<(String, String), &'static str>> {
    let category = category_of(domain, path)?;
    let folder = category_folder(category);
    Some(domain_target(domain, path).map(|fallback| {
        // `path` is valid UTF-8 once domain_target accepted it.
        let text = std::str::from_utf8(path).unwrap_or_default();
        let short = stripped_prefixes(category)
            .iter()
            .find_map(|p| text.strip_prefix(p))
            .filter(|rest| !rest.is_empty())
            .unwrap_or(text);
        (format!("{folder}/{short}"), format!("{folder}/{fallback}"))
    }))
}

/// The folder part and the file name of a target.
pub fn split(target: &str) -> (&str, &str) {
    match target.rfind('/') {
        Some(at) => (&target[..at], &target[at + 1..]),
        None => ("", target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for path in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a/",
            "",
            "a\\b",
            "C:x",
            "a\0b",
        ] {
            assert!(
                domain_target(b"HomeDomain", path.as_bytes()).is_err(),
                "{path:?}"
            );
        }
        for domain in ["HomeDomain/../Evil", "..", ".", "", "a\\b", "C:"] {
            assert!(
                domain_target(domain.as_bytes(), b"x").is_err(),
                "{domain:?}"
            );
        }
        let long = "x".repeat(256);
        assert!(domain_target(b"HomeDomain", long.as_bytes()).is_err());
        assert!(domain_target(b"HomeDomain", &long.as_bytes()[..255]).is_ok());
        assert!(domain_target(b"HomeDomain", b"\xff").is_err());
        assert_eq!(
            domain_target(b"HomeDomain", b"Library/SMS/sms.db").unwrap(),
            "HomeDomain/Library/SMS/sms.db"
        );
    }

    #[test]
    fn readable_layout() {
        let t = |d: &str, p: &str| {
            category_targets(d.as_bytes(), p.as_bytes())
                .unwrap()
                .unwrap()
        };
        assert_eq!(t("HomeDomain", "Library/SMS/sms.db").0, "Messages/sms.db");
        assert_eq!(
            t("MediaDomain", "Library/SMS/Attachments/ab/01/IMG.jpeg").0,
            "Messages/Attachments/ab/01/IMG.jpeg"
        );
        assert_eq!(
            t("CameraRollDomain", "Media/DCIM/100APPLE/IMG_0001.HEIC").0,
            "Photos/100APPLE/IMG_0001.HEIC"
        );
        assert_eq!(
            t("CameraRollDomain", "Media/PhotoData/Photos.sqlite").0,
            "Photos/PhotoData/Photos.sqlite"
        );
        assert_eq!(
            t("HomeDomain", "Library/CallHistoryDB/CallHistory.storedata").0,
            "Call history/CallHistory.storedata"
        );
        assert_eq!(
            t("AppDomain-net.whatsapp.WhatsApp", "Documents/a").1,
            "WhatsApp/AppDomain-net.whatsapp.WhatsApp/Documents/a"
        );
        assert!(category_targets(b"HomeDomain", b"Library/Other").is_none());
    }

    #[test]
    fn windows_names() {
        assert!(!windows_safe("con.txt"));
        assert!(!windows_safe("COM1"));
        assert!(!windows_safe("a:b"));
        assert!(!windows_safe("a."));
        assert!(windows_safe("COMPUTER.txt"));
        assert!(windows_safe("IMG_0001.HEIC"));
    }
}
