//! The binary as systemd runs it: log lines with syslog priorities when
//! stderr is journald's stream, `--check-config` reading every file the
//! configuration names, and secret files from `$CREDENTIALS_DIRECTORY`.
//! (A real systemd runs the unit in `systemd/boot-check.sh`.)

mod util;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use util::daemon::temp_dir;

const CONFIG: &str =
    "[udp]\naddresses = [\"127.0.0.1:0\"]\n[http]\naddresses = []\n[stats]\naddress = \"\"\n";

/// swarmd on `config`, its stderr a unix stream socket as journald gives a
/// service, and `JOURNAL_STREAM` set to `journal_stream(dev, inode)` of that
/// socket. Returns the child and its stderr lines.
fn run_on_a_stream(
    config: &Path,
    journal_stream: impl Fn(u64, u64) -> String,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let meta = std::fs::File::from(std::os::fd::OwnedFd::from(theirs.try_clone().unwrap()))
        .metadata()
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_swarmd"))
        .args(["--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env("JOURNAL_STREAM", journal_stream(meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(ours).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_for(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {needle:?}; saw:\n{}", seen.join("\n")),
        }
    }
}

/// A bad file on SIGHUP: swarmd warns, and keeps running.
fn warn_by_a_bad_reload(child: &std::process::Child, config: &Path) {
    std::fs::write(config, "[announce]\ninterval = \"soon\"\n").unwrap();
    // SAFETY: kill has no memory effects; the pid is our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
}

#[test]
fn under_journald_lines_carry_their_syslog_priority() {
    let dir = temp_dir("journal");
    let config = dir.join("tracker.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let (mut child, lines) = run_on_a_stream(&config, |dev, ino| format!("{dev}:{ino}"));
    // Signals are handled once it listens.
    let info = wait_for(&lines, "listening on udp://");
    assert!(info.starts_with("<6>"), "{info}");
    warn_by_a_bad_reload(&child, &config);
    let warning = wait_for(&lines, "keeping the running settings");
    assert!(warning.starts_with("<4>"), "{warning}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `JOURNAL_STREAM` inherited, but stderr is not that stream (a program
/// under systemd that runs swarmd with its stderr elsewhere): no prefixes.
#[test]
fn journal_stream_of_another_file_adds_no_priority() {
    let dir = temp_dir("not-journal");
    let config = dir.join("tracker.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let (mut child, lines) = run_on_a_stream(&config, |dev, ino| format!("{dev}:{}", ino + 1));
    // Signals are handled once it listens.
    let info = wait_for(&lines, "listening on udp://");
    assert!(!info.starts_with('<'), "{info}");
    warn_by_a_bad_reload(&child, &config);
    let warning = wait_for(&lines, "keeping the running settings");
    assert!(!warning.starts_with('<'), "{warning}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `swarmd --check-config FILE` with `env`: exit code and stderr.
fn check_config(config: &Path, env: &[(&str, &Path)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmd"));
    cmd.arg("--check-config")
        .arg(config)
        .env_remove("CREDENTIALS_DIRECTORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `dir/tracker.toml`: the test configuration with `access` as its
/// `[access]` table.
fn with_access(dir: &Path, access: &str) -> std::path::PathBuf {
    let config = dir.join("tracker.toml");
    std::fs::write(&config, format!("{CONFIG}[access]\n{access}")).unwrap();
    config
}

fn with_passkeys(dir: &Path, passkeys: &str) -> std::path::PathBuf {
    with_access(dir, &format!("passkeys_file = {passkeys:?}\n"))
}

#[test]
fn check_config_reads_the_files_the_configuration_names() {
    let dir = temp_dir("check-files");
    let keys = dir.join("passkeys");

    // Missing.
    let config = with_passkeys(&dir, keys.to_str().unwrap());
    let (code, err) = check_config(&config, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: cannot read", keys.display())),
        "{err}"
    );

    // A bad line.
    std::fs::write(&keys, "good-key alice\nbad/key bob\n").unwrap();
    let (code, err) = check_config(&config, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{}:2:", keys.display())), "{err}");

    // Good.
    std::fs::write(&keys, "good-key alice\n").unwrap();
    let (code, err) = check_config(&config, &[]);
    assert_eq!(code, Some(0), "{err}");

    // The info-hash list too.
    let list = dir.join("hashes");
    std::fs::write(&list, "not a hash\n").unwrap();
    let config = with_access(
        &dir,
        &format!(
            "mode = \"allow\"\ninfo_hash_file = {:?}\n",
            list.to_str().unwrap()
        ),
    );
    let (code, err) = check_config(&config, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{}:1:", list.display())), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_passkeys_fail_check_config() {
    if unsafe { libc::geteuid() } == 0 {
        // Root reads any file; the boot check covers a service user.
        eprintln!("skipped: root reads a file of mode 0000");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("check-unreadable");
    let keys = dir.join("passkeys");
    std::fs::write(&keys, "good-key\n").unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o000)).unwrap();
    let config = with_passkeys(&dir, keys.to_str().unwrap());
    let (code, err) = check_config(&config, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: cannot read", keys.display())) && err.contains("ermission"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn credential_paths_are_read_from_the_credentials_directory() {
    let dir = temp_dir("credentials");
    let creds = dir.join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    let config = with_passkeys(&dir, "credential:passkeys");

    // Outside systemd: the error says what is missing.
    let (code, err) = check_config(&config, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("credential:passkeys") && err.contains("CREDENTIALS_DIRECTORY"),
        "{err}"
    );
    // Named but not loaded.
    let (code, err) = check_config(&config, &[("CREDENTIALS_DIRECTORY", &creds)]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: cannot read",
            creds.join("passkeys").display()
        )),
        "{err}"
    );
    std::fs::write(creds.join("passkeys"), "good-key alice\n").unwrap();
    let (code, err) = check_config(&config, &[("CREDENTIALS_DIRECTORY", &creds)]);
    assert_eq!(code, Some(0), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// ExecReload's check: systemd 252 gives it no credentials, so it skips
/// them, and still reads every other file.
#[test]
fn skip_credentials_reads_all_but_credential_files() {
    let dir = temp_dir("skip-credentials");
    let creds = dir.join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    let config = with_passkeys(&dir, "credential:passkeys");
    let env: &[(&str, &Path)] = &[("CREDENTIALS_DIRECTORY", &creds)];
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmd"));
        cmd.arg("--check-config").arg(&config).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(&[]).0, Some(1));
    let (code, err) = run(&["--skip-credentials"]);
    assert_eq!(code, Some(0), "{err}");

    // An info-hash list named directly is still read.
    let list = dir.join("hashes");
    std::fs::write(&list, "not a hash\n").unwrap();
    with_access(
        &dir,
        &format!(
            "mode = \"allow\"\ninfo_hash_file = {:?}\npasskeys_file = \"credential:passkeys\"\n",
            list.to_str().unwrap()
        ),
    );
    let (code, err) = run(&["--skip-credentials"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{}:1:", list.display())), "{err}");

    // Only with --check-config.
    let out = Command::new(env!("CARGO_BIN_EXE_swarmd"))
        .arg("--skip-credentials")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
