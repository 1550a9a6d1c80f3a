//! iOS version numbers compared as numbers, part by part: 17.10 is newer than 17.9, and 18.0
//! equals 18.0.0.

use std::cmp::Ordering;

/// A dotted version such as "17.5.1". Anything after the numbers (" beta") is ignored.
#[derive(Debug, Clone)]
pub struct IosVersion(Vec<u32>);

impl IosVersion {
    /// None when the text does not start with a number.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = Vec::new();
        for part in text.trim().split('.') {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            match digits.parse() {
                Ok(n) => parts.push(n),
                Err(_) => break,
            }
            if digits.len() < part.len() {
                break;
            }
        }
        (!parts.is_empty()).then_some(IosVersion(parts))
    }

    pub fn major(&self) -> u32 {
        self.0[0]
    }

    /// Part `i` (0 = major), 0 when absent.
    pub fn part(&self, i: usize) -> u32 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

/// The iCloud backup bugs iOS updates fixed (guide, fix 6), each with the versions it affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupBug {
    /// iOS 18.0: overnight backups pause and never resume; fixed in 18.0.1.
    OvernightPause,
    /// iOS 26.0.x: backups stuck on "Preparing"; fixed in 26.1.
    StuckPreparing,
}

impl BackupBug {
    /// Whether a phone on `v` has this bug (and so an update fixes it).
    pub fn affects(self, v: &IosVersion) -> bool {
        match self {
            BackupBug::OvernightPause => (v.major(), v.part(1), v.part(2)) == (18, 0, 0),
            BackupBug::StuckPreparing => (v.major(), v.part(1)) == (26, 0),
        }
    }

    /// The affected versions, as people read them in Settings > General > About.
    pub fn affected(self) -> &'static str {
        match self {
            BackupBug::OvernightPause => "iOS 18.0",
            BackupBug::StuckPreparing => "iOS 26.0.x",
        }
    }

    /// The first version with the fix.
    pub fn fixed_in(self) -> &'static str {
        match self {
            BackupBug::OvernightPause => "18.0.1",
            BackupBug::StuckPreparing => "26.1",
        }
    }
}

impl Ord for IosVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| self.part(i).cmp(&other.part(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for IosVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for IosVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for IosVersion {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> IosVersion {
        IosVersion::parse(text).unwrap()
    }

    #[test]
    fn compares_as_numbers() {
        assert!(v("17.10") > v("17.9"));
        assert!(v("18.1") > v("18.0.1"));
        assert!(v("26.0.1") < v("26.1"));
        assert_eq!(v("18.0"), v("18.0.0"));
        assert_eq!(v("18"), v("18.0"));
        assert!(v("9.3.5") < v("10.0"));
        assert_eq!(v("17.5 beta").part(1), 5);
        assert!(IosVersion::parse("unknown").is_none());
    }

    #[test]
    fn which_versions_have_the_backup_bugs() {
        let pause = BackupBug::OvernightPause;
        let preparing = BackupBug::StuckPreparing;
        assert!(pause.affects(&v("18.0")) && pause.affects(&v("18")));
        assert!(!pause.affects(&v("18.0.1")) && !pause.affects(&v("18.1")));
        assert!(!pause.affects(&v("17.5.1")));
        assert!(preparing.affects(&v("26.0")) && preparing.affects(&v("26.0.1")));
        assert!(!preparing.affects(&v("26.1")) && !preparing.affects(&v("26.2.1")));
        assert!(!preparing.affects(&v("18.0")));
    }
}
