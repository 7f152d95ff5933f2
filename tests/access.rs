//! End-to-end tests of access control: allow and deny lists, reloads,
//! purging, and passkeys over HTTP (in the path) and UDP (BEP 41 URL data).
//! List files live in a directory each test makes under the system's temp
//! directory and removes when it ends.

mod util;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use swarmd::access::{passkey_tag, AccessMode, PasskeyCounters};
use swarmd::protocol::http::url_encode;
use swarmd::protocol::udp::{Request, Response, ScrapeStats};
use swarmd::protocol::{AnnounceEvent, InfoHash};
use swarmd::{Config, Tracker};
use util::http::{announce_path, scrape_path, HttpClient, HttpResponse};
use util::{hash, tracker_with, Client};

/// A directory for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "swarmd-access-{test}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `name` whole: a new file renamed over the old one, so a timed
    /// reload never reads half of it.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex(h: InfoHash) -> String {
    h.to_string()
}

fn list(hashes: &[InfoHash]) -> String {
    let mut s = String::from("# test list\n\n");
    for h in hashes {
        s.push_str(&hex(*h));
        s.push('\n');
    }
    s
}

fn with_list(dir: &TempDir, mode: AccessMode, hashes: &[InfoHash]) -> impl FnOnce(&mut Config) {
    let path = dir.write("hashes.txt", &list(hashes));
    move |c: &mut Config| {
        c.access.mode = mode;
        c.access.info_hash_file = path;
    }
}

/// Announces over UDP: Ok(peers) or Err(error message).
fn udp_announce(c: &mut Client, h: InfoHash, url_data: &str) -> Result<Vec<SocketAddr>, String> {
    let mut req = c.announce_request(h, AnnounceEvent::Started, 10);
    req.url_data = url_data.as_bytes().to_vec();
    c.announce_result(req)
}

fn http_announce(addr: SocketAddr, path: &str) -> Result<HttpResponse, String> {
    let r = HttpClient::connect(addr).get(path);
    assert_eq!(r.status, 200);
    match r.bencode().get("failure reason") {
        Some(util::http::Bencode::Bytes(b)) => Err(String::from_utf8(b.clone()).unwrap()),
        _ => Ok(r),
    }
}

fn not_allowed(t: &Tracker) -> (u64, u64, u64, u64) {
    let (u4, u6) = t.stats().udp_total(|f| &f.errors_not_allowed);
    let (h4, h6) = t.stats().http_total(|f| &f.errors_not_allowed);
    (u4, u6, h4, h6)
}

/// Polls `f` until it holds; fails after 10 seconds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn allow_list_refuses_unlisted_torrents_over_udp_and_http() {
    let dir = TempDir::new("allow");
    let t = tracker_with(with_list(&dir, AccessMode::Allow, &[hash(1)]));
    for &addr in t.udp_addrs() {
        let mut c = Client::new(addr);
        assert_eq!(udp_announce(&mut c, hash(1), ""), Ok(vec![]));
        assert_eq!(
            udp_announce(&mut c, hash(2), "/announce"),
            Err("torrent not allowed".into())
        );
    }
    for &addr in t.http_addrs() {
        let ok = http_announce(addr, &announce_path(hash(1), &[1; 20], 7001, 5, ""));
        assert!(ok.is_ok());
        let refused = http_announce(addr, &announce_path(hash(2), &[1; 20], 7001, 5, ""));
        assert_eq!(refused.err().as_deref(), Some("torrent not allowed"));
    }
    assert_eq!(not_allowed(&t), (1, 1, 1, 1));
    t.stop().unwrap();
}

#[test]
fn deny_list_refuses_listed_torrents() {
    let dir = TempDir::new("deny");
    let t = tracker_with(with_list(&dir, AccessMode::Deny, &[hash(1)]));
    let mut c = Client::new(t.udp_addrs()[0]);
    assert_eq!(
        udp_announce(&mut c, hash(1), ""),
        Err("torrent not allowed".into())
    );
    assert!(udp_announce(&mut c, hash(2), "").is_ok());
    let http = t.http_addrs()[0];
    let refused = http_announce(http, &announce_path(hash(1), &[1; 20], 7001, 5, ""));
    assert_eq!(refused.err().as_deref(), Some("torrent not allowed"));
    t.stop().unwrap();
}

