//! Which operating system ibackup runs on, as a value: the functions that differ by OS (default
//! backup folders, pair record folders, the hints) take an [`Os`] and read the environment
//! through a closure, so every OS's answer is a pure function tested on any host. Only
//! [`Os::current`] looks at the build's target.

/// The operating systems ibackup tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    MacOs,
    Windows,
    Linux,
    Other,
}

impl Os {
    /// The OS this build is for.
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(windows) {
            Os::Windows
        } else if cfg!(target_os = "linux") {
            Os::Linux
        } else {
            Os::Other
        }
    }
}
