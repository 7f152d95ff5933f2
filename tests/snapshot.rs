//! The state snapshot end to end: swarms announced over UDP and HTTP come
//! back after a stop and a start on the same file (in process, and with the
//! binary and SIGTERM), peers past their timeout don't, bad files start an
//! empty tracker and are kept aside, and a snapshot of 2 shards loads into
//! 4.

mod util;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use swarmd::protocol::udp::ScrapeStats;
use swarmd::protocol::{AnnounceEvent, InfoHash};
use swarmd::{Config, Tracker};
use util::http::{announce_path, HttpClient};
use util::{hash, Client};

fn config(state: &Path, edit: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.udp.addresses = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    config.http.addresses = vec!["127.0.0.1:0".parse().unwrap()];
    config.stats.address = String::new();
    config.state.path = state.to_str().unwrap().into();
    config.state.interval = 0;
    edit(&mut config);
    config
}

fn start(config: &Config) -> Tracker {
    swarmd::start(config).expect("tracker starts")
}

fn scrape(tracker: &Tracker, hashes: &[InfoHash]) -> Vec<ScrapeStats> {
    let mut c = Client::new(tracker.udp_addrs()[0]);
    c.connect();
    c.scrape(hashes)
}

fn stats(seeders: u32, completed: u32, leechers: u32) -> ScrapeStats {
    ScrapeStats {
        seeders,
        completed,
        leechers,
    }
}

fn torrents(tracker: &Tracker) -> u64 {
    tracker.stats().swarm_total(|s| &s.torrents)
}

/// Announces over UDP (IPv4 and IPv6) and HTTP: torrent 1 has a leecher
/// and a seeder that completed, torrent 2 an IPv6 leecher, torrent 3 an
/// HTTP seeder that completed. Returns the UDP leecher's address.
fn fill(tracker: &Tracker) -> std::net::SocketAddr {
    let mut leecher = Client::new(tracker.udp_addrs()[0]);
    leecher.connect();
    leecher.announce(hash(1), AnnounceEvent::Started, 100);
    let mut seeder = Client::new(tracker.udp_addrs()[0]);
    seeder.connect();
    seeder.announce(hash(1), AnnounceEvent::Completed, 0);
    let mut v6 = Client::new(tracker.udp_addrs()[1]);
    v6.connect();
    v6.announce(hash(2), AnnounceEvent::Started, 100);
    let mut http = HttpClient::connect(tracker.http_addrs()[0]);
    let reply = http.get(&announce_path(
        hash(3),
        &[3; 20],
        4000,
        0,
        "&event=completed",
    ));
    assert_eq!(reply.bencode().int("complete"), 1);
    leecher.socket.local_addr().unwrap()
}

fn want() -> Vec<ScrapeStats> {
    vec![stats(1, 1, 1), stats(0, 0, 1), stats(1, 1, 0)]
}

#[test]
fn swarms_survive_a_stop_and_a_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    let config = config(&path, |_| {});
    let tracker = start(&config);
    let leecher = fill(&tracker);
    let hashes = [hash(1), hash(2), hash(3)];
    assert_eq!(scrape(&tracker, &hashes), want());
    tracker.stop().unwrap();
    assert!(path.exists());

    let tracker = start(&config);
    assert_eq!(scrape(&tracker, &hashes), want());
    assert_eq!(torrents(&tracker), 3);
    // A new peer gets the old ones.
    let mut newcomer = Client::new(tracker.udp_addrs()[0]);
    newcomer.connect();
    let (leechers, seeders, peers) = newcomer.announce(hash(1), AnnounceEvent::Started, 100);
    assert_eq!((leechers, seeders), (2, 1));
    assert!(peers.contains(&leecher), "{peers:?} lacks {leecher}");
    tracker.stop().unwrap();
}

