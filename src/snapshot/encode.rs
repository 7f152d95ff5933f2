//! Writing a snapshot: a [`Section`] collects torrents in their encoded
//! form (which is all the copy a shard's lock needs to be held for), and
//! an [`Encoder`] frames sections with their length and checksum into any
//! [`Write`], then closes the file with the end section.

use std::io::{self, Write};

use super::format::{put_varint, Header, SECTION_END, SECTION_TORRENTS};
use crate::protocol::InfoHash;
use crate::swarm::PeerAddr;

/// Torrents of one shard, encoded, waiting to be framed as a section.
#[derive(Debug)]
pub struct Section {
    header: Header,
    shard: u32,
    body: Vec<u8>,
    torrents: u64,
    peers: u64,
    /// Peers the current torrent announced and has not received yet, for
    /// a debug check of the caller.
    owed: u64,
}

impl Section {
    pub fn new(header: Header, shard: u32) -> Section {
        Section {
            header,
            shard,
            body: Vec::new(),
            torrents: 0,
            peers: 0,
            owed: 0,
        }
    }

    /// Starts a torrent with `v4` IPv4 and `v6` IPv6 peers, which must
    /// follow, IPv4 first.
    pub fn torrent(&mut self, info_hash: &InfoHash, completed: u32, v4: usize, v6: usize) {
        debug_assert_eq!(self.owed, 0, "peers missing from the torrent before");
        self.body.extend_from_slice(&info_hash.0);
        put_varint(&mut self.body, completed as u64);
        put_varint(&mut self.body, (v4 as u64) << 1 | (v6 > 0) as u64);
        if v6 > 0 {
            put_varint(&mut self.body, v6 as u64);
        }
        self.torrents += 1;
        self.owed = (v4 + v6) as u64;
    }

    /// One peer of the current torrent, with `left` seconds before it
    /// expires; `id` is written when the header says peers carry ids (20
    /// bytes, zeros if `id` is shorter).
    #[inline]
    pub fn peer(&mut self, addr: &[u8], seeder: bool, left: u32, id: &[u8]) {
        self.body.extend_from_slice(addr);
        self.body.push(self.header.meta(seeder, left));
        if self.header.peer_ids {
            let mut full = [0u8; 20];
            let n = id.len().min(20);
            full[..n].copy_from_slice(&id[..n]);
            self.body.extend_from_slice(&full);
        }
        self.peers += 1;
        self.owed = self.owed.saturating_sub(1);
    }

    /// [`Section::peer`] for a [`PeerAddr`].
    pub fn peer_addr(&mut self, addr: &PeerAddr, seeder: bool, left: u32, id: &[u8]) {
        match addr {
            PeerAddr::V4(a) => self.peer(a, seeder, left, id),
            PeerAddr::V6(a) => self.peer(a, seeder, left, id),
        }
    }

    pub fn torrents(&self) -> u64 {
        self.torrents
    }

    pub fn peers(&self) -> u64 {
        self.peers
    }

    /// Bytes encoded so far.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.torrents == 0
    }

    fn clear(&mut self) {
        self.body.clear();
        self.torrents = 0;
        self.peers = 0;
        self.owed = 0;
    }
}

/// What a finished snapshot holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub sections: u64,
    pub torrents: u64,
    pub peers: u64,
    pub bytes: u64,
}

/// Frames sections into `out`: the header when made, each section as it
/// comes, the end section at [`Encoder::finish`].
pub struct Encoder<W: Write> {
    out: W,
    header: Header,
    written: Written,
    /// A reused buffer for a section's prefix and framing.
    scratch: Vec<u8>,
}

impl<W: Write> Encoder<W> {
    pub fn new(mut out: W, header: Header) -> io::Result<Encoder<W>> {
        let bytes = header.to_bytes();
        out.write_all(&bytes)?;
        Ok(Encoder {
            out,
            header,
            written: Written {
                bytes: bytes.len() as u64,
                ..Written::default()
            },
            scratch: Vec::new(),
        })
    }

    pub fn header(&self) -> Header {
        self.header
    }

    /// A section for `shard` to fill, with this file's header.
    pub fn section(&self, shard: u32) -> Section {
        Section::new(self.header, shard)
    }

    /// Writes `section` (if it holds torrents) and empties it for reuse.
    pub fn write(&mut self, section: &mut Section) -> io::Result<()> {
        if section.is_empty() {
            return Ok(());
        }
        let mut prefix = std::mem::take(&mut self.scratch);
        prefix.clear();
        put_varint(&mut prefix, section.shard as u64);
        put_varint(&mut prefix, section.torrents);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&prefix);
        crc.update(&section.body);
        let len = prefix.len() + section.body.len();
        let len = u32::try_from(len).map_err(|_| io::Error::other("section over 4 GiB"))?;
        self.frame(SECTION_TORRENTS, len, crc.finalize())?;
        self.out.write_all(&prefix)?;
        self.out.write_all(&section.body)?;
        self.written.sections += 1;
        self.written.torrents += section.torrents;
        self.written.peers += section.peers;
        self.written.bytes += len as u64;
        self.scratch = prefix;
        section.clear();
        Ok(())
    }

    fn frame(&mut self, kind: u8, len: u32, crc: u32) -> io::Result<()> {
        let mut head = [0u8; 9];
        head[0] = kind;
        head[1..5].copy_from_slice(&len.to_le_bytes());
        head[5..].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&head)?;
        self.written.bytes += head.len() as u64;
        Ok(())
    }

    /// Writes the end section; returns the writer (to flush and sync) and
    /// what the file holds.
    pub fn finish(mut self) -> io::Result<(W, Written)> {
        let mut body = Vec::with_capacity(30);
        put_varint(&mut body, self.written.sections);
        put_varint(&mut body, self.written.torrents);
        put_varint(&mut body, self.written.peers);
        self.frame(SECTION_END, body.len() as u32, crc32fast::hash(&body))?;
        self.out.write_all(&body)?;
        self.written.bytes += body.len() as u64;
        Ok((self.out, self.written))
    }
}
