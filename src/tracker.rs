//! Starting and stopping a tracker: binds the sockets, makes the channels,
//! spawns the named worker threads, and watches them.
//!
//! [`start`] returns once every socket is bound, so its caller (the binary,
//! or a test that bound port 0) can use the addresses at once: returning is
//! the ready signal. Any thread it starts (workers, stats, access-reload)
//! that ends for any reason while the tracker runs is reported on
//! [`Tracker::deaths`] (see `supervise`), so the binary exits instead of
//! living on half dead.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::access::{self, Access, Ledger, PasskeyCounters};
mod bind;
mod reload;

pub(crate) use reload::socket_settings;
pub use reload::Reloader;

use crate::config::{self, Config};
use crate::snapshot::file::swarms_at_start;
use crate::stats::Stats;
pub use crate::stats_server::TrackerView;
use crate::supervise::{spawn, spawn_helper};
use crate::swarm::Swarms;
use crate::workers::dispatch::Dispatch;
use crate::workers::socket::{SocketWorker, Sockets, WAKE_TOKEN};
use crate::workers::swarm::{Inline, Shard, SwarmWorker};
use crate::workers::{Control, SharedSettings, Shutdown, Wake};

/// Why a tracker could not start.
#[derive(Debug)]
pub enum StartError {
    /// An address could not be bound (taken, not available, no permission).
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        error: io::Error,
    },
    /// Some other system resource failed (threads, poll, eventfd).
    Io(io::Error),
    /// An access list or passkeys file is bad: file, line and reason.
    Access(String),
    /// The snapshot's directory (`[state] path`) is not writable.
    State(String),
    /// `[cluster]`: the secret file can't be read or is too short.
    Cluster(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind { proto, addr, error } => {
                write!(f, "cannot listen on {proto} {addr}: {error}")
            }
            StartError::Io(e) => write!(f, "cannot start: {e}"),
            StartError::Access(e) | StartError::State(e) | StartError::Cluster(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Io(e)
    }
}

/// A running tracker.
pub struct Tracker {
    udp_addrs: Vec<SocketAddr>,
    http_addrs: Vec<SocketAddr>,
    stats: Arc<Stats>,
    shutdown: Arc<Shutdown>,
    wakes: Arc<Vec<Wake>>,
    socket_threads: Vec<JoinHandle<()>>,
    swarm_threads: Vec<JoinHandle<()>>,
    deaths: Receiver<String>,
    access: Arc<Access>,
    /// The `access-reload` thread, stopped by dropping the sender.
    access_reload: Option<(Sender<()>, JoinHandle<()>)>,
    /// The `access-db` thread, with `[access.database]`.
    database: Option<access::database::Database>,
    view: TrackerView,
    stats_addr: Option<SocketAddr>,
    stats_waker: Option<mio::Waker>,
    stats_thread: Option<JoinHandle<()>>,
    reloader: Reloader,
    /// For helper threads started after [`start`] (see
    /// [`Tracker::spawn_helper`]).
    death_tx: Sender<String>,
    snapshots: Option<crate::snapshot::Snapshots>,
    cluster: Option<crate::cluster::Cluster>,
}

