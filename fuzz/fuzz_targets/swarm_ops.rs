//! The swarm state under any sequence of announces (every event, seeders
//! and leechers, IPv4 and IPv6), scrapes, cleaning steps and clock moves,
//! checked after every step against a plain model of who announced what.
//!
//! The input: five bytes of settings, then three bytes a step. Four info
//! hashes and 64 addresses a family keep collisions frequent while letting a
//! swarm grow past the size where it gets a hash index.
//!
//! Cleaning makes the model inexact: a peer whose expiry has passed may or
//! may not have been removed yet by a partial cleaning step, so the model
//! marks it "maybe" and checks bounds; a full pass makes the model exact again.

#![no_main]

use std::collections::{HashMap, HashSet};

use libfuzzer_sys::fuzz_target;
use swarmd::protocol::{AnnounceEvent, InfoHash};
use swarmd::swarm::{Announce, PeerAddr, SwarmConfig, Swarms};

const HASHES: u8 = 4;

#[derive(Clone, Copy, Debug)]
struct ModelPeer {
    seeder: bool,
    expiry: u32,
    /// Expired and perhaps already cleaned away.
    maybe: bool,
}

struct Model {
    config: SwarmConfig,
    now: u32,
    peers: HashMap<(u8, PeerAddr), ModelPeer>,
    /// Completed events sent per hash: the most `completed` can be.
    completed_events: [u32; HASHES as usize],
}

fn info_hash(h: u8) -> InfoHash {
    let mut b = [0u8; 20];
    b[0] = h;
    b[19] = 0x5a;
    InfoHash(b)
}

/// Address `i` (0..64) of a family: 16 hosts, 4 ports each.
fn addr(i: u8, v6: bool) -> PeerAddr {
    let host = i & 15;
    let port = (6881 + (i >> 4) as u16).to_be_bytes();
    if v6 {
        let mut b = [0u8; 18];
        b[0] = 0x20;
        b[1] = 0x01;
        b[15] = host;
        b[16..].copy_from_slice(&port);
        PeerAddr::V6(b)
    } else {
        PeerAddr::V4([10, 0, 0, host, port[0], port[1]])
    }
}

fn addr_bytes(a: &PeerAddr) -> &[u8] {
    match a {
        PeerAddr::V4(b) => b,
        PeerAddr::V6(b) => b,
    }
}

fn parse(p: &[u8]) -> PeerAddr {
    match p.len() {
        6 => PeerAddr::V4(p.try_into().unwrap()),
        _ => PeerAddr::V6(p.try_into().unwrap()),
    }
}

/// Whether two addresses share a subnet of the fuzzed config (/30, /126:
/// the hosts `addr` makes differ in their last address byte only).
fn near(a: &PeerAddr, b: &PeerAddr) -> bool {
    let (a, b) = (addr_bytes(a), addr_bytes(b));
    let last = a.len() - 3;
    a.len() == b.len() && a[..last] == b[..last] && a[last] & 0xfc == b[last] & 0xfc
}

fn is_v6(a: &PeerAddr) -> bool {
    matches!(a, PeerAddr::V6(_))
}

impl Model {
    /// (definite, maybe) counts of the peers of `hash` that `keep` selects.
    fn count(&self, hash: u8, keep: impl Fn(&PeerAddr, &ModelPeer) -> bool) -> (usize, usize) {
        let mut definite = 0;
        let mut maybe = 0;
        for ((h, a), p) in &self.peers {
            if *h == hash && keep(a, p) {
                if p.maybe {
                    maybe += 1;
                } else {
                    definite += 1;
                }
            }
        }
        (definite, maybe)
    }

    /// A partial cleaning step ran at `now`: expired peers may be gone.
    fn expire_maybe(&mut self) {
        let now = self.now;
        for p in self.peers.values_mut() {
            if p.expiry < now {
                p.maybe = true;
            }
        }
    }

    /// A full pass ran at `now`: expired peers are gone.
    fn expire_all(&mut self) {
        let now = self.now;
        // A "maybe" that has not expired was maybe evicted: still maybe.
        self.peers.retain(|_, p| p.expiry >= now);
    }
}

