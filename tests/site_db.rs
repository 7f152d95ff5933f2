//! End-to-end tests of `[access.database]` against a real PostgreSQL
//! server (a throwaway cluster per test, see `util::postgres`): the lists
//! loaded, a NOTIFY honoured within a second, an outage ridden out (logged
//! and counted) and recovered from, bad rows named, the traffic written
//! back exactly once across an outage, and start-up with the database down
//! (from the cache, or a clear refusal). SKIPPED without PostgreSQL, unless
//! CI is set.

mod util;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use swarmd::protocol::{AnnounceEvent, InfoHash};
use swarmd::{Config, Tracker};
use util::daemon::Daemon;
use util::postgres::Postgres;
use util::{hash, tracker_with, Client};

/// A site: users with passkeys, torrents, their traffic, and a trigger
/// that NOTIFYs `swarmd` when a list changes (the README's example).
const SCHEMA: &str = "
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL,
                    passkey text UNIQUE NOT NULL);
CREATE TABLE torrents (id serial PRIMARY KEY, info_hash bytea UNIQUE NOT NULL);
CREATE TABLE traffic (user_id int PRIMARY KEY REFERENCES users,
                      announces bigint NOT NULL, uploaded bigint NOT NULL,
                      downloaded bigint NOT NULL);
CREATE FUNCTION swarmd_notify() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('swarmd', ''); RETURN NULL; END $$;
CREATE TRIGGER torrents_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON torrents FOR EACH STATEMENT EXECUTE FUNCTION swarmd_notify();
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON users FOR EACH STATEMENT EXECUTE FUNCTION swarmd_notify();
INSERT INTO users (name, passkey) VALUES ('alice', 'k1');
";

const TORRENTS: &str = "SELECT info_hash FROM torrents ORDER BY id";
const PASSKEYS: &str = "SELECT passkey, id FROM users";
const WRITE_BACK: &str = "INSERT INTO traffic VALUES ($1, $2, $3, $4)
  ON CONFLICT (user_id) DO UPDATE SET
    announces = traffic.announces + EXCLUDED.announces,
    uploaded = traffic.uploaded + EXCLUDED.uploaded,
    downloaded = traffic.downloaded + EXCLUDED.downloaded";

fn add_torrent(pg: &Postgres, h: InfoHash) {
    pg.exec(&format!(
        "INSERT INTO torrents (info_hash) VALUES ('\\x{h}')"
    ));
}

/// A cluster with the site's schema and torrent 1 allowed.
fn site(name: &str) -> Option<Postgres> {
    let pg = Postgres::start(name)?;
    pg.exec(SCHEMA);
    add_torrent(&pg, hash(1));
    Some(pg)
}

fn with_database(pg: &Postgres, edit: impl FnOnce(&mut Config)) -> Tracker {
    let url = pg.url();
    tracker_with(|c| {
        c.access.mode = swarmd::access::AccessMode::Allow;
        let db = &mut c.access.database;
        db.url = url;
        db.torrents_query = TORRENTS.into();
        db.passkeys_query = PASSKEYS.into();
        db.listen_channel = "swarmd".into();
        edit(c)
    })
}

/// A UDP announce with passkey `key`: Ok or the error message.
fn announce(c: &mut Client, h: InfoHash, key: &str, totals: (u64, u64)) -> Result<(), String> {
    announce_event(c, h, key, totals, AnnounceEvent::None)
}

fn announce_event(
    c: &mut Client,
    h: InfoHash,
    key: &str,
    (up, down): (u64, u64),
    event: AnnounceEvent,
) -> Result<(), String> {
    let mut req = c.announce_request(h, event, 10);
    req.url_data = format!("/{key}/announce").into_bytes();
    req.uploaded = up;
    req.downloaded = down;
    c.announce_result(req).map(drop)
}

/// Polls `f` until it holds, at most `limit`; returns how long it took.
fn within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

