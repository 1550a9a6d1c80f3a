//! The backup keybag: TLV records, password-to-key derivation, class key unwrap (issue 4).
//!
//! Manifest.plist's `BackupKeyBag` holds one AES key per data protection class, each wrapped
//! (RFC 3394) with a key derived from the backup password. This module parses those bytes
//! ([`Keybag::parse`], pure and bounded, never panicking on hostile input), derives the
//! key-encryption key from a [`Password`], unwraps the class keys ([`Keybag::unlock`]) and then
//! the per-file keys that Manifest.plist's `ManifestKey` and each file's `EncryptionKey` carry
//! ([`ClassKeys::unwrap_key`]). It does no I/O and does not decrypt files: that is
//! [`crate::backup::crypto`]. Every secret lives in [`Zeroizing`] memory and no `Debug` or
//! `Display` shows one.

use std::fmt;

use aes_kw::KekAes256;
use zeroize::Zeroizing;

use crate::backup::crypto::{FileKey, KEY_LEN};
use crate::backup::kdf;

/// Bytes of an RFC 3394-wrapped 256-bit key: the key plus the 8-byte integrity block.
pub const WRAPPED_KEY_LEN: usize = KEY_LEN + 8;
/// Bytes of a `ManifestKey` or `EncryptionKey`: a little-endian protection class, then the
/// wrapped key [jsharkey13/iphone_backup_decrypt src/iphone_backup_decrypt/iphone_backup.py].
pub const PROTECTED_KEY_LEN: usize = 4 + WRAPPED_KEY_LEN;

/// The most PBKDF2-HMAC-SHA1 iterations (`ITER`) a keybag may ask for: 100 times the 10,000 iOS
/// uses. More is refused before any key is derived, so a hostile keybag cannot stall a check.
pub const MAX_SHA1_ITERATIONS: u32 = 1_000_000;
/// The most PBKDF2-HMAC-SHA256 iterations (`DPIC`) a keybag may ask for: 100 times the
/// 10,000,000 iOS uses (about two minutes of derivation on a fast computer).
pub const MAX_SHA256_ITERATIONS: u32 = 1_000_000_000;

/// `WRAP` bit meaning "wrapped with the passcode-derived key"; bit 1 (device key) cannot be
/// undone off the phone [matan1008/pyiosbackup keybag.py, WRAP_PASSCODE = 2].
const WRAP_PASSCODE: u32 = 2;

/// A backup password. Wiped from memory when dropped; `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Password(Zeroizing<Vec<u8>>);

impl Password {
    /// A password from its bytes, exactly as given (iTunes and Finder use its UTF-8 bytes).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Password(Zeroizing::new(bytes.into()))
    }

    /// A password read from a file or a pipe: one trailing `\n` or `\r\n` is removed, because
    /// `echo secret > file` adds one that is not part of the password; nothing else is changed.
    pub fn from_line(bytes: impl Into<Vec<u8>>) -> Self {
        let mut bytes = Zeroizing::new(bytes.into());
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Password(bytes)
    }

    /// The password's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True for the empty password.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Password {
    fn from(text: String) -> Self {
        Password::new(text.into_bytes())
    }
}

