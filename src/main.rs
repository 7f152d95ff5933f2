//! The `swarmd` command: parses the command line, loads the configuration,
//! starts the tracker and waits for a signal or for a worker to die.
//! SIGHUP reloads run on a `reload` thread of their own, so that a stop is
//! never queued behind them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use swarmd::config::{Config, DEFAULT_CONFIG_TOML};
use swarmd::service;

const USAGE: &str = "\
swarmd: a UDP-first BitTorrent tracker

Usage:
  swarmd                      run with the embedded defaults (port 6969)
  swarmd --port N             the same, with UDP and HTTP on port N
  swarmd --config FILE        run with FILE (TOML; see --print-config)
  swarmd --print-config       print the default configuration, commented
  swarmd --check-config FILE  check FILE and the files it names, and exit (0
                              when all are valid)
  swarmd --check-config FILE --skip-credentials
                              the same, but not the credential:NAME files
                              (for ExecReload: see systemd/swarmd.service)
  swarmd --state FILE ...     keep the swarms' snapshot in FILE ([state] path)
  swarmd --help | --version

-p, --port N, added to a run or to --print-config, puts UDP and HTTP on port N
of every configured address (0: a free port each, logged at start).
--state FILE, added to a run or to --check-config, sets [state] path (the
systemd unit puts it in the service's state directory).
";

/// `--state FILE`: set once from the command line, applied by every load of
/// the configuration (the run, each reload, --check-config), so a reload
/// never sees the file's own `[state] path` instead.
static STATE_PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

enum Command {
    Run(Option<PathBuf>),
    PrintConfig,
    /// The file, and whether to skip `credential:` files.
    CheckConfig(PathBuf, bool),
    Help,
    Version,
}

/// A port from the command line, with an error that says what a port is.
fn port(value: std::ffi::OsString) -> Result<u16, lexopt::Error> {
    let text = value.to_string_lossy();
    text.parse()
        .map_err(|_| format!("--port {text:?}: a port is a number from 0 to 65535").into())
}

fn parse_args() -> Result<(Command, Option<u16>), lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut command = Command::Run(None);
    let mut port_override = None;
    let mut skip_credentials = false;
    while let Some(arg) = parser.next()? {
        command = match arg {
            Short('c') | Long("config") => Command::Run(Some(parser.value()?.into())),
            Short('p') | Long("port") => {
                port_override = Some(port(parser.value()?)?);
                continue;
            }
            Long("state") => {
                let path = parser.value()?.string()?;
                let _ = STATE_PATH.set(path);
                continue;
            }
            Long("print-config") => Command::PrintConfig,
            Long("check-config") => Command::CheckConfig(parser.value()?.into(), false),
            Long("skip-credentials") => {
                skip_credentials = true;
                continue;
            }
            Short('h') | Long("help") => Command::Help,
            Short('V') | Long("version") => Command::Version,
            _ => return Err(arg.unexpected()),
        };
    }
    if let Command::CheckConfig(_, skip) = &mut command {
        *skip = skip_credentials;
    } else if skip_credentials {
        return Err("--skip-credentials goes with --check-config".into());
    }
    Ok((command, port_override))
}

fn main() -> ExitCode {
    let (command, port) = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            // 2, as for any usage error: the command line, not the
            // configuration or the network, is what is wrong.
            eprintln!("swarmd: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("swarmd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::PrintConfig => {
            match port {
                Some(p) => print!("{}", Config::default_toml_with_port(p)),
                None => print!("{DEFAULT_CONFIG_TOML}"),
            }
            ExitCode::SUCCESS
        }
        Command::CheckConfig(path, skip_credentials) => match check_config(&path, skip_credentials)
        {
            Ok(()) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}swarmd: {e}", error_prefix());
                ExitCode::FAILURE
            }
        },
        Command::Run(path) => match run(path, port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}swarmd: {e:#}", error_prefix());
                ExitCode::FAILURE
            }
        },
    }
}

