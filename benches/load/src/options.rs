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

pub const USAGE: &str = "\
swarmd-load: load generator for BEP 15 (UDP) and BEP 3 (HTTP) trackers, and a
do-nothing UDP responder. Traffic never leaves the machine: every address must
be a loopback one.

USAGE:
    swarmd-load [udp] --target ADDR [OPTIONS]
    swarmd-load http --target ADDR [--connections N] [--pipeline K] [OPTIONS]
    swarmd-load responder --bind ADDR [--duration SECS] [--peers N]
    swarmd-load hashes [--torrents N] [--seed N | --aquatic-load-test]
    swarmd-load ping --target ADDR [--http] [--torrent N] [--wait SECS]
    swarmd-load cores [--cpus A,B] [--trips N]
    swarmd-load jwks --token-key FILE.der [--token-alg ALG] [--token-kid KID]

udp (the default): simulate many peers on many torrents against a tracker.
    --target ADDR           tracker address, e.g. 127.0.0.1:6969 or [::1]:6969
    --torrents N            torrents [1000000]
    --peers N               peers, each with a stable peer id, key and port [2000000]
    --skew S                Zipf exponent of torrent popularity [1.0]
    --duration SECS         whole run, warm-up included, at most 3600 [10];
                            figures cover the time after the warm-up
    --warmup SECS           first seconds left out of the figures [1]
    --threads N             load threads [1]
    --sockets N             sockets (client addresses) per thread [4]
    --rate R                requests per second in all, 0 = as fast as answers come [0]
    --requests N            stop after sending N requests in all, 0 = no limit [0]
    --inflight N            most requests in flight per socket [64]
    --connect W             weight of extra connect requests [0]
    --announce W            weight of announce requests [100]
    --scrape W              weight of scrape requests [1]
    --scrape-hashes N       a scrape asks about 1..=N info hashes [10]
    --numwant N             peers asked for per announce, -1 = tracker's choice [30]
    --seeder-prob P         share of peers that start as seeders [0.75]
    --stop-prob P           chance an announce is `stopped` (the next is `started`) [0.01]
    --complete-prob P       chance a leecher's announce is `completed` [0.01]
    --peer-order ORDER      random; sequential (every peer once before any twice);
                            or once (every peer once, then the run ends) [random]
    --timeout-ms MS         a request unanswered this long is a timeout [1000]
    --ipv4-clients-from NET bind socket i to address i+1 of NET (within 127.0.0.0/8),
                            so the tracker sees many client IPs; `none` binds
                            127.0.0.1 [127.0.0.0/8]
    --seed N                seed of the info hashes, peer ids and choices [1]
    --json FILE             also write every figure as JSON to FILE
    --quiet                 no progress lines on stderr
    --token-key FILE        send a signed token (JWT) with every announce, one
                            per torrent, signed at start with this key: a DER
                            private key, RSA as PKCS#1 (openssl rsa -traditional
                            -outform DER) or EC P-256 as PKCS#8 (openssl pkcs8
                            -topk8 -nocrypt -outform DER), or the HS256 secret;
                            over UDP as BEP 41 URL data `/announce?jwt=TOKEN`
                            (options of up to 255 bytes), over HTTP `&jwt=`
    --token-alg ALG         RS256, ES256 or HS256 [RS256]
    --token-kid KID         the tokens' `kid` header
    --token-issuer S        their `iss` claim (none when not given)
    --token-audience S      their `aud` claim (none when not given)

http: the same peers, torrents, mix and events over HTTP/1.1 keep-alive
connections (GET /announce with compact=1, GET /scrape). Takes the options of
`udp` except --sockets, --inflight and --connect, and these:
    --connections N         TCP connections in all, spread over the threads [256]
    --pipeline K            requests in flight per connection (HTTP pipelining);
                            1 waits for each answer before the next [1]
    A connection the tracker closes, or one whose oldest request times out,
    is opened again at once (counted as a reconnect); with --ipv4-clients-from
    connection i binds address i+1 of the net, as sockets do in `udp`. Each
    answer must be status 200 with a Content-Length and a bencoded dictionary:
    `interval` and whole peer entries, or `files`; a `failure reason` counts
    as an error, anything else as invalid.

