//! A real BitTorrent client (libtorrent, through its Python binding) finds
//! another one through swarmd and downloads a file from it, over UDP and
//! HTTP on 127.0.0.1 and ::1, also with a passkey or a signed token in its
//! tracker URL. Needs Debian's python3-libtorrent (`.ci/run` installs it);
//! the script bounds itself to 60 seconds.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use jsonwebtoken::Algorithm;
use serde_json::json;
use swarmd::access::TokenAlgorithm;
use swarmd::protocol::InfoHash;
use swarmd::stats::{Counter, FamilyCounters};
use swarmd::Tracker;
use util::daemon::temp_dir;
use util::tokens::{generate, hs256, now, with_tokens, write_jwks, Signer, AUDIENCE, ISSUER};

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

/// Runs the script with `url`, whose `{token}` is replaced by
/// `issue(info hash)` once the script has made its torrent; `refusal`:
/// the tracker must refuse both peers. Returns the script's stdout.
fn run_with_token(url: &str, issue: impl FnOnce(InfoHash) -> String, refusal: bool) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/libtorrent_swarm.py"
    );
    let mut args = vec![script, url, "127.0.0.1"];
    if refusal {
        args.push("--expect-refusal");
    }
    let mut child = Command::new("/usr/bin/python3")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (install python3-libtorrent)");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let hex = line.trim().strip_prefix("info_hash ");
    let hash = hex.and_then(InfoHash::from_hex);
    if let Some(hash) = hash {
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", issue(hash)).unwrap();
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = line + &rest;
    assert!(
        hash.is_some() && out.status.success(),
        "libtorrent swarm via {url} (refusal expected: {refusal}) failed:\n\
         stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A token for `hash` with no claim beyond those swarmd checks, so that it
/// is as short as it can be (see the UDP test below).
fn short_token(signer: &Signer, hash: InfoHash) -> String {
    signer.sign(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 120, "infohash": hash.to_string(),
    }))
}

fn counted(t: &Tracker, pick: fn(&FamilyCounters) -> &Counter) -> (u64, u64) {
    let (u4, u6) = t.stats().udp_total(pick);
    let (h4, h6) = t.stats().http_total(pick);
    (u4 + u6, h4 + h6)
}

/// Software distribution over HTTP: the registry's token (RS256) in the
/// tracker URL, `?jwt=`. The peers find each other and the file comes
/// through; a token for another torrent, in the same URL, gets both peers
/// refused and nothing moves.
///
/// Over UDP the same token can't work with libtorrent 2.0.8: it sends the
/// URL's path and query as one BEP 41 URL-data option cut at 255 bytes (no
/// second option), and an RS256 signature alone is 342 characters. The cut
/// token is refused; this pins that, so a libtorrent that sends the whole
/// URL data shows up here.
#[test]
fn libtorrent_with_an_rs256_token_over_http() {
    if !libtorrent_available() {
        return;
    }
    let dir = temp_dir("real-token-rs256");
    let rs = generate(&dir, Algorithm::RS256, "registry-1");
    let jwks = dir.join("keys.json");
    write_jwks(&jwks, &[&rs]);
    let t = util::tracker_with(with_tokens(TokenAlgorithm::RS256, jwks));
    let (udp, http) = (t.udp_addrs()[0], t.http_addrs()[0]);
    let url = format!("http://{http}/announce?jwt={{token}}");
    run_with_token(&url, |h| rs.token(&[h]), false);
    let (_, announces) = counted(&t, |f| &f.responses_announce);
    assert!(announces >= 2, "{announces}");
    let errors = counted(&t, |f| &f.responses_error);
    assert_eq!(errors, (0, 0), "no announce was refused");

    // libtorrent 2.0.8 reports the refusal with an empty failure reason
    // (`tracker sent a failure message ""`): the counters say why.
    run_with_token(&url, |_| rs.token(&[util::hash(7)]), true);
    assert!(counted(&t, |f| &f.errors_token_torrent).1 >= 2);
    assert_eq!(counted(&t, |f| &f.responses_announce).1, announces);

    let url = format!("udp://{udp}/announce?jwt={{token}}");
    run_with_token(&url, |h| short_token(&rs, h), true);
    let (cut, _) = counted(&t, |f| &f.errors_token_signature);
    let (unreadable, _) = counted(&t, |f| &f.errors_token_invalid);
    assert!(cut + unreadable >= 2, "{cut} {unreadable}");
    t.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Software distribution over UDP: an HS256 token short enough for the
/// 255 bytes libtorrent sends (see above) goes in the BEP 41 URL data of
/// `udp://…/announce?jwt=TOKEN`; the file comes through, and a token for
/// another torrent gets both peers refused.
#[test]
fn libtorrent_with_an_hs256_token_over_udp() {
    if !libtorrent_available() {
        return;
    }
    let dir = temp_dir("real-token-hs256");
    let (hs, secret) = hs256(&dir);
    let t = util::tracker_with(with_tokens(TokenAlgorithm::HS256, secret));
    let udp = t.udp_addrs()[0];
    let url = format!("udp://{udp}/announce?jwt={{token}}");
    let issue = |h| {
        let token = short_token(&hs, h);
        let url_data = "/announce?jwt=".len() + token.len();
        assert!(url_data <= 255, "{url_data} bytes: libtorrent would cut it");
        token
    };
    run_with_token(&url, issue, false);
    let (announces, _) = counted(&t, |f| &f.responses_announce);
    assert!(announces >= 2, "{announces}");
    let errors = counted(&t, |f| &f.responses_error);
    assert_eq!(errors, (0, 0), "no announce was refused");

    run_with_token(&url, |_| issue(util::hash(7)), true);
    assert!(counted(&t, |f| &f.errors_token_torrent).0 >= 2);
    assert_eq!(counted(&t, |f| &f.responses_announce).0, announces);
    t.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
