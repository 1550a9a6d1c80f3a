//! com.apple.springboardservices on the simulated phone: the home screen, as much as a backup
//! client asks. `getIconPNGData` gives an installed app's icon (a small PNG made from its
//! bundle id: a solid colour, so each app's differs), `getIconState` the home screen (the apps
//! in profile order, one page), `getInterfaceOrientation` portrait, and
//! `getHomeScreenWallpaperPNGData` a wallpaper. Requests come as binary or XML plists with a
//! lower-case `command` key. An unknown command or app gets an answer without the data and an
//! `Error`, as the phone's answer without it would leave the client with nothing.
//!
//! [`answer`] is the message handling alone; [`serve`] runs it on a connection.

use std::time::Instant;

use plist::{Dictionary, Value};

use super::{send_plist, ServiceStream, SERVICE_IDLE};
use crate::profile::AppProfile;
use ibackup::device::lockdown::read_message_within;
use ibackup::device::DeviceError;

/// The side of the square icons made, in pixels.
const ICON_SIDE: u32 = 16;

/// The answer to one request.
pub fn answer(apps: &[AppProfile], request: &Dictionary) -> Dictionary {
    let mut out = Dictionary::new();
    match request.get("command").and_then(Value::as_string) {
        Some("getIconPNGData") => {
            let id = request.get("bundleId").and_then(Value::as_string);
            match id.filter(|id| apps.iter().any(|app| app.bundle_id == *id)) {
                Some(id) => {
                    out.insert(
                        "pngData".into(),
                        Value::Data(solid_png(colour_of(id), ICON_SIDE)),
                    );
                }
                None => {
                    out.insert("Error".into(), "NoSuchApplication".into());
                }
            }
        }
        Some("getIconState") => {
            let page: Vec<Value> = apps
                .iter()
                .map(|app| {
                    let mut icon = Dictionary::new();
                    icon.insert("bundleIdentifier".into(), app.bundle_id.clone().into());
                    icon.insert("displayIdentifier".into(), app.bundle_id.clone().into());
                    icon.insert("displayName".into(), app.name.clone().into());
                    Value::Dictionary(icon)
                })
                .collect();
            // The dock (empty), then the one page.
            out.insert(
                "iconState".into(),
                Value::Array(vec![Value::Array(Vec::new()), Value::Array(page)]),
            );
        }
        Some("getInterfaceOrientation") => {
            out.insert("interfaceOrientation".into(), 1u64.into());
        }
        Some("getHomeScreenWallpaperPNGData") => {
            out.insert("pngData".into(), Value::Data(solid_png([24, 40, 72], 32)));
        }
        Some(_) | None => {
            out.insert("Error".into(), "UnknownCommand".into());
        }
    }
    out
}

/// A colour from a bundle id (FNV-1a of its bytes).
fn colour_of(id: &str) -> [u8; 3] {
    let hash = id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let [a, b, c, _] = hash.to_le_bytes();
    [a, b, c]
}

/// A `side`×`side` PNG of one colour: 8-bit RGB, the image data in stored (uncompressed)
/// deflate blocks.
pub fn solid_png(rgb: [u8; 3], side: u32) -> Vec<u8> {
    // Each row: filter byte 0 (none), then the pixels.
    let row: Vec<u8> = std::iter::once(0)
        .chain(rgb.iter().copied().cycle().take(3 * side as usize))
        .collect();
    let raw = row.repeat(side as usize);
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(0xffff).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut header = Vec::new();
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", header), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for byte in bytes {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Serves one springboardservices connection until the client closes it.
pub fn serve(apps: &[AppProfile], mut stream: Box<dyn ServiceStream>) -> Result<(), DeviceError> {
    loop {
        let deadline = Instant::now() + SERVICE_IDLE;
        let request =
            match read_message_within(&mut stream, "a springboardservices request", deadline) {
                Ok(Some(request)) => request,
                Ok(None) | Err(DeviceError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
        send_plist(&mut stream, &answer(apps, &request))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    fn request(command: &str, bundle: Option<&str>) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("command".into(), command.into());
        if let Some(bundle) = bundle {
            d.insert("bundleId".into(), bundle.into());
        }
        d
    }

    #[test]
    fn icons_are_pngs_for_installed_apps_only() {
        let apps = Profile::default().apps;
        let out = answer(
            &apps,
            &request("getIconPNGData", Some("com.spotify.client")),
        );
        let png = out["pngData"].as_data().unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        // IHDR: 16 x 16, 8-bit RGB; its CRC is the standard one of "IHDR" + data.
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..24], &[0, 0, 0, 16, 0, 0, 0, 16]);
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert!(png.ends_with(&[0xae, 0x42, 0x60, 0x82]));
        let other = answer(
            &apps,
            &request("getIconPNGData", Some("net.whatsapp.WhatsApp")),
        );
        assert_ne!(other["pngData"], out["pngData"]);
        let none = answer(&apps, &request("getIconPNGData", Some("com.not.installed")));
        assert!(none.get("pngData").is_none());
        assert_eq!(none["Error"].as_string(), Some("NoSuchApplication"));
        assert!(answer(&apps, &request("getIconPNGData", None))
            .get("pngData")
            .is_none());
    }

    #[test]
    fn adler_matches_the_known_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn home_screen_orientation_and_unknown_commands() {
        let apps = Profile::default().apps;
        let state = answer(&apps, &request("getIconState", None));
        let pages = state["iconState"].as_array().unwrap();
        assert_eq!(pages[1].as_array().unwrap().len(), 3);
        let orientation = answer(&apps, &request("getInterfaceOrientation", None));
        assert_eq!(
            orientation["interfaceOrientation"].as_unsigned_integer(),
            Some(1)
        );
        assert_eq!(
            answer(&apps, &request("reboot", None))["Error"].as_string(),
            Some("UnknownCommand")
        );
        assert_eq!(
            answer(&apps, &Dictionary::new())["Error"].as_string(),
            Some("UnknownCommand")
        );
    }
}
