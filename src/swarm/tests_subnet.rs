//! Tests of `prefer_same_subnet`: the announcer's subnet first in small and
//! large swarms, seeders, numwant, peer ids, IPv6, and reloads that turn it
//! on, off or change the prefix.

use std::collections::HashSet;

use super::tests::check_invariants;
use super::*;

const NOW: u32 = 1000;

/// An IPv4 peer 10.`net`.`net2`.`host`:6881.
fn at(net: u8, net2: u8, host: u8) -> PeerAddr {
    PeerAddr::V4([10, net, net2, host, 0x1a, 0xe1])
}

fn ann(addr: PeerAddr, seeder: bool, num_want: i32) -> Announce {
    Announce {
        info_hash: InfoHash([1; 20]),
        addr,
        event: AnnounceEvent::Started,
        seeder,
        num_want,
    }
}

fn near_config(on: bool) -> SwarmConfig {
    SwarmConfig {
        prefer_same_subnet: on,
        max_numwant: 200,
        ..SwarmConfig::default()
    }
}

/// The reply to `addr`'s announce, as IPv4 addresses.
fn reply(s: &mut Swarms, addr: PeerAddr, seeder: bool, num_want: i32) -> Vec<[u8; 6]> {
    let mut out = Vec::new();
    let c = s.announce(&ann(addr, seeder, num_want), NOW, &mut out);
    let peers: Vec<[u8; 6]> = out.chunks(6).map(|c| c.try_into().unwrap()).collect();
    assert_eq!(peers.len(), c.peers as usize);
    let distinct: HashSet<_> = peers.iter().collect();
    assert_eq!(distinct.len(), peers.len(), "a peer twice in one reply");
    let PeerAddr::V4(me) = addr else { panic!() };
    assert!(!peers.contains(&me), "the announcer in its own reply");
    peers
}

/// How many of `peers` lead the list in 10.`net`.`net2`.0/24, and whether
/// none of that subnet comes after the first one outside it.
fn leading(peers: &[[u8; 6]], net: u8, net2: u8) -> (usize, bool) {
    let inside = |p: &[u8; 6]| p[1] == net && p[2] == net2;
    let lead = peers.iter().take_while(|p| inside(p)).count();
    (lead, peers[lead..].iter().all(|p| !inside(p)))
}

/// `per_net` peers in each of 10.0.`0..nets`.0/24, every fourth a leecher.
fn swarm(on: bool, nets: u8, per_net: u8) -> Swarms {
    let mut s = Swarms::new(near_config(on));
    for n in 0..nets {
        for h in 0..per_net {
            s.announce(&ann(at(0, n, h), h % 4 != 0, 0), NOW, &mut Vec::new());
        }
    }
    s
}

#[test]
fn a_small_swarm_sends_the_subnet_first() {
    let mut s = Swarms::new(near_config(true));
    for h in 1..=3 {
        s.announce(&ann(at(1, 1, h), false, 0), NOW, &mut Vec::new());
    }
    for h in 1..=10 {
        s.announce(&ann(at(2, 2, h), false, 0), NOW, &mut Vec::new());
    }
    assert!(s.torrents[0].1.v4.index.is_none(), "a small swarm");
    for _ in 0..20 {
        let peers = reply(&mut s, at(1, 1, 50), false, 5);
        assert_eq!(peers.len(), 5);
        assert_eq!(leading(&peers, 1, 1), (3, true), "{peers:?}");
        let peers = reply(&mut s, at(1, 1, 50), false, 2);
        assert_eq!(leading(&peers, 1, 1), (2, true), "{peers:?}");
    }
    // The whole swarm, the announcer left out: its subnet, then the rest.
    let peers = reply(&mut s, at(1, 1, 1), false, 200);
    assert_eq!(peers.len(), 13);
    assert_eq!(leading(&peers, 1, 1), (3, true), "{peers:?}");
    check_invariants(&s);
}

