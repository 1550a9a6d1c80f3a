//! The plain source: a database file ibackup opened and checked itself, read by position
//! (`pread` on Unix, `seek_read` on Windows), so that SQLite reads the very handle that was
//! checked, on every platform. Also the positional read the decrypting source reads its
//! ciphertext with.

use std::fs::File;
use std::io;

use super::Source;
use crate::untrusted_file;

/// A regular file, open for reading, that SQLite reads through [`super::connect`].
///
/// SQLite asks for one page (4 KB in a Manifest.db) at a time, mostly in file order when it
/// scans the Files table: a Manifest.db of a million files is then 180,000 reads. The source
/// reads [`WINDOW`] bytes at once instead and answers the next pages from them, which saves
/// the system calls (about a tenth of `verify`'s time on one core). A manifest is not
/// secret, so the window is not wiped.
pub(crate) struct PlainFile {
    file: File,
    /// The bytes last read ahead, and where in the file they begin.
    window: Vec<u8>,
    window_at: u64,
}

/// How much is read at once.
const WINDOW: usize = 256 * 1024;

impl PlainFile {
    /// Takes a file opened by [`untrusted_file::open_regular`]; its type is checked again on the
    /// handle, so nothing but a regular file is ever read as a database.
    pub(crate) fn new(file: File) -> io::Result<Self> {
        untrusted_file::check_regular(&file)?;
        Ok(PlainFile {
            file,
            window: Vec::new(),
            window_at: 0,
        })
    }

    /// The bytes at `offset..offset + len` if the window holds them all.
    fn in_window(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset.checked_sub(self.window_at)?).ok()?;
        self.window.get(start..start.checked_add(len)?)
    }
}

impl Source for PlainFile {
    /// The size the file has now: a file cut short since it was opened reads as shorter.
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.len() >= WINDOW {
            return read_up_to(&self.file, buf, offset);
        }
        if self.in_window(offset, buf.len()).is_none() {
            self.window.resize(WINDOW, 0);
            let got = read_up_to(&self.file, &mut self.window, offset)?;
            self.window.truncate(got);
            self.window_at = offset;
        }
        // Where the file ends inside the request, the window holds less: a short read.
        let start = (offset - self.window_at) as usize;
        let there = &self.window[start.min(self.window.len())..];
        let n = there.len().min(buf.len());
        buf[..n].copy_from_slice(&there[..n]);
        Ok(n)
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

    /// Reads answered from the window are the file's bytes, wherever they fall: inside it,
    /// across its end, past the end of the file, and after a jump backwards.
    #[test]
    fn reads_through_the_window_are_the_files_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..WINDOW * 3 + 1234)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut source = PlainFile::new(File::open(&path).unwrap()).unwrap();
        let len = bytes.len() as u64;
        let w = WINDOW as u64;
        for (offset, size) in [
            (0, 4096),
            (4096, 4096),
            (w - 100, 4096),
            (w - 100, 4096),
            (100, 10),
            (len - 50, 4096),
            (len + 10, 4096),
            (3, WINDOW + 5),
            (2 * w, 1),
        ] {
            let mut buf = vec![0xEEu8; size];
            let got = source.read_at(offset, &mut buf).unwrap();
            let start = (offset as usize).min(bytes.len());
            let want = &bytes[start..(start + size).min(bytes.len())];
            assert_eq!(got, want.len(), "at {offset}");
            assert_eq!(&buf[..got], want, "at {offset}");
        }
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
