//! `ibackup device`, `ibackup devices`, `ibackup pair`: the phone's side (issue 3). Each opens the
//! transport `--transport` chose (the usbmuxd daemon or direct USB, issue 6), asks `device` for
//! facts, and prints them as text or as the JSON of docs/device.md. No protocol here.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::{CommandResult, Failure, Status};
use crate::device::info::{self, DeviceState};
use crate::device::lockdown::pair_record;
use crate::device::lockdown::pairing::{self, PairWait};
use crate::device::lockdown::{self, LockdownClient};
use crate::device::transport::{AttachedDevice, Transport};
use crate::device::{open_transport, select_device, DeviceError, TransportChoice};
use crate::render::text::Style;
use crate::render::{human_bytes, Output};

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
    let spinner = spinner(
        out,
        "Waiting for an iPhone: plug it in with a cable and unlock it",
    );
    let device = select_device(transport, udid, wait);
    spinner.finish_and_clear();
    device.map_err(failure)
}

fn spinner(out: &Output, message: &str) -> ProgressBar {
    if !out.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `ibackup device`: the phone's live state.
pub fn device(out: &Output, udid: Option<&str>, choice: TransportChoice) -> CommandResult {
    let transport = open_transport(choice).map_err(failure)?;
    let device = pick(out, transport.as_ref(), udid)?;
    let spinner = spinner(out, "Reading the iPhone's state");
    let state = info::read_state(transport.as_ref(), &device);
    spinner.finish_and_clear();
    let state = state.map_err(failure)?;
    if out.json {
        out.print_json(&device_json(&state));
    } else {
        out.print_text(&device_text(&state, Style::new(out.color), out.quiet));
    }
    Ok(Status::Ok)
}

/// `device --json`: the `ibackup.device/1` object plus the findings this command can tell on
/// its own.
#[derive(serde::Serialize)]
struct DeviceReport<'a> {
    #[serde(flatten)]
    state: &'a DeviceState,
    findings: Vec<Value>,
}

fn device_json(state: &DeviceState) -> DeviceReport<'_> {
    let mut findings = Vec::new();
    if !state.paired {
        findings.push(json!({
            "code": "device.not_paired",
            "severity": "warning",
            "evidence": "no pair record for this iPhone, or the iPhone refused it; storage, battery, backup and Find My need a paired session",
            "fix": { "id": "pair", "title": "Trust this computer",
                     "steps": ["Unlock the iPhone", "Run `ibackup pair`", "Tap Trust on the iPhone and enter its passcode"] },
        }));
    }
    DeviceReport { state, findings }
}

fn or_unknown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("unknown")
}

/// The human report for `ibackup device`.
pub fn device_text(state: &DeviceState, style: Style, quiet: bool) -> String {
    let mut text = format!(
        "{} ({}), iOS {} ({})\n",
        style.bold(state.name.as_deref().unwrap_or("iPhone")),
        or_unknown(&state.product_type),
        or_unknown(&state.ios_version),
        or_unknown(&state.build_version),
    );
    if quiet {
        return text;
    }
    let mut line = |label: &str, value: String| text.push_str(&format!("  {label:<11} {value}\n"));
    line("UDID", state.udid.clone());
    line(
        "Connection",
        format!("{} ({})", state.connection, state.connection_type),
    );
    if !state.paired {
        line(
            "Paired",
            style.warn("no: run `ibackup pair`, unlock the iPhone and tap Trust to see storage, battery, backups and Find My"),
        );
        return text;
    }
    line("Paired", style.good("yes"));
    if let Some(s) = &state.storage {
        let free = format!(
            "{} free of {}",
            human_bytes(s.available_bytes),
            human_bytes(s.total_bytes)
        );
        let low = s.available_bytes < 5_000_000_000
            || s.available_bytes.saturating_mul(10) < s.total_bytes;
        line(
            "Storage",
            if low {
                style.warn(&format!("{free} (low)"))
            } else {
                free
            },
        );
    }
    if let Some(b) = &state.battery {
        let percent = b.percent.map_or("unknown".to_string(), |p| format!("{p}%"));
        let power = match (b.charging, b.external_power) {
            (Some(true), _) => "charging".to_string(),
            (_, Some(true)) => "on power, not charging".to_string(),
            _ => "not charging".to_string(),
        };
        let weak = b.percent.is_some_and(|p| p < 20) && b.charging != Some(true);
        let value = format!("{percent}, {power}");
        line("Battery", if weak { style.warn(&value) } else { value });
    }
    if let Some(b) = &state.backup {
        let value = match b.will_encrypt {
            Some(true) => "local backups are encrypted",
            Some(false) => "local backups are not encrypted",
            None => "encryption setting unknown",
        };
        line("Backups", value.to_string());
    }
    let find_my = match state.find_my {
        Some(true) => style.warn("on (turn it off before restoring a backup)"),
        Some(false) => "off".to_string(),
        None => "unknown".to_string(),
    };
    line("Find My", find_my);
    line(
        "iCloud",
        style.dim("quota and last iCloud backup are not readable over the cable: see Settings > [your name] > iCloud > iCloud Backup"),
    );
    text
}

