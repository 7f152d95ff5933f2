//! Access control for private and curated trackers: the `[access]` table,
//! the info-hash list and passkey files, the shared list that socket workers
//! check every announce against, and the per-passkey accounting.
//!
//! The lists are built off the hot path (at start-up, on SIGHUP, on a timer)
//! into an immutable [`AccessList`] and swapped in whole. Workers hold an
//! [`AccessReader`]: one atomic load per batch tells them whether a new
//! list was swapped in; only then do they take a read lock, for as long as
//! it takes to clone an `Arc`. No lock is held while a batch
//! is worked on, and a reload never waits for a worker.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::protocol::{AnnounceEvent, InfoHash};
use crate::stats::FamilyCounters;
use crate::swarm::{Announce, PeerAddr, TorrentFilter};

/// Which torrents may be announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// Any torrent (a public tracker).
    #[default]
    Off,
    /// Only the torrents in `info_hash_file`.
    Allow,
    /// Any torrent but those in `info_hash_file`.
    Deny,
}

/// `[access]`: which torrents and which users may announce.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// `off` (any torrent), `allow` (only those in `info_hash_file`) or
    /// `deny` (all but those). A refused announce gets the error "torrent
    /// not allowed"; a refused torrent's scrape counts are zeros.
    pub mode: AccessMode,
    /// The info-hash list for `allow` and `deny`: one hash a line, 40 hex
    /// characters (a v2 hash may be given whole, 64 characters: its first 20
    /// bytes are what clients announce). `#` starts a comment; blank lines
    /// are skipped. A relative path is taken from the working directory.
    pub info_hash_file: PathBuf,
    /// Passkeys, one a line: `key` or `key user`, `#` comments allowed. A key
    /// is 1 to 128 characters from A-Z, a-z, 0-9, `-`, `.`, `_` and `~`.
    /// When set, every announce and HTTP scrape must carry a listed key
    /// (`/announce/KEY` or `/KEY/announce`; over UDP in the BEP 41 URL data),
    /// and UDP scrapes, which can't carry one, are refused. Empty: no
    /// passkeys.
    pub passkeys_file: PathBuf,
    /// Seconds between checks of both files for changes (reloaded when
    /// changed). 0: reload only on SIGHUP. A bad file keeps the old lists.
    pub reload_interval: u32,
}

impl AccessConfig {
    /// Checks that span several keys of the table.
    pub fn check(&self) -> Result<(), String> {
        if self.mode != AccessMode::Off && self.info_hash_file.as_os_str().is_empty() {
            return Err(format!(
                "access.mode is {:?} but access.info_hash_file is empty",
                format!("{:?}", self.mode).to_lowercase()
            ));
        }
        Ok(())
    }

    fn passkeys_enabled(&self) -> bool {
        !self.passkeys_file.as_os_str().is_empty()
    }

    /// The files this configuration reads, in the order they are read.
    fn files(&self) -> Vec<&Path> {
        let mut files = Vec::new();
        if self.mode != AccessMode::Off {
            files.push(self.info_hash_file.as_path());
        }
        if self.passkeys_enabled() {
            files.push(self.passkeys_file.as_path());
        }
        files
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotAllowed,
    PasskeyMissing,
    PasskeyUnknown,
}

impl Refusal {
    /// The error text sent to the client (UDP error, HTTP `failure reason`).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "torrent not allowed",
            Refusal::PasskeyMissing => "passkey required",
            Refusal::PasskeyUnknown => "unknown passkey",
        }
    }

    /// Bumps the counter of this kind of refusal.
    pub fn count(self, c: &FamilyCounters) {
        match self {
            Refusal::NotAllowed => c.errors_not_allowed.inc(),
            Refusal::PasskeyMissing | Refusal::PasskeyUnknown => c.errors_passkey.inc(),
        }
    }
}

/// What one passkey did since it was listed (or since start-up). Written by
/// swarm workers, which may share a key, so with atomic adds.
#[derive(Debug, Default)]
pub struct PasskeyTally {
    announces: AtomicU64,
    uploaded: AtomicU64,
    downloaded: AtomicU64,
}

impl PasskeyTally {
    fn add(&self, uploaded: u64, downloaded: u64) {
        self.announces.fetch_add(1, Ordering::Relaxed);
        self.uploaded.fetch_add(uploaded, Ordering::Relaxed);
        self.downloaded.fetch_add(downloaded, Ordering::Relaxed);
    }

