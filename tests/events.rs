//! The stats endpoint's `/events` feed over real sockets: announces that
//! change counts arrive as events, coalesced per torrent and round, only
//! for torrents that changed, filtered by `?info_hash=`; a reader that stalls
//! is cut off with `resync` and closed while the endpoint stays responsive;
//! the subscriber cap; many subscribers beside the request connections; the
//! heartbeat.

mod util;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use swarmd::protocol::udp::Request;
use swarmd::protocol::{AnnounceEvent, InfoHash};
use swarmd::{Config, Tracker};
use util::events::{finish_subscribe, send_request, subscribe, Counts, Sse};
use util::stats::get;
use util::{hash, tracker_with, Client};

fn feed(edit: impl FnOnce(&mut Config)) -> (Tracker, SocketAddr, SocketAddr) {
    let t = tracker_with(|c| {
        c.stats.events_interval_ms = 300;
        c.stats.max_event_subscribers = 1024;
        edit(c);
    });
    let udp = t.udp_addrs()[0];
    let stats = t.stats_addr().unwrap();
    (t, udp, stats)
}

fn hex(h: InfoHash) -> String {
    h.to_string()
}

/// A torrent per number, spread over the shards like real ones.
fn many(n: u32) -> InfoHash {
    let mut h = [0x5a; 20];
    h[..4].copy_from_slice(&n.to_le_bytes());
    InfoHash(h)
}

/// Announces `started` of one client in each torrent, 64 in flight at a
/// time.
fn announce_all(c: &mut Client, hashes: impl Iterator<Item = InfoHash>) {
    let hashes: Vec<InfoHash> = hashes.collect();
    for chunk in hashes.chunks(64) {
        for h in chunk {
            let req = c.announce_request(*h, AnnounceEvent::Started, 1);
            c.send(&Request::Announce(req));
        }
        for _ in chunk {
            c.recv();
        }
    }
}

/// Polls `f` until it is true, for at most 5 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn is(h: InfoHash) -> impl Fn(&Counts) -> bool {
    let want = hex(h);
    move |c| c.info_hash == want
}

#[test]
fn announces_in_one_round_arrive_as_one_event_with_the_final_counts() {
    let (t, udp, stats) = feed(|c| c.stats.events_interval_ms = 1000);
    let (a, quiet) = (hash(1), hash(2));
    let mut old = Client::new(udp);
    old.announce(quiet, AnnounceEvent::Started, 0);

    // The first round ends a second after the first subscriber came: the
    // announces below (milliseconds) all fall into it.
    let mut sub = subscribe(stats, "/events").unwrap();
    let mut clients: Vec<Client> = (0..6).map(|_| Client::new(udp)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let left = if i < 2 { 0 } else { 100 };
        c.announce(a, AnnounceEvent::Started, left);
    }
    clients[5].announce(a, AnnounceEvent::Completed, 0);
    let seen = sub.counts_until(is(a));
    assert_eq!(
        seen.len(),
        1,
        "one event, and none for the quiet torrent: {seen:?}"
    );
    let want = Counts {
        info_hash: hex(a),
        seeders: 3,
        leechers: 3,
        completed: 1,
    };
    assert_eq!(seen[0], want);

    // A re-announce that changes nothing sends nothing: a later change of
    // another torrent comes without an event of `a` before it.
    clients[0].announce(a, AnnounceEvent::None, 0);
    let b = hash(3);
    clients[0].announce(b, AnnounceEvent::Started, 0);
    let seen = sub.counts_until(is(b));
    assert_eq!(seen.len(), 1, "only the changed torrent: {seen:?}");

    // The last peer of a torrent leaving sends zeros.
    clients[0].announce(b, AnnounceEvent::Stopped, 0);
    let seen = sub.counts_until(is(b));
    assert_eq!((seen[0].seeders, seen[0].leechers), (0, 0), "{seen:?}");

    let s = t.stats();
    assert!(s.events.events_sent.get() >= 3);
    assert_eq!(s.events.subscribers.get(), 1);
    let (_, metrics) = get(stats, "/metrics");
    assert!(
        metrics.contains("\nswarmd_events_subscribers 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nswarmd_events_sent_total "), "{metrics}");
    drop(sub);
    eventually("the subscriber is gone", || s.events.subscribers.get() == 0);
    t.stop().unwrap();
}

#[test]
fn a_filter_passes_its_torrents_only_and_takes_v2_hashes() {
    let (t, udp, stats) = feed(|_| {});
    let (a, b, other) = (hash(0x11), hash(0x22), hash(0x33));
    let v2 = format!("{}{}", hex(b), "cd".repeat(12));
    let mut only = subscribe(
        stats,
        &format!("/events?info_hash={}&info_hash={v2}", hex(a)),
    )
    .unwrap();
    let mut all = subscribe(stats, "/events").unwrap();
    let mut c = Client::new(udp);
    c.announce(other, AnnounceEvent::Started, 0);
    c.announce(a, AnnounceEvent::Started, 0);
    c.announce(b, AnnounceEvent::Started, 0);
    let mut seen = Vec::new();
    for h in [a, b] {
        if !seen.iter().any(is(h)) {
            seen.extend(only.counts_until(is(h)));
        }
    }
    // The unfiltered one has `other`, so its round is out; one more change
    // of `a` is a round at least as late, and the filtered stream has no
    // `other` before it.
    all.counts_until(is(other));
    c.announce(a, AnnounceEvent::Stopped, 0);
    seen.extend(only.counts_until(|x| x.info_hash == hex(a) && x.seeders == 0));
    assert!(!seen.iter().any(is(other)), "{seen:?}");

    let bad = subscribe(stats, "/events?info_hash=123").err();
    assert_eq!(bad, Some(400));
    t.stop().unwrap();
}

