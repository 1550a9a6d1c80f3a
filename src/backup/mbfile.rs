//! The `file` column of Manifest.db: an NSKeyedArchiver binary plist holding one MBFile record.
//! Bytes in, [`MbFile`] out; no I/O.
//!
//! Layout: `$top.root` is a UID into `$objects`; the MBFile dictionary keeps numbers inline and
//! refers to strings and data by UID. EncryptionKey is a `{NS.data: ...}` object whose data is
//! inline in most backups and behind one more UID in some (both are accepted). A missing Size
//! means "unknown", never 0. [mvt-project/mvt src/mvt/ios/modules/backup/manifest.py;
//! jsharkey13/iphone_backup_decrypt utils.py]

use std::borrow::Cow;

use super::bplist::{Bplist, BplistError, Dict, Object};

/// Why an MBFile record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbFileError {
    #[error("not a readable binary plist: {0}")]
    Plist(#[from] BplistError),
    #[error("not a keyed archive: {0}")]
    NotAnArchive(&'static str),
    #[error("field {field} has a value of the wrong kind")]
    WrongType { field: &'static str },
    #[error("Size is negative ({0})")]
    NegativeSize(i128),
}

/// One file, directory or symlink as the phone described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MbFile<'a> {
    /// Bytes of the plaintext file; None when the record has no Size.
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub protection_class: Option<u32>,
    /// Signed: -2 is "nobody" on the phone.
    pub user_id: Option<i64>,
    pub group_id: Option<i64>,
    pub inode: Option<u64>,
    /// Unix seconds.
    pub last_modified: Option<i64>,
    pub birth: Option<i64>,
    pub relative_path: Option<Cow<'a, str>>,
    /// Where a symlink points.
    pub target: Option<Cow<'a, str>>,
    pub digest: Option<&'a [u8]>,
    /// 4-byte little-endian protection class + 40-byte wrapped key (encrypted backups).
    pub encryption_key: Option<&'a [u8]>,
}

/// References are followed at most this many times for one field, so a cycle of UIDs ends.
const MAX_HOPS: usize = 2;

struct Archive<'a> {
    plist: Bplist<'a>,
    objects: super::bplist::Refs<'a>,
}

impl<'a> Archive<'a> {
    /// Follows UID references into `$objects` until a non-UID object appears.
    fn resolve(&self, index: u64) -> Result<Object<'a>, MbFileError> {
        let mut object = self.plist.object(index)?;
        for _ in 0..MAX_HOPS {
            match object {
                Object::Uid(uid) => {
                    let target = usize::try_from(uid)
                        .ok()
                        .and_then(|uid| self.objects.get(uid))
                        .ok_or(MbFileError::NotAnArchive("UID out of range of $objects"))?;
                    object = self.plist.object(target)?;
                }
                _ => return Ok(object),
            }
        }
        Err(MbFileError::NotAnArchive("UID chain too long"))
    }

    fn dict(&self, index: u64, what: &'static str) -> Result<Dict<'a>, MbFileError> {
        match self.resolve(index)? {
            Object::Dict(d) => Ok(d),
            _ => Err(MbFileError::NotAnArchive(what)),
        }
    }
}

fn int(object: Object<'_>, field: &'static str) -> Result<i128, MbFileError> {
    match object {
        Object::Int(v) => Ok(v),
        _ => Err(MbFileError::WrongType { field }),
    }
}

fn unsigned(object: Object<'_>, field: &'static str) -> Result<u64, MbFileError> {
    u64::try_from(int(object, field)?).map_err(|_| MbFileError::WrongType { field })
}

fn signed(object: Object<'_>, field: &'static str) -> Result<i64, MbFileError> {
    i64::try_from(int(object, field)?).map_err(|_| MbFileError::WrongType { field })
}

fn string<'a>(object: Object<'a>, field: &'static str) -> Result<Cow<'a, str>, MbFileError> {
    match object {
        Object::String(s) => Ok(s),
        _ => Err(MbFileError::WrongType { field }),
    }
}

