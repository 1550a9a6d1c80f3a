//! installation_proxy (`com.apple.mobile.installation_proxy`), as far as a backup needs it: the
//! user's apps, for Info.plist. One request, `{Command: Browse, ClientOptions: {ApplicationType:
//! User, ReturnAttributes: [...]}}`; the phone answers in pages, `{Status: BrowsingApplications,
//! CurrentList: [...], CurrentAmount, Total}`, until one says `Status: Complete`; an `Error` key
//! is a refusal. Lockdown's framing (u32 big-endian length, plist). [libimobiledevice
//! src/installation_proxy.c instproxy_browse]
//!
//! Bounded everywhere: each message at most [`MAX_MESSAGE`], at most [`MAX_APPS`] apps and
//! [`MAX_PAGES`] messages in all, the whole listing within [`BROWSE_DEADLINE`]; a phone that
//! never says Complete is an error, not a hang. Not here: what Info.plist makes of the apps
//! (backup_info.rs).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use plist::{Dictionary, Value};

use crate::device::lockdown::pair_record::PairRecord;
use crate::device::lockdown::{encode_message, LockdownClient};
use crate::device::transport::usbmuxd::parse_dict;
use crate::device::transport::{AttachedDevice, Transport};
use crate::device::{deadline_after, read_exact_within, DeviceError};

/// The service's name for StartService.
pub const SERVICE: &str = "com.apple.mobile.installation_proxy";
/// The attributes Info.plist needs of each app.
pub const INFO_ATTRIBUTES: [&str; 3] = ["CFBundleIdentifier", "ApplicationSINF", "iTunesMetadata"];
/// The largest message accepted (a page of apps carries their SINF and iTunes metadata).
pub const MAX_MESSAGE: usize = 16 << 20;
/// The most apps accepted in one listing.
pub const MAX_APPS: usize = 10_000;
/// The most messages accepted in one listing.
pub const MAX_PAGES: usize = 2_000;
/// The most bytes accepted over one listing.
pub const MAX_LISTING_BYTES: u64 = 256 << 20;
/// The most of the phone's error text kept.
const MAX_ERROR_TEXT: usize = 300;
/// How long the whole listing may take.
pub const BROWSE_DEADLINE: Duration = Duration::from_secs(120);

/// The user's apps, each a dictionary of [`INFO_ATTRIBUTES`] (those the phone has).
pub fn browse_user_apps(
    transport: &dyn Transport,
    device: &AttachedDevice,
    lockdown: &mut LockdownClient,
    record: &PairRecord,
) -> Result<Vec<Dictionary>, DeviceError> {
    let mut stream = super::open(transport, device, lockdown, record, SERVICE)?;
    browse(&mut stream, &INFO_ATTRIBUTES)
}

/// Browse over a stream already connected to installation_proxy.
pub fn browse<S: Read + Write + ?Sized>(
    stream: &mut S,
    attributes: &[&str],
) -> Result<Vec<Dictionary>, DeviceError> {
    let request = encode_message(&browse_request(attributes), "a Browse request")?;
    stream
        .write_all(&request)
        .and_then(|_| stream.flush())
        .map_err(|e| DeviceError::from_io("sending Browse to installation_proxy", e))?;
    let deadline = deadline_after(BROWSE_DEADLINE);
    let mut listing = Listing::default();
    for _ in 0..MAX_PAGES {
        let message = read_page(stream, deadline)?;
        listing.received += message.len() as u64 + 4;
        if listing.received > MAX_LISTING_BYTES {
            return Err(DeviceError::FrameTooLarge {
                what: "installation_proxy's app listing".to_string(),
                length: listing.received,
                max: MAX_LISTING_BYTES,
            });
        }
        let page = parse_dict(&message, WHAT)?;
        if listing.take(page)? {
            return Ok(listing.apps);
        }
    }
    Err(bad(format!("{MAX_PAGES} messages without Status Complete")))
}

const WHAT: &str = "installation_proxy's answer to Browse";

