//! The snapshot file format: its constants, the header, and the varints
//! both the encoder and the decoder use. Every integer is little-endian.
//!
//! ```text
//! header   (32 bytes)
//!   magic       8  b"SWARMDST"
//!   version     u16  FORMAT_VERSION
//!   flags       u16  bit 0: peers carry their 20-byte peer id
//!   time_unit   u16  seconds per unit of a peer's time left (1 or more)
//!   reserved    u16  0
//!   written_at  u64  wall-clock time of writing, seconds since the Unix epoch
//!   shards      u32  swarm workers of the tracker that wrote it
//!   crc32       u32  of the 28 bytes before it
//! sections, each:
//!   kind        u8   b'T' (torrents) or b'E' (end, the last one)
//!   length      u32  of the body
//!   crc32       u32  of the body
//!   body
//! torrents body:
//!   shard       varint  the shard it came from (informational)
//!   count       varint  torrents that follow
//!   per torrent:
//!     info hash   20
//!     completed   varint
//!     v4 << 1 | has_v6   varint; then, if has_v6, the IPv6 peer count (varint)
//!     IPv4 peers: 6 bytes of address and port, 1 byte of meta, [20 id]
//!     IPv6 peers: 18 bytes of address and port, 1 byte of meta, [20 id]
//!   meta: bit 7 seeder; bits 0-6 time left in `time_unit`s, rounded up
//!   (0: expired)
//! end body:
//!   sections, torrents, peers   varints: totals of the file, which a
//!   truncated file (cut at a section boundary) can't match
//! ```
//!
//! Why a byte of time left in coarse units rather than four bytes of
//! seconds: at 5 peers a torrent, the default peer timeout (2700 s, 22 s a
//! unit) costs a peer 7 bytes on the wire rather than 10, and a peer may
//! then outlive its timeout by up to one unit (22 s), far less than the
//! cleaning interval matters.

/// The first eight bytes of a snapshot.
pub const MAGIC: [u8; 8] = *b"SWARMDST";
/// The format this code writes and reads. Another version is refused (and
/// the file kept aside), never guessed at.
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 32;
/// Kind byte, length and checksum of a section.
pub const SECTION_HEAD_LEN: usize = 9;
pub const SECTION_TORRENTS: u8 = b'T';
pub const SECTION_END: u8 = b'E';
pub const FLAG_PEER_IDS: u16 = 1;
/// Largest time left a peer's meta byte holds, in units.
pub const MAX_UNITS: u32 = 0x7f;
pub const SEEDER_BIT: u8 = 0x80;
/// Fewest bytes a torrent takes: info hash, completed, peer counts.
pub const MIN_TORRENT_LEN: usize = 22;

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Whether every peer carries its peer id.
    pub peer_ids: bool,
    /// Seconds per unit of time left; at least 1.
    pub time_unit: u16,
    /// Seconds since the Unix epoch at the start of writing.
    pub written_at: u64,
    /// Swarm workers of the tracker that wrote the file.
    pub shards: u32,
}

impl Header {
    /// The unit of time left for peers that live `peer_timeout` seconds:
    /// the smallest that holds a whole timeout in [`MAX_UNITS`].
    pub fn unit_for(peer_timeout: u32) -> u16 {
        peer_timeout.div_ceil(MAX_UNITS).clamp(1, u16::MAX as u32) as u16
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let flags = if self.peer_ids { FLAG_PEER_IDS } else { 0 };
        b[10..12].copy_from_slice(&flags.to_le_bytes());
        b[12..14].copy_from_slice(&self.time_unit.to_le_bytes());
        b[16..24].copy_from_slice(&self.written_at.to_le_bytes());
        b[24..28].copy_from_slice(&self.shards.to_le_bytes());
        let crc = crc32fast::hash(&b[..28]);
        b[28..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Time left of a peer, in seconds, as its meta byte holds it: rounded
    /// up to a whole unit (a peer with a second left is not expired), at
    /// most [`MAX_UNITS`] units.
    pub fn meta(&self, seeder: bool, left: u32) -> u8 {
        let units = left.div_ceil(self.time_unit.max(1) as u32).min(MAX_UNITS) as u8;
        units | if seeder { SEEDER_BIT } else { 0 }
    }
}

/// Appends `v` as a LEB128 varint (7 bits a byte, low first).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint from the front of `input`, advancing it; None when it is
/// cut short or longer than a u64 holds.
pub fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in input.iter().enumerate().take(10) {
        let bits = (b & 0x7f) as u64;
        if i == 9 && bits > 1 {
            return None;
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_their_edges() {
        for v in [0, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut input = &buf[..];
            assert_eq!(get_varint(&mut input), Some(v));
            assert!(input.is_empty());
        }
        assert_eq!(get_varint(&mut &[0x80u8][..]), None, "cut short");
        assert_eq!(get_varint(&mut &[0xffu8; 10][..]), None, "too long");
    }

    #[test]
    fn a_peer_with_a_second_left_is_not_expired() {
        let h = Header {
            peer_ids: false,
            time_unit: Header::unit_for(2700),
            written_at: 0,
            shards: 1,
        };
        assert_eq!(h.time_unit, 22);
        assert_eq!(h.meta(false, 1), 1);
        assert_eq!(h.meta(true, 0), SEEDER_BIT);
        assert_eq!(h.meta(false, 2700), 123);
        assert_eq!(h.meta(false, u32::MAX), 127, "clamped");
    }
}
