//! `ibackup device`, `ibackup devices`, `ibackup pair`: the phone's side (issue 3). Each opens the
//! transport `--transport` chose (the usbmuxd daemon or direct USB, issue 6), asks `device` for
//! facts, and prints them as text or as the JSON of docs/device.md. No protocol here.

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

fn failure(e: DeviceError) -> Failure {
    Failure::new(e.code(), e.to_string(), e.hint())
}

fn seconds_from_env(name: &str, default: u64) -> Duration {
    let secs = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// The phone to talk to, waiting (with a spinner when someone watches) for one to be plugged in.
fn pick(
    out: &Output,
    transport: &dyn Transport,
    udid: Option<&str>,
) -> Result<AttachedDevice, Failure> {
    let default = if out.progress {
        WAIT_WATCHED
    } else {
        WAIT_UNWATCHED
    };
    let wait = seconds_from_env("IBACKUP_DEVICE_WAIT", default);
    let spinner = out.spinner("Waiting for an iPhone: plug it in with a cable and unlock it");
    let device = select_device(transport, udid, wait);
    spinner.finish_and_clear();
    device.map_err(failure)
}

/// `ibackup device`: the phone's live state.
pub fn device(out: &Output, udid: Option<&str>, choice: TransportChoice) -> CommandResult {
    let transport = open_transport(choice).map_err(failure)?;
    let device = pick(out, transport.as_ref(), udid)?;
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
    let transport = open_transport(choice).map_err(failure)?;
    let listed = info::list(transport.as_ref()).map_err(failure)?;
    if out.json {
        out.print_json(&json!({ "schema": "ibackup.devices/1", "devices": listed }));
    } else {
        out.print_text(&render::device::devices_text(&listed));
    }
    Ok(Status::Ok)
}

/// `ibackup pair`: "Trust This Computer"; the record is saved through usbmuxd (or, over direct
/// USB, in the pair record folder), and the output says where.
pub fn pair(out: &Output, udid: Option<&str>, choice: TransportChoice) -> CommandResult {
    let transport = open_transport(choice).map_err(failure)?;
    let device = pick(out, transport.as_ref(), udid)?;
    let timeout = seconds_from_env("IBACKUP_PAIR_TIMEOUT", PAIR_TIMEOUT);
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
