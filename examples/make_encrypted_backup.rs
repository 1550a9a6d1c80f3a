//! Writes an encrypted backup for `scripts/bench-deep.sh`:
//! `cargo run --release --example make_encrypted_backup -- DIR FILES SIZE` with the password in
//! IBACKUP_PASSWORD, where SIZE is either megabytes per file (a few large blobs) or `small`
//! (files of 1 to 2,048 bytes, sizes drawn at random, as in a backup of many small files). Prints
//! one line per blob, `<blob path> <key hex>`, so the benchmark can decrypt the same bytes with
//! OpenSSL. The writer is the test-support one (tests/support_encrypt), which does not use
//! ibackup's own crypto code.

#[path = "../tests/support_encrypt/mod.rs"]
mod support_encrypt;

use std::path::PathBuf;
use std::process::ExitCode;

/// The largest file of a `small` backup, in bytes.
const SMALL_MAX: usize = 2048;

/// How big each file is.
#[derive(Clone, Copy)]
enum Sizes {
    /// About this many megabytes each, a few bytes short so each blob ends in partial padding.
    Megabytes(usize),
    /// 1 to [`SMALL_MAX`] bytes, drawn at random.
    Small,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes = match args.get(2).map(String::as_str) {
        Some("small") => Some(Sizes::Small),
        Some(mb) => mb.parse().ok().map(Sizes::Megabytes),
        None => None,
    };
    let parsed = (
        args.first().map(PathBuf::from),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
        sizes,
    );
    let (Some(dir), Some(files), Some(sizes)) = parsed else {
        eprintln!(
            "usage: make_encrypted_backup DIR FILES MB_PER_FILE|small \
             (password in IBACKUP_PASSWORD)"
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
                let (domain, path, len) = match sizes {
                    Sizes::Megabytes(mb) => (
                        "CameraRollDomain",
                        format!("Media/DCIM/100APPLE/IMG_{i:04}.MOV"),
                        mb * 1_000_000 - i % 16,
                    ),
                    Sizes::Small => {
                        let draw = u16::from_le_bytes(rng.fill::<2>());
                        (
                            "HomeDomain",
                            format!("Library/Caches/small/{:03}/{i}.dat", i % 1000),
                            1 + usize::from(draw) % SMALL_MAX,
                        )
                    }
                };
                // Paths must be 'static for the writer's row plan; they leak once in a process
                // that ends right after.
                let path: &'static str = Box::leak(path.into_boxed_str());
                (domain, path, 1, rng.vec(len), 4, None)
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
