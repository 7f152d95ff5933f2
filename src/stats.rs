//! Counters bumped on the hot path, one set per worker.
//!
//! Each counter has one writer at a time, so it is bumped with a relaxed
//! load and store rather than a locked read-modify-write: a socket worker's
//! counters are written by that worker alone, and a shard's by whoever holds
//! the shard's lock (its swarm worker, or with inline dispatch the socket
//! worker handling a batch), the lock ordering the writes. Each set is
//! cache-padded so workers never share a line. Readers (the
//! stats endpoint, tests) sum over workers with relaxed loads: totals are a
//! moment's snapshot, never torn per counter.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

/// A counter with one writer at a time (see the module's comment).
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

macro_rules! counter_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Default, Debug)]
        pub struct $name { $($(#[$fm])* pub $field: Counter,)* }

        impl $name {
            /// (name, value) of every counter, in declaration order.
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.get()),)*]
            }
        }
    };
}

counter_struct!(
    /// What one socket worker saw of one protocol and address family.
    FamilyCounters {
        /// UDP only.
        requests_connect,
        requests_announce,
        requests_scrape,
        /// UDP only.
        responses_connect,
        responses_announce,
        responses_scrape,
        responses_error,
        /// UDP only: bad connection id, dropped without reply.
        errors_connection_id,
        /// Too short, bad magic, unknown action or truncated: dropped.
        errors_malformed,
        /// Bad field with a valid connection id: answered with an error.
        errors_request,
        /// Announces for a torrent the access list refuses: answered with
        /// "torrent not allowed".
        errors_not_allowed,
        /// Announces and scrapes with a missing or unknown passkey (when
        /// passkeys are on): answered with an error.
        errors_passkey,
        /// Announces without a token when tokens are on.
        errors_token_required,
        /// Announces with a token past its `exp` or before its `nbf`.
        errors_token_expired,
        /// Announces with a good token that names other torrents.
        errors_token_torrent,
        /// Announces with a token whose signature, key (`kid`) or
        /// algorithm does not check out.
        errors_token_signature,
        /// Announces with a token for another issuer or audience, or whose
        /// claims are not a swarmd token's.
        errors_token_invalid,
        /// Announces with a token never seen when the second's signature
        /// checks were spent (`access.token.verify_per_second`).
        errors_token_busy,
        /// Batches to a swarm worker that found its channel full: requests
        /// dropped.
        dropped_channel_full,
        /// UDP only: responses the kernel would not take (send buffer
        /// full). An HTTP answer waits for the socket instead.
        dropped_send,
        /// Scrapes given up after their parts did not all come back.
        dropped_scrape_timeout,
        bytes_received,
        bytes_sent,
        /// HTTP only.
        connections_accepted,
        /// HTTP only: closed at once, the worker being at max_connections
        /// with every connection busy, or the client's address at
        /// max_connections_per_ip.
        connections_refused,
        /// HTTP only: closed after idle_timeout (nothing asked, or an
        /// answer left unread).
        connections_timed_out,
        /// HTTP only: closed, a request head not complete within
        /// request_timeout of its first byte (slowloris).
        connections_too_slow,
        /// HTTP only: closed to make room for a new connection, the worker
        /// being at max_connections; the one that had waited longest
        /// without a complete request goes.
        connections_evicted,
    }
);

/// The protocols a socket worker speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Http,
}

impl Protocol {
    /// Its name in metric labels and JSON keys.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Http => "http",
        }
    }
}

/// Whether a counter of [`FamilyCounters`] (by its name) can ever move for
/// `protocol`: both protocols share the struct, but HTTP has no connect, no
/// connection ids and no dropped sends, and UDP has no connections. What
/// can't move isn't exported, so a dashboard never shows a series that
/// cannot exist.
pub fn applies(protocol: Protocol, counter: &str) -> bool {
    match protocol {
        Protocol::Udp => !counter.starts_with("connections_"),
        Protocol::Http => !matches!(
            counter,
            "requests_connect" | "responses_connect" | "errors_connection_id" | "dropped_send"
        ),
    }
}

