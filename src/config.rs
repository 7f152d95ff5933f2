//! `tracker.toml`: the configuration structs, their defaults, and loading
//! with errors that name the file, line and reason.
//!
//! Every table is `deny_unknown_fields` so a typo stops start-up instead of
//! being ignored, and values that can be wrong (zero workers, an interval of
//! zero) are rejected while deserializing, so the error carries the line.
//! The shipped `tracker.toml` is embedded and must equal `Config::default()`
//! (a test checks it).

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;

use serde::Deserialize;

/// The commented default configuration, printed by `swarmd --print-config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../tracker.toml");

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub udp: UdpConfig,
    pub http: HttpConfig,
    pub workers: WorkersConfig,
    pub announce: AnnounceConfig,
    pub swarm: SwarmTable,
    /// `[access]`: allow/deny lists and passkeys (see [`crate::access`]).
    pub access: crate::access::AccessConfig,
    pub stats: StatsConfig,
    /// `[state]`: the snapshot of the swarms (see [`crate::snapshot`]).
    pub state: crate::snapshot::StateConfig,
    pub privileges: PrivilegesConfig,
    pub log: LogConfig,
    /// `[cluster]`: absent (the default), the tracker is one node alone
    /// (see [`crate::cluster`]).
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// `[udp]`: the UDP (BEP 15) front end.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdpConfig {
    /// Addresses to listen on. An IPv6 address listens on IPv6 only, so
    /// `0.0.0.0:6969` and `[::]:6969` can be listed together. Empty turns
    /// UDP off.
    pub addresses: Vec<SocketAddr>,
    /// Kernel receive buffer per socket (SO_RCVBUF), bytes. Bursts beyond
    /// it are dropped by the kernel; raise `net.core.rmem_max` to allow
    /// more than the system's limit.
    pub recv_buffer_size: usize,
    /// Kernel send buffer per socket (SO_SNDBUF), bytes.
    pub send_buffer_size: usize,
    /// Most info hashes in one scrape, over UDP and HTTP. 74 fills one
    /// 1500-byte UDP packet.
    pub max_scrape_torrents: Positive,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            addresses: vec![
                SocketAddr::from(([0, 0, 0, 0], 6969)),
                SocketAddr::from(([0u16; 8], 6969)),
            ],
            recv_buffer_size: 8 << 20,
            send_buffer_size: 8 << 20,
            max_scrape_torrents: Positive(74),
        }
    }
}

/// `[http]`: the HTTP (BEP 3) front end.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Addresses to listen on (TCP). Empty turns HTTP off.
    pub addresses: Vec<SocketAddr>,
    /// Open connections per socket worker. When a new one comes with all
    /// taken, the connection that has waited longest without a complete
    /// request is closed to make room; if every one is busy with a request,
    /// the new one is closed (both counted).
    pub max_connections: Positive,
    /// Largest request head in bytes; a larger one gets 431 and a close.
    pub max_head_size: Positive,
    /// Seconds a connection may sit idle between requests, or leave an
    /// answer unread, before it is closed.
    pub idle_timeout: Positive,
    /// Seconds a client has to send a whole request head, counted from its
    /// first byte. Bytes trickling in don't extend it, so a client that
    /// sends one byte a second (slowloris) is closed then.
    pub request_timeout: Positive,
    /// Open connections per client address, per socket worker; beyond it
    /// new ones from that address are closed at once (counted). High enough
    /// for many users behind one carrier-grade NAT address, each with a
    /// connection or two, and low enough that one address can't hold a
    /// worker's `max_connections`.
    pub max_connections_per_ip: Positive,
    /// Behind a reverse proxy: the header carrying the client address,
    /// `X-Forwarded-For` (its last entry is used) or `X-Real-IP`. Honoured
    /// only on connections from `trusted_proxies`. Empty: off.
    pub real_ip_header: String,
    /// Proxy addresses whose `real_ip_header` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Use the `ip` query parameter as the peer address. Off by default:
    /// it lets anyone announce someone else's address.
    pub allow_ip_param: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addresses: vec![
                SocketAddr::from(([0, 0, 0, 0], 6969)),
                SocketAddr::from(([0u16; 8], 6969)),
            ],
            max_connections: Positive(4096),
            max_head_size: Positive(4096),
            idle_timeout: Positive(30),
            request_timeout: Positive(10),
            max_connections_per_ip: Positive(64),
            real_ip_header: String::new(),
            trusted_proxies: Vec::new(),
            allow_ip_param: false,
        }
    }
}

