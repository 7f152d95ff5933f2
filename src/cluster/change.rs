//! Peer changes on the wire: the compact binary record a shard appends for
//! each local announce it stores, the header of a message that carries
//! many of them, and [`ChangeLog`], the shard's buffer of records.
//!
//! Every integer is little-endian.
//!
//! ```text
//! message header
//!   version     u8   WIRE_VERSION
//!   kind        u8   KIND_CHANGES or KIND_WARM
//!   node length u8, then the node's name (UTF-8)
//!   sequence    u64  per node and kind, from 0 (a warm chunk: its index)
//!   sent_at     u64  microseconds since the Unix epoch (for lag)
//!   count       u32  records that follow (a warm chunk: 1 on the last)
//! record
//!   flags       u8   bits 0-1 event (EV_*), bit 2 seeder, bit 3 IPv6
//!   info hash   20
//!   EV_COUNT:   completed u32 (the torrent's completed count, raised to it)
//!   otherwise:  address and port, 6 or 18 bytes (network order), then
//!               seconds left before the peer expires, u16
//! ```
//!
//! Why seconds left and not an expiry time: each node's swarm clock starts
//! at its own start, and wall clocks may differ by more than the lag; time
//! left is the same on every node to within the lag.

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::protocol::{AnnounceEvent, InfoHash};
use crate::swarm::{Announce, PeerAddr};

pub const WIRE_VERSION: u8 = 1;
pub const KIND_CHANGES: u8 = 1;
pub const KIND_WARM: u8 = 2;

pub const EV_UPDATE: u8 = 0;
pub const EV_STOPPED: u8 = 1;
pub const EV_COMPLETED: u8 = 2;
/// A torrent's completed count (warm-up), not a peer.
pub const EV_COUNT: u8 = 3;
const SEEDER: u8 = 4;
const V6: u8 = 8;

/// Longest record: flags, hash, an IPv6 address and port, time left.
pub const MAX_RECORD: usize = 1 + 20 + 18 + 2;

/// One change, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Peer {
        info_hash: InfoHash,
        addr: PeerAddr,
        event: AnnounceEvent,
        seeder: bool,
        /// Seconds before it expires.
        left: u32,
    },
    Completed {
        info_hash: InfoHash,
        completed: u32,
    },
}

impl Change {
    pub fn info_hash(&self) -> &InfoHash {
        match self {
            Change::Peer { info_hash, .. } | Change::Completed { info_hash, .. } => info_hash,
        }
    }
}

/// Appends a peer's record.
#[inline]
pub fn put_peer(
    out: &mut Vec<u8>,
    info_hash: &InfoHash,
    addr: &PeerAddr,
    event: u8,
    seeder: bool,
    left: u32,
) {
    let left = left.min(u16::MAX as u32) as u16;
    let flags = event | if seeder { SEEDER } else { 0 };
    match addr {
        PeerAddr::V4(a) => {
            out.push(flags);
            out.extend_from_slice(&info_hash.0);
            out.extend_from_slice(a);
        }
        PeerAddr::V6(a) => {
            out.push(flags | V6);
            out.extend_from_slice(&info_hash.0);
            out.extend_from_slice(a);
        }
    }
    out.extend_from_slice(&left.to_le_bytes());
}

/// Appends a torrent's completed count.
pub fn put_completed(out: &mut Vec<u8>, info_hash: &InfoHash, completed: u32) {
    out.push(EV_COUNT);
    out.extend_from_slice(&info_hash.0);
    out.extend_from_slice(&completed.to_le_bytes());
}

/// Reads the record at the front of `input`, advancing it, along with its
/// bytes; None when `input` does not start with a whole record.
pub fn next(input: &mut &[u8]) -> Option<(Change, usize)> {
    let b = *input;
    let flags = *b.first()?;
    let mut info_hash = InfoHash([0; 20]);
    info_hash.0.copy_from_slice(b.get(1..21)?);
    let event = flags & 3;
    let (change, len) = if event == EV_COUNT {
        let c = b.get(21..25)?;
        let completed = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        (
            Change::Completed {
                info_hash,
                completed,
            },
            25,
        )
    } else {
        let (addr, end) = if flags & V6 != 0 {
            let mut a = [0u8; 18];
            a.copy_from_slice(b.get(21..39)?);
            (PeerAddr::V6(a), 39)
        } else {
            let mut a = [0u8; 6];
            a.copy_from_slice(b.get(21..27)?);
            (PeerAddr::V4(a), 27)
        };
        let l = b.get(end..end + 2)?;
        let event = match event {
            EV_STOPPED => AnnounceEvent::Stopped,
            EV_COMPLETED => AnnounceEvent::Completed,
            _ => AnnounceEvent::None,
        };
        let change = Change::Peer {
            info_hash,
            addr,
            event,
            seeder: flags & SEEDER != 0,
            left: u16::from_le_bytes([l[0], l[1]]) as u32,
        };
        (change, end + 2)
    };
    *input = &b[len..];
    Some((change, len))
}

/// The header of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub kind: u8,
    pub node: &'a str,
    pub seq: u64,
    pub sent_at_us: u64,
    pub count: u32,
}

