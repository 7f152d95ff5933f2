//! The do-nothing responder: the cheapest valid BEP 15 server there can be
//! (one blocking `recv_from` and one `send_to` per datagram, one thread, no
//! state). What it sustains is the ceiling of the machine and of the load
//! generator, against which real trackers are compared.
//!
//! By default it answers an announce with no peers: 20 bytes. With
//! `--peers N` it answers with up to N made-up peers (fewer if the request
//! wants fewer), so that its answers can be as long as a tracker's: a tracker
//! has to send the peers it finds, and the kernel's cost of a datagram grows
//! with its length.

use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use swarmd::protocol::udp::{
    write_announce, write_connect, write_scrape, ConnectionId, ScrapeStats, TransactionId,
    ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_SCRAPE, ANNOUNCE_LEN, PROTOCOL_ID, SCRAPE_HEADER_LEN,
};

use crate::options::ResponderOptions;

/// BEP 15 allows about 74 info hashes in one scrape.
const MAX_SCRAPE: usize = 74;
const ZEROS: [ScrapeStats; MAX_SCRAPE] = [ScrapeStats {
    seeders: 0,
    completed: 0,
    leechers: 0,
}; MAX_SCRAPE];

/// Made-up peers for announce answers: `n` entries of `entry` bytes (6 for
/// IPv4, 18 for IPv6), on 127.0.0.2 or ::2, ports from 10000 up.
pub fn made_up_peers(n: usize, entry: usize) -> Vec<u8> {
    let mut peers = Vec::with_capacity(n * entry);
    for i in 0..n {
        let port = 10_000u16.wrapping_add(i as u16);
        if entry == 6 {
            peers.extend_from_slice(&[127, 0, 0, 2]);
        } else {
            peers.extend_from_slice(&std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 2).octets());
        }
        peers.extend_from_slice(&port.to_be_bytes());
    }
    peers
}

/// Writes the answer to `request` into `out`, or returns false if it deserves
/// none. An announce gets as many of `peers` (entries of `entry` bytes) as
/// it wants, all of them if it wants the default.
pub fn answer(request: &[u8], peers: &[u8], entry: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    if request.len() < 16 {
        return false;
    }
    let word = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&request[at..at + 4]);
        u32::from_be_bytes(b)
    };
    let transaction_id = TransactionId(word(12));
    match word(8) {
        ACTION_CONNECT if ((u64::from(word(0)) << 32) | u64::from(word(4))) == PROTOCOL_ID => {
            write_connect(out, transaction_id, ConnectionId(0x5357_4152_4d44_0001));
        }
        ACTION_ANNOUNCE if request.len() >= ANNOUNCE_LEN => {
            // num_want, a signed 32-bit count at offset 92; -1 or 0: default.
            let wanted = word(92) as i32;
            let have = peers.len() / entry;
            let n = if wanted <= 0 {
                have
            } else {
                have.min(wanted as usize)
            };
            write_announce(out, transaction_id, 1800, 0, n as u32, &peers[..n * entry]);
        }
        ACTION_SCRAPE => {
            let n = (request.len() - SCRAPE_HEADER_LEN) / 20;
            if n == 0 || n > MAX_SCRAPE {
                return false;
            }
            write_scrape(out, transaction_id, &ZEROS[..n]);
        }
        _ => return false,
    }
    true
}