fn run(path: Option<PathBuf>, port: Option<u16>) -> anyhow::Result<()> {
    let config = load(path.as_deref(), port)?;
    swarmd::logging::init(config.log.level.0, service::stderr_is_journal());
    // Here, not in `start`: a program embedding the tracker keeps its own
    // limits.
    service::check_nofile_limit(&config);

    let (signal_tx, signals) = crossbeam_channel::unbounded();
    let mut source = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in source.forever() {
                if signal_tx.send(signal).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the signal thread")?;

    let tracker = swarmd::start(&config)?;
    for addr in tracker.udp_addrs() {
        log::info!("listening on udp://{addr}");
    }
    for addr in tracker.http_addrs() {
        log::info!("listening on http://{addr}");
    }
    let reloads = match start_reloads(&tracker, path.clone(), port) {
        Ok(r) => r,
        Err(e) => {
            let _ = tracker.stop();
            bail!("cannot start the reload thread: {e}");
        }
    };
    if let Some(addr) = tracker.stats_addr() {
        log::info!("stats endpoint on http://{addr}/metrics");
    }
    log::info!(
        "{} socket worker(s), {} swarm worker(s)",
        config.workers.socket_workers,
        config.workers.swarm_workers
    );
    if !service::under_systemd() {
        let p = &config.privileges;
        if let Err(e) = service::drop_privileges(&p.user, &p.group) {
            let _ = tracker.stop();
            bail!("cannot switch to user {:?}: {e}", p.user);
        }
        if !p.user.is_empty() {
            log::info!("running as user {:?}", p.user);
            // The check at start ran as root, who can write anywhere: the
            // snapshots are written by this user from now on.
            if let Some(state) = config.state.path() {
                if let Err(e) = swarmd::snapshot::file::check_writable(state) {
                    let _ = tracker.stop();
                    bail!("as user {:?}: {e}", p.user);
                }
            }
        }
    }

    let notifier = service::Notifier::from_env();
    let notify = |m: &str| {
        if let Some(n) = &notifier {
            n.notify(m)
        }
    };
    notify("READY=1\nSTATUS=serving");
    let watchdog = service::watchdog_interval();
    let tick = crossbeam_channel::tick(watchdog.unwrap_or(std::time::Duration::from_secs(3600)));

    loop {
        crossbeam_channel::select! {
            recv(signals) -> signal => match signal {
                Ok(SIGHUP) => reloads.request(),
                Ok(s) => {
                    log::info!("signal {s}: stopping");
                    break;
                }
                Err(_) => break,
            },
            recv(tracker.deaths()) -> name => {
                let name = name.unwrap_or_default();
                notify("STOPPING=1");
                let _ = tracker.stop();
                bail!("thread {name} ended unexpectedly; stopping");
            }
            recv(tick) -> _ => {
                if watchdog.is_some() && tracker.stats().healthy() {
                    notify("WATCHDOG=1");
                }
            }
        }
    }
    notify("STOPPING=1");
    // The reload thread is not waited for: a reload of big lists may be
    // halfway, and a stop must not wait for it. It ends with the process,
    // and nothing of a reload cut short is ever seen: the lists are built
    // aside and swapped whole, and the process is going anyway.
    drop(reloads);
    let stats = tracker.stats().clone();
    tracker.stop().map_err(anyhow::Error::msg)?;
    log_totals(&stats);
    log::info!("stopped");
    Ok(())
}

/// Under journald, the syslog priority of an error (`<3>`), so that why a
/// start or a reload failed shows at `journalctl -p err`.
fn error_prefix() -> &'static str {
    if service::stderr_is_journal() {
        "<3>"
    } else {
        ""
    }
}

