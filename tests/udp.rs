//! End-to-end tests of the UDP tracker over real sockets on 127.0.0.1 and ::1.

mod util;

use std::net::SocketAddr;

use swarmd::config::Dispatch;
use swarmd::protocol::udp::{
    AnnounceRequest, ConnectRequest, ConnectionId, Request, Response, ScrapeRequest, ScrapeStats,
    TransactionId,
};
use swarmd::protocol::{AnnounceEvent, InfoHash};
use util::{hash, tracker, tracker_with, Client};

fn me(c: &Client) -> SocketAddr {
    c.socket.local_addr().unwrap()
}

#[test]
fn two_peers_find_each_other_v4_and_v6() {
    let t = tracker();
    for &addr in t.udp_addrs() {
        // Counts span both families: one torrent per family here.
        let h = hash(1 + addr.is_ipv6() as u8);
        let mut a = Client::new(addr);
        let mut b = Client::new(addr);
        let (l, s, peers) = a.announce(h, AnnounceEvent::Started, 100);
        assert_eq!((l, s), (1, 0));
        assert!(peers.is_empty(), "never sent itself");
        let (l, s, peers) = b.announce(h, AnnounceEvent::Started, 0);
        assert_eq!((l, s), (1, 1));
        assert_eq!(peers, vec![me(&a)]);
        let (_, _, peers) = a.announce(h, AnnounceEvent::None, 100);
        assert_eq!(peers, vec![me(&b)]);
    }
    t.stop().unwrap();
}

#[test]
fn stopped_removes_the_peer() {
    let t = tracker();
    let addr = t.udp_addrs()[0];
    let mut a = Client::new(addr);
    let mut b = Client::new(addr);
    a.announce(hash(2), AnnounceEvent::Started, 10);
    b.announce(hash(2), AnnounceEvent::Started, 10);
    let (l, s, peers) = a.announce(hash(2), AnnounceEvent::Stopped, 10);
    assert_eq!((l, s), (1, 0));
    assert!(peers.is_empty());
    let (_, _, peers) = b.announce(hash(2), AnnounceEvent::None, 10);
    assert!(peers.is_empty(), "a stopped peer is not handed out");
    t.stop().unwrap();
}

#[test]
fn scrape_counts_across_swarm_workers() {
    scrape_counts_across_swarm_workers_with(Dispatch::Inline);
}

#[test]
fn scrape_counts_across_swarm_workers_over_channels() {
    scrape_counts_across_swarm_workers_with(Dispatch::Channel);
}

fn scrape_counts_across_swarm_workers_with(dispatch: Dispatch) {
    let t = tracker_with(|c| {
        c.workers.swarm_workers = 3.try_into().unwrap();
        c.workers.dispatch = dispatch;
    });
    let addr = t.udp_addrs()[0];
    // Hashes whose first byte differs land on different swarm workers.
    let hashes: Vec<InfoHash> = (0..9).map(hash).collect();
    // Every client is kept open to the end: a port freed by one could be
    // given to the next, which would then be the same peer (CI saw a seeder
    // of torrent 6 become a leecher that way).
    let mut clients = Vec::new();
    for (i, h) in hashes.iter().enumerate() {
        for p in 0..i {
            let mut c = Client::new(addr);
            let left = if p % 2 == 0 { 0 } else { 5 };
            c.announce(*h, AnnounceEvent::Started, left);
            clients.push(c);
        }
    }
    let mut c = Client::new(addr);
    c.announce(hashes[3], AnnounceEvent::Completed, 0);
    let mut query = hashes.clone();
    query.push(hash(200)); // unknown: zeros
    let stats = c.scrape(&query);
    assert_eq!(stats.len(), 10);
    for (i, s) in stats.iter().enumerate().take(9) {
        let extra = (i == 3) as u32;
        let seeders = i.div_ceil(2) as u32 + extra;
        assert_eq!(
            *s,
            ScrapeStats {
                seeders,
                completed: extra,
                leechers: (i / 2) as u32
            },
            "torrent {i}"
        );
    }
    assert_eq!(stats[9], ScrapeStats::default());
    t.stop().unwrap();
}

#[test]
fn bad_connection_id_gets_no_reply() {
    let t = tracker();
    for &addr in t.udp_addrs() {
        let h = hash(30 + addr.is_ipv6() as u8);
        let mut c = Client::new(addr);
        let mut bad = c.announce_request(h, AnnounceEvent::Started, 1);
        bad.connection_id = ConnectionId(c.connection_id.0 ^ 0x100);
        c.send(&Request::Announce(bad));
        let tid = c.tid();
        c.send(&Request::Scrape(ScrapeRequest {
            connection_id: ConnectionId(12345),
            transaction_id: tid,
            info_hashes: vec![h],
        }));
        // A short announce with a bad id would earn an error if the id were
        // good; with a bad id, silence.
        let mut short = vec![0u8; 20];
        short[8..12].copy_from_slice(&1u32.to_be_bytes());
        c.send_raw(&short);
        // The next reply is the one to this good request: nothing came for
        // the bad ones before it.
        let (l, _, _) = c.announce(h, AnnounceEvent::Started, 1);
        assert_eq!(l, 1, "the bad announce was not stored either");
    }
    let (dropped_v4, dropped_v6) = t.stats().udp_total(|f| &f.errors_connection_id);
    assert_eq!((dropped_v4, dropped_v6), (3, 3));
    t.stop().unwrap();
}

