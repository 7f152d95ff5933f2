//! The `[access.database]` table: where the site's PostgreSQL database is,
//! the queries that return its lists, and the optional traffic write-back.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[access.database]`: the allowed torrents and the passkeys from the
/// site's PostgreSQL database instead of files. Off while `url` is empty.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A libpq connection string, `host=/run/postgresql dbname=site
    /// user=swarmd` or `postgresql://swarmd@db.example/site`. TLS is not
    /// spoken: use a Unix socket, loopback or a tunnel. Keep the password
    /// out of it: see `password_file`. "" turns the database off.
    pub url: String,
    /// A file holding the password (a final newline is not part of it);
    /// `credential:NAME` reads a systemd credential, as for the list files.
    pub password_file: PathBuf,
    /// Returns the info hashes for `allow` or `deny`, one a row, in its first
    /// column: `bytea` of 20 or 32 bytes, or text of 40 or 64 hex characters
    /// (a v2 hash is truncated to the 20 bytes clients announce). Replaces
    /// `info_hash_file`; needed unless `mode` is "off".
    pub torrents_query: String,
    /// Returns `passkey, user` rows (the user text or an integer, or NULL).
    /// Replaces `passkeys_file`; "" turns passkeys off.
    pub passkeys_query: String,
    /// A channel to LISTEN on: a NOTIFY on it reloads both lists at once,
    /// so a new torrent or user can announce within a second. "": none.
    pub listen_channel: String,
    /// The last good lists are written here after each good load (mode
    /// 0600: it holds the passkeys); when the database can't be reached at
    /// start, swarmd starts from it. "": no cache, and an unreachable
    /// database stops start-up.
    pub cache: PathBuf,
    /// A statement run once per user with traffic, every
    /// `write_back_interval` seconds, all in one transaction: $1 the user,
    /// $2 announces, $3 bytes uploaded, $4 bytes downloaded, each the
    /// increase since the last committed write-back (fewer parameters may be
    /// used, in that order). "" turns write-back off.
    pub write_back: String,
    /// Seconds between write-backs.
    pub write_back_interval: u32,
    /// Users whose traffic waits while the database is down; the traffic of
    /// users beyond them is dropped and counted.
    pub write_back_max_users: u32,
    /// Seconds to wait for a connection.
    pub connect_timeout: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            password_file: PathBuf::new(),
            torrents_query: String::new(),
            passkeys_query: String::new(),
            listen_channel: String::new(),
            cache: PathBuf::new(),
            write_back: String::new(),
            write_back_interval: 60,
            write_back_max_users: 1_000_000,
            connect_timeout: 10,
        }
    }
}

impl DatabaseConfig {
    pub(crate) fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    pub(crate) fn write_back_enabled(&self) -> bool {
        !self.write_back.trim().is_empty()
    }

    /// Checks of the table alone; `needs_torrents`: the mode is allow or
    /// deny.
    pub(crate) fn check(&self, needs_torrents: bool) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let parsed: postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("access.database.url: {e}"))?;
        if parsed.get_password().is_some() && !self.password_file.as_os_str().is_empty() {
            return Err(
                "access.database: the url holds a password and password_file is set too".into(),
            );
        }
        if needs_torrents && self.torrents_query.trim().is_empty() {
            return Err(
                "access.mode is allow or deny but access.database.torrents_query is empty".into(),
            );
        }
        let channel = &self.listen_channel;
        if !channel.is_empty() && !identifier(channel) {
            return Err(format!(
                "access.database.listen_channel {channel:?}: use up to 63 letters, digits and _, \
                 not starting with a digit"
            ));
        }
        if self.write_back_enabled() && self.passkeys_query.trim().is_empty() {
            return Err(
                "access.database.write_back needs passkeys_query: traffic is counted by passkey"
                    .into(),
            );
        }
        if self.write_back_enabled() && self.write_back_interval == 0 {
            return Err("access.database.write_back_interval must be at least 1".into());
        }
        if self.write_back_max_users == 0 {
            return Err("access.database.write_back_max_users must be at least 1".into());
        }
        if self.connect_timeout == 0 {
            return Err("access.database.connect_timeout must be at least 1".into());
        }
        Ok(())
    }

    /// The client's settings: the url, the password from its file, and
    /// timeouts and keepalives so that a dead server is noticed. Reads the
    /// password file; the error names it.
    pub(crate) fn client_config(&self) -> Result<postgres::Config, String> {
        let mut config: postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("access.database.url: {e}"))?;
        if !self.password_file.as_os_str().is_empty() {
            let path = &self.password_file;
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            config.password(text.trim_end_matches(['\r', '\n']));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(self.connect_timeout.into()));
        }
        if config.get_application_name().is_none() {
            config.application_name("swarmd");
        }
        config.keepalives(true);
        Ok(config)
    }
}

/// A name PostgreSQL takes unquoted (folded to lower case, as the site's
/// own unquoted `NOTIFY name` is), so `LISTEN name` needs no quoting.
fn identifier(name: &str) -> bool {
    name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Where a client connects, for the log: hosts, port and database, never
/// the password.
pub(crate) fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql {}:{port}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> DatabaseConfig {
        DatabaseConfig {
            url: "host=127.0.0.1 port=5433 dbname=site user=swarmd".into(),
            torrents_query: "SELECT info_hash FROM torrents".into(),
            ..DatabaseConfig::default()
        }
    }

    #[test]
    fn checks_name_the_key() {
        assert!(DatabaseConfig::default().check(true).is_ok(), "off");
        assert!(on().check(true).is_ok());
        let e = DatabaseConfig {
            torrents_query: String::new(),
            ..on()
        }
        .check(true)
        .unwrap_err();
        assert!(e.contains("torrents_query"), "{e}");
        let e = DatabaseConfig {
            url: "host=x port=notaport".into(),
            ..on()
        }
        .check(true)
        .unwrap_err();
        assert!(e.contains("access.database.url"), "{e}");
        let e = DatabaseConfig {
            listen_channel: "new torrents".into(),
            ..on()
        }
        .check(true)
        .unwrap_err();
        assert!(e.contains("listen_channel"), "{e}");
        let e = DatabaseConfig {
            url: "postgresql://u:secret@h/db".into(),
            password_file: "pw".into(),
            ..on()
        }
        .check(true)
        .unwrap_err();
        assert!(e.contains("password"), "{e}");
    }

    #[test]
    fn the_password_comes_from_its_file_and_is_never_described() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let c = DatabaseConfig {
            password_file: file,
            ..on()
        };
        let config = c.client_config().unwrap();
        assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(describe(&config), "postgresql 127.0.0.1:5433/site");
        let e = DatabaseConfig {
            password_file: dir.path().join("missing"),
            ..on()
        }
        .client_config()
        .unwrap_err();
        assert!(e.contains("missing") && e.contains("cannot read"), "{e}");
    }
}
