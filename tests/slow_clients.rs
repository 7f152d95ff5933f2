//! HTTP clients that hold connections without asking anything: slowloris,
//! one address with many connections, a full worker, and clients that close
//! their side early. Each test fails on the code before its fix.

mod util;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use swarmd::config::Positive;
use util::http::{announce_path, HttpClient};
use util::{hash, stopped, tracker_with};

fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// Dribblers: sockets from addresses 127.0.0.10 up, two per address, each
/// sending one byte of a request head every `every`, and reconnecting
/// (from the same address) whenever the tracker closes one. Until `stop`.
fn dribble(http: SocketAddr, sockets: usize, every: Duration, stop: &AtomicBool) {
    let connect = |i: usize| {
        let c = HttpClient::connect_from(http, loopback(10 + (i / 2) as u8)).ok()?;
        c.stream.set_nonblocking(true).ok()?;
        Some(c)
    };
    let mut conns: Vec<Option<HttpClient>> = (0..sockets).map(connect).collect();
    while !stop.load(Relaxed) {
        for (i, slot) in conns.iter_mut().enumerate() {
            let alive = match slot {
                Some(c) => {
                    let mut b = [0u8; 256];
                    let closed = matches!(c.stream.read(&mut b), Ok(0))
                        || matches!(c.stream.read(&mut b), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
                    !closed && c.stream.write_all(b"G").is_ok()
                }
                None => false,
            };
            if !alive {
                *slot = connect(i);
            }
        }
        std::thread::sleep(every);
    }
}

#[test]
fn slowloris_from_many_addresses_does_not_lock_out_a_good_client() {
    let t = tracker_with(|c| {
        c.http.max_connections = Positive(64);
        c.http.request_timeout = Positive(2);
    });
    let http = t.http_addrs()[0];
    let stats = t.stats().clone();
    let stop = AtomicBool::new(false);
    let (answered, tries) = std::thread::scope(|s| {
        s.spawn(|| dribble(http, 80, Duration::from_millis(300), &stop));
        // The dribblers hold every slot before the good client starts.
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.http_total(|f| &f.connections_accepted).0 < 64 {
            assert!(
                Instant::now() < deadline,
                "the dribblers never filled the worker"
            );
            std::thread::yield_now();
        }
        let path = announce_path(hash(1), &[1; 20], 7000, 1, "");
        let tries = 100;
        let mut answered = 0;
        for _ in 0..tries {
            let mut c = HttpClient::connect(http);
            if c.try_get(&path).is_some_and(|r| r.status == 200) {
                answered += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Relaxed);
        (answered, tries)
    });
    let evicted = stats.http_total(|f| &f.connections_evicted).0;
    let too_slow = stats.http_total(|f| &f.connections_too_slow).0;
    t.stop().unwrap();
    eprintln!("slowloris: {answered} of {tries} answered; {evicted} evicted, {too_slow} too slow");
    assert!(
        answered * 100 >= tries * 99,
        "{answered} of {tries} answered"
    );
}

#[test]
fn a_request_head_has_a_deadline_from_its_first_byte() {
    let t = tracker_with(|c| c.http.request_timeout = Positive(1));
    let mut c = HttpClient::connect(t.http_addrs()[0]);
    c.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    // One byte every 200 ms: each byte used to restart the idle clock.
    let mut closed = false;
    while !closed && started.elapsed() < Duration::from_secs(6) {
        if c.stream.write_all(b"G").is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 64];
        closed = match c.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
    }
    let took = started.elapsed();
    let s = stopped(t);
    assert!(
        closed,
        "a dribbling client kept its connection for {took:?}"
    );
    // request_timeout = 1, checked once a second, in whole seconds.
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert_eq!(s.http_total(|f| &f.connections_too_slow).0, 1);
}

#[test]
fn one_address_gets_at_most_its_share_of_connections() {
    let t = tracker_with(|c| c.http.max_connections_per_ip = Positive(2));
    let http = t.http_addrs()[0];
    let path = announce_path(hash(2), &[1; 20], 7000, 1, "");
    let mut a = HttpClient::connect_from(http, loopback(1)).unwrap();
    let mut b = HttpClient::connect_from(http, loopback(1)).unwrap();
    assert_eq!(a.get(&path).status, 200);
    assert_eq!(b.get(&path).status, 200);
    let mut c = HttpClient::connect_from(http, loopback(1)).unwrap();
    assert!(c.closed_by_server(), "a third from the same address");
    let mut d = HttpClient::connect_from(http, loopback(2)).unwrap();
    assert_eq!(d.get(&path).status, 200, "another address");
    // Once one of the first two is gone, its address may connect again.
    a.stream.shutdown(Shutdown::Write).unwrap();
    assert!(a.closed_by_server());
    let mut e = HttpClient::connect_from(http, loopback(1)).unwrap();
    assert_eq!(e.get(&path).status, 200);
    let s = stopped(t);
    assert_eq!(s.http_total(|f| &f.connections_refused).0, 1);
}

#[test]
fn a_full_worker_makes_room_by_closing_the_longest_waiting_connection() {
    let t = tracker_with(|c| c.http.max_connections = Positive(2));
    let http = t.http_addrs()[0];
    let path = announce_path(hash(6), &[1; 20], 7000, 0, "");
    let mut a = HttpClient::connect(http);
    assert_eq!(a.get(&path).status, 200);
    let mut b = HttpClient::connect(http);
    assert_eq!(b.get(&path).status, 200);
    // Both idle; a has waited longest, so it goes.
    let mut c = HttpClient::connect(http);
    assert_eq!(c.get(&path).status, 200);
    assert!(a.closed_by_server(), "the longest idle makes room");
    assert_eq!(b.get(&path).status, 200, "the others stay");
    let s = stopped(t);
    assert_eq!(s.http_total(|f| &f.connections_evicted).0, 1);
    assert_eq!(s.http_total(|f| &f.connections_refused).0, 0);
    assert_eq!(s.http_total(|f| &f.connections_accepted).0, 3);
}

#[test]
fn requests_sent_before_a_half_close_are_all_answered() {
    let t = tracker_with(|_| {});
    let mut c = HttpClient::connect(t.http_addrs()[0]);
    let mut all = Vec::new();
    for n in 0..3u8 {
        let path = announce_path(hash(7), &[n; 20], 7000 + n as u16, 1, "");
        all.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    // Three requests and the end of the client's side, in one segment.
    c.stream.write_all(&all).unwrap();
    c.stream.shutdown(Shutdown::Write).unwrap();
    let mut answers = Vec::new();
    while let Some(r) = c.read_response() {
        answers.push(r);
    }
    t.stop().unwrap();
    assert_eq!(
        answers.len(),
        3,
        "every request read before EOF is answered"
    );
    assert!(answers.iter().all(|r| r.status == 200));
    // The first two must not close the connection. The last says so when
    // the tracker had seen the half-close by then (the FIN can come in a
    // later read); either way the connection ends after it (the loop above
    // ended on EOF).
    let close =
        |r: &util::http::HttpResponse| r.headers.to_ascii_lowercase().contains("connection: close");
    assert!(!close(&answers[0]) && !close(&answers[1]));
}
