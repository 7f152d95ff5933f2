//! Round trips of the codec and its refusals of bad bytes.

use proptest::prelude::*;

use super::format::MAX_UNITS;
use super::*;
use crate::protocol::InfoHash;
use crate::swarm::PeerAddr;

type Peer = (PeerAddr, bool, u32, [u8; 20]);
type Torrent = (InfoHash, u32, Vec<Peer>);

#[derive(Default)]
struct Collect(Vec<Torrent>);

impl Sink for Collect {
    fn torrent(&mut self, info_hash: InfoHash, completed: u32) {
        self.0.push((info_hash, completed, Vec::new()));
    }
    fn peer(&mut self, p: &PeerRecord<'_>) {
        if let Some(t) = self.0.last_mut() {
            t.2.push((p.addr, p.seeder, p.left, p.id.copied().unwrap_or_default()));
        }
    }
}

fn header(peer_ids: bool, time_unit: u16) -> Header {
    Header {
        peer_ids,
        time_unit,
        written_at: 1_800_000_000,
        shards: 2,
    }
}

/// Encodes `torrents`, a new section every `per_section` torrents; v4
/// peers first in each torrent, as the encoder wants them.
fn encode(h: Header, torrents: &[Torrent], per_section: usize) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new(), h).unwrap();
    let mut section = enc.section(0);
    for (i, (hash, completed, peers)) in torrents.iter().enumerate() {
        let v4 = peers
            .iter()
            .filter(|p| matches!(p.0, PeerAddr::V4(_)))
            .count();
        section.torrent(hash, *completed, v4, peers.len() - v4);
        for p in peers {
            section.peer_addr(&p.0, p.1, p.2, &p.3);
        }
        if (i + 1) % per_section.max(1) == 0 {
            enc.write(&mut section).unwrap();
        }
    }
    enc.write(&mut section).unwrap();
    enc.finish().unwrap().0
}

fn peer() -> impl Strategy<Value = Peer> {
    (
        prop_oneof![
            any::<[u8; 6]>().prop_map(PeerAddr::V4),
            any::<[u8; 18]>().prop_map(PeerAddr::V6)
        ],
        any::<bool>(),
        0u32..5000,
        any::<[u8; 20]>(),
    )
}

fn torrents() -> impl Strategy<Value = Vec<Torrent>> {
    prop::collection::vec(
        (
            any::<[u8; 20]>().prop_map(InfoHash),
            any::<u32>(),
            prop::collection::vec(peer(), 0..12),
        )
            .prop_map(|(h, c, mut peers)| {
                peers.sort_by_key(|p| matches!(p.0, PeerAddr::V6(_)));
                (h, c, peers)
            }),
        0..40,
    )
}

proptest! {
    #[test]
    fn round_trip(torrents in torrents(), ids: bool, unit in 1u16..100, per in 1usize..8) {
        let bytes = encode(header(ids, unit), &torrents, per);
        let mut got = Collect::default();
        let d = decode(&bytes, &mut got).unwrap();
        prop_assert_eq!(d.header, header(ids, unit));
        prop_assert_eq!(d.torrents, torrents.len() as u64);
        let want: Vec<Torrent> = torrents.iter().map(|(h, c, peers)| {
            let peers = peers.iter().map(|&(a, s, left, id)| {
                let units = left.div_ceil(unit as u32).min(MAX_UNITS);
                (a, s, units * unit as u32, if ids { id } else { [0; 20] })
            }).collect();
            (*h, *c, peers)
        }).collect();
        prop_assert_eq!(got.0, want);
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes, &mut Collect::default());
    }

    #[test]
    fn any_change_to_a_snapshot_fails_or_decodes(
        torrents in torrents(), at: prop::sample::Index, byte: u8, cut: prop::sample::Index,
    ) {
        let mut bytes = encode(header(false, 22), &torrents, 3);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode(&bytes, &mut Collect::default());
        bytes.truncate(cut.index(bytes.len()));
        prop_assert!(decode(&bytes, &mut Collect::default()).is_err(), "a cut file decodes");
    }
}

fn sample() -> Vec<u8> {
    let peers = vec![
        (PeerAddr::V4([127, 0, 0, 1, 0x1a, 0xe1]), true, 100, [1; 20]),
        (PeerAddr::V6([9; 18]), false, 2000, [2; 20]),
    ];
    encode(header(false, 22), &[(InfoHash([7; 20]), 3, peers)], 1)
}

