//! The threads of a running tracker and the messages between them.
//!
//! A request goes socket worker → one swarm worker → the same socket worker,
//! in batches: a socket worker sends one [`RequestBatch`] per swarm worker per
//! read batch, and a swarm worker answers a whole batch with one
//! [`ResponseBatch`]. The request vector travels back inside the response
//! batch so the socket worker can reuse its allocation.

pub(crate) mod dispatch;
pub(crate) mod scrape;
pub mod socket;
pub mod swarm;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;
use crate::swarm::{Announce, AnnounceCounts};

/// Where a request came from and how to answer it.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    /// The client's address (for HTTP, the TCP peer).
    pub addr: SocketAddr,
    pub reply: Reply,
}

#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// A datagram from `addr` to this worker's socket number `socket`.
    Udp { socket: u16, transaction_id: u32 },
    /// This worker's HTTP connection number `conn`, if it is still the same
    /// connection (`generation`).
    Http { conn: u32, generation: u32 },
}

impl Origin {
    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

#[derive(Debug)]
pub enum SwarmRequest {
    Announce {
        origin: Origin,
        announce: Announce,
        /// The passkey's tally and the client's totals, when passkeys are on.
        account: Option<Box<crate::access::Account>>,
        /// Kept only by swarm workers that store peer ids.
        peer_id: crate::protocol::PeerId,
    },
    /// The info hashes of one scrape that belong to this swarm worker,
    /// with their positions in the request.
    ScrapePart {
        pending: u64,
        hashes: Vec<(u8, InfoHash)>,
    },
}

#[derive(Debug)]
pub enum SwarmResponse {
    Announce {
        origin: Origin,
        counts: AnnounceCounts,
        /// Range of compact peers in [`ResponseBatch::peers`].
        peers: (u32, u32),
        /// Range of their peer ids in [`ResponseBatch::peer_ids`] (empty
        /// when peer ids are not kept).
        ids: (u32, u32),
    },
    ScrapePart {
        pending: u64,
        stats: Vec<(u8, ScrapeStats)>,
    },
}

/// Messages to a swarm worker from outside the request path.
#[derive(Debug)]
pub enum Control {
    /// One torrent's counts, for the stats endpoint.
    Torrent {
        info_hash: InfoHash,
        reply: crossbeam_channel::Sender<ScrapeStats>,
    },
    /// The torrents whose counts changed since the last such message, with
    /// their counts now (zeros for one that is gone), for the `/events`
    /// feed. The vector of the answer is the shard's to fill.
    Changes {
        reply: crossbeam_channel::Sender<Vec<(InfoHash, ScrapeStats)>>,
    },
    /// New settings (after a reload).
    Config(crate::swarm::SwarmConfig),
    /// Peer changes from other nodes of a cluster, for this shard.
    Apply(crate::cluster::RemoteBatch),
    /// The tracker is stopping and no socket worker is left: exit.
    Stop,
}

#[derive(Debug)]
pub struct RequestBatch {
    /// The socket worker that wants the answers.
    pub from: usize,
    pub requests: Vec<SwarmRequest>,
    /// An empty response batch for the answers, so its vectors are reused.
    pub reply: ResponseBatch,
}

#[derive(Debug, Default)]
pub struct ResponseBatch {
    pub responses: Vec<SwarmResponse>,
    /// Compact peers of all announce responses of the batch.
    pub peers: Vec<u8>,
    /// Their peer ids, 20 bytes each, when peer ids are kept.
    pub peer_ids: Vec<u8>,
    /// The request vector, emptied, for reuse.
    pub spare: Vec<SwarmRequest>,
}

/// How a swarm worker wakes a socket worker that may be asleep.
///
/// A wake is a system call, so it is made only when the socket worker said it
/// is about to sleep: it sets `sleeping`, checks its channel once more, then
/// polls. A swarm worker sends first, then takes the flag: either it sees the
/// flag and wakes, or the socket worker's check comes after the send and sees
/// the batch.
pub struct Wake {
    pub waker: mio::Waker,
    pub sleeping: AtomicBool,
}

impl Wake {
    pub fn after_send(&self) {
        if self.sleeping.swap(false, SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake a socket worker: {e}");
            }
        }
    }
}

/// Shared between the main thread and the workers.
pub struct Shutdown {
    flag: AtomicBool,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            flag: AtomicBool::new(false),
        }
    }

    pub fn request(&self) {
        self.flag.store(true, SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.flag.load(SeqCst)
    }
}

/// Socket worker settings that a reload can change. Workers compare the
/// generation once per loop (one relaxed load) and copy the settings when it
/// moved.
pub struct SharedSettings {
    generation: std::sync::atomic::AtomicU64,
    value: parking_lot::Mutex<socket::SocketSettings>,
}

impl SharedSettings {
    pub fn new(s: socket::SocketSettings) -> SharedSettings {
        SharedSettings {
            generation: Default::default(),
            value: parking_lot::Mutex::new(s),
        }
    }

    pub fn set(&self, s: socket::SocketSettings) {
        *self.value.lock() = s;
        self.generation.fetch_add(1, SeqCst);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn get(&self) -> socket::SocketSettings {
        self.value.lock().clone()
    }
}

/// Which swarm worker owns an info hash. Info hashes are already uniform, so
/// their first bytes are a fair shard key.
#[inline]
pub fn shard_of(info_hash: &InfoHash, swarm_workers: usize) -> usize {
    let h = u32::from_le_bytes([
        info_hash.0[0],
        info_hash.0[1],
        info_hash.0[2],
        info_hash.0[3],
    ]);
    (h as usize) % swarm_workers
}

pub type Wakes = Arc<Vec<Wake>>;