fn announce(
    s: &mut Swarms,
    m: &mut Model,
    hash: u8,
    a: PeerAddr,
    event: AnnounceEvent,
    seeder: bool,
    num_want: i32,
) {
    let req = Announce {
        info_hash: info_hash(hash),
        addr: a,
        event,
        seeder,
        num_want,
    };
    let v6 = is_v6(&a);
    let me = m.peers.get(&(hash, a)).copied();
    // Peers this announcer may be sent: same family, not itself, and only
    // leechers for a seeder. Counted before the announce changes the swarm.
    let (eligible, eligible_maybe) = m.count(hash, |pa, p| {
        is_v6(pa) == v6 && *pa != a && !(seeder && p.seeder)
    });
    let (eligible_near, _) = m.count(hash, |pa, p| {
        is_v6(pa) == v6 && *pa != a && !(seeder && p.seeder) && near(pa, &a)
    });
    // A newcomer (as far as the swarm may know) to a full swarm may take
    // the place of one of them.
    let may_evict = m.config.max_peers_per_torrent != 0 && me.is_none_or(|p| p.maybe);
    let mut out = Vec::new();
    let counts = s.announce(&req, m.now, &mut out);

    // The reply.
    let len = if v6 { 18 } else { 6 };
    assert_eq!(out.len() % len, 0);
    assert_eq!(out.len() / len, counts.peers as usize);
    let want = if num_want <= 0 {
        m.config.default_numwant
    } else {
        num_want as usize
    }
    .min(m.config.max_numwant);
    if event == AnnounceEvent::Stopped {
        assert_eq!(counts.peers, 0, "a stopped peer is sent peers");
    } else {
        let n = counts.peers as usize;
        assert!(n <= want, "{n} peers for numwant {num_want} (cap {want})");
        // All it may have, up to what it wants: never fewer than the peers
        // certainly there.
        assert!(
            n >= want.min(eligible - (may_evict && eligible > 0) as usize)
                && n <= want.min(eligible + eligible_maybe),
            "{n} peers; want {want}, eligible {eligible} (+{eligible_maybe} maybe)"
        );
    }
    if m.config.prefer_same_subnet && event != AnnounceEvent::Stopped {
        // The announcer's subnet first, and all of it that may be sent
        // before any other peer.
        let near: Vec<bool> = out.chunks(len).map(|p| near(&parse(p), &a)).collect();
        assert!(
            near.windows(2).all(|w| w[0] || !w[1]),
            "subnet after others: {near:?}"
        );
        let sent_near = near.iter().filter(|&&n| n).count();
        if sent_near < near.len() {
            assert!(
                sent_near + (may_evict as usize) >= eligible_near,
                "{sent_near} of the subnet sent, {eligible_near} eligible"
            );
        }
    }
    let mut seen = HashSet::new();
    for p in out.chunks(len) {
        assert!(seen.insert(p), "a peer twice in one reply");
        assert_ne!(p, addr_bytes(&a), "the announcer in its own reply");
        let pa = parse(p);
        let mp = m
            .peers
            .get(&(hash, pa))
            .unwrap_or_else(|| panic!("sent a peer that is not in the swarm: {p:?}"));
        assert!(!(seeder && mp.seeder), "a seeder was sent a seeder");
    }

    // The model after it.
    if event == AnnounceEvent::Completed {
        m.completed_events[hash as usize] += 1;
    }
    if event == AnnounceEvent::Stopped || counts.not_stored {
        assert!(
            !(counts.not_stored && me.is_some_and(|p| !p.maybe)),
            "a stored peer's announce was not stored"
        );
        m.peers.remove(&(hash, a));
    } else {
        if may_evict && event != AnnounceEvent::Stopped {
            // A newcomer to a full swarm may have taken the place of a peer
            // of the same family whose address has more.
            for ((h, pa), p) in m.peers.iter_mut() {
                if *h == hash && is_v6(pa) == v6 {
                    p.maybe = true;
                }
            }
        }
        let expiry = m.now.saturating_add(m.config.peer_timeout);
        m.peers.insert(
            (hash, a),
            ModelPeer {
                seeder,
                expiry,
                maybe: false,
            },
        );
    }
    // The counts in the reply are the torrent's after the announce.
    let sc = s.scrape(&info_hash(hash));
    assert_eq!((counts.seeders, counts.leechers), (sc.seeders, sc.leechers));
}

