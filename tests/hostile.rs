//! Hostile traffic against a tracker running in-process on loopback:
//! amplification (no reply outgrows the request it answers before the
//! client proved its address), a flood of garbage and half-open connections
//! while good clients keep announcing, and the operator's limits, each
//! doing what the README says and counted.
//!
//! Nothing here sleeps to synchronise. A "no reply" is shown by a connect
//! sent right after the bad datagram: the socket worker answers both
//! itself, in order, so the next datagram back must be the connect's.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use swarmd::config::{Dispatch, Positive};
use swarmd::protocol::http::url_encode;
use swarmd::protocol::udp::{
    ConnectRequest, ConnectionId, Request, Response, ScrapeRequest, TransactionId, ANNOUNCE_LEN,
};
use swarmd::protocol::{AnnounceEvent, InfoHash};
use util::http::{announce_path, scrape_path, HttpClient};
use util::{decode_peers, hash, tracker, tracker_with, Client};

/// A BEP 15 header: connection id, action, transaction id.
fn header(connection_id: u64, action: u32, tid: u32) -> Vec<u8> {
    let mut b = connection_id.to_be_bytes().to_vec();
    b.extend_from_slice(&action.to_be_bytes());
    b.extend_from_slice(&tid.to_be_bytes());
    b
}

/// Sends `bad`, then a connect; returns the replies that came before the
/// connect's, each with its length in bytes.
fn replies_to(c: &mut Client, bad: &[u8]) -> Vec<(usize, Response)> {
    c.send_raw(bad);
    let tid = c.tid();
    c.send(&Request::Connect(ConnectRequest {
        transaction_id: tid,
    }));
    let mut before = Vec::new();
    loop {
        let raw = c.recv_raw();
        let resp = Response::parse(&raw).expect("a well-formed response");
        if let Response::Connect { transaction_id, .. } = resp {
            if transaction_id == tid {
                return before;
            }
        }
        before.push((raw.len(), resp));
    }
}

