//! The command line's tests: every subcommand, limits, loopback-only targets.

use super::*;

fn args(s: &str) -> Vec<OsString> {
    s.split_whitespace().map(OsString::from).collect()
}

#[test]
fn only_loopback_targets() {
    assert!(parse(args("--target 127.0.0.1:6969")).is_ok());
    assert!(parse(args("udp --target [::1]:6969")).is_ok());
    assert!(parse(args("--target 10.0.0.1:6969")).is_err());
    assert!(parse(args("--target [::ffff:127.0.0.1]:6969")).is_err());
    assert!(parse(args("responder --bind 0.0.0.0:6969")).is_err());
    assert!(parse(args("--torrents 1")).is_err());
}

#[test]
fn cores_takes_two_distinct_cpus() {
    match parse(args("cores --cpus 2,5 --trips 100")) {
        Ok(Command::Cores(o)) => {
            assert_eq!(o.cpus, (2, 5));
            assert_eq!(o.trips, 100);
        }
        _ => panic!("cores --cpus 2,5 should parse"),
    }
    assert!(parse(args("cores --cpus 1,1")).is_err());
    assert!(parse(args("cores --cpus 1")).is_err());
    assert!(parse(args("cores --cpus 0,x")).is_err());
    assert!(parse(args("cores --trips 0")).is_err());
}

#[test]
fn client_addresses_spread_over_the_net() {
    let net: Ipv4Net = "127.0.0.0/8".parse().expect("valid net");
    assert_eq!(net.client(0), Ipv4Addr::new(127, 0, 0, 1));
    assert_eq!(net.client(300), Ipv4Addr::new(127, 0, 1, 45));
    let small: Ipv4Net = "127.9.9.8/30".parse().expect("valid net");
    assert_eq!(small.client(0), Ipv4Addr::new(127, 9, 9, 9));
    assert_eq!(small.client(2), Ipv4Addr::new(127, 9, 9, 9));
    assert!("10.0.0.0/8".parse::<Ipv4Net>().is_err());
    assert!("127.0.0.0/4".parse::<Ipv4Net>().is_err());
}

#[test]
fn clients_per_24_fill_each_24_then_move_on() {
    let o = test_options("--ipv4-clients-per-24 2");
    let ips: Vec<IpAddr> = (0..5).map(|i| o.client_ip(i)).collect();
    let want = [[0, 0, 1], [0, 0, 2], [0, 1, 1], [0, 1, 2], [0, 2, 1]];
    let want: Vec<IpAddr> = want
        .iter()
        .map(|&[b, c, d]| IpAddr::V4(Ipv4Addr::new(127, b, c, d)))
        .collect();
    assert_eq!(ips, want);
    let o = test_options("--ipv4-clients-per-24 1 --ipv4-clients-from 127.5.0.0/23");
    assert_eq!(o.client_ip(1), IpAddr::V4(Ipv4Addr::new(127, 5, 1, 1)));
    assert_eq!(
        o.client_ip(2),
        IpAddr::V4(Ipv4Addr::new(127, 5, 0, 1)),
        "wraps"
    );
    assert_eq!(o.client_ip(256), IpAddr::V4(Ipv4Addr::new(127, 5, 0, 1)));
    // 70 000 = 273 × 256 + 112, and 127.0.0.0/8 has 256 × 256 /24s.
    let o = test_options("--ipv4-clients-per-24 1");
    assert_eq!(
        o.client_ip(70_000),
        IpAddr::V4(Ipv4Addr::new(127, 17, 112, 1))
    );
    for bad in [
        "--ipv4-clients-per-24 0",
        "--ipv4-clients-per-24 255",
        "--ipv4-clients-per-24 4 --ipv4-clients-from none",
        "--ipv4-clients-per-24 4 --ipv4-clients-from 127.0.0.0/25",
    ] {
        assert!(
            parse(args(&format!("--target 127.0.0.1:1 {bad}"))).is_err(),
            "{bad}"
        );
    }
    assert!(parse(args("--target [::1]:1 --ipv4-clients-per-24 4")).is_err());
}

#[test]
fn numbers_take_separators_and_limits() {
    match parse(args("--target 127.0.0.1:1 --peers 5_000_000 --duration 20")) {
        Ok(Command::Load(o)) => {
            assert_eq!(o.peers, 5_000_000);
            assert_eq!(o.duration, Duration::from_secs(20));
        }
        _ => panic!("expected udp options"),
    }
    assert!(parse(args("--target 127.0.0.1:1 --duration 3601")).is_err());
    assert!(parse(args("--target 127.0.0.1:1 --warmup 10")).is_err());
}

#[test]
fn http_takes_its_own_transport_options() {
    match parse(args(
        "http --target 127.0.0.1:1 --connections 1000 --pipeline 4",
    )) {
        Ok(Command::Load(o)) => {
            assert_eq!(o.protocol, Protocol::Http);
            assert_eq!((o.connections, o.inflight, o.clients()), (1000, 4, 1000));
        }
        _ => panic!("expected http options"),
    }
    match parse(args("http --target [::1]:1")) {
        Ok(Command::Load(o)) => assert_eq!((o.connections, o.inflight), (256, 1)),
        _ => panic!("expected http options"),
    }
    assert!(parse(args("http --target 10.1.1.1:80")).is_err());
    assert!(parse(args("http --target 127.0.0.1:1 --sockets 4")).is_err());
    assert!(parse(args("http --target 127.0.0.1:1 --connect 1")).is_err());
    assert!(parse(args("udp --target 127.0.0.1:1 --connections 4")).is_err());
    assert!(parse(args(
        "http --target 127.0.0.1:1 --connections 2 --threads 3"
    ))
    .is_err());
    assert!(parse(args(
        "http --target 127.0.0.1:1 --peers 10 --connections 11"
    ))
    .is_err());
}