fn check(s: &Swarms, m: &Model) {
    let t = s.totals();
    assert_eq!(t.seeders + t.leechers, t.peers_v4 + t.peers_v6, "{t:?}");
    assert!(t.torrents <= HASHES as u64);
    if m.config.max_torrents != 0 {
        assert!(t.torrents <= m.config.max_torrents as u64, "{t:?}");
    }
    let (mut seeders, mut leechers, mut with_peers) = (0, 0, 0);
    for h in 0..HASHES {
        let sc = s.scrape(&info_hash(h));
        seeders += sc.seeders as u64;
        leechers += sc.leechers as u64;
        with_peers += (sc.seeders + sc.leechers > 0) as u64;
        for (role, got) in [(true, sc.seeders), (false, sc.leechers)] {
            let (definite, maybe) = m.count(h, |_, p| p.seeder == role);
            let got = got as usize;
            assert!(
                got >= definite && got <= definite + maybe,
                "hash {h} {}: swarm {got}, model {definite} (+{maybe} maybe)",
                if role { "seeders" } else { "leechers" }
            );
        }
        if m.config.max_peers_per_torrent != 0 {
            let n = (sc.seeders + sc.leechers) as usize;
            assert!(
                n <= m.config.max_peers_per_torrent,
                "hash {h}: {n} peers stored"
            );
        }
        assert!(sc.completed <= m.completed_events[h as usize]);
    }
    assert_eq!((seeders, leechers), (t.seeders, t.leechers));
    assert!(t.torrents >= with_peers);
    for v6 in [false, true] {
        let (definite, maybe) = (0..HASHES)
            .map(|h| m.count(h, |a, _| is_v6(a) == v6))
            .fold((0, 0), |(d, x), (d2, x2)| (d + d2, x + x2));
        let got = if v6 { t.peers_v6 } else { t.peers_v4 } as usize;
        assert!(got >= definite && got <= definite + maybe);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((settings, steps)) = data.split_first_chunk::<5>() else {
        return;
    };
    let config = SwarmConfig {
        peer_timeout: 1 + settings[0] as u32 % 64,
        default_numwant: settings[1] as usize % 80,
        max_numwant: settings[2] as usize % 80,
        max_peers_per_torrent: if settings[3] & 0x80 != 0 {
            0
        } else {
            settings[3] as usize % 40
        },
        max_torrents: settings[4] as usize % 5,
        max_peers_per_address: 0,
        // Subnets of four addresses of the 16 hosts.
        prefer_same_subnet: settings[4] & 0x80 != 0,
        subnet_prefix_v4: 30,
        subnet_prefix_v6: 126,
    };
    let mut s = Swarms::new(config.clone());
    let mut m = Model {
        config,
        now: 1,
        peers: HashMap::new(),
        completed_events: [0; HASHES as usize],
    };
    for step in steps.chunks_exact(3) {
        let (op, target, arg) = (step[0], step[1], step[2]);
        let hash = target >> 6;
        let seeder = op & 8 != 0;
        let a = addr(target & 63, op & 16 != 0);
        let num_want = arg as i8 as i32;
        match op & 7 {
            0 | 4 => announce(
                &mut s,
                &mut m,
                hash,
                a,
                AnnounceEvent::None,
                seeder,
                num_want,
            ),
            1 => announce(
                &mut s,
                &mut m,
                hash,
                a,
                AnnounceEvent::Completed,
                seeder,
                num_want,
            ),
            2 => announce(
                &mut s,
                &mut m,
                hash,
                a,
                AnnounceEvent::Started,
                seeder,
                num_want,
            ),
            3 => announce(
                &mut s,
                &mut m,
                hash,
                a,
                AnnounceEvent::Stopped,
                seeder,
                num_want,
            ),
            5 => {
                // Scrapes change nothing.
                let before = s.totals();
                let _ = s.scrape(&info_hash(hash));
                assert_eq!(s.totals(), before);
            }
            6 => {
                // A partial cleaning step with a small budget.
                let _ = s.clean_step(m.now, arg as usize);
                m.expire_maybe();
            }
            _ => {
                if arg == 0 {
                    // Finish the pass under way, then one whole pass.
                    let (_, done) = s.clean_step(m.now, usize::MAX);
                    assert!(done);
                    let (_, done) = s.clean_step(m.now, usize::MAX);
                    assert!(done);
                    m.expire_all();
                } else {
                    m.now += (arg % 64) as u32;
                }
            }
        }
        check(&s, &m);
    }
});
