//! What a phone (or something pretending to be one) sends on mobilebackup2 during a backup:
//! DeviceLink messages, and after an UploadFiles the file stream, read as the computer does.
#![no_main]

use std::io::{self, Cursor, Read, Write};
use std::time::Duration;

use ibackup::device::services::mobilebackup2::{DeviceLink, FileSink, Patience, PhoneRequest};
use libfuzzer_sys::fuzz_target;

/// The phone's bytes to read; what the computer answers is dropped.
struct Phone(Cursor<Vec<u8>>);

impl Read for Phone {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Phone {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Files received go nowhere.
struct Discard;

impl FileSink for Discard {
    fn begin(&mut self, _: &str) -> io::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn abandon(&mut self) {}
}

fuzz_target!(|data: &[u8]| {
    let phone = Phone(Cursor::new(data.to_vec()));
    let mut link = DeviceLink::new(phone, Patience::new(Duration::from_millis(1)));
    for _ in 0..64 {
        match link.next_request() {
            Ok(PhoneRequest::UploadFiles { .. }) => {
                if link.receive_files(&mut Discard).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
});
