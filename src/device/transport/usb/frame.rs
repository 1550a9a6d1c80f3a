//! The usbmux packets that travel over the iPhone's bulk pipes: a pure encoder and decoder, no
//! I/O, so they can be fuzzed and tested on bytes alone. Big-endian throughout.
//!
//! A packet is a mux header (8 bytes; 16 in protocol version 2, which adds the magic 0xfeedface
//! and tx/rx sequence numbers), then a body: VERSION (major, minor, padding), CONTROL (a kind
//! byte and text), SETUP (one byte), or TCP (a 20-byte TCP header and payload).
//! [usbmuxd src/device.c: struct mux_header, send_packet, device_data_input]
//!
//! Not here: what the packets mean for a connection (mux.rs).

/// Mux protocol numbers (the header's first word).
pub const PROTO_VERSION: u32 = 0;
pub const PROTO_CONTROL: u32 = 1;
pub const PROTO_SETUP: u32 = 2;
/// TCP keeps its IP protocol number. [usbmuxd src/device.c enum mux_protocol]
pub const PROTO_TCP: u32 = 6;

/// The protocol-2 header's magic word.
pub const MAGIC: u32 = 0xfeed_face;
/// Header sizes: protocol 1 (and every VERSION packet), protocol 2.
pub const NARROW_HEADER: usize = 8;
pub const WIDE_HEADER: usize = 16;
pub const TCP_HEADER: usize = 20;
pub const VERSION_BODY: usize = 12;

/// Bytes asked for in one bulk IN transfer. [usbmuxd src/usb.h USB_MRU]
pub const READ_SIZE: usize = 16 * 1024;
/// The largest packet sent to the device. [usbmuxd src/usb.h USB_MTU]
pub const MAX_WRITE: usize = 48 * 1024;
/// The largest packet accepted from the device (a packet may span several 16 KiB transfers).
/// [usbmuxd src/device.c DEV_MRU]
pub const MAX_PACKET: usize = 64 * 1024;

/// The byte SETUP carries after VERSION 2. [usbmuxd src/device.c device_version_input]
pub const SETUP_BYTE: u8 = 0x07;

/// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// CONTROL kinds. [usbmuxd src/device.c device_control_input]
pub const CONTROL_ERROR: u8 = 3;
pub const CONTROL_WARNING: u8 = 5;
pub const CONTROL_INFO: u8 = 7;

/// The largest CONTROL or RST text kept (the rest is cut, not an error).
pub const MAX_TEXT: usize = 512;

/// Protocol-2 header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence {
    pub tx: u16,
    pub rx: u16,
}

/// The TCP header as usbmux uses it (no checksum, no options sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tcp {
    pub source_port: u16,
    pub dest_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// The receive window in units of 256 bytes. [usbmuxd src/device.c send_tcp: tx_win >> 8]
    pub window: u16,
}

/// What a packet carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Version { major: u32, minor: u32 },
    Control { kind: u8, text: String },
    Setup(u8),
    Tcp { header: Tcp, payload: Vec<u8> },
}

/// One decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Present in protocol-2 headers.
    pub sequence: Option<Sequence>,
    pub body: Body,
}

/// Why bytes are not a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a packet needs {need} bytes, only {got} are there")]
    Short { need: usize, got: usize },
    #[error("a packet announced {length} bytes, more than the {max} allowed")]
    TooLarge { length: u64, max: u64 },
    #[error("a packet announced {declared} bytes but {got} arrived")]
    LengthMismatch { declared: usize, got: usize },
    #[error("a protocol-2 header has magic {0:#010x}, not 0xfeedface")]
    BadMagic(u32),
    #[error("unknown mux protocol {0}")]
    UnknownProtocol(u32),
    #[error("a TCP header has a data offset of {0} words")]
    BadTcpOffset(u8),
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The header size for a packet of `protocol` when the session runs `wide` (protocol-2)
/// headers. VERSION packets always have the narrow header: they are sent before the version is
/// known. [usbmuxd src/device.c device_add sends VERSION with version 0]
pub fn header_len(protocol: u32, wide: bool) -> usize {
    if wide && protocol != PROTO_VERSION {
        WIDE_HEADER
    } else {
        NARROW_HEADER
    }
}

