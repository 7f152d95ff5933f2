//! HTTP request head and query decode on any bytes, under several settings:
//! it never panics, it honours the head and scrape limits, what it accepts
//! is a whole head it can read again alone, an announce it accepts comes
//! back the same when written as a query again, and every error reply the
//! tracker would send for it is small.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmd::protocol::http::{self, url_encode, AnnounceQuery, HttpError, ParseSettings, Query};
use swarmd::protocol::AnnounceEvent;

/// Error replies to requests that did not parse are at most this long (a
/// 400 to a one-byte request is still this small).
const MAX_ERROR_REPLY: usize = 512;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the settings; the rest is what a client sent.
    let Some((&pick, buf)) = data.split_first() else {
        return;
    };
    let settings = ParseSettings {
        max_head: [16, 200, 1024, 4096][(pick & 3) as usize],
        max_scrape: [1, 3, 74, 200][(pick >> 2 & 3) as usize],
        real_ip_header: match pick >> 4 & 3 {
            0 => None,
            1 => Some("x-real-ip".into()),
            _ => Some("x-forwarded-for".into()),
        },
    };
    match http::parse(buf, &settings) {
        Ok(None) => assert!(
            buf.len() <= settings.max_head,
            "incomplete head over the limit"
        ),
        Ok(Some((req, used))) => {
            assert!(used <= buf.len() && used <= settings.max_head);
            // The head alone parses to the same request: nothing after
            // `used` (a pipelined request) changed it.
            assert_eq!(
                http::parse(&buf[..used], &settings),
                Ok(Some((req.clone(), used)))
            );
            match &req.query {
                Query::Scrape(hashes) => {
                    assert!(!hashes.is_empty() && hashes.len() <= settings.max_scrape)
                }
                Query::Announce(a) => {
                    assert_ne!(a.port, 0);
                    round_trip(a, &settings);
                }
            }
        }
        Err(e) => {
            let reply = error_reply(e);
            assert!(reply.len() <= MAX_ERROR_REPLY, "{} bytes", reply.len());
        }
    }
});

/// Writes the announce as a query and parses it again.
fn round_trip(a: &AnnounceQuery, settings: &ParseSettings) {
    let mut q = format!(
        "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact={}&no_peer_id={}",
        url_encode(&a.info_hash.0),
        url_encode(&a.peer_id.0),
        a.port,
        a.uploaded,
        a.downloaded,
        a.left,
        a.compact as u8,
        a.no_peer_id as u8,
    );
    let event = match a.event {
        AnnounceEvent::None => None,
        AnnounceEvent::Started => Some("started"),
        AnnounceEvent::Completed => Some("completed"),
        AnnounceEvent::Stopped => Some("stopped"),
    };
    if let Some(e) = event {
        q += &format!("&event={e}");
    }
    if let Some(n) = a.numwant {
        q += &format!("&numwant={n}");
    }
    if let Some(ip) = a.ip {
        q += &format!("&ip={}", url_encode(ip.to_string().as_bytes()));
    }
    let head = format!("GET /announce?{q} HTTP/1.1\r\n\r\n");
    let big = ParseSettings {
        max_head: head.len(),
        ..settings.clone()
    };
    match http::parse(head.as_bytes(), &big) {
        Ok(Some((again, _))) => assert_eq!(again.query, Query::Announce(a.clone())),
        other => panic!("announce written again does not parse: {other:?}\n{head}"),
    }
}

/// The whole reply the tracker sends for a request that failed to parse
/// (status line, headers and bencoded body), as the socket worker makes it.
fn error_reply(e: HttpError) -> Vec<u8> {
    let (status, reason) = match e {
        HttpError::Failure(reason) => ("200 OK", reason),
        HttpError::BadRequest => ("400 Bad Request", "bad request"),
        HttpError::HeadTooLarge => (
            "431 Request Header Fields Too Large",
            "request head too large",
        ),
        HttpError::MethodNotAllowed => ("405 Method Not Allowed", "only GET"),
        HttpError::NotFound => ("404 Not Found", "not found: use /announce or /scrape"),
    };
    let mut body = Vec::new();
    http::write_failure_body(&mut body, reason);
    let mut out = Vec::new();
    http::write_response(&mut out, status, false, &body);
    out
}
