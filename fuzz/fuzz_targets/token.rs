//! The announce-token path on any bytes: as BEP 41 URL data, as the query's
//! `jwt=` and as the path's token, against HS256, RS256 and ES256 lists, it
//! never panics, never accepts (nothing here is signed), and refuses with
//! one of the token messages.
//!
//! The keys are public test values (RFC 7517 appendix A.1's public keys, a
//! made-up HS256 secret), written once to the system's temp directory.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use swarmd::access::{Access, AccessConfig, TokenAlgorithm};
use swarmd::protocol::InfoHash;

const JWKS: &str = r#"{"keys": [
  {"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
   "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"1"},
  {"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}
]}"#;

/// Every refusal of a token, "busy" included: the fuzzer's stream of new
/// tokens spends the second's budget of signature checks.
const MESSAGES: [&str; 8] = [
    "token check busy, retry",
    "token required",
    "token expired",
    "token not yet valid",
    "token not for this torrent",
    "token not for this tracker",
    "bad token signature",
    "bad token",
];

fn lists() -> &'static [Access; 3] {
    static LISTS: OnceLock<[Access; 3]> = OnceLock::new();
    LISTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("swarmd-fuzz-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        let jwks = dir.join("keys.json");
        std::fs::write(&secret, "a made-up fuzzing secret, 32 bytes or more\n").unwrap();
        std::fs::write(&jwks, JWKS).unwrap();
        let with = |algorithm, file: &std::path::Path| {
            let mut c = AccessConfig::default();
            c.token.algorithm = algorithm;
            c.token.secret_file = file.into();
            c.token.jwks_file = file.into();
            c.token.issuer = "registry.example".into();
            c.token.audience = "swarmd".into();
            Access::load(&c).unwrap()
        };
        [
            with(TokenAlgorithm::HS256, &secret),
            with(TokenAlgorithm::RS256, &jwks),
            with(TokenAlgorithm::ES256, &jwks),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let hash = InfoHash([0xaa; 20]);
    let mut query = b"/announce?jwt=".to_vec();
    query.extend_from_slice(data);
    let mut path = b"/announce/".to_vec();
    path.extend_from_slice(data);
    for access in lists() {
        for url_data in [data, &query, &path] {
            match access.check_udp_announce(&hash, url_data) {
                Ok(()) => panic!("accepted an unsigned token: {url_data:?}"),
                Err(m) => assert!(MESSAGES.contains(&m), "{m}"),
            }
        }
    }
});
