//! What backups change on the simulated phone: whether it encrypts and with which password
//! (ChangePassword), how many backups have finished (the content's generation), and the one
//! backup that may run at a time. Kept in the phone's state (phone.rs); changed by the
//! conversation (mod.rs, backup.rs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::profile::Profile;

/// What changes on the phone as backups are made (encryption turned on, content changing).
pub struct BackupState {
    will_encrypt: AtomicBool,
    /// The backup password while encryption is on.
    password: Mutex<Option<String>>,
    /// Finished backups so far: the content is `Content::at(.., generation)`.
    generation: AtomicU64,
    /// Held while a backup runs: a second one at the same time is refused.
    pub(crate) busy: Mutex<()>,
}

impl BackupState {
    pub fn new(profile: &Profile) -> Self {
        BackupState {
            will_encrypt: profile.will_encrypt.into(),
            password: Mutex::new(
                profile
                    .will_encrypt
                    .then(|| profile.backup.password.clone()),
            ),
            generation: AtomicU64::new(0),
            busy: Mutex::new(()),
        }
    }

    /// Whether the next backup will be encrypted (com.apple.mobile.backup WillEncrypt).
    pub fn will_encrypt(&self) -> bool {
        self.will_encrypt.load(Ordering::SeqCst)
    }

    /// How many backups have finished (the content's generation).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn password(&self) -> Option<String> {
        self.password
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_password(&self, password: Option<String>) {
        self.will_encrypt
            .store(password.is_some(), Ordering::SeqCst);
        *self.password.lock().unwrap_or_else(|p| p.into_inner()) = password;
    }

    pub(crate) fn finished_one(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}
