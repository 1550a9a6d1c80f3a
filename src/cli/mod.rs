//! The command line: flags (defined once, here, with their help), dispatch to one command, and
//! the mapping from outcomes to the documented exit codes (docs/exit-codes.md).
//!
//! Commands gather facts from `backup` and `device`, then hand result types to `render`. They do
//! no parsing and speak no protocol themselves.

pub mod backup;
pub mod device;
pub mod diff;
pub mod extract;
pub mod inspect;
pub mod ls;
pub mod manual;
pub mod password;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::device::TransportChoice;
use crate::outcome::{CommandResult, Failure, Status};
use crate::render::{ColorChoice, Output};

/// Tells an iPhone owner whether their backups are healthy and what to do when they are not.
///
/// ibackup reads iPhone backups made by Finder or iTunes (and the phone itself, when one is
/// plugged in) without changing anything, says whether a backup is complete and can be restored,
/// and what to do when it is not, step by step. `-h` gives a summary; `--help` adds examples,
/// the environment variables and the exit codes; `ibackup man` prints the manual page.
#[derive(Debug, Parser)]
#[command(
    name = "ibackup",
    version,
    long_version = manual::LONG_VERSION.as_str(),
    about,
    long_about,
    after_help = "Examples, environment variables and exit codes: ibackup --help",
    after_long_help = manual::after_long_help(),
    max_term_width = 100
)]
pub struct Args {
    /// Print machine-readable JSON on stdout (schemas in docs/json.md) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// When to colour the text output. In `auto`, NO_COLOR, CLICOLOR_FORCE, CLICOLOR and TERM
    /// decide, as most tools do (see --help).
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
    /// Print only the verdict, no details and no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more details (every missing file, not just the first few).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// How to reach the iPhone: `usbmuxd` (the daemon), `usb` (ibackup talks USB itself, no
    /// daemon needed), or `auto` (the daemon when one answers, otherwise USB).
    #[arg(long, global = true, value_enum, default_value_t = TransportArg::Auto, env = "IBACKUP_TRANSPORT")]
    pub transport: TransportArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TransportArg {
    Auto,
    Usbmuxd,
    Usb,
}

impl From<TransportArg> for TransportChoice {
    fn from(arg: TransportArg) -> Self {
        match arg {
            TransportArg::Auto => TransportChoice::Auto,
            TransportArg::Usbmuxd => TransportChoice::Usbmuxd,
            TransportArg::Usb => TransportChoice::Usb,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report on a backup, a folder of backups, or (with no TARGET) the connected iPhone and the
    /// backups in the default backup folder.
    Inspect {
        /// A backup folder, or a folder that holds several backups (MobileSync/Backup).
        target: Option<PathBuf>,
        /// Which phone to look at when several are connected (its UDID).
        #[arg(long = "device", value_name = "UDID")]
        udid: Option<String>,
        /// The words iOS showed ("Backup needs restart", "Not Enough iCloud Storage", ...):
        /// they decide which fixes come first. Typos and quotes are fine.
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Check that a backup is complete before restoring it, and with a phone connected, that it
    /// can be restored to it. Exit 0 complete (and ready), 1 incomplete or not restorable,
    /// 2 could not check.
    Verify {
        /// The backup folder (the one holding Manifest.db and Info.plist).
        backup: PathBuf,
        /// Which phone to judge restore readiness against when several are connected.
        #[arg(long = "device", value_name = "UDID")]
        udid: Option<String>,
        #[command(flatten)]
        password: PasswordArg,
        /// Also decrypt every file of an encrypted backup (checking it is intact to the byte),
        /// and run SQLite's quick_check on the key databases (Messages, Photos, Contacts, Notes,
        /// call history, WhatsApp). Reads every byte of the backup, so it takes longer.
        #[arg(long)]
        deep: bool,
    },
    /// Back up the connected iPhone to this computer (as Finder does), then verify the new
    /// backup. It goes into FOLDER/<UDID>; the backup already there stays restorable until the
    /// new one is verified complete. Exit 0 complete, 1 failed or incomplete (the previous
    /// backup kept), 2 could not start or check, 130 interrupted.
    #[command(
        after_long_help = "Examples:\n  ibackup backup --to /mnt/disk/iPhoneBackups\n  ibackup backup --full\n  ibackup backup --encrypt --password-file pw.txt\n  ibackup backup --json > result.json"
    )]
    Backup {
        /// The folder that holds backups (default: the platform's backup folder; on Linux this
        /// option or IBACKUP_BACKUP_DIR is needed). Created when missing.
        #[arg(long, value_name = "FOLDER")]
        to: Option<PathBuf>,
        /// Which phone, when several are connected (its UDID).
        #[arg(long = "device", value_name = "UDID")]
        udid: Option<String>,
        /// Ask the iPhone for a full backup even when one is already there (by default it sends
        /// only what changed).
        #[arg(long)]
        full: bool,
        /// Turn on backup encryption first (the password comes from --password-file,
        /// IBACKUP_PASSWORD or a prompt asked twice). Encrypted backups keep saved passwords,
        /// Health and Wi-Fi settings.
        #[arg(long)]
        encrypt: bool,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// List the files in a backup: domain, path, size, modified time, and whether each is in
    /// the folder (present, missing, wrong size). Exit 0 listed, 1 some listed file is missing or
    /// cut short, 2 could not read.
    #[command(
        after_long_help = "Examples:\n  ibackup ls BACKUP --domain HomeDomain 'Library/SMS/*'\n  ibackup ls BACKUP --app net.whatsapp.WhatsApp\n  ibackup ls BACKUP '*.heic' --json | jq .path"
    )]
    Ls {
        /// The backup folder (the one holding Manifest.db and Info.plist).
        backup: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Copy files out of a backup into DIR (decrypting an encrypted one), as DIR/<domain>/<path>
    /// or, with --category, in a readable layout. Works on incomplete backups: what is there is
    /// written and what is missing is reported. Never writes outside DIR nor into the backup.
    /// Exit 0 all written, 1 some selected file was missing or damaged, 2 could not start.
    #[command(
        after_long_help = "Examples:\n  ibackup extract BACKUP --to ~/Rescued --category messages\n  ibackup extract BACKUP --to out --category photos --category contacts\n  ibackup extract BACKUP --to out --domain HomeDomain 'Library/Notes/*'"
    )]
    Extract {
        /// The backup folder.
        backup: PathBuf,
        /// Where the files go (created when missing).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Replace files already in DIR (by default an existing file stops the run before
        /// anything is written).
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// What changed between two backups of a phone: files added, removed and changed, by
    /// domain and app, with size deltas, and what the newer one lost. Exit 0 compared, 1 the
    /// newer backup lost something (a domain or app that vanished), 2 could not read.
    #[command(
        after_long_help = "Examples:\n  ibackup diff OLD NEW\n  ibackup diff OLD NEW --json"
    )]
    Diff {
        /// The older backup folder.
        old: PathBuf,
        /// The newer backup folder.
        new: PathBuf,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// The connected phone's live state: model, iOS, storage, battery, backup settings, Find My.
    Device {
        /// Which phone, when several are connected (its UDID).
        #[arg(long = "device", value_name = "UDID")]
        udid: Option<String>,
    },
    /// List connected phones and how each is reached.
    Devices,
    /// "Trust This Computer": pair with the phone and save the pair record.
    Pair {
        /// Which phone, when several are connected (its UDID).
        #[arg(long = "device", value_name = "UDID")]
        udid: Option<String>,
    },
    /// Print the completion script for SHELL (docs/usage.md says where it goes).
    #[command(
        after_long_help = "Examples:\n  ibackup completions bash > ~/.local/share/bash-completion/completions/ibackup\n  ibackup completions zsh > ~/.zfunc/_ibackup\n  ibackup completions fish > ~/.config/fish/completions/ibackup.fish\n  ibackup completions powershell >> $PROFILE"
    )]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `ibackup man | man -l -` shows it.
    Man,
}