fn data<'a>(object: Object<'a>, field: &'static str) -> Result<&'a [u8], MbFileError> {
    match object {
        Object::Data(d) => Ok(d),
        _ => Err(MbFileError::WrongType { field }),
    }
}

/// Only Size decides completeness, so only Size must be well-formed; any other field of an
/// unexpected kind is left out rather than failing the whole record.
fn lenient<'a, T>(
    object: Result<Object<'a>, MbFileError>,
    read: impl FnOnce(Object<'a>) -> Result<T, MbFileError>,
) -> Option<T> {
    object.and_then(read).ok()
}

/// Finds the MBFile dictionary: `$objects[$top.root]`.
fn open_archive(bytes: &[u8]) -> Result<(Archive<'_>, Dict<'_>), MbFileError> {
    let plist = Bplist::parse(bytes)?;
    let Object::Dict(top) = plist.object(plist.top())? else {
        return Err(MbFileError::NotAnArchive("top object is not a dictionary"));
    };
    let objects_at = plist
        .lookup(&top, "$objects")?
        .ok_or(MbFileError::NotAnArchive("no $objects"))?;
    let Object::Array(objects) = plist.object(objects_at)? else {
        return Err(MbFileError::NotAnArchive("$objects is not an array"));
    };
    let archive = Archive { plist, objects };
    let top_at = plist
        .lookup(&top, "$top")?
        .ok_or(MbFileError::NotAnArchive("no $top"))?;
    let top_dict = archive.dict(top_at, "$top is not a dictionary")?;
    let root_at = plist
        .lookup(&top_dict, "root")?
        .ok_or(MbFileError::NotAnArchive("no $top.root"))?;
    let record = archive.dict(root_at, "the root object is not a dictionary")?;
    Ok((archive, record))
}

fn size_of(object: Result<Object<'_>, MbFileError>) -> Result<u64, MbFileError> {
    let size = int(object?, "Size")?;
    u64::try_from(size).map_err(|_| MbFileError::NegativeSize(size))
}

/// Only the Size of one `file` column value: what completeness needs, found without decoding
/// the other fields (verify calls this once per row). None when the record has no Size.
pub fn size(bytes: &[u8]) -> Result<Option<u64>, MbFileError> {
    let (archive, record) = open_archive(bytes)?;
    match archive.plist.lookup(&record, "Size")? {
        Some(at) => size_of(archive.resolve(at)).map(Some),
        None => Ok(None),
    }
}

/// Size and LastModified of one `file` column value, found by lookup without decoding the
/// other fields: what comparing two backups needs (`diff` calls this once per row). A
/// LastModified of the wrong kind is left out, as in [`decode`].
pub fn size_and_time(bytes: &[u8]) -> Result<(Option<u64>, Option<i64>), MbFileError> {
    let (archive, record) = open_archive(bytes)?;
    let size = match archive.plist.lookup(&record, "Size")? {
        Some(at) => Some(size_of(archive.resolve(at))?),
        None => None,
    };
    let time = match archive.plist.lookup(&record, "LastModified")? {
        Some(at) => lenient(archive.resolve(at), |o| signed(o, "LastModified")),
        None => None,
    };
    Ok((size, time))
}