/// `--check-config`: the file, and every file it names (the access lists,
/// the passkeys), read as the daemon would, so that a pre-start or
/// pre-reload check fails on what would stop the daemon or its reload (a
/// missing or unreadable file, a bad line) and names the file and reason.
///
/// `skip_credentials`: the files named `credential:NAME` are not read.
/// Why: systemd 252 (Debian 12) gives a service's credentials to its first
/// command only (systemd issue #24291), so a check in `ExecReload=` cannot
/// read them; and they need no check there: systemd copies them at start,
/// and they stay what the daemon already read until a restart.
fn check_config(path: &Path, skip_credentials: bool) -> anyhow::Result<()> {
    let mut config = load(Some(path), None)?;
    // A snapshot directory that can't be written fails the start: say so now.
    if let Some(state) = config.state.path() {
        swarmd::snapshot::file::check_writable(state).map_err(anyhow::Error::msg)?;
    }
    // The cluster's secret is read at start: say now if it can't be (a
    // credential can't be read by a reload's check; see above).
    if let Some(cluster) = &config.cluster {
        let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
            .is_some_and(|dir| Path::new(&cluster.secret_file).starts_with(dir));
        if !(skip_credentials && credential) {
            cluster.secret().map_err(anyhow::Error::msg)?;
        }
    }
    if skip_credentials {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let access = &mut config.access;
            if access.info_hash_file.starts_with(&dir) {
                access.mode = swarmd::access::AccessMode::Off;
                access.info_hash_file = PathBuf::new();
            }
            if access.passkeys_file.starts_with(&dir) {
                access.passkeys_file = PathBuf::new();
            }
            if access.database.password_file.starts_with(&dir) {
                access.database.password_file = PathBuf::new();
            }
        }
    }
    swarmd::access::Access::load(&config.access).map_err(anyhow::Error::msg)?;
    // The database itself is not asked: a running daemon rides out its
    // outages, so a check before a reload must not fail on one.
    swarmd::access::check_database(&config.access).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The file (or the embedded defaults), then the `--port` override.
fn load(path: Option<&Path>, port: Option<u16>) -> Result<Config, swarmd::config::ConfigError> {
    let mut config = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(state) = STATE_PATH.get() {
        config.state.path = state.clone();
    }
    Ok(match port {
        Some(port) => config.with_port(port),
        None => config,
    })
}

/// Asks the `reload` thread for reloads.
struct Reloads(crossbeam_channel::Sender<()>);

impl Reloads {
    /// Asks for a reload. Why a queue of one: SIGHUPs that come while a
    /// reload runs make exactly one more reload after it, which reads the
    /// files as they are by then; each of them reading every list again
    /// (a million lines takes a while) would only delay the last one.
    fn request(&self) {
        match self.0.try_send(()) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(())) => {
                log::debug!("SIGHUP: a reload is already queued");
            }
            // The thread has ended; the main loop hears of it on deaths.
            Err(crossbeam_channel::TrySendError::Disconnected(())) => {}
        }
    }
}

/// Starts the `reload` thread, under the tracker's supervision (its end,
/// a panic say, stops the daemon like any other thread's). It reloads once
/// per request until the [`Reloads`] it returns is dropped.
fn start_reloads(
    tracker: &swarmd::Tracker,
    path: Option<PathBuf>,
    port: Option<u16>,
) -> std::io::Result<Reloads> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reloader = tracker.reloader();
    tracker.spawn_helper("reload", move || {
        for () in rx {
            reload(&reloader, path.as_deref(), port);
        }
    })?;
    Ok(Reloads(tx))
}

/// SIGHUP: re-reads the file and applies what can change while running. A
/// bad file changes nothing. The `--port` override holds across reloads.
fn reload(reloader: &swarmd::tracker::Reloader, path: Option<&Path>, port: Option<u16>) {
    let Some(path) = path else {
        // No file to re-read; the access lists (if any) are re-read.
        if let Err(e) = reloader.access().reload() {
            log::warn!("SIGHUP: keeping the old access lists: {e}");
        }
        return;
    };
    let new = match load(Some(path), port) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("SIGHUP: keeping the running settings: {e}");
            return;
        }
    };
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(new.log.level.0);
    }
    if let Err(e) = reloader.access().reload_with(&new.access) {
        log::warn!("SIGHUP: keeping the old access lists: {e}");
    }
    let restart = reloader.reload(&new);
    if !restart.is_empty() {
        log::warn!(
            "SIGHUP: changed but only applied by a restart: {}",
            restart.join(", ")
        );
    }
    log::info!("SIGHUP: reloaded {}", path.display());
}

/// One line per address family with the counters that are not zero.
fn log_totals(stats: &swarmd::stats::Stats) {
    for (family, v6) in [("ipv4", false), ("ipv6", true)] {
        let mut sums: Vec<(&'static str, u64)> = Vec::new();
        for worker in &stats.socket {
            for (i, (name, v)) in worker.udp(v6).values().into_iter().enumerate() {
                match sums.get_mut(i) {
                    Some(s) => s.1 += v,
                    None => sums.push((name, v)),
                }
            }
        }
        let line: Vec<String> = sums
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        if !line.is_empty() {
            log::info!("udp {family}: {}", line.join(" "));
        }
    }
}
