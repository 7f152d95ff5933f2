//! swarmd-load: a load generator for BEP 15 (UDP) and BEP 3 (HTTP) BitTorrent
//! trackers (swarmd, aquatic, opentracker, ...), a do-nothing UDP responder
//! that gives the machine's ceiling, and a printer of the info hashes it uses.
//! This file parses the command line, starts the load threads, prints progress
//! and sums their figures; the work itself is in the sibling modules (`client`
//! for UDP, `http` for HTTP).

mod aquatic;
mod bencode;
mod check;
mod client;
mod cores;
mod http;
mod http_wire;
mod load_thread;
mod meter;
mod model;
mod options;
mod pace;
mod peers;
mod ping;
mod report;
mod responder;
mod sys;
mod tokens;

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use swarmd::stats::Protocol;

use crate::meter::{new_histogram, Plan, ThreadResult};
use crate::model::Population;
use crate::options::{Command, HashesOptions, LoadOptions, USAGE};
use crate::report::{progress_line, Counters, PeerTally, Summary};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swarmd-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    match options::parse(std::env::args_os().skip(1).collect())? {
        Command::Help => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Responder(o) => {
            responder::run(&o)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ping(o) => ping::run(&o),
        Command::Jwks(o) => {
            println!("{}", tokens::jwks(&o)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cores(o) => {
            cores::run(&o)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Hashes(o) => {
            hashes(&o)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Load(o) => load(&o),
    }
}

fn hashes(o: &HashesOptions) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    if o.aquatic {
        for h in aquatic::load_test_info_hashes(o.torrents) {
            writeln!(out, "{h}")?;
        }
    } else {
        let pop = Population::new(o.torrents, 1, 1.0, o.seed);
        for t in 0..o.torrents {
            writeln!(out, "{}", pop.info_hash(t))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Runs the load and reports. Exits 1 when not a single valid answer came
/// back, so scripts notice a tracker that is not there.
fn load(o: &LoadOptions) -> Result<ExitCode> {
    let mut pop = Population::new(o.torrents, o.peers, o.skew, o.seed);
    if let Some(t) = &o.token {
        let signing = Instant::now();
        // Good for the run and a day more: no token expires during it.
        let valid = o.duration + Duration::from_secs(86_400);
        pop.tokens = Some(std::sync::Arc::new(tokens::Tokens::sign(t, &pop, valid)?));
        // Even when quiet: scripts wait for this line before they time the
        // run, which starts now.
        eprintln!(
            "signed {} {:?} tokens in {:.1} s",
            o.torrents,
            t.algorithm,
            signing.elapsed().as_secs_f64()
        );
    }
    let start = Instant::now();
    let plan = Plan {
        measure_from: start + o.warmup,
        end: start + o.duration,
    };
    let shared: Vec<Mutex<Counters>> = (0..o.threads).map(|_| Mutex::default()).collect();
    // Set by a thread that fails, so the others stop too instead of running
    // out the clock.
    let abort = AtomicBool::new(false);
    let results: Vec<Result<ThreadResult>> = thread::scope(|scope| {
        let handles: Vec<_> = shared
            .iter()
            .enumerate()
            .map(|(i, counters)| {
                let (pop, abort) = (&pop, &abort);
                thread::Builder::new()
                    .name(format!("load-{i}"))
                    .spawn_scoped(scope, move || {
                        let r = match o.protocol {
                            Protocol::Udp => client::run_thread(o, pop, i, plan, counters, abort),
                            Protocol::Http => http::run_thread(o, pop, i, plan, counters, abort),
                        };
                        if r.is_err() {
                            abort.store(true, Ordering::Relaxed);
                        }
                        r
                    })
            })
            .collect();
        if !o.quiet {
            let all_done = || {
                handles
                    .iter()
                    .all(|h| h.as_ref().map_or(true, |h| h.is_finished()))
            };
            show_progress(o.protocol, start, plan, &shared, all_done);
        }
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a load thread panicked"))),
                Err(e) => Err(e).context("starting a load thread"),
            })
            .collect()
    });

    let mut measured = Counters::default();
    let mut hist = new_histogram();
    let mut tally = PeerTally::default();
    let mut finished = plan.measure_from;
    for r in results {
        let r = r?;
        finished = finished.max(r.finished);
        measured.add(&r.measured);
        hist.add(&r.hist)
            .map_err(|e| anyhow!("merging latency histograms: {e:?}"))?;
        tally.seen += r.tally.seen;
        tally.stopped += r.tally.stopped;
    }
    // The nominal window, or less when `--requests` ended the run early.
    let seconds = finished.duration_since(plan.measure_from).as_secs_f64();
    let summary = Summary::new(o, &measured, &hist, tally, seconds);
    println!("{}", summary.line());
    if let Some(path) = &o.json {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &summary).context("writing the JSON report")?;
        writeln!(w)?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if measured.total_answered() == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints a progress line on stderr each second until the load threads are
/// done: one line rewritten in place on a terminal, one line a second
/// otherwise.
fn show_progress(
    protocol: Protocol,
    start: Instant,
    plan: Plan,
    shared: &[Mutex<Counters>],
    all_done: impl Fn() -> bool,
) {
    let tty = io::stderr().is_terminal();
    let mut previous = Counters::default();
    let mut previous_at = start;
    let mut tick = start;
    loop {
        tick += Duration::from_secs(1);
        let wake = tick.min(plan.end);
        // Short naps, so a run that ends early (`--requests`, `--peer-order
        // once`, a failed thread) is not held up.
        let mut done = all_done();
        while !done && Instant::now() < wake {
            thread::sleep((wake - Instant::now()).min(Duration::from_millis(50)));
            done = all_done();
        }
        let mut total = Counters::default();
        for c in shared {
            if let Ok(c) = c.lock() {
                total.add(&c);
            }
        }
        let now = Instant::now();
        let secs = now.duration_since(previous_at).as_secs_f64();
        let line = progress_line(
            protocol,
            now.duration_since(start),
            &total.since(&previous),
            secs,
            now >= plan.measure_from,
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        previous = total;
        previous_at = now;
        if done || wake >= plan.end {
            break;
        }
    }
    if tty {
        eprintln!();
    }
}
