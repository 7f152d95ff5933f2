//! The lists of a running tracker, shared by every worker and swapped whole
//! on reload (start-up, SIGHUP, a timer), and each worker's cheap handle on
//! them.
//!
//! A reload builds the new [`AccessList`] aside, off the hot path, and
//! swaps it in only when every file read well; a bad file keeps the old
//! lists and the error names the file, the line and the reason. Workers hold
//! an [`AccessReader`]: when nothing changed, a look costs one relaxed
//! atomic load of a cache line nobody writes. No lock is held while a batch
//! is worked on, and a reload never waits for a worker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Cache};

use super::config::AccessConfig;
use super::ledger::PasskeyCounters;
use super::list::{AccessList, Refusal};
use crate::protocol::InfoHash;

/// The files' modification times and lengths, to tell whether a timed
/// reload has anything to read.
type Stamps = Vec<Option<(SystemTime, u64)>>;

fn stamps(config: &AccessConfig) -> Stamps {
    config
        .files()
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// The shared, swappable lists of a running tracker.
#[derive(Debug)]
pub struct Access {
    /// The configuration and the stamps of the files last read. Locked for
    /// a whole reload, so two reloads (timer, SIGHUP) never interleave.
    config: Mutex<(AccessConfig, Stamps)>,
    /// In an `Arc` of its own so that readers' caches can hold it.
    current: Arc<ArcSwap<AccessList>>,
    /// With `[access.database]`: asks its session for a reload.
    database: std::sync::OnceLock<crossbeam_channel::Sender<()>>,
}

impl Access {
    /// Reads the files: an error names the file, the line and the reason.
    pub fn load(config: &AccessConfig) -> Result<Access, String> {
        let stamps = stamps(config);
        let list = AccessList::build(config, None)?;
        log::info!("access: {}", list.summary());
        Ok(Access {
            config: Mutex::new((config.clone(), stamps)),
            current: Arc::new(ArcSwap::from_pointee(list)),
            database: Default::default(),
        })
    }

    /// Lists that let everything through, never reloaded.
    fn open() -> Access {
        Access {
            config: Mutex::new((AccessConfig::default(), Vec::new())),
            current: Arc::new(ArcSwap::from_pointee(AccessList::open())),
            database: Default::default(),
        }
    }

    /// Re-reads the files and swaps the new lists in. On an error (file,
    /// line, reason) the old lists stay.
    ///
    /// With `[access.database]`, asks the database's session to reload and
    /// returns at once; it logs what came of it.
    pub fn reload(&self) -> Result<(), String> {
        let mut guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if guard.0.database.enabled() {
            self.ask_database();
            return Ok(());
        }
        let config = guard.0.clone();
        self.reload_locked(&mut guard, &config)
    }

    /// Like [`Access::reload`], with a new `[access]` table; it is kept only
    /// if its files are good. The reload interval and `[access.database]`
    /// are fixed at start-up.
    pub fn reload_with(&self, config: &AccessConfig) -> Result<(), String> {
        let mut guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let mut config = config.clone();
        config.database = guard.0.database.clone();
        config.check().map_err(|e| format!("[access]: {e}"))?;
        if config.database.enabled() {
            // Checked, and used by the session's next load (the token keys
            // are read then too).
            guard.0 = config;
            self.ask_database();
            return Ok(());
        }
        self.reload_locked(&mut guard, &config)
    }

    fn ask_database(&self) {
        if let Some(tx) = self.database.get() {
            // Full: a reload is asked for already, and reads the database
            // as it is when it runs.
            let _ = tx.try_send(());
        }
    }

    /// Where [`Access::reload`] sends its requests with `[access.database]`.
    pub(crate) fn set_database(&self, tx: crossbeam_channel::Sender<()>) {
        let _ = self.database.set(tx);
    }

    /// The `[access]` table in force.
    pub(crate) fn config(&self) -> AccessConfig {
        let guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.clone()
    }

    /// Swaps in lists with these hashes and passkeys (from the database),
    /// built with the `[access]` table in force, which must be `config`
    /// (else Ok(false) and nothing changes: the caller reads again). An
    /// error (a token key file) keeps the old lists.
    pub(crate) fn install(
        &self,
        config: &AccessConfig,
        hashes: &[InfoHash],
        passkeys: Option<&[(String, Option<String>)]>,
    ) -> Result<bool, String> {
        let guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if guard.0 != *config {
            return Ok(false);
        }
        let old = self.current();
        let list = AccessList::assemble(config, hashes, passkeys, Some(&old))?;
        log::info!("access: {}", list.summary());
        self.current.store(Arc::new(list));
        Ok(true)
    }

    /// Reloads only if a file changed (modification time or length) since
    /// it was last read. Returns whether it reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let mut guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if stamps(&guard.0) == guard.1 {
            return Ok(false);
        }
        let config = guard.0.clone();
        self.reload_locked(&mut guard, &config).map(|()| true)
    }

    fn reload_locked(
        &self,
        guard: &mut (AccessConfig, Stamps),
        config: &AccessConfig,
    ) -> Result<(), String> {
        let new_stamps = stamps(config);
        let old = self.current();
        let result = AccessList::build(config, Some(&old));
        // Remember what was read even when it was bad, so a timer does not
        // report the same bad file again until it changes.
        guard.1 = new_stamps;
        let list = result?;
        log::info!("access: {}", list.summary());
        guard.0 = config.clone();
        self.current.store(Arc::new(list));
        Ok(())
    }

    /// The lists in force now.
    pub(crate) fn current(&self) -> Arc<AccessList> {
        self.current.load_full()
    }

    /// What a UDP announce of `info_hash` with BEP 41 `url_data` gets from
    /// the lists in force: Ok, or the error message the client is sent. The
    /// socket workers' check (passkey, token, list), for benches and tools.
    pub fn check_udp_announce(
        &self,
        info_hash: &InfoHash,
        url_data: &[u8],
    ) -> Result<(), &'static str> {
        self.current
            .load()
            .check_udp(info_hash, url_data)
            .map(drop)
            .map_err(Refusal::message)
    }

    /// A per-thread handle for the hot path.
    pub(crate) fn reader(&self) -> AccessReader {
        AccessReader::new(self.current.clone())
    }

    /// Per-passkey counters, labelled by user (keys that share a user are
    /// summed) or by a tag for a key without a user (see
    /// [`super::passkey_tag`]); a key is never shown.
    pub fn passkey_stats(&self) -> Vec<(String, PasskeyCounters)> {
        self.current().passkey_stats()
    }
}