/// One socket worker's counters, by address family.
#[derive(Default, Debug)]
pub struct SocketCounters {
    pub udp_v4: FamilyCounters,
    pub udp_v6: FamilyCounters,
    pub http_v4: FamilyCounters,
    pub http_v6: FamilyCounters,
}

impl SocketCounters {
    #[inline]
    pub fn udp(&self, v6: bool) -> &FamilyCounters {
        if v6 {
            &self.udp_v6
        } else {
            &self.udp_v4
        }
    }

    #[inline]
    pub fn http(&self, v6: bool) -> &FamilyCounters {
        if v6 {
            &self.http_v6
        } else {
            &self.http_v4
        }
    }
}

counter_struct!(
    /// One swarm worker's counters and gauges.
    SwarmCounters {
        announces,
        scrapes,
        /// Announces that a limit kept out of the swarm.
        not_stored,
        /// Of those, announces for new torrents refused because the torrent
        /// table was full (`max_torrents`).
        torrents_full,
        /// Peers removed by cleaning after their timeout.
        peers_expired,
        /// Torrents and their peers purged by cleaning because the access
        /// list no longer allows them.
        torrents_purged,
        peers_purged,
        /// Gauges, published after every batch and every cleaning step.
        torrents,
        peers_v4,
        peers_v6,
        seeders,
        leechers,
    }
);

counter_struct!(
    /// The state snapshots written while running and on stop (see
    /// [`crate::snapshot`]); written by the one thread that writes them.
    SnapshotCounters {
        /// Unix time (seconds) of the last snapshot written whole; 0: none.
        last_success,
        /// How long the last one took, microseconds.
        duration_us,
        /// Its size, bytes.
        bytes,
        written,
        failures,
    }
);

counter_struct!(
    /// The access lists' PostgreSQL session (`[access.database]`); written
    /// by its one thread.
    DatabaseCounters {
        /// 1 when `[access.database]` is on (its metrics are exported).
        enabled,
        /// Gauge: 1 while connected.
        connected,
        /// Loads of both lists that were swapped in (or found unchanged).
        reloads_ok,
        /// Loads that failed (query error, bad row, no connection): the old
        /// lists stayed.
        reloads_failed,
        /// Bad rows in the queries' results.
        rows_rejected,
        connect_failures,
        /// Write-back transactions committed, and failed (kept, retried).
        write_backs_ok,
        write_backs_failed,
        /// Gauge: users whose traffic waits for a commit.
        write_back_pending_users,
        /// Users' increases dropped, `write_back_max_users` being pending.
        write_back_dropped,
    }
);

counter_struct!(
    /// The `/events` feed; written by the stats thread alone.
    EventsCounters {
        /// Gauge: subscribers connected now.
        subscribers,
        /// Events queued for subscribers (one per torrent per subscriber).
        events_sent,
        /// Subscribers that fell too far behind: sent `resync` and closed.
        dropped_slow,
        /// Subscriptions answered 503, `max_event_subscribers` being
        /// reached.
        refused,
    }
);

/// All counters of a running tracker.
#[derive(Debug)]
pub struct Stats {
    pub socket: Vec<CachePadded<SocketCounters>>,
    pub swarm: Vec<CachePadded<SwarmCounters>>,
    /// Each swarm worker's largest torrents, as of its last cleaning pass.
    pub top: Vec<
        parking_lot::Mutex<Vec<(crate::protocol::InfoHash, crate::protocol::udp::ScrapeStats)>>,
    >,
    /// Socket and swarm worker threads running: set here, lowered by the
    /// supervisor as they end. Other threads (stats, access-reload) are not
    /// counted; their death stops the process instead.
    pub workers_alive: std::sync::atomic::AtomicUsize,
    /// Socket and swarm workers started.
    pub workers_started: usize,
    pub started: std::time::Instant,
    pub snapshot: SnapshotCounters,
    pub database: DatabaseCounters,
    pub events: EventsCounters,
    /// With `[cluster]` only.
    pub cluster: Option<std::sync::Arc<ClusterCounters>>,
}

