//! End-to-end tests of the HTTP tracker over real TCP on 127.0.0.1 and ::1.

mod util;

use std::net::SocketAddr;

use swarmd::config::Dispatch;
use swarmd::protocol::{AnnounceEvent, InfoHash};
use util::http::{announce_path, scrape_path, Bencode, HttpClient};
use util::{decode_peers, hash, tracker, tracker_with, Client};

#[test]
fn compact_announce_v4_and_peers6() {
    let t = tracker();
    for &addr in t.http_addrs() {
        let v6 = addr.is_ipv6();
        let h = hash(1 + v6 as u8);
        let mut a = HttpClient::connect(addr);
        let r = a.get(&announce_path(
            h,
            b"-AA0001-aaaaaaaaaaaa",
            7001,
            10,
            "&event=started",
        ));
        assert_eq!(r.status, 200);
        let b = r.bencode();
        assert_eq!((b.int("complete"), b.int("incomplete")), (0, 1));
        assert_eq!(b.int("interval"), 1800);
        assert_eq!(b.int("min interval"), 900);
        let mut c = HttpClient::connect(addr);
        let b = c
            .get(&announce_path(h, b"-BB0001-bbbbbbbbbbbb", 7002, 0, ""))
            .bencode();
        assert_eq!((b.int("complete"), b.int("incomplete")), (1, 1));
        let peers = if v6 {
            assert_eq!(b.bytes("peers"), b"", "peers present but empty for IPv6");
            decode_peers(b.bytes("peers6"), true)
        } else {
            assert!(b.get("peers6").is_none());
            decode_peers(b.bytes("peers"), false)
        };
        assert_eq!(peers, vec![SocketAddr::new(addr.ip(), 7001)]);
    }
    t.stop().unwrap();
}

/// Regression: with peer ids not kept (the default), `compact=0` got
/// dictionaries without `peer id`, which is neither BEP 3's model nor the
/// one a client asks for with `no_peer_id=1`. BEP 23 makes `compact`
/// advisory, so the answer is compact.
#[test]
fn compact_answer_to_compact_0_when_peer_ids_are_not_kept() {
    let t = tracker();
    for &addr in t.http_addrs() {
        let v6 = addr.is_ipv6();
        let h = hash(30 + v6 as u8);
        let mut a = HttpClient::connect(addr);
        a.get(&announce_path(h, b"-AA0001-aaaaaaaaaaaa", 7001, 10, ""));
        let b = a
            .get(&announce_path(
                h,
                b"-BB0001-bbbbbbbbbbbb",
                7002,
                10,
                "&compact=0",
            ))
            .bencode();
        let peers = if v6 {
            decode_peers(b.bytes("peers6"), true)
        } else {
            decode_peers(b.bytes("peers"), false)
        };
        assert_eq!(peers, vec![SocketAddr::new(addr.ip(), 7001)], "{b:?}");
    }
    t.stop().unwrap();
}

/// `compact=0&no_peer_id=1` asks for dictionaries without ids: that is
/// what it gets, whether ids are kept or not.
#[test]
fn dictionary_model_without_ids_on_no_peer_id() {
    let t = tracker();
    let addr = t.http_addrs()[0];
    let mut a = HttpClient::connect(addr);
    a.get(&announce_path(
        hash(3),
        b"-AA0001-aaaaaaaaaaaa",
        7001,
        10,
        "",
    ));
    let b = a
        .get(&announce_path(
            hash(3),
            b"-BB0001-bbbbbbbbbbbb",
            7002,
            10,
            "&compact=0&no_peer_id=1",
        ))
        .bencode();
    let Some(Bencode::List(peers)) = b.get("peers") else {
        panic!("peers is a list: {b:?}")
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].bytes("ip"), b"127.0.0.1");
    assert_eq!(peers[0].int("port"), 7001);
    assert!(peers[0].get("peer id").is_none());
    t.stop().unwrap();
}

