//! PBKDF2-HMAC (RFC 8018, section 5.2) over SHA-256 and SHA-1: the two steps that turn a backup
//! password into the keybag's key-encryption key ([`crate::backup::keybag::derive_kek`]), with
//! iOS's counts of 10,000,000 and 10,000 iterations.
//!
//! Nearly all of the time goes to the iteration loop, so it is written for it: the HMAC key is
//! absorbed once into an inner (`0x36` pad) and an outer (`0x5c` pad) hash state, and every
//! iteration is then exactly two calls of the hash's compression function, the ones the `sha2`
//! and `sha1` crates export (they pick the CPU's SHA instructions at run time when it has them),
//! on one 64-byte block laid out once: the previous value, the `0x80` marker, zeros and the
//! message length. Nothing is buffered or cloned per iteration. The key, the pad states, the
//! intermediate values and the blocks holding them are [`Zeroizing`], wiped when dropped.

use std::slice;

use sha2::digest::generic_array::GenericArray;
use zeroize::Zeroizing;

/// Bytes in one input block of SHA-1 and SHA-256; also HMAC's key block.
const BLOCK_LEN: usize = 64;

/// A hash built on a 64-byte compression function with a big-endian length, whose output is its
/// whole state of `W` 32-bit words (SHA-256: 8, SHA-1: 5).
trait Compression<const W: usize> {
    /// The state before the first block.
    const INITIAL: [u32; W];
    /// Runs one block into `state`.
    fn compress(state: &mut [u32; W], block: &[u8; BLOCK_LEN]);
}

struct Sha256;

impl Compression<8> for Sha256 {
    // FIPS 180-4, section 5.3.3.
    const INITIAL: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];

    fn compress(state: &mut [u32; 8], block: &[u8; BLOCK_LEN]) {
        sha2::compress256(state, slice::from_ref(GenericArray::from_slice(block)));
    }
}

struct Sha1;

impl Compression<5> for Sha1 {
    // FIPS 180-4, section 5.3.1.
    const INITIAL: [u32; 5] = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];

    fn compress(state: &mut [u32; 5], block: &[u8; BLOCK_LEN]) {
        sha1::compress(state, slice::from_ref(GenericArray::from_slice(block)));
    }
}

/// PBKDF2-HMAC-SHA256 of `password` and `salt`, filling `out` (any length). A count of 0 is taken
/// as 1: the first HMAC is always computed.
pub fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    pbkdf2::<8, Sha256>(password, salt, iterations, out);
}

/// PBKDF2-HMAC-SHA1 of `password` and `salt`, filling `out` (any length). A count of 0 is taken as
/// 1: the first HMAC is always computed.
pub fn pbkdf2_hmac_sha1(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    pbkdf2::<5, Sha1>(password, salt, iterations, out);
}