    fn get(&self) -> PasskeyCounters {
        PasskeyCounters {
            announces: self.announces.load(Ordering::Relaxed),
            uploaded: self.uploaded.load(Ordering::Relaxed),
            downloaded: self.downloaded.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one passkey's (or one user's) counters. They only grow,
/// from start-up: a site doing ratio accounting stores what it read last
/// and adds the difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PasskeyCounters {
    /// Announces that reached a swarm.
    pub announces: u64,
    /// Bytes uploaded and downloaded, summed over the deltas between a
    /// peer's announces of a torrent.
    pub uploaded: u64,
    pub downloaded: u64,
}

#[derive(Debug)]
struct Passkey {
    user: Option<Box<str>>,
    tally: Arc<PasskeyTally>,
}

/// One immutable version of the lists. Swapped whole, never changed.
#[derive(Debug)]
pub struct AccessList {
    mode: AccessMode,
    hashes: hashbrown::HashSet<InfoHash, ahash::RandomState>,
    passkeys: Option<hashbrown::HashMap<Box<str>, Passkey, ahash::RandomState>>,
}

impl AccessList {
    /// The list that lets everything through.
    pub fn open() -> AccessList {
        AccessList {
            mode: AccessMode::Off,
            hashes: Default::default(),
            passkeys: None,
        }
    }

    /// Reads the files `config` names. Tallies of keys that `previous`
    /// also lists carry over, so a reload does not reset a user's counters.
    fn build(config: &AccessConfig, previous: Option<&AccessList>) -> Result<AccessList, String> {
        let mut list = AccessList::open();
        list.mode = config.mode;
        if config.mode != AccessMode::Off {
            let path = &config.info_hash_file;
            let text = read(path)?;
            list.hashes = parse_info_hashes(&text, &path.display().to_string())?
                .into_iter()
                .collect();
        }
        if config.passkeys_enabled() {
            let path = &config.passkeys_file;
            let text = read(path)?;
            let keys = parse_passkeys(&text, &path.display().to_string())?;
            let old = previous.and_then(|p| p.passkeys.as_ref());
            let mut map = hashbrown::HashMap::with_capacity_and_hasher(
                keys.len(),
                ahash::RandomState::default(),
            );
            for (key, user) in keys {
                let tally = old
                    .and_then(|o| o.get(key.as_str()))
                    .map(|p| p.tally.clone())
                    .unwrap_or_default();
                map.insert(
                    key.into_boxed_str(),
                    Passkey {
                        user: user.map(String::into_boxed_str),
                        tally,
                    },
                );
            }
            list.passkeys = Some(map);
        }
        Ok(list)
    }

    pub fn mode(&self) -> AccessMode {
        self.mode
    }

    /// Info hashes in the list (0 when the mode is off).
    pub fn hash_count(&self) -> usize {
        self.hashes.len()
    }

    /// Listed passkeys, None when passkeys are off.
    pub fn passkey_count(&self) -> Option<usize> {
        self.passkeys.as_ref().map(|p| p.len())
    }

    /// Whether announces for `info_hash` are accepted.
    #[inline]
    pub fn allows(&self, info_hash: &InfoHash) -> bool {
        match self.mode {
            AccessMode::Off => true,
            AccessMode::Allow => self.hashes.contains(info_hash),
            AccessMode::Deny => !self.hashes.contains(info_hash),
        }
    }

    /// Checks an announce. The passkey is checked first, so that someone
    /// without a key can't learn which torrents are listed. Ok carries the
    /// key's tally when passkeys are on.
    #[inline]
    pub fn check(
        &self,
        info_hash: &InfoHash,
        passkey: Option<&str>,
    ) -> Result<Option<Arc<PasskeyTally>>, Refusal> {
        let tally = match &self.passkeys {
            None => None,
            Some(keys) => {
                let key = passkey.ok_or(Refusal::PasskeyMissing)?;
                Some(keys.get(key).ok_or(Refusal::PasskeyUnknown)?.tally.clone())
            }
        };
        if !self.allows(info_hash) {
            return Err(Refusal::NotAllowed);
        }
        Ok(tally)
    }

