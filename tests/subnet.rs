//! `[swarm] prefer_same_subnet` over real sockets: peers on many loopback
//! addresses (127.0.0.0/8 is all this machine's, and holds many /24s), a
//! peer in 127.1.1.0/24 that gets its subnet's peers first, over UDP and
//! HTTP; with the option off the choice is as before; a reload turns it on.

mod util;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use swarmd::protocol::{AnnounceEvent, InfoHash};
use util::http::{announce_path, HttpClient};
use util::{decode_peers, tracker_with, Client};

const HASH: InfoHash = InfoHash([0x5b; 20]);

fn ip(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

fn udp_tracker(t: &swarmd::Tracker) -> SocketAddr {
    t.udp_addrs()
        .iter()
        .copied()
        .find(SocketAddr::is_ipv4)
        .unwrap()
}

fn http_tracker(t: &swarmd::Tracker) -> SocketAddr {
    t.http_addrs()
        .iter()
        .copied()
        .find(SocketAddr::is_ipv4)
        .unwrap()
}

fn in_subnet(p: &SocketAddr) -> bool {
    matches!(p.ip(), IpAddr::V4(v4) if v4.octets()[..3] == [127, 1, 1])
}

/// 44 leechers, one address each: 40 in 127.2.k.1 (20 /24s) and 127.3.k.1
/// (20 more), and 4 of 127.1.1.0/24 at positions 0, 11, 22 and 33 of the
/// swarm, so that a run of 10 from a random start (the choice with the
/// option off) never holds more than one of them. Returns the clients,
/// kept open so that each address stays one peer.
fn fill(tracker: SocketAddr) -> Vec<Client> {
    let mut clients = Vec::new();
    let mut others = (0..40u8).map(|k| ip(2 + k / 20, k % 20, 1));
    let mut mine = (2..6u8).map(|h| ip(1, 1, h));
    for pos in 0..44 {
        let at = if pos % 11 == 0 {
            mine.next()
        } else {
            others.next()
        };
        let mut c = Client::bound(tracker, SocketAddr::new(at.unwrap(), 0));
        c.announce(HASH, AnnounceEvent::Started, 1);
        clients.push(c);
    }
    clients
}

/// The reply to the peer at 127.1.1.10 asking for 10 peers.
fn near_reply(me: &mut Client) -> Vec<SocketAddr> {
    let mut req = me.announce_request(HASH, AnnounceEvent::None, 1);
    req.num_want = 10;
    let (leechers, _, peers) = me.announce_with(req);
    assert_eq!(leechers, 45);
    assert_eq!(peers.len(), 10);
    let me_at = me.socket.local_addr().unwrap();
    assert!(!peers.contains(&me_at), "the announcer in its own reply");
    let distinct: std::collections::HashSet<_> = peers.iter().collect();
    assert_eq!(distinct.len(), 10, "a peer twice: {peers:?}");
    peers
}

#[test]
fn a_peer_in_127_1_1_gets_its_subnets_peers_first() {
    let t = tracker_with(|c| c.swarm.prefer_same_subnet = true);
    let tracker = udp_tracker(&t);
    let _peers = fill(tracker);
    let mut me = Client::bound(tracker, SocketAddr::new(ip(1, 1, 10), 0));
    me.announce(HASH, AnnounceEvent::Started, 1);
    for _ in 0..20 {
        let peers = near_reply(&mut me);
        assert!(peers[..4].iter().all(in_subnet), "{peers:?}");
        assert!(!peers[4..].iter().any(in_subnet), "{peers:?}");
    }
    // Over HTTP, a newcomer of the subnet: its 5 peers first.
    let mut http = HttpClient::connect_from(http_tracker(&t), ip(1, 1, 20)).unwrap();
    let path = announce_path(HASH, &[9; 20], 7000, 1, "&compact=1&numwant=12");
    let peers = decode_peers(http.get(&path).bencode().bytes("peers"), false);
    assert_eq!(peers.len(), 12);
    assert!(peers[..5].iter().all(in_subnet), "{peers:?}");
    assert!(!peers[5..].iter().any(in_subnet), "{peers:?}");
    t.stop().unwrap();
}

#[test]
fn a_seeder_gets_its_subnets_leechers_first() {
    let t = tracker_with(|c| c.swarm.prefer_same_subnet = true);
    let tracker = udp_tracker(&t);
    let _peers = fill(tracker);
    // A second seeder of the subnet, which the first must not be sent.
    let mut other = Client::bound(tracker, SocketAddr::new(ip(1, 1, 11), 0));
    other.announce(HASH, AnnounceEvent::Started, 0);
    let mut me = Client::bound(tracker, SocketAddr::new(ip(1, 1, 10), 0));
    let (_, seeders, peers) = me.announce(HASH, AnnounceEvent::Started, 0);
    assert_eq!(seeders, 2);
    assert_eq!(
        peers.len(),
        44,
        "the default numwant, 50, holds all leechers"
    );
    assert!(peers[..4].iter().all(in_subnet), "{peers:?}");
    assert!(!peers[4..].iter().any(in_subnet), "{peers:?}");
    t.stop().unwrap();
}

#[test]
fn off_the_choice_is_as_before() {
    let t = tracker_with(|_| {});
    let tracker = udp_tracker(&t);
    let _peers = fill(tracker);
    let mut me = Client::bound(tracker, SocketAddr::new(ip(1, 1, 10), 0));
    me.announce(HASH, AnnounceEvent::Started, 1);
    for _ in 0..20 {
        // A run of 10 from a random start: at most one of the four.
        let peers = near_reply(&mut me);
        let n = peers.iter().filter(|p| in_subnet(p)).count();
        assert!(n <= 1, "{peers:?}");
    }
    t.stop().unwrap();
}

#[test]
fn a_reload_turns_it_on() {
    let mut config = swarmd::Config::default();
    config.udp.addresses = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.addresses = vec![];
    config.stats.address = String::new();
    let t = swarmd::start(&config).unwrap();
    let tracker = udp_tracker(&t);
    let _peers = fill(tracker);
    let mut me = Client::bound(tracker, SocketAddr::new(ip(1, 1, 10), 0));
    me.announce(HASH, AnnounceEvent::Started, 1);
    let first_four = |peers: &[SocketAddr]| peers[..4].iter().all(in_subnet);
    assert!(
        !first_four(&near_reply(&mut me)),
        "off: at most one of four"
    );

    config.swarm.prefer_same_subnet = true;
    assert_eq!(t.reload(&config), Vec::<&str>::new());
    // The shards take the new settings between batches: poll.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !first_four(&near_reply(&mut me)) {
        assert!(Instant::now() < deadline, "the reload did not apply");
    }
    for _ in 0..10 {
        assert!(first_four(&near_reply(&mut me)));
    }
    t.stop().unwrap();
}
