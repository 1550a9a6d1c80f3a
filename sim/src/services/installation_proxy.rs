//! com.apple.mobile.installation_proxy on the simulated phone, as much as a backup asks of it:
//! `Browse` lists the profile's apps (all user apps) in pages of [`PAGE`], each answer with
//! `Status: BrowsingApplications`, `CurrentIndex`, `CurrentAmount` (the length of its
//! `CurrentList`) and `Total`, then one `Status: Complete` (a client waits for it); `Lookup`
//! answers the apps asked for by bundle id. `ReturnAttributes` limits each app's keys to those
//! named; `ApplicationType` other than `User` or `Any` lists nothing. Anything else is answered
//! with an `Error`, as the phone does.
//!
//! [`answers`] is the message handling alone; [`serve`] runs it on a connection.

use std::time::Instant;

use plist::{Dictionary, Value};

use super::{send_plist, ServiceStream, SERVICE_IDLE};
use crate::profile::AppProfile;
use ibackup::device::lockdown::read_message_within;
use ibackup::device::DeviceError;

/// Apps per Browse answer: small, so that every client meets more than one page.
pub const PAGE: usize = 2;
/// The most names a ReturnAttributes or BundleIDs list may hold.
const MAX_LIST: usize = 256;

/// What the phone knows of one app.
fn app_attributes(app: &AppProfile) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("CFBundleIdentifier".into(), app.bundle_id.clone().into());
    d.insert("CFBundleDisplayName".into(), app.name.clone().into());
    d.insert("CFBundleName".into(), app.name.clone().into());
    d.insert(
        "CFBundleShortVersionString".into(),
        app.version.clone().into(),
    );
    d.insert("CFBundleVersion".into(), app.version.clone().into());
    d.insert("ApplicationType".into(), "User".into());
    d.insert(
        "Path".into(),
        format!(
            "/private/var/containers/Bundle/Application/{}/{}.app",
            app.bundle_id, app.name
        )
        .into(),
    );
    d
}

fn error(name: &str, description: String) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("Error".into(), name.into());
    d.insert("ErrorDescription".into(), description.into());
    d
}

