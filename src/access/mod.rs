//! Access control for private and curated trackers, one job a file:
//!
//! - `config`: the `[access]` table;
//! - `file`: reading the info-hash list and the passkeys file, with
//!   `file:line: reason` errors;
//! - `list`: one immutable version of the lists and the checks made against
//!   it on the hot path, and why a request was refused;
//! - `shared`: the lists shared by the workers, swapped whole on reload, and
//!   each worker's handle on them;
//! - `ledger`: what each passkey announced, uploaded and downloaded;
//! - `route`: where a request goes and which passkey and token it carries,
//!   for HTTP paths and BEP 41 URL data alike;
//! - `token`: signed announce tokens (JWT): keys, checks, and the cache of
//!   tokens already verified;
//! - `database`: both lists from the site's PostgreSQL database, and the
//!   users' traffic written back to it.

mod config;
pub(crate) mod database;
mod file;
mod ledger;
mod list;
mod route;
mod shared;
mod token;

pub use config::{AccessConfig, AccessMode, TokenAlgorithm, TokenConfig};
pub use database::{check as check_database, DatabaseConfig};
// `Account`, `Ledger` and `AccessReader` are only used in the crate, but
// public fields and methods of `crate::workers` name them; they can be
// `pub(crate)` once those are.
pub use ledger::{Account, Ledger, PasskeyCounters};
pub use list::passkey_tag;
pub(crate) use list::AccessList;
pub use route::Route;
pub(crate) use route::{parse_target, query_token};
pub(crate) use shared::reload_every;
pub use shared::{Access, AccessReader};
