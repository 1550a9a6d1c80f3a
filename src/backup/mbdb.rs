//! Manifest.mbdb, the file list of iOS 5-9 backups: a pure parser from bytes to records, bounded
//! and panic-free on any input, so it can be fuzzed; reading the file is the caller's job.
//!
//! Layout: the header `mbdb\x05\x00`, then records of five strings (Domain, Path, LinkTarget,
//! DataHash, EncryptionKey; each a big-endian u16 length and bytes, 0xFFFF for absent), Mode u16,
//! Inode u64, UserID u32, GroupID u32, mtime/atime/ctime u32, Size u64, ProtectionClass u8, a
//! property count u8 and that many (name, value) string pairs; all big-endian. Blobs lie flat in
//! the backup root, named SHA-1(domain-path). [matan1008/pyiosbackup manifest_dbs/mbdb.py;
//! dunhamsteve/ios backup/backup.go]. Manifest.mbdb is never encrypted, even in an encrypted
//! backup: each record carries its file's EncryptionKey.

/// The file's name in the backup folder.
pub const MBDB_NAME: &str = "Manifest.mbdb";

/// The first six bytes of every Manifest.mbdb this parser reads (format version 5.0).
pub const MBDB_MAGIC: &[u8; 6] = b"mbdb\x05\x00";

/// File type bits of `mode` (as in `stat`).
const TYPE_MASK: u16 = 0o170000;
const TYPE_FILE: u16 = 0o100000;
const TYPE_DIRECTORY: u16 = 0o040000;
const TYPE_SYMLINK: u16 = 0o120000;

/// Why a Manifest.mbdb could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbdbError {
    #[error("it does not start with the Manifest.mbdb header (mbdb 5.0)")]
    BadHeader,
    #[error("record {record} is cut short at byte {offset} (reading its {field})")]
    Truncated {
        record: usize,
        offset: usize,
        field: &'static str,
    },
}

/// What a record describes, from its mode's file type bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
    Other,
}

/// One file, directory or symlink, borrowed from the manifest bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub domain: &'a [u8],
    pub path: &'a [u8],
    pub link_target: Option<&'a [u8]>,
    pub digest: Option<&'a [u8]>,
    /// 4-byte little-endian protection class + 40-byte wrapped key (encrypted backups).
    pub encryption_key: Option<&'a [u8]>,
    pub mode: u16,
    pub inode: u64,
    pub user_id: u32,
    pub group_id: u32,
    pub mtime: u32,
    pub size: u64,
    pub protection_class: u8,
}