impl From<&str> for Password {
    fn from(text: &str) -> Self {
        Password::new(text.as_bytes())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a keybag could not be read, or a key could not be unlocked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeybagError {
    /// A record's 8-byte header or its value runs past the end of the keybag.
    #[error("the keybag is cut short: the record at byte {offset} needs {needed} bytes, {available} are left")]
    Truncated {
        /// Byte offset of the record.
        offset: usize,
        /// Bytes the record needs (header, or header and value).
        needed: u64,
        /// Bytes left from that offset.
        available: usize,
    },
    /// A record's value has the wrong length for its tag.
    #[error(
        "the keybag's {tag} record at byte {offset} is {found} bytes long, expected {expected}"
    )]
    BadLength {
        /// The record's tag.
        tag: String,
        /// Byte offset of the record.
        offset: usize,
        /// The length the tag requires.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A record the key derivation needs is absent, or zero where it must not be.
    #[error("the keybag has no usable {tag} record")]
    Missing {
        /// The tag.
        tag: &'static str,
    },
    /// An iteration count above the ceiling ([`MAX_SHA1_ITERATIONS`], [`MAX_SHA256_ITERATIONS`]).
    #[error(
        "the keybag asks for {count} {tag} iterations of its password key derivation, more than \
         the {ceiling} ibackup accepts (100 times what iOS uses); no real backup does, so the \
         keybag is damaged or made to stall the check"
    )]
    TooManyIterations {
        /// `ITER` or `DPIC`.
        tag: &'static str,
        /// The count the keybag states.
        count: u32,
        /// The most ibackup accepts for that tag.
        ceiling: u32,
    },
    /// No class key is wrapped with the password, so there is nothing the password can unlock.
    #[error("the keybag holds no class key protected by the backup password")]
    NoPasswordClasses,
    /// The first class key failed its RFC 3394 integrity check: the password is wrong.
    #[error("wrong backup password")]
    WrongPassword,
    /// A class key is not 40 bytes, or failed its integrity check after another passed: the
    /// keybag is damaged.
    #[error("the keybag's key for protection class {class} is damaged")]
    DamagedClassKey {
        /// The protection class.
        class: u32,
    },
    /// A `ManifestKey` or `EncryptionKey` is not 4 + 40 bytes.
    #[error("a wrapped file key is {found} bytes long, expected {PROTECTED_KEY_LEN} (4-byte class + 40-byte key)")]
    BadWrappedKeyLength {
        /// The length found.
        found: usize,
    },
    /// A file key names a protection class the keybag did not unlock.
    #[error("a file key uses protection class {class}, which the backup password does not unlock")]
    NoClassKey {
        /// The protection class.
        class: u32,
    },
    /// A file key failed its integrity check under the right class key: it is damaged.
    #[error("a file key (protection class {class}) is damaged: its integrity check failed")]
    DamagedFileKey {
        /// The protection class.
        class: u32,
    },
}

/// PBKDF2 parameters of one step of the password-to-key chain.
#[derive(Clone, PartialEq, Eq)]
pub struct KdfStep {
    /// The salt.
    pub salt: Vec<u8>,
    /// The iteration count (never 0).
    pub iterations: u32,
}

impl fmt::Debug for KdfStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KdfStep {{ salt: {} bytes, iterations: {} }}",
            self.salt.len(),
            self.iterations
        )
    }
}

/// How a password becomes the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdfParams {
    /// iOS 10.2 and later: PBKDF2-HMAC-SHA256 with `DPSL`/`DPIC` first (`None` before 10.2).
    pub sha256: Option<KdfStep>,
    /// Always: PBKDF2-HMAC-SHA1 with `SALT`/`ITER`.
    pub sha1: KdfStep,
}

/// One protection class's entry in the keybag.
#[derive(Clone, PartialEq, Eq)]
pub struct ClassRecord {
    /// The protection class (`CLAS`), e.g. 1 = NSFileProtectionComplete.
    pub class: u32,
    /// How the key is wrapped (`WRAP`): bit 1 device key, bit 2 password-derived key.
    pub wrap: u32,
    /// Key type (`KTYP`), when present.
    pub key_type: Option<u32>,
    /// The wrapped key (`WPKY`).
    pub wrapped_key: Vec<u8>,
    /// The class's public key (`PBKY`), present for asymmetric classes.
    pub public_key: Option<Vec<u8>>,
}

impl ClassRecord {
    /// True when the backup password unwraps this class's key.
    pub fn password_protected(&self) -> bool {
        self.wrap & WRAP_PASSCODE != 0
    }
}

impl fmt::Debug for ClassRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassRecord")
            .field("class", &self.class)
            .field("wrap", &self.wrap)
            .field("key_type", &self.key_type)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("has_public_key", &self.public_key.is_some())
            .finish()
    }
}

/// A parsed backup keybag. Holds only wrapped (still encrypted) keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keybag {
    /// `VERS`: keybag format version.
    pub version: Option<u32>,
    /// `TYPE`: 1 for a backup keybag.
    pub kind: Option<u32>,
    /// The keybag's own `UUID`.
    pub uuid: Option<Vec<u8>>,
    /// How the password becomes the key-encryption key.
    pub kdf: KdfParams,
    /// The per-class records, in keybag order.
    pub classes: Vec<ClassRecord>,
}

/// The header fields gathered while walking the records.
#[derive(Default)]
struct Header {
    version: Option<u32>,
    kind: Option<u32>,
    uuid: Option<Vec<u8>>,
    salt: Option<Vec<u8>>,
    iterations: Option<u32>,
    dp_salt: Option<Vec<u8>>,
    dp_iterations: Option<u32>,
}

/// A class record being gathered: starts at a `UUID` after the header.
#[derive(Default)]
struct PendingClass {
    class: Option<u32>,
    wrap: Option<u32>,
    key_type: Option<u32>,
    wrapped_key: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
}

