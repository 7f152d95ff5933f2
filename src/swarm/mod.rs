//! The swarm state of one shard: which peers each torrent has, the
//! announce and scrape operations on them, and the cleaning of expired peers.
//! Nothing here knows about sockets or wire formats beyond the compact peer
//! form (BEP 23/7), which is also how peers are stored.
//!
//! Layout, chosen for memory at millions of mostly tiny swarms:
//! - Torrents sit in a dense vector with a [`DenseIndex`] beside it, so the
//!   cleaner can walk them from a cursor a slice at a time.
//! - A torrent's IPv4 peers sit inline in the torrent while there are at most
//!   two of them (most torrents), and in a heap vector after that; a hash
//!   index ([`PeerIndex`], 4-byte slots of position and hash tag) is added
//!   only once a swarm is larger than [`INDEX_FROM`]. IPv6 peers, rarer,
//!   are behind a box allocated on the first one.
//! - Each peer is its compact wire address (6 or 18 bytes: IP then port, big
//!   endian) and a 4-byte expiry, with alignment 1: 10 or 22 bytes.
//! - Leechers come first in the vector, seeders after them. A seeder is
//!   sent only leechers, which are then one contiguous range.
//!
//! Files: this one holds the types the rest of the crate uses; `swarms.rs`
//! the torrent map and its announce/scrape API; `peer_set.rs` one torrent's
//! peers of one family and the choice of peers to send; `hosts.rs` the
//! peers per address that keep one address from taking a swarm;
//! `completions.rs` the filter that counts one completion per address;
//! `subnets.rs` the peers grouped by subnet, for replies that prefer the
//! announcer's subnet; `clean.rs` the cleaning passes, the largest torrents
//! and the totals; `state.rs` the export to a snapshot and the restore from
//! one; `remote.rs` the changes other nodes of a cluster announced.

mod changes;
mod clean;
mod completions;
mod dense;
mod hosts;
mod peer_index;
mod peer_set;
mod remote;
mod state;
mod subnets;
mod swarms;

pub use dense::DenseIndex;
pub use peer_index::PeerIndex;
pub use swarms::Swarms;

#[cfg(test)]
use peer_set::{Addr, PeerSet};

use crate::protocol::{AnnounceEvent, InfoHash, PeerId};

/// Swarms larger than this get a hash index; below it a linear scan over the
/// compact addresses is faster than hashing.
pub const INDEX_FROM: usize = 24;

/// A peer's address in compact form: IPv4 address and port (6 bytes) or IPv6
/// address and port (18 bytes), both in network byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    V4([u8; 6]),
    V6([u8; 18]),
}

impl PeerAddr {
    pub fn from_socket_addr(addr: std::net::SocketAddr) -> PeerAddr {
        match addr {
            std::net::SocketAddr::V4(a) => {
                let mut b = [0u8; 6];
                b[..4].copy_from_slice(&a.ip().octets());
                b[4..].copy_from_slice(&a.port().to_be_bytes());
                PeerAddr::V4(b)
            }
            std::net::SocketAddr::V6(a) => {
                // An IPv4-mapped address (a dual-stack socket) is an IPv4 peer.
                if let Some(v4) = a.ip().to_ipv4_mapped() {
                    let mut b = [0u8; 6];
                    b[..4].copy_from_slice(&v4.octets());
                    b[4..].copy_from_slice(&a.port().to_be_bytes());
                    return PeerAddr::V4(b);
                }
                let mut b = [0u8; 18];
                b[..16].copy_from_slice(&a.ip().octets());
                b[16..].copy_from_slice(&a.port().to_be_bytes());
                PeerAddr::V6(b)
            }
        }
    }
}

