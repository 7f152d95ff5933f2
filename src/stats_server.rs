//! The stats thread: samples the counters every few seconds (for rates) and
//! serves a tiny read-only HTTP endpoint on its own address.
//!
//! Routes (GET only; anything else is 405):
//! - `/metrics`: Prometheus text exposition format
//! - `/stats`: the same numbers as JSON, plus rates per second
//! - `/torrents?top=N`: the largest swarms (as of the last cleaning pass)
//! - `/torrents/<40 hex digits>`: one torrent's counts
//! - `/passkeys`: per-passkey announces and uploaded/downloaded deltas
//! - `/healthz`: `ok` while every worker runs, 503 otherwise
//!
//! Connections are served one at a time with short timeouts and a bounded
//! request size: the endpoint is for an operator and a scraper, and a slow
//! client can only delay the endpoint, never the tracker.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::json;

use crate::protocol::InfoHash;
use crate::stats::{Counter, FamilyCounters, Stats};
use crate::tracker::TrackerView;
use crate::workers::Shutdown;

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
const MAX_REQUEST: usize = 8192;
const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// A sample of the totals, for rates.
#[derive(Clone, Copy, Default)]
struct Sample {
    requests: u64,
    responses: u64,
    announces: u64,
}

fn sample(stats: &Stats) -> Sample {
    let mut s = Sample::default();
    for w in &stats.socket {
        for f in [&w.udp_v4, &w.udp_v6, &w.http_v4, &w.http_v6] {
            for (name, v) in f.values() {
                if name.starts_with("requests_") {
                    s.requests += v;
                } else if name.starts_with("responses_") {
                    s.responses += v;
                }
            }
        }
    }
    s.announces = stats.swarm_total(|c| &c.announces);
    s
}

struct Rates {
    requests: f64,
    responses: f64,
    announces: f64,
}

pub struct StatsServer {
    /// A std listener (so accepted streams are std streams, served
    /// blocking), registered with mio by its fd.
    listener: TcpListener,
    poll: Poll,
    view: TrackerView,
    shutdown: Arc<Shutdown>,
    interval: Duration,
    max_top: usize,
    last: (Instant, Sample),
    rates: Rates,
}

/// Binds the endpoint. Returns the server (to run on its thread), its
/// address, and the waker that stops it.
pub fn bind(
    addr: SocketAddr,
    view: TrackerView,
    shutdown: Arc<Shutdown>,
    interval: Duration,
    max_top: usize,
) -> io::Result<(StatsServer, SocketAddr, Waker)> {
    let std_listener = TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let poll = Poll::new()?;
    poll.registry().register(
        &mut mio::unix::SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&std_listener)),
        LISTENER,
        Interest::READABLE,
    )?;
    let listener = std_listener;
    let waker = Waker::new(poll.registry(), WAKE)?;
    let first = sample(&view.stats);
    Ok((
        StatsServer {
            listener,
            poll,
            view,
            shutdown,
            interval,
            max_top,
            last: (Instant::now(), first),
            rates: Rates {
                requests: 0.0,
                responses: 0.0,
                announces: 0.0,
            },
        },
        local,
        waker,
    ))
}

