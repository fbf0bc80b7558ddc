//! [`DiscoverySettings`]: the validated `[discovery]` table (built by
//! `config.rs`) and the limits that protect the daemon from its clients.

use crate::config::Secret;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Default `[discovery] listen`: every interface, Sentinel's port.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT);
/// Redis Sentinel's port.
pub const DEFAULT_PORT: u16 = 26379;
/// Default `max_clients` (Redis' `maxclients`).
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Default `max_request_bytes`: 1 MiB. The biggest legitimate request
/// (`HELLO 3 AUTH <user> <password> SETNAME <name>`) is a few hundred bytes;
/// Redis' own limit (512 MiB) would let 10,000 clients pin 5 TB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1 << 20;
/// Smallest accepted `max_request_bytes`.
pub const MIN_MAX_REQUEST_BYTES: usize = 1024;
/// Largest accepted `max_request_bytes` (Redis' `proto-max-bulk-len`).
pub const MAX_MAX_REQUEST_BYTES: usize = 512 << 20;
/// Default `subscriber_buffer_bytes`: pub/sub messages queued for one slow
/// subscriber before it is disconnected (Redis: `client-output-buffer-limit
/// pubsub`). Events are under 300 bytes, so this is thousands of events.
pub const DEFAULT_SUBSCRIBER_BUFFER_BYTES: usize = 1 << 20;
/// Smallest accepted `subscriber_buffer_bytes`.
pub const MIN_SUBSCRIBER_BUFFER_BYTES: usize = 1024;
/// Default [`DiscoverySettings::peer_timeout`] (the default Raft election
/// timeout: 10 ticks of 100 ms).
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_millis(1000);

/// Settings of the Sentinel-compatible port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverySettings {
    /// Where to listen (`[discovery] listen`). `serve` takes an already bound
    /// listener; the daemon binds this address.
    pub listen: SocketAddr,
    /// ACL-style user name clients must give (`AUTH <username> <password>`).
    /// None: the user is `default` (`AUTH <password>` works, like `requirepass`).
    pub username: Option<String>,
    /// Password clients must give. None: no authentication.
    pub password: Option<Secret>,
    /// Connections beyond this many are answered
    /// `-ERR max number of clients reached` and closed.
    pub max_clients: usize,
    /// Largest request (one command with all its arguments, or one inline
    /// line) accepted; a bulk or array length beyond it is a protocol error
    /// and closes the connection. Also bounds what is buffered per client.
    pub max_request_bytes: usize,
    /// Close clients silent for this long (None: never). Subscribers are
    /// exempt, as in Redis.
    pub idle_timeout: Option<Duration>,
    /// Bytes of undelivered pub/sub messages a subscriber may have queued;
    /// beyond it the subscriber is disconnected so it never holds up others.
    pub subscriber_buffer_bytes: usize,
    /// A peer daemon heard from within this long counts as usable
    /// (`SENTINEL CKQUORUM`) and is not flagged `s_down` in
    /// `SENTINEL SENTINELS`. `config.rs` sets it to the Raft election timeout.
    pub peer_timeout: Duration,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            listen: DEFAULT_LISTEN,
            username: None,
            password: None,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            idle_timeout: None,
            subscriber_buffer_bytes: DEFAULT_SUBSCRIBER_BUFFER_BYTES,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
        }
    }
}

impl DiscoverySettings {
    /// Whether clients must authenticate.
    pub fn auth_required(&self) -> bool {
        self.password.is_some()
    }

    /// The user clients authenticate as: the configured one, or `default`.
    pub fn user(&self) -> &str {
        self.username.as_deref().unwrap_or("default")
    }
}
