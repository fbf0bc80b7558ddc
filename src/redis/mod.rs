//! Redis shell: the only user of the `redis` crate.
//!
//! Owns talking to Redis instances: one [`Instance`] per monitored address, with
//! a lazily (re)connected dedicated connection, used for probes (`PING`,
//! `INFO`) and for the reconfiguration commands of a failover (promote a
//! replica, repoint a replica). Parsing of `INFO` lives in [`info`] (pure), the
//! error type in [`error`].
//!
//! Guarantees:
//! - every round trip (connecting and authenticating included) is bounded by the
//!   instance timeout: `ping` and `info` return within it, `promote` and
//!   `replicate_from` within a few multiples of it (one per command);
//! - after any error the connection is dropped, so the next call reconnects;
//!   a cached connection found broken (e.g. closed by `CLIENT KILL`) is
//!   re-established once, transparently, within the same timeout;
//! - passwords are sent only in `AUTH` and never appear in errors or logs.

pub mod error;
pub mod info;
pub mod switchover;

pub use error::RedisError;
pub use info::{parse_info, InfoError};

use crate::config::RedisAuth;
use crate::core::types::{Addr, InstanceInfo};
use ::redis::aio::MultiplexedConnection;
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo,
    Value,
};
use std::fmt;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Name our connections give themselves (`CLIENT SETNAME`), visible in
/// `CLIENT LIST` on the instances.
pub const CLIENT_NAME: &str = "raftinel";

/// Error replies to `PING` that still prove the instance is alive (as in
/// Sentinel): loading its dataset, replica without a master link
/// (`replica-serve-stale-data no`), or busy running a script.
const VALID_PING_ERRORS: [&str; 3] = ["LOADING", "MASTERDOWN", "BUSY"];

/// `CONFIG REWRITE` on an instance started without a config file.
const NO_CONFIG_FILE: &str = "running without a config file";

/// `AUTH` sent to an instance that has no password configured: accepted
/// (with a warning), as Sentinel does, so that a partly password-protected
/// group is still monitored.
const NO_PASSWORD_CONFIGURED: &str = "without any password configured";

/// One Redis instance and our connection to it.
pub struct Instance {
    addr: Addr,
    auth: RedisAuth,
    timeout: Duration,
    conn: Option<MultiplexedConnection>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("addr", &self.addr)
            .field("username", &self.auth.username)
            .field("password", &self.auth.password.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

/// An error reply from the server: its code (`ERR`, `LOADING`, `WRONGPASS`,
/// ...) and the whole line (`code detail`).
#[derive(Debug)]
struct ServerReply {
    code: String,
    text: String,
}

impl ServerReply {
    fn from_server_error(e: &::redis::ServerError) -> Self {
        Self::new(e.code(), e.details())
    }

    fn new(code: &str, details: Option<&str>) -> Self {
        let text = match details {
            Some(d) if !d.is_empty() => format!("{code} {d}"),
            _ => code.to_string(),
        };
        ServerReply {
            code: code.to_string(),
            text,
        }
    }

    fn is_auth(&self) -> bool {
        self.code == "NOAUTH" || self.code == "WRONGPASS"
    }
}

/// Sends one command; error replies come back as `Ok(Err(_))`, transport
/// failures as `Err(_)`.
async fn send(
    conn: &mut MultiplexedConnection,
    cmd: &Cmd,
) -> Result<Result<Value, ServerReply>, ::redis::RedisError> {
    match conn.send_packed_command(cmd).await {
        Ok(Value::ServerError(e)) => Ok(Err(ServerReply::from_server_error(&e))),
        Ok(v) => Ok(Ok(v)),
        Err(e) => match (e.kind(), e.code()) {
            (::redis::ErrorKind::Server(_), Some(code))
            | (::redis::ErrorKind::Extension, Some(code)) => {
                Ok(Err(ServerReply::new(code, e.detail())))
            }
            _ => Err(e),
        },
    }
}

/// The text of a string-like reply.
fn reply_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".to_string()),
        _ => None,
    }
}

/// A command from its name and arguments.
fn cmd(args: &[&str]) -> Cmd {
    let mut c = Cmd::new();
    for a in args {
        c.arg(*a);
    }
    c
}

