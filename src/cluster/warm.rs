//! Warm-up: a node that starts asks `<subject>.warm` for the swarms, and
//! one live node (a queue group: one answers) sends them back to the
//! asker's inbox in the snapshot format, in chunks below the engine's
//! max_payload, each chunk a whole snapshot of its own (header, sections,
//! end) behind a message header. The asker turns each chunk's peers into
//! change records and applies them like remote changes.
//!
//! Why whole snapshots per chunk: each checks and decodes alone with the
//! one decoder, and a chunk lost or cut costs only its own peers. A chunk
//! holds whole torrents, so one torrent larger than max_payload (150k IPv4
//! peers at NATS's default 1 MiB) makes a chunk too large for one message:
//! such a chunk goes as several fragments ([`fragments`], [`Partial`]).
//! The header's `count` carries the flags: [`LAST`], [`MORE`].

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use futures_util::StreamExt;

use super::change::{self, Header, KIND_WARM};
use super::node::send_shares;
use crate::protocol::InfoHash;
use crate::snapshot::writer::SharedShard;
use crate::snapshot::{self, Encoder, PeerRecord, Sink};
use crate::stats::ClusterCounters;
use crate::workers::{shard_of, Control};

/// How long the asker waits for the first chunk, and between chunks,
/// before it goes on with what it has (no live node, or one that died).
const SILENCE: Duration = Duration::from_secs(3);
/// Peers exported per slice of a shard (the shard's lock is held for one).
const SLICE: usize = 4096;
/// In a warm message's `count`: the last chunk of the warm-up.
const LAST: u32 = 1;
/// In a warm message's `count`: more fragments of this chunk follow.
const MORE: u32 = 2;
/// Largest chunk put back together (a torrent of ~70M IPv4 peers): more
/// is refused rather than held.
const MAX_CHUNK: usize = 512 << 20;

/// The fragments of a chunk of `body` bytes for messages of at most `max`
/// bytes of body, with their flags; the last chunk's last fragment carries
/// [`LAST`].
pub(super) fn fragments(body: &[u8], max: usize, last: bool) -> Vec<(&[u8], u32)> {
    let pieces: Vec<&[u8]> = if body.is_empty() {
        vec![body]
    } else {
        body.chunks(max.max(1)).collect()
    };
    let n = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let more = i + 1 < n;
            let flags = if more {
                MORE
            } else if last {
                LAST
            } else {
                0
            };
            (p, flags)
        })
        .collect()
}

/// A chunk being put back together from its fragments.
#[derive(Default)]
pub(super) struct Partial {
    buf: Vec<u8>,
    /// A fragment was refused: the rest of this chunk is skipped.
    broken: bool,
}

impl Partial {
    /// One fragment; the whole chunk once its last fragment came (None
    /// before, or when it grew past [`MAX_CHUNK`]).
    pub(super) fn push(&mut self, body: &[u8], flags: u32) -> Option<Vec<u8>> {
        if self.buf.len() + body.len() > MAX_CHUNK {
            self.broken = true;
            self.buf = Vec::new();
        }
        if !self.broken {
            self.buf.extend_from_slice(body);
        }
        if flags & MORE != 0 {
            return None;
        }
        let whole = std::mem::take(&mut self.buf);
        (!std::mem::replace(&mut self.broken, false)).then_some(whole)
    }
}

/// Where this node's own warm-up is.
pub(super) enum Warming {
    /// Not asked yet (the engine was not reached yet).
    Idle,
    Waiting {
        sub: async_nats::Subscriber,
        /// The node whose chunks are taken (the first to answer).
        from: Option<String>,
        deadline: Instant,
        started: Instant,
        peers: u64,
        partial: Partial,
    },
    /// Warm (or cold with no one to ask); `true` until read once.
    Done(bool),
}

impl Warming {
    pub(super) fn new() -> Warming {
        Warming::Idle
    }

    pub(super) fn idle(&self) -> bool {
        matches!(self, Warming::Idle)
    }

    pub(super) fn waiting(&self) -> bool {
        matches!(self, Warming::Waiting { .. })
    }

    /// True once, right after the warm-up ended.
    pub(super) fn finished_now(&mut self) -> bool {
        match self {
            Warming::Done(fresh) => std::mem::replace(fresh, false),
            _ => false,
        }
    }

