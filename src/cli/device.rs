//! `ibackup device`, `ibackup devices`, `ibackup pair`: the phone's side (issue 3). Each opens the
//! transport `--transport` chose (the usbmuxd daemon or direct USB, issue 6), asks `device` for
//! facts, and prints them as text or as the JSON of docs/device.md. No protocol here.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{CommandResult, Failure, Status};
use crate::device::info::{self, DeviceState};
use crate::device::lockdown::pairing::{self, PairWait};
use crate::device::transport::{AttachedDevice, Transport};
use crate::device::{open_transport, select_device, DeviceError, TransportChoice};
use crate::diagnose::{device_findings, Finding};
use crate::render::text::Style;
use crate::render::{self, Output};

/// Seconds to wait for a phone to be plugged in (`IBACKUP_DEVICE_WAIT` overrides).
const WAIT_WATCHED: u64 = 10;
const WAIT_UNWATCHED: u64 = 2;
/// Seconds to wait for the user to unlock and tap Trust (`IBACKUP_PAIR_TIMEOUT` overrides).
const PAIR_TIMEOUT: u64 = 120;
/// The most seconds either variable accepts: a day. More is refused, never wrapped or clamped.
pub const MAX_ENV_SECONDS: u64 = 86_400;
/// The failure code of an environment value ibackup cannot use (exit 2).
pub const BAD_ENVIRONMENT: &str = "usage.bad_environment";

pub(super) fn failure(e: DeviceError) -> Failure {
    Failure::new(e.code(), e.to_string(), e.hint())
}

/// A number of seconds from the variable `name`: `default` when it is unset, empty or blank; a
/// [`BAD_ENVIRONMENT`] failure naming the variable and the accepted range for anything but a
/// whole number from 0 to [`MAX_ENV_SECONDS`].
pub(super) fn seconds_from_env(name: &str, default: u64) -> Result<Duration, Failure> {
    parse_seconds(name, std::env::var_os(name).as_deref(), default)
        .map(Duration::from_secs)
        .map_err(|message| {
            Failure::new(
                BAD_ENVIRONMENT,
                message,
                format!(
                    "Set {name} to a whole number of seconds from 0 to {MAX_ENV_SECONDS}, or unset \
                     it for the default ({default})."
                ),
            )
        })
}

/// [`seconds_from_env`] without the environment, for tests.
fn parse_seconds(name: &str, value: Option<&OsStr>, default: u64) -> Result<u64, String> {
    let range = format!("a whole number of seconds from 0 to {MAX_ENV_SECONDS}");
    let Some(value) = value else {
        return Ok(default);
    };
    let Some(text) = value.to_str() else {
        return Err(format!(
            "{name} is not valid UTF-8 text; it must be {range}"
        ));
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(default);
    }
    match text.parse::<u64>() {
        Ok(secs) if secs <= MAX_ENV_SECONDS => Ok(secs),
        _ => {
            // The value is shown escaped and cut short: it is the user's, but may be anything.
            let shown: String = text.chars().take(40).collect();
            let cut = if shown.len() < text.len() { "…" } else { "" };
            Err(format!("{name}={shown:?}{cut} is not {range}"))
        }
    }
}

/// The seconds to wait for a phone to be plugged in: `IBACKUP_DEVICE_WAIT`, else longer when
/// someone watches.
pub(super) fn device_wait(out: &Output) -> Result<Duration, Failure> {
    let default = if out.progress {
        WAIT_WATCHED
    } else {
        WAIT_UNWATCHED
    };
    seconds_from_env("IBACKUP_DEVICE_WAIT", default)
}

/// The phone to talk to, waiting up to `wait` (with a spinner when someone watches) for one to
/// be plugged in.
fn pick(
    out: &Output,
    transport: &dyn Transport,
    udid: Option<&str>,
    wait: Duration,
) -> Result<AttachedDevice, Failure> {
    let spinner = out.spinner("Waiting for an iPhone: plug it in with a cable and unlock it");
    let device = select_device(transport, udid, wait);
    spinner.finish_and_clear();
    device.map_err(failure)
}

