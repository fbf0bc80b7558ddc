//! Consensus: the only user of the `raft` crate.
pub mod logger;
pub mod node;
pub mod storage;
pub mod transport;
