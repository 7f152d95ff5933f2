//! The engine clients, one publisher and one subscriber loop per way of
//! using an engine: NATS core pub/sub (async-nats), Redis PUBLISH/SUBSCRIBE
//! on a dedicated pub/sub connection (RESP2, the classic way), the same over
//! RESP3 pushes on a `ConnectionManager` (the redis crate's reconnecting
//! client), and Redis Streams (XADD, XREAD BLOCK). Each runs on the calling
//! thread's current-thread tokio runtime, as the cluster thread would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, PushKind, Value};
use tokio::time::{sleep, timeout};

use crate::servers::ServerKind;
use crate::wire::Tally;

pub const SUBJECT: &str = "swarmd.peers";
/// How long a subscriber loop waits for a delivery before it checks whether
/// the run is over.
const TICK: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Nats,
    RedisPubSub,
    RedisPush,
    RedisStream,
}

impl Engine {
    pub fn server(self) -> ServerKind {
        match self {
            Engine::Nats => ServerKind::Nats,
            _ => ServerKind::Redis,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Nats => "NATS pub/sub",
            Engine::RedisPubSub => "Redis pub/sub",
            Engine::RedisPush => "Redis pub/sub, RESP3 manager",
            Engine::RedisStream => "Redis Streams",
        }
    }
}

pub type Events = Arc<Mutex<Vec<(Instant, String)>>>;

fn note(events: &Events, what: String) {
    if let Ok(mut events) = events.lock() {
        events.push((Instant::now(), what));
    }
}

/// State shared by the publisher, the subscribers and the orchestrator of one run.
pub struct Shared {
    /// Per subscriber: one past the highest sequence number delivered.
    pub progress: Vec<AtomicU64>,
    pub progressed: tokio::sync::Notify,
    /// `u64::MAX` while the publisher runs, then the number of batches it sent.
    pub final_seq: AtomicU64,
    /// A key of its own per run, so a stream never holds an earlier run's entries.
    pub stream_key: String,
}

impl Shared {
    pub fn new(subscribers: usize, run: u32) -> Shared {
        Shared {
            progress: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            progressed: tokio::sync::Notify::new(),
            final_seq: AtomicU64::new(u64::MAX),
            stream_key: format!("swarmd.peers.{run}"),
        }
    }

    pub fn min_progress(&self) -> u64 {
        self.progress
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }
}

/// The end of a subscriber's run: everything delivered, or a grace period
/// after the publisher stopped (for what was lost).
struct Ending {
    deadline: Option<Instant>,
}

impl Ending {
    fn reached(&mut self, tally: &Tally, shared: &Shared) -> bool {
        let last = shared.final_seq.load(Ordering::Acquire);
        if last == u64::MAX {
            return false;
        }
        if tally.next_seq >= last {
            return true;
        }
        Instant::now()
            > *self
                .deadline
                .get_or_insert(Instant::now() + Duration::from_secs(3))
    }
}

async fn nats_connect(url: &str, events: &Events, name: &str) -> Result<async_nats::Client> {
    let sink = events.clone();
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .event_callback(move |event| {
            let sink = sink.clone();
            async move { note(&sink, format!("nats: {event}")) }
        })
        .connect(url)
        .await?;
    Ok(client)
}

fn redis_client(url: &str, resp3: bool) -> Result<redis::Client> {
    let url = if resp3 {
        format!("{url}?protocol=resp3")
    } else {
        url.to_string()
    };
    Ok(redis::Client::open(url)?)
}

