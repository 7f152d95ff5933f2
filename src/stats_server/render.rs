//! What the stats endpoint says: the Prometheus text exposition, the JSON
//! views, and the rates per second between two samples of the counters.
//!
//! Only series that can exist are exported: a counter of
//! [`FamilyCounters`] that one protocol never bumps (HTTP has no connect;
//! UDP has no connections) is left out for that protocol, see
//! [`crate::stats::applies`].

use std::fmt::Write as _;

use serde_json::json;

use crate::access::PasskeyCounters;
use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::stats::{
    applies, ClusterCounters, Counter, FamilyCounters, Protocol, Stats, LAG_BUCKETS,
};

/// A sample of the totals, for rates.
#[derive(Clone, Copy, Default)]
pub(crate) struct Sample {
    requests: u64,
    responses: u64,
    announces: u64,
}

impl Sample {
    pub(crate) fn of(stats: &Stats) -> Sample {
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
}

/// Rates per second between two samples.
#[derive(Clone, Copy, Default)]
pub(crate) struct Rates {
    requests: f64,
    responses: f64,
    announces: f64,
}

impl Rates {
    pub(crate) fn between(before: Sample, after: Sample, secs: f64) -> Rates {
        let secs = secs.max(1e-3);
        Rates {
            requests: after.requests.saturating_sub(before.requests) as f64 / secs,
            responses: after.responses.saturating_sub(before.responses) as f64 / secs,
            announces: after.announces.saturating_sub(before.announces) as f64 / secs,
        }
    }
}

/// `/stats`: every counter that can exist, by protocol and family, the
/// swarm workers' sums, and the rates.
pub(crate) fn json(stats: &Stats, rates: &Rates) -> String {
    let mut protocols = serde_json::Map::new();
    for (proto, v6, pick) in families() {
        let mut m = serde_json::Map::new();
        for w in &stats.socket {
            for (name, v) in pick(w).values() {
                if !applies(proto, name) {
                    continue;
                }
                let e = m.entry(name).or_insert(json!(0));
                *e = json!(e.as_u64().unwrap_or(0) + v);
            }
        }
        protocols.insert(
            format!("{}_{}", proto.name(), if v6 { "ipv6" } else { "ipv4" }),
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
            "requests": rates.requests,
            "responses": rates.responses,
            "announces": rates.announces,
        },
        "swarm": swarm,
        "protocols": protocols,
        "events": {
            "subscribers": stats.events.subscribers.get(),
            "events_sent": stats.events.events_sent.get(),
            "dropped_slow": stats.events.dropped_slow.get(),
            "refused": stats.events.refused.get(),
        },
        "snapshot": {
            "last_success_timestamp_seconds": stats.snapshot.last_success.get(),
            "duration_seconds": stats.snapshot.duration_us.get() as f64 / 1e6,
            "bytes": stats.snapshot.bytes.get(),
            "written": stats.snapshot.written.get(),
            "failures": stats.snapshot.failures.get(),
        },
        "cluster": stats.cluster.as_deref().map(cluster_json),
    })
    .to_string()
}

