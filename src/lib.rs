//! swarmd: a UDP-first BitTorrent tracker.
//!
//! The library holds everything; the `swarmd` binary parses its command
//! line, loads the configuration and calls [`start`]. Tests do the same on
//! port 0.

pub mod access;
pub mod cluster;
pub mod config;
pub mod connection_id;
pub(crate) mod log_limit;
pub mod logging;
pub mod protocol;
pub mod service;
pub mod snapshot;
pub mod stats;
pub(crate) mod stats_server;
mod supervise;
pub mod swarm;
pub(crate) mod sys;
pub mod tracker;
pub(crate) mod workers;

pub use config::Config;
pub use tracker::{start, StartError, Tracker};
