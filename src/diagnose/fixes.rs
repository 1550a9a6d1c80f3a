//! The fixes, as data: each with a stable id, a title and the steps a person follows, in our
//! own words. Menu paths, messages and numbers are the guide's facts
//! (../shared/reference/icloud-backup-fixes.md, fixes 1-7), cited by `guide`.

use serde::Serialize;

/// One fix: what to do, step by step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub id: &'static str,
    pub title: &'static str,
    pub steps: &'static [&'static str],
    /// The guide's fix number, when the fix comes from it.
    pub guide: Option<u8>,
}

pub const FIXES: &[Fix] = &[
    Fix {
        id: "icloud-storage",
        title: "Make room in iCloud",
        guide: Some(1),
        steps: &[
            "On the iPhone open Settings > [your name] > iCloud > Manage Account Storage (on iOS 16: Manage Storage).",
            "If the bar is more than 90% full, a backup will not complete: make room first.",
            "Tap Backups, pick a device you no longer use, and tap Turn Off and Delete from iCloud.",
            "Or move to iCloud+: 50 GB costs $0.99 a month in the US (200 GB $2.99, 2 TB $9.99). The free tier is 5 GB.",
            "Then go to Settings > [your name] > iCloud > iCloud Backup and tap Back Up Now.",
        ],
    },
    Fix {
        id: "wifi-power",
        title: "Give the backup Wi-Fi and power",
        guide: Some(2),
        steps: &[
            "Join Wi-Fi (Settings > Wi-Fi shows a checkmark); a 5 GHz network is faster than 2.4 GHz.",
            "Backing up over mobile data is off unless you turn on Back Up Over Cellular (iOS 17 and later) in Settings > [your name] > iCloud > iCloud Backup.",
            "Plug the iPhone into power: the nightly automatic backup needs power, Wi-Fi and a locked screen.",
            "If it still stalls: Settings > General > Transfer or Reset iPhone > Reset > Reset Network Settings (this forgets saved Wi-Fi passwords), rejoin Wi-Fi, then Back Up Now.",
        ],
    },
    Fix {
        id: "backup-restart",
        title: "Restart the stuck iCloud backup",
        guide: Some(3),
        steps: &[
            "Open Settings > [your name] > iCloud > iCloud Backup.",
            "Turn Back Up This iPhone off, wait 30 seconds, turn it back on, then tap Back Up Now.",
            "If turning it off keeps spinning for more than 2 minutes, force restart: on Face ID models press and release Volume Up, then Volume Down, then hold the Side button until the Apple logo; on models with a Home button hold Home and the Side (or Top) button.",
        ],
    },
    Fix {
        id: "delete-and-redo",
        title: "Delete the broken iCloud backup and make a fresh one",
        guide: Some(4),
        steps: &[
            "This is about the backup in iCloud, not a backup on this computer: an iCloud backup that stopped part way cannot be restored, so iOS needs a fresh one.",
            "Deleting removes every iCloud backup of this iPhone, so first make a computer backup and check it with `ibackup verify` (see \"Back up to your computer\"), unless one that verifies complete is recent.",
            "Then Settings > [your name] > iCloud > Manage Account Storage > Backups, tap this iPhone, then Turn Off and Delete from iCloud; wait for it to finish (10-30 seconds).",
            "Then Settings > [your name] > iCloud > iCloud Backup: turn Back Up This iPhone on and tap Back Up Now.",
        ],
    },
    Fix {
        id: "apple-id",
        title: "Sign out of your Apple Account and back in",
        guide: Some(5),
        steps: &[
            "A backup stuck at 0% without an error can be waiting for a sign-in it never showed (after a password change, a missed two-factor prompt, or a long time offline).",
            "Settings > [your name] > Sign Out (at the bottom); enter your password to turn off Find My.",
            "Sign back in at the top of Settings and approve the two-factor prompt on a trusted device or by SMS code.",
            "Wait 60 seconds, then Settings > [your name] > iCloud > iCloud Backup > Back Up Now.",
        ],
    },
    Fix {
        id: "update-ios",
        title: "Update iOS",
        guide: Some(6),
        steps: &[
            "Plug the iPhone into power and open Settings > General > Software Update.",
            "Tap Download and Install and enter your passcode (it takes 15-45 minutes).",
            "When it restarts, open Settings > [your name] > iCloud > iCloud Backup and tap Back Up Now.",
        ],
    },
    Fix {
        id: "finder-backup",
        title: "Back up to your computer",
        guide: Some(7),
        steps: &[
            "A computer backup works without iCloud, takes 5-15 minutes, and restores faster; keep it as well as iCloud.",
            "Mac: connect the iPhone, select it in the Finder sidebar, choose \"Back up all of the data on your iPhone to this Mac\", tick Encrypt local backup, and click Back Up Now.",
            "Windows: connect the iPhone, open Apple Devices (or iTunes), select the iPhone, and click Back Up Now.",
            "Then check it with `ibackup verify` on the new backup folder.",
            "Or let ibackup make it, on any computer (Linux too): with the iPhone connected and unlocked, run `ibackup backup` (on Linux `ibackup backup --to FOLDER`, or `--encrypt` to turn encryption on). It checks the new backup with verify when it ends and keeps the previous one until the new one is complete.",
        ],
    },
    Fix {
        id: "update-before-restore",
        title: "Update the iPhone before restoring this backup",
        guide: Some(6),
        steps: &[
            "A backup made on a newer iOS cannot be restored to an iPhone on an older iOS.",
            "Open Settings > General > Software Update and install at least the iOS version the backup was made on, then restore.",
        ],
    },
    Fix {
        id: "free-phone-space",
        title: "Free space on the iPhone",
        guide: None,
        steps: &[
            "Open Settings > General > iPhone Storage to see what takes the space.",
            "Offload apps you do not use, and delete large videos or downloads you no longer need.",
            "Leave a few GB free: a backup needs room to prepare its files.",
        ],
    },
    Fix {
        id: "turn-off-find-my",
        title: "Turn off Find My before a restore",
        guide: None,
        steps: &[
            "A computer will not restore a backup to an iPhone while Find My is on.",
            "Open Settings > [your name] > Find My > Find My iPhone and turn it off (your Apple Account password is needed).",
            "Turn it back on after the restore.",
        ],
    },
    Fix {
        id: "pair",
        title: "Trust this computer",
        guide: None,
        steps: &[
            "Unlock the iPhone and keep it connected by USB.",
            "Run `ibackup pair`, then tap Trust on the iPhone and enter its passcode.",
            "Without trust, ibackup sees only the model and iOS version: storage, battery, backup settings and Find My stay hidden.",
        ],
    },
    Fix {
        id: "backup-password",
        title: "Give ibackup the backup password",
        guide: None,
        steps: &[
            "This backup is encrypted: its file list can be checked only with the password chosen when encryption was turned on.",
            "Run the command in a terminal and type it when asked, or use --password-file FILE, or set IBACKUP_PASSWORD.",
            "Keep the password: only an encrypted backup holds saved passwords, Wi-Fi settings, call history and Health data, and without the password it cannot be restored.",
        ],
    },
    Fix {
        id: "check-icloud",
        title: "Check iCloud on the iPhone",
        guide: None,
        steps: &[
            "ibackup reads from the phone whether iCloud Backup is on and when its last iCloud backup finished; it cannot see your iCloud account itself.",
            "How full iCloud is: Settings > [your name] > iCloud > Manage Account Storage (on iOS 16: Manage Storage). More than 90% full, and a backup will not complete.",
            "Whether backups may use mobile data: Back Up Over Cellular (iOS 17 and later) in Settings > [your name] > iCloud > iCloud Backup; Wi-Fi: Settings > Wi-Fi.",
            "On an iPhone that does not report it, the last iCloud backup is shown in Settings > [your name] > iCloud > iCloud Backup, under Back Up Now.",
        ],
    },
    Fix {
        id: "icloud-backup-on",
        title: "Turn on iCloud Backup",
        guide: None,
        steps: &[
            "Open Settings > [your name] > iCloud > iCloud Backup.",
            "Turn on Back Up This iPhone, then tap Back Up Now while on Wi-Fi.",
            "From then on the iPhone backs itself up each night while it is on power, on Wi-Fi and locked.",
            "If iCloud has no room for the backup, see \"Make room in iCloud\"; a computer backup works without iCloud.",
        ],
    },
    Fix {
        id: "redo-local-backup",
        title: "Set the broken computer backup aside and make a new one",
        guide: None,
        steps: &[
            "A backup that did not finish, or lacks files, cannot be restored as it is; do not delete it yet: it may still hold the only copy of some of your data.",
            "Make sure Finder, Apple Devices or iTunes is not backing up this iPhone, then move the broken folder (its path is shown above) out of the backup folder, to the Desktop or another disk. Leave every backup ibackup calls complete where it is.",
            "Make a new computer backup (see \"Back up to your computer\"): with the broken folder out of the way it starts afresh instead of adding to it.",
            "Run `ibackup verify` on the new backup folder. Only when it says complete is the folder you moved aside safe to delete.",
        ],
    },
    Fix {
        id: "keep-complete-backup",
        title: "Keep the older complete backup",
        guide: None,
        steps: &[
            "The complete backup named above is the one to restore from while the newest one is redone: do not delete, move or rename it.",
            "Before restoring it, run `ibackup verify` on it to be sure it is still complete.",
            "Replace it only once a newer backup of this iPhone verifies complete.",
        ],
    },
    Fix {
        id: "keep-only-copy",
        title: "Keep the only copy until a new backup verifies",
        guide: None,
        steps: &[
            "No complete backup of this iPhone is on this computer, so the broken folder named above is the only copy it has: do not delete it.",
            "Move it aside (to the Desktop or another disk) rather than deleting it, so a new backup can start afresh; it stays there as a copy.",
            "Delete it only when `ibackup verify` says a newer backup of this iPhone is complete.",
        ],
    },
    Fix {
        id: "wait-for-backup",
        title: "Let the backup in progress finish",
        guide: None,
        steps: &[
            "A backup is being written into this folder now: leave the iPhone connected and unlocked, and do not move, rename or delete the folder.",
            "When Finder, Apple Devices or iTunes says the backup is done, run `ibackup verify` on the folder (or `ibackup inspect` again).",
            "If no backup is running and the folder was only just copied or touched, run ibackup again in 10 minutes: it then judges the folder as it stands.",
        ],
    },
    Fix {
        id: "update-ios-if-affected",
        title: "Update iOS if your iPhone runs an affected version",
        guide: Some(6),
        steps: &[
            "See which iOS the iPhone runs: Settings > General > About > iOS Version.",
            "Backups stuck on \"Preparing\" were an iOS 26.0.x bug, fixed in iOS 26.1; overnight backups that pause for good were an iOS 18.0 bug, fixed in iOS 18.0.1. If the iPhone already runs a fixed (or an unaffected) version, skip this fix: an update will not help.",
            "Otherwise plug the iPhone into power, open Settings > General > Software Update, tap Download and Install and enter your passcode (it takes 15-45 minutes).",
            "When it restarts, open Settings > [your name] > iCloud > iCloud Backup and tap Back Up Now.",
        ],
    },
];

