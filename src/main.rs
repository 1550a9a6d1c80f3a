//! The `ibackup` binary: parse the command line, run one command, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = ibackup::cli::Args::parse();
    ibackup::cli::run(args)
}
