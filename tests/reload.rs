//! SIGHUP reloads of a big allow list, with the binary: they run beside
//! the signal handling, so a SIGTERM is never queued behind them, and
//! SIGHUPs that come during a reload fold into one more reload, which reads
//! the files as they are by then.

mod util;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use util::daemon::{temp_dir, Daemon};
use util::{announce_interval, hash};

/// The time one reload should take here, so that 20 take well over 3 s.
const ONE_RELOAD: Duration = Duration::from_millis(300);

/// `lines` distinct info hashes, and hash(1) (which the tests announce).
fn write_list(path: &Path, lines: usize) {
    let mut text = String::with_capacity((lines + 1) * 41);
    text.push_str(&"01".repeat(20));
    text.push('\n');
    for i in 0..lines as u64 {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        text.push_str(&format!("{x:016x}{i:016x}{:08x}\n", i as u32));
    }
    std::fs::write(path, text).unwrap();
}

fn write_config(path: &Path, list: &Path, interval: u32) {
    std::fs::write(
        path,
        format!(
            "[udp]\naddresses = [\"127.0.0.1:0\"]\n[http]\naddresses = []\n[stats]\naddress = \"\"\n\
             [announce]\ninterval = {interval}\nmin_interval = 10\n\
             [access]\nmode = \"allow\"\ninfo_hash_file = \"{}\"\n",
            list.display()
        ),
    )
    .unwrap();
}

/// One SIGHUP, and the time until its reload is logged.
fn reload_time(d: &mut Daemon) -> Duration {
    let start = Instant::now();
    d.signal(libc::SIGHUP);
    d.wait_for("SIGHUP: reloaded");
    start.elapsed()
}

/// The daemon on an allow list grown until one reload takes about
/// [`ONE_RELOAD`] on this machine and build (debug or release); the
/// number of reloads done to measure it.
fn daemon_with_slow_reloads(dir: &Path, interval: u32) -> (Daemon, SocketAddr, usize) {
    let list = dir.join("allow.txt");
    let config = dir.join("tracker.toml");
    let mut lines = 20_000;
    write_list(&list, lines);
    write_config(&config, &list, interval);
    let mut d = Daemon::start(&config);
    let addr = d.logged_addr("udp");
    let mut took = reload_time(&mut d);
    let mut reloads = 1;
    while took < ONE_RELOAD && lines < 8_000_000 {
        let scale = ONE_RELOAD.as_secs_f64() * 1.2 / took.as_secs_f64().max(0.001);
        lines = ((lines as f64 * scale) as usize).clamp(lines * 2, 8_000_000);
        write_list(&list, lines);
        took = reload_time(&mut d);
        reloads += 1;
    }
    assert!(
        took * 20 > Duration::from_secs(3),
        "one reload of {lines} lines takes only {took:?}"
    );
    eprintln!("one reload of {lines} lines: {took:?}");
    (d, addr, reloads)
}

fn reloads_logged(log: &[String]) -> usize {
    log.iter()
        .filter(|l| l.contains("SIGHUP: reloaded"))
        .count()
}

/// 20 SIGHUPs, a few milliseconds apart, as an operator's or a script's
/// would come. (Sent back to back, the kernel folds pending ones itself.)
fn twenty_sighups(d: &Daemon) {
    for _ in 0..20 {
        d.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_after_twenty_sighups_exits_within_a_second() {
    let dir = temp_dir("reload-sigterm");
    let (mut d, _, calibration) = daemon_with_slow_reloads(&dir, 1800);
    twenty_sighups(&d);
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(60));
    let took = start.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0 after SIGTERM: {status:?}"
    );
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
    let reloads = reloads_logged(d.rest_of_log()) - calibration;
    eprintln!("SIGTERM: exit after {took:?}, {reloads} reload(s) for 20 SIGHUPs");
    assert!(reloads < 20, "{reloads} reloads for 20 SIGHUPs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighups_during_a_reload_fold_into_one_that_reads_the_latest_file() {
    let dir = temp_dir("reload-fold");
    let (mut d, addr, calibration) = daemon_with_slow_reloads(&dir, 1800);
    assert_eq!(announce_interval(addr, hash(1)), 1800);
    // The first SIGHUP's reload may already have read the file when it
    // changes; the SIGHUPs after the change must still bring it in.
    d.signal(libc::SIGHUP);
    write_config(&dir.join("tracker.toml"), &dir.join("allow.txt"), 1000);
    twenty_sighups(&d);
    d.wait_for("SIGHUP: reloaded");
    d.wait_for("SIGHUP: reloaded");
    assert_eq!(announce_interval(addr, hash(1)), 1000);
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(5))
        .is_some_and(|s| s.success()));
    let reloads = reloads_logged(d.rest_of_log()) - calibration;
    assert_eq!(reloads, 2, "21 SIGHUPs during one reload: one more");
    let _ = std::fs::remove_dir_all(&dir);
}