/// `[workers]`: threads and the channels between them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Threads that read, decode, encode and send. Each has its own
    /// SO_REUSEPORT socket per address, so the kernel spreads clients.
    pub socket_workers: NonZeroUsize,
    /// Threads that own the torrents, sharded by info hash.
    pub swarm_workers: NonZeroUsize,
    /// Batches that may wait in each channel. A full channel drops the
    /// batch (counted) rather than block a socket worker.
    pub channel_capacity: Positive,
    /// How announces and scrapes reach the torrents.
    pub dispatch: Dispatch,
}

/// How a socket worker gets a batch of requests handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dispatch {
    /// It handles the batch itself, under the shard's lock: no thread
    /// switch, so the best choice when workers share cores.
    #[default]
    Inline,
    /// It hands the batch to the shard's swarm worker over a channel and
    /// gets the answers back the same way: the swarm work runs on the swarm
    /// workers' cores, without locks.
    Channel,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            socket_workers: NonZeroUsize::MIN,
            swarm_workers: NonZeroUsize::MIN,
            channel_capacity: Positive(1024),
            dispatch: Dispatch::default(),
        }
    }
}

/// `[announce]`: what announce replies tell clients.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnnounceConfig {
    /// Seconds clients should wait between announces.
    pub interval: Positive,
    /// HTTP only: seconds a client must wait before announcing again
    /// (`min interval`). At most `interval`.
    pub min_interval: Positive,
    /// Peers returned when a client asks for the default (numwant -1 or 0).
    /// At most 67 when UDP listens on IPv6 (see `max_numwant`).
    pub default_numwant: usize,
    /// Most peers returned to one announce. 200 IPv4 peers still fit a
    /// 1500-byte packet (20 + 6 × 200 = 1220 bytes, under the IPv6 minimum
    /// MTU even). IPv6 peers are 18 bytes each: a UDP reply to an IPv6
    /// client carries at most 67 (20 + 18 × 67 = 1226 bytes, within the 1232
    /// that one 1280-byte packet leaves), so it is never fragmented; over
    /// HTTP (TCP) they get up to this many.
    pub max_numwant: usize,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            interval: Positive(1800),
            min_interval: Positive(900),
            default_numwant: 50,
            max_numwant: 200,
        }
    }
}

/// The default of `[swarm] max_peers_per_address`; see there why.
pub const DEFAULT_MAX_PEERS_PER_ADDRESS: usize = 64;

/// The default of `[swarm] max_torrents`: 4 million torrents per swarm
/// worker, about 400 MB of torrent table.
///
/// The arithmetic: a torrent takes 80 bytes in the torrent vector (its info
/// hash and up to two IPv4 peers inline) and an 8-byte slot in its index,
/// which is at most 70 % full. Both grow by doubling, so at 4 million
/// (just under 2^22) the vector holds 4,194,304 × 80 = 335.5 MB and the
/// index 8,388,608 × 8 = 67.1 MB: 402.7 MB, 100.7 bytes a torrent
/// (measured by `Swarms::table_bytes` in the swarm tests: 100.7 bytes a
/// torrent at 1M torrents, the same doubling). Before this bound, one IP stored
/// 1M new torrents in 9.3 s (94 MB of resident memory); with it, a flood of
/// new torrents stops at about 400 MB per swarm worker. Peers beyond two
/// per torrent, and IPv6 peers, take their own memory on top.
///
/// Large public trackers hold a few million torrents; 4 million per worker
/// leaves them room with one worker and more with several.
pub const DEFAULT_MAX_TORRENTS: usize = 4_000_000;

