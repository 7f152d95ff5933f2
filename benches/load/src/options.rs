//! The command line: subcommands, their options, defaults and limits. Every
//! figure is bounded here, and every address must be a loopback one, so the
//! rest of the program can trust what it is given. `udp` and `http` share the
//! population, the mix and the timing options; each has its own transport
//! options.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use lexopt::prelude::*;
// The tracker's own: the protocols it speaks are the ones a load can speak,
// by the same names in the report as in its metrics.
use swarmd::stats::Protocol;

use crate::tokens::TokenOptions;

mod tokens;
mod usage;

use tokens::{parse_jwks, TokenArgs};
pub use usage::USAGE;

pub enum Command {
    /// `udp` or `http`, told apart by `LoadOptions::protocol`.
    Load(Box<LoadOptions>),
    Responder(ResponderOptions),
    Hashes(HashesOptions),
    Ping(PingOptions),
    Cores(CoresOptions),
    Jwks(TokenOptions),
    Help,
}

/// A network within 127.0.0.0/8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub base: u32,
    pub prefix: u8,
}

impl FromStr for Ipv4Net {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Ipv4Net> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = addr
            .parse()
            .with_context(|| format!("bad address in {s}"))?;
        let prefix: u8 = prefix
            .parse()
            .with_context(|| format!("bad prefix in {s}"))?;
        if !(8..=32).contains(&prefix) || addr.octets()[0] != 127 {
            bail!("{s} is not within 127.0.0.0/8");
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Ok(Ipv4Net {
            base: u32::from(addr) & mask,
            prefix,
        })
    }
}

impl Ipv4Net {
    /// Address `i` of the net for client socket `i`, skipping the network and
    /// broadcast addresses and wrapping round when the net is too small.
    pub fn client(&self, i: usize) -> Ipv4Addr {
        let size = 1u64 << (32 - u32::from(self.prefix));
        if size <= 2 {
            return Ipv4Addr::from(self.base);
        }
        let offset = 1 + (i as u64 % (size - 2));
        Ipv4Addr::from(self.base.wrapping_add(offset as u32))
    }

    /// With `--ipv4-clients-per-24 per`: address `i % per` + 1 of the net's
    /// `i / per`-th /24, so that `per` sockets share each /24 (a rack, to a
    /// tracker that groups peers by subnet), wrapping round when the net has
    /// too few /24s. The net is at least a /24 (checked when parsed).
    pub fn client_per_24(&self, i: usize, per: u8) -> Ipv4Addr {
        let per = usize::from(per.max(1));
        let nets = 1u64 << (24 - u32::from(self.prefix.min(24)));
        let net = (i / per) as u64 % nets;
        let host = 1 + (i % per) as u64;
        Ipv4Addr::from(self.base.wrapping_add(((net << 8) + host) as u32))
    }
}

/// Which peer announces next on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerOrder {
    /// Any of the socket's peers, at random.
    Random,
    /// Each in turn, round and round.
    Sequential,
    /// Each in turn, once; the run ends when every peer has announced (for
    /// filling a tracker with a known number of peers).
    Once,
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The tracker protocol the load speaks.
    pub protocol: Protocol,
    pub target: SocketAddr,
    pub torrents: u64,
    pub peers: u64,
    pub skew: f64,
    pub duration: Duration,
    pub warmup: Duration,
    pub threads: usize,
    /// UDP: sockets per thread.
    pub sockets: usize,
    /// HTTP: TCP connections over all threads.
    pub connections: usize,
    pub rate: u64,
    /// Requests to send in all (0: no bound but the duration).
    pub requests: u64,
    /// UDP: requests in flight per socket. HTTP: per connection (the
    /// pipeline depth).
    pub inflight: usize,
    /// Weights of connect, announce and scrape, indexed by `Kind`.
    pub weights: [u32; 3],
    pub scrape_hashes: u16,
    pub numwant: i32,
    pub seeder_prob: f64,
    pub stop_prob: f64,
    pub complete_prob: f64,
    pub order: PeerOrder,
    pub timeout: Duration,
    pub clients_from: Option<Ipv4Net>,
    /// `--ipv4-clients-per-24`: sockets per /24 of `clients_from` (None:
    /// one after the other through the net).
    pub clients_per_24: Option<u8>,
    pub seed: u64,
    pub json: Option<PathBuf>,
    pub quiet: bool,
    /// With `--token-key`: how the announces' tokens are made.
    pub token: Option<TokenOptions>,
}

