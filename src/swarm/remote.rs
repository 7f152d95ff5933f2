//! Changes from other nodes of a cluster ([`Swarms::apply_change`]): the
//! peer another node stored, stopped or saw complete goes through the same
//! announce path as a local one, with the time left it carries and no
//! peers chosen for a reply. Nothing here records a change: what a node
//! applies it never publishes again.

use super::{Announce, PeerData, Swarms};
use crate::cluster::change::Change;

impl<X: PeerData> Swarms<X> {
    /// Applies one remote change at `now` (this shard's clock). Returns
    /// false when a limit kept the peer out.
    pub fn apply_change(&mut self, change: &Change, now: u32) -> bool {
        match *change {
            Change::Peer {
                info_hash,
                addr,
                event,
                seeder,
                left,
            } => {
                let req = Announce {
                    info_hash,
                    addr,
                    event,
                    seeder,
                    num_want: 0,
                };
                // A peer never lives longer here than the local timeout,
                // whatever the other node's configuration says.
                let expiry = now.saturating_add(left.min(self.config.peer_timeout));
                let counts = self.announce_at(
                    &req,
                    X::default(),
                    now,
                    expiry,
                    0,
                    &mut Vec::new(),
                    &mut Vec::new(),
                );
                !counts.not_stored
            }
            Change::Completed {
                info_hash,
                completed,
            } => self.restore_torrent(info_hash, completed).is_some(),
        }
    }
}
