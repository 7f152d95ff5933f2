//! The stats endpoint over real TCP: slow and silent clients can't stall it
//! or delay a stop, and it exports no series that cannot exist.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use swarmd::protocol::AnnounceEvent;
use util::stats::{get, request};
use util::{hash, tracker, Client};

/// The bound for /healthz while hostile clients hold connections.
const FAST: Duration = Duration::from_millis(100);

/// A client that sends a request head one byte every 0.4 s (under the old
/// per-read timeout of 0.5 s), at most 30 bytes, until told to stop or the
/// server closes.
struct Dribbler {
    stream: TcpStream,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dribbler {
    fn start(addr: SocketAddr) -> Dribbler {
        let stream = TcpStream::connect(addr).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let head = b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for b in head.iter().take(30) {
                if stopped.load(Ordering::Relaxed) || writer.write_all(&[*b]).is_err() {
                    return;
                }
                // The dribble itself, not a synchronisation.
                std::thread::sleep(Duration::from_millis(400));
            }
        });
        Dribbler {
            stream,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Dribbler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// 100 connections that never send a byte.
fn silent(addr: SocketAddr) -> Vec<TcpStream> {
    (0..100)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect()
}

/// A dribbling client and 100 silent ones on the endpoint at `addr`, taken
/// in by it: it answers /healthz after accepting whatever queued before it.
fn hold(addr: SocketAddr) -> (Dribbler, Vec<TcpStream>) {
    let held = (Dribbler::start(addr), silent(addr));
    let _ = request(
        addr,
        "GET /healthz HTTP/1.1\r\n\r\n",
        Duration::from_secs(2),
    );
    held
}

/// Times five /healthz requests; returns them sorted. A request that takes
/// over 2 s fails the test.
fn healthz_times(addr: SocketAddr) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let answer = request(
                addr,
                "GET /healthz HTTP/1.1\r\n\r\n",
                Duration::from_secs(2),
            );
            let took = start.elapsed();
            assert_eq!(
                answer.map_err(|e| e.to_string()),
                Ok((200, "ok\n".to_string())),
                "after {took:?}"
            );
            took
        })
        .collect();
    times.sort();
    times
}

/// The median must meet the bound; the slowest may be a scheduling hiccup
/// on a loaded machine, but not a wait on another client.
fn assert_fast(times: &[Duration], while_: &str) {
    assert!(
        times[times.len() / 2] < FAST && times[times.len() - 1] < 5 * FAST,
        "/healthz took {times:?} while {while_}"
    );
}

#[test]
fn healthz_answers_fast_while_a_client_dribbles_and_100_are_silent() {
    let t = tracker();
    let addr = t.stats_addr().unwrap();
    let _dribbler = Dribbler::start(addr);
    assert_fast(&healthz_times(addr), "a client dribbles");
    let _silent = silent(addr);
    assert_fast(&healthz_times(addr), "100 clients are silent");
    t.stop().unwrap();
}

#[test]
fn a_dribbling_client_is_closed_at_the_request_deadline() {
    let t = tracker();
    let addr = t.stats_addr().unwrap();
    let start = Instant::now();
    let mut d = Dribbler::start(addr);
    d.stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    // An answer (408) then EOF, or a reset: either way the server gave
    // up on it.
    let mut got = Vec::new();
    let closed = match d.stream.read_to_end(&mut got) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let took = start.elapsed();
    assert!(
        closed && took < Duration::from_secs(6),
        "closed: {closed}, after {took:?}"
    );
    t.stop().unwrap();
}

#[test]
fn tracker_stop_is_prompt_while_clients_hold_the_endpoint() {
    let t = tracker();
    let addr = t.stats_addr().unwrap();
    let _held = hold(addr);
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(t.stop());
    });
    let stopped = rx.recv_timeout(Duration::from_secs(1));
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "Tracker::stop: {stopped:?} after {:?}",
        start.elapsed()
    );
}

#[test]
fn sigterm_exits_promptly_while_clients_hold_the_endpoint() {
    let dir = util::daemon::temp_dir("stats-sigterm");
    let config = dir.join("tracker.toml");
    std::fs::write(
        &config,
        "[udp]\naddresses = [\"127.0.0.1:0\"]\n[http]\naddresses = []\n[stats]\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut d = util::daemon::Daemon::start(&config);
    let line = d.wait_for("stats endpoint on http://");
    let addr: SocketAddr = line
        .rsplit("http://")
        .next()
        .and_then(|s| s.strip_suffix("/metrics"))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let _held = hold(addr);
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(1));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?} after {:?}",
        start.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// HTTP has no connect and no connection ids, and TCP never drops a
/// response for a full send buffer; UDP has no connections.
#[test]
fn metrics_export_no_series_that_cannot_exist() {
    let t = tracker();
    let addr = t.stats_addr().unwrap();
    let mut c = Client::new(t.udp_addrs()[0]);
    c.announce(hash(1), AnnounceEvent::Started, 0);
    let (status, text) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let has = |series: &str| text.lines().any(|l| l.starts_with(series));
    for family in ["ipv4", "ipv6"] {
        let udp = format!("protocol=\"udp\",family=\"{family}\"");
        let http = format!("protocol=\"http\",family=\"{family}\"");
        for present in [
            format!("swarmd_requests_total{{{udp},kind=\"connect\"}} "),
            format!("swarmd_responses_total{{{udp},kind=\"connect\"}} "),
            format!("swarmd_errors_total{{{udp},kind=\"connection_id\"}} "),
            format!("swarmd_dropped_total{{{udp},reason=\"send\"}} "),
            format!("swarmd_requests_total{{{http},kind=\"announce\"}} "),
            format!("swarmd_connections_total{{{http},event=\"accepted\"}} "),
        ] {
            assert!(has(&present), "{present} is missing:\n{text}");
        }
        for absent in [
            format!("swarmd_requests_total{{{http},kind=\"connect\"}}"),
            format!("swarmd_responses_total{{{http},kind=\"connect\"}}"),
            format!("swarmd_errors_total{{{http},kind=\"connection_id\"}}"),
            format!("swarmd_dropped_total{{{http},reason=\"send\"}}"),
            format!("swarmd_connections_total{{{udp},"),
        ] {
            assert!(!has(&absent), "{absent} is exported:\n{text}");
        }
    }
    // The JSON view drops the same counters.
    let (_, body) = get(addr, "/stats");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["protocols"]["udp_ipv4"]["requests_connect"], 1);
    assert!(v["protocols"]["http_ipv4"]["requests_announce"].is_u64());
    for absent in [
        "requests_connect",
        "responses_connect",
        "errors_connection_id",
        "dropped_send",
    ] {
        assert!(
            v["protocols"]["http_ipv4"].get(absent).is_none(),
            "{absent}"
        );
    }
    assert!(v["protocols"]["udp_ipv4"]
        .get("connections_accepted")
        .is_none());
    t.stop().unwrap();
}
