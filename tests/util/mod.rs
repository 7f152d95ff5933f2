//! Helpers shared by the end-to-end tests: a tracker on port 0 and a small
//! BEP 15 client. Receive timeouts here only turn a hang into a failure;
//! nothing waits on time to synchronise.

#![allow(dead_code)]

pub mod daemon;
pub mod events;
pub mod http;
pub mod nats;
pub mod postgres;
pub mod stats;
pub mod tokens;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use swarmd::protocol::udp::{
    AnnounceRequest, ConnectRequest, ConnectionId, Request, Response, ScrapeRequest, ScrapeStats,
    TransactionId,
};
use swarmd::protocol::{AnnounceEvent, InfoHash, PeerId};
use swarmd::stats::Stats;
use swarmd::{Config, Tracker};

/// A tracker listening on 127.0.0.1 and ::1, ports chosen by the kernel.
pub fn tracker_with(edit: impl FnOnce(&mut Config)) -> Tracker {
    let mut config = Config::default();
    config.udp.addresses = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    config.http.addresses = config.udp.addresses.clone();
    config.stats.address = "127.0.0.1:0".into();
    edit(&mut config);
    swarmd::start(&config).expect("tracker starts")
}

pub fn tracker() -> Tracker {
    tracker_with(|_| {})
}

/// Stops `t` and hands back its counters: once its workers have stopped,
/// they hold all that was counted, so a test reads them after this.
pub fn stopped(t: Tracker) -> Arc<Stats> {
    let s = t.stats().clone();
    t.stop().unwrap();
    s
}

pub struct Client {
    pub socket: UdpSocket,
    pub tracker: SocketAddr,
    pub connection_id: ConnectionId,
    next_tid: u32,
}

pub const TIMEOUT: Duration = Duration::from_secs(5);

impl Client {
    /// A client on a new socket of the tracker address's family.
    pub fn new(tracker: SocketAddr) -> Client {
        let bind: SocketAddr = if tracker.is_ipv6() {
            "[::1]:0".parse().unwrap()
        } else {
            "127.0.0.1:0".parse().unwrap()
        };
        Client::bound(tracker, bind)
    }

