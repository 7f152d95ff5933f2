//! The swarm's tests: announces, scrapes, peer selection and cleaning,
//! and the swarm against a simple model under any sequence of operations.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::protocol::udp::ScrapeStats;
use crate::protocol::PeerId;

const NOW: u32 = 1000;

fn v4(i: u32) -> PeerAddr {
    let mut b = [0u8; 6];
    b[..4].copy_from_slice(&(0x0a00_0000 + i).to_be_bytes());
    b[4..].copy_from_slice(&6881u16.to_be_bytes());
    PeerAddr::V4(b)
}

fn v6(i: u32) -> PeerAddr {
    let mut b = [0u8; 18];
    b[0] = 0x20;
    b[12..16].copy_from_slice(&i.to_be_bytes());
    b[16..].copy_from_slice(&6881u16.to_be_bytes());
    PeerAddr::V6(b)
}

fn ann(hash: u8, addr: PeerAddr, event: AnnounceEvent, seeder: bool) -> Announce {
    Announce {
        info_hash: InfoHash([hash; 20]),
        addr,
        event,
        seeder,
        num_want: -1,
    }
}

fn peers_of(out: &[u8], len: usize) -> Vec<Vec<u8>> {
    assert_eq!(out.len() % len, 0);
    out.chunks(len).map(|c| c.to_vec()).collect()
}

fn bytes(a: PeerAddr) -> Vec<u8> {
    match a {
        PeerAddr::V4(b) => b.to_vec(),
        PeerAddr::V6(b) => b.to_vec(),
    }
}

/// Checks the structure of every peer set: partition, counts, index.
pub(super) fn check_invariants<X: PeerData>(s: &Swarms<X>) {
    for (pos, (hash, t)) in s.torrents.iter().enumerate() {
        assert_eq!(s.find(hash), Some(pos), "torrent index");
        check_set(&t.v4, &s.hasher);
        if let Some(v6) = &t.v6 {
            check_set(v6, &s.hasher);
        }
    }
    assert_eq!(s.index.len(), s.torrents.len());
    assert_eq!(s.gauges(), s.totals(), "running gauges match a full count");
}

fn check_set<A: Addr + std::fmt::Debug, X: PeerData>(
    set: &PeerSet<A, X>,
    hasher: &ahash::RandomState,
) {
    assert!(set.leechers as usize <= set.peers.len());
    let mut seen = std::collections::HashSet::new();
    for (i, p) in set.peers.iter().enumerate() {
        assert!(seen.insert(p.addr), "peer twice: {:?}", p.addr);
        assert_eq!(set.find(&p.addr, hasher), Some(i), "index of {i}");
    }
    if let Some(index) = &set.index {
        assert_eq!(index.len(), set.peers.len());
        assert_eq!(index.hosts.total(), set.peers.len(), "peers per host");
        for p in &set.peers {
            let host = p.addr.host();
            let n = set.peers.iter().filter(|q| q.addr.host() == host).count();
            assert_eq!(index.hosts.get(&host, hasher), n, "peers of {host:?}");
        }
        if let Some(subnets) = &index.subnets {
            let mut grouped = subnets.members();
            let leechers = set.leechers as usize;
            let peers = set.peers.iter().enumerate();
            let mut want: Vec<_> = peers.map(|(i, p)| (p.addr, i >= leechers)).collect();
            grouped.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
            want.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
            assert_eq!(grouped, want, "peers by subnet");
        }
    }
}

#[test]
fn two_peers_find_each_other() {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    let c = s.announce(&ann(1, v4(1), AnnounceEvent::Started, false), NOW, &mut out);
    assert_eq!((c.seeders, c.leechers, c.peers), (0, 1, 0));
    assert!(out.is_empty(), "a peer is never sent itself");
    let c = s.announce(&ann(1, v4(2), AnnounceEvent::Started, true), NOW, &mut out);
    assert_eq!((c.seeders, c.leechers, c.peers), (1, 1, 1));
    assert_eq!(out, bytes(v4(1)));
    out.clear();
    let c = s.announce(&ann(1, v4(1), AnnounceEvent::None, false), NOW, &mut out);
    assert_eq!(c.peers, 1);
    assert_eq!(out, bytes(v4(2)));
    check_invariants(&s);
}

