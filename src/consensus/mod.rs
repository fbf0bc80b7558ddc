//! Consensus: the only user of the `raft` crate.
pub mod storage;
pub mod transport;
