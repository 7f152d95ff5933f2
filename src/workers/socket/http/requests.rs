//! An HTTP connection's requests and answers: parse what is buffered (one
//! request at a time, up to the connection's share of a round), check access
//! and hand announces and scrapes over like UDP ones, and encode the
//! bencoded answers (or failures) into the connection's write buffer.

use std::net::{IpAddr, SocketAddr};

use super::{Conn, Waiting, HTTP_SHARE};
use crate::access::Account;
use crate::protocol::http::{self, AnnounceReply, HttpError, HttpRequest, PeerFormat, Query};
use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;
use crate::swarm::{Announce, AnnounceCounts, PeerAddr};
use crate::workers::socket::SocketWorker;
use crate::workers::{shard_of, Origin, Reply, SwarmRequest};

/// The client's address behind a trusted proxy: the last entry of
/// X-Forwarded-For (the one the proxy added), or X-Real-IP.
fn forwarded_ip(value: Option<&str>) -> Option<IpAddr> {
    value?.rsplit(',').next()?.trim().parse().ok()
}

impl SocketWorker {
    /// Handles buffered requests, one at a time, while nothing is pending,
    /// up to the connection's share of this round.
    pub(in crate::workers::socket) fn http_process(&mut self, idx: usize) {
        loop {
            let Some(Some(c)) = self.http.conns.get_mut(idx) else {
                return;
            };
            if c.waiting.is_some() || c.wpos < c.wbuf.len() || c.close_after_write {
                return;
            }
            if c.round != self.http.round {
                c.round = self.http.round;
                c.handled = 0;
            }
            if c.handled >= HTTP_SHARE {
                // More waits for the next round (if there is more: the
                // next round finds out).
                if !c.deferred {
                    c.deferred = true;
                    self.http.deferred.push(idx as u32);
                }
                return;
            }
            let parsed = http::parse(&c.rbuf, &self.http.parse);
            let v6 = c.v6;
            match parsed {
                Ok(None) => {
                    if c.unread && !c.peer_closed {
                        // The rest of pipelined requests is still in the
                        // kernel: read it now that there is room.
                        if !self.http_read(idx) {
                            return;
                        }
                        continue;
                    }
                    if c.peer_closed {
                        self.http_close(idx);
                    } else if c.rbuf.len() > self.settings.http.max_head {
                        self.http_error(idx, HttpError::HeadTooLarge);
                    }
                    return;
                }
                Ok(Some((req, used))) => {
                    c.rbuf.drain(..used);
                    c.handled += 1;
                    // What is left (pipelined) came before now: the next
                    // head's clock starts now, not at its first byte.
                    c.head_since = (!c.rbuf.is_empty()).then_some(self.now);
                    self.http_handle(idx, req);
                }
                Err(e) => {
                    c.rbuf.clear();
                    let counters = self.stats.socket[self.id].http(v6);
                    match e {
                        HttpError::Failure(_) => counters.errors_request.inc(),
                        _ => counters.errors_malformed.inc(),
                    }
                    self.http_error(idx, e);
                }
            }
        }
    }