/// Starts a tracker with `config`: returns once every socket is bound.
pub fn start(config: &Config) -> Result<Tracker, StartError> {
    let access = Arc::new(Access::load(&config.access).map_err(StartError::Access)?);
    let socket_workers = config.workers.socket_workers.get();
    let swarm_workers = config.workers.swarm_workers.get();
    let capacity = config.workers.channel_capacity.get() as usize;
    // The state snapshot is loaded before the sockets open: no client sees
    // the swarms half loaded.
    if let Some(path) = config.state.path() {
        crate::snapshot::file::check_writable(path).map_err(StartError::State)?;
    }
    let (mut plain, mut with_ids) = if config.swarm.peer_ids {
        let ids = swarms_at_start(config, swarm_workers, Swarms::with_peer_ids);
        (Vec::new().into_iter(), ids)
    } else {
        let plain = swarms_at_start(config, swarm_workers, Swarms::new);
        (plain, Vec::new().into_iter())
    };
    let mut exported: Vec<crate::snapshot::writer::SharedShard> = Vec::new();

    // sockets[worker] holds that worker's socket for each address.
    let mut sockets: Vec<Sockets> = (0..socket_workers)
        .map(|_| Sockets {
            udp: Vec::new(),
            http: Vec::new(),
        })
        .collect();
    let mut udp_addrs = Vec::new();
    for &addr in &config.udp.addresses {
        let bound = bind::bind_all(addr, false, socket_workers, config)?;
        udp_addrs.push(bound[0].local_addr()?.as_socket().unwrap_or(addr));
        for (w, s) in bound.into_iter().enumerate() {
            sockets[w].udp.push(s.into());
        }
    }
    let mut http_addrs = Vec::new();
    for &addr in &config.http.addresses {
        let bound = bind::bind_all(addr, true, socket_workers, config)?;
        http_addrs.push(bound[0].local_addr()?.as_socket().unwrap_or(addr));
        for (w, s) in bound.into_iter().enumerate() {
            sockets[w].http.push(s.into());
        }
    }
    // The one branch that turns the cluster on: without `[cluster]`, no
    // links, no change logs, no thread.
    let links = config.cluster.as_ref().map(crate::cluster::Links::new);
    let mut stats = Stats::new(socket_workers, swarm_workers);
    stats.cluster = links.as_ref().map(|l| l.counters.clone());
    let stats = Arc::new(stats);
    let shutdown = Arc::new(Shutdown::new());
    let started = Instant::now();
    let ids =
        crate::cluster::connection_ids(config.cluster.as_ref()).map_err(StartError::Cluster)?;
    let (death_tx, deaths) = crossbeam_channel::unbounded();
    // Before any worker runs: none serves lists the database hasn't given.
    let database = access::database::start(&access, &config.access, &stats, |run| {
        spawn_helper("access-db", &death_tx, run)
    })
    .map_err(StartError::Access)?;

    let mut polls = Vec::with_capacity(socket_workers);
    let mut wakes = Vec::with_capacity(socket_workers);
    for _ in 0..socket_workers {
        let poll = mio::Poll::new()?;
        wakes.push(Wake {
            waker: mio::Waker::new(poll.registry(), WAKE_TOKEN)?,
            sleeping: Default::default(),
        });
        polls.push(poll);
    }
    let wakes = Arc::new(wakes);

    // Channels between the two kinds of worker, with channel dispatch only.
    let channel = config.workers.dispatch == config::Dispatch::Channel;
    let (request_txs, request_rxs): (Vec<_>, Vec<_>) = if channel {
        (0..swarm_workers).map(|_| bounded(capacity)).unzip()
    } else {
        let never = (0..swarm_workers).map(|_| crossbeam_channel::never());
        (Vec::new(), never.collect())
    };
    let (response_txs, response_rxs): (Vec<_>, Vec<_>) = if channel {
        (0..socket_workers).map(|_| bounded(capacity)).unzip()
    } else {
        (Vec::new(), Vec::new())
    };

    // Raised by the stats endpoint while `/events` has a subscriber.
    let events_on = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Remote changes come on the control channel too: room for `queue`
    // batches of them.
    let control_capacity = 16 + config.cluster.as_ref().map_or(0, |c| c.queue as usize);
    let (controls, control_rxs): (Vec<_>, Vec<_>) = (0..swarm_workers)
        .map(|_| bounded(control_capacity))
        .unzip();

    let mut swarm_threads = Vec::with_capacity(swarm_workers);
    // With inline dispatch the socket workers handle batches against these.
    let mut inline: Vec<Arc<dyn Inline>> = Vec::new();
    for (id, (rx, control)) in request_rxs.into_iter().zip(control_rxs).enumerate() {
        // The same worker over swarms with or without peer ids.
        macro_rules! worker {
            ($swarms:expr) => {{
                let mut swarms = $swarms;
                swarms.set_top_len(config.stats.top_torrents);
                let shard = Arc::new(parking_lot::Mutex::new(Shard {
                    id,
                    swarms,
                    stats: stats.clone(),
                    started,
                    ledger: Ledger::new(config.swarm.peer_timeout.get()),
                    lookups: Vec::new(),
                    events_on: events_on.clone(),
                    changes: links
                        .as_ref()
                        .map(|l| l.change_log(config.swarm.peer_timeout.get())),
                }));
                if !channel {
                    inline.push(shard.clone());
                }
                exported.push(shard.clone());
                let worker = SwarmWorker {
                    shard,
                    requests: rx,
                    control,
                    responses: response_txs.clone(),
                    wakes: wakes.clone(),
                    cleaning_interval: Duration::from_secs(
                        config.swarm.cleaning_interval.get() as u64
                    ),
                    access: access.reader(),
                    scratch: Vec::new(),
                };
                Box::new(move || worker.run()) as Box<dyn FnOnce() + Send>
            }};
        }
        let run = if config.swarm.peer_ids {
            worker!(with_ids
                .next()
                .unwrap_or_else(|| Swarms::with_peer_ids(config.swarm_config())))
        } else {
            worker!(plain
                .next()
                .unwrap_or_else(|| Swarms::new(config.swarm_config())))
        };
        swarm_threads.push(spawn(format!("swarm-{id}"), &death_tx, &stats, run)?);
    }
    drop(response_txs);

    let shared_settings = Arc::new(SharedSettings::new(socket_settings(config)));
    let mut socket_threads = Vec::with_capacity(socket_workers);
    let mut response_rxs = response_rxs.into_iter();
    for (id, (poll, socks)) in polls.into_iter().zip(sockets).enumerate() {
        let dispatch = match response_rxs.next() {
            Some(rx) => Dispatch::channel(id, request_txs.clone(), rx),
            None => Dispatch::inline(inline.clone()),
        };
        let worker = SocketWorker::new(
            id,
            poll,
            socks,
            ids.clone(),
            dispatch,
            wakes.clone(),
            shutdown.clone(),
            stats.clone(),
            shared_settings.clone(),
            started,
        )?
        .with_access(access.reader());
        socket_threads.push(spawn(
            format!("socket-{id}"),
            &death_tx,
            &stats,
            move || {
                if let Err(e) = worker.run() {
                    log::error!("socket-{id} failed: {e}");
                }
            },
        )?);
    }
    drop(request_txs);

    let view = TrackerView {
        stats: stats.clone(),
        controls,
        access: access.clone(),
        events_on,
    };
    let mut stats_addr = None;
    let mut stats_waker = None;
    let mut stats_thread = None;
    if let Some(addr) = config.stats.socket_addr() {
        let (server, bound, waker) = crate::stats_server::bind(
            addr,
            view.clone(),
            shutdown.clone(),
            Duration::from_secs(config.stats.interval.get() as u64),
            config.stats.top_torrents * swarm_workers,
            crate::stats_server::EventsSettings::of(&config.stats),
        )
        .map_err(|error| StartError::Bind {
            proto: "stats (TCP)",
            addr,
            error,
        })?;
        stats_addr = Some(bound);
        stats_waker = Some(waker);
        stats_thread = Some(spawn_helper("stats", &death_tx, move || server.run())?);
    }
    let access_reload = match config.access.reload_interval {
        // The database's session reloads on its own timer.
        _ if database.is_some() => None,
        0 => None,
        secs => {
            let (stop, stopped) = bounded::<()>(0);
            let shared = access.clone();
            let interval = Duration::from_secs(secs as u64);
            let handle = spawn_helper("access-reload", &death_tx, move || {
                access::reload_every(shared, interval, stopped)
            })?;
            Some((stop, handle))
        }
    };
    let cluster_shards = exported.clone();
    let snapshots = match config.state.path() {
        Some(path) => Some(crate::snapshot::Snapshots::start(
            path.to_path_buf(),
            config.state.interval,
            config.swarm.peer_ids,
            config.swarm.peer_timeout.get(),
            exported,
            stats.clone(),
            |run| spawn_helper("snapshot", &death_tx, run),
        )?),
        None => None,
    };
    let cluster =
        crate::cluster::Cluster::start_for(config, links, &view.controls, cluster_shards, |run| {
            spawn_helper("cluster", &death_tx, run)
        })?;
    let reloader = Reloader {
        config: Arc::new(parking_lot::Mutex::new(config.clone())),
        controls: view.controls.clone(),
        shared_settings,
        access: access.clone(),
    };
    Ok(Tracker {
        access,
        access_reload,
        database,
        stats_addr,
        stats_waker,
        stats_thread,
        reloader,
        death_tx,
        snapshots,
        cluster,
        view,
        udp_addrs,
        http_addrs,
        stats,
        shutdown,
        wakes,
        socket_threads,
        swarm_threads,
        deaths,
    })
}

