//! A real nats-server for the cluster tests: started on a free loopback
//! port in a temporary directory, stopped (killed) on drop. When the binary
//! is missing, [`Nats::start`] returns None after printing `SKIPPED`,
//! unless `CI` is set: then it panics, so CI can't pass without it.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    /// A configuration file for the server (e.g. a small max_payload).
    config: Option<PathBuf>,
}

impl Nats {
    /// A server on a free port, ready (accepting connections), or None
    /// (SKIPPED) when nats-server is not installed.
    pub fn start(test: &str) -> Option<Nats> {
        Nats::start_with(test, "")
    }

    /// [`Nats::start`] with `config` (nats-server's configuration syntax,
    /// e.g. `max_payload: 4096`).
    pub fn start_with(test: &str, config: &str) -> Option<Nats> {
        let found = Command::new("nats-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            if std::env::var_os("CI").is_some() {
                panic!("nats-server is not installed (Debian package nats-server)");
            }
            println!("SKIPPED: {test}: nats-server is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("swarmd-nats-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = (!config.is_empty()).then(|| {
            let path = dir.join("nats.conf");
            std::fs::write(&path, config).unwrap();
            path
        });
        let mut nats = Nats {
            child: None,
            port,
            dir,
            config,
        };
        nats.run();
        Some(nats)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and waits until it accepts.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new("nats-server");
        if let Some(config) = &self.config {
            cmd.arg("-c").arg(config);
        }
        let child = cmd
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-l")
            .arg(self.dir.join("nats.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not accept in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (as a crash would) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