#[test]
fn dictionary_model_with_peer_ids_when_kept() {
    let t = tracker_with(|c| c.swarm.peer_ids = true);
    let addr = t.http_addrs()[0];
    let mut a = HttpClient::connect(addr);
    a.get(&announce_path(
        hash(4),
        b"-AA0001-aaaaaaaaaaaa",
        7001,
        10,
        "",
    ));
    // A UDP peer's id is kept too.
    let mut u = Client::new(t.udp_addrs()[0]);
    u.announce(hash(4), AnnounceEvent::Started, 0);
    let path = announce_path(hash(4), b"-BB0001-bbbbbbbbbbbb", 7002, 10, "&compact=0");
    let b = a.get(&path).bencode();
    let Some(Bencode::List(peers)) = b.get("peers") else {
        panic!("peers is a list: {b:?}")
    };
    let ids: std::collections::HashMap<i64, Vec<u8>> = peers
        .iter()
        .map(|p| (p.int("port"), p.bytes("peer id").to_vec()))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[&(u.port() as i64)], vec![7; 20]);
    assert_eq!(ids[&7001], b"-AA0001-aaaaaaaaaaaa".to_vec());
    // no_peer_id leaves them out.
    let b = a.get(&format!("{path}&no_peer_id=1")).bencode();
    let Some(Bencode::List(peers)) = b.get("peers") else {
        panic!()
    };
    assert!(peers.iter().all(|p| p.get("peer id").is_none()));
    t.stop().unwrap();
}

#[test]
fn scrape_of_several_torrents_with_keep_alive() {
    scrape_of_several_torrents_with_keep_alive_with(Dispatch::Inline);
}

#[test]
fn scrape_of_several_torrents_with_keep_alive_over_channels() {
    scrape_of_several_torrents_with_keep_alive_with(Dispatch::Channel);
}

fn scrape_of_several_torrents_with_keep_alive_with(dispatch: Dispatch) {
    let t = tracker_with(|c| {
        c.workers.swarm_workers = 2.try_into().unwrap();
        c.workers.dispatch = dispatch;
    });
    let addr = t.http_addrs()[0];
    let mut c = HttpClient::connect(addr);
    // Several requests on one connection.
    for (i, left) in [(0u8, 0u64), (1, 5), (2, 0)] {
        let mut id = *b"-CC0001-cccccccccccc";
        id[19] = i;
        let r = c.get(&announce_path(
            hash(10 + i),
            &id,
            7000 + i as u16,
            left,
            "&event=started",
        ));
        assert_eq!(r.status, 200);
        assert!(!r.headers.to_ascii_lowercase().contains("connection: close"));
    }
    c.get(&announce_path(
        hash(12),
        b"-CC0001-cccccccccccz",
        7100,
        0,
        "&event=completed",
    ));
    let hashes: Vec<InfoHash> = vec![hash(10), hash(11), hash(12), hash(99)];
    let b = c.get(&scrape_path(&hashes)).bencode();
    let files = b.get("files").expect("files");
    let f = |h: InfoHash| match files {
        Bencode::Dict(m) => m.get(&h.0[..]).cloned().expect("every hash listed"),
        _ => panic!(),
    };
    let counts = |h| {
        let d = f(h);
        (d.int("complete"), d.int("downloaded"), d.int("incomplete"))
    };
    assert_eq!(counts(hash(10)), (1, 0, 0));
    assert_eq!(counts(hash(11)), (0, 0, 1));
    assert_eq!(counts(hash(12)), (2, 1, 0));
    assert_eq!(counts(hash(99)), (0, 0, 0));
    t.stop().unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let t = tracker();
    let mut c = HttpClient::connect(t.http_addrs()[0]);
    let mut all = Vec::new();
    for i in 0..5u8 {
        let path = announce_path(hash(20), &[i; 20], 7000 + i as u16, 1, "");
        all.extend_from_slice(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
    }
    c.send_raw(&all);
    for i in 0..5 {
        let b = c.read_response().unwrap().bencode();
        assert_eq!(b.int("incomplete"), i + 1);
    }
    t.stop().unwrap();
}

#[test]
fn failures_are_bencoded_with_status_200() {
    let t = tracker();
    let mut c = HttpClient::connect(t.http_addrs()[0]);
    for (path, reason) in [
        (
            "/announce?info_hash=abc&peer_id=x&port=1&left=0",
            "invalid info_hash",
        ),
        (
            &announce_path(hash(1), &[1; 20], 0, 0, "")[..],
            "invalid port",
        ),
        ("/announce?port=1", "missing info_hash"),
        ("/scrape", "scrape needs info_hash"),
    ] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.bencode().bytes("failure reason"), reason.as_bytes());
    }
    // The connection is still usable after failures.
    let r = c.get(&announce_path(hash(1), &[1; 20], 5, 0, ""));
    assert_eq!(r.bencode().int("complete"), 1);
    let r = c.get("/nowhere");
    assert_eq!(r.status, 404);
    t.stop().unwrap();
}

