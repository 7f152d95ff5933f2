//! The token check with HS256 tokens made here: every refusal, and the
//! cache. (RS256 and ES256, whose keys the tests generate, are checked end
//! to end in tests/tokens.rs.)

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;

/// `jsonwebtoken` checks `exp` and `nbf` by the real clock.
fn now() -> u64 {
    unix_now()
}

const SECRET: &[u8] = b"a secret of thirty-two bytes or more";

fn tokens(issuer: &str, audience: &str) -> Tokens {
    tokens_with(issuer, audience, 2000)
}

fn tokens_with(issuer: &str, audience: &str, verify_per_second: u32) -> Tokens {
    let dir = std::env::temp_dir().join(format!("swarmd-token-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("secret-{issuer}-{audience}"));
    std::fs::write(&file, [SECRET, b"\n"].concat()).unwrap();
    let config = TokenConfig {
        algorithm: TokenAlgorithm::HS256,
        secret_file: file,
        issuer: issuer.into(),
        audience: audience.into(),
        leeway: 10,
        verify_per_second,
        ..TokenConfig::default()
    };
    Tokens::build(&config).unwrap()
}

fn sign(claims: serde_json::Value, key: &[u8]) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(key)).unwrap()
}

fn hex(h: &InfoHash) -> String {
    h.to_string()
}

#[test]
fn good_tokens_name_their_torrents() {
    let t = tokens("reg", "swarmd");
    let (a, b, c) = (
        InfoHash([0xaa; 20]),
        InfoHash([0xbb; 20]),
        InfoHash([0xcc; 20]),
    );
    let one = sign(
        json!({"iss": "reg", "aud": "swarmd", "exp": now() + 60, "infohash": hex(&a)}),
        SECRET,
    );
    assert_eq!(t.check(Some(&one), &a, now()), Ok(()));
    assert_eq!(
        t.check(Some(&one), &b, now()),
        Err(Refusal::TokenWrongTorrent)
    );
    let many = sign(
        json!({"iss": "reg", "aud": ["x", "swarmd"], "exp": now() + 60,
               "infohash": [hex(&a), format!("{}{}", hex(&b), "0".repeat(24))]}),
        SECRET,
    );
    assert_eq!(t.check(Some(&many), &b, now()), Ok(()), "a v2 hash, whole");
    assert_eq!(
        t.check(Some(&many), &c, now()),
        Err(Refusal::TokenWrongTorrent)
    );
    assert_eq!(
        t.check(None::<&str>, &a, now()),
        Err(Refusal::TokenRequired)
    );
}

#[test]
fn refusals_by_reason() {
    let t = tokens("reg", "swarmd");
    let a = InfoHash([0xaa; 20]);
    let claims = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = json!({"iss": "reg", "aud": "swarmd", "exp": now() + 60, "infohash": hex(&a)});
        edit(&mut c);
        c
    };
    let check = |token: &str| t.check(Some(token), &a, now());
    let expired = sign(claims(&|c| c["exp"] = json!(now() - 11)), SECRET);
    assert_eq!(check(&expired), Err(Refusal::TokenExpired));
    let in_leeway = sign(claims(&|c| c["exp"] = json!(now() - 9)), SECRET);
    assert_eq!(check(&in_leeway), Ok(()));
    let early = sign(claims(&|c| c["nbf"] = json!(now() + 100)), SECRET);
    assert_eq!(check(&early), Err(Refusal::TokenNotYetValid));
    let other_iss = sign(claims(&|c| c["iss"] = json!("other")), SECRET);
    assert_eq!(check(&other_iss), Err(Refusal::TokenWrongTracker));
    let no_aud = sign(
        claims(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        }),
        SECRET,
    );
    assert!(matches!(check(&no_aud), Err(Refusal::TokenWrongTracker)));
    let other_key = sign(claims(&|_| {}), b"another secret of thirty-two bytes");
    assert_eq!(check(&other_key), Err(Refusal::TokenBadSignature));
    let no_exp = sign(
        claims(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        SECRET,
    );
    assert_eq!(check(&no_exp), Err(Refusal::TokenInvalid));
    let bad_hash = sign(claims(&|c| c["infohash"] = json!("abc")), SECRET);
    assert_eq!(check(&bad_hash), Err(Refusal::TokenInvalid));

    // alg none, and a tampered payload with the old signature.
    let good = sign(claims(&|_| {}), SECRET);
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(
        check(&format!("{none_header}.{}.", parts[1])),
        Err(Refusal::TokenBadSignature)
    );
    let rs_header = b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    assert_eq!(
        check(&format!("{rs_header}.{}.{}", parts[1], parts[2])),
        Err(Refusal::TokenBadSignature)
    );
    let other = b64.encode(claims(&|c| c["infohash"] = json!("b".repeat(40))).to_string());
    assert_eq!(
        t.check(
            Some(&format!("{}.{other}.{}", parts[0], parts[2])),
            &InfoHash([0xbb; 20]),
            now()
        ),
        Err(Refusal::TokenBadSignature)
    );
    for junk in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b",
        "x".repeat(MAX_TOKEN + 1).as_str(),
    ] {
        assert!(check(junk).is_err(), "{junk:?}");
    }
    assert_eq!(check(&good), Ok(()));
}

