//! The conventions of the command line people already use: `--version` and its long form, short
//! `-h` and long `--help`, shell completions and the man page in step with the clap definition,
//! every environment variable documented, colour as NO_COLOR / CLICOLOR / CLICOLOR_FORCE / TERM
//! say, and a spinner (never an empty 0/0 bar) while the length of a wait is unknown.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;

use support::Ibackup;

const SHELLS: [&str; 4] = ["bash", "zsh", "fish", "powershell"];

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-backup/00008110-001A2C3E0E38801E")
}

/// Every command name (nested ones too) and every long flag of the clap definition, as typed.
fn words_of_the_definition() -> BTreeSet<String> {
    fn walk(command: &clap::Command, words: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                words.insert(format!("--{long}"));
            }
        }
        for sub in command.get_subcommands() {
            words.insert(sub.get_name().to_string());
            walk(sub, words);
        }
    }
    let mut command = ibackup::cli::Args::command();
    command.build();
    let mut words = BTreeSet::new();
    walk(&command, &mut words);
    // The definition really has them: a walk that found nothing would pass every check below.
    for known in [
        "inspect",
        "verify",
        "pair",
        "man",
        "--deep",
        "--message",
        "--version",
    ] {
        assert!(words.contains(known), "{known} missing from {words:?}");
    }
    words
}

fn ok_stdout(run: &support::Run, what: &str) -> String {
    assert_eq!(run.code(), Some(0), "{what}: {}", run.stderr());
    run.stdout()
}

#[test]
fn version_is_short_and_its_long_form_names_the_build() {
    let short = ok_stdout(&Ibackup::new(["-V"]).run(), "-V");
    assert_eq!(short, format!("ibackup {}\n", env!("CARGO_PKG_VERSION")));
    let long = ok_stdout(&Ibackup::new(["--version"]).run(), "--version");
    assert!(long.starts_with(&short), "{long}");
    let target = long
        .lines()
        .find_map(|l| l.strip_prefix("target: "))
        .unwrap_or_else(|| panic!("no target line: {long}"));
    assert!(target.contains(std::env::consts::ARCH), "{target}");
    assert!(target.contains(std::env::consts::OS), "{target}");
    let usb = if cfg!(windows) {
        "direct USB: no"
    } else {
        "direct USB: yes"
    };
    assert!(long.lines().any(|l| l.starts_with(usb)), "{long}");
}

#[test]
fn short_help_is_a_summary_and_long_help_has_examples_and_the_environment() {
    let short = ok_stdout(&Ibackup::new(["-h"]).run(), "-h");
    let long = ok_stdout(&Ibackup::new(["--help"]).run(), "--help");
    assert!(!short.contains("Examples:"), "{short}");
    assert!(
        short.contains("ibackup --help"),
        "-h says where the rest is: {short}"
    );
    for heading in ["Examples:", "Environment:", "Exit status:"] {
        assert!(long.contains(heading), "--help lacks {heading}: {long}");
    }
    assert!(long.contains("ibackup inspect --message"), "{long}");
    assert!(long.len() > 2 * short.len(), "--help is the long form");
}

#[test]
fn completion_scripts_know_every_command_and_flag() {
    let words = words_of_the_definition();
    for shell in SHELLS {
        let script = ok_stdout(&Ibackup::new(["completions", shell]).run(), shell);
        for word in &words {
            // fish names a long flag `-l NAME`.
            let as_written = match (shell, word.strip_prefix("--")) {
                ("fish", Some(long)) => format!("-l {long}"),
                _ => word.clone(),
            };
            assert!(
                script.contains(&as_written),
                "{shell} completion lacks {as_written}"
            );
        }
    }
}

#[test]
fn the_bash_completion_script_parses() {
    let script = ok_stdout(&Ibackup::new(["completions", "bash"]).run(), "bash");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ibackup.bash");
    std::fs::write(&file, &script).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        checked.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // And sourced for real, it registers the completion function.
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p ibackup", file.display()))
        .output()
        .unwrap();
    let registered = String::from_utf8_lossy(&sourced.stdout);
    assert!(registered.contains("ibackup"), "{registered:?}");
}

fn man_page() -> String {
    ok_stdout(&Ibackup::new(["man"]).run(), "man")
}

/// The page's words as a reader sees them: roff's `\-` is a hyphen.
fn man_text(page: &str) -> String {
    page.replace("\\-", "-")
}