/// Moves the time a snapshot says it was written back by `secs`, keeping
/// its header checksum right: as if the tracker had been down that long.
fn age(path: &Path, secs: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut header = swarmd::snapshot::read_header(&bytes).unwrap();
    header.written_at -= secs;
    bytes[..32].copy_from_slice(&header.to_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_peer_past_its_timeout_is_not_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    let config = config(&path, |c| {
        c.announce.interval = swarmd::config::Positive(30);
        c.announce.min_interval = swarmd::config::Positive(30);
        c.swarm.peer_timeout = swarmd::config::Positive(60);
    });
    let tracker = start(&config);
    let mut c = Client::new(tracker.udp_addrs()[0]);
    c.connect();
    c.announce(hash(9), AnnounceEvent::Started, 100);
    tracker.stop().unwrap();

    // Down for 20 s of its 60: back.
    age(&path, 20);
    let tracker = start(&config);
    assert_eq!(scrape(&tracker, &[hash(9)]), vec![stats(0, 0, 1)]);
    tracker.stop().unwrap();

    // Down for 90 s: gone, and so is its torrent.
    age(&path, 90);
    let tracker = start(&config);
    assert_eq!(scrape(&tracker, &[hash(9)]), vec![stats(0, 0, 0)]);
    assert_eq!(torrents(&tracker), 0);
    tracker.stop().unwrap();
}

/// A good snapshot of a filled tracker, as bytes.
fn good_snapshot(dir: &Path) -> Vec<u8> {
    let path = dir.join("good.bin");
    let tracker = start(&config(&path, |_| {}));
    fill(&tracker);
    tracker.stop().unwrap();
    std::fs::read(path).unwrap()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

#[test]
fn a_bad_snapshot_starts_an_empty_tracker_and_is_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_snapshot(dir.path());
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x04;
    let mut other_version = good.clone();
    other_version[8] = 99;
    let cases = [
        ("truncated", good[..good.len() - 3].to_vec()),
        ("bit-flipped", flipped),
        ("empty", Vec::new()),
        ("wrong-version", other_version),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(format!("{name}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        let tracker = start(&config(&path, |_| {}));
        assert_eq!(torrents(&tracker), 0, "{name}");
        assert_eq!(scrape(&tracker, &[hash(1)]), vec![stats(0, 0, 0)], "{name}");
        let bad = with_suffix(&path, ".bad");
        assert_eq!(std::fs::read(&bad).unwrap(), bytes, "{name}: kept whole");
        assert!(!path.exists(), "{name}: moved aside, not loaded again");
        // It works as ever, and writes a good snapshot on stop.
        fill(&tracker);
        tracker.stop().unwrap();
        let tracker = start(&config(&path, |_| {}));
        assert_eq!(
            scrape(&tracker, &[hash(1), hash(2), hash(3)]),
            want(),
            "{name}"
        );
        tracker.stop().unwrap();
    }
}

#[test]
fn a_snapshot_of_2_shards_loads_into_4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    let shards = |n| {
        config(&path, move |c| {
            c.workers.swarm_workers = NonZeroUsize::new(n).unwrap();
        })
    };
    let tracker = start(&shards(2));
    let mut c = Client::new(tracker.udp_addrs()[0]);
    c.connect();
    let hashes: Vec<InfoHash> = (0..40).map(|i| InfoHash([i; 20])).collect();
    for (i, h) in hashes.iter().enumerate() {
        let left = if i % 3 == 0 { 0 } else { 5 };
        c.announce(*h, AnnounceEvent::Started, left);
    }
    let before: Vec<ScrapeStats> = hashes
        .chunks(20)
        .flat_map(|h| scrape(&tracker, h))
        .collect();
    tracker.stop().unwrap();

    let tracker = start(&shards(4));
    let after: Vec<ScrapeStats> = hashes
        .chunks(20)
        .flat_map(|h| scrape(&tracker, h))
        .collect();
    assert_eq!(after, before);
    assert_eq!(torrents(&tracker), 40);
    let per_shard: Vec<u64> = tracker
        .stats()
        .swarm
        .iter()
        .map(|s| s.torrents.get())
        .collect();
    assert_eq!(per_shard.len(), 4);
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    tracker.stop().unwrap();
}

#[test]
fn a_directory_that_is_not_there_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("state.bin");
    match swarmd::start(&config(&path, |_| {})) {
        Err(swarmd::StartError::State(e)) => assert!(e.contains("missing"), "{e}"),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("started"),
    }
    let toml = dir.path().join("tracker.toml");
    std::fs::write(
        &toml,
        format!("[state]\npath = {:?}\n", path.to_str().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swarmd"))
        .args(["--check-config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("state.path") && err.contains("missing"),
        "{err}"
    );
    // --state (as the systemd unit passes it) overrides the file's path.
    std::fs::write(&toml, "[state]\npath = \"\"\n").unwrap();
    let check = |state: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_swarmd"))
            .args(["--state", state.to_str().unwrap(), "--check-config"])
            .arg(&toml)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!check(&path));
    assert!(check(&dir.path().join("state.bin")));
}

#[test]
fn the_daemon_keeps_its_swarms_across_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    let toml = dir.path().join("tracker.toml");
    std::fs::write(
        &toml,
        format!(
            "[udp]\naddresses = [\"127.0.0.1:0\"]\n[http]\naddresses = [\"127.0.0.1:0\"]\n\
             [stats]\naddress = \"\"\n[state]\npath = {:?}\ninterval = 0\n",
            path.to_str().unwrap()
        ),
    )
    .unwrap();
    let run = |expect: &str| {
        let mut d = util::daemon::Daemon::start(&toml);
        d.wait_for(expect);
        let udp = d.logged_addr("udp");
        let http = d.logged_addr("http");
        (d, udp, http)
    };
    let (mut d, udp, http) = run("no snapshot at");
    let mut c = Client::new(udp);
    c.connect();
    c.announce(hash(1), AnnounceEvent::Started, 100);
    c.announce(hash(2), AnnounceEvent::Completed, 0);
    let mut h = HttpClient::connect(http);
    h.get(&announce_path(
        hash(1),
        &[5; 20],
        5000,
        0,
        "&event=completed",
    ));
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(10)).unwrap().success());
    assert!(d.rest_of_log().iter().any(|l| l.contains("on stop")));

    let (d, udp, _) = run("state: loaded");
    let mut c = Client::new(udp);
    c.connect();
    assert_eq!(
        c.scrape(&[hash(1), hash(2)]),
        vec![stats(1, 1, 1), stats(1, 1, 0)]
    );
    drop(d);
    // Still there: a snapshot is never deleted by a kill.
    assert!(path.exists());
}