/// The total length a packet announces, once its first 8 bytes are there (`None` before). Too
/// small or too large lengths are errors, so nothing is allocated for them.
pub fn announced_length(bytes: &[u8], wide: bool) -> Result<Option<usize>, FrameError> {
    if bytes.len() < NARROW_HEADER {
        return Ok(None);
    }
    let protocol = be32(bytes, 0);
    let length = be32(bytes, 4) as usize;
    if length > MAX_PACKET {
        return Err(FrameError::TooLarge {
            length: length as u64,
            max: MAX_PACKET as u64,
        });
    }
    let min = header_len(protocol, wide);
    if length < min {
        return Err(FrameError::Short {
            need: min,
            got: length,
        });
    }
    Ok(Some(length))
}

/// Decodes exactly one packet. `wide`: the session uses protocol-2 headers.
pub fn decode(bytes: &[u8], wide: bool) -> Result<Packet, FrameError> {
    let length = announced_length(bytes, wide)?.ok_or(FrameError::Short {
        need: NARROW_HEADER,
        got: bytes.len(),
    })?;
    if length != bytes.len() {
        return Err(FrameError::LengthMismatch {
            declared: length,
            got: bytes.len(),
        });
    }
    let protocol = be32(bytes, 0);
    let head = header_len(protocol, wide);
    let sequence = if head == WIDE_HEADER {
        let magic = be32(bytes, 8);
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        Some(Sequence {
            tx: be16(bytes, 12),
            rx: be16(bytes, 14),
        })
    } else {
        None
    };
    let rest = &bytes[head..];
    let short = |need: usize| FrameError::Short {
        need: head + need,
        got: bytes.len(),
    };
    let body = match protocol {
        PROTO_VERSION => {
            if rest.len() < VERSION_BODY {
                return Err(short(VERSION_BODY));
            }
            Body::Version {
                major: be32(rest, 0),
                minor: be32(rest, 4),
            }
        }
        PROTO_CONTROL => {
            let (&kind, text) = rest.split_first().ok_or_else(|| short(1))?;
            Body::Control {
                kind,
                text: text_of(text),
            }
        }
        PROTO_SETUP => Body::Setup(*rest.first().ok_or_else(|| short(1))?),
        PROTO_TCP => {
            if rest.len() < TCP_HEADER {
                return Err(short(TCP_HEADER));
            }
            // Options are allowed but never sent: skip them by the data offset.
            let offset = rest[12] >> 4;
            let start = usize::from(offset) * 4;
            if start < TCP_HEADER || start > rest.len() {
                return Err(FrameError::BadTcpOffset(offset));
            }
            Body::Tcp {
                header: Tcp {
                    source_port: be16(rest, 0),
                    dest_port: be16(rest, 2),
                    seq: be32(rest, 4),
                    ack: be32(rest, 8),
                    flags: rest[13],
                    window: be16(rest, 14),
                },
                payload: rest[start..].to_vec(),
            }
        }
        other => return Err(FrameError::UnknownProtocol(other)),
    };
    Ok(Packet { sequence, body })
}

/// Text from the device (CONTROL messages, RST reasons): lossy UTF-8, at most [`MAX_TEXT`]
/// bytes, without the trailing NUL or newline devices add.
pub fn text_of(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_TEXT)];
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\0', '\n', '\r'])
        .to_string()
}

