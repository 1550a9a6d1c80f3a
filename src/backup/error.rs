//! Errors that stop a backup from being checked at all, each naming the file that failed.

use std::path::PathBuf;

use super::manifest::ManifestError;
use super::plists::PlistError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path} does not exist")]
    NotFound { path: PathBuf },
    #[error("{path} is not a backup folder (it has no Manifest.db, Manifest.plist, Info.plist or Status.plist)")]
    NotABackup { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {source}")]
    Plist { path: PathBuf, source: PlistError },
    #[error("{path} cannot be read: {source}")]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("the password does not unlock this backup's keybag (in {path})")]
    WrongPassword { path: PathBuf },
    #[error("{path} cannot be decrypted: {reason}")]
    Locked { path: PathBuf, reason: String },
    /// An encrypted backup whose files were asked for without a password.
    #[error("{path} is an encrypted backup: its files can only be read with its password")]
    PasswordNeeded { path: PathBuf },
}

impl BackupError {
    /// A stable identifier for scripts (`--json` error objects).
    pub fn code(&self) -> &'static str {
        match self {
            BackupError::NotFound { .. } => "backup.not_found",
            BackupError::NotABackup { .. } => "backup.not_a_backup",
            BackupError::Io { .. } => "backup.unreadable",
            BackupError::Plist { .. } => "backup.plist_damaged",
            BackupError::Manifest {
                source: ManifestError::RowsInWal,
                ..
            } => "backup.manifest_in_wal",
            BackupError::Manifest { .. } => "backup.manifest_damaged",
            BackupError::WrongPassword { .. } => "backup.wrong_password",
            BackupError::Locked { .. } => "backup.keys_damaged",
            BackupError::PasswordNeeded { .. } => "backup.encrypted_no_password",
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            BackupError::NotFound { .. } | BackupError::NotABackup { .. } => {
                "Point ibackup at a backup folder (the one holding Manifest.db and Info.plist, \
                 usually named after the phone's UDID) or at the folder of backups that holds it."
            }
            BackupError::Io { source, .. } if is_odd_file(source) => {
                "Finder writes only regular files into a backup: something else put this one \
                 there (a link, a named pipe, a device or an oversized file), and ibackup does \
                 not read it. Make a fresh backup, or move the odd file out of the folder and \
                 check again."
            }
            BackupError::Io { .. } => {
                "Check that the folder is readable by your user and that its disk is connected; \
                 on macOS the Terminal may need Full Disk Access (System Settings > Privacy & \
                 Security > Full Disk Access) to read MobileSync."
            }
            BackupError::WrongPassword { .. } => {
                "Check the password and try again; the password is the one chosen when Encrypt \
                 local backup was turned on for this iPhone (in Finder, iTunes or Apple Devices), \
                 not the iPhone's passcode or the Apple Account password. Give it with \
                 --password-file FILE (- reads standard input), the IBACKUP_PASSWORD environment \
                 variable, or type it when asked."
            }
            BackupError::PasswordNeeded { .. } => {
                "Give the backup password with --password-file FILE (- reads standard input) or \
                 the IBACKUP_PASSWORD environment variable, or run the command in a terminal to \
                 be asked for it. It is the password chosen when Encrypt local backup was turned \
                 on, not the iPhone's passcode."
            }
            BackupError::Manifest {
                source: ManifestError::RowsInWal,
                ..
            } => {
                "Finder and iTunes do not leave a finished backup like this: a copy taken while \
                 the backup was being written, or a tool that opened Manifest.db for writing, \
                 does. Copy the backup again once it has finished, or check a copy as the \
                 message says, or make a fresh backup."
            }
            BackupError::Plist { .. }
            | BackupError::Manifest { .. }
            | BackupError::Locked { .. } => {
                "This backup is damaged and cannot be restored as it is. Keep the folder (ibackup \
                 never changes it), then make a fresh backup: in Finder select the iPhone and \
                 click Back Up Now (iTunes or Apple Devices on Windows: Back Up Now)."
            }
        }
    }
}

/// Whether a read failed because of what the file is (not a regular file, or over its size cap:
/// see [`crate::untrusted_file`]) rather than because it could not be reached.
fn is_odd_file(error: &std::io::Error) -> bool {
    crate::untrusted_file::is_not_regular(error) || error.kind() == std::io::ErrorKind::InvalidData
}
