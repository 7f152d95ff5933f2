//! swarmd-fanout: the measured prototype behind the cluster's engine choice
//! (issue 19). It starts its own `nats-server` and `redis-server` on free
//! loopback ports and measures, for each engine: the fan-out of batches of
//! peer changes from one publisher to three subscribers (throughput when the
//! publisher goes as fast as the subscribers take, lag at a fixed rate), what
//! clients see when the engine is killed and restarted on the same port, and
//! how long a late node takes to fetch a whole cluster's peers. It prints
//! Markdown tables. Bounded in time; loopback only; the servers die with it.

mod engine;
mod run;
mod servers;
mod warm;
mod wire;

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;

use crate::engine::Engine;
use crate::run::{Outcome, Pace, Plan};
use crate::servers::{Server, ServerKind};
use crate::wire::new_histogram;

/// A warm-up over one engine: its URL and the state to move.
type WarmFn = fn(&str, &bytes::Bytes) -> Result<warm::Warm>;

const USAGE: &str = "\
swarmd-fanout: NATS vs Redis for swarmd's cluster (issue 19), on loopback.

Usage: swarmd-fanout [options]
  --secs S          seconds per fan-out run (default 6)
  --rate P          peer records per second of the paced (lag) runs (default 100000)
  --records LIST    records per message (default 1,64,512)
  --engines LIST    of nats, redis, redis-push, redis-stream (default: all)
  --window-kb K     saturating runs: bytes in flight before the publisher waits (default 4096)
  --warm-peers N    peers a late node fetches (default 5000000; 0 skips)
  --no-restart      skip the engine-restart runs
  --subscribers N   subscribers per engine (default 3)

Needs nats-server and redis-server on the PATH (Debian packages); an engine
whose server is missing is skipped with a note.";

struct Options {
    secs: f64,
    rate: f64,
    records: Vec<usize>,
    engines: Vec<Engine>,
    window_kb: usize,
    warm_peers: usize,
    restart: bool,
    subscribers: usize,
}

