//! Criterion benches of the state snapshot at 1M torrents / 5M IPv4 peers
//! (one shard): writing it (encode into memory, and to a file with fsync),
//! loading it (decode and restore every index), building the same state
//! from announces in memory (what loading competes with), and the longest
//! hold of a shard's lock while writing (one slice). Prints the file's
//! bytes per peer and its size against the compact data it holds. With
//! `SWARMD_SNAPSHOT_KEEP=FILE`, keeps the snapshot it made in FILE.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use swarmd::protocol::{AnnounceEvent, InfoHash};
use swarmd::snapshot::{self, At, Export, Header, Restore, Section};
use swarmd::swarm::{Announce, PeerAddr, SwarmConfig, Swarms};

const TORRENTS: u32 = 1_000_000;
const PEERS_PER_TORRENT: u32 = 5;

fn hash(i: u32) -> InfoHash {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&i.to_le_bytes());
    h[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
    InfoHash(h)
}

fn addr(i: u32) -> PeerAddr {
    let mut b = [0u8; 6];
    b[..4].copy_from_slice(&(0x0a00_0000u32.wrapping_add(i)).to_be_bytes());
    b[4..].copy_from_slice(&6881u16.to_be_bytes());
    PeerAddr::V4(b)
}

fn config() -> SwarmConfig {
    SwarmConfig {
        max_torrents: 0,
        ..SwarmConfig::default()
    }
}

/// 1M torrents of 5 peers (one seeder each), from announces.
fn build() -> Swarms {
    let mut s = Swarms::new(config());
    let mut out = Vec::new();
    for t in 0..TORRENTS {
        for p in 0..PEERS_PER_TORRENT {
            let req = Announce {
                info_hash: hash(t),
                addr: addr(t * PEERS_PER_TORRENT + p),
                event: AnnounceEvent::Started,
                seeder: p == 0,
                num_want: 0,
            };
            out.clear();
            s.announce(&req, 0, &mut out);
        }
    }
    s
}

fn header() -> Header {
    Header {
        peer_ids: false,
        time_unit: Header::unit_for(config().peer_timeout),
        written_at: snapshot::file::unix_now(),
        shards: 1,
    }
}

fn encode(s: &Swarms) -> Vec<u8> {
    let at = At(s, 0);
    snapshot::file::encode_all(Vec::new(), header(), &[&at as &dyn Export])
        .unwrap()
        .0
}

fn load(bytes: &[u8]) -> Vec<Swarms> {
    let mut shards = vec![Swarms::new(config())];
    let mut sink = Restore::new(&mut shards, 0, 0);
    snapshot::decode(bytes, &mut sink).unwrap();
    shards
}

fn benches(c: &mut Criterion) {
    let swarms = build();
    let bytes = encode(&swarms);
    // A state file for whole-daemon runs (benches/snapshot_stall.sh starts
    // swarmd on it): its peers have a whole peer timeout left.
    if let Some(keep) = std::env::var_os("SWARMD_SNAPSHOT_KEEP") {
        std::fs::write(&keep, &bytes).unwrap();
        eprintln!("snapshot kept in {}", std::path::Path::new(&keep).display());
    }
    let peers = (TORRENTS * PEERS_PER_TORRENT) as f64;
    let data = TORRENTS as f64 * 20.0 + peers * 6.0;
    eprintln!(
        "snapshot of {TORRENTS} torrents, {peers} peers: {} bytes, {:.2} bytes a peer, \
         {:.3}x the info hashes and compact peers it holds",
        bytes.len(),
        bytes.len() as f64 / peers,
        bytes.len() as f64 / data
    );
    let mut g = c.benchmark_group("snapshot 1M torrents 5M peers");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("write (encode in memory)", |b| {
        b.iter(|| black_box(encode(&swarms).len()))
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    g.bench_function("write (file, fsync, rename)", |b| {
        b.iter(|| {
            let at = At(&swarms, 0);
            snapshot::file::write(&path, header(), &[&at as &dyn Export]).unwrap()
        })
    });
    g.bench_function("load (read, decode, restore)", |b| {
        b.iter_batched(
            || (),
            |()| load(&std::fs::read(&path).unwrap()),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("build from announces", |b| {
        b.iter_batched(|| (), |()| build(), BatchSize::PerIteration)
    });
    g.finish();

    // The lock is held for one slice at a time: the pause a shard's
    // announces can see while a snapshot runs.
    let mut g = c.benchmark_group("snapshot slice");
    let mut section = Section::new(header(), 0);
    g.bench_function("export 8192 peers", |b| {
        let mut from = 0;
        b.iter(|| {
            from = swarms
                .export(from, snapshot::file::SLICE_PEERS, 0, &mut section)
                .unwrap_or(0);
            if section.len() > 1 << 20 {
                section = Section::new(header(), 0);
            }
        })
    });
    g.finish();
}

criterion_group!(snapshot_benches, benches);
criterion_main!(snapshot_benches);
