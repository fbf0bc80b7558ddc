//! The Sentinel-compatible discovery port.
//!
//! Existing Redis Sentinel clients (redis-py, go-redis, Jedis, Lettuce,
//! redis-rs, redis-cli) point at the daemons instead of at sentinels and find
//! the current master with Sentinel's commands, reply shapes and events, in
//! RESP2 or RESP3. The server answers only from the [`view::DiscoveryView`]
//! the daemon publishes, and names no master while that view is not fresh
//! (ARCHITECTURE.md, invariant 3). `docs/sentinel-compat.md` lists what is
//! supported.
//!
//! Files: `server` (accept loop, shared state), `conn` (one client: I/O,
//! pipelining, limits, pub/sub delivery), `request` (request framing and its
//! guard), `reply` (RESP2/RESP3 encoding), `commands` (dispatch), `sentinel`
//! (SENTINEL subcommands and records), `info` (INFO), `pubsub`, `clients`
//! (CLIENT LIST/KILL, max clients), `table` (COMMAND), `settings`.

mod clients;
mod commands;
mod conn;
mod info;
mod pubsub;
mod reply;
mod request;
mod sentinel;
mod server;
mod settings;
mod table;
pub mod view;

#[cfg(test)]
mod tests;

pub use commands::FAILOVER_REPLY_TIMEOUT;
pub use info::REDIS_VERSION;
pub use sentinel::{IDONTKNOW, INPROG, NOGOODSLAVE, NO_SUCH_MASTER};
pub use server::serve;
pub use settings::{
    DiscoverySettings, DEFAULT_LISTEN, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_PEER_TIMEOUT, DEFAULT_PORT, DEFAULT_SUBSCRIBER_BUFFER_BYTES, MAX_MAX_REQUEST_BYTES,
    MIN_MAX_REQUEST_BYTES, MIN_SUBSCRIBER_BUFFER_BYTES,
};