#[test]
fn verified_tokens_are_cached_until_they_expire() {
    let t = tokens("", "");
    let a = InfoHash([0xaa; 20]);
    let token = sign(json!({"exp": now() + 60, "infohash": hex(&a)}), SECRET);
    assert_eq!(
        t.check(Some(&token), &InfoHash([1; 20]), now()),
        Err(Refusal::TokenWrongTorrent)
    );
    assert_eq!(
        t.cached(),
        1,
        "a good token is cached even for another torrent"
    );
    assert_eq!(t.check(Some(&token), &a, now()), Ok(()));
    assert_eq!(t.cached(), 1);
    // Past exp and the leeway, the cached token is refused.
    assert_eq!(t.check(Some(&token), &a, now() + 70), Ok(()));
    assert_eq!(
        t.check(Some(&token), &a, now() + 71),
        Err(Refusal::TokenExpired)
    );
    // Refused tokens are not cached as good ones.
    let bad = format!("{token}x");
    assert_eq!(
        t.check(Some(&bad), &a, now()),
        Err(Refusal::TokenBadSignature)
    );
    assert_eq!(t.cached(), 1);
    // Without issuer and audience configured, the token needs neither.
    let with_aud = sign(
        json!({"exp": now() + 60, "aud": "x", "infohash": hex(&a)}),
        SECRET,
    );
    assert_eq!(t.check(Some(&with_aud), &a, now()), Ok(()));
}

#[test]
fn refusals_are_remembered_and_new_tokens_share_a_budget_of_checks() {
    let t = tokens_with("", "", 2);
    let a = InfoHash([0xaa; 20]);
    let at = now();
    let good = sign(json!({"exp": at + 60, "infohash": hex(&a)}), SECRET);
    let forged = sign(
        json!({"exp": at + 60, "infohash": hex(&a)}),
        b"another secret of thirty-two bytes",
    );
    assert_eq!(t.check(Some(&good), &a, at), Ok(()));
    assert_eq!(
        t.check(Some(&forged), &a, at),
        Err(Refusal::TokenBadSignature)
    );
    assert_eq!(t.remembered_refusals(), 1);
    // The second's two checks are spent: the forged token is still refused
    // for what it is (remembered, no check), the good one still passes
    // (cached), and only a token never seen is told to retry.
    for _ in 0..100 {
        assert_eq!(
            t.check(Some(&forged), &a, at),
            Err(Refusal::TokenBadSignature)
        );
        assert_eq!(t.check(Some(&good), &a, at), Ok(()));
    }
    let new = sign(json!({"exp": at + 61, "infohash": hex(&a)}), SECRET);
    assert_eq!(t.check(Some(&new), &a, at), Err(Refusal::TokenBusy));
    assert_eq!(t.remembered_refusals(), 1, "busy is not remembered");
    // The next second has checks again.
    assert_eq!(t.check(Some(&new), &a, at + 1), Ok(()));
    assert_eq!(t.cached(), 2);
}

#[test]
fn a_batch_prefetched_is_checked_as_without() {
    use crate::protocol::udp::{tests::announce, Request};
    let t = tokens("", "");
    let a = InfoHash([0xaa; 20]);
    let good = sign(json!({"exp": now() + 60, "infohash": hex(&a)}), SECRET);
    let datagram = |url_data: &[u8]| {
        let mut buf = Vec::new();
        Request::Announce(announce(url_data.to_vec())).write(&mut buf);
        buf
    };
    let with_token = datagram(format!("/announce?jwt={good}").as_bytes());
    let mut forged = with_token.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut cut = with_token.clone();
    cut.truncate(crate::protocol::udp::ANNOUNCE_LEN + 10);
    let batch = [
        with_token.clone(),
        forged,
        cut,
        datagram(b""),
        datagram(b"/announce?jwt=x"),
        vec![0xff; 3],
    ];
    // Before the token is cached, and after.
    for _ in 0..2 {
        t.prefetch_udp(batch.iter().map(Vec::as_slice));
        assert_eq!(t.check(Some(&good), &a, now()), Ok(()));
    }
    assert_eq!(t.cached(), 1);
}
