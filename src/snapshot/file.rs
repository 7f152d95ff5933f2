//! The snapshot on disk: writing it so that a crash mid-write leaves the
//! previous one whole (a temporary file in the same directory, fsynced,
//! renamed over the old one, the directory fsynced), loading it at start
//! (a bad file is renamed `.bad` and the tracker starts empty), and the
//! check that its directory is writable.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::encode::{Encoder, Section, Written};
use super::restore::{Restore, Restored};
use super::{decode, Header};
use crate::swarm::{PeerData, Swarms};

/// Peers copied per slice under a shard's lock: about a tenth of a
/// millisecond of encoding, so announces waiting on the lock barely notice.
pub const SLICE_PEERS: usize = 8192;
/// Encoded bytes per section: large enough that framing costs nothing,
/// small enough that the writer's buffer stays small.
const SECTION_BYTES: usize = 1 << 20;

/// A shard that can be written to a snapshot a slice at a time.
pub trait Export {
    /// Encodes the torrents from position `from` on into `out` until about
    /// `budget` peers; returns where the next slice starts, None at the end.
    fn export(&self, from: usize, budget: usize, out: &mut Section) -> Option<usize>;
}

/// Swarms at a fixed swarm-clock time: for writing swarms that no shard
/// holds (benches, tests).
pub struct At<'a, X>(pub &'a Swarms<X>, pub u32);

impl<X: PeerData> Export for At<'_, X> {
    fn export(&self, from: usize, budget: usize, out: &mut Section) -> Option<usize> {
        self.0.export(from, budget, self.1, out)
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `<path>` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Encodes every shard into `out`; with `header.shards` set by the caller.
pub fn encode_all<W: Write>(
    out: W,
    header: Header,
    shards: &[&dyn Export],
) -> io::Result<(W, Written)> {
    let mut enc = Encoder::new(out, header)?;
    for (id, shard) in shards.iter().enumerate() {
        let mut section = enc.section(id as u32);
        let mut from = Some(0);
        while let Some(at) = from {
            from = shard.export(at, SLICE_PEERS, &mut section);
            if section.len() >= SECTION_BYTES {
                enc.write(&mut section)?;
            }
        }
        enc.write(&mut section)?;
    }
    enc.finish()
}

/// Writes a snapshot of `shards` to `path`, whole or not at all.
pub fn write(path: &Path, header: Header, shards: &[&dyn Export]) -> io::Result<Written> {
    let tmp = with_suffix(path, ".tmp");
    let result = (|| {
        let file = File::create(&tmp)?;
        let (out, written) = encode_all(BufWriter::with_capacity(1 << 16, file), header, shards)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        File::open(parent(path))?.sync_all()?;
        Ok(written)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether a snapshot can be written at `path`: its directory exists and
/// a file can be made in it. The error says which and why.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let tmp = with_suffix(path, ".tmp");
    match File::create(&tmp) {
        Ok(_) => {
            let _ = fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => Err(format!(
            "state.path {}: cannot write in {}: {e}",
            path.display(),
            parent(path).display()
        )),
    }
}

/// What loading a snapshot at start gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    /// No file (a first start).
    Missing,
    Restored(Restored),
    /// The file could not be used; it was renamed (to the path given, if
    /// the rename worked) and the tracker starts empty.
    Bad {
        reason: String,
        kept: Option<PathBuf>,
    },
}

/// `n` shards made by `make`, filled from the snapshot at `path` when it
/// holds a good one (re-sharded by info hash if it was written with another
/// shard count), empty otherwise: never half loaded. `now` is the shards'
/// clock. Logs what it did.
pub fn load<X: PeerData>(
    path: &Path,
    n: usize,
    make: impl Fn() -> Swarms<X>,
    now: u32,
) -> (Vec<Swarms<X>>, Loaded) {
    let fresh = || (0..n).map(|_| make()).collect::<Vec<_>>();
    let started = Instant::now();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            log::info!("state: no snapshot at {} (a first start)", path.display());
            return (fresh(), Loaded::Missing);
        }
        Err(e) => return (fresh(), set_aside(path, format!("cannot read: {e}"))),
    };
    let mut shards = fresh();
    let result = decode::read_header(&bytes).and_then(|header| {
        let elapsed = unix_now().saturating_sub(header.written_at);
        let elapsed = u32::try_from(elapsed).unwrap_or(u32::MAX);
        let mut sink = Restore::new(&mut shards, elapsed, now);
        let decoded = decode::decode(&bytes, &mut sink)?;
        Ok((decoded, elapsed, sink.finish()))
    });
    match result {
        Ok((decoded, elapsed, restored)) => {
            log::info!(
                "state: loaded {} in {:.2?}: {} torrents and {} peers ({} expired while down, \
                 {} peers and {} torrents over the limits), written {elapsed} s ago by {} shards into {n}, {} bytes",
                path.display(),
                started.elapsed(),
                restored.torrents,
                restored.peers,
                restored.expired,
                restored.refused,
                restored.refused_torrents,
                decoded.header.shards,
                bytes.len(),
            );
            (shards, Loaded::Restored(restored))
        }
        Err(e) => {
            drop(shards);
            (fresh(), set_aside(path, e.to_string()))
        }
    }
}

/// Renames a bad snapshot to `<path>.bad` (replacing an older one) and
/// logs one line naming the file and the reason.
fn set_aside(path: &Path, reason: String) -> Loaded {
    let bad = with_suffix(path, ".bad");
    let kept = match fs::rename(path, &bad) {
        Ok(()) => {
            log::warn!(
                "state: cannot load {}: {reason}; starting empty, the file is kept as {}",
                path.display(),
                bad.display()
            );
            Some(bad)
        }
        Err(e) => {
            log::warn!(
                "state: cannot load {}: {reason}; starting empty (and cannot rename it to {}: {e})",
                path.display(),
                bad.display()
            );
            None
        }
    };
    Loaded::Bad { reason, kept }
}

/// The swarms a tracker starts with, one per shard: from the snapshot at
/// `[state] path` when there is a good one, new otherwise.
pub fn swarms_at_start<X: PeerData>(
    config: &crate::Config,
    n: usize,
    make: fn(crate::swarm::SwarmConfig) -> Swarms<X>,
) -> std::vec::IntoIter<Swarms<X>> {
    let make = || make(config.swarm_config());
    match config.state.path() {
        // The shards' clocks start at 0 after this.
        Some(path) => load(path, n, make, 0).0,
        None => (0..n).map(|_| make()).collect(),
    }
    .into_iter()
}