/// `ibackup device`: the phone's live state.
pub fn device(out: &Output, udid: Option<&str>, choice: TransportChoice) -> CommandResult {
    let wait = device_wait(out)?;
    let transport = open_transport(choice).map_err(failure)?;
    let device = pick(out, transport.as_ref(), udid, wait)?;
    let spinner = out.spinner("Reading the iPhone's state");
    let state = info::read_state(transport.as_ref(), &device);
    spinner.finish_and_clear();
    let state = state.map_err(failure)?;
    let findings = device_findings(&state, chrono::Utc::now());
    if out.json {
        out.print_json(&DeviceReport {
            state: &state,
            findings: &findings,
        });
    } else {
        out.print_text(&render::device::device_page(
            &state,
            &findings,
            Style::new(out.color),
            out.quiet,
        ));
    }
    Ok(Status::Ok)
}

/// `device --json`: the `ibackup.device/1` object plus the findings of [`device_findings`].
#[derive(serde::Serialize)]
struct DeviceReport<'a> {
    #[serde(flatten)]
    state: &'a DeviceState,
    findings: &'a [Finding],
}

/// `ibackup devices`: every attached phone, with what an unpaired phone tells.
pub fn devices(out: &Output, choice: TransportChoice) -> CommandResult {
    let transport: Arc<dyn Transport> = Arc::from(open_transport(choice).map_err(failure)?);
    let spinner = out.spinner("Asking each iPhone who it is");
    let listed = info::list(transport);
    spinner.finish_and_clear();
    let listed = listed.map_err(failure)?;
    if out.json {
        out.print_json(&json!({
            "schema": "ibackup.devices/1",
            "devices": listed.devices,
            "not_shown": listed.not_shown,
        }));
    } else {
        let mut text = render::device::devices_text(&listed.devices);
        text.push_str(&render::device::devices_notes(
            &listed.devices,
            listed.not_shown,
        ));
        out.print_text(&text);
    }
    Ok(Status::Ok)
}

/// `ibackup pair`: "Trust This Computer"; the record is saved through usbmuxd (or, over direct
/// USB, in the pair record folder), and the output says where.
pub fn pair(out: &Output, udid: Option<&str>, choice: TransportChoice) -> CommandResult {
    // Both values are checked before anything is asked of a phone.
    let wait = device_wait(out)?;
    let timeout = seconds_from_env("IBACKUP_PAIR_TIMEOUT", PAIR_TIMEOUT)?;
    let transport = open_transport(choice).map_err(failure)?;
    let device = pick(out, transport.as_ref(), udid, wait)?;
    let spinner = out.spinner("Creating pairing keys");
    let quiet = out.quiet;
    let mut waiting = |state: PairWait| {
        let message = match state {
            PairWait::Unlock => "Unlock your iPhone to pair with it",
            PairWait::TapTrust => "Tap Trust on your iPhone and enter its passcode",
        };
        render::say_waiting(&spinner, quiet, message);
    };
    let result = pairing::pair(transport.as_ref(), &device, timeout, &mut waiting);
    spinner.finish_and_clear();
    let paired = result.map_err(failure)?;
    if out.json {
        out.print_json(&json!({
            "schema": "ibackup.pair/1", "udid": device.udid, "paired": true,
            "host_id": paired.record.host_id, "saved_to": paired.saved_to,
        }));
    } else {
        out.print_text(&render::device::paired_text(
            &device.udid,
            &paired.saved_to,
            Style::new(out.color),
        ));
    }
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_whole_numbers_within_a_day() {
        let parse = |v: &str| parse_seconds("V", Some(OsStr::new(v)), 7);
        assert_eq!(parse_seconds("V", None, 7), Ok(7));
        for (value, secs) in [
            ("", 7),
            ("   ", 7),
            ("0", 0),
            (" 15 ", 15),
            ("86400", 86_400),
        ] {
            assert_eq!(parse(value), Ok(secs), "{value:?}");
        }
        for value in [
            "86401",
            "9223372036854775807",
            "18446744073709551615",
            "99999999999999999999999",
            "-1",
            "abc",
            "1.5",
            "10s",
        ] {
            let message = parse(value).unwrap_err();
            assert!(
                message.starts_with("V=") && message.contains("from 0 to 86400"),
                "{value}: {message}"
            );
        }
        let long = "9".repeat(5_000);
        assert!(parse(&long).unwrap_err().len() < 200);
        assert!(parse("\u{1b}[2J").unwrap_err().contains("\\u{1b}"));
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_text_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let message = parse_seconds("V", Some(OsStr::from_bytes(b"\xff1")), 7).unwrap_err();
        assert!(message.contains("UTF-8"), "{message}");
    }
}
