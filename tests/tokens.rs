//! End-to-end tests of signed announce tokens (`[access.token]`) over real
//! sockets, UDP (BEP 41 URL data) and HTTP: HS256, RS256 and ES256 tokens
//! accepted, every refusal with its message and counter, key rotation by
//! SIGHUP, and tokens together with the allow list and passkeys.
//!
//! Keys are made at test time (RSA and EC by the `openssl` command, the
//! HS256 secret from the clock) in a directory each test removes; none is
//! committed.

mod util;

use std::net::SocketAddr;
use std::path::Path;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use swarmd::access::{AccessMode, TokenAlgorithm};
use swarmd::protocol::{AnnounceEvent, InfoHash};
use swarmd::stats::{Counter, FamilyCounters};
use swarmd::Tracker;
use util::daemon::{temp_dir, Daemon};
use util::http::{announce_path, HttpClient};
use util::tokens::{claims, generate, hex, hs256, now, with_tokens, write_jwks, Signer, ISSUER};
use util::{hash, tracker_with, Client};

/// Announces over UDP with `url_data`: Ok(()) or Err(error message). An
/// error is never longer than the request.
/// Each announce is a new client, kept open while the next 255 are made: a
/// port freed at once could go to the next client, which would then be the
/// same peer and spoil the counts.
fn udp_announce(addr: SocketAddr, h: InfoHash, url_data: &str) -> Result<(), String> {
    thread_local! {
        static OPEN: std::cell::RefCell<Vec<Client>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut c = Client::new(addr);
    let mut req = c.announce_request(h, AnnounceEvent::Started, 10);
    req.url_data = url_data.as_bytes().to_vec();
    let result = c.announce_result(req).map(|_| ());
    // The last 256 only: a loop that polls for a change makes thousands.
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        if open.len() >= 256 {
            open.remove(0);
        }
        open.push(c);
    });
    result
}

/// Announces over HTTP: `path` goes before the query (e.g. "/announce",
/// "/announce/TOKEN"), `extra` after it (e.g. "&jwt=TOKEN").
fn http_announce(addr: SocketAddr, h: InfoHash, path: &str, extra: &str) -> Result<(), String> {
    let target = announce_path(h, &[7; 20], 6881, 10, extra).replacen("/announce", path, 1);
    let r = HttpClient::connect(addr).get(&target);
    assert_eq!(r.status, 200);
    match r.bencode().get("failure reason") {
        Some(util::http::Bencode::Bytes(b)) => Err(String::from_utf8(b.clone()).unwrap()),
        _ => Ok(()),
    }
}

/// Every way a token reaches the tracker, on every address of `t`: UDP and
/// HTTP, in the query and in the path. The results must all be `want`.
fn every_way(t: &Tracker, h: InfoHash, token: &str, want: Result<(), &str>) {
    let want = want.map_err(str::to_owned);
    for &addr in t.udp_addrs() {
        for data in [
            format!("/announce?jwt={token}"),
            format!("/announce/{token}"),
        ] {
            assert_eq!(udp_announce(addr, h, &data), want, "udp {addr} {data}");
        }
    }
    for &addr in t.http_addrs() {
        let query = format!("&jwt={token}");
        assert_eq!(
            http_announce(addr, h, "/announce", &query),
            want,
            "http {addr}"
        );
        let path = format!("/{token}/announce");
        assert_eq!(http_announce(addr, h, &path, ""), want, "http {addr} path");
    }
}

/// The number of announces refused for one reason, both protocols.
fn refused(t: &Tracker, pick: fn(&FamilyCounters) -> &Counter) -> u64 {
    let (u4, u6) = t.stats().udp_total(pick);
    let (h4, h6) = t.stats().http_total(pick);
    u4 + u6 + h4 + h6
}

