//! [`RedisError`]: everything that can go wrong talking to one Redis instance.
//!
//! Owns the error vocabulary of the Redis shell. Every variant carries the
//! instance address, and every `Display` starts with it. No variant ever holds
//! a password: reasons are built from server replies and socket errors only.

use super::info::InfoError;
use crate::core::types::Addr;
use std::time::Duration;

/// A failed operation on one Redis instance.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// Connecting plus the command did not finish within the instance timeout.
    #[error("{addr}: {during} timed out after {after:?}")]
    Timeout {
        addr: Addr,
        /// What was under way (`"PING"`, `"INFO"`, ...).
        during: &'static str,
        after: Duration,
    },
    /// The TCP connection could not be established.
    #[error("{addr}: cannot connect: {reason}")]
    Connect { addr: Addr, reason: String },
    /// `AUTH` was refused, or a command was refused with `NOAUTH`/`WRONGPASS`.
    #[error("{addr}: authentication failed: {reason}")]
    Auth { addr: Addr, reason: String },
    /// A command failed: an error reply, an unexpected reply, or a broken
    /// connection.
    #[error("{addr}: {command} failed: {reason}")]
    Command {
        addr: Addr,
        command: &'static str,
        reason: String,
    },
    /// `INFO` answered but its text is unusable.
    #[error("{addr}: unusable INFO reply: {source}")]
    Info {
        addr: Addr,
        #[source]
        source: InfoError,
    },
    /// `REPLICAOF NO ONE` was accepted but `ROLE` still reports another role.
    #[error("{addr}: still reports role {role:?} after REPLICAOF NO ONE")]
    NotPromoted { addr: Addr, role: String },
}

impl RedisError {
    /// The instance the error is about.
    pub fn addr(&self) -> &Addr {
        match self {
            RedisError::Timeout { addr, .. }
            | RedisError::Connect { addr, .. }
            | RedisError::Auth { addr, .. }
            | RedisError::Command { addr, .. }
            | RedisError::Info { addr, .. }
            | RedisError::NotPromoted { addr, .. } => addr,
        }
    }

    /// True for [`RedisError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, RedisError::Timeout { .. })
    }

    /// True for [`RedisError::Auth`]: a configuration problem, not an outage.
    pub fn is_auth(&self) -> bool {
        matches!(self, RedisError::Auth { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_starts_with_the_address() {
        let addr = Addr::new("127.0.0.1", 6379);
        let errors = [
            RedisError::Timeout {
                addr: addr.clone(),
                during: "PING",
                after: Duration::from_millis(500),
            },
            RedisError::Connect {
                addr: addr.clone(),
                reason: "Connection refused (os error 111)".into(),
            },
            RedisError::Auth {
                addr: addr.clone(),
                reason: "WRONGPASS invalid username-password pair".into(),
            },
            RedisError::Command {
                addr: addr.clone(),
                command: "REPLICAOF",
                reason: "ERR x".into(),
            },
            RedisError::Info {
                addr: addr.clone(),
                source: InfoError::Missing {
                    field: "role".into(),
                },
            },
            RedisError::NotPromoted {
                addr: addr.clone(),
                role: "slave".into(),
            },
        ];
        for e in errors {
            assert!(e.to_string().starts_with("127.0.0.1:6379: "), "{e}");
            assert_eq!(e.addr(), &addr);
        }
        let e = RedisError::Timeout {
            addr,
            during: "PING",
            after: Duration::from_millis(500),
        };
        assert_eq!(e.to_string(), "127.0.0.1:6379: PING timed out after 500ms");
    }
}
