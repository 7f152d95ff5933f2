//! Rate-limited logging for errors that a flood can repeat thousands of
//! times a second: one line per period, saying how many were left out.

use std::time::{Duration, Instant};

/// One per kind of repeated error.
#[derive(Debug)]
pub struct LogLimit {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// At most one line per `period` (a minute, for floods).
    pub const fn new(period: Duration) -> LogLimit {
        LogLimit {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// A minute between lines.
    pub const fn per_minute() -> LogLimit {
        LogLimit::new(Duration::from_secs(60))
    }

    /// Calls `log` with the number of occurrences left out since the last
    /// line, if a line is due; otherwise counts this one.
    pub fn log(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.period => self.suppressed += 1,
            _ => {
                log(self.suppressed);
                self.suppressed = 0;
                self.last = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_left_out() {
        let mut l = LogLimit::new(Duration::from_secs(3600));
        let mut lines = Vec::new();
        for _ in 0..5 {
            l.log(|n| lines.push(n));
        }
        assert_eq!(lines, vec![0]);
        assert_eq!(l.suppressed, 4);
        // Once the period is over, the next line reports the 4.
        l.last = Some(Instant::now() - Duration::from_secs(3601));
        l.log(|n| lines.push(n));
        assert_eq!(lines, vec![0, 4]);
    }
}
