//! How a socket worker gets its batches handled: the one seam for
//! `[workers] dispatch`.
//!
//! A socket worker fills one batch of requests per shard, then calls
//! [`Dispatch::submit`] and later takes the answers with
//! [`Dispatch::try_response`]; it never knows which of the two ways ran:
//!
//! - **inline**: the socket worker handles each batch itself, under the
//!   shard's lock, and the answers are ready at once. No thread switch,
//!   so the best choice when workers share cores (the default).
//! - **channel**: each batch goes to the shard's swarm worker over a bounded
//!   channel, and the answers come back over this socket worker's own
//!   channel. The swarm work then runs on the swarm workers' cores, without
//!   locks. A full channel drops the batch (the caller counts it): a socket
//!   worker never blocks on a swarm worker.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::swarm::Inline;
use super::{RequestBatch, ResponseBatch, SwarmRequest};

/// Batches in flight to each swarm worker before the socket worker waits
/// for one to come back (see [`Dispatch::wait_if_busy`]). Measured on one
/// shared core: 2 gave 7–12 % more responses per CPU-second than no limit.
const MAX_IN_FLIGHT: usize = 2;
/// Emptied vectors kept for reuse; more are freed.
const POOL: usize = 64;

pub(crate) enum Dispatch {
    Inline(InlineDispatch),
    Channel(ChannelDispatch),
}

pub(crate) struct InlineDispatch {
    shards: Vec<Arc<dyn Inline>>,
    /// Answers handled and not taken yet.
    ready: VecDeque<ResponseBatch>,
    reply_pool: Vec<ResponseBatch>,
}

pub(crate) struct ChannelDispatch {
    /// The socket worker these batches come from (the swarm workers answer
    /// on its channel).
    from: usize,
    to_swarm: Vec<Sender<RequestBatch>>,
    from_swarm: Receiver<ResponseBatch>,
    in_flight: usize,
    request_pool: Vec<Vec<SwarmRequest>>,
    reply_pool: Vec<ResponseBatch>,
}

impl Dispatch {
    /// Batches handled here, against `shards` (one per swarm worker).
    pub(crate) fn inline(shards: Vec<Arc<dyn Inline>>) -> Dispatch {
        Dispatch::Inline(InlineDispatch {
            shards,
            ready: VecDeque::new(),
            reply_pool: Vec::new(),
        })
    }

    /// Batches handed to the swarm workers (`to_swarm`, by shard), answered
    /// on `from_swarm`, for socket worker `from`.
    pub(crate) fn channel(
        from: usize,
        to_swarm: Vec<Sender<RequestBatch>>,
        from_swarm: Receiver<ResponseBatch>,
    ) -> Dispatch {
        Dispatch::Channel(ChannelDispatch {
            from,
            to_swarm,
            from_swarm,
            in_flight: 0,
            request_pool: Vec::new(),
            reply_pool: Vec::new(),
        })
    }

    /// How many shards requests are split into.
    pub(crate) fn shards(&self) -> usize {
        match self {
            Dispatch::Inline(d) => d.shards.len(),
            Dispatch::Channel(d) => d.to_swarm.len(),
        }
    }

    /// Hands over every non-empty batch of `outgoing` (one per shard) and
    /// empties it. Returns the requests of batches that could not be handed
    /// over (a full channel), for the caller to count and refuse.
    pub(crate) fn submit(&mut self, outgoing: &mut [Vec<SwarmRequest>]) -> Vec<Vec<SwarmRequest>> {
        let mut dropped = Vec::new();
        match self {
            Dispatch::Inline(d) => {
                for (shard, requests) in outgoing.iter_mut().enumerate() {
                    if requests.is_empty() {
                        continue;
                    }
                    let mut reply = d.reply_pool.pop().unwrap_or_default();
                    d.shards[shard].handle(requests, &mut reply);
                    d.ready.push_back(reply);
                }
            }
            Dispatch::Channel(d) => {
                for (shard, requests) in outgoing.iter_mut().enumerate() {
                    if requests.is_empty() {
                        continue;
                    }
                    let fresh = d.request_pool.pop().unwrap_or_default();
                    let batch = RequestBatch {
                        from: d.from,
                        requests: std::mem::replace(requests, fresh),
                        reply: d.reply_pool.pop().unwrap_or_default(),
                    };
                    match d.to_swarm[shard].try_send(batch) {
                        Ok(()) => d.in_flight += 1,
                        Err(TrySendError::Full(batch)) | Err(TrySendError::Disconnected(batch)) => {
                            if d.reply_pool.len() < POOL {
                                d.reply_pool.push(batch.reply);
                            }
                            dropped.push(batch.requests);
                        }
                    }
                }
            }
        }
        dropped
    }

