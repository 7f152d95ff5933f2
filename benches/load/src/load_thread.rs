//! What the UDP (`client`) and HTTP (`http`) load threads share: their
//! random numbers, when a thread is done, and its wait for its sockets.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::{Events, Poll};

use crate::meter::Plan;
use crate::options::LoadOptions;
use crate::pace::Pace;
use crate::peers::Peers;

/// The longest a thread sleeps in `poll`, so time outs, reconnects, phase
/// changes and the end of the run are noticed promptly.
pub const IDLE_WAIT: Duration = Duration::from_millis(10);

/// The random numbers of thread `thread`: from `--seed`, so that a run can
/// be repeated, and different in each thread, so that the threads do not
/// all make the same choices.
pub fn rng(o: &LoadOptions, thread: usize) -> fastrand::Rng {
    fastrand::Rng::with_seed(o.seed ^ (thread as u64).wrapping_mul(0x9e37_79b9))
}

/// How far one client of a load thread (a UDP socket or an HTTP
/// connection) has come.
pub trait Progress {
    /// The simulated peers it speaks for.
    fn peers(&self) -> &Peers;
    /// Nothing it sent waits for an answer.
    fn idle(&self) -> bool;
}

/// Whether a load thread stops at `now`: at the run's end, on abort, or
/// once it will send nothing more (its share of `--requests` is sent, or
/// every peer of its clients has announced for the last time) and nothing
/// it sent waits for an answer.
pub fn done(
    now: Instant,
    plan: Plan,
    abort: &AtomicBool,
    pace: &Pace,
    clients: &[impl Progress],
) -> bool {
    if now >= plan.end || abort.load(Ordering::Relaxed) {
        return true;
    }
    let all_sent = pace.all_sent() || clients.iter().all(|c| c.peers().is_done());
    all_sent && clients.iter().all(Progress::idle)
}

/// Waits at most `timeout` for events on `poll`. A signal that ends the
/// wait early is a wake with no events, not an error.
pub fn wait(poll: &mut Poll, events: &mut Events, timeout: Duration) -> Result<()> {
    match poll.poll(events, Some(timeout)) {
        Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e).context("poll"),
        _ => Ok(()),
    }
}
