//! The `ibackup` binary: parse the command line, run one command, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    match ibackup::cli::Args::try_parse() {
        Ok(args) => ibackup::cli::run(args),
        Err(error) => ibackup::cli::parse_failed(error),
    }
}
