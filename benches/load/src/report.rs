//! Figures: the counters each load thread keeps, their sum over a time window,
//! the progress line, the one-line summary and the JSON report.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use swarmd::stats::Protocol;

use crate::check::{Invalid, Kind};
use crate::options::LoadOptions;

/// Event names in BEP 15 order (0 none, 1 completed, 2 started, 3 stopped).
pub const EVENTS: [&str; 4] = ["none", "completed", "started", "stopped"];

/// Monotonic counters of one load thread (or the sum of several).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Requests sent, by `Kind`.
    pub sent: [u64; 3],
    /// Valid responses, by `Kind`.
    pub answered: [u64; 3],
    /// BEP 15 error responses, or HTTP ones with a `failure reason`.
    pub errors: u64,
    /// Wrong responses, by `Invalid`.
    pub invalid: [u64; Invalid::COUNT],
    /// Requests that got no answer in time.
    pub timeouts: u64,
    /// Answers that came after their request had timed out.
    pub late: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    /// HTTP: connections opened again after the tracker closed them, after a
    /// time out, or after an answer that broke the framing.
    pub reconnects: u64,
    /// HTTP: requests whose connection closed before their answer came.
    pub lost: u64,
    /// Peers in all valid announce responses.
    pub peers_returned: u64,
    /// Announces sent, by event.
    pub events: [u64; 4],
}

fn add<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

fn sub<const N: usize>(a: &[u64; N], b: &[u64; N]) -> [u64; N] {
    let mut out = *a;
    for (x, y) in out.iter_mut().zip(b) {
        *x = x.saturating_sub(*y);
    }
    out
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        add(&mut self.sent, &o.sent);
        add(&mut self.answered, &o.answered);
        self.errors += o.errors;
        add(&mut self.invalid, &o.invalid);
        self.timeouts += o.timeouts;
        self.late += o.late;
        self.send_errors += o.send_errors;
        self.recv_errors += o.recv_errors;
        self.reconnects += o.reconnects;
        self.lost += o.lost;
        self.peers_returned += o.peers_returned;
        add(&mut self.events, &o.events);
    }

    /// What happened since `base` was taken.
    pub fn since(&self, base: &Counters) -> Counters {
        Counters {
            sent: sub(&self.sent, &base.sent),
            answered: sub(&self.answered, &base.answered),
            errors: self.errors.saturating_sub(base.errors),
            invalid: sub(&self.invalid, &base.invalid),
            timeouts: self.timeouts.saturating_sub(base.timeouts),
            late: self.late.saturating_sub(base.late),
            send_errors: self.send_errors.saturating_sub(base.send_errors),
            recv_errors: self.recv_errors.saturating_sub(base.recv_errors),
            reconnects: self.reconnects.saturating_sub(base.reconnects),
            lost: self.lost.saturating_sub(base.lost),
            peers_returned: self.peers_returned.saturating_sub(base.peers_returned),
            events: sub(&self.events, &base.events),
        }
    }

    pub fn total_sent(&self) -> u64 {
        self.sent.iter().sum()
    }

    pub fn total_answered(&self) -> u64 {
        self.answered.iter().sum()
    }

    pub fn total_invalid(&self) -> u64 {
        self.invalid.iter().sum()
    }
}

/// How many simulated peers the tracker should hold at the end.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerTally {
    /// Peers that announced at least once.
    pub seen: u64,
    /// Of those, peers whose last announce was `stopped`.
    pub stopped: u64,
}

