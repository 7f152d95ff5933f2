//! HTTP tracker requests as a client writes them (BEP 3 announce with
//! `compact=1`, BEP 48 scrape), and the checks on what comes back: the
//! response framed by its head and Content-Length, status 200, and a
//! bencoded dictionary with `interval` and whole peer entries, or `files`, or
//! a `failure reason`. Pure functions, no I/O: the load threads and `ping`
//! both use them.

use std::io::Write;

use swarmd::protocol::bencode::unsigned;
use swarmd::protocol::http::percent_encode;
use swarmd::protocol::{AnnounceEvent, InfoHash};

use crate::bencode;
use crate::check::{Expect, Invalid, Kind, Verdict};
use crate::peers::Announce;

/// Most headers read from a response head; trackers send three or four.
const MAX_HEADERS: usize = 16;

/// The end of every request: the version, a Host header (HTTP/1.1 requires
/// one) and a User-Agent, as clients send. No `Connection` header: HTTP/1.1
/// keeps the connection open by default.
fn finish_head(out: &mut Vec<u8>, host: &str) {
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: swarmd-load/0.1\r\n\r\n");
}

/// Appends a whole `GET /announce?...` request for `host` (e.g.
/// `127.0.0.1:6969`), with `compact=1`; no `numwant` when it is negative.
pub fn write_announce(out: &mut Vec<u8>, host: &str, a: &Announce) {
    write_announce_then(out, host, a, |_| {});
}

/// The same, with `more` appending parameters (`&jwt=...`) at the end of
/// the query.
pub fn write_announce_then(
    out: &mut Vec<u8>,
    host: &str,
    a: &Announce,
    more: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"GET /announce?info_hash=");
    percent_encode(out, &a.info_hash.0);
    out.extend_from_slice(b"&peer_id=");
    percent_encode(out, &a.peer_id.0);
    out.extend_from_slice(b"&port=");
    unsigned(out, u64::from(a.port));
    out.extend_from_slice(b"&uploaded=");
    unsigned(out, a.uploaded);
    out.extend_from_slice(b"&downloaded=");
    unsigned(out, a.downloaded);
    out.extend_from_slice(b"&left=");
    unsigned(out, a.left);
    let event: &[u8] = match a.event {
        AnnounceEvent::None => b"",
        AnnounceEvent::Started => b"&event=started",
        AnnounceEvent::Completed => b"&event=completed",
        AnnounceEvent::Stopped => b"&event=stopped",
    };
    out.extend_from_slice(event);
    if let Ok(n) = u64::try_from(a.numwant) {
        out.extend_from_slice(b"&numwant=");
        unsigned(out, n);
    }
    // Writing to a `Vec` can't fail.
    let _ = write!(out, "&key={:08X}&compact=1", a.key);
    more(out);
    finish_head(out, host);
}

/// Appends a whole `GET /scrape?info_hash=...&info_hash=...` request.
pub fn write_scrape(out: &mut Vec<u8>, host: &str, hashes: &[InfoHash]) {
    out.extend_from_slice(b"GET /scrape");
    for (i, h) in hashes.iter().enumerate() {
        out.extend_from_slice(if i == 0 {
            b"?info_hash="
        } else {
            b"&info_hash="
        });
        percent_encode(out, &h.0);
    }
    finish_head(out, host);
}

/// One response cut out of the bytes a connection received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: u16,
    /// The tracker will keep the connection open after this response.
    pub keep_alive: bool,
    pub body: &'a [u8],
    /// Bytes of head and body: where the next response starts.
    pub used: usize,
}

/// The result of looking for a response at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// More bytes are needed.
    Partial,
    Complete(Response<'a>),
    /// Not a response that can be framed: the connection's byte stream is
    /// lost and it must be closed.
    Bad(Invalid),
}

/// Finds the first response in `buf`. Only Content-Length framing is
/// accepted: trackers answer with short bodies of known length, and chunked
/// encoding, or a body read to the close, would say something is off.
/// `max_body` bounds what a connection buffers.
pub fn split_response(buf: &[u8], max_body: usize) -> Framed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let head = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Framed::Partial,
        Err(_) => return Framed::Bad(Invalid::HttpHead),
    };
    let (Some(version), Some(status)) = (r.version, r.code) else {
        return Framed::Bad(Invalid::HttpHead);
    };
    let mut keep_alive = version >= 1;
    let mut length = None;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
            match (n, length) {
                // Two different lengths: no way to know where the body ends.
                (Some(n), Some(m)) if n != m => return Framed::Bad(Invalid::HttpHead),
                (Some(n), _) => length = Some(n),
                (None, _) => return Framed::Bad(Invalid::HttpHead),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Framed::Bad(Invalid::HttpHead);
        } else if h.name.eq_ignore_ascii_case("connection") {
            // A comma-separated list; only the two tokens matter here.
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let Some(length) = length.filter(|&n| n <= max_body) else {
        return Framed::Bad(Invalid::HttpHead);
    };
    let Some(body) = buf.get(head..head + length) else {
        return Framed::Partial;
    };
    Framed::Complete(Response {
        status,
        keep_alive,
        body,
        used: head + length,
    })
}