#[test]
fn reload_adds_and_removes_torrents() {
    let dir = TempDir::new("reload");
    let t = tracker_with(with_list(&dir, AccessMode::Allow, &[hash(1)]));
    let mut c = Client::new(t.udp_addrs()[0]);
    assert!(udp_announce(&mut c, hash(1), "").is_ok());
    assert!(udp_announce(&mut c, hash(2), "").is_err());
    dir.write("hashes.txt", &list(&[hash(2), hash(3)]));
    t.reload_access().unwrap();
    assert!(udp_announce(&mut c, hash(1), "").is_err(), "removed");
    assert!(udp_announce(&mut c, hash(2), "").is_ok(), "added");
    assert!(udp_announce(&mut c, hash(3), "").is_ok(), "added");
    t.stop().unwrap();
}

#[test]
fn bad_reload_keeps_the_old_list() {
    let dir = TempDir::new("badreload");
    let t = tracker_with(with_list(&dir, AccessMode::Allow, &[hash(1)]));
    let path = dir.write("hashes.txt", &format!("{}\nnot-a-hash\n", hex(hash(2))));
    let e = t.reload_access().unwrap_err();
    assert!(
        e.starts_with(&format!("{}:2: ", path.display())),
        "file and line: {e}"
    );
    let mut c = Client::new(t.udp_addrs()[0]);
    assert!(udp_announce(&mut c, hash(1), "").is_ok(), "old list kept");
    assert!(
        udp_announce(&mut c, hash(2), "").is_err(),
        "new list not used"
    );
    std::fs::remove_file(&path).unwrap();
    let e = t.reload_access().unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
    assert!(udp_announce(&mut c, hash(1), "").is_ok(), "old list kept");
    t.stop().unwrap();
}

#[test]
fn bad_list_stops_start_up_with_its_file_and_line() {
    let dir = TempDir::new("badstart");
    let list = dir.write("hashes.txt", &format!("# ok\n{}\n\n0123\n", hex(hash(1))));
    let keys = dir.write("keys.txt", "good alice\nbad/key\n");
    let mut config = Config::default();
    config.udp.addresses = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.addresses = vec![];
    config.stats.address = String::new();
    config.access.mode = AccessMode::Allow;
    config.access.info_hash_file = list.clone();
    let e = swarmd::start(&config).err().expect("refused").to_string();
    assert!(e.starts_with(&format!("{}:4: ", list.display())), "{e}");
    config.access.mode = AccessMode::Off;
    config.access.passkeys_file = keys.clone();
    let e = swarmd::start(&config).err().expect("refused").to_string();
    assert!(e.starts_with(&format!("{}:2: ", keys.display())), "{e}");
    config.access.passkeys_file = dir.0.join("missing.txt");
    let e = swarmd::start(&config).err().expect("refused").to_string();
    assert!(e.contains("missing.txt: cannot read"), "{e}");
    // A mode without a list is a configuration error.
    let e = Config::parse("[access]\nmode = \"deny\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("info_hash_file"), "{e}");
    let e = Config::parse("[access]\nmode = \"maybe\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:2: "), "{e}");
}