    /// Checks a UDP announce, whose passkey is in its BEP 41 URL data.
    #[inline]
    pub fn check_udp(
        &self,
        info_hash: &InfoHash,
        url_data: &[u8],
    ) -> Result<Option<Arc<PasskeyTally>>, Refusal> {
        let passkey = match self.passkeys {
            Some(_) => url_passkey(url_data),
            None => None,
        };
        self.check(info_hash, passkey)
    }

    /// Checks the passkey of a scrape (UDP scrapes have none).
    #[inline]
    pub fn check_scrape(&self, passkey: Option<&str>) -> Result<(), Refusal> {
        match &self.passkeys {
            None => Ok(()),
            Some(keys) => match passkey {
                None => Err(Refusal::PasskeyMissing),
                Some(k) if keys.contains_key(k) => Ok(()),
                Some(_) => Err(Refusal::PasskeyUnknown),
            },
        }
    }

    /// The test a swarm's cleaning pass applies to each torrent, None when
    /// every torrent may stay.
    pub fn filter(self: &Arc<Self>) -> Option<TorrentFilter> {
        if self.mode == AccessMode::Off {
            return None;
        }
        let list = self.clone();
        Some(Arc::new(move |h: &InfoHash| list.allows(h)))
    }

    /// Counters by user (or by key, for keys without a user), sorted.
    fn passkey_stats(&self) -> Vec<(String, PasskeyCounters)> {
        let mut by_label: std::collections::BTreeMap<&str, PasskeyCounters> = Default::default();
        for (key, p) in self.passkeys.iter().flatten() {
            let label = p.user.as_deref().unwrap_or(key);
            let c = p.tally.get();
            let sum = by_label.entry(label).or_default();
            sum.announces += c.announces;
            sum.uploaded += c.uploaded;
            sum.downloaded += c.downloaded;
        }
        by_label
            .into_iter()
            .map(|(l, c)| (l.to_owned(), c))
            .collect()
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// The content of a line without its comment, trimmed (and without the
/// byte-order mark some editors put at the start of a file).
fn content(line: &str) -> &str {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    line.split('#').next().unwrap_or("").trim()
}

/// Parses an info-hash list. `origin` (a path) names the file in errors,
/// which read `origin:line: reason`.
pub fn parse_info_hashes(text: &str, origin: &str) -> Result<Vec<InfoHash>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = content(line);
        if line.is_empty() {
            continue;
        }
        let fail = |reason: String| format!("{origin}:{}: {reason}", n + 1);
        if line.split_whitespace().nth(1).is_some() {
            return Err(fail("more than one info hash on the line".into()));
        }
        if !line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail(format!("{line:?} is not hexadecimal")));
        }
        // A v2 (SHA-256) hash: clients announce its first 20 bytes.
        let hex = match line.len() {
            40 => line,
            64 => &line[..40],
            len => {
                return Err(fail(format!(
                    "an info hash is 40 hex characters (or 64 for v2), this is {len}"
                )))
            }
        };
        out.push(InfoHash::from_hex(hex).ok_or_else(|| fail("not an info hash".into()))?);
    }
    Ok(out)
}

fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Parses a passkeys file into `(key, user)` pairs. Errors read
/// `origin:line: reason`.
pub fn parse_passkeys(text: &str, origin: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = content(line);
        if line.is_empty() {
            continue;
        }
        let fail = |reason: String| format!("{origin}:{}: {reason}", n + 1);
        let mut words = line.split_whitespace();
        let key = words.next().unwrap_or_default();
        let user = words.next();
        if words.next().is_some() {
            return Err(fail("expected `key` or `key user`".into()));
        }
        if !valid_key(key) {
            return Err(fail(format!(
                "bad passkey {key:?}: use 1 to 128 characters from A-Z a-z 0-9 - . _ ~"
            )));
        }
        if let Some(first) = seen.insert(key.to_owned(), n + 1) {
            return Err(fail(format!(
                "passkey {key:?} is listed twice (first on line {first})"
            )));
        }
        out.push((key.to_owned(), user.map(str::to_owned)));
    }
    Ok(out)
}

fn is_route(segment: &str) -> bool {
    matches!(
        segment,
        "announce" | "announce.php" | "scrape" | "scrape.php"
    )
}

