//! HTTP tracker requests (BEP 3 announce, BEP 48 scrape) and their bencoded
//! responses (BEP 3, 7, 23, 48). No I/O: a request head is parsed from
//! bytes, a response is written into a buffer.
//!
//! The request head is parsed by `httparse`; the query string by hand,
//! since info_hash and peer_id are binary and percent-encoded, and must
//! decode to exactly 20 bytes.

use std::net::IpAddr;

use super::bencode;
use super::udp::ScrapeStats;
use super::{AnnounceEvent, InfoHash, PeerId};
use crate::access::{parse_target, query_token};

/// Most headers read from a request.
const MAX_HEADERS: usize = 32;

/// What the path asked for: one parser (in `access`) reads HTTP paths and
/// BEP 41 URL data alike.
pub use crate::access::Route;

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// A passkey from `/announce/<key>`, `/<key>/announce` (and the same for
    /// scrape), for private trackers.
    pub passkey: Option<String>,
    /// A signed announce token from the query's `jwt=`.
    pub token: Option<String>,
    pub query: Query,
    /// The client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// The value of the configured real-IP header, if present.
    pub forwarded_for: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Announce(AnnounceQuery),
    Scrape(Vec<InfoHash>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceQuery {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: AnnounceEvent,
    /// None: the tracker's default.
    pub numwant: Option<u32>,
    /// BEP 23; the default when absent is compact.
    pub compact: bool,
    pub no_peer_id: bool,
    /// The `ip` parameter; used only when the operator allows it.
    pub ip: Option<IpAddr>,
}

/// Why a request could not be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP at all, or a head that httparse refuses: close the
    /// connection after a 400.
    BadRequest,
    /// The head is larger than the limit.
    HeadTooLarge,
    /// Not GET.
    MethodNotAllowed,
    /// Neither announce nor scrape.
    NotFound,
    /// A tracker-level error: HTTP 200 with this `failure reason`, as
    /// clients expect.
    Failure(&'static str),
}

/// Settings that change how requests are read.
#[derive(Clone, Debug, Default)]
pub struct ParseSettings {
    pub max_head: usize,
    pub max_scrape: usize,
    /// Lower-case name of the header that carries the client's address
    /// behind a reverse proxy.
    pub real_ip_header: Option<String>,
}

/// Parses one request head from the start of `buf`. `Ok(None)`: not complete
/// yet. `Ok(Some((request, used)))`: `used` bytes make up the head (GET
/// requests have no body; one declared is refused).
pub fn parse(
    buf: &[u8],
    settings: &ParseSettings,
) -> Result<Option<(HttpRequest, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > settings.max_head {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(_) => return Err(HttpError::BadRequest),
    };
    if used > settings.max_head {
        return Err(HttpError::HeadTooLarge);
    }
    if req.method != Some("GET") {
        return Err(HttpError::MethodNotAllowed);
    }
    let version = req.version.unwrap_or(0);
    let mut keep_alive = version >= 1;
    let mut forwarded_for = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if v.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if v.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        } else if (h.name.eq_ignore_ascii_case("content-length")
            && h.value.iter().any(|&b| b != b'0' && b != b' '))
            || h.name.eq_ignore_ascii_case("transfer-encoding")
        {
            // A GET with a body: refused rather than read.
            return Err(HttpError::BadRequest);
        } else if let Some(name) = &settings.real_ip_header {
            if h.name.eq_ignore_ascii_case(name) {
                forwarded_for = std::str::from_utf8(h.value).ok().map(str::to_owned);
            }
        }
    }
    let target = req.path.ok_or(HttpError::BadRequest)?;
    let target = parse_target(target);
    let (route, query) = (target.route.ok_or(HttpError::NotFound)?, target.query);
    let passkey = target.passkey.map(str::to_owned);
    let token = query_token(query).map(str::to_owned);
    let query = match route {
        Route::Announce => Query::Announce(parse_announce(query)?),
        Route::Scrape => Query::Scrape(parse_scrape(query, settings.max_scrape)?),
    };
    Ok(Some((
        HttpRequest {
            passkey,
            token,
            query,
            keep_alive,
            forwarded_for,
        },
        used,
    )))
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` into exactly 20 bytes.
fn decode20(s: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    let mut n = 0;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if n == 20 {
            return None;
        }
        let byte = match b[i] {
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                i += 3;
                hi << 4 | lo
            }
            b'+' => {
                i += 1;
                b' '
            }
            c => {
                i += 1;
                c
            }
        };
        out[n] = byte;
        n += 1;
    }
    (n == 20).then_some(out)
}

/// Percent-decodes a short text value (the ip parameter).
fn decode_text(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

fn parse_announce(query: &str) -> Result<AnnounceQuery, HttpError> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut q = AnnounceQuery {
        info_hash: InfoHash::default(),
        peer_id: PeerId::default(),
        port: 0,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: AnnounceEvent::None,
        numwant: None,
        compact: true,
        no_peer_id: false,
        ip: None,
    };
    let number =
        |v: &str, what: &'static str| v.parse::<u64>().map_err(|_| HttpError::Failure(what));
    let mut left = None;
    for (k, v) in pairs(query) {
        match k {
            "info_hash" => {
                info_hash = Some(InfoHash(
                    decode20(v).ok_or(HttpError::Failure("invalid info_hash"))?,
                ))
            }
            "peer_id" => {
                peer_id = Some(PeerId(
                    decode20(v).ok_or(HttpError::Failure("invalid peer_id"))?,
                ))
            }
            "port" => {
                port = Some(
                    v.parse::<u16>()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or(HttpError::Failure("invalid port"))?,
                )
            }
            "uploaded" => q.uploaded = number(v, "invalid uploaded")?,
            "downloaded" => q.downloaded = number(v, "invalid downloaded")?,
            "left" => left = Some(number(v, "invalid left")?),
            "event" => {
                q.event = match v {
                    "" | "empty" | "paused" => AnnounceEvent::None,
                    "started" => AnnounceEvent::Started,
                    "completed" => AnnounceEvent::Completed,
                    "stopped" => AnnounceEvent::Stopped,
                    _ => return Err(HttpError::Failure("invalid event")),
                }
            }
            "numwant" => {
                // Negative is "the default", as over UDP.
                q.numwant = match v.parse::<i64>() {
                    Ok(n) if n > 0 => Some(n.min(u32::MAX as i64) as u32),
                    Ok(_) => None,
                    Err(_) => return Err(HttpError::Failure("invalid numwant")),
                }
            }
            "compact" => q.compact = v != "0",
            "no_peer_id" => q.no_peer_id = v == "1",
            // key and trackerid (BEP 3) are accepted and not used: peers are
            // keyed by address and port, and swarmd sends no tracker id.
            "ip" | "ipv4" | "ipv6" => {
                if let Some(ip) = decode_text(v).and_then(|s| s.parse().ok()) {
                    q.ip = Some(ip);
                }
            }
            _ => {}
        }
    }
    q.info_hash = info_hash.ok_or(HttpError::Failure("missing info_hash"))?;
    q.peer_id = peer_id.ok_or(HttpError::Failure("missing peer_id"))?;
    q.port = port.ok_or(HttpError::Failure("missing port"))?;
    q.left = left.ok_or(HttpError::Failure("missing left"))?;
    Ok(q)
}

fn parse_scrape(query: &str, max: usize) -> Result<Vec<InfoHash>, HttpError> {
    let mut hashes = Vec::new();
    for (k, v) in pairs(query) {
        if k == "info_hash" {
            if hashes.len() == max {
                return Err(HttpError::Failure("too many info_hash values"));
            }
            hashes.push(InfoHash(
                decode20(v).ok_or(HttpError::Failure("invalid info_hash"))?,
            ));
        }
    }
    // BEP 48 lets a scrape without info_hash ask for every torrent; swarmd
    // refuses that, as most public trackers do: it would be a large answer to
    // a small request.
    if hashes.is_empty() {
        return Err(HttpError::Failure("scrape needs info_hash"));
    }
    Ok(hashes)
}

/// Appends `bytes` percent-encoded for a query string, as a client writes
/// them (the load generator, tests): the unreserved characters of RFC 3986
/// as they are, every other byte as `%XX`. No allocation.
pub fn percent_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// [`percent_encode`] into a new string.
pub fn url_encode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    percent_encode(&mut out, bytes);
    // Only ASCII was written, so each byte is its own char.
    out.into_iter().map(char::from).collect()
}

/// An announce reply's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceReply {
    pub interval: u32,
    pub min_interval: u32,
    pub complete: u32,
    pub incomplete: u32,
}

/// How peers are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFormat {
    Compact,
    /// BEP 3 dictionaries; `peer_ids` holds 20 bytes per peer when the
    /// tracker keeps peer ids and the client did not send no_peer_id.
    Dictionary,
}

impl PeerFormat {
    /// The format to answer in, when the client asked for `self`
    /// (`compact=0` asks for [`PeerFormat::Dictionary`]) and `ids_at_hand`
    /// says whether the peer id of every listed peer is known (`[swarm]
    /// peer_ids = true`).
    ///
    /// BEP 23 makes `compact` advisory: the tracker may answer in either
    /// format and clients must read both. BEP 3's dictionaries carry a
    /// `peer id`; only a client that sent `no_peer_id=1` (a widespread
    /// extension, in no BEP) has said it does without. So:
    /// - `compact=1`, or no `compact`: compact;
    /// - `compact=0&no_peer_id=1`: dictionaries without ids, as asked,
    ///   whether ids are kept or not;
    /// - `compact=0` alone: dictionaries with ids when they are at hand,
    ///   else compact. A dictionary without its `peer id` is a model the
    ///   client did not ask for; compact is one BEP 23 lets us choose.
    pub fn answer(self, no_peer_id: bool, ids_at_hand: bool) -> PeerFormat {
        match self {
            PeerFormat::Dictionary if no_peer_id || ids_at_hand => PeerFormat::Dictionary,
            _ => PeerFormat::Compact,
        }
    }
}

