//! The BEP 15/41 codec's tests: known packets, round trips, and decoding
//! that never panics on any input.

use super::*;
use proptest::prelude::*;

/// An announce with every field set, and `url_data`; for other modules'
/// tests too.
pub(crate) fn announce(url_data: Vec<u8>) -> AnnounceRequest {
    AnnounceRequest {
        connection_id: ConnectionId(0x1122_3344_5566_7788),
        transaction_id: TransactionId(7),
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([2; 20]),
        downloaded: 3,
        left: 4,
        uploaded: 5,
        event: AnnounceEvent::Started,
        ip_address: 0,
        key: 9,
        num_want: -1,
        port: 6881,
        url_data,
    }
}

#[test]
fn connect_round_trip() {
    let req = Request::Connect(ConnectRequest {
        transaction_id: TransactionId(42),
    });
    let mut buf = Vec::new();
    req.write(&mut buf);
    assert_eq!(buf.len(), CONNECT_LEN);
    assert_eq!(Request::parse(&buf, 74), Ok(req));
}

#[test]
fn connect_without_magic_is_dropped() {
    let mut buf = Vec::new();
    Request::Connect(ConnectRequest {
        transaction_id: TransactionId(1),
    })
    .write(&mut buf);
    buf[0] ^= 1;
    assert_eq!(
        Request::parse(&buf, 74),
        Err(ParseError::Drop(DropReason::BadProtocolId))
    );
}

#[test]
fn announce_fields_at_their_offsets() {
    let req = announce(Vec::new());
    let mut buf = Vec::new();
    Request::Announce(req.clone()).write(&mut buf);
    assert_eq!(buf.len(), ANNOUNCE_LEN);
    assert_eq!(&buf[96..98], &6881u16.to_be_bytes());
    assert_eq!(&buf[80..84], &2u32.to_be_bytes()); // started
    assert_eq!(Request::parse(&buf, 74), Ok(Request::Announce(req)));
}