#[test]
fn lists_come_from_the_database_and_a_notify_reloads_them_within_a_second() {
    let Some(pg) = site("lists") else { return };
    let t = with_database(&pg, |_| {});
    let mut c = Client::new(t.udp_addrs()[0]);
    assert_eq!(announce(&mut c, hash(1), "k1", (0, 0)), Ok(()));
    let refused = announce(&mut c, hash(2), "k1", (0, 0));
    assert_eq!(refused, Err("torrent not allowed".to_string()));
    let unknown = announce(&mut c, hash(1), "k2", (0, 0));
    assert_eq!(unknown, Err("unknown passkey".to_string()));

    // A new torrent and a new user: the trigger's NOTIFY reloads at once.
    add_torrent(&pg, hash(2));
    let took = within(Duration::from_secs(1), "torrent 2 allowed", || {
        announce(&mut c, hash(2), "k1", (0, 0)).is_ok()
    });
    eprintln!("NOTIFY honoured after {took:?}");
    pg.exec("INSERT INTO users (name, passkey) VALUES ('bob', 'k2')");
    within(Duration::from_secs(1), "passkey k2 listed", || {
        announce(&mut c, hash(1), "k2", (0, 0)).is_ok()
    });

    // Without a NOTIFY, a reload (SIGHUP's) reads it too.
    pg.exec("ALTER TABLE torrents DISABLE TRIGGER torrents_changed");
    add_torrent(&pg, hash(3));
    t.reload_access().unwrap();
    within(Duration::from_secs(5), "torrent 3 allowed", || {
        announce(&mut c, hash(3), "k1", (0, 0)).is_ok()
    });
    let db = &t.stats().database;
    assert_eq!(db.connected.get(), 1);
    assert!(db.reloads_ok.get() >= 4, "{}", db.reloads_ok.get());
    assert_eq!(db.reloads_failed.get(), 0);
    t.stop().unwrap();
}

/// The number in `metrics` of the line that starts with `series `.
fn metric(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn write_config(path: &Path, url: &str, extra: &str) {
    let text = format!(
        "[udp]\naddresses = [\"127.0.0.1:0\"]\n[http]\naddresses = []\n\
         [stats]\naddress = \"127.0.0.1:0\"\n\
         [access]\nmode = \"allow\"\nreload_interval = 1\n\
         [access.database]\nurl = \"{url}\"\ntorrents_query = \"{TORRENTS}\"\n\
         passkeys_query = \"{PASSKEYS}\"\nlisten_channel = \"swarmd\"\n{extra}"
    );
    std::fs::write(path, text).unwrap();
}

#[test]
fn bad_rows_and_an_outage_keep_the_lists_are_logged_and_counted_and_reloads_resume() {
    let Some(mut pg) = site("outage") else { return };
    let config = pg.path("tracker.toml");
    write_config(&config, &pg.url(), "");
    let mut d = Daemon::start(&config);
    let udp = d.logged_addr("udp");
    let line = d.wait_for("stats endpoint on http://");
    let stats: SocketAddr = line
        .rsplit("http://")
        .next()
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap()
        .parse()
        .unwrap();
    let metrics = || util::stats::get(stats, "/metrics").1;
    let mut c = Client::new(udp);
    assert_eq!(announce(&mut c, hash(1), "k1", (0, 0)), Ok(()));

    // A bad row (19 bytes) beside a good one: neither is taken, and the
    // log names the query, the row and its value.
    pg.exec(&format!(
        "INSERT INTO torrents (info_hash) VALUES ('\\x{}'), ('\\x{}')",
        "ab".repeat(19),
        hash(2)
    ));
    let line = d.wait_for("torrents_query row 2");
    assert!(
        line.contains("keeping the old lists") && line.contains("(19 bytes)"),
        "{line}"
    );
    assert!(metric(&metrics(), "swarmd_access_db_rows_rejected_total").unwrap() >= 1);
    assert!(announce(&mut c, hash(2), "k1", (0, 0)).is_err());
    pg.exec("DELETE FROM torrents WHERE length(info_hash) = 19");
    within(Duration::from_secs(5), "torrent 2 allowed", || {
        announce(&mut c, hash(2), "k1", (0, 0)).is_ok()
    });

    // The database stops: announces go on with the old lists.
    pg.stop();
    d.wait_for("lost the connection");
    assert_eq!(announce(&mut c, hash(1), "k1", (0, 0)), Ok(()));
    assert!(announce(&mut c, hash(3), "k1", (0, 0)).is_err());
    within(Duration::from_secs(10), "failed reloads counted", || {
        let m = metrics();
        metric(&m, "swarmd_access_db_connected") == Some(0)
            && metric(&m, "swarmd_access_db_reloads_total{result=\"failed\"}") >= Some(2)
    });
    let line = d.wait_for("cannot connect");
    assert!(line.contains("keeping the old lists"), "{line}");
    assert_eq!(announce(&mut c, hash(2), "k1", (0, 0)), Ok(()));

    // Back: it reconnects (backoff of at most 30 s) and reloads resume.
    pg.run();
    add_torrent(&pg, hash(3));
    within(
        Duration::from_secs(40),
        "torrent 3 allowed after the outage",
        || announce(&mut c, hash(3), "k1", (0, 0)).is_ok(),
    );
    assert_eq!(metric(&metrics(), "swarmd_access_db_connected"), Some(1));
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(10)).unwrap().success());
}

/// The traffic table's (announces, uploaded, downloaded) of user 1.
fn traffic(pg: &Postgres) -> Option<(i64, i64, i64)> {
    let row = pg
        .client()
        .query_opt(
            "SELECT announces, uploaded, downloaded FROM traffic WHERE user_id = 1",
            &[],
        )
        .unwrap()?;
    Some((row.get(0), row.get(1), row.get(2)))
}

