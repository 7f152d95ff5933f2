//! The HTTP tracker codec's tests: request heads and queries, bencoded
//! answers, and decoding that never panics on any input.

use super::*;
use proptest::prelude::*;

fn settings() -> ParseSettings {
    ParseSettings {
        max_head: 4096,
        max_scrape: 74,
        real_ip_header: Some("x-real-ip".into()),
    }
}

fn announce_url(extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port=6881&uploaded=1&downloaded=2&left=3{extra}",
        url_encode(&[0xab; 20]),
        url_encode(b"-TR3000-abcdefghijkl")
    )
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

#[test]
fn percent_encoding_keeps_only_unreserved_characters() {
    let mut out = Vec::new();
    percent_encode(&mut out, b"aZ09-._~ %+&=\x00\xff/");
    assert_eq!(out, b"aZ09-._~%20%25%2B%26%3D%00%FF%2F");
    assert_eq!(url_encode(b"a b"), "a%20b");
}

#[test]
fn announce_fields() {
    let req = get(&announce_url(
        "&event=started&numwant=20&compact=0&no_peer_id=1&key=k1&ip=10.0.0.1",
    ));
    let (r, used) = parse(&req, &settings()).unwrap().unwrap();
    assert_eq!(used, req.len());
    assert!(r.keep_alive);
    let Query::Announce(a) = r.query else {
        panic!()
    };
    assert_eq!(a.info_hash, InfoHash([0xab; 20]));
    assert_eq!(&a.peer_id.0, b"-TR3000-abcdefghijkl");
    assert_eq!((a.port, a.uploaded, a.downloaded, a.left), (6881, 1, 2, 3));
    assert_eq!(a.event, AnnounceEvent::Started);
    assert_eq!(a.numwant, Some(20));
    assert!(!a.compact && a.no_peer_id);
    assert_eq!(a.ip, Some("10.0.0.1".parse().unwrap()));
}

#[test]
fn partial_and_oversized_heads() {
    let req = get(&announce_url(""));
    assert_eq!(parse(&req[..req.len() - 2], &settings()), Ok(None));
    let mut s = settings();
    s.max_head = 64;
    assert_eq!(parse(&req, &s), Err(HttpError::HeadTooLarge));
    assert_eq!(parse(&[b'G'; 100], &s), Err(HttpError::HeadTooLarge));
    assert_eq!(
        parse(b"\x01\x02 / HTTP/1.1\r\n\r\n", &s),
        Err(HttpError::BadRequest)
    );
}

#[test]
fn failures() {
    let f = |path: &str| parse(&get(path), &settings());
    assert_eq!(f("/nothing"), Err(HttpError::NotFound));
    assert_eq!(
        f("/announce?peer_id=x"),
        Err(HttpError::Failure("invalid peer_id"))
    );
    assert_eq!(
        f(&format!("/announce?info_hash={}", url_encode(&[1; 19]))),
        Err(HttpError::Failure("invalid info_hash"))
    );
    assert_eq!(
        f(&announce_url("").replace("port=6881", "port=0")),
        Err(HttpError::Failure("invalid port"))
    );
    assert_eq!(
        f(&announce_url("&event=bogus")),
        Err(HttpError::Failure("invalid event"))
    );
    assert_eq!(
        f("/scrape"),
        Err(HttpError::Failure("scrape needs info_hash"))
    );
    let post = b"POST /announce HTTP/1.1\r\n\r\n";
    assert_eq!(parse(post, &settings()), Err(HttpError::MethodNotAllowed));
}

#[test]
fn scrape_hashes_and_limit() {
    let q = (0..3)
        .map(|i| format!("info_hash={}", url_encode(&[i; 20])))
        .collect::<Vec<_>>()
        .join("&");
    let (r, _) = parse(&get(&format!("/scrape?{q}")), &settings())
        .unwrap()
        .unwrap();
    assert_eq!(
        r.query,
        Query::Scrape((0..3).map(|i| InfoHash([i; 20])).collect())
    );
    let mut s = settings();
    s.max_scrape = 2;
    assert_eq!(
        parse(&get(&format!("/scrape?{q}")), &s),
        Err(HttpError::Failure("too many info_hash values"))
    );
}

