//! Per-passkey accounting: what each key announced, uploaded and
//! downloaded. Socket workers attach an [`Account`] to an announce whose
//! key checked out; the swarm worker's [`Ledger`] turns the client's running
//! totals into deltas and adds them to the key's [`PasskeyTally`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::protocol::{AnnounceEvent, InfoHash};
use crate::swarm::{Announce, PeerAddr};

/// What one passkey did since it was listed (or since start-up). Written by
/// swarm workers, which may share a key, so with atomic adds.
#[derive(Debug, Default)]
pub(crate) struct PasskeyTally {
    announces: AtomicU64,
    uploaded: AtomicU64,
    downloaded: AtomicU64,
}

impl PasskeyTally {
    fn add(&self, uploaded: u64, downloaded: u64) {
        self.announces.fetch_add(1, Ordering::Relaxed);
        self.uploaded.fetch_add(uploaded, Ordering::Relaxed);
        self.downloaded.fetch_add(downloaded, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> PasskeyCounters {
        PasskeyCounters {
            announces: self.announces.load(Ordering::Relaxed),
            uploaded: self.uploaded.load(Ordering::Relaxed),
            downloaded: self.downloaded.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one passkey's (or one user's) counters. They only grow,
/// from start-up: a site doing ratio accounting stores what it read last
/// and adds the difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PasskeyCounters {
    /// Announces that reached a swarm.
    pub announces: u64,
    /// Bytes uploaded and downloaded, summed over the deltas between a
    /// peer's announces of a torrent.
    pub uploaded: u64,
    pub downloaded: u64,
}

impl std::ops::AddAssign for PasskeyCounters {
    fn add_assign(&mut self, other: PasskeyCounters) {
        self.announces += other.announces;
        self.uploaded += other.uploaded;
        self.downloaded += other.downloaded;
    }
}

/// What an announce with a passkey carries to its swarm worker.
#[derive(Debug)]
pub struct Account {
    pub(crate) tally: Arc<PasskeyTally>,
    pub(crate) uploaded: u64,
    pub(crate) downloaded: u64,
}

impl Account {
    /// Boxed, so that a request without one costs a null pointer.
    pub(crate) fn boxed(
        tally: Option<Arc<PasskeyTally>>,
        uploaded: u64,
        downloaded: u64,
    ) -> Option<Box<Account>> {
        tally.map(|tally| {
            Box::new(Account {
                tally,
                uploaded,
                downloaded,
            })
        })
    }
}

/// A swarm worker's record of the uploaded and downloaded totals each peer
/// last reported per torrent, to turn them into deltas.
///
/// Why a map beside the swarm rather than fields in each peer: a public
/// tracker would pay 16 bytes more on every peer for a feature it does not
/// use. Why two generations: a record untouched for a whole period is
/// dropped with its generation, so the map is bounded by the peers active
/// in the last two periods (the peer timeout) without a walk over it.
#[derive(Debug)]
pub struct Ledger {
    period: u32,
    rotated_at: u32,
    current: hashbrown::HashMap<(InfoHash, PeerAddr), (u64, u64), ahash::RandomState>,
    previous: hashbrown::HashMap<(InfoHash, PeerAddr), (u64, u64), ahash::RandomState>,
}

impl Ledger {
    /// `period`: seconds a record lives at least (the peer timeout).
    pub(crate) fn new(period: u32) -> Ledger {
        Ledger {
            period: period.max(1),
            rotated_at: 0,
            current: Default::default(),
            previous: Default::default(),
        }
    }

    /// Drops the older generation if a period has passed.
    pub(crate) fn rotate(&mut self, now: u32) {
        if now.saturating_sub(self.rotated_at) >= self.period {
            self.previous = std::mem::take(&mut self.current);
            self.rotated_at = now;
        }
    }

    /// Records an announce and adds its deltas to the passkey's tally.
    ///
    /// A peer without a record counts its totals only on `started` (a new
    /// session starts from zero); otherwise it is a session whose start the
    /// tracker did not see (a restart), and its totals become the baseline,
    /// so nothing is counted twice. A total lower than the last one means
    /// the client restarted its count: all of it is new.
    pub(crate) fn record(&mut self, account: &Account, announce: &Announce, now: u32) {
        self.rotate(now);
        let key = (announce.info_hash, announce.addr);
        let last = self
            .current
            .remove(&key)
            .or_else(|| self.previous.remove(&key));
        let delta = |new: u64, old: u64| if new >= old { new - old } else { new };
        let (up, down) = match last {
            Some((u, d)) => (delta(account.uploaded, u), delta(account.downloaded, d)),
            None if announce.event == AnnounceEvent::Started => {
                (account.uploaded, account.downloaded)
            }
            None => (0, 0),
        };
        account.tally.add(up, down);
        if announce.event != AnnounceEvent::Stopped {
            self.current
                .insert(key, (account.uploaded, account.downloaded));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(event: AnnounceEvent) -> Announce {
        Announce {
            info_hash: InfoHash([9; 20]),
            addr: PeerAddr::V4([127, 0, 0, 1, 0, 80]),
            event,
            seeder: false,
            num_want: 0,
        }
    }

    /// Records held.
    fn records(ledger: &Ledger) -> usize {
        ledger.current.len() + ledger.previous.len()
    }

    #[test]
    fn ledger_counts_deltas_and_forgets_idle_peers() {
        let tally = Arc::new(PasskeyTally::default());
        let acc = |up, down| Account {
            tally: tally.clone(),
            uploaded: up,
            downloaded: down,
        };
        let mut ledger = Ledger::new(100);
        ledger.record(&acc(0, 0), &announce(AnnounceEvent::Started), 1);
        ledger.record(&acc(100, 10), &announce(AnnounceEvent::None), 2);
        ledger.record(&acc(150, 30), &announce(AnnounceEvent::None), 3);
        assert_eq!(
            tally.get(),
            PasskeyCounters {
                announces: 3,
                uploaded: 150,
                downloaded: 30
            }
        );
        // A count that went down was restarted: all of it is new.
        ledger.record(&acc(40, 30), &announce(AnnounceEvent::None), 4);
        assert_eq!(tally.get().uploaded, 190);
        assert_eq!(records(&ledger), 1);
        // Stopped counts its last delta and forgets the peer.
        ledger.record(&acc(50, 30), &announce(AnnounceEvent::Stopped), 5);
        assert_eq!(tally.get().uploaded, 200);
        assert_eq!(records(&ledger), 0);
        // Unknown, not started: a baseline, nothing counted.
        ledger.record(&acc(1000, 1000), &announce(AnnounceEvent::None), 6);
        assert_eq!(tally.get().uploaded, 200);
        // Survives one rotation, not two without an announce.
        ledger.rotate(150);
        ledger.record(&acc(1010, 1000), &announce(AnnounceEvent::None), 150);
        assert_eq!(tally.get().uploaded, 210);
        ledger.rotate(250);
        assert_eq!(records(&ledger), 1);
        ledger.rotate(350);
        assert_eq!(records(&ledger), 0);
    }
}
