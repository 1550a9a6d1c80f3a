//! Where the backup password comes from, in this order: `--password-file FILE` (`-` reads
//! standard input), the `IBACKUP_PASSWORD` environment variable, then a no-echo prompt when
//! standard input is a terminal. Never from a plain command-line argument (other users can read
//! a process's arguments), and never printed: errors name the source, not the text.
//!
//! The password is asked for only when an encrypted backup needs it, and at most once a run.

use std::cell::OnceCell;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use super::Failure;
use crate::backup::keybag::Password;

/// The environment variable that may hold the backup password.
pub const PASSWORD_ENV: &str = "IBACKUP_PASSWORD";

/// A password file larger than this is refused: it is not a password file.
const MAX_PASSWORD_FILE: u64 = 64 * 1024;

/// Resolves the password on first use and remembers it for the rest of the run.
pub struct PasswordSource {
    file: Option<PathBuf>,
    resolved: OnceCell<Option<Password>>,
}

impl PasswordSource {
    pub fn new(file: Option<PathBuf>) -> Self {
        PasswordSource {
            file,
            resolved: OnceCell::new(),
        }
    }

    /// The password, from the first source that has one; None when no source has one and there
    /// is no terminal to ask on.
    pub fn get(&self) -> Result<Option<&Password>, Failure> {
        if let Some(resolved) = self.resolved.get() {
            return Ok(resolved.as_ref());
        }
        let found = self.resolve()?;
        Ok(self.resolved.get_or_init(|| found).as_ref())
    }

    /// Whether a password was obtained (so far) in this run.
    pub fn given(&self) -> bool {
        self.resolved.get().is_some_and(Option::is_some)
    }

    fn resolve(&self) -> Result<Option<Password>, Failure> {
        if let Some(file) = &self.file {
            return read_file(file).map(Some);
        }
        if let Some(value) = std::env::var_os(PASSWORD_ENV) {
            if !value.is_empty() {
                return Ok(Some(Password::new(value.into_encoded_bytes())));
            }
        }
        if std::io::stdin().is_terminal() {
            return prompt().map(Some);
        }
        Ok(None)
    }
}

fn read_file(path: &Path) -> Result<Password, Failure> {
    let (what, read) = if path == Path::new("-") {
        ("standard input".to_string(), read_bounded(std::io::stdin()))
    } else {
        (
            path.display().to_string(),
            std::fs::File::open(path).and_then(read_bounded),
        )
    };
    let bytes = read.map_err(|e| {
        Failure::new(
            "password.unreadable",
            format!("cannot read the password from {what}: {e}"),
            "Check the path given to --password-file (use - to read the password from standard \
             input).",
        )
    })?;
    Ok(Password::from_line(bytes))
}

fn read_bounded(reader: impl Read) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(MAX_PASSWORD_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PASSWORD_FILE {
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(std::io::Error::other(
            "it is larger than 64 KiB, which is not a password",
        ));
    }
    Ok(bytes)
}

fn prompt() -> Result<Password, Failure> {
    rpassword::prompt_password("Backup password (not shown): ")
        .map(Password::from)
        .map_err(|e| {
            Failure::new(
                "password.unreadable",
                format!("cannot read the password from the terminal: {e}"),
                "Give it with --password-file FILE (- reads standard input) or the \
                 IBACKUP_PASSWORD environment variable.",
            )
        })
}
