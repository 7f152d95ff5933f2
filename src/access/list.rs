//! One immutable version of the access lists (allowed or denied info
//! hashes, listed passkeys, the keys announce tokens are checked with), the
//! checks made against it on the hot path, and why a request was refused.

use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use super::config::{AccessConfig, AccessMode};
use super::file::{parse_info_hashes, parse_passkeys, read};
use super::ledger::{PasskeyCounters, PasskeyTally};
use super::route::{parse_target, query_token_bytes, split_url_data};
use super::token::{unix_now, Tokens};
use crate::protocol::InfoHash;
use crate::stats::FamilyCounters;
use crate::swarm::TorrentFilter;

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotAllowed,
    PasskeyMissing,
    PasskeyUnknown,
    TokenRequired,
    TokenExpired,
    TokenNotYetValid,
    TokenWrongTorrent,
    /// Wrong `iss` or `aud`.
    TokenWrongTracker,
    /// Bad signature, an unknown `kid`, an algorithm other than the
    /// configured one (`none` included), a header that does not parse.
    TokenBadSignature,
    /// Signed, but not a token for swarmd (no `exp`, a bad `infohash`), or
    /// too long to read.
    TokenInvalid,
    /// A token never seen, when the second's signature checks are spent
    /// (`access.token.verify_per_second`).
    TokenBusy,
}

impl Refusal {
    /// The error text sent to the client (UDP error, HTTP `failure reason`).
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "torrent not allowed",
            Refusal::PasskeyMissing => "passkey required",
            Refusal::PasskeyUnknown => "unknown passkey",
            Refusal::TokenRequired => "token required",
            Refusal::TokenExpired => "token expired",
            Refusal::TokenNotYetValid => "token not yet valid",
            Refusal::TokenWrongTorrent => "token not for this torrent",
            Refusal::TokenWrongTracker => "token not for this tracker",
            Refusal::TokenBadSignature => "bad token signature",
            Refusal::TokenBusy => "token check busy, retry",
            Refusal::TokenInvalid => "bad token",
        }
    }

    /// Bumps the counter of this kind of refusal.
    pub(crate) fn count(self, c: &FamilyCounters) {
        match self {
            Refusal::NotAllowed => c.errors_not_allowed.inc(),
            Refusal::PasskeyMissing | Refusal::PasskeyUnknown => c.errors_passkey.inc(),
            Refusal::TokenRequired => c.errors_token_required.inc(),
            Refusal::TokenExpired | Refusal::TokenNotYetValid => c.errors_token_expired.inc(),
            Refusal::TokenWrongTorrent => c.errors_token_torrent.inc(),
            Refusal::TokenBadSignature => c.errors_token_signature.inc(),
            Refusal::TokenBusy => c.errors_token_busy.inc(),
            Refusal::TokenWrongTracker | Refusal::TokenInvalid => c.errors_token_invalid.inc(),
        }
    }
}

/// The label under which a passkey listed without a user is shown in the
/// stats: `key-` and 12 hex digits of a keyed hash of the key.
///
/// Why keyed with a secret made at start-up (SipHash, the standard
/// library's `RandomState`), not a plain SHA-256: the passkeys file takes
/// keys as short as one character, and a plain hash of a short or guessable
/// key is undone by hashing candidates. Without the secret nobody can test a
/// guess. The price: the tag changes when the process restarts, as the
/// counters themselves do (they count from start-up); it stays the same
/// across reloads. An operator who wants a stable name gives the key a user.
/// Why 12 digits: two keys with the same tag would be summed as one, and at
/// 100 000 keys without a user the odds of that are about 1 in 50 000 with
/// 48 bits (with 32 they would be better than even).
pub fn passkey_tag(key: &str) -> String {
    static SECRET: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let hash = SECRET.get_or_init(Default::default).hash_one(key);
    format!("key-{:012x}", hash >> 16)
}

#[derive(Debug)]
struct Passkey {
    user: Option<Box<str>>,
    tally: Arc<PasskeyTally>,
}

