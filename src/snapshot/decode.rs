//! Reading a snapshot: any bytes give the torrents and peers they hold (to
//! a [`Sink`], as they are read) or a [`DecodeError`] saying why not. The
//! decoder never panics and allocates nothing: a count is checked against
//! the bytes left before anything is read under it, so a length field can't
//! make a caller reserve more than the file could hold.
//!
//! A sink sees a section's torrents only after that section's checksum
//! matched; but a later section may still be bad, so a caller that wants
//! all or nothing (the loader does) keeps what it got aside until
//! [`decode`] returns Ok.

use super::format::{
    get_varint, Header, FLAG_PEER_IDS, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_UNITS,
    MIN_TORRENT_LEN, SECTION_END, SECTION_HEAD_LEN, SECTION_TORRENTS, SEEDER_BIT,
};
use crate::protocol::InfoHash;
use crate::swarm::PeerAddr;

/// Why bytes are not a snapshot this code can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes at all.
    Empty,
    /// The file ends before its end section.
    Truncated,
    /// Not a swarmd snapshot.
    BadMagic,
    /// A snapshot of another format version.
    Version(u16),
    /// A checksum does not match: the header's (section 0) or that of
    /// section `n` (from 1).
    BadChecksum { section: u64 },
    /// The checksums match but the content does not hold together.
    Corrupt(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("the file is empty"),
            DecodeError::Truncated => f.write_str("the file is truncated"),
            DecodeError::BadMagic => f.write_str("not a swarmd snapshot (bad magic)"),
            DecodeError::Version(v) => write!(
                f,
                "format version {v}, this swarmd reads version {FORMAT_VERSION}"
            ),
            DecodeError::BadChecksum { section: 0 } => f.write_str("bad checksum in the header"),
            DecodeError::BadChecksum { section } => write!(f, "bad checksum in section {section}"),
            DecodeError::Corrupt(what) => write!(f, "corrupt: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A peer as the file holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRecord<'a> {
    pub addr: PeerAddr,
    pub seeder: bool,
    /// Seconds left before it expired, when the file was written (a whole
    /// number of the header's time units; 0 if it had expired).
    pub left: u32,
    /// Its peer id, when the file keeps them.
    pub id: Option<&'a [u8; 20]>,
}

/// Where decoded torrents go: each torrent, then its peers.
pub trait Sink {
    fn torrent(&mut self, info_hash: InfoHash, completed: u32);
    fn peer(&mut self, peer: &PeerRecord<'_>);
}

/// What a whole file held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub header: Header,
    pub sections: u64,
    pub torrents: u64,
    pub peers: u64,
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Some(head)
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads and checks the header.
pub fn read_header(input: &[u8]) -> Result<Header, DecodeError> {
    if input.is_empty() {
        return Err(DecodeError::Empty);
    }
    // A short file that starts like a snapshot is a truncated one; one that
    // doesn't is something else.
    let seen = input.len().min(MAGIC.len());
    if input[..seen] != MAGIC[..seen] {
        return Err(DecodeError::BadMagic);
    }
    if input.len() < 10 {
        return Err(DecodeError::Truncated);
    }
    let version = le_u16(&input[8..10]);
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version(version));
    }
    if input.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let b = &input[..HEADER_LEN];
    if crc32fast::hash(&b[..28]) != le_u32(&b[28..]) {
        return Err(DecodeError::BadChecksum { section: 0 });
    }
    let flags = le_u16(&b[10..12]);
    if flags & !FLAG_PEER_IDS != 0 {
        return Err(DecodeError::Corrupt("unknown header flags"));
    }
    let time_unit = le_u16(&b[12..14]);
    if time_unit == 0 {
        return Err(DecodeError::Corrupt("a time unit of 0"));
    }
    let mut written_at = [0u8; 8];
    written_at.copy_from_slice(&b[16..24]);
    Ok(Header {
        peer_ids: flags & FLAG_PEER_IDS != 0,
        time_unit,
        written_at: u64::from_le_bytes(written_at),
        shards: le_u32(&b[24..28]),
    })
}

