//! BEP 15 (UDP tracker protocol) and BEP 41 (announce options): decoding of
//! requests and encoding of responses. No I/O happens here: bytes in, typed
//! values out, and the other way round.
//!
//! Decoding never panics and never allocates more than the datagram it was
//! given. A decode error says whether the tracker may answer it (see
//! [`ParseError`]): only a request that carries a connection id may be answered
//! with an error, and the caller still has to check that id before it replies.

use super::{AnnounceEvent, InfoHash, PeerId};

/// The magic constant a connect request starts with.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;

/// Length of a connect request and of a connect response.
pub const CONNECT_LEN: usize = 16;
/// Length of an announce request without BEP 41 options.
pub const ANNOUNCE_LEN: usize = 98;
/// Length of a scrape request header (before the info hashes).
pub const SCRAPE_HEADER_LEN: usize = 16;
/// Length of an announce response header (before the peers).
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Length of the error response header (before the message).
pub const ERROR_HEADER_LEN: usize = 8;

/// The connection id of BEP 15, opaque to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// The transaction id of BEP 15: chosen by the client, echoed by the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub u32);

/// A decoded UDP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Connect(ConnectRequest),
    Announce(AnnounceRequest),
    Scrape(ScrapeRequest),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub transaction_id: TransactionId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: AnnounceEvent,
    /// The IPv4 address field of the request. swarmd ignores it (the source
    /// address of the datagram is the peer's address) but keeps it decoded.
    pub ip_address: u32,
    pub key: u32,
    /// -1 asks for the tracker's default.
    pub num_want: i32,
    pub port: u16,
    /// BEP 41 URL data, all URLData options concatenated (empty when absent).
    /// Private trackers read the passkey from it.
    pub url_data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeRequest {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub info_hashes: Vec<InfoHash>,
}

/// Why a datagram could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not worth an answer: too short to hold a transaction id and a
    /// connection id, an unknown action, a connect without the magic. The
    /// tracker drops it silently.
    Drop(DropReason),
    /// The request carried a connection id and a transaction id, so once the
    /// connection id checks out the tracker may answer with this message.
    Sendable {
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        message: &'static str,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    TooShort,
    BadProtocolId,
    UnknownAction,
}

#[inline]
fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

#[inline]
fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

#[inline]
fn array20(b: &[u8], at: usize) -> [u8; 20] {
    let mut a = [0u8; 20];
    a.copy_from_slice(&b[at..at + 20]);
    a
}

impl Request {
    /// Decodes one datagram. `max_scrape_hashes` bounds a scrape: more info
    /// hashes than that is an error the client is told about.
    pub fn parse(bytes: &[u8], max_scrape_hashes: usize) -> Result<Request, ParseError> {
        if bytes.len() < 16 {
            return Err(ParseError::Drop(DropReason::TooShort));
        }
        let connection_id = ConnectionId(be_u64(bytes, 0));
        let action = be_u32(bytes, 8);
        let transaction_id = TransactionId(be_u32(bytes, 12));
        let sendable = |message| ParseError::Sendable {
            connection_id,
            transaction_id,
            message,
        };
        match action {
            ACTION_CONNECT => {
                if connection_id.0 != PROTOCOL_ID {
                    return Err(ParseError::Drop(DropReason::BadProtocolId));
                }
                Ok(Request::Connect(ConnectRequest { transaction_id }))
            }
            ACTION_ANNOUNCE => {
                if bytes.len() < ANNOUNCE_LEN {
                    return Err(sendable("short announce"));
                }
                let event = AnnounceEvent::from_udp(be_u32(bytes, 80))
                    .ok_or_else(|| sendable("bad event"))?;
                let url_data =
                    parse_options(&bytes[ANNOUNCE_LEN..]).map_err(|()| sendable("bad options"))?;
                Ok(Request::Announce(AnnounceRequest {
                    connection_id,
                    transaction_id,
                    info_hash: InfoHash(array20(bytes, 16)),
                    peer_id: PeerId(array20(bytes, 36)),
                    downloaded: be_u64(bytes, 56),
                    left: be_u64(bytes, 64),
                    uploaded: be_u64(bytes, 72),
                    event,
                    ip_address: be_u32(bytes, 84),
                    key: be_u32(bytes, 88),
                    num_want: be_u32(bytes, 92) as i32,
                    port: u16::from_be_bytes([bytes[96], bytes[97]]),
                    url_data,
                }))
            }
            ACTION_SCRAPE => {
                let body = &bytes[SCRAPE_HEADER_LEN..];
                // A trailing partial hash is ignored, as other trackers do;
                // an empty scrape is an error.
                let count = body.len() / 20;
                if count == 0 {
                    return Err(sendable("no info hash"));
                }
                if count > max_scrape_hashes {
                    return Err(sendable("too many hashes"));
                }
                let info_hashes = body
                    .chunks_exact(20)
                    .map(|c| InfoHash(array20(c, 0)))
                    .collect();
                Ok(Request::Scrape(ScrapeRequest {
                    connection_id,
                    transaction_id,
                    info_hashes,
                }))
            }
            _ => Err(ParseError::Drop(DropReason::UnknownAction)),
        }
    }
}

