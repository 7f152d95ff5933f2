//! Which torrents' counts changed since the `/events` feed last asked: a
//! set of info hashes, kept only while the feed has a subscriber.
//!
//! Why a set beside the torrents and not a bit in each torrent: a torrent
//! and its info hash fill 80 bytes with no spare bit (see `PeerSet`'s
//! `completed`), so a bit would cost 8 bytes per torrent at millions of
//! torrents even while nobody subscribes. The set costs nothing while the
//! feed is off (one branch per announce), and one hash-set insert per
//! changed announce while it is on; it holds each torrent once, so it is
//! bounded by the torrents of the shard, however many announces come
//! between two collections.

use crate::protocol::InfoHash;

type ChangeSet = hashbrown::HashSet<InfoHash, ahash::RandomState>;

/// The changed torrents of one shard, while tracking is on.
#[derive(Debug, Default)]
pub(super) struct Changes {
    set: Option<ChangeSet>,
}

impl Changes {
    #[inline]
    pub(super) fn on(&self) -> bool {
        self.set.is_some()
    }

    /// Starts (an empty set) or stops (the set is dropped) tracking.
    pub(super) fn track(&mut self, on: bool) {
        match (on, self.set.is_some()) {
            (true, false) => self.set = Some(ChangeSet::default()),
            (false, true) => self.set = None,
            _ => {}
        }
    }

    #[inline]
    pub(super) fn mark(&mut self, info_hash: InfoHash) {
        if let Some(set) = &mut self.set {
            set.insert(info_hash);
        }
    }

    /// Moves the changed torrents into `out` (emptied first), leaving the
    /// set empty, with its allocation kept for the next interval.
    pub(super) fn take(&mut self, out: &mut Vec<InfoHash>) {
        out.clear();
        if let Some(set) = &mut self.set {
            out.extend(set.drain());
        }
    }
}
