//! Tests that no one address takes a swarm: the per-address share, the
//! eviction that lets a newcomer into a full swarm, and the completed count
//! that replays can't inflate.

use proptest::prelude::*;

use super::tests::check_invariants;
use super::*;

const NOW: u32 = 1000;

/// An IPv4 peer: host 10.0.0.`host`, port `port`.
fn at(host: u8, port: u16) -> PeerAddr {
    let mut b = [10, 0, 0, host, 0, 0];
    b[4..].copy_from_slice(&port.to_be_bytes());
    PeerAddr::V4(b)
}

fn ann(addr: PeerAddr, event: AnnounceEvent) -> Announce {
    Announce {
        info_hash: InfoHash([1; 20]),
        addr,
        event,
        seeder: false,
        num_want: 200,
    }
}

fn config(per_address: usize, per_torrent: usize) -> SwarmConfig {
    SwarmConfig {
        max_peers_per_address: per_address,
        max_peers_per_torrent: per_torrent,
        max_numwant: 200,
        ..SwarmConfig::default()
    }
}

/// Whether a fresh peer's reply lists `addr`.
fn listed(s: &mut Swarms, addr: PeerAddr) -> bool {
    let mut out = Vec::new();
    s.announce(&ann(at(250, 1), AnnounceEvent::Started), NOW, &mut out);
    s.announce(
        &ann(at(250, 1), AnnounceEvent::Stopped),
        NOW,
        &mut Vec::new(),
    );
    let PeerAddr::V4(a) = addr else { panic!() };
    out.chunks(6).any(|c| c == a)
}

/// The figure: one address announced 20,000 ports and an honest
/// peer was in none of 20 replies. Now the address holds its share.
#[test]
fn one_address_gets_its_share_and_honest_peers_are_listed() {
    let mut s = Swarms::new(config(64, 0));
    let mut out = Vec::new();
    for port in 0..20_000 {
        out.clear();
        s.announce(&ann(at(1, port), AnnounceEvent::Started), NOW, &mut out);
    }
    let c = s.announce(&ann(at(2, 1), AnnounceEvent::Started), NOW, &mut out);
    assert!(!c.not_stored);
    assert_eq!(c.leechers, 65, "64 of the flooder and the honest peer");
    for _ in 0..20 {
        assert!(listed(&mut s, at(2, 1)));
    }
    // Its stored peers still re-announce as before.
    let c = s.announce(&ann(at(1, 3), AnnounceEvent::None), NOW, &mut out);
    assert!(!c.not_stored);
    check_invariants(&s);
}

#[test]
fn the_share_holds_in_small_swarms_and_frees_up() {
    let mut s = Swarms::new(config(2, 0));
    let mut out = Vec::new();
    assert!(
        !s.announce(&ann(at(1, 1), AnnounceEvent::Started), NOW, &mut out)
            .not_stored
    );
    assert!(
        !s.announce(&ann(at(1, 2), AnnounceEvent::Started), NOW, &mut out)
            .not_stored
    );
    let c = s.announce(&ann(at(1, 3), AnnounceEvent::Started), NOW, &mut out);
    assert!(c.not_stored);
    assert_eq!((c.leechers, c.peers), (2, 2), "answered all the same");
    s.announce(&ann(at(1, 1), AnnounceEvent::Stopped), NOW, &mut out);
    assert!(
        !s.announce(&ann(at(1, 3), AnnounceEvent::Started), NOW, &mut out)
            .not_stored
    );
}

/// The other figure: with max_peers_per_torrent = 100, one address
/// filled every place and an honest newcomer was never stored.
#[test]
fn a_full_swarm_evicts_from_the_address_with_the_most() {
    for limit in [10, 100] {
        let mut s = Swarms::new(config(0, limit));
        let mut out = Vec::new();
        for port in 0..limit as u16 {
            s.announce(&ann(at(1, port), AnnounceEvent::Started), NOW, &mut out);
        }
        let c = s.announce(&ann(at(2, 1), AnnounceEvent::Started), NOW, &mut out);
        assert!(!c.not_stored, "limit {limit}");
        assert_eq!(c.leechers as usize, limit);
        assert!(listed(&mut s, at(2, 1)));
        check_invariants(&s);
    }
}

#[test]
fn a_full_swarm_of_equal_shares_does_not_churn() {
    // 20: a set small enough to be counted exactly (no sampling).
    let mut s = Swarms::new(config(0, 20));
    let mut out = Vec::new();
    for host in 1..=20 {
        s.announce(&ann(at(host, 1), AnnounceEvent::Started), NOW, &mut out);
    }
    let c = s.announce(&ann(at(100, 1), AnnounceEvent::Started), NOW, &mut out);
    assert!(c.not_stored, "one each: nobody is evicted");
    // Host 2 with two peers against host 3 with one: a swap would only
    // trade places.
    s.announce(&ann(at(1, 1), AnnounceEvent::Stopped), NOW, &mut out);
    s.announce(&ann(at(2, 2), AnnounceEvent::Started), NOW, &mut out);
    assert!(
        s.announce(&ann(at(3, 2), AnnounceEvent::Started), NOW, &mut out)
            .not_stored
    );
    // Against a host with none, it evens the shares: one of host 2's goes.
    assert!(
        !s.announce(&ann(at(100, 1), AnnounceEvent::Started), NOW, &mut out)
            .not_stored
    );
    let t = &s.torrents[0].1.v4;
    assert_eq!(t.host_count(&[10, 0, 0, 2], &s.hasher), 1);
    check_invariants(&s);
}

