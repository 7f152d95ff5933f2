//! `cores`: the round trip of a cache line between two CPUs.
//!
//! Two threads, one pinned to each CPU, pass a counter back and forth: one
//! writes an odd value and waits for the next even one, the other answers each
//! odd value with the next even one. A round trip is two transfers of the
//! line. On bare metal the figure only depends on where the two CPUs sit (same
//! core, same cache, other socket). On a VM it also tells where the host has
//! put the two virtual CPUs right now, which it changes now and then: on the
//! machine swarmd is measured on, 60-80 ns and 450-800 ns alternate for
//! minutes at a time, and every UDP server answers ~30 % more per CPU-second
//! in the first state, because each datagram crosses from one CPU to the other.
//! `benches/compare.sh` records the figure before and after every run, so runs
//! are only compared with runs of the same state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_utils::CachePadded;

use crate::options::CoresOptions;
use crate::sys;

/// Runs of `trips` round trips; the median is printed.
const RUNS: usize = 5;

/// Gives up when the other CPU does not answer for this long (it is not
/// running the other thread: the host has stopped it, or the CPU is busy).
const STALL: Duration = Duration::from_secs(5);

pub fn run(o: &CoresOptions) -> Result<()> {
    let ns = round_trip_ns(o.cpus, o.trips)?;
    println!(
        "cpus={},{} trips={} round_trip_ns={ns:.0}",
        o.cpus.0, o.cpus.1, o.trips
    );
    Ok(())
}

/// The median over [`RUNS`] runs of the nanoseconds per round trip.
fn round_trip_ns(cpus: (usize, usize), trips: u64) -> Result<f64> {
    let line = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let total = trips * RUNS as u64;
    let echo = {
        let line = Arc::clone(&line);
        let stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("cores-echo".into())
            .spawn(move || -> Result<()> {
                if let Err(e) = sys::pin_to_cpu(cpus.1) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e).with_context(|| format!("pinning to CPU {}", cpus.1));
                }
                for i in 0..total {
                    if !wait_for(&line, 2 * i + 1, &stop) {
                        return Ok(());
                    }
                    line.store(2 * i + 2, Ordering::Release);
                }
                Ok(())
            })
            .context("starting the echo thread")?
    };
    let timed = (|| -> Result<Vec<f64>> {
        sys::pin_to_cpu(cpus.0).with_context(|| format!("pinning to CPU {}", cpus.0))?;
        let mut per_trip = Vec::with_capacity(RUNS);
        let mut i = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            for _ in 0..trips {
                line.store(2 * i + 1, Ordering::Release);
                if !wait_for(&line, 2 * i + 2, &stop) {
                    bail!(
                        "CPU {} stopped answering, or did not for {} s",
                        cpus.1,
                        STALL.as_secs()
                    );
                }
                i += 1;
            }
            per_trip.push(start.elapsed().as_nanos() as f64 / trips as f64);
        }
        Ok(per_trip)
    })();
    // Whatever happened here, the echo thread must not spin on.
    stop.store(true, Ordering::Relaxed);
    let echoed = echo
        .join()
        .map_err(|_| anyhow!("the echo thread panicked"))?;
    // The echo thread's error (it could not pin) explains the other one.
    echoed?;
    let mut per_trip = timed?;
    per_trip.sort_by(f64::total_cmp);
    Ok(per_trip[RUNS / 2])
}

/// Spins until `line` holds `want`. False if `stop` was set, or if [`STALL`]
/// passed without it (then `stop` is set for the other side too).
fn wait_for(line: &AtomicU64, want: u64, stop: &AtomicBool) -> bool {
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    while line.load(Ordering::Acquire) != want {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0 {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() > STALL {
                stop.store(true, Ordering::Relaxed);
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_takes_some_time_and_ends() {
        // Needs two CPUs to pin to; CI machines have them, and where there
        // is one only, pinning fails with an error rather than hanging.
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            assert!(round_trip_ns((0, 1), 10).is_err());
            return;
        }
        let ns = round_trip_ns((0, 1), 100).expect("two CPUs");
        assert!(ns > 0.0 && ns < STALL.as_nanos() as f64, "{ns}");
    }

    #[test]
    fn a_cpu_that_is_not_there_is_an_error() {
        assert!(round_trip_ns((0, 1023), 10).is_err());
    }
}