#[test]
fn bep41_url_data_is_concatenated_and_unknown_options_skipped() {
    let mut buf = Vec::new();
    Request::Announce(announce(Vec::new())).write(&mut buf);
    buf.extend_from_slice(&[OPTION_NOP, OPTION_URL_DATA, 4]);
    buf.extend_from_slice(b"/ann");
    buf.extend_from_slice(&[0x7f, 2, 0xaa, 0xbb]); // unknown option, skipped
    buf.extend_from_slice(&[OPTION_URL_DATA, 7]);
    buf.extend_from_slice(b"ounce/k");
    buf.extend_from_slice(&[OPTION_END, 0xff, 0xff]); // after end: ignored
    match Request::parse(&buf, 74) {
        Ok(Request::Announce(a)) => assert_eq!(a.url_data, b"/announce/k"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn truncated_option_is_a_sendable_error() {
    let mut buf = Vec::new();
    Request::Announce(announce(Vec::new())).write(&mut buf);
    buf.extend_from_slice(&[OPTION_URL_DATA, 10, b'/']);
    assert!(matches!(
        Request::parse(&buf, 74),
        Err(ParseError::Sendable {
            message: "bad options",
            ..
        })
    ));
    // A length byte missing entirely is the same.
    buf.truncate(ANNOUNCE_LEN + 1);
    assert!(matches!(
        Request::parse(&buf, 74),
        Err(ParseError::Sendable { .. })
    ));
}

#[test]
fn scrape_limits() {
    let req = ScrapeRequest {
        connection_id: ConnectionId(5),
        transaction_id: TransactionId(6),
        info_hashes: (0..74).map(|i| InfoHash([i as u8; 20])).collect(),
    };
    let mut buf = Vec::new();
    Request::Scrape(req.clone()).write(&mut buf);
    assert_eq!(Request::parse(&buf, 74), Ok(Request::Scrape(req)));
    assert!(matches!(
        Request::parse(&buf, 73),
        Err(ParseError::Sendable {
            message: "too many hashes",
            ..
        })
    ));
    assert!(matches!(
        Request::parse(&buf[..16], 74),
        Err(ParseError::Sendable { .. })
    ));
}

#[test]
fn error_never_longer_than_request() {
    let mut out = Vec::new();
    write_error(&mut out, TransactionId(1), "a rather long message", 16);
    assert_eq!(out.len(), 16);
    out.clear();
    write_error(&mut out, TransactionId(1), "short", 100);
    assert_eq!(out.len(), 13);
}

fn arb_request() -> impl Strategy<Value = Request> {
    let connect = any::<u32>().prop_map(|t| {
        Request::Connect(ConnectRequest {
            transaction_id: TransactionId(t),
        })
    });
    let announce = (
        any::<u64>(),
        any::<u32>(),
        any::<[u8; 20]>(),
        any::<[u8; 20]>(),
        any::<(u64, u64, u64)>(),
        0u32..4,
        any::<(u32, u32, i32, u16)>(),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(c, t, ih, pid, (d, l, u), ev, (ip, key, nw, port), url)| {
            Request::Announce(AnnounceRequest {
                connection_id: ConnectionId(c),
                transaction_id: TransactionId(t),
                info_hash: InfoHash(ih),
                peer_id: PeerId(pid),
                downloaded: d,
                left: l,
                uploaded: u,
                event: AnnounceEvent::from_udp(ev).unwrap_or_default(),
                ip_address: ip,
                key,
                num_want: nw,
                port,
                url_data: url,
            })
        });
    let scrape = (
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec(any::<[u8; 20]>(), 1..=74),
    )
        .prop_map(|(c, t, hs)| {
            Request::Scrape(ScrapeRequest {
                connection_id: ConnectionId(c),
                transaction_id: TransactionId(t),
                info_hashes: hs.into_iter().map(InfoHash).collect(),
            })
        });
    prop_oneof![connect, announce, scrape]
}

fn arb_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(t, c)| Response::Connect {
            transaction_id: TransactionId(t),
            connection_id: ConnectionId(c)
        }),
        (
            any::<(u32, u32, u32, u32)>(),
            proptest::collection::vec(any::<u8>(), 0..74 * 18)
        )
            .prop_map(|((t, i, l, s), peers)| Response::Announce {
                transaction_id: TransactionId(t),
                interval: i,
                leechers: l,
                seeders: s,
                peers
            }),
        (
            any::<u32>(),
            proptest::collection::vec(any::<(u32, u32, u32)>(), 0..74)
        )
            .prop_map(|(t, v)| Response::Scrape {
                transaction_id: TransactionId(t),
                stats: v
                    .into_iter()
                    .map(|(s, c, l)| ScrapeStats {
                        seeders: s,
                        completed: c,
                        leechers: l
                    })
                    .collect()
            }),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..100)).prop_map(|(t, m)| {
            Response::Error {
                transaction_id: TransactionId(t),
                message: m,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn request_round_trip(req in arb_request()) {
        let mut buf = Vec::new();
        req.write(&mut buf);
        prop_assert_eq!(Request::parse(&buf, 74), Ok(req));
    }

    #[test]
    fn response_round_trip(resp in arb_response()) {
        let mut buf = Vec::new();
        resp.write(&mut buf);
        prop_assert_eq!(Response::parse(&buf), Some(resp));
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Request::parse(&bytes, 74);
        let _ = Response::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_announce_like(
        tail in proptest::collection::vec(any::<u8>(), 0..700),
        action in 0u32..5,
    ) {
        let mut buf = vec![0u8; 16];
        buf[8..12].copy_from_slice(&action.to_be_bytes());
        buf.extend_from_slice(&[0u8; 82]);
        buf.extend_from_slice(&tail);
        let _ = Request::parse(&buf, 74);
    }

    #[test]
    fn url_data_tail_is_the_end_of_what_parse_reads(
        tail in proptest::collection::vec(any::<u8>(), 0..700),
        data in proptest::collection::vec(any::<u8>(), 1..700),
    ) {
        let mut out = [0u8; 32];
        // Any bytes after an announce's fixed part: when it finds a tail,
        // it is the end of the URL data parse reads.
        let mut buf = Vec::new();
        Request::Announce(announce(Vec::new())).write(&mut buf);
        buf.extend_from_slice(&tail);
        if let Some(n) = url_data_tail(&buf, &mut out) {
            let Ok(Request::Announce(a)) = Request::parse(&buf, 74) else {
                return Err(TestCaseError::fail("a tail of a datagram parse refuses"));
            };
            prop_assert!(n <= 32 && n <= a.url_data.len());
            prop_assert_eq!(&out[32 - n..], &a.url_data[a.url_data.len() - n..]);
        }
        // URL data as clients write it (255-byte options): always found.
        buf.clear();
        Request::Announce(announce(data.clone())).write(&mut buf);
        let n = url_data_tail(&buf, &mut out);
        prop_assert_eq!(n, Some(data.len().min(32)));
        prop_assert_eq!(&out[32 - data.len().min(32)..], &data[data.len() - data.len().min(32)..]);
    }
}
