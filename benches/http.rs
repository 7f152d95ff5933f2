//! Criterion benches of the HTTP codec: parsing a client's request head
//! (announce, and a scrape of 10 hashes), and writing whole responses
//! (bencoded body and HTTP head, as a socket worker does) for announces with
//! 0, 30 and 74 peers, compact and dictionary, and a scrape of 10 files.
//! Fixed inputs through `black_box`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swarmd::protocol::http::{self, url_encode, AnnounceReply, ParseSettings, PeerFormat, Query};
use swarmd::protocol::udp::ScrapeStats;
use swarmd::protocol::InfoHash;

/// The limits a default swarmd runs with.
fn settings() -> ParseSettings {
    ParseSettings {
        max_head: 4096,
        max_scrape: 74,
        real_ip_header: None,
    }
}

fn hash(i: u8) -> [u8; 20] {
    let mut h = [0u8; 20];
    for (k, b) in h.iter_mut().enumerate() {
        *b = i.wrapping_mul(37).wrapping_add(k as u8 * 101);
    }
    h
}

/// An announce as libtorrent 2.0 sends it: binary info hash and peer id,
/// percent-encoded, the usual parameters and headers.
fn announce_head() -> Vec<u8> {
    format!(
        "GET /announce?info_hash={}&peer_id={}&port=6881&uploaded=0&downloaded=0\
         &left=734003200&corrupt=0&key=5A3C9E21&event=started&numwant=200&compact=1\
         &no_peer_id=1&supportcrypto=1&redundant=0 HTTP/1.1\r\n\
         Host: tracker.example.org:6969\r\n\
         User-Agent: libtorrent/2.0.8.0\r\n\
         Accept-Encoding: gzip\r\n\r\n",
        url_encode(&hash(1)),
        url_encode(b"-LT2080-\x8f\x12k\xa4\x00Zq\xee\x03\x9c\xd1\x7f"),
    )
    .into_bytes()
}

fn scrape_head(n: u8) -> Vec<u8> {
    let hashes: Vec<String> = (0..n)
        .map(|i| format!("info_hash={}", url_encode(&hash(i))))
        .collect();
    format!(
        "GET /scrape?{} HTTP/1.1\r\nHost: tracker.example.org:6969\r\n\
         User-Agent: libtorrent/2.0.8.0\r\nAccept-Encoding: gzip\r\n\r\n",
        hashes.join("&")
    )
    .into_bytes()
}

fn parse(c: &mut Criterion) {
    let s = settings();
    let announce = announce_head();
    let scrape = scrape_head(10);
    // The inputs must be what they claim to be, or the bench measures an
    // early failure.
    assert!(matches!(
        http::parse(&announce, &s),
        Ok(Some((r, _))) if matches!(r.query, Query::Announce(_))
    ));
    assert!(matches!(
        http::parse(&scrape, &s),
        Ok(Some((r, _))) if matches!(&r.query, Query::Scrape(h) if h.len() == 10)
    ));
    let mut g = c.benchmark_group("http parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("announce", |b| {
        b.iter(|| http::parse(black_box(&announce), black_box(&s)))
    });
    g.bench_function("scrape of 10", |b| {
        b.iter(|| http::parse(black_box(&scrape), black_box(&s)))
    });
    g.finish();
}

/// `n` compact IPv4 peers.
fn peers(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let ip = 0x0a00_0000u32 + (i as u32) * 7919;
            let port = 6881u16.wrapping_add(i as u16);
            let mut p = [0u8; 6];
            p[..4].copy_from_slice(&ip.to_be_bytes());
            p[4..].copy_from_slice(&port.to_be_bytes());
            p
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let reply = AnnounceReply {
        interval: 1800,
        min_interval: 900,
        complete: 412,
        incomplete: 37,
    };
    let mut g = c.benchmark_group("http encode");
    g.throughput(Throughput::Elements(1));
    let mut body = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    for (format, name) in [
        (PeerFormat::Compact, "announce compact"),
        (PeerFormat::Dictionary, "announce dictionary"),
    ] {
        for n in [0, 30, 74] {
            let p = peers(n);
            g.bench_with_input(BenchmarkId::new(name, n), &p, |b, p| {
                b.iter(|| {
                    body.clear();
                    http::write_announce_body(
                        &mut body,
                        black_box(&reply),
                        format,
                        false,
                        black_box(p),
                        &[],
                    );
                    out.clear();
                    http::write_response(&mut out, "200 OK", true, &body);
                    black_box(&out);
                })
            });
        }
    }
    // As asked for: unsorted, so the sort the writer does is measured too.
    let asked: Vec<(InfoHash, ScrapeStats)> = (0..10u8)
        .map(|i| {
            let stats = ScrapeStats {
                seeders: 100 + u32::from(i),
                completed: 1000 * u32::from(i),
                leechers: u32::from(i),
            };
            (InfoHash(hash(i)), stats)
        })
        .collect();
    let mut files = asked.clone();
    g.bench_function(BenchmarkId::new("scrape", "10 files"), |b| {
        b.iter(|| {
            files.copy_from_slice(black_box(&asked));
            body.clear();
            http::write_scrape_body(&mut body, &mut files);
            out.clear();
            http::write_response(&mut out, "200 OK", true, &body);
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, parse, encode);
criterion_main!(benches);