#[test]
fn errors_are_answered_but_never_larger_than_the_request() {
    let t = tracker();
    let addr = t.udp_addrs()[0];
    let mut c = Client::new(addr);
    // Port 0 is refused.
    let mut req = c.announce_request(hash(4), AnnounceEvent::Started, 1);
    req.port = 0;
    let tid = req.transaction_id;
    c.send(&Request::Announce(req));
    match c.recv() {
        Response::Error {
            transaction_id,
            message,
        } => {
            assert_eq!(transaction_id, tid);
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // Short announces, bad events, empty scrapes: each answered with an
    // error no longer than what was sent.
    let mut good = Vec::new();
    let req = c.announce_request(hash(4), AnnounceEvent::Started, 1);
    Request::Announce(req).write(&mut good);
    let mut bad_event = good.clone();
    bad_event[80..84].copy_from_slice(&9u32.to_be_bytes());
    let mut empty_scrape = good[..16].to_vec();
    empty_scrape[8..12].copy_from_slice(&2u32.to_be_bytes());
    for bad in [
        good[..16].to_vec(),
        good[..40].to_vec(),
        bad_event,
        empty_scrape,
    ] {
        c.send_raw(&bad);
        let reply = c.recv_raw();
        assert!(reply.len() <= bad.len(), "{} > {}", reply.len(), bad.len());
        assert!(matches!(
            Response::parse(&reply),
            Some(Response::Error { .. })
        ));
    }
    t.stop().unwrap();
}

#[test]
fn too_many_scrape_hashes_is_an_error() {
    let t = tracker_with(|c| c.udp.max_scrape_torrents = swarmd::config::Positive(3));
    let mut c = Client::new(t.udp_addrs()[0]);
    let tid = c.tid();
    c.send(&Request::Scrape(ScrapeRequest {
        connection_id: c.connection_id,
        transaction_id: tid,
        info_hashes: vec![hash(1); 4],
    }));
    assert!(matches!(c.recv(), Response::Error { .. }));
    assert_eq!(c.scrape(&[hash(1); 3]).len(), 3);
    t.stop().unwrap();
}

#[test]
fn families_are_kept_apart() {
    let t = tracker();
    let (v4, v6) = (t.udp_addrs()[0], t.udp_addrs()[1]);
    let mut a4 = Client::new(v4);
    let mut a6 = Client::new(v6);
    let mut b4 = Client::new(v4);
    let mut b6 = Client::new(v6);
    a4.announce(hash(5), AnnounceEvent::Started, 1);
    a6.announce(hash(5), AnnounceEvent::Started, 1);
    let (l, _, peers) = b6.announce(hash(5), AnnounceEvent::Started, 1);
    assert_eq!(l, 3, "counts span both families");
    assert_eq!(peers, vec![me(&a6)]);
    let (_, _, peers) = b4.announce(hash(5), AnnounceEvent::Started, 1);
    assert_eq!(peers, vec![me(&a4)]);
    t.stop().unwrap();
}

#[test]
fn the_ip_field_is_ignored_and_the_port_is_the_announced_one() {
    let t = tracker();
    let addr = t.udp_addrs()[0];
    let mut a = Client::new(addr);
    let mut req = a.announce_request(hash(6), AnnounceEvent::Started, 1);
    req.ip_address = u32::from(std::net::Ipv4Addr::new(10, 1, 2, 3));
    req.port = 51413;
    a.announce_with(req);
    let mut b = Client::new(addr);
    let (_, _, peers) = b.announce(hash(6), AnnounceEvent::Started, 1);
    assert_eq!(
        peers,
        vec!["127.0.0.1:51413".parse::<SocketAddr>().unwrap()]
    );
    t.stop().unwrap();
}

#[test]
fn v2_truncated_hash_and_bep41_options_work() {
    let t = tracker();
    let addr = t.udp_addrs()[0];
    // A BEP 52 torrent announces the first 20 bytes of its SHA-256 hash:
    // to the tracker it is an ordinary info hash.
    let v2 = InfoHash(*b"\x12\x20sha256-truncated!!");
    let mut a = Client::new(addr);
    let mut req: AnnounceRequest = a.announce_request(v2, AnnounceEvent::Started, 0);
    req.url_data = b"/announce?passkey=abc".to_vec();
    a.announce_with(req);
    let mut b = Client::new(addr);
    let (_, s, peers) = b.announce(v2, AnnounceEvent::Started, 1);
    assert_eq!(s, 1);
    assert_eq!(peers, vec![me(&a)]);
    t.stop().unwrap();
}

#[test]
fn garbage_does_not_stop_it_answering_good_clients() {
    let t = tracker();
    for &addr in t.udp_addrs() {
        let mut good = Client::new(addr);
        let garbage = Client::new(addr);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in 0..3000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = (rng % 1600) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|j| (rng >> (j % 56)) as u8).collect();
            if i % 3 == 0 && bytes.len() >= 16 {
                // Plausible actions with a garbage connection id.
                bytes[8..12].copy_from_slice(&((i % 4) as u32).to_be_bytes());
            }
            garbage.send_raw(&bytes);
        }
        let h = hash(90 + addr.is_ipv6() as u8);
        let (l, _, _) = good.announce(h, AnnounceEvent::Started, 1);
        assert_eq!(l, 1);
        assert_eq!(good.scrape(&[h])[0].leechers, 1);
    }
    t.stop().unwrap();
}

