//! The simulated iPhone: a usbmuxd + lockdownd server for tests and `ibackup-sim`.
