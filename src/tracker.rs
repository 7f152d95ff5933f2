//! Starting and stopping a tracker: binds the sockets, makes the channels,
//! spawns the named worker threads, and watches them.
//!
//! [`start`] returns once every socket is bound, so its caller (the binary,
//! or a test that bound port 0) can use the addresses at once: returning is
//! the ready signal. A worker thread that ends for any reason while the
//! tracker runs is reported on [`Tracker::deaths`], so the binary exits
//! instead of living on half dead.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use socket2::{Domain, Protocol, Socket, Type};

use crate::access::{self, Access, Ledger, PasskeyCounters};
use crate::config::{Config, Dispatch};
use crate::connection_id::ConnectionIds;
use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;
use crate::stats::Stats;
use crate::swarm::Swarms;
use crate::workers::socket::{HttpSettings, SocketSettings, SocketWorker, Sockets, WAKE_TOKEN};
use crate::workers::swarm::{Inline, Shard, SwarmWorker};
use crate::workers::{shard_of, Control, SharedSettings, Shutdown, Wake};

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
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind { proto, addr, error } => {
                write!(f, "cannot listen on {proto} {addr}: {error}")
            }
            StartError::Io(e) => write!(f, "cannot start: {e}"),
            StartError::Access(e) => f.write_str(e),
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
    view: TrackerView,
    stats_addr: Option<SocketAddr>,
    stats_waker: Option<mio::Waker>,
    stats_thread: Option<JoinHandle<()>>,
    shared_settings: Arc<SharedSettings>,
    /// The configuration it runs with (after reloads).
    config: parking_lot::Mutex<Config>,
}

/// What the stats endpoint may ask of a running tracker: counters, and
/// questions to the swarm workers. Cheap to clone.
#[derive(Clone)]
pub struct TrackerView {
    pub stats: Arc<Stats>,
    controls: Vec<Sender<Control>>,
    access: Arc<Access>,
}

impl TrackerView {
    /// Per-passkey counters (see [`Tracker::passkey_stats`]).
    pub fn passkey_stats(&self) -> Vec<(String, crate::access::PasskeyCounters)> {
        self.access.passkey_stats()
    }

    /// One torrent's counts, asked of the swarm worker that holds it. None
    /// if it did not answer within a second (stopping, or swamped).
    pub fn torrent(&self, info_hash: InfoHash) -> Option<ScrapeStats> {
        let (tx, rx) = bounded(1);
        let shard = shard_of(&info_hash, self.controls.len());
        self.controls[shard]
            .send_timeout(
                Control::Torrent {
                    info_hash,
                    reply: tx,
                },
                Duration::from_secs(1),
            )
            .ok()?;
        rx.recv_timeout(Duration::from_secs(1)).ok()
    }

    /// The `n` largest torrents as of the swarm workers' last cleaning
    /// passes, largest first.
    pub fn top(&self, n: usize) -> Vec<(InfoHash, ScrapeStats)> {
        let mut all: Vec<(InfoHash, ScrapeStats)> = self
            .stats
            .top
            .iter()
            .flat_map(|t| t.lock().clone())
            .collect();
        all.sort_unstable_by_key(|(h, s)| {
            (std::cmp::Reverse(s.seeders as u64 + s.leechers as u64), *h)
        });
        all.truncate(n);
        all
    }
}

/// Sends the thread's name when the thread ends, however it ends.
struct DeathNotice {
    name: String,
    tx: Sender<String>,
    stats: Arc<Stats>,
}

impl Drop for DeathNotice {
    fn drop(&mut self) {
        self.stats
            .workers_alive
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.tx.send(self.name.clone());
    }
}

fn spawn(
    name: String,
    deaths: &Sender<String>,
    stats: &Arc<Stats>,
    f: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    let notice = DeathNotice {
        name: name.clone(),
        tx: deaths.clone(),
        stats: stats.clone(),
    };
    std::thread::Builder::new().name(name).spawn(move || {
        let _notice = notice;
        f()
    })
}

