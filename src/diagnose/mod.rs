//! Facts in, findings out: what the phone and the backups show, mapped onto the fixes a person
//! can follow. Rules and fixes are data (rules.rs, fixes.rs); docs/fixes.md is generated from
//! them and a test fails when the two drift apart. Pure: no I/O.

pub mod fixes;
pub mod inspection;
pub mod message;
pub mod readiness;
pub mod rules;
pub mod version;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backup::report::{Severity, Verdict};
use crate::backup::BackupReport;
use crate::device::DeviceState;
use fixes::Fix;
use message::Message;
use version::BackupBug;

/// Everything the rules may look at.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub device: Option<&'a DeviceState>,
    /// The backups to judge: of the connected phone when there is one, else every one found.
    pub backups: &'a [BackupReport],
    pub now: DateTime<Utc>,
    /// The message iOS showed, as the user typed it.
    pub message: Option<&'a str>,
    pub password_given: bool,
    /// Whether the backups come from a search of the backup folder (so "none of this phone"
    /// means something), and which folder that was.
    pub looked_for_backups: bool,
    pub backup_folder: Option<String>,
}

/// The backups of one phone (one UDID), newest first.
#[derive(Debug, Clone)]
pub struct PhoneBackups<'a> {
    pub udid: String,
    pub backups: Vec<&'a BackupReport>,
}

impl<'a> PhoneBackups<'a> {
    pub fn newest(&self) -> Option<&'a BackupReport> {
        self.backups.first().copied()
    }

    pub fn newest_complete(&self) -> Option<&'a BackupReport> {
        self.backups
            .iter()
            .copied()
            .find(|r| r.verdict == Verdict::Complete)
    }

    /// The phone's name as its newest backup gives it.
    pub fn name(&self) -> &str {
        self.newest()
            .and_then(|r| r.backup.device_name.as_deref())
            .unwrap_or(&self.udid)
    }

    pub fn is_device(&self, device: &DeviceState) -> bool {
        self.udid.eq_ignore_ascii_case(&device.udid)
    }
}

impl<'a> Facts<'a> {
    /// Backups grouped by phone, each group newest first, groups in order of first appearance.
    pub fn phones(&self) -> Vec<PhoneBackups<'a>> {
        let mut groups: Vec<PhoneBackups<'a>> = Vec::new();
        for report in self.backups {
            let udid = report
                .backup
                .udid
                .clone()
                .unwrap_or_else(|| report.backup.path.clone());
            match groups
                .iter_mut()
                .find(|g| g.udid.eq_ignore_ascii_case(&udid))
            {
                Some(group) => group.backups.push(report),
                None => groups.push(PhoneBackups {
                    udid,
                    backups: vec![report],
                }),
            }
        }
        for group in &mut groups {
            group
                .backups
                .sort_by_key(|r| std::cmp::Reverse(r.backup.date));
        }
        groups
    }
}

/// A fix as findings carry it (the contract's `fix` object).
#[derive(Debug, Clone, Serialize)]
pub struct FixView {
    pub id: &'static str,
    pub title: &'static str,
    /// The fix's steps; `icloud-storage`'s name the biggest apps when a backup is at hand.
    pub steps: Vec<String>,
}