#[test]
fn refused_torrents_scrape_as_zeros() {
    let dir = TempDir::new("scrape");
    let t = tracker_with(with_list(&dir, AccessMode::Deny, &[]));
    let udp = t.udp_addrs()[0];
    let http = t.http_addrs()[0];
    let mut a = Client::new(udp);
    assert!(udp_announce(&mut a, hash(1), "").is_ok());
    assert!(udp_announce(&mut a, hash(2), "").is_ok());
    // Deny hash 2; it is still in memory until a cleaning pass.
    dir.write("hashes.txt", &list(&[hash(2)]));
    t.reload_access().unwrap();
    let one = ScrapeStats {
        seeders: 0,
        completed: 0,
        leechers: 1,
    };
    assert_eq!(
        a.scrape(&[hash(1), hash(2)]),
        vec![one, ScrapeStats::default()]
    );
    assert_eq!(a.scrape(&[hash(2)]), vec![ScrapeStats::default()]);
    let b = HttpClient::connect(http)
        .get(&scrape_path(&[hash(2), hash(1)]))
        .bencode();
    let files = b.get("files").unwrap();
    let get = |h: InfoHash| {
        let f = files.get(std::str::from_utf8(&h.0).unwrap()).unwrap();
        (f.int("complete"), f.int("incomplete"))
    };
    assert_eq!(get(hash(1)), (0, 1));
    assert_eq!(get(hash(2)), (0, 0));
    t.stop().unwrap();
}

#[test]
fn torrents_that_leave_the_allow_list_are_purged() {
    let dir = TempDir::new("purge");
    let edit = with_list(&dir, AccessMode::Allow, &[hash(1), hash(2)]);
    let t = tracker_with(|c| {
        edit(c);
        // No pass of its own for an hour: the reload must start one.
        c.swarm.cleaning_interval = swarmd::config::Positive(3600);
        c.workers.swarm_workers = 2.try_into().unwrap();
    });
    let addr = t.udp_addrs()[0];
    let mut a = Client::new(addr);
    let mut b = Client::new(addr);
    for c in [&mut a, &mut b] {
        assert!(udp_announce(c, hash(1), "").is_ok());
        assert!(udp_announce(c, hash(2), "").is_ok());
    }
    dir.write("hashes.txt", &list(&[hash(2)]));
    t.reload_access().unwrap();
    let purged = || {
        (
            t.stats().swarm_total(|s| &s.torrents_purged),
            t.stats().swarm_total(|s| &s.peers_purged),
        )
    };
    eventually("the purge", || purged() == (1, 2));
    // Allowed again: the torrent starts empty, its peers are gone.
    dir.write("hashes.txt", &list(&[hash(1), hash(2)]));
    t.reload_access().unwrap();
    let two = ScrapeStats {
        seeders: 0,
        completed: 0,
        leechers: 2,
    };
    assert_eq!(
        a.scrape(&[hash(1), hash(2)]),
        vec![ScrapeStats::default(), two]
    );
    let mut c = Client::new(addr);
    assert_eq!(udp_announce(&mut c, hash(1), ""), Ok(vec![]));
    assert_eq!(purged(), (1, 2), "the allowed torrent stays");
    t.stop().unwrap();
}

#[test]
fn timed_reload_picks_up_a_changed_file() {
    let dir = TempDir::new("timer");
    let edit = with_list(&dir, AccessMode::Allow, &[hash(1)]);
    let t = tracker_with(|c| {
        edit(c);
        c.access.reload_interval = 1;
    });
    let mut c = Client::new(t.udp_addrs()[0]);
    assert!(udp_announce(&mut c, hash(2), "").is_err());
    dir.write("hashes.txt", &list(&[hash(1), hash(2)]));
    eventually("the timed reload", || {
        udp_announce(&mut c, hash(2), "").is_ok()
    });
    t.stop().unwrap();
}

fn with_passkeys(dir: &TempDir) -> impl FnOnce(&mut Config) {
    let path = dir.write("keys.txt", "# users\nk1 alice\nk2\nk3 alice\n");
    move |c: &mut Config| c.access.passkeys_file = path
}

fn passkey_errors(t: &Tracker) -> (u64, u64) {
    let (u4, u6) = t.stats().udp_total(|f| &f.errors_passkey);
    let (h4, h6) = t.stats().http_total(|f| &f.errors_passkey);
    (u4 + u6, h4 + h6)
}