/// Decodes one `file` column value.
pub fn decode(bytes: &[u8]) -> Result<MbFile<'_>, MbFileError> {
    let (archive, record) = open_archive(bytes)?;
    let plist = archive.plist;
    let mut file = MbFile::default();
    for (key, value) in record.entries() {
        let Some(key) = plist.string(key)? else {
            continue;
        };
        let object = archive.resolve(value);
        match key.as_ref() {
            // A key given twice counts once, the first time, as in `size` (found by fuzzing).
            "Size" if file.size.is_none() => file.size = Some(size_of(object)?),
            "Mode" => file.mode = lenient(object, |o| unsigned(o, "Mode").map(|m| m as u32)),
            "ProtectionClass" => {
                file.protection_class = lenient(object, |o| unsigned(o, "").map(|c| c as u32))
            }
            "UserID" => file.user_id = lenient(object, |o| signed(o, "UserID")),
            "GroupID" => file.group_id = lenient(object, |o| signed(o, "GroupID")),
            "InodeNumber" => file.inode = lenient(object, |o| unsigned(o, "InodeNumber")),
            "LastModified" => file.last_modified = lenient(object, |o| signed(o, "LastModified")),
            "Birth" => file.birth = lenient(object, |o| signed(o, "Birth")),
            "RelativePath" => file.relative_path = lenient(object, |o| string(o, "RelativePath")),
            "Target" => file.target = lenient(object, |o| string(o, "Target")),
            "Digest" => file.digest = lenient(object, |o| data(o, "Digest")),
            "EncryptionKey" => {
                file.encryption_key = lenient(object, |o| encryption_key(&archive, o))
            }
            _ => {}
        }
    }
    Ok(file)
}