/// The passkey in BEP 41 URL data: `/announce/KEY` or `/KEY/announce`,
/// maybe followed by a query string. None when there is none.
pub fn url_passkey(url_data: &[u8]) -> Option<&str> {
    let url = std::str::from_utf8(url_data).ok()?;
    let path = url.split(['?', '#']).next()?;
    let mut parts = path.trim_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(key), None) if is_route(a) && !key.is_empty() => Some(key),
        (Some(key), Some(a), None) if is_route(a) && !key.is_empty() => Some(key),
        _ => None,
    }
}

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
    current: RwLock<Arc<AccessList>>,
    /// Bumped after every swap; readers compare it with the one they saw.
    generation: AtomicU64,
}

impl Access {
    /// Reads the files: an error names the file, the line and the reason.
    pub fn load(config: &AccessConfig) -> Result<Access, String> {
        let stamps = stamps(config);
        let list = AccessList::build(config, None)?;
        log_loaded(&list);
        Ok(Access {
            config: Mutex::new((config.clone(), stamps)),
            current: RwLock::new(Arc::new(list)),
            generation: AtomicU64::new(0),
        })
    }

    /// Re-reads the files and swaps the new lists in. On an error (file,
    /// line, reason) the old lists stay.
    pub fn reload(&self) -> Result<(), String> {
        let mut guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let config = guard.0.clone();
        self.reload_locked(&mut guard, &config)
    }

    /// Like [`Access::reload`], with a new `[access]` table; it is kept only
    /// if its files are good. The reload interval is fixed at start-up.
    pub fn reload_with(&self, config: &AccessConfig) -> Result<(), String> {
        config.check().map_err(|e| format!("[access]: {e}"))?;
        let mut guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked(&mut guard, config)
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
        log_loaded(&list);
        guard.0 = config.clone();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The lists in force now.
    pub fn current(&self) -> Arc<AccessList> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A per-thread handle for the hot path.
    pub fn reader(self: &Arc<Self>) -> AccessReader {
        AccessReader {
            shared: self.clone(),
            generation: self.generation.load(Ordering::Acquire),
            list: self.current(),
        }
    }

    /// Per-passkey counters, labelled by user (keys that share a user are
    /// summed) or by the key itself when it has no user.
    pub fn passkey_stats(&self) -> Vec<(String, PasskeyCounters)> {
        self.current().passkey_stats()
    }
}

fn log_loaded(list: &AccessList) {
    let hashes = match list.mode {
        AccessMode::Off => "any torrent".to_string(),
        AccessMode::Allow => format!("{} allowed info hashes", list.hashes.len()),
        AccessMode::Deny => format!("{} denied info hashes", list.hashes.len()),
    };
    match list.passkey_count() {
        Some(n) => log::info!("access: {hashes}, {n} passkeys"),
        None => log::info!("access: {hashes}, no passkeys"),
    }
}

/// A worker's view of the shared lists: a cached `Arc` and the generation
/// it belongs to.
///
/// Why not a lock or an `Arc` clone per request: every worker would write
/// the same cache line for each one. Here the steady state is one atomic
/// load of a line nobody writes, and a new list costs each worker a single
/// read lock when it next looks.
#[derive(Clone, Debug)]
pub struct AccessReader {
    shared: Arc<Access>,
    generation: u64,
    list: Arc<AccessList>,
}

impl Default for AccessReader {
    /// A reader of lists that let everything through and never change.
    fn default() -> Self {
        let list = Arc::new(AccessList::open());
        AccessReader {
            shared: Arc::new(Access {
                config: Mutex::new((AccessConfig::default(), Vec::new())),
                current: RwLock::new(list.clone()),
                generation: AtomicU64::new(0),
            }),
            generation: 0,
            list,
        }
    }
}

impl AccessReader {
    /// The lists in force (as of this call).
    #[inline]
    pub fn load(&mut self) -> &Arc<AccessList> {
        self.changed();
        &self.list
    }

