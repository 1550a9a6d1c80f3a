//! Which files a command looks at: `--domain`, `--app BUNDLE`, `--category` and a name PATTERN,
//! as one [`Selection`] tested against a domain and a relative path (pure). `ls`, `extract` and
//! `diff` choose files through it, and `inspect`'s per-app sizes use [`app_of_domain`], so a
//! file belongs to the same app everywhere.
//!
//! Apps: `AppDomain-<bundle>` is the app's own container; `AppDomainPlugin-<id>` an extension;
//! `AppDomainGroup-group.<id>` (or `-<team id>.groups.<id>`) a container shared by a vendor's
//! apps. An extension or group belongs to the app whose bundle id is a dot-separated prefix of
//! its id (the longest such one): `AppDomainPlugin-net.whatsapp.WhatsApp.Share` and
//! `AppDomainGroup-group.net.whatsapp.WhatsApp.shared` are WhatsApp's. A group no app's id
//! prefixes (`group.net.whatsapp.family`) stays on its own: nothing says which app it serves.
//!
//! PATTERN is a glob on the relative path, ASCII case-insensitive (`IMG_0001.JPG` and `*.jpg`
//! meet): `*` any run of characters, `/` included; `?` one character; anything else itself. A
//! pattern with no `*` or `?` matches a path that contains it.

use super::contents::{category_of, Category};

/// What part of an app a domain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppPart {
    /// `AppDomain-`: the app's container.
    Container,
    /// `AppDomainPlugin-`: an extension.
    Plugin,
    /// `AppDomainGroup-`: a shared container.
    Group,
}

/// The id a domain names and what part of an app it is: `AppDomainGroup-group.a.b` gives
/// (`a.b`, Group), the `group.` prefix dropped. None for the system's domains.
pub fn app_domain(domain: &str) -> Option<(&str, AppPart)> {
    if let Some(id) = domain.strip_prefix("AppDomainGroup-") {
        Some((group_id(id), AppPart::Group))
    } else if let Some(id) = domain.strip_prefix("AppDomainPlugin-") {
        Some((id, AppPart::Plugin))
    } else {
        domain
            .strip_prefix("AppDomain-")
            .map(|id| (id, AppPart::Container))
    }
}

/// A group's id without its prefix: `group.` (most groups), or a 10-character team id and
/// `.groups.` (`243LU875E5.groups.com.apple.podcasts`, as some of Apple's apps name theirs).
fn group_id(id: &str) -> &str {
    if let Some(rest) = id.strip_prefix("group.") {
        return rest;
    }
    match id.split_at_checked(10) {
        Some((team, rest)) if team.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            rest.strip_prefix(".groups.").unwrap_or(id)
        }
        _ => id,
    }
}

/// `bundle` is `id` or a dot-separated prefix of it.
pub fn is_dot_prefix(bundle: &str, id: &str) -> bool {
    !bundle.is_empty()
        && id.len() >= bundle.len()
        && id.as_bytes()[..bundle.len()].eq_ignore_ascii_case(bundle.as_bytes())
        && (id.len() == bundle.len() || id.as_bytes()[bundle.len()] == b'.')
}

/// The app (among `apps`, bundle ids) that `domain` belongs to: its container, or the longest
/// bundle id that is a dot-prefix of an extension's or group's id. None for system domains and
/// for groups and extensions no listed app prefixes.
pub fn app_of_domain<'a>(domain: &str, apps: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let (id, part) = app_domain(domain)?;
    let mut best: Option<&'a str> = None;
    for app in apps {
        let fits = match part {
            AppPart::Container => app.eq_ignore_ascii_case(id),
            AppPart::Plugin | AppPart::Group => is_dot_prefix(app, id),
        };
        if fits && best.is_none_or(|b| app.len() > b.len()) {
            best = Some(app);
        }
    }
    best
}

/// The files a command is asked about. Empty fields select everything.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--domain`: the exact domain (case-insensitive).
    pub domain: Option<String>,
    /// `--app`: the app's container, and its extensions and groups (dot-prefix rule above).
    pub app: Option<String>,
    /// `--category`: any of these (empty: no category filter).
    pub categories: Vec<Category>,
    /// PATTERN, on the relative path.
    pub pattern: Option<String>,
}

impl Selection {
    pub fn is_everything(&self) -> bool {
        self.domain.is_none()
            && self.app.is_none()
            && self.categories.is_empty()
            && self.pattern.is_none()
    }