fn pbkdf2<const W: usize, H: Compression<W>>(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out: &mut [u8],
) {
    let digest_len = 4 * W;
    // HMAC's key block: the password, or its hash when it is longer than a block, then zeros.
    let mut key = Zeroizing::new([0u8; BLOCK_LEN]);
    if password.len() > BLOCK_LEN {
        let mut hashed = Zeroizing::new(H::INITIAL);
        absorb_last::<W, H>(&mut hashed, 0, password);
        put_words(&hashed, &mut key[..]);
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let mut inner = Zeroizing::new(H::INITIAL);
    let mut outer = Zeroizing::new(H::INITIAL);
    let mut block = Zeroizing::new([0u8; BLOCK_LEN]);
    for (state, pad) in [(&mut inner, 0x36u8), (&mut outer, 0x5c)] {
        for (b, k) in block.iter_mut().zip(key.iter()) {
            *b = k ^ pad;
        }
        H::compress(state, &block);
    }

    // From here `block` is the last block of both hashes of every iteration: a digest, then the
    // padding of a message of one key block plus one digest. Only its first bytes change.
    block.fill(0);
    block[digest_len] = 0x80;
    let bits = ((BLOCK_LEN + digest_len) * 8) as u64;
    block[BLOCK_LEN - 8..].copy_from_slice(&bits.to_be_bytes());

    let mut message = Vec::with_capacity(salt.len() + 4);
    let mut u = Zeroizing::new([0u32; W]);
    let mut sum = Zeroizing::new([0u32; W]);
    let mut bytes = Zeroizing::new([0u8; BLOCK_LEN]);
    for (index, chunk) in out.chunks_mut(digest_len).enumerate() {
        // U_1 = HMAC(password, salt || big-endian 32-bit block number, counted from 1).
        message.clear();
        message.extend_from_slice(salt);
        message.extend_from_slice(&(index as u32 + 1).to_be_bytes());
        *u = *inner;
        absorb_last::<W, H>(&mut u, BLOCK_LEN as u64, &message);
        put_words(&u, &mut block[..]);
        *u = *outer;
        H::compress(&mut u, &block);
        *sum = *u;
        // U_j = HMAC(password, U_(j-1)); the block is the XOR of U_1 .. U_c.
        for _ in 1..iterations {
            put_words(&u, &mut block[..]);
            *u = *inner;
            H::compress(&mut u, &block);
            put_words(&u, &mut block[..]);
            *u = *outer;
            H::compress(&mut u, &block);
            for (s, x) in sum.iter_mut().zip(u.iter()) {
                *s ^= x;
            }
        }
        put_words(&sum, &mut bytes[..]);
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Runs the rest of a message, `data`, and its padding into `state`, which has already absorbed
/// `done` bytes (whole blocks).
fn absorb_last<const W: usize, H: Compression<W>>(state: &mut [u32; W], done: u64, data: &[u8]) {
    let mut blocks = data.chunks_exact(BLOCK_LEN);
    for block in &mut blocks {
        H::compress(state, block.try_into().expect("a whole block"));
    }
    let rest = blocks.remainder();
    // The rest, the 0x80 marker and the 8-byte bit length fit in one block or spill into two.
    let mut tail = Zeroizing::new([0u8; 2 * BLOCK_LEN]);
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let end = if rest.len() + 9 <= BLOCK_LEN {
        BLOCK_LEN
    } else {
        2 * BLOCK_LEN
    };
    let bits = (done + data.len() as u64) * 8;
    tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
    for block in tail[..end].chunks_exact(BLOCK_LEN) {
        H::compress(state, block.try_into().expect("a whole block"));
    }
}

/// Writes `words` big-endian at the start of `out`.
fn put_words<const W: usize>(words: &[u32; W], out: &mut [u8]) {
    for (bytes, word) in out.chunks_exact_mut(4).zip(words) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn sha256(password: &[u8], salt: &[u8], iterations: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        pbkdf2_hmac_sha256(password, salt, iterations, &mut out);
        out
    }

    fn sha1(password: &[u8], salt: &[u8], iterations: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        pbkdf2_hmac_sha1(password, salt, iterations, &mut out);
        out
    }

    /// Each (password, salt, iterations, expected hex) derived with `derive` gives the expected
    /// bytes.
    fn check_vectors(
        vectors: &[(&[u8], &[u8], u32, &str)],
        derive: fn(&[u8], &[u8], u32, usize) -> Vec<u8>,
    ) {
        for &(password, salt, count, expected) in vectors {
            let expected = unhex(expected);
            assert_eq!(
                derive(password, salt, count, expected.len()),
                expected,
                "{count} iterations of {:?}",
                String::from_utf8_lossy(password)
            );
        }
    }

    /// RFC 6070, the PBKDF2-HMAC-SHA1 test vectors (all but the one of 16,777,216 iterations).
    #[test]
    fn rfc_6070_sha1_vectors() {
        let vectors: [(&[u8], &[u8], u32, &str); 5] = [
            (
                b"password",
                b"salt",
                1,
                "0c60c80f961f0e71f3a9b524af6012062fe037a6",
            ),
            (
                b"password",
                b"salt",
                2,
                "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957",
            ),
            (
                b"password",
                b"salt",
                4096,
                "4b007901b765489abead49d926f721d065a429c1",
            ),
            (
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
            ),
            (
                b"pass\0word",
                b"sa\0lt",
                4096,
                "56fa6aa75548099dcc37d7f03425e0c3",
            ),
        ];
        check_vectors(&vectors, sha1);
    }

    /// Published PBKDF2-HMAC-SHA256 vectors: the two of RFC 7914, section 11 (64-byte outputs,
    /// two blocks each), and the RFC 6070 inputs as widely republished for SHA-256.
    #[test]
    fn published_sha256_vectors() {
        let vectors: [(&[u8], &[u8], u32, &str); 7] = [
            (
                b"passwd",
                b"salt",
                1,
                "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
                 49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
            ),
            (
                b"Password",
                b"NaCl",
                80000,
                "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
                 a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
            ),
            (
                b"password",
                b"salt",
                1,
                "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
            ),
            (
                b"password",
                b"salt",
                2,
                "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
            ),
            (
                b"password",
                b"salt",
                4096,
                "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
            ),
            (
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9",
            ),
            (
                b"pass\0word",
                b"sa\0lt",
                4096,
                "89b69d0516f829893c696226650a8687",
            ),
        ];
        check_vectors(&vectors, sha256);
    }

    /// The generic `pbkdf2` crate (a dev-dependency) on random inputs: passwords up to three
    /// blocks long (the block length itself and one past it included), salts that push the first
    /// message past one block, outputs of several blocks and a partial last one.
    #[test]
    fn agrees_with_the_pbkdf2_crate_on_random_inputs() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let mut long_passwords = 0;
        for round in 0..400 {
            let password_len = match round % 8 {
                0 => BLOCK_LEN,
                1 => BLOCK_LEN + 1,
                _ => next(3 * BLOCK_LEN),
            };
            long_passwords += usize::from(password_len > BLOCK_LEN);
            let password: Vec<u8> = (0..password_len).map(|_| next(256) as u8).collect();
            let salt: Vec<u8> = (0..next(130)).map(|_| next(256) as u8).collect();
            let count = 1 + next(40) as u32;
            let len = 1 + next(100);
            let mut expected = vec![0u8; len];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(&password, &salt, count, &mut expected);
            assert_eq!(
                sha256(&password, &salt, count, len),
                expected,
                "SHA-256 round {round}: password {password_len} bytes, salt {} bytes, \
                 {count} iterations, {len} bytes out",
                salt.len()
            );
            pbkdf2::pbkdf2_hmac::<::sha1::Sha1>(&password, &salt, count, &mut expected);
            assert_eq!(
                sha1(&password, &salt, count, len),
                expected,
                "SHA-1 round {round}: password {password_len} bytes, salt {} bytes, \
                 {count} iterations, {len} bytes out",
                salt.len()
            );
        }
        assert!(long_passwords > 100, "{long_passwords} long passwords");
    }
}