#[test]
fn udp_error_paths_never_amplify() {
    let t = tracker();
    for &addr in t.udp_addrs() {
        let mut c = Client::new(addr);
        let good_id = c.connection_id.0;
        let bad_id = good_id ^ 0x100;
        let mut ann = Vec::new();
        let mut req = c.announce_request(hash(1), AnnounceEvent::Started, 1);
        req.transaction_id = TransactionId(77);
        Request::Announce(req).write(&mut ann);
        assert_eq!(ann.len(), ANNOUNCE_LEN);
        let with_id = |id: u64, bytes: &[u8]| {
            let mut b = bytes.to_vec();
            b[..8].copy_from_slice(&id.to_be_bytes());
            b
        };
        let mut bad_event = ann.clone();
        bad_event[80..84].copy_from_slice(&9u32.to_be_bytes());
        let mut port_0 = ann.clone();
        port_0[96..98].copy_from_slice(&[0, 0]);
        let mut bad_options = ann.clone();
        bad_options.extend_from_slice(&[2, 10, b'/']);
        let mut option_without_length = ann.clone();
        option_without_length.push(2);
        let mut too_many = header(good_id, 2, 77);
        too_many.extend(std::iter::repeat_n(0xab, 75 * 20));
        // Each of these carries a transaction id the tracker could answer.
        let answerable: Vec<(&str, Vec<u8>)> = vec![
            ("announce header only", header(good_id, 1, 77)),
            ("short announce", ann[..40].to_vec()),
            ("announce one byte short", ann[..ANNOUNCE_LEN - 1].to_vec()),
            ("bad event", bad_event),
            ("bad options", bad_options),
            ("option without length", option_without_length),
            ("empty scrape", header(good_id, 2, 77)),
            ("too many scrape hashes", too_many),
            ("port 0", port_0),
        ];
        let mut connect_bad_magic = header(0x0417_2710_1981, 0, 77);
        connect_bad_magic.extend_from_slice(&[0; 4]);
        // Never answered, whatever the id.
        let malformed: Vec<(&str, Vec<u8>)> = vec![
            ("empty datagram", Vec::new()),
            ("one byte", vec![1]),
            ("fifteen bytes", header(good_id, 1, 77)[..15].to_vec()),
            ("unknown action", header(good_id, 7, 77)),
            (
                "unknown action, long",
                [header(good_id, 7, 77), vec![0; 200]].concat(),
            ),
            ("connect with a bad magic", connect_bad_magic),
        ];
        for (what, bytes) in &answerable {
            let got = replies_to(&mut c, bytes);
            assert_eq!(got.len(), 1, "{what}: one error reply");
            let (len, resp) = &got[0];
            assert!(*len <= bytes.len(), "{what}: {len} > {}", bytes.len());
            assert!(
                matches!(resp, Response::Error { transaction_id, message }
                    if *transaction_id == TransactionId(77) && !message.is_empty()),
                "{what}: {resp:?}"
            );
        }
        for (what, bytes) in &answerable {
            let got = replies_to(&mut c, &with_id(bad_id, bytes));
            assert!(got.is_empty(), "{what} with a bad connection id: {got:?}");
        }
        for (what, bytes) in &malformed {
            let got = replies_to(&mut c, bytes);
            assert!(got.is_empty(), "{what}: {got:?}");
        }
        // Good requests with a bad id: silence, and nothing stored.
        let got = replies_to(&mut c, &with_id(bad_id, &ann));
        assert!(got.is_empty());
        let mut scrape = header(bad_id, 2, 77);
        scrape.extend_from_slice(&[1; 20]);
        assert!(replies_to(&mut c, &scrape).is_empty());
        assert_eq!(c.scrape(&[hash(1)])[0].leechers, 0);
    }
    let s = t.stats().clone();
    t.stop().unwrap();
    // Per family: 9 answerable errors; 9 + 2 bad ids; 6 malformed.
    assert_eq!(s.udp_total(|f| &f.errors_request), (9, 9));
    assert_eq!(s.udp_total(|f| &f.responses_error), (9, 9));
    assert_eq!(s.udp_total(|f| &f.errors_connection_id), (11, 11));
    assert_eq!(s.udp_total(|f| &f.errors_malformed), (6, 6));
}

/// Writes `request` on a new connection and reads one response: (status,
/// its whole length in bytes, whether the server then closed).
fn http_exchange(addr: SocketAddr, request: &[u8], expect_close: bool) -> (u16, usize, bool) {
    let mut c = HttpClient::connect(addr);
    c.send_raw(request);
    let r = c.read_response().expect("a response");
    let len = r.headers.len() + 4 + r.body.len();
    let closed = expect_close && c.closed_by_server();
    (r.status, len, closed)
}

