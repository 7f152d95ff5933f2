//! The state snapshot: every shard's torrents (info hash, completed count)
//! and peers (address, seeder flag, time left, peer id when kept) in one
//! versioned binary file, so that a restart keeps its swarms.
//!
//! Files: `format.rs` the layout (documented there) and its varints;
//! `encode.rs` and `decode.rs` the one encoder and decoder, pure (bytes in
//! memory or any `Write`, no files); `restore.rs` decoded torrents into
//! shards; `file.rs` the file: written whole or not at all, loaded or set
//! aside; `config.rs` the `[state]` table; `writer.rs` the snapshots of a
//! running tracker (periodic, and on stop) and their metrics.

pub mod config;
pub mod decode;
pub mod encode;
pub mod file;
pub mod format;
pub mod restore;
pub mod writer;

pub use config::StateConfig;
pub use decode::{decode, read_header, DecodeError, Decoded, PeerRecord, Sink};
pub use encode::{Encoder, Section, Written};
pub use file::{At, Export, Loaded};
pub use format::{Header, FORMAT_VERSION, MAGIC};
pub use restore::{Restore, Restored};
pub use writer::Snapshots;

#[cfg(test)]
mod tests;
