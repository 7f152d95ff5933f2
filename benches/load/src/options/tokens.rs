//! The `--token-*` options of a load, and the `jwks` subcommand that
//! prints the key set a tracker needs for them.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use lexopt::prelude::*;

use super::Command;
use crate::tokens::TokenOptions;

/// The `--token-*` options, as given.
#[derive(Default)]
pub(super) struct TokenArgs {
    key: Option<PathBuf>,
    algorithm: Option<jsonwebtoken::Algorithm>,
    kid: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenArgs {
    /// Takes the value of `--NAME`, one of the `--token-*` options.
    pub(super) fn parse(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<()> {
        match name {
            "token-key" => self.key = Some(p.value()?.into()),
            "token-alg" => {
                self.algorithm = Some(match p.value()?.string()?.as_str() {
                    "RS256" => jsonwebtoken::Algorithm::RS256,
                    "ES256" => jsonwebtoken::Algorithm::ES256,
                    "HS256" => jsonwebtoken::Algorithm::HS256,
                    other => bail!("--token-alg {other}: expected RS256, ES256 or HS256"),
                })
            }
            "token-kid" => self.kid = Some(p.value()?.string()?),
            "token-issuer" => self.issuer = Some(p.value()?.string()?),
            "token-audience" => self.audience = Some(p.value()?.string()?),
            other => bail!("--{other}: unknown option (see --help)"),
        }
        Ok(())
    }

    /// None without `--token-key`; the others need it.
    pub(super) fn finish(self) -> Result<Option<TokenOptions>> {
        let Some(key) = self.key else {
            if self.algorithm.is_some() || self.kid.is_some() || self.issuer.is_some() {
                bail!("--token-alg, --token-kid and --token-issuer need --token-key");
            }
            return Ok(None);
        };
        Ok(Some(TokenOptions {
            key,
            algorithm: self.algorithm.unwrap_or(jsonwebtoken::Algorithm::RS256),
            kid: self.kid,
            issuer: self.issuer,
            audience: self.audience,
        }))
    }
}

pub(super) fn parse_jwks(p: &mut lexopt::Parser) -> Result<Command> {
    let mut token = TokenArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long(name) if name.starts_with("token-") => {
                let name = name.to_owned();
                token.parse(&name, p)?;
            }
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected().into()),
        }
    }
    token
        .finish()?
        .map(Command::Jwks)
        .ok_or_else(|| anyhow!("--token-key FILE is required (see --help)"))
}
