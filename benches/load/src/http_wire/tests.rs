//! The HTTP wire's tests: request heads, framing by Content-Length, and the verdicts on answers.

use super::*;
use swarmd::protocol::http::{
    self as server, AnnounceReply, HttpRequest, ParseSettings, PeerFormat, Query,
};
use swarmd::protocol::udp::ScrapeStats;
use swarmd::protocol::PeerId;

const HOST: &str = "127.0.0.1:6969";

fn sample() -> Announce {
    Announce {
        torrent: 0,
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
    assert!(head.starts_with(
        "GET /announce?info_hash=%00%01%20%25%26%2B%2F%3A%3D%3FAZa09-._~%FF&peer_id=-SL0100-%80"
    ));
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
