//! Supervision of the threads a tracker starts: each is named, and however
//! it ends (returns, panics) its name is sent on the deaths channel, which
//! the binary watches and exits on. Workers (socket, swarm) are also
//! counted in [`Stats::workers_alive`], which `/healthz` reads; helper
//! threads (stats, access-reload) are not, so that count stays what its
//! name says.

use std::io;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::stats::Stats;

/// Sends the thread's name when the thread ends, however it ends.
struct DeathNotice {
    name: String,
    tx: Sender<String>,
    /// Set for workers: lowered when the worker ends.
    alive: Option<Arc<Stats>>,
}

impl Drop for DeathNotice {
    fn drop(&mut self) {
        if let Some(stats) = &self.alive {
            stats.workers_alive.fetch_sub(1, SeqCst);
        }
        let _ = self.tx.send(self.name.clone());
    }
}

fn spawn_with(
    notice: DeathNotice,
    f: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(notice.name.clone())
        .spawn(move || {
            let _notice = notice;
            f()
        })
}

/// Starts a socket or swarm worker: named, reported on `deaths` when it
/// ends, and counted in `stats.workers_alive` (which [`Stats::new`] set).
pub(crate) fn spawn(
    name: String,
    deaths: &Sender<String>,
    stats: &Arc<Stats>,
    f: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    let notice = DeathNotice {
        name,
        tx: deaths.clone(),
        alive: Some(stats.clone()),
    };
    spawn_with(notice, f)
}

/// Starts a helper thread (stats, access-reload): named and reported on
/// `deaths` when it ends, but not counted as a worker.
pub(crate) fn spawn_helper(
    name: &str,
    deaths: &Sender<String>,
    f: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    let notice = DeathNotice {
        name: name.to_string(),
        tx: deaths.clone(),
        alive: None,
    };
    spawn_with(notice, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_panicking_helper_is_reported_by_name_and_not_counted() {
        let stats = Arc::new(Stats::new(1, 1));
        let (tx, deaths) = crossbeam_channel::unbounded();
        let h = spawn_helper("stats", &tx, || panic!("boom")).unwrap();
        assert!(h.join().is_err());
        assert_eq!(
            deaths.recv_timeout(Duration::from_secs(5)),
            Ok("stats".into())
        );
        assert!(stats.healthy(), "a helper is not a worker");
    }

    #[test]
    fn a_panicking_worker_is_reported_by_name_and_counted() {
        let stats = Arc::new(Stats::new(1, 1));
        let (tx, deaths) = crossbeam_channel::unbounded();
        let h = spawn("swarm-0".into(), &tx, &stats, || panic!("boom")).unwrap();
        assert!(h.join().is_err());
        assert_eq!(
            deaths.recv_timeout(Duration::from_secs(5)),
            Ok("swarm-0".into())
        );
        assert_eq!(stats.workers_alive.load(SeqCst), 1);
        assert!(!stats.healthy());
    }
}
