//! Decoded torrents into swarms: [`Restore`] is the decoder's [`Sink`]
//! that puts each torrent into the shard its info hash maps to (so a
//! snapshot of 2 shards loads into 4), drops peers whose time ran out while
//! the tracker was down, and counts what it did.

use super::decode::{PeerRecord, Sink};
use crate::protocol::{InfoHash, PeerId};
use crate::swarm::{PeerData, Swarms};
use crate::workers::shard_of;

/// What a load put back and left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub torrents: u64,
    pub peers: u64,
    /// Peers whose time passed while the tracker was down.
    pub expired: u64,
    /// Peers the configuration's limits left out (a peer count lowered, or
    /// their torrent refused).
    pub refused: u64,
    /// Torrents left out because the table was full (`max_torrents`).
    pub refused_torrents: u64,
}

/// Where a torrent went: its shard, and its position there (None if the
/// limits refused it).
type Placed = (usize, Option<usize>);

pub struct Restore<'a, X: PeerData> {
    shards: &'a mut [Swarms<X>],
    /// Seconds between writing the snapshot and loading it.
    elapsed: u32,
    /// The swarm clock of the shards now.
    now: u32,
    /// The torrent whose peers are coming, and where it went once made:
    /// (shard, position, or None if refused). Made at its first live peer,
    /// so that a torrent whose peers all expired is not made at all
    /// (unless its completed count is worth keeping).
    current: Option<(InfoHash, u32, Option<Placed>)>,
    pub restored: Restored,
}

impl<'a, X: PeerData> Restore<'a, X> {
    /// Into `shards`, whose clock reads `now`, `elapsed` seconds after the
    /// snapshot was written.
    pub fn new(shards: &'a mut [Swarms<X>], elapsed: u32, now: u32) -> Self {
        Restore {
            shards,
            elapsed,
            now,
            current: None,
            restored: Restored::default(),
        }
    }

    /// Makes the current torrent if it is not made yet.
    fn make(&mut self) -> Option<Placed> {
        let (hash, completed, made) = self.current.as_mut()?;
        if made.is_none() {
            let shard = shard_of(hash, self.shards.len());
            let pos = self.shards[shard].restore_torrent(*hash, *completed);
            match pos {
                Some(_) => self.restored.torrents += 1,
                None => self.restored.refused_torrents += 1,
            }
            *made = Some((shard, pos));
        }
        *made
    }

    /// Ends the last torrent; returns the counts.
    pub fn finish(mut self) -> Restored {
        self.close();
        self.restored
    }

    fn close(&mut self) {
        if let Some((_, completed, None)) = self.current {
            if completed > 0 {
                self.make();
            }
        }
        self.current = None;
    }
}

impl<X: PeerData> Sink for Restore<'_, X> {
    fn torrent(&mut self, info_hash: InfoHash, completed: u32) {
        self.close();
        self.current = Some((info_hash, completed, None));
    }

    fn peer(&mut self, p: &PeerRecord<'_>) {
        let left = p.left.saturating_sub(self.elapsed);
        if left == 0 {
            self.restored.expired += 1;
            return;
        }
        let Some((shard, Some(pos))) = self.make() else {
            self.restored.refused += 1;
            return;
        };
        let id = X::from_peer_id(&PeerId(p.id.copied().unwrap_or_default()));
        let expiry = self.now.saturating_add(left);
        if self.shards[shard].restore_peer(pos, p.addr, p.seeder, expiry, id) {
            self.restored.peers += 1;
        } else {
            self.restored.refused += 1;
        }
    }
}