impl StatsServer {
    pub fn run(mut self) {
        let mut events = Events::with_capacity(16);
        while !self.shutdown.requested() {
            let next = self.last.0 + self.interval;
            let timeout = next.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("stats: poll: {e}");
                    return;
                }
            }
            if Instant::now() >= next {
                self.resample();
            }
            loop {
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = self.serve(stream) {
                            log::debug!("stats: {e}");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::warn!("stats: accept: {e}");
                        break;
                    }
                }
            }
        }
    }

    fn resample(&mut self) {
        let now = Instant::now();
        let s = sample(&self.view.stats);
        let secs = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let (_, prev) = self.last;
        self.rates = Rates {
            requests: (s.requests - prev.requests) as f64 / secs,
            responses: (s.responses - prev.responses) as f64 / secs,
            announces: (s.announces - prev.announces) as f64 / secs,
        };
        self.last = (now, s);
    }

    /// Serves one connection synchronously, with timeouts.
    fn serve(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if buf.len() > MAX_REQUEST {
                return respond(&mut stream, 431, "text/plain", "request too large\n");
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]);
        let mut parts = head.lines().next().unwrap_or("").split_whitespace();
        let method = parts.next().unwrap_or("");
        let target = parts.next().unwrap_or("");
        if method != "GET" {
            return respond(&mut stream, 405, "text/plain", "only GET\n");
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match path {
            "/metrics" => respond(
                &mut stream,
                200,
                "text/plain; version=0.0.4",
                &prometheus(&self.view.stats),
            ),
            "/stats" => respond(&mut stream, 200, "application/json", &self.json()),
            "/passkeys" => {
                let list: Vec<_> = self
                    .view
                    .passkey_stats()
                    .into_iter()
                    .map(|(who, c)| {
                        json!({
                            "user": who,
                            "announces": c.announces,
                            "uploaded": c.uploaded,
                            "downloaded": c.downloaded,
                        })
                    })
                    .collect();
                respond_json(&mut stream, list.into())
            }
            "/healthz" => {
                if self.view.stats.healthy() {
                    respond(&mut stream, 200, "text/plain", "ok\n")
                } else {
                    respond(&mut stream, 503, "text/plain", "a worker has stopped\n")
                }
            }
            "/torrents" => {
                let n = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("top="))
                    .map_or(Some(10), |v| v.parse::<usize>().ok());
                match n {
                    Some(n) => {
                        let list: Vec<_> = self
                            .view
                            .top(n.min(self.max_top))
                            .into_iter()
                            .map(|(h, s)| torrent_json(h, s))
                            .collect();
                        respond_json(&mut stream, list.into())
                    }
                    None => respond(&mut stream, 400, "text/plain", "top must be a number\n"),
                }
            }
            p if p.starts_with("/torrents/") => {
                match InfoHash::from_hex(&p["/torrents/".len()..]) {
                    Some(h) => match self.view.torrent(h) {
                        Some(s) => respond(
                            &mut stream,
                            200,
                            "application/json",
                            &torrent_json(h, s).to_string(),
                        ),
                        None => respond(
                            &mut stream,
                            503,
                            "text/plain",
                            "the swarm worker did not answer\n",
                        ),
                    },
                    None => respond(&mut stream, 400, "text/plain", "expected 40 hex digits\n"),
                }
            }
            _ => respond(
                &mut stream,
                404,
                "text/plain",
                "routes: /metrics /stats /torrents?top=N /torrents/<hex> /passkeys /healthz\n",
            ),
        }
    }

    fn json(&self) -> String {
        let stats = &self.view.stats;
        let mut protocols = serde_json::Map::new();
        for (proto, v6, pick) in families() {
            let mut m = serde_json::Map::new();
            for w in &stats.socket {
                for (name, v) in pick(w).values() {
                    let e = m.entry(name).or_insert(json!(0));
                    *e = json!(e.as_u64().unwrap_or(0) + v);
                }
            }
            protocols.insert(
                format!("{proto}_{}", if v6 { "ipv6" } else { "ipv4" }),
                m.into(),
            );
        }
        let mut swarm = serde_json::Map::new();
        for w in &stats.swarm {
            for (name, v) in w.values() {
                let e = swarm.entry(name).or_insert(json!(0));
                *e = json!(e.as_u64().unwrap_or(0) + v);
            }
        }
        json!({
            "uptime_seconds": stats.started.elapsed().as_secs(),
            "healthy": stats.healthy(),
            "socket_workers": stats.socket.len(),
            "swarm_workers": stats.swarm.len(),
            "rates_per_second": {
                "requests": self.rates.requests,
                "responses": self.rates.responses,
                "announces": self.rates.announces,
            },
            "swarm": swarm,
            "protocols": protocols,
        })
        .to_string()
    }
}

fn torrent_json(h: InfoHash, s: crate::protocol::udp::ScrapeStats) -> serde_json::Value {
    json!({
        "info_hash": h.to_string(),
        "seeders": s.seeders,
        "leechers": s.leechers,
        "completed": s.completed,
    })
}

type Pick = fn(&crate::stats::SocketCounters) -> &FamilyCounters;