    /// The new lists if they changed since the last look.
    #[inline]
    pub fn changed(&mut self) -> Option<&Arc<AccessList>> {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g == self.generation {
            return None;
        }
        self.generation = g;
        self.list = self.shared.current();
        Some(&self.list)
    }
}

/// What an announce with a passkey carries to its swarm worker.
#[derive(Debug)]
pub struct Account {
    pub tally: Arc<PasskeyTally>,
    pub uploaded: u64,
    pub downloaded: u64,
}

impl Account {
    /// Boxed, so that a request without one costs a null pointer.
    pub fn boxed(
        tally: Option<Arc<PasskeyTally>>,
        uploaded: u64,
        downloaded: u64,
    ) -> Option<Box<Account>> {
        tally.map(|tally| {
            Box::new(Account {
                tally,
                uploaded,
                downloaded,
            })
        })
    }
}

/// A swarm worker's record of the uploaded and downloaded totals each peer
/// last reported per torrent, to turn them into deltas.
///
/// Why a map beside the swarm rather than fields in each peer: a public
/// tracker would pay 16 bytes more on every peer for a feature it does not
/// use. Why two generations: a record untouched for a whole period is
/// dropped with its generation, so the map is bounded by the peers active
/// in the last two periods (the peer timeout) without a walk over it.
#[derive(Debug)]
pub struct Ledger {
    period: u32,
    rotated_at: u32,
    current: hashbrown::HashMap<(InfoHash, PeerAddr), (u64, u64), ahash::RandomState>,
    previous: hashbrown::HashMap<(InfoHash, PeerAddr), (u64, u64), ahash::RandomState>,
}

impl Ledger {
    /// `period`: seconds a record lives at least (the peer timeout).
    pub fn new(period: u32) -> Ledger {
        Ledger {
            period: period.max(1),
            rotated_at: 0,
            current: Default::default(),
            previous: Default::default(),
        }
    }

    /// Drops the older generation if a period has passed.
    pub fn rotate(&mut self, now: u32) {
        if now.saturating_sub(self.rotated_at) >= self.period {
            self.previous = std::mem::take(&mut self.current);
            self.rotated_at = now;
        }
    }