/// The value of the metric line starting with `name ` in /metrics.
fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let (_, body) = util::stats::get(addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .parse()
        .unwrap()
}

fn poll(mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn snapshots_are_written_while_running_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    let tracker = start(&config(&path, |c| {
        c.state.interval = 1;
        c.stats.address = "127.0.0.1:0".into();
    }));
    let endpoint = tracker.stats_addr().unwrap();
    fill(&tracker);
    // The next periodic snapshot holds what was announced.
    let announced = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    poll(|| metric(endpoint, "swarmd_snapshot_last_success_timestamp_seconds") > announced);
    assert!(metric(endpoint, "swarmd_snapshot_bytes") > 32.0);
    assert!(metric(endpoint, "swarmd_snapshot_duration_seconds") > 0.0);
    assert_eq!(metric(endpoint, "swarmd_snapshot_failures_total"), 0.0);
    let (_, json) = util::stats::get(endpoint, "/stats");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(json["snapshot"]["bytes"].as_u64().unwrap() > 32, "{json}");
    let bytes = std::fs::read(&path).unwrap();
    struct Count(u64);
    impl swarmd::snapshot::Sink for Count {
        fn torrent(&mut self, _: InfoHash, _: u32) {}
        fn peer(&mut self, _: &swarmd::snapshot::PeerRecord<'_>) {
            self.0 += 1;
        }
    }
    let mut peers = Count(0);
    swarmd::snapshot::decode(&bytes, &mut peers).unwrap();
    assert_eq!(peers.0, 4, "taken while running");

    // A directory gone: failures are counted, the tracker runs on.
    drop(dir);
    poll(|| metric(endpoint, "swarmd_snapshot_failures_total") >= 1.0);
    assert_eq!(scrape(&tracker, &[hash(1)]), vec![stats(1, 1, 1)]);
    tracker.stop().unwrap();
}