#[test]
fn udp_passkey_in_bep41_url_data() {
    let dir = TempDir::new("udpkey");
    let t = tracker_with(with_passkeys(&dir));
    for &addr in t.udp_addrs() {
        let mut c = Client::new(addr);
        assert!(udp_announce(&mut c, hash(1), "/announce/k1").is_ok());
        assert!(udp_announce(&mut c, hash(1), "/k2/announce?info=1&x=y").is_ok());
        assert_eq!(
            udp_announce(&mut c, hash(1), "/announce"),
            Err("passkey required".into())
        );
        assert_eq!(
            udp_announce(&mut c, hash(1), ""),
            Err("passkey required".into())
        );
        assert_eq!(
            udp_announce(&mut c, hash(1), "/announce/nobody"),
            Err("unknown passkey".into())
        );
        // A long key that spans two BEP 41 options is put back together.
        let mut req = c.announce_request(hash(1), AnnounceEvent::None, 10);
        req.url_data = format!("/announce/{}", "x".repeat(300)).into_bytes();
        assert_eq!(c.announce_result(req), Err("unknown passkey".into()));
        // UDP scrapes can't carry a passkey: refused.
        let tid = c.tid();
        c.send(&Request::Scrape(swarmd::protocol::udp::ScrapeRequest {
            connection_id: c.connection_id,
            transaction_id: tid,
            info_hashes: vec![hash(1)],
        }));
        match c.recv() {
            Response::Error { message, .. } => assert_eq!(message, b"passkey required"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(passkey_errors(&t), (10, 0));
    t.stop().unwrap();
}

#[test]
fn http_passkey_in_path() {
    let dir = TempDir::new("httpkey");
    let t = tracker_with(with_passkeys(&dir));
    let addr = t.http_addrs()[0];
    let query = announce_path(hash(1), &[3; 20], 7001, 5, "");
    let query = query.strip_prefix("/announce").unwrap();
    assert!(http_announce(addr, &format!("/announce/k1{query}")).is_ok());
    assert!(http_announce(addr, &format!("/k2/announce{query}")).is_ok());
    assert_eq!(
        http_announce(addr, &format!("/announce{query}")).err(),
        Some("passkey required".into())
    );
    assert_eq!(
        http_announce(addr, &format!("/announce/k9{query}")).err(),
        Some("unknown passkey".into())
    );
    let scrape = scrape_path(&[hash(1)]);
    let scrape_query = scrape.strip_prefix("/scrape").unwrap();
    let ok = http_announce(addr, &format!("/k1/scrape{scrape_query}")).unwrap();
    assert!(ok.bencode().get("files").is_some());
    assert!(http_announce(addr, &format!("/scrape/k3{scrape_query}")).is_ok());
    assert_eq!(
        http_announce(addr, &scrape).err(),
        Some("passkey required".into())
    );
    assert_eq!(
        http_announce(addr, &format!("/scrape/zz{scrape_query}")).err(),
        Some("unknown passkey".into())
    );
    assert_eq!(passkey_errors(&t), (0, 4));
    t.stop().unwrap();
}

#[test]
fn passkeys_and_allow_list_together() {
    let dir = TempDir::new("both");
    let list = with_list(&dir, AccessMode::Allow, &[hash(1)]);
    let keys = with_passkeys(&dir);
    let t = tracker_with(|c| {
        list(c);
        keys(c);
    });
    let mut c = Client::new(t.udp_addrs()[0]);
    assert!(udp_announce(&mut c, hash(1), "/announce/k1").is_ok());
    assert_eq!(
        udp_announce(&mut c, hash(2), "/announce/k1"),
        Err("torrent not allowed".into())
    );
    // Without a good key, nothing tells whether the torrent is listed.
    assert_eq!(
        udp_announce(&mut c, hash(2), "/announce/k0"),
        Err("unknown passkey".into())
    );
    t.stop().unwrap();
}

/// The body of the stats endpoint's `/passkeys`.
fn stats_passkeys(t: &Tracker) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(t.stats_addr().unwrap()).unwrap();
    s.write_all(b"GET /passkeys HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

fn http_totals(addr: SocketAddr, key: &str, port: u16, up: u64, down: u64, event: &str) {
    let path = format!(
        "/{key}/announce?info_hash={}&peer_id={}&port={port}&uploaded={up}&downloaded={down}&left=5{event}",
        url_encode(&hash(7).0),
        url_encode(&[port as u8; 20])
    );
    http_announce(addr, &path).unwrap();
}

#[test]
fn passkey_counters_sum_deltas_per_user() {
    let dir = TempDir::new("ratio");
    let t = tracker_with(with_passkeys(&dir));
    let http = t.http_addrs()[0];
    // alice (k1) over HTTP: a session from zero, then two announces.
    http_totals(http, "k1", 7001, 0, 0, "&event=started");
    http_totals(http, "k1", 7001, 1000, 100, "");
    http_totals(http, "k1", 7001, 1500, 400, "&event=stopped");
    // alice's second key (k3) over UDP.
    let mut c = Client::new(t.udp_addrs()[0]);
    let mut req = c.announce_request(hash(7), AnnounceEvent::Started, 5);
    req.url_data = b"/announce/k3".to_vec();
    c.announce_result(req).unwrap();
    let mut req = c.announce_request(hash(7), AnnounceEvent::None, 5);
    req.url_data = b"/k3/announce".to_vec();
    req.uploaded = 25;
    req.downloaded = 5;
    c.announce_result(req).unwrap();
    // k2 (no user) resumes a session the tracker never saw: a baseline.
    http_totals(http, "k2", 7002, 9000, 9000, "");
    let stats = t.passkey_stats();
    assert_eq!(
        stats,
        vec![
            (
                "alice".to_string(),
                PasskeyCounters {
                    announces: 5,
                    uploaded: 1525,
                    downloaded: 405
                }
            ),
            (
                passkey_tag("k2"),
                PasskeyCounters {
                    announces: 1,
                    uploaded: 0,
                    downloaded: 0
                }
            ),
        ]
    );
    // The stats endpoint shows the same.
    let body = stats_passkeys(&t);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["user"], "alice");
    assert_eq!(v[0]["uploaded"], 1525);
    assert_eq!(v[1]["announces"], 1);
    // A reload keeps the counters of keys that stay.
    dir.write("keys.txt", "k1 alice\nk2 bob\n");
    t.reload_access().unwrap();
    let stats = t.passkey_stats();
    assert_eq!(stats[0].0, "alice");
    assert_eq!(stats[0].1.uploaded, 1500, "k3 is gone, k1 kept");
    assert_eq!(stats[1].0, "bob");
    assert_eq!(stats[1].1.announces, 1);
    // A refused announce counts nothing.
    let before = t.passkey_stats();
    let mut c = Client::new(t.udp_addrs()[0]);
    assert!(udp_announce(&mut c, hash(7), "/announce/k3").is_err());
    assert_eq!(t.passkey_stats(), before);
    t.stop().unwrap();
}

#[test]
fn passkeys_endpoint_never_prints_a_key() {
    let dir = TempDir::new("keyleak");
    let path = dir.write("keys.txt", "k1 alice\nSecretKeyNoUser\n");
    let t = tracker_with(move |c| c.access.passkeys_file = path);
    let http = t.http_addrs()[0];
    http_totals(http, "SecretKeyNoUser", 7003, 0, 0, "&event=started");
    http_totals(http, "k1", 7004, 0, 0, "&event=started");
    let body = stats_passkeys(&t);
    assert!(!body.contains("SecretKeyNoUser"), "a key in clear: {body}");
    assert!(!body.contains("k1"), "a key in clear: {body}");
    let tag = passkey_tag("SecretKeyNoUser");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["user"], "alice");
    assert_eq!(v[0]["announces"], 1);
    assert_eq!(v[1]["user"], tag.as_str(), "{body}");
    assert_eq!(v[1]["announces"], 1);
    t.stop().unwrap();
}
