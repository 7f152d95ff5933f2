//! Criterion benches of signed announce tokens: what the access check of a
//! UDP announce costs with tokens off, and on with the cache warm (RS256,
//! HS256), or cold (a token whose RSA signature is checked every time);
//! and the whole in-process handling of one announce (decode, check, swarm
//! announce, encode) with tokens off and on, whose ratio is the "announces
//! per CPU-second, tokens on vs off" figure (system calls left out, which
//! only make the ratio closer to 1).
//!
//! The RSA key is made by the `openssl` command when the bench starts.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use swarmd::access::{Access, AccessConfig, TokenAlgorithm};
use swarmd::protocol::udp::{self, AnnounceRequest, ConnectionId, Request, TransactionId};
use swarmd::protocol::{AnnounceEvent, InfoHash, PeerId};
use swarmd::swarm::{Announce, PeerAddr, SwarmConfig, Swarms};

const HASH: InfoHash = InfoHash([3; 20]);

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swarmd-bench-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("the openssl command");
    assert!(ok.success(), "openssl {args:?}");
}

fn claims() -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Good for a day: long enough for any run of the bench.
    json!({"iss": "registry.example", "aud": "swarmd", "exp": now + 86_400,
           "infohash": HASH.to_string()})
}

/// Lists with RS256 tokens (a new 2048-bit key) and a token signed by it.
fn rs256(dir: &Path) -> (Access, String) {
    openssl(dir, &["genrsa", "-out", "rsa.pem", "2048"]);
    openssl(
        dir,
        &[
            "rsa",
            "-in",
            "rsa.pem",
            "-traditional",
            "-outform",
            "DER",
            "-out",
            "rsa.der",
        ],
    );
    let key = EncodingKey::from_rsa_der(&std::fs::read(dir.join("rsa.der")).unwrap());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let jwks = dir.join("keys.json");
    std::fs::write(
        &jwks,
        serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap(),
    )
    .unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    let mut config = AccessConfig::default();
    config.token.algorithm = TokenAlgorithm::RS256;
    config.token.jwks_file = jwks;
    config.token.issuer = "registry.example".into();
    config.token.audience = "swarmd".into();
    (Access::load(&config).unwrap(), token)
}

/// Lists with HS256 tokens and a token made with the secret.
fn hs256(dir: &Path) -> (Access, String) {
    let (access, mut tokens) = hs256_many(dir, 1, 0);
    (access, tokens.remove(0))
}

/// Lists with HS256 tokens and `n` tokens made with the secret, each with
/// `pad` characters of a made-up claim (to make them as long as RS256
/// tokens, ~600 bytes, whose signatures would take seconds to make).
fn hs256_many(dir: &Path, n: usize, pad: usize) -> (Access, Vec<String>) {
    let secret = b"a bench secret, thirty-two bytes or more";
    let file = dir.join("secret");
    std::fs::write(&file, secret).unwrap();
    let key = EncodingKey::from_secret(secret);
    let tokens = (0..n)
        .map(|i| {
            let mut claims = claims();
            claims["sub"] = json!(format!("{i:0>pad$}"));
            jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap()
        })
        .collect();
    let mut config = AccessConfig::default();
    config.token.algorithm = TokenAlgorithm::HS256;
    config.token.secret_file = file;
    config.token.issuer = "registry.example".into();
    config.token.audience = "swarmd".into();
    // Every token is verified once, in the first round.
    config.token.verify_per_second = u32::MAX;
    (Access::load(&config).unwrap(), tokens)
}

fn datagram(url_data: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    Request::Announce(AnnounceRequest {
        connection_id: ConnectionId(99),
        transaction_id: TransactionId(1),
        info_hash: HASH,
        peer_id: PeerId([4; 20]),
        downloaded: 1,
        left: 2,
        uploaded: 3,
        event: AnnounceEvent::None,
        ip_address: 0,
        key: 5,
        num_want: 30,
        port: 6881,
        url_data: url_data.as_bytes().to_vec(),
    })
    .write(&mut buf);
    buf
}

