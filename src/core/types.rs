//! Plain data shared by the core and the shells: instance addresses, what a probe
//! learned about an instance, and the clock value the core is driven with.
//!
//! Nothing here does I/O. Shells build these values from sockets and clocks; the
//! core only reads them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Identity of a daemon in the Raft cluster (the `id` of a `[[peer]]`).
pub type NodeId = u64;

/// A Redis instance address, `host:port`, exactly as it appears in the config or
/// in a master's `INFO replication` output.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl Addr {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Addr {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a string is not a `host:port` address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?} is not a host:port address ({reason})")]
pub struct AddrError {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for Addr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| AddrError {
            input: s.to_string(),
            reason,
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(|| err("missing ]:port"))?;
            (h, p)
        } else {
            s.rsplit_once(':').ok_or_else(|| err("missing :port"))?
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let port: u16 = port.parse().map_err(|_| err("port is not 1-65535"))?;
        if port == 0 {
            return Err(err("port is not 1-65535"));
        }
        Ok(Addr::new(host, port))
    }
}

impl TryFrom<String> for Addr {
    type Error = AddrError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Addr> for String {
    fn from(a: Addr) -> String {
        a.to_string()
    }
}

/// The clock values the core is driven with. `mono_ms` is a monotonic clock
/// (detection timing); `wall_ms` is Unix time in milliseconds, used only for values
/// that are stored in the replicated log and compared on other daemons
/// (the failover cool-down).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: u64,
}

/// The replication role an instance reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Role {
    Master {
        /// Replicas the master lists in `INFO replication` (`slaveN:` lines).
        replicas: Vec<ConnectedReplica>,
    },
    #[serde(rename = "slave")]
    Replica {
        /// `master_host:master_port`.
        master: Addr,
        /// `master_link_status:up`.
        link_up: bool,
        /// `master_link_down_since_seconds`, when the link is down.
        link_down_since_s: Option<u64>,
        /// `slave_priority` (0 = never promote).
        priority: u32,
        /// `slave_repl_offset`.
        offset: u64,
    },
}

/// One `slaveN:ip=...,port=...,state=...,offset=...,lag=...` line of a master.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedReplica {
    pub addr: Addr,
    /// `state=` (`online`, `wait_bgsave`, `send_bulk`, ...).
    pub state: String,
    pub offset: u64,
    /// `lag=` in seconds since the last REPLCONF ACK.
    pub lag_s: u64,
}

/// What `INFO server replication` told us about one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// `run_id` from the server section.
    pub run_id: String,
    pub role: Role,
    /// `master_repl_offset` (present on masters and replicas).
    pub master_repl_offset: u64,
}

impl InstanceInfo {
    pub fn is_master(&self) -> bool {
        matches!(self.role, Role::Master { .. })
    }

    /// The master this instance replicates from, if it is a replica.
    pub fn master_addr(&self) -> Option<&Addr> {
        match &self.role {
            Role::Replica { master, .. } => Some(master),
            Role::Master { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_round_trips() {
        for s in ["127.0.0.1:6379", "redis-1:6380", "[::1]:6379"] {
            let a: Addr = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
    }

    #[test]
    fn bad_addrs_say_why() {
        assert_eq!("x".parse::<Addr>().unwrap_err().reason, "missing :port");
        assert_eq!(":1".parse::<Addr>().unwrap_err().reason, "empty host");
        assert_eq!(
            "h:0".parse::<Addr>().unwrap_err().reason,
            "port is not 1-65535"
        );
        assert_eq!(
            "h:99999".parse::<Addr>().unwrap_err().reason,
            "port is not 1-65535"
        );
    }
}