impl Header<'_> {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(WIRE_VERSION);
        out.push(self.kind);
        let node = &self.node.as_bytes()[..self.node.len().min(255)];
        out.push(node.len() as u8);
        out.extend_from_slice(node);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.sent_at_us.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
    }

    /// Reads a header; returns it and the body after it. None for another
    /// version or a message too short.
    pub fn read(input: &[u8]) -> Option<(Header<'_>, &[u8])> {
        if *input.first()? != WIRE_VERSION {
            return None;
        }
        let kind = *input.get(1)?;
        let n = *input.get(2)? as usize;
        let node = std::str::from_utf8(input.get(3..3 + n)?).ok()?;
        let rest = input.get(3 + n..)?;
        let u64_at = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(rest.get(i..i + 8)?.try_into().ok()?))
        };
        let seq = u64_at(0)?;
        let sent_at_us = u64_at(8)?;
        let count = u32::from_le_bytes(rest.get(16..20)?.try_into().ok()?);
        Some((
            Header {
                kind,
                node,
                seq,
                sent_at_us,
                count,
            },
            &rest[20..],
        ))
    }
}

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Records of one shard's batch, on their way to the cluster thread.
#[derive(Debug, Default)]
pub struct Records {
    pub bytes: Vec<u8>,
    pub count: u32,
}

/// A shard's buffer of the changes its local announces made: one record
/// pushed per stored announce, handed to the cluster thread at the end of
/// each batch.
pub struct ChangeLog {
    records: Records,
    to_cluster: Sender<Records>,
    /// Emptied buffers coming back from the cluster thread, for reuse.
    spare: Receiver<Vec<u8>>,
    /// Seconds a peer lives after an announce (`swarm.peer_timeout`).
    left: u32,
    stats: std::sync::Arc<crate::stats::ClusterCounters>,
}

impl ChangeLog {
    pub fn new(
        to_cluster: Sender<Records>,
        spare: Receiver<Vec<u8>>,
        peer_timeout: u32,
        stats: std::sync::Arc<crate::stats::ClusterCounters>,
    ) -> ChangeLog {
        ChangeLog {
            records: Records::default(),
            to_cluster,
            spare,
            left: peer_timeout,
            stats,
        }
    }

    pub fn set_peer_timeout(&mut self, peer_timeout: u32) {
        self.left = peer_timeout;
    }

    /// Records a local announce that the swarm stored (or a stop).
    #[inline]
    pub fn record(&mut self, a: &Announce) {
        let event = match a.event {
            AnnounceEvent::Stopped => EV_STOPPED,
            AnnounceEvent::Completed => EV_COMPLETED,
            _ => EV_UPDATE,
        };
        put_peer(
            &mut self.records.bytes,
            &a.info_hash,
            &a.addr,
            event,
            a.seeder,
            self.left,
        );
        self.records.count += 1;
    }

    /// Hands the batch's records to the cluster thread; a full queue drops
    /// them (counted), never waits.
    pub fn flush(&mut self) {
        if self.records.count == 0 {
            return;
        }
        let fresh = Records {
            bytes: self.spare.try_recv().unwrap_or_default(),
            count: 0,
        };
        let full = std::mem::replace(&mut self.records, fresh);
        if let Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) =
            self.to_cluster.try_send(full)
        {
            self.stats
                .dropped
                .fetch_add(back.count as u64, std::sync::atomic::Ordering::Relaxed);
            let mut bytes = back.bytes;
            bytes.clear();
            self.records = Records { bytes, count: 0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_headers_round_trip() {
        let h = InfoHash([9; 20]);
        let v4 = PeerAddr::V4([127, 0, 0, 1, 0x1a, 0xe1]);
        let v6 = PeerAddr::V6([1; 18]);
        let mut out = Vec::new();
        put_peer(&mut out, &h, &v4, EV_UPDATE, true, 2700);
        put_peer(&mut out, &h, &v6, EV_STOPPED, false, 100_000);
        put_completed(&mut out, &h, 42);
        let mut input = &out[..];
        let mut got = Vec::new();
        while let Some((c, _)) = next(&mut input) {
            got.push(c);
        }
        assert!(input.is_empty());
        assert_eq!(
            got,
            vec![
                Change::Peer {
                    info_hash: h,
                    addr: v4,
                    event: AnnounceEvent::None,
                    seeder: true,
                    left: 2700
                },
                Change::Peer {
                    info_hash: h,
                    addr: v6,
                    event: AnnounceEvent::Stopped,
                    seeder: false,
                    left: 65535
                },
                Change::Completed {
                    info_hash: h,
                    completed: 42
                },
            ]
        );
        let header = Header {
            kind: KIND_CHANGES,
            node: "b-2",
            seq: 7,
            sent_at_us: 99,
            count: 3,
        };
        let mut msg = Vec::new();
        header.write(&mut msg);
        msg.extend_from_slice(&out);
        let (back, body) = Header::read(&msg).unwrap();
        assert_eq!(back, header);
        assert_eq!(body, &out[..]);
    }

    #[test]
    fn cut_records_and_headers_are_refused_without_panic() {
        let mut out = Vec::new();
        put_peer(
            &mut out,
            &InfoHash([1; 20]),
            &PeerAddr::V6([2; 18]),
            EV_COMPLETED,
            false,
            5,
        );
        for n in 0..out.len() {
            let mut input = &out[..n];
            assert!(next(&mut input).is_none());
        }
        let mut msg = Vec::new();
        Header {
            kind: KIND_WARM,
            node: "a",
            seq: 0,
            sent_at_us: 0,
            count: 0,
        }
        .write(&mut msg);
        for n in 0..msg.len() {
            assert!(Header::read(&msg[..n]).is_none());
        }
        assert!(Header::read(&[2, 1, 0]).is_none(), "another version");
    }
}
