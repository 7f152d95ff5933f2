//! The `[access]` table of `tracker.toml`: which torrents and which users
//! may announce, and where the lists are read from.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::database::DatabaseConfig;

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
    /// With `[access.database]`: seconds between loads of its queries.
    pub reload_interval: u32,
    /// `[access.token]`: signed announce tokens (JWT). Off by default.
    pub token: TokenConfig,
    /// `[access.database]`: both lists from the site's PostgreSQL database
    /// instead of the files. Off by default.
    pub database: DatabaseConfig,
}

/// The signature algorithm announce tokens must use; any other, `none`
/// included, is refused whatever the token's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
pub enum TokenAlgorithm {
    /// No tokens.
    #[default]
    #[serde(rename = "off")]
    Off,
    /// HMAC-SHA256 with the shared secret in `secret_file`.
    HS256,
    /// RSA (PKCS#1 v1.5, SHA-256) with the public keys in `jwks_file`.
    RS256,
    /// ECDSA P-256 with the public keys in `jwks_file`.
    ES256,
}

/// `[access.token]`: signed announce tokens (JWT), as a container registry
/// issues them. When on, every announce must carry a token that is signed
/// with a configured key, in force (`exp`, and `nbf` when present), from
/// `issuer` for `audience`, and whose `infohash` claim (40 hex characters,
/// or a list of them) names the announced torrent. The token goes in the
/// query (`/announce?jwt=TOKEN`), or in the path where a passkey would go
/// (`/announce/TOKEN`) when passkeys are off; over UDP in the BEP 41 URL
/// data, the same way. Scrapes need no token.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// `"off"`, `"HS256"` (shared secret), `"RS256"` or `"ES256"` (public
    /// keys). Only this algorithm is accepted.
    pub algorithm: TokenAlgorithm,
    /// HS256: the file holding the shared secret, at least 32 bytes;
    /// trailing whitespace (a final newline) is not part of it. Keep it
    /// readable by swarmd only.
    pub secret_file: PathBuf,
    /// RS256 and ES256: a JWK Set file (`{"keys": [...]}`, as a registry
    /// publishes it) with the public keys. A token's `kid` picks the key; a
    /// token without one is accepted only when the set has a single key.
    /// Keys of another type, or marked for another `alg` or `use`, are
    /// skipped.
    pub jwks_file: PathBuf,
    /// The `iss` a token must carry. Empty: not checked.
    pub issuer: String,
    /// The `aud` a token must carry (one of, if it lists several). Empty:
    /// not checked.
    pub audience: String,
    /// Seconds of clock difference allowed on `exp` and `nbf`.
    pub leeway: u32,
    /// Verified tokens remembered, so that a re-announce costs a lookup,
    /// not a signature check; each until its `exp`. Rounded up to a power
    /// of two and kept in sets of four by hash: when a token's set is full,
    /// the one that expires first makes way (an expired one before any in
    /// force), and a token pushed out is verified again at its next
    /// announce. Size it at twice the clients holding tokens. 32 bytes an
    /// entry are reserved at start, plus the token held (about 0.7 kB for
    /// RS256).
    pub cache_entries: u32,
    /// Signature checks per second for tokens not seen before, for the
    /// whole tracker. Beyond it such a token is refused with "token check
    /// busy, retry" (its client retries at its next announce), so a flood of
    /// made-up tokens costs a bounded share of a core. Refused tokens are
    /// remembered too (as many as `cache_entries`, for 5 minutes), so one
    /// re-announced costs a lookup.
    pub verify_per_second: u32,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            algorithm: TokenAlgorithm::Off,
            secret_file: PathBuf::new(),
            jwks_file: PathBuf::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway: 30,
            cache_entries: 65536,
            verify_per_second: 2000,
        }
    }
}

impl TokenConfig {
    pub(crate) fn enabled(&self) -> bool {
        self.algorithm != TokenAlgorithm::Off
    }

    /// The key file the algorithm reads, None when tokens are off.
    pub(crate) fn key_file(&self) -> Option<&Path> {
        match self.algorithm {
            TokenAlgorithm::Off => None,
            TokenAlgorithm::HS256 => Some(&self.secret_file),
            TokenAlgorithm::RS256 | TokenAlgorithm::ES256 => Some(&self.jwks_file),
        }
    }

