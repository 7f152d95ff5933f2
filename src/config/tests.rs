//! The configuration's tests: the shipped tracker.toml is the defaults,
//! bad files are refused with file, line and reason, and overrides.

use super::*;

#[test]
fn shipped_file_equals_defaults() {
    let parsed = Config::parse(DEFAULT_CONFIG_TOML, "tracker.toml").unwrap();
    assert_eq!(parsed, Config::default());
}

/// The swarm's own default said 100 peers at most, the config's 200: a
/// bench or test on `SwarmConfig::default()` ran another tracker than
/// the one shipped.
#[test]
fn swarm_defaults_are_the_config_defaults() {
    let from_config = Config::default().swarm_config();
    let own = crate::swarm::SwarmConfig::default();
    assert_eq!(own.max_numwant, from_config.max_numwant);
    assert_eq!(own, from_config);
}

#[test]
fn with_port_moves_every_address_and_keeps_off_off() {
    let c = Config::default().with_port(7070);
    let both: Vec<SocketAddr> = vec![
        "0.0.0.0:7070".parse().unwrap(),
        "[::]:7070".parse().unwrap(),
    ];
    assert_eq!(c.udp.addresses, both);
    assert_eq!(c.http.addresses, both);
    assert_eq!(c.stats, Config::default().stats, "the stats endpoint stays");

    let mut c = Config::default();
    c.udp.addresses = vec![
        "127.0.0.1:6969".parse().unwrap(),
        "127.0.0.1:6970".parse().unwrap(),
        "[::1]:6969".parse().unwrap(),
    ];
    c.http.addresses.clear();
    let c = c.with_port(0);
    assert_eq!(
        c.udp.addresses,
        vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()],
        "listed once"
    );
    assert!(c.http.addresses.is_empty(), "HTTP stays off");
    c.check().unwrap();
}

#[test]
fn printed_defaults_with_a_port_are_the_defaults_with_that_port() {
    for port in [0, 1, 7070, 65535] {
        let text = Config::default_toml_with_port(port);
        let parsed = Config::parse(&text, "printed").unwrap();
        assert_eq!(parsed, Config::default().with_port(port));
        assert_eq!(
            text.lines().filter(|l| l.starts_with('#')).count(),
            DEFAULT_CONFIG_TOML
                .lines()
                .filter(|l| l.starts_with('#'))
                .count(),
            "comments kept"
        );
    }
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(Config::parse("", "x").unwrap(), Config::default());
}