#[test]
fn a_large_swarm_sends_the_subnet_first() {
    // 50 subnets of 100 peers: 5000, grouped.
    let mut s = swarm(true, 50, 100);
    assert!(s.torrents[0].1.v4.index.is_some(), "a large swarm");
    check_invariants(&s);
    for net in [0, 17, 49] {
        // A member, a leecher: all 30 from its subnet.
        let peers = reply(&mut s, at(0, net, 4), false, 30);
        assert_eq!(leading(&peers, 0, net), (30, true), "{peers:?}");
        // All it may get: the 99 others of its subnet, then 101 more.
        let peers = reply(&mut s, at(0, net, 4), false, 200);
        assert_eq!(peers.len(), 200);
        assert_eq!(leading(&peers, 0, net), (99, true), "{peers:?}");
        // A newcomer of that subnet gets all 100.
        let peers = reply(&mut s, at(0, net, 200), false, 150);
        assert_eq!(leading(&peers, 0, net), (100, true), "{peers:?}");
    }
    // A subnet with no peers: the plain choice.
    let peers = reply(&mut s, at(9, 9, 9), false, 50);
    assert_eq!(peers.len(), 50);
    check_invariants(&s);
}

#[test]
fn subnet_peers_are_chosen_at_random_among_them() {
    let mut s = swarm(true, 50, 100);
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let peers = reply(&mut s, at(0, 7, 0), false, 10);
        assert_eq!(leading(&peers, 0, 7), (10, true));
        seen.extend(peers);
    }
    // 99 others in the subnet, ten at a time from a random start: each is
    // missed by 200 replies with chance (89/99)^200, about 1e-9.
    assert_eq!(seen.len(), 99);
}

#[test]
fn seeders_get_the_subnets_leechers_first_and_no_seeders() {
    for nets in [1, 50] {
        // Hosts 0, 4, 8, … of each subnet are its leechers: 25 of 100.
        let mut s = swarm(true, nets, 100);
        let net = nets - 1;
        let peers = reply(&mut s, at(0, net, 1), true, 200);
        let leechers_in_swarm = 25 * nets as usize;
        assert_eq!(peers.len(), leechers_in_swarm.min(200));
        assert!(
            peers.iter().all(|p| p[3] % 4 == 0),
            "a seeder sent a seeder"
        );
        assert_eq!(leading(&peers, 0, net), (25, true), "{peers:?}");
        // A seeder that completes a download of its own is re-filed.
        let peers = reply(&mut s, at(0, net, 4), true, 10);
        assert_eq!(leading(&peers, 0, net), (10, true));
        let peers = reply(&mut s, at(0, net, 1), true, 200);
        assert_eq!(leading(&peers, 0, net), (24, true), "one leecher fewer");
        check_invariants(&s);
    }
}

#[test]
fn numwant_and_its_cap_hold() {
    let mut s = Swarms::new(SwarmConfig {
        default_numwant: 7,
        max_numwant: 20,
        ..near_config(true)
    });
    for n in 0..4 {
        for h in 0..40 {
            s.announce(&ann(at(0, n, h), false, 0), NOW, &mut Vec::new());
        }
    }
    for (want, got) in [(-1, 7), (0, 7), (5, 5), (39, 20), (1000, 20)] {
        let peers = reply(&mut s, at(0, 2, 100), false, want);
        assert_eq!(peers.len(), got, "numwant {want}");
        assert_eq!(leading(&peers, 0, 2), (got, true));
    }
}

#[test]
fn off_sends_no_preference_and_keeps_no_groups() {
    let mut s = swarm(false, 50, 100);
    assert!(s.torrents[0].1.v4.index.as_ref().unwrap().subnets.is_none());
    // 99 of 5000 peers are in the announcer's subnet: of 30 peers sent,
    // about 0.6 on average, never 30 in a row of 50 replies.
    let from_subnet: usize = (0..50)
        .map(|_| leading(&reply(&mut s, at(0, 3, 4), false, 30), 0, 3).0)
        .sum();
    assert!(from_subnet < 200, "{from_subnet}");
}

#[test]
fn a_reload_turns_it_on_and_off_and_changes_the_prefix() {
    let mut s = swarm(false, 50, 100);
    let groups = |s: &Swarms| {
        let large = s.torrents[0].1.v4.index.as_ref().unwrap();
        large.subnets.as_ref().map(|g| g.prefix())
    };
    s.set_config(near_config(true));
    let peers = reply(&mut s, at(0, 3, 4), false, 30);
    assert_eq!(leading(&peers, 0, 3), (30, true));
    assert_eq!(groups(&s), Some(24));
    check_invariants(&s);

    // A /16 holds every peer: a /24 comes first no more.
    s.set_config(SwarmConfig {
        subnet_prefix_v4: 16,
        ..near_config(true)
    });
    let firsts: usize = (0..20)
        .map(|_| leading(&reply(&mut s, at(0, 3, 4), false, 30), 0, 3).0)
        .sum();
    assert!(firsts < 200, "{firsts}");
    assert_eq!(groups(&s), Some(16));
    check_invariants(&s);

    s.set_config(near_config(false));
    reply(&mut s, at(0, 3, 4), false, 30);
    assert_eq!(groups(&s), None, "dropped when off");
}