impl LoadOptions {
    /// Client sockets (UDP) or connections (HTTP) over all threads.
    pub fn clients(&self) -> usize {
        match self.protocol {
            Protocol::Udp => self.threads * self.sockets,
            Protocol::Http => self.connections,
        }
    }

    /// The address client socket `i` (counted over all threads) binds to.
    pub fn client_ip(&self, i: usize) -> IpAddr {
        match (self.target, self.clients_from) {
            (SocketAddr::V6(_), _) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            (SocketAddr::V4(_), Some(net)) => match self.clients_per_24 {
                Some(per) => IpAddr::V4(net.client_per_24(i, per)),
                None => IpAddr::V4(net.client(i)),
            },
            (SocketAddr::V4(_), None) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ResponderOptions {
    pub bind: SocketAddr,
    pub duration: Duration,
    /// Made-up peers in each announce answer, at most.
    pub peers: usize,
}

#[derive(Clone, Debug)]
pub struct PingOptions {
    pub target: SocketAddr,
    /// Announce over HTTP rather than UDP.
    pub http: bool,
    /// Which torrent of `udp` to announce.
    pub torrent: u64,
    pub wait: Duration,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct CoresOptions {
    pub cpus: (usize, usize),
    pub trips: u64,
}

#[derive(Clone, Debug)]
pub struct HashesOptions {
    pub torrents: u64,
    pub seed: u64,
    /// Print aquatic_udp_load_test's hashes instead of this tool's.
    pub aquatic: bool,
}

/// Refuses any address that is not a loopback one: this tool floods, and must
/// never flood anything but this machine.
fn loopback(s: &str, what: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = s
        .parse()
        .with_context(|| format!("{what} {s}: expected IP:PORT or [IPv6]:PORT"))?;
    if !addr.ip().is_loopback() {
        bail!("{what} {s}: only loopback addresses (127.0.0.0/8, ::1) are allowed");
    }
    Ok(addr)
}

/// The next option value as a number; `_` separators are allowed.
fn number<T>(p: &mut lexopt::Parser, name: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let s = p.value()?.string()?;
    s.replace('_', "")
        .parse()
        .map_err(|e| anyhow!("--{name} {s}: {e}"))
}

fn within<T: PartialOrd + std::fmt::Display>(name: &str, v: T, lo: T, hi: T) -> Result<T> {
    if v < lo || v > hi {
        bail!("--{name} {v}: must be between {lo} and {hi}");
    }
    Ok(v)
}

fn probability(p: &mut lexopt::Parser, name: &str) -> Result<f64> {
    let v: f64 = number(p, name)?;
    within(name, v, 0.0, 1.0)
}

fn seconds(p: &mut lexopt::Parser, name: &str, max: u64) -> Result<Duration> {
    let v: u64 = number(p, name)?;
    Ok(Duration::from_secs(within(name, v, 0, max)?))
}

pub fn parse(args: Vec<OsString>) -> Result<Command> {
    let mut args = args.into_iter().peekable();
    let command = match args.peek().and_then(|a| a.to_str()) {
        Some(
            c @ ("udp" | "http" | "responder" | "hashes" | "ping" | "cores" | "jwks" | "help"),
        ) => {
            let c = c.to_owned();
            args.next();
            c
        }
        _ => "udp".to_owned(),
    };
    let mut p = lexopt::Parser::from_args(args);
    match command.as_str() {
        "responder" => parse_responder(&mut p),
        "hashes" => parse_hashes(&mut p),
        "ping" => parse_ping(&mut p),
        "cores" => parse_cores(&mut p),
        "jwks" => parse_jwks(&mut p),
        "help" => Ok(Command::Help),
        "http" => parse_load(&mut p, Protocol::Http),
        _ => parse_load(&mut p, Protocol::Udp),
    }
}

fn parse_load(p: &mut lexopt::Parser, protocol: Protocol) -> Result<Command> {
    let mut target = None;
    let mut clients_from = Some("127.0.0.0/8".parse()?);
    let http = protocol == Protocol::Http;
    let mut o = LoadOptions {
        protocol,
        target: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        torrents: 1_000_000,
        peers: 2_000_000,
        skew: 1.0,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        threads: 1,
        sockets: 4,
        connections: 256,
        rate: 0,
        requests: 0,
        inflight: if http { 1 } else { 64 },
        weights: [0, 100, 1],
        scrape_hashes: 10,
        numwant: 30,
        seeder_prob: 0.75,
        stop_prob: 0.01,
        complete_prob: 0.01,
        order: PeerOrder::Random,
        timeout: Duration::from_millis(1000),
        clients_from: None,
        clients_per_24: None,
        seed: 1,
        json: None,
        quiet: false,
        token: None,
    };
    let mut token = TokenArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long(name) if name.starts_with("token-") => {
                let name = name.to_owned();
                token.parse(&name, p)?;
            }
            Long("target") => target = Some(loopback(&p.value()?.string()?, "--target")?),
            Long("torrents") => {
                o.torrents = within("torrents", number(p, "torrents")?, 1, 1 << 32)?
            }
            Long("peers") => o.peers = within("peers", number(p, "peers")?, 1, 200_000_000)?,
            Long("skew") => o.skew = within("skew", number(p, "skew")?, 0.0, 10.0)?,
            Long("duration") => o.duration = seconds(p, "duration", 3600)?,
            Long("warmup") => o.warmup = seconds(p, "warmup", 3600)?,
            Long("threads") => o.threads = within("threads", number(p, "threads")?, 1, 64)?,
            Long("sockets") if !http => {
                o.sockets = within("sockets", number(p, "sockets")?, 1, 1024)?
            }
            Long("connections") if http => {
                o.connections = within("connections", number(p, "connections")?, 1, 60_000)?
            }
            Long("pipeline") if http => {
                o.inflight = within("pipeline", number(p, "pipeline")?, 1, 64)?
            }
            Long("rate") => o.rate = within("rate", number(p, "rate")?, 0, 100_000_000)?,
            Long("requests") => {
                o.requests = within("requests", number(p, "requests")?, 0, 1_000_000_000)?
            }
            Long("inflight") if !http => {
                o.inflight = within("inflight", number(p, "inflight")?, 1, 4096)?
            }
            Long("connect") if !http => {
                o.weights[0] = within("connect", number(p, "connect")?, 0, 1_000_000)?
            }
            Long("announce") => {
                o.weights[1] = within("announce", number(p, "announce")?, 0, 1_000_000)?
            }
            Long("scrape") => o.weights[2] = within("scrape", number(p, "scrape")?, 0, 1_000_000)?,
            Long("scrape-hashes") => {
                o.scrape_hashes = within("scrape-hashes", number(p, "scrape-hashes")?, 1, 74)?
            }
            Long("numwant") => o.numwant = within("numwant", number(p, "numwant")?, -1, 2000)?,
            Long("seeder-prob") => o.seeder_prob = probability(p, "seeder-prob")?,
            Long("stop-prob") => o.stop_prob = probability(p, "stop-prob")?,
            Long("complete-prob") => o.complete_prob = probability(p, "complete-prob")?,
            Long("peer-order") => {
                o.order = match p.value()?.string()?.as_str() {
                    "random" => PeerOrder::Random,
                    "sequential" => PeerOrder::Sequential,
                    "once" => PeerOrder::Once,
                    other => bail!("--peer-order {other}: expected random, sequential or once"),
                }
            }
            Long("timeout-ms") => {
                let ms = within("timeout-ms", number(p, "timeout-ms")?, 10, 60_000)?;
                o.timeout = Duration::from_millis(ms);
            }
            Long("ipv4-clients-from") => {
                let s = p.value()?.string()?;
                clients_from = match s.as_str() {
                    "none" | "off" => None,
                    net => Some(net.parse()?),
                };
            }
            Long("ipv4-clients-per-24") => {
                let per = within(
                    "ipv4-clients-per-24",
                    number(p, "ipv4-clients-per-24")?,
                    1,
                    254,
                )?;
                o.clients_per_24 = Some(per);
            }
            Long("seed") => o.seed = number(p, "seed")?,
            Long("json") => o.json = Some(p.value()?.into()),
            Long("quiet") => o.quiet = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected().into()),
        }
    }
    o.target = target.ok_or_else(|| anyhow!("--target ADDR is required (see --help)"))?;
    o.token = token.finish()?;
    if o.target.is_ipv4() {
        o.clients_from = clients_from;
    }
    if o.clients_per_24.is_some() && o.clients_from.is_none_or(|n| n.prefix > 24) {
        bail!("--ipv4-clients-per-24 needs an IPv4 target and --ipv4-clients-from a /24 or larger");
    }
    if o.duration.is_zero() || o.warmup >= o.duration {
        bail!("--duration must be longer than --warmup, and not zero");
    }
    if o.weights.iter().all(|&w| w == 0) {
        bail!("at least one of --connect, --announce, --scrape needs a weight");
    }
    let clients = o.clients() as u64;
    if o.peers < clients {
        match protocol {
            Protocol::Udp => bail!("--peers must be at least --threads × --sockets ({clients})"),
            Protocol::Http => bail!("--peers must be at least --connections ({clients})"),
        }
    }
    if o.connections < o.threads && http {
        bail!("--connections must be at least --threads");
    }
    Ok(Command::Load(Box::new(o)))
}

fn parse_responder(p: &mut lexopt::Parser) -> Result<Command> {
    let mut bind = None;
    let mut duration = Duration::from_secs(3600);
    let mut peers = 0;
    while let Some(arg) = p.next()? {
        match arg {
            Long("bind") => bind = Some(loopback(&p.value()?.string()?, "--bind")?),
            Long("duration") => duration = seconds(p, "duration", 86_400)?,
            Long("peers") => peers = within("peers", number(p, "peers")?, 0, 200)?,
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let bind = bind.ok_or_else(|| anyhow!("--bind ADDR is required (see --help)"))?;
    Ok(Command::Responder(ResponderOptions {
        bind,
        duration,
        peers,
    }))
}

fn parse_ping(p: &mut lexopt::Parser) -> Result<Command> {
    let mut target = None;
    let mut wait = Duration::from_secs(30);
    let mut seed = 1;
    let mut torrent = 0;
    let mut http = false;
    while let Some(arg) = p.next()? {
        match arg {
            Long("target") => target = Some(loopback(&p.value()?.string()?, "--target")?),
            Long("http") => http = true,
            Long("wait") => wait = seconds(p, "wait", 3600)?,
            Long("torrent") => torrent = within("torrent", number(p, "torrent")?, 0, 1 << 32)?,
            Long("seed") => seed = number(p, "seed")?,
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let target = target.ok_or_else(|| anyhow!("--target ADDR is required (see --help)"))?;
    Ok(Command::Ping(PingOptions {
        target,
        http,
        torrent,
        wait,
        seed,
    }))
}

fn parse_cores(p: &mut lexopt::Parser) -> Result<Command> {
    let mut o = CoresOptions {
        cpus: (0, 1),
        trips: 20_000,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("cpus") => {
                let v = p.value()?.string()?;
                let (a, b) = v
                    .split_once(',')
                    .ok_or_else(|| anyhow!("--cpus {v}: expected two CPUs, A,B"))?;
                let cpu = |s: &str| -> Result<usize> {
                    let n: usize = s
                        .trim()
                        .parse()
                        .with_context(|| format!("--cpus {v}: {s} is not a CPU number"))?;
                    within("cpus", n, 0, 1023)
                };
                o.cpus = (cpu(a)?, cpu(b)?);
                if o.cpus.0 == o.cpus.1 {
                    bail!("--cpus {v}: the two CPUs must differ");
                }
            }
            Long("trips") => o.trips = within("trips", number(p, "trips")?, 1, 10_000_000)?,
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Command::Cores(o))
}

fn parse_hashes(p: &mut lexopt::Parser) -> Result<Command> {
    let mut o = HashesOptions {
        torrents: 1_000_000,
        seed: 1,
        aquatic: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("torrents") => {
                o.torrents = within("torrents", number(p, "torrents")?, 1, 1 << 32)?
            }
            Long("seed") => o.seed = number(p, "seed")?,
            Long("aquatic-load-test") => o.aquatic = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Command::Hashes(o))
}

/// The options of a load run against 127.0.0.1:6969 with `extra` on its
/// command line, for the tests of the modules that take them.
#[cfg(test)]
pub fn test_options(extra: &str) -> LoadOptions {
    let line = format!("--target 127.0.0.1:6969 {extra}");
    match parse(line.split_whitespace().map(OsString::from).collect()) {
        Ok(Command::Load(o)) => *o,
        _ => panic!("{line} should parse as a load run"),
    }
}

#[cfg(test)]
mod tests;
