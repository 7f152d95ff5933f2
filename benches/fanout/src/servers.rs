//! The engines under test as child processes: a `nats-server` or a
//! `redis-server` on a free loopback port in a temporary directory, started,
//! killed and restarted on the same port, and killed on Drop so that no run
//! leaves a server behind.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Nats,
    Redis,
}

impl ServerKind {
    pub fn binary(self) -> &'static str {
        match self {
            ServerKind::Nats => "nats-server",
            ServerKind::Redis => "redis-server",
        }
    }
}

/// One engine process. The temporary directory holds its working files
/// (Redis writes nothing with `--save ''` and no AOF; NATS writes nothing
/// without JetStream) and goes away with the value.
pub struct Server {
    kind: ServerKind,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    pub fn start(kind: ServerKind) -> Result<Server> {
        let port = free_port()?;
        let dir = tempfile::Builder::new()
            .prefix("swarmd-fanout-")
            .tempdir()
            .context("temporary directory")?;
        let mut server = Server {
            kind,
            port,
            dir,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        match self.kind {
            ServerKind::Nats => format!("nats://127.0.0.1:{}", self.port),
            ServerKind::Redis => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let port = self.port.to_string();
        let dir: PathBuf = self.dir.path().into();
        let mut command = Command::new(self.kind.binary());
        match self.kind {
            ServerKind::Nats => command.args(["-a", "127.0.0.1", "-p", &port]),
            ServerKind::Redis => command
                .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "no", "--daemonize", "no", "--dir"])
                .arg(&dir),
        };
        let child = command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (is it installed?)", self.kind.binary()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Polls the port with a deadline: the server is ready once it accepts.
    fn wait_ready(&mut self) -> Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("{} exited at start: {status}", self.kind.binary());
                }
            }
            if Instant::now() > deadline {
                bail!("{} not accepting on {addr} after 10 s", self.kind.binary());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, as a crash would: no goodbye to the clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port; returns once it accepts.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port the kernel just handed out. Another process could take it before
/// the server binds it; for a bench on loopback that race is acceptable, and
/// the server's start-up check reports it.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding port 0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether the binary is on the PATH, so a missing engine is a note, not a failure.
pub fn available(kind: ServerKind) -> bool {
    Command::new(kind.binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
