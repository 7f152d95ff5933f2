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

pub fn run(o: &PingOptions) -> Result<ExitCode> {
    if o.http {
        return run_http(o);
    }
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
    let pop = Population::new(o.torrent + 1, 1, 1.0, o.seed);
    // Not a peer number `udp` ever uses.
    let peer = u64::MAX;
    let deadline = Instant::now() + o.wait;
    let mut rng = fastrand::Rng::new();
    while Instant::now() < deadline {
        if let Some(connection_id) = ask(&socket, &mut rng, |transaction_id| {
            Request::Connect(ConnectRequest { transaction_id })
        })
        .and_then(|r| match r {
            Response::Connect { connection_id, .. } => Some(connection_id),
            _ => None,
        }) {
            let announce = |transaction_id| {
                Request::Announce(AnnounceRequest {
                    connection_id,
                    transaction_id,
                    info_hash: pop.info_hash(o.torrent),
                    peer_id: pop.peer_id(peer),
                    downloaded: 0,
                    left: 0,
                    uploaded: 0,
                    event: AnnounceEvent::None,
                    ip_address: 0,
                    key: pop.key(peer),
                    num_want: 0,
                    port: pop.port(peer),
                    url_data: Vec::new(),
                })
            };
            if let Some(Response::Announce { .. }) = ask(&socket, &mut rng, announce) {
                return Ok(ExitCode::SUCCESS);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "swarmd-load ping: {} did not answer within {} s",
        o.target,
        o.wait.as_secs()
    );
    Ok(ExitCode::from(1))
}

fn run_http(o: &PingOptions) -> Result<ExitCode> {
    let pop = Population::new(o.torrent + 1, 1, 1.0, o.seed);
    let peer = u64::MAX;
    let mut request = Vec::new();
    http_wire::write_announce(
        &mut request,
        &o.target.to_string(),
        &Announce {
            info_hash: pop.info_hash(o.torrent),
            peer_id: pop.peer_id(peer),
            port: pop.port(peer),
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: AnnounceEvent::None,
            numwant: 0,
            key: pop.key(peer),
        },
    );
    let deadline = Instant::now() + o.wait;
    while Instant::now() < deadline {
        if ask_http(o.target, &request) == Some(Verdict::Announced { peers: 0 }) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "swarmd-load ping: {} did not answer an HTTP announce within {} s",
        o.target,
        o.wait.as_secs()
    );
    Ok(ExitCode::from(1))
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