/// A list of strings from `options[key]`: `Ok(None)` when absent; an error when it is not a
/// list of at most [`MAX_LIST`] strings.
fn strings(options: &Dictionary, key: &str) -> Result<Option<Vec<String>>, Dictionary> {
    let Some(value) = options.get(key) else {
        return Ok(None);
    };
    let bad = || {
        error(
            "InvalidArgument",
            format!("{key} must be a list of at most {MAX_LIST} strings"),
        )
    };
    let list = value.as_array().ok_or_else(bad)?;
    if list.len() > MAX_LIST {
        return Err(bad());
    }
    list.iter()
        .map(|v| v.as_string().map(String::from).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The answers to one request, in order, and whether the client may send more.
pub fn answers(apps: &[AppProfile], request: &Dictionary) -> Vec<Dictionary> {
    let empty = Dictionary::new();
    let options = match request.get("ClientOptions") {
        None => &empty,
        Some(Value::Dictionary(d)) => d,
        Some(_) => {
            return vec![error(
                "InvalidArgument",
                "ClientOptions must be a dictionary".into(),
            )]
        }
    };
    let command = request.get("Command").and_then(Value::as_string);
    let (attributes, wanted) = match (
        strings(options, "ReturnAttributes"),
        strings(options, "BundleIDs"),
    ) {
        (Ok(a), Ok(w)) => (a, w),
        (Err(e), _) | (_, Err(e)) => return vec![e],
    };
    let user = match options.get("ApplicationType").map(Value::as_string) {
        None => true,
        Some(Some("User" | "Any")) => true,
        Some(Some(_)) => false,
        Some(None) => {
            return vec![error(
                "InvalidArgument",
                "ApplicationType must be a string".into(),
            )]
        }
    };
    let selected: Vec<Dictionary> = apps
        .iter()
        .filter(|_| user)
        .filter(|app| wanted.as_ref().is_none_or(|w| w.contains(&app.bundle_id)))
        .map(|app| {
            let mut all = app_attributes(app);
            if let Some(keys) = &attributes {
                all.retain(|k, _| keys.iter().any(|wanted| wanted == k));
            }
            all
        })
        .collect();
    match command {
        Some("Browse") => {
            let total = selected.len();
            let mut out: Vec<Dictionary> = selected
                .chunks(PAGE)
                .enumerate()
                .map(|(page, list)| {
                    let mut d = Dictionary::new();
                    d.insert("Status".into(), "BrowsingApplications".into());
                    d.insert("CurrentIndex".into(), ((page * PAGE) as u64).into());
                    d.insert("CurrentAmount".into(), (list.len() as u64).into());
                    d.insert("Total".into(), (total as u64).into());
                    d.insert(
                        "CurrentList".into(),
                        Value::Array(list.iter().cloned().map(Value::Dictionary).collect()),
                    );
                    d
                })
                .collect();
            let mut done = Dictionary::new();
            done.insert("Status".into(), "Complete".into());
            out.push(done);
            out
        }
        Some("Lookup") => {
            let found: Dictionary = selected
                .into_iter()
                .filter_map(|app| {
                    let id = app.get("CFBundleIdentifier")?.as_string()?.to_string();
                    Some((id, Value::Dictionary(app)))
                })
                .collect();
            let mut d = Dictionary::new();
            d.insert("LookupResult".into(), Value::Dictionary(found));
            d.insert("Status".into(), "Complete".into());
            vec![d]
        }
        Some(other) => vec![error(
            "UnknownCommand",
            format!("the phone has no command {other:?}"),
        )],
        None => vec![error(
            "MissingCommand",
            "the request names no Command".into(),
        )],
    }
}

/// Serves one installation_proxy connection until the client closes it or sends what is not
/// a message.
pub fn serve(apps: &[AppProfile], mut stream: Box<dyn ServiceStream>) -> Result<(), DeviceError> {
    loop {
        let deadline = Instant::now() + SERVICE_IDLE;
        let request =
            match read_message_within(&mut stream, "an installation_proxy request", deadline) {
                Ok(Some(request)) => request,
                Ok(None) | Err(DeviceError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
        for answer in answers(apps, &request) {
            send_plist(&mut stream, &answer)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    fn browse(options: Option<Dictionary>) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("Command".into(), "Browse".into());
        if let Some(options) = options {
            d.insert("ClientOptions".into(), Value::Dictionary(options));
        }
        d
    }

    fn strings_value(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::from(*s)).collect())
    }

    #[test]
    fn browse_pages_count_their_lists_and_end_complete() {
        let apps = Profile::default().apps;
        let mut options = Dictionary::new();
        options.insert("ApplicationType".into(), "User".into());
        options.insert(
            "ReturnAttributes".into(),
            strings_value(&["CFBundleIdentifier", "ApplicationSINF", "iTunesMetadata"]),
        );
        let out = answers(&apps, &browse(Some(options)));
        assert_eq!(out.len(), 3, "two pages and Complete: {out:?}");
        let mut ids = Vec::new();
        for page in &out[..2] {
            assert_eq!(page["Status"].as_string(), Some("BrowsingApplications"));
            let list = page["CurrentList"].as_array().unwrap();
            assert_eq!(
                page["CurrentAmount"].as_unsigned_integer(),
                Some(list.len() as u64)
            );
            assert_eq!(page["Total"].as_unsigned_integer(), Some(3));
            for app in list {
                let app = app.as_dictionary().unwrap();
                // Only what was asked for (our apps have no SINF or iTunesMetadata).
                assert_eq!(app.keys().collect::<Vec<_>>(), ["CFBundleIdentifier"]);
                ids.push(app["CFBundleIdentifier"].as_string().unwrap().to_string());
            }
        }
        assert_eq!(out[2]["Status"].as_string(), Some("Complete"));
        assert_eq!(
            ids,
            [
                "net.whatsapp.WhatsApp",
                "com.spotify.client",
                "com.example.notes"
            ]
        );
    }

    #[test]
    fn no_apps_is_just_complete_and_system_apps_are_none() {
        assert_eq!(answers(&[], &browse(None)).len(), 1);
        let mut options = Dictionary::new();
        options.insert("ApplicationType".into(), "System".into());
        let out = answers(&Profile::default().apps, &browse(Some(options)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["Status"].as_string(), Some("Complete"));
    }

    #[test]
    fn lookup_finds_by_bundle_id() {
        let mut request = Dictionary::new();
        request.insert("Command".into(), "Lookup".into());
        let mut options = Dictionary::new();
        options.insert(
            "BundleIDs".into(),
            strings_value(&["com.spotify.client", "com.nope"]),
        );
        request.insert("ClientOptions".into(), Value::Dictionary(options));
        let out = answers(&Profile::default().apps, &request);
        let found = out[0]["LookupResult"].as_dictionary().unwrap();
        assert_eq!(found.keys().collect::<Vec<_>>(), ["com.spotify.client"]);
        assert_eq!(
            found["com.spotify.client"].as_dictionary().unwrap()["CFBundleShortVersionString"]
                .as_string(),
            Some("8.9.40")
        );
    }

    #[test]
    fn malformed_requests_get_an_error_answer() {
        let apps = Profile::default().apps;
        let mut not_a_dict = browse(None);
        not_a_dict.insert("ClientOptions".into(), "yes".into());
        let mut too_many = Dictionary::new();
        too_many.insert(
            "ReturnAttributes".into(),
            Value::Array(vec![Value::from("x"); MAX_LIST + 1]),
        );
        let mut not_strings = Dictionary::new();
        not_strings.insert("BundleIDs".into(), Value::Array(vec![Value::from(3u64)]));
        let mut unknown = Dictionary::new();
        unknown.insert("Command".into(), "Install".into());
        for (request, name) in [
            (not_a_dict, "InvalidArgument"),
            (browse(Some(too_many)), "InvalidArgument"),
            (browse(Some(not_strings)), "InvalidArgument"),
            (unknown, "UnknownCommand"),
            (Dictionary::new(), "MissingCommand"),
        ] {
            let out = answers(&apps, &request);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0]["Error"].as_string(), Some(name), "{request:?}");
        }
    }
}
