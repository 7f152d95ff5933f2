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
