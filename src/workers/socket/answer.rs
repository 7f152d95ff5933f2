//! The way back: a socket worker encodes and sends what the shards
//! answered, finishes the scrapes whose parts are all in, and refuses what
//! could not be handed over (a full channel) or came back too late.

use std::os::fd::AsRawFd;

use super::SocketWorker;
use crate::protocol::udp::{self, TransactionId};
use crate::stats::FamilyCounters;
use crate::workers::scrape::Finished;
use crate::workers::{Origin, Reply, ResponseBatch, SwarmRequest, SwarmResponse};

impl SocketWorker {
    /// A batch that could not be handed over: count it, give up its scrapes,
    /// tell its HTTP clients.
    pub(super) fn dropped(&mut self, mut requests: Vec<SwarmRequest>) {
        // Counted before the client is told, so whoever sees the answer
        // sees the count.
        for r in requests.drain(..) {
            match r {
                SwarmRequest::Announce { origin, .. } => {
                    self.counters(origin).dropped_channel_full.inc();
                    if let Reply::Http { conn, generation } = origin.reply {
                        self.http_failure(conn, generation, "tracker busy, try again");
                    }
                }
                SwarmRequest::ScrapePart { pending, .. } => {
                    let Some(origin) = self.scrapes.origin(pending) else {
                        continue;
                    };
                    self.counters(origin).dropped_channel_full.inc();
                    if let Some(finished) = self.scrapes.part_lost(pending) {
                        self.finish_scrape(finished);
                    }
                }
            }
        }
        self.dispatch.recycle_requests(requests);
    }

    pub(super) fn counters(&self, origin: Origin) -> &FamilyCounters {
        let c = &self.stats.socket[self.id];
        match origin.reply {
            Reply::Udp { .. } => c.udp(origin.is_v6()),
            Reply::Http { .. } => c.http(origin.is_v6()),
        }
    }

    /// Answers a scrape whose parts are all in (or lost).
    pub(super) fn finish_scrape(&mut self, p: Finished) {
        match p.origin.reply {
            Reply::Udp {
                socket,
                transaction_id,
            } => {
                if p.failed {
                    return;
                }
                if let Some(entry) = self.sockets.get_mut(socket as usize) {
                    entry.queue.push(p.origin.addr, |buf| {
                        udp::write_scrape(buf, TransactionId(transaction_id), &p.stats)
                    });
                    self.stats.socket[self.id]
                        .udp(entry.v6)
                        .responses_scrape
                        .inc();
                }
            }
            Reply::Http { conn, generation } => {
                if p.failed {
                    self.http_failure(conn, generation, "tracker busy, try again");
                } else {
                    self.http_scrape_reply(conn, generation, &p.hashes, &p.stats);
                }
            }
        }
    }

    /// Encodes and sends the answers that are ready.
    pub(super) fn answer(&mut self) {
        while let Some(batch) = self.dispatch.try_response() {
            self.answer_batch(batch);
        }
        self.flush_udp();
    }

    /// Sends the queued UDP answers.
    pub(super) fn flush_udp(&mut self) {
        for entry in &mut self.sockets {
            if entry.queue.is_empty() {
                continue;
            }
            let (_, bytes, dropped) = entry.queue.flush(entry.socket.as_raw_fd());
            let c = self.stats.socket[self.id].udp(entry.v6);
            c.bytes_sent.add(bytes as u64);
            c.dropped_send.add(dropped as u64);
        }
    }

    pub(super) fn answer_batch(&mut self, mut batch: ResponseBatch) {
        let interval = self.settings.interval;
        let mut responses = std::mem::take(&mut batch.responses);
        for response in responses.drain(..) {
            match response {
                SwarmResponse::Announce {
                    origin,
                    counts,
                    peers,
                    ids,
                } => {
                    let peers = &batch.peers[peers.0 as usize..peers.1 as usize];
                    let ids = &batch.peer_ids[ids.0 as usize..ids.1 as usize];
                    match origin.reply {
                        Reply::Udp {
                            socket,
                            transaction_id,
                        } => {
                            let Some(entry) = self.sockets.get_mut(socket as usize) else {
                                continue;
                            };
                            entry.queue.push(origin.addr, |buf| {
                                udp::write_announce(
                                    buf,
                                    TransactionId(transaction_id),
                                    interval,
                                    counts.leechers,
                                    counts.seeders,
                                    peers,
                                )
                            });
                            self.stats.socket[self.id]
                                .udp(entry.v6)
                                .responses_announce
                                .inc();
                        }
                        Reply::Http { conn, generation } => {
                            self.http_announce_reply(conn, generation, counts, peers, ids);
                        }
                    }
                }
                SwarmResponse::ScrapePart { pending, stats } => {
                    if let Some(finished) = self.scrapes.part_answered(pending, stats) {
                        self.finish_scrape(finished);
                    }
                }
            }
        }
        batch.responses = responses;
        self.dispatch.recycle(batch);
    }

    /// Gives up scrapes whose parts did not all come back in time.
    pub(super) fn expire_scrapes(&mut self) {
        let mut given_up = Vec::new();
        self.scrapes.expire(self.now, |f| given_up.push(f));
        for f in given_up {
            self.counters(f.origin).dropped_scrape_timeout.inc();
            self.finish_scrape(f);
        }
    }
}