#[test]
fn connection_and_proxy_headers() {
    let req = format!(
        "GET {} HTTP/1.0\r\nX-Real-IP: 192.0.2.1\r\n\r\n",
        announce_url("")
    );
    let (r, _) = parse(req.as_bytes(), &settings()).unwrap().unwrap();
    assert!(!r.keep_alive, "HTTP/1.0 closes by default");
    assert_eq!(r.forwarded_for.as_deref(), Some("192.0.2.1"));
    let req = format!(
        "GET {} HTTP/1.1\r\nConnection: close\r\n\r\n",
        announce_url("")
    );
    let (r, _) = parse(req.as_bytes(), &settings()).unwrap().unwrap();
    assert!(!r.keep_alive);
}

#[test]
fn compact_is_advisory_and_ids_are_never_left_out_unasked() {
    use PeerFormat::{Compact, Dictionary};
    // (asked, no_peer_id, ids at hand) -> answer
    for (asked, no_peer_id, ids, answer) in [
        (Compact, false, false, Compact),
        (Compact, true, true, Compact),
        (Dictionary, false, true, Dictionary),
        (Dictionary, true, true, Dictionary),
        (Dictionary, true, false, Dictionary),
        (Dictionary, false, false, Compact),
    ] {
        assert_eq!(
            asked.answer(no_peer_id, ids),
            answer,
            "{asked:?} no_peer_id={no_peer_id} ids={ids}"
        );
    }
}

#[test]
fn bodies() {
    let reply = AnnounceReply {
        interval: 1800,
        min_interval: 900,
        complete: 2,
        incomplete: 1,
    };
    let mut out = Vec::new();
    write_announce_body(
        &mut out,
        &reply,
        PeerFormat::Compact,
        false,
        &[127, 0, 0, 1, 0x1a, 0xe1],
        &[],
    );
    assert_eq!(
        out,
        b"d8:completei2e10:incompletei1e8:intervali1800e12:min intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe1e"
    );
    out.clear();
    write_announce_body(
        &mut out,
        &reply,
        PeerFormat::Dictionary,
        false,
        &[127, 0, 0, 1, 0x1a, 0xe1],
        &[b'x'; 20],
    );
    assert!(
        out.ends_with(b"5:peersld2:ip9:127.0.0.17:peer id20:xxxxxxxxxxxxxxxxxxxx4:porti6881eeee")
    );
    out.clear();
    let two = [10, 0, 255, 99, 0, 1, 1, 2, 3, 4, 0, 2];
    write_announce_body(&mut out, &reply, PeerFormat::Dictionary, false, &two, &[]);
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(text.contains("2:ip11:10.0.255.994:porti1e"), "{text}");
    assert!(text.contains("2:ip7:1.2.3.44:porti2e"), "{text}");
    out.clear();
    let mut files = vec![
        (
            InfoHash([2; 20]),
            ScrapeStats {
                seeders: 1,
                completed: 2,
                leechers: 3,
            },
        ),
        (InfoHash([1; 20]), ScrapeStats::default()),
    ];
    write_scrape_body(&mut out, &mut files);
    let mut expect = b"d5:filesd20:".to_vec();
    expect.extend_from_slice(&[1; 20]);
    expect.extend_from_slice(b"d8:completei0e10:downloadedi0e10:incompletei0ee20:");
    expect.extend_from_slice(&[2; 20]);
    expect.extend_from_slice(b"d8:completei1e10:downloadedi2e10:incompletei3eeee");
    assert_eq!(out, expect);
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = parse(&bytes, &settings());
    }

    #[test]
    fn parse_never_panics_on_query_like(q in "[a-z_=&%0-9A-F+]{0,400}") {
        let _ = parse(&get(&format!("/announce?{q}")), &settings());
        let _ = parse(&get(&format!("/scrape?{q}")), &settings());
    }

    #[test]
    fn binary_fields_round_trip(ih in any::<[u8; 20]>(), pid in any::<[u8; 20]>(), port in 1u16..) {
        let path = format!("/announce?info_hash={}&peer_id={}&port={port}&left=0", url_encode(&ih), url_encode(&pid));
        let (r, _) = parse(&get(&path), &settings()).unwrap().unwrap();
        let Query::Announce(a) = r.query else { panic!() };
        prop_assert_eq!(a.info_hash.0, ih);
        prop_assert_eq!(a.peer_id.0, pid);
        prop_assert_eq!(a.port, port);
    }
}