    fn check(&self) -> Result<(), String> {
        let (key, name) = match self.algorithm {
            TokenAlgorithm::Off => return Ok(()),
            TokenAlgorithm::HS256 => (&self.secret_file, "secret_file"),
            TokenAlgorithm::RS256 | TokenAlgorithm::ES256 => (&self.jwks_file, "jwks_file"),
        };
        if key.as_os_str().is_empty() {
            return Err(format!(
                "access.token.algorithm is {:?} but access.token.{name} is empty",
                self.algorithm
            ));
        }
        // A day: more is a clock to fix, not a leeway (and the check
        // subtracts it from the time).
        if self.leeway > 86_400 {
            return Err("access.token.leeway is more than a day (86400 seconds)".into());
        }
        if self.cache_entries == 0 {
            return Err("access.token.cache_entries must be at least 1".into());
        }
        if self.verify_per_second == 0 {
            return Err("access.token.verify_per_second must be at least 1".into());
        }
        Ok(())
    }
}

impl AccessConfig {
    /// Checks that span several keys of the table.
    pub fn check(&self) -> Result<(), String> {
        if self.database.enabled() {
            // Both lists come from the database: a file beside it would be
            // silently ignored, so it is refused instead.
            for (key, path) in [
                ("info_hash_file", &self.info_hash_file),
                ("passkeys_file", &self.passkeys_file),
            ] {
                if !path.as_os_str().is_empty() {
                    return Err(format!(
                        "access.{key} is set but [access.database] replaces it: remove one"
                    ));
                }
            }
            self.database.check(self.mode != AccessMode::Off)?;
        } else if self.mode != AccessMode::Off && self.info_hash_file.as_os_str().is_empty() {
            return Err(format!(
                "access.mode is {:?} but access.info_hash_file is empty",
                format!("{:?}", self.mode).to_lowercase()
            ));
        }
        self.token.check()
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
            (
                "access.database.password_file",
                &mut self.database.password_file,
            ),
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
        if self.database.enabled() {
            !self.database.passkeys_query.trim().is_empty()
        } else {
            !self.passkeys_file.as_os_str().is_empty()
        }
    }

    /// The files this configuration reads, in the order they are read.
    pub(crate) fn files(&self) -> Vec<&Path> {
        let mut files = Vec::new();
        if self.mode != AccessMode::Off && !self.database.enabled() {
            files.push(self.info_hash_file.as_path());
        }
        if self.passkeys_enabled() && !self.database.enabled() {
            files.push(self.passkeys_file.as_path());
        }
        files.extend(self.token.key_file());
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
    fn the_database_replaces_both_files() {
        let mut c: AccessConfig = toml::from_str(
            "mode = \"allow\"\n[database]\nurl = \"host=/run/postgresql\"\n\
             torrents_query = \"SELECT h FROM t\"\npasskeys_query = \"SELECT k, u FROM p\"\n",
        )
        .unwrap();
        assert!(c.check().is_ok());
        assert!(c.passkeys_enabled());
        assert!(c.files().is_empty(), "no file is read");
        c.passkeys_file = "keys".into();
        let e = c.check().unwrap_err();
        assert!(
            e.contains("passkeys_file") && e.contains("remove one"),
            "{e}"
        );
        c.passkeys_file = PathBuf::new();
        c.database.torrents_query.clear();
        assert!(c.check().unwrap_err().contains("torrents_query"));
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

    #[test]
    fn token_tables_parse_and_need_their_key_file() {
        let c: AccessConfig = toml::from_str(
            "[token]\nalgorithm = \"RS256\"\njwks_file = \"keys.json\"\nissuer = \"reg\"\n",
        )
        .unwrap();
        assert_eq!(c.token.algorithm, TokenAlgorithm::RS256);
        assert!(c.check().is_ok());
        assert_eq!(c.files(), [Path::new("keys.json")]);
        let inline: AccessConfig = toml::from_str(
            "token = { algorithm = \"RS256\", jwks_file = \"keys.json\", issuer = \"reg\" }",
        )
        .unwrap();
        assert_eq!(inline, c);
        let c: AccessConfig = toml::from_str("[token]\nalgorithm = \"HS256\"\n").unwrap();
        let e = c.check().unwrap_err();
        assert!(e.contains("secret_file"), "{e}");
        assert!(toml::from_str::<AccessConfig>("[token]\nalgorithm = \"none\"\n").is_err());
        assert!(!AccessConfig::default().token.enabled());
    }
}
