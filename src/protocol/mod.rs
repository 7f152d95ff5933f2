//! Wire types shared by the UDP and HTTP protocols. Nothing in
//! `protocol` does I/O.

pub mod bencode;
pub mod http;
pub mod udp;

use std::fmt;

/// A 20-byte info hash (BEP 3). A v2 torrent (BEP 52) announces its SHA-256
/// hash truncated to 20 bytes, which is just another `InfoHash` here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

/// A 20-byte peer id chosen by the client.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PeerId(pub [u8; 20]);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl InfoHash {
    /// Parses 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<InfoHash> {
        let s = s.as_bytes();
        if s.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(InfoHash(out))
    }
}

/// The announce event. BEP 15 numbers them 0 none, 1 completed, 2 started,
/// 3 stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AnnounceEvent {
    #[default]
    None,
    Completed,
    Started,
    Stopped,
}

impl AnnounceEvent {
    pub fn from_udp(v: u32) -> Option<AnnounceEvent> {
        Some(match v {
            0 => AnnounceEvent::None,
            1 => AnnounceEvent::Completed,
            2 => AnnounceEvent::Started,
            3 => AnnounceEvent::Stopped,
            _ => return None,
        })
    }

    pub fn to_udp(self) -> u32 {
        match self {
            AnnounceEvent::None => 0,
            AnnounceEvent::Completed => 1,
            AnnounceEvent::Started => 2,
            AnnounceEvent::Stopped => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hash_hex() {
        let h = InfoHash::from_hex("00112233445566778899AABBCCDDEEFF00112233").unwrap();
        assert_eq!(h.0[1], 0x11);
        assert_eq!(h.to_string(), "00112233445566778899aabbccddeeff00112233");
        assert_eq!(InfoHash::from_hex("0011"), None);
        assert_eq!(InfoHash::from_hex(&"g".repeat(40)), None);
    }
}
