//! What the stats endpoint is given to read: the counters, the access
//! lists' passkey counters, and a line to each swarm worker for one
//! torrent's counts. The tracker makes it; the endpoint never sees the
//! tracker itself.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::access::{Access, PasskeyCounters};
use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;
use crate::stats::Stats;
use crate::workers::{shard_of, Control};

/// What the stats endpoint may ask of a running tracker: counters, and
/// questions to the swarm workers. Cheap to clone.
#[derive(Clone)]
pub struct TrackerView {
    pub stats: Arc<Stats>,
    /// One control channel per swarm worker, in shard order.
    pub(crate) controls: Vec<Sender<Control>>,
    pub(crate) access: Arc<Access>,
    /// Raised while `/events` has a subscriber: the shards then note which
    /// torrents change (see [`Control::Changes`]).
    pub(crate) events_on: Arc<AtomicBool>,
}

impl TrackerView {
    /// Per-passkey counters, sorted by user (or key); empty when passkeys
    /// are off.
    pub fn passkey_stats(&self) -> Vec<(String, PasskeyCounters)> {
        self.access.passkey_stats()
    }

    /// Asks the swarm worker that holds `info_hash` for its counts, without
    /// waiting: the answer comes on the returned channel. None if that
    /// worker's control channel is full or gone.
    pub(crate) fn ask_torrent(&self, info_hash: InfoHash) -> Option<Receiver<ScrapeStats>> {
        let (tx, rx) = bounded(1);
        let shard = shard_of(&info_hash, self.controls.len());
        self.controls
            .get(shard)?
            .try_send(Control::Torrent {
                info_hash,
                reply: tx,
            })
            .ok()?;
        Some(rx)
    }

    /// One torrent's counts, asked of the swarm worker that holds it. None
    /// if it did not answer within a second (stopping, or swamped). Blocks;
    /// the endpoint itself uses `TrackerView::ask_torrent`.
    pub fn torrent(&self, info_hash: InfoHash) -> Option<ScrapeStats> {
        self.ask_torrent(info_hash)?
            .recv_timeout(Duration::from_secs(1))
            .ok()
    }

    /// The `n` largest torrents as of the swarm workers' last cleaning
    /// passes, largest first.
    pub fn top(&self, n: usize) -> Vec<(InfoHash, ScrapeStats)> {
        let mut all: Vec<(InfoHash, ScrapeStats)> = self
            .stats
            .top
            .iter()
            .flat_map(|t| t.lock().clone())
            .collect();
        all.sort_unstable_by_key(|(h, s)| {
            (std::cmp::Reverse(s.seeders as u64 + s.leechers as u64), *h)
        });
        all.truncate(n);
        all
    }
}
