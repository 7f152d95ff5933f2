//! The simulated peers one client (a UDP socket or an HTTP connection) speaks
//! for, and what each of their announces says: which peer announces next
//! (`--peer-order`), with which event, and how much it has left. `udp` and
//! `http` both draw their announces from here, so the two protocols simulate
//! the same swarm in the same way.

use swarmd::protocol::{AnnounceEvent, InfoHash, PeerId};

use crate::model::{peer_flags, Population};
use crate::options::{LoadOptions, PeerOrder};
use crate::report::PeerTally;

/// What one announce says, whatever the protocol carries it. The load
/// generator's own type, though its first fields are those of the tracker's
/// request types: those are what one wire carries as the tracker reads it
/// (`http::AnnounceQuery` has no `key`, which the tracker ignores, and has
/// BEP 23's flags; `udp::AnnounceRequest` has connection and transaction
/// ids and a `Vec` of URL data), while this one is `Copy`, made for every
/// request sent and written out as either.
#[derive(Clone, Copy, Debug)]
pub struct Announce {
    /// The torrent's number in the population (which token goes with it).
    pub torrent: u64,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: AnnounceEvent,
    /// Negative: leave it to the tracker.
    pub numwant: i32,
    /// The BEP 15 `key`; sent as 8 hex digits over HTTP, as real clients do.
    pub key: u32,
}

/// The peers of one client: global client `index` of `stride` owns peers
/// `index`, `index + stride`, ...
pub struct Peers {
    index: u64,
    stride: u64,
    count: u64,
    /// `peer_flags` of each peer.
    flags: Vec<u8>,
    order: PeerOrder,
    /// The next peer to announce, with `--peer-order sequential` or `once`.
    cursor: u64,
}

impl Peers {
    pub fn new(o: &LoadOptions, pop: &Population, index: u64, stride: u64) -> Peers {
        let count = (o.peers - index).div_ceil(stride);
        Peers {
            index,
            stride,
            count,
            flags: (0..count)
                .map(|k| pop.initial_flags(index + k * stride, o.seeder_prob))
                .collect(),
            order: o.order,
            cursor: 0,
        }
    }

    /// Every peer has announced, with `--peer-order once`; never with the
    /// other orders.
    pub fn is_done(&self) -> bool {
        self.order == PeerOrder::Once && self.cursor >= self.count
    }

    /// The next announce: picks the peer by `--peer-order` and updates its
    /// flags (and `tally`) for the event it sends. With `once`, the caller
    /// stops asking when [`Peers::is_done`].
    pub fn next_announce(
        &mut self,
        o: &LoadOptions,
        pop: &Population,
        rng: &mut fastrand::Rng,
        tally: &mut PeerTally,
    ) -> Announce {
        let k = match self.order {
            PeerOrder::Random => rng.u64(0..self.count),
            PeerOrder::Sequential => {
                let k = self.cursor;
                self.cursor = (k + 1) % self.count;
                k
            }
            PeerOrder::Once => {
                let k = self.cursor.min(self.count - 1);
                self.cursor += 1;
                k
            }
        };
        let p = self.index + k * self.stride;
        let flags = &mut self.flags[k as usize];
        let event = next_event(flags, o, rng, tally);
        let seeder = *flags & peer_flags::SEEDER != 0;
        let torrent = pop.torrent_of(p);
        Announce {
            torrent,
            info_hash: pop.info_hash(torrent),
            peer_id: pop.peer_id(p),
            port: pop.port(p),
            uploaded: 0,
            downloaded: if seeder { pop.left(p) } else { 0 },
            left: if seeder { 0 } else { pop.left(p) },
            event,
            numwant: o.numwant,
            key: pop.key(p),
        }
    }
}

/// The event of a peer's next announce, updating its flags. The swarm is
/// taken to exist before the run, so a peer's first announce is a plain
/// one; a stopped peer comes back with `started`; a leecher may complete.
fn next_event(
    flags: &mut u8,
    o: &LoadOptions,
    rng: &mut fastrand::Rng,
    tally: &mut PeerTally,
) -> AnnounceEvent {
    let seen = *flags & peer_flags::SEEN != 0;
    if !seen {
        *flags |= peer_flags::SEEN;
        tally.seen += 1;
    }
    if *flags & peer_flags::STOPPED != 0 {
        *flags &= !peer_flags::STOPPED;
        tally.stopped -= 1;
        AnnounceEvent::Started
    } else if seen && rng.f64() < o.stop_prob {
        *flags |= peer_flags::STOPPED;
        tally.stopped += 1;
        AnnounceEvent::Stopped
    } else if *flags & peer_flags::SEEDER == 0 && rng.f64() < o.complete_prob {
        *flags |= peer_flags::SEEDER;
        AnnounceEvent::Completed
    } else {
        AnnounceEvent::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::test_options;

    #[test]
    fn once_announces_each_peer_of_the_slice_once_then_is_done() {
        let o = test_options(
            "--torrents 10 --peers 10 --peer-order once --stop-prob 0 --complete-prob 0",
        );
        let pop = Population::new(o.torrents, o.peers, o.skew, o.seed);
        let (mut rng, mut tally) = (fastrand::Rng::with_seed(1), PeerTally::default());
        // Client 1 of 3 owns peers 1, 4 and 7.
        let mut peers = Peers::new(&o, &pop, 1, 3);
        let mut ids = Vec::new();
        while !peers.is_done() {
            let a = peers.next_announce(&o, &pop, &mut rng, &mut tally);
            assert_eq!(a.event, AnnounceEvent::None, "a first announce is plain");
            assert_eq!(a.left == 0, a.downloaded > 0, "a seeder has downloaded");
            ids.push(a.peer_id);
        }
        let want: Vec<PeerId> = [1, 4, 7].iter().map(|&p| pop.peer_id(p)).collect();
        assert_eq!(ids, want);
        assert_eq!((tally.seen, tally.stopped), (3, 0));
    }

    #[test]
    fn a_stopped_peer_comes_back_started_and_a_leecher_completes() {
        let o = test_options(
            "--torrents 10 --peers 10 --peer-order sequential --stop-prob 1 --complete-prob 0",
        );
        let pop = Population::new(o.torrents, o.peers, o.skew, o.seed);
        let (mut rng, mut tally) = (fastrand::Rng::with_seed(1), PeerTally::default());
        let mut peers = Peers::new(&o, &pop, 0, 10);
        let events: Vec<AnnounceEvent> = (0..4)
            .map(|_| peers.next_announce(&o, &pop, &mut rng, &mut tally).event)
            .collect();
        use AnnounceEvent::{None as Plain, Started, Stopped};
        assert_eq!(events, [Plain, Stopped, Started, Stopped]);
        assert_eq!((tally.seen, tally.stopped), (1, 1));

        let o = test_options(
            "--torrents 10 --peers 10 --stop-prob 0 --complete-prob 1 --seeder-prob 0",
        );
        let mut peers = Peers::new(&o, &pop, 0, 10);
        let first = peers.next_announce(&o, &pop, &mut rng, &mut tally);
        assert_eq!(first.event, AnnounceEvent::Completed);
        assert_eq!(first.left, 0, "a completed peer is a seeder");
        let next = peers.next_announce(&o, &pop, &mut rng, &mut tally);
        assert_eq!(next.event, AnnounceEvent::None, "completes once");
    }
}