fn err(text: &str) -> String {
    Config::parse(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn unknown_key_names_file_and_line() {
    let e = err("[udp]\nrecv_buffer_size = 1\nbogus = 3\n");
    assert!(e.starts_with("t.toml:3: "), "{e}");
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn wrong_type_and_bad_values() {
    let e = err("\n[workers]\nsocket_workers = \"two\"\n");
    assert!(e.starts_with("t.toml:3: "), "{e}");
    let e = err("[workers]\n\nswarm_workers = 0\n");
    assert!(e.starts_with("t.toml:3: "), "{e}");
    let e = err("[announce]\ninterval = -5\n");
    assert!(
        e.starts_with("t.toml:2: ") && e.contains("out of range"),
        "{e}"
    );
    let e = err("[log]\nlevel = \"loud\"\n");
    assert!(
        e.starts_with("t.toml:2: ") && e.contains("unknown log level"),
        "{e}"
    );
    let e = err("[udp]\naddresses = [\"nonsense\"]\n");
    assert!(e.starts_with("t.toml:2: "), "{e}");
    let e = err("[unknown_table]\n");
    assert!(e.starts_with("t.toml:1: "), "{e}");
}

#[test]
fn cross_key_checks() {
    let e = err("[swarm]\npeer_timeout = 10\n[announce]\ninterval = 20\n");
    assert!(e.contains("peer_timeout"), "{e}");
    let e = err("[announce]\ndefault_numwant = 68\n");
    assert!(e.contains("IPv6 UDP reply"), "{e}");
    let v4_only = "[udp]\naddresses = [\"0.0.0.0:6969\"]\n[announce]\ndefault_numwant = 68\n";
    assert_eq!(
        Config::parse(v4_only, "t")
            .unwrap()
            .announce
            .default_numwant,
        68
    );
    for bad in ["subnet_prefix_v4 = 33", "subnet_prefix_v6 = 129"] {
        let e = err(&format!("[swarm]\n{bad}\n"));
        assert!(e.contains("at most 32") && e.contains("at most 128"), "{e}");
    }
    let edge = "[swarm]\nprefer_same_subnet = true\nsubnet_prefix_v4 = 32\nsubnet_prefix_v6 = 0\n";
    assert!(Config::parse(edge, "t").unwrap().swarm.prefer_same_subnet);
}

/// Found by the `config` fuzz target: a form feed in a comment made toml
/// fail with an empty message, and the error read "t.toml:2: ".
#[test]
fn syntax_error_without_message_still_gives_a_reason() {
    let e = err("[udp]\n# a\x0ccomment\n");
    assert_eq!(e, "t.toml:2: invalid TOML syntax");
}

#[test]
fn events_keys_are_checked_and_the_heartbeat_is_not_a_key() {
    let c = Config::default();
    assert_eq!(c.stats.events_interval_ms, 1000, "one round a second");
    assert_eq!(c.stats.max_event_subscribers, 0, "off by default");
    for bad in [0, 9, 60_001] {
        let e = err(&format!("[stats]\nevents_interval_ms = {bad}\n"));
        assert!(
            e.contains("events_interval_ms") && e.contains("10 to 60000"),
            "{e}"
        );
    }
    let c = Config::parse(
        "[stats]\nevents_interval_ms = 250\nmax_event_subscribers = 0\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        (c.stats.events_interval_ms, c.stats.max_event_subscribers),
        (250, 0)
    );
    let e = err("[stats]\nevents_heartbeat = 1\n");
    assert!(e.contains("events_heartbeat"), "{e}");
}

#[test]
fn a_cluster_table_parses_and_bad_names_are_refused() {
    let c = Config::parse(
        "[cluster]\nnode = \"tracker-1\"\nsecret_file = \"/etc/swarmd/cluster.secret\"\n",
        "t.toml",
    )
    .unwrap();
    let cluster = c.cluster.unwrap();
    assert_eq!(cluster.url, "nats://127.0.0.1:4222");
    assert_eq!(cluster.subject, "swarmd");
    assert!(Config::default().cluster.is_none(), "off by default");
    for (table, needle) in [
        ("node = \"a.b\"\nsecret_file = \"s\"", "cluster.node"),
        ("node = \"a\"", "cluster.secret_file"),
        (
            "node = \"a\"\nsecret_file = \"s\"\nsubject = \"x.*\"",
            "cluster.subject",
        ),
        (
            "node = \"a\"\nsecret_file = \"s\"\nurl = \"http://x\"",
            "cluster.url",
        ),
        (
            "node = \"a\"\nsecret_file = \"s\"\nqueue = 0",
            "cluster.queue",
        ),
    ] {
        let e = Config::parse(&format!("[cluster]\n{table}\n"), "t.toml").unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn a_cluster_secret_can_be_a_systemd_credential() {
    let mut c = crate::cluster::ClusterConfig {
        node: "a".into(),
        secret_file: "credential:cluster-secret".into(),
        ..Default::default()
    };
    assert!(c
        .resolve_credentials(None)
        .unwrap_err()
        .contains("CREDENTIALS_DIRECTORY"));
    c.resolve_credentials(Some("/run/credentials/swarmd.service".as_ref()))
        .unwrap();
    assert_eq!(
        c.secret_file,
        "/run/credentials/swarmd.service/cluster-secret"
    );
    c.secret_file = "credential:a/b".into();
    assert!(c.resolve_credentials(Some("/x".as_ref())).is_err());
}
