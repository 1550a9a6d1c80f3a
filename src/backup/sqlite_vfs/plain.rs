//! The plain source: a database file ibackup opened and checked itself, read by position
//! (`pread` on Unix, `seek_read` on Windows), so that SQLite reads the very handle that was
//! checked, on every platform. Also the positional read the decrypting source reads its
//! ciphertext with.

use std::fs::File;
use std::io;

use super::Source;
use crate::untrusted_file;

/// A regular file, open for reading, that SQLite reads through [`super::connect`].
pub(crate) struct PlainFile(File);

impl PlainFile {
    /// Takes a file opened by [`untrusted_file::open_regular`]; its type is checked again on the
    /// handle, so nothing but a regular file is ever read as a database.
    pub(crate) fn new(file: File) -> io::Result<Self> {
        untrusted_file::check_regular(&file)?;
        Ok(PlainFile(file))
    }
}

impl Source for PlainFile {
    /// The size the file has now: a file cut short since it was opened reads as shorter.
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        read_up_to(&self.0, buf, offset)
    }
}

/// Reads from `offset` until `buf` is full or the file ends, and says how many bytes were read.
pub(super) fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match read_at(file, &mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Moves the handle's position too, which nothing else uses: the source owns the handle.
#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_stops_where_the_file_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(read_up_to(&file, &mut buf, 2).unwrap(), 4);
        assert_eq!(&buf, b"2345");
        assert_eq!(read_up_to(&file, &mut buf, 8).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
        assert_eq!(read_up_to(&file, &mut buf, 100).unwrap(), 0);
        let mut source = PlainFile::new(file).unwrap();
        assert_eq!(source.size().unwrap(), 10);
    }

    #[test]
    fn only_a_regular_file_is_a_source() {
        let dir = tempfile::tempdir().unwrap();
        let folder = File::open(dir.path());
        // Windows cannot open a folder as a file at all; elsewhere the handle is refused.
        if let Ok(folder) = folder {
            let e = PlainFile::new(folder).err().unwrap();
            assert!(untrusted_file::is_not_regular(&e), "{e}");
        }
    }
}