#[test]
fn http_error_replies_are_small_and_close_when_malformed() {
    let t = tracker_with(|c| c.http.max_head_size = Positive(512));
    for &addr in t.http_addrs() {
        let many_headers = format!("GET /announce HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(40));
        let long = format!("GET /announce?x={} HTTP/1.1\r\n\r\n", "a".repeat(2000));
        let cases: Vec<(&str, Vec<u8>, u16, bool)> = vec![
            (
                "garbage",
                b"\x00\x01garbage / HTTP/1.1\r\n\r\n".to_vec(),
                400,
                true,
            ),
            ("bad version", b"GET / HTTP/7\r\n\r\n".to_vec(), 400, true),
            (
                "GET with a body",
                b"GET /announce HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
                400,
                true,
            ),
            (
                "chunked GET",
                b"GET /announce HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                400,
                true,
            ),
            ("head over the limit", long.into_bytes(), 431, true),
            ("unfinished head over the limit", vec![b'G'; 600], 431, true),
            ("too many headers", many_headers.into_bytes(), 431, true),
            (
                "POST",
                b"POST /announce HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
                405,
                true,
            ),
            (
                "unknown path",
                b"GET /x HTTP/1.1\r\n\r\n".to_vec(),
                404,
                false,
            ),
            (
                "tracker failure",
                b"GET /announce?info_hash=abc HTTP/1.1\r\n\r\n".to_vec(),
                200,
                false,
            ),
        ];
        for (what, request, status, close) in cases {
            let (got, len, closed) = http_exchange(addr, &request, close);
            assert_eq!(got, status, "{what}");
            assert!(len <= 512, "{what}: a {len}-byte reply");
            assert_eq!(closed, close, "{what}: closed after the reply");
        }
    }
    let s = t.stats().clone();
    t.stop().unwrap();
    // 400 x4, 431 x3, 405, 404: malformed; the failure: a request error.
    assert_eq!(s.http_total(|f| &f.errors_malformed), (9, 9));
    assert_eq!(s.http_total(|f| &f.errors_request), (1, 1));
}

/// The test process's resident memory, in bytes.
fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// Sets the flag when dropped, so flooders stop even if the test fails.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// How long the good clients keep going while the flood runs.
const FLOOD_TIME: Duration = Duration::from_secs(3);
/// No flooder sends more than this, nor runs past this.
const FLOOD_PACKETS: u64 = 2_000_000;
const FLOOD_LIMIT: Duration = Duration::from_secs(30);
/// Datagrams a flooder sends before it waits for the tracker to catch up.
const BURST: u64 = 256;
const HALF_OPEN: usize = 256;

/// Sends bursts of `next()` datagrams to `to` until told to stop. After each
/// burst a connect from `sentinel` comes back only once the tracker has read
/// the burst: the flood runs as fast as the tracker reads, and never faster
/// than it can, so the kernel does not drop good clients' datagrams for it
/// (that would measure the machine, not the tracker).
fn flood(
    sock: &UdpSocket,
    to: SocketAddr,
    mut next: impl FnMut(u64) -> Vec<u8>,
    flooding: &(impl Fn() -> bool + Sync),
    ready: &AtomicU64,
    sent: &AtomicU64,
) {
    let mut sentinel = Client::new(to);
    let mut n = 0;
    while flooding() && n < FLOOD_PACKETS {
        for _ in 0..BURST {
            let _ = sock.send_to(&next(n), to);
            n += 1;
        }
        sentinel.connect();
        if n == BURST {
            ready.fetch_add(1, Relaxed);
        }
    }
    sent.fetch_add(n, Relaxed);
}

/// Announces until the answer to one of its own attempts comes back: a
/// datagram can still be lost, and BEP 15 clients retransmit.
fn udp_announce_retrying(
    c: &mut Client,
    h: InfoHash,
    left: u64,
    retries: &mut u32,
) -> (u32, u32, Vec<SocketAddr>) {
    let mut sent = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        let req = c.announce_request(h, AnnounceEvent::None, left);
        sent.push(req.transaction_id);
        c.send(&Request::Announce(req));
        while let Ok((n, _)) = c.socket.recv_from(&mut buf) {
            if let Some(Response::Announce {
                transaction_id,
                leechers,
                seeders,
                peers,
                ..
            }) = Response::parse(&buf[..n])
            {
                if sent.contains(&transaction_id) {
                    return (leechers, seeders, decode_peers(&peers, false));
                }
            }
        }
        *retries += 1;
    }
    panic!("no answer to 20 announces");
}