#[test]
fn seeders_are_not_sent_seeders() {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    for i in 0..5 {
        s.announce(&ann(1, v4(i), AnnounceEvent::Started, true), NOW, &mut out);
    }
    s.announce(
        &ann(1, v4(100), AnnounceEvent::Started, false),
        NOW,
        &mut out,
    );
    out.clear();
    let c = s.announce(&ann(1, v4(0), AnnounceEvent::None, true), NOW, &mut out);
    assert_eq!((c.seeders, c.leechers), (5, 1));
    assert_eq!(peers_of(&out, 6), vec![bytes(v4(100))]);
    check_invariants(&s);
}

#[test]
fn stopped_removes_and_empty_torrent_goes() {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    s.announce(&ann(1, v4(1), AnnounceEvent::Started, false), NOW, &mut out);
    s.announce(&ann(1, v4(2), AnnounceEvent::Started, false), NOW, &mut out);
    let c = s.announce(&ann(1, v4(1), AnnounceEvent::Stopped, false), NOW, &mut out);
    assert_eq!((c.seeders, c.leechers, c.peers), (0, 1, 0));
    s.announce(&ann(1, v4(2), AnnounceEvent::Stopped, false), NOW, &mut out);
    assert_eq!(s.torrent_count(), 0);
    // A stop for an unknown torrent creates nothing.
    s.announce(&ann(2, v4(2), AnnounceEvent::Stopped, false), NOW, &mut out);
    assert_eq!(s.torrent_count(), 0);
    assert_eq!(s.scrape(&InfoHash([1; 20])), ScrapeStats::default());
}

#[test]
fn completed_counts_once_and_makes_a_seeder() {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    s.announce(&ann(1, v4(1), AnnounceEvent::Started, false), NOW, &mut out);
    s.announce(
        &ann(1, v4(1), AnnounceEvent::Completed, true),
        NOW,
        &mut out,
    );
    // A repeated completed from a peer that is already a seeder is not a
    // second download.
    s.announce(
        &ann(1, v4(1), AnnounceEvent::Completed, true),
        NOW,
        &mut out,
    );
    assert_eq!(
        s.scrape(&InfoHash([1; 20])),
        ScrapeStats {
            seeders: 1,
            completed: 1,
            leechers: 0
        }
    );
    check_invariants(&s);
}

#[test]
fn peers_are_keyed_by_address() {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    // Same IP, other port: another peer.
    let mut a = [10, 0, 0, 1, 0x1a, 0xe1];
    s.announce(
        &ann(1, PeerAddr::V4(a), AnnounceEvent::Started, false),
        NOW,
        &mut out,
    );
    a[5] = 0xe2;
    let c = s.announce(
        &ann(1, PeerAddr::V4(a), AnnounceEvent::Started, false),
        NOW,
        &mut out,
    );
    assert_eq!(c.leechers, 2);
    // Same address again: the same peer, updated.
    let c = s.announce(
        &ann(1, PeerAddr::V4(a), AnnounceEvent::None, true),
        NOW,
        &mut out,
    );
    assert_eq!((c.seeders, c.leechers), (1, 1));
}

#[test]
fn families_are_kept_apart() {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    s.announce(&ann(1, v4(1), AnnounceEvent::Started, false), NOW, &mut out);
    s.announce(&ann(1, v6(1), AnnounceEvent::Started, false), NOW, &mut out);
    out.clear();
    let c = s.announce(&ann(1, v6(2), AnnounceEvent::Started, false), NOW, &mut out);
    assert_eq!(c.leechers, 3, "counts span both families");
    assert_eq!(peers_of(&out, 18), vec![bytes(v6(1))]);
    out.clear();
    s.announce(&ann(1, v4(2), AnnounceEvent::Started, false), NOW, &mut out);
    assert_eq!(peers_of(&out, 6), vec![bytes(v4(1))]);
    check_invariants(&s);
}

#[test]
fn numwant_default_and_cap() {
    let config = SwarmConfig {
        default_numwant: 10,
        max_numwant: 20,
        ..SwarmConfig::default()
    };
    let mut s = Swarms::new(config);
    let mut out = Vec::new();
    for i in 0..100 {
        s.announce(&ann(1, v4(i), AnnounceEvent::Started, false), NOW, &mut out);
    }
    for (want, got) in [(-1, 10), (0, 10), (5, 5), (1000, 20)] {
        out.clear();
        let mut a = ann(1, v4(1000), AnnounceEvent::Started, false);
        a.num_want = want;
        let c = s.announce(&a, NOW, &mut out);
        assert_eq!(c.peers as usize, got);
        assert_eq!(out.len(), got * 6);
        let distinct: std::collections::HashSet<_> = out.chunks(6).collect();
        assert_eq!(distinct.len(), got, "no peer twice in one reply");
        assert!(!distinct.contains(&bytes(v4(1000))[..]));
    }
    check_invariants(&s);
}