/// Where an app's part of the iCloud backup is turned off (guide, fix 1's menu, down to this
/// iPhone's backup).
pub const APP_BACKUP_SETTINGS: &str =
    "Settings > [your name] > iCloud > Manage Account Storage > Backups > this iPhone";

/// How many apps the "Make room in iCloud" fix names.
pub const BIGGEST_APPS_NAMED: usize = 3;

/// Each app's name is cut to this many characters in a step, so the step stays readable.
const APP_NAME_IN_STEP: usize = 60;

/// The steps of `icloud-storage` for a phone whose backup is at hand: the generic steps with
/// one more after the "90% full" step, naming `apps` (name, estimated iCloud bytes; biggest
/// first) and where their backup is turned off. Names are the backup's, as written: whoever
/// prints the steps escapes them. It never asks to delete this iPhone's own backup.
pub fn icloud_storage_steps(phone: &str, apps: &[(&str, u64)]) -> Vec<String> {
    let generic = fix("icloud-storage").map_or(&[][..], |f| f.steps);
    let mut steps: Vec<String> = generic.iter().map(|s| s.to_string()).collect();
    if apps.is_empty() {
        return steps;
    }
    let named: Vec<String> = apps
        .iter()
        .map(|(name, bytes)| {
            let mut short: String = name.chars().take(APP_NAME_IN_STEP).collect();
            if short.len() < name.len() {
                short.push('…');
            }
            format!("{short} ({})", crate::units::human_bytes(*bytes))
        })
        .collect();
    let list = match named.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    let step = format!(
        "The apps that take the most room in the backup of {phone} are {list}: an iCloud \
         backup holds an app's data as it is, so about that much each. To leave an app out, \
         open {APP_BACKUP_SETTINGS} and turn it off in the list of apps; its data then stays on \
         the iPhone and in computer backups only. Keep this iPhone's backup itself turned on."
    );
    steps.insert(2.min(steps.len()), step);
    steps
}

/// The fix with this id. Every id a rule names exists: a test checks it.
pub fn fix(id: &str) -> Option<&'static Fix> {
    FIXES.iter().find(|f| f.id == id)
}
