//! A real BitTorrent client (libtorrent, through its Python binding) finds
//! another one through swarmd and downloads a file from it, over UDP and
//! HTTP on 127.0.0.1 and ::1. Needs Debian's python3-libtorrent (`.ci/run` installs
//! it); the script bounds itself to 60 seconds.

mod util;

use std::process::Command;

/// True when libtorrent can be imported. Off CI a missing binding skips the
/// test with a loud note; on CI (`CI` set) it is a failure.
fn libtorrent_available() -> bool {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3-libtorrent is missing on CI"
        );
        eprintln!("SKIPPED: apt-get install python3-libtorrent to run the real-client test");
    }
    ok
}

fn run_swarm(url: &str, listen_ip: &str) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/libtorrent_swarm.py"
    );
    // Debian's binding is built for Debian's python3 only.
    let out = Command::new("/usr/bin/python3")
        .args([script, url, listen_ip])
        .output()
        .expect("run /usr/bin/python3 (install python3-libtorrent)");
    assert!(
        out.status.success(),
        "libtorrent swarm via {url} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn libtorrent_peers_find_each_other_over_udp() {
    if !libtorrent_available() {
        return;
    }
    let t = util::tracker();
    let (v4, v6) = (t.udp_addrs()[0], t.udp_addrs()[1]);
    run_swarm(&format!("udp://{v4}/announce"), "127.0.0.1");
    run_swarm(&format!("udp://{v6}/announce"), "::1");
    let (announces_v4, announces_v6) = t.stats().udp_total(|f| &f.responses_announce);
    assert!(
        announces_v4 >= 2 && announces_v6 >= 2,
        "{announces_v4} {announces_v6}"
    );
    t.stop().unwrap();
}

#[test]
fn libtorrent_peers_find_each_other_over_http() {
    if !libtorrent_available() {
        return;
    }
    let t = util::tracker();
    let (v4, v6) = (t.http_addrs()[0], t.http_addrs()[1]);
    run_swarm(&format!("http://{v4}/announce"), "127.0.0.1");
    run_swarm(&format!("http://{v6}/announce"), "::1");
    let (announces_v4, announces_v6) = t.stats().http_total(|f| &f.responses_announce);
    assert!(
        announces_v4 >= 2 && announces_v6 >= 2,
        "{announces_v4} {announces_v6}"
    );
    t.stop().unwrap();
}