pub fn run(o: &ResponderOptions) -> Result<()> {
    let socket = Socket::new(
        Domain::for_address(o.bind),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .context("creating a UDP socket")?;
    // A deep receive buffer, as a tuned tracker would have, so a burst from the
    // load generator is queued rather than dropped (the kernel caps it at
    // net.core.rmem_max).
    let _ = socket.set_recv_buffer_size(8 << 20);
    socket
        .bind(&o.bind.into())
        .with_context(|| format!("binding {}", o.bind))?;
    let socket: UdpSocket = socket.into();
    // Wake now and then to notice the end of the run; a timeout costs nothing
    // per datagram.
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .context("set_read_timeout")?;
    let local = socket.local_addr().context("local_addr")?;
    eprintln!(
        "responder: listening on {local} for {} s",
        o.duration.as_secs()
    );
    let end = Instant::now() + o.duration;
    let mut buf = [0u8; 2048];
    let entry = if o.bind.is_ipv4() { 6 } else { 18 };
    let peers = made_up_peers(o.peers, entry);
    let mut out = Vec::with_capacity(1024 + peers.len());
    let (mut answered, mut dropped, mut errors) = (0u64, 0u64, 0u64);
    while Instant::now() < end {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        if !answer(&buf[..len], &peers, entry, &mut out) {
            dropped += 1;
            continue;
        }
        match socket.send_to(&out, from) {
            Ok(_) => answered += 1,
            Err(_) => errors += 1,
        }
    }
    eprintln!("responder: answered {answered}, dropped {dropped}, errors {errors}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmd::protocol::udp::{
        AnnounceRequest, ConnectRequest, Request, Response, ScrapeRequest,
    };
    use swarmd::protocol::{AnnounceEvent, InfoHash, PeerId};

    fn reply(req: Request) -> Option<Response> {
        reply_with(req, &[])
    }

    fn reply_with(req: Request, peers: &[u8]) -> Option<Response> {
        let mut bytes = Vec::new();
        req.write(&mut bytes);
        let mut out = Vec::new();
        answer(&bytes, peers, 6, &mut out).then(|| Response::parse(&out))?
    }

    fn announce(transaction_id: TransactionId, num_want: i32) -> Request {
        Request::Announce(AnnounceRequest {
            connection_id: ConnectionId(1),
            transaction_id,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            downloaded: 0,
            left: 0,
            uploaded: 0,
            event: AnnounceEvent::None,
            ip_address: 0,
            key: 0,
            num_want,
            port: 1,
            url_data: Vec::new(),
        })
    }

    #[test]
    fn answers_each_kind_minimally() {
        let tid = TransactionId(77);
        assert!(matches!(
            reply(Request::Connect(ConnectRequest { transaction_id: tid })),
            Some(Response::Connect { transaction_id, .. }) if transaction_id == tid
        ));
        assert!(matches!(
            reply(announce(tid, 30)),
            Some(Response::Announce { peers, .. }) if peers.is_empty()
        ));
        let scrape = ScrapeRequest {
            connection_id: ConnectionId(1),
            transaction_id: tid,
            info_hashes: vec![InfoHash([3; 20]); 5],
        };
        assert!(matches!(
            reply(Request::Scrape(scrape)),
            Some(Response::Scrape { stats, .. }) if stats.len() == 5
        ));
        let mut out = Vec::new();
        assert!(!answer(&[0u8; 15], &[], 6, &mut out));
        assert!(
            !answer(&[0u8; 16], &[], 6, &mut out),
            "connect without the magic"
        );
    }

    #[test]
    fn answers_announces_with_as_many_made_up_peers_as_wanted() {
        let peers = made_up_peers(30, 6);
        assert_eq!(peers.len(), 180);
        for (num_want, expect) in [(-1, 30), (0, 30), (8, 8), (30, 30), (200, 30)] {
            match reply_with(announce(TransactionId(9), num_want), &peers) {
                Some(Response::Announce {
                    peers: got,
                    seeders,
                    ..
                }) => {
                    assert_eq!(got.len(), expect * 6, "num_want {num_want}");
                    assert_eq!(seeders as usize, expect);
                    assert_eq!(got[..6], [127, 0, 0, 2, 0x27, 0x10]);
                }
                other => panic!("num_want {num_want}: {other:?}"),
            }
        }
        let v6 = made_up_peers(3, 18);
        assert_eq!(v6.len(), 54);
        assert_eq!(
            v6[18..34],
            std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 2).octets()
        );
        assert_eq!(v6[34..36], 10_001u16.to_be_bytes());
    }
}