/// Encodes a packet; `sequence` gives a protocol-2 header (ignored for VERSION, which is always
/// narrow).
pub fn encode(sequence: Option<Sequence>, body: &Body) -> Vec<u8> {
    let protocol = match body {
        Body::Version { .. } => PROTO_VERSION,
        Body::Control { .. } => PROTO_CONTROL,
        Body::Setup(_) => PROTO_SETUP,
        Body::Tcp { .. } => PROTO_TCP,
    };
    let sequence = sequence.filter(|_| protocol != PROTO_VERSION);
    let mut out = Vec::new();
    out.extend_from_slice(&protocol.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // length, filled in below
    if let Some(s) = sequence {
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&s.tx.to_be_bytes());
        out.extend_from_slice(&s.rx.to_be_bytes());
    }
    match body {
        Body::Version { major, minor } => {
            out.extend_from_slice(&major.to_be_bytes());
            out.extend_from_slice(&minor.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
        }
        Body::Control { kind, text } => {
            out.push(*kind);
            out.extend_from_slice(text.as_bytes());
        }
        Body::Setup(byte) => out.push(*byte),
        Body::Tcp { header, payload } => {
            out.extend_from_slice(&header.source_port.to_be_bytes());
            out.extend_from_slice(&header.dest_port.to_be_bytes());
            out.extend_from_slice(&header.seq.to_be_bytes());
            out.extend_from_slice(&header.ack.to_be_bytes());
            out.push(((TCP_HEADER / 4) as u8) << 4);
            out.push(header.flags);
            out.extend_from_slice(&header.window.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer: unused
            out.extend_from_slice(payload);
        }
    }
    let length = (out.len() as u32).to_be_bytes();
    out[4..8].copy_from_slice(&length);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(flags: u8, payload: &[u8]) -> Body {
        Body::Tcp {
            header: Tcp {
                source_port: 1,
                dest_port: 62078,
                seq: 7,
                ack: 9,
                flags,
                window: 512,
            },
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn every_body_round_trips_in_both_header_widths() {
        let seq = Some(Sequence { tx: 3, rx: 0xffff });
        for body in [
            Body::Version { major: 2, minor: 0 },
            Body::Control {
                kind: CONTROL_INFO,
                text: "hello".into(),
            },
            Body::Setup(SETUP_BYTE),
            tcp(ACK, b"data"),
            tcp(SYN, b""),
        ] {
            for (sequence, wide) in [(None, false), (seq, true)] {
                let bytes = encode(sequence, &body);
                let packet = decode(&bytes, wide).unwrap();
                assert_eq!(packet.body, body);
                let expected = if matches!(body, Body::Version { .. }) {
                    None
                } else {
                    sequence
                };
                assert_eq!(packet.sequence, expected);
            }
        }
    }

    #[test]
    fn version_packets_are_narrow_and_twenty_bytes() {
        let bytes = encode(
            Some(Sequence { tx: 0, rx: 0 }),
            &Body::Version { major: 2, minor: 0 },
        );
        assert_eq!(
            bytes,
            [0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn tcp_header_layout() {
        let bytes = encode(Some(Sequence { tx: 1, rx: 2 }), &tcp(SYN | ACK, b"x"));
        assert_eq!(bytes.len(), 16 + 20 + 1);
        assert_eq!(&bytes[8..12], &MAGIC.to_be_bytes());
        assert_eq!(bytes[16 + 12], 0x50);
        assert_eq!(bytes[16 + 13], SYN | ACK);
        assert_eq!(&bytes[16 + 14..16 + 16], &512u16.to_be_bytes());
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        let good = encode(Some(Sequence { tx: 1, rx: 2 }), &tcp(ACK, b"abc"));
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], true).is_err(), "cut at {cut}");
        }
        let mut magic = good.clone();
        magic[8] = 0;
        assert!(matches!(decode(&magic, true), Err(FrameError::BadMagic(_))));
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            announced_length(&huge, true),
            Err(FrameError::TooLarge { .. })
        ));
        let mut offset = good.clone();
        offset[16 + 12] = 0xf0;
        assert!(matches!(
            decode(&offset, true),
            Err(FrameError::BadTcpOffset(15))
        ));
        let mut unknown = good;
        unknown[3] = 9;
        assert!(matches!(
            decode(&unknown, true),
            Err(FrameError::UnknownProtocol(9))
        ));
        // Every single-byte change of a short packet is refused for what it broke, or decodes
        // to a packet that writes back the same bytes.
        let small = encode(None, &tcp(ACK, b""));
        let mut decoded = 0;
        for i in 0..small.len() {
            for v in [0u8, 1, 0x14, 0x7f, 0xff] {
                let mut b = small.clone();
                b[i] = v;
                decoded += usize::from(check_decode(&b, false));
                decoded += usize::from(check_decode(&b, true));
            }
        }
        // The ports, numbers, flags, window, checksum and urgent bytes (19 of 28) take any
        // value in the narrow form; the header and the data offset byte are picky.
        assert!(decoded >= 19 * 5, "{decoded} changes decoded");
    }

    /// Decodes `bytes` and checks what must hold of the answer, whatever the bytes: a refusal
    /// describes the bytes refused (the announced length, the magic, the protocol or the TCP
    /// data offset they hold); a packet is one whose encoding gives back the same bytes, apart
    /// from those the encoder writes fixed (VERSION padding, TCP options, checksum and urgent
    /// pointer, a CONTROL text it cleaned). Returns whether the bytes decoded.
    fn check_decode(bytes: &[u8], wide: bool) -> bool {
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        match decode(bytes, wide) {
            Ok(packet) => {
                let protocol = word(0);
                assert_eq!(word(4) as usize, bytes.len(), "{bytes:02x?}");
                let head = header_len(protocol, wide);
                let again = encode(packet.sequence, &packet.body);
                assert_eq!(decode(&again, wide).as_ref(), Ok(&packet), "{bytes:02x?}");
                let same = match &packet.body {
                    Body::Version { .. } => 16,
                    Body::Control { text, .. } if text.as_bytes() == &bytes[head + 1..] => {
                        bytes.len()
                    }
                    Body::Control { .. } => head + 1,
                    Body::Setup(_) => head + 1,
                    Body::Tcp { payload, .. } => {
                        let end = bytes.len() - payload.len();
                        assert_eq!(&again[again.len() - payload.len()..], &bytes[end..]);
                        head + 12
                    }
                };
                // The length word may differ where the encoder wrote less (or more).
                assert_eq!(&again[..4], &bytes[..4], "{bytes:02x?}");
                assert_eq!(&again[8..same], &bytes[8..same], "{bytes:02x?}");
                if let Body::Tcp { header, .. } = packet.body {
                    // Past the data offset byte: flags and window.
                    assert_eq!(header.flags, bytes[head + 13]);
                    assert_eq!(&again[head + 14..head + 16], &bytes[head + 14..head + 16]);
                }
                true
            }
            Err(FrameError::Short { need, got }) => {
                assert!(need > got, "{bytes:02x?}");
                assert!(
                    got == bytes.len() || got == word(4) as usize,
                    "{bytes:02x?}"
                );
                false
            }
            Err(FrameError::TooLarge { length, max }) => {
                assert_eq!(length, u64::from(word(4)));
                assert!(length > max);
                false
            }
            Err(FrameError::LengthMismatch { declared, got }) => {
                assert_eq!((declared, got), (word(4) as usize, bytes.len()));
                assert_ne!(declared, got);
                false
            }
            Err(FrameError::BadMagic(magic)) => {
                assert!(wide && word(0) != PROTO_VERSION, "{bytes:02x?}");
                assert_eq!(magic, word(8));
                assert_ne!(magic, MAGIC);
                false
            }
            Err(FrameError::UnknownProtocol(protocol)) => {
                assert_eq!(protocol, word(0));
                assert!(![PROTO_VERSION, PROTO_CONTROL, PROTO_SETUP, PROTO_TCP].contains(&protocol));
                false
            }
            Err(FrameError::BadTcpOffset(offset)) => {
                assert_eq!(word(0), PROTO_TCP);
                assert_eq!(offset, bytes[header_len(PROTO_TCP, wide) + 12] >> 4);
                false
            }
        }
    }

    #[test]
    fn random_bytes_are_refused_for_what_they_hold_or_decode_to_what_they_hold() {
        // A fixed xorshift stream: reproducible, no extra dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut decoded, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Often make the protocol small and the length word honest, so that the body
            // parsers are reached too, or nearly honest (a few bytes off either way).
            if len >= 8 && next() % 2 == 0 {
                let off_by = match next() % 4 {
                    0 => (next() % 16) as i64 - 8,
                    _ => 0,
                };
                bytes[..4].copy_from_slice(&((next() % 8) as u32).to_be_bytes());
                bytes[4..8].copy_from_slice(&((len as i64 + off_by) as u32).to_be_bytes());
            }
            let wide = next() % 2 == 0;
            match announced_length(&bytes, wide) {
                Ok(None) => assert!(bytes.len() < NARROW_HEADER),
                Ok(Some(length)) => assert_eq!(
                    length,
                    u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize
                ),
                Err(_) => assert!(decode(&bytes, wide).is_err()),
            }
            if check_decode(&bytes, wide) {
                decoded += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            decoded > 1000 && refused > 10_000,
            "{decoded} decoded, {refused} refused"
        );
    }

    // Packets written out by hand, byte by byte, from usbmuxd's description of the framing
    // (src/device.c: struct mux_header, struct version_header, send_packet, send_tcp; the TCP
    // header is the BSD `struct tcphdr`), not produced by `encode`. A round trip cannot tell
    // whether two fields are swapped in both directions at once; these can.

    /// The host's first packet: VERSION 2.0, always with the 8-byte header.
    const HOST_VERSION: [u8; 20] = [
        0x00, 0x00, 0x00, 0x00, // protocol 0: VERSION
        0x00, 0x00, 0x00, 0x14, // length 20, this header included
        0x00, 0x00, 0x00, 0x02, // major 2
        0x00, 0x00, 0x00, 0x00, // minor 0
        0x00, 0x00, 0x00, 0x00, // padding
    ];

    /// SETUP after a VERSION 2 answer: the 16-byte header, tx 0, rx 0xffff, the byte 0x07.
    const HOST_SETUP: [u8; 17] = [
        0x00, 0x00, 0x00, 0x02, // protocol 2: SETUP
        0x00, 0x00, 0x00, 0x11, // length 17
        0xfe, 0xed, 0xfa, 0xce, // magic
        0x00, 0x00, // tx sequence 0
        0xff, 0xff, // rx sequence 0xffff
        0x07, // the setup byte
    ];

    /// Data from the host on a lockdownd connection, protocol-2 header.
    const HOST_TCP_DATA: [u8; 40] = [
        0x00, 0x00, 0x00, 0x06, // protocol 6: TCP
        0x00, 0x00, 0x00, 0x28, // length 40 = 16 + 20 + 4
        0xfe, 0xed, 0xfa, 0xce, // magic
        0x00, 0x05, // tx sequence 5
        0x00, 0x03, // rx sequence 3
        0x00, 0x01, // source port 1 (the host's end)
        0xf2, 0x7e, // destination port 62078 (lockdownd)
        0x00, 0x00, 0x00, 0x10, // sequence number 16
        0x00, 0x00, 0x00, 0x20, // acknowledgement number 32
        0x50, // data offset: 5 words (20 bytes), in the high nibble
        0x10, // flags: ACK
        0x02, 0x00, // window 512 (131,072 bytes >> 8)
        0x00, 0x00, // checksum: not used
        0x00, 0x00, // urgent pointer: not used
        b'p', b'i', b'n', b'g', // payload
    ];

    /// A reply from a protocol-1 phone: the 8-byte header, a TCP header with one word of
    /// options (data offset 6) and a checksum the host does not check.
    const DEVICE_TCP_REPLY: [u8; 36] = [
        0x00, 0x00, 0x00, 0x06, // protocol 6: TCP
        0x00, 0x00, 0x00, 0x24, // length 36 = 8 + 24 + 4
        0xf2, 0x7e, // source port 62078
        0x00, 0x01, // destination port 1
        0x00, 0x00, 0x00, 0x20, // sequence number 32
        0x00, 0x00, 0x00, 0x14, // acknowledgement number 20
        0x60, // data offset: 6 words (24 bytes)
        0x18, // flags: PSH | ACK
        0x01, 0x00, // window 256 (65,536 bytes)
        0xab, 0xcd, // checksum: ignored
        0x00, 0x00, // urgent pointer
        0x01, 0x01, 0x01, 0x01, // options: four NOPs, skipped
        b'p', b'o', b'n', b'g', // payload
    ];

    #[test]
    fn hand_written_packets_decode_field_by_field_and_encode_byte_for_byte() {
        let version = Body::Version { major: 2, minor: 0 };
        for wide in [false, true] {
            let packet = decode(&HOST_VERSION, wide).unwrap();
            assert_eq!((packet.sequence, &packet.body), (None, &version));
        }
        assert_eq!(encode(None, &version), HOST_VERSION);

        let setup = decode(&HOST_SETUP, true).unwrap();
        let zero_tx = Some(Sequence { tx: 0, rx: 0xffff });
        assert_eq!(setup.sequence, zero_tx);
        assert_eq!(setup.body, Body::Setup(SETUP_BYTE));
        assert_eq!(encode(zero_tx, &Body::Setup(SETUP_BYTE)), HOST_SETUP);

        let sequence = Some(Sequence { tx: 5, rx: 3 });
        let data = Body::Tcp {
            header: Tcp {
                source_port: 1,
                dest_port: 62078,
                seq: 16,
                ack: 32,
                flags: ACK,
                window: 512,
            },
            payload: b"ping".to_vec(),
        };
        let packet = decode(&HOST_TCP_DATA, true).unwrap();
        assert_eq!(packet.sequence, sequence);
        assert_eq!(packet.body, data);
        assert_eq!(encode(sequence, &data), HOST_TCP_DATA);

        let reply = decode(&DEVICE_TCP_REPLY, false).unwrap();
        assert_eq!(reply.sequence, None);
        assert_eq!(
            reply.body,
            Body::Tcp {
                header: Tcp {
                    source_port: 62078,
                    dest_port: 1,
                    seq: 32,
                    ack: 20,
                    flags: 0x08 | ACK,
                    window: 256,
                },
                payload: b"pong".to_vec(),
            }
        );
        assert_eq!(
            announced_length(&DEVICE_TCP_REPLY[..8], false),
            Ok(Some(36))
        );
    }

    #[test]
    fn device_text_is_bounded_and_trimmed() {
        assert_eq!(text_of(b"gone\n\0"), "gone");
        assert_eq!(text_of(&[b'a'; 2000]).len(), MAX_TEXT);
    }
}