/// One immutable version of the lists. Swapped whole, never changed.
#[derive(Debug)]
pub(crate) struct AccessList {
    mode: AccessMode,
    hashes: hashbrown::HashSet<InfoHash, ahash::RandomState>,
    passkeys: Option<hashbrown::HashMap<Box<str>, Passkey, ahash::RandomState>>,
    /// None: announces need no token.
    tokens: Option<Tokens>,
}

impl AccessList {
    /// The list that lets everything through.
    pub(crate) fn open() -> AccessList {
        AccessList {
            mode: AccessMode::Off,
            hashes: Default::default(),
            passkeys: None,
            tokens: None,
        }
    }

    /// Reads the files `config` names. Tallies of keys that `previous`
    /// also lists carry over, so a reload does not reset a user's counters.
    pub(crate) fn build(
        config: &AccessConfig,
        previous: Option<&AccessList>,
    ) -> Result<AccessList, String> {
        let mut hashes = Vec::new();
        let mut passkeys = None;
        if config.database.enabled() {
            // The database's session fills the lists in (see `assemble`);
            // until then they are empty, and nothing is served before.
            passkeys = config.passkeys_enabled().then(Vec::new);
        } else {
            if config.mode != AccessMode::Off {
                let path = &config.info_hash_file;
                hashes = parse_info_hashes(&read(path)?, &path.display().to_string())?;
            }
            if config.passkeys_enabled() {
                let path = &config.passkeys_file;
                passkeys = Some(parse_passkeys(&read(path)?, &path.display().to_string())?);
            }
        }
        AccessList::assemble(config, &hashes, passkeys.as_deref(), previous)
    }