    pub(super) async fn next(&mut self) -> Option<async_nats::Message> {
        match self {
            Warming::Waiting { sub, .. } => sub.next().await,
            _ => std::future::pending().await,
        }
    }

    /// Asks the live nodes for their swarms.
    pub(super) async fn request(&mut self, client: &async_nats::Client, prefix: &str, node: &str) {
        let inbox = client.new_inbox();
        let sub = match client.subscribe(inbox.clone()).await {
            Ok(sub) => sub,
            Err(e) => {
                log::warn!("cluster: warm-up: cannot subscribe to an inbox: {e}");
                *self = Warming::Done(true);
                return;
            }
        };
        let asked = client
            .publish_with_reply(
                format!("{prefix}.warm"),
                inbox,
                node.as_bytes().to_vec().into(),
            )
            .await;
        if let Err(e) = asked {
            log::warn!("cluster: warm-up: cannot ask: {e}");
            *self = Warming::Done(true);
            return;
        }
        let now = Instant::now();
        *self = Warming::Waiting {
            sub,
            from: None,
            deadline: now + SILENCE,
            started: now,
            peers: 0,
            partial: Partial::default(),
        };
    }

    /// Gives up waiting after [`SILENCE`].
    pub(super) fn check_deadline(&mut self, counters: &ClusterCounters) {
        if let Warming::Waiting { deadline, .. } = self {
            if Instant::now() >= *deadline {
                self.finish(counters, "no more answer in time");
            }
        }
    }

    fn finish(&mut self, counters: &ClusterCounters, why: &str) {
        if let Warming::Waiting {
            from,
            started,
            peers,
            ..
        } = self
        {
            let ms = started.elapsed().as_millis() as u64;
            counters.warm_duration_ms.store(ms, Relaxed);
            match from {
                Some(from) => {
                    log::info!("cluster: warm-up from {from}: {peers} peers in {ms} ms ({why})")
                }
                None => {
                    log::info!("cluster: warm-up: no live node answered ({why}); starting cold")
                }
            }
        }
        *self = Warming::Done(true);
    }

    /// One message on the inbox: a chunk of some node's swarms, or the
    /// engine saying that no node listens.
    pub(super) fn chunk(
        &mut self,
        msg: &async_nats::Message,
        controls: &[Sender<Control>],
        counters: &ClusterCounters,
    ) {
        let Warming::Waiting {
            from,
            deadline,
            peers,
            partial,
            ..
        } = self
        else {
            return;
        };
        if msg.status.is_some() || msg.payload.is_empty() {
            // "No responders": this is the first node.
            self.finish(counters, "no node listens");
            return;
        }
        let Some((header, body)) = Header::read(&msg.payload) else {
            counters.malformed.fetch_add(1, Relaxed);
            return;
        };
        if header.kind != KIND_WARM {
            return;
        }
        match from {
            Some(f) if f != header.node => return,
            Some(_) => {}
            None => *from = Some(header.node.to_string()),
        }
        *deadline = Instant::now() + SILENCE;
        let Some(whole) = partial.push(body, header.count) else {
            return;
        };
        let mut sink = ToRecords {
            split: vec![Vec::new(); controls.len()],
            counts: vec![0; controls.len()],
            current: None,
        };
        match snapshot::decode(&whole, &mut sink) {
            Ok(_) => {
                let n: u64 = sink.counts.iter().sum();
                *peers += n;
                counters.warm_peers.fetch_add(n, Relaxed);
                send_shares(controls, &mut sink.split, &sink.counts, 0, counters, true);
            }
            Err(e) => {
                counters.malformed.fetch_add(1, Relaxed);
                log::warn!(
                    "cluster: warm-up chunk {} from {}: {e}",
                    header.seq,
                    header.node
                );
            }
        }
        if header.count & LAST != 0 {
            self.finish(counters, "complete");
        }
    }
}

/// Decoded torrents and peers as change records, by shard.
struct ToRecords {
    split: Vec<Vec<u8>>,
    counts: Vec<u64>,
    current: Option<(InfoHash, usize)>,
}

impl Sink for ToRecords {
    fn torrent(&mut self, info_hash: InfoHash, completed: u32) {
        let shard = shard_of(&info_hash, self.split.len());
        self.current = Some((info_hash, shard));
        if completed > 0 {
            change::put_completed(&mut self.split[shard], &info_hash, completed);
        }
    }

