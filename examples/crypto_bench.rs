//! Times ibackup's encryption core for scripts/bench-kdf.sh, which runs Python's hashlib and
//! OpenSSL on the same inputs as baselines. Not a user tool: it takes hex keys on the command
//! line.
//!
//! `crypto_bench kdf DPSL_HEX DPIC SALT_HEX ITER` reads the password from standard input (one
//! line), derives the key-encryption key exactly as `Keybag::unlock` does, and prints it in hex
//! with the seconds taken. `crypto_bench check KEY_HEX FILE...` runs `check_blob` over each file
//! in turn on one thread and prints the bytes, seconds and MB/s.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use ibackup::backup::crypto::{check_blob, FileKey, KEY_LEN};
use ibackup::backup::keybag::{derive_kek, KdfParams, KdfStep, Password};

fn hex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 {
        return Err(format!("odd-length hex: {text}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| format!("{text}: {e}")))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn number(text: &str) -> Result<u32, String> {
    text.parse().map_err(|e| format!("{text}: {e}"))
}

fn kdf(args: &[String]) -> Result<(), String> {
    let [dpsl, dpic, salt, iter] = args else {
        return Err("usage: crypto_bench kdf DPSL_HEX DPIC SALT_HEX ITER < password".into());
    };
    let mut line = Vec::new();
    std::io::stdin()
        .read_to_end(&mut line)
        .map_err(|e| e.to_string())?;
    let password = Password::from_line(line);
    let params = KdfParams {
        sha256: Some(KdfStep {
            salt: hex(dpsl)?,
            iterations: number(dpic)?,
        }),
        sha1: KdfStep {
            salt: hex(salt)?,
            iterations: number(iter)?,
        },
    };
    let start = Instant::now();
    let kek = derive_kek(&password, &params);
    let seconds = start.elapsed().as_secs_f64();
    println!("kek {}", to_hex(&kek[..]));
    println!("seconds {seconds:.3}");
    Ok(())
}

fn check(args: &[String]) -> Result<(), String> {
    let [key, files @ ..] = args else {
        return Err("usage: crypto_bench check KEY_HEX FILE...".into());
    };
    let key: [u8; KEY_LEN] = hex(key)?
        .try_into()
        .map_err(|_| "the key must be 32 bytes".to_string())?;
    let key = FileKey::from_bytes(&key);
    let start = Instant::now();
    let mut bytes = 0u64;
    for file in files {
        let reader = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
        let found = check_blob(reader, &key).map_err(|e| format!("{file}: {e}"))?;
        if !found.padding_valid() {
            return Err(format!("{file}: invalid padding"));
        }
        bytes += found.encrypted_len;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("bytes {bytes}");
    println!("seconds {seconds:.3}");
    println!("MB/s {:.1}", bytes as f64 / 1e6 / seconds);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((command, rest)) if command == "kdf" => kdf(rest),
        Some((command, rest)) if command == "check" => check(rest),
        _ => Err("usage: crypto_bench kdf|check ...".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crypto_bench: {message}");
            ExitCode::FAILURE
        }
    }
}