responder: answer every request with the smallest valid response, one
recv_from/send_to per datagram on one thread: the machine's ceiling.
    --bind ADDR             address to listen on, e.g. 127.0.0.1:6969
    --duration SECS         stop after this long [3600]
    --peers N               answer announces with up to N made-up peers (as
                            many as wanted), so answers are as long as a
                            tracker's [0, at most 200]

ping: wait until the tracker answers a connect and then an announce (of one
peer outside the simulated ones, to a torrent of `udp`); exit 0 then, 1 if it
has not after --wait SECS. For scripts that start trackers.
    --target ADDR
    --http                  announce over HTTP (GET /announce) instead
    --torrent N             which torrent to announce [0]
    --wait SECS             [30]
    --seed N                [1]

hashes: print the info hashes `udp` uses (hex, one a line), e.g. for a whitelist.
    --torrents N            [1000000]
    --seed N                [1]
    --aquatic-load-test     print those of aquatic_udp_load_test 0.9 instead

jwks: print the JWK Set of the public key of --token-key (RS256, ES256), for
the tracker's access.token.jwks_file. Takes --token-key, --token-alg and
--token-kid as `udp` does.

cores: how long a cache line takes to go from one CPU to another and back,
with a thread pinned to each (the median of 5 runs of --trips round trips).
On a VM whose virtual CPUs the host moves about, this tells which state the
machine is in: benches/compare.sh records it before and after every run.
Prints `cpus=A,B trips=N round_trip_ns=T`.
    --cpus A,B              the two CPUs [0,1]
    --trips N               round trips per run [20000]
";

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
            (SocketAddr::V4(_), Some(net)) => IpAddr::V4(net.client(i)),
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

/// The `--token-*` options, as given.
#[derive(Default)]
struct TokenArgs {
    key: Option<PathBuf>,
    algorithm: Option<jsonwebtoken::Algorithm>,
    kid: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenArgs {
    /// Takes the value of `--NAME`, one of the `--token-*` options.
    fn parse(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<()> {
        match name {
            "token-key" => self.key = Some(p.value()?.into()),
            "token-alg" => {
                self.algorithm = Some(match p.value()?.string()?.as_str() {
                    "RS256" => jsonwebtoken::Algorithm::RS256,
                    "ES256" => jsonwebtoken::Algorithm::ES256,
                    "HS256" => jsonwebtoken::Algorithm::HS256,
                    other => bail!("--token-alg {other}: expected RS256, ES256 or HS256"),
                })
            }
            "token-kid" => self.kid = Some(p.value()?.string()?),
            "token-issuer" => self.issuer = Some(p.value()?.string()?),
            "token-audience" => self.audience = Some(p.value()?.string()?),
            other => bail!("--{other}: unknown option (see --help)"),
        }
        Ok(())
    }

    /// None without `--token-key`; the others need it.
    fn finish(self) -> Result<Option<TokenOptions>> {
        let Some(key) = self.key else {
            if self.algorithm.is_some() || self.kid.is_some() || self.issuer.is_some() {
                bail!("--token-alg, --token-kid and --token-issuer need --token-key");
            }
            return Ok(None);
        };
        Ok(Some(TokenOptions {
            key,
            algorithm: self.algorithm.unwrap_or(jsonwebtoken::Algorithm::RS256),
            kid: self.kid,
            issuer: self.issuer,
            audience: self.audience,
        }))
    }
}

fn parse_jwks(p: &mut lexopt::Parser) -> Result<Command> {
    let mut token = TokenArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long(name) if name.starts_with("token-") => {
                let name = name.to_owned();
                token.parse(&name, p)?;
            }
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected().into()),
        }
    }
    token
        .finish()?
        .map(Command::Jwks)
        .ok_or_else(|| anyhow!("--token-key FILE is required (see --help)"))
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