impl PendingClass {
    fn finish(self) -> Option<ClassRecord> {
        // A class without CLAS or WPKY cannot be used; it is skipped rather than failing the
        // whole keybag, so that one odd entry does not hide the others.
        Some(ClassRecord {
            class: self.class?,
            wrap: self.wrap.unwrap_or(0),
            key_type: self.key_type,
            wrapped_key: self.wrapped_key?,
            public_key: self.public_key,
        })
    }
}

/// One TLV record: where it starts, its tag and its value.
struct Record<'a> {
    offset: usize,
    tag: [u8; 4],
    value: &'a [u8],
}

impl Record<'_> {
    fn tag_text(&self) -> String {
        String::from_utf8_lossy(&self.tag).into_owned()
    }

    fn u32(&self) -> Result<u32, KeybagError> {
        let bytes: [u8; 4] = self.value.try_into().map_err(|_| self.bad_length(4))?;
        // Numbers in keybag records are big-endian [matan1008/pyiosbackup keybag.py].
        Ok(u32::from_be_bytes(bytes))
    }

    fn bad_length(&self, expected: usize) -> KeybagError {
        KeybagError::BadLength {
            tag: self.tag_text(),
            offset: self.offset,
            expected,
            found: self.value.len(),
        }
    }
}

/// Splits `data` into TLV records: 4-byte tag, 4-byte big-endian length, value.
fn records(data: &[u8]) -> impl Iterator<Item = Result<Record<'_>, KeybagError>> + '_ {
    let mut offset = 0usize;
    std::iter::from_fn(move || {
        let rest = data.get(offset..).filter(|rest| !rest.is_empty())?;
        let start = offset;
        let truncated = |needed: u64| KeybagError::Truncated {
            offset: start,
            needed,
            available: rest.len(),
        };
        let Some((header, body)) = rest.split_first_chunk::<8>() else {
            offset = data.len();
            return Some(Err(truncated(8)));
        };
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let Some(value) = usize::try_from(len).ok().and_then(|len| body.get(..len)) else {
            offset = data.len();
            return Some(Err(truncated(8 + u64::from(len))));
        };
        offset = start + 8 + value.len();
        Some(Ok(Record {
            offset: start,
            tag: [header[0], header[1], header[2], header[3]],
            value,
        }))
    })
}

impl Keybag {
    /// Parses the `BackupKeyBag` bytes from Manifest.plist.
    ///
    /// Unknown tags are skipped (newer iOS versions add some); a record that runs past the end,
    /// a number that is not 4 bytes, or a missing `SALT`/`ITER` is an error.
    pub fn parse(data: &[u8]) -> Result<Keybag, KeybagError> {
        let mut header = Header::default();
        let mut classes = Vec::new();
        let mut current: Option<PendingClass> = None;
        for record in records(data) {
            let record = record?;
            match (&record.tag, current.as_mut()) {
                // The first UUID is the keybag's; each later one starts a class record.
                (b"UUID", None) if header.uuid.is_none() => {
                    header.uuid = Some(record.value.to_vec());
                }
                (b"UUID", _) => {
                    if let Some(done) = current.take().and_then(PendingClass::finish) {
                        classes.push(done);
                    }
                    current = Some(PendingClass::default());
                }
                (b"CLAS", Some(class)) => class.class = Some(record.u32()?),
                (b"WRAP", Some(class)) => class.wrap = Some(record.u32()?),
                (b"KTYP", Some(class)) => class.key_type = Some(record.u32()?),
                (b"WPKY", Some(class)) => class.wrapped_key = Some(record.value.to_vec()),
                (b"PBKY", Some(class)) => class.public_key = Some(record.value.to_vec()),
                (b"VERS", None) => header.version = Some(record.u32()?),
                (b"TYPE", None) => header.kind = Some(record.u32()?),
                (b"SALT", None) => header.salt = Some(record.value.to_vec()),
                (b"ITER", None) => header.iterations = Some(record.u32()?),
                (b"DPSL", None) => header.dp_salt = Some(record.value.to_vec()),
                (b"DPIC", None) => header.dp_iterations = Some(record.u32()?),
                // HMCK, header WRAP, DPWT and tags we do not know carry nothing we need.
                _ => {}
            }
        }
        if let Some(done) = current.and_then(PendingClass::finish) {
            classes.push(done);
        }
        Ok(Keybag {
            version: header.version,
            kind: header.kind,
            uuid: header.uuid,
            kdf: kdf_params(
                header.salt,
                header.iterations,
                header.dp_salt,
                header.dp_iterations,
            )?,
            classes,
        })
    }

