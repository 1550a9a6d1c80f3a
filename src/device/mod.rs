//! Talking to a phone: usbmux (daemon or direct USB), lockdownd, pairing. No terminal, no backup.
