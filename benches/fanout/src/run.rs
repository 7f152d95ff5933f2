//! One measured run: a publisher thread and N subscriber threads, each with
//! its own connection and current-thread tokio runtime (as each swarmd node's
//! cluster thread would have), for a fixed time, with the publisher either
//! paced at a fixed rate or sending as fast as the slowest subscriber takes.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tokio::time::{sleep, timeout};

use crate::engine::{Engine, Publisher, Shared};
use crate::wire::{Records, Tally, HEADER, RECORD};

#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// As fast as the slowest subscriber takes: at most this many bytes
    /// published and not yet delivered to all, so nothing overflows.
    Saturate { window_bytes: usize },
    /// A fixed rate in peer records per second (open loop).
    Rate { peers_per_s: f64 },
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub engine: Engine,
    pub url: String,
    pub records: usize,
    pub duration: Duration,
    pub pace: Pace,
    pub subscribers: usize,
    pub run: u32,
}

/// What the publisher saw.
#[derive(Default)]
pub struct Sent {
    pub batches: u64,
    pub errors: u64,
    pub failed_batches: u64,
    /// The longest a send call took (a disconnected client may block).
    pub max_stall: Duration,
    pub elapsed: Duration,
    pub events: Vec<(Instant, String)>,
    /// The first send that succeeded after one that failed.
    pub recovered: Option<Instant>,
}

pub struct Outcome {
    pub sent: Sent,
    pub subs: Vec<Tally>,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// Runs the plan; `during` runs on the calling thread while the publisher
/// publishes (the restart scenario kills the engine there).
pub fn run<T>(plan: &Plan, during: impl FnOnce(Instant) -> Result<T>) -> Result<(Outcome, T)> {
    let shared = Arc::new(Shared::new(plan.subscribers, plan.run));
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut subscribers = Vec::new();
    for index in 0..plan.subscribers {
        let (shared, ready, plan) = (shared.clone(), ready_tx.clone(), plan.clone());
        let handle = thread::Builder::new().name(format!("sub-{index}")).spawn(
            move || -> Result<Tally> {
                runtime()?.block_on(crate::engine::subscribe(
                    plan.engine,
                    &plan.url,
                    index,
                    &shared,
                    ready,
                ))
            },
        )?;
        subscribers.push(handle);
    }
    drop(ready_tx);
    for _ in 0..plan.subscribers {
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            return Err(join_error(&mut subscribers)
                .unwrap_or_else(|| anyhow!("a subscriber did not get ready in 10 s")));
        }
    }
    let started = Instant::now();
    let publisher = {
        let (shared, plan) = (shared.clone(), plan.clone());
        thread::Builder::new()
            .name("publisher".into())
            .spawn(move || -> Result<Sent> { runtime()?.block_on(publish(&plan, &shared)) })?
    };
    let during = during(started);
    let sent = publisher
        .join()
        .map_err(|_| anyhow!("publisher panicked"))?;
    // Whatever happened to the publisher, the subscribers must see an end.
    let batches = sent.as_ref().map(|s| s.batches).unwrap_or(0);
    shared.final_seq.store(batches, Ordering::Release);
    let mut subs = Vec::new();
    for handle in subscribers {
        subs.push(
            handle
                .join()
                .map_err(|_| anyhow!("subscriber panicked"))??,
        );
    }
    Ok((Outcome { sent: sent?, subs }, during?))
}

fn join_error(subscribers: &mut Vec<thread::JoinHandle<Result<Tally>>>) -> Option<anyhow::Error> {
    for handle in subscribers.drain(..) {
        if handle.is_finished() {
            if let Ok(Err(e)) = handle.join() {
                return Some(e);
            }
        }
    }
    None
}

async fn publish(plan: &Plan, shared: &Shared) -> Result<Sent> {
    let batch_bytes = HEADER + plan.records * RECORD;
    // Streams keep about 256 MiB of history whatever the batch size.
    let max_len = (256 << 20) / batch_bytes;
    let mut publisher = Publisher::connect(plan.engine, &plan.url, max_len).await?;
    let records = Records::new(4096);
    let mut sent = Sent::default();
    let mut failing = false;
    let start = Instant::now();
    let mut seq = 0u64;
    while start.elapsed() < plan.duration {
        let count = match plan.pace {
            Pace::Saturate { window_bytes } => {
                // At most 32768 batches too: async-nats drops what overflows
                // a subscription's 65536-message buffer (a slow consumer).
                let window = (window_bytes / batch_bytes).clamp(8, 32_768) as u64;
                let outstanding = seq - shared.min_progress();
                if outstanding >= window {
                    let _ = timeout(Duration::from_millis(50), shared.progressed.notified()).await;
                    continue;
                }
                (window - outstanding).min(64)
            }
            Pace::Rate { peers_per_s } => {
                let per_s = peers_per_s / plan.records as f64;
                let due = (start.elapsed().as_secs_f64() * per_s) as u64;
                if due <= seq {
                    let next = Duration::from_secs_f64((seq + 1) as f64 / per_s);
                    sleep(next.saturating_sub(start.elapsed())).await;
                    continue;
                }
                (due - seq).min(256)
            }
        };
        let batches: Vec<Vec<u8>> = (seq..seq + count)
            .map(|s| records.batch(s, plan.records))
            .collect();
        let call = Instant::now();
        match publisher.send(&shared.stream_key, batches).await {
            Ok(()) => {
                if failing {
                    failing = false;
                    sent.recovered.get_or_insert(Instant::now());
                }
            }
            Err(e) => {
                if !failing {
                    sent.events.push((Instant::now(), format!("send: {e}")));
                }
                failing = true;
                sent.errors += 1;
                sent.failed_batches += count;
            }
        }
        sent.max_stall = sent.max_stall.max(call.elapsed());
        seq += count;
    }
    if let Err(e) = publisher.flush().await {
        sent.events.push((Instant::now(), e.to_string()));
    }
    sent.elapsed = start.elapsed();
    sent.batches = seq;
    sent.events.append(&mut publisher.take_events());
    Ok(sent)
}
