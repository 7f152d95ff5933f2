//! A throwaway PostgreSQL cluster for a test: `initdb` into a temporary
//! directory, the server on a free loopback port with its socket in that
//! directory, stopped (and the directory removed) on drop. PostgreSQL
//! refuses to run as root, so as root both run as `nobody` (`setpriv`),
//! in a directory under /tmp that `nobody` owns (mode 0755 on the way).
//! The binaries are Debian's, in /usr/lib/postgresql/VERSION/bin.

#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The newest installed server's bin directory, if any.
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

/// The cluster's binaries, or None after a `SKIPPED` note (a failure on
/// CI, where .ci/run installs them).
pub fn available() -> Option<PathBuf> {
    let bin = bin_dir();
    super::can_run(
        bin.is_some(),
        "PostgreSQL is missing on CI (.ci/run installs the postgresql package)",
        "no PostgreSQL server in /usr/lib/postgresql/*/bin (apt-get install postgresql)",
    )
    .then(|| bin.unwrap())
}

/// A free loopback TCP port (free when asked; the server binds it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub struct Postgres {
    bin: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    /// (uid, gid) the server runs as, when we are root.
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

fn id(flag: &str) -> u32 {
    let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

impl Postgres {
    /// A new cluster, running. None when PostgreSQL is not installed (and
    /// not on CI).
    pub fn start(name: &str) -> Option<Postgres> {
        let bin = available()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        // Under /tmp, not $TMPDIR: every parent must be traversable by
        // `nobody`.
        let dir = PathBuf::from(format!(
            "/tmp/swarmd-pg-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // SAFETY: geteuid has no preconditions and no memory effects.
        let root = unsafe { libc::geteuid() } == 0;
        let user = root.then(|| (id("-u"), id("-g")));
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let mut pg = Postgres {
            bin,
            dir,
            port: free_port(),
            user,
            child: None,
        };
        let data = pg.data();
        let out = pg
            .command("initdb")
            .args(["--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .args(["--locale", "C", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.run();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match self.user {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--"])
                    .arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.env("LC_ALL", "C").current_dir(&self.dir);
        cmd
    }

    /// Starts the server (again, after [`Postgres::stop`]) on the same port
    /// and waits until it takes connections.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let data = self.data();
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&self.dir)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if postgres::Client::connect(&self.url(), postgres::NoTls).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited ({status}): {}", self.server_log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready: {}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected) and
    /// waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill has no memory effects; the pid is our own child
            // (setpriv execs the server, so it is the server).
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The connection string of the `postgres` database as `postgres`.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap()
    }

    /// Runs `sql` (several statements allowed).
    pub fn exec(&self, sql: &str) {
        self.client()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// A directory for the test's own files (writable by the test).
    pub fn path(&self, name: &str) -> PathBuf {
        Path::new(&self.dir).join(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
