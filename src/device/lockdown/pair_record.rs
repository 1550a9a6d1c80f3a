//! The pair record as plain data: the host's keys and certificates for one phone, its plist
//! form (parse and serialize), the DER views the TLS session needs, where records live (the
//! transport's daemon, then the OS folder or `IBACKUP_LOCKDOWN_DIR`), and reading and saving
//! them. [libimobiledevice common/userpref.c]
//!
//! Files in the folder are read through `untrusted_file` (never a link, never a FIFO or device,
//! at most [`MAX_RECORD_BYTES`]). A record holds private keys, so it is saved for its owner
//! only, whatever the umask: written to a temporary file in the same folder (0600 set on the
//! handle), flushed to disk, then renamed over the old one; folders ibackup creates for it are
//! 0700, folders it finds are left as they are.
//!
//! Sits below lockdown and imports nothing from it, so lockdown can pin its session to a record
//! without a circle. Not here: making a new record or the Pair exchange (pairing.rs), the TLS
//! session itself (lockdown/mod.rs).

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use plist::{Dictionary, Value};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::device::transport::usbmuxd::{parse_dict, xml_bytes};
use crate::device::transport::{AttachedDevice, Transport};
use crate::device::DeviceError;
use crate::platform::Os;
use crate::untrusted_file::{self, Links};

/// Overrides the pair record folder (tests, portable setups).
pub const FOLDER_VARIABLE: &str = "IBACKUP_LOCKDOWN_DIR";

/// The largest pair record (or SystemConfiguration.plist) read from the folder. Real records
/// are a few KiB; a daemon hands them over in a usbmux frame of at most 1 MiB, so the same
/// ceiling holds for files.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// A pair record: the host's keys and certificates for one phone.
#[derive(Clone, PartialEq, Eq)]
pub struct PairRecord {
    /// PEM.
    pub device_certificate: Vec<u8>,
    /// PEM.
    pub host_certificate: Vec<u8>,
    /// PEM (PKCS#1 or PKCS#8).
    pub host_private_key: Vec<u8>,
    /// PEM.
    pub root_certificate: Vec<u8>,
    /// PEM.
    pub root_private_key: Vec<u8>,
    pub host_id: String,
    pub system_buid: String,
    pub escrow_bag: Option<Vec<u8>>,
    pub wifi_mac_address: Option<String>,
}

impl std::fmt::Debug for PairRecord {
    // Private keys stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairRecord")
            .field("host_id", &self.host_id)
            .field("system_buid", &self.system_buid)
            .finish_non_exhaustive()
    }
}

/// Where a pair record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSource {
    Daemon,
    Folder(PathBuf),
}

impl PairRecord {
    /// Parses a record's plist bytes (XML or binary).
    pub fn from_plist(bytes: &[u8], origin: &str) -> Result<Self, DeviceError> {
        let dict = parse_dict(bytes, origin)?;
        let bad = |detail: String| DeviceError::PairRecord {
            origin: origin.to_string(),
            detail,
        };
        let pem = |key: &str| -> Result<Vec<u8>, DeviceError> {
            match dict.get(key) {
                Some(Value::Data(d)) => Ok(d.clone()),
                Some(Value::String(s)) => Ok(s.clone().into_bytes()),
                _ => Err(bad(format!("{key} is missing"))),
            }
        };
        let text = |key: &str| -> Result<String, DeviceError> {
            dict.get(key)
                .and_then(Value::as_string)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("{key} is missing")))
        };
        Ok(PairRecord {
            device_certificate: pem("DeviceCertificate")?,
            host_certificate: pem("HostCertificate")?,
            host_private_key: pem("HostPrivateKey")?,
            root_certificate: pem("RootCertificate")?,
            root_private_key: pem("RootPrivateKey").unwrap_or_default(),
            host_id: text("HostID")?,
            system_buid: text("SystemBUID")?,
            escrow_bag: dict
                .get("EscrowBag")
                .and_then(Value::as_data)
                .map(<[u8]>::to_vec),
            wifi_mac_address: dict
                .get("WiFiMACAddress")
                .and_then(Value::as_string)
                .map(str::to_string),
        })
    }

    /// The whole record as a dictionary, the form usbmuxd and the folder store.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut dict = self.public_dictionary();
        dict.insert(
            "HostPrivateKey".into(),
            Value::Data(self.host_private_key.clone()),
        );
        dict.insert(
            "RootPrivateKey".into(),
            Value::Data(self.root_private_key.clone()),
        );
        if let Some(bag) = &self.escrow_bag {
            dict.insert("EscrowBag".into(), Value::Data(bag.clone()));
        }
        if let Some(mac) = &self.wifi_mac_address {
            dict.insert("WiFiMACAddress".into(), mac.clone().into());
        }
        dict
    }

    /// XML plist bytes of [`Self::to_dictionary`].
    pub fn to_plist(&self) -> Result<Vec<u8>, DeviceError> {
        xml_bytes(&self.to_dictionary(), "a pair record")
    }

    /// What the Pair request carries: certificates and identifiers, no private keys.
    pub fn public_dictionary(&self) -> Dictionary {
        let mut dict = Dictionary::new();
        dict.insert(
            "DeviceCertificate".into(),
            Value::Data(self.device_certificate.clone()),
        );
        dict.insert(
            "HostCertificate".into(),
            Value::Data(self.host_certificate.clone()),
        );
        dict.insert(
            "RootCertificate".into(),
            Value::Data(self.root_certificate.clone()),
        );
        dict.insert("HostID".into(), self.host_id.clone().into());
        dict.insert("SystemBUID".into(), self.system_buid.clone().into());
        dict
    }

    /// The device certificate as DER, the value the TLS session is pinned to.
    pub fn device_certificate_der(&self) -> Result<CertificateDer<'static>, DeviceError> {
        pem_certificate(&self.device_certificate, "DeviceCertificate")
    }

    /// The host certificate and key the host presents in TLS.
    pub fn host_identity(
        &self,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), DeviceError> {
        let cert = pem_certificate(&self.host_certificate, "HostCertificate")?;
        let key = PrivateKeyDer::from_pem_slice(&self.host_private_key).map_err(|e| {
            DeviceError::PairRecord {
                origin: "HostPrivateKey".to_string(),
                detail: e.to_string(),
            }
        })?;
        Ok((cert, key))
    }
}

