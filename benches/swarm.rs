//! Criterion benches of the swarm: announces into swarms of realistic sizes,
//! scrapes, and a cleaning pass over a million peers.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use swarmd::protocol::{AnnounceEvent, InfoHash};
use swarmd::swarm::{Announce, PeerAddr, SwarmConfig, Swarms};

fn addr(i: u32) -> PeerAddr {
    let mut b = [0u8; 6];
    b[..4].copy_from_slice(&(0x0a00_0000u32.wrapping_add(i)).to_be_bytes());
    b[4..].copy_from_slice(&6881u16.to_be_bytes());
    PeerAddr::V4(b)
}

fn hash(i: u32) -> InfoHash {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&i.to_le_bytes());
    h[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
    InfoHash(h)
}

fn announce(h: InfoHash, a: PeerAddr, seeder: bool) -> Announce {
    Announce {
        info_hash: h,
        addr: a,
        event: AnnounceEvent::None,
        seeder,
        num_want: 30,
    }
}

/// One torrent with `n` peers, three quarters seeders.
fn swarm_of(n: u32) -> Swarms {
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    for i in 0..n {
        out.clear();
        s.announce(&announce(hash(0), addr(i), i % 4 != 0), 0, &mut out);
    }
    s
}

fn announce_into(c: &mut Criterion) {
    let mut g = c.benchmark_group("swarm announce (30 wanted)");
    g.throughput(Throughput::Elements(1));
    for n in [1u32, 10, 1_000, 100_000] {
        let mut s = swarm_of(n);
        let mut out = Vec::with_capacity(2048);
        // A peer of the swarm re-announcing as a leecher: lookup, update,
        // selection from the whole swarm.
        let existing = announce(hash(0), addr(0), false);
        g.bench_with_input(BenchmarkId::new("existing leecher", n), &n, |b, _| {
            b.iter(|| {
                out.clear();
                black_box(s.announce(black_box(&existing), 1, &mut out))
            })
        });
        let seeder = announce(hash(0), addr(1), true);
        g.bench_with_input(BenchmarkId::new("existing seeder", n), &n, |b, _| {
            b.iter(|| {
                out.clear();
                black_box(s.announce(black_box(&seeder), 1, &mut out))
            })
        });
    }
    // New peers joining and leaving a mid-size swarm: insert and remove.
    let mut s = swarm_of(1_000);
    let mut out = Vec::with_capacity(2048);
    let mut i = 1_000_000u32;
    g.bench_function("join and stop, 1000", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            out.clear();
            s.announce(&announce(hash(0), addr(i), false), 1, &mut out);
            let mut stop = announce(hash(0), addr(i), false);
            stop.event = AnnounceEvent::Stopped;
            black_box(s.announce(&stop, 1, &mut out))
        })
    });
    g.finish();
}

/// "batch of 64" and "batch of 64, prefetched": 64 announces from `next`
/// handled as a swarm worker handles a batch, without and with the
/// prefetch pass first.
fn batches(
    g: &mut BenchmarkGroup<'_, WallTime>,
    s: &mut Swarms,
    mut next: impl FnMut() -> Announce,
) {
    g.throughput(Throughput::Elements(64));
    let mut out = Vec::with_capacity(2048);
    let mut lookups = Vec::with_capacity(64);
    for prefetch in [false, true] {
        let name = if prefetch {
            "batch of 64, prefetched"
        } else {
            "batch of 64"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let batch: Vec<Announce> = (0..64).map(|_| next()).collect();
                if prefetch {
                    lookups.clear();
                    lookups.extend(batch.iter().map(|a| (a.info_hash, Some(a.addr))));
                    s.prefetch(&lookups);
                }
                for a in &batch {
                    out.clear();
                    black_box(s.announce(a, 1, &mut out));
                }
            })
        });
    }
}