#[test]
fn groups_follow_joins_stops_flips_and_cleaning() {
    let mut s = Swarms::new(SwarmConfig {
        peer_timeout: 100,
        ..near_config(true)
    });
    let mut rng = fastrand::Rng::with_seed(3);
    for step in 0..5000u32 {
        let a = at(0, rng.u8(..4), rng.u8(..40));
        let mut req = ann(a, rng.bool(), rng.i32(-1..50));
        req.event = match rng.u8(..8) {
            0 => AnnounceEvent::Stopped,
            1 => AnnounceEvent::Completed,
            _ => AnnounceEvent::None,
        };
        let now = NOW + step / 20;
        s.announce(&req, now, &mut Vec::new());
        if step % 500 == 0 {
            while !s.clean_step(now, 50).1 {}
        }
        if step % 97 == 0 {
            check_invariants(&s);
        }
    }
    check_invariants(&s);
}

#[test]
fn peer_ids_follow_their_addresses() {
    let mut s = Swarms::with_peer_ids(near_config(true));
    let id_of = |a: &[u8]| crate::protocol::PeerId([a[2] ^ a[3]; 20]);
    for n in 0..3 {
        for h in 0..30 {
            let PeerAddr::V4(a) = at(0, n, h) else {
                unreachable!()
            };
            let (mut out, mut ids) = (Vec::new(), Vec::new());
            s.announce_with_id(
                &ann(at(0, n, h), false, 0),
                &id_of(&a),
                NOW,
                &mut out,
                &mut ids,
            );
        }
    }
    let (mut out, mut ids) = (Vec::new(), Vec::new());
    let c = s.announce_with_id(
        &ann(at(0, 1, 100), false, 50),
        &id_of(&[0; 6]),
        NOW,
        &mut out,
        &mut ids,
    );
    assert_eq!(c.peers, 50);
    assert_eq!(ids.len(), 50 * 20);
    for (a, id) in out.chunks(6).zip(ids.chunks(20)) {
        assert_eq!(id, id_of(a).0, "{a:?}");
    }
    assert!(out.chunks(6).take(30).all(|a| a[2] == 1));
}

#[test]
fn ipv6_peers_prefer_their_64() {
    let v6 = |net: u8, host: u8| {
        let mut b = [0u8; 18];
        b[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b[7] = net;
        b[15] = host;
        b[16..].copy_from_slice(&6881u16.to_be_bytes());
        PeerAddr::V6(b)
    };
    let mut s = Swarms::new(SwarmConfig {
        max_peers_per_address: 0,
        ..near_config(true)
    });
    for net in 0..20 {
        for host in 0..10 {
            s.announce(&ann(v6(net, host), false, 0), NOW, &mut Vec::new());
        }
    }
    let mut out = Vec::new();
    s.announce(&ann(v6(5, 99), false, 30), NOW, &mut out);
    let nets: Vec<u8> = out.chunks(18).map(|p| p[7]).collect();
    assert_eq!(nets.len(), 30);
    assert!(nets[..10].iter().all(|&n| n == 5), "{nets:?}");
    assert!(nets[10..].iter().all(|&n| n != 5), "{nets:?}");
    check_invariants(&s);
}

#[test]
fn nets_of_edge_prefixes() {
    use super::peer_set::Addr;
    let a: [u8; 6] = [192, 168, 7, 200, 0x1a, 0xe1];
    assert_eq!(a.net(24), 0xc0a8_0700);
    assert_eq!(a.net(32), 0xc0a8_07c8);
    assert_eq!(a.net(0), 0, "/0: one net");
    assert_eq!(a.net(40), a.net(32), "past the width: the address");
    let mut b = [0u8; 18];
    b[..16].copy_from_slice(&[0xff; 16]);
    assert_eq!(b.net(64), u128::MAX << 64);
    assert_eq!(b.net(128), u128::MAX);
    assert_eq!(b.net(0), 0);
}