/// Upper bounds (seconds) of the replication lag histogram's buckets.
pub const LAG_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The cluster's counters (see [`crate::cluster`]). Several threads write
/// some of them (shards drop, swarm workers apply), so these are atomic
/// adds; none is bumped per request, only per batch or per remote change.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Local peer changes published to the engine.
    pub published: AtomicU64,
    /// Messages of changes published.
    pub batches_published: AtomicU64,
    /// Messages of changes received from other nodes.
    pub batches_received: AtomicU64,
    /// Remote peer changes applied to the shards (warm-up included).
    pub applied: AtomicU64,
    /// Changes dropped on a full queue: shard to cluster thread, or
    /// cluster thread to shard.
    pub dropped: AtomicU64,
    /// Local changes not published because the engine was down.
    pub unpublished: AtomicU64,
    /// Remote messages that could not be read (another version, cut).
    pub malformed: AtomicU64,
    /// 1 while connected to the engine.
    pub connected: AtomicU64,
    /// Peers received by warm-ups, and how long the last one took (ms).
    pub warm_peers: AtomicU64,
    pub warm_duration_ms: AtomicU64,
    /// Lag from publish to apply: changes per [`LAG_BUCKETS`] bucket (and
    /// one more for above the last), the sum of their lags in microseconds.
    pub lag_buckets: [AtomicU64; LAG_BUCKETS.len() + 1],
    pub lag_sum_us: AtomicU64,
    /// Per remote node, Unix time (seconds) of its last change seen.
    pub last_seen: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl ClusterCounters {
    /// Counts the lag of `changes` applied together, `lag_us`
    /// microseconds each: the histogram is of changes, not of batches, so
    /// its p99 is what 99 % of peers waited.
    pub fn observe_lag(&self, lag_us: u64, changes: u64) {
        let secs = lag_us as f64 / 1e6;
        let i = LAG_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LAG_BUCKETS.len());
        self.lag_buckets[i].fetch_add(changes, Relaxed);
        self.lag_sum_us.fetch_add(lag_us * changes, Relaxed);
    }

    /// The lag below which a share `q` (0 to 1) of changes were applied:
    /// the upper bound of the bucket it falls in (None: none yet, or above
    /// the last bucket).
    pub fn lag_quantile(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self.lag_buckets.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return LAG_BUCKETS.get(i).copied();
            }
        }
        None
    }
}

impl Stats {
    pub fn new(socket_workers: usize, swarm_workers: usize) -> Stats {
        Stats {
            socket: (0..socket_workers).map(|_| Default::default()).collect(),
            swarm: (0..swarm_workers).map(|_| Default::default()).collect(),
            top: (0..swarm_workers).map(|_| Default::default()).collect(),
            workers_alive: std::sync::atomic::AtomicUsize::new(socket_workers + swarm_workers),
            workers_started: socket_workers + swarm_workers,
            started: std::time::Instant::now(),
            snapshot: SnapshotCounters::default(),
            database: DatabaseCounters::default(),
            events: EventsCounters::default(),
            cluster: None,
        }
    }

    /// Sum of one UDP counter over socket workers, by family (v4, v6).
    pub fn udp_total(&self, pick: impl Fn(&FamilyCounters) -> &Counter) -> (u64, u64) {
        self.socket.iter().fold((0, 0), |(a, b), s| {
            (a + pick(&s.udp_v4).get(), b + pick(&s.udp_v6).get())
        })
    }

    /// Sum of one HTTP counter over socket workers, by family (v4, v6).
    pub fn http_total(&self, pick: impl Fn(&FamilyCounters) -> &Counter) -> (u64, u64) {
        self.socket.iter().fold((0, 0), |(a, b), s| {
            (a + pick(&s.http_v4).get(), b + pick(&s.http_v6).get())
        })
    }

    /// True while every socket and swarm worker runs.
    pub fn healthy(&self) -> bool {
        self.workers_alive.load(std::sync::atomic::Ordering::SeqCst) == self.workers_started
    }

    /// Sum of one swarm counter over swarm workers.
    pub fn swarm_total(&self, pick: impl Fn(&SwarmCounters) -> &Counter) -> u64 {
        self.swarm.iter().map(|s| pick(s).get()).sum()
    }
}