fn many_torrents(c: &mut Criterion) {
    // A million small torrents: the map lookup dominates.
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    for t in 0..1_000_000u32 {
        out.clear();
        s.announce(&announce(hash(t), addr(t), t % 2 == 0), 0, &mut out);
    }
    let mut g = c.benchmark_group("1M torrents");
    g.throughput(Throughput::Elements(1));
    let mut t = 0u32;
    g.bench_function("announce", |b| {
        b.iter(|| {
            t = (t + 7919) % 1_000_000;
            out.clear();
            black_box(s.announce(&announce(hash(t), addr(t + 1), false), 1, &mut out))
        })
    });
    batches(&mut g, &mut s, || {
        t = (t + 7919) % 1_000_000;
        announce(hash(t), addr(t + 1), false)
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("scrape one", |b| {
        b.iter(|| {
            t = (t + 7919) % 1_000_000;
            black_box(s.scrape(&hash(t)))
        })
    });
    g.finish();
}

/// aquatic_udp_load_test's mix: 2M peers, each announcing to one of a
/// million torrents picked with that tool's weights (1/2 + e^(6.5 - 500 i /
/// 1M) for the i-th), in turn, as a seeder three times in four. A few
/// thousand swarms hold three quarters of the peers, up to ~700 each, so
/// finding the announcing peer and copying out the chosen ones miss the
/// cache as they do under that load.
fn skewed_mix(c: &mut Criterion) {
    const TORRENTS: u32 = 1_000_000;
    const PEERS: u32 = 2_000_000;
    let mut cumulative = Vec::with_capacity(TORRENTS as usize);
    let mut total = 0.0;
    for i in 0..TORRENTS {
        total += 0.5 + (6.5 - 500.0 * f64::from(i) / f64::from(TORRENTS)).exp();
        cumulative.push(total);
    }
    let mut rng = fastrand::Rng::with_seed(7);
    let torrent_of: Vec<InfoHash> = (0..PEERS)
        .map(|_| {
            let x = rng.f64() * total;
            hash(cumulative.partition_point(|&c| c < x) as u32)
        })
        .collect();
    let mut s = Swarms::new(SwarmConfig::default());
    let mut out = Vec::new();
    let mut peer = 0u32;
    let mut next = move || {
        peer = (peer + 1) % PEERS;
        announce(torrent_of[peer as usize], addr(peer), rng.u8(..4) != 0)
    };
    for _ in 0..PEERS {
        out.clear();
        s.announce(&next(), 0, &mut out);
    }
    let mut g = c.benchmark_group("skewed mix");
    batches(&mut g, &mut s, next);
    g.finish();
}

fn cleaning(c: &mut Criterion) {
    let mut g = c.benchmark_group("cleaning");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    // 1M peers over 100k torrents, half of them expired.
    let build = || {
        let mut s = Swarms::new(SwarmConfig {
            peer_timeout: 100,
            ..SwarmConfig::default()
        });
        let mut out = Vec::new();
        for i in 0..1_000_000u32 {
            out.clear();
            let now = if i % 2 == 0 { 0 } else { 500 };
            s.announce(&announce(hash(i % 100_000), addr(i), false), now, &mut out);
        }
        s
    };
    g.bench_function("full pass over 1M peers, half expired", |b| {
        b.iter_batched(
            build,
            |mut s| {
                while !s.clean_step(200, 8192).1 {}
                s
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// `[swarm] prefer_same_subnet` off and on, in one torrent of 100k peers
/// in racks of 40 (a /24 each, three in four seeders): a deploy inside a
/// data center. On, a peer gets its rack's peers first: one lookup of its
/// subnet's group, then a run of the rest of the swarm. Measured on a
/// shared 2-core box (load 5-9, three rounds): on costs 1.1-1.9x off for a
/// leecher (170 vs 257 ns in the quietest round), 0.8-1.65x for a seeder,
/// 1.36x for a join and stop.
fn same_subnet(c: &mut Criterion) {
    let rack = |i: u32| {
        let mut b = [0u8; 6];
        b[..4].copy_from_slice(&(0x0a00_0000 + (i / 40) * 256 + i % 40).to_be_bytes());
        b[4..].copy_from_slice(&6881u16.to_be_bytes());
        PeerAddr::V4(b)
    };
    let mut g = c.benchmark_group("100k peers in racks of 40 (30 wanted)");
    g.throughput(Throughput::Elements(1));
    for on in [false, true] {
        let mut s = Swarms::new(SwarmConfig {
            prefer_same_subnet: on,
            ..SwarmConfig::default()
        });
        let mut out = Vec::with_capacity(2048);
        for i in 0..100_000 {
            out.clear();
            s.announce(&announce(hash(0), rack(i), i % 4 != 0), 0, &mut out);
        }
        let name = |what| format!("{} {what}", if on { "on" } else { "off" });
        // Peers of different racks in turn, so that their groups are not
        // all in cache.
        let mut r = 0u32;
        g.bench_function(name("existing leecher"), |b| {
            b.iter(|| {
                r = (r + 7919) % 2_500;
                out.clear();
                black_box(s.announce(&announce(hash(0), rack(r * 40), false), 1, &mut out))
            })
        });
        g.bench_function(name("existing seeder"), |b| {
            b.iter(|| {
                r = (r + 7919) % 2_500;
                out.clear();
                black_box(s.announce(&announce(hash(0), rack(r * 40 + 1), true), 1, &mut out))
            })
        });
        let mut i = 0u32;
        g.bench_function(name("join and stop"), |b| {
            b.iter(|| {
                i = (i + 7919) % 100_000;
                // Host 100 of a rack: not yet in the swarm.
                let new = match rack(i) {
                    PeerAddr::V4(mut a) => {
                        a[3] = 100;
                        PeerAddr::V4(a)
                    }
                    v6 => v6,
                };
                out.clear();
                s.announce(&announce(hash(0), new, false), 1, &mut out);
                let mut stop = announce(hash(0), new, false);
                stop.event = AnnounceEvent::Stopped;
                black_box(s.announce(&stop, 1, &mut out))
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    announce_into,
    many_torrents,
    skewed_mix,
    cleaning,
    same_subnet
);
criterion_main!(benches);
