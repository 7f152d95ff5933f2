//! The `[access]` table of `tracker.toml`: which torrents and which users
//! may announce, and where the lists are read from.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The prefix of a path that names a systemd credential.
const CREDENTIAL: &str = "credential:";

/// Which torrents may be announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// Any torrent (a public tracker).
    #[default]
    Off,
    /// Only the torrents in `info_hash_file`.
    Allow,
    /// Any torrent but those in `info_hash_file`.
    Deny,
}

/// `[access]`: which torrents and which users may announce.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// `off` (any torrent), `allow` (only those in `info_hash_file`) or
    /// `deny` (all but those). A refused announce gets the error "torrent
    /// not allowed"; a refused torrent's scrape counts are zeros.
    pub mode: AccessMode,
    /// The info-hash list for `allow` and `deny`: one hash a line, 40 hex
    /// characters (a v2 hash may be given whole, 64 characters: its first 20
    /// bytes are what clients announce). `#` starts a comment; blank lines
    /// are skipped. A relative path is taken from the working directory;
    /// `credential:NAME` is the systemd credential NAME (see
    /// `passkeys_file`).
    pub info_hash_file: PathBuf,
    /// Passkeys, one a line: `key` or `key user`, `#` comments allowed. A key
    /// is 1 to 128 characters from A-Z, a-z, 0-9, `-`, `.`, `_` and `~`.
    /// When set, every announce and HTTP scrape must carry a listed key
    /// (`/announce/KEY` or `/KEY/announce`; over UDP in the BEP 41 URL data),
    /// and UDP scrapes, which can't carry one, are refused. Empty: no
    /// passkeys. `credential:NAME` reads the file systemd passes with
    /// `LoadCredential=NAME:/etc/swarmd/passkeys` (from
    /// `$CREDENTIALS_DIRECTORY`), so a file readable by root alone reaches
    /// the service's dynamic user; systemd copies it at start, so a change
    /// to it takes a restart.
    pub passkeys_file: PathBuf,
    /// Seconds between checks of both files for changes (reloaded when
    /// changed). 0: reload only on SIGHUP. A bad file keeps the old lists.
    pub reload_interval: u32,
}

impl AccessConfig {
    /// Checks that span several keys of the table.
    pub fn check(&self) -> Result<(), String> {
        if self.mode != AccessMode::Off && self.info_hash_file.as_os_str().is_empty() {
            return Err(format!(
                "access.mode is {:?} but access.info_hash_file is empty",
                format!("{:?}", self.mode).to_lowercase()
            ));
        }
        Ok(())
    }

    /// Replaces each `credential:NAME` path with `NAME` in `credentials`
    /// (systemd's `$CREDENTIALS_DIRECTORY`). Why a prefix of our own rather
    /// than the directory's path in the file: that path holds the unit's
    /// name, and `$CREDENTIALS_DIRECTORY` is what systemd documents.
    pub(crate) fn resolve_credentials(
        &mut self,
        credentials: Option<&std::ffi::OsStr>,
    ) -> Result<(), String> {
        for (key, path) in [
            ("access.info_hash_file", &mut self.info_hash_file),
            ("access.passkeys_file", &mut self.passkeys_file),
        ] {
            let Some(name) = path.to_str().and_then(|p| p.strip_prefix(CREDENTIAL)) else {
                continue;
            };
            if name.is_empty() || name.contains('/') {
                return Err(format!(
                    "{key} {:?}: a credential name is one file name",
                    path.display()
                ));
            }
            let Some(dir) = credentials else {
                return Err(format!(
                    "{key} {:?}: $CREDENTIALS_DIRECTORY is not set (systemd sets it for a \
                     unit with LoadCredential={name}:FILE; outside systemd, name the file)",
                    path.display()
                ));
            };
            *path = Path::new(dir).join(name);
        }
        Ok(())
    }

    pub(crate) fn passkeys_enabled(&self) -> bool {
        !self.passkeys_file.as_os_str().is_empty()
    }

    /// The files this configuration reads, in the order they are read.
    pub(crate) fn files(&self) -> Vec<&Path> {
        let mut files = Vec::new();
        if self.mode != AccessMode::Off {
            files.push(self.info_hash_file.as_path());
        }
        if self.passkeys_enabled() {
            files.push(self.passkeys_file.as_path());
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_needs_a_list_for_allow_and_deny() {
        let mut c = AccessConfig {
            mode: AccessMode::Allow,
            ..AccessConfig::default()
        };
        let e = c.check().unwrap_err();
        assert!(
            e.contains("\"allow\"") && e.contains("info_hash_file"),
            "{e}"
        );
        c.info_hash_file = "x".into();
        assert!(c.check().is_ok());
        assert!(AccessConfig::default().check().is_ok());
    }

    #[test]
    fn credential_paths_resolve_in_the_credentials_directory() {
        let mut c = AccessConfig {
            passkeys_file: "credential:keys".into(),
            info_hash_file: "list".into(),
            ..AccessConfig::default()
        };
        let e = c.clone().resolve_credentials(None).unwrap_err();
        assert!(
            e.contains("access.passkeys_file") && e.contains("LoadCredential=keys:"),
            "{e}"
        );
        c.resolve_credentials(Some("/run/credentials/swarmd.service".as_ref()))
            .unwrap();
        assert_eq!(
            c.passkeys_file,
            Path::new("/run/credentials/swarmd.service/keys")
        );
        assert_eq!(c.info_hash_file, Path::new("list"));
        for bad in ["credential:", "credential:a/b"] {
            let mut c = AccessConfig {
                passkeys_file: bad.into(),
                ..AccessConfig::default()
            };
            assert!(c.resolve_credentials(Some("/d".as_ref())).is_err(), "{bad}");
        }
    }
}
