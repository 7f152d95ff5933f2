//! The `cluster` thread's loop, on its own current-thread tokio runtime:
//! connects to the engine (in the background, with backoff), publishes the
//! shards' records in batches, applies the other nodes' batches to the
//! shards, warms this node at start and answers other nodes' warm-ups.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures_util::StreamExt;

use super::change::{self, Header, Records, KIND_CHANGES};
use super::warm::{self, Warming};
use super::{Node, RemoteBatch};
use crate::log_limit::LogLimit;
use crate::stats::ClusterCounters;
use crate::workers::{shard_of, Control};

/// How often the shards' records are collected and published. Why a tick
/// rather than a wake-up per batch: a wake-up is a system call on the
/// shard's side, and the hot path stays free of it; 2 ms adds at most that
/// much to the lag.
const TICK: Duration = Duration::from_millis(2);
/// Largest body of one published message, well under NATS's default
/// max_payload (1 MiB): about 9000 IPv4 changes.
const MAX_BODY: usize = 256 * 1024;

/// Wait before connection attempt `n` (counted from 1 since the last
/// success, as async-nats counts): the first at once (a restarted engine is
/// back in the time a client takes to notice), then 1 s, doubling, at most
/// 30 s.
pub(super) fn backoff(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doubling = (attempts - 2).min(5) as u32;
    Duration::from_secs(1u64 << doubling).min(Duration::from_secs(30))
}

pub(super) async fn run(
    node: Node,
    from_shards: Receiver<Records>,
    spare: Sender<Vec<u8>>,
    counters: Arc<ClusterCounters>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let config = &node.config;
    let prefix = &config.subject;
    let mut down_log = LogLimit::per_minute();
    let client = loop {
        // With retry_on_initial_connect this returns at once and connects
        // in the background; it fails only on an unusable URL or options.
        let options = async_nats::ConnectOptions::new()
            .name(format!("swarmd {}", config.node))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(backoff);
        match options.connect(config.url.as_str()).await {
            Ok(client) => break client,
            Err(e) => {
                down_log.log(|n| {
                    log::error!(
                        "cluster: cannot use the engine at {}: {e} ({n} more since the last line)",
                        config.url
                    )
                });
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        }
    };
    let mut changes = match client.subscribe(format!("{prefix}.changes.*")).await {
        Ok(s) => s,
        Err(e) => {
            log::error!("cluster: cannot subscribe to {prefix}.changes.*: {e}");
            return;
        }
    };
    let mut publisher = Publisher {
        client: &client,
        subject: format!("{prefix}.changes.{}", config.node),
        node: &config.node,
        seq: 0,
        body: Vec::new(),
        count: 0,
        counters: &counters,
        spare,
    };
    let mut warming = Warming::new();
    // Answers warm-ups once this node is warm itself (so a node never
    // hands on half of what it has); a queue group: one node answers each.
    let mut warm_requests: Option<async_nats::Subscriber> = None;
    let mut connected = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut split: Vec<Vec<u8>> = vec![Vec::new(); node.controls.len()];
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let now_connected = client.connection_state() == State::Connected;
                if now_connected != connected {
                    connected = now_connected;
                    counters.connected.store(connected as u64, Relaxed);
                    if connected {
                        log::info!("cluster: connected to the engine at {}", config.url);
                    } else {
                        down_log.log(|n| log::warn!(
                            "cluster: engine at {} unreachable; answering from local state, \
                             retrying ({n} more since the last line)", config.url));
                    }
                }
                publisher.collect(&from_shards, connected).await;
                if connected && warming.idle() {
                    warming.request(&client, prefix, &config.node).await;
                }
                if warming.finished_now() {
                    match client.queue_subscribe(format!("{prefix}.warm"), "warm".into()).await {
                        Ok(s) => warm_requests = Some(s),
                        Err(e) => log::error!("cluster: cannot subscribe to {prefix}.warm: {e}"),
                    }
                }
                warming.check_deadline(&counters);
            }
            Some(msg) = changes.next() => {
                apply(&msg.payload, &config.node, &node.controls, &counters, &mut split);
            }
            Some(msg) = warming.next(), if warming.waiting() => {
                warming.chunk(&msg, &node.controls, &counters);
            }
            Some(msg) = next_or_pending(&mut warm_requests) => {
                if let Some(reply) = msg.reply {
                    warm::answer(&client, &reply, &config.node, node.peer_timeout, &node.shards).await;
                }
            }
        }
    }
    // Stopping: what the shards recorded last goes out, if it can.
    publisher.collect(&from_shards, connected).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
    counters.connected.store(0, Relaxed);
}