#[test]
fn a_reader_that_stalls_is_sent_resync_and_closed_while_others_go_on() {
    let (t, udp, stats) = feed(|c| c.stats.events_interval_ms = 20);
    // Never read until it has been cut off, with a small receive buffer.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&stats.into()).unwrap();
    let stalled = TcpStream::from(socket);
    send_request(&stalled, "/events");
    let mut stalled = finish_subscribe(stalled).unwrap();
    let mut reader = subscribe(stats, "/events").unwrap();

    // About 1.6 MB of events (15000 torrents), read by `reader` as they
    // come, far more than the stalled one's bound.
    let s = t.stats().clone();
    let mut c = Client::new(udp);
    let mut read = Vec::new();
    let mut next = 0;
    while s.events.dropped_slow.get() == 0 {
        assert!(next < 60_000, "not cut off after {next} torrents changed");
        announce_all(&mut c, (next..next + 500).map(many));
        next += 500;
        while let Some(e) = reader.next_until(Instant::now() + Duration::from_millis(1)) {
            read.push(e);
        }
        // The endpoint answers at once meanwhile.
        let started = Instant::now();
        assert_eq!(get(stats, "/healthz").0, 200);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let (last, closed) = stalled.read_to_end(Duration::from_secs(5));
    assert!(closed, "the stalled reader is closed");
    assert_eq!(
        last.as_ref()
            .map(|e| matches!(e, Sse::Event { kind, .. } if kind == "resync")),
        Some(true),
        "the last thing said is resync: {last:?}"
    );
    assert!(
        stalled.bytes < 1 << 20,
        "bounded: {} bytes queued for it",
        stalled.bytes
    );
    eventually("the stalled one is gone", || {
        s.events.subscribers.get() == 1
    });

    // The one that reads is still there and gets everything.
    let last = many(next - 1);
    if !read.iter().filter_map(Sse::counts).any(|x| is(last)(&x)) {
        reader.counts_until(is(last));
    }
    assert!(!reader.closed);
    assert!(
        reader.bytes > stalled.bytes,
        "{} {}",
        reader.bytes,
        stalled.bytes
    );
    assert_eq!(s.events.dropped_slow.get(), 1);
    t.stop().unwrap();
}

#[test]
fn subscribers_above_the_cap_get_503_and_a_place_when_one_leaves() {
    let (t, _, stats) = feed(|c| c.stats.max_event_subscribers = 3);
    let mut subs: Vec<_> = (0..3)
        .map(|_| subscribe(stats, "/events").unwrap())
        .collect();
    assert_eq!(subscribe(stats, "/events").err(), Some(503));
    let s = t.stats().clone();
    assert_eq!(s.events.refused.get(), 1);
    subs.pop();
    eventually("a place is free", || s.events.subscribers.get() == 2);
    subs.push(subscribe(stats, "/events").unwrap());
    t.stop().unwrap();

    let (t, _, stats) = feed(|c| c.stats.max_event_subscribers = 0);
    assert_eq!(subscribe(stats, "/events").err(), Some(404));
    t.stop().unwrap();
}

/// The endpoint's 64 connections for requests are not a cap on
/// subscribers: 300 that connect and ask at once all get the stream, and a
/// request still gets an answer.
#[test]
fn many_subscribers_at_once_beside_the_request_connections() {
    let (t, udp, stats) = feed(|_| {});
    let streams: Vec<TcpStream> = (0..300)
        .map(|_| {
            let s = TcpStream::connect(stats).unwrap();
            send_request(&s, "/events");
            s
        })
        .collect();
    let mut subs: Vec<_> = streams
        .into_iter()
        .map(|s| finish_subscribe(s).unwrap())
        .collect();
    assert_eq!(get(stats, "/healthz").0, 200);
    assert_eq!(t.stats().events.subscribers.get(), 300);
    let h = hash(0x44);
    Client::new(udp).announce(h, AnnounceEvent::Started, 0);
    for sub in subs.iter_mut().step_by(37) {
        sub.counts_until(is(h));
    }
    t.stop().unwrap();
}

#[test]
fn an_idle_stream_gets_a_heartbeat() {
    let (t, _, stats) = feed(|c| c.stats.events_heartbeat = Duration::from_millis(100));
    let mut sub = subscribe(stats, "/events").unwrap();
    let mut seen = Vec::new();
    loop {
        match sub.next() {
            Some(Sse::Comment(c)) if c == "ping" => break,
            Some(other) => seen.push(other),
            None => panic!("no ping; saw {seen:?}"),
        }
    }
    t.stop().unwrap();
}

/// A round larger than any socket buffer (4000 torrents, ~450 kB) reaches
/// a subscriber that reads: the bound is on rounds behind, not bytes. (A
/// bound of 256 kB queued cut every subscriber off at the first busy round
/// of the benchmark.)
#[test]
fn a_round_larger_than_the_buffers_reaches_a_reader_whole() {
    let (t, udp, stats) = feed(|c| c.stats.events_interval_ms = 2000);
    let mut sub = subscribe(stats, "/events").unwrap();
    let mut c = Client::new(udp);
    announce_all(&mut c, (0..4000).map(many));
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 4000 {
        match sub.next_until(deadline) {
            Some(e) => {
                assert!(
                    !matches!(&e, Sse::Event { kind, .. } if kind == "resync"),
                    "cut off"
                );
                if let Some(x) = e.counts() {
                    seen.insert(x.info_hash);
                }
            }
            None => panic!("{} of 4000 events, then nothing", seen.len()),
        }
    }
    assert_eq!(t.stats().events.dropped_slow.get(), 0);
    t.stop().unwrap();
}