fn pem_certificate(pem: &[u8], what: &str) -> Result<CertificateDer<'static>, DeviceError> {
    CertificateDer::from_pem_slice(pem).map_err(|e| DeviceError::PairRecord {
        origin: what.to_string(),
        detail: e.to_string(),
    })
}

/// The OS folders that hold pair records, in the order they are tried, on this machine.
pub fn record_folders() -> Vec<PathBuf> {
    record_folders_for(Os::current(), |name| std::env::var_os(name))
}

/// The folders that hold pair records on `os`, given its environment (`env` reads a variable;
/// empty counts as unset). `IBACKUP_LOCKDOWN_DIR` wins everywhere. Windows: Apple's service
/// keeps them in `%ProgramData%\Apple\Lockdown`. macOS: `/var/db/lockdown`, readable by root
/// only, so there the daemon (usbmuxd's ReadPairRecord, tried first by [`find_record`]) is the
/// normal way in and the folder a fallback for root. Linux: usbmuxd's `/var/lib/lockdown`.
pub fn record_folders_for(os: Os, env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    if let Some(dir) = env(FOLDER_VARIABLE).filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    match os {
        Os::Windows => {
            let base = env("ProgramData")
                .filter(|d| !d.is_empty())
                .and_then(|d| d.into_string().ok())
                .unwrap_or_else(|| "C:\\ProgramData".to_string());
            // Built as text with Windows' separator, so the answer is the same on any host.
            vec![PathBuf::from(format!(
                "{}\\Apple\\Lockdown",
                base.trim_end_matches('\\')
            ))]
        }
        Os::MacOs => vec![PathBuf::from("/var/db/lockdown")],
        Os::Linux | Os::Other => vec![PathBuf::from("/var/lib/lockdown")],
    }
}

