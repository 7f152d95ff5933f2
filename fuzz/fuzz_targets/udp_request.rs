//! UDP decode (BEP 15 with BEP 41 options) on any datagram: it never panics,
//! what it accepts has the shape BEP 15 gives it, what it accepts survives
//! being written back and read again, and an error it allows an answer to
//! is answered with no more bytes than came in.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmd::protocol::udp::{
    self, ParseError, Request, Response, ANNOUNCE_LEN, PROTOCOL_ID, SCRAPE_HEADER_LEN,
};

/// The default `udp.max_scrape_torrents`; a second, tiny limit is tried too.
const LIMITS: [usize; 2] = [74, 2];

fuzz_target!(|data: &[u8]| {
    let _ = udp::url_data_tail(data, &mut [0u8; 32]);
    for limit in LIMITS {
        check_request(data, limit);
    }
    check_response(data);
});

fn check_request(data: &[u8], limit: usize) {
    match Request::parse(data, limit) {
        Ok(req) => {
            match &req {
                Request::Connect(_) => {
                    assert!(data.len() >= 16);
                    assert_eq!(&data[..8], &PROTOCOL_ID.to_be_bytes());
                }
                Request::Announce(a) => {
                    assert!(data.len() >= ANNOUNCE_LEN);
                    // URL data comes out of the options, so never more of it
                    // than there were option bytes.
                    assert!(a.url_data.len() <= data.len() - ANNOUNCE_LEN);
                    // The tail read in place for the token prefetch is the
                    // end of the same URL data.
                    let mut tail = [0u8; 32];
                    if let Some(n) = udp::url_data_tail(data, &mut tail) {
                        assert!(n <= 32 && n <= a.url_data.len());
                        assert_eq!(&tail[32 - n..], &a.url_data[a.url_data.len() - n..]);
                    }
                }
                Request::Scrape(s) => {
                    assert!(!s.info_hashes.is_empty() && s.info_hashes.len() <= limit);
                    assert_eq!(s.info_hashes.len(), (data.len() - SCRAPE_HEADER_LEN) / 20);
                }
            }
            let mut written = Vec::new();
            req.write(&mut written);
            // The fixed part is written back byte for byte. Options are
            // written again in a normal form (URL data in 255-byte options,
            // then end-of-options), so only the parsed values can be
            // compared past it.
            let fixed = match &req {
                Request::Connect(_) => 16,
                Request::Announce(_) => ANNOUNCE_LEN,
                Request::Scrape(s) => SCRAPE_HEADER_LEN + 20 * s.info_hashes.len(),
            };
            assert_eq!(&written[..fixed], &data[..fixed]);
            assert_eq!(Request::parse(&written, limit), Ok(req));
        }
        Err(ParseError::Drop(_)) => {}
        Err(ParseError::Sendable {
            transaction_id,
            message,
            ..
        }) => {
            // A sendable error needs the full 16-byte header it echoes.
            assert!(data.len() >= 16);
            assert!(!message.is_empty());
            let mut out = Vec::new();
            udp::write_error(&mut out, transaction_id, message, data.len());
            assert!(out.len() <= data.len(), "amplifying error reply");
            assert!(matches!(
                Response::parse(&out),
                Some(Response::Error { .. })
            ));
        }
    }
}

/// Responses (decoded by the load generator and the tests) round-trip byte
/// for byte.
fn check_response(data: &[u8]) {
    if let Some(resp) = Response::parse(data) {
        let mut written = Vec::new();
        resp.write(&mut written);
        assert_eq!(written, data);
    }
}