impl Instance {
    /// An instance at `addr`. Nothing is sent until the first call.
    pub fn new(addr: Addr, auth: RedisAuth, timeout: Duration) -> Self {
        Instance {
            addr,
            auth,
            timeout,
            conn: None,
        }
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The bound of one round trip.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether a connection is currently cached.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Drops the cached connection; the next call reconnects.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// `PING`. `Ok(())` on a valid reply: `PONG`, or the error replies Sentinel
    /// counts as valid (`-LOADING`, `-MASTERDOWN`, `-BUSY`).
    pub async fn ping(&mut self) -> Result<(), RedisError> {
        let result = self.ping_inner().await;
        self.reset_on_err(result)
    }

    /// `INFO server replication`, parsed.
    pub async fn info(&mut self) -> Result<InstanceInfo, RedisError> {
        let result = self.info_inner().await;
        self.reset_on_err(result)
    }

    /// Full `INFO` (default sections), parsed, with its text (for metrics
    /// and alerts).
    pub async fn info_full(&mut self) -> Result<(InstanceInfo, String), RedisError> {
        let result = async {
            let reply = self.call("INFO", &cmd(&["INFO"])).await?;
            let text = reply_text(&reply).ok_or_else(|| self.unexpected("INFO", &reply))?;
            let info = info::parse_info(&text).map_err(|source| RedisError::Info {
                addr: self.addr.clone(),
                source,
            })?;
            Ok((info, text))
        }
        .await;
        self.reset_on_err(result)
    }

    /// Makes the instance a master: `REPLICAOF NO ONE`, then `ROLE` must report
    /// `master` (else [`RedisError::NotPromoted`]); then `CONFIG REWRITE` and
    /// `CLIENT KILL TYPE normal` (our own connection is skipped), whose failures
    /// are logged but do not fail the promotion.
    pub async fn promote(&mut self) -> Result<(), RedisError> {
        let result = self.promote_inner().await;
        self.reset_on_err(result)
    }

    /// Makes the instance replicate from `master`: `REPLICAOF host port`; then
    /// `CONFIG REWRITE` and `CLIENT KILL TYPE normal`, whose failures are logged
    /// but do not fail the call.
    pub async fn replicate_from(&mut self, master: &Addr) -> Result<(), RedisError> {
        let result = self.replicate_from_inner(master).await;
        self.reset_on_err(result)
    }

    /// `CLIENT PAUSE <ms> WRITE`: clients that try to write block until the
    /// pause ends; reads, INFO and replication go on.
    pub async fn pause_writes(&mut self, ms: u64) -> Result<(), RedisError> {
        let ms = ms.to_string();
        let result = self
            .call("CLIENT PAUSE", &cmd(&["CLIENT", "PAUSE", &ms, "WRITE"]))
            .await
            .map(|_| ());
        self.reset_on_err(result)
    }

    /// `CONFIG GET name`: the value, or `None` if the server has no such
    /// parameter.
    pub async fn config_get(&mut self, name: &str) -> Result<Option<String>, RedisError> {
        let result = match self
            .call("CONFIG GET", &cmd(&["CONFIG", "GET", name]))
            .await
        {
            Ok(Value::Array(items)) => Ok(items.get(1).and_then(reply_text)),
            Ok(Value::Map(pairs)) => Ok(pairs.first().and_then(|(_, v)| reply_text(v))),
            Ok(other) => Err(self.unexpected("CONFIG GET", &other)),
            Err(e) => Err(e),
        };
        self.reset_on_err(result)
    }

    /// `CONFIG SET name value`, then `CONFIG REWRITE` (best effort) so the
    /// value a restart finds is the one in force.
    pub async fn config_set(&mut self, name: &str, value: &str) -> Result<(), RedisError> {
        let result = self
            .call("CONFIG SET", &cmd(&["CONFIG", "SET", name, value]))
            .await
            .map(|_| ());
        if result.is_ok() {
            self.config_rewrite().await;
        }
        self.reset_on_err(result)
    }

    /// `CLIENT UNPAUSE`.
    pub async fn unpause(&mut self) -> Result<(), RedisError> {
        let result = self
            .call("CLIENT UNPAUSE", &cmd(&["CLIENT", "UNPAUSE"]))
            .await
            .map(|_| ());
        self.reset_on_err(result)
    }

    fn reset_on_err<T>(&mut self, result: Result<T, RedisError>) -> Result<T, RedisError> {
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn ping_inner(&mut self) -> Result<(), RedisError> {
        match self.round_trip("PING", &cmd(&["PING"])).await? {
            Ok(v) if reply_text(&v).as_deref() == Some("PONG") => Ok(()),
            Ok(v) => Err(self.unexpected("PING", &v)),
            Err(reply) if VALID_PING_ERRORS.contains(&reply.code.as_str()) => {
                debug!(addr = %self.addr, reply = %reply.text, "valid PING error reply");
                Ok(())
            }
            Err(reply) => Err(self.refused("PING", reply)),
        }
    }

    async fn info_inner(&mut self) -> Result<InstanceInfo, RedisError> {
        let reply = match self
            .round_trip("INFO", &cmd(&["INFO", "server", "replication"]))
            .await?
        {
            // Before 7.0, INFO takes a single section: fall back to the
            // default sections, which include both.
            Err(reply) if reply.text.contains("syntax error") => {
                debug!(addr = %self.addr, "INFO with two sections refused, using plain INFO");
                self.call("INFO", &cmd(&["INFO"])).await?
            }
            Err(reply) => return Err(self.refused("INFO", reply)),
            Ok(v) => v,
        };
        let text = reply_text(&reply).ok_or_else(|| self.unexpected("INFO", &reply))?;
        info::parse_info(&text).map_err(|source| RedisError::Info {
            addr: self.addr.clone(),
            source,
        })
    }

    async fn promote_inner(&mut self) -> Result<(), RedisError> {
        self.call("REPLICAOF", &cmd(&["REPLICAOF", "NO", "ONE"]))
            .await?;
        let role = self.role().await?;
        if role != "master" {
            return Err(RedisError::NotPromoted {
                addr: self.addr.clone(),
                role,
            });
        }
        info!(addr = %self.addr, "promoted to master");
        self.config_rewrite().await;
        self.kill_clients().await;
        Ok(())
    }

    async fn replicate_from_inner(&mut self, master: &Addr) -> Result<(), RedisError> {
        let port = master.port.to_string();
        self.call("REPLICAOF", &cmd(&["REPLICAOF", &master.host, &port]))
            .await?;
        info!(addr = %self.addr, master = %master, "now replicating");
        self.config_rewrite().await;
        self.kill_clients().await;
        Ok(())
    }

    /// The first element of the `ROLE` reply (`master`, `slave`, `sentinel`).
    async fn role(&mut self) -> Result<String, RedisError> {
        let v = self.call("ROLE", &cmd(&["ROLE"])).await?;
        match &v {
            Value::Array(items) => items.first().and_then(reply_text),
            _ => None,
        }
        .ok_or_else(|| self.unexpected("ROLE", &v))
    }

    /// `CONFIG REWRITE`, so the new role survives a restart. Failures are
    /// logged: the role change itself already happened.
    async fn config_rewrite(&mut self) {
        match self
            .round_trip("CONFIG REWRITE", &cmd(&["CONFIG", "REWRITE"]))
            .await
        {
            Ok(Ok(_)) => debug!(addr = %self.addr, "config rewritten"),
            Ok(Err(reply)) if reply.text.contains(NO_CONFIG_FILE) => {
                debug!(addr = %self.addr, "no config file to rewrite")
            }
            Ok(Err(reply)) => {
                warn!(addr = %self.addr, error = %reply.text, "CONFIG REWRITE failed")
            }
            Err(e) => warn!(error = %e, "CONFIG REWRITE failed"),
        }
    }

    /// `CLIENT KILL TYPE normal` (default `SKIPME yes`: our own connection
    /// survives), so clients reconnect and rediscover the topology.
    async fn kill_clients(&mut self) {
        match self
            .round_trip("CLIENT KILL", &cmd(&["CLIENT", "KILL", "TYPE", "normal"]))
            .await
        {
            Ok(Ok(v)) => debug!(addr = %self.addr, killed = ?v, "clients disconnected"),
            Ok(Err(reply)) => {
                warn!(addr = %self.addr, error = %reply.text, "CLIENT KILL failed")
            }
            Err(e) => warn!(error = %e, "CLIENT KILL failed"),
        }
    }

    /// One round trip whose error replies are errors.
    async fn call(&mut self, what: &'static str, cmd: &Cmd) -> Result<Value, RedisError> {
        match self.round_trip(what, cmd).await? {
            Ok(v) => Ok(v),
            Err(reply) => Err(self.refused(what, reply)),
        }
    }

    /// One round trip, connecting first if needed, bounded by the timeout.
    /// A transport failure (or timeout) drops the connection.
    async fn round_trip(
        &mut self,
        what: &'static str,
        cmd: &Cmd,
    ) -> Result<Result<Value, ServerReply>, RedisError> {
        let result =
            match tokio::time::timeout(self.timeout, self.round_trip_unbounded(what, cmd)).await {
                Ok(r) => r,
                Err(_) => Err(RedisError::Timeout {
                    addr: self.addr.clone(),
                    during: what,
                    after: self.timeout,
                }),
            };
        self.reset_on_err(result)
    }

    async fn round_trip_unbounded(
        &mut self,
        what: &'static str,
        cmd: &Cmd,
    ) -> Result<Result<Value, ServerReply>, RedisError> {
        if let Some(conn) = self.conn.as_mut() {
            match send(conn, cmd).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    // Most likely closed on the server side (CLIENT KILL,
                    // timeout, restart): try once more on a fresh connection.
                    debug!(addr = %self.addr, error = %e, "cached connection failed, reconnecting");
                    self.conn = None;
                }
            }
        }
        let mut conn = self.connect().await?;
        let result = send(&mut conn, cmd)
            .await
            .map_err(|e| self.transport(what, &e))?;
        self.conn = Some(conn);
        Ok(result)
    }

