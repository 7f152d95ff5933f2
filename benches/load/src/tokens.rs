//! Signed announce tokens for a load against a tracker with `[access.token]`
//! on: one token per torrent, signed when the run starts (as a registry
//! issues one per image), sent with every announce of that torrent, over UDP
//! as BEP 41 URL data (`/announce?jwt=TOKEN`, in options of at most 255
//! bytes) and over HTTP as `&jwt=TOKEN`. Also the JWK Set of the public key,
//! for the tracker's `jwks_file`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::model::Population;

/// How the tokens are made: `--token-*`.
#[derive(Clone, Debug)]
pub struct TokenOptions {
    /// DER private key (RS256: PKCS#1, ES256: PKCS#8) or the shared secret
    /// (HS256; trailing whitespace is not part of it, as for the tracker).
    pub key: PathBuf,
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// What the query of a token announce starts with (the UDP URL data whole).
const PREFIX: &str = "/announce?jwt=";

/// BEP 41: option type of URL data, and of the end of the options.
const OPTION_URL_DATA: u8 = 2;
const OPTION_END: u8 = 0;

/// One token per torrent, as `/announce?jwt=TOKEN`.
pub struct Tokens {
    urls: Vec<Box<str>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({})", self.urls.len())
    }
}

fn read_key(o: &TokenOptions) -> Result<EncodingKey> {
    let bytes = std::fs::read(&o.key).with_context(|| format!("reading {}", o.key.display()))?;
    let key = match o.algorithm {
        Algorithm::HS256 => {
            let end = bytes
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map_or(0, |i| i + 1);
            EncodingKey::from_secret(&bytes[..end])
        }
        // DER, not PEM: jsonwebtoken reads PEM only with its `use_pem`
        // feature, which the daemon does not need; one feature set keeps
        // one build of it in the workspace. The key is checked when the
        // first token is signed.
        Algorithm::RS256 => EncodingKey::from_rsa_der(&bytes),
        Algorithm::ES256 => EncodingKey::from_ec_der(&bytes),
        other => bail!("--token-alg {other:?}: expected RS256, ES256 or HS256"),
    };
    Ok(key)
}

impl Tokens {
    /// Signs a token for every torrent of `pop`, good for `valid` from now,
    /// on every CPU (an RSA signature takes about a millisecond).
    pub fn sign(o: &TokenOptions, pop: &Population, valid: Duration) -> Result<Tokens> {
        let key = read_key(o)?;
        let mut header = Header::new(o.algorithm);
        header.kid = o.kid.clone();
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + valid.as_secs();
        let n = usize::try_from(pop.torrents).context("too many torrents")?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = n.div_ceil(threads).max(1);
        let sign = |t: usize| -> Result<Box<str>> {
            let mut claims = json!({"exp": exp, "infohash": pop.info_hash(t as u64).to_string()});
            if let Some(iss) = &o.issuer {
                claims["iss"] = json!(iss);
            }
            if let Some(aud) = &o.audience {
                claims["aud"] = json!(aud);
            }
            let token = jsonwebtoken::encode(&header, &claims, &key)
                .map_err(|e| anyhow!("signing a token: {e}"))?;
            Ok(format!("{PREFIX}{token}").into_boxed_str())
        };
        let parts: Vec<Result<Vec<Box<str>>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .step_by(per)
                .map(|start| s.spawn(move || (start..(start + per).min(n)).map(sign).collect()))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a signing thread died")))
                })
                .collect()
        });
        let mut urls = Vec::with_capacity(n);
        for part in parts {
            urls.extend(part?);
        }
        Ok(Tokens { urls })
    }

    /// The token of `torrent`.
    pub fn token(&self, torrent: u64) -> &str {
        &self.urls[torrent as usize][PREFIX.len()..]
    }

    /// Appends the BEP 41 options of a UDP announce for `torrent`: the URL
    /// data in options of at most 255 bytes, then the end of options.
    pub fn write_udp(&self, out: &mut Vec<u8>, torrent: u64) {
        for chunk in self.urls[torrent as usize].as_bytes().chunks(255) {
            out.push(OPTION_URL_DATA);
            // At most 255: the chunk size.
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
        out.push(OPTION_END);
    }

    /// `&jwt=TOKEN` for an HTTP announce of `torrent`.
    pub fn write_http(&self, out: &mut Vec<u8>, torrent: u64) {
        out.extend_from_slice(b"&jwt=");
        out.extend_from_slice(self.token(torrent).as_bytes());
    }
}

/// The JWK Set of the public half of the key (RS256, ES256), for the
/// tracker's `jwks_file`.
pub fn jwks(o: &TokenOptions) -> Result<String> {
    if o.algorithm == Algorithm::HS256 {
        bail!("HS256 has no public key: give the tracker the same secret file");
    }
    let key = read_key(o)?;
    let mut jwk = Jwk::from_encoding_key(&key, o.algorithm)
        .map_err(|e| anyhow!("{}: no public key: {e}", o.key.display()))?;
    jwk.common.key_id = o.kid.clone();
    Ok(serde_json::to_string_pretty(&JwkSet { keys: vec![jwk] })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmd::protocol::udp::{AnnounceRequest, ConnectionId, Request, TransactionId};
    use swarmd::protocol::{AnnounceEvent, PeerId};

    #[test]
    fn udp_options_carry_the_whole_url_data_in_255_byte_chunks() {
        let dir = std::env::temp_dir().join(format!("swarmd-load-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "a load-test secret of thirty-two bytes or more\n").unwrap();
        let o = TokenOptions {
            key: secret,
            algorithm: Algorithm::HS256,
            kid: None,
            issuer: Some("i".repeat(300)),
            audience: Some("swarmd".into()),
        };
        let pop = Population::new(3, 3, 1.0, 1);
        let tokens = Tokens::sign(&o, &pop, Duration::from_secs(60)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let mut datagram = Vec::new();
        Request::Announce(AnnounceRequest {
            connection_id: ConnectionId(1),
            transaction_id: TransactionId(2),
            info_hash: pop.info_hash(2),
            peer_id: PeerId([3; 20]),
            downloaded: 0,
            left: 0,
            uploaded: 0,
            event: AnnounceEvent::None,
            ip_address: 0,
            key: 0,
            num_want: 0,
            port: 1,
            url_data: Vec::new(),
        })
        .write(&mut datagram);
        tokens.write_udp(&mut datagram, 2);
        let Ok(Request::Announce(a)) = Request::parse(&datagram, 74) else {
            panic!("the tracker's parser refuses it")
        };
        let url = String::from_utf8(a.url_data).unwrap();
        assert!(url.len() > 510, "three options");
        assert_eq!(url, format!("{PREFIX}{}", tokens.token(2)));
        let mut http = Vec::new();
        tokens.write_http(&mut http, 0);
        assert_eq!(http, format!("&jwt={}", tokens.token(0)).into_bytes());
    }
}
