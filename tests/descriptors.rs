//! Running out of file descriptors, with the binary under a low
//! RLIMIT_NOFILE: it raises its soft limit to the hard one and says so, and
//! a client that connects while no descriptor is left is served once some
//! are freed (the listener is edge-triggered: nothing reports it again).

mod util;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use util::daemon::Daemon;
use util::hash;
use util::http::{announce_path, HttpClient};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("swarmd-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A config with UDP and HTTP on free loopback ports, no stats endpoint.
fn config(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("tracker.toml");
    std::fs::write(
        &path,
        "[udp]\naddresses = [\"127.0.0.1:0\"]\n[http]\naddresses = [\"127.0.0.1:0\"]\n[stats]\naddress = \"\"\n",
    )
    .unwrap();
    path
}

/// The binary on `config`, started with RLIMIT_NOFILE at `soft`/`hard`.
fn with_nofile(config: &std::path::Path, soft: u64, hard: u64) -> Daemon {
    let mut cmd: Command = Daemon::command(config);
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: the closure runs in the forked child before exec; it calls
    // only setrlimit, which is async-signal-safe, on a value it owns, and
    // `last_os_error` reads errno without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Daemon::spawn(cmd)
}

/// Descriptors the process holds below `limit`: the ones the limit counts
/// (it bounds the numbers; one inherited above it, as from the test
/// harness, takes no slot).
fn open_descriptors(pid: u32, limit: u64) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .filter(|&fd| fd < limit)
        .count()
}

#[test]
fn start_up_raises_the_soft_limit_to_the_hard_one_and_warns_when_short() {
    let dir = temp_dir("nofile-raise");
    let mut d = with_nofile(&config(&dir), 64, 128);
    let line = d.wait_for("open files limit");
    assert!(line.contains("128"), "the raised limit: {line}");
    // 4096 connections (the default) do not fit in 128 descriptors.
    let warning = d.wait_for("descriptors");
    for needle in ["128", "4096", "http.max_connections", "LimitNOFILE"] {
        assert!(warning.contains(needle), "{needle:?} in {warning}");
    }
    d.logged_addr("http");
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(5))
        .is_some_and(|s| s.success()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_waiting_while_descriptors_ran_out_is_served_once_some_free_up() {
    const LIMIT: u64 = 64;
    let dir = temp_dir("nofile-accept");
    let mut d = with_nofile(&config(&dir), LIMIT, LIMIT);
    let addr = d.logged_addr("http");
    let pid = d.child.id();

    // Connections that each got an answer, so each holds a descriptor in
    // the daemon, until the daemon has none left.
    let mut held = Vec::new();
    while open_descriptors(pid, LIMIT) < LIMIT as usize {
        assert!(held.len() < LIMIT as usize, "descriptors never ran out");
        let mut c = HttpClient::connect(addr);
        let port = 1000 + held.len() as u16;
        let r = c.get(&announce_path(hash(1), &[port as u8; 20], port, 1, ""));
        assert_eq!(r.status, 200);
        held.push(c);
    }

    // The kernel completes W's handshake; the daemon's accept fails.
    let mut waiting = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n\r\n",
        announce_path(hash(2), &[9; 20], 999, 1, "")
    );
    waiting.write_all(request.as_bytes()).unwrap();
    d.wait_for("accept:");

    // Free a few descriptors: no new connection arrives to wake the
    // listener, yet W must be served.
    held.truncate(held.len() - 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the waiting client was not answered within 5 s of descriptors freeing up"
        );
        waiting.set_read_timeout(Some(left)).unwrap();
        match waiting.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("8:interval"), "{answer}");

    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(5))
        .is_some_and(|s| s.success()));
    let _ = std::fs::remove_dir_all(&dir);
}