/// Writes a bencoded announce body. `peers` are compact (6 or 18 bytes each,
/// by `v6`); `peer_ids`, if not empty, 20 bytes per peer in the same order.
pub fn write_announce_body(
    out: &mut Vec<u8>,
    reply: &AnnounceReply,
    format: PeerFormat,
    v6: bool,
    peers: &[u8],
    peer_ids: &[u8],
) {
    let len = if v6 { 18 } else { 6 };
    out.push(b'd');
    bencode::key_int(out, b"complete", reply.complete as i64);
    bencode::key_int(out, b"incomplete", reply.incomplete as i64);
    bencode::key_int(out, b"interval", reply.interval as i64);
    bencode::key_int(out, b"min interval", reply.min_interval as i64);
    match format {
        PeerFormat::Compact => {
            // "peers" is always present (some clients require it); IPv6
            // peers go in "peers6" (BEP 7).
            if v6 {
                bencode::key_bytes(out, b"peers", b"");
                bencode::key_bytes(out, b"peers6", peers);
            } else {
                bencode::key_bytes(out, b"peers", peers);
            }
        }
        PeerFormat::Dictionary => {
            bencode::bytes(out, b"peers");
            out.push(b'l');
            for (i, p) in peers.chunks_exact(len).enumerate() {
                let port = u16::from_be_bytes([p[len - 2], p[len - 1]]);
                out.push(b'd');
                bencode::bytes(out, b"ip");
                if v6 {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&p[..16]);
                    bencode::bytes(out, std::net::Ipv6Addr::from(a).to_string().as_bytes());
                } else {
                    // Dotted quad written in place: this runs per peer.
                    let mut ip = [0u8; 15];
                    let mut n = 0;
                    for (i, octet) in p[..4].iter().enumerate() {
                        if i > 0 {
                            ip[n] = b'.';
                            n += 1;
                        }
                        let digits = [octet / 100, octet / 10 % 10, octet % 10];
                        let skip = if *octet >= 100 {
                            0
                        } else if *octet >= 10 {
                            1
                        } else {
                            2
                        };
                        for d in &digits[skip..] {
                            ip[n] = b'0' + d;
                            n += 1;
                        }
                    }
                    bencode::bytes(out, &ip[..n]);
                }
                if let Some(id) = peer_ids.get(i * 20..i * 20 + 20) {
                    bencode::key_bytes(out, b"peer id", id);
                }
                bencode::key_int(out, b"port", port as i64);
                out.push(b'e');
            }
            out.push(b'e');
        }
    }
    out.push(b'e');
}

