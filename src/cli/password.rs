//! Where the backup password comes from, in this order: `--password-file FILE` (its first line;
//! `-` reads standard input), the `IBACKUP_PASSWORD` environment variable, then a no-echo prompt
//! when standard input is a terminal. Never from a plain command-line argument (other users can
//! read a process's arguments), and never printed: errors name the source, not the text.
//!
//! The password is asked for only when an encrypted backup needs it, and at most once a run. On
//! Unix the prompt is our own (module `tty` below): echo goes off before the prompt is shown,
//! and the terminal is put back on every way out, Ctrl-C included. Windows uses `rpassword`.

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

    /// A new password (to turn encryption on): like [`get`](Self::get), but typed twice at a
    /// prompt, and refused when the two differ or it is empty. It is then the run's password.
    pub fn get_new(&self) -> Result<Option<&Password>, Failure> {
        if let Some(resolved) = self.resolved.get() {
            return Ok(resolved.as_ref());
        }
        let found = if self.file.is_some()
            || std::env::var_os(PASSWORD_ENV).is_some_and(|v| !v.is_empty())
        {
            self.resolve()?
        } else if std::io::stdin().is_terminal() {
            let first = prompt_with(NEW_PROMPT)?;
            let again = prompt_with(AGAIN_PROMPT)?;
            if first.as_bytes() != again.as_bytes() {
                return Err(Failure::new(
                    "password.mismatch",
                    "the two passwords typed differ",
                    "Run the command again and type the same password twice.",
                ));
            }
            Some(first)
        } else {
            None
        };
        if found.as_ref().is_some_and(|p| p.as_bytes().is_empty()) {
            return Err(Failure::new(
                "password.empty",
                "the new backup password is empty",
                "Choose a password: without one the backup cannot be encrypted.",
            ));
        }
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

/// What the prompt says; it goes to the terminal, never to stdout.
const PROMPT: &str = "Backup password (not shown): ";
/// The prompts for a new password, asked twice.
const NEW_PROMPT: &str = "New backup password (not shown): ";
const AGAIN_PROMPT: &str = "The same password again: ";

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
    Ok(first_line(bytes))
}

/// The first line of a password file, as docs/usage.md says: the bytes before the first `\n`,
/// without a `\r` that ends them (a file saved on Windows). What follows the line is wiped, not
/// kept: a second line is a note, or a second password, and never part of this one.
fn first_line(mut bytes: Vec<u8>) -> Password {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let mut len = end;
    if len > 0 && bytes[len - 1] == b'\r' {
        len -= 1;
    }
    zeroize::Zeroize::zeroize(&mut bytes[len..]);
    bytes.truncate(len);
    Password::new(bytes)
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
    prompt_with(PROMPT)
}

fn prompt_with(text: &str) -> Result<Password, Failure> {
    #[cfg(unix)]
    // The line moves into the password's own wiped memory, not copied.
    let typed = tty::read_hidden(text, MAX_PASSWORD_FILE as usize)
        .map(|mut line| Password::new(std::mem::take(&mut *line)));
    #[cfg(not(unix))]
    let typed = rpassword::prompt_password(text).map(Password::from);
    typed.map_err(|e| {
        Failure::new(
            "password.unreadable",
            format!("cannot read the password from the terminal: {e}"),
            "Give it with --password-file FILE (- reads standard input) or the \
                 IBACKUP_PASSWORD environment variable.",
        )
    })
}

#[cfg(unix)]
mod tty {
    //! The password prompt on a Unix terminal. In order: open the controlling terminal
    //! (`/dev/tty`, so a redirected stdin or stdout does not matter), save its settings, arm
    //! handlers for the signals that end a program from the keyboard or the session (SIGINT,
    //! SIGQUIT, SIGTERM, SIGHUP) that put those settings back and then let the signal end the
    //! program as it would have, turn echo off, and only then print the prompt: a key pressed
    //! the instant the prompt appears is never shown. The line is read into memory that is
    //! wiped; the settings and the signal handlers are put back on every way out.
    //!
    //! Echo goes off with TCSAFLUSH: what was typed before the prompt appeared (type-ahead) is
    //! discarded. It was typed while echo was on, so it may be on the screen already, and it was
    //! not typed in answer to the prompt (a stray Enter would otherwise submit an empty
    //! password). What is typed after the prompt appears is kept, since the flush happens before
    //! the prompt is written.

