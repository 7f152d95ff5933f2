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
mod tests {
    use super::*;
    use swarmd::protocol::http::{
        self as server, AnnounceReply, HttpRequest, ParseSettings, PeerFormat, Query,
    };
    use swarmd::protocol::udp::ScrapeStats;
    use swarmd::protocol::PeerId;

    const HOST: &str = "127.0.0.1:6969";

    fn sample() -> Announce {
        Announce {
            info_hash: InfoHash(*b"\x00\x01 %&+/:=?AZa09-._~\xff"),
            peer_id: PeerId(*b"-SL0100-\x80abcdefgh\r\n\x00"),
            port: 51413,
            uploaded: 0,
            downloaded: 1 << 33,
            left: 12345,
            event: AnnounceEvent::Started,
            numwant: 30,
            key: 0x00ab_cdef,
        }
    }

    fn server_settings() -> ParseSettings {
        ParseSettings {
            max_head: 4096,
            max_scrape: 74,
            real_ip_header: None,
        }
    }

    /// Parses a request with swarmd's own server-side parser.
    fn parsed(req: &[u8]) -> HttpRequest {
        let (r, used) = server::parse(req, &server_settings())
            .expect("well-formed")
            .expect("complete");
        assert_eq!(used, req.len(), "one whole request head");
        r
    }

    #[test]
    fn announce_request_reads_back_field_for_field() {
        let a = sample();
        let mut req = Vec::new();
        write_announce(&mut req, HOST, &a);
        let head = std::str::from_utf8(&req).expect("ASCII");
        assert!(head.starts_with("GET /announce?info_hash=%00%01%20%25%26%2B%2F%3A%3D%3FAZa09-._~%FF&peer_id=-SL0100-%80"));
        assert!(head.ends_with(
            "&numwant=30&key=00ABCDEF&compact=1 HTTP/1.1\r\nHost: 127.0.0.1:6969\r\n\
             User-Agent: swarmd-load/0.1\r\n\r\n"
        ));
        let r = parsed(&req);
        assert!(r.keep_alive);
        let Query::Announce(q) = r.query else {
            panic!("not an announce: {:?}", r.query)
        };
        assert_eq!(q.info_hash, a.info_hash);
        assert_eq!(q.peer_id, a.peer_id);
        assert_eq!(
            (q.port, q.uploaded, q.downloaded, q.left),
            (51413, 0, 1 << 33, 12345)
        );
        assert_eq!(q.event, AnnounceEvent::Started);
        assert_eq!(q.numwant, Some(30));
        assert!(q.compact);
    }

    #[test]
    fn announce_request_events_and_default_numwant() {
        for (event, text) in [
            (AnnounceEvent::None, None),
            (AnnounceEvent::Completed, Some("completed")),
            (AnnounceEvent::Stopped, Some("stopped")),
        ] {
            let mut req = Vec::new();
            write_announce(
                &mut req,
                HOST,
                &Announce {
                    event,
                    numwant: -1,
                    ..sample()
                },
            );
            let head = String::from_utf8(req.clone()).expect("ASCII");
            assert!(!head.contains("numwant"));
            assert_eq!(head.contains("event="), text.is_some());
            let Query::Announce(q) = parsed(&req).query else {
                panic!("not an announce")
            };
            assert_eq!(q.event, event);
            assert_eq!(q.numwant, None);
        }
    }

    #[test]
    fn scrape_request_lists_every_hash() {
        let hashes: Vec<InfoHash> = (0..10u8).map(|i| InfoHash([i * 25; 20])).collect();
        let mut req = Vec::new();
        write_scrape(&mut req, HOST, &hashes);
        assert!(req.starts_with(b"GET /scrape?info_hash=%00%00"));
        assert_eq!(parsed(&req).query, Query::Scrape(hashes));
    }

