//! Warm-up: a node that starts asks `<subject>.warm` for the swarms, and
//! one live node (a queue group: one answers) sends them back to the
//! asker's inbox in the snapshot format, in chunks below the engine's
//! max_payload, each chunk a whole snapshot of its own (header, sections,
//! end) behind a message header. The asker turns each chunk's peers into
//! change records and applies them like remote changes.
//!
//! Why whole snapshots per chunk: each checks and decodes alone with the
//! one decoder, and a chunk lost or cut costs only its own peers.

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
        let mut sink = ToRecords {
            split: vec![Vec::new(); controls.len()],
            counts: vec![0; controls.len()],
            current: None,
        };
        match snapshot::decode(body, &mut sink) {
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
        *deadline = Instant::now() + SILENCE;
        if header.count == 1 {
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
        let mut msg = Vec::with_capacity(64 + body.len());
        Header {
            kind: KIND_WARM,
            node: self.node,
            seq: self.seq,
            sent_at_us: change::unix_micros(),
            count: last as u32,
        }
        .write(&mut msg);
        msg.extend_from_slice(&body);
        if let Err(e) = self.client.publish(self.reply.clone(), msg.into()).await {
            log::warn!("cluster: warm-up answer: {e}");
        }
        self.seq += 1;
    }
}