#[test]
fn bad_request_and_oversized_head_close_the_connection() {
    let t = tracker_with(|c| c.http.max_head_size = swarmd::config::Positive(512));
    let addr = t.http_addrs()[0];
    let mut c = HttpClient::connect(addr);
    c.send_raw(b"\x00\x01garbage / HTTP/1.1\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 400);
    assert!(c.closed_by_server());

    let mut c = HttpClient::connect(addr);
    let long = format!("GET /announce?x={} HTTP/1.1\r\n\r\n", "a".repeat(2000));
    c.send_raw(long.as_bytes());
    assert_eq!(c.read_response().unwrap().status, 431);
    assert!(c.closed_by_server());

    let mut c = HttpClient::connect(addr);
    c.send_raw(b"POST /announce HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 405);
    t.stop().unwrap();
}

#[test]
fn a_client_that_stops_halfway_does_not_block_others() {
    let t = tracker_with(|c| c.http.idle_timeout = swarmd::config::Positive(1));
    let addr = t.http_addrs()[0];
    let mut half = HttpClient::connect(addr);
    half.send_raw(b"GET /announce?info_hash=");
    // Others are served while it dawdles.
    let mut c = HttpClient::connect(addr);
    assert_eq!(
        c.get(&announce_path(hash(30), &[3; 20], 9, 0, "")).status,
        200
    );
    // And it is closed after the idle timeout (the read blocks until then).
    assert!(half.closed_by_server());
    let (timed_out, _) = t.stats().http_total(|f| &f.connections_timed_out);
    assert!(timed_out >= 1);
    t.stop().unwrap();
}

#[test]
fn http_and_udp_peers_see_each_other() {
    let t = tracker();
    let mut h = HttpClient::connect(t.http_addrs()[0]);
    h.get(&announce_path(
        hash(40),
        &[4; 20],
        7040,
        0,
        "&event=started",
    ));
    let mut u = Client::new(t.udp_addrs()[0]);
    let (_, seeders, peers) = u.announce(hash(40), AnnounceEvent::Started, 5);
    assert_eq!(seeders, 1);
    assert_eq!(peers, vec!["127.0.0.1:7040".parse::<SocketAddr>().unwrap()]);
    let b = h
        .get(&announce_path(hash(40), &[4; 20], 7040, 0, ""))
        .bencode();
    assert_eq!(
        decode_peers(b.bytes("peers"), false),
        vec![SocketAddr::new("127.0.0.1".parse().unwrap(), u.port())]
    );
    t.stop().unwrap();
}

#[test]
fn proxy_header_only_from_trusted_proxies() {
    let t = tracker_with(|c| {
        c.http.real_ip_header = "X-Forwarded-For".into();
        c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    });
    let addr = t.http_addrs()[0];
    let mut c = HttpClient::connect(addr);
    let path = announce_path(hash(50), &[5; 20], 6000, 0, "");
    c.send_raw(
        format!("GET {path} HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9, 198.51.100.7\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(c.read_response().unwrap().status, 200);
    // Without the header, from a trusted proxy: a failure.
    let r = c.get(&path);
    assert_eq!(
        r.bencode().bytes("failure reason"),
        b"missing or invalid forwarded address"
    );
    // From an untrusted address (::1) the header is ignored.
    let mut d = HttpClient::connect(t.http_addrs()[1]);
    let p2 = announce_path(hash(50), &[6; 20], 6001, 1, "");
    d.send_raw(format!("GET {p2} HTTP/1.1\r\nX-Forwarded-For: 203.0.113.10\r\n\r\n").as_bytes());
    let b = d.read_response().unwrap().bencode();
    assert_eq!(b.bytes("peers"), b"", "an IPv6 peer gets no IPv4 peers");
    // The IPv4 peer is the address the proxy named.
    let mut e = HttpClient::connect(addr);
    e.send_raw(
        format!(
            "GET {} HTTP/1.1\r\nX-Forwarded-For: 203.0.113.11\r\n\r\n",
            announce_path(hash(50), &[7; 20], 6002, 1, "")
        )
        .as_bytes(),
    );
    let b = e.read_response().unwrap().bencode();
    assert_eq!(
        decode_peers(b.bytes("peers"), false),
        vec!["198.51.100.7:6000".parse::<SocketAddr>().unwrap()]
    );
    t.stop().unwrap();
}

#[test]
fn ip_parameter_is_ignored_unless_allowed() {
    for allowed in [false, true] {
        let t = tracker_with(|c| c.http.allow_ip_param = allowed);
        let addr = t.http_addrs()[0];
        let mut a = HttpClient::connect(addr);
        a.get(&announce_path(hash(60), &[1; 20], 6000, 0, "&ip=10.9.8.7"));
        let mut b = HttpClient::connect(addr);
        let r = b
            .get(&announce_path(hash(60), &[2; 20], 6001, 1, ""))
            .bencode();
        let want = if allowed {
            "10.9.8.7:6000"
        } else {
            "127.0.0.1:6000"
        };
        assert_eq!(
            decode_peers(r.bytes("peers"), false),
            vec![want.parse::<SocketAddr>().unwrap()]
        );
        t.stop().unwrap();
    }
}

#[test]
fn http_counters_rise() {
    let t = tracker();
    let mut c = HttpClient::connect(t.http_addrs()[1]);
    c.get(&announce_path(hash(70), &[1; 20], 6000, 0, ""));
    c.get(&scrape_path(&[hash(70)]));
    // Read after stop: every worker's writes are then visible.
    let s = t.stats().clone();
    t.stop().unwrap();
    assert_eq!(s.http_total(|f| &f.requests_announce), (0, 1));
    assert_eq!(s.http_total(|f| &f.responses_scrape), (0, 1));
    assert_eq!(s.http_total(|f| &f.connections_accepted), (0, 1));
}

/// RFC 9112 (3.2.2): a server must accept the absolute form, as a proxy
/// sends it. It used to get 404.
#[test]
fn absolute_form_request_targets_route_like_origin_form() {
    let t = tracker();
    let addr = t.http_addrs()[0];
    let mut c = HttpClient::connect(addr);
    let announce = announce_path(hash(41), &[4; 20], 7041, 0, "");
    let r = c.get(&format!("http://{addr}{announce}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.bencode().int("complete"), 1);
    let r = c.get(&format!(
        "HTTP://tracker.example{}",
        scrape_path(&[hash(41)])
    ));
    assert_eq!(r.status, 200);
    assert!(r.bencode().get("files").is_some());
    t.stop().unwrap();
}