#[test]
fn flood_does_not_starve_good_clients_or_grow_memory() {
    let t = tracker_with(|c| {
        c.http.idle_timeout = Positive(600);
        c.http.request_timeout = Positive(600);
        // The half-open connections and the good client share 127.0.0.1.
        c.http.max_connections_per_ip = Positive(4096);
    });
    let (udp4, udp6, http4) = (t.udp_addrs()[0], t.udp_addrs()[1], t.http_addrs()[0]);

    // The good clients, set up before the flood: a UDP seeder and leecher
    // on one torrent, an HTTP seeder and leecher on another.
    let (h_udp, h_http) = (hash(1), hash(2));
    let mut useed = Client::new(udp4);
    useed.announce(h_udp, AnnounceEvent::Started, 0);
    let mut uleech = Client::new(udp4);
    uleech
        .socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut hseed = HttpClient::connect(http4);
    let seed_path = announce_path(h_http, &[1; 20], 7001, 0, "");
    assert_eq!(hseed.get(&seed_path).status, 200);
    let leech_path = announce_path(h_http, &[2; 20], 7002, 5, "");
    let mut hleech = HttpClient::connect(http4);
    // A scraper with a valid id, for maximal scrapes.
    let scraper = Client::new(udp4);
    let mut max_scrape = header(scraper.connection_id.0, 2, 1);
    for i in 0..74u8 {
        max_scrape.extend_from_slice(&[i; 20]);
    }

    let rss_before = vm_rss();
    let stop = AtomicBool::new(false);
    let (sent, ready) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    let flooding = || !stop.load(Relaxed) && started.elapsed() < FLOOD_LIMIT;
    let (mut rounds, mut retries) = (0u32, 0u32);
    let half_open = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        // Garbage of every length, to both families.
        for (i, to) in [udp4, udp6].into_iter().enumerate() {
            let (flooding, ready, sent) = (&flooding, &ready, &sent);
            s.spawn(move || {
                let sock = UdpSocket::bind(SocketAddr::new(to.ip(), 0)).unwrap();
                let mut rng = fastrand::Rng::with_seed(i as u64);
                let garbage = |_| {
                    let mut b = vec![0u8; rng.usize(..1500)];
                    rng.fill(&mut b);
                    b
                };
                flood(&sock, to, garbage, flooding, ready, sent);
            });
        }
        // Well-formed announces and scrapes with wrong connection ids.
        s.spawn(|| {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut rng = fastrand::Rng::with_seed(2);
            let wrong_id = |n: u64| {
                let mut b = header(rng.u64(..), 1 + (n % 2) as u32, 0);
                b.resize(
                    if n.is_multiple_of(2) {
                        ANNOUNCE_LEN
                    } else {
                        16 + 20 * 74
                    },
                    1,
                );
                b
            };
            flood(&sock, udp4, wrong_id, &flooding, &ready, &sent);
        });
        // Maximal scrapes with a valid id (answers are never read).
        s.spawn(|| {
            let scrape = |_| max_scrape.clone();
            flood(&scraper.socket, udp4, scrape, &flooding, &ready, &sent);
        });
        // Half-open HTTP connections: half a head each, never finished,
        // held open until the flood is over.
        let half = s.spawn(|| {
            let mut held = Vec::with_capacity(HALF_OPEN);
            while flooding() && held.len() < HALF_OPEN {
                let mut c = TcpStream::connect(http4).unwrap();
                c.write_all(b"GET /announce?info_hash=%01%02").unwrap();
                held.push(c);
            }
            ready.fetch_add(1, Relaxed);
            held
        });
        // Every flooder has begun before the good clients do.
        while ready.load(Relaxed) < 5 {
            assert!(started.elapsed() < FLOOD_LIMIT, "flooders did not start");
            std::thread::yield_now();
        }

        // The good clients keep announcing and must get right answers.
        let good_start = Instant::now();
        while good_start.elapsed() < FLOOD_TIME {
            let (l, sd, peers) = udp_announce_retrying(&mut uleech, h_udp, 5, &mut retries);
            assert_eq!((l, sd), (1, 1), "UDP counts under the flood");
            assert_eq!(peers, vec![useed.socket.local_addr().unwrap()]);
            // Every tenth round on a new connection: accepting goes on too.
            if rounds % 10 == 0 {
                hleech = HttpClient::connect(http4);
            }
            let r = hleech.get(&leech_path);
            assert_eq!(r.status, 200);
            let b = r.bencode();
            assert_eq!((b.int("complete"), b.int("incomplete")), (1, 1));
            assert_eq!(
                decode_peers(b.bytes("peers"), false),
                vec!["127.0.0.1:7001".parse::<SocketAddr>().unwrap()]
            );
            rounds += 1;
        }
        stop.store(true, Relaxed);
        half.join().unwrap()
    });
    let rss_after = vm_rss();
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "flood: {} datagrams, {} half-open connections, {rounds} good rounds, {retries} UDP retries, RSS {} -> {} MiB",
        sent.load(Relaxed),
        half_open.len(),
        rss_before >> 20,
        rss_after >> 20
    );
    assert_eq!(half_open.len(), HALF_OPEN);
    assert!(rounds >= 5, "only {rounds} good rounds in {FLOOD_TIME:?}");
    assert!(growth < 64 << 20, "RSS grew by {} MiB", growth >> 20);
    // Still serving once the flood is over, with the half-open ones held.
    let r = HttpClient::connect(http4).get(&seed_path);
    assert_eq!(r.status, 200);
    assert!(t.deaths().try_recv().is_err(), "a worker died");
    drop(half_open);
    let s = t.stats().clone();
    t.stop().unwrap();
    let (malformed4, malformed6) = s.udp_total(|f| &f.errors_malformed);
    assert!(malformed4 > 0 && malformed6 > 0, "garbage counted");
    assert!(
        s.udp_total(|f| &f.errors_connection_id).0 > 0,
        "bad ids counted"
    );
    assert!(
        s.udp_total(|f| &f.responses_scrape).0 > 0,
        "scrapes answered"
    );
    assert!(s.http_total(|f| &f.connections_accepted).0 >= HALF_OPEN as u64);
}