const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_URL_DATA: u8 = 2;

/// Parses BEP 41 options. Returns the concatenated URL data. Unknown options
/// are skipped by their length byte; an option that runs past the end of the
/// datagram is an error.
fn parse_options(rest: &[u8]) -> Result<Vec<u8>, ()> {
    // Never more than what follows the announce: one allocation, where
    // growing by 255-byte options reallocated and copied for every
    // option of a long token.
    let mut url_data = Vec::new();
    if rest.first().is_some_and(|&k| k != OPTION_END) {
        url_data.reserve_exact(rest.len());
    }
    for chunk in UrlDataOptions(rest) {
        url_data.extend_from_slice(chunk?);
    }
    Ok(url_data)
}

/// The URL data options among BEP 41 options, in order, each one's bytes;
/// an `Err` for an option that runs past the end, and nothing after it.
struct UrlDataOptions<'a>(&'a [u8]);

impl<'a> Iterator for UrlDataOptions<'a> {
    type Item = Result<&'a [u8], ()>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&kind, tail) = self.0.split_first()?;
            match kind {
                OPTION_END => {
                    self.0 = &[];
                    return None;
                }
                OPTION_NOP => self.0 = tail,
                _ => {
                    let option = tail
                        .split_first()
                        .filter(|(&len, tail)| tail.len() >= usize::from(len));
                    let Some((&len, tail)) = option else {
                        self.0 = &[];
                        return Some(Err(()));
                    };
                    let (data, after) = tail.split_at(usize::from(len));
                    self.0 = after;
                    if kind == OPTION_URL_DATA {
                        return Some(Ok(data));
                    }
                }
            }
        }
    }
}

/// The last bytes (up to 32) of an announce datagram's BEP 41 URL data,
/// written at the end of `out`, and how many; read from the options in
/// place, without the allocation of [`Request::parse`]. For a prefetch: a
/// token is the URL data's last parameter in the URLs registries make, so
/// these are the token's last bytes, its cache key. None for a datagram
/// that is not an announce with URL data, or whose last 32 bytes of it are
/// spread over more than two options.
pub fn url_data_tail(datagram: &[u8], out: &mut [u8; 32]) -> Option<usize> {
    if datagram.len() <= ANNOUNCE_LEN || be_u32(datagram, 8) != ACTION_ANNOUNCE {
        return None;
    }
    // The last two non-empty URL data options.
    let (mut before, mut last): (&[u8], &[u8]) = (&[], &[]);
    for chunk in UrlDataOptions(&datagram[ANNOUNCE_LEN..]) {
        let chunk = chunk.ok()?;
        if !chunk.is_empty() {
            (before, last) = (last, chunk);
        }
    }
    let from_last = last.len().min(32);
    let from_before = before.len().min(32 - from_last);
    let end = 32 - from_last;
    out[end..].copy_from_slice(&last[last.len() - from_last..]);
    out[end - from_before..end].copy_from_slice(&before[before.len() - from_before..]);
    let n = from_last + from_before;
    (n > 0).then_some(n)
}

/// Writes requests: used by the load generator, the tests and round trips.
impl Request {
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect(r) => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&r.transaction_id.0.to_be_bytes());
            }
            Request::Announce(r) => {
                out.extend_from_slice(&r.connection_id.0.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&r.transaction_id.0.to_be_bytes());
                out.extend_from_slice(&r.info_hash.0);
                out.extend_from_slice(&r.peer_id.0);
                out.extend_from_slice(&r.downloaded.to_be_bytes());
                out.extend_from_slice(&r.left.to_be_bytes());
                out.extend_from_slice(&r.uploaded.to_be_bytes());
                out.extend_from_slice(&r.event.to_udp().to_be_bytes());
                out.extend_from_slice(&r.ip_address.to_be_bytes());
                out.extend_from_slice(&r.key.to_be_bytes());
                out.extend_from_slice(&r.num_want.to_be_bytes());
                out.extend_from_slice(&r.port.to_be_bytes());
                for chunk in r.url_data.chunks(255) {
                    out.push(OPTION_URL_DATA);
                    out.push(chunk.len() as u8);
                    out.extend_from_slice(chunk);
                }
                if !r.url_data.is_empty() {
                    out.push(OPTION_END);
                }
            }
            Request::Scrape(r) => {
                out.extend_from_slice(&r.connection_id.0.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&r.transaction_id.0.to_be_bytes());
                for h in &r.info_hashes {
                    out.extend_from_slice(&h.0);
                }
            }
        }
    }
}