#[test]
fn replayed_completions_count_once_per_address() {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    for port in 0..10 {
        for port in [port, port + 100] {
            s.announce(&ann(at(1, port), AnnounceEvent::Completed), NOW, &mut out);
            s.announce(&ann(at(1, port), AnnounceEvent::Stopped), NOW, &mut out);
        }
    }
    s.announce(&ann(at(9, 1), AnnounceEvent::None), NOW, &mut out);
    assert_eq!(s.scrape(&InfoHash([1; 20])).completed, 1);
    s.announce(&ann(at(2, 1), AnnounceEvent::Completed), NOW, &mut out);
    assert_eq!(s.scrape(&InfoHash([1; 20])).completed, 2, "another address");
    // A peer timeout later, the first address may count again.
    let later = NOW + SwarmConfig::default().peer_timeout * 2;
    s.announce(&ann(at(1, 1), AnnounceEvent::Completed), later, &mut out);
    assert_eq!(s.scrape(&InfoHash([1; 20])).completed, 3);
}

#[test]
fn udp_ipv6_announces_ask_for_one_packet_of_peers() {
    let cap = UDP_V6_MAX_PEERS as usize;
    assert!(20 + 18 * cap <= 1280 - 40 - 8 && 20 + 18 * (cap + 1) > 1232);
    let mut a = ann(PeerAddr::V6([0x20; 18]), AnnounceEvent::Started);
    assert_eq!(a.fit_udp_reply().num_want, 67);
    a.num_want = -1;
    assert_eq!(a.fit_udp_reply().num_want, -1, "the default is left alone");
    a.num_want = 30;
    assert_eq!(a.fit_udp_reply().num_want, 30);
    let v4 = ann(at(1, 1), AnnounceEvent::Started);
    assert_eq!(v4.fit_udp_reply().num_want, 200, "IPv4 is not capped");
}

/// The figure behind `DEFAULT_MAX_TORRENTS`: bytes of torrent table per
/// torrent, at a million torrents of one peer each.
#[test]
fn a_torrent_takes_about_100_bytes_of_table() {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    let n = 1_000_000u32;
    for i in 0..n {
        let mut a = ann(at(1, 1), AnnounceEvent::Started);
        a.info_hash.0[..4].copy_from_slice(&i.to_be_bytes());
        out.clear();
        s.announce(&a, NOW, &mut out);
    }
    assert_eq!(s.torrent_count(), n as usize);
    let per_torrent = s.table_bytes() as f64 / n as f64;
    eprintln!("{per_torrent:.1} bytes of table per torrent");
    assert!((95.0..=105.0).contains(&per_torrent), "{per_torrent}");
    let budget = crate::config::DEFAULT_MAX_TORRENTS as f64 * per_torrent;
    assert!(budget < 420e6, "the default's budget: {budget}");
}

proptest! {
    /// Few hosts, many ports, tight limits, through small and indexed
    /// sizes and cleaning: no host is ever over its share, no swarm over
    /// its limit, and the counts per host agree with the peers.
    #[test]
    fn limits_always_hold(
        ops in proptest::collection::vec((0u8..6, 0u16..40, 0u8..4, any::<bool>()), 1..600),
        per_address in 0usize..40,
        per_torrent in 0usize..60,
    ) {
        let mut s = Swarms::new(config(per_address, per_torrent));
        let mut now = NOW;
        let mut out = Vec::new();
        for (host, port, event, v6) in ops {
            if event == 3 && port < 4 {
                now += 30;
                while !s.clean_step(now, 16).1 {}
                continue;
            }
            let addr = if v6 {
                let mut b = [0u8; 18];
                b[0] = 0x20;
                b[7] = host;
                b[16..].copy_from_slice(&port.to_be_bytes());
                PeerAddr::V6(b)
            } else {
                at(host, port)
            };
            let event = AnnounceEvent::from_udp(event as u32).unwrap();
            out.clear();
            s.announce(&ann(addr, event), now, &mut out);
            check_invariants(&s);
            for (_, t) in &s.torrents {
                let total = t.v4.len() + t.v6.as_ref().map_or(0, |v| v.len());
                prop_assert!(per_torrent == 0 || total <= per_torrent);
                if per_address != 0 {
                    for p in &t.v4.peers {
                        prop_assert!(t.v4.host_count(&p.addr.host(), &s.hasher) <= per_address);
                    }
                    if let Some(v6) = &t.v6 {
                        for p in &v6.peers {
                            prop_assert!(v6.host_count(&p.addr.host(), &s.hasher) <= per_address);
                        }
                    }
                }
            }
        }
    }
}
