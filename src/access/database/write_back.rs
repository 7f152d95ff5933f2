//! Traffic write-back: what each user announced, uploaded and downloaded
//! since the last committed write-back, taken from the passkeys' tallies
//! and kept until a transaction that covers it commits.
//!
//! Why the tallies are read and not drained: `/passkeys` shows them as
//! counters that only grow. The [`Taker`] remembers, for each tally, what
//! it had taken already, and takes the difference. A key that leaves the
//! lists is read one last time once nothing else holds its tally (an
//! announce in flight may still add to it), then forgotten.

use std::collections::HashMap;
use std::sync::Arc;

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::access::ledger::PasskeyTally;
use crate::access::{AccessList, PasskeyCounters};

fn minus(now: PasskeyCounters, then: PasskeyCounters) -> PasskeyCounters {
    PasskeyCounters {
        announces: now.announces.wrapping_sub(then.announces),
        uploaded: now.uploaded.wrapping_sub(then.uploaded),
        downloaded: now.downloaded.wrapping_sub(then.downloaded),
    }
}

struct Seen {
    tally: Arc<PasskeyTally>,
    taken: PasskeyCounters,
    user: Option<Box<str>>,
    round: u64,
}

/// Takes the tallies' increases since the last look.
#[derive(Default)]
pub(crate) struct Taker {
    /// By the tally's address; the `Arc` held keeps it valid.
    seen: HashMap<usize, Seen>,
    round: u64,
}

impl Taker {
    /// Adds to `pending` what each user's keys did since the last call.
    /// Keys without a user are not written back.
    pub(crate) fn take(&mut self, list: &AccessList, pending: &mut Pending) {
        self.round += 1;
        let round = self.round;
        for (user, tally) in list.tallies() {
            let seen = self
                .seen
                .entry(Arc::as_ptr(tally) as usize)
                .or_insert_with(|| Seen {
                    tally: tally.clone(),
                    taken: PasskeyCounters::default(),
                    user: None,
                    round,
                });
            seen.round = round;
            if seen.user.as_deref() != user {
                seen.user = user.map(Box::from);
            }
        }
        self.seen.retain(|_, seen| {
            let now = seen.tally.get();
            let delta = minus(now, seen.taken);
            seen.taken = now;
            if let Some(user) = &seen.user {
                pending.add(user, delta);
            }
            // Gone from the lists and held by nobody else: nothing can
            // add to it any more, and its last increase was just taken.
            seen.round == round || Arc::strong_count(&seen.tally) > 1
        });
    }
}

/// Users' traffic not yet committed, bounded.
pub(crate) struct Pending {
    by_user: HashMap<Box<str>, PasskeyCounters>,
    max_users: usize,
    /// Increases dropped because `max_users` users were pending.
    pub(crate) dropped: u64,
}

impl Pending {
    pub(crate) fn new(max_users: usize) -> Pending {
        Pending {
            by_user: HashMap::new(),
            max_users,
            dropped: 0,
        }
    }