#[test]
fn write_back_sums_equal_the_traffic_also_across_an_outage() {
    let Some(mut pg) = site("write-back") else {
        return;
    };
    let t = with_database(&pg, |c| {
        c.access.database.write_back = WRITE_BACK.into();
        c.access.database.write_back_interval = 1;
    });
    let mut c = Client::new(t.udp_addrs()[0]);
    let started = AnnounceEvent::Started;
    announce_event(&mut c, hash(1), "k1", (0, 0), started).unwrap();
    announce(&mut c, hash(1), "k1", (100, 10)).unwrap();
    announce(&mut c, hash(1), "k1", (250, 30)).unwrap();
    within(Duration::from_secs(10), "first write-back", || {
        traffic(&pg) == Some((3, 250, 30))
    });

    pg.stop();
    announce(&mut c, hash(1), "k1", (400, 50)).unwrap();
    let db = &t.stats().database;
    let failed = db.write_backs_failed.get();
    within(
        Duration::from_secs(10),
        "write-back kept while down",
        || db.write_backs_failed.get() >= failed + 2 && db.write_back_pending_users.get() == 1,
    );
    announce(&mut c, hash(1), "k1", (500, 70)).unwrap();
    pg.run();
    within(
        Duration::from_secs(40),
        "write-back after the outage",
        || traffic(&pg) == Some((5, 500, 70)),
    );
    // Nothing is written twice: more write-backs add nothing.
    let ok = db.write_backs_ok.get();
    announce(&mut c, hash(1), "k1", (600, 70)).unwrap();
    within(Duration::from_secs(10), "one more write-back", || {
        db.write_backs_ok.get() > ok && db.write_back_pending_users.get() == 0
    });
    assert_eq!(traffic(&pg), Some((6, 600, 70)));
    // A stop writes the last traffic back.
    announce(&mut c, hash(1), "k1", (650, 75)).unwrap();
    t.stop().unwrap();
    assert_eq!(traffic(&pg), Some((7, 650, 75)));
}

#[test]
fn a_start_with_the_database_down_serves_the_cached_lists() {
    let Some(mut pg) = site("cache") else { return };
    let cache = pg.path("access-cache.json");
    let cached = cache.clone();
    let t = with_database(&pg, move |c| c.access.database.cache = cached);
    t.stop().unwrap();
    assert!(cache.exists(), "written after the load");

    pg.stop();
    let cached = cache.clone();
    let t = with_database(&pg, move |c| c.access.database.cache = cached);
    let mut c = Client::new(t.udp_addrs()[0]);
    assert_eq!(announce(&mut c, hash(1), "k1", (0, 0)), Ok(()));
    assert!(announce(&mut c, hash(2), "k1", (0, 0)).is_err());
    assert!(announce(&mut c, hash(1), "k2", (0, 0)).is_err());
    assert_eq!(t.stats().database.connected.get(), 0);

    // The database back, the lists follow it.
    pg.run();
    add_torrent(&pg, hash(2));
    within(Duration::from_secs(40), "torrent 2 allowed", || {
        announce(&mut c, hash(2), "k1", (0, 0)).is_ok()
    });
    t.stop().unwrap();
}

#[test]
fn a_start_with_the_database_down_and_no_cache_exits_with_the_reason() {
    // Nothing listens on the port: no server is needed.
    let dir = util::daemon::temp_dir("site-db-down");
    let config = dir.join("tracker.toml");
    let port = util::postgres::free_port();
    let url = format!("host=127.0.0.1 port={port} user=swarmd dbname=site");
    write_config(&config, &url, "cache = \"missing-cache.json\"\n");
    let mut d = Daemon::start(&config);
    let status = d.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(!status.success());
    let log = d.rest_of_log().join("\n");
    assert!(
        log.contains(&format!(
            "cannot connect to postgresql 127.0.0.1:{port}/site"
        )) && log.contains("no cached lists to start from")
            && log.contains("missing-cache.json does not exist"),
        "{log}"
    );

    // --check-config does not ask the database, but checks the table.
    let check = |path: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_swarmd"))
            .arg("--check-config")
            .arg(path)
            .output()
            .unwrap()
    };
    assert!(check(&config).status.success());
    write_config(&config, &url, "connect_timeout = 0\n");
    let out = check(&config);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("access.database.connect_timeout"), "{e}");
    let bad = config.with_file_name("bad.toml");
    write_config(&bad, &url, "password_file = \"/nonexistent/pw\"\n");
    let out2 = check(&bad);
    assert!(!out2.status.success());
    let e = String::from_utf8_lossy(&out2.stderr);
    assert!(e.contains("/nonexistent/pw"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
