//! The service side: the stats endpoint over real TCP, and the binary run as
//! a service would be (sd_notify on a test NOTIFY_SOCKET, SIGHUP reloads,
//! SIGTERM stops).

mod util;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use swarmd::protocol::AnnounceEvent;
use util::daemon::{temp_dir, Daemon};
use util::stats::{get, request};
use util::{announce_interval, can_run, hash, python_imports, tracker_with, Client, TIMEOUT};

/// Parses Prometheus text with the reference Python parser and returns
/// "name{labels} value" lines, sorted (the parser's view, not ours).
fn parse_prometheus(text: &str) -> Vec<String> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out.append(f"{s.name}{{{labels}}} {s.value}")
print("\n".join(sorted(out)))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition (pip install prometheus-client):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn sample(lines: &[String], prefix: &str) -> f64 {
    let line = lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no sample {prefix}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn metrics_parse_and_counters_rise() {
    if !can_run(
        python_imports("python3", "prometheus_client"),
        "prometheus-client is missing on CI",
        "pip install prometheus-client to run the /metrics parse test",
    ) {
        return;
    }
    let t = tracker_with(|_| {});
    let stats = t.stats_addr().unwrap();
    let (status, before) = get(stats, "/metrics");
    assert_eq!(status, 200);
    let before = parse_prometheus(&before);
    let key = r#"swarmd_requests_total{family="ipv4",kind="announce",protocol="udp"}"#;
    assert_eq!(sample(&before, key), 0.0);
    let mut c = Client::new(t.udp_addrs()[0]);
    c.announce(hash(1), AnnounceEvent::Started, 0);
    let after = parse_prometheus(&get(stats, "/metrics").1);
    assert_eq!(sample(&after, key), 1.0);
    assert_eq!(sample(&after, "swarmd_torrents{"), 1.0);
    assert_eq!(sample(&after, "swarmd_seeders{"), 1.0);
    assert_eq!(sample(&after, r#"swarmd_peers{family="ipv4"}"#), 1.0);
    t.stop().unwrap();
}

#[test]
fn stats_json_torrent_and_health_routes() {
    let t = tracker_with(|c| c.swarm.cleaning_interval = swarmd::config::Positive(1));
    let stats = t.stats_addr().unwrap();
    let mut a = Client::new(t.udp_addrs()[0]);
    let mut b = Client::new(t.udp_addrs()[0]);
    a.announce(hash(7), AnnounceEvent::Started, 0);
    b.announce(hash(7), AnnounceEvent::Started, 10);
    b.announce(hash(8), AnnounceEvent::Started, 10);

    let (status, body) = get(stats, "/stats");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["swarm"]["torrents"], 2);
    assert_eq!(v["protocols"]["udp_ipv4"]["requests_announce"], 3);
    assert_eq!(v["healthy"], true);

    let (status, body) = get(stats, &format!("/torrents/{}", hash(7)));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["seeders"].as_u64(), v["leechers"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(get(stats, "/torrents/xyz").0, 400);

    // The top list is made by the cleaning pass (every second here): wait
    // for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let top = loop {
        let v: serde_json::Value = serde_json::from_str(&get(stats, "/torrents?top=1").1).unwrap();
        if !v.as_array().unwrap().is_empty() || Instant::now() > deadline {
            break v;
        }
        std::thread::yield_now();
    };
    assert_eq!(top.as_array().unwrap().len(), 1);
    assert_eq!(top[0]["info_hash"], hash(7).to_string());

    assert_eq!(get(stats, "/healthz"), (200, "ok\n".into()));
    let post = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(request(stats, post, TIMEOUT).unwrap().0, 405);
    assert_eq!(get(stats, "/nothing").0, 404);
    t.stop().unwrap();
}

fn config_text(interval: u32) -> String {
    format!(
        "[udp]\naddresses = [\"127.0.0.1:0\"]\n[http]\naddresses = []\n[stats]\naddress = \"\"\n[announce]\ninterval = {interval}\nmin_interval = 10\n"
    )
}

#[test]
fn sd_notify_ready_and_stopping_then_exit_0() {
    let dir = temp_dir("notify");
    let config = dir.join("tracker.toml");
    std::fs::write(&config, config_text(1800)).unwrap();
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cmd = Daemon::command(&config);
    cmd.env("NOTIFY_SOCKET", &sock_path);
    let mut d = Daemon::spawn(cmd);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 arrives");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    // Ready means bound: it answers at once.
    let addr = d.logged_addr("udp");
    assert_eq!(announce_interval(addr, hash(3)), 1800);
    d.signal(libc::SIGTERM);
    let n = sock.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_applies_a_good_file_and_keeps_settings_on_a_bad_one() {
    let dir = temp_dir("sighup");
    let config = dir.join("tracker.toml");
    std::fs::write(&config, config_text(1800)).unwrap();
    let mut d = Daemon::start(&config);
    let addr = d.logged_addr("udp");
    assert_eq!(announce_interval(addr, hash(3)), 1800);

    std::fs::write(&config, config_text(1000)).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("SIGHUP: reloaded");
    assert_eq!(announce_interval(addr, hash(3)), 1000);

    std::fs::write(&config, "[announce]\ninterval = \"soon\"\n").unwrap();
    d.signal(libc::SIGHUP);
    let line = d.wait_for("keeping the running settings");
    assert!(
        line.contains("tracker.toml:2"),
        "names file and line: {line}"
    );
    assert_eq!(announce_interval(addr, hash(3)), 1000);

    d.signal(libc::SIGINT);
    assert!(d.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the binary to its end with `args`: exit code, stdout, stderr.
fn swarmd(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_swarmd"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn print_config_with_a_port_has_it_in_both_address_lists() {
    let (code, out, _) = swarmd(&["--print-config", "--port", "7070"]);
    assert_eq!(code, Some(0));
    let lists: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("addresses = "))
        .collect();
    assert_eq!(
        lists,
        vec![r#"addresses = ["0.0.0.0:7070", "[::]:7070"]"#; 2],
        "[udp] and [http]"
    );
    let printed = swarmd::Config::parse(&out, "printed").unwrap();
    assert_eq!(printed, swarmd::Config::default().with_port(7070));
    // The order does not matter, and -p is the short form.
    let (_, again, _) = swarmd(&["-p", "7070", "--print-config"]);
    assert_eq!(again, out);
}

#[test]
fn a_bad_port_is_a_usage_error() {
    for bad in ["x", "70000", "-1", ""] {
        let (code, out, err) = swarmd(&["--port", bad, "--print-config"]);
        assert_eq!(code, Some(2), "--port {bad:?}: {err}");
        assert!(out.is_empty(), "--port {bad:?} printed {out}");
        assert!(
            err.contains("a port is a number from 0 to 65535"),
            "--port {bad:?}: {err}"
        );
    }
    let (code, _, err) = swarmd(&["--port"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--port"), "{err}");
    let (code, out, _) = swarmd(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("swarmd --port N"), "{out}");
}

#[test]
fn port_0_overrides_the_file_and_serves_on_free_ports() {
    let dir = temp_dir("port");
    let config = dir.join("tracker.toml");
    std::fs::write(
        &config,
        "[udp]\naddresses = [\"127.0.0.1:6969\"]\n[http]\naddresses = [\"127.0.0.1:6969\"]\n[stats]\naddress = \"\"\n",
    )
    .unwrap();
    let mut cmd = Daemon::command(&config);
    cmd.args(["--port", "0"]);
    let mut d = Daemon::spawn(cmd);
    let udp = d.logged_addr("udp");
    let http = d.logged_addr("http");
    // Port 0 gets a port from the kernel's ephemeral range, never 6969.
    for addr in [udp, http] {
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
        assert!(addr.port() != 0 && addr.port() != 6969, "{addr}");
    }
    assert_eq!(announce_interval(udp, hash(3)), 1800);
    let mut h = util::http::HttpClient::connect(http);
    assert_eq!(h.get("/scrape").status, 200);
    d.signal(libc::SIGTERM);
    assert!(d.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Root, to test the switch of user; SKIPPED otherwise (failed under CI:
/// .ci/run runs as root, to install packages, so CI always has it).
fn can_switch_user() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    can_run(
        root,
        "CI must run the tests as root, to test the switch of user",
        "run the tests as root to test the switch of user",
    )
}

#[test]
fn started_as_root_it_switches_to_the_configured_user() {
    if !can_switch_user() {
        return;
    }
    let dir = temp_dir("privileges");
    let config = dir.join("tracker.toml");
    std::fs::write(
        &config,
        format!("{}[privileges]\nuser = \"nobody\"\n", config_text(1800)),
    )
    .unwrap();
    let mut d = Daemon::start(&config);
    let addr = d.logged_addr("udp");
    d.wait_for("running as user \"nobody\"");
    // Every thread, not just the main one.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.child.id())).unwrap();
    let mut threads = 0;
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
        assert_eq!(uids, vec!["65534"; 4], "real, effective, saved and fs uid");
        threads += 1;
    }
    assert!(threads >= 3, "main, socket and swarm threads at least");
    // Still serving, and still able to stop in order.
    assert_eq!(announce_interval(addr, hash(3)), 1800);
    d.signal(libc::SIGTERM);
    assert!(d.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGHUP used to say nothing of `[stats]`, `[privileges]` and
/// `access.reload_interval`: a changed key that only a restart applies must
/// be named, every one of them, and a key that reload applies must not be.
#[test]
fn reload_names_every_key_that_needs_a_restart() {
    use swarmd::config::{Dispatch, LogLevel, Positive};
    let mut base = swarmd::Config::default();
    base.udp.addresses = vec!["127.0.0.1:0".parse().unwrap()];
    base.http.addresses = base.udp.addresses.clone();
    base.stats.address = "127.0.0.1:0".into();
    let t = swarmd::start(&base).unwrap();
    // The running settings again: nothing to name.
    assert_eq!(t.reload(&base), Vec::<&str>::new());

    // Every key of every table, so that a new key fails to compile here
    // until it is sorted into one of the two lists below.
    let swarmd::Config {
        udp:
            swarmd::config::UdpConfig {
                addresses: _,
                recv_buffer_size: _,
                send_buffer_size: _,
                max_scrape_torrents: _,
            },
        http:
            swarmd::config::HttpConfig {
                addresses: _,
                max_connections: _,
                max_head_size: _,
                idle_timeout: _,
                request_timeout: _,
                max_connections_per_ip: _,
                real_ip_header: _,
                trusted_proxies: _,
                allow_ip_param: _,
            },
        workers:
            swarmd::config::WorkersConfig {
                socket_workers: _,
                swarm_workers: _,
                channel_capacity: _,
                dispatch: _,
            },
        announce:
            swarmd::config::AnnounceConfig {
                interval: _,
                min_interval: _,
                default_numwant: _,
                max_numwant: _,
            },
        swarm:
            swarmd::config::SwarmTable {
                peer_timeout: _,
                cleaning_interval: _,
                max_peers_per_torrent: _,
                max_peers_per_address: _,
                max_torrents: _,
                peer_ids: _,
                prefer_same_subnet: _,
                subnet_prefix_v4: _,
                subnet_prefix_v6: _,
            },
        access:
            swarmd::access::AccessConfig {
                mode: _,
                info_hash_file: _,
                passkeys_file: _,
                reload_interval: _,
                token: _,
                database: _,
            },
        stats:
            swarmd::config::StatsConfig {
                address: _,
                interval: _,
                top_torrents: _,
                events_interval_ms: _,
                max_event_subscribers: _,
                // Not in tracker.toml: a reload never changes it.
                events_heartbeat: _,
            },
        state:
            swarmd::snapshot::StateConfig {
                path: _,
                interval: _,
            },
        privileges: swarmd::config::PrivilegesConfig { user: _, group: _ },
        log: swarmd::config::LogConfig { level: _ },
        cluster: _,
    } = &base;

    type Edit = fn(&mut swarmd::Config);
    let restart: [(&str, Edit); 22] = [
        ("udp.addresses", |c| c.udp.addresses.clear()),
        ("udp.recv_buffer_size", |c| c.udp.recv_buffer_size += 1),
        ("udp.send_buffer_size", |c| c.udp.send_buffer_size += 1),
        ("http.addresses", |c| c.http.addresses.clear()),
        ("workers.socket_workers", |c| {
            c.workers.socket_workers = 2.try_into().unwrap()
        }),
        ("workers.swarm_workers", |c| {
            c.workers.swarm_workers = 2.try_into().unwrap()
        }),
        ("workers.channel_capacity", |c| {
            c.workers.channel_capacity = Positive(7)
        }),
        ("workers.dispatch", |c| {
            c.workers.dispatch = Dispatch::Channel
        }),
        ("swarm.cleaning_interval", |c| {
            c.swarm.cleaning_interval = Positive(7)
        }),
        ("swarm.peer_ids", |c| c.swarm.peer_ids = true),
        ("access.reload_interval", |c| c.access.reload_interval = 7),
        ("access.database", |c| {
            c.access.database.write_back_interval = 7
        }),
        ("stats.address", |c| c.stats.address = String::new()),
        ("stats.interval", |c| c.stats.interval = Positive(7)),
        ("stats.top_torrents", |c| c.stats.top_torrents = 7),
        ("stats.events_interval_ms", |c| {
            c.stats.events_interval_ms = 70
        }),
        ("stats.max_event_subscribers", |c| {
            c.stats.max_event_subscribers = 7
        }),
        ("state.path", |c| c.state.path = "elsewhere.bin".into()),
        ("state.interval", |c| c.state.interval = 7),
        ("privileges.user", |c| c.privileges.user = "nobody".into()),
        ("privileges.group", |c| {
            c.privileges.group = "nogroup".into()
        }),
        ("cluster", |c| {
            c.cluster = Some(swarmd::cluster::ClusterConfig {
                node: "x".into(),
                secret_file: "s".into(),
                ..Default::default()
            })
        }),
    ];
    for (key, edit) in restart {
        let mut changed = base.clone();
        edit(&mut changed);
        assert_eq!(t.reload(&changed), vec![key], "{key}");
        // Still not applied: a second SIGHUP names it again.
        assert_eq!(t.reload(&changed), vec![key], "{key} again");
        // And back, so each case changes one key.
        t.reload(&base);
    }

    // Applied by `reload` itself, or (`[access]` files and mode, `[log]`)
    // by the SIGHUP handler before it.
    let applied: [Edit; 25] = [
        |c| c.udp.max_scrape_torrents = Positive(7),
        |c| c.http.max_connections = Positive(7),
        |c| c.http.max_connections_per_ip = Positive(7),
        |c| c.http.request_timeout = Positive(7),
        |c| c.http.max_head_size = Positive(700),
        |c| c.http.idle_timeout = Positive(7),
        |c| {
            c.http.real_ip_header = "X-Real-IP".into();
            c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        },
        |c| c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()],
        |c| c.http.allow_ip_param = true,
        |c| c.announce.interval = Positive(1000),
        |c| c.announce.min_interval = Positive(7),
        |c| c.announce.default_numwant = 7,
        |c| c.announce.max_numwant = 70,
        |c| c.swarm.peer_timeout = Positive(7000),
        |c| c.swarm.max_peers_per_torrent = 7,
        |c| c.swarm.max_peers_per_address = 7,
        |c| c.swarm.max_torrents = 7,
        |c| c.swarm.prefer_same_subnet = true,
        |c| c.swarm.subnet_prefix_v4 = 16,
        |c| c.swarm.subnet_prefix_v6 = 48,
        |c| c.access.mode = swarmd::access::AccessMode::Deny,
        |c| c.access.info_hash_file = "list.txt".into(),
        |c| c.access.passkeys_file = "keys.txt".into(),
        |c| c.access.token.leeway = 7,
        |c| c.log.level = LogLevel(log::LevelFilter::Debug),
    ];
    for (i, edit) in applied.into_iter().enumerate() {
        let mut changed = base.clone();
        edit(&mut changed);
        assert_eq!(t.reload(&changed), Vec::<&str>::new(), "applied key {i}");
        t.reload(&base);
    }
    t.stop().unwrap();
}

/// The snapshot directory is checked again once the user is switched: root
/// could write where the user cannot, and every snapshot after would fail.
#[test]
fn as_the_configured_user_it_writes_its_snapshots_or_refuses_to_start() {
    if !can_switch_user() {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = temp_dir("privileges-state");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    let config = dir.join("tracker.toml");
    let text = format!(
        "{}[privileges]\nuser = \"nobody\"\n[state]\npath = \"{}\"\n",
        config_text(1800),
        state.join("swarmd.state").display()
    );
    std::fs::write(&config, text).unwrap();

    // Root's directory: the user cannot write there, so no start.
    let mut d = Daemon::start(&config);
    let status = d.wait_exit(Duration::from_secs(10)).expect("it exits");
    assert!(!status.success());
    let log = d.rest_of_log().join("\n");
    assert!(
        log.contains("as user \"nobody\"") && log.contains("cannot write in"),
        "{log}"
    );

    // The user's own directory: snapshots are written, as that user.
    let chown = Command::new("chown")
        .args(["nobody", state.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chown.success());
    let mut d = Daemon::start(&config);
    let addr = d.logged_addr("udp");
    d.wait_for("running as user \"nobody\"");
    let mut c = Client::new(addr);
    c.announce(hash(7), AnnounceEvent::Started, 100);
    d.signal(libc::SIGTERM);
    assert!(d.child.wait().unwrap().success());
    let file = std::fs::metadata(state.join("swarmd.state")).unwrap();
    assert_eq!(file.uid(), 65534, "written by nobody");
    let mut d = Daemon::start(&config);
    let addr = d.logged_addr("udp");
    assert_eq!(Client::new(addr).scrape(&[hash(7)])[0].leechers, 1);
    d.signal(libc::SIGTERM);
    assert!(d.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