/// A worker's view of the shared lists.
///
/// Why `arc_swap::Cache` rather than `ArcSwap::load` per batch or a lock:
/// in the steady state the cache costs one relaxed load of the shared
/// pointer and a compare with the one it holds, and no thread writes that
/// cache line; only after a swap does a worker touch a reference count.
/// That is what the hand-made generation counter it replaces did. Measured
/// on the 2-core build machine under load (10^8 calls a round, lists
/// unchanged, call not inlined): 3–5 ns a `load` for both, the cache as
/// fast or faster in 5 rounds of 6; the socket worker calls it once per
/// batch of up to 64 datagrams.
#[derive(Clone, Debug)]
pub struct AccessReader {
    cache: Cache<Arc<ArcSwap<AccessList>>, Arc<AccessList>>,
    /// The address of the lists as of the last look, to tell whether they
    /// changed since. An address, not an `Arc`, so that a reader that only
    /// ever calls `load` (a socket worker) holds no old lists alive. It
    /// can't be mistaken for new lists at the same address: the cache holds
    /// the lists it points to until it swaps them for newer ones that were
    /// made while the old ones were alive, and the address is updated then.
    seen: usize,
}

impl Default for AccessReader {
    /// A reader of lists that let everything through and never change.
    fn default() -> Self {
        Access::open().reader()
    }
}

impl AccessReader {
    fn new(current: Arc<ArcSwap<AccessList>>) -> AccessReader {
        let mut cache = Cache::new(current);
        let seen = Arc::as_ptr(cache.load()) as usize;
        AccessReader { cache, seen }
    }

    /// The lists in force (as of this call).
    #[inline]
    pub(crate) fn load(&mut self) -> &Arc<AccessList> {
        let list = self.cache.load();
        self.seen = Arc::as_ptr(list) as usize;
        list
    }

    /// The new lists if they changed since the last look.
    #[inline]
    pub(crate) fn changed(&mut self) -> Option<&Arc<AccessList>> {
        let list = self.cache.load();
        let address = Arc::as_ptr(list) as usize;
        if address == self.seen {
            return None;
        }
        self.seen = address;
        Some(list)
    }
}

/// Reloads `access` when its files change, every `interval`, until `stop`
/// is dropped. Run on the `access-reload` thread.
pub(crate) fn reload_every(
    access: Arc<Access>,
    interval: Duration,
    stop: crossbeam_channel::Receiver<()>,
) {
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        if let Err(e) = access.reload_if_changed() {
            log::warn!("access reload: keeping the old lists: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessMode;
    use crate::protocol::InfoHash;

    #[test]
    fn reload_swaps_whole_lists_and_a_bad_file_keeps_the_old_ones() {
        let dir = std::env::temp_dir().join(format!("swarmd-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hashes.txt");
        let (a, b) = (InfoHash([0xaa; 20]), InfoHash([0xbb; 20]));
        std::fs::write(&file, format!("{a}\n")).unwrap();
        let config = AccessConfig {
            mode: AccessMode::Allow,
            info_hash_file: file.clone(),
            ..AccessConfig::default()
        };
        let access = Access::load(&config).unwrap();
        let mut reader = access.reader();
        assert!(reader.changed().is_none());
        assert!(reader.load().allows(&a) && !reader.load().allows(&b));

        std::fs::write(&file, format!("{b}\n")).unwrap();
        access.reload().unwrap();
        let list = reader.changed().expect("new lists are seen").clone();
        assert!(!list.allows(&a) && list.allows(&b));
        assert!(reader.changed().is_none(), "seen once");

        std::fs::write(&file, format!("{b}\nnot a hash\n")).unwrap();
        let e = access.reload().unwrap_err();
        assert!(e.starts_with(&format!("{}:2: ", file.display())), "{e}");
        assert!(reader.changed().is_none(), "a bad file swaps nothing");
        assert!(reader.load().allows(&b));

        std::fs::write(&file, format!("{a}\n")).unwrap();
        access.reload().unwrap();
        assert!(reader.load().allows(&a), "load sees new lists too");
        assert!(reader.changed().is_none(), "and counts as a look");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
