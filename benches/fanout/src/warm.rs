//! A late node's warm-up: the time to move a whole cluster's peers (N × 18
//! bytes: address and port; the info hashes would add 20 bytes per swarm) from
//! a live node to a new one, in chunks below the engine's largest message
//! (NATS: 1 MiB by default). Over NATS the live node answers requests for
//! chunks (request/reply, eight in flight); over Redis the live node writes
//! the chunks to keys and the late node reads them (pipelines of eight).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use redis::AsyncCommands;

const PEER: usize = 18;
/// 50,000 peers: 900,000 bytes, under NATS's 1 MiB with room for headers.
const CHUNK_PEERS: usize = 50_000;
const IN_FLIGHT: usize = 8;
const SUBJECT: &str = "swarmd.warm";

pub struct Warm {
    pub bytes: usize,
    pub chunks: usize,
    /// The live node's part (Redis: writing the chunks); zero for NATS,
    /// which answers from memory.
    pub publish: Duration,
    /// The late node's part, from the first request to the last chunk.
    pub fetch: Duration,
}

pub fn state(peers: usize) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut state = vec![0u8; peers * PEER];
    rng.fill(&mut state);
    Bytes::from(state)
}

fn chunks(state: &Bytes) -> Vec<Bytes> {
    (0..state.len())
        .step_by(CHUNK_PEERS * PEER)
        .map(|at| state.slice(at..(at + CHUNK_PEERS * PEER).min(state.len())))
        .collect()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn nats(url: &str, state: &Bytes) -> Result<Warm> {
    let parts = chunks(state);
    let count = parts.len();
    let (ready_tx, ready_rx) = mpsc::channel();
    let donor_url = url.to_string();
    // The live node, on a thread of its own as its cluster thread would be.
    let donor = thread::Builder::new()
        .name("donor".into())
        .spawn(move || -> Result<()> {
            runtime()?.block_on(async {
                let client = async_nats::connect(donor_url).await?;
                let mut requests = client.subscribe(SUBJECT).await?;
                client.flush().await?;
                let _ = ready_tx.send(());
                let deadline = Instant::now() + Duration::from_secs(120);
                while let Ok(Some(request)) =
                    tokio::time::timeout_at(deadline.into(), requests.next()).await
                {
                    let index =
                        u32::from_le_bytes(request.payload[..].try_into().unwrap_or([0xff; 4]));
                    if index == u32::MAX {
                        break;
                    }
                    if let (Some(reply), Some(part)) = (request.reply, parts.get(index as usize)) {
                        client.publish(reply, part.clone()).await?;
                    }
                }
                client.flush().await?;
                Ok::<_, anyhow::Error>(())
            })
        })?;
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("the NATS donor did not start"))?;
    let (fetch, received) = runtime()?.block_on(async {
        let client = async_nats::connect(url).await?;
        let mut received = Vec::with_capacity(state.len());
        let start = Instant::now();
        let mut replies = futures_util::stream::iter(0..count as u32)
            .map(|index| {
                let client = client.clone();
                async move {
                    client
                        .request(SUBJECT, Bytes::copy_from_slice(&index.to_le_bytes()))
                        .await
                }
            })
            .buffered(IN_FLIGHT);
        while let Some(reply) = replies.next().await {
            received.extend_from_slice(&reply.context("chunk request")?.payload);
        }
        let fetch = start.elapsed();
        client
            .publish(SUBJECT, Bytes::from_static(&[0xff; 4]))
            .await?;
        client.flush().await?;
        Ok::<_, anyhow::Error>((fetch, received))
    })?;
    donor.join().map_err(|_| anyhow!("donor panicked"))??;
    if received != state[..] {
        bail!("NATS warm-up: the state arrived altered");
    }
    Ok(Warm {
        bytes: state.len(),
        chunks: count,
        publish: Duration::ZERO,
        fetch,
    })
}

pub fn redis(url: &str, state: &Bytes) -> Result<Warm> {
    let parts = chunks(state);
    let count = parts.len();
    runtime()?.block_on(async {
        let client = redis::Client::open(url)?;
        // Eight 900 kB values in one reply can outlast the 500 ms default on a busy machine.
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
        let mut donor = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut late = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let start = Instant::now();
        for (group, parts) in parts.chunks(IN_FLIGHT).enumerate() {
            let mut pipe = redis::pipe();
            for (i, part) in parts.iter().enumerate() {
                pipe.set(format!("warm:{}", group * IN_FLIGHT + i), &part[..])
                    .ignore();
            }
            pipe.query_async::<()>(&mut donor).await?;
        }
        let publish = start.elapsed();
        let start = Instant::now();
        let mut received = Vec::with_capacity(state.len());
        for group in (0..count).collect::<Vec<_>>().chunks(IN_FLIGHT) {
            let keys: Vec<String> = group.iter().map(|i| format!("warm:{i}")).collect();
            let values: Vec<Vec<u8>> = late.mget(&keys).await?;
            for value in values {
                received.extend_from_slice(&value);
            }
        }
        let fetch = start.elapsed();
        if received != state[..] {
            bail!("Redis warm-up: the state arrived altered");
        }
        Ok(Warm {
            bytes: state.len(),
            chunks: count,
            publish,
            fetch,
        })
    })
}
