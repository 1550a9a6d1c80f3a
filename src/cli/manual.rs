//! The command line's own documentation, all drawn from the clap definition in `cli`: the long
//! `--help` text (examples, environment variables, exit codes), the long `--version`, the man
//! page (`ibackup man`) and the shell completion scripts (`ibackup completions SHELL`).
//!
//! The two tables here, [`EXAMPLES`] and [`ENVIRONMENT`], feed both `--help` and the man page, so
//! they cannot drift apart. The generators return bytes; `render` prints them.

use std::sync::LazyLock;

use clap::CommandFactory;

use super::Args;

/// A few runs worth copying, each with what it does.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "ibackup inspect",
        "The connected iPhone (if any) and the backups in this computer's backup folder.",
    ),
    (
        "ibackup inspect ~/Backups/00008030-001A2B3C4D5E6F",
        "One backup: what it holds, whether it is complete, and what to do.",
    ),
    (
        "ibackup inspect --message \"Backup needs restart\"",
        "The fixes for what iOS said, in the order to try them.",
    ),
    (
        "ibackup verify BACKUP --deep",
        "Before a restore: every file decrypted and hashed, the key databases checked.",
    ),
    (
        "ibackup verify BACKUP --json | jq .verdict",
        "The verdict for a script (schemas in docs/json.md).",
    ),
    (
        "ibackup backup --to ~/iPhoneBackups",
        "Back up the plugged-in phone as Finder does, then verify the new backup.",
    ),
    (
        "ibackup device",
        "The plugged-in phone's model, iOS, storage, battery and backup settings.",
    ),
    (
        "ibackup pair",
        "\"Trust This Computer\": unlock the phone and tap Trust when asked.",
    ),
];

/// Every environment variable ibackup reads, with what it changes.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "IBACKUP_PASSWORD",
        "The password of encrypted backups, when --password-file is not given.",
    ),
    (
        "IBACKUP_BACKUP_DIR",
        "The folder of backups `inspect` looks in when given no TARGET, and `backup` writes \
         into when given no --to, instead of this computer's default one.",
    ),
    (
        "IBACKUP_TRANSPORT",
        "The default of --transport: auto, usbmuxd or usb.",
    ),
    (
        "IBACKUP_DEVICE_WAIT",
        "Seconds `device`, `pair` and `backup` wait for a phone to be plugged in (0 to 86400; default 10 \
         on a terminal, else 2).",
    ),
    (
        "IBACKUP_PASSCODE_WAIT",
        "Seconds `backup` waits for the passcode to be entered when the phone asks for it \
         (0 to 86400; default 180).",
    ),
    (
        "IBACKUP_PHONE_SILENCE",
        "Seconds `backup` waits for a phone that says nothing before giving up (0 to 86400; \
         default 600).",
    ),
    (
        "IBACKUP_PAIR_TIMEOUT",
        "Seconds `pair` waits for Trust to be tapped on the phone (0 to 86400; default 120).",
    ),
    (
        "IBACKUP_LOCKDOWN_DIR",
        "The folder of pair records used when ibackup talks USB itself (default \
         /var/lib/lockdown; macOS /var/db/lockdown; Windows %ProgramData%\\Apple\\Lockdown).",
    ),
    (
        "USBMUXD_SOCKET_ADDRESS",
        "Where the usbmuxd daemon listens: UNIX:/path, a socket path, host:port or [v6]:port \
         (default /var/run/usbmuxd; Windows 127.0.0.1:27015).",
    ),
    (
        "IBACKUP_USB_EMULATOR",
        "For tests: a Unix socket to an emulated phone that direct USB talks to instead of \
         the USB bus.",
    ),
    (
        "NO_COLOR",
        "Set and not empty: no colour, whatever CLICOLOR_FORCE says (--color always still \
         colours).",
    ),
    (
        "CLICOLOR_FORCE",
        "Set and not empty: colour even when the output is not a terminal (unless NO_COLOR).",
    ),
    (
        "CLICOLOR",
        "0: no colour on a terminal either; 1: colour on a terminal even if TERM has none.",
    ),
    (
        "TERM",
        "Unset or `dumb`: no colour in auto mode (Unix), unless CLICOLOR=1 or CI is set.",
    ),
    (
        "CI",
        "Set (as continuous integration services do): colour on a terminal whatever TERM says.",
    ),
    (
        "HOME",
        "macOS: the backup folder is ~/Library/Application Support/MobileSync/Backup.",
    ),
    (
        "APPDATA",
        "Windows: the backup folder %APPDATA%\\Apple Computer\\MobileSync\\Backup (iTunes).",
    ),
    (
        "USERPROFILE",
        "Windows: the backup folder %USERPROFILE%\\Apple\\MobileSync\\Backup (Apple Devices, \
         iTunes from the Microsoft Store).",
    ),
    (
        "ProgramData",
        "Windows: the folder of pair records, %ProgramData%\\Apple\\Lockdown.",
    ),
];

