//! What one load thread measures and hands back: its counters, latencies and
//! peer tally; the measured window (the run after `--warmup`); the copy of the
//! counters it publishes now and then for the progress line. `udp` and `http`
//! each keep one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::check::{Kind, Verdict};
use crate::report::{Counters, PeerTally};

/// How often a thread copies its counters out for the progress line.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// The time line of a run, shared by all threads.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub measure_from: Instant,
    pub end: Instant,
}

/// What a thread hands back at the end.
pub struct ThreadResult {
    /// Counters over the measured window only.
    pub measured: Counters,
    /// Latencies over the measured window, in microseconds.
    pub hist: Histogram<u64>,
    pub tally: PeerTally,
    /// When the thread stopped: the end of the run, or earlier once its share
    /// of `--requests` was sent and answered.
    pub finished: Instant,
}

pub fn new_histogram() -> Histogram<u64> {
    // One microsecond to one minute at three significant digits: a few
    // hundred kilobytes, and these bounds are valid, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub struct Meter<'a> {
    pub counters: Counters,
    pub tally: PeerTally,
    /// Latencies in microseconds, since the measured window opened.
    hist: Histogram<u64>,
    /// The counters when the measured window opened.
    baseline: Option<Counters>,
    published_at: Instant,
    plan: Plan,
    shared: &'a Mutex<Counters>,
}

impl<'a> Meter<'a> {
    pub fn new(plan: Plan, shared: &'a Mutex<Counters>) -> Meter<'a> {
        Meter {
            counters: Counters::default(),
            tally: PeerTally::default(),
            hist: new_histogram(),
            baseline: None,
            published_at: Instant::now(),
            plan,
            shared,
        }
    }

    /// Opens the measured window once the warm-up is over, and publishes
    /// the counters when it is time. Called each turn of a thread's loop.
    pub fn tick(&mut self, now: Instant) {
        if self.baseline.is_none() && now >= self.plan.measure_from {
            self.open_window();
        }
        if now.duration_since(self.published_at) >= PUBLISH_EVERY {
            self.publish();
            self.published_at = now;
        }
    }

    fn open_window(&mut self) {
        self.baseline = Some(self.counters.clone());
        self.hist.reset();
    }

    fn publish(&self) {
        if let Ok(mut c) = self.shared.lock() {
            *c = self.counters.clone();
        }
    }

    /// Counts an answer by its verdict and, when it is a valid answer (an
    /// error response is one), records how long it took.
    pub fn count(&mut self, verdict: Verdict, latency: Duration) {
        let c = &mut self.counters;
        match verdict {
            Verdict::Connected(_) => c.answered[Kind::Connect as usize] += 1,
            Verdict::Announced { peers } => {
                c.answered[Kind::Announce as usize] += 1;
                c.peers_returned += peers as u64;
            }
            Verdict::Scraped => c.answered[Kind::Scrape as usize] += 1,
            Verdict::Error => c.errors += 1,
            Verdict::Invalid(why) => {
                c.invalid[why as usize] += 1;
                return;
            }
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(micros.max(1));
    }

    /// Publishes the last counters and hands back what was measured.
    pub fn finish(mut self) -> ThreadResult {
        self.publish();
        let finished = Instant::now().min(self.plan.end);
        if self.baseline.is_none() {
            // Done before the warm-up was over: nothing was measured.
            self.open_window();
        }
        let measured = self.counters.since(&self.baseline.unwrap_or_default());
        ThreadResult {
            measured,
            hist: self.hist,
            tally: self.tally,
            finished,
        }
    }
}
