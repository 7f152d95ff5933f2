//! Stateless BEP 15 connection ids.
//!
//! An id is a keyed hash (SipHash-1-3 with a 128-bit key drawn from the OS at
//! start-up, as std's `RandomState` gives) of the client's IP address and a
//! time slot of [`SLOT_SECS`] seconds. Its low byte carries the slot's low
//! byte, so checking costs one hash, not one per slot tried. Ids from the
//! current slot and the two before it are accepted: an id lives between two
//! and three minutes, above BEP 15's "at least two minutes" for a tracker.
//! Nothing is stored per client.

use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::protocol::udp::ConnectionId;

/// Length of one time slot.
pub const SLOT_SECS: u64 = 60;
/// Slots accepted besides the current one.
const PAST_SLOTS: u64 = 2;

#[derive(Clone)]
pub struct ConnectionIds {
    key: std::collections::hash_map::RandomState,
}

impl Default for ConnectionIds {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionIds {
    /// A source with a fresh random key.
    pub fn new() -> ConnectionIds {
        ConnectionIds {
            key: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The slot for a time in seconds (any monotonic clock shared by
    /// everyone who makes and checks ids).
    #[inline]
    pub fn slot(secs: u64) -> u64 {
        secs / SLOT_SECS
    }

    #[inline]
    fn hash(&self, ip: IpAddr, slot: u64) -> u64 {
        // IPv4-mapped IPv6 addresses hash as the IPv4 address they are.
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.key.hash_one((ip, slot))
    }

    #[inline]
    pub fn make(&self, ip: IpAddr, slot: u64) -> ConnectionId {
        ConnectionId((self.hash(ip, slot) & !0xff) | (slot & 0xff))
    }

    #[inline]
    pub fn check(&self, id: ConnectionId, ip: IpAddr, now_slot: u64) -> bool {
        let low = id.0 & 0xff;
        // The slot whose low byte matches, among the accepted ones.
        let back = (now_slot.wrapping_sub(low)) & 0xff;
        if back > PAST_SLOTS || back > now_slot {
            return false;
        }
        self.make(ip, now_slot - back) == id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_for_two_to_three_minutes() {
        let ids = ConnectionIds::new();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let id = ids.make(ip, 1000);
        assert!(ids.check(id, ip, 1000));
        assert!(ids.check(id, ip, 1001));
        assert!(ids.check(id, ip, 1002));
        assert!(!ids.check(id, ip, 1003));
        assert!(!ids.check(id, ip, 999), "not valid before it was made");
        // Across the low byte wrapping.
        let id = ids.make(ip, 255);
        assert!(ids.check(id, ip, 257));
    }

    #[test]
    fn bound_to_the_address_and_the_key() {
        let ids = ConnectionIds::new();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let id = ids.make(a, 5);
        assert!(!ids.check(id, b, 5));
        assert!(
            !ConnectionIds::new().check(id, a, 5),
            "a restart changes the key"
        );
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(ids.check(id, mapped, 5));
    }

    #[test]
    fn early_slots_do_not_underflow() {
        let ids = ConnectionIds::new();
        let ip: IpAddr = "::1".parse().unwrap();
        assert!(ids.check(ids.make(ip, 0), ip, 0));
        assert!(!ids.check(ConnectionId(0xfe), ip, 0));
    }
}