fn families() -> [(&'static str, bool, Pick); 4] {
    [
        ("udp", false, |w| &w.udp_v4),
        ("udp", true, |w| &w.udp_v6),
        ("http", false, |w| &w.http_v4),
        ("http", true, |w| &w.http_v6),
    ]
}

fn respond_json(stream: &mut TcpStream, value: serde_json::Value) -> io::Result<()> {
    respond(stream, 200, "application/json", &value.to_string())
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

/// How a per-family counter is exposed: metric name, help, and the label
/// that distinguishes its variants (from the counter's name).
fn metric_of(counter: &str) -> (&'static str, &'static str, Option<(&'static str, &str)>) {
    // (prefix of the counter's name, metric, help, label for the rest)
    const FAMILIES: [(&str, &str, &str, &str); 5] = [
        (
            "requests_",
            "swarmd_requests_total",
            "Requests received.",
            "kind",
        ),
        (
            "responses_",
            "swarmd_responses_total",
            "Responses sent.",
            "kind",
        ),
        (
            "errors_",
            "swarmd_errors_total",
            "Bad requests, by what was wrong.",
            "kind",
        ),
        (
            "dropped_",
            "swarmd_dropped_total",
            "Requests or responses dropped, by reason.",
            "reason",
        ),
        (
            "connections_",
            "swarmd_connections_total",
            "HTTP connections, by what happened to them.",
            "event",
        ),
    ];
    for (prefix, name, help, label) in FAMILIES {
        if let Some(rest) = counter.strip_prefix(prefix) {
            return (name, help, Some((label, rest)));
        }
    }
    if counter == "bytes_received" {
        ("swarmd_received_bytes_total", "Bytes received.", None)
    } else if counter == "bytes_sent" {
        ("swarmd_sent_bytes_total", "Bytes sent.", None)
    } else {
        (
            "swarmd_other_total",
            "Other counters.",
            Some(("name", counter)),
        )
    }
}

/// The Prometheus text exposition of every counter.
pub fn prometheus(stats: &Stats) -> String {
    // metric name -> (help, type, lines)
    let mut metrics: Vec<(&'static str, &'static str, &'static str, Vec<String>)> = Vec::new();
    let mut add =
        |name: &'static str, help: &'static str, kind: &'static str, line: String| match metrics
            .iter_mut()
            .find(|m| m.0 == name)
        {
            Some(m) => m.3.push(line),
            None => metrics.push((name, help, kind, vec![line])),
        };
    for (proto, v6, pick) in families() {
        let family = if v6 { "ipv6" } else { "ipv4" };
        let first = pick(&stats.socket[0]).values();
        for (i, (counter, _)) in first.iter().enumerate() {
            let total: u64 = stats.socket.iter().map(|w| pick(w).values()[i].1).sum();
            let (name, help, label) = metric_of(counter);
            if proto == "udp" && name == "swarmd_connections_total" {
                continue;
            }
            let mut labels = format!("protocol=\"{proto}\",family=\"{family}\"");
            if let Some((k, v)) = label {
                let _ = write!(labels, ",{k}=\"{v}\"");
            }
            add(name, help, "counter", format!("{name}{{{labels}}} {total}"));
        }
    }
    type SwarmPick = fn(&crate::stats::SwarmCounters) -> &Counter;
    // (metric, labels, help, type, counter summed over swarm workers)
    let swarm_metrics: [(&'static str, &str, &'static str, &'static str, SwarmPick); 12] = [
        (
            "swarmd_swarm_announces_total",
            "",
            "Announces handled by the swarm workers.",
            "counter",
            |c| &c.announces,
        ),
        (
            "swarmd_swarm_scrapes_total",
            "",
            "Scrape parts handled by the swarm workers.",
            "counter",
            |c| &c.scrapes,
        ),
        (
            "swarmd_not_stored_total",
            "",
            "Announces answered but not stored because a limit was reached.",
            "counter",
            |c| &c.not_stored,
        ),
        (
            "swarmd_torrents_full_total",
            "",
            "Announces for new torrents refused because the torrent table was full.",
            "counter",
            |c| &c.torrents_full,
        ),
        (
            "swarmd_peers_expired_total",
            "",
            "Peers removed after their timeout.",
            "counter",
            |c| &c.peers_expired,
        ),
        (
            "swarmd_torrents_purged_total",
            "",
            "Torrents removed because the access list refuses them.",
            "counter",
            |c| &c.torrents_purged,
        ),
        (
            "swarmd_peers_purged_total",
            "",
            "Peers removed with purged torrents.",
            "counter",
            |c| &c.peers_purged,
        ),
        (
            "swarmd_torrents",
            "",
            "Torrents with peers.",
            "gauge",
            |c| &c.torrents,
        ),
        (
            "swarmd_peers",
            "{family=\"ipv4\"}",
            "Peers, by address family.",
            "gauge",
            |c| &c.peers_v4,
        ),
        (
            "swarmd_peers",
            "{family=\"ipv6\"}",
            "Peers, by address family.",
            "gauge",
            |c| &c.peers_v6,
        ),
        (
            "swarmd_seeders",
            "",
            "Peers with nothing left to download.",
            "gauge",
            |c| &c.seeders,
        ),
        (
            "swarmd_leechers",
            "",
            "Peers still downloading.",
            "gauge",
            |c| &c.leechers,
        ),
    ];
    for (name, labels, help, kind, pick) in swarm_metrics {
        add(
            name,
            help,
            kind,
            format!("{name}{labels} {}", stats.swarm_total(pick)),
        );
    }
    let alive = stats
        .workers_alive
        .load(std::sync::atomic::Ordering::Relaxed);
    add(
        "swarmd_uptime_seconds",
        "Seconds since start.",
        "gauge",
        format!(
            "swarmd_uptime_seconds {}",
            stats.started.elapsed().as_secs()
        ),
    );
    add(
        "swarmd_workers_alive",
        "Worker threads running.",
        "gauge",
        format!("swarmd_workers_alive {alive}"),
    );

    let mut out = String::with_capacity(8192);
    for (name, help, kind, lines) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}
