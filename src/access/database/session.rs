//! The `access-db` thread: owns the connection to the site's database
//! (the sync `postgres` client, which runs its own small tokio runtime on
//! this thread alone), loads the lists on a timer, on SIGHUP and on NOTIFY,
//! writes the traffic back, and reconnects with backoff when the
//! connection is lost. Nothing on the hot path waits for it: it only swaps
//! whole lists in, as a reload of the files does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, IsolationLevel, NoTls, Row};

use super::cache;
use super::rows::{info_hash, Cell, Collect, Lists};
use super::write_back::{Param, Pending, Taker};
use super::DatabaseConfig;
use crate::access::{Access, AccessConfig, AccessMode};
use crate::log_limit::LogLimit;
use crate::stats::Stats;

/// How long the thread waits for a NOTIFY before it looks at its timers,
/// its stop and SIGHUP: a NOTIFY itself wakes it at once.
const TICK: Duration = Duration::from_millis(200);
/// Reconnection backoff: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// A database error with the server's message (postgres' own `Display`
/// says only "db error").
pub(crate) fn reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// What the session needs, fixed at start.
pub(crate) struct Session {
    pub(crate) access: Arc<Access>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) db: DatabaseConfig,
    pub(crate) client_config: postgres::Config,
    /// Where it connects, for the log (no password).
    pub(crate) target: String,
    /// `[access] reload_interval`; 0: none.
    pub(crate) reload_interval: u32,
    /// A fingerprint of the lists and the table they were installed with,
    /// so an unchanged reload swaps nothing (a swap starts a cleaning pass
    /// over every torrent).
    pub(crate) installed: Option<(u64, AccessConfig)>,
}

impl Session {
    pub(crate) fn connect(&self) -> Result<Client, String> {
        let mut client = self
            .client_config
            .connect(NoTls)
            .map_err(|e| format!("cannot connect to {}: {}", self.target, reason(&e)))?;
        if !self.db.listen_channel.is_empty() {
            // Unquoted, like the site's `NOTIFY name` (both fold case); the
            // name was checked to be a plain identifier.
            let listen = format!("LISTEN {}", self.db.listen_channel);
            client
                .batch_execute(&listen)
                .map_err(|e| format!("{listen}: {}", reason(&e)))?;
        }
        Ok(client)
    }

    /// Reads both lists in one read-only snapshot. Counts bad rows.
    pub(crate) fn read(&self, client: &mut Client, config: &AccessConfig) -> Result<Lists, String> {
        let mut tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .map_err(|e| reason(&e))?;
        let mut lists = Lists::default();
        if config.mode != AccessMode::Off {
            let mut rows = Collect::new("torrents_query");
            let mut it = tx
                .query_raw(self.db.torrents_query.as_str(), std::iter::empty::<i32>())
                .map_err(|e| format!("torrents_query: {}", reason(&e)))?;
            while let Some(row) = it
                .next()
                .map_err(|e| format!("torrents_query: {}", reason(&e)))?
            {
                rows.push(info_hash(cell(&row, 0)));
            }
            self.stats.database.rows_rejected.add(rows.rejected);
            lists.hashes = rows.finish()?;
        }
        if config.passkeys_enabled() {
            let mut rows = Collect::new("passkeys_query");
            let mut it = tx
                .query_raw(self.db.passkeys_query.as_str(), std::iter::empty::<i32>())
                .map_err(|e| format!("passkeys_query: {}", reason(&e)))?;
            while let Some(row) = it
                .next()
                .map_err(|e| format!("passkeys_query: {}", reason(&e)))?
            {
                rows.push_passkey(cell(&row, 0), cell(&row, 1));
            }
            self.stats.database.rows_rejected.add(rows.rejected);
            lists.passkeys = Some(rows.finish()?);
        }
        tx.commit().map_err(|e| reason(&e))?;
        Ok(lists)
    }

    /// Reads the lists and swaps them in if they changed; writes the cache.
    /// Returns what it read, for the log.
    pub(crate) fn load(&mut self, client: &mut Client) -> Result<String, String> {
        let result = self.load_inner(client);
        match &result {
            Ok(_) => self.stats.database.reloads_ok.inc(),
            Err(_) => self.stats.database.reloads_failed.inc(),
        }
        result
    }

