//! raftinel: a Redis failover orchestrator. Three (or five) peer daemons watch
//! Redis groups, agree through Raft that a master is down, promote the best
//! replica and repoint the rest.
//!
//! # Layout
//!
//! - [`core`]: the pure decision logic (no I/O, no clock): detection, quorum,
//!   replica choice, the failover state machine and the replicated topology.
//! - [`consensus`]: the only user of the `raft` crate: the node that drives a
//!   `RawNode`, durable storage, the authenticated peer transport.
//! - [`redis`]: the only user of the `redis` crate: probes and reconfiguration.
//! - [`config`]: the TOML file, validated.
//! - [`daemon`]: the shell: one loop feeding inputs to the core and executing
//!   the commands it returns.
//! - [`control`]: the request/response protocol of `raftinel status` and friends.

pub mod alerts;
pub mod check;
pub mod cli;
pub mod config;
pub mod consensus;
pub mod control;
pub mod core;
pub mod daemon;
pub mod discovery;
pub mod guard;
pub mod http;
pub mod http_api;
pub mod metrics;
pub mod notices;
pub mod notify;
pub mod redis;
