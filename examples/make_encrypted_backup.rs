//! Writes a large encrypted backup for `scripts/bench-deep.sh`:
//! `cargo run --release --example make_encrypted_backup -- DIR FILES MB_PER_FILE` with the
//! password in IBACKUP_PASSWORD. Prints one line per blob, `<blob path> <key hex>`, so the
//! benchmark can decrypt the same bytes with OpenSSL. The writer is the test-support one
//! (tests/support_encrypt), which does not use ibackup's own crypto code.

#[path = "../tests/support_encrypt/mod.rs"]
mod support_encrypt;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (
        args.first().map(PathBuf::from),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    );
    let (Some(dir), Some(files), Some(mb)) = parsed else {
        eprintln!(
            "usage: make_encrypted_backup DIR FILES MB_PER_FILE (password in IBACKUP_PASSWORD)"
        );
        return ExitCode::from(2);
    };
    let Some(password) = std::env::var_os("IBACKUP_PASSWORD") else {
        eprintln!("set IBACKUP_PASSWORD to the password to encrypt with");
        return ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let rows = |rng: &mut support_encrypt::Bytes| {
        (0..files)
            .map(|i| {
                // Paths must be 'static for the writer's row plan; a few dozen short strings
                // leak once in a process that ends right after.
                let path: &'static str =
                    Box::leak(format!("Media/DCIM/100APPLE/IMG_{i:04}.MOV").into_boxed_str());
                // A few bytes short of whole megabytes, so each blob ends in partial padding.
                let data = rng.vec(mb * 1_000_000 - i % 16);
                ("CameraRollDomain", path, 1, data, 4, None)
            })
            .collect()
    };
    let written = support_encrypt::write_encrypted_backup_with(
        &dir,
        password.as_encoded_bytes(),
        1000,
        100,
        rows,
    );
    for file in written {
        if let Some(key) = file.key_hex {
            let blob = dir.join(&file.file_id[..2]).join(&file.file_id);
            println!("{} {key}", blob.display());
        }
    }
    ExitCode::SUCCESS
}
