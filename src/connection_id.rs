//! Stateless BEP 15 connection ids.
//!
//! An id is a keyed hash (SipHash-1-3 with a 128-bit key drawn from the OS at
//! start-up, as std's `RandomState` gives) of the client's IP address and a
//! time slot of [`SLOT_SECS`] seconds. Its low byte carries the slot's low
//! byte, so checking costs one hash, not one per slot tried. Ids from the
//! current slot and the two before it are accepted: an id lives between two
//! and three minutes, above BEP 15's "at least two minutes" for a tracker.
//! Nothing is stored per client.
//!
//! In a cluster ([`ConnectionIds::shared`]) every node keys the hash with
//! the same secret, from a file, and counts slots on the wall clock, so an
//! id made by one node checks on any other: a client's connect and its
//! announce may reach different nodes behind a load balancer.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use crate::protocol::udp::ConnectionId;

/// Length of one time slot.
pub const SLOT_SECS: u64 = 60;
/// Slots accepted besides the current one.
const PAST_SLOTS: u64 = 2;

#[derive(Clone)]
pub struct ConnectionIds {
    key: Key,
    /// Added to the caller's clock (seconds since the tracker started)
    /// before it is cut into slots: 0 for a node alone, the Unix time of
    /// the start in a cluster, so that all nodes share slots.
    clock_offset: u64,
}

#[derive(Clone)]
enum Key {
    /// Drawn at start-up: ids die with the process.
    Random(std::collections::hash_map::RandomState),
    /// SipHash keys from a secret shared by the nodes of a cluster.
    Shared(u64, u64),
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
            key: Key::Random(std::collections::hash_map::RandomState::new()),
            clock_offset: 0,
        }
    }

    /// A source keyed by `secret` (at least 16 bytes; the contents of the
    /// cluster's `secret_file`), whose slots follow the wall clock: for a
    /// tracker that started at Unix time `started_at` (seconds).
    pub fn shared(secret: &[u8], started_at: u64) -> Result<ConnectionIds, String> {
        let secret = secret.trim_ascii();
        if secret.len() < 16 {
            return Err(format!(
                "the connection-id secret has {} bytes, fewer than 16",
                secret.len()
            ));
        }
        // Two keys drawn from the whole secret, whatever its length.
        let derive = |label: u8| {
            #[allow(deprecated)]
            let mut h = std::hash::SipHasher::new_with_keys(0x7377_6172_6d64, label as u64);
            h.write(secret);
            h.finish()
        };
        Ok(ConnectionIds {
            key: Key::Shared(derive(1), derive(2)),
            clock_offset: started_at,
        })
    }

    /// The slot for a time on the tracker's clock (seconds since it
    /// started): [`ConnectionIds::slot`] after the clock offset.
    #[inline]
    pub fn slot_at(&self, secs_since_start: u64) -> u64 {
        Self::slot(secs_since_start + self.clock_offset)
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
        match &self.key {
            Key::Random(key) => key.hash_one((ip, slot)),
            Key::Shared(k0, k1) => {
                // Bytes written one by one, not through `Hash` for IpAddr,
                // whose layout another Rust version may change: nodes
                // built apart must agree.
                #[allow(deprecated)]
                let mut h = std::hash::SipHasher::new_with_keys(*k0, *k1);
                match ip {
                    IpAddr::V4(a) => h.write(&a.octets()),
                    IpAddr::V6(a) => h.write(&a.octets()),
                }
                h.write(&slot.to_le_bytes());
                h.finish()
            }
        }
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
    fn shared_ids_check_on_another_node_that_started_later() {
        let secret = b"0123456789abcdef0123456789abcdef\n";
        let a = ConnectionIds::shared(secret, 1_000_000).unwrap();
        let b = ConnectionIds::shared(secret, 1_000_090).unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        // The same wall-clock moment on both: 100 s after A started.
        let id = a.make(ip, a.slot_at(100));
        assert!(b.check(id, ip, b.slot_at(10)));
        assert!(
            !ConnectionIds::shared(b"another secret, long enough", 1_000_000)
                .unwrap()
                .check(id, ip, a.slot_at(100))
        );
        assert!(ConnectionIds::shared(b"short", 0).is_err());
    }

    #[test]
    fn early_slots_do_not_underflow() {
        let ids = ConnectionIds::new();
        let ip: IpAddr = "::1".parse().unwrap();
        assert!(ids.check(ids.make(ip, 0), ip, 0));
        assert!(!ids.check(ConnectionId(0xfe), ip, 0));
    }
}