    /// Records an announce and adds its deltas to the passkey's tally.
    ///
    /// A peer without a record counts its totals only on `started` (a new
    /// session starts from zero); otherwise it is a session whose start the
    /// tracker did not see (a restart), and its totals become the baseline,
    /// so nothing is counted twice. A total lower than the last one means
    /// the client restarted its count: all of it is new.
    pub fn record(&mut self, account: &Account, announce: &Announce, now: u32) {
        self.rotate(now);
        let key = (announce.info_hash, announce.addr);
        let last = self
            .current
            .remove(&key)
            .or_else(|| self.previous.remove(&key));
        let delta = |new: u64, old: u64| if new >= old { new - old } else { new };
        let (up, down) = match last {
            Some((u, d)) => (delta(account.uploaded, u), delta(account.downloaded, d)),
            None if announce.event == AnnounceEvent::Started => {
                (account.uploaded, account.downloaded)
            }
            None => (0, 0),
        };
        account.tally.add(up, down);
        if announce.event != AnnounceEvent::Stopped {
            self.current
                .insert(key, (account.uploaded, account.downloaded));
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reloads `access` when its files change, every `interval`, until `stop`
/// is dropped. Run on the `access-reload` thread.
pub fn reload_every(
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

    const H1: &str = "0123456789abcdef0123456789ABCDEF01234567";

    #[test]
    fn info_hash_lists_with_comments_and_blank_lines() {
        let text = format!(
            "# allowed torrents\n\n{H1}\n  {}  # a comment\n{}\n",
            "f".repeat(40),
            "e".repeat(64)
        );
        let hashes = parse_info_hashes(&format!("\u{feff}{text}"), "list").unwrap();
        assert_eq!(hashes.len(), 3);
        assert_eq!(hashes[0], InfoHash::from_hex(H1).unwrap());
        assert_eq!(hashes[1], InfoHash([0xff; 20]));
        assert_eq!(hashes[2], InfoHash([0xee; 20]), "a v2 hash is truncated");
        assert_eq!(parse_info_hashes("", "list").unwrap(), vec![]);
    }

    #[test]
    fn bad_info_hash_lines_name_file_and_line() {
        let e = parse_info_hashes(&format!("{H1}\n\n0123\n"), "a.txt").unwrap_err();
        assert!(e.starts_with("a.txt:3: ") && e.contains("40 hex"), "{e}");
        let e = parse_info_hashes(&format!("# x\n{}\n", "g".repeat(40)), "a.txt").unwrap_err();
        assert!(
            e.starts_with("a.txt:2: ") && e.contains("not hexadecimal"),
            "{e}"
        );
        let e = parse_info_hashes(&format!("{H1} {H1}\n"), "a.txt").unwrap_err();
        assert!(
            e.starts_with("a.txt:1: ") && e.contains("more than one"),
            "{e}"
        );
        // Multi-byte text must not be sliced mid-character.
        let e = parse_info_hashes(&"é".repeat(32), "a.txt").unwrap_err();
        assert!(e.starts_with("a.txt:1: "), "{e}");
    }

    #[test]
    fn passkey_files_with_and_without_users() {
        let keys = parse_passkeys("# keys\nabc123 alice\n\nK-._~9   # no user\n", "k").unwrap();
        assert_eq!(
            keys,
            vec![
                ("abc123".to_string(), Some("alice".to_string())),
                ("K-._~9".to_string(), None)
            ]
        );
    }

    #[test]
    fn bad_passkey_lines_name_file_and_line() {
        let e = parse_passkeys("a b c\n", "k.txt").unwrap_err();
        assert!(e.starts_with("k.txt:1: ") && e.contains("key user"), "{e}");
        let e = parse_passkeys("ok\nnot/ok\n", "k.txt").unwrap_err();
        assert!(
            e.starts_with("k.txt:2: ") && e.contains("bad passkey"),
            "{e}"
        );
        let e = parse_passkeys(&format!("{}\n", "k".repeat(129)), "k.txt").unwrap_err();
        assert!(e.starts_with("k.txt:1: "), "{e}");
        let e = parse_passkeys("one\ntwo\n\none bob\n", "k.txt").unwrap_err();
        assert!(
            e.starts_with("k.txt:4: ") && e.contains("first on line 1"),
            "{e}"
        );
    }

    #[test]
    fn passkeys_from_bep41_url_data() {
        assert_eq!(url_passkey(b"/announce/abc"), Some("abc"));
        assert_eq!(url_passkey(b"/abc/announce"), Some("abc"));
        assert_eq!(url_passkey(b"/abc/announce?x=1&y=2"), Some("abc"));
        assert_eq!(url_passkey(b"/announce/abc/?x"), Some("abc"));
        assert_eq!(url_passkey(b"/announce.php/abc"), Some("abc"));
        assert_eq!(url_passkey(b"/announce"), None);
        assert_eq!(url_passkey(b"/announce/"), None);
        assert_eq!(url_passkey(b""), None);
        assert_eq!(url_passkey(b"/a/b/announce"), None);
        assert_eq!(url_passkey(b"/x/y"), None);
        assert_eq!(url_passkey(b"/announce/\xff"), None);
    }

    fn list(mode: AccessMode, hashes: &[InfoHash], keys: Option<&[&str]>) -> AccessList {
        AccessList {
            mode,
            hashes: hashes.iter().copied().collect(),
            passkeys: keys.map(|keys| {
                keys.iter()
                    .map(|k| {
                        (
                            Box::<str>::from(*k),
                            Passkey {
                                user: None,
                                tally: Default::default(),
                            },
                        )
                    })
                    .collect()
            }),
        }
    }

    #[test]
    fn checks_by_mode_and_passkey() {
        let (a, b) = (InfoHash([1; 20]), InfoHash([2; 20]));
        let allow = list(AccessMode::Allow, &[a], None);
        assert!(allow.check(&a, None).unwrap().is_none());
        assert_eq!(allow.check(&b, None).unwrap_err(), Refusal::NotAllowed);
        let deny = list(AccessMode::Deny, &[a], None);
        assert_eq!(deny.check(&a, None).unwrap_err(), Refusal::NotAllowed);
        assert!(deny.check(&b, Some("ignored")).is_ok());
        let private = list(AccessMode::Allow, &[a], Some(&["k1"]));
        assert_eq!(
            private.check(&a, None).unwrap_err(),
            Refusal::PasskeyMissing
        );
        assert_eq!(
            private.check(&b, Some("k2")).unwrap_err(),
            Refusal::PasskeyUnknown,
            "the passkey is checked first"
        );
        assert_eq!(
            private.check(&b, Some("k1")).unwrap_err(),
            Refusal::NotAllowed
        );
        assert!(private.check(&a, Some("k1")).unwrap().is_some());
        assert_eq!(
            private
                .check_udp(&a, b"/k1/announce?a=b")
                .map(|t| t.is_some()),
            Ok(true)
        );
        assert_eq!(private.check_scrape(None), Err(Refusal::PasskeyMissing));
        assert_eq!(private.check_scrape(Some("k1")), Ok(()));
        assert!(AccessList::open().check_scrape(None).is_ok());
    }

    fn announce(event: AnnounceEvent) -> Announce {
        Announce {
            info_hash: InfoHash([9; 20]),
            addr: PeerAddr::V4([127, 0, 0, 1, 0, 80]),
            event,
            seeder: false,
            num_want: 0,
        }
    }

    #[test]
    fn ledger_counts_deltas_and_forgets_idle_peers() {
        let tally = Arc::new(PasskeyTally::default());
        let acc = |up, down| Account {
            tally: tally.clone(),
            uploaded: up,
            downloaded: down,
        };
        let mut ledger = Ledger::new(100);
        ledger.record(&acc(0, 0), &announce(AnnounceEvent::Started), 1);
        ledger.record(&acc(100, 10), &announce(AnnounceEvent::None), 2);
        ledger.record(&acc(150, 30), &announce(AnnounceEvent::None), 3);
        assert_eq!(
            tally.get(),
            PasskeyCounters {
                announces: 3,
                uploaded: 150,
                downloaded: 30
            }
        );
        // A count that went down was restarted: all of it is new.
        ledger.record(&acc(40, 30), &announce(AnnounceEvent::None), 4);
        assert_eq!(tally.get().uploaded, 190);
        assert_eq!(ledger.len(), 1);
        // Stopped counts its last delta and forgets the peer.
        ledger.record(&acc(50, 30), &announce(AnnounceEvent::Stopped), 5);
        assert_eq!(tally.get().uploaded, 200);
        assert!(ledger.is_empty());
        // Unknown, not started: a baseline, nothing counted.
        ledger.record(&acc(1000, 1000), &announce(AnnounceEvent::None), 6);
        assert_eq!(tally.get().uploaded, 200);
        // Survives one rotation, not two without an announce.
        ledger.rotate(150);
        ledger.record(&acc(1010, 1000), &announce(AnnounceEvent::None), 150);
        assert_eq!(tally.get().uploaded, 210);
        ledger.rotate(250);
        assert_eq!(ledger.len(), 1);
        ledger.rotate(350);
        assert!(ledger.is_empty());
    }

    #[test]
    fn cleaning_purges_what_the_list_refuses() {
        use crate::swarm::{SwarmConfig, Swarms};
        let (a, b) = (InfoHash([1; 20]), InfoHash([2; 20]));
        let mut swarms = Swarms::new(SwarmConfig::default());
        let mut out = Vec::new();
        for (hash, port) in [(a, 1), (a, 2), (b, 3)] {
            let mut ann = announce(AnnounceEvent::Started);
            ann.info_hash = hash;
            ann.addr = PeerAddr::V4([127, 0, 0, 1, 0, port]);
            swarms.announce(&ann, 10, &mut out);
        }
        let open = Arc::new(list(AccessMode::Off, &[], None));
        assert!(open.filter().is_none(), "nothing to test when off");
        let only_b = Arc::new(list(AccessMode::Allow, &[b], None));
        swarms.set_filter(only_b.filter());
        while !swarms.clean_step(10, 1).1 {}
        assert_eq!(swarms.purged(), (1, 2));
        assert_eq!(swarms.scrape(&a).leechers, 0);
        assert_eq!(swarms.scrape(&b).leechers, 1);
        assert_eq!(swarms.torrent_count(), 1);
        assert_eq!(swarms.gauges(), swarms.totals());
    }

    #[test]
    fn config_needs_a_list_for_allow_and_deny() {
        let mut c = AccessConfig {
            mode: AccessMode::Allow,
            ..AccessConfig::default()
        };
        let e = c.check().unwrap_err();
        assert!(
            e.contains("\"allow\"") && e.contains("info_hash_file"),
            "{e}"
        );
        c.info_hash_file = "x".into();
        assert!(c.check().is_ok());
        assert!(AccessConfig::default().check().is_ok());
    }
}
