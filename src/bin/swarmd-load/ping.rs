//! `ping`: waits until a tracker really answers, for scripts that start one.
//! A bound port is not enough: opentracker, for one, answers connects (and
//! `stopped` announces) before its whitelist is loaded, so readiness means a
//! connect and then a plain announce both get valid answers. That announce
//! adds one peer, with an identity outside the simulated population.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use swarmd::protocol::udp::{AnnounceRequest, ConnectRequest, Request, Response, TransactionId};
use swarmd::protocol::AnnounceEvent;

use crate::model::Population;
use crate::options::PingOptions;

/// How long one attempt waits for its answer.
const ATTEMPT: Duration = Duration::from_millis(200);

pub fn run(o: &PingOptions) -> Result<ExitCode> {
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