    /// Derives the key-encryption key from `password` (slow on purpose: about a second with
    /// real parameters) and unwraps every class key the password protects.
    ///
    /// A failed integrity check on the first class key is [`KeybagError::WrongPassword`].
    pub fn unlock(&self, password: &Password) -> Result<ClassKeys, KeybagError> {
        let kek = derive_kek(password, &self.kdf);
        self.unlock_with_kek(&kek)
    }

    /// [`Keybag::unlock`] with a key-encryption key already derived by [`derive_kek`].
    pub fn unlock_with_kek(&self, kek: &[u8; KEY_LEN]) -> Result<ClassKeys, KeybagError> {
        let kek = KekAes256::new(kek.into());
        let mut keys = Vec::new();
        for record in self.classes.iter().filter(|c| c.password_protected()) {
            // A wrapped key of the wrong length is damage whatever the password.
            if record.wrapped_key.len() != WRAPPED_KEY_LEN {
                return Err(KeybagError::DamagedClassKey {
                    class: record.class,
                });
            }
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            let intact = kek.unwrap(&record.wrapped_key, &mut key[..]).is_ok();
            match (intact, keys.is_empty()) {
                (true, _) => keys.push((record.class, KekAes256::new((&*key).into()))),
                (false, true) => return Err(KeybagError::WrongPassword),
                (false, false) => {
                    return Err(KeybagError::DamagedClassKey {
                        class: record.class,
                    })
                }
            }
        }
        if keys.is_empty() {
            return Err(KeybagError::NoPasswordClasses);
        }
        Ok(ClassKeys { keys })
    }
}

fn kdf_params(
    salt: Option<Vec<u8>>,
    iterations: Option<u32>,
    dp_salt: Option<Vec<u8>>,
    dp_iterations: Option<u32>,
) -> Result<KdfParams, KeybagError> {
    let sha1 = KdfStep {
        salt: salt.ok_or(KeybagError::Missing { tag: "SALT" })?,
        iterations: iterations
            .filter(|&n| n > 0)
            .ok_or(KeybagError::Missing { tag: "ITER" })?,
    };
    within_ceiling("ITER", sha1.iterations, MAX_SHA1_ITERATIONS)?;
    // Keybags from iOS 10.2 on add the SHA-256 step; earlier ones have neither record.
    let sha256 = match (dp_salt, dp_iterations) {
        (None, None) => None,
        (Some(salt), Some(iterations)) if iterations > 0 => {
            within_ceiling("DPIC", iterations, MAX_SHA256_ITERATIONS)?;
            Some(KdfStep { salt, iterations })
        }
        (Some(_), _) => return Err(KeybagError::Missing { tag: "DPIC" }),
        (None, Some(_)) => return Err(KeybagError::Missing { tag: "DPSL" }),
    };
    Ok(KdfParams { sha256, sha1 })
}

fn within_ceiling(tag: &'static str, count: u32, ceiling: u32) -> Result<(), KeybagError> {
    if count > ceiling {
        return Err(KeybagError::TooManyIterations {
            tag,
            count,
            ceiling,
        });
    }
    Ok(())
}

/// The key-encryption key for `password`:
/// `PBKDF2-HMAC-SHA1(PBKDF2-HMAC-SHA256(password, DPSL, DPIC, 32), SALT, ITER, 32)`, or the
/// SHA-1 step alone on the password for keybags older than iOS 10.2
/// [jsharkey13/iphone_backup_decrypt src/iphone_backup_decrypt/iphone_backup.py].
pub fn derive_kek(password: &Password, kdf: &KdfParams) -> Zeroizing<[u8; KEY_LEN]> {
    let mut first = Zeroizing::new([0u8; KEY_LEN]);
    let sha1_input: &[u8] = match &kdf.sha256 {
        Some(step) => {
            kdf::pbkdf2_hmac_sha256(
                password.as_bytes(),
                &step.salt,
                step.iterations,
                &mut first[..],
            );
            &first[..]
        }
        None => password.as_bytes(),
    };
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    kdf::pbkdf2_hmac_sha1(
        sha1_input,
        &kdf.sha1.salt,
        kdf.sha1.iterations,
        &mut kek[..],
    );
    kek
}