/// Decodes a whole snapshot, handing torrents and peers to `sink` as they
/// come.
pub fn decode(input: &[u8], sink: &mut impl Sink) -> Result<Decoded, DecodeError> {
    let header = read_header(input)?;
    let mut rest = &input[HEADER_LEN..];
    let mut got = Decoded {
        header,
        sections: 0,
        torrents: 0,
        peers: 0,
    };
    loop {
        let head = take(&mut rest, SECTION_HEAD_LEN).ok_or(DecodeError::Truncated)?;
        let (kind, len, crc) = (head[0], le_u32(&head[1..5]), le_u32(&head[5..9]));
        let body = take(&mut rest, len as usize).ok_or(DecodeError::Truncated)?;
        let section = got.sections + 1;
        if crc32fast::hash(body) != crc {
            return Err(DecodeError::BadChecksum { section });
        }
        match kind {
            SECTION_TORRENTS => {
                let (torrents, peers) = torrents(body, &header, sink)?;
                got.sections = section;
                got.torrents += torrents;
                got.peers += peers;
            }
            SECTION_END => {
                let mut b = body;
                let totals = (get_varint(&mut b), get_varint(&mut b), get_varint(&mut b));
                if !b.is_empty() {
                    return Err(DecodeError::Corrupt("an end section too long"));
                }
                if totals != (Some(got.sections), Some(got.torrents), Some(got.peers)) {
                    return Err(DecodeError::Corrupt(
                        "the totals of the end section do not match",
                    ));
                }
                if !rest.is_empty() {
                    return Err(DecodeError::Corrupt("bytes after the end section"));
                }
                return Ok(got);
            }
            _ => return Err(DecodeError::Corrupt("an unknown section kind")),
        }
    }
}

/// One torrents section's body; returns (torrents, peers).
fn torrents(
    mut body: &[u8],
    header: &Header,
    sink: &mut impl Sink,
) -> Result<(u64, u64), DecodeError> {
    let short = DecodeError::Corrupt("a section ends inside a torrent");
    let _shard = get_varint(&mut body).ok_or(short)?;
    let count = get_varint(&mut body).ok_or(short)?;
    if count > (body.len() / MIN_TORRENT_LEN) as u64 {
        return Err(DecodeError::Corrupt("more torrents than the section holds"));
    }
    let id_len = if header.peer_ids { 20 } else { 0 };
    let unit = header.time_unit as u32;
    let mut peers = 0u64;
    for _ in 0..count {
        let hash = take(&mut body, 20).ok_or(short)?;
        let mut info_hash = InfoHash([0; 20]);
        info_hash.0.copy_from_slice(hash);
        let completed = get_varint(&mut body).ok_or(short)?;
        let completed =
            u32::try_from(completed).map_err(|_| DecodeError::Corrupt("a completed count"))?;
        let v4 = get_varint(&mut body).ok_or(short)?;
        let v6 = if v4 & 1 == 1 {
            get_varint(&mut body).ok_or(short)?
        } else {
            0
        };
        let v4 = v4 >> 1;
        let need = v4
            .checked_mul(7 + id_len)
            .zip(v6.checked_mul(19 + id_len))
            .and_then(|(a, b)| a.checked_add(b));
        if need.is_none_or(|n| n > body.len() as u64) {
            return Err(DecodeError::Corrupt("more peers than the section holds"));
        }
        sink.torrent(info_hash, completed);
        for _ in 0..v4 {
            let b = take(&mut body, 7 + id_len as usize).ok_or(short)?;
            let mut a = [0u8; 6];
            a.copy_from_slice(&b[..6]);
            sink.peer(&record(PeerAddr::V4(a), b[6], &b[7..], unit));
        }
        for _ in 0..v6 {
            let b = take(&mut body, 19 + id_len as usize).ok_or(short)?;
            let mut a = [0u8; 18];
            a.copy_from_slice(&b[..18]);
            sink.peer(&record(PeerAddr::V6(a), b[18], &b[19..], unit));
        }
        peers += v4 + v6;
    }
    if !body.is_empty() {
        return Err(DecodeError::Corrupt(
            "bytes after the last torrent of a section",
        ));
    }
    Ok((count, peers))
}

fn record(addr: PeerAddr, meta: u8, id: &[u8], unit: u32) -> PeerRecord<'_> {
    PeerRecord {
        addr,
        seeder: meta & SEEDER_BIT != 0,
        left: (meta as u32 & MAX_UNITS) * unit,
        id: id.try_into().ok(),
    }
}