/// `ibackup devices`: every attached phone, with what an unpaired phone tells.
pub fn devices(out: &Output, choice: TransportChoice) -> CommandResult {
    let transport = open_transport(choice).map_err(failure)?;
    let attached = transport.devices().map_err(failure)?;
    let rows: Vec<Value> = attached
        .iter()
        .map(|d| device_row(transport.as_ref(), d))
        .collect();
    if out.json {
        out.print_json(&json!({ "schema": "ibackup.devices/1", "devices": rows }));
        return Ok(Status::Ok);
    }
    if rows.is_empty() {
        out.print_text("No iPhone is connected. Plug one in with a cable and unlock it.\n");
        return Ok(Status::Ok);
    }
    let mut text = String::new();
    for row in &rows {
        let field = |k: &str| row[k].as_str().unwrap_or("?").to_string();
        text.push_str(&format!(
            "{}  {} ({}, iOS {})  via {} ({})\n",
            field("udid"),
            field("name"),
            field("product_type"),
            field("ios_version"),
            field("connection"),
            field("connection_type"),
        ));
    }
    out.print_text(&text);
    Ok(Status::Ok)
}

/// One phone's row: identity from lockdown's unpaired values, best effort.
fn device_row(transport: &dyn Transport, device: &AttachedDevice) -> Value {
    let mut row = json!({
        "udid": device.udid, "connection": transport.name(), "connection_type": device.connection_type,
        "name": null, "product_type": null, "ios_version": null,
    });
    let basics = transport
        .connect(device, lockdown::PORT)
        .and_then(|stream| {
            let mut client = LockdownClient::new(stream);
            client.query_type()?;
            client.get_value(None, None)
        });
    match basics {
        Ok(Some(plist::Value::Dictionary(root))) => {
            for (field, key) in [
                ("name", "DeviceName"),
                ("product_type", "ProductType"),
                ("ios_version", "ProductVersion"),
            ] {
                if let Some(v) = root.get(key).and_then(plist::Value::as_string) {
                    row[field] = Value::String(v.to_string());
                }
            }
        }
        Ok(_) => {}
        Err(e) => row["error"] = Value::String(e.to_string()),
    }
    row
}

/// `ibackup pair`: "Trust This Computer", then save the record through usbmuxd (or, over direct
/// USB, in the pair record folder).
pub fn pair(out: &Output, udid: Option<&str>, choice: TransportChoice) -> CommandResult {
    let transport = open_transport(choice).map_err(failure)?;
    let device = pick(out, transport.as_ref(), udid)?;
    let timeout = seconds_from_env("IBACKUP_PAIR_TIMEOUT", PAIR_TIMEOUT);
    let spinner = spinner(out, "Creating pairing keys");
    let quiet = out.quiet;
    let mut waiting = |state: PairWait| {
        let message = match state {
            PairWait::Unlock => "Unlock your iPhone to pair with it",
            PairWait::TapTrust => "Tap Trust on your iPhone and enter its passcode",
        };
        if spinner.is_hidden() {
            if !quiet {
                eprintln!("{message}...");
            }
        } else {
            spinner.set_message(message);
        }
    };
    let result = pairing::pair(transport.as_ref(), &device, timeout, &mut waiting);
    spinner.finish_and_clear();
    let record = result.map_err(failure)?;
    // Without a daemon the record lives in the pair record folder: say where.
    let saved_to = if transport.name() == crate::device::transport::usb::NAME {
        pair_record::record_folders()
            .first()
            .map(|f| {
                f.join(format!("{}.plist", device.udid))
                    .display()
                    .to_string()
            })
            .unwrap_or_else(|| transport.name().to_string())
    } else {
        transport.name().to_string()
    };
    if out.json {
        out.print_json(&json!({
            "schema": "ibackup.pair/1", "udid": device.udid, "paired": true,
            "host_id": record.host_id, "saved_to": saved_to,
        }));
    } else {
        let style = Style::new(out.color);
        out.print_text(&format!(
            "{} with {}. The pair record was saved to {}.\n",
            style.good("Paired"),
            device.udid,
            saved_to
        ));
    }
    Ok(Status::Ok)
}