/// The unwrapped class keys: what the password unlocks. Each is kept as the AES key schedule that
/// unwraps file keys, expanded once rather than once per file; wiped from memory when dropped
/// (the `aes` crate's `zeroize` feature).
#[derive(Clone)]
pub struct ClassKeys {
    keys: Vec<(u32, KekAes256)>,
}

impl ClassKeys {
    /// The protection classes unlocked, in keybag order.
    pub fn classes(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.iter().map(|(class, _)| *class)
    }

    /// Unwraps a `ManifestKey` or a file's `EncryptionKey`: a 4-byte little-endian protection
    /// class followed by the 40-byte RFC 3394-wrapped file key.
    pub fn unwrap_key(&self, wrapped: &[u8]) -> Result<FileKey, KeybagError> {
        let (class, key) = wrapped
            .split_first_chunk::<4>()
            .filter(|(_, key)| key.len() == WRAPPED_KEY_LEN)
            .ok_or(KeybagError::BadWrappedKeyLength {
                found: wrapped.len(),
            })?;
        let class = u32::from_le_bytes(*class);
        let class_key = self
            .keys
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, key)| key)
            .ok_or(KeybagError::NoClassKey { class })?;
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        class_key
            .unwrap(key, &mut out[..])
            .map_err(|_| KeybagError::DamagedFileKey { class })?;
        Ok(FileKey::from_bytes(&out))
    }
}

