//! The snapshot decoder on any bytes: it never panics and allocates
//! nothing under a length field; what it accepts restores into shards
//! (with and without peer ids, re-sharded) without a panic, with counts
//! that agree with what was decoded, and the restored shards write a
//! snapshot that decodes again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmd::protocol::InfoHash;
use swarmd::snapshot::{self, At, Header, PeerRecord, Restore, Sink};
use swarmd::swarm::{PeerData, SwarmConfig, Swarms};

#[derive(Default)]
struct Count {
    torrents: u64,
    peers: u64,
}

impl Sink for Count {
    fn torrent(&mut self, _: InfoHash, _: u32) {
        self.torrents += 1;
    }
    fn peer(&mut self, _: &PeerRecord<'_>) {
        self.peers += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut count = Count::default();
    let Ok(decoded) = snapshot::decode(data, &mut count) else {
        return;
    };
    assert_eq!(
        (decoded.torrents, decoded.peers),
        (count.torrents, count.peers)
    );
    restore(data, decoded.peers, Swarms::new);
    restore(data, decoded.peers, Swarms::with_peer_ids);
});

fn restore<X: PeerData>(data: &[u8], peers: u64, make: fn(SwarmConfig) -> Swarms<X>) {
    let mut shards: Vec<Swarms<X>> = (0..3).map(|_| make(SwarmConfig::default())).collect();
    let mut sink = Restore::new(&mut shards, 30, 0);
    snapshot::decode(data, &mut sink).expect("decodes twice alike");
    let r = sink.finish();
    assert_eq!(r.peers + r.expired + r.refused, peers);
    let total: u64 = shards
        .iter()
        .map(|s| s.totals().peers_v4 + s.totals().peers_v6)
        .sum();
    assert_eq!(total, r.peers);
    for s in &shards {
        assert_eq!(s.gauges(), s.totals());
    }
    let header = Header {
        peer_ids: std::mem::size_of::<X>() != 0,
        time_unit: 1,
        written_at: 0,
        shards: 3,
    };
    let at: Vec<At<'_, X>> = shards.iter().map(|s| At(s, 0)).collect();
    let refs: Vec<&dyn snapshot::Export> = at.iter().map(|a| a as &dyn snapshot::Export).collect();
    let (bytes, written) = snapshot::file::encode_all(Vec::new(), header, &refs).unwrap();
    let again =
        snapshot::decode(&bytes, &mut Count::default()).expect("a written snapshot decodes");
    assert_eq!(again.peers, written.peers);
    assert_eq!(written.peers, r.peers);
}
