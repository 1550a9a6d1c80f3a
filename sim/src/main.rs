//! `ibackup-sim --listen ADDRESS [--profile FILE]`: a simulated iPhone behind a usbmuxd socket,
//! for tests and demos. Prints `ready` on stdout once it listens. See docs/device.md.

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
    #[arg(long, value_name = "ADDRESS")]
    listen: String,
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
    /// With --usb: write the pre-paired record to DIR/<UDID>.plist, as a host that paired
    /// earlier keeps it.
    #[arg(long, value_name = "DIR", requires = "usb")]
    lockdown_dir: Option<PathBuf>,
}

fn serve(args: &Args, profile: Profile) -> Result<(), sim::SimError> {
    if !args.usb {
        return sim::run(&args.listen, profile);
    }
    #[cfg(unix)]
    {
        let options = sim::usb::UsbOptions {
            protocol: args.usb_protocol,
            fault: args.usb_fault,
            ..Default::default()
        };
        sim::run_usb(&args.listen, profile, options, args.lockdown_dir.as_deref())
    }
    #[cfg(not(unix))]
    Err(sim::SimError::Setup("--usb needs Unix sockets".to_string()))
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