impl fmt::Debug for ClassKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassKeys")
            .field("classes", &self.classes().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(out: &mut Vec<u8>, tag: &[u8; 4], value: &[u8]) {
        out.extend_from_slice(tag);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }

    fn num(out: &mut Vec<u8>, tag: &[u8; 4], value: u32) {
        tlv(out, tag, &value.to_be_bytes());
    }

    const CLASS_KEYS: [(u32, u32, [u8; KEY_LEN]); 3] = [
        (1, 3, [0x11; KEY_LEN]),
        (3, 2, [0x33; KEY_LEN]),
        (6, 1, [0x66; KEY_LEN]),
    ];

    /// A keybag whose classes 1 and 3 are wrapped with `password`; class 6 is device-only.
    fn keybag_bytes(password: &str, double_protection: bool) -> Vec<u8> {
        let kdf = KdfParams {
            sha256: double_protection.then(|| KdfStep {
                salt: vec![0xD5; 20],
                iterations: 3,
            }),
            sha1: KdfStep {
                salt: vec![0x5A; 20],
                iterations: 2,
            },
        };
        let kek = derive_kek(&Password::from(password), &kdf);
        let kek = KekAes256::new((&*kek).into());
        let mut out = Vec::new();
        num(&mut out, b"VERS", 4);
        num(&mut out, b"TYPE", 1);
        tlv(&mut out, b"UUID", &[0xAA; 16]);
        tlv(&mut out, b"HMCK", &[0xBB; 40]);
        num(&mut out, b"WRAP", 0);
        tlv(&mut out, b"SALT", &kdf.sha1.salt);
        num(&mut out, b"ITER", kdf.sha1.iterations);
        if let Some(step) = &kdf.sha256 {
            num(&mut out, b"DPWT", 1);
            num(&mut out, b"DPIC", step.iterations);
            tlv(&mut out, b"DPSL", &step.salt);
        }
        for (class, wrap, key) in CLASS_KEYS {
            let mut wrapped = [0u8; WRAPPED_KEY_LEN];
            kek.wrap(&key, &mut wrapped).unwrap();
            tlv(&mut out, b"UUID", &[class as u8; 16]);
            num(&mut out, b"CLAS", class);
            num(&mut out, b"WRAP", wrap);
            num(&mut out, b"KTYP", 0);
            tlv(&mut out, b"WPKY", &wrapped);
            if class == 3 {
                tlv(&mut out, b"PBKY", &[0xCC; 32]);
            }
        }
        out
    }

    fn protected_key(class: u32, class_key: &[u8; KEY_LEN], file_key: &[u8; KEY_LEN]) -> Vec<u8> {
        let mut out = class.to_le_bytes().to_vec();
        let mut wrapped = [0u8; WRAPPED_KEY_LEN];
        KekAes256::new(class_key.into())
            .wrap(file_key, &mut wrapped)
            .unwrap();
        out.extend_from_slice(&wrapped);
        out
    }

    #[test]
    fn parses_header_and_classes() {
        let keybag = Keybag::parse(&keybag_bytes("pw", true)).unwrap();
        assert_eq!(keybag.version, Some(4));
        assert_eq!(keybag.kind, Some(1));
        assert_eq!(keybag.uuid.as_deref(), Some(&[0xAA; 16][..]));
        assert_eq!(keybag.kdf.sha1.iterations, 2);
        assert_eq!(keybag.kdf.sha256.as_ref().map(|s| s.iterations), Some(3));
        let classes: Vec<_> = keybag.classes.iter().map(|c| (c.class, c.wrap)).collect();
        assert_eq!(classes, [(1, 3), (3, 2), (6, 1)]);
        assert!(keybag.classes[1].public_key.is_some());
        assert!(!keybag.classes[2].password_protected());
    }

    #[test]
    fn unlocks_password_classes_and_file_keys_with_and_without_sha256_step() {
        for double_protection in [true, false] {
            let keybag = Keybag::parse(&keybag_bytes("secret", double_protection)).unwrap();
            assert_eq!(keybag.kdf.sha256.is_some(), double_protection);
            let keys = keybag.unlock(&Password::from("secret")).unwrap();
            assert_eq!(keys.classes().collect::<Vec<_>>(), [1, 3]);
            let file_key = [0x42; KEY_LEN];
            let wrapped = protected_key(3, &CLASS_KEYS[1].2, &file_key);
            assert_eq!(keys.unwrap_key(&wrapped).unwrap().as_bytes(), &file_key);
        }
    }

    #[test]
    fn wrong_password_is_reported_as_such() {
        let keybag = Keybag::parse(&keybag_bytes("secret", true)).unwrap();
        assert_eq!(
            keybag.unlock(&Password::from("Secret")).unwrap_err(),
            KeybagError::WrongPassword
        );
    }

    #[test]
    fn file_key_errors_are_typed() {
        let keybag = Keybag::parse(&keybag_bytes("secret", false)).unwrap();
        let keys = keybag.unlock(&Password::from("secret")).unwrap();
        let mut wrapped = protected_key(1, &CLASS_KEYS[0].2, &[1; KEY_LEN]);
        assert_eq!(
            keys.unwrap_key(&wrapped[..43]).unwrap_err(),
            KeybagError::BadWrappedKeyLength { found: 43 }
        );
        wrapped[0] = 6;
        assert_eq!(
            keys.unwrap_key(&wrapped).unwrap_err(),
            KeybagError::NoClassKey { class: 6 }
        );
        wrapped[0] = 3;
        assert_eq!(
            keys.unwrap_key(&wrapped).unwrap_err(),
            KeybagError::DamagedFileKey { class: 3 }
        );
    }

    #[test]
    fn damaged_second_class_key_is_not_a_wrong_password() {
        let mut bytes = keybag_bytes("secret", false);
        let keybag = Keybag::parse(&bytes).unwrap();
        let second = &keybag.classes[1].wrapped_key;
        let at = bytes
            .windows(WRAPPED_KEY_LEN)
            .position(|w| w == &second[..])
            .unwrap();
        bytes[at + 20] ^= 1;
        let keybag = Keybag::parse(&bytes).unwrap();
        assert_eq!(
            keybag.unlock(&Password::from("secret")).unwrap_err(),
            KeybagError::DamagedClassKey { class: 3 }
        );
    }

    #[test]
    fn short_wrapped_class_key_is_damage_not_a_wrong_password() {
        let mut out = Vec::new();
        tlv(&mut out, b"SALT", &[1; 20]);
        num(&mut out, b"ITER", 1);
        tlv(&mut out, b"UUID", &[0; 16]);
        tlv(&mut out, b"UUID", &[1; 16]);
        num(&mut out, b"CLAS", 7);
        num(&mut out, b"WRAP", 2);
        tlv(&mut out, b"WPKY", &[0; 32]);
        let keybag = Keybag::parse(&out).unwrap();
        assert_eq!(
            keybag.unlock(&Password::from("x")).unwrap_err(),
            KeybagError::DamagedClassKey { class: 7 }
        );
    }

    /// (start, tag, value) of each whole TLV record, walked here without the parser's help;
    /// stops at the first record that runs past the end.
    fn walk(bytes: &[u8]) -> Vec<(usize, [u8; 4], &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + 8) {
            let len = u32::from_be_bytes(header[4..8].try_into().unwrap()) as usize;
            let Some(value) = bytes.get(at + 8..at + 8 + len) else {
                break;
            };
            out.push((at, header[..4].try_into().unwrap(), value));
            at += 8 + len;
        }
        out
    }

    #[test]
    fn every_truncation_is_located_or_parses_to_the_records_before_the_cut() {
        let bytes = keybag_bytes("pw", true);
        let whole = Keybag::parse(&bytes).unwrap();
        let mut parsed = 0;
        for len in 0..=bytes.len() {
            let records = walk(&bytes[..len]);
            let boundary = records.last().map_or(0, |(at, _, v)| at + 8 + v.len());
            let has = |tag: &[u8; 4]| records.iter().any(|r| &r.1 == tag);
            match Keybag::parse(&bytes[..len]) {
                Err(KeybagError::Truncated {
                    offset,
                    needed,
                    available,
                }) => {
                    assert_ne!(boundary, len, "a whole cut at {len} called truncated");
                    assert_eq!((offset, available), (boundary, len - boundary));
                    assert!(needed > available as u64, "cut at {len}");
                }
                Ok(keybag) => {
                    assert_eq!(boundary, len, "a record cut at {len} was accepted");
                    assert_eq!(keybag.kdf.sha1, whole.kdf.sha1, "cut at {len}");
                    let wrapped = records.iter().filter(|r| &r.1 == b"WPKY").count();
                    assert_eq!(keybag.classes.len(), wrapped, "cut at {len}");
                    // A class cut before its PBKY is the same class without a public key.
                    let mut expected = whole.classes[..wrapped].to_vec();
                    if !has(b"PBKY") {
                        for class in expected.iter_mut().filter(|c| c.class == 3) {
                            class.public_key = None;
                        }
                    }
                    assert_eq!(keybag.classes, expected, "cut at {len}");
                    parsed += 1;
                }
                Err(KeybagError::Missing { tag }) => {
                    assert_eq!(boundary, len, "cut at {len}");
                    assert!(!has(tag.as_bytes().try_into().unwrap()), "{tag} is there");
                }
                Err(other) => panic!("a cut at {len}: {other}"),
            }
        }
        // The cuts after ITER and DPWT (no SHA-256 step yet), after DPSL, and after each of
        // the 16 class records (3 classes of 5, one PBKY); a cut between DPIC and DPSL is not.
        assert_eq!(parsed, 2 + 1 + 16, "cuts that parse");
        assert!(matches!(
            Keybag::parse(&[0u8; 5]),
            Err(KeybagError::Truncated { offset: 0, .. })
        ));
    }

    #[test]
    fn hostile_lengths_and_values_are_errors() {
        let mut out = Vec::new();
        out.extend_from_slice(b"SALT\xFF\xFF\xFF\xFF");
        assert!(matches!(
            Keybag::parse(&out),
            Err(KeybagError::Truncated { .. })
        ));

        let mut out = Vec::new();
        tlv(&mut out, b"ITER", &[0, 1]);
        assert!(matches!(
            Keybag::parse(&out),
            Err(KeybagError::BadLength { ref tag, expected: 4, found: 2, .. }) if tag == "ITER"
        ));

        let mut out = Vec::new();
        tlv(&mut out, b"SALT", &[1; 20]);
        num(&mut out, b"ITER", 0);
        assert_eq!(
            Keybag::parse(&out).unwrap_err(),
            KeybagError::Missing { tag: "ITER" }
        );

        let mut out = Vec::new();
        tlv(&mut out, b"SALT", &[1; 20]);
        num(&mut out, b"ITER", 5);
        tlv(&mut out, b"DPSL", &[1; 20]);
        assert_eq!(
            Keybag::parse(&out).unwrap_err(),
            KeybagError::Missing { tag: "DPIC" }
        );

        num(&mut out, b"DPIC", 5);
        let keybag = Keybag::parse(&out).unwrap();
        assert_eq!(
            keybag.unlock(&Password::from("x")).unwrap_err(),
            KeybagError::NoPasswordClasses
        );
    }

    #[test]
    fn iteration_counts_above_the_ceilings_are_refused_before_any_derivation() {
        let base = |iter: u32, dpic: u32| {
            let mut out = Vec::new();
            tlv(&mut out, b"SALT", &[1; 20]);
            num(&mut out, b"ITER", iter);
            tlv(&mut out, b"DPSL", &[2; 20]);
            num(&mut out, b"DPIC", dpic);
            out
        };
        assert!(Keybag::parse(&base(MAX_SHA1_ITERATIONS, MAX_SHA256_ITERATIONS)).is_ok());
        assert_eq!(
            Keybag::parse(&base(10_000, u32::MAX)).unwrap_err(),
            KeybagError::TooManyIterations {
                tag: "DPIC",
                count: u32::MAX,
                ceiling: MAX_SHA256_ITERATIONS
            }
        );
        let sha1 = Keybag::parse(&base(MAX_SHA1_ITERATIONS + 1, 10)).unwrap_err();
        assert_eq!(
            sha1,
            KeybagError::TooManyIterations {
                tag: "ITER",
                count: MAX_SHA1_ITERATIONS + 1,
                ceiling: MAX_SHA1_ITERATIONS
            }
        );
        let text = sha1.to_string();
        assert!(
            text.contains("1000001") && text.contains("1000000"),
            "{text}"
        );
    }

    #[test]
    fn mutated_keybags_are_refused_where_they_break_or_parse_to_what_they_hold() {
        let mut state = 0x2545F4914F6CDD1Du64;
        let base = keybag_bytes("pw", true);
        let (mut parsed, mut refused) = (0, 0);
        for round in 0..2000 {
            let mut bytes = base.clone();
            for _ in 0..(round % 8 + 1) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % bytes.len();
                bytes[at] = (state >> 32) as u8;
            }
            let records = walk(&bytes);
            let end = records.last().map_or(0, |(at, _, v)| at + 8 + v.len());
            match Keybag::parse(&bytes) {
                Ok(keybag) => {
                    parsed += 1;
                    assert_eq!(end, bytes.len(), "round {round}: a cut record accepted");
                    // The header is what comes before the second UUID; its last ITER counts.
                    let header_end = records
                        .iter()
                        .filter(|r| &r.1 == b"UUID")
                        .nth(1)
                        .map_or(bytes.len(), |r| r.0);
                    let iter = records
                        .iter()
                        .rfind(|r| &r.1 == b"ITER" && r.0 < header_end)
                        .map(|r| u32::from_be_bytes(r.2.try_into().unwrap()));
                    assert_eq!(Some(keybag.kdf.sha1.iterations), iter, "round {round}");
                    let values: Vec<&[u8]> = records
                        .iter()
                        .filter(|r| &r.1 == b"WPKY")
                        .map(|r| r.2)
                        .collect();
                    for class in &keybag.classes {
                        assert!(values.contains(&&class.wrapped_key[..]), "round {round}");
                    }
                    // A key-encryption key of zeros opens none of these class keys.
                    assert!(matches!(
                        keybag.unlock_with_kek(&[0; KEY_LEN]),
                        Err(KeybagError::WrongPassword
                            | KeybagError::DamagedClassKey { .. }
                            | KeybagError::NoPasswordClasses)
                    ));
                }
                Err(KeybagError::Truncated {
                    offset,
                    needed,
                    available,
                }) => {
                    refused += 1;
                    assert_eq!(
                        (offset, available),
                        (end, bytes.len() - end),
                        "round {round}"
                    );
                    assert!(needed > available as u64, "round {round}");
                }
                Err(KeybagError::BadLength {
                    tag,
                    offset,
                    expected,
                    found,
                }) => {
                    refused += 1;
                    let record = records.iter().find(|r| r.0 == offset);
                    let record = record.unwrap_or_else(|| panic!("round {round}: {offset}"));
                    assert_eq!((&record.1[..], record.2.len()), (tag.as_bytes(), found));
                    assert_ne!(expected, found, "round {round}");
                }
                Err(KeybagError::Missing { .. } | KeybagError::TooManyIterations { .. }) => {
                    refused += 1
                }
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        // Most single-byte changes land in values (salts, keys) and still parse; changes to a
        // length or a tag are refused. Both must happen.
        assert!(
            parsed > 500 && refused > 200,
            "{parsed} parsed, {refused} refused"
        );
    }

    #[test]
    fn password_from_line_drops_one_line_ending() {
        assert_eq!(Password::from_line(b"pw\n".to_vec()).as_bytes(), b"pw");
        assert_eq!(Password::from_line(b"pw\r\n".to_vec()).as_bytes(), b"pw");
        assert_eq!(Password::from_line(b"pw\n\n".to_vec()).as_bytes(), b"pw\n");
        assert_eq!(Password::from_line(b" pw ".to_vec()).as_bytes(), b" pw ");
    }

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let password = Password::from("hunter2");
        assert!(!format!("{password:?} {password}").contains("hunter2"));
        let keybag = Keybag::parse(&keybag_bytes("pw", false)).unwrap();
        let keys = keybag.unlock(&Password::from("pw")).unwrap();
        let text = format!("{keys:?} {keybag:?}");
        assert!(
            !text.contains("17, 17") && !text.contains("51, 51"),
            "{text}"
        );
    }
}