/// EncryptionKey is `{NS.data: <bytes>}` or `{NS.data: UID -> <bytes>}`; plain data is accepted
/// too.
fn encryption_key<'a>(archive: &Archive<'a>, object: Object<'a>) -> Result<&'a [u8], MbFileError> {
    const FIELD: &str = "EncryptionKey";
    match object {
        Object::Data(d) => Ok(d),
        Object::Dict(wrapper) => {
            let inner = archive
                .plist
                .lookup(&wrapper, "NS.data")?
                .ok_or(MbFileError::WrongType { field: FIELD })?;
            data(archive.resolve(inner)?, FIELD)
        }
        _ => Err(MbFileError::WrongType { field: FIELD }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plist::{Dictionary, Uid, Value};

    /// Builds a keyed archive the way the phone does, with the plist crate as an independent
    /// writer. `extra` objects are appended to `$objects` and referenced from `fields` by UID.
    fn archive(fields: Vec<(&str, Value)>, extra: Vec<Value>) -> Vec<u8> {
        let mut record = Dictionary::new();
        for (k, v) in fields {
            record.insert(k.into(), v);
        }
        let mut class = Dictionary::new();
        class.insert("$classname".into(), Value::String("MBFile".into()));
        let mut objects = vec![Value::String("$null".into()), Value::Dictionary(record)];
        objects.extend(extra);
        objects.push(Value::Dictionary(class));
        let mut top = Dictionary::new();
        top.insert("root".into(), Value::Uid(Uid::new(1)));
        let mut doc = Dictionary::new();
        doc.insert("$version".into(), Value::Integer(100000.into()));
        doc.insert("$archiver".into(), Value::String("NSKeyedArchiver".into()));
        doc.insert("$top".into(), Value::Dictionary(top));
        doc.insert("$objects".into(), Value::Array(objects));
        let mut out = Vec::new();
        Value::Dictionary(doc).to_writer_binary(&mut out).unwrap();
        out
    }

    fn uid(n: u64) -> Value {
        Value::Uid(Uid::new(n))
    }

    fn key_wrapper(data: Value) -> Value {
        let mut d = Dictionary::new();
        d.insert("NS.data".into(), data);
        Value::Dictionary(d)
    }

    #[test]
    fn decodes_a_file_record() {
        let key = vec![3u8; 44];
        let bytes = archive(
            vec![
                ("Size", Value::Integer(33844.into())),
                ("Mode", Value::Integer(33188.into())),
                ("ProtectionClass", Value::Integer(3.into())),
                ("LastModified", Value::Integer(1610923441.into())),
                ("RelativePath", uid(2)),
                ("EncryptionKey", uid(3)),
            ],
            vec![
                Value::String("Media/DCIM/Café.JPG".into()),
                key_wrapper(Value::Data(key.clone())),
            ],
        );
        let file = decode(&bytes).unwrap();
        assert_eq!(file.size, Some(33844));
        assert_eq!(size(&bytes), Ok(Some(33844)));
        assert_eq!(size_and_time(&bytes), Ok((Some(33844), Some(1610923441))));
        assert_eq!(file.mode, Some(0o100644));
        assert_eq!(file.protection_class, Some(3));
        assert_eq!(file.last_modified, Some(1610923441));
        assert_eq!(file.relative_path.as_deref(), Some("Media/DCIM/Café.JPG"));
        assert_eq!(file.encryption_key, Some(&key[..]));
    }

    #[test]
    fn accepts_the_encryption_key_behind_a_second_uid() {
        let key = vec![7u8; 44];
        let bytes = archive(
            vec![
                ("Size", Value::Integer(1.into())),
                ("EncryptionKey", uid(2)),
            ],
            vec![key_wrapper(uid(3)), Value::Data(key.clone())],
        );
        assert_eq!(decode(&bytes).unwrap().encryption_key, Some(&key[..]));
    }

    #[test]
    fn a_missing_size_is_unknown_not_zero() {
        let bytes = archive(vec![("Mode", Value::Integer(16877.into()))], vec![]);
        assert_eq!(decode(&bytes).unwrap().size, None);
        assert_eq!(size(&bytes), Ok(None));
        assert_eq!(size_and_time(&bytes), Ok((None, None)));
    }

    #[test]
    fn symlink_target_is_read() {
        let bytes = archive(
            vec![("Target", uid(2)), ("Size", Value::Integer(0.into()))],
            vec![Value::String("/private/var/mobile".into())],
        );
        assert_eq!(
            decode(&bytes).unwrap().target.as_deref(),
            Some("/private/var/mobile")
        );
    }

    #[test]
    fn odd_optional_fields_do_not_fail_the_record() {
        let bytes = archive(
            vec![
                ("Size", Value::Integer(49776.into())),
                ("GroupID", Value::Integer((-2i64).into())),
                ("Mode", Value::String("odd".into())),
            ],
            vec![],
        );
        let file = decode(&bytes).unwrap();
        assert_eq!(
            (file.size, file.group_id, file.mode),
            (Some(49776), Some(-2), None)
        );
    }

    #[test]
    fn fuzz_regressions_decode_as_size_does() {
        // Each file under fuzz/regressions/mbfile once broke an invariant of the fuzz target.
        // duplicate-size-keys: its MBFile dictionary (object 12) names Size twice, first with 9
        // (key object 20, value object 32), then with 33188 (objects 21 and 33), as read off
        // its bytes by hand. The documented rule: the first wins, in both decoders.
        let duplicate_size = include_bytes!("../../fuzz/regressions/mbfile/duplicate-size-keys");
        assert_eq!(size(duplicate_size), Ok(Some(9)));
        assert_eq!(decode(duplicate_size).map(|f| f.size), Ok(Some(9)));
    }

    #[test]
    fn hostile_records_are_errors() {
        let negative = archive(vec![("Size", Value::Integer((-1i64).into()))], vec![]);
        assert_eq!(decode(&negative), Err(MbFileError::NegativeSize(-1)));
        assert_eq!(size(&negative), Err(MbFileError::NegativeSize(-1)));
        let out_of_range = archive(vec![("Size", uid(999))], vec![]);
        assert!(decode(&out_of_range).is_err());
        let cyclic = archive(vec![("Size", uid(2))], vec![uid(3), uid(2)]);
        assert!(decode(&cyclic).is_err());
        let cyclic_path = archive(vec![("RelativePath", uid(2))], vec![uid(3), uid(2)]);
        assert_eq!(decode(&cyclic_path).unwrap().relative_path, None);
        let wrong_type = archive(vec![("Size", Value::String("big".into()))], vec![]);
        assert_eq!(
            decode(&wrong_type),
            Err(MbFileError::WrongType { field: "Size" })
        );
        assert!(decode(b"").is_err());
        assert!(decode(b"bplist00garbage-garbage-garbage-garbage-garbage").is_err());
    }
}
