//! Signed announce tokens for the tests: keys made at test time (RSA and
//! EC by the `openssl` command, an HS256 secret at random), tokens signed
//! with them as a registry would, the JWK Set the tracker reads, and the
//! `[access.token]` settings that go with them. Nothing here is committed
//! key material.

use std::path::{Path, PathBuf};
use std::process::Command;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use swarmd::access::TokenAlgorithm;
use swarmd::protocol::InfoHash;
use swarmd::Config;

pub const ISSUER: &str = "registry.example";
pub const AUDIENCE: &str = "swarmd";

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn hex(h: InfoHash) -> String {
    h.to_string()
}

/// A signing key, as a registry holds it.
pub struct Signer {
    pub algorithm: Algorithm,
    pub key: EncodingKey,
    pub kid: Option<String>,
}

impl Signer {
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// A token from the registry for `hashes`, good for a minute.
    pub fn token(&self, hashes: &[InfoHash]) -> String {
        self.sign(&claims(hashes, |_| {}))
    }

    /// Its public key as a JWK with `kid`.
    pub fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).unwrap();
        jwk.common.key_id = self.kid.clone();
        jwk
    }
}

/// The claims of a good token for `hashes`, then `edit`ed.
pub fn claims(hashes: &[InfoHash], edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let hashes: Vec<String> = hashes.iter().map(|h| h.to_string()).collect();
    let infohash = match hashes.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    let mut c = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "some-image",
        "iat": now(), "exp": now() + 60, "infohash": infohash,
    });
    edit(&mut c);
    c
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian: apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A new RSA (2048 bits) or EC P-256 key pair, made by `openssl` in `dir`.
pub fn generate(dir: &Path, algorithm: Algorithm, kid: &str) -> Signer {
    let der = format!("{kid}.der");
    let key = match algorithm {
        Algorithm::RS256 => {
            let pem = format!("{kid}.pem");
            openssl(dir, &["genrsa", "-out", &pem, "2048"]);
            // jsonwebtoken reads RSA private keys as PKCS#1 DER.
            openssl(
                dir,
                &[
                    "rsa",
                    "-in",
                    &pem,
                    "-traditional",
                    "-outform",
                    "DER",
                    "-out",
                    &der,
                ],
            );
            EncodingKey::from_rsa_der(&std::fs::read(dir.join(&der)).unwrap())
        }
        Algorithm::ES256 => {
            // and EC ones as PKCS#8 DER (OpenSSL 3.0 writes SEC1 DER).
            let pem = format!("{kid}.pem");
            openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &pem,
                ],
            );
            openssl(
                dir,
                &[
                    "pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER", "-out", &der,
                ],
            );
            EncodingKey::from_ec_der(&std::fs::read(dir.join(&der)).unwrap())
        }
        other => panic!("no key pair for {other:?}"),
    };
    Signer {
        algorithm,
        key,
        kid: Some(kid.into()),
    }
}

/// Writes the public keys of `signers` as the JWK Set the tracker reads.
pub fn write_jwks(path: &Path, signers: &[&Signer]) {
    let set = JwkSet {
        keys: signers.iter().map(|s| s.jwk()).collect(),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&set).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A random HS256 secret, written to `dir/secret` (with a final newline,
/// as an editor leaves it).
pub fn hs256(dir: &Path) -> (Signer, PathBuf) {
    let secret: Vec<u8> = (0..48).map(|_| fastrand::alphanumeric() as u8).collect();
    let path = dir.join("secret");
    std::fs::write(&path, [secret.as_slice(), b"\n"].concat()).unwrap();
    let signer = Signer {
        algorithm: Algorithm::HS256,
        key: EncodingKey::from_secret(&secret),
        kid: None,
    };
    (signer, path)
}

pub fn with_tokens(algorithm: TokenAlgorithm, file: PathBuf) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        let t = &mut c.access.token;
        t.algorithm = algorithm;
        match algorithm {
            TokenAlgorithm::HS256 => t.secret_file = file,
            _ => t.jwks_file = file,
        }
        t.issuer = ISSUER.into();
        t.audience = AUDIENCE.into();
        t.leeway = 5;
    }
}
