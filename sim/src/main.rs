//! `ibackup-sim --listen ADDRESS [--profile FILE]`: a simulated iPhone behind a usbmuxd socket,
//! for tests and demos; `--usb` makes it a phone on emulated USB, `--ffs DIR` (Linux) a phone
//! on a real USB gadget. Prints `ready` on stdout once it listens. See docs/device.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ibackup_sim::{self as sim, Profile};

/// A simulated iPhone (usbmuxd + lockdownd) that real clients accept.
#[derive(Debug, Parser)]
#[command(name = "ibackup-sim", version, about)]
struct Args {
    /// Where to listen: a Unix socket path (or UNIX:/path), or 127.0.0.1:PORT (port 0 picks one
    /// and prints `ready ADDRESS`).
    #[arg(long, value_name = "ADDRESS", required_unless_present = "ffs")]
    listen: Option<String>,
    /// A JSON profile: the phone's state, pairing behaviour and fault (docs/device.md).
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Be an iPhone on emulated USB instead of a usbmuxd: the socket carries raw bulk transfers
    /// (`IBACKUP_USB_EMULATOR` points ibackup at it). Unix sockets only.
    #[arg(long)]
    usb: bool,
    /// With --usb: the mux protocol version to answer (2, or 1 like an old phone).
    #[arg(long, value_name = "N", default_value_t = 2, requires = "usb")]
    usb_protocol: u32,
    /// With --usb: misbehave on USB (refuse_lockdown, duplicate_data, out_of_order,
    /// oversize_frame, vanish_mid_transfer, reset_after_first_reply).
    #[arg(long, value_name = "FAULT", requires = "usb")]
    usb_fault: Option<sim::usb::UsbFault>,
    /// With --usb or --ffs: write the pre-paired record to DIR/<UDID>.plist, as a host that
    /// paired earlier keeps it.
    #[arg(long, value_name = "DIR")]
    lockdown_dir: Option<PathBuf>,
    /// Be an iPhone on a real USB gadget (Linux): DIR is a mounted FunctionFS instance; the
    /// usbmux interface's descriptors go to DIR/ep0, the data to its bulk endpoint files.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["listen", "usb"])]
    ffs: Option<PathBuf>,
    /// With --ffs: a second FunctionFS instance that gets a still-image (PTP) interface, for a
    /// first configuration that looks like a phone's camera roll.
    #[arg(long, value_name = "DIR", requires = "ffs")]
    ffs_ptp: Option<PathBuf>,
}

fn serve(args: &Args, profile: Profile) -> Result<(), sim::SimError> {
    if let Some(dir) = &args.ffs {
        return serve_ffs(args, dir, profile);
    }
    let listen = args.listen.as_deref().unwrap_or_default();
    if !args.usb {
        return sim::run(listen, profile);
    }
    #[cfg(unix)]
    {
        let options = sim::usb::UsbOptions {
            protocol: args.usb_protocol,
            fault: args.usb_fault,
            ..Default::default()
        };
        sim::run_usb(listen, profile, options, args.lockdown_dir.as_deref())
    }
    #[cfg(not(unix))]
    Err(sim::SimError::Setup("--usb needs Unix sockets".to_string()))
}

#[cfg(target_os = "linux")]
fn serve_ffs(args: &Args, dir: &std::path::Path, profile: Profile) -> Result<(), sim::SimError> {
    sim::run_ffs(
        dir,
        args.ffs_ptp.as_deref(),
        profile,
        sim::usb::UsbOptions::default(),
        args.lockdown_dir.as_deref(),
    )
}

#[cfg(not(target_os = "linux"))]
fn serve_ffs(_: &Args, _: &std::path::Path, _: Profile) -> Result<(), sim::SimError> {
    Err(sim::SimError::Setup(
        "--ffs needs Linux FunctionFS".to_string(),
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = args
        .profile
        .as_deref()
        .map(Profile::load)
        .unwrap_or_else(|| Ok(Profile::default()))
        .map_err(sim::SimError::from)
        .and_then(|profile| serve(&args, profile));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ibackup-sim: {e}");
            ExitCode::from(2)
        }
    }
}