/// The pair record for `udid`: from the transport's daemon first, then the OS folders.
pub fn find_record(
    transport: &dyn Transport,
    udid: &str,
) -> Result<Option<(PairRecord, RecordSource)>, DeviceError> {
    // A daemon that cannot answer is not fatal: the folder may still hold the record.
    if let Ok(Some(bytes)) = transport.read_pair_record(udid) {
        let record = PairRecord::from_plist(&bytes, &format!("usbmuxd's pair record for {udid}"))?;
        return Ok(Some((record, RecordSource::Daemon)));
    }
    for folder in record_folders() {
        if let Some(record) = read_folder_record(&folder, udid)? {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

/// Saves `record` for `device`: with the transport's daemon when it keeps records, otherwise
/// as `<UDID>.plist` in the first OS folder.
pub fn save(
    transport: &dyn Transport,
    device: &AttachedDevice,
    record: &PairRecord,
) -> Result<String, DeviceError> {
    let bytes = record.to_plist()?;
    if transport.save_pair_record(device, &bytes)? {
        return Ok(transport.name().to_string());
    }
    let folder = record_folders()
        .into_iter()
        .next()
        .ok_or_else(|| DeviceError::Io {
            what: "finding the pair record folder".to_string(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
    let path = folder.join(format!("{}.plist", device.udid));
    create_private_folder(&folder)
        .and_then(|_| write_private(&path, &bytes))
        .map_err(|e| DeviceError::Io {
            what: format!(
                "saving the pair record to {} (run as a user who may write there, or set IBACKUP_LOCKDOWN_DIR)",
                path.display()
            ),
            source: e,
        })?;
    Ok(path.display().to_string())
}

/// Creates `folder` and any missing folder above it, each 0700 on Unix whatever the umask.
/// Folders that already exist are not touched: their modes are their owner's choice.
fn create_private_folder(folder: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        // The missing folders, innermost first.
        let mut missing = Vec::new();
        let mut at = folder;
        loop {
            match std::fs::metadata(at) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(at),
                Err(e) => return Err(e),
            }
            match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => break,
            }
        }
        for dir in missing.into_iter().rev() {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                // Made by someone else meanwhile: theirs, left alone.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            // The umask may have taken bits from 0700 (never added any): set it on the folder
            // itself, opened without following a link, so a swap cannot redirect the chmod.
            let handle = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(dir)?;
            handle.set_permissions(std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(folder)
}

/// Writes `bytes` to `path` so that only its owner may read or write it (0600 on Unix, set on
/// the handle, so neither the umask nor the mode of an older file at `path` matters), and so
/// that `path` holds either the old file or the whole new one: a temporary file in the same
/// folder, flushed to disk, then renamed over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy()
        .into_owned();
    let (temporary, mut file) = create_temporary(folder, &name)?;
    let written = (|| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    // The rename itself reaches the disk with the folder.
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A new file `.<name>.<random>.tmp` in `folder`, created exclusively (never an existing file
/// or a link someone left there), 0600 from the start on Unix.
fn create_temporary(folder: &Path, name: &str) -> io::Result<(PathBuf, std::fs::File)> {
    use rsa::rand_core::{OsRng, RngCore};
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..16 {
        let candidate = folder.join(format!(".{name}.{:016x}.tmp", OsRng.next_u64()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        }
        match options.open(&candidate) {
            Ok(file) => return Ok((candidate, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The host's SystemBUID: the transport's daemon's, or without a daemon the one usbmuxd keeps
/// in SystemConfiguration.plist next to the records. `None` when neither has one (or the
/// daemon failed to say): the caller makes a new one.
pub fn system_buid(transport: &dyn Transport) -> Option<String> {
    match transport.system_buid() {
        Ok(Some(buid)) => Some(buid),
        Ok(None) => folder_system_buid(),
        Err(_) => None,
    }
}

fn folder_system_buid() -> Option<String> {
    for folder in record_folders() {
        // Optional: a file that cannot be used (missing, a FIFO, a link, too large) means a
        // new SystemBUID, not a failure.
        let path = folder.join("SystemConfiguration.plist");
        let Ok(bytes) = untrusted_file::read_capped(&path, MAX_RECORD_BYTES, Links::Refuse) else {
            continue;
        };
        let Ok(dict) = parse_dict(&bytes, "SystemConfiguration.plist") else {
            continue;
        };
        if let Some(buid) = dict.get("SystemBUID").and_then(Value::as_string) {
            return Some(buid.to_string());
        }
    }
    None
}

fn read_folder_record(
    folder: &Path,
    udid: &str,
) -> Result<Option<(PairRecord, RecordSource)>, DeviceError> {
    let path = folder.join(format!("{udid}.plist"));
    match untrusted_file::read_capped(&path, MAX_RECORD_BYTES, Links::Refuse) {
        Ok(bytes) => {
            let record = PairRecord::from_plist(&bytes, &path.display().to_string())?;
            Ok(Some((record, RecordSource::Folder(path))))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // Something other than a record of a sane size stands where the record goes (a link,
        // a FIFO, a device, gigabytes): say so rather than act as if there were none.
        Err(e) if untrusted_file::is_not_regular(&e) || e.kind() == io::ErrorKind::InvalidData => {
            let link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            Err(DeviceError::PairRecord {
                origin: path.display().to_string(),
                detail: if link {
                    "it is a symbolic link, and ibackup follows no link in the pair record folder"
                        .to_string()
                } else {
                    e.to_string()
                },
            })
        }
        // An unreadable folder (permissions) means "no record we can use" for a read.
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_need_their_certificates() {
        let mut dict = Dictionary::new();
        dict.insert("HostID".into(), "X".into());
        let bytes = xml_bytes(&dict, "t").unwrap();
        let err = PairRecord::from_plist(&bytes, "test").unwrap_err();
        assert!(err.to_string().contains("DeviceCertificate"), "{err}");
    }

    /// Plain bytes stand in for the PEM: reading and writing records does not look inside them.
    fn plain_record() -> PairRecord {
        PairRecord {
            device_certificate: b"device".to_vec(),
            host_certificate: b"host".to_vec(),
            host_private_key: b"host key".to_vec(),
            root_certificate: b"root".to_vec(),
            root_private_key: b"root key".to_vec(),
            host_id: "HOST".to_string(),
            system_buid: "BUID".to_string(),
            escrow_bag: Some(vec![1, 2, 3]),
            wifi_mac_address: Some("aa:bb".to_string()),
        }
    }

    #[test]
    fn records_round_trip_and_keep_private_keys_out_of_pair_requests() {
        let record = plain_record();
        let back = PairRecord::from_plist(&record.to_plist().unwrap(), "t").unwrap();
        assert_eq!(back, record);
        let public = record.public_dictionary();
        assert!(public.get("HostPrivateKey").is_none() && public.get("RootPrivateKey").is_none());
        assert!(!format!("{record:?}").contains("host key"));
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    /// Each OS's folder, worked out on any host: macOS's is root's /var/db/lockdown (usbmuxd's
    /// ReadPairRecord comes first there), Windows' follows %ProgramData%.
    #[test]
    fn each_os_keeps_records_in_its_own_folder() {
        let folders = |os, vars| {
            record_folders_for(os, env(vars))
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(folders(Os::MacOs, &[]), ["/var/db/lockdown"]);
        assert_eq!(folders(Os::Linux, &[]), ["/var/lib/lockdown"]);
        assert_eq!(
            folders(Os::Windows, &[("ProgramData", r"D:\Data\")]),
            [r"D:\Data\Apple\Lockdown"]
        );
        assert_eq!(
            folders(Os::Windows, &[("ProgramData", "")]),
            [r"C:\ProgramData\Apple\Lockdown"]
        );
        for os in [Os::MacOs, Os::Windows, Os::Linux, Os::Other] {
            let vars = &[(FOLDER_VARIABLE, "/srv/lockdown"), ("ProgramData", r"C:\P")];
            assert_eq!(folders(os, vars), ["/srv/lockdown"]);
        }
    }

    #[test]
    fn the_folder_is_read_when_the_daemon_has_nothing() {
        let dir = tempfile::TempDir::new().unwrap();
        let record = plain_record();
        std::fs::write(dir.path().join("UDID1.plist"), record.to_plist().unwrap()).unwrap();
        let (found, source) = read_folder_record(dir.path(), "UDID1").unwrap().unwrap();
        assert_eq!(found, record);
        assert_eq!(source, RecordSource::Folder(dir.path().join("UDID1.plist")));
        assert!(read_folder_record(dir.path(), "OTHER").unwrap().is_none());
        std::fs::write(dir.path().join("BAD.plist"), b"garbage").unwrap();
        assert!(read_folder_record(dir.path(), "BAD").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn records_that_are_not_regular_files_are_refused_without_reading_them() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::TempDir::new().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("ZERO.plist")).unwrap();
        let fifo = dir.path().join("FIFO.plist");
        let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        std::fs::File::create(dir.path().join("HUGE.plist"))
            .unwrap()
            .set_len(MAX_RECORD_BYTES + 1)
            .unwrap();
        for (udid, words) in [
            ("ZERO", "symbolic link"),
            ("FIFO", "FIFO"),
            ("HUGE", "bytes allowed"),
        ] {
            let err = read_folder_record(dir.path(), udid).unwrap_err();
            assert_eq!(err.code(), "device.bad_pair_record");
            assert!(err.to_string().contains(words), "{udid}: {err}");
        }
        // SystemConfiguration.plist is optional: a FIFO there is no BUID, at once.
        std::fs::rename(&fifo, dir.path().join("SystemConfiguration.plist")).unwrap();
        let bytes = untrusted_file::read_capped(
            &dir.path().join("SystemConfiguration.plist"),
            MAX_RECORD_BYTES,
            Links::Refuse,
        );
        assert!(bytes.is_err());
    }

    #[cfg(unix)]
    #[test]
    fn saving_replaces_a_readable_record_with_a_private_one_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("UDID1.plist");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&path, b"new keys").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new keys");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["UDID1.plist"]);
    }

    #[cfg(unix)]
    #[test]
    fn new_folders_are_private_and_existing_ones_untouched() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let inner = dir.path().join("a").join("b");
        create_private_folder(&inner).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&inner), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(dir.path()), 0o755);
        create_private_folder(&inner).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn saved_records_are_for_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("UDID1.plist");
        write_private(&path, b"keys").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"keys");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