fn parse() -> Result<Options> {
    use lexopt::prelude::*;
    let mut options = Options {
        secs: 6.0,
        rate: 100_000.0,
        records: vec![1, 64, 512],
        engines: vec![
            Engine::Nats,
            Engine::RedisPubSub,
            Engine::RedisPush,
            Engine::RedisStream,
        ],
        window_kb: 4096,
        warm_peers: 5_000_000,
        restart: true,
        subscribers: 3,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("secs") => options.secs = parser.value()?.parse()?,
            Long("rate") => options.rate = parser.value()?.parse()?,
            Long("window-kb") => options.window_kb = parser.value()?.parse()?,
            Long("warm-peers") => options.warm_peers = parser.value()?.parse()?,
            Long("subscribers") => options.subscribers = parser.value()?.parse()?,
            Long("no-restart") => options.restart = false,
            Long("records") => {
                let list: String = parser.value()?.parse()?;
                options.records = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            Long("engines") => {
                let list: String = parser.value()?.parse()?;
                options.engines = list
                    .split(',')
                    .map(|name| match name {
                        "nats" => Ok(Engine::Nats),
                        "redis" => Ok(Engine::RedisPubSub),
                        "redis-push" => Ok(Engine::RedisPush),
                        "redis-stream" => Ok(Engine::RedisStream),
                        other => Err(anyhow!("unknown engine {other:?}")),
                    })
                    .collect::<Result<_>>()?;
            }
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if options.subscribers == 0 || options.records.contains(&0) {
        return Err(anyhow!("subscribers and records must be at least 1"));
    }
    Ok(options)
}

fn main() -> ExitCode {
    match parse().and_then(|options| bench(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarmd-fanout: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

struct Servers {
    nats: Option<Server>,
    redis: Option<Server>,
}

impl Servers {
    fn get(&mut self, kind: ServerKind) -> Option<&mut Server> {
        match kind {
            ServerKind::Nats => self.nats.as_mut(),
            ServerKind::Redis => self.redis.as_mut(),
        }
    }
}

fn start(kind: ServerKind) -> Result<Option<Server>> {
    if !servers::available(kind) {
        println!("SKIPPED: {} is not installed", kind.binary());
        return Ok(None);
    }
    Server::start(kind).map(Some)
}

fn bench(options: &Options) -> Result<()> {
    let mut servers = Servers {
        nats: start(ServerKind::Nats)?,
        redis: start(ServerKind::Redis)?,
    };
    let engines: Vec<Engine> = options
        .engines
        .iter()
        .copied()
        .filter(|e| servers.get(e.server()).is_some())
        .collect();
    println!(
        "{} cores, load {} at start; {} subscribers, {} s a run",
        thread::available_parallelism().map_or(0, |n| n.get()),
        load(),
        options.subscribers,
        options.secs
    );
    let mut run_id = 0u32;
    let mut next_run = || {
        run_id += 1;
        run_id
    };

    println!("\n### Fan-out\n");
    println!("| engine | records/msg | pace | sent msg/s | delivered msg/s per sub | peers/s per sub | lag p50 ms | p99 ms | max ms | lost |");
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &engine in &engines {
        let url = servers
            .get(engine.server())
            .map(|s| s.url())
            .unwrap_or_default();
        for &records in &options.records {
            let paces = [
                (
                    Pace::Saturate {
                        window_bytes: options.window_kb << 10,
                    },
                    "max".to_string(),
                ),
                (
                    Pace::Rate {
                        peers_per_s: options.rate,
                    },
                    format!("{:.0}k peers/s", options.rate / 1000.0),
                ),
            ];
            for (pace, label) in paces {
                let plan = Plan {
                    engine,
                    url: url.clone(),
                    records,
                    duration: Duration::from_secs_f64(options.secs),
                    pace,
                    subscribers: options.subscribers,
                    run: next_run(),
                };
                match run::run(&plan, |_| Ok(())) {
                    Ok((outcome, ())) => println!("{}", row(engine, records, &label, &outcome)),
                    Err(e) => println!(
                        "| {} | {records} | {label} | failed: {e:#} |",
                        engine.name()
                    ),
                }
            }
        }
    }
    println!("\nload {} after the fan-out runs", load());

    if options.restart {
        println!("\n### Engine killed (SIGKILL) 2 s into an 8 s run, restarted on the same port 1 s later; 64 records/msg at 1000 msg/s\n");
        println!("| engine | sent | publisher: failed sends (batches), longest send | lost per sub | deliveries resume after restart | what the clients did |");
        println!("| --- | ---: | --- | ---: | ---: | --- |");
        for &engine in &engines {
            let Some(server) = servers.get(engine.server()) else {
                continue;
            };
            let plan = Plan {
                engine,
                url: server.url(),
                records: 64,
                duration: Duration::from_secs(8),
                pace: Pace::Rate {
                    peers_per_s: 64_000.0,
                },
                subscribers: options.subscribers,
                run: next_run(),
            };
            let result = run::run(&plan, |started| {
                thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
                server.kill();
                let killed = Instant::now();
                thread::sleep(Duration::from_secs(1));
                server.restart()?;
                Ok((killed, Instant::now()))
            });
            match result {
                Ok((outcome, (killed, restarted))) => {
                    println!("{}", restart_row(engine, &outcome, killed, restarted))
                }
                Err(e) => println!("| {} | failed: {e:#} |", engine.name()),
            }
        }
    }

    if options.warm_peers > 0 {
        println!(
            "\n### A late node fetches {} peers ({:.0} MB) from a live one\n",
            options.warm_peers,
            options.warm_peers as f64 * 18e-6
        );
        println!("| engine | chunks | live node writes | late node fetches | total | MB/s |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        let state = warm::state(options.warm_peers);
        let runs: [(ServerKind, &str, WarmFn); 2] = [
            (ServerKind::Nats, "NATS request/reply", warm::nats),
            (ServerKind::Redis, "Redis SET/MGET", warm::redis),
        ];
        for (kind, name, f) in runs {
            let Some(server) = servers.get(kind) else {
                continue;
            };
            match f(&server.url(), &state) {
                Ok(w) => {
                    let total = w.publish + w.fetch;
                    println!(
                        "| {name} | {} | {:.2} s | {:.2} s | {:.2} s | {:.0} |",
                        w.chunks,
                        w.publish.as_secs_f64(),
                        w.fetch.as_secs_f64(),
                        total.as_secs_f64(),
                        w.bytes as f64 / 1e6 / total.as_secs_f64()
                    );
                }
                Err(e) => println!("| {name} | failed: {e:#} |"),
            }
        }
    }
    println!("\nload {} at the end", load());
    Ok(())
}

fn row(engine: Engine, records: usize, pace: &str, outcome: &Outcome) -> String {
    let subs = &outcome.subs;
    let mut lag: Histogram<u64> = new_histogram();
    for sub in subs {
        let _ = lag.add(&sub.lag_us);
    }
    let min_msgs = subs
        .iter()
        .map(|s| s.rate(s.msgs))
        .fold(f64::INFINITY, f64::min);
    let min_peers = subs
        .iter()
        .map(|s| s.rate(s.records))
        .fold(f64::INFINITY, f64::min);
    let sent = outcome.sent.batches.max(1);
    let lost: u64 = subs.iter().map(|s| sent.saturating_sub(s.msgs)).sum();
    let ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "| {} | {records} | {pace} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {:.2}% |",
        engine.name(),
        outcome.sent.batches as f64 / outcome.sent.elapsed.as_secs_f64(),
        min_msgs,
        min_peers,
        ms(0.5),
        ms(0.99),
        lag.max() as f64 / 1000.0,
        100.0 * lost as f64 / (sent * subs.len() as u64) as f64
    )
}

fn restart_row(engine: Engine, outcome: &Outcome, killed: Instant, restarted: Instant) -> String {
    let sent = &outcome.sent;
    let subs = &outcome.subs;
    let lost: Vec<String> = subs
        .iter()
        .map(|s| sent.batches.saturating_sub(s.msgs).to_string())
        .collect();
    let resumed: Vec<String> = subs
        .iter()
        .map(|s| match s.last {
            Some(last) if last > restarted => {
                // The first delivery after the restart ends the longest silence.
                let end = s.silence_end.filter(|&end| end > restarted).unwrap_or(last);
                format!("{:.2} s", (end - restarted).as_secs_f64())
            }
            _ => "never".into(),
        })
        .collect();
    let mut what: Vec<String> = Vec::new();
    let events = sent.events.iter().map(|e| format!("pub {}", e.1));
    for event in events.chain(
        subs.iter()
            .flat_map(|s| s.events.iter().map(|e| format!("sub {}", e.1))),
    ) {
        let short: String = event.chars().take(60).collect();
        if !what.contains(&short) {
            what.push(short);
        }
    }
    let recovered = sent
        .recovered
        .map(|t| {
            format!(
                ", sends ok again {:.2} s after the restart",
                t.saturating_duration_since(restarted).as_secs_f64()
            )
        })
        .unwrap_or_default();
    format!(
        "| {} | {} | {} ({}), {:.0} ms{recovered} | {} | {} | {} (down {:.1} s) |",
        engine.name(),
        sent.batches,
        sent.errors,
        sent.failed_batches,
        sent.max_stall.as_secs_f64() * 1000.0,
        lost.join(", "),
        resumed.join(", "),
        what.join("; "),
        (restarted - killed).as_secs_f64()
    )
}