fn bad(detail: String) -> DeviceError {
    DeviceError::BadReply {
        what: WHAT.to_string(),
        detail,
    }
}

fn browse_request(attributes: &[&str]) -> Dictionary {
    let mut options = Dictionary::new();
    options.insert("ApplicationType".into(), "User".into());
    options.insert(
        "ReturnAttributes".into(),
        Value::Array(attributes.iter().map(|a| Value::from(*a)).collect()),
    );
    let mut request = Dictionary::new();
    request.insert("Command".into(), "Browse".into());
    request.insert("ClientOptions".into(), Value::Dictionary(options));
    request
}

/// One framed message, its length checked against [`MAX_MESSAGE`] first.
fn read_page<S: Read + ?Sized>(stream: &mut S, deadline: Instant) -> Result<Vec<u8>, DeviceError> {
    let mut prefix = [0u8; 4];
    read_exact_within(stream, &mut prefix, WHAT, deadline)?;
    let length = u32::from_be_bytes(prefix) as usize;
    if length == 0 || length > MAX_MESSAGE {
        return Err(DeviceError::FrameTooLarge {
            what: WHAT.to_string(),
            length: length as u64,
            max: MAX_MESSAGE as u64,
        });
    }
    let mut body = vec![0u8; length];
    read_exact_within(stream, &mut body, WHAT, deadline)?;
    Ok(body)
}

/// The apps so far.
#[derive(Default)]
struct Listing {
    apps: Vec<Dictionary>,
    received: u64,
}

