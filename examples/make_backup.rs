//! Writes a synthetic backup for benchmarks and demos:
//! `cargo run --release --example make_backup -- DIR FILES [MAX_BLOB_BYTES]`.
//! The writer is the test-support one (tests/support), so the backup is as realistic as the
//! tests' backups: several domains, file/folder/symlink rows, real MBFile records.

#[path = "../tests/support/writer.rs"]
mod support;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(files)) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: make_backup DIR FILES [MAX_BLOB_BYTES]");
        return ExitCode::from(2);
    };
    let max_size = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(2048);
    let dir = PathBuf::from(dir);
    if dir.exists() {
        eprintln!("{} exists already; choose a new folder", dir.display());
        return ExitCode::from(2);
    }
    let spec = support::Spec {
        files,
        max_size,
        ..support::Spec::default()
    };
    let expected = support::write_backup(&dir, &spec);
    println!(
        "wrote {} files ({} bytes) to {}",
        expected.listed,
        expected.declared_bytes,
        dir.display()
    );
    ExitCode::SUCCESS
}