    fn load_inner(&mut self, client: &mut Client) -> Result<String, String> {
        // A SIGHUP may change the table while the queries run: then read
        // again with the new one.
        for _ in 0..3 {
            let config = self.access.config();
            let lists = self.read(client, &config)?;
            let changed = self.install(&config, &lists)?;
            if let Some(changed) = changed {
                if changed {
                    self.write_cache(&lists);
                }
                return Ok(lists.summary());
            }
        }
        Err("the [access] table kept changing during the load".into())
    }

    /// Swaps `lists` in unless they and the table are what is in force.
    /// Some(whether they changed), or None when the table changed meanwhile.
    pub(crate) fn install(
        &mut self,
        config: &AccessConfig,
        lists: &Lists,
    ) -> Result<Option<bool>, String> {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        lists.hash(&mut h);
        let print = (h.finish(), config.clone());
        if self.installed.as_ref() == Some(&print) {
            return Ok(Some(false));
        }
        if !self
            .access
            .install(config, &lists.hashes, lists.passkeys.as_deref())?
        {
            return Ok(None);
        }
        self.installed = Some(print);
        Ok(Some(true))
    }

    fn write_cache(&self, lists: &Lists) {
        if self.db.cache.as_os_str().is_empty() {
            return;
        }
        if let Err(e) = cache::write(&self.db.cache, lists) {
            log::warn!("access database: {e}");
        }
    }

    /// Writes `pending` back in one transaction; Ok: it committed, and
    /// `pending` is empty.
    fn write_back(&self, client: &mut Client, pending: &mut Pending) -> Result<usize, String> {
        let users = pending.len();
        let mut tx = client.transaction().map_err(|e| reason(&e))?;
        let statement = tx
            .prepare(&self.db.write_back)
            .map_err(|e| format!("write_back: {}", reason(&e)))?;
        let n = statement.params().len();
        if !(1..=4).contains(&n) {
            return Err(format!(
                "write_back takes {n} parameters: use $1 user, $2 announces, $3 uploaded, \
                 $4 downloaded (the first 1 to 4)"
            ));
        }
        for (user, c) in pending.iter() {
            let params = [
                Param::Text(user),
                Param::Count(c.announces),
                Param::Count(c.uploaded),
                Param::Count(c.downloaded),
            ];
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                params[..n].iter().map(|p| p as _).collect();
            tx.execute(&statement, &refs)
                .map_err(|e| format!("write_back for user {user:?}: {}", reason(&e)))?;
        }
        // Only a commit that succeeded clears what it covered. (A
        // connection lost during the COMMIT itself leaves it unknown
        // whether it applied; it is then retried.)
        tx.commit()
            .map_err(|e| format!("write_back commit: {}", reason(&e)))?;
        pending.clear();
        Ok(users)
    }