/// The section of the man page from the heading `.SH NAME` to the next `.SH`.
fn man_section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n.SH {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &text[start + 1..];
    let end = rest[1..].find("\n.SH ").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

/// Whether a man page section describes `--long` as an option (`.TP`, then the flag in bold).
fn describes_option(section: &str, long: &str) -> bool {
    section.contains(&format!(".TP\n\\fB{long}\\fR"))
        || section.contains(&format!(", \\fB{long}\\fR"))
}

#[test]
fn the_man_page_has_every_command_and_flag() {
    let page = man_page();
    assert!(page.contains("\n.TH "), "{}", &page[..page.len().min(200)]);
    let text = man_text(&page);
    for word in words_of_the_definition() {
        assert!(text.contains(&word), "the man page lacks {word}");
    }
    for section in ["ENVIRONMENT", "EXAMPLES", "\"EXIT STATUS\""] {
        man_section(&text, section);
    }
    // Every option is described: the global ones at the top, each command's own in its section.
    let mut top = ibackup::cli::Args::command();
    top.build();
    let options = man_section(&text, "OPTIONS");
    for arg in top.get_arguments() {
        let long = format!("--{}", arg.get_long().unwrap());
        assert!(
            describes_option(options, &long),
            "OPTIONS does not describe {long}"
        );
    }
    for sub in top.get_subcommands().filter(|s| s.get_name() != "help") {
        let heading = format!("\"IBACKUP {}\"", sub.get_name().to_uppercase());
        let section = man_section(&text, &heading);
        for arg in sub.get_arguments().filter(|a| !a.is_global_set()) {
            if let Some(long) = arg.get_long() {
                let long = format!("--{long}");
                assert!(
                    describes_option(section, &long),
                    "{heading} does not describe {long}"
                );
            }
        }
    }
}

#[test]
fn the_man_page_renders() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ibackup.1");
    std::fs::write(&file, man_page()).unwrap();
    // groff comes with scripts/install-test-deps.sh (package groff-base).
    let rendered = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P", "-cbou"])
        .arg(&file)
        .output()
        .expect("groff (scripts/install-test-deps.sh installs groff-base)");
    let warnings = String::from_utf8_lossy(&rendered.stderr);
    assert!(
        rendered.status.success() && warnings.is_empty(),
        "groff: {warnings}"
    );
    let text = String::from_utf8_lossy(&rendered.stdout);
    for shown in [
        "IBACKUP VERIFY",
        "ENVIRONMENT",
        "IBACKUP_PASSWORD",
        "--password-file",
    ] {
        assert!(
            text.contains(shown),
            "the rendered page lacks {shown}:\n{text}"
        );
    }
}

/// The environment variables the source reads: `var("NAME")`, `var_os("NAME")`, `env =
/// "NAME"` in clap attributes, and `..._ENV` / `..._VARIABLE` constants naming one.
fn variables_read_by_the_source() -> BTreeSet<String> {
    fn scan(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).unwrap();
                // Tests' own switches are not ibackup's.
                let source = source.split("#[cfg(test)]").next().unwrap();
                for line in source.lines() {
                    let named = [
                        "var(\"",
                        "var_os(\"",
                        "from_env(\"",
                        "env = \"",
                        "_ENV: &str = \"",
                        "_VARIABLE: &str = \"",
                    ]
                    .iter()
                    .filter_map(|m| line.split_once(m).map(|(_, rest)| rest))
                    .filter_map(|rest| rest.split_once('"').map(|(name, _)| name));
                    for name in named {
                        if !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            found.insert(name.to_string());
                        }
                    }
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found
}

#[test]
fn every_environment_variable_is_in_the_man_page_and_the_long_help() {
    let mut variables = variables_read_by_the_source();
    for expected in [
        "IBACKUP_PASSWORD",
        "IBACKUP_TRANSPORT",
        "IBACKUP_DEVICE_WAIT",
        "IBACKUP_PAIR_TIMEOUT",
        "IBACKUP_LOCKDOWN_DIR",
        "IBACKUP_BACKUP_DIR",
        "USBMUXD_SOCKET_ADDRESS",
        "APPDATA",
        "USERPROFILE",
    ] {
        assert!(
            variables.contains(expected),
            "the scan missed {expected}: {variables:?}"
        );
    }
    // Read by anstream, for colour.
    variables.extend(["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TERM", "CI"].map(String::from));
    let page = man_text(&man_page());
    let environment = page
        .split(".SH ENVIRONMENT")
        .nth(1)
        .expect("an ENVIRONMENT section");
    let environment = environment.split("\n.SH ").next().unwrap();
    let help = ok_stdout(&Ibackup::new(["--help"]).run(), "--help");
    for variable in &variables {
        assert!(
            environment.contains(&format!("\\fB{variable}\\fR")),
            "{variable} is not in the man page's ENVIRONMENT"
        );
        assert!(
            help.contains(variable.as_str()),
            "{variable} is not in --help"
        );
    }
}

/// `verify SAMPLE` with stdout and stderr piped, with these flags and variables.
fn piped_verify(flags: &[&str], env: &[(&str, &str)]) -> String {
    let sample = sample();
    let mut args = vec!["verify", sample.to_str().unwrap()];
    args.extend_from_slice(flags);
    let run = Ibackup::offline(args).envs(env).run();
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.stdout()
}

