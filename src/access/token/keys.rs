//! Reading the keys announce tokens are checked with: the HS256 shared
//! secret, or the public keys of a JWK Set (RS256, ES256). Every error names
//! the file and the reason, and a reload that meets one keeps the old keys.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::DecodingKey;

use super::super::config::TokenAlgorithm;

/// Shortest HS256 secret accepted: RFC 7518 (3.2) asks for a key as long
/// as the hash, 256 bits.
const MIN_SECRET: usize = 32;

/// The keys of one version of the configuration.
pub(crate) enum Keys {
    /// HS256: one secret, whatever the token's `kid`.
    Secret(DecodingKey),
    /// RS256, ES256: by `kid` (a key without one has the empty id).
    Public(Vec<(Box<str>, DecodingKey)>),
}

impl std::fmt::Debug for Keys {
    // Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Secret(_) => f.write_str("Keys::Secret(..)"),
            Keys::Public(keys) => {
                let ids: Vec<&str> = keys.iter().map(|(id, _)| &**id).collect();
                f.debug_tuple("Keys::Public").field(&ids).finish()
            }
        }
    }
}

impl Keys {
    /// Reads `path` for `algorithm` (not `Off`).
    pub(crate) fn read(algorithm: TokenAlgorithm, path: &Path) -> Result<Keys, String> {
        let fail = |reason: String| format!("{}: {reason}", path.display());
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        match algorithm {
            TokenAlgorithm::Off => Err(fail("tokens are off".into())),
            TokenAlgorithm::HS256 => parse_secret(&bytes).map_err(fail),
            TokenAlgorithm::RS256 | TokenAlgorithm::ES256 => {
                parse_jwks(algorithm, &bytes).map_err(fail)
            }
        }
    }

    /// The key for a token's `kid`. HS256 ignores it; a set with a single
    /// key serves a token without one.
    pub(crate) fn get(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match self {
            Keys::Secret(key) => Some(key),
            Keys::Public(keys) => match (kid, keys.as_slice()) {
                (None, [(_, key)]) => Some(key),
                (None, _) => None,
                (Some(kid), keys) => keys.iter().find(|(id, _)| &**id == kid).map(|(_, k)| k),
            },
        }
    }

    /// What was read, for the log (never the keys themselves).
    pub(crate) fn summary(&self) -> String {
        match self {
            Keys::Secret(_) => "a shared secret".into(),
            Keys::Public(keys) => format!("{} public keys", keys.len()),
        }
    }
}

/// The secret is the file's bytes without trailing whitespace: an editor's
/// final newline must not make the registry's and the tracker's secrets
/// differ.
pub(crate) fn parse_secret(bytes: &[u8]) -> Result<Keys, String> {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let secret = &bytes[..end];
    if secret.len() < MIN_SECRET {
        return Err(format!(
            "an HS256 secret must be at least {MIN_SECRET} bytes, this is {}",
            secret.len()
        ));
    }
    Ok(Keys::Secret(DecodingKey::from_secret(secret)))
}

/// The keys of a JWK Set that fit `algorithm`. Keys for other uses are
/// skipped, so a registry's whole published set can be used as it is; a set
/// with none that fits, or two with the same `kid`, is an error.
pub(crate) fn parse_jwks(algorithm: TokenAlgorithm, bytes: &[u8]) -> Result<Keys, String> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWK Set: {e}"))?;
    let want = match algorithm {
        TokenAlgorithm::RS256 => KeyAlgorithm::RS256,
        _ => KeyAlgorithm::ES256,
    };
    let mut keys: Vec<(Box<str>, DecodingKey)> = Vec::new();
    for (n, jwk) in set.keys.iter().enumerate() {
        let fits_type = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => algorithm == TokenAlgorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) => {
                algorithm == TokenAlgorithm::ES256 && p.curve == EllipticCurve::P256
            }
            _ => false,
        };
        let fits_alg = jwk.common.key_algorithm.is_none_or(|a| a == want);
        let fits_use = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
        if !(fits_type && fits_alg && fits_use) {
            continue;
        }
        let id = jwk.common.key_id.clone().unwrap_or_default();
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {n} ({id:?}): {e}"))?;
        if keys.iter().any(|(other, _)| **other == *id) {
            return Err(format!("two {want:?} keys with the kid {id:?}"));
        }
        keys.push((id.into_boxed_str(), key));
    }
    if keys.is_empty() {
        return Err(format!("no {want:?} key in the set"));
    }
    Ok(Keys::Public(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_lose_trailing_whitespace_and_must_be_long() {
        assert!(parse_secret(&[b'k'; 32]).is_ok());
        let mut with_newline = vec![b'k'; 31];
        with_newline.extend_from_slice(b"\n\n");
        let e = parse_secret(&with_newline).unwrap_err();
        assert!(e.contains("at least 32 bytes, this is 31"), "{e}");
        assert!(parse_secret(b"").is_err());
    }

    #[test]
    fn jwk_sets_keep_the_keys_that_fit() {
        // RFC 7517 appendix A.1's public keys (an EC P-256 and an RSA key).
        let set = r#"{"keys": [
            {"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
             "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"},
            {"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
             "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"ec"},
            {"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}
        ]}"#;
        let Keys::Public(es) = parse_jwks(TokenAlgorithm::ES256, set.as_bytes()).unwrap() else {
            panic!("public keys")
        };
        assert_eq!(es.len(), 1, "the key for encryption is skipped");
        let rs = parse_jwks(TokenAlgorithm::RS256, set.as_bytes()).unwrap();
        assert!(rs.get(Some("2011-04-29")).is_some());
        assert!(
            rs.get(None).is_some(),
            "the only key serves tokens without kid"
        );
        assert!(rs.get(Some("other")).is_none());
        assert_eq!(format!("{rs:?}"), r#"Keys::Public(["2011-04-29"])"#);

        let e = parse_jwks(TokenAlgorithm::RS256, br#"{"keys": []}"#).unwrap_err();
        assert!(e.contains("no RS256 key"), "{e}");
        let e = parse_jwks(TokenAlgorithm::RS256, b"{").unwrap_err();
        assert!(e.contains("not a JWK Set"), "{e}");
    }
}
