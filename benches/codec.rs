//! Criterion benches of the UDP codec and the connection-id pair: fixed
//! packets through `black_box`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swarmd::connection_id::ConnectionIds;
use swarmd::protocol::udp::{
    self, AnnounceRequest, ConnectRequest, ConnectionId, Request, ScrapeRequest, TransactionId,
};
use swarmd::protocol::{AnnounceEvent, InfoHash, PeerId};

fn encoded(req: Request) -> Vec<u8> {
    let mut buf = Vec::new();
    req.write(&mut buf);
    buf
}

fn decode(c: &mut Criterion) {
    let connect = encoded(Request::Connect(ConnectRequest {
        transaction_id: TransactionId(1),
    }));
    let announce = encoded(Request::Announce(AnnounceRequest {
        connection_id: ConnectionId(99),
        transaction_id: TransactionId(1),
        info_hash: InfoHash([3; 20]),
        peer_id: PeerId([4; 20]),
        downloaded: 1,
        left: 2,
        uploaded: 3,
        event: AnnounceEvent::Started,
        ip_address: 0,
        key: 5,
        num_want: 30,
        port: 6881,
        url_data: Vec::new(),
    }));
    let scrape = |n: usize| {
        encoded(Request::Scrape(ScrapeRequest {
            connection_id: ConnectionId(99),
            transaction_id: TransactionId(1),
            info_hashes: (0..n).map(|i| InfoHash([i as u8; 20])).collect(),
        }))
    };
    let mut g = c.benchmark_group("udp decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("connect", |b| {
        b.iter(|| Request::parse(black_box(&connect), 74))
    });
    g.bench_function("announce", |b| {
        b.iter(|| Request::parse(black_box(&announce), 74))
    });
    for n in [1, 74] {
        let pkt = scrape(n);
        g.bench_with_input(BenchmarkId::new("scrape", n), &pkt, |b, pkt| {
            b.iter(|| Request::parse(black_box(pkt), 74))
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("udp encode announce response");
    g.throughput(Throughput::Elements(1));
    for (family, len) in [("ipv4", 6), ("ipv6", 18)] {
        for peers in [0usize, 30, 74] {
            let bytes = vec![7u8; peers * len];
            let mut out = Vec::with_capacity(2048);
            g.bench_with_input(BenchmarkId::new(family, peers), &bytes, |b, bytes| {
                b.iter(|| {
                    out.clear();
                    udp::write_announce(&mut out, TransactionId(1), 1800, 3, 4, black_box(bytes));
                    black_box(out.len())
                })
            });
        }
    }
    g.finish();
}

fn connection_ids(c: &mut Criterion) {
    let ids = ConnectionIds::new();
    let ip: IpAddr = "192.0.2.7".parse().unwrap_or(IpAddr::from([192, 0, 2, 7]));
    let id = ids.make(ip, 1000);
    let mut g = c.benchmark_group("connection id");
    g.bench_function("make", |b| {
        b.iter(|| ids.make(black_box(ip), black_box(1000)))
    });
    g.bench_function("check", |b| {
        b.iter(|| ids.check(black_box(id), black_box(ip), black_box(1001)))
    });
    g.finish();
}

criterion_group!(benches, decode, encode, connection_ids);
criterion_main!(benches);
