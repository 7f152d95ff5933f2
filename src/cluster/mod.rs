//! The cluster: several nodes share their swarms through a NATS server.
//!
//! Every node keeps the whole cluster's swarms in memory and answers from
//! them; a request never waits on the network. Shards record the peer
//! changes their local announces make ([`change::ChangeLog`], a push per
//! announce) and hand them, once per batch, over a bounded channel to the
//! `cluster` thread, which alone owns the engine connection (async-nats on
//! a current-thread tokio runtime: socket and swarm workers never touch
//! tokio). It publishes them in batches on `<subject>.changes.<node>`,
//! applies the other nodes' batches through a `Control::Apply` to the
//! owning swarm worker, and warms a node that starts from a live one
//! (`warm.rs`, in the snapshot format). Full queues drop and count; the
//! engine being slow or down never stalls a socket worker.
//!
//! Files: `config.rs` the `[cluster]` table; `change.rs` the records and
//! the message header; `node.rs` the thread's loop; `warm.rs` warm-up.

pub mod change;
pub mod config;
mod node;
mod warm;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

pub use config::ClusterConfig;

use crate::snapshot::writer::SharedShard;
use crate::stats::ClusterCounters;
use crate::workers::Control;

/// Peer changes from other nodes for one shard (or a warm-up's share).
#[derive(Debug)]
pub struct RemoteBatch {
    /// Records, as [`change::next`] reads them.
    pub records: Vec<u8>,
    /// When the other node sent them (Unix microseconds; 0 for a warm-up,
    /// which is not counted as lag).
    pub sent_at_us: u64,
}

/// The channels between the shards and the cluster thread, made before
/// the shards are.
pub(crate) struct Links {
    to_cluster: Sender<change::Records>,
    from_shards: Receiver<change::Records>,
    spare_tx: Sender<Vec<u8>>,
    spare_rx: Receiver<Vec<u8>>,
    pub(crate) counters: Arc<ClusterCounters>,
}

impl Links {
    pub(crate) fn new(config: &ClusterConfig) -> Links {
        let (to_cluster, from_shards) = bounded(config.queue as usize);
        let (spare_tx, spare_rx) = bounded(config.queue as usize);
        Links {
            to_cluster,
            from_shards,
            spare_tx,
            spare_rx,
            counters: Arc::default(),
        }
    }

    /// A shard's change log.
    pub(crate) fn change_log(&self, peer_timeout: u32) -> change::ChangeLog {
        change::ChangeLog::new(
            self.to_cluster.clone(),
            self.spare_rx.clone(),
            peer_timeout,
            self.counters.clone(),
        )
    }
}

/// The running cluster thread.
pub(crate) struct Cluster {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// What the cluster thread works with.
pub(crate) struct Node {
    pub config: ClusterConfig,
    pub peer_timeout: u32,
    /// Each swarm worker's control channel, by shard.
    pub controls: Vec<Sender<Control>>,
    /// The shards, for answering warm-up requests.
    pub shards: Vec<SharedShard>,
}

/// The connection ids of a tracker: in a cluster keyed with the shared
/// secret and counted on the wall clock, so every node checks the ids of
/// every other; alone, a random key.
pub(crate) fn connection_ids(
    config: Option<&ClusterConfig>,
) -> Result<crate::connection_id::ConnectionIds, String> {
    use crate::connection_id::ConnectionIds;
    match config {
        Some(c) => ConnectionIds::shared(&c.secret()?, crate::snapshot::file::unix_now()),
        None => Ok(ConnectionIds::new()),
    }
}

impl Cluster {
    /// The cluster thread of a tracker with `config`, if it has a
    /// `[cluster]` table (and so `links`).
    pub(crate) fn start_for(
        config: &crate::Config,
        links: Option<Links>,
        controls: &[Sender<Control>],
        shards: Vec<SharedShard>,
        spawn: impl FnOnce(Box<dyn FnOnce() + Send>) -> io::Result<JoinHandle<()>>,
    ) -> io::Result<Option<Cluster>> {
        let (Some(links), Some(c)) = (links, &config.cluster) else {
            return Ok(None);
        };
        let node = Node {
            config: c.clone(),
            peer_timeout: config.swarm.peer_timeout.get(),
            controls: controls.to_vec(),
            shards,
        };
        Cluster::start(node, links, spawn).map(Some)
    }

    /// Starts the `cluster` thread through `spawn` (the tracker's
    /// supervisor).
    pub(crate) fn start(
        node: Node,
        links: Links,
        spawn: impl FnOnce(Box<dyn FnOnce() + Send>) -> io::Result<JoinHandle<()>>,
    ) -> io::Result<Cluster> {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let Links {
            from_shards,
            spare_tx,
            counters,
            ..
        } = links;
        let thread = spawn(Box::new(move || {
            runtime.block_on(node::run(node, from_shards, spare_tx, counters, stopped));
        }))?;
        Ok(Cluster { stop, thread })
    }

    /// Publishes what is queued, closes the connection, and joins the
    /// thread; false if it panicked.
    pub(crate) fn stop(self) -> bool {
        let _ = self.stop.send(());
        self.thread.join().is_ok()
    }
}