/// Whether `text` has a colour (SGR) sequence: ESC [ digits and semicolons, then `m`. (A
/// progress bar's line clearing, ESC [ 2 K, is no colour.)
fn coloured(text: &str) -> bool {
    text.split("\x1b[").skip(1).any(|rest| {
        let params = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
        params.starts_with('m')
    })
}

#[test]
fn piped_output_has_no_colour_unless_forced() {
    assert!(!coloured(&piped_verify(&[], &[("TERM", "xterm-256color")])));
    assert!(coloured(&piped_verify(&[], &[("CLICOLOR_FORCE", "1")])));
    assert!(coloured(&piped_verify(&["--color", "always"], &[])));
    // JSON is never coloured, nor the error that comes with it on stderr.
    assert!(!coloured(&piped_verify(
        &["--json"],
        &[("CLICOLOR_FORCE", "1")]
    )));
    let missing = |flags: &[&str]| {
        let mut args = vec!["verify", "/nonexistent/ibackup-tests/backup"];
        args.extend_from_slice(flags);
        let run = Ibackup::offline(args).env("CLICOLOR_FORCE", "1").run();
        assert_eq!(run.code(), Some(2), "{}", run.stderr());
        run.stderr()
    };
    assert!(coloured(&missing(&[])), "a forced error is coloured");
    assert!(!coloured(&missing(&["--json"])), "{}", missing(&["--json"]));
}

#[test]
fn no_color_wins_over_clicolor_force_and_the_flag_over_both() {
    let both = [("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")];
    assert!(!coloured(&piped_verify(&[], &both)));
    assert!(coloured(&piped_verify(&["--color", "always"], &both)));
    assert!(!coloured(&piped_verify(
        &["--color", "never"],
        &[("CLICOLOR_FORCE", "1")]
    )));
    // An empty NO_COLOR is no request (no-color.org).
    assert!(coloured(&piped_verify(
        &[],
        &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")]
    )));
}

/// `ibackup ARGS` on a terminal (a pseudo-terminal from util-linux `script`, which every Debian
/// has), stdout and stderr both: what the terminal showed.
#[cfg(unix)]
fn on_terminal(run: Ibackup) -> String {
    let inner = run.command();
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_str().unwrap().replace('\'', "'\\''"));
    let mut line = quote(inner.get_program());
    for arg in inner.get_args() {
        line = format!("{line} {}", quote(arg));
    }
    // `script` runs the line in the environment the harness prepared, given a terminal.
    let mut outer = Command::new("script");
    outer.args(["-qec", &line, "/dev/null"]);
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => outer.env(key, value),
            None => outer.env_remove(key),
        };
    }
    // Under CI, anstream colours a terminal whatever TERM says: these runs are not under CI.
    outer.env_remove("CI");
    let shown = outer.output().expect("script (util-linux)");
    String::from_utf8_lossy(&shown.stdout).into_owned()
}

#[cfg(unix)]
fn verify_on_terminal(env: &[(&str, &str)]) -> String {
    let sample = sample();
    on_terminal(Ibackup::offline(["verify", sample.to_str().unwrap()]).envs(env))
}

#[cfg(unix)]
#[test]
fn a_terminal_gets_colour_unless_term_is_dumb_or_clicolor_is_0_or_no_color() {
    let shown = verify_on_terminal(&[("TERM", "xterm")]);
    assert!(shown.contains("Complete"), "{shown}");
    assert!(coloured(&shown), "{shown:?}");
    for env in [
        &[("TERM", "dumb")][..],
        &[("TERM", "xterm"), ("CLICOLOR", "0")],
        &[("TERM", "xterm"), ("NO_COLOR", "1")],
    ] {
        let shown = verify_on_terminal(env);
        assert!(shown.contains("Complete"), "{env:?}: {shown}");
        assert!(!coloured(&shown), "{env:?}: {shown:?}");
    }
}

/// While ibackup looks for a phone it cannot know how long that takes: the terminal shows a
/// spinner with the words, never a bar counting 0/0. The daemon here accepts and never answers,
/// so the look lasts until ibackup's I/O timeout.
#[cfg(unix)]
#[test]
fn looking_for_a_phone_shows_a_spinner_not_an_empty_bar() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        let accepted: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(std::time::Duration::from_secs(8));
        drop(accepted);
    });
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("none");
    std::fs::create_dir_all(&empty).unwrap();
    let shown = on_terminal(
        Ibackup::new(["inspect"])
            .env("USBMUXD_SOCKET_ADDRESS", &address)
            .env("IBACKUP_TRANSPORT", "usbmuxd")
            .env("IBACKUP_LOCKDOWN_DIR", dir.path())
            .env("IBACKUP_BACKUP_DIR", &empty)
            .env("TERM", "xterm"),
    );
    drop(held);
    assert!(
        shown.contains("Looking for a connected iPhone"),
        "{shown:?}"
    );
    assert!(!shown.contains("0/0"), "an empty bar was drawn: {shown:?}");
}