fn check(c: &mut Criterion) {
    let dir = dir();
    let off = Access::load(&AccessConfig::default()).unwrap();
    let (rs, rs_token) = rs256(&dir);
    let (hs, hs_token) = hs256(&dir);
    let rs_data = format!("/announce?jwt={rs_token}");
    let hs_data = format!("/announce?jwt={hs_token}");
    // The same token with a character of its signature changed: checked
    // (and refused) every time, never cached. Not the last character,
    // whose low bits are padding: a change there may make the base64
    // invalid, refused before the signature is checked.
    let mut cold = rs_data.clone().into_bytes();
    let i = cold.len() - 10;
    cold[i] = if cold[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(rs.check_udp_announce(&HASH, rs_data.as_bytes()), Ok(()));
    assert_eq!(hs.check_udp_announce(&HASH, hs_data.as_bytes()), Ok(()));
    assert_eq!(
        rs.check_udp_announce(&HASH, &cold),
        Err("bad token signature")
    );

    let mut g = c.benchmark_group("token check (udp announce)");
    g.throughput(Throughput::Elements(1));
    g.bench_function("off", |b| {
        b.iter(|| off.check_udp_announce(black_box(&HASH), black_box(b"")))
    });
    g.bench_function("rs256 warm", |b| {
        b.iter(|| rs.check_udp_announce(black_box(&HASH), black_box(rs_data.as_bytes())))
    });
    g.bench_function("hs256 warm", |b| {
        b.iter(|| hs.check_udp_announce(black_box(&HASH), black_box(hs_data.as_bytes())))
    });
    g.bench_function("rs256 cold (refused)", |b| {
        b.iter(|| rs.check_udp_announce(black_box(&HASH), black_box(&cold)))
    });
    // Many clients, each re-announcing in turn: the cache's lines are no
    // longer in the CPU's caches when a token comes back, as in a
    // tracker where thousands of clients announce between two of one.
    let (many, tokens) = hs256_many(&dir, 20_000, 250);
    let many_data: Vec<String> = tokens
        .iter()
        .map(|t| format!("/announce?jwt={t}"))
        .collect();
    for data in &many_data {
        assert_eq!(many.check_udp_announce(&HASH, data.as_bytes()), Ok(()));
    }
    let mut next = 0;
    g.bench_function("hs256 warm, 20000 tokens of ~600 bytes in turn", |b| {
        b.iter(|| {
            next = (next + 1) % many_data.len();
            many.check_udp_announce(black_box(&HASH), black_box(many_data[next].as_bytes()))
        })
    });
    g.finish();

    // The whole in-process handling of an announce: a public tracker's
    // (no URL data) against one with RS256 tokens, cache warm.
    let mut g = c.benchmark_group("udp announce handled (tokens)");
    g.throughput(Throughput::Elements(1));
    for (name, access, data) in [("off", &off, String::new()), ("rs256 warm", &rs, rs_data)] {
        let packet = datagram(&data);
        let mut swarms = Swarms::new(SwarmConfig::default());
        let mut peers = Vec::with_capacity(2048);
        let mut reply = Vec::with_capacity(2048);
        // A swarm of 50 peers, the announcer among them.
        for i in 0..50u16 {
            let a = Announce {
                info_hash: HASH,
                addr: PeerAddr::V4([10, 0, (i >> 8) as u8, i as u8, 0x1a, 0xe1]),
                event: AnnounceEvent::Started,
                seeder: i % 2 == 0,
                num_want: 0,
            };
            swarms.announce(&a, 0, &mut peers);
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                let Ok(Request::Announce(a)) = Request::parse(black_box(&packet), 74) else {
                    unreachable!()
                };
                if access
                    .check_udp_announce(&a.info_hash, &a.url_data)
                    .is_err()
                {
                    unreachable!()
                }
                let announce = Announce {
                    info_hash: a.info_hash,
                    addr: PeerAddr::V4([10, 0, 0, 0, 0x1a, 0xe1]),
                    event: a.event,
                    seeder: a.left == 0,
                    num_want: a.num_want,
                };
                peers.clear();
                let counts = swarms.announce(&announce, 1, &mut peers);
                reply.clear();
                udp::write_announce(&mut reply, a.transaction_id, 1800, 1, 2, &peers);
                black_box((counts, reply.len()))
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, check);
criterion_main!(benches);
