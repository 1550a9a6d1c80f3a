//! The simulated phone's backup encryption: its class keys (fixed by the profile's seed, as a
//! phone keeps its own), the backup keybag that wraps them with a key derived from the backup
//! password (PBKDF2-HMAC-SHA256 over DPSL/DPIC, then PBKDF2-HMAC-SHA1 over SALT/ITER; the
//! profile sets low counts so tests stay fast, and the keybag states them), per-file keys
//! wrapped by a class key (RFC 3394), and AES-256-CBC with a zero IV and PKCS#7 padding,
//! streamed a block run at a time. The format is the one docs/encryption.md describes; nothing
//! here calls ibackup's own decryption code.

use aes::cipher::{BlockEncryptMut, KeyIvInit};
use aes_kw::KekAes256;

/// The classes of the keybag: 1-4 wrapped with the password, 5 with the device key only.
const CLASSES: u32 = 5;

/// The keys one encrypted backup is made with.
pub struct Keys {
    class_keys: Vec<[u8; 32]>,
    keybag: Vec<u8>,
    manifest_key: [u8; 32],
    seed: u64,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `N` deterministic bytes for `(seed, label)`: the phone's own secrets are fixed by the
/// profile so a later backup finds the same keys (these are test keys, never secret).
fn bytes<const N: usize>(seed: u64, label: &str) -> [u8; N] {
    let mut h = mix(seed);
    for b in label.bytes() {
        h = mix(h ^ u64::from(b));
    }
    let mut out = [0u8; N];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let word = mix(h ^ (i as u64 + 1)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    out
}

fn tlv(out: &mut Vec<u8>, tag: &[u8; 4], value: &[u8]) {
    out.extend_from_slice(tag);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

fn wrap(kek: &[u8; 32], key: &[u8; 32]) -> [u8; 40] {
    let mut out = [0u8; 40];
    // A 32-byte key always wraps into 40 bytes.
    let _ = KekAes256::new(kek.into()).wrap(key, &mut out);
    out
}

impl Keys {
    /// The phone's keys with its keybag protected by `password`, with `dpic` SHA-256 and
    /// `iter` SHA-1 iterations.
    pub fn new(seed: u64, password: &str, dpic: u32, iter: u32) -> Keys {
        let salt: [u8; 20] = bytes(seed, "SALT");
        let dpsl: [u8; 20] = bytes(seed, "DPSL");
        let mut first = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &dpsl, dpic.max(1), &mut first);
        let mut kek = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(&first, &salt, iter.max(1), &mut kek);
        let mut keybag = Vec::new();
        tlv(&mut keybag, b"VERS", &4u32.to_be_bytes());
        tlv(&mut keybag, b"TYPE", &1u32.to_be_bytes());
        tlv(&mut keybag, b"UUID", &bytes::<16>(seed, "keybag UUID"));
        tlv(&mut keybag, b"HMCK", &bytes::<40>(seed, "HMCK"));
        tlv(&mut keybag, b"WRAP", &0u32.to_be_bytes());
        tlv(&mut keybag, b"SALT", &salt);
        tlv(&mut keybag, b"ITER", &iter.max(1).to_be_bytes());
        tlv(&mut keybag, b"DPWT", &1u32.to_be_bytes());
        tlv(&mut keybag, b"DPIC", &dpic.max(1).to_be_bytes());
        tlv(&mut keybag, b"DPSL", &dpsl);
        let mut class_keys = Vec::new();
        for class in 1..=CLASSES {
            let key: [u8; 32] = bytes(seed, &format!("class {class}"));
            let (wrap_bits, wrapped) = if class == 5 {
                (1u32, bytes::<40>(seed, "device-wrapped class 5"))
            } else {
                (2u32, wrap(&kek, &key))
            };
            tlv(
                &mut keybag,
                b"UUID",
                &bytes::<16>(seed, &format!("UUID {class}")),
            );
            tlv(&mut keybag, b"CLAS", &class.to_be_bytes());
            tlv(&mut keybag, b"WRAP", &wrap_bits.to_be_bytes());
            tlv(&mut keybag, b"KTYP", &0u32.to_be_bytes());
            tlv(&mut keybag, b"WPKY", &wrapped);
            class_keys.push(key);
        }
        Keys {
            class_keys,
            keybag,
            manifest_key: bytes(seed, "ManifestKey"),
            seed,
        }
    }

    /// The phone's class keys without a keybag (for unwrapping what the phone wrapped
    /// earlier, whatever the password was then).
    pub fn class_keys_of(seed: u64) -> Keys {
        Keys {
            class_keys: (1..=CLASSES)
                .map(|class| bytes(seed, &format!("class {class}")))
                .collect(),
            keybag: Vec::new(),
            manifest_key: bytes(seed, "ManifestKey"),
            seed,
        }
    }

    /// Manifest.plist's BackupKeyBag.
    pub fn keybag(&self) -> &[u8] {
        &self.keybag
    }

    pub fn manifest_key(&self) -> &[u8; 32] {
        &self.manifest_key
    }

    /// Manifest.plist's ManifestKey: class 3, then the wrapped key.
    pub fn protected_manifest_key(&self) -> Vec<u8> {
        self.protect(3, &self.manifest_key)
    }

    /// A file's key, fixed by the file and its version (an unchanged file keeps its record).
    pub fn file_key(&self, file_id: &str, version: u64) -> [u8; 32] {
        bytes(self.seed ^ mix(version), file_id)
    }

    /// The EncryptionKey layout: little-endian class, then `key` wrapped by that class's key.
    pub fn protect(&self, class: u32, key: &[u8; 32]) -> Vec<u8> {
        let index = (class.clamp(1, 4) - 1) as usize;
        let mut out = class.clamp(1, 4).to_le_bytes().to_vec();
        out.extend_from_slice(&wrap(&self.class_keys[index], key));
        out
    }

    /// Unwraps a ManifestKey this phone made; `None` when it is not one of this phone's.
    pub fn unprotect(&self, protected: &[u8]) -> Option<[u8; 32]> {
        if protected.len() != 44 {
            return None;
        }
        let class = u32::from_le_bytes(protected[..4].try_into().ok()?);
        if !(1..=4).contains(&class) {
            return None;
        }
        let mut key = [0u8; 32];
        KekAes256::new((&self.class_keys[class as usize - 1]).into())
            .unwrap(&protected[4..], &mut key)
            .ok()?;
        Some(key)
    }
}

/// The length of a file of `size` bytes once encrypted (PKCS#7 always adds 1-16 bytes).
pub fn encrypted_len(size: u64) -> u64 {
    size - size % 16 + 16
}

/// AES-256-CBC encryption with a zero IV, fed in pieces; [`CbcStream::finish`] pads.
pub struct CbcStream {
    cipher: cbc::Encryptor<aes::Aes256>,
    /// Plaintext not yet a whole block.
    pending: Vec<u8>,
}

impl CbcStream {
    pub fn new(key: &[u8; 32]) -> CbcStream {
        CbcStream {
            cipher: cbc::Encryptor::<aes::Aes256>::new(key.into(), &[0u8; 16].into()),
            pending: Vec::with_capacity(16),
        }
    }

    /// Encrypts as many whole blocks of `pending + data` as there are, appended to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.pending);
        out.extend_from_slice(data);
        let whole = (out.len() - start) / 16 * 16;
        self.pending.clear();
        self.pending.extend_from_slice(&out[start + whole..]);
        out.truncate(start + whole);
        self.encrypt_in_place(&mut out[start..]);
    }

    /// The last block, with its padding.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let pad = 16 - self.pending.len();
        let start = out.len();
        out.extend_from_slice(&self.pending);
        out.extend(std::iter::repeat_n(pad as u8, pad));
        self.encrypt_in_place(&mut out[start..]);
    }

    fn encrypt_in_place(&mut self, data: &mut [u8]) {
        for block in data.chunks_exact_mut(16) {
            self.cipher.encrypt_block_mut(block.into());
        }
    }
}

/// `plaintext` encrypted whole (Manifest.db).
pub fn encrypt(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let mut stream = CbcStream::new(key);
    let mut out = Vec::with_capacity(plaintext.len() + 16);
    stream.update(plaintext, &mut out);
    stream.finish(&mut out);
    out
}

/// Decrypts what [`encrypt`] made; `None` when the length or the padding is wrong.
pub fn decrypt(key: &[u8; 32], ciphertext: &[u8]) -> Option<Vec<u8>> {
    use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut};
    let mut buf = ciphertext.to_vec();
    let len = cbc::Decryptor::<aes::Aes256>::new(key.into(), &[0u8; 16].into())
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}