/// Writes a bencoded scrape body (BEP 48). Keys are sorted, as bencode
/// requires; a hash asked for twice appears once.
pub fn write_scrape_body(out: &mut Vec<u8>, files: &mut [(InfoHash, ScrapeStats)]) {
    files.sort_unstable_by_key(|f| f.0);
    out.push(b'd');
    bencode::bytes(out, b"files");
    out.push(b'd');
    let mut last: Option<InfoHash> = None;
    for (hash, s) in files.iter() {
        if last == Some(*hash) {
            continue;
        }
        last = Some(*hash);
        bencode::bytes(out, &hash.0);
        out.push(b'd');
        bencode::key_int(out, b"complete", s.seeders as i64);
        bencode::key_int(out, b"downloaded", s.completed as i64);
        bencode::key_int(out, b"incomplete", s.leechers as i64);
        out.push(b'e');
    }
    out.push(b'e');
    out.push(b'e');
}

/// Writes a bencoded failure body.
pub fn write_failure_body(out: &mut Vec<u8>, reason: &str) {
    out.push(b'd');
    bencode::key_bytes(out, b"failure reason", reason.as_bytes());
    out.push(b'e');
}

/// Writes a whole HTTP response around `body`.
pub fn write_response(out: &mut Vec<u8>, status: &str, keep_alive: bool, body: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    bencode::decimal(out, body.len() as i64);
    if !keep_alive {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests;
