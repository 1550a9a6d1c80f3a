//! A lazy, read-only view of a binary property list (`bplist00`): objects are decoded only when
//! asked for, by index, and every offset, count and reference is checked against the buffer.
//!
//! This exists because verify decodes one small keyed archive per manifest row (hundreds of
//! thousands of them): building a full tree of owned values for each would cost more than the
//! rest of the scan. Nothing here recurses, so cyclic or deeply nested input cannot exhaust the
//! stack; callers follow references one step at a time.
//!
//! Format facts: the 32-byte trailer, the offset table and the object markers are described in
//! Apple's CFBinaryPList.c comments (opensource.apple.com, CF-1153.18).

use std::borrow::Cow;

const MAGIC: &[u8] = b"bplist0";
const TRAILER_LEN: usize = 32;

/// Why a binary plist could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} (at byte {offset})")]
pub struct BplistError {
    pub what: &'static str,
    pub offset: usize,
}

fn err<T>(what: &'static str, offset: usize) -> Result<T, BplistError> {
    Err(BplistError { what, offset })
}

/// One decoded object. Containers hold their references undecoded; strings and data borrow the
/// buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Object<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Real(f64),
    Date(f64),
    Data(&'a [u8]),
    String(Cow<'a, str>),
    Uid(u64),
    Array(Refs<'a>),
    Dict(Dict<'a>),
}

/// A run of object references, `width` bytes each, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refs<'a> {
    bytes: &'a [u8],
    width: usize,
}

impl<'a> Refs<'a> {
    pub fn len(&self) -> usize {
        self.bytes.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The object index of element `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<u64> {
        let start = i.checked_mul(self.width)?;
        let chunk = self.bytes.get(start..start + self.width)?;
        Some(be_uint(chunk))
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        let width = self.width;
        self.bytes.chunks_exact(width).map(be_uint)
    }
}

/// A dictionary: its key references and value references, pairwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dict<'a> {
    pub keys: Refs<'a>,
    pub values: Refs<'a>,
}

impl<'a> Dict<'a> {
    pub fn entries(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        self.keys.iter().zip(self.values.iter())
    }
}

/// A parsed trailer and offset table over a borrowed buffer.
#[derive(Debug, Clone, Copy)]
pub struct Bplist<'a> {
    data: &'a [u8],
    offset_width: usize,
    ref_width: usize,
    count: u64,
    top: u64,
    table: usize,
}

fn be_uint(bytes: &[u8]) -> u64 {
    match *bytes {
        // The widths real plists use, without a loop.
        [a] => u64::from(a),
        [a, b] => u64::from(u16::from_be_bytes([a, b])),
        _ => bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    }
}

impl<'a> Bplist<'a> {
    /// Checks the header and trailer and that the offset table fits in the buffer.
    pub fn parse(data: &'a [u8]) -> Result<Self, BplistError> {
        if data.len() < MAGIC.len() + 1 + TRAILER_LEN || !data.starts_with(MAGIC) {
            return err("not a binary plist", 0);
        }
        let trailer_at = data.len() - TRAILER_LEN;
        let trailer = &data[trailer_at..];
        let offset_width = usize::from(trailer[6]);
        let ref_width = usize::from(trailer[7]);
        let count = be_uint(&trailer[8..16]);
        let top = be_uint(&trailer[16..24]);
        let table = be_uint(&trailer[24..32]);
        if !(1..=8).contains(&offset_width) || !(1..=8).contains(&ref_width) {
            return err("bad offset or reference width in trailer", trailer_at);
        }
        let table_len = count.checked_mul(offset_width as u64).filter(|&len| {
            table
                .checked_add(len)
                .is_some_and(|end| end <= trailer_at as u64)
        });
        if table_len.is_none() || table < 8 {
            return err("offset table does not fit in the file", trailer_at);
        }
        if top >= count {
            return err("top object index out of range", trailer_at);
        }
        Ok(Bplist {
            data,
            offset_width,
            ref_width,
            count,
            top,
            table: table as usize,
        })
    }

    /// The index of the top object.
    pub fn top(&self) -> u64 {
        self.top
    }

    fn offset_of(&self, index: u64) -> Result<usize, BplistError> {
        if index >= self.count {
            return err("object reference out of range", self.table);
        }
        let at = self.table + index as usize * self.offset_width;
        let offset = be_uint(&self.data[at..at + self.offset_width]);
        if offset < 8 || offset >= self.table as u64 {
            return err("object offset outside the object area", at);
        }
        Ok(offset as usize)
    }

    fn slice(&self, start: usize, len: u64, what: &'static str) -> Result<&'a [u8], BplistError> {
        usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.table)
            .map(|end| &self.data[start..end])
            .ok_or(BplistError {
                what,
                offset: start,
            })
    }

    /// Reads the length that follows a marker whose low nibble is 0xF.
    fn long_count(&self, at: usize) -> Result<(u64, usize), BplistError> {
        let marker = *self.data.get(at).ok_or(BplistError {
            what: "truncated length",
            offset: at,
        })?;
        if marker >> 4 != 0x1 {
            return err("length is not an integer", at);
        }
        let width = 1usize << (marker & 0x0F);
        if width > 8 {
            return err("length wider than 8 bytes", at);
        }
        let bytes = self.slice(at + 1, width as u64, "truncated length")?;
        Ok((be_uint(bytes), at + 1 + width))
    }

    /// Decodes the object at `index`.
    pub fn object(&self, index: u64) -> Result<Object<'a>, BplistError> {
        let at = self.offset_of(index)?;
        let marker = self.data[at];
        let (kind, info) = (marker >> 4, marker & 0x0F);
        let counted = |at: usize| -> Result<(u64, usize), BplistError> {
            if info == 0x0F {
                self.long_count(at + 1)
            } else {
                Ok((u64::from(info), at + 1))
            }
        };
        match kind {
            0x0 => match info {
                0x0 => Ok(Object::Null),
                0x8 => Ok(Object::Bool(false)),
                0x9 => Ok(Object::Bool(true)),
                _ => err("unknown simple object", at),
            },
            0x1 => {
                let width = 1u64 << info.min(5);
                let bytes = self.slice(at + 1, width, "truncated integer")?;
                match bytes.len() {
                    1 | 2 | 4 => Ok(Object::Int(i128::from(be_uint(bytes)))),
                    8 => Ok(Object::Int(i128::from(be_uint(bytes) as i64))),
                    16 => {
                        let mut raw = [0u8; 16];
                        raw.copy_from_slice(bytes);
                        Ok(Object::Int(i128::from_be_bytes(raw)))
                    }
                    _ => err("unsupported integer width", at),
                }
            }
            0x2 => {
                let bytes = self.slice(at + 1, 1u64 << info.min(4), "truncated real")?;
                match bytes.len() {
                    4 => Ok(Object::Real(f64::from(f32::from_be_bytes(
                        bytes.try_into().unwrap_or_default(),
                    )))),
                    8 => Ok(Object::Real(f64::from_be_bytes(
                        bytes.try_into().unwrap_or_default(),
                    ))),
                    _ => err("unsupported real width", at),
                }
            }
            0x3 if info == 0x3 => {
                let bytes = self.slice(at + 1, 8, "truncated date")?;
                Ok(Object::Date(f64::from_be_bytes(
                    bytes.try_into().unwrap_or_default(),
                )))
            }
            0x4 => {
                let (len, start) = counted(at)?;
                Ok(Object::Data(self.slice(start, len, "truncated data")?))
            }
            0x5 => {
                let (len, start) = counted(at)?;
                let bytes = self.slice(start, len, "truncated string")?;
                std::str::from_utf8(bytes)
                    .map(|s| Object::String(Cow::Borrowed(s)))
                    .or_else(|_| err("string is not ASCII", start))
            }
            0x6 => {
                let (chars, start) = counted(at)?;
                let len = chars.saturating_mul(2);
                let bytes = self.slice(start, len, "truncated UTF-16 string")?;
                let units = bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .map(|s| Object::String(Cow::Owned(s)))
                    .or_else(|_| err("invalid UTF-16 string", start))
            }
            0x8 => {
                let bytes = self.slice(at + 1, u64::from(info) + 1, "truncated UID")?;
                if bytes.len() > 8 {
                    return err("UID wider than 8 bytes", at);
                }
                Ok(Object::Uid(be_uint(bytes)))
            }
            0xA => {
                let (len, start) = counted(at)?;
                let refs = self.refs(start, len)?;
                Ok(Object::Array(refs))
            }
            0xD => {
                let (len, start) = counted(at)?;
                let keys = self.refs(start, len)?;
                let values = self.refs(start + keys.bytes.len(), len)?;
                Ok(Object::Dict(Dict { keys, values }))
            }
            _ => err("unsupported object type", at),
        }
    }

    fn refs(&self, start: usize, count: u64) -> Result<Refs<'a>, BplistError> {
        let len = count.saturating_mul(self.ref_width as u64);
        let bytes = self.slice(start, len, "truncated container")?;
        Ok(Refs {
            bytes,
            width: self.ref_width,
        })
    }

    /// The string at `index`, or None when that object is not a string.
    pub fn string(&self, index: u64) -> Result<Option<Cow<'a, str>>, BplistError> {
        match self.object(index)? {
            Object::String(s) => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    /// The bytes of the ASCII string at `index`, or None when it is another kind of object.
    /// Cheaper than [`Bplist::string`]: no UTF-8 check, no UTF-16 decoding.
    pub fn ascii_key(&self, index: u64) -> Result<Option<&'a [u8]>, BplistError> {
        let at = self.offset_of(index)?;
        let marker = self.data[at];
        if marker >> 4 != 0x5 {
            return Ok(None);
        }
        let (len, start) = if marker & 0x0F == 0x0F {
            self.long_count(at + 1)?
        } else {
            (u64::from(marker & 0x0F), at + 1)
        };
        self.slice(start, len, "truncated string").map(Some)
    }

    /// The value for `key` in `dict`, as an object index. Keys that are not ASCII strings (as
    /// every keyed-archive key is) are skipped.
    pub fn lookup(&self, dict: &Dict<'a>, key: &str) -> Result<Option<u64>, BplistError> {
        let key = key.as_bytes();
        for (k, v) in dict.entries() {
            if self.key_is(k, key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Whether the object at `index` is the ASCII string `key`: [`Bplist::ascii_key`] compared
    /// with `key`, with the same errors, but a short string (the marker holds its length) is
    /// told apart by its marker byte alone before any byte is compared. Verify looks up four
    /// keys in every manifest row.
    fn key_is(&self, index: u64, key: &[u8]) -> Result<bool, BplistError> {
        let at = self.offset_of(index)?;
        let marker = self.data[at];
        if marker >> 4 != 0x5 {
            return Ok(false);
        }
        if marker & 0x0F == 0x0F {
            return Ok(self.ascii_key(index)? == Some(key));
        }
        let len = usize::from(marker & 0x0F);
        // Bounds are checked whatever the length, as `ascii_key` does.
        let bytes = self.slice(at + 1, len as u64, "truncated string")?;
        Ok(len == key.len() && bytes.iter().zip(key).all(|(a, b)| a == b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plist::{Dictionary, Value};

    fn binary(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        value.to_writer_binary(&mut out).expect("write bplist");
        out
    }

    /// `lookup` answers as comparing every key's `ascii_key` would, errors included: on
    /// dictionaries with short and long keys, keys of equal length, keys that are not strings,
    /// and on every one-byte change of the plist (markers that make a key long, short,
    /// overrunning or not a string at all).
    #[test]
    fn lookup_agrees_with_reading_every_key() {
        fn reference(
            plist: &Bplist<'_>,
            dict: &Dict<'_>,
            key: &str,
        ) -> Result<Option<u64>, BplistError> {
            for (k, v) in dict.entries() {
                if plist.ascii_key(k)? == Some(key.as_bytes()) {
                    return Ok(Some(v));
                }
            }
            Ok(None)
        }
        let present = [
            "Size",
            "Mode",
            "root",
            "$objects",
            "a-key-longer-than-fifteen",
            "x",
        ];
        let mut dict = Dictionary::new();
        for key in present {
            dict.insert(key.into(), Value::Integer((key.len() as u64).into()));
        }
        let bytes = binary(&Value::Dictionary(dict));
        let absent = ["Sizf", "", "absent-and-long-key"];
        let keys: Vec<&str> = present.iter().chain(&absent).copied().collect();
        let mut variants = vec![bytes.clone()];
        for at in 0..bytes.len() {
            for value in [0x00, 0x0F, 0x51, 0x54, 0x5E, 0x5F, 0xFF] {
                let mut changed = bytes.clone();
                changed[at] = value;
                variants.push(changed);
            }
        }
        let mut compared = 0;
        for variant in &variants {
            let Ok(plist) = Bplist::parse(variant) else {
                continue;
            };
            let Ok(Object::Dict(top)) = plist.object(plist.top()) else {
                continue;
            };
            for &key in &keys {
                assert_eq!(
                    plist.lookup(&top, key),
                    reference(&plist, &top, key),
                    "{key}"
                );
                compared += 1;
            }
        }
        assert!(compared > 1000, "{compared}");
        let plist = Bplist::parse(&bytes).unwrap();
        let Ok(Object::Dict(top)) = plist.object(plist.top()) else {
            panic!()
        };
        let found = plist
            .lookup(&top, "a-key-longer-than-fifteen")
            .unwrap()
            .unwrap();
        assert_eq!(plist.object(found).unwrap(), Object::Int(25));
        assert_eq!(plist.lookup(&top, "Sizf").unwrap(), None);
    }

    #[test]
    fn reads_what_the_plist_crate_writes() {
        let mut dict = Dictionary::new();
        dict.insert("small".into(), Value::Integer(7.into()));
        dict.insert("big".into(), Value::Integer((1i64 << 40).into()));
        dict.insert("negative".into(), Value::Integer((-5i64).into()));
        dict.insert("name".into(), Value::String("Café".into()));
        dict.insert("ascii".into(), Value::String("x".repeat(40)));
        dict.insert("data".into(), Value::Data(vec![1, 2, 3]));
        dict.insert("uid".into(), Value::Uid(plist::Uid::new(300)));
        dict.insert("yes".into(), Value::Boolean(true));
        dict.insert("list".into(), Value::Array(vec![Value::Real(1.5)]));
        let bytes = binary(&Value::Dictionary(dict));
        let bp = Bplist::parse(&bytes).unwrap();
        let Object::Dict(top) = bp.object(bp.top()).unwrap() else {
            panic!("top is not a dict")
        };
        let get = |key| bp.object(bp.lookup(&top, key).unwrap().unwrap()).unwrap();
        assert_eq!(get("small"), Object::Int(7));
        assert_eq!(get("big"), Object::Int(1 << 40));
        assert_eq!(get("negative"), Object::Int(-5));
        assert_eq!(get("name"), Object::String("Café".into()));
        assert_eq!(get("ascii"), Object::String("x".repeat(40).into()));
        assert_eq!(get("data"), Object::Data(&[1, 2, 3]));
        assert_eq!(get("uid"), Object::Uid(300));
        assert_eq!(get("yes"), Object::Bool(true));
        let Object::Array(list) = get("list") else {
            panic!("list is not an array")
        };
        assert_eq!(bp.object(list.get(0).unwrap()).unwrap(), Object::Real(1.5));
        assert_eq!(bp.lookup(&top, "absent").unwrap(), None);
    }

    /// The whole tree under `index` as the `plist` crate's value, following references at most
    /// `depth` levels down (a corrupted file may hold a cycle).
    fn tree(bp: &Bplist, index: u64, depth: usize) -> Result<Value, BplistError> {
        if depth == 0 {
            return err("too deep for the test", 0);
        }
        Ok(match bp.object(index)? {
            Object::Null => return err("null has no plist value", 0),
            Object::Bool(b) => Value::Boolean(b),
            Object::Int(n) => match i64::try_from(n) {
                Ok(n) => Value::Integer(n.into()),
                Err(_) => Value::Integer((n as u64).into()),
            },
            Object::Real(r) => Value::Real(r),
            Object::Date(_) => return err("dates are not compared", 0),
            Object::Data(d) => Value::Data(d.to_vec()),
            Object::String(s) => Value::String(s.into_owned()),
            Object::Uid(u) => Value::Uid(plist::Uid::new(u)),
            Object::Array(refs) => Value::Array(
                refs.iter()
                    .map(|i| tree(bp, i, depth - 1))
                    .collect::<Result<_, _>>()?,
            ),
            Object::Dict(dict) => {
                let mut out = Dictionary::new();
                for (k, v) in dict.entries() {
                    let key = match bp.object(k)? {
                        Object::String(key) => key.into_owned(),
                        _ => return err("a key that is not a string", 0),
                    };
                    out.insert(key, tree(bp, v, depth - 1)?);
                }
                Value::Dictionary(out)
            }
        })
    }

    /// What our reader makes of `bytes`, checked against the `plist` crate, an independent
    /// decoder: every error names a byte inside the buffer, and whenever both read the whole
    /// tree they read the same tree. Returns our tree, if we read it all.
    fn read_and_compare(bytes: &[u8], what: &str) -> Option<Value> {
        let within = |e: &BplistError| assert!(e.offset < bytes.len().max(1), "{what}: {e}");
        let bp = match Bplist::parse(bytes) {
            Ok(bp) => bp,
            Err(e) => {
                within(&e);
                return None;
            }
        };
        let ours = match tree(&bp, bp.top(), 16) {
            Ok(value) => value,
            Err(e) => {
                within(&e);
                return None;
            }
        };
        if let Ok(theirs) = Value::from_reader(std::io::Cursor::new(bytes)) {
            assert_eq!(ours, theirs, "{what}: the two decoders disagree");
        }
        Some(ours)
    }

    #[test]
    fn every_truncation_is_refused_inside_the_buffer_or_read_as_the_plist_crate_reads_it() {
        let mut dict = Dictionary::new();
        dict.insert("k".into(), Value::String("value".into()));
        dict.insert("d".into(), Value::Data(vec![0; 100]));
        let whole = Value::Dictionary(dict);
        let bytes = binary(&whole);
        assert_eq!(read_and_compare(&bytes, "whole"), Some(whole.clone()));
        let mut refused = 0;
        for cut in 0..bytes.len() {
            match read_and_compare(&bytes[..cut], &format!("cut at {cut}")) {
                None => refused += 1,
                // The trailer is the last 32 bytes: a cut file cannot hold the whole tree.
                Some(value) => assert_ne!(value, whole, "cut at {cut}"),
            }
        }
        assert!(
            refused > bytes.len() * 9 / 10,
            "only {refused} cuts refused"
        );
        assert_eq!(
            Bplist::parse(b"bplist00").unwrap_err(),
            BplistError {
                what: "not a binary plist",
                offset: 0
            }
        );
        assert!(Bplist::parse(b"<?xml version").is_err());
    }

    #[test]
    fn every_single_byte_corruption_is_refused_or_read_as_the_plist_crate_reads_it() {
        let mut dict = Dictionary::new();
        dict.insert(
            "k".into(),
            Value::Array(vec![Value::Uid(plist::Uid::new(1))]),
        );
        let whole = Value::Dictionary(dict);
        let bytes = binary(&whole);
        assert_eq!(read_and_compare(&bytes, "whole"), Some(whole.clone()));
        let (mut same, mut refused) = (0, 0);
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x0F, 0x80, 0xFF] {
                let mut bad = bytes.clone();
                bad[at] ^= flip;
                let what = format!("byte {at} ^ {flip:#04x}");
                match read_and_compare(&bad, &what) {
                    None => refused += 1,
                    Some(value) => {
                        // The trailer's first six bytes are unused: changing them changes
                        // nothing.
                        if at >= bytes.len() - 32 && at < bytes.len() - 26 {
                            assert_eq!(value, whole, "{what}");
                        }
                        same += usize::from(value == whole);
                    }
                }
            }
        }
        assert!(
            same >= 6 * 4 && refused > bytes.len(),
            "{same} same, {refused} refused"
        );
    }
}
