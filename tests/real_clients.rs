//! A real BitTorrent client (libtorrent, through its Python binding) finds
//! another one through swarmd and downloads a file from it, over UDP and
//! HTTP on 127.0.0.1 and ::1. Needs Debian's python3-libtorrent (`.ci/run` installs
//! it); the script bounds itself to 60 seconds.

mod util;

use std::process::Command;

/// True when libtorrent can be imported. Off CI a missing binding skips the
/// test with a loud note; on CI (`CI` set) it is a failure.
fn libtorrent_available() -> bool {
    util::can_run(
        util::python_imports("/usr/bin/python3", "libtorrent"),
        "python3-libtorrent is missing on CI",
        "apt-get install python3-libtorrent to run the real-client test",
    )
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

/// A private tracker: libtorrent sends the passkey in the HTTP path and, over
/// UDP, in the BEP 41 URL data; swarmd accepts it and counts its announces.
#[test]
fn libtorrent_with_a_passkey_over_udp_and_http() {
    if !libtorrent_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("swarmd-real-passkey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("passkeys.txt");
    std::fs::write(&keys, "s3cr3tKey alice\n").unwrap();
    let t = util::tracker_with(|c| c.access.passkeys_file = keys.clone());
    let (udp4, udp6, http4) = (t.udp_addrs()[0], t.udp_addrs()[1], t.http_addrs()[0]);
    run_swarm(&format!("udp://{udp4}/announce/s3cr3tKey"), "127.0.0.1");
    run_swarm(&format!("udp://{udp6}/s3cr3tKey/announce"), "::1");
    run_swarm(&format!("http://{http4}/s3cr3tKey/announce"), "127.0.0.1");
    let stats = t.passkey_stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].0, "alice");
    assert!(stats[0].1.announces >= 6, "{stats:?}");
    let (u4, u6) = t.stats().udp_total(|f| &f.errors_passkey);
    let (h4, h6) = t.stats().http_total(|f| &f.errors_passkey);
    assert_eq!(u4 + u6 + h4 + h6, 0, "no announce was refused");
    t.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