/// The backup password option, shared by `verify` and `inspect`.
#[derive(Debug, clap::Args)]
pub struct PasswordArg {
    /// Read the password of an encrypted backup from FILE (its first line; `-` reads standard
    /// input). Otherwise IBACKUP_PASSWORD is used, else it is asked for when run in a terminal.
    /// There is deliberately no option that takes the password itself.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// Which files of a backup: shared by `ls` and `extract` (backup::select).
#[derive(Debug, Clone, clap::Args)]
pub struct SelectArgs {
    /// Only this domain (HomeDomain, CameraRollDomain, AppDomain-<bundle id>, ...).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Only this app's files: its container, extensions and shared groups (by bundle id, e.g.
    /// net.whatsapp.WhatsApp).
    #[arg(long, value_name = "BUNDLE")]
    pub app: Option<String>,
    /// Only these kinds of data (repeat for several).
    #[arg(long, value_enum, value_name = "CATEGORY")]
    pub category: Vec<CategoryArg>,
    /// A glob on the file's path inside its domain (`*` any characters, `?` one; case does not
    /// matter); without `*` or `?`, paths containing it.
    pub pattern: Option<String>,
}

/// `--category` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CategoryArg {
    Messages,
    Photos,
    Contacts,
    Notes,
    CallHistory,
    Whatsapp,
    Health,
    Keychain,
}