    /// Whether the file `domain`/`relative_path` is selected.
    pub fn matches(&self, domain: &[u8], relative_path: &[u8]) -> bool {
        if let Some(want) = &self.domain {
            if !domain.eq_ignore_ascii_case(want.as_bytes()) {
                return false;
            }
        }
        if let Some(bundle) = &self.app {
            let Ok(domain) = std::str::from_utf8(domain) else {
                return false;
            };
            let fits = match app_domain(domain) {
                Some((id, AppPart::Container)) => id.eq_ignore_ascii_case(bundle),
                Some((id, _)) => is_dot_prefix(bundle, id),
                None => false,
            };
            if !fits {
                return false;
            }
        }
        if !self.categories.is_empty() {
            match category_of(domain, relative_path) {
                Some(c) if self.categories.contains(&c) => {}
                _ => return false,
            }
        }
        match &self.pattern {
            Some(p) => glob_matches(p.as_bytes(), relative_path),
            None => true,
        }
    }
}

/// PATTERN against `text` (module doc). Iterative, with one backtrack point: linear in
/// practice and never worse than len(pattern) x len(text), whatever the pattern.
pub fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    if !pattern.iter().any(|&c| c == b'*' || c == b'?') {
        return pattern.is_empty()
            || text
                .windows(pattern.len())
                .any(|w| w.eq_ignore_ascii_case(pattern));
    }
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len()
            && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&text[t]))
            && pattern[p] != b'*'
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches(b"*.jpg", b"Media/DCIM/100APPLE/IMG_0001.JPG"));
        assert!(glob_matches(
            b"Media/*/IMG_????.*",
            b"Media/DCIM/IMG_0001.HEIC"
        ));
        assert!(!glob_matches(b"*.jpg", b"Media/a.jpeg"));
        assert!(glob_matches(b"sms", b"Library/SMS/sms.db"));
        assert!(!glob_matches(b"a?c", b"abbc"));
        assert!(glob_matches(b"*", b""));
        assert!(glob_matches(b"**a*b*c**", b"xxaxxbxxc"));
        // No blow-up on a pattern built to backtrack.
        let text = vec![b'a'; 5000];
        assert!(!glob_matches(b"*a*a*a*a*a*a*a*b", &text));
    }

    #[test]
    fn apps_own_their_extensions_and_groups() {
        let apps = [
            "net.whatsapp.WhatsApp",
            "net.whatsapp",
            "com.apple.mobilenotes",
        ];
        let of = |d| app_of_domain(d, apps.iter().copied());
        assert_eq!(
            of("AppDomain-net.whatsapp.WhatsApp"),
            Some("net.whatsapp.WhatsApp")
        );
        assert_eq!(
            of("AppDomainPlugin-net.whatsapp.WhatsApp.ShareExtension"),
            Some("net.whatsapp.WhatsApp")
        );
        assert_eq!(
            of("AppDomainGroup-group.net.whatsapp.WhatsApp.shared"),
            Some("net.whatsapp.WhatsApp")
        );
        assert_eq!(
            of("AppDomainGroup-group.net.whatsapp.family"),
            Some("net.whatsapp")
        );
        assert_eq!(of("AppDomainGroup-group.org.other"), None);
        assert_eq!(
            app_of_domain(
                "AppDomainGroup-243LU875E5.groups.com.apple.podcasts",
                ["com.apple.podcasts"]
            ),
            Some("com.apple.podcasts")
        );
        assert_eq!(
            app_domain("AppDomainGroup-243LU875E5.groupsX.a"),
            Some(("243LU875E5.groupsX.a", AppPart::Group))
        );
        assert_eq!(of("HomeDomain"), None);
        assert_eq!(of("AppDomain-net.whatsapp.WhatsAppX"), None);
        assert!(!is_dot_prefix("net.whats", "net.whatsapp"));
    }

    #[test]
    fn selections() {
        let s = Selection {
            app: Some("net.whatsapp.WhatsApp".into()),
            pattern: Some("*.sqlite".into()),
            ..Selection::default()
        };
        assert!(s.matches(
            b"AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
            b"ChatStorage.sqlite"
        ));
        assert!(!s.matches(b"AppDomain-com.other", b"ChatStorage.sqlite"));
        assert!(!s.matches(b"AppDomain-net.whatsapp.WhatsApp", b"Library/Prefs.plist"));
        let messages = Selection {
            categories: vec![Category::Messages],
            ..Selection::default()
        };
        assert!(messages.matches(b"HomeDomain", b"Library/SMS/sms.db"));
        assert!(!messages.matches(b"HomeDomain", b"Library/Notes/notes.sqlite"));
        assert!(Selection::default().is_everything());
    }
}