    fn http_handle(&mut self, idx: usize, req: HttpRequest) {
        let access = self.access.load().clone();
        let Some(Some(c)) = self.http.conns.get_mut(idx) else {
            return;
        };
        let v6 = c.v6;
        let counters = self.stats.socket[self.id].http(v6);
        // A client that closed its side still gets an answer to every
        // request it sent; the last one says the connection closes.
        let more = || matches!(http::parse(&c.rbuf, &self.http.parse), Ok(Some(_)));
        let keep_alive = req.keep_alive && (!c.peer_closed || more());
        // The client's address: the TCP peer, or what a trusted proxy says.
        let mut client_ip = c.peer.ip();
        if self.settings.http.real_ip_header.is_some()
            && self.settings.http.trusted_proxies.contains(&client_ip)
        {
            match forwarded_ip(req.forwarded_for.as_deref()) {
                Some(ip) => client_ip = ip,
                None => {
                    counters.errors_request.inc();
                    self.http_reply_failure(
                        idx,
                        "missing or invalid forwarded address",
                        keep_alive,
                    );
                    return;
                }
            }
        }
        let origin = Origin {
            addr: c.peer,
            reply: Reply::Http {
                conn: idx as u32,
                generation: c.generation,
            },
        };
        match req.query {
            Query::Announce(a) => {
                counters.requests_announce.inc();
                let account = match access.check(
                    &a.info_hash,
                    req.passkey.as_deref(),
                    req.token.as_deref().map(str::as_bytes),
                ) {
                    Ok(tally) => Account::boxed(tally, a.uploaded, a.downloaded),
                    Err(refusal) => {
                        refusal.count(counters);
                        self.http_reply_failure(idx, refusal.message(), keep_alive);
                        return;
                    }
                };
                if self.settings.http.allow_ip_param {
                    if let Some(ip) = a.ip {
                        client_ip = ip;
                    }
                }
                let peer = SocketAddr::new(client_ip, a.port);
                let format = if a.compact {
                    PeerFormat::Compact
                } else {
                    PeerFormat::Dictionary
                };
                let addr = PeerAddr::from_socket_addr(peer);
                c.waiting = Some(Waiting::Announce {
                    format,
                    keep_alive,
                    v6: matches!(addr, PeerAddr::V6(_)),
                    no_peer_id: a.no_peer_id,
                });
                let shard = shard_of(&a.info_hash, self.outgoing.len());
                self.outgoing[shard].push(SwarmRequest::Announce {
                    origin,
                    account,
                    peer_id: a.peer_id,
                    announce: Announce {
                        info_hash: a.info_hash,
                        addr,
                        event: a.event,
                        seeder: a.left == 0,
                        num_want: a.numwant.map_or(-1, |n| n.min(i32::MAX as u32) as i32),
                    },
                });
            }
            Query::Scrape(hashes) => {
                counters.requests_scrape.inc();
                if let Err(refusal) = access.check_scrape(req.passkey.as_deref()) {
                    refusal.count(counters);
                    self.http_reply_failure(idx, refusal.message(), keep_alive);
                    return;
                }
                c.waiting = Some(Waiting::Scrape { keep_alive });
                let started =
                    self.scrapes
                        .start(origin, &hashes, true, self.now, &mut self.outgoing, |h| {
                            access.allows(h)
                        });
                if !started {
                    counters.dropped_channel_full.inc();
                    c.waiting = None;
                    self.http_reply_failure(idx, "tracker busy, try again", keep_alive);
                }
            }
        }
        // Handed over with everything else read in this round of the event
        // loop (`work` sends the batches): one message per swarm worker per
        // round, not one per request.
    }

    /// The connection `conn` if it is still the one with `generation`.
    fn http_conn(&mut self, conn: u32, generation: u32) -> Option<&mut Conn> {
        match self.http.conns.get_mut(conn as usize) {
            Some(Some(c)) if c.generation == generation => Some(c),
            _ => None,
        }
    }

    pub(in crate::workers::socket) fn http_announce_reply(
        &mut self,
        conn: u32,
        generation: u32,
        counts: AnnounceCounts,
        peers: &[u8],
        ids: &[u8],
    ) {
        let reply = AnnounceReply {
            interval: self.settings.http.interval,
            min_interval: self.settings.http.min_interval,
            complete: counts.seeders,
            incomplete: counts.leechers,
        };
        let mut body = std::mem::take(&mut self.http.body);
        let Some(c) = self.http_conn(conn, generation) else {
            return;
        };
        let Some(Waiting::Announce {
            format,
            keep_alive,
            v6,
            no_peer_id,
        }) = c.waiting.take()
        else {
            return;
        };
        body.clear();
        // Peer ids are there only when the swarms keep them.
        let ids = if no_peer_id { &[][..] } else { ids };
        let per_peer = if v6 { 18 } else { 6 };
        let format = format.answer(no_peer_id, ids.len() == peers.len() / per_peer * 20);
        http::write_announce_body(&mut body, &reply, format, v6, peers, ids);
        http::write_response(&mut c.wbuf, "200 OK", keep_alive, &body);
        c.close_after_write = !keep_alive;
        let counters_v6 = c.v6;
        self.http.body = body;
        self.stats.socket[self.id]
            .http(counters_v6)
            .responses_announce
            .inc();
        self.http_after_reply(conn as usize);
    }