#[test]
fn a_taken_port_stops_start_up_naming_the_address() {
    let first = tracker_with(|c| c.udp.addresses = vec!["127.0.0.1:0".parse().unwrap()]);
    let taken = first.udp_addrs()[0];
    let mut config = swarmd::Config::default();
    config.udp.addresses = vec![taken];
    config.http.addresses = vec![];
    config.stats.address = String::new();
    match swarmd::start(&config) {
        Err(e) => assert!(e.to_string().contains(&taken.to_string()), "{e}"),
        Ok(_) => panic!("a second tracker bound a taken port"),
    }
    first.stop().unwrap();
}

/// A burst makes the socket worker take its sockets out of the poll (it
/// reads until they are dry instead); when the burst is over it must put
/// them back before it sleeps, or the next request would never be seen.
/// Both sockets (IPv4 and IPv6) are checked, each after a burst on the other.
#[test]
fn requests_after_a_burst_are_answered() {
    let t = tracker();
    for (burst, then) in [(0, 1), (1, 0)] {
        let addr = t.udp_addrs()[burst];
        let c = Client::new(addr);
        let n = 1000u32;
        let before = t.stats().udp_total(|f| &f.requests_connect);
        std::thread::scope(|s| {
            // Read the answers while they come, up to the last one (or
            // until none comes for the client's timeout: the kernel may
            // drop a few).
            s.spawn(|| {
                let mut raw = [0u8; 64];
                while let Ok((len, _)) = c.socket.recv_from(&mut raw) {
                    if let Some(Response::Connect { transaction_id, .. }) =
                        Response::parse(&raw[..len])
                    {
                        if transaction_id.0 == n - 1 {
                            break;
                        }
                    }
                }
            });
            let mut buf = Vec::new();
            for i in 0..n {
                buf.clear();
                Request::Connect(ConnectRequest {
                    transaction_id: TransactionId(i),
                })
                .write(&mut buf);
                c.send_raw(&buf);
            }
        });
        let after = t.stats().udp_total(|f| &f.requests_connect);
        let read = (after.0 + after.1) - (before.0 + before.1);
        assert!(
            read >= 500,
            "the tracker read only {read} of the {n} connects"
        );
        // Idle now: the next request, on either socket, is answered.
        for addr in [t.udp_addrs()[then], addr] {
            let mut after = Client::new(addr);
            // Promptly: a worker that sleeps with its sockets out of the
            // poll would still look at them at its once-a-second
            // housekeeping, so a generous bound below that tells the two
            // apart.
            after
                .socket
                .set_read_timeout(Some(std::time::Duration::from_millis(800)))
                .unwrap();
            assert!(after.announce(hash(77), AnnounceEvent::Started, 1).0 > 0);
        }
    }
    t.stop().unwrap();
}

#[test]
fn several_socket_workers_share_the_port() {
    let t = tracker_with(|c| c.workers.socket_workers = 3.try_into().unwrap());
    let addr = t.udp_addrs()[0];
    // Many client sockets: the kernel spreads them over the workers, and
    // each gets its answers from the socket it talked to.
    let mut clients: Vec<Client> = (0..24).map(|_| Client::new(addr)).collect();
    for c in clients.iter_mut() {
        c.announce(hash(11), AnnounceEvent::Started, 1);
    }
    assert_eq!(clients[0].scrape(&[hash(11)])[0].leechers, 24);
    t.stop().unwrap();
}

#[test]
fn counters_rise_with_traffic() {
    let t = tracker();
    let mut c = Client::new(t.udp_addrs()[0]);
    c.announce(hash(12), AnnounceEvent::Started, 1);
    c.scrape(&[hash(12)]);
    // Read after stop: every worker's writes are then visible.
    let s = t.stats().clone();
    t.stop().unwrap();
    assert_eq!(s.udp_total(|f| &f.requests_connect), (1, 0));
    assert_eq!(s.udp_total(|f| &f.responses_announce), (1, 0));
    assert_eq!(s.udp_total(|f| &f.responses_scrape), (1, 0));
    assert_eq!(s.swarm_total(|w| &w.announces), 1);
    assert!(s.udp_total(|f| &f.bytes_sent).0 >= 16 + 20 + 20);
}