    /// A new connection, authenticated and named.
    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let connect_err = |e: ::redis::RedisError| RedisError::Connect {
            addr: self.addr.clone(),
            reason: e.to_string(),
        };
        // No credentials in the connection info: AUTH is sent below, so that
        // the server's refusal is reported as it is.
        let info = ConnectionAddr::Tcp(self.addr.host.clone(), self.addr.port)
            .into_connection_info()
            .map_err(connect_err)?
            .set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name());
        let client = Client::open(info).map_err(connect_err)?;
        // The caller's tokio timeout bounds everything; no inner timeouts.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(connect_err)?;

        if let Some(password) = &self.auth.password {
            let mut auth = ::redis::cmd("AUTH");
            if let Some(user) = &self.auth.username {
                auth.arg(user);
            }
            auth.arg(password.expose());
            match send(&mut conn, &auth).await {
                Ok(Ok(_)) => {}
                Ok(Err(reply)) if reply.text.contains(NO_PASSWORD_CONFIGURED) => {
                    warn!(addr = %self.addr, "a password is configured but the instance requires none")
                }
                Ok(Err(reply)) => {
                    return Err(RedisError::Auth {
                        addr: self.addr.clone(),
                        reason: reply.text,
                    })
                }
                Err(e) => return Err(self.transport("AUTH", &e)),
            }
        }

        match send(&mut conn, &cmd(&["CLIENT", "SETNAME", CLIENT_NAME])).await {
            Ok(Ok(_)) => {}
            // Not worth failing for (e.g. an ACL user without CLIENT).
            Ok(Err(reply)) => {
                debug!(addr = %self.addr, error = %reply.text, "CLIENT SETNAME refused")
            }
            Err(e) => return Err(self.transport("CLIENT SETNAME", &e)),
        }
        debug!(addr = %self.addr, "connected");
        Ok(conn)
    }

    /// An error reply to `what`.
    fn refused(&self, what: &'static str, reply: ServerReply) -> RedisError {
        if reply.is_auth() {
            RedisError::Auth {
                addr: self.addr.clone(),
                reason: reply.text,
            }
        } else {
            RedisError::Command {
                addr: self.addr.clone(),
                command: what,
                reason: reply.text,
            }
        }
    }

    /// A transport failure during `what`.
    fn transport(&self, what: &'static str, e: &::redis::RedisError) -> RedisError {
        RedisError::Command {
            addr: self.addr.clone(),
            command: what,
            reason: e.to_string(),
        }
    }

    /// A reply of the wrong shape to `what`.
    fn unexpected(&self, what: &'static str, v: &Value) -> RedisError {
        RedisError::Command {
            addr: self.addr.clone(),
            command: what,
            reason: format!("unexpected reply {v:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon drives instances from spawned tasks.
    #[test]
    fn futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        let mut i = Instance::new(
            Addr::new("127.0.0.1", 1),
            RedisAuth::default(),
            Duration::from_millis(1),
        );
        is_send(&i);
        is_send(&i.ping());
        is_send(&i.info());
        is_send(&i.promote());
        let master = Addr::new("127.0.0.1", 2);
        is_send(&i.replicate_from(&master));
    }

    #[test]
    fn debug_hides_the_password() {
        let auth = RedisAuth {
            username: Some("raft".into()),
            password: Some(crate::config::Secret::new("hunter2")),
        };
        let i = Instance::new(Addr::new("h", 1), auth, Duration::from_secs(1));
        let shown = format!("{i:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("raft"), "{shown}");
    }

    #[test]
    fn server_reply_text() {
        let r = ServerReply::new("WRONGPASS", Some("invalid username-password pair"));
        assert_eq!(r.text, "WRONGPASS invalid username-password pair");
        assert!(r.is_auth());
        assert_eq!(ServerReply::new("BUSY", None).text, "BUSY");
    }
}