/// What the exit codes mean (docs/exit-codes.md).
const EXIT_STATUS: &str = "0 a report was printed (for verify: the backup is complete); 1 verify \
    found the backup incomplete or not restorable to the phone; 2 nothing could be checked \
    (a usage error, unreadable input, no phone). docs/exit-codes.md has the details.";

/// `--version`: the version, then the target this build is for and what it can do.
pub static LONG_VERSION: LazyLock<String> = LazyLock::new(|| {
    let usb = if crate::device::transport::usb::AVAILABLE {
        "yes"
    } else {
        "no (this build reaches phones through the usbmuxd daemon or Apple's service only)"
    };
    format!(
        "{}\ntarget: {}\ndirect USB: {usb}",
        env!("CARGO_PKG_VERSION"),
        env!("IBACKUP_TARGET")
    )
});

/// The end of the long `--help`: examples, the environment, the exit codes.
pub fn after_long_help() -> String {
    let mut text = String::from("Examples:\n");
    for (command, what) in EXAMPLES {
        text.push_str(&format!("  {command}\n      {what}\n"));
    }
    text.push_str("\nEnvironment:\n");
    for (name, what) in ENVIRONMENT {
        text.push_str(&format!("  {name}\n      {what}\n"));
    }
    text.push_str(&format!("\nExit status:\n  {EXIT_STATUS}\n"));
    text.push_str("\nThe manual page: `ibackup man | man -l -`. Documents: docs/usage.md.");
    text
}

/// The completion script for `shell`, for a binary called `ibackup`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "ibackup", &mut script);
    script
}

/// The man page (section 1, roff): the top level as clap_mangen draws it, then one section per
/// command with its own options, then the environment, examples and exit status.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut command = Args::command();
    command.build();
    // The long help's tail is in the sections below, laid out for a man page.
    let top = command
        .clone()
        .after_long_help(None::<&str>)
        .after_help(None::<&str>);
    let man = clap_mangen::Man::new(top.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    // The commands are described on this page, not on pages of their own.
    let mut list = Vec::new();
    man.render_subcommands_section(&mut list)?;
    let mut list = String::from_utf8_lossy(&list).into_owned();
    for sub in top.get_subcommands() {
        let name = sub.get_name();
        list = list.replace(&format!("ibackup\\-{name}(1)"), &format!("ibackup {name}"));
    }
    page.extend_from_slice(list.as_bytes());
    for sub in top.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("ibackup {}", sub.get_name());
        page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        // The global options are described once, above.
        let mut own = sub.clone().name(name.clone()).bin_name(name);
        for global in top.get_arguments().filter(|a| a.is_global_set()) {
            own = own.mut_arg(global.get_id().clone(), |a| a.hide(true));
        }
        let sub_man = clap_mangen::Man::new(own);
        let mut part = Vec::new();
        sub_man.render_synopsis_section(&mut part)?;
        sub_man.render_description_section(&mut part)?;
        sub_man.render_options_section(&mut part)?;
        // Within a command, its headings are subsections.
        let part = String::from_utf8_lossy(&part).replace("\n.SH ", "\n.SS ");
        let part = part
            .strip_prefix(".SH ")
            .map_or(part.clone(), |p| format!(".SS {p}"));
        page.extend_from_slice(part.as_bytes());
    }
    page.extend_from_slice(b".SH ENVIRONMENT\n");
    for (name, what) in ENVIRONMENT {
        page.extend_from_slice(format!(".TP\n\\fB{}\\fR\n{}\n", roff(name), roff(what)).as_bytes());
    }
    page.extend_from_slice(b".SH EXAMPLES\n");
    for (command, what) in EXAMPLES {
        page.extend_from_slice(
            format!(".TP\n\\fB{}\\fR\n{}\n", roff(command), roff(what)).as_bytes(),
        );
    }
    page.extend_from_slice(format!(".SH \"EXIT STATUS\"\n{}\n", roff(EXIT_STATUS)).as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Text as roff shows it literally: backslashes and hyphens escaped, and no line that could be
/// taken for a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_text_cannot_issue_requests() {
        assert_eq!(roff(".SH x"), "\\&.SH x");
        assert_eq!(roff(r"%APPDATA%\Apple --x"), r"%APPDATA%\eApple \-\-x");
    }
}