/// Seeders, completed downloads and leechers of one torrent, as a scrape
/// reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    pub seeders: u32,
    pub completed: u32,
    pub leechers: u32,
}

/// Response encoders. Each writes one whole datagram into `out` (appending)
/// and returns nothing; the caller owns and reuses the buffer.
pub fn write_connect(out: &mut Vec<u8>, transaction_id: TransactionId, id: ConnectionId) {
    out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    out.extend_from_slice(&transaction_id.0.to_be_bytes());
    out.extend_from_slice(&id.0.to_be_bytes());
}

/// `peers` holds compact peers already in wire form: 6 bytes each for IPv4,
/// 18 for IPv6.
pub fn write_announce(
    out: &mut Vec<u8>,
    transaction_id: TransactionId,
    interval: u32,
    leechers: u32,
    seeders: u32,
    peers: &[u8],
) {
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&transaction_id.0.to_be_bytes());
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&leechers.to_be_bytes());
    out.extend_from_slice(&seeders.to_be_bytes());
    out.extend_from_slice(peers);
}

pub fn write_scrape(out: &mut Vec<u8>, transaction_id: TransactionId, stats: &[ScrapeStats]) {
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.0.to_be_bytes());
    for s in stats {
        out.extend_from_slice(&s.seeders.to_be_bytes());
        out.extend_from_slice(&s.completed.to_be_bytes());
        out.extend_from_slice(&s.leechers.to_be_bytes());
    }
}

/// Writes an error response whose total length never exceeds `max_len`
/// (the length of the request it answers), so an error can't amplify.
pub fn write_error(
    out: &mut Vec<u8>,
    transaction_id: TransactionId,
    message: &str,
    max_len: usize,
) {
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&transaction_id.0.to_be_bytes());
    let room = max_len.saturating_sub(ERROR_HEADER_LEN);
    let msg = message.as_bytes();
    out.extend_from_slice(&msg[..msg.len().min(room)]);
}

/// A decoded tracker response, for clients (the load generator, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Connect {
        transaction_id: TransactionId,
        connection_id: ConnectionId,
    },
    Announce {
        transaction_id: TransactionId,
        interval: u32,
        leechers: u32,
        seeders: u32,
        /// Compact peers in wire form, 6 or 18 bytes each.
        peers: Vec<u8>,
    },
    Scrape {
        transaction_id: TransactionId,
        stats: Vec<ScrapeStats>,
    },
    Error {
        transaction_id: TransactionId,
        message: Vec<u8>,
    },
}

impl Response {
    /// Decodes a response. Returns `None` for anything that isn't one.
    pub fn parse(bytes: &[u8]) -> Option<Response> {
        if bytes.len() < 8 {
            return None;
        }
        let action = be_u32(bytes, 0);
        let transaction_id = TransactionId(be_u32(bytes, 4));
        match action {
            ACTION_CONNECT if bytes.len() == CONNECT_LEN => Some(Response::Connect {
                transaction_id,
                connection_id: ConnectionId(be_u64(bytes, 8)),
            }),
            ACTION_ANNOUNCE if bytes.len() >= ANNOUNCE_RESPONSE_HEADER_LEN => {
                Some(Response::Announce {
                    transaction_id,
                    interval: be_u32(bytes, 8),
                    leechers: be_u32(bytes, 12),
                    seeders: be_u32(bytes, 16),
                    peers: bytes[ANNOUNCE_RESPONSE_HEADER_LEN..].to_vec(),
                })
            }
            ACTION_SCRAPE if (bytes.len() - 8).is_multiple_of(12) => Some(Response::Scrape {
                transaction_id,
                stats: bytes[8..]
                    .chunks_exact(12)
                    .map(|c| ScrapeStats {
                        seeders: be_u32(c, 0),
                        completed: be_u32(c, 4),
                        leechers: be_u32(c, 8),
                    })
                    .collect(),
            }),
            ACTION_ERROR => Some(Response::Error {
                transaction_id,
                message: bytes[8..].to_vec(),
            }),
            _ => None,
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => write_connect(out, *transaction_id, *connection_id),
            Response::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => write_announce(out, *transaction_id, *interval, *leechers, *seeders, peers),
            Response::Scrape {
                transaction_id,
                stats,
            } => write_scrape(out, *transaction_id, stats),
            Response::Error {
                transaction_id,
                message,
            } => {
                out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
                out.extend_from_slice(&transaction_id.0.to_be_bytes());
                out.extend_from_slice(message);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
