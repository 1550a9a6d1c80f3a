//! Writes a synthetic backup for benchmarks and demos:
//!
//! `cargo run --release --example make_backup -- DIR FILES [--max-size BYTES] [--udid UDID]
//!  [--name NAME] [--ios VERSION] [--days-ago N] [--defect NAME]...`
//!
//! Defects: missing-blob, truncated-blob, orphan, unfinished, snapshot-left, no-status,
//! no-manifest-plist. The writer is the test-support one (tests/support), so the backup is as
//! realistic as the tests' backups: several domains, file/folder/symlink rows, real MBFile
//! records.

#[path = "../tests/support/writer.rs"]
mod support;

use std::path::PathBuf;
use std::process::ExitCode;

use support::{Defect, Spec};

fn defect(name: &str) -> Option<Defect> {
    Some(match name {
        "missing-blob" => Defect::MissingBlob,
        "truncated-blob" => Defect::TruncatedBlob,
        "orphan" => Defect::Orphan,
        "unfinished" => Defect::Unfinished,
        "snapshot-left" => Defect::SnapshotLeft,
        "no-status" => Defect::NoStatus,
        "no-manifest-plist" => Defect::NoManifestPlist,
        _ => return None,
    })
}

fn parse(args: &[String]) -> Result<(PathBuf, Spec), String> {
    let [dir, files, rest @ ..] = args else {
        return Err("DIR and FILES are required".into());
    };
    let mut spec = Spec {
        files: files
            .parse()
            .map_err(|_| format!("FILES must be a number, not {files}"))?,
        max_size: 2048,
        ..Spec::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut options = rest.iter();
    while let Some(flag) = options.next() {
        let value = options.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} takes a number"))
        };
        match flag.as_str() {
            "--max-size" => spec.max_size = number()?,
            "--udid" => spec.udid = value.clone(),
            "--name" => spec.device_name = value.clone(),
            "--ios" => spec.ios = value.clone(),
            "--days-ago" => spec.date = now - number()? as i64 * 86_400,
            "--defect" => spec
                .defects
                .push(defect(value).ok_or(format!("unknown defect {value}"))?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok((PathBuf::from(dir), spec))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, spec) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("make_backup: {e}\nusage: make_backup DIR FILES [--max-size BYTES] [--udid UDID] [--name NAME] [--ios VERSION] [--days-ago N] [--defect NAME]...");
            return ExitCode::from(2);
        }
    };
    if dir.exists() {
        eprintln!("{} exists already; choose a new folder", dir.display());
        return ExitCode::from(2);
    }
    let expected = support::write_backup(&dir, &spec);
    println!(
        "wrote {} files ({} bytes) to {}",
        expected.listed,
        expected.declared_bytes,
        dir.display()
    );
    ExitCode::SUCCESS
}