    /// Gives back the vector of a dropped batch (emptied) for reuse.
    pub(crate) fn recycle_requests(&mut self, requests: Vec<SwarmRequest>) {
        if let Dispatch::Channel(d) = self {
            if d.request_pool.len() < POOL {
                d.request_pool.push(requests);
            }
        }
    }

    /// The next batch of answers, without waiting.
    pub(crate) fn try_response(&mut self) -> Option<ResponseBatch> {
        match self {
            Dispatch::Inline(d) => d.ready.pop_front(),
            Dispatch::Channel(d) => {
                let batch = d.from_swarm.try_recv().ok()?;
                d.in_flight = d.in_flight.saturating_sub(1);
                Some(batch)
            }
        }
    }

    /// Whether answers are waiting to be taken (then the event loop must
    /// not sleep).
    pub(crate) fn has_responses(&self) -> bool {
        match self {
            Dispatch::Inline(d) => !d.ready.is_empty(),
            Dispatch::Channel(d) => !d.from_swarm.is_empty(),
        }
    }

    /// With channel dispatch and several batches out, waits (briefly) for
    /// one to come back.
    ///
    /// Why: with a socket and a swarm worker sharing a core, the swarm worker
    /// runs only while this thread waits. A socket worker that keeps reading
    /// while answers queue up runs out its time slice, and every answer
    /// waits for it: milliseconds of latency, and a load that goes in bursts.
    /// Waiting here hands the core over at once. On separate cores the wait
    /// is short, as the swarm worker is already at work on the batch.
    pub(crate) fn wait_if_busy(&mut self) -> Option<ResponseBatch> {
        let Dispatch::Channel(d) = self else {
            return None;
        };
        if d.in_flight < MAX_IN_FLIGHT * d.to_swarm.len() {
            return None;
        }
        let batch = d.from_swarm.recv_timeout(Duration::from_millis(5)).ok()?;
        d.in_flight = d.in_flight.saturating_sub(1);
        Some(batch)
    }

    /// On the way out: the next answer still owed, waited for until
    /// `deadline`; None once nothing more is owed (or it is too late).
    pub(crate) fn drain(&mut self, deadline: Instant) -> Option<ResponseBatch> {
        match self {
            Dispatch::Inline(d) => d.ready.pop_front(),
            Dispatch::Channel(d) => {
                if d.in_flight == 0 {
                    return None;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                let batch = d.from_swarm.recv_timeout(left).ok()?;
                d.in_flight -= 1;
                Some(batch)
            }
        }
    }

    /// Takes back an answered batch (its vectors emptied) for reuse.
    pub(crate) fn recycle(&mut self, mut batch: ResponseBatch) {
        batch.responses.clear();
        batch.peers.clear();
        batch.peer_ids.clear();
        let spare = std::mem::take(&mut batch.spare);
        match self {
            Dispatch::Inline(d) => {
                if d.reply_pool.len() < POOL {
                    d.reply_pool.push(batch);
                }
            }
            Dispatch::Channel(d) => {
                if d.request_pool.len() < POOL {
                    d.request_pool.push(spare);
                }
                if d.reply_pool.len() < POOL {
                    d.reply_pool.push(batch);
                }
            }
        }
    }
}