    use std::cell::UnsafeCell;
    use std::fs::{File, OpenOptions};
    use std::io::{self, Read, Write};
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicI32, Ordering};

    use zeroize::{Zeroize, Zeroizing};

    /// The signals whose default action ends the program and that a person or the session
    /// sends while a prompt waits: Ctrl-C, Ctrl-\\, `kill`, the terminal closing.
    const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP];

    /// The terminal's settings from before the prompt, for the signal handler: written only
    /// while [`SAVED_FD`] is -1 (no handler reads it then), read only while it is not.
    struct SavedSettings(UnsafeCell<MaybeUninit<libc::termios>>);
    // SAFETY: one prompt at a time (the password is asked for once a run, from the main
    // thread); the fd below orders the one write before any read.
    unsafe impl Sync for SavedSettings {}
    static SAVED: SavedSettings = SavedSettings(UnsafeCell::new(MaybeUninit::uninit()));
    /// The terminal the handler restores, or -1 when no prompt is up.
    static SAVED_FD: AtomicI32 = AtomicI32::new(-1);

    /// Puts the terminal back, moves to a new line, and lets the signal do what it would have
    /// done (SA_RESETHAND restored the default action before this ran). Only async-signal-safe
    /// calls: tcsetattr, write, raise.
    extern "C" fn restore_and_reraise(signal: libc::c_int) {
        let fd = SAVED_FD.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: SAVED was written before SAVED_FD was set; fd is the open terminal.
            unsafe {
                libc::tcsetattr(fd, libc::TCSANOW, (*SAVED.0.get()).as_ptr());
                libc::write(fd, b"\n".as_ptr().cast(), 1);
            }
        }
        // SAFETY: raising a signal is async-signal-safe; it is blocked until this returns, and
        // then takes its default action.
        unsafe {
            libc::raise(signal);
        }
    }

    /// Echo off and the handlers armed while it lives; everything put back when dropped.
    struct EchoOff {
        fd: libc::c_int,
        saved: libc::termios,
        /// The signal actions found before, for the signals whose handler was installed.
        previous: Vec<(libc::c_int, libc::sigaction)>,
    }

    impl EchoOff {
        fn new(terminal: &File) -> io::Result<EchoOff> {
            let fd = terminal.as_raw_fd();
            let mut saved = MaybeUninit::<libc::termios>::uninit();
            // SAFETY: tcgetattr fills the struct when it returns 0.
            if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: initialised by the successful tcgetattr.
            let saved = unsafe { saved.assume_init() };
            // SAFETY: no prompt is up (SAVED_FD is -1), so no handler reads SAVED now.
            unsafe { (*SAVED.0.get()).write(saved) };
            SAVED_FD.store(fd, Ordering::SeqCst);
            let mut guard = EchoOff {
                fd,
                saved,
                previous: Vec::new(),
            };
            for signal in SIGNALS {
                guard.arm(signal)?;
            }
            let mut quiet = saved;
            // No echo, except the newline that ends the line, so the cursor moves on.
            quiet.c_lflag &= !libc::ECHO;
            quiet.c_lflag |= libc::ECHONL;
            // SAFETY: a valid fd and a termios from tcgetattr.
            if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(guard)
        }

        /// Installs the restoring handler for `signal`, unless the signal is ignored (under
        /// `nohup`, say) or already handled: that choice is left as it is.
        fn arm(&mut self, signal: libc::c_int) -> io::Result<()> {
            // SAFETY: sigaction with a null new action only reads the current one.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } != 0 {
                return Err(io::Error::last_os_error());
            }
            if old.sa_sigaction != libc::SIG_DFL {
                return Ok(());
            }
            // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn(c_int).
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = restore_and_reraise as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESETHAND;
            // SAFETY: valid pointers; sa_mask is empty (zeroed, then emptied properly).
            unsafe {
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            self.previous.push((signal, old));
            Ok(())
        }
    }

    impl Drop for EchoOff {
        fn drop(&mut self) {
            // SAFETY: the fd is still open (the File outlives the guard); the settings are the
            // ones tcgetattr gave.
            unsafe { libc::tcsetattr(self.fd, libc::TCSAFLUSH, &self.saved) };
            // The terminal is back: a signal from here on needs no handler of ours.
            for (signal, old) in self.previous.drain(..) {
                // SAFETY: puts back the action sigaction reported.
                unsafe { libc::sigaction(signal, &old, std::ptr::null_mut()) };
            }
            SAVED_FD.store(-1, Ordering::SeqCst);
        }
    }

    /// Shows `prompt` on the terminal with echo off and reads one line (at most `max` bytes,
    /// without its line ending) into wiped memory.
    pub fn read_hidden(prompt: &str, max: usize) -> io::Result<Zeroizing<Vec<u8>>> {
        let terminal = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
        let guard = EchoOff::new(&terminal)?;
        (&terminal).write_all(prompt.as_bytes())?;
        let line = read_line(&terminal, max);
        drop(guard);
        line
    }

    /// One line from the terminal. In canonical mode a read returns at most one line; the end
    /// of input (Ctrl-D on an empty line) ends it too.
    fn read_line(mut terminal: &File, max: usize) -> io::Result<Zeroizing<Vec<u8>>> {
        // Room for the whole line up front: a vector that grows leaves copies behind.
        let mut line = Zeroizing::new(Vec::with_capacity(max + 1));
        let mut chunk = [0u8; 256];
        let result = loop {
            match terminal.read(&mut chunk) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    let part = &chunk[..n];
                    let end = part.iter().position(|&b| b == b'\n');
                    let keep = &part[..end.unwrap_or(n)];
                    if line.len() + keep.len() > max {
                        break Err(io::Error::other(
                            "the line typed is longer than any password",
                        ));
                    }
                    line.extend_from_slice(keep);
                    if end.is_some() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        chunk.zeroize();
        result?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_gives_its_first_line_only() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"secret", b"secret"),
            (b"secret\n", b"secret"),
            (b"secret\r\n", b"secret"),
            (b"secret\nsecond line\n", b"secret"),
            (b"secret\r\nold-password\r\n", b"secret"),
            (b"\nsecret\n", b""),
            (b" spaces kept \n", b" spaces kept "),
        ];
        for (file, password) in cases {
            assert_eq!(
                first_line(file.to_vec()).as_bytes(),
                password,
                "{:?}",
                String::from_utf8_lossy(file)
            );
        }
    }
}