/// `[swarm]`: peer lifetime, cleaning and limits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmTable {
    /// Seconds without an announce after which a peer is forgotten. Keep
    /// it above `announce.interval`, or peers vanish between announces.
    pub peer_timeout: Positive,
    /// Seconds between two cleaning passes over all torrents. A pass runs
    /// a slice at a time between batches, so it never stalls announces.
    pub cleaning_interval: Positive,
    /// Most peers stored per torrent (0: no limit). A full swarm still
    /// answers newcomers with peers. It stores one by evicting a peer of
    /// the address with the most peers, when that address has at least two
    /// more than the newcomer's (so one address can't keep others out, and
    /// a full swarm of distinct addresses doesn't churn); otherwise the
    /// newcomer is not stored (counted).
    pub max_peers_per_torrent: usize,
    /// Most peers of one address in one torrent (0: no limit): an IPv4
    /// address, or an IPv6 /64 (what one host or home network is given).
    /// Beyond it, new peers of that address are answered but not stored
    /// (counted), so that one address announcing thousands of ports can't
    /// crowd honest peers out of the replies.
    ///
    /// Why 64: behind a carrier-grade NAT many subscribers share one public
    /// IPv4 address, commonly 16 to 128 of them (port blocks of 512 to 4096
    /// ports each). Few of those are in the same torrent at the same time,
    /// so 64 leaves them room, while one address can hold at most 64 places
    /// in a swarm, and so at most 64 of the peers in any reply.
    pub max_peers_per_address: usize,
    /// Most torrents per swarm worker (0: no limit). Beyond it, announces
    /// for new torrents get empty replies and are not stored (counted in
    /// `swarmd_torrents_full_total`, and logged once a minute); torrents
    /// already stored work as before. See [`DEFAULT_MAX_TORRENTS`] for the
    /// memory it bounds; raise it (or add swarm workers) for more.
    pub max_torrents: usize,
    /// Keep each peer's 20-byte peer id, so that HTTP clients asking for
    /// the dictionary model (compact=0) get it with `peer id`s. Costs 20
    /// bytes per peer. Off, they get compact lists (BEP 23 lets a tracker
    /// choose), unless they sent no_peer_id=1: that gets dictionaries
    /// without ids. Clients ask for compact lists anyway.
    pub peer_ids: bool,
    /// Fill each announce's reply first with peers in the announcer's
    /// subnet (chosen at random among them), then from the rest of the
    /// swarm as usual; seeders still get only leechers. For deployments
    /// inside a network (software, container images) where each rack has
    /// its subnet: most traffic then stays in the rack. Off by default:
    /// on the Internet a subnet says little about who is near.
    pub prefer_same_subnet: bool,
    /// Prefix length of an IPv4 peer's subnet for `prefer_same_subnet`
    /// (0 to 32; 24 is a /24).
    pub subnet_prefix_v4: u8,
    /// Prefix length of an IPv6 peer's subnet for `prefer_same_subnet`
    /// (0 to 128; 64 is a /64).
    pub subnet_prefix_v6: u8,
}

impl Default for SwarmTable {
    fn default() -> Self {
        SwarmTable {
            peer_timeout: Positive(2700),
            cleaning_interval: Positive(30),
            max_peers_per_torrent: 0,
            max_peers_per_address: DEFAULT_MAX_PEERS_PER_ADDRESS,
            max_torrents: DEFAULT_MAX_TORRENTS,
            peer_ids: false,
            prefer_same_subnet: false,
            subnet_prefix_v4: 24,
            subnet_prefix_v6: 64,
        }
    }
}

