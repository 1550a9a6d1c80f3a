//! The phone's own error strings, as one enum. lockdownd answers a refused request with
//! `Error: <name>`; [`LockdownError::from_phone`] turns that name into a variant in exactly one
//! place (where lockdown/mod.rs reads a reply), and everything above matches on the variants.
//! Names ibackup does not act on keep their text in [`LockdownError::Other`].
//!
//! Display prints the phone's string unchanged, so messages read as they did when the string was
//! carried bare. Not here: what to tell the user about an error (`DeviceError::hint`), or which
//! request failed (`DeviceError::Lockdown` carries that).

/// An error name lockdownd answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockdownError {
    /// The phone does not know the HostID: it was never paired with this computer, or forgot it.
    InvalidHostID,
    /// The phone is locked with a passcode: pairing (and some values) must wait for an unlock.
    PasswordProtected,
    /// The "Trust This Computer?" dialog is on the phone's screen, unanswered.
    PairingDialogResponsePending,
    /// The user tapped "Don't Trust".
    UserDeniedPairing,
    /// The pair record sent with a pairing request is not one the phone accepts.
    InvalidPairRecord,
    /// StartService named a service the phone does not offer (or not to this host).
    InvalidService,
    /// StartService named a service the phone refuses to start now (supervision, restrictions).
    ServiceProhibited,
    /// The phone has not been unlocked since it booted, so the escrow bag cannot be used.
    EscrowLocked,
    /// A request that needs a session came outside one.
    SessionInactive,
    /// GetValue asked for a value the phone does not have.
    MissingValue,
    /// Any other name, kept as the phone wrote it.
    Other(String),
}

/// Every variant but [`LockdownError::Other`], for reading a name back.
const KNOWN: [LockdownError; 10] = [
    LockdownError::InvalidHostID,
    LockdownError::PasswordProtected,
    LockdownError::PairingDialogResponsePending,
    LockdownError::UserDeniedPairing,
    LockdownError::InvalidPairRecord,
    LockdownError::InvalidService,
    LockdownError::ServiceProhibited,
    LockdownError::EscrowLocked,
    LockdownError::SessionInactive,
    LockdownError::MissingValue,
];

impl LockdownError {
    /// The variant for the `Error` string of a lockdownd reply. Names are compared exactly, as
    /// the phone spells them.
    pub fn from_phone(name: &str) -> Self {
        KNOWN
            .into_iter()
            .find(|known| known.as_str() == name)
            .unwrap_or_else(|| LockdownError::Other(name.to_string()))
    }

    /// The string the phone sends for this error.
    pub fn as_str(&self) -> &str {
        match self {
            LockdownError::InvalidHostID => "InvalidHostID",
            LockdownError::PasswordProtected => "PasswordProtected",
            LockdownError::PairingDialogResponsePending => "PairingDialogResponsePending",
            LockdownError::UserDeniedPairing => "UserDeniedPairing",
            LockdownError::InvalidPairRecord => "InvalidPairRecord",
            LockdownError::InvalidService => "InvalidService",
            LockdownError::ServiceProhibited => "ServiceProhibited",
            LockdownError::EscrowLocked => "EscrowLocked",
            LockdownError::SessionInactive => "SessionInactive",
            LockdownError::MissingValue => "MissingValue",
            LockdownError::Other(name) => name,
        }
    }
}

impl std::fmt::Display for LockdownError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_print_as_the_phone_wrote_them() {
        for error in KNOWN {
            assert_eq!(LockdownError::from_phone(error.as_str()), error);
            assert_eq!(error.to_string(), error.as_str());
        }
        assert_eq!(
            LockdownError::from_phone("InvalidHostID"),
            LockdownError::InvalidHostID
        );
        let odd = LockdownError::from_phone("GetProhibited");
        assert_eq!(odd, LockdownError::Other("GetProhibited".to_string()));
        assert_eq!(odd.to_string(), "GetProhibited");
        assert!(matches!(
            LockdownError::from_phone("invalidhostid"),
            LockdownError::Other(_)
        ));
    }
}