#[test]
fn hs256_rs256_and_es256_tokens_are_accepted_over_udp_and_http() {
    let dir = temp_dir("tokens-accept");
    let (hs, secret) = hs256(&dir);
    let rs = generate(&dir, Algorithm::RS256, "rsa-1");
    let es = generate(&dir, Algorithm::ES256, "ec-1");
    let rs_keys = dir.join("rs.json");
    let es_keys = dir.join("es.json");
    write_jwks(&rs_keys, &[&rs]);
    write_jwks(&es_keys, &[&es]);
    for (algorithm, file, signer) in [
        (TokenAlgorithm::HS256, secret, &hs),
        (TokenAlgorithm::RS256, rs_keys, &rs),
        (TokenAlgorithm::ES256, es_keys, &es),
    ] {
        let t = tracker_with(with_tokens(algorithm, file));
        every_way(&t, hash(1), &signer.token(&[hash(1)]), Ok(()));
        // A token for several torrents serves each of them.
        let both = signer.token(&[hash(2), hash(3)]);
        every_way(&t, hash(3), &both, Ok(()));
        // Scrapes need no token. Every announce was a peer: four UDP
        // clients, and one HTTP peer (port 6881) on each address.
        let mut c = Client::new(t.udp_addrs()[0]);
        assert_eq!(c.scrape(&[hash(1)])[0].leechers, 6, "{algorithm:?}");
        t.stop().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refused_tokens_get_the_right_message_and_are_counted_by_reason() {
    let dir = temp_dir("tokens-refuse");
    let rs = generate(&dir, Algorithm::RS256, "rsa-1");
    let stranger = generate(&dir, Algorithm::RS256, "rsa-2");
    let jwks = dir.join("keys.json");
    write_jwks(&jwks, &[&rs]);
    let t = tracker_with(with_tokens(TokenAlgorithm::RS256, jwks));
    let h = hash(1);
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| rs.sign(&claims(&[h], edit));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let good = rs.token(&[h]);
    let [header, payload, signature]: [&str; 3] =
        good.split('.').collect::<Vec<_>>().try_into().unwrap();

    every_way(
        &t,
        h,
        &rs.token(&[hash(9)]),
        Err("token not for this torrent"),
    );
    assert_eq!(refused(&t, |f| &f.errors_token_torrent), 8);
    let expired = edited(&|c| c["exp"] = json!(now() - 60));
    every_way(&t, h, &expired, Err("token expired"));
    let early = edited(&|c| c["nbf"] = json!(now() + 600));
    every_way(&t, h, &early, Err("token not yet valid"));
    assert_eq!(refused(&t, |f| &f.errors_token_expired), 16);
    for bad in [
        edited(&|c| c["iss"] = json!("elsewhere.example")),
        edited(&|c| c["aud"] = json!("another-tracker")),
    ] {
        every_way(&t, h, &bad, Err("token not for this tracker"));
    }
    assert_eq!(refused(&t, |f| &f.errors_token_invalid), 16);

    // alg none (no signature), the payload changed under the old signature,
    // a key the tracker doesn't know (by kid, and a known kid with another
    // key), and an HS256 token signed with the public key as its secret.
    let none = format!(
        "{}.{payload}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let other_payload = b64.encode(claims(&[h, hash(5)], |_| {}).to_string());
    let tampered = format!("{header}.{other_payload}.{signature}");
    let unknown_kid = stranger.token(&[h]);
    let stolen_kid = Signer {
        kid: rs.kid.clone(),
        ..generate(&dir, Algorithm::RS256, "rsa-3")
    }
    .token(&[h]);
    let public = serde_json::to_vec(&rs.jwk()).unwrap();
    let confused = Signer {
        algorithm: Algorithm::HS256,
        key: EncodingKey::from_secret(&public),
        kid: rs.kid.clone(),
    }
    .token(&[h]);
    for bad in [none, tampered, unknown_kid, stolen_kid, confused] {
        every_way(&t, h, &bad, Err("bad token signature"));
    }
    assert_eq!(refused(&t, |f| &f.errors_token_signature), 40);

    for &addr in t.udp_addrs() {
        for data in ["", "/announce", "/announce?jwt=", "/announce?x=1"] {
            assert_eq!(udp_announce(addr, h, data), Err("token required".into()));
        }
    }
    for &addr in t.http_addrs() {
        let r = http_announce(addr, h, "/announce", "");
        assert_eq!(r, Err("token required".into()));
    }
    assert_eq!(refused(&t, |f| &f.errors_token_required), 10);
    // Not one refused announce reached a swarm.
    let mut c = Client::new(t.udp_addrs()[0]);
    assert_eq!(c.scrape(&[h])[0].leechers, 0);
    every_way(&t, h, &good, Ok(()));
    t.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flood of made-up tokens, each never seen: the signature checks are
/// bounded by `verify_per_second`, the rest are told to retry, a forged
/// token sent again is refused from memory, and a client whose token is
/// already verified goes on being answered.
#[test]
fn a_flood_of_new_tokens_costs_a_bounded_number_of_signature_checks() {
    let dir = temp_dir("tokens-flood");
    let rs = generate(&dir, Algorithm::RS256, "rsa-1");
    let forger = Signer {
        kid: rs.kid.clone(),
        ..generate(&dir, Algorithm::RS256, "rsa-2")
    };
    let jwks = dir.join("keys.json");
    write_jwks(&jwks, &[&rs]);
    let t = tracker_with(|c| {
        with_tokens(TokenAlgorithm::RS256, jwks)(c);
        c.access.token.verify_per_second = 1;
    });
    let h = hash(1);
    let addr = t.udp_addrs()[0];
    // The honest client's token, verified (and cached) before the flood.
    let good = format!("/announce?jwt={}", rs.token(&[h]));
    assert_eq!(udp_announce(addr, h, &good), Ok(()));
    let forged = format!("/announce?jwt={}", forger.token(&[h]));
    let mut busy = 0;
    let started = std::time::Instant::now();
    for i in 0..40 {
        let made_up = forger.sign(&claims(&[h], |c| c["n"] = json!(i)));
        match udp_announce(addr, h, &format!("/announce?jwt={made_up}")) {
            Err(e) if e == "token check busy, retry" => busy += 1,
            Err(e) => assert_eq!(e, "bad token signature"),
            Ok(()) => panic!("a forged token was accepted"),
        }
        assert_eq!(udp_announce(addr, h, &good), Ok(()), "the honest client");
    }
    // One check a second, in each second the loop touched.
    let seconds = started.elapsed().as_secs() + 2;
    let checked = refused(&t, |f| &f.errors_token_signature);
    assert!(
        (1..=seconds).contains(&checked),
        "{checked} signature checks in under {seconds} seconds"
    );
    assert_eq!(busy, 40 - checked);
    assert_eq!(refused(&t, |f| &f.errors_token_busy), busy);
    // A forged token, once checked, is refused for what it is from then on.
    // (Its first check waits for the next second's budget.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let first = loop {
        match udp_announce(addr, h, &forged) {
            Err(e) if e == "token check busy, retry" && std::time::Instant::now() < deadline => {
                std::thread::yield_now()
            }
            other => break other,
        }
    };
    assert_eq!(first, Err("bad token signature".into()));
    for _ in 0..20 {
        assert_eq!(
            udp_announce(addr, h, &forged),
            Err("bad token signature".into())
        );
    }
    t.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tokens_work_with_the_allow_list_and_passkeys() {
    let dir = temp_dir("tokens-lists");
    let (hs, secret) = hs256(&dir);
    let list = dir.join("allow.txt");
    std::fs::write(&list, format!("{}\n{}\n", hex(hash(1)), hex(hash(2)))).unwrap();
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "k1 alice\n").unwrap();
    let tokens = with_tokens(TokenAlgorithm::HS256, secret);
    let t = tracker_with(|c| {
        tokens(c);
        c.access.mode = AccessMode::Allow;
        c.access.info_hash_file = list;
        c.access.passkeys_file = keys;
    });
    let good = hs.token(&[hash(1), hash(3)]);
    let q = |token: &str| format!("?jwt={token}");
    for &addr in t.udp_addrs() {
        let ok = |h, data: &str| udp_announce(addr, h, data);
        assert_eq!(ok(hash(1), &format!("/announce/k1{}", q(&good))), Ok(()));
        assert_eq!(ok(hash(1), &format!("/k1/announce{}", q(&good))), Ok(()));
        // Each check in turn: passkey, token, list.
        let e = ok(hash(1), &format!("/announce{}", q(&good)));
        assert_eq!(e, Err("passkey required".into()));
        let e = ok(hash(1), &format!("/announce/k2{}", q(&good)));
        assert_eq!(e, Err("unknown passkey".into()));
        // With passkeys on, the path holds the passkey: the token goes in
        // the query.
        assert_eq!(ok(hash(1), "/announce/k1"), Err("token required".into()));
        let e = ok(hash(2), &format!("/announce/k1{}", q(&good)));
        assert_eq!(e, Err("token not for this torrent".into()));
        let e = ok(hash(3), &format!("/announce/k1{}", q(&good)));
        assert_eq!(e, Err("torrent not allowed".into()));
    }
    for &addr in t.http_addrs() {
        let jwt = format!("&jwt={good}");
        assert_eq!(http_announce(addr, hash(1), "/announce/k1", &jwt), Ok(()));
        let e = http_announce(addr, hash(1), "/announce", &jwt);
        assert_eq!(e, Err("passkey required".into()));
        let e = http_announce(addr, hash(1), "/announce/k1", "");
        assert_eq!(e, Err("token required".into()));
        let e = http_announce(addr, hash(3), "/announce/k1", &jwt);
        assert_eq!(e, Err("torrent not allowed".into()));
    }
    let users = t.passkey_stats();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].1.announces, 6, "{users:?}");
    t.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon's config: UDP and HTTP on loopback, RS256 tokens from `jwks`.
fn write_config(path: &Path, jwks: &Path) {
    std::fs::write(
        path,
        format!(
            "[udp]\naddresses = [\"127.0.0.1:0\"]\n[http]\naddresses = [\"127.0.0.1:0\"]\n\
             [stats]\naddress = \"\"\n\
             [access.token]\nalgorithm = \"RS256\"\njwks_file = \"{}\"\nissuer = \"{ISSUER}\"\n",
            jwks.display()
        ),
    )
    .unwrap();
}

#[test]
fn keys_rotate_by_sighup_and_a_bad_key_file_keeps_the_old_keys() {
    let dir = temp_dir("tokens-rotate");
    let old = generate(&dir, Algorithm::RS256, "2026-01");
    let new = generate(&dir, Algorithm::RS256, "2026-02");
    let jwks = dir.join("keys.json");
    write_jwks(&jwks, &[&old]);
    let config = dir.join("tracker.toml");
    write_config(&config, &jwks);
    let mut d = Daemon::start(&config);
    let udp = d.logged_addr("udp");
    let http = d.logged_addr("http");
    let announce = |signer: &Signer| {
        let token = signer.token(&[hash(1)]);
        let u = udp_announce(udp, hash(1), &format!("/announce/{token}"));
        let h = http_announce(http, hash(1), "/announce", &format!("&jwt={token}"));
        assert_eq!(u, h, "both protocols agree");
        u
    };
    let old_token = old.token(&[hash(1)]);
    let by_old = |_: ()| udp_announce(udp, hash(1), &format!("/announce?jwt={old_token}"));
    assert_eq!(by_old(()), Ok(()), "verified, and now cached");
    assert_eq!(announce(&new), Err("bad token signature".into()));

    // The registry publishes both keys, then only the new one.
    write_jwks(&jwks, &[&old, &new]);
    d.signal(libc::SIGHUP);
    d.wait_for("SIGHUP: reloaded");
    assert_eq!(announce(&old), Ok(()));
    assert_eq!(announce(&new), Ok(()));
    write_jwks(&jwks, &[&new]);
    d.signal(libc::SIGHUP);
    d.wait_for("SIGHUP: reloaded");
    assert_eq!(
        by_old(()),
        Err("bad token signature".into()),
        "a cached token of a retired key is refused"
    );
    assert_eq!(announce(&new), Ok(()));

    // A bad file: logged with its name and reason, the keys stay.
    std::fs::write(&jwks, "{\"keys\": [").unwrap();
    d.signal(libc::SIGHUP);
    let line = d.wait_for("keeping the old access lists");
    assert!(
        line.contains(&jwks.display().to_string()) && line.contains("not a JWK Set"),
        "{line}"
    );
    assert_eq!(announce(&new), Ok(()));
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(std::time::Duration::from_secs(5))
        .is_some_and(|s| s.success()));
    let _ = std::fs::remove_dir_all(&dir);
}