/// One subscriber: subscribes, says so on `ready`, then tallies deliveries
/// until the run ends. Reconnects are the library's where it has them; where
/// it has none (a dedicated Redis pub/sub connection) the loop reconnects
/// itself every 100 ms, as the cluster thread would.
pub async fn subscribe(
    engine: Engine,
    url: &str,
    index: usize,
    shared: &Shared,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<Tally> {
    let mut tally = Tally::new();
    let mut ending = Ending { deadline: None };
    let events: Events = Arc::default();
    let deliver = |tally: &mut Tally, payload: &[u8]| {
        tally.on_payload(payload);
        shared.progress[index].store(tally.next_seq, Ordering::Release);
        shared.progressed.notify_one();
    };
    match engine {
        Engine::Nats => {
            let client = nats_connect(url, &events, &format!("sub-{index}")).await?;
            let mut sub = client.subscribe(SUBJECT).await?;
            // The SUB is on the server once a flush (PING/PONG) returns.
            client.flush().await?;
            let _ = ready.send(());
            while !ending.reached(&tally, shared) {
                match timeout(TICK, sub.next()).await {
                    Ok(Some(message)) => deliver(&mut tally, &message.payload),
                    Ok(None) => {
                        tally.event("subscription ended");
                        break;
                    }
                    Err(_) => {}
                }
            }
        }
        Engine::RedisPubSub => {
            let client = redis_client(url, false)?;
            let mut ready = Some(ready);
            'connect: while !ending.reached(&tally, shared) {
                let mut pubsub = match client.get_async_pubsub().await {
                    Ok(pubsub) => pubsub,
                    Err(e) => {
                        note(&events, format!("connect: {e}"));
                        sleep(TICK).await;
                        continue;
                    }
                };
                if let Err(e) = pubsub.subscribe(SUBJECT).await {
                    note(&events, format!("subscribe: {e}"));
                    sleep(TICK).await;
                    continue;
                }
                if ready.is_none() {
                    note(&events, "resubscribed".into());
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                let mut stream = pubsub.into_on_message();
                while !ending.reached(&tally, shared) {
                    match timeout(TICK, stream.next()).await {
                        Ok(Some(message)) => deliver(&mut tally, message.get_payload_bytes()),
                        Ok(None) => {
                            note(&events, "stream ended".into());
                            continue 'connect;
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        Engine::RedisPush => {
            let client = redis_client(url, true)?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let config = ConnectionManagerConfig::new()
                .set_push_sender(tx)
                .set_automatic_resubscription();
            let mut manager = client.get_connection_manager_with_config(config).await?;
            manager.subscribe(SUBJECT).await?;
            let _ = ready.send(());
            let mut quiet = Instant::now();
            while !ending.reached(&tally, shared) {
                match timeout(TICK, rx.recv()).await {
                    Ok(Some(push)) => match (push.kind, push.data.get(1)) {
                        (PushKind::Message, Some(Value::BulkString(payload))) => {
                            deliver(&mut tally, payload);
                            quiet = Instant::now();
                        }
                        (kind, _) => note(&events, format!("push: {kind:?}")),
                    },
                    Ok(None) => break,
                    Err(_) => {}
                }
                // The manager reconnects when a command fails, not on its own:
                // a quiet subscriber pings, so that a dead connection is noticed.
                if quiet.elapsed() > Duration::from_millis(500) {
                    quiet = Instant::now();
                    if let Err(e) = redis::cmd("PING").query_async::<()>(&mut manager).await {
                        note(&events, format!("ping: {e}"));
                    }
                }
            }
        }
        Engine::RedisStream => {
            let client = redis_client(url, false)?;
            let mut manager = client.get_connection_manager().await?;
            let _ = ready.send(());
            // The stream starts empty (a fresh key per run), so "0-0" reads it all.
            let mut last_id = "0-0".to_string();
            // 200 ms: below the client's 500 ms response timeout.
            let options = StreamReadOptions::default().count(1024).block(200);
            let keys = [shared.stream_key.as_str()];
            while !ending.reached(&tally, shared) {
                let reply: Result<Option<StreamReadReply>, _> =
                    manager.xread_options(&keys, &[&last_id], &options).await;
                match reply {
                    Ok(Some(reply)) => {
                        for entry in reply.keys.iter().flat_map(|key| key.ids.iter()) {
                            if let Some(Value::BulkString(payload)) = entry.map.get("d") {
                                deliver(&mut tally, payload);
                            }
                            last_id.clone_from(&entry.id);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        note(&events, format!("xread: {e}"));
                        sleep(TICK).await;
                    }
                }
            }
        }
    }
    if let Ok(mut events) = events.lock() {
        tally.events.append(&mut events);
    }
    Ok(tally)
}

/// The publishing side of one engine.
pub enum Publisher {
    Nats(async_nats::Client, Events),
    Redis(ConnectionManager, Engine, usize),
}

impl Publisher {
    /// `max_len`: how many entries a stream keeps (XADD MAXLEN ~).
    pub async fn connect(engine: Engine, url: &str, max_len: usize) -> Result<Publisher> {
        Ok(match engine {
            Engine::Nats => {
                let events: Events = Arc::default();
                Publisher::Nats(nats_connect(url, &events, "publisher").await?, events)
            }
            _ => {
                let client = redis_client(url, false)?;
                Publisher::Redis(client.get_connection_manager().await?, engine, max_len)
            }
        })
    }

    /// Sends batches in order: NATS queues them in the client (it writes
    /// them out itself); Redis gets one pipeline, one round trip.
    pub async fn send(&mut self, stream_key: &str, batches: Vec<Vec<u8>>) -> Result<()> {
        match self {
            Publisher::Nats(client, _) => {
                for batch in batches {
                    client.publish(SUBJECT, Bytes::from(batch)).await?;
                }
            }
            Publisher::Redis(manager, engine, max_len) => {
                let mut pipe = redis::pipe();
                for batch in batches {
                    if *engine == Engine::RedisStream {
                        pipe.cmd("XADD").arg(stream_key).arg("MAXLEN").arg("~");
                        pipe.arg(*max_len).arg("*").arg("d").arg(batch).ignore();
                    } else {
                        pipe.cmd("PUBLISH").arg(SUBJECT).arg(batch).ignore();
                    }
                }
                pipe.query_async::<()>(manager).await?;
            }
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<()> {
        if let Publisher::Nats(client, _) = self {
            client.flush().await.map_err(|e| anyhow!("flush: {e}"))?;
        }
        Ok(())
    }

    pub fn take_events(&self) -> Vec<(Instant, String)> {
        match self {
            Publisher::Nats(_, events) => events
                .lock()
                .map(|mut e| std::mem::take(&mut *e))
                .unwrap_or_default(),
            Publisher::Redis(..) => Vec::new(),
        }
    }
}
