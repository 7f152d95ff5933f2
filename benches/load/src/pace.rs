//! How fast and how many: the token bucket of `--rate` and the share of
//! `--requests` of one load thread. `udp` and `http` ask it before each
//! request they build.

use std::time::{Duration, Instant};

use crate::options::LoadOptions;

pub struct Pace {
    /// Requests a second for this thread, when `--rate` is set.
    rate: Option<f64>,
    tokens: f64,
    burst: f64,
    refilled_at: Instant,
    /// Requests this thread may still send, when `--requests` bounds the run.
    remaining: Option<u64>,
}

impl Pace {
    /// The pace of thread `thread` of `o.threads`: an even share of the rate
    /// and of the request count, the first threads taking the remainder.
    pub fn new(o: &LoadOptions, thread: usize, now: Instant) -> Pace {
        let rate = (o.rate > 0).then(|| o.rate as f64 / o.threads as f64);
        let threads = o.threads as u64;
        Pace {
            rate,
            tokens: 1.0,
            // The bucket holds up to 20 ms worth of requests: `poll` sleeps
            // whole milliseconds and often oversleeps by one or two, and a
            // smaller bucket would lose those tokens and fall short of the
            // rate.
            burst: rate.map_or(0.0, |r| (r * 0.02).max(1.0)),
            refilled_at: now,
            remaining: (o.requests > 0)
                .then(|| o.requests / threads + u64::from((thread as u64) < o.requests % threads)),
        }
    }

    pub fn refill(&mut self, now: Instant) {
        if let Some(r) = self.rate {
            let dt = now.duration_since(self.refilled_at).as_secs_f64();
            self.tokens = (self.tokens + r * dt).min(self.burst);
            self.refilled_at = now;
        }
    }

    /// `--rate` allows no request right now.
    pub fn out_of_tokens(&self) -> bool {
        self.rate.is_some() && self.tokens < 1.0
    }

    /// Every request of this thread's share of `--requests` has been sent.
    pub fn all_sent(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Counts one request as sent.
    pub fn take(&mut self) {
        if self.rate.is_some() {
            self.tokens -= 1.0;
        }
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
    }

    /// Undoes [`Pace::take`] for a request that could not be sent.
    pub fn give_back(&mut self) {
        if self.rate.is_some() {
            self.tokens += 1.0;
        }
        if let Some(r) = &mut self.remaining {
            *r += 1;
        }
    }

    /// How long until the next token, when the bucket is empty.
    pub fn until_token(&self) -> Option<Duration> {
        let r = self.rate?;
        (self.tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - self.tokens) / r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::test_options;

    #[test]
    fn requests_are_shared_out_and_tokens_refill_at_the_rate() {
        let now = Instant::now();
        let o = test_options("--threads 3 --requests 10 --rate 3000");
        let shares: Vec<u64> = (0..3)
            .map(|t| Pace::new(&o, t, now).remaining.unwrap_or(0))
            .collect();
        assert_eq!(shares, [4, 3, 3]);
        let mut p = Pace::new(&o, 2, now);
        // 1000 a second for this thread; a burst of 20.
        p.take();
        assert!(p.out_of_tokens());
        let wait = p.until_token().unwrap_or_default();
        assert!(wait > Duration::from_micros(990) && wait < Duration::from_micros(1010));
        p.refill(now + Duration::from_millis(5));
        assert!(!p.out_of_tokens() && p.until_token().is_none());
        p.refill(now + Duration::from_secs(1));
        assert!((p.tokens - 20.0).abs() < 1e-9, "capped at the burst");
        for _ in 0..2 {
            p.take();
        }
        assert!(p.all_sent());
        p.give_back();
        assert!(!p.all_sent());

        let unlimited = Pace::new(&test_options("--threads 3"), 0, now);
        assert!(!unlimited.out_of_tokens() && !unlimited.all_sent());
        assert!(unlimited.until_token().is_none());
    }
}
