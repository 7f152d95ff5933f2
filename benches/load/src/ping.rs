//! `ping`: waits until a tracker really answers, for scripts that start one.
//! A bound port is not enough: opentracker, for one, answers connects (and
//! `stopped` announces) before its whitelist is loaded, so readiness means a
//! connect and then a plain announce both get valid answers. That announce
//! adds one peer, with an identity outside the simulated population. With
//! `--http` the announce goes over HTTP instead, on a new connection each
//! attempt.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use swarmd::protocol::udp::{AnnounceRequest, ConnectRequest, Request, Response, TransactionId};
use swarmd::protocol::AnnounceEvent;

use crate::check::{Expect, Kind, Verdict};
use crate::http_wire::{self, Framed};
use crate::model::Population;
use crate::options::PingOptions;
use crate::peers::Announce;

/// How long one attempt waits for its answer.
const ATTEMPT: Duration = Duration::from_millis(200);

/// The peer that announces: not a peer number `udp` or `http` ever uses.
const PEER: u64 = u64::MAX;

pub fn run(o: &PingOptions) -> Result<ExitCode> {
    let pop = Population::new(o.torrent + 1, 1, 1.0, o.seed);
    if o.http {
        run_http(o, &pop)
    } else {
        run_udp(o, &pop)
    }
}

/// Tries `answered` until it says yes or `--wait` runs out: exit 0, or 1
/// with a note on stderr that the tracker did not answer `what`.
fn until_answered(o: &PingOptions, what: &str, mut answered: impl FnMut() -> bool) -> ExitCode {
    let deadline = Instant::now() + o.wait;
    while Instant::now() < deadline {
        if answered() {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "swarmd-load ping: {} did not answer{what} within {} s",
        o.target,
        o.wait.as_secs()
    );
    ExitCode::from(1)
}

fn run_udp(o: &PingOptions, pop: &Population) -> Result<ExitCode> {
    let local: SocketAddr = if o.target.is_ipv6() {
        "[::1]:0".parse()?
    } else {
        "127.0.0.1:0".parse()?
    };
    let socket = UdpSocket::bind(local).context("binding a local socket")?;
    socket
        .connect(o.target)
        .with_context(|| format!("connecting to {}", o.target))?;
    socket
        .set_read_timeout(Some(ATTEMPT))
        .context("set_read_timeout")?;
    let mut rng = fastrand::Rng::new();
    Ok(until_answered(o, "", || {
        let connected = ask(&socket, &mut rng, |transaction_id| {
            Request::Connect(ConnectRequest { transaction_id })
        });
        let Some(Response::Connect { connection_id, .. }) = connected else {
            return false;
        };
        let announce = |transaction_id| {
            Request::Announce(AnnounceRequest {
                connection_id,
                transaction_id,
                info_hash: pop.info_hash(o.torrent),
                peer_id: pop.peer_id(PEER),
                downloaded: 0,
                left: 0,
                uploaded: 0,
                event: AnnounceEvent::None,
                ip_address: 0,
                key: pop.key(PEER),
                num_want: 0,
                port: pop.port(PEER),
                url_data: Vec::new(),
            })
        };
        matches!(
            ask(&socket, &mut rng, announce),
            Some(Response::Announce { .. })
        )
    }))
}

fn run_http(o: &PingOptions, pop: &Population) -> Result<ExitCode> {
    let mut request = Vec::new();
    http_wire::write_announce(
        &mut request,
        &o.target.to_string(),
        &Announce {
            torrent: o.torrent,
            info_hash: pop.info_hash(o.torrent),
            peer_id: pop.peer_id(PEER),
            port: pop.port(PEER),
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: AnnounceEvent::None,
            numwant: 0,
            key: pop.key(PEER),
        },
    );
    Ok(until_answered(o, " an HTTP announce", || {
        ask_http(o.target, &request) == Some(Verdict::Announced { peers: 0 })
    }))
}

/// Sends `request` on a new connection and judges the answer, if one comes
/// within [`ATTEMPT`].
fn ask_http(target: SocketAddr, request: &[u8]) -> Option<Verdict> {
    let mut stream = TcpStream::connect_timeout(&target, ATTEMPT).ok()?;
    stream.set_read_timeout(Some(ATTEMPT)).ok()?;
    stream.write_all(request).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match http_wire::split_response(&buf, 1 << 20) {
            Framed::Complete(r) => {
                let expect = Expect {
                    kind: Kind::Announce,
                    count: Some(0),
                };
                return Some(http_wire::judge(&r, expect));
            }
            Framed::Bad(_) => return None,
            Framed::Partial => {}
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Sends one request and returns the answer with the same transaction id, if
/// one comes within [`ATTEMPT`].
fn ask(
    socket: &UdpSocket,
    rng: &mut fastrand::Rng,
    request: impl Fn(TransactionId) -> Request,
) -> Option<Response> {
    let tid = TransactionId(rng.u32(..));
    let mut out = Vec::new();
    request(tid).write(&mut out);
    socket.send(&out).ok()?;
    let until = Instant::now() + ATTEMPT;
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let response = Response::parse(&buf[..n]);
                if response.as_ref().is_some_and(|r| transaction_id(r) == tid) {
                    return response;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    None
}

fn transaction_id(r: &Response) -> TransactionId {
    match r {
        Response::Connect { transaction_id, .. }
        | Response::Announce { transaction_id, .. }
        | Response::Scrape { transaction_id, .. }
        | Response::Error { transaction_id, .. } => *transaction_id,
    }
}
