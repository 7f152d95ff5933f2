//! `[cluster]`: the message engine a node shares its swarms through, its
//! name among the nodes, and the secret all nodes key connection ids with.

use serde::Deserialize;

/// `[cluster]`: several nodes share their swarms through NATS. Absent (the
/// default), the tracker is one node alone: no engine, no cluster thread.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server (or one of a NATS cluster) to connect to. A node
    /// that can't reach it keeps answering from what it has and retries
    /// with backoff (1 s up to 30 s).
    pub url: String,
    /// This node's name, unique among the nodes (a host name will do): it
    /// is part of the subject this node publishes on.
    pub node: String,
    /// A file holding the secret (at least 16 bytes, e.g. `head -c 32
    /// /dev/urandom | base64`) that keys connection ids. The same file on
    /// every node, so a connect answered by one node is valid for an
    /// announce that lands on another. `credential:NAME`: the systemd
    /// credential NAME (`LoadCredential=NAME:/etc/swarmd/cluster.secret`).
    pub secret_file: String,
    /// Prefix of the subjects: `<subject>.changes.<node>` and
    /// `<subject>.warm`. Clusters that share an engine need different
    /// prefixes.
    pub subject: String,
    /// Batches of peer changes that may wait for the cluster thread, from
    /// the shards, and to each shard, from the engine. Full: the batch is
    /// dropped and counted, never waited for.
    pub queue: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            url: "nats://127.0.0.1:4222".into(),
            node: String::new(),
            secret_file: String::new(),
            subject: "swarmd".into(),
            queue: 1024,
        }
    }
}

impl ClusterConfig {
    /// What `--check-config` and start-up refuse.
    pub fn check(&self) -> Result<(), String> {
        let token_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !token_ok(&self.node) || self.node.len() > 64 {
            return Err(format!(
                "cluster.node {:?}: a name of 1 to 64 letters, digits, '-' or '_' (unique per node)",
                self.node
            ));
        }
        if !self.subject.split('.').all(token_ok) {
            return Err(format!(
                "cluster.subject {:?}: words of letters, digits, '-' or '_', joined by '.'",
                self.subject
            ));
        }
        if !(self.url.starts_with("nats://") || self.url.starts_with("tls://")) {
            return Err(format!(
                "cluster.url {:?}: a NATS URL like nats://127.0.0.1:4222",
                self.url
            ));
        }
        if self.secret_file.is_empty() {
            return Err(
                "cluster.secret_file is empty: the nodes need one secret for connection ids".into(),
            );
        }
        if self.queue == 0 {
            return Err("cluster.queue must be at least 1".into());
        }
        Ok(())
    }

    /// Replaces a `credential:NAME` secret file with `NAME` in
    /// `credentials` (systemd's `$CREDENTIALS_DIRECTORY`, for a unit with
    /// `LoadCredential=NAME:FILE`): the secret then stays readable by root
    /// alone, as passkeys do (see `access.passkeys_file`).
    pub(crate) fn resolve_credentials(
        &mut self,
        credentials: Option<&std::ffi::OsStr>,
    ) -> Result<(), String> {
        let Some(name) = self.secret_file.strip_prefix("credential:") else {
            return Ok(());
        };
        if name.is_empty() || name.contains('/') {
            return Err(format!(
                "cluster.secret_file {:?}: a credential name is one file name",
                self.secret_file
            ));
        }
        let Some(dir) = credentials else {
            return Err(format!(
                "cluster.secret_file {:?}: $CREDENTIALS_DIRECTORY is not set (systemd sets it \
                 for a unit with LoadCredential={name}:FILE; outside systemd, name the file)",
                self.secret_file
            ));
        };
        self.secret_file = std::path::Path::new(dir).join(name).display().to_string();
        Ok(())
    }

    /// Reads the secret file (start-up and `--check-config`).
    pub fn secret(&self) -> Result<Vec<u8>, String> {
        let secret = std::fs::read(&self.secret_file)
            .map_err(|e| format!("cluster.secret_file {}: {e}", self.secret_file))?;
        if secret.trim_ascii().len() < 16 {
            return Err(format!(
                "cluster.secret_file {}: fewer than 16 bytes of secret",
                self.secret_file
            ));
        }
        Ok(secret)
    }
}