    pub fn bound(tracker: SocketAddr, bind: SocketAddr) -> Client {
        let socket = UdpSocket::bind(bind).unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut c = Client {
            socket,
            tracker,
            connection_id: ConnectionId(0),
            next_tid: 1,
        };
        c.connect();
        c
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    pub fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        TransactionId(self.next_tid)
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.tracker).unwrap();
    }

    pub fn send(&self, req: &Request) {
        let mut buf = Vec::new();
        req.write(&mut buf);
        self.send_raw(&buf);
    }

    pub fn recv_raw(&self) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let (n, from) = self.socket.recv_from(&mut buf).expect("a reply in time");
        assert_eq!(from, self.tracker);
        buf[..n].to_vec()
    }

    pub fn recv(&self) -> Response {
        let raw = self.recv_raw();
        Response::parse(&raw).expect("a well-formed response")
    }

    pub fn connect(&mut self) {
        let tid = self.tid();
        self.send(&Request::Connect(ConnectRequest {
            transaction_id: tid,
        }));
        match self.recv() {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                assert_eq!(transaction_id, tid);
                self.connection_id = connection_id;
            }
            other => panic!("expected connect, got {other:?}"),
        }
    }

    pub fn announce_request(
        &mut self,
        hash: InfoHash,
        event: AnnounceEvent,
        left: u64,
    ) -> AnnounceRequest {
        let port = self.port();
        AnnounceRequest {
            connection_id: self.connection_id,
            transaction_id: self.tid(),
            info_hash: hash,
            peer_id: PeerId([7; 20]),
            downloaded: 0,
            left,
            uploaded: 0,
            event,
            ip_address: 0,
            key: 1,
            num_want: -1,
            port,
            url_data: Vec::new(),
        }
    }

    /// Announces with our socket's port; returns (leechers, seeders, peers).
    pub fn announce(
        &mut self,
        hash: InfoHash,
        event: AnnounceEvent,
        left: u64,
    ) -> (u32, u32, Vec<SocketAddr>) {
        let req = self.announce_request(hash, event, left);
        self.announce_with(req)
    }

    /// Sends `req` as it is: Ok(the peers) or Err(the error message). An
    /// error is never longer than the request (no amplification).
    pub fn announce_result(&mut self, req: AnnounceRequest) -> Result<Vec<SocketAddr>, String> {
        let tid = req.transaction_id;
        let mut sent = Vec::new();
        Request::Announce(req).write(&mut sent);
        self.send_raw(&sent);
        let raw = self.recv_raw();
        match Response::parse(&raw).unwrap() {
            Response::Announce {
                transaction_id,
                peers,
                ..
            } => {
                assert_eq!(transaction_id, tid);
                Ok(decode_peers(&peers, self.tracker.is_ipv6()))
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                assert_eq!(transaction_id, tid);
                assert!(raw.len() <= sent.len(), "an error is never longer");
                Err(String::from_utf8(message).unwrap())
            }
            other => panic!("{other:?}"),
        }
    }

    pub fn announce_with(&mut self, req: AnnounceRequest) -> (u32, u32, Vec<SocketAddr>) {
        let tid = req.transaction_id;
        self.send(&Request::Announce(req));
        match self.recv() {
            Response::Announce {
                transaction_id,
                leechers,
                seeders,
                peers,
                ..
            } => {
                assert_eq!(transaction_id, tid);
                (
                    leechers,
                    seeders,
                    decode_peers(&peers, self.tracker.is_ipv6()),
                )
            }
            other => panic!("expected announce, got {other:?}"),
        }
    }

    pub fn scrape(&mut self, hashes: &[InfoHash]) -> Vec<ScrapeStats> {
        let tid = self.tid();
        self.send(&Request::Scrape(ScrapeRequest {
            connection_id: self.connection_id,
            transaction_id: tid,
            info_hashes: hashes.to_vec(),
        }));
        match self.recv() {
            Response::Scrape {
                transaction_id,
                stats,
            } => {
                assert_eq!(transaction_id, tid);
                stats
            }
            other => panic!("expected scrape, got {other:?}"),
        }
    }
}

/// The `interval` the tracker at `tracker` answers a new client's announce
/// of `hash` with: how the daemon tests see which settings are running.
pub fn announce_interval(tracker: SocketAddr, hash: InfoHash) -> u32 {
    let mut c = Client::new(tracker);
    let req = c.announce_request(hash, AnnounceEvent::Started, 0);
    c.send(&Request::Announce(req));
    match c.recv() {
        Response::Announce { interval, .. } => interval,
        other => panic!("expected announce, got {other:?}"),
    }
}

pub fn decode_peers(bytes: &[u8], v6: bool) -> Vec<SocketAddr> {
    let len = if v6 { 18 } else { 6 };
    assert_eq!(bytes.len() % len, 0, "peer list length");
    bytes
        .chunks(len)
        .map(|c| {
            let port = u16::from_be_bytes([c[len - 2], c[len - 1]]);
            let ip: std::net::IpAddr = if v6 {
                let mut a = [0u8; 16];
                a.copy_from_slice(&c[..16]);
                a.into()
            } else {
                [c[0], c[1], c[2], c[3]].into()
            };
            SocketAddr::new(ip, port)
        })
        .collect()
}

/// Whether a test that needs something of the machine (`present`) can run.
/// Off CI, where it may be missing, the test is skipped with a loud note
/// (`skip_note` says how to run it); on CI (`CI` set, where .ci/run provides
/// everything) it is a failure (`ci_failure`), so nothing is left untested
/// unnoticed.
pub fn can_run(present: bool, ci_failure: &str, skip_note: &str) -> bool {
    if !present {
        assert!(std::env::var_os("CI").is_none(), "{ci_failure}");
        eprintln!("SKIPPED: {skip_note}");
    }
    present
}

/// `python` (a path or a name on PATH) can import `module`.
pub fn python_imports(python: &str, module: &str) -> bool {
    std::process::Command::new(python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}
