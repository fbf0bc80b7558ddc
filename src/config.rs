//! Configuration: the TOML file (`RawConfig`, serde) validated into [`Config`].
//!
//! Owns reading the file and resolving secrets (inline, `*_env`, `*_file`). Every
//! error names the file, the key and, where the TOML parser knows it, the line.
//! Secrets are wrapped in [`Secret`], whose `Debug`/`Display` never print them.

use crate::core::types::{Addr, NodeId};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A secret value (password, shared key). Printing it shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is sent to its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Redis credentials: `AUTH password` or `AUTH username password` (ACL user).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisAuth {
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// One daemon of the Raft cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: NodeId,
    /// Address other daemons (and `raftinel status`) connect to.
    pub addr: String,
}

/// Raft timing. One tick every `tick`; elections after `election_ticks`
/// (randomised by raft-rs between 1x and 2x), heartbeats every `heartbeat_ticks`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
}

impl RaftTiming {
    /// The minimum election timeout.
    pub fn election_timeout(&self) -> Duration {
        self.tick * self.election_ticks as u32
    }
}

/// One monitored Redis group: a master and its replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    /// The master at first start (later masters are in the replicated topology).
    pub master: Addr,
    /// Replicas known in advance (more are discovered from the master's INFO).
    pub replicas: Vec<Addr>,
    pub down_after: Duration,
    /// Daemons that must see the master down for it to be objectively down.
    pub quorum: usize,
    pub failover_timeout: Duration,
    pub parallel_syncs: usize,
    /// PING period: default `down_after / 10`, at most 1 s.
    pub ping_interval: Duration,
    pub auth: RedisAuth,
}

/// Validated configuration of one daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    /// Where this daemon listens for peers; defaults to its own `[[peer]]` addr.
    pub peer_listen: SocketAddr,
    pub peers: Vec<Peer>,
    pub peer_secret: Secret,
    /// The Redis instance on this daemon's host, if any.
    pub local_redis: Option<Addr>,
    pub raft: RaftTiming,
    /// Timeout of one Redis command (probe or action).
    pub redis_timeout: Duration,
    pub groups: Vec<GroupConfig>,
    pub log_level: String,
}

impl Config {
    pub fn peer(&self, id: NodeId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id)
    }
}
