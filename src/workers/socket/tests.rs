//! A socket worker over real loopback sockets whose swarm side never
//! answers: what a full channel does to UDP and HTTP clients.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver};

use super::{SocketWorker, Sockets, WAKE_TOKEN};
use crate::config::{Config, Dispatch as DispatchChoice};
use crate::connection_id::ConnectionIds;
use crate::protocol::udp::{
    AnnounceRequest, ConnectRequest, ConnectionId, Request, Response, ScrapeRequest, TransactionId,
};
use crate::protocol::{AnnounceEvent, InfoHash, PeerId};
use crate::stats::Stats;
use crate::workers::dispatch::Dispatch;
use crate::workers::{RequestBatch, SharedSettings, Shutdown, Wake};

/// A running socket worker whose one swarm worker is `stuck`: a channel of
/// one batch that nobody reads.
struct Rig {
    udp: std::net::SocketAddr,
    http: std::net::SocketAddr,
    stats: Arc<Stats>,
    shutdown: Arc<Shutdown>,
    wakes: Arc<Vec<Wake>>,
    stuck: Receiver<RequestBatch>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Rig {
    fn start() -> Rig {
        let mut config = Config::default();
        config.workers.dispatch = DispatchChoice::Channel;
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        http.set_nonblocking(true).unwrap();
        let (udp_addr, http_addr) = (udp.local_addr().unwrap(), http.local_addr().unwrap());
        let poll = mio::Poll::new().unwrap();
        let wakes = Arc::new(vec![Wake {
            waker: mio::Waker::new(poll.registry(), WAKE_TOKEN).unwrap(),
            sleeping: Default::default(),
        }]);
        let (to_swarm, stuck) = bounded(1);
        // The answers never come: the sender side is dropped at once.
        let (_, from_swarm) = bounded(1);
        let stats = Arc::new(Stats::new(1, 1));
        let shutdown = Arc::new(Shutdown::new());
        let worker = SocketWorker::new(
            0,
            poll,
            Sockets {
                udp: vec![udp],
                http: vec![http],
            },
            ConnectionIds::new(),
            Dispatch::channel(0, vec![to_swarm], from_swarm),
            wakes.clone(),
            shutdown.clone(),
            stats.clone(),
            Arc::new(SharedSettings::new(crate::tracker::socket_settings(
                &config,
            ))),
            Instant::now(),
        )
        .unwrap();
        let thread = std::thread::spawn(move || worker.run().unwrap());
        Rig {
            udp: udp_addr,
            http: http_addr,
            stats,
            shutdown,
            wakes,
            stuck,
            thread: Some(thread),
        }
    }

    fn dropped(&self) -> u64 {
        let (v4, v6) = self.stats.udp_total(|c| &c.dropped_channel_full);
        let (h4, h6) = self.stats.http_total(|c| &c.dropped_channel_full);
        v4 + v6 + h4 + h6
    }

    /// Waits (bounded) until `done` holds.
    fn until(&self, what: &str, done: impl Fn(&Rig) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.request();
        let _ = self.wakes[0].waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn udp_client(tracker: std::net::SocketAddr) -> (UdpSocket, ConnectionId) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    Request::Connect(ConnectRequest {
        transaction_id: TransactionId(1),
    })
    .write(&mut out);
    s.send_to(&out, tracker).unwrap();
    let mut buf = [0u8; 64];
    let n = s.recv(&mut buf).unwrap();
    match Response::parse(&buf[..n]) {
        Some(Response::Connect { connection_id, .. }) => (s, connection_id),
        other => panic!("expected a connect answer, got {other:?}"),
    }
}

fn announce(s: &UdpSocket, id: ConnectionId, tracker: std::net::SocketAddr, n: u8) {
    let mut out = Vec::new();
    Request::Announce(AnnounceRequest {
        connection_id: id,
        transaction_id: TransactionId(n as u32),
        info_hash: InfoHash([n; 20]),
        peer_id: PeerId([n; 20]),
        downloaded: 0,
        left: 1,
        uploaded: 0,
        event: AnnounceEvent::Started,
        ip_address: 0,
        key: 0,
        num_want: -1,
        port: 6881,
        url_data: Vec::new(),
    })
    .write(&mut out);
    s.send_to(&out, tracker).unwrap();
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

#[test]
fn a_full_channel_drops_udp_announces_and_scrapes_and_counts_them() {
    let rig = Rig::start();
    let (client, id) = udp_client(rig.udp);
    // The first batch fills the channel (nobody reads it)...
    announce(&client, id, rig.udp, 1);
    rig.until("the first batch", |r| r.stuck.len() == 1);
    assert_eq!(rig.dropped(), 0);
    // ...so the next ones are dropped and counted, not queued or waited on.
    announce(&client, id, rig.udp, 2);
    rig.until("a dropped announce", |r| r.dropped() == 1);
    let mut out = Vec::new();
    Request::Scrape(ScrapeRequest {
        connection_id: id,
        transaction_id: TransactionId(9),
        info_hashes: vec![InfoHash([3; 20]), InfoHash([4; 20])],
    })
    .write(&mut out);
    client.send_to(&out, rig.udp).unwrap();
    rig.until("a dropped scrape", |r| r.dropped() == 2);
    // The worker still answers what it answers itself.
    let (_, again) = udp_client(rig.udp);
    assert_ne!(again.0, 0);
    assert_eq!(rig.stuck.len(), 1);
}

#[test]
fn a_full_channel_tells_http_clients_the_tracker_is_busy() {
    let rig = Rig::start();
    let (client, id) = udp_client(rig.udp);
    announce(&client, id, rig.udp, 1);
    rig.until("the first batch", |r| r.stuck.len() == 1);
    let hash = "%01".repeat(20);
    let reply = http_get(
        rig.http,
        &format!("/announce?info_hash={hash}&peer_id={hash}&port=6881&left=1"),
    );
    assert!(reply.contains("tracker busy, try again"), "{reply}");
    let reply = http_get(rig.http, &format!("/scrape?info_hash={hash}"));
    assert!(reply.contains("tracker busy, try again"), "{reply}");
    assert_eq!(rig.dropped(), 2);
}