fn new_socket(
    addr: SocketAddr,
    tcp: bool,
    reuse_port: bool,
    config: &Config,
) -> io::Result<Socket> {
    let socket = if tcp {
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?
    } else {
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?
    };
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    if tcp {
        // Restarting must not wait for old connections in TIME_WAIT.
        socket.set_reuse_address(true)?;
        return Ok(socket);
    }
    // The kernel may cap these at net.core.{r,w}mem_max; that's not fatal.
    if let Err(e) = socket.set_recv_buffer_size(config.udp.recv_buffer_size) {
        log::warn!("{addr}: cannot set SO_RCVBUF: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(config.udp.send_buffer_size) {
        log::warn!("{addr}: cannot set SO_SNDBUF: {e}");
    }
    Ok(socket)
}

/// Binds one socket per socket worker on `addr`, all on the same port.
fn bind_all(
    addr: SocketAddr,
    tcp: bool,
    workers: usize,
    config: &Config,
) -> Result<Vec<Socket>, StartError> {
    let proto = if tcp { "HTTP (TCP)" } else { "UDP" };
    let fail = |error| StartError::Bind { proto, addr, error };
    // SO_REUSEPORT lets a second process of the same user bind a port this
    // one holds, silently splitting the traffic. Binding once without it
    // first makes a taken port an error, as it should be.
    if addr.port() != 0 {
        let probe = new_socket(addr, tcp, false, config).map_err(fail)?;
        probe.bind(&addr.into()).map_err(fail)?;
    }
    let mut sockets = Vec::with_capacity(workers);
    let mut bound = addr;
    for _ in 0..workers {
        let s = new_socket(addr, tcp, true, config).map_err(fail)?;
        s.bind(&bound.into()).map_err(fail)?;
        if tcp {
            s.listen(1024).map_err(fail)?;
        }
        // With port 0 the first bind picks the port; the others share it.
        bound = s
            .local_addr()
            .map_err(fail)?
            .as_socket()
            .ok_or_else(|| fail(io::Error::other("not an IP socket")))?;
        sockets.push(s);
    }
    Ok(sockets)
}

/// The socket workers' settings from a configuration.
fn socket_settings(config: &Config) -> SocketSettings {
    let real_ip_header =
        Some(config.http.real_ip_header.to_ascii_lowercase()).filter(|h| !h.is_empty());
    SocketSettings {
        interval: config.announce.interval.get(),
        max_scrape_torrents: config.udp.max_scrape_torrents.get() as usize,
        http: HttpSettings {
            max_connections: config.http.max_connections.get() as usize,
            max_head: config.http.max_head_size.get() as usize,
            idle_timeout: config.http.idle_timeout.get(),
            real_ip_header,
            trusted_proxies: config.http.trusted_proxies.clone(),
            allow_ip_param: config.http.allow_ip_param,
            interval: config.announce.interval.get(),
            min_interval: config.announce.min_interval.get(),
            max_scrape: config.udp.max_scrape_torrents.get() as usize,
        },
    }
}

/// Starts a tracker with `config`: returns once every socket is bound.
pub fn start(config: &Config) -> Result<Tracker, StartError> {
    let access = Arc::new(Access::load(&config.access).map_err(StartError::Access)?);
    let socket_workers = config.workers.socket_workers.get();
    let swarm_workers = config.workers.swarm_workers.get();
    let capacity = config.workers.channel_capacity.get() as usize;

    // sockets[worker] holds that worker's socket for each address.
    let mut sockets: Vec<Sockets> = (0..socket_workers)
        .map(|_| Sockets {
            udp: Vec::new(),
            http: Vec::new(),
        })
        .collect();
    let mut udp_addrs = Vec::new();
    for &addr in &config.udp.addresses {
        let bound = bind_all(addr, false, socket_workers, config)?;
        udp_addrs.push(bound[0].local_addr()?.as_socket().unwrap_or(addr));
        for (w, s) in bound.into_iter().enumerate() {
            sockets[w].udp.push(s.into());
        }
    }
    let mut http_addrs = Vec::new();
    for &addr in &config.http.addresses {
        let bound = bind_all(addr, true, socket_workers, config)?;
        http_addrs.push(bound[0].local_addr()?.as_socket().unwrap_or(addr));
        for (w, s) in bound.into_iter().enumerate() {
            sockets[w].http.push(s.into());
        }
    }
    let stats = Arc::new(Stats::new(socket_workers, swarm_workers));
    let shutdown = Arc::new(Shutdown::new());
    let started = Instant::now();
    let ids = ConnectionIds::new();
    let (death_tx, deaths) = crossbeam_channel::unbounded();

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

    let (request_txs, request_rxs): (Vec<_>, Vec<_>) =
        (0..swarm_workers).map(|_| bounded(capacity)).unzip();
    let (response_txs, response_rxs): (Vec<_>, Vec<_>) =
        (0..socket_workers).map(|_| bounded(capacity)).unzip();

    let (controls, control_rxs): (Vec<_>, Vec<_>) = (0..swarm_workers).map(|_| bounded(16)).unzip();

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
                }));
                if config.workers.dispatch == Dispatch::Inline {
                    inline.push(shard.clone());
                }
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
                };
                Box::new(move || worker.run()) as Box<dyn FnOnce() + Send>
            }};
        }
        let run = if config.swarm.peer_ids {
            worker!(Swarms::with_peer_ids(config.swarm_config()))
        } else {
            worker!(Swarms::new(config.swarm_config()))
        };
        swarm_threads.push(spawn(format!("swarm-{id}"), &death_tx, &stats, run)?);
    }
    drop(response_txs);

    let shared_settings = Arc::new(SharedSettings::new(socket_settings(config)));
    let mut socket_threads = Vec::with_capacity(socket_workers);
    for (id, ((poll, socks), rx)) in polls.into_iter().zip(sockets).zip(response_rxs).enumerate() {
        let worker = SocketWorker::new(
            id,
            poll,
            socks,
            ids.clone(),
            request_txs.clone(),
            rx,
            wakes.clone(),
            shutdown.clone(),
            stats.clone(),
            shared_settings.clone(),
            started,
        )?
        .with_access(access.reader())
        .with_inline(inline.clone());
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
        )
        .map_err(|error| StartError::Bind {
            proto: "stats (TCP)",
            addr,
            error,
        })?;
        stats_addr = Some(bound);
        stats_waker = Some(waker);
        stats_thread = Some(
            std::thread::Builder::new()
                .name("stats".into())
                .spawn(move || server.run())?,
        );
    }
    let access_reload = match config.access.reload_interval {
        0 => None,
        secs => {
            let (stop, stopped) = bounded::<()>(0);
            let shared = access.clone();
            let interval = Duration::from_secs(secs as u64);
            let handle = std::thread::Builder::new()
                .name("access-reload".into())
                .spawn(move || access::reload_every(shared, interval, stopped))?;
            Some((stop, handle))
        }
    };
    Ok(Tracker {
        access,
        access_reload,
        stats_addr,
        stats_waker,
        stats_thread,
        config: parking_lot::Mutex::new(config.clone()),
        view,
        shared_settings,
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

    /// Applies what can change without a restart: announce and swarm
    /// settings, HTTP limits. Returns the keys that changed but need a
    /// restart (addresses, worker counts, buffers, channel sizes).
    pub fn reload(&self, new: &Config) -> Vec<&'static str> {
        let mut current = self.config.lock();
        let mut restart = Vec::new();
        if new.udp.addresses != current.udp.addresses {
            restart.push("udp.addresses");
        }
        if new.udp.recv_buffer_size != current.udp.recv_buffer_size
            || new.udp.send_buffer_size != current.udp.send_buffer_size
        {
            restart.push("udp buffer sizes");
        }
        if new.http.addresses != current.http.addresses {
            restart.push("http.addresses");
        }
        if new.workers != current.workers {
            restart.push("[workers]");
        }
        if new.swarm.cleaning_interval != current.swarm.cleaning_interval {
            restart.push("swarm.cleaning_interval");
        }
        if new.swarm.peer_ids != current.swarm.peer_ids {
            restart.push("swarm.peer_ids");
        }
        for c in &self.view.controls {
            let _ = c.send_timeout(Control::Config(new.swarm_config()), Duration::from_secs(1));
        }
        self.shared_settings.set(socket_settings(new));
        *current = new.clone();
        restart
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

    /// Names of worker threads as they end. While the tracker runs, any
    /// message here means a worker died.
    pub fn deaths(&self) -> &Receiver<String> {
        &self.deaths
    }

    /// Stops in order: socket workers stop reading, hand over what they
    /// read, send the answers that come back, and exit; swarm workers exit
    /// when no socket worker is left. Returns the names of threads that
    /// panicked, if any.
    pub fn stop(self) -> Result<(), String> {
        self.shutdown.request();
        for w in self.wakes.iter() {
            let _ = w.waker.wake();
        }
        if let Some(w) = &self.stats_waker {
            let _ = w.wake();
        }
        if let Some(h) = self.stats_thread {
            let _ = h.join();
        }
        let mut panicked = Vec::new();
        for h in self.socket_threads.into_iter().chain(self.swarm_threads) {
            let name = h.thread().name().unwrap_or("?").to_string();
            if h.join().is_err() {
                panicked.push(name);
            }
        }
        if let Some((stop, handle)) = self.access_reload {
            drop(stop);
            if handle.join().is_err() {
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