    /// Runs until `stop` is dropped (a final write-back then, if
    /// connected). `client`: the connection made at start, if any.
    pub(crate) fn run(
        mut self,
        mut client: Option<Client>,
        stop: Receiver<()>,
        asks: Receiver<()>,
    ) {
        let stats = self.stats.clone();
        let counters = &stats.database;
        counters.connected.set(client.is_some() as u64);
        // One limiter a kind, so that one kind never hides another.
        let mut load_errors = LogLimit::per_minute();
        let mut connect_errors = LogLimit::per_minute();
        let mut losses = LogLimit::per_minute();
        let mut write_errors = LogLimit::per_minute();
        let mut taker = Taker::default();
        let mut pending = Pending::new(self.db.write_back_max_users as usize);
        let write_every = self
            .db
            .write_back_enabled()
            .then(|| Duration::from_secs(self.db.write_back_interval.into()));
        let reload_every =
            (self.reload_interval > 0).then(|| Duration::from_secs(self.reload_interval.into()));
        let now = Instant::now();
        let mut next_write = write_every.map(|d| now + d);
        let mut next_reload = reload_every.map(|d| now + d);
        let mut next_connect = now;
        let mut backoff = BACKOFF.0;
        // Started from the cache: load as soon as connected.
        let mut want_reload = client.is_none();
        let mut stopping = false;
        loop {
            match stop.try_recv() {
                Err(TryRecvError::Empty) => {}
                _ => stopping = true,
            }
            if asks.try_recv().is_ok() {
                want_reload = true;
                next_connect = Instant::now();
            }
            let now = Instant::now();
            if let (Some(at), Some(every)) = (next_reload, reload_every) {
                if now >= at {
                    want_reload = true;
                    next_reload = Some(now + every);
                }
            }
            if client.is_none() && now >= next_connect && !stopping {
                match self.connect() {
                    Ok(c) => {
                        log::info!("access database: connected to {}", self.target);
                        client = Some(c);
                        backoff = BACKOFF.0;
                        // NOTIFYs sent while away were lost: read anew.
                        want_reload = true;
                    }
                    Err(e) => {
                        counters.connect_failures.inc();
                        next_connect = now + backoff;
                        backoff = (backoff * 2).min(BACKOFF.1);
                        connect_errors.log(|n| {
                            log::warn!("access database: keeping the old lists: {e}{}", more(n))
                        });
                    }
                }
                counters.connected.set(client.is_some() as u64);
            }
            if want_reload && !stopping {
                want_reload = false;
                match client.as_mut() {
                    Some(c) => match self.load(c) {
                        Ok(summary) => log::debug!("access database: loaded {summary}"),
                        Err(e) => {
                            load_errors.log(|n| {
                                log::warn!("access database: keeping the old lists: {e}{}", more(n))
                            });
                        }
                    },
                    None => {
                        counters.reloads_failed.inc();
                    }
                }
            }
            let write_due =
                next_write.is_some_and(|at| now >= at) || (stopping && write_every.is_some());
            if write_due {
                next_write = write_every.map(|d| now + d);
                taker.take(&self.access.current(), &mut pending);
                if let (Some(c), true) = (client.as_mut(), pending.len() > 0) {
                    match self.write_back(c, &mut pending) {
                        Ok(users) => {
                            counters.write_backs_ok.inc();
                            log::debug!("access database: wrote back the traffic of {users} users");
                        }
                        Err(e) => {
                            counters.write_backs_failed.inc();
                            write_errors.log(|n| {
                                log::warn!(
                                    "access database: write-back kept for a retry: {e}{}",
                                    more(n)
                                )
                            });
                        }
                    }
                } else if pending.len() > 0 {
                    counters.write_backs_failed.inc();
                }
                counters.write_back_pending_users.set(pending.len() as u64);
                counters.write_back_dropped.set(pending.dropped);
            }
            if stopping {
                if pending.len() > 0 {
                    log::warn!(
                        "access database: stopping with the traffic of {} users not written back",
                        pending.len()
                    );
                }
                return;
            }
            // Wait: for a NOTIFY while connected, else for a SIGHUP or stop.
            match client.as_mut() {
                Some(c) => {
                    let got = c.notifications().timeout_iter(TICK).next();
                    if let Ok(Some(_)) = got {
                        // One reload for a burst of them.
                        while let Ok(Some(_)) = c.notifications().iter().next() {}
                        want_reload = true;
                    }
                    if c.is_closed() {
                        client = None;
                        counters.connected.set(0);
                        next_connect = Instant::now();
                        losses.log(|n| {
                            log::warn!(
                                "access database: lost the connection to {}{}",
                                self.target,
                                more(n)
                            )
                        });
                    }
                }
                None => {
                    crossbeam_channel::select! {
                        recv(stop) -> _ => stopping = true,
                        recv(asks) -> _ => {
                            want_reload = true;
                            next_connect = Instant::now();
                        }
                        default(TICK) => {}
                    }
                }
            }
        }
    }
}

fn more(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more since the last such line)")
    }
}

/// Cell `i` of `row`, by its type.
fn cell(row: &Row, i: usize) -> Cell<'_> {
    let Some(column) = row.columns().get(i) else {
        return Cell::Null;
    };
    let ty = column.type_();
    let got = match *ty {
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(i)
            .map(|v| v.map(Cell::Bytes)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            row.try_get::<_, Option<&str>>(i).map(|v| v.map(Cell::Text))
        }
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| v.map(Cell::Int)),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map(|v| v.map(|n| Cell::Int(n.into()))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map(|v| v.map(|n| Cell::Int(n.into()))),
        _ => return Cell::Other(ty.name()),
    };
    match got {
        Ok(Some(c)) => c,
        Ok(None) => Cell::Null,
        Err(_) => Cell::Other(ty.name()),
    }
}
