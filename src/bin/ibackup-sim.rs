//! `ibackup-sim --listen ADDRESS [--profile FILE]`: a simulated iPhone behind a usbmuxd socket,
//! for tests and demos. Prints `ready` on stdout once it listens. See docs/device.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ibackup::sim::{self, Profile};

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = args
        .profile
        .as_deref()
        .map(Profile::load)
        .unwrap_or_else(|| Ok(Profile::default()))
        .map_err(sim::SimError::from)
        .and_then(|profile| sim::run(&args.listen, profile));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ibackup-sim: {e}");
            ExitCode::from(2)
        }
    }
}