    fn add(&mut self, user: &str, delta: PasskeyCounters) {
        if delta == PasskeyCounters::default() {
            return;
        }
        if let Some(c) = self.by_user.get_mut(user) {
            *c += delta;
        } else if self.by_user.len() < self.max_users {
            self.by_user.insert(user.into(), delta);
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_user.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &PasskeyCounters)> {
        self.by_user.iter().map(|(u, c)| (&**u, c))
    }

    /// Forgets everything: called only after a transaction that wrote all
    /// of it committed (nothing is added while it runs: one thread does
    /// both).
    pub(crate) fn clear(&mut self) {
        self.by_user.clear();
    }
}

/// A write-back parameter, converted to whatever type the site's statement
/// gives it: a user as text or an integer id, counts as any integer type
/// (or numeric-free floats), so the site's statement needs no casts.
#[derive(Debug)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Count(u64),
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let int = || -> Result<i64, Box<dyn std::error::Error + Sync + Send>> {
            Ok(match self {
                Param::Text(t) => t.parse()?,
                Param::Count(n) => i64::try_from(*n)?,
            })
        };
        match *ty {
            Type::INT8 => int()?.to_sql(ty, out),
            Type::INT4 => i32::try_from(int()?)?.to_sql(ty, out),
            Type::INT2 => i16::try_from(int()?)?.to_sql(ty, out),
            Type::FLOAT8 => (int()? as f64).to_sql(ty, out),
            _ => match self {
                Param::Text(t) => t.to_sql(ty, out),
                Param::Count(n) => n.to_string().as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT8 | Type::INT4 | Type::INT2 | Type::FLOAT8)
            || <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{AccessConfig, Account, Ledger};
    use crate::protocol::{AnnounceEvent, InfoHash};
    use crate::swarm::{Announce, PeerAddr};

    /// One announce of `tally` adding `up` bytes uploaded (a new peer each
    /// time, starting its count).
    fn traffic(ledger: &mut Ledger, tally: &Arc<PasskeyTally>, port: u8, up: u64) {
        let announce = Announce {
            info_hash: InfoHash([1; 20]),
            addr: PeerAddr::V4([127, 0, 0, 1, 0, port]),
            event: AnnounceEvent::Started,
            seeder: false,
            num_want: 0,
        };
        let account = Account {
            tally: tally.clone(),
            uploaded: up,
            downloaded: 0,
        };
        ledger.record(&account, &announce, 1);
    }

    fn pending_of(p: &Pending, user: &str) -> Option<PasskeyCounters> {
        p.iter().find(|(u, _)| *u == user).map(|(_, c)| *c)
    }

    #[test]
    fn the_taker_takes_each_increase_once_also_of_keys_that_left() {
        let config = AccessConfig::default();
        let keys = [
            ("k1".to_string(), Some("alice".to_string())),
            ("k2".to_string(), None),
            ("k3".to_string(), Some("carol".to_string())),
            ("k4".to_string(), Some("alice".to_string())),
        ];
        let list = AccessList::assemble(&config, &[], Some(&keys), None).unwrap();
        let tally = |list: &AccessList, n: usize| list.tallies().nth(n).unwrap().1.clone();
        let mut ledger = Ledger::new(100);
        for n in 0..4 {
            traffic(&mut ledger, &tally(&list, n), n as u8, 100);
        }
        let mut taker = Taker::default();
        let mut pending = Pending::new(10);
        taker.take(&list, &mut pending);
        assert_eq!(pending.len(), 2, "a key without a user is not written");
        assert_eq!(pending_of(&pending, "alice").unwrap().uploaded, 200);
        assert_eq!(pending_of(&pending, "carol").unwrap().uploaded, 100);
        pending.clear();
        taker.take(&list, &mut pending);
        assert_eq!(pending.len(), 0, "nothing new, nothing taken");

        // k3 leaves the lists while an announce still holds its tally.
        let k3 = list
            .tallies()
            .find(|(user, _)| *user == Some("carol"))
            .map(|(_, t)| t.clone())
            .unwrap();
        let left = [keys[0].clone(), keys[1].clone(), keys[3].clone()];
        let newer = AccessList::assemble(&config, &[], Some(&left), Some(&list)).unwrap();
        drop(list);
        traffic(&mut ledger, &k3, 9, 50);
        taker.take(&newer, &mut pending);
        assert_eq!(pending_of(&pending, "carol").unwrap().uploaded, 50);
        assert_eq!(taker.seen.len(), 4, "kept while something holds it");
        drop(k3);
        taker.take(&newer, &mut pending);
        assert_eq!(taker.seen.len(), 3, "then read a last time and forgotten");
        assert_eq!(pending_of(&pending, "carol").unwrap().uploaded, 50);
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn pending_is_bounded_and_counts_what_it_drops() {
        let one = PasskeyCounters {
            announces: 1,
            uploaded: 10,
            downloaded: 5,
        };
        let mut p = Pending::new(2);
        p.add("a", one);
        p.add("a", one);
        p.add("b", one);
        p.add("c", one);
        p.add("d", PasskeyCounters::default());
        assert_eq!(p.len(), 2);
        assert_eq!(p.dropped, 1);
        let a = p.iter().find(|(u, _)| *u == "a").unwrap().1;
        assert_eq!(a.uploaded, 20);
        p.clear();
        assert_eq!(p.len(), 0);
    }
}