    fn peer(&mut self, p: &PeerRecord<'_>) {
        let Some((hash, shard)) = self.current else {
            return;
        };
        if p.left == 0 {
            return;
        }
        change::put_peer(
            &mut self.split[shard],
            &hash,
            &p.addr,
            change::EV_UPDATE,
            p.seeder,
            p.left,
        );
        self.counts[shard] += 1;
    }
}

/// Sends this node's swarms to `reply`, chunk by chunk.
pub(super) async fn answer(
    client: &async_nats::Client,
    reply: &async_nats::Subject,
    node: &str,
    peer_timeout: u32,
    shards: &[SharedShard],
) {
    let started = Instant::now();
    let header = snapshot::Header {
        peer_ids: false,
        time_unit: snapshot::Header::unit_for(peer_timeout),
        written_at: snapshot::file::unix_now(),
        shards: shards.len() as u32,
    };
    // Half the engine's limit: a chunk is closed once past it, and one
    // slice (SLICE peers, ~41 bytes each at worst) never fills the rest.
    let limit = (client.max_payload() / 2).max(64 * 1024);
    let mut chunks = Chunks {
        client,
        reply,
        node,
        seq: 0,
        peers: 0,
    };
    let mut encoder = None;
    let mut size = 0usize;
    for (i, shard) in shards.iter().enumerate() {
        let mut from = Some(0);
        while let Some(at) = from {
            let enc = encoder.get_or_insert_with(|| Encoder::new(Vec::new(), header));
            let Ok(enc) = enc else { return };
            let mut section = enc.section(i as u32);
            from = shard.export(at, SLICE, &mut section);
            size += section.len();
            chunks.peers += section.peers();
            if enc.write(&mut section).is_err() {
                return;
            }
            if size >= limit {
                if let Some(Ok(enc)) = encoder.take() {
                    chunks.send(enc, false).await;
                }
                size = 0;
            }
        }
    }
    let enc = encoder.unwrap_or_else(|| Encoder::new(Vec::new(), header));
    if let Ok(enc) = enc {
        chunks.send(enc, true).await;
    }
    log::info!(
        "cluster: warmed a node: {} peers in {} chunks, {} ms",
        chunks.peers,
        chunks.seq,
        started.elapsed().as_millis()
    );
}

struct Chunks<'a> {
    client: &'a async_nats::Client,
    reply: &'a async_nats::Subject,
    node: &'a str,
    seq: u64,
    peers: u64,
}

impl Chunks<'_> {
    async fn send(&mut self, enc: Encoder<Vec<u8>>, last: bool) {
        let Ok((body, _)) = enc.finish() else { return };
        // Room for the header: at most 278 bytes.
        let max = self.client.max_payload().saturating_sub(512).max(256);
        for (piece, flags) in fragments(&body, max, last) {
            let mut msg = Vec::with_capacity(300 + piece.len());
            Header {
                kind: KIND_WARM,
                node: self.node,
                seq: self.seq,
                sent_at_us: change::unix_micros(),
                count: flags,
            }
            .write(&mut msg);
            msg.extend_from_slice(piece);
            if let Err(e) = self.client.publish(self.reply.clone(), msg.into()).await {
                log::warn!("cluster: warm-up answer: {e}");
            }
        }
        self.seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A torrent larger than max_payload made one warm chunk too large for
    /// a message; the engine refused it and its peers never came (seen at
    /// 5M peers: 163k lost). Fragments put back together are the chunk.
    #[test]
    fn a_chunk_larger_than_a_message_goes_in_fragments() {
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        for (max, last) in [(1000, true), (3333, false), (10_000, true), (20_000, false)] {
            let parts = fragments(&body, max, last);
            assert!(parts.iter().all(|(p, _)| p.len() <= max));
            let mut partial = Partial::default();
            let mut got = None;
            for (i, (p, flags)) in parts.iter().enumerate() {
                assert_eq!(flags & LAST != 0, last && i + 1 == parts.len());
                got = partial.push(p, *flags);
                assert_eq!(got.is_some(), i + 1 == parts.len());
            }
            assert_eq!(got.unwrap(), body);
        }
        assert_eq!(fragments(&[], 10, true), vec![(&[][..], LAST)]);
    }
}