impl From<&Fix> for FixView {
    fn from(fix: &Fix) -> Self {
        FixView {
            id: fix.id,
            title: fix.title,
            steps: fix.steps.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// One thing found, the evidence for it, and what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub evidence: String,
    pub fix: FixView,
    /// Further fixes to try, by id, in order.
    pub then: Vec<&'static str>,
}

fn finding(
    code: &'static str,
    severity: Severity,
    evidence: String,
    ids: &[&'static str],
) -> Finding {
    let fix = fixes::fix(ids[0]).map(FixView::from).unwrap_or(FixView {
        id: ids[0],
        title: ids[0],
        steps: Vec::new(),
    });
    Finding {
        code,
        severity,
        evidence,
        fix,
        then: ids[1..].to_vec(),
    }
}

/// Findings for the facts: the message first (it is what the user came with), then by
/// severity, in the order of the rules table. The rules of [`rules::HELD_WHILE_WRITTEN`] do not
/// see the phones whose newest backup is being written ([`rules::being_written`]):
/// `backup.in_progress` speaks for those.
pub fn diagnose(facts: &Facts) -> Vec<Finding> {
    let mut found = Vec::new();
    if let Some(text) = facts.message {
        found.push(match message::recognize(text) {
            Some(m) => message_finding(m, text, facts.device),
            None => {
                let (ids, why) = update_advice(
                    &[
                        "icloud-storage",
                        "wifi-power",
                        "update-ios",
                        "finder-backup",
                    ],
                    &[BackupBug::StuckPreparing, BackupBug::OvernightPause],
                    facts.device,
                );
                finding(
                    "message.unrecognized",
                    Severity::Info,
                    format!(
                        "\"{text}\" is not a message ibackup knows; it knows \"Not Enough iCloud \
                         Storage\", \"Backup needs restart\", \"Last backup could not be \
                         completed\", stuck at 0%, and \"Preparing\"{}",
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(". {why}")
                        }
                    ),
                    &ids,
                )
            }
        });
    }
    let settled_backups: Vec<BackupReport> = facts
        .phones()
        .iter()
        .filter(|p| {
            !p.newest()
                .is_some_and(|r| rules::being_written(r, facts.now))
        })
        .flat_map(|p| p.backups.iter().map(|r| (*r).clone()))
        .collect();
    let settled = Facts {
        backups: &settled_backups,
        ..facts.clone()
    };
    let mut from_rules: Vec<Finding> = rules::RULES
        .iter()
        .flat_map(|rule| {
            let seen = if rules::HELD_WHILE_WRITTEN.contains(&rule.code) {
                &settled
            } else {
                facts
            };
            (rule.check)(seen)
                .into_iter()
                .map(|evidence| finding(rule.code, rule.severity, evidence, rule.fixes))
        })
        .collect();
    from_rules.sort_by_key(|f| std::cmp::Reverse(f.severity));
    found.extend(from_rules);
    name_biggest_apps(&mut found, facts);
    found
}

/// "Make room in iCloud", wherever a finding gives it as its fix, names the biggest apps (by
/// estimated iCloud size) of the phone's newest backup when there is one phone to speak of (the
/// connected one, else the only phone among the backups) and its file list was read; otherwise
/// the generic steps stay.
fn name_biggest_apps(found: &mut [Finding], facts: &Facts) {
    let phones = facts.phones();
    let phone = match facts.device {
        Some(device) => phones.iter().find(|p| p.is_device(device)),
        None if phones.len() == 1 => phones.first(),
        None => None,
    };
    let Some((phone, newest)) = phone.and_then(|p| Some((p, p.newest()?))) else {
        return;
    };
    let mut apps: Vec<_> = newest
        .apps
        .iter()
        .filter(|a| a.kind == crate::backup::report::AppKind::App && a.icloud_bytes_estimate > 0)
        .collect();
    apps.sort_by(|a, b| {
        b.icloud_bytes_estimate
            .cmp(&a.icloud_bytes_estimate)
            .then_with(|| a.bundle.cmp(&b.bundle))
    });
    let biggest: Vec<(&str, u64)> = apps
        .iter()
        .take(fixes::BIGGEST_APPS_NAMED)
        .map(|a| (a.name.as_str(), a.icloud_bytes_estimate))
        .collect();
    if biggest.is_empty() {
        return;
    }
    let steps = fixes::icloud_storage_steps(phone.name(), &biggest);
    for f in found.iter_mut().filter(|f| f.fix.id == "icloud-storage") {
        f.fix.steps = steps.clone();
    }
}

/// What `ibackup device` reports: the warnings and errors the rules find in the phone alone (no
/// backups, no message). The informational notes are left to `inspect`, which judges the phone
/// together with its backups; the text labels of `device` use the same thresholds
/// ([`rules::storage_is_low`], [`rules::battery_is_low`]).
pub fn device_findings(device: &DeviceState, now: DateTime<Utc>) -> Vec<Finding> {
    let facts = Facts {
        device: Some(device),
        backups: &[],
        now,
        message: None,
        password_given: false,
        looked_for_backups: false,
        backup_folder: None,
    };
    let mut found = diagnose(&facts);
    found.retain(|f| f.severity != Severity::Info);
    found
}

fn message_finding(m: Message, text: &str, device: Option<&DeviceState>) -> Finding {
    let bugs: &[BackupBug] = match m {
        Message::Preparing => &[BackupBug::StuckPreparing],
        Message::PausesOvernight => &[BackupBug::OvernightPause],
        _ => &[],
    };
    let (ids, why) = update_advice(m.fix_order(), bugs, device);
    finding(
        m.code(),
        Severity::Warning,
        format!("iOS showed \"{}\": {} {why}", text.trim(), m.meaning())
            .trim_end()
            .to_string(),
        &ids,
    )
}

/// The fixes `ids` with `update-ios` fitted to the phone, and a sentence saying why, for a
/// message that an update answers only on the versions with one of `bugs`. A connected phone on
/// an affected version keeps `update-ios`; one on any other version loses it (an update would
/// not fix this); with no phone, or no version read, it becomes `update-ios-if-affected`, whose
/// steps say which versions need it.
fn update_advice(
    ids: &[&'static str],
    bugs: &[BackupBug],
    device: Option<&DeviceState>,
) -> (Vec<&'static str>, String) {
    if bugs.is_empty() || !ids.contains(&"update-ios") {
        return (ids.to_vec(), String::new());
    }
    let running = device.and_then(|d| d.ios_version.as_deref());
    let fixed_in = |b: &BackupBug| format!("{} (fixed in {})", b.affected(), b.fixed_in());
    let named = bugs.iter().map(fixed_in).collect::<Vec<_>>().join(" or ");
    match running.and_then(|text| Some((text, version::IosVersion::parse(text)?))) {
        Some((text, v)) => {
            if let Some(bug) = bugs.iter().find(|b| b.affects(&v)) {
                let why = format!(
                    "The phone runs iOS {text}, which has this bug: updating to {} or later \
                     fixes it.",
                    bug.fixed_in()
                );
                (ids.to_vec(), why)
            } else {
                let kept = ids
                    .iter()
                    .copied()
                    .filter(|id| *id != "update-ios")
                    .collect();
                let why = format!(
                    "The phone runs iOS {text}, not {named}, so updating iOS is not the fix \
                     here."
                );
                (kept, why)
            }
        }
        None => {
            let swapped = ids
                .iter()
                .map(|id| match *id {
                    "update-ios" => "update-ios-if-affected",
                    other => other,
                })
                .collect();
            let affected = bugs
                .iter()
                .map(|b| {
                    format!(
                        "{}, updating to {} or later fixes it",
                        b.affected(),
                        b.fixed_in()
                    )
                })
                .collect::<Vec<_>>()
                .join("; if it runs ");
            (swapped, format!("If your iPhone runs {affected}."))
        }
    }
}

/// The fixes to show, each once, in the order the findings ask for them; a fix some finding
/// carries (with steps fitted to the facts) is shown as that finding has it.
pub fn plan(findings: &[Finding]) -> Vec<FixView> {
    let mut ids: Vec<&str> = Vec::new();
    for f in findings {
        for id in std::iter::once(f.fix.id).chain(f.then.iter().copied()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids.into_iter()
        .filter_map(|id| match findings.iter().find(|f| f.fix.id == id) {
            Some(f) => Some(f.fix.clone()),
            None => fixes::fix(id).map(FixView::from),
        })
        .collect()
}

/// docs/fixes.md, generated from the tables.
pub fn fixes_markdown() -> String {
    let mut out = String::from(
        "# Findings and fixes\n\n\
         Generated from src/diagnose/rules/ and src/diagnose/fixes.rs by \
         `IBACKUP_WRITE_DOCS=1 cargo test --lib diagnose`; a test fails when this file and the \
         tables differ. Menu paths, messages and numbers come from the troubleshooting guide \
         (fixes 1-7).\n\n## Findings\n\n| code | severity | when | fixes |\n|---|---|---|---|\n",
    );
    for rule in rules::RULES {
        out.push_str(&format!(
            "| `{}` | {:?} | {} | {} |\n",
            rule.code,
            rule.severity,
            rule.when,
            rule.fixes
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (code, when, fixes) in readiness::FINDINGS {
        out.push_str(&format!(
            "| `{code}` | Warning | {when} | {} |\n",
            fixes
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str("\n## Messages (`--message TEXT`)\n\n| code | what it means | fixes, in order |\n|---|---|---|\n");
    for m in [
        Message::StorageFull,
        Message::NeedsRestart,
        Message::CouldNotComplete,
        Message::StuckAtZero,
        Message::Preparing,
        Message::PausesOvernight,
    ] {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            m.code(),
            m.meaning(),
            m.fix_order()
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str("\n## Fixes\n");
    for fix in fixes::FIXES {
        out.push_str(&format!("\n### `{}`: {}", fix.id, fix.title));
        if let Some(n) = fix.guide {
            out.push_str(&format!(" (guide, fix {n})"));
        }
        out.push_str("\n\n");
        for (i, step) in fix.steps.iter().enumerate() {
            out.push_str(&format!("{}. {}\n", i + 1, step));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fix_a_rule_or_message_names_exists() {
        for rule in rules::RULES {
            for id in rule.fixes {
                assert!(
                    fixes::fix(id).is_some(),
                    "{} names unknown fix {id}",
                    rule.code
                );
            }
        }
        for m in [
            Message::StorageFull,
            Message::CouldNotComplete,
            Message::Preparing,
        ] {
            for id in m.fix_order() {
                assert!(fixes::fix(id).is_some(), "{m:?} names unknown fix {id}");
            }
        }
    }

    use crate::backup::report::{BackupSummary, FileCounts, SizeCounts, VERIFY_SCHEMA};
    use chrono::TimeZone;

    fn report(udid: &str, day: u32, verdict: Verdict, bytes: u64, encrypted: bool) -> BackupReport {
        BackupReport {
            schema: VERIFY_SCHEMA,
            backup: BackupSummary {
                udid: Some(udid.into()),
                device_name: Some(format!("Phone {udid}")),
                date: Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).single(),
                encrypted,
                ..BackupSummary::default()
            },
            complete: verdict == Verdict::Complete,
            verdict,
            files: FileCounts::default(),
            size: SizeCounts {
                declared_bytes: bytes,
                on_disk_bytes: bytes,
            },
            domains: Vec::new(),
            apps: Vec::new(),
            icloud_estimate: None,
            contents: Vec::new(),
            manifest_read: true,
            deep: false,
            databases: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn facts(backups: &[BackupReport]) -> Facts<'_> {
        Facts {
            device: None,
            backups,
            now: Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
            message: None,
            password_given: false,
            looked_for_backups: true,
            backup_folder: None,
        }
    }

    fn codes(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn backup_rules_judge_the_newest_backup_of_each_phone() {
        let backups = [
            report("A", 1, Verdict::Complete, 6_000_000_000, false),
            report("A", 28, Verdict::Complete, 1_000, true),
            report("B", 2, Verdict::Incomplete, 1_000, false),
        ];
        let found = diagnose(&facts(&backups));
        // A's newest (28th) is small, recent and encrypted: only the password finding.
        // B has no complete backup at all: its only (incomplete) backup is to be kept. All three
        // are warnings, in the order of the rules table.
        assert_eq!(
            codes(&found),
            [
                "backup.stale",
                "backup.encrypted_no_password",
                "backup.only_copy"
            ]
        );
        assert!(found[0].evidence.contains("Phone B"));
        assert!(found[1].evidence.contains("Phone A"));
        assert!(found[2].evidence.contains("Phone B"));
        let mut given = facts(&backups);
        given.password_given = true;
        assert_eq!(
            codes(&diagnose(&given)),
            ["backup.stale", "backup.only_copy"]
        );
    }

    #[test]
    fn a_backup_bigger_than_free_icloud_is_found() {
        let backups = [report("A", 28, Verdict::Complete, 7_200_000_000, false)];
        let found = diagnose(&facts(&backups));
        assert_eq!(codes(&found), ["backup.exceeds_free_icloud"]);
        assert!(
            found[0].evidence.contains("7.2 GB"),
            "{}",
            found[0].evidence
        );
        assert_eq!(found[0].fix.id, "icloud-storage");
    }

    fn unfinished(minutes_ago: i64) -> BackupReport {
        let mut r = report("A", 29, Verdict::Incomplete, 1_000, false);
        r.problems.push(crate::backup::report::Problem::new(
            crate::backup::verify::codes::UNFINISHED,
            Severity::Error,
            "",
        ));
        let now = facts(&[]).now;
        r.backup.last_written = Some(now - chrono::Duration::minutes(minutes_ago));
        r
    }

    #[test]
    fn a_backup_written_within_the_window_is_in_progress_not_broken() {
        for (minutes_ago, in_progress) in [(0, true), (9, true), (11, false), (60, false)] {
            let backups = [unfinished(minutes_ago)];
            let found = codes(&diagnose(&facts(&backups))).join(" ");
            assert_eq!(
                found.contains("backup.in_progress"),
                in_progress,
                "{minutes_ago}: {found}"
            );
            assert_eq!(
                found.contains("backup.unfinished"),
                !in_progress,
                "{minutes_ago}: {found}"
            );
        }
        // A time far in the future (a wrong clock) does not hold the judgement for ever.
        let backups = [unfinished(-24 * 60)];
        let found = diagnose(&facts(&backups));
        assert!(
            codes(&found).contains(&"backup.unfinished"),
            "{:?}",
            codes(&found)
        );
        // A finished backup written just now is simply complete.
        let mut done = report("A", 29, Verdict::Complete, 1_000, false);
        done.backup.last_written = Some(facts(&[]).now);
        assert!(!rules::being_written(&done, facts(&[]).now));
    }

    #[test]
    fn the_camera_roll_is_counted_apart() {
        let mut r = report("A", 28, Verdict::Complete, 7_200_000_000, false);
        r.domains = vec![crate::backup::report::DomainSize {
            domain: "CameraRollDomain".into(),
            files: 3,
            bytes: 6_100_000_000,
        }];
        let backups = [r];
        let found = diagnose(&facts(&backups));
        let evidence = &found[0].evidence;
        assert!(
            evidence.contains(
                "7.2 GB in this computer backup of Phone A, 1.1 GB without the camera roll"
            ),
            "{evidence}"
        );
        assert!(evidence.contains("would fit"), "{evidence}");
    }

    #[test]
    fn update_ios_fits_the_phone() {
        let ids = Message::Preparing.fix_order();
        let bug = [BackupBug::StuckPreparing];
        let (none, why) = update_advice(ids, &bug, None);
        assert_eq!(none[0], "update-ios-if-affected");
        assert!(why.starts_with("If your iPhone runs iOS 26.0.x"), "{why}");
        let phone = |v: &str| -> DeviceState {
            serde_json::from_value(serde_json::json!({
                "schema": "ibackup.device/1", "udid": "A", "ios_version": v,
                "connection": "usbmuxd", "connection_type": "USB", "paired": true
            }))
            .unwrap()
        };
        let (fixed, why) = update_advice(ids, &bug, Some(&phone("26.1")));
        assert!(
            !fixed.iter().any(|id| id.starts_with("update-ios")),
            "{fixed:?}"
        );
        assert!(why.contains("not the fix"), "{why}");
        let (buggy, _) = update_advice(ids, &bug, Some(&phone("26.0.1")));
        assert_eq!(buggy[0], "update-ios");
        // Messages an update does not answer are left alone.
        let ids = Message::NeedsRestart.fix_order();
        assert_eq!(update_advice(ids, &[], None).0, ids);
    }

    #[test]
    fn the_plan_lists_each_fix_once_in_the_order_asked() {
        let backups = [report("B", 2, Verdict::Incomplete, 1_000, false)];
        let mut with_message = facts(&backups);
        with_message.message = Some("Not Enough iCloud Storage");
        let found = diagnose(&with_message);
        assert_eq!(found[0].code, "message.storage_full");
        let ids: Vec<&str> = plan(&found).iter().map(|f| f.id).collect();
        assert_eq!(
            ids,
            [
                "icloud-storage",
                "finder-backup",
                "keep-only-copy",
                "check-icloud"
            ]
        );
    }

    #[test]
    fn make_room_names_the_biggest_apps_of_the_one_phone_at_hand() {
        use crate::backup::report::{AppKind, AppSize, NameSource};
        let app = |bundle: &str, kind, bytes| AppSize {
            bundle: bundle.into(),
            name: format!("{bundle} app"),
            name_from: NameSource::InfoPlist,
            kind,
            files: 1,
            bytes,
            domains: 1,
            icloud_bytes_estimate: bytes,
        };
        let mut a = report("A", 28, Verdict::Complete, 1_000, false);
        a.apps = vec![
            app("big.shared", AppKind::Shared, 9_000_000),
            app("one", AppKind::App, 3_000_000),
            app("two", AppKind::App, 2_000_000),
            app("three", AppKind::App, 1_000_000),
            app("four", AppKind::App, 500_000),
            app("empty", AppKind::App, 0),
        ];
        let backups = [a.clone()];
        let mut storage = facts(&backups);
        storage.message = Some("icloud storage full");
        let found = diagnose(&storage);
        let steps = &found[0].fix.steps;
        assert_eq!(steps.len(), 6);
        assert!(
            steps[2].starts_with(
                "The apps that take the most room in the backup of Phone A are one app (3.0 MB), \
                 two app (2.0 MB) and three app (1.0 MB): "
            ),
            "{}",
            steps[2]
        );
        // The plan shows the fix as the finding has it.
        assert_eq!(plan(&found)[0].steps, *steps);
        // Two phones and no phone connected: whose apps is not known, so the steps stay generic.
        let two = [a, report("B", 28, Verdict::Complete, 1_000, false)];
        let mut storage = facts(&two);
        storage.message = Some("icloud storage full");
        assert_eq!(diagnose(&storage)[0].fix.steps.len(), 5);
    }

    #[test]
    fn docs_fixes_md_is_generated_from_the_tables() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/fixes.md");
        let generated = fixes_markdown();
        if std::env::var_os("IBACKUP_WRITE_DOCS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/fixes.md differs from the rules and fixes tables: run \
             `IBACKUP_WRITE_DOCS=1 cargo test --lib diagnose` and commit the result"
        );
    }
}
