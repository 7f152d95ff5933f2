//! The snapshots of a running tracker: every `[state] interval` seconds on
//! the `snapshot` thread, and once more on stop, after the socket and swarm
//! workers have stopped (so the last one is exact). Each is counted in
//! [`SnapshotCounters`] for `/metrics` and `/stats`.
//!
//! Why announces don't stall: a shard is copied a slice at a time
//! ([`super::file::SLICE_PEERS`] peers, encoded straight into the section
//! being built) under its lock, and the lock is let go before the bytes go
//! to the file; and the periodic thread is in the idle scheduling class, so
//! its encoding never takes a worker's time slice.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use super::file::{self, unix_now, Export};
use super::{Header, Written};
use crate::stats::{SnapshotCounters, Stats};

/// A shard as the writer sees it.
pub type SharedShard = Arc<dyn Export + Send + Sync>;

/// What writes a running tracker's snapshots.
pub struct Snapshots {
    target: Arc<Target>,
    /// The `snapshot` thread, stopped by dropping the sender.
    periodic: Option<(Sender<()>, JoinHandle<()>)>,
}

struct Target {
    path: PathBuf,
    peer_ids: bool,
    time_unit: u16,
    shards: Vec<SharedShard>,
    stats: Arc<Stats>,
}

impl Target {
    /// Writes one snapshot and counts it; logs a failure.
    fn write(&self) -> io::Result<Written> {
        let started = Instant::now();
        let header = Header {
            peer_ids: self.peer_ids,
            time_unit: self.time_unit,
            written_at: unix_now(),
            shards: self.shards.len() as u32,
        };
        let shards: Vec<&dyn Export> = self.shards.iter().map(|s| &**s as &dyn Export).collect();
        let result = file::write(&self.path, header, &shards);
        let c: &SnapshotCounters = &self.stats.snapshot;
        match &result {
            Ok(w) => {
                c.last_success.set(header.written_at);
                c.duration_us.set(started.elapsed().as_micros() as u64);
                c.bytes.set(w.bytes);
                c.written.inc();
                log::debug!(
                    "state: wrote {} in {:.2?}: {} torrents, {} peers, {} bytes",
                    self.path.display(),
                    started.elapsed(),
                    w.torrents,
                    w.peers,
                    w.bytes
                );
            }
            Err(e) => {
                c.failures.inc();
                log::error!("state: cannot write {}: {e}", self.path.display());
            }
        }
        result
    }
}

impl Snapshots {
    /// Snapshots of `shards` to `path`; with a `snapshot` thread (started
    /// by `spawn`, for supervision) when `interval` is not 0.
    pub fn start(
        path: PathBuf,
        interval: u32,
        peer_ids: bool,
        peer_timeout: u32,
        shards: Vec<SharedShard>,
        stats: Arc<Stats>,
        spawn: impl FnOnce(Box<dyn FnOnce() + Send>) -> io::Result<JoinHandle<()>>,
    ) -> io::Result<Snapshots> {
        let target = Arc::new(Target {
            path,
            peer_ids,
            time_unit: Header::unit_for(peer_timeout),
            shards,
            stats,
        });
        let periodic = match interval {
            0 => None,
            secs => {
                let (stop, stopped) = bounded::<()>(0);
                let t = target.clone();
                let every = Duration::from_secs(secs as u64);
                let handle = spawn(Box::new(move || every_interval(&t, every, stopped)))?;
                Some((stop, handle))
            }
        };
        Ok(Snapshots { target, periodic })
    }

    /// Stops the periodic snapshots (waiting for one under way) and writes
    /// the last one. Call once nothing changes the shards any more.
    pub fn stop(self) -> io::Result<Written> {
        if let Some((stop, handle)) = self.periodic {
            drop(stop);
            let _ = handle.join();
        }
        let w = self.target.write()?;
        log::info!(
            "state: wrote {} on stop: {} torrents, {} peers, {} bytes in {:.2?}",
            self.target.path.display(),
            w.torrents,
            w.peers,
            w.bytes,
            Duration::from_micros(self.target.stats.snapshot.duration_us.get()),
        );
        Ok(w)
    }
}

fn every_interval(target: &Target, every: Duration, stopped: Receiver<()>) {
    // Encoding a snapshot is seconds of CPU at millions of peers; on a
    // machine whose cores the workers keep busy it would take their time
    // slices and show as a stall of announces. As an idle-class thread it
    // gives way to a worker the moment one wakes. The cost: with every core
    // busy all the time, periodic snapshots get only a sliver of CPU and
    // take longer (the one on stop runs on the main thread, at normal
    // priority, once the workers are gone).
    if let Err(e) = crate::sys::run_only_when_idle() {
        log::debug!("state: the snapshot thread keeps its priority: {e}");
    }
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {
                // Counted and logged; the next interval tries again.
                let _ = target.write();
            }
            _ => return,
        }
    }
}