/// `[stats]`: the read-only stats endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Address of the endpoint (`/metrics`, `/stats`, `/torrents`,
    /// `/healthz`). Keep it on loopback or behind a firewall. Empty turns it
    /// off.
    pub address: String,
    /// Seconds between two samples of the counters, for the rates.
    pub interval: Positive,
    /// Largest torrents each swarm worker remembers per cleaning pass, for
    /// `/torrents?top=N`.
    pub top_torrents: usize,
    /// Milliseconds between two rounds of `/events` (the live feed of
    /// per-torrent counts): a torrent gets at most one event per round, with
    /// its counts at the end of it. From 10 to 60000. Shorter is fresher and
    /// costs the stats thread more when many torrents change.
    pub events_interval_ms: u32,
    /// Subscribers `/events` serves at once; one more is answered 503.
    /// They don't count against the endpoint's 64 connections for
    /// requests. 0 (the default) turns `/events` off; e.g. 1024 turns it on.
    pub max_event_subscribers: usize,
    /// How often `/events` sends a `: ping` comment, so that proxies keep
    /// an idle stream open. Not in `tracker.toml` (tests shorten it).
    #[serde(skip)]
    #[doc(hidden)]
    pub events_heartbeat: std::time::Duration,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            address: "127.0.0.1:9000".into(),
            interval: Positive(5),
            top_torrents: 100,
            events_interval_ms: 1000,
            max_event_subscribers: 0,
            events_heartbeat: std::time::Duration::from_secs(15),
        }
    }
}

impl StatsConfig {
    /// The address, or None when the endpoint is off. Checked at load.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.address.parse().ok()
    }
}

/// `[privileges]`: dropping root after binding, outside systemd.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PrivilegesConfig {
    /// When started as root (and not by systemd, whose unit runs swarmd as
    /// its own user), switch to this user after binding. Empty: stay.
    pub user: String,
    /// Group to switch to; empty means the user's primary group.
    pub group: String,
}

/// `[log]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// One of error, warn, info, debug, trace. `RUST_LOG`, when set,
    /// takes precedence.
    pub level: LogLevel,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel(log::LevelFilter::Info),
        }
    }
}