impl Listing {
    /// Adds a page's apps; `true` once the phone said Complete.
    fn take(&mut self, mut page: Dictionary) -> Result<bool, DeviceError> {
        if let Some(error) = page.get("Error") {
            let mut error = error.as_string().unwrap_or("an error").to_string();
            if let Some(description) = page.get("ErrorDescription").and_then(Value::as_string) {
                error = format!("{error} ({description})");
            }
            // The phone's words, not its essay.
            if error.len() > MAX_ERROR_TEXT {
                let mut end = MAX_ERROR_TEXT;
                while !error.is_char_boundary(end) {
                    end -= 1;
                }
                error.truncate(end);
            }
            return Err(DeviceError::ServiceRefused {
                service: "installation_proxy",
                request: "Browse".to_string(),
                error,
            });
        }
        match page.remove("CurrentList") {
            None => {}
            Some(Value::Array(list)) => {
                if self.apps.len() + list.len() > MAX_APPS {
                    return Err(bad(format!("more than {MAX_APPS} apps")));
                }
                for app in list {
                    match app {
                        Value::Dictionary(app) => self.apps.push(app),
                        _ => return Err(bad("an app that is not a dictionary".to_string())),
                    }
                }
            }
            Some(_) => return Err(bad("a CurrentList that is not a list".to_string())),
        }
        Ok(page.get("Status").and_then(Value::as_string) == Some("Complete"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Cursor};

    /// Plays back canned pages and records what was sent.
    struct Scripted {
        replies: Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.replies.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn scripted(pages: &[Dictionary]) -> Scripted {
        let mut replies = Vec::new();
        for page in pages {
            replies.extend(encode_message(page, "t").unwrap());
        }
        Scripted {
            replies: Cursor::new(replies),
            sent: Vec::new(),
        }
    }

    fn app(id: &str) -> Value {
        let mut d = Dictionary::new();
        d.insert("CFBundleIdentifier".into(), id.into());
        Value::Dictionary(d)
    }

    fn page(ids: &[&str], status: &str) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("Status".into(), status.into());
        if !ids.is_empty() {
            d.insert(
                "CurrentList".into(),
                Value::Array(ids.iter().map(|i| app(i)).collect()),
            );
            d.insert("CurrentAmount".into(), (ids.len() as u64).into());
        }
        d
    }

    fn ids(apps: &[Dictionary]) -> Vec<&str> {
        apps.iter()
            .map(|a| a["CFBundleIdentifier"].as_string().unwrap())
            .collect()
    }

    #[test]
    fn the_request_asks_for_user_apps_and_the_info_attributes() {
        let mut phone = scripted(&[page(&[], "Complete")]);
        browse(&mut phone, &INFO_ATTRIBUTES).unwrap();
        let length = u32::from_be_bytes(phone.sent[..4].try_into().unwrap()) as usize;
        assert_eq!(phone.sent.len(), 4 + length);
        let request = parse_dict(&phone.sent[4..], "t").unwrap();
        assert_eq!(request, browse_request(&INFO_ATTRIBUTES));
        let options = request["ClientOptions"].as_dictionary().unwrap();
        assert_eq!(options["ApplicationType"].as_string(), Some("User"));
        assert_eq!(
            options["ReturnAttributes"].as_array().unwrap().len(),
            INFO_ATTRIBUTES.len()
        );
    }

    #[test]
    fn pages_are_gathered_until_complete() {
        let mut phone = scripted(&[
            page(&["a", "b"], "BrowsingApplications"),
            page(&[], "BrowsingApplications"),
            page(&["c"], "BrowsingApplications"),
            page(&[], "Complete"),
            // Never read: the listing ended.
            page(&["d"], "Complete"),
        ]);
        let apps = browse(&mut phone, &INFO_ATTRIBUTES).unwrap();
        assert_eq!(ids(&apps), ["a", "b", "c"]);
        // The last page may carry apps and Complete together.
        let mut phone = scripted(&[page(&["x"], "Complete")]);
        assert_eq!(ids(&browse(&mut phone, &INFO_ATTRIBUTES).unwrap()), ["x"]);
    }

    #[test]
    fn a_phone_that_never_says_complete_is_an_error() {
        let mut phone = scripted(&[page(&["a"], "BrowsingApplications")]);
        let err = browse(&mut phone, &INFO_ATTRIBUTES).unwrap_err();
        assert!(matches!(err, DeviceError::Closed { .. }), "{err}");
        let pages = vec![page(&[], "BrowsingApplications"); MAX_PAGES];
        let err = browse(&mut scripted(&pages), &INFO_ATTRIBUTES).unwrap_err();
        assert!(err.to_string().contains("without Status Complete"), "{err}");
    }

    #[test]
    fn absurd_listings_are_refused() {
        let many: Vec<String> = (0..MAX_APPS + 1).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = browse(&mut scripted(&[page(&many, "Complete")]), &INFO_ATTRIBUTES).unwrap_err();
        assert!(err.to_string().contains("more than 10000 apps"), "{err}");

        let mut not_a_dict = page(&[], "Complete");
        not_a_dict.insert("CurrentList".into(), Value::Array(vec![1u64.into()]));
        let mut not_a_list = page(&[], "Complete");
        not_a_list.insert("CurrentList".into(), "x".into());
        for hostile in [not_a_dict, not_a_list] {
            let err = browse(&mut scripted(&[hostile]), &INFO_ATTRIBUTES).unwrap_err();
            assert!(matches!(err, DeviceError::BadReply { .. }), "{err}");
        }

        let mut huge = scripted(&[]);
        huge.replies = Cursor::new(vec![0x7f, 0xff, 0xff, 0xff]);
        let err = browse(&mut huge, &INFO_ATTRIBUTES).unwrap_err();
        assert!(matches!(err, DeviceError::FrameTooLarge { .. }), "{err}");
    }

    #[test]
    fn an_error_is_the_phones_refusal() {
        let mut refusal = Dictionary::new();
        refusal.insert("Error".into(), "APIInternalError".into());
        refusal.insert("ErrorDescription".into(), "x".repeat(5000).into());
        let err = browse(&mut scripted(&[refusal]), &INFO_ATTRIBUTES).unwrap_err();
        assert_eq!(err.code(), "device.service_refused");
        assert!(err.to_string().contains("APIInternalError"), "{err}");
        assert!(err.to_string().len() < 400);
    }
}