#[test]
fn max_torrents_answers_new_torrents_empty_and_counts() {
    let t = tracker_with(|c| c.swarm.max_torrents = 2);
    let addr = t.udp_addrs()[0];
    let mut a = Client::new(addr);
    let mut b = Client::new(addr);
    a.announce(hash(1), AnnounceEvent::Started, 1);
    a.announce(hash(2), AnnounceEvent::Started, 1);
    // A third torrent: an empty answer, not stored, for every peer.
    assert_eq!(
        a.announce(hash(3), AnnounceEvent::Started, 1),
        (0, 0, vec![])
    );
    assert_eq!(
        b.announce(hash(3), AnnounceEvent::Started, 0),
        (0, 0, vec![])
    );
    assert_eq!(b.scrape(&[hash(3)])[0].leechers, 0);
    // The torrents it holds work as before, over HTTP too.
    let (l, s, peers) = b.announce(hash(1), AnnounceEvent::Started, 0);
    assert_eq!((l, s, peers), (1, 1, vec![a.socket.local_addr().unwrap()]));
    let mut h = HttpClient::connect(t.http_addrs()[0]);
    let r = h
        .get(&announce_path(hash(4), &[1; 20], 7000, 0, ""))
        .bencode();
    assert!(
        r.get("failure reason").is_none(),
        "an answer, not a failure"
    );
    assert_eq!((r.int("complete"), r.int("incomplete")), (0, 0));
    let st = t.stats().clone();
    t.stop().unwrap();
    assert_eq!(st.swarm_total(|c| &c.not_stored), 3);
}