/// One progress line for the last `secs` seconds.
pub fn progress_line(
    protocol: Protocol,
    elapsed: Duration,
    window: &Counters,
    secs: f64,
    measuring: bool,
) -> String {
    let per = |n: u64| n as f64 / secs.max(1e-9);
    // UDP has connect requests; HTTP has (re)connections instead.
    let third = match protocol {
        Protocol::Udp => format!(
            "connect {:.0}",
            per(window.answered[Kind::Connect as usize])
        ),
        Protocol::Http => format!("reconnects {}", window.reconnects),
    };
    format!(
        "{:>5.1}s{} sent/s {:>8.0}  responses/s {:>8.0} (announce {:.0}, scrape {:.0}, {third})  timeouts {}  errors {}  invalid {}",
        elapsed.as_secs_f64(),
        if measuring { " " } else { "w" },
        per(window.total_sent()),
        per(window.total_answered()),
        per(window.answered[Kind::Announce as usize]),
        per(window.answered[Kind::Scrape as usize]),
        window.timeouts,
        window.errors,
        window.total_invalid(),
    )
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Every figure of a run, as written to `--json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub tool: &'static str,
    /// "udp" or "http".
    pub protocol: &'static str,
    pub target: String,
    pub seconds: f64,
    pub threads: usize,
    /// UDP sockets per thread; HTTP: the most connections a thread has.
    pub sockets_per_thread: usize,
    /// UDP sockets or HTTP connections over all threads.
    pub connections: usize,
    pub torrents: u64,
    pub peers: u64,
    pub target_rate: u64,
    /// UDP: most requests in flight per socket; HTTP: per connection.
    pub inflight_per_socket: usize,
    pub requests_per_sec: f64,
    pub responses_per_sec: f64,
    pub responses_per_sec_by_kind: BTreeMap<&'static str, f64>,
    pub sent: BTreeMap<&'static str, u64>,
    pub responses: BTreeMap<&'static str, u64>,
    pub errors: u64,
    pub timeouts: u64,
    pub late: u64,
    pub invalid: u64,
    pub invalid_by_reason: BTreeMap<&'static str, u64>,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub reconnects: u64,
    pub lost: u64,
    /// Microseconds from send to receipt of valid and error responses.
    pub latency_us: Latency,
    pub peers_per_announce: f64,
    pub announce_events: BTreeMap<&'static str, u64>,
    /// Distinct simulated peers that announced at least once in the run.
    pub peers_announced: u64,
    /// Of those, the ones not stopped at the end: what the tracker should hold.
    pub live_peers: u64,
}

impl Summary {
    pub fn new(
        o: &LoadOptions,
        c: &Counters,
        hist: &Histogram<u64>,
        tally: PeerTally,
        seconds: f64,
    ) -> Summary {
        let per = |n: u64| n as f64 / seconds.max(1e-9);
        let by_kind = |a: &[u64; 3]| {
            Kind::ALL
                .iter()
                .map(|k| (k.name(), a[*k as usize]))
                .collect()
        };
        let announces = c.answered[Kind::Announce as usize];
        Summary {
            tool: "swarmd-load",
            protocol: o.protocol.name(),
            target: o.target.to_string(),
            seconds,
            threads: o.threads,
            sockets_per_thread: match o.protocol {
                Protocol::Udp => o.sockets,
                Protocol::Http => o.connections.div_ceil(o.threads),
            },
            connections: o.clients(),
            torrents: o.torrents,
            peers: o.peers,
            target_rate: o.rate,
            inflight_per_socket: o.inflight,
            requests_per_sec: per(c.total_sent()),
            responses_per_sec: per(c.total_answered()),
            responses_per_sec_by_kind: Kind::ALL
                .iter()
                .map(|k| (k.name(), per(c.answered[*k as usize])))
                .collect(),
            sent: by_kind(&c.sent),
            responses: by_kind(&c.answered),
            errors: c.errors,
            timeouts: c.timeouts,
            late: c.late,
            invalid: c.total_invalid(),
            invalid_by_reason: Invalid::ALL
                .iter()
                .map(|r| (r.name(), c.invalid[*r as usize]))
                .collect(),
            send_errors: c.send_errors,
            recv_errors: c.recv_errors,
            reconnects: c.reconnects,
            lost: c.lost,
            latency_us: Latency {
                samples: hist.len(),
                mean: hist.mean(),
                p50: hist.value_at_quantile(0.5),
                p90: hist.value_at_quantile(0.9),
                p99: hist.value_at_quantile(0.99),
                p999: hist.value_at_quantile(0.999),
                max: hist.max(),
            },
            peers_per_announce: if announces == 0 {
                0.0
            } else {
                c.peers_returned as f64 / announces as f64
            },
            announce_events: EVENTS.iter().copied().zip(c.events).collect(),
            peers_announced: tally.seen,
            live_peers: tally.seen.saturating_sub(tally.stopped),
        }
    }

    /// The one-line `key=value` summary printed on stdout.
    pub fn line(&self) -> String {
        let kind = |k: Kind| {
            self.responses_per_sec_by_kind
                .get(k.name())
                .copied()
                .unwrap_or(0.0)
        };
        format!(
            "target={} seconds={:.1} requests_per_sec={:.0} responses_per_sec={:.0} \
             announce_per_sec={:.0} scrape_per_sec={:.0} connect_per_sec={:.0} \
             p50_us={} p99_us={} p999_us={} max_us={} timeouts={} errors={} invalid={} late={} \
             reconnects={} lost={} peers_per_announce={:.1} live_peers={}",
            self.target,
            self.seconds,
            self.requests_per_sec,
            self.responses_per_sec,
            kind(Kind::Announce),
            kind(Kind::Scrape),
            kind(Kind::Connect),
            self.latency_us.p50,
            self.latency_us.p99,
            self.latency_us.p999,
            self.latency_us.max,
            self.timeouts,
            self.errors,
            self.invalid,
            self.late,
            self.reconnects,
            self.lost,
            self.peers_per_announce,
            self.live_peers,
        )
    }
}