#[test]
fn selection_is_random_across_the_swarm() {
    let mut s = Swarms::new(SwarmConfig {
        default_numwant: 5,
        ..SwarmConfig::default()
    });
    let mut out = Vec::new();
    for i in 0..200 {
        s.announce(&ann(1, v4(i), AnnounceEvent::Started, false), NOW, &mut out);
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        out.clear();
        s.announce(&ann(1, v4(0), AnnounceEvent::None, false), NOW, &mut out);
        seen.extend(out.chunks(6).map(|c| c.to_vec()));
    }
    // 200 draws of 5 from 199: a fixed choice would show 5; random starts
    // reach most of the swarm.
    assert!(seen.len() > 150, "only {} distinct peers", seen.len());
}

#[test]
fn expired_peers_are_cleaned_a_slice_at_a_time() {
    let mut s = Swarms::new(SwarmConfig {
        peer_timeout: 100,
        ..SwarmConfig::default()
    });
    let mut out = Vec::new();
    for t in 0..50u8 {
        for i in 0..3 {
            s.announce(&ann(t, v4(i), AnnounceEvent::Started, false), NOW, &mut out);
        }
    }
    // Torrent 7 stays fresh.
    s.announce(
        &ann(7, v4(9), AnnounceEvent::Started, true),
        NOW + 150,
        &mut out,
    );
    let mut steps = 0;
    let mut removed = 0;
    loop {
        let (r, done) = s.clean_step(NOW + 101, 10);
        removed += r;
        steps += 1;
        check_invariants(&s);
        if done {
            break;
        }
    }
    assert!(steps > 5, "a step looks at a slice, not everything");
    assert_eq!(removed, 150);
    assert_eq!(s.torrent_count(), 1);
    assert_eq!(s.scrape(&InfoHash([7; 20])).seeders, 1);
    // Not yet expired at the boundary second.
    let (r, _) = s.clean_step(NOW + 250, usize::MAX);
    assert_eq!(r, 0);
}

#[test]
fn limits_answer_without_storing() {
    let mut s = Swarms::new(SwarmConfig {
        max_peers_per_torrent: 2,
        max_torrents: 2,
        ..SwarmConfig::default()
    });
    let mut out = Vec::new();
    s.announce(&ann(1, v4(1), AnnounceEvent::Started, false), NOW, &mut out);
    s.announce(&ann(1, v4(2), AnnounceEvent::Started, false), NOW, &mut out);
    let c = s.announce(&ann(1, v4(3), AnnounceEvent::Started, false), NOW, &mut out);
    assert!(c.not_stored);
    assert_eq!((c.leechers, c.peers), (2, 2));
    s.announce(&ann(2, v4(1), AnnounceEvent::Started, false), NOW, &mut out);
    let c = s.announce(&ann(3, v4(1), AnnounceEvent::Started, false), NOW, &mut out);
    assert!(c.not_stored);
    assert_eq!(s.torrent_count(), 2);
}

#[derive(Debug, Clone)]
enum Op {
    Announce {
        peer: u8,
        event: u8,
        seeder: bool,
        v6: bool,
    },
    Clean {
        advance: u8,
    },
    /// `prefer_same_subnet` on or off, as a reload does.
    Near(bool),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (any::<u8>(), 0u8..4, any::<bool>(), any::<bool>()).prop_map(
            |(peer, event, seeder, v6)| Op::Announce { peer: peer % 60, event, seeder, v6 }
        ),
        1 => any::<u8>().prop_map(|advance| Op::Clean { advance }),
        1 => any::<bool>().prop_map(Op::Near),
    ]
}

