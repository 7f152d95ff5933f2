//! Reloads of a running tracker: what a new configuration changes without
//! a restart (announce and swarm settings, HTTP limits), and the keys it
//! names as needing one.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::access::Access;
use crate::config::Config;
use crate::workers::socket::{HttpSettings, SocketSettings};
use crate::workers::{Control, SharedSettings};

/// What a reload changes in a running tracker, as a handle of its own, so
/// that a reload can run on a thread of its own (the binary's `reload`
/// thread) while the tracker is stopped from another.
#[derive(Clone)]
pub struct Reloader {
    /// The configuration the tracker runs with (after reloads).
    pub(super) config: Arc<parking_lot::Mutex<Config>>,
    pub(super) controls: Vec<Sender<Control>>,
    pub(super) shared_settings: Arc<SharedSettings>,
    pub(super) access: Arc<Access>,
}
/// The socket workers' settings from a configuration.
pub(crate) fn socket_settings(config: &Config) -> SocketSettings {
    let real_ip_header =
        Some(config.http.real_ip_header.to_ascii_lowercase()).filter(|h| !h.is_empty());
    SocketSettings {
        interval: config.announce.interval.get(),
        max_scrape_torrents: config.udp.max_scrape_torrents.get() as usize,
        http: HttpSettings {
            max_connections: config.http.max_connections.get() as usize,
            max_head: config.http.max_head_size.get() as usize,
            idle_timeout: config.http.idle_timeout.get(),
            request_timeout: config.http.request_timeout.get(),
            max_per_ip: config.http.max_connections_per_ip.get() as usize,
            real_ip_header,
            trusted_proxies: config.http.trusted_proxies.clone(),
            allow_ip_param: config.http.allow_ip_param,
            interval: config.announce.interval.get(),
            min_interval: config.announce.min_interval.get(),
            max_scrape: config.udp.max_scrape_torrents.get() as usize,
        },
    }
}

impl Reloader {
    /// Applies what can change without a restart: announce and swarm
    /// settings, HTTP limits. Returns the keys that changed but need a
    /// restart, every one by name, so the log can say what was not applied.
    /// (`[access]` files and mode and `[log]` are applied by the caller.)
    pub fn reload(&self, new: &Config) -> Vec<&'static str> {
        let mut current = self.config.lock();
        let old = &*current;
        // Why a list beside `socket_settings` and `swarm_config` rather
        // than a diff of whole tables: most keys of a table are applied, and
        // the operator must be told which exact key was not. The names are
        // made from the fields, so they are the keys of tracker.toml.
        let mut running = new.clone();
        let mut restart = Vec::new();
        macro_rules! restart_only {
            ($($table:ident . $key:ident),* $(,)?) => {$(
                if new.$table.$key != old.$table.$key {
                    restart.push(concat!(stringify!($table), ".", stringify!($key)));
                    // The old value still runs: remembering it makes the
                    // next reload name this key again, until a restart.
                    running.$table.$key = old.$table.$key.clone();
                }
            )*};
        }
        restart_only![
            udp.addresses,
            udp.recv_buffer_size,
            udp.send_buffer_size,
            http.addresses,
            workers.socket_workers,
            workers.swarm_workers,
            workers.channel_capacity,
            workers.dispatch,
            swarm.cleaning_interval,
            swarm.peer_ids,
            // The reload thread's period is fixed when it starts.
            access.reload_interval,
            // The database's session connects once, with these.
            access.database,
            // The stats thread binds once and sizes its top list once.
            stats.address,
            stats.interval,
            stats.top_torrents,
            stats.events_interval_ms,
            stats.max_event_subscribers,
            // The snapshot thread and its file are set up once.
            state.path,
            state.interval,
            // Privileges are dropped once, after binding: there is no way
            // back to root to switch again.
            privileges.user,
            privileges.group,
        ];
        // The engine connection is made once.
        if new.cluster != old.cluster {
            restart.push("cluster");
            running.cluster = old.cluster.clone();
        }
        for c in &self.controls {
            let _ = c.send_timeout(
                Control::Config(running.swarm_config()),
                Duration::from_secs(1),
            );
        }
        self.shared_settings.set(socket_settings(&running));
        *current = running;
        restart
    }

    /// The shared access lists (for a reload with a new `[access]` table:
    /// [`Access::reload_with`]).
    pub fn access(&self) -> &Arc<Access> {
        &self.access
    }
}