impl Tracker {
    /// The bound UDP addresses, in the order of `udp.addresses`, with the
    /// ports the kernel chose for port 0.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The bound HTTP addresses, in the order of `http.addresses`.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The stats endpoint's address, when it is on.
    pub fn stats_addr(&self) -> Option<SocketAddr> {
        self.stats_addr
    }

    /// A handle for the stats endpoint.
    pub fn view(&self) -> TrackerView {
        self.view.clone()
    }

    /// Applies what can change without a restart: see [`Reloader::reload`].
    pub fn reload(&self, new: &Config) -> Vec<&'static str> {
        self.reloader.reload(new)
    }

    /// A handle that reloads this tracker, for a thread of its own.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Starts a helper thread under the tracker's supervision: named, and
    /// reported on [`Tracker::deaths`] when it ends. It is not joined by
    /// [`Tracker::stop`]: its owner decides whether to wait for it.
    pub fn spawn_helper(
        &self,
        name: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        spawn_helper(name, &self.death_tx, f)
    }

    /// Re-reads the access list and passkeys files and swaps them in
    /// without stopping announces. On a bad file the old lists stay and the
    /// error names the file, the line and the reason.
    pub fn reload_access(&self) -> Result<(), String> {
        self.access.reload()
    }

    /// Counters per passkey user (or per `key-` tag, for keys listed
    /// without a user: see [`crate::access::passkey_tag`]; a key itself is
    /// never shown), sorted by that label; empty when passkeys are off.
    /// They grow from start-up (and survive reloads while the key stays listed).
    pub fn passkey_stats(&self) -> Vec<(String, PasskeyCounters)> {
        self.access.passkey_stats()
    }

    /// The shared access lists (for a reload with a new `[access]` table:
    /// [`Access::reload_with`]).
    pub fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// Names of the tracker's threads (workers, `stats`, `access-reload`,
    /// and those of [`Tracker::spawn_helper`]) as they end. While the
    /// tracker runs, any message here means one died.
    pub fn deaths(&self) -> &Receiver<String> {
        &self.deaths
    }

    /// Stops in order: socket workers stop reading, hand over what they
    /// read, send the answers that come back, and exit; then the swarm
    /// workers are told to stop. Returns the names of threads that
    /// panicked, if any.
    pub fn stop(self) -> Result<(), String> {
        self.shutdown.request();
        for w in self.wakes.iter() {
            let _ = w.waker.wake();
        }
        if let Some(w) = &self.stats_waker {
            let _ = w.wake();
        }
        let mut panicked = Vec::new();
        let mut join = |h: JoinHandle<()>| {
            let name = h.thread().name().unwrap_or("?").to_string();
            if h.join().is_err() {
                panicked.push(name);
            }
        };
        // The stats loop sees the flag at its next wake-up, which the waker
        // makes immediate: no client can hold it up.
        self.stats_thread.into_iter().for_each(&mut join);
        // Socket workers first: they hand over what they read and wait for
        // the answers, so the swarm workers stop only after them.
        self.socket_threads.into_iter().for_each(&mut join);
        // What the last batches changed is published before the shards stop.
        let cluster_ok = self.cluster.is_none_or(|c| c.stop());
        for c in &self.view.controls {
            // Fails only when that worker is gone already.
            let _ = c.send(Control::Stop);
        }
        self.swarm_threads.into_iter().for_each(&mut join);
        if !cluster_ok {
            panicked.push("cluster".into());
        }
        // Nothing changes the swarms now: the last snapshot is exact. A
        // failure is logged and counted; the stop goes on.
        if let Some(snapshots) = self.snapshots {
            let _ = snapshots.stop();
        }
        // After the swarm workers: its last write-back has all the traffic.
        if let Some(database) = self.database {
            if !database.stop() {
                panicked.push("access-db".into());
            }
        }
        if let Some((stop, handle)) = self.access_reload {
            drop(stop);
            // Joined only if it ends soon: it may be waiting for (or doing)
            // a reload of big files, which must not hold up a stop. Left
            // alone it can do no harm: a reload swaps whole lists.
            let deadline = Instant::now() + Duration::from_millis(100);
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if handle.is_finished() && handle.join().is_err() {
                panicked.push("access-reload".into());
            }
        }
        if panicked.is_empty() {
            Ok(())
        } else {
            Err(format!("worker threads panicked: {}", panicked.join(", ")))
        }
    }
}
