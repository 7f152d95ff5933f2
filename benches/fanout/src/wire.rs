//! The batch format the prototype sends, and what a subscriber counts of it.
//!
//! A batch is a 24-byte header (sequence number, send time in nanoseconds
//! since the process's epoch, record count, reserved) and N records of 64
//! bytes: info hash (20), address (16-byte IPv6 or mapped IPv4, and a 2-byte
//! port), flags (seeder, stopped, completed), a reserved byte, expiry in
//! seconds (4) and the peer id (20). It is the size of a change as the
//! cluster would send it; the content is synthetic.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub const HEADER: usize = 24;
pub const RECORD: usize = 64;

/// One epoch for the process, so that a send time written by one thread is
/// comparable with the receive time of another (the same monotonic clock).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A pool of synthetic records to copy from, so that building a batch costs
/// a copy, as it would in the cluster thread.
pub struct Records {
    pool: Vec<u8>,
}

impl Records {
    pub fn new(count: usize) -> Records {
        let mut rng = fastrand::Rng::with_seed(19);
        let mut pool = vec![0u8; count * RECORD];
        for record in pool.chunks_exact_mut(RECORD) {
            rng.fill(&mut record[..38]);
            record[38] = rng.u8(0..8);
            record[40..44].copy_from_slice(&(1800 + rng.u32(0..600)).to_le_bytes());
            rng.fill(&mut record[44..]);
        }
        Records { pool }
    }

    /// A batch of `records` records with sequence number `seq`, stamped now.
    pub fn batch(&self, seq: u64, records: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + records * RECORD);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&now_ns().to_le_bytes());
        out.extend_from_slice(&(records as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let pool_records = self.pool.len() / RECORD;
        let start = (seq as usize * records) % pool_records;
        let mut left = records;
        let mut at = start;
        while left > 0 {
            let take = left.min(pool_records - at);
            out.extend_from_slice(&self.pool[at * RECORD..(at + take) * RECORD]);
            left -= take;
            at = 0;
        }
        out
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 2 min, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

/// What one subscriber saw.
pub struct Tally {
    pub msgs: u64,
    pub records: u64,
    /// Sequence numbers skipped (lost), and ones that came back late or twice.
    pub lost: u64,
    pub reordered: u64,
    pub malformed: u64,
    pub lag_us: Histogram<u64>,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    /// The next sequence number expected, i.e. one past the highest seen.
    pub next_seq: u64,
    /// The longest silence between two deliveries, and when it ended.
    pub max_silence: Duration,
    pub silence_end: Option<Instant>,
    /// Stream ends, errors and reconnects the subscriber went through.
    pub events: Vec<(Instant, String)>,
    checksum: u64,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            msgs: 0,
            records: 0,
            lost: 0,
            reordered: 0,
            malformed: 0,
            lag_us: new_histogram(),
            first: None,
            last: None,
            next_seq: 0,
            max_silence: Duration::ZERO,
            silence_end: None,
            events: Vec::new(),
            checksum: 0,
        }
    }

    /// Takes one delivered payload. Reads every record's flags and expiry, as
    /// applying the change would start by doing.
    pub fn on_payload(&mut self, payload: &[u8]) {
        let now = Instant::now();
        let arrived = now_ns();
        if payload.len() < HEADER || !(payload.len() - HEADER).is_multiple_of(RECORD) {
            self.malformed += 1;
            return;
        }
        let word = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().unwrap_or([0; 8]));
        let (seq, sent) = (word(0), word(8));
        let count = (payload.len() - HEADER) / RECORD;
        for record in payload[HEADER..].chunks_exact(RECORD) {
            self.checksum = self
                .checksum
                .wrapping_add(u64::from(record[38]) + u64::from(record[40]));
        }
        let _ = self
            .lag_us
            .record((arrived.saturating_sub(sent) / 1000).max(1));
        if seq >= self.next_seq {
            self.lost += seq - self.next_seq;
            self.next_seq = seq + 1;
        } else {
            self.reordered += 1;
        }
        self.msgs += 1;
        self.records += count as u64;
        if let Some(last) = self.last {
            let silence = now - last;
            if silence > self.max_silence {
                self.max_silence = silence;
                self.silence_end = Some(now);
            }
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    pub fn event(&mut self, what: impl Into<String>) {
        self.events.push((Instant::now(), what.into()));
    }

    /// Deliveries per second between the first and the last.
    pub fn rate(&self, count: u64) -> f64 {
        match (self.first, self.last) {
            (Some(first), Some(last)) if last > first => {
                count as f64 / (last - first).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}