/// Settings the swarm needs; a copy of the relevant config values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmConfig {
    /// Seconds without an announce after which a peer is dropped.
    pub peer_timeout: u32,
    /// Peers returned when the client asks for the default (numwant <= 0).
    pub default_numwant: usize,
    /// The most peers ever returned.
    pub max_numwant: usize,
    /// 0 for no limit. A full swarm still answers new peers; it stores one
    /// by evicting a peer of a host with at least two more peers than the
    /// newcomer's (of the same family), and otherwise does not store it.
    pub max_peers_per_torrent: usize,
    /// Most peers of one host in one torrent (an IPv4 address, an IPv6
    /// /64); beyond it new peers of that host are answered, not stored. 0
    /// for no limit.
    pub max_peers_per_address: usize,
    /// 0 for no limit. When full, announces for new torrents are answered
    /// with empty peer lists and not stored.
    pub max_torrents: usize,
    /// Fill replies first with peers in the announcer's subnet.
    pub prefer_same_subnet: bool,
    /// The subnet of an IPv4 peer, in prefix bits (0 to 32).
    pub subnet_prefix_v4: u8,
    /// The subnet of an IPv6 peer, in prefix bits (0 to 128).
    pub subnet_prefix_v6: u8,
}

impl Default for SwarmConfig {
    /// The shipped configuration's values: one source for the defaults, so
    /// that benches and tests run the tracker that operators get.
    fn default() -> Self {
        crate::config::Config::default().swarm_config()
    }
}

/// One announce, as the swarm needs it.
#[derive(Clone, Copy, Debug)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub addr: PeerAddr,
    pub event: AnnounceEvent,
    /// `left == 0`.
    pub seeder: bool,
    /// As the client sent it; <= 0 means the default.
    pub num_want: i32,
}

/// Most IPv6 peers in one UDP announce reply, so that it fits one packet
/// at the IPv6 minimum MTU and is never fragmented: 1280 bytes less 40 of
/// IPv6 and 8 of UDP header leave 1232, which hold the 20-byte reply header
/// and 67 peers of 18 bytes (1226). IPv4 needs no cap: 200 peers (the
/// default `max_numwant`) take 20 + 6 × 200 = 1220 bytes.
pub const UDP_V6_MAX_PEERS: i32 = 67;

impl Announce {
    /// The announce as a UDP request may ask it: an IPv6 one wants at most
    /// [`UDP_V6_MAX_PEERS`]. (HTTP runs over TCP, which needs no cap, and
    /// the selection is shared: so the cap is applied here, by the UDP
    /// decoder, rather than in the swarm.)
    pub fn fit_udp_reply(mut self) -> Announce {
        if let PeerAddr::V6(_) = self.addr {
            self.num_want = self.num_want.min(UDP_V6_MAX_PEERS);
        }
        self
    }
}

/// What an announce returns besides the peers it appended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnounceCounts {
    pub seeders: u32,
    pub leechers: u32,
    /// Number of peers appended to the output.
    pub peers: u32,
    /// The announce could not be stored (a limit was reached).
    pub not_stored: bool,
}

/// What a peer carries besides its address: nothing ([`NoPeerIds`]), or its
/// 20-byte peer id ([`WithPeerIds`]), for HTTP clients that ask for the
/// dictionary model. Chosen once, at start-up, so that trackers that don't
/// need ids don't pay 20 bytes per peer for them.
pub trait PeerData: Copy + Default + std::fmt::Debug + AsRef<[u8]> + 'static {
    fn from_peer_id(id: &PeerId) -> Self;
}

pub type NoPeerIds = [u8; 0];
pub type WithPeerIds = [u8; 20];

impl PeerData for NoPeerIds {
    #[inline]
    fn from_peer_id(_: &PeerId) -> Self {
        []
    }
}

impl PeerData for WithPeerIds {
    #[inline]
    fn from_peer_id(id: &PeerId) -> Self {
        id.0
    }
}

/// Totals over all torrents of one [`Swarms`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub torrents: u64,
    pub peers_v4: u64,
    pub peers_v6: u64,
    pub seeders: u64,
    pub leechers: u64,
}

/// Which torrents may stay in memory; the cleaning pass purges the others.
pub type TorrentFilter = std::sync::Arc<dyn Fn(&InfoHash) -> bool + Send + Sync>;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fair;
#[cfg(test)]
mod tests_subnet;
