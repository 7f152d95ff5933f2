//! The access lists from the site's PostgreSQL database
//! (`[access.database]`), one job a file:
//!
//! - `config`: the table, and the client's settings from it;
//! - `rows`: the queries' rows turned into lists, bad rows named;
//! - `cache`: the last good lists on disk, for a start without the database;
//! - `write_back`: users' traffic taken from the passkeys' tallies and kept
//!   until committed;
//! - `session`: the `access-db` thread that owns the connection.
//!
//! Start-up: the lists are loaded before any worker runs. When the
//! database can't be reached (or its first load fails) and a cache is
//! configured and present, swarmd starts from the cache and keeps trying;
//! otherwise start-up stops with the reason. Why a cache and not an empty
//! list: a private tracker that comes up with nothing allowed refuses every
//! announce of every user until the database is back, and one that comes
//! up open serves torrents and users it shouldn't. The cache is what the
//! database said last; without one, stopping says plainly what is wrong.

mod cache;
mod config;
mod rows;
mod session;
mod write_back;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

pub use config::DatabaseConfig;

use super::{Access, AccessConfig};
use crate::stats::{DatabaseCounters, Stats};

/// The running `access-db` thread.
pub(crate) struct Database {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Database {
    /// Stops the thread after its last write-back, waiting a few seconds
    /// for it at most (a dead server must not hold up a stop). Returns
    /// false when it panicked.
    pub(crate) fn stop(self) -> bool {
        drop(self.stop);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        !(self.handle.is_finished() && self.handle.join().is_err())
    }
}

/// Loads the lists from the database (or the cache) into `access` and
/// starts the `access-db` thread with `spawn`. None when the table is off.
pub(crate) fn start(
    access: &Arc<Access>,
    config: &AccessConfig,
    stats: &Arc<Stats>,
    spawn: impl FnOnce(Box<dyn FnOnce() + Send>) -> std::io::Result<JoinHandle<()>>,
) -> Result<Option<Database>, String> {
    let db = &config.database;
    if !db.enabled() {
        return Ok(None);
    }
    stats.database.enabled.set(1);
    let client_config = db.client_config()?;
    let mut session = session::Session {
        access: access.clone(),
        stats: stats.clone(),
        db: db.clone(),
        target: config::describe(&client_config),
        client_config,
        reload_interval: config.reload_interval,
        installed: None,
    };
    let first = session
        .connect()
        .and_then(|mut client| session.load(&mut client).map(|summary| (client, summary)));
    let client = match first {
        Ok((client, summary)) => {
            log::info!("access database: {summary} from {}", session.target);
            Some(client)
        }
        Err(e) => {
            let cached = match db.cache.as_os_str().is_empty() {
                true => None,
                false => cache::read(&db.cache)?,
            };
            let Some(lists) = cached else {
                return Err(format!(
                    "access database: {e}; and no cached lists to start from \
                     (access.database.cache{})",
                    match db.cache.as_os_str().is_empty() {
                        true => " is not set".to_string(),
                        false => format!(": {} does not exist", db.cache.display()),
                    }
                ));
            };
            session.install(config, &lists)?;
            log::warn!(
                "access database: {e}; starting from the cached lists in {} ({}), and \
                 trying again",
                db.cache.display(),
                lists.summary()
            );
            None
        }
    };
    let (stop, stopped) = crossbeam_channel::bounded(0);
    let (ask, asks) = crossbeam_channel::bounded(1);
    access.set_database(ask);
    let handle = spawn(Box::new(move || session.run(client, stopped, asks)))
        .map_err(|e| format!("cannot start the access-db thread: {e}"))?;
    Ok(Some(Database { stop, handle }))
}

/// `--check-config`: the password file is read and the cache, if there is
/// one, must be good; the database itself is not asked.
pub fn check(config: &AccessConfig) -> Result<(), String> {
    let db = &config.database;
    if db.enabled() {
        db.client_config()?;
        if !db.cache.as_os_str().is_empty() {
            cache::read(&db.cache)?;
        }
    }
    Ok(())
}

/// The Prometheus lines of the session's counters; empty when it is off.
pub(crate) fn prometheus(c: &DatabaseCounters) -> String {
    use std::fmt::Write as _;
    if c.enabled.get() == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    metric(
        "swarmd_access_db_connected",
        "gauge",
        "1 while connected to the access lists' database.",
        &[("", c.connected.get())],
    );
    metric(
        "swarmd_access_db_reloads_total",
        "counter",
        "Loads of the access lists from the database, by result (failed: the old lists stayed).",
        &[
            ("{result=\"ok\"}", c.reloads_ok.get()),
            ("{result=\"failed\"}", c.reloads_failed.get()),
        ],
    );
    metric(
        "swarmd_access_db_rows_rejected_total",
        "counter",
        "Bad rows returned by the access queries.",
        &[("", c.rows_rejected.get())],
    );
    metric(
        "swarmd_access_db_connect_failures_total",
        "counter",
        "Connections to the access lists' database that failed.",
        &[("", c.connect_failures.get())],
    );
    metric(
        "swarmd_access_db_write_backs_total",
        "counter",
        "Traffic write-back transactions, by result (failed: kept and retried).",
        &[
            ("{result=\"ok\"}", c.write_backs_ok.get()),
            ("{result=\"failed\"}", c.write_backs_failed.get()),
        ],
    );
    metric(
        "swarmd_access_db_write_back_pending_users",
        "gauge",
        "Users whose traffic waits for a committed write-back.",
        &[("", c.write_back_pending_users.get())],
    );
    metric(
        "swarmd_access_db_write_back_dropped_total",
        "counter",
        "Users' traffic increases dropped because write_back_max_users were pending.",
        &[("", c.write_back_dropped.get())],
    );
    out
}
