//! `[state]`: where the snapshot of the swarms lives and how often it is
//! written.

use serde::Deserialize;

/// `[state]`: the snapshot that lets a restart keep its swarms.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// The snapshot file: loaded at start (before the sockets open),
    /// written on stop and every `interval` seconds. Its directory must be
    /// writable (start-up and `--check-config` check it). "" turns
    /// snapshots off: a restart then forgets every peer, and clients see
    /// empty swarms for up to one announce interval.
    pub path: String,
    /// Seconds between two snapshots while running, so that a crash or a
    /// kill -9 loses at most this much; 0 writes only on stop. A snapshot
    /// copies a slice of a shard at a time, so announces are not stalled.
    pub interval: u32,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: String::new(),
            interval: 300,
        }
    }
}

impl StateConfig {
    /// The snapshot's path, when snapshots are on.
    pub fn path(&self) -> Option<&std::path::Path> {
        Some(std::path::Path::new(&self.path)).filter(|_| !self.path.is_empty())
    }
}
