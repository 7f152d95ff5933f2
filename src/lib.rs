pub mod protocol;
pub mod swarm;