/// Judges a framed response as the answer to a request that expected
/// `expect`. Peers may come as 6-byte `peers` and as 18-byte `peers6`
/// entries (BEP 7) whatever the family the tracker was reached over: a
/// dual-stack tracker may hand out both.
pub fn judge(r: &Response<'_>, expect: Expect) -> Verdict {
    if r.status != 200 {
        return Verdict::Invalid(Invalid::HttpStatus);
    }
    // aquatic_http 0.9 ends its bodies with CRLF and counts it in the
    // Content-Length. Clients read the dictionary and ignore such trailing
    // white space, so the check does too.
    let Some(entries) = bencode::Dict::new(r.body.trim_ascii_end()) else {
        return Verdict::Invalid(Invalid::Bencode);
    };
    match expect.kind {
        Kind::Announce => judge_announce(entries, expect.count),
        Kind::Scrape => judge_scrape(entries, expect.count),
        Kind::Connect => Verdict::Invalid(Invalid::WrongAction),
    }
}

fn judge_announce(entries: bencode::Dict<'_>, max: Option<u16>) -> Verdict {
    let mut interval = false;
    let mut peers: Option<usize> = None;
    let mut add_peers = |n: usize| *peers.get_or_insert(0) += n;
    for (key, value) in entries {
        match key {
            b"failure reason" => return Verdict::Error,
            b"interval" => {
                if bencode::int(value).is_none() {
                    return Verdict::Invalid(Invalid::MissingField);
                }
                interval = true;
            }
            // Compact (BEP 23), or the dictionary model of BEP 3 from a
            // tracker that does not do compact.
            b"peers" => match (bencode::bytes(value), bencode::List::new(value)) {
                (Some(b), _) if b.len() % 6 == 0 => add_peers(b.len() / 6),
                (Some(_), _) => return Verdict::Invalid(Invalid::PeerListLength),
                (None, Some(list)) => add_peers(list.count()),
                (None, None) => return Verdict::Invalid(Invalid::MissingField),
            },
            b"peers6" => match bencode::bytes(value) {
                Some(b) if b.len() % 18 == 0 => add_peers(b.len() / 18),
                Some(_) => return Verdict::Invalid(Invalid::PeerListLength),
                None => return Verdict::Invalid(Invalid::MissingField),
            },
            _ => {}
        }
    }
    match (interval, peers) {
        (true, Some(n)) => match max {
            Some(max) if n > usize::from(max) => Verdict::Invalid(Invalid::TooManyPeers),
            _ => Verdict::Announced { peers: n },
        },
        _ => Verdict::Invalid(Invalid::MissingField),
    }
}

fn judge_scrape(entries: bencode::Dict<'_>, asked: Option<u16>) -> Verdict {
    let mut files = None;
    for (key, value) in entries {
        match key {
            b"failure reason" => return Verdict::Error,
            b"files" => files = Some(value),
            _ => {}
        }
    }
    let Some(files) = files.and_then(bencode::Dict::new) else {
        return Verdict::Invalid(Invalid::MissingField);
    };
    // A tracker may leave out torrents it does not know (aquatic_http does),
    // so fewer files than asked for are fine; more are not.
    let mut n = 0usize;
    for (hash, stats) in files {
        if hash.len() != 20 {
            return Verdict::Invalid(Invalid::MissingField);
        }
        let Some(stats) = bencode::Dict::new(stats) else {
            return Verdict::Invalid(Invalid::MissingField);
        };
        let mut seen = 0u8;
        for (k, v) in stats {
            let bit = match k {
                b"complete" => 1,
                b"downloaded" => 2,
                b"incomplete" => 4,
                _ => 0,
            };
            if bit != 0 && bencode::int(v).is_some() {
                seen |= bit;
            }
        }
        if seen != 7 {
            return Verdict::Invalid(Invalid::MissingField);
        }
        n += 1;
    }
    match asked {
        Some(asked) if n > usize::from(asked) => Verdict::Invalid(Invalid::ScrapeLength),
        _ => Verdict::Scraped,
    }
}

#[cfg(test)]
mod tests;