proptest! {
    /// A model of one torrent (a map from address to (seeder, expiry))
    /// against the real thing, through small and indexed sizes, with
    /// `prefer_same_subnet` turned on and off (subnets of 4 addresses).
    #[test]
    fn behaves_like_a_map(ops in proptest::collection::vec(arb_op(), 1..400)) {
        let mut config = SwarmConfig { peer_timeout: 60, max_numwant: 1000, default_numwant: 1000, subnet_prefix_v4: 30, subnet_prefix_v6: 126, ..SwarmConfig::default() };
        let mut s = Swarms::new(config.clone());
        let mut model: HashMap<PeerAddr, (bool, u32)> = HashMap::new();
        let mut now = NOW;
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Announce { peer, event, seeder, v6: is_v6 } => {
                    let addr = if is_v6 { v6(peer as u32) } else { v4(peer as u32) };
                    let event = AnnounceEvent::from_udp(event as u32).unwrap();
                    out.clear();
                    let c = s.announce(&ann(1, addr, event, seeder), now, &mut out);
                    if event == AnnounceEvent::Stopped {
                        model.remove(&addr);
                    } else {
                        model.insert(addr, (seeder, now + 60));
                    }
                    let seeders = model.values().filter(|v| v.0).count() as u32;
                    prop_assert_eq!(c.seeders, seeders);
                    prop_assert_eq!(c.leechers, model.len() as u32 - seeders);
                    if event != AnnounceEvent::Stopped {
                        let len = if is_v6 { 18 } else { 6 };
                        let expect: usize = model.iter().filter(|(a, v)| {
                            **a != addr && std::mem::discriminant(*a) == std::mem::discriminant(&addr) && !(seeder && v.0)
                        }).count();
                        prop_assert_eq!(out.len(), expect * len);
                        prop_assert!(!out.chunks(len).any(|c| c == &bytes(addr)[..]));
                        if config.prefer_same_subnet {
                            // Everything was asked for: the subnet's peers
                            // first, then the others.
                            let net = |p: &[u8]| {
                                let mut ip = p[..len - 2].to_vec();
                                ip[len - 3] &= 0xfc;
                                ip
                            };
                            let mine = net(&bytes(addr));
                            let near: Vec<bool> = out.chunks(len).map(|p| net(p) == mine).collect();
                            prop_assert!(near.windows(2).all(|w| w[0] || !w[1]), "{:?}", near);
                        }
                    }
                }
                Op::Near(on) => {
                    config.prefer_same_subnet = on;
                    s.set_config(config.clone());
                }
                Op::Clean { advance } => {
                    now += advance as u32;
                    loop {
                        if s.clean_step(now, 7).1 { break; }
                    }
                    model.retain(|_, v| v.1 >= now);
                }
            }
            check_invariants(&s);
            let t = s.totals();
            prop_assert_eq!((t.peers_v4 + t.peers_v6) as usize, model.len());
        }
    }
}

#[test]
fn a_cleaning_pass_finds_the_largest_torrents() {
    let mut s = Swarms::new(SwarmConfig::default());
    s.set_top_len(2);
    let mut out = Vec::new();
    for t in 1..=5u8 {
        for i in 0..t as u32 {
            s.announce(
                &ann(t, v4(i), AnnounceEvent::Started, i == 0),
                NOW,
                &mut out,
            );
        }
    }
    assert!(s.top().is_empty(), "known only after a pass");
    while !s.clean_step(NOW, 3).1 {}
    let top: Vec<(u8, u32, u32)> = s
        .top()
        .iter()
        .map(|(h, st)| (h.0[0], st.seeders, st.leechers))
        .collect();
    assert_eq!(top, vec![(5, 1, 4), (4, 1, 3)]);
}

/// Found by the `swarm_ops` fuzz target: `max_peers_per_torrent` was applied
/// to each address family alone, so a torrent held up to twice the limit
/// (IPv4 and IPv6 peers each up to it).
#[test]
fn max_peers_per_torrent_counts_both_families() {
    let mut s = Swarms::new(SwarmConfig {
        max_peers_per_torrent: 3,
        ..SwarmConfig::default()
    });
    let mut out = Vec::new();
    for i in 0..2 {
        s.announce(&ann(1, v4(i), AnnounceEvent::Started, false), NOW, &mut out);
    }
    let c = s.announce(&ann(1, v6(1), AnnounceEvent::Started, false), NOW, &mut out);
    assert!(!c.not_stored);
    let c = s.announce(&ann(1, v6(2), AnnounceEvent::Started, false), NOW, &mut out);
    assert!(c.not_stored, "a fourth peer, of the other family");
    let c = s.announce(&ann(1, v4(3), AnnounceEvent::Started, true), NOW, &mut out);
    assert!(c.not_stored);
    assert_eq!((c.seeders, c.leechers), (0, 3));
    // A stored peer that re-announces is still served and kept.
    let c = s.announce(&ann(1, v6(1), AnnounceEvent::None, true), NOW, &mut out);
    assert!(!c.not_stored);
    assert_eq!((c.seeders, c.leechers), (1, 2));
    check_invariants(&s);
}