    pub(in crate::workers::socket) fn http_scrape_reply(
        &mut self,
        conn: u32,
        generation: u32,
        hashes: &[InfoHash],
        stats: &[ScrapeStats],
    ) {
        let mut body = std::mem::take(&mut self.http.body);
        let Some(c) = self.http_conn(conn, generation) else {
            return;
        };
        let Some(Waiting::Scrape { keep_alive }) = c.waiting.take() else {
            return;
        };
        let mut files: Vec<(InfoHash, ScrapeStats)> =
            hashes.iter().copied().zip(stats.iter().copied()).collect();
        body.clear();
        http::write_scrape_body(&mut body, &mut files);
        http::write_response(&mut c.wbuf, "200 OK", keep_alive, &body);
        c.close_after_write = !keep_alive;
        let v6 = c.v6;
        self.http.body = body;
        self.stats.socket[self.id].http(v6).responses_scrape.inc();
        self.http_after_reply(conn as usize);
    }

    /// A failure for a request that was handed over and then lost.
    pub(in crate::workers::socket) fn http_failure(
        &mut self,
        conn: u32,
        generation: u32,
        reason: &str,
    ) {
        let Some(c) = self.http_conn(conn, generation) else {
            return;
        };
        let keep_alive = match c.waiting.take() {
            Some(Waiting::Announce { keep_alive, .. }) | Some(Waiting::Scrape { keep_alive }) => {
                keep_alive
            }
            None => return,
        };
        self.http_reply_failure(conn as usize, reason, keep_alive);
        self.http_after_reply(conn as usize);
    }

    /// Queues a `failure reason` reply (HTTP 200, as clients expect).
    fn http_reply_failure(&mut self, idx: usize, reason: &str, keep_alive: bool) {
        let mut body = std::mem::take(&mut self.http.body);
        body.clear();
        http::write_failure_body(&mut body, reason);
        if let Some(Some(c)) = self.http.conns.get_mut(idx) {
            http::write_response(&mut c.wbuf, "200 OK", keep_alive, &body);
            c.close_after_write |= !keep_alive;
            let v6 = c.v6;
            self.stats.socket[self.id].http(v6).responses_error.inc();
        }
        self.http.body = body;
        self.http_write(idx);
    }

    fn http_error(&mut self, idx: usize, e: HttpError) {
        let (status, reason, close) = match e {
            HttpError::Failure(reason) => ("200 OK", reason, false),
            HttpError::BadRequest => ("400 Bad Request", "bad request", true),
            HttpError::HeadTooLarge => (
                "431 Request Header Fields Too Large",
                "request head too large",
                true,
            ),
            HttpError::MethodNotAllowed => ("405 Method Not Allowed", "only GET", true),
            HttpError::NotFound => (
                "404 Not Found",
                "not found: use /announce or /scrape",
                false,
            ),
        };
        let mut body = std::mem::take(&mut self.http.body);
        body.clear();
        http::write_failure_body(&mut body, reason);
        if let Some(Some(c)) = self.http.conns.get_mut(idx) {
            let keep_alive = !close && !c.peer_closed;
            http::write_response(&mut c.wbuf, status, keep_alive, &body);
            c.close_after_write |= !keep_alive;
            let v6 = c.v6;
            self.stats.socket[self.id].http(v6).responses_error.inc();
        }
        self.http.body = body;
        self.http_write(idx);
    }

    /// After a reply was queued: send it, then go on with the next request.
    fn http_after_reply(&mut self, idx: usize) {
        if self.http_write(idx) {
            self.http_process(idx);
        }
    }
}