impl Record<'_> {
    pub fn kind(&self) -> Kind {
        match self.mode & TYPE_MASK {
            TYPE_FILE => Kind::File,
            TYPE_DIRECTORY => Kind::Directory,
            TYPE_SYMLINK => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// A cursor over the bytes that turns every overrun into [`MbdbError::Truncated`].
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    record: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MbdbError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(MbdbError::Truncated {
                record: self.record,
                offset: self.pos,
                field,
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], MbdbError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, MbdbError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, MbdbError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, MbdbError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, MbdbError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A length-prefixed string; 0xFFFF stands for "absent".
    fn string(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, MbdbError> {
        match self.u16(field)? {
            0xFFFF => Ok(None),
            len => self.take(usize::from(len), field).map(Some),
        }
    }

    fn record(&mut self) -> Result<Record<'a>, MbdbError> {
        let domain = self.string("domain")?.unwrap_or_default();
        let path = self.string("path")?.unwrap_or_default();
        let link_target = self.string("link target")?;
        let digest = self.string("data hash")?;
        let encryption_key = self.string("encryption key")?;
        let mode = self.u16("mode")?;
        let inode = self.u64("inode")?;
        let user_id = self.u32("user id")?;
        let group_id = self.u32("group id")?;
        let mtime = self.u32("mtime")?;
        self.u32("atime")?;
        self.u32("ctime")?;
        let size = self.u64("size")?;
        let protection_class = self.u8("protection class")?;
        let properties = self.u8("property count")?;
        for _ in 0..properties {
            self.string("property name")?;
            self.string("property value")?;
        }
        Ok(Record {
            domain,
            path,
            link_target,
            digest,
            encryption_key: encryption_key.filter(|k| !k.is_empty()),
            mode,
            inode,
            user_id,
            group_id,
            mtime,
            size,
            protection_class,
        })
    }
}

/// Parses a whole Manifest.mbdb. Memory is bounded by the input: each record is at least 50
/// bytes and borrows its strings.
pub fn parse(data: &[u8]) -> Result<Vec<Record<'_>>, MbdbError> {
    let body = data.strip_prefix(MBDB_MAGIC).ok_or(MbdbError::BadHeader)?;
    let mut reader = Reader {
        data,
        pos: data.len() - body.len(),
        record: 0,
    };
    let mut records = Vec::new();
    while reader.pos < data.len() {
        records.push(reader.record()?);
        reader.record += 1;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: Option<&[u8]>) {
        match s {
            Some(s) => {
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                out.extend_from_slice(s);
            }
            None => out.extend_from_slice(&[0xFF, 0xFF]),
        }
    }

    fn record(domain: &str, path: &str, mode: u16, size: u64, key: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, Some(domain.as_bytes()));
        string(&mut out, Some(path.as_bytes()));
        string(&mut out, None);
        string(&mut out, Some(&[0xAB; 20]));
        string(&mut out, key);
        out.extend_from_slice(&mode.to_be_bytes());
        out.extend_from_slice(&77u64.to_be_bytes());
        out.extend_from_slice(&501u32.to_be_bytes());
        out.extend_from_slice(&501u32.to_be_bytes());
        for t in [1_400_000_000u32; 3] {
            out.extend_from_slice(&t.to_be_bytes());
        }
        out.extend_from_slice(&size.to_be_bytes());
        out.push(4);
        out.push(1);
        string(&mut out, Some(b"com.apple.name"));
        string(&mut out, Some(b"value"));
        out
    }

    #[test]
    fn parses_files_folders_and_links() {
        let mut data = MBDB_MAGIC.to_vec();
        data.extend(record(
            "HomeDomain",
            "Library/SMS/sms.db",
            0o100644,
            4096,
            None,
        ));
        data.extend(record("HomeDomain", "Library", 0o040755, 0, None));
        data.extend(record("HomeDomain", "link", 0o120755, 0, Some(&[3; 44])));
        let records = parse(&data).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].path, b"Library/SMS/sms.db");
        assert_eq!(records[0].size, 4096);
        assert_eq!(records[0].kind(), Kind::File);
        assert_eq!(records[0].digest, Some(&[0xAB; 20][..]));
        assert_eq!(records[0].encryption_key, None);
        assert_eq!(records[1].kind(), Kind::Directory);
        assert_eq!(records[2].kind(), Kind::Symlink);
        assert_eq!(records[2].encryption_key, Some(&[3; 44][..]));
        assert_eq!(records[2].protection_class, 4);
    }

    /// A Manifest.mbdb of two records written out field by field from the published layout
    /// (module head), not by `record` above: a file of an encrypted backup and a symlink with
    /// absent and empty strings. Every number differs from its neighbours, so reading one
    /// field in another's place shows.
    const HAND_WRITTEN: &[&[u8]] = &[
        b"mbdb\x05\x00", // magic and format version 5.0
        // record 0
        b"\x00\x0a", // domain: 10 bytes
        b"HomeDomain",
        b"\x00\x12", // path: 18 bytes
        b"Library/SMS/sms.db",
        b"\xff\xff", // link target: absent
        b"\x00\x14", // data hash: 20 bytes
        b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13",
        b"\x00\x2c",         // encryption key: 44 bytes
        b"\x04\x00\x00\x00", // its protection class, little-endian: 4
        b"\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf\xb0\xb1\xb2\xb3",
        b"\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7",
        b"\x81\xa4",                         // mode 0o100644: a regular file, rw-r--r--
        b"\x00\x00\x00\x00\x00\x01\x23\x45", // inode 0x12345
        b"\x00\x00\x01\xf5",                 // user id 501
        b"\x00\x00\x00\x14",                 // group id 20
        b"\x53\x72\x4e\x00",                 // mtime 1,400,000,000
        b"\x53\x72\x4e\x64",                 // atime 1,400,000,100
        b"\x53\x72\x4e\xc8",                 // ctime 1,400,000,200
        b"\x00\x00\x00\x00\x00\x00\x10\x00", // size 4096
        b"\x03",                             // protection class 3
        b"\x01",                             // one property
        b"\x00\x05",                         // its name: 5 bytes
        b"flags",
        b"\x00\x02", // its value: 2 bytes
        b"\x00\x01",
        // record 1
        b"\x00\x0b", // domain: 11 bytes
        b"MediaDomain",
        b"\x00\x0a", // path: 10 bytes
        b"Media/link",
        b"\x00\x0b", // link target: 11 bytes
        b"/var/mobile",
        b"\xff\xff",                         // data hash: absent
        b"\x00\x00",                         // encryption key: empty (not encrypted)
        b"\xa1\xed",                         // mode 0o120755: a symlink
        b"\x00\x00\x00\x00\x00\x00\x00\x07", // inode 7
        b"\x00\x00\x00\x00",                 // user id 0
        b"\x00\x00\x00\x50",                 // group id 80
        b"\x56\x00\x00\x00",                 // mtime 1,442,840,576
        b"\x56\x00\x00\x01",                 // atime
        b"\x56\x00\x00\x02",                 // ctime
        b"\x00\x00\x00\x00\x00\x00\x00\x00", // size 0
        b"\x00",                             // protection class 0
        b"\x00",                             // no properties
    ];

    #[test]
    fn hand_written_manifest_decodes_field_by_field() {
        let data = HAND_WRITTEN.concat();
        assert_eq!(data.len(), 6 + 153 + 82, "the sizes counted by hand");
        let records = parse(&data).unwrap();
        assert_eq!(records.len(), 2);
        let numbers = |r: &Record| {
            let (mode, inode, uid, gid) = (r.mode, r.inode, r.user_id, r.group_id);
            (mode, inode, uid, gid, r.mtime, r.size, r.protection_class)
        };
        let file = (0o100644, 0x12345, 501, 20, 1_400_000_000, 4096, 3);
        assert_eq!(numbers(&records[0]), file);
        assert_eq!(
            numbers(&records[1]),
            (0o120755, 7, 0, 80, 1_442_840_576, 0, 0)
        );
        let digest: Vec<u8> = (0..20).collect();
        let mut key = vec![4, 0, 0, 0];
        key.extend(0xa0..=0xc7);
        assert_eq!(
            records,
            [
                Record {
                    domain: b"HomeDomain",
                    path: b"Library/SMS/sms.db",
                    link_target: None,
                    digest: Some(&digest),
                    encryption_key: Some(&key),
                    mode: 0o100644,
                    inode: 0x12345,
                    user_id: 501,
                    group_id: 20,
                    mtime: 1_400_000_000,
                    size: 4096,
                    protection_class: 3,
                },
                Record {
                    domain: b"MediaDomain",
                    path: b"Media/link",
                    link_target: Some(b"/var/mobile"),
                    digest: None,
                    encryption_key: None,
                    mode: 0o120755,
                    inode: 7,
                    user_id: 0,
                    group_id: 80,
                    mtime: 1_442_840_576,
                    size: 0,
                    protection_class: 0,
                },
            ]
        );
        assert_eq!(records[0].kind(), Kind::File);
        assert_eq!(records[1].kind(), Kind::Symlink);
        // Without its last byte the second record has no property count.
        assert_eq!(
            parse(&data[..data.len() - 1]),
            Err(MbdbError::Truncated {
                record: 1,
                offset: data.len() - 1,
                field: "property count"
            })
        );
    }

    #[test]
    fn every_truncation_and_bad_header_is_an_error_not_a_panic() {
        let mut data = MBDB_MAGIC.to_vec();
        data.extend(record("HomeDomain", "a", 0o100644, 1, Some(&[1; 44])));
        for len in 0..data.len() {
            let result = parse(&data[..len]);
            if len == MBDB_MAGIC.len() {
                assert_eq!(result, Ok(Vec::new()));
            } else {
                assert!(result.is_err(), "prefix of {len} bytes");
            }
        }
        assert_eq!(parse(b"mbdb\x04\x00"), Err(MbdbError::BadHeader));
        // Arbitrary bytes after the header never panic, and what comes back is consistent: a
        // refusal names a place within the input and a record after the last whole one, and
        // whatever parses whole keeps its records when more bytes follow.
        let mut noise = MBDB_MAGIC.to_vec();
        let mut x = 0x9E37_79B9u32;
        let mut last_whole = MBDB_MAGIC.len();
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
            match parse(&noise) {
                Ok(records) => {
                    assert!(
                        !records.is_empty(),
                        "{} bytes parsed to nothing",
                        noise.len()
                    );
                    let before = parse(&noise[..last_whole]).unwrap();
                    assert!(records.starts_with(&before), "{} bytes", noise.len());
                    last_whole = noise.len();
                }
                Err(MbdbError::Truncated { record, offset, .. }) => {
                    assert!(offset <= noise.len(), "offset {offset} of {}", noise.len());
                    assert!(offset >= MBDB_MAGIC.len());
                    let whole = parse(&noise[..last_whole]).unwrap().len();
                    assert!(record >= whole, "record {record} after {whole} whole ones");
                }
                Err(other) => panic!("{} bytes: {other:?}", noise.len()),
            }
        }
    }
}