impl From<CategoryArg> for crate::backup::contents::Category {
    fn from(arg: CategoryArg) -> Self {
        use crate::backup::contents::Category;
        match arg {
            CategoryArg::Messages => Category::Messages,
            CategoryArg::Photos => Category::Photos,
            CategoryArg::Contacts => Category::Contacts,
            CategoryArg::Notes => Category::Notes,
            CategoryArg::CallHistory => Category::CallHistory,
            CategoryArg::Whatsapp => Category::Whatsapp,
            CategoryArg::Health => Category::Health,
            CategoryArg::Keychain => Category::Keychain,
        }
    }
}

impl SelectArgs {
    pub fn selection(&self) -> crate::backup::select::Selection {
        crate::backup::select::Selection {
            domain: self.domain.clone(),
            app: self.app.clone(),
            categories: self.category.iter().map(|&c| c.into()).collect(),
            pattern: self.pattern.clone(),
        }
    }
}

/// How backups are checked in this run: the password (asked for once, when first needed) and
/// whether to go deep.
pub struct CheckContext {
    pub password: password::PasswordSource,
    pub deep: bool,
    /// How to reach a phone for restore readiness (`--transport`).
    pub transport: TransportChoice,
}

impl CheckContext {
    pub fn new(password: PasswordArg, deep: bool, transport: TransportChoice) -> Self {
        CheckContext {
            password: password::PasswordSource::new(password.password_file),
            deep,
            transport,
        }
    }
}

/// Checks one backup with a progress bar, turning a fatal error into a [`Failure`].
fn check_backup(
    out: &Output,
    ctx: &CheckContext,
    path: &std::path::Path,
) -> Result<crate::backup::BackupReport, Failure> {
    // Asked before the progress bar starts, so the prompt is not drawn over.
    let password = if crate::backup::needs_password(path) {
        ctx.password.get()?
    } else {
        None
    };
    let options = crate::backup::verify::Options {
        password,
        deep: ctx.deep,
    };
    let progress = crate::render::ScanProgress(out.spinner("Reading the manifest"));
    let result = crate::backup::verify::verify_with(path, options, &progress);
    progress.0.finish_and_clear();
    result.map_err(|e| Failure::new(e.code(), e.to_string(), e.hint()))
}