    /// Lists of `config`'s mode with these hashes and passkeys (None:
    /// passkeys off), and the token keys its files name. Tallies of keys
    /// that `previous` also lists carry over.
    pub(crate) fn assemble(
        config: &AccessConfig,
        hashes: &[InfoHash],
        passkeys: Option<&[(String, Option<String>)]>,
        previous: Option<&AccessList>,
    ) -> Result<AccessList, String> {
        let mut list = AccessList::open();
        list.mode = config.mode;
        if config.mode != AccessMode::Off {
            list.hashes = hashes.iter().copied().collect();
        }
        if let Some(keys) = passkeys {
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
                    Box::from(key.as_str()),
                    Passkey {
                        user: user.as_deref().map(Box::from),
                        tally,
                    },
                );
            }
            list.passkeys = Some(map);
        }
        if config.token.enabled() {
            list.tokens = Some(Tokens::build(&config.token)?);
        }
        Ok(list)
    }

    /// Each passkey's user and tally, for the traffic write-back.
    pub(crate) fn tallies(&self) -> impl Iterator<Item = (Option<&str>, &Arc<PasskeyTally>)> {
        self.passkeys
            .iter()
            .flatten()
            .map(|(_, p)| (p.user.as_deref(), &p.tally))
    }

    /// What the lists hold, for the log.
    pub(crate) fn summary(&self) -> String {
        let hashes = match self.mode {
            AccessMode::Off => "any torrent".to_string(),
            AccessMode::Allow => format!("{} allowed info hashes", self.hashes.len()),
            AccessMode::Deny => format!("{} denied info hashes", self.hashes.len()),
        };
        let keys = match &self.passkeys {
            Some(keys) => format!("{} passkeys", keys.len()),
            None => "no passkeys".into(),
        };
        match &self.tokens {
            Some(tokens) => format!("{hashes}, {keys}, {}", tokens.summary()),
            None => format!("{hashes}, {keys}, no tokens"),
        }
    }

    /// Whether announces for `info_hash` are accepted.
    #[inline]
    pub(crate) fn allows(&self, info_hash: &InfoHash) -> bool {
        match self.mode {
            AccessMode::Off => true,
            AccessMode::Allow => self.hashes.contains(info_hash),
            AccessMode::Deny => !self.hashes.contains(info_hash),
        }
    }

    /// Checks an announce: `path_key` is the segment beside the route in
    /// the path (`/announce/X`, `/X/announce`), `jwt` the query's `jwt=`.
    /// The passkey is checked first, then the token, so that someone
    /// without them can't learn which torrents are listed. Ok carries the
    /// key's tally when passkeys are on.
    #[inline]
    pub(crate) fn check(
        &self,
        info_hash: &InfoHash,
        path_key: Option<&str>,
        jwt: Option<&[u8]>,
    ) -> Result<Option<Arc<PasskeyTally>>, Refusal> {
        let tally = match &self.passkeys {
            None => None,
            Some(keys) => {
                let key = path_key.ok_or(Refusal::PasskeyMissing)?;
                Some(keys.get(key).ok_or(Refusal::PasskeyUnknown)?.tally.clone())
            }
        };
        if let Some(tokens) = &self.tokens {
            // The path's segment is the token only where no passkey takes
            // its place: with both on, the token goes in the query.
            let token = match self.passkeys {
                None => jwt.or(path_key.map(str::as_bytes)),
                Some(_) => jwt,
            };
            tokens.check(token, info_hash, unix_now())?;
        }
        if !self.allows(info_hash) {
            return Err(Refusal::NotAllowed);
        }
        Ok(tally)
    }

    /// Checks a UDP announce, whose passkey and token are in its BEP 41
    /// URL data, written as in an HTTP URL.
    #[inline]
    pub(crate) fn check_udp(
        &self,
        info_hash: &InfoHash,
        url_data: &[u8],
    ) -> Result<Option<Arc<PasskeyTally>>, Refusal> {
        // Parsed only when it matters: a public tracker never looks.
        if self.passkeys.is_none() && self.tokens.is_none() {
            return self.check(info_hash, None, None);
        }
        // The path is read as text (a path that is not UTF-8 holds no key
        // that could match); the query, where a token is, stays bytes: the
        // token cache is looked up by them, and the hundreds of bytes of a
        // token are validated only when it is new.
        let (path, query) = split_url_data(url_data);
        let jwt = query.and_then(query_token_bytes);
        // The path matters for a passkey, or for a token in the path when
        // the query has none; otherwise it is not read (measured: 0.09 us
        // an announce, ~2 % of one, in the whole daemon).
        let path_key = if self.passkeys.is_some() || jwt.is_none() {
            std::str::from_utf8(path)
                .ok()
                .and_then(|p| parse_target(p).passkey)
        } else {
            None
        };
        self.check(info_hash, path_key, jwt)
    }

    /// Prepares the token checks of a batch of UDP datagrams (see
    /// `Tokens::prefetch_udp`); nothing when tokens are off. Only for a
    /// batch of two or more: a lone datagram has nothing to overlap its
    /// waits with.
    #[inline]
    pub(crate) fn prefetch_udp<'a>(&self, datagrams: impl Iterator<Item = &'a [u8]>, count: usize) {
        if let Some(tokens) = &self.tokens {
            if count >= 2 {
                tokens.prefetch_udp(datagrams);
            }
        }
    }

    /// Checks the passkey of a scrape (UDP scrapes have none).
    #[inline]
    pub(crate) fn check_scrape(&self, passkey: Option<&str>) -> Result<(), Refusal> {
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
    pub(crate) fn filter(self: &Arc<Self>) -> Option<TorrentFilter> {
        if self.mode == AccessMode::Off {
            return None;
        }
        let list = self.clone();
        Some(Arc::new(move |h: &InfoHash| list.allows(h)))
    }

    /// Counters by user (keys that share a user are summed), or by
    /// [`passkey_tag`] for keys without a user, sorted by that label. A key
    /// itself is never shown: whoever reads the stats could announce with it.
    pub(crate) fn passkey_stats(&self) -> Vec<(String, PasskeyCounters)> {
        let mut by_label: std::collections::BTreeMap<String, PasskeyCounters> = Default::default();
        for (key, p) in self.passkeys.iter().flatten() {
            let label = match &p.user {
                Some(user) => user.to_string(),
                None => passkey_tag(key),
            };
            *by_label.entry(label).or_default() += p.tally.get();
        }
        by_label.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AnnounceEvent;
    use crate::swarm::{Announce, PeerAddr};

    /// Lists for the tests; passkeys are off when `keys` is empty.
    fn list(mode: AccessMode, hashes: &[InfoHash], keys: &[(&str, Option<&str>)]) -> AccessList {
        let passkey = |&(key, user): &(&str, Option<&str>)| {
            let p = Passkey {
                user: user.map(Box::from),
                tally: Default::default(),
            };
            (Box::<str>::from(key), p)
        };
        AccessList {
            mode,
            hashes: hashes.iter().copied().collect(),
            passkeys: (!keys.is_empty()).then(|| keys.iter().map(passkey).collect()),
            tokens: None,
        }
    }

    #[test]
    fn checks_by_mode_and_passkey() {
        let (a, b) = (InfoHash([1; 20]), InfoHash([2; 20]));
        let allow = list(AccessMode::Allow, &[a], &[]);
        assert!(allow.check(&a, None, None).unwrap().is_none());
        assert_eq!(
            allow.check(&b, None, None).unwrap_err(),
            Refusal::NotAllowed
        );
        let deny = list(AccessMode::Deny, &[a], &[]);
        assert_eq!(deny.check(&a, None, None).unwrap_err(), Refusal::NotAllowed);
        assert!(deny.check(&b, Some("ignored"), None).is_ok());
        let private = list(AccessMode::Allow, &[a], &[("k1", None)]);
        assert_eq!(
            private.check(&a, None, None).unwrap_err(),
            Refusal::PasskeyMissing
        );
        assert_eq!(
            private.check(&b, Some("k2"), None).unwrap_err(),
            Refusal::PasskeyUnknown,
            "the passkey is checked first"
        );
        assert_eq!(
            private.check(&b, Some("k1"), None).unwrap_err(),
            Refusal::NotAllowed
        );
        assert!(private.check(&a, Some("k1"), None).unwrap().is_some());
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

    #[test]
    fn passkey_stats_show_users_and_tags_never_keys() {
        let l = list(
            AccessMode::Off,
            &[],
            &[("k1", Some("alice")), ("k2", None), ("k3", Some("alice"))],
        );
        let stats = l.passkey_stats();
        let labels: Vec<&str> = stats.iter().map(|(label, _)| label.as_str()).collect();
        assert_eq!(labels, ["alice", passkey_tag("k2").as_str()]);
        let tag = passkey_tag("k2");
        assert_eq!(tag.len(), "key-".len() + 12);
        assert!(tag[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{tag}");
        assert_eq!(tag, passkey_tag("k2"), "the same key, the same tag");
        assert_ne!(tag, passkey_tag("k3"));
    }

    fn announce(hash: InfoHash, port: u8) -> Announce {
        Announce {
            info_hash: hash,
            addr: PeerAddr::V4([127, 0, 0, 1, 0, port]),
            event: AnnounceEvent::Started,
            seeder: false,
            num_want: 0,
        }
    }

    #[test]
    fn cleaning_purges_what_the_list_refuses() {
        use crate::swarm::{SwarmConfig, Swarms};
        let (a, b) = (InfoHash([1; 20]), InfoHash([2; 20]));
        let mut swarms = Swarms::new(SwarmConfig::default());
        let mut out = Vec::new();
        for (hash, port) in [(a, 1), (a, 2), (b, 3)] {
            swarms.announce(&announce(hash, port), 10, &mut out);
        }
        let open = Arc::new(list(AccessMode::Off, &[], &[]));
        assert!(open.filter().is_none(), "nothing to test when off");
        let only_b = Arc::new(list(AccessMode::Allow, &[b], &[]));
        swarms.set_filter(only_b.filter());
        while !swarms.clean_step(10, 1).1 {}
        assert_eq!(swarms.purged(), (1, 2));
        assert_eq!(swarms.scrape(&a).leechers, 0);
        assert_eq!(swarms.scrape(&b).leechers, 1);
        assert_eq!(swarms.torrent_count(), 1);
        assert_eq!(swarms.gauges(), swarms.totals());
    }
}