/// A configuration that could not be loaded; its text names the file, the
/// line and the reason.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses TOML text; `origin` names it in errors (a path).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            // Some syntax errors (a control character in a comment) come
            // without a message: still say what is wrong.
            let reason = match e.message().trim_end() {
                "" => "invalid TOML syntax",
                m => m,
            };
            match line {
                Some(line) => ConfigError(format!("{origin}:{line}: {reason}")),
                None => ConfigError(format!("{origin}: {reason}")),
            }
        })?;
        config
            .check()
            .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        config
            .access
            .resolve_credentials(std::env::var_os("CREDENTIALS_DIRECTORY").as_deref())
            .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        if let Some(cluster) = &mut config.cluster {
            cluster
                .resolve_credentials(std::env::var_os("CREDENTIALS_DIRECTORY").as_deref())
                .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        }
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Checks that span several keys.
    fn check(&self) -> Result<(), String> {
        self.access.check()?;
        if let Some(cluster) = &self.cluster {
            cluster.check()?;
        }
        if self.swarm.peer_timeout.get() <= self.announce.interval.get() {
            return Err(format!(
                "swarm.peer_timeout ({}) must be longer than announce.interval ({}), or peers expire between announces",
                self.swarm.peer_timeout.get(),
                self.announce.interval.get()
            ));
        }
        if self.announce.default_numwant > self.announce.max_numwant {
            return Err("announce.default_numwant is larger than announce.max_numwant".into());
        }
        let v6_cap = crate::swarm::UDP_V6_MAX_PEERS as usize;
        if self.announce.default_numwant > v6_cap && self.udp.addresses.iter().any(|a| a.is_ipv6())
        {
            // The UDP decoder caps the numwant an IPv6 client sends; one that
            // asks for the default gets default_numwant from the swarm, so
            // that must fit one IPv6 packet too.
            return Err(format!(
                "announce.default_numwant ({}) is above {v6_cap}, the most peers one unfragmented IPv6 UDP reply carries",
                self.announce.default_numwant
            ));
        }
        if !self.stats.address.is_empty() && self.stats.socket_addr().is_none() {
            return Err(format!(
                "stats.address {:?} is not an address like 127.0.0.1:9000 (or \"\" for off)",
                self.stats.address
            ));
        }
        if !(10..=60_000).contains(&self.stats.events_interval_ms) {
            return Err(format!(
                "stats.events_interval_ms ({}) must be from 10 to 60000",
                self.stats.events_interval_ms
            ));
        }
        if self.privileges.user.is_empty() && !self.privileges.group.is_empty() {
            return Err("privileges.group is set without privileges.user".into());
        }
        if self.swarm.subnet_prefix_v4 > 32 || self.swarm.subnet_prefix_v6 > 128 {
            return Err(format!(
                "swarm.subnet_prefix_v4 ({}) must be at most 32 and swarm.subnet_prefix_v6 ({}) at most 128",
                self.swarm.subnet_prefix_v4, self.swarm.subnet_prefix_v6
            ));
        }
        if self.udp.max_scrape_torrents.get() > 255 {
            return Err("udp.max_scrape_torrents is above 255".into());
        }
        if self.announce.min_interval.get() > self.announce.interval.get() {
            return Err("announce.min_interval is longer than announce.interval".into());
        }
        for (name, list) in [("udp", &self.udp.addresses), ("http", &self.http.addresses)] {
            let mut seen = std::collections::HashSet::new();
            for a in list {
                if a.port() != 0 && !seen.insert(a) {
                    return Err(format!("{name}.addresses lists {a} twice"));
                }
            }
        }
        match self.http.real_ip_header.to_ascii_lowercase().as_str() {
            "" => {}
            "x-forwarded-for" | "x-real-ip" => {
                if self.http.trusted_proxies.is_empty() {
                    return Err(
                        "http.real_ip_header is set but http.trusted_proxies is empty".into(),
                    );
                }
            }
            other => {
                return Err(format!(
                    "http.real_ip_header {other:?}: use \"X-Forwarded-For\", \"X-Real-IP\" or \"\""
                ))
            }
        }
        Ok(())
    }

    /// The same configuration with UDP and HTTP on `port` of every
    /// configured address (`swarmd --port`). An empty list stays empty: a
    /// protocol that is off stays off. Addresses that become the same are
    /// listed once.
    pub fn with_port(mut self, port: u16) -> Config {
        for list in [&mut self.udp.addresses, &mut self.http.addresses] {
            let mut seen = std::collections::HashSet::new();
            list.retain_mut(|a| {
                a.set_port(port);
                seen.insert(*a)
            });
        }
        self
    }

    /// [`DEFAULT_CONFIG_TOML`] with its addresses on `port`, comments kept:
    /// what `swarmd --print-config --port N` prints. A test checks that it
    /// parses to `Config::default().with_port(port)`.
    pub fn default_toml_with_port(port: u16) -> String {
        let config = Config::default().with_port(port);
        let mut table = "";
        let mut out = String::with_capacity(DEFAULT_CONFIG_TOML.len());
        for line in DEFAULT_CONFIG_TOML.lines() {
            if line.starts_with('[') {
                table = line;
            }
            let list = match table {
                "[udp]" => &config.udp.addresses,
                "[http]" => &config.http.addresses,
                _ => &Vec::new(),
            };
            if line.starts_with("addresses = ") && !list.is_empty() {
                let quoted: Vec<String> = list.iter().map(|a| format!("\"{a}\"")).collect();
                out.push_str(&format!("addresses = [{}]", quoted.join(", ")));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    }

    pub fn swarm_config(&self) -> crate::swarm::SwarmConfig {
        crate::swarm::SwarmConfig {
            peer_timeout: self.swarm.peer_timeout.get(),
            default_numwant: self.announce.default_numwant,
            max_numwant: self.announce.max_numwant,
            max_peers_per_torrent: self.swarm.max_peers_per_torrent,
            max_peers_per_address: self.swarm.max_peers_per_address,
            max_torrents: self.swarm.max_torrents,
            prefer_same_subnet: self.swarm.prefer_same_subnet,
            subnet_prefix_v4: self.swarm.subnet_prefix_v4,
            subnet_prefix_v6: self.swarm.subnet_prefix_v6,
        }
    }
}

mod values;
pub use values::{LogLevel, Positive};

#[cfg(test)]
mod tests;