#[test]
fn max_peers_per_torrent_serves_newcomers_without_storing_them() {
    let t = tracker_with(|c| c.swarm.max_peers_per_torrent = 2);
    let (v4, v6) = (t.udp_addrs()[0], t.udp_addrs()[1]);
    let h = hash(5);
    let mut p1 = Client::new(v4);
    let mut p2 = Client::new(v4);
    p1.announce(h, AnnounceEvent::Started, 1);
    p2.announce(h, AnnounceEvent::Started, 1);
    let stored = |c: &Client| c.socket.local_addr().unwrap();
    let mut want = vec![stored(&p1), stored(&p2)];
    want.sort();
    // A third peer gets the stored ones, but is not stored itself.
    let mut p3 = Client::new(v4);
    let (l, s, mut peers) = p3.announce(h, AnnounceEvent::Started, 1);
    peers.sort();
    assert_eq!((l, s, peers), (2, 0, want.clone()));
    let (_, _, peers) = p1.announce(h, AnnounceEvent::None, 1);
    assert_eq!(peers, vec![stored(&p2)], "the third was not stored");
    // The limit is on the torrent: an IPv6 peer is refused as well.
    let mut q = Client::new(v6);
    assert_eq!(q.announce(h, AnnounceEvent::Started, 1).0, 2);
    assert_eq!(p1.scrape(&[h])[0].leechers, 2);
    // A stored peer that leaves makes room.
    p2.announce(h, AnnounceEvent::Stopped, 1);
    p3.announce(h, AnnounceEvent::Started, 1);
    assert_eq!(p1.scrape(&[h])[0].leechers, 2);
    let st = t.stats().clone();
    t.stop().unwrap();
    assert_eq!(st.swarm_total(|c| &c.not_stored), 2);
}

#[test]
fn max_scrape_torrents_refuses_bigger_scrapes_over_udp_and_http() {
    let t = tracker_with(|c| c.udp.max_scrape_torrents = Positive(3));
    let mut c = Client::new(t.udp_addrs()[0]);
    assert_eq!(c.scrape(&[hash(1), hash(2), hash(3)]).len(), 3);
    let tid = c.tid();
    let req = Request::Scrape(ScrapeRequest {
        connection_id: ConnectionId(c.connection_id.0),
        transaction_id: tid,
        info_hashes: vec![hash(1); 4],
    });
    let mut bytes = Vec::new();
    req.write(&mut bytes);
    let got = replies_to(&mut c, &bytes);
    assert!(
        matches!(&got[..], [(len, Response::Error { transaction_id, message })]
            if *len <= bytes.len() && *transaction_id == tid && message == b"too many hashes"),
        "{got:?}"
    );
    let mut h = HttpClient::connect(t.http_addrs()[0]);
    let ok = h.get(&scrape_path(&[hash(1), hash(2), hash(3)]));
    assert!(ok.bencode().get("files").is_some());
    let r = h.get(&scrape_path(&[hash(1), hash(2), hash(3), hash(4)]));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.bencode().bytes("failure reason"),
        b"too many info_hash values"
    );
    let s = t.stats().clone();
    t.stop().unwrap();
    assert_eq!(s.udp_total(|f| &f.errors_request).0, 1);
    assert_eq!(s.http_total(|f| &f.errors_request).0, 1);
}