/// The `[cluster]` series (only when it is on): changes, batches, the
/// engine gauge, warm-up, the lag histogram and each remote node's last
/// change.
fn cluster_metrics(
    c: &ClusterCounters,
    add: &mut impl FnMut(&'static str, &'static str, &'static str, String),
) {
    let counters: [(&'static str, &'static str, &str, &AtomicU64); 8] = [
        (
            "swarmd_cluster_changes_published_total",
            "Local peer changes published to the engine.",
            "",
            &c.published,
        ),
        (
            "swarmd_cluster_changes_applied_total",
            "Remote peer changes applied (warm-up included).",
            "",
            &c.applied,
        ),
        (
            "swarmd_cluster_changes_dropped_total",
            "Peer changes dropped on a full queue.",
            "",
            &c.dropped,
        ),
        (
            "swarmd_cluster_changes_unpublished_total",
            "Local peer changes not published, the engine being down.",
            "",
            &c.unpublished,
        ),
        (
            "swarmd_cluster_batches_total",
            "Messages of peer changes.",
            "{direction=\"published\"}",
            &c.batches_published,
        ),
        (
            "swarmd_cluster_batches_total",
            "Messages of peer changes.",
            "{direction=\"received\"}",
            &c.batches_received,
        ),
        (
            "swarmd_cluster_malformed_total",
            "Messages from the engine that could not be read.",
            "",
            &c.malformed,
        ),
        (
            "swarmd_cluster_warm_peers_total",
            "Peers received by warm-up.",
            "",
            &c.warm_peers,
        ),
    ];
    for (name, help, labels, v) in counters {
        add(
            name,
            help,
            "counter",
            format!("{name}{labels} {}", v.load(Relaxed)),
        );
    }
    add(
        "swarmd_cluster_engine_connected",
        "1 while connected to the message engine.",
        "gauge",
        format!(
            "swarmd_cluster_engine_connected {}",
            c.connected.load(Relaxed)
        ),
    );
    add(
        "swarmd_cluster_warm_duration_seconds",
        "How long this node's warm-up took.",
        "gauge",
        format!(
            "swarmd_cluster_warm_duration_seconds {:.3}",
            c.warm_duration_ms.load(Relaxed) as f64 / 1e3
        ),
    );
    let name = "swarmd_cluster_lag_seconds";
    let help = "Lag of remote peer changes from publish to apply (wall clocks of two nodes).";
    let mut total = 0;
    for (i, bucket) in c.lag_buckets.iter().enumerate() {
        total += bucket.load(Relaxed);
        let le = LAG_BUCKETS
            .get(i)
            .map_or("+Inf".to_string(), |b| b.to_string());
        add(
            name,
            help,
            "histogram",
            format!("{name}_bucket{{le=\"{le}\"}} {total}"),
        );
    }
    let sum = c.lag_sum_us.load(Relaxed) as f64 / 1e6;
    add(name, help, "histogram", format!("{name}_sum {sum:.6}"));
    add(name, help, "histogram", format!("{name}_count {total}"));
    for (node, seen) in c.last_seen.lock().iter() {
        let node: String = node
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        add(
            "swarmd_cluster_node_last_change_timestamp_seconds",
            "Unix time of the last change seen from each remote node.",
            "gauge",
            format!("swarmd_cluster_node_last_change_timestamp_seconds{{node=\"{node}\"}} {seen}"),
        );
    }
}

/// The `[cluster]` object of `/stats`.
fn cluster_json(c: &ClusterCounters) -> serde_json::Value {
    let nodes: serde_json::Map<String, serde_json::Value> = c
        .last_seen
        .lock()
        .iter()
        .map(|(n, t)| (n.clone(), json!(t)))
        .collect();
    json!({
        "engine_connected": c.connected.load(Relaxed) == 1,
        "changes_published": c.published.load(Relaxed),
        "changes_applied": c.applied.load(Relaxed),
        "changes_dropped": c.dropped.load(Relaxed),
        "changes_unpublished": c.unpublished.load(Relaxed),
        "batches_published": c.batches_published.load(Relaxed),
        "batches_received": c.batches_received.load(Relaxed),
        "malformed": c.malformed.load(Relaxed),
        "warm_peers": c.warm_peers.load(Relaxed),
        "lag_p50_seconds": c.lag_quantile(0.5),
        "lag_p99_seconds": c.lag_quantile(0.99),
        "nodes_last_change_timestamp_seconds": nodes,
    })
}

/// `/passkeys`: one object per user (or key).
pub(crate) fn passkeys_json(list: Vec<(String, PasskeyCounters)>) -> String {
    let list: Vec<_> = list
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
    serde_json::Value::from(list).to_string()
}

/// `/torrents?top=N`.
pub(crate) fn torrents_json(list: Vec<(InfoHash, ScrapeStats)>) -> String {
    let list: Vec<_> = list.into_iter().map(|(h, s)| torrent_json(h, s)).collect();
    serde_json::Value::from(list).to_string()
}

/// One torrent's counts (`/torrents/<hex>`, and each item of `/torrents`).
pub(crate) fn torrent_json(h: InfoHash, s: ScrapeStats) -> serde_json::Value {
    json!({
        "info_hash": h.to_string(),
        "seeders": s.seeders,
        "leechers": s.leechers,
        "completed": s.completed,
    })
}

type Pick = fn(&crate::stats::SocketCounters) -> &FamilyCounters;

fn families() -> [(Protocol, bool, Pick); 4] {
    [
        (Protocol::Udp, false, |w| &w.udp_v4),
        (Protocol::Udp, true, |w| &w.udp_v6),
        (Protocol::Http, false, |w| &w.http_v4),
        (Protocol::Http, true, |w| &w.http_v6),
    ]
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
            if !applies(proto, counter) {
                continue;
            }
            let (name, help, label) = metric_of(counter);
            let mut labels = format!("protocol=\"{}\",family=\"{family}\"", proto.name());
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
        "Socket and swarm worker threads running.",
        "gauge",
        format!("swarmd_workers_alive {alive}"),
    );
    let snap = &stats.snapshot;
    let snapshot_metrics: [(&'static str, &'static str, &'static str, String); 5] = [
        (
            "swarmd_snapshot_last_success_timestamp_seconds",
            "Unix time of the last state snapshot written whole (0: none yet).",
            "gauge",
            snap.last_success.get().to_string(),
        ),
        (
            "swarmd_snapshot_duration_seconds",
            "How long the last state snapshot took to write.",
            "gauge",
            format!("{:.6}", snap.duration_us.get() as f64 / 1e6),
        ),
        (
            "swarmd_snapshot_bytes",
            "Size of the last state snapshot.",
            "gauge",
            snap.bytes.get().to_string(),
        ),
        (
            "swarmd_snapshots_total",
            "State snapshots written whole.",
            "counter",
            snap.written.get().to_string(),
        ),
        (
            "swarmd_snapshot_failures_total",
            "State snapshots that could not be written.",
            "counter",
            snap.failures.get().to_string(),
        ),
    ];
    for (name, help, kind, value) in snapshot_metrics {
        add(name, help, kind, format!("{name} {value}"));
    }
    let ev = &stats.events;
    let events_metrics: [(&'static str, &'static str, &'static str, u64); 4] = [
        (
            "swarmd_events_subscribers",
            "Subscribers of /events connected now.",
            "gauge",
            ev.subscribers.get(),
        ),
        (
            "swarmd_events_sent_total",
            "Per-torrent events queued for /events subscribers.",
            "counter",
            ev.events_sent.get(),
        ),
        (
            "swarmd_events_dropped_slow_total",
            "Subscribers of /events sent resync and closed for falling behind.",
            "counter",
            ev.dropped_slow.get(),
        ),
        (
            "swarmd_events_refused_total",
            "Subscriptions to /events refused (503) at max_event_subscribers.",
            "counter",
            ev.refused.get(),
        ),
    ];
    for (name, help, kind, value) in events_metrics {
        add(name, help, kind, format!("{name} {value}"));
    }
    if let Some(c) = &stats.cluster {
        cluster_metrics(c, &mut add);
    }

    let mut out = String::with_capacity(8192);
    for (name, help, kind, lines) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out.push_str(&crate::access::database::prometheus(&stats.database));
    out
}