async fn next_or_pending(sub: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The shards' records, into messages on this node's subject.
struct Publisher<'a> {
    client: &'a async_nats::Client,
    subject: String,
    node: &'a str,
    seq: u64,
    body: Vec<u8>,
    count: u32,
    counters: &'a ClusterCounters,
    spare: Sender<Vec<u8>>,
}

impl Publisher<'_> {
    /// Takes every batch waiting from the shards and publishes them, many
    /// to a message; while the engine is down they are counted, not kept
    /// (a peer re-announces within an interval anyway).
    async fn collect(&mut self, from_shards: &Receiver<Records>, connected: bool) {
        while let Ok(records) = from_shards.try_recv() {
            if !connected {
                self.counters
                    .unpublished
                    .fetch_add(records.count as u64, Relaxed);
            } else {
                if self.body.len() + records.bytes.len() > MAX_BODY {
                    self.send().await;
                }
                self.body.extend_from_slice(&records.bytes);
                self.count += records.count;
            }
            let mut bytes = records.bytes;
            bytes.clear();
            let _ = self.spare.try_send(bytes);
        }
        self.send().await;
    }

    async fn send(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut msg = Vec::with_capacity(64 + self.body.len());
        Header {
            kind: KIND_CHANGES,
            node: self.node,
            seq: self.seq,
            sent_at_us: change::unix_micros(),
            count: self.count,
        }
        .write(&mut msg);
        msg.extend_from_slice(&self.body);
        match self.client.publish(self.subject.clone(), msg.into()).await {
            Ok(()) => {
                self.counters
                    .published
                    .fetch_add(self.count as u64, Relaxed);
                self.counters.batches_published.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.counters
                    .unpublished
                    .fetch_add(self.count as u64, Relaxed);
            }
        }
        self.seq += 1;
        self.body.clear();
        self.count = 0;
    }
}

/// A message of another node's changes: split by shard, each share to its
/// swarm worker (a full queue drops the share, counted).
fn apply(
    payload: &[u8],
    me: &str,
    controls: &[Sender<Control>],
    counters: &ClusterCounters,
    split: &mut [Vec<u8>],
) {
    let Some((header, mut body)) = Header::read(payload) else {
        counters.malformed.fetch_add(1, Relaxed);
        return;
    };
    if header.node == me || header.kind != KIND_CHANGES {
        return;
    }
    counters.batches_received.fetch_add(1, Relaxed);
    let now = change::unix_micros() / 1_000_000;
    {
        let mut seen = counters.last_seen.lock();
        match seen.get_mut(header.node) {
            Some(t) => *t = now,
            None => {
                seen.insert(header.node.to_string(), now);
            }
        }
    }
    if split.len() == 1 {
        // One shard: the body whole, not walked record by record.
        split[0].extend_from_slice(body);
        let counts = [header.count as u64];
        send_shares(controls, split, &counts, header.sent_at_us, counters, false);
        return;
    }
    let mut counts = vec![0u64; split.len()];
    loop {
        let before = body;
        let Some((c, len)) = change::next(&mut body) else {
            break;
        };
        let shard = shard_of(c.info_hash(), split.len());
        split[shard].extend_from_slice(&before[..len]);
        counts[shard] += 1;
    }
    if !body.is_empty() {
        counters.malformed.fetch_add(1, Relaxed);
    }
    send_shares(controls, split, &counts, header.sent_at_us, counters, false);
}

/// Hands each non-empty share of `split` to its shard. A warm-up waits for
/// room (briefly: the swarm worker drains its queue between batches); live
/// changes never wait.
pub(super) fn send_shares(
    controls: &[Sender<Control>],
    split: &mut [Vec<u8>],
    counts: &[u64],
    sent_at_us: u64,
    counters: &ClusterCounters,
    wait: bool,
) {
    for (shard, records) in split.iter_mut().enumerate() {
        if records.is_empty() {
            continue;
        }
        let batch = RemoteBatch {
            records: std::mem::take(records),
            sent_at_us,
        };
        let sent = if wait {
            controls[shard]
                .send_timeout(Control::Apply(batch), Duration::from_secs(5))
                .is_ok()
        } else {
            !matches!(
                controls[shard].try_send(Control::Apply(batch)),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            )
        };
        if !sent {
            counters.dropped.fetch_add(counts[shard], Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_from_one_second_to_thirty() {
        let secs: Vec<u64> = (1..=9).map(|a| super::backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![0, 1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