#[test]
fn max_head_size_is_the_largest_head_accepted() {
    let limit = 256;
    let t = tracker_with(|c| c.http.max_head_size = Positive(limit as u32));
    let addr = t.http_addrs()[0];
    // A scrape head of exactly `len` bytes (an ignored parameter pads it).
    let head = |len: usize| {
        let start = format!("GET /scrape?info_hash={}&pad=", url_encode(&[9; 20]));
        let end = " HTTP/1.1\r\n\r\n";
        let pad = "p".repeat(len - start.len() - end.len());
        format!("{start}{pad}{end}").into_bytes()
    };
    assert_eq!(head(limit).len(), limit);
    let (status, _, _) = http_exchange(addr, &head(limit), false);
    assert_eq!(status, 200);
    let (status, _, closed) = http_exchange(addr, &head(limit + 1), true);
    assert_eq!((status, closed), (431, true));
    let s = t.stats().clone();
    t.stop().unwrap();
    assert_eq!(s.http_total(|f| &f.errors_malformed).0, 1);
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    // Pipelined requests from a client that never reads: the tracker
    // answers one at a time and stops reading when the answer can't be
    // sent, so this neither grows memory nor stalls the others.
    let t = tracker();
    let addr = t.http_addrs()[0];
    let mut hog = TcpStream::connect(addr).unwrap();
    let one = format!(
        "GET {} HTTP/1.1\r\n\r\n",
        scrape_path(&(0..40).map(hash).collect::<Vec<_>>())
    );
    let many = one.repeat(200);
    // Writes until the kernel takes no more: once both sides' buffers are
    // full, the tracker has stopped reading this connection.
    hog.set_nonblocking(true).unwrap();
    let mut at = 0;
    while at < many.len() {
        match hog.write(&many.as_bytes()[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    hog.set_nonblocking(false).unwrap();
    hog.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    let mut c = HttpClient::connect(addr);
    assert_eq!(
        c.get(&announce_path(hash(7), &[1; 20], 7000, 0, "")).status,
        200
    );
    let mut first = [0u8; 16];
    hog.read_exact(&mut first).unwrap();
    assert_eq!(&first[..12], b"HTTP/1.1 200");
    drop(hog);
    t.stop().unwrap();
}

/// Found by the flood test: the socket worker read its UDP sockets until
/// every one ran dry before it polled again, so a flood that kept one
/// socket busy starved the other family's socket and every HTTP connection.
#[test]
fn a_flooded_socket_does_not_starve_the_others() {
    let t = tracker();
    let (udp4, udp6, http) = (t.udp_addrs()[0], t.udp_addrs()[1], t.http_addrs()[1]);
    let scraper = Client::new(udp4);
    let mut max_scrape = header(scraper.connection_id.0, 2, 1);
    for i in 0..74u8 {
        max_scrape.extend_from_slice(&[i; 20]);
    }
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        // Unpaced: more than the tracker can read, so IPv4 never runs dry.
        for _ in 0..2 {
            s.spawn(|| {
                let mut n = 0;
                while !stop.load(Relaxed) && started.elapsed() < FLOOD_LIMIT && n < FLOOD_PACKETS {
                    let _ = scraper.socket.send_to(&max_scrape, udp4);
                    n += 1;
                }
            });
        }
        while t.stats().udp_total(|f| &f.requests_scrape).0 < 1000 {
            assert!(started.elapsed() < FLOOD_LIMIT, "the flood did not start");
            std::thread::yield_now();
        }
        for i in 0..3 {
            let mut c = Client::new(udp6);
            assert_eq!(c.announce(hash(9), AnnounceEvent::Started, 1).0, i + 1);
            let mut h = HttpClient::connect(http);
            assert_eq!(h.get(&scrape_path(&[hash(9)])).status, 200);
        }
        stop.store(true, Relaxed);
    });
    t.stop().unwrap();
}

/// Found while writing these tests: a connection reads at most one head
/// limit at a time, and with edge-triggered events the rest of pipelined
/// requests stayed in the kernel: the client waited for the idle timeout.
#[test]
fn pipelined_requests_beyond_one_read_buffer_are_all_answered() {
    pipelined_requests_beyond_one_read_buffer_are_all_answered_with(Dispatch::Inline);
}

#[test]
fn pipelined_requests_beyond_one_read_buffer_are_all_answered_over_channels() {
    pipelined_requests_beyond_one_read_buffer_are_all_answered_with(Dispatch::Channel);
}

fn pipelined_requests_beyond_one_read_buffer_are_all_answered_with(dispatch: Dispatch) {
    let t = tracker_with(|c| {
        c.http.max_head_size = Positive(512);
        c.workers.dispatch = dispatch;
    });
    let mut c = HttpClient::connect(t.http_addrs()[0]);
    let mut all = Vec::new();
    for i in 0..40u8 {
        let path = announce_path(hash(8), &[i; 20], 7000 + i as u16, 1, "");
        all.extend_from_slice(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
    }
    assert!(all.len() > 4 * 512);
    c.send_raw(&all);
    for i in 0..40 {
        let r = c.read_response().expect("an answer to every request");
        assert_eq!(r.bencode().int("incomplete"), i + 1);
    }
    t.stop().unwrap();
}