#[test]
fn each_kind_of_damage_is_named() {
    let good = sample();
    let d = |b: &[u8]| decode(b, &mut Collect::default());
    assert!(d(&good).is_ok());
    assert_eq!(d(&[]), Err(DecodeError::Empty));
    assert_eq!(d(b"SWARM"), Err(DecodeError::Truncated));
    assert_eq!(d(b"hello, world"), Err(DecodeError::BadMagic));
    for cut in [20, 40, good.len() - 1] {
        assert_eq!(d(&good[..cut]), Err(DecodeError::Truncated), "cut at {cut}");
    }
    let mut v = good.clone();
    v[8] = 9;
    assert_eq!(d(&v), Err(DecodeError::Version(9)));
    let mut v = good.clone();
    v[20] ^= 1;
    assert_eq!(d(&v), Err(DecodeError::BadChecksum { section: 0 }));
    let mut v = good.clone();
    v[50] ^= 0x10;
    assert_eq!(d(&v), Err(DecodeError::BadChecksum { section: 1 }));
    let mut v = good.clone();
    v.push(0);
    assert!(matches!(d(&v), Err(DecodeError::Corrupt(_))));
}

#[test]
fn a_file_cut_at_a_section_boundary_is_truncated() {
    let t = |b: u8| {
        (
            InfoHash([b; 20]),
            0,
            vec![(PeerAddr::V4([b; 6]), false, 50, [0; 20])],
        )
    };
    let bytes = encode(header(false, 1), &[t(1), t(2)], 1);
    // Header, two sections of 9 + 2 + 20 + 1 + 1 + 7 bytes, the end.
    let boundary = 32 + 2 * 40;
    assert_eq!(bytes[boundary], b'E');
    assert_eq!(
        decode(&bytes[..boundary], &mut Collect::default()),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn a_count_larger_than_the_file_is_refused_before_any_peer() {
    // A torrents section whose count claims a million torrents.
    let mut body = vec![0u8];
    format::put_varint(&mut body, 1_000_000);
    let mut bytes = header(false, 1).to_bytes().to_vec();
    bytes.push(b'T');
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    let mut sink = Collect::default();
    assert!(matches!(
        decode(&bytes, &mut sink),
        Err(DecodeError::Corrupt(_))
    ));
    assert!(sink.0.is_empty());
}

mod swarms {
    use super::super::file::{encode_all, At};
    use super::super::restore::Restore;
    use super::*;
    use crate::protocol::AnnounceEvent;
    use crate::swarm::{Announce, SwarmConfig, Swarms};

    fn announce(s: &mut Swarms, hash: u8, addr: PeerAddr, seeder: bool, event: AnnounceEvent) {
        let req = Announce {
            info_hash: InfoHash([hash; 20]),
            addr,
            event,
            seeder,
            num_want: 50,
        };
        s.announce(&req, 100, &mut Vec::new());
    }

    fn v4(i: u32) -> PeerAddr {
        let b = i.to_be_bytes();
        PeerAddr::V4([10, b[1], b[2], b[3], 0x1a, 0xe1])
    }

    /// Torrents 1..=40 with a few peers each, torrent 50 with 300 (an
    /// indexed swarm), IPv6 peers and completions here and there.
    fn filled() -> Swarms {
        let mut s = Swarms::new(SwarmConfig::default());
        for t in 1..=40u8 {
            for p in 0..(t as u32 % 5 + 1) {
                let event = if p == 0 {
                    AnnounceEvent::Completed
                } else {
                    AnnounceEvent::Started
                };
                announce(&mut s, t, v4(t as u32 * 100 + p), p % 2 == 0, event);
            }
            if t % 3 == 0 {
                announce(
                    &mut s,
                    t,
                    PeerAddr::V6([t; 18]),
                    false,
                    AnnounceEvent::Started,
                );
            }
        }
        for p in 0..300 {
            announce(
                &mut s,
                50,
                v4(100_000 + p),
                p % 7 == 0,
                AnnounceEvent::Started,
            );
        }
        s
    }

    fn snapshot_of(s: &Swarms, now: u32) -> Vec<u8> {
        let h = Header {
            peer_ids: false,
            time_unit: Header::unit_for(s.config().peer_timeout),
            written_at: 0,
            shards: 1,
        };
        encode_all(Vec::new(), h, &[&At(s, now)]).unwrap().0
    }

    #[test]
    fn swarms_come_back_in_any_number_of_shards() {
        let before = filled();
        let bytes = snapshot_of(&before, 100);
        for n in [1, 2, 4] {
            let mut shards: Vec<Swarms> = (0..n)
                .map(|_| Swarms::new(SwarmConfig::default()))
                .collect();
            let mut sink = Restore::new(&mut shards, 0, 0);
            decode(&bytes, &mut sink).unwrap();
            let restored = sink.finish();
            assert_eq!(restored.expired + restored.refused, 0);
            let total = |f: fn(&crate::swarm::Totals) -> u64| {
                shards.iter().map(|s| f(&s.totals())).sum::<u64>()
            };
            let t = before.totals();
            assert_eq!(total(|t| t.torrents), t.torrents);
            assert_eq!(total(|t| t.peers_v4), t.peers_v4);
            assert_eq!(total(|t| t.peers_v6), t.peers_v6);
            assert_eq!(total(|t| t.seeders), t.seeders);
            for h in (1..=40).chain([50]) {
                let hash = InfoHash([h; 20]);
                let shard = &mut shards[crate::workers::shard_of(&hash, n)];
                assert_eq!(shard.scrape(&hash), before.scrape(&hash), "torrent {h}");
                assert_eq!(shard.gauges(), shard.totals(), "gauges kept");
            }
            // The indexes work: a re-announce finds the peer, a stop removes it.
            let shard = &mut shards[crate::workers::shard_of(&InfoHash([50; 20]), n)];
            let was = shard.scrape(&InfoHash([50; 20]));
            announce(shard, 50, v4(100_001), false, AnnounceEvent::Started);
            assert_eq!(shard.scrape(&InfoHash([50; 20])), was);
            announce(shard, 50, v4(100_001), false, AnnounceEvent::Stopped);
            assert_eq!(shard.scrape(&InfoHash([50; 20])).leechers, was.leechers - 1);
        }
    }

    #[test]
    fn peers_whose_time_passed_while_down_are_dropped() {
        let mut s = Swarms::new(SwarmConfig::default());
        // Announced at 100: expires at 100 + 2700.
        announce(&mut s, 1, v4(1), false, AnnounceEvent::Started);
        announce(&mut s, 2, v4(2), true, AnnounceEvent::Completed);
        let mut late = Swarms::new(SwarmConfig::default());
        late.announce(
            &Announce {
                info_hash: InfoHash([3; 20]),
                addr: v4(3),
                event: AnnounceEvent::Started,
                seeder: false,
                num_want: 0,
            },
            2000,
            &mut Vec::new(),
        );
        // Written at 1000: 1800 s left for the first two, 2700 for the third.
        let mut bytes = snapshot_of(&s, 1000);
        let mut shards = vec![Swarms::new(SwarmConfig::default())];
        // Down for 2000 s.
        let mut sink = Restore::new(&mut shards, 2000, 0);
        decode(&bytes, &mut sink).unwrap();
        assert_eq!(sink.finish().expired, 2);
        let t = shards[0].totals();
        assert_eq!(
            (t.torrents, t.peers_v4),
            (1, 0),
            "the completed count is kept"
        );
        assert_eq!(shards[0].scrape(&InfoHash([2; 20])).completed, 1);
        bytes = snapshot_of(&late, 2000);
        let mut sink = Restore::new(&mut shards, 2000, 0);
        decode(&bytes, &mut sink).unwrap();
        assert_eq!(sink.finish().peers, 1);
    }

    #[test]
    fn a_snapshot_is_small() {
        // 1000 torrents of 5 IPv4 peers: 20 + 30 bytes of data a torrent.
        let mut s = Swarms::new(SwarmConfig::default());
        for t in 0..1000u32 {
            for p in 0..5 {
                let mut h = [0u8; 20];
                h[..4].copy_from_slice(&t.to_le_bytes());
                let req = Announce {
                    info_hash: InfoHash(h),
                    addr: v4(t * 8 + p),
                    event: AnnounceEvent::Completed,
                    seeder: p == 0,
                    num_want: 0,
                };
                s.announce(&req, 0, &mut Vec::new());
            }
        }
        let bytes = snapshot_of(&s, 0).len();
        let data = 1000 * (20 + 5 * 6);
        assert!(bytes * 4 <= data * 5, "{bytes} bytes for {data} of data");
    }
}