/// The connected phone, if one answers: its state, or why it could not be read. No phone (or no
/// daemon) is not an error here: the backup commands work without one.
fn connected_phone(
    out: &Output,
    udid: Option<&str>,
    transport: TransportChoice,
) -> (Option<crate::device::DeviceState>, Option<String>) {
    let spinner = out.spinner("Looking for a connected iPhone");
    let result = crate::device::connected_device_via(transport, udid);
    spinner.finish_and_clear();
    match result {
        Ok(state) => (state, None),
        Err(e) => (None, Some(format!("{e}. {}", e.hint()))),
    }
}

/// Runs the command and maps its outcome onto the documented exit codes.
pub fn run(args: Args) -> ExitCode {
    let color = match args.color {
        ColorArg::Auto => ColorChoice::Auto,
        ColorArg::Always => ColorChoice::Always,
        ColorArg::Never => ColorChoice::Never,
    };
    let out = Output::new(args.json, color, args.quiet, args.verbose);
    let transport = TransportChoice::from(args.transport);
    let result = match args.command {
        Command::Inspect {
            target,
            udid,
            message,
            password,
        } => {
            let ctx = CheckContext::new(password, false, transport);
            inspect::run(
                &out,
                &ctx,
                target.as_deref(),
                udid.as_deref(),
                message.as_deref(),
            )
        }
        Command::Verify {
            backup,
            udid,
            password,
            deep,
        } => {
            let ctx = CheckContext::new(password, deep, transport);
            verify::run(&out, &ctx, &backup, udid.as_deref())
        }
        Command::Backup {
            to,
            udid,
            full,
            encrypt,
            password,
        } => {
            let ctx = CheckContext::new(password, false, transport);
            backup::run(
                &out,
                &ctx,
                &backup::BackupArgs {
                    to,
                    udid,
                    full,
                    encrypt,
                },
            )
        }
        Command::Ls {
            backup,
            select,
            password,
        } => {
            let ctx = CheckContext::new(password, false, transport);
            ls::run(&out, &ctx, &backup, &select.selection())
        }
        Command::Extract {
            backup,
            to,
            overwrite,
            select,
            password,
        } => {
            let ctx = CheckContext::new(password, false, transport);
            extract::run(&out, &ctx, &backup, &to, overwrite, &select.selection())
        }
        Command::Diff { old, new, password } => {
            let ctx = CheckContext::new(password, false, transport);
            diff::run(&out, &ctx, &old, &new)
        }
        Command::Device { udid } => device::device(&out, udid.as_deref(), transport),
        Command::Devices => device::devices(&out, transport),
        Command::Pair { udid } => device::pair(&out, udid.as_deref(), transport),
        Command::Completions { shell } => {
            out.print_generated(&manual::completions(shell));
            Ok(Status::Ok)
        }
        Command::Man => match manual::man_page() {
            Ok(page) => {
                out.print_generated(&page);
                Ok(Status::Ok)
            }
            Err(e) => Err(Failure::new(
                "output.unwritable",
                format!("cannot write the manual page: {e}"),
                "This is a bug in ibackup: please report it.",
            )),
        },
    };
    let status = match result {
        Ok(status) => status,
        Err(failure) => {
            out.failure(&failure);
            Status::CouldNotCheck
        }
    };
    // Whatever the command found, a result that could not be written is no result.
    match out.write_failure() {
        Some(failure) => {
            out.failure(&failure);
            Status::CouldNotCheck.into()
        }
        None => status.into(),
    }
}

/// The command line could not be parsed, or asked for `--help` or `--version`: clap's text, and
/// its exit code (2 for a usage error, 0 for help) unless that text could not be written.
pub fn parse_failed(error: clap::Error) -> ExitCode {
    use std::io::Write;
    let printed = error.print().and_then(|()| std::io::stdout().flush());
    match printed {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            let _ = writeln!(std::io::stderr(), "error: cannot write the output: {e}.");
            Status::CouldNotCheck.into()
        }
        _ => ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2)),
    }
}
