//! The backup keybag: TLV records, password-to-key derivation, class key unwrap (issue 4).