#[test]
fn peer_ids_are_kept_when_asked_for() {
    let mut s = Swarms::with_peer_ids(SwarmConfig::default());
    let (mut out, mut ids) = (Vec::new(), Vec::new());
    for i in 0..30u8 {
        s.announce_with_id(
            &ann(1, v4(i as u32), AnnounceEvent::Started, false),
            &PeerId([i; 20]),
            NOW,
            &mut out,
            &mut ids,
        );
    }
    // A client restarts with a new id on the same address.
    s.announce_with_id(
        &ann(1, v4(3), AnnounceEvent::None, false),
        &PeerId([200; 20]),
        NOW,
        &mut out,
        &mut ids,
    );
    out.clear();
    ids.clear();
    let c = s.announce_with_id(
        &ann(1, v4(100), AnnounceEvent::Started, false),
        &PeerId([100; 20]),
        NOW,
        &mut out,
        &mut ids,
    );
    assert_eq!(c.peers, 30);
    assert_eq!(ids.len(), 30 * 20);
    for (addr, id) in out.chunks(6).zip(ids.chunks(20)) {
        let i = addr[3];
        let want = if i == 3 { 200 } else { i };
        assert_eq!(id, &[want; 20][..], "the id goes with its address");
    }
    check_invariants(&s);
    // Without ids, nothing is appended.
    let mut lean = Swarms::new(SwarmConfig::default());
    ids.clear();
    lean.announce_with_id(
        &ann(1, v4(1), AnnounceEvent::Started, false),
        &PeerId([1; 20]),
        NOW,
        &mut out,
        &mut ids,
    );
    lean.announce_with_id(
        &ann(1, v4(2), AnnounceEvent::Started, false),
        &PeerId([2; 20]),
        NOW,
        &mut out,
        &mut ids,
    );
    assert!(ids.is_empty());
}

/// The `/events` feed's marks: none while off; a torrent once however
/// often it changes; a re-announce that changes nothing is no change; a
/// torrent whose last peer left (or expired) is reported with zeros.
#[test]
fn changed_torrents_are_noted_once_only_while_tracking() {
    let mut s = Swarms::new(SwarmConfig::default());
    let (mut out, mut hashes, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    s.announce(&ann(1, v4(1), AnnounceEvent::Started, true), NOW, &mut out);
    s.track_changes(true);
    s.take_changes(&mut hashes, &mut changed);
    assert!(changed.is_empty(), "nothing noted before tracking");
    for i in 2..6 {
        s.announce(&ann(1, v4(i), AnnounceEvent::Started, false), NOW, &mut out);
    }
    s.announce(&ann(1, v4(1), AnnounceEvent::None, true), NOW, &mut out);
    s.announce(&ann(2, v4(1), AnnounceEvent::Started, true), NOW, &mut out);
    s.take_changes(&mut hashes, &mut changed);
    changed.sort_unstable_by_key(|(h, _)| *h);
    let counts = |seeders, leechers| ScrapeStats {
        seeders,
        completed: 0,
        leechers,
    };
    assert_eq!(
        changed,
        vec![
            (InfoHash([1; 20]), counts(1, 4)),
            (InfoHash([2; 20]), counts(1, 0))
        ]
    );
    changed.clear();
    s.announce(&ann(1, v4(1), AnnounceEvent::None, true), NOW, &mut out);
    s.take_changes(&mut hashes, &mut changed);
    assert!(changed.is_empty(), "a re-announce changes nothing");

    s.announce(&ann(2, v4(1), AnnounceEvent::Stopped, true), NOW, &mut out);
    let late = NOW + SwarmConfig::default().peer_timeout + 1;
    while !s.clean_step(late, 1024).1 {}
    s.take_changes(&mut hashes, &mut changed);
    changed.sort_unstable_by_key(|(h, _)| *h);
    assert_eq!(
        changed,
        vec![
            (InfoHash([1; 20]), counts(0, 0)),
            (InfoHash([2; 20]), counts(0, 0))
        ],
        "gone by stop and by expiry"
    );

    s.track_changes(false);
    s.announce(&ann(3, v4(1), AnnounceEvent::Started, true), NOW, &mut out);
    s.track_changes(true);
    changed.clear();
    s.take_changes(&mut hashes, &mut changed);
    assert!(changed.is_empty(), "nothing noted while off");
}