    fn reply(body: &[u8], extra_headers: &str) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra_headers}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn announce_body(peers: usize, v6: bool) -> Vec<u8> {
        let r = AnnounceReply {
            interval: 1800,
            min_interval: 900,
            complete: 5,
            incomplete: 1,
        };
        let mut body = Vec::new();
        let entry = if v6 { 18 } else { 6 };
        let bytes = vec![9u8; peers * entry];
        server::write_announce_body(&mut body, &r, PeerFormat::Compact, v6, &bytes, &[]);
        body
    }

    fn expect(kind: Kind, count: Option<u16>) -> Expect {
        Expect { kind, count }
    }

    fn verdict(whole: &[u8], e: Expect) -> Verdict {
        match split_response(whole, 1 << 20) {
            Framed::Complete(r) => {
                assert_eq!(r.used, whole.len());
                judge(&r, e)
            }
            other => panic!("not framed: {other:?}"),
        }
    }

    /// Each body, answered with status 200, is judged `why` for `e`.
    fn each_judged(bodies: &[&[u8]], e: Expect, why: Invalid) {
        for body in bodies {
            let text = String::from_utf8_lossy(body);
            assert_eq!(
                verdict(&reply(body, ""), e),
                Verdict::Invalid(why),
                "{text}"
            );
        }
    }

    #[test]
    fn framing_by_content_length() {
        let mut two = Vec::new();
        server::write_response(&mut two, "200 OK", true, b"d8:intervali1e5:peers0:e");
        let first = two.len();
        server::write_response(&mut two, "200 OK", false, b"de");
        let Framed::Complete(r) = split_response(&two, 1024) else {
            panic!("first response")
        };
        assert_eq!((r.status, r.keep_alive, r.used), (200, true, first));
        assert_eq!(r.body, b"d8:intervali1e5:peers0:e");
        let Framed::Complete(r) = split_response(&two[first..], 1024) else {
            panic!("second response")
        };
        assert!(!r.keep_alive, "Connection: close");
        assert_eq!(r.body, b"de");
        // Every cut short of the end is partial.
        for cut in 0..first {
            assert_eq!(split_response(&two[..cut], 1024), Framed::Partial, "{cut}");
        }
        // HTTP/1.0 closes unless told otherwise (opentracker).
        let old = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nde";
        let Framed::Complete(r) = split_response(old, 1024) else {
            panic!("HTTP/1.0")
        };
        assert!(!r.keep_alive);
        let kept = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nde";
        assert!(matches!(split_response(kept, 1024), Framed::Complete(r) if r.keep_alive));
    }

    #[test]
    fn framing_refuses_what_it_cannot_delimit() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\nde"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nde",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
            b"\x00\x01garbage\r\n\r\n",
        ] {
            let why = String::from_utf8_lossy(bad);
            assert_eq!(
                split_response(bad, 1024),
                Framed::Bad(Invalid::HttpHead),
                "{why}"
            );
        }
    }

    #[test]
    fn announce_answers() {
        let e = expect(Kind::Announce, Some(30));
        for n in [0, 1, 30] {
            let whole = reply(&announce_body(n, false), "");
            assert_eq!(verdict(&whole, e), Verdict::Announced { peers: n });
        }
        let whole = reply(&announce_body(31, false), "");
        assert_eq!(verdict(&whole, e), Verdict::Invalid(Invalid::TooManyPeers));
        assert_eq!(
            verdict(&whole, expect(Kind::Announce, None)),
            Verdict::Announced { peers: 31 }
        );
        // BEP 7: an empty `peers` and 18-byte entries in `peers6`.
        let whole = reply(&announce_body(3, true), "");
        assert_eq!(verdict(&whole, e), Verdict::Announced { peers: 3 });
        let whole = reply(b"d8:intervali60e5:peers7:abcdefge", "");
        assert_eq!(
            verdict(&whole, e),
            Verdict::Invalid(Invalid::PeerListLength)
        );
        // Trailing white space, counted in the length (aquatic_http), is
        // tolerated; anything else after the dictionary is not.
        let padded = b"d8:intervali120e5:peers0:6:peers60:e\r\n";
        assert_eq!(
            verdict(&reply(padded, ""), e),
            Verdict::Announced { peers: 0 }
        );
        assert_eq!(
            verdict(&reply(b"d8:intervali120e5:peers0:ex", ""), e),
            Verdict::Invalid(Invalid::Bencode)
        );
        // The dictionary model counts as well.
        let dicts = b"d8:intervali60e5:peersld2:ip9:127.0.0.14:porti1eeee";
        assert_eq!(
            verdict(&reply(dicts, ""), e),
            Verdict::Announced { peers: 1 }
        );
        each_judged(
            &[
                &b"d5:peers0:e"[..],
                b"d8:intervali60ee",
                b"d8:interval2:605:peers0:e",
            ],
            e,
            Invalid::MissingField,
        );
    }

    #[test]
    fn failures_and_bad_bodies() {
        let e = expect(Kind::Announce, Some(30));
        let mut body = Vec::new();
        server::write_failure_body(&mut body, "unregistered torrent");
        assert_eq!(verdict(&reply(&body, ""), e), Verdict::Error);
        assert_eq!(
            verdict(&reply(&body, ""), expect(Kind::Scrape, Some(2))),
            Verdict::Error
        );
        let mut not_found = Vec::new();
        server::write_response(&mut not_found, "404 Not Found", true, &body);
        assert_eq!(
            verdict(&not_found, e),
            Verdict::Invalid(Invalid::HttpStatus)
        );
        each_judged(
            &[
                &b""[..],
                b"le",
                b"d8:intervali60e5:peers0:",
                b"d8:intervali60e5:peers0:ee",
                b"d8:intervali060e5:peers0:e",
                b"di1ei2ee",
                b"d8:intervale",
                b"d5:peers99:e",
            ],
            e,
            Invalid::Bencode,
        );
        // Too deep to follow.
        let deep = format!("d1:x{}{}e", "l".repeat(40), "e".repeat(40));
        assert_eq!(
            verdict(&reply(deep.as_bytes(), ""), e),
            Verdict::Invalid(Invalid::Bencode)
        );
    }

    #[test]
    fn scrape_answers() {
        let mut files: Vec<(InfoHash, ScrapeStats)> = (0..10u8)
            .map(|i| {
                let s = ScrapeStats {
                    seeders: i.into(),
                    completed: 2,
                    leechers: 3,
                };
                (InfoHash([i; 20]), s)
            })
            .collect();
        let mut body = Vec::new();
        server::write_scrape_body(&mut body, &mut files);
        let whole = reply(&body, "");
        assert_eq!(
            verdict(&whole, expect(Kind::Scrape, Some(10))),
            Verdict::Scraped
        );
        assert_eq!(
            verdict(&whole, expect(Kind::Scrape, Some(9))),
            Verdict::Invalid(Invalid::ScrapeLength)
        );
        // Unknown torrents left out: fewer files than asked is fine.
        assert_eq!(
            verdict(&reply(b"d5:filesdee", ""), expect(Kind::Scrape, Some(3))),
            Verdict::Scraped
        );
        let short_key = b"d5:filesd3:abcd8:completei1e10:downloadedi0e10:incompletei0eeee";
        let no_downloaded = format!(
            "d5:filesd20:{}d8:completei1e10:incompletei0eeee",
            "a".repeat(20)
        );
        each_judged(
            &[
                &b"d8:intervali60ee"[..],
                b"d5:files0:e",
                short_key,
                no_downloaded.as_bytes(),
            ],
            expect(Kind::Scrape, Some(3)),
            Invalid::MissingField,
        );
    }

    #[test]
    fn bencode_reader_never_panics_on_prefixes_and_junk() {
        let body = announce_body(30, false);
        for cut in 0..body.len() {
            assert!(bencode::Dict::new(&body[..cut]).is_none(), "{cut}");
        }
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let junk: Vec<u8> = (0..len)
                .map(|_| b"dlie0123456789:-x"[rng.usize(0..17)])
                .collect();
            if let Some(d) = bencode::Dict::new(&junk) {
                for (k, v) in d {
                    let _ = (bencode::int(v), bencode::bytes(v), bencode::List::new(v), k);
                }
            }
            let _ = split_response(&junk, 64);
        }
    }
}
