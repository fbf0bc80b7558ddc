//! Configuration: the TOML file (`RawConfig`, serde) validated into [`Config`].
//!
//! Owns reading the file and resolving secrets (inline, `*_env`, `*_file`). Every
//! error names the file, the key and, where the TOML parser knows it, the line.
//! Secrets are wrapped in [`Secret`], whose `Debug`/`Display` never print them.

use crate::core::types::{Addr, NodeId};
use crate::discovery::DiscoverySettings;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

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
    /// Address Sentinel clients reach that daemon's discovery port at
    /// (`discovery` key; listed by `SENTINEL SENTINELS`).
    pub discovery: Option<Addr>,
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
#[derive(Clone, Debug, PartialEq)]
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
    /// The Sentinel-compatible discovery port (`[discovery]`); `None` when
    /// `enabled = false`.
    pub discovery: Option<DiscoverySettings>,
    /// The HTTP API (`http_listen`); `None`: no HTTP server.
    pub http: Option<HttpSettings>,
    /// Notification channels.
    pub notify: crate::notify::NotifyConfig,
    /// Built-in alert rules.
    pub alerts: crate::alerts::AlertRules,
    /// Fence the local master after this long without quorum contact
    /// (default: half the shortest `down_after_ms`; always less than it).
    pub fence_after: Duration,
}

/// The HTTP API's settings (`http_listen`, `http_token*`, `http_open_read`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Bearer token of the mutating endpoints (and of the read-only ones when
    /// `open_read` is false). `None`: mutating endpoints are refused.
    pub token: Option<Secret>,
    /// Read-only and health endpoints need no token.
    pub open_read: bool,
}

impl Config {
    pub fn peer(&self, id: NodeId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id)
    }
}

// ---------------------------------------------------------------------------
// Defaults and limits
// ---------------------------------------------------------------------------

/// Default `log_level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default `redis_timeout_ms`.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 500;
/// Default `[raft] tick_ms`.
pub const DEFAULT_TICK_MS: u64 = 100;
/// Default `[raft] election_ticks`.
pub const DEFAULT_ELECTION_TICKS: usize = 10;
/// Default `[raft] heartbeat_ticks`.
pub const DEFAULT_HEARTBEAT_TICKS: usize = 2;
/// Default `[[group]] down_after_ms` (Sentinel's `down-after-milliseconds`).
pub const DEFAULT_DOWN_AFTER_MS: u64 = 30_000;
/// Smallest accepted `down_after_ms`.
pub const MIN_DOWN_AFTER_MS: u64 = 100;
/// Default `[[group]] failover_timeout_ms` (Sentinel's `failover-timeout`).
pub const DEFAULT_FAILOVER_TIMEOUT_MS: u64 = 180_000;
/// Default `[[group]] parallel_syncs`.
pub const DEFAULT_PARALLEL_SYNCS: usize = 1;
/// Upper bound of the default `ping_interval_ms` (`min(down_after_ms / 10, 1000)`).
pub const MAX_DEFAULT_PING_INTERVAL_MS: u64 = 1_000;
/// Shortest accepted shared peer secret, in bytes.
pub const MIN_PEER_SECRET_LEN: usize = 16;
/// Shortest accepted `http_token`, in bytes.
pub const MIN_HTTP_TOKEN_LEN: usize = 16;
/// Largest accepted `[raft] tick_ms`.
pub const MAX_TICK_MS: u64 = 60_000;
/// Largest accepted `[raft] election_ticks`.
pub const MAX_ELECTION_TICKS: usize = 10_000;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a config file was rejected. The message names the file, the key (array
/// tables indexed from 0: `group[1].quorum` is the second `[[group]]`), the line
/// where known, and what was expected. It never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file itself could not be read.
    #[error("cannot read config file {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected shape (unknown
    /// key, wrong type, missing required key).
    #[error("{}: {}{message}", location(.path, *.line, *.column), key_prefix(.key))]
    Toml {
        path: PathBuf,
        /// 1-based.
        line: Option<usize>,
        /// 1-based, in characters.
        column: Option<usize>,
        /// Best-effort dotted key path, e.g. `peer[1].addr`.
        key: Option<String>,
        message: String,
    },
    /// A value is well-formed TOML but not acceptable (duplicate id, bad address,
    /// quorum out of range...).
    #[error("{}: {key}: {message}", location(.path, *.line, None))]
    Invalid {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        message: String,
    },
    /// A secret is missing, or its environment variable / file could not be read.
    #[error("{}: {key}: {message}", location(.path, *.line, None))]
    Secret {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        message: String,
    },
}

impl ConfigError {
    /// The config file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Read { path, .. }
            | ConfigError::Toml { path, .. }
            | ConfigError::Invalid { path, .. }
            | ConfigError::Secret { path, .. } => path,
        }
    }

    /// The 1-based line of the offending key or value, where known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Toml { line, .. }
            | ConfigError::Invalid { line, .. }
            | ConfigError::Secret { line, .. } => *line,
        }
    }

    /// The dotted key path (`group[0].quorum`), where known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Toml { key, .. } => key.as_deref(),
            ConfigError::Invalid { key, .. } | ConfigError::Secret { key, .. } => Some(key),
        }
    }
}

fn location(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}, line {l}, column {c}", path.display()),
        (Some(l), None) => format!("{}, line {l}", path.display()),
        _ => path.display().to_string(),
    }
}

fn key_prefix(key: &Option<String>) -> String {
    match key {
        Some(k) if !k.is_empty() => format!("{k}: "),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Raw TOML shape
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_id: Spanned<u64>,
    data_dir: Spanned<String>,
    #[serde(default)]
    peer_listen: Option<Spanned<String>>,
    #[serde(default)]
    local_redis: Option<Spanned<String>>,
    #[serde(default)]
    log_level: Option<Spanned<String>>,
    /// `toml::Value`, not `String`: a wrongly typed secret must not be echoed
    /// back by serde's "invalid type: integer `...`" message.
    #[serde(default)]
    peer_secret: Option<Spanned<toml::Value>>,
    #[serde(default)]
    peer_secret_env: Option<Spanned<String>>,
    #[serde(default)]
    peer_secret_file: Option<Spanned<String>>,
    #[serde(default)]
    redis_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    http_listen: Option<Spanned<String>>,
    #[serde(default)]
    http_token: Option<Spanned<toml::Value>>,
    #[serde(default)]
    http_token_env: Option<Spanned<String>>,
    #[serde(default)]
    http_token_file: Option<Spanned<String>>,
    #[serde(default)]
    http_open_read: Option<Spanned<bool>>,
    #[serde(default)]
    raft: Option<RawRaft>,
    #[serde(default)]
    discovery: Option<Spanned<RawDiscovery>>,
    #[serde(default)]
    redis: Option<RawAuth>,
    #[serde(default)]
    peer: Vec<RawPeer>,
    #[serde(default)]
    group: Vec<Spanned<RawGroup>>,
    /// `[[notify]]` channels (see docs/notifications.md).
    #[serde(default)]
    notify: Vec<crate::notify::RawChannel>,
    /// `[alerts]` thresholds of the built-in alerts.
    #[serde(default)]
    alerts: Option<crate::alerts::RawAlerts>,
    #[serde(default)]
    fence_after_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRaft {
    #[serde(default)]
    tick_ms: Option<Spanned<u64>>,
    #[serde(default)]
    election_ticks: Option<Spanned<usize>>,
    #[serde(default)]
    heartbeat_ticks: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    username: Option<Spanned<String>>,
    #[serde(default)]
    password: Option<Spanned<toml::Value>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    id: Spanned<u64>,
    addr: Spanned<String>,
    #[serde(default)]
    discovery: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    #[serde(default)]
    enabled: Option<Spanned<bool>>,
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    username: Option<Spanned<String>>,
    #[serde(default)]
    password: Option<Spanned<toml::Value>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    max_clients: Option<Spanned<usize>>,
    #[serde(default)]
    max_request_bytes: Option<Spanned<usize>>,
    #[serde(default)]
    idle_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    subscriber_buffer_bytes: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    master: Spanned<String>,
    #[serde(default)]
    replicas: Vec<Spanned<String>>,
    #[serde(default)]
    down_after_ms: Option<Spanned<u64>>,
    #[serde(default)]
    quorum: Option<Spanned<usize>>,
    #[serde(default)]
    failover_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    parallel_syncs: Option<Spanned<usize>>,
    #[serde(default)]
    ping_interval_ms: Option<Spanned<u64>>,
    #[serde(default)]
    username: Option<Spanned<String>>,
    #[serde(default)]
    password: Option<Spanned<toml::Value>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
}

/// The auth keys of `[redis]` or of one `[[group]]`, borrowed.
#[derive(Clone, Copy, Default)]
struct AuthKeys<'a> {
    username: Option<&'a Spanned<String>>,
    password: Option<&'a Spanned<toml::Value>>,
    password_env: Option<&'a Spanned<String>>,
    password_file: Option<&'a Spanned<String>>,
}

impl<'a> From<&'a RawAuth> for AuthKeys<'a> {
    fn from(r: &'a RawAuth) -> Self {
        AuthKeys {
            username: r.username.as_ref(),
            password: r.password.as_ref(),
            password_env: r.password_env.as_ref(),
            password_file: r.password_file.as_ref(),
        }
    }
}

impl<'a> From<&'a RawGroup> for AuthKeys<'a> {
    fn from(r: &'a RawGroup) -> Self {
        AuthKeys {
            username: r.username.as_ref(),
            password: r.password.as_ref(),
            password_env: r.password_env.as_ref(),
            password_file: r.password_file.as_ref(),
        }
    }
}

/// Auth of one level (`[redis]` or a group) before merging.
#[derive(Default)]
struct PartialAuth {
    /// Value, key path, span.
    username: Option<(String, String, Range<usize>)>,
    password: Option<Secret>,
}

// ---------------------------------------------------------------------------
// Loading and validation
// ---------------------------------------------------------------------------

impl Config {
    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text` as if read from `path` (used in messages and
    /// as the base of relative paths). Does not read `path`, but does read
    /// `*_env` environment variables and `*_file` secret files.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ctx { path, text, base }.config(raw)
    }

    /// A human-readable summary for `raftinel check-config`. Secrets are shown
    /// as `***` (or `(none)` when not set).
    pub fn redacted_summary(&self) -> String {
        use std::fmt::Write as _;
        let ms = |d: Duration| format!("{} ms", d.as_millis());
        let mut s = String::new();
        let _ = writeln!(s, "config file:   {}", self.path.display());
        let _ = writeln!(s, "node_id:       {}", self.node_id);
        let _ = writeln!(s, "data_dir:      {}", self.data_dir.display());
        let _ = writeln!(s, "peer_listen:   {}", self.peer_listen);
        let _ = writeln!(s, "peer_secret:   {}", self.peer_secret);
        let _ = writeln!(
            s,
            "local_redis:   {}",
            self.local_redis
                .as_ref()
                .map_or_else(|| "(none)".to_string(), Addr::to_string)
        );
        let _ = writeln!(s, "log_level:     {}", self.log_level);
        let _ = match &self.discovery {
            Some(d) => writeln!(
                s,
                "discovery:     {} (auth {}, max_clients {}, max_request_bytes {}, idle_timeout {})",
                d.listen,
                match (&d.username, &d.password) {
                    (Some(u), Some(_)) => format!("user {u} / ***"),
                    (None, Some(_)) => "***".to_string(),
                    _ => "(none)".to_string(),
                },
                d.max_clients,
                d.max_request_bytes,
                d.idle_timeout.map_or_else(|| "none".to_string(), ms),
            ),
            None => writeln!(s, "discovery:     (disabled)"),
        };
        let _ = match &self.http {
            Some(h) => writeln!(
                s,
                "http_listen:   {} (token {}, read endpoints {})",
                h.listen,
                if h.token.is_some() {
                    "***"
                } else {
                    "(none): mutating endpoints disabled"
                },
                if h.open_read {
                    "open"
                } else {
                    "need the token"
                }
            ),
            None => writeln!(s, "http_listen:   (none)"),
        };
        let _ = writeln!(s, "redis_timeout: {}", ms(self.redis_timeout));
        let _ = writeln!(
            s,
            "raft:          tick {}, election after {} ticks ({}), heartbeat every {} ticks ({})",
            ms(self.raft.tick),
            self.raft.election_ticks,
            ms(self.raft.election_timeout()),
            self.raft.heartbeat_ticks,
            ms(self.raft.tick * self.raft.heartbeat_ticks as u32),
        );
        let _ = writeln!(s, "peers ({}):", self.peers.len());
        for p in &self.peers {
            let me = if p.id == self.node_id {
                "  (this node)"
            } else {
                ""
            };
            let disc = p
                .discovery
                .as_ref()
                .map_or_else(String::new, |d| format!("  (discovery {d})"));
            let _ = writeln!(s, "  {:>4}  {}{disc}{me}", p.id, p.addr);
        }
        let _ = writeln!(s, "groups ({}):", self.groups.len());
        for g in &self.groups {
            let replicas = if g.replicas.is_empty() {
                "(none configured; discovered from the master)".to_string()
            } else {
                g.replicas
                    .iter()
                    .map(Addr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, "  {}", g.name);
            let _ = writeln!(s, "    master:           {}", g.master);
            let _ = writeln!(s, "    replicas:         {replicas}");
            let _ = writeln!(
                s,
                "    quorum:           {} of {} peers",
                g.quorum,
                self.peers.len()
            );
            let _ = writeln!(s, "    down_after:       {}", ms(g.down_after));
            let _ = writeln!(s, "    ping_interval:    {}", ms(g.ping_interval));
            let _ = writeln!(s, "    failover_timeout: {}", ms(g.failover_timeout));
            let _ = writeln!(s, "    parallel_syncs:   {}", g.parallel_syncs);
            let _ = writeln!(
                s,
                "    username:         {}",
                g.auth.username.as_deref().unwrap_or("(none)")
            );
            let _ = writeln!(
                s,
                "    password:         {}",
                if g.auth.password.is_some() {
                    "***"
                } else {
                    "(none)"
                }
            );
        }
        s
    }
}

/// Turns a toml/serde error into a [`ConfigError::Toml`] without the source
/// snippet `toml`'s own `Display` prints (that line could hold a secret).
fn toml_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let message = err
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let missing = missing_field(&message);
    let (line, column, mut key) = match err.span() {
        // A missing top-level key is reported at the start of the root table
        // (0..0 or 0..end of the top-level keys): no useful position.
        Some(span)
            if !(missing.is_some()
                && span.start == 0
                && (span.is_empty() || !text.starts_with('['))) =>
        {
            let (l, c) = line_col(text, span.start);
            (Some(l), Some(c), key_path_at(text, span.start))
        }
        _ => (None, None, None),
    };
    if let Some(field) = missing {
        key = Some(match key {
            Some(k) if !k.is_empty() => format!("{k}.{field}"),
            _ => field.to_string(),
        });
    }
    ConfigError::Toml {
        path: path.to_path_buf(),
        line,
        column,
        key,
        message,
    }
}

/// `missing field `x`` -> `x`.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(f, _)| f)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// Best-effort dotted key path (`group[1].down_after_ms`) of the key or value at
/// byte `offset`, found by scanning the TOML text up to it: table headers (with
/// the index of each `[[array]]` table, from 0), dotted keys and inline tables.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    enum Frame {
        Table(Option<String>),
        Array(Option<String>),
    }
    let end = offset.min(text.len());
    let mut table: Vec<String> = Vec::new();
    let mut arrays: HashMap<String, usize> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut key_pos = true;
    let mut token = String::new();
    let mut last_key: Option<String> = None;
    let mut i = 0;

    let header =
        |i: usize, arrays: &mut HashMap<String, usize>, table: &mut Vec<String>| -> Option<usize> {
            let rest = &text[i..];
            let (open, close) = if rest.starts_with("[[") {
                ("[[", "]]")
            } else {
                ("[", "]")
            };
            let inner_end = rest.find(close)?;
            let name = normalize_key(&rest[open.len()..inner_end]);
            if open == "[[" {
                *arrays.entry(name.clone()).or_insert(0) += 1;
            }
            let mut rendered = Vec::new();
            let mut prefix = String::new();
            for part in name.split('.') {
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(part);
                match arrays.get(&prefix) {
                    Some(n) => rendered.push(format!("{part}[{}]", n.saturating_sub(1))),
                    None => rendered.push(part.to_string()),
                }
            }
            *table = rendered;
            Some(i + inner_end + close.len())
        };

    while i < end {
        let c = text[i..].chars().next()?;
        match c {
            '#' => {
                i += text[i..].find('\n').unwrap_or(text.len() - i);
                continue;
            }
            '\n' => {
                if stack.is_empty() {
                    key_pos = true;
                    token.clear();
                }
            }
            '"' | '\'' => {
                let (s, next) = read_string(text, i);
                if key_pos {
                    token.push_str(s);
                }
                i = next;
                continue;
            }
            '[' if key_pos && stack.is_empty() && token.trim().is_empty() => {
                match header(i, &mut arrays, &mut table) {
                    Some(next) if next <= end => {
                        i = next;
                        last_key = None;
                        continue;
                    }
                    // The offset is inside the header: the table itself.
                    _ => return Some(table.join(".")),
                }
            }
            '=' if key_pos => {
                last_key = Some(normalize_key(&token));
                token.clear();
                key_pos = false;
            }
            '{' if !key_pos => {
                let key = match stack.last() {
                    Some(Frame::Array(_)) => None,
                    _ => last_key.clone(),
                };
                stack.push(Frame::Table(key));
                key_pos = true;
                token.clear();
            }
            '[' if !key_pos => {
                let key = match stack.last() {
                    Some(Frame::Array(_)) => None,
                    _ => last_key.clone(),
                };
                stack.push(Frame::Array(key));
            }
            '}' | ']' if !stack.is_empty() => {
                stack.pop();
                key_pos = false;
            }
            ',' => {
                if let Some(Frame::Table(_)) = stack.last() {
                    key_pos = true;
                    token.clear();
                }
            }
            _ => {
                if key_pos {
                    token.push(c);
                }
            }
        }
        i += c.len_utf8();
    }

    // The offset is at a table header: the error is about that table.
    if key_pos && stack.is_empty() && token.trim().is_empty() && text[end..].starts_with('[') {
        header(end, &mut arrays, &mut table);
        return Some(table.join("."));
    }

    let mut parts = table;
    for f in &stack {
        if let Frame::Table(Some(k)) | Frame::Array(Some(k)) = f {
            parts.push(k.clone());
        }
    }
    if key_pos {
        let ahead: String = text[end..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect();
        let mut key = token;
        if text[end..].starts_with(['"', '\'']) {
            key.push_str(read_string(text, end).0);
        } else {
            key.push_str(&ahead);
        }
        let key = normalize_key(&key);
        if !key.is_empty() {
            parts.push(key);
        }
    } else if !matches!(stack.last(), Some(Frame::Array(_))) {
        if let Some(k) = last_key {
            parts.push(k);
        }
    }
    let path = parts.join(".");
    (!path.is_empty()).then_some(path)
}

/// The contents of the TOML string starting at `start` and the index after it.
fn read_string(text: &str, start: usize) -> (&str, usize) {
    let rest = &text[start..];
    for delim in ["\"\"\"", "'''"] {
        if let Some(body) = rest.strip_prefix(delim) {
            return match body.find(delim) {
                Some(n) => (&body[..n], start + delim.len() * 2 + n),
                None => (body, text.len()),
            };
        }
    }
    let quote = rest.chars().next().unwrap_or('"');
    let body = &rest[1..];
    let mut escaped = false;
    for (n, c) in body.char_indices() {
        match c {
            '\n' => return (&body[..n], start + 1 + n),
            '\\' if quote == '"' && !escaped => {
                escaped = true;
                continue;
            }
            c if c == quote && !escaped => return (&body[..n], start + 2 + n),
            _ => {}
        }
        escaped = false;
    }
    (body, text.len())
}

/// `group . "a b"` -> `group.a b`.
fn normalize_key(raw: &str) -> String {
    raw.split('.').map(str::trim).collect::<Vec<_>>().join(".")
}

/// Validation context: the file (for messages) and its text (for line numbers).
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    /// Directory relative paths in the file are resolved against.
    base: PathBuf,
}

impl Ctx<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn invalid(
        &self,
        key: impl Into<String>,
        span: Option<&Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            line: span.map(|s| self.line(s)),
            message: message.into(),
        }
    }

    fn secret_err(
        &self,
        key: impl Into<String>,
        span: Option<&Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Secret {
            path: self.path.to_path_buf(),
            key: key.into(),
            line: span.map(|s| self.line(s)),
            message: message.into(),
        }
    }

    fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn addr(&self, key: &str, v: &Spanned<String>) -> Result<Addr, ConfigError> {
        let s = v.get_ref();
        let bad = |why: String| {
            self.invalid(
                key,
                Some(&v.span()),
                format!("expected a host:port address like \"127.0.0.1:6379\", got {s:?} ({why})"),
            )
        };
        if s.chars().any(char::is_whitespace) {
            return Err(bad("contains whitespace".into()));
        }
        s.parse::<Addr>().map_err(|e| bad(e.reason.to_string()))
    }

    fn positive_ms(&self, key: &str, v: &Spanned<u64>) -> Result<Duration, ConfigError> {
        if *v.get_ref() == 0 {
            return Err(self.invalid(
                key,
                Some(&v.span()),
                "expected a positive number of milliseconds, got 0",
            ));
        }
        Ok(Duration::from_millis(*v.get_ref()))
    }

    /// Resolves a secret given as exactly one of `<name>`, `<name>_env`,
    /// `<name>_file` (keys prefixed by `prefix`, e.g. `group[0].`). Returns the
    /// secret, the key it came from and that key's span.
    fn secret(
        &self,
        prefix: &str,
        name: &str,
        inline: Option<&Spanned<toml::Value>>,
        env: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
    ) -> Result<Option<(Secret, String, Range<usize>)>, ConfigError> {
        let key = |suffix: &str| format!("{prefix}{name}{suffix}");
        let given: Vec<(String, Range<usize>)> = [
            inline.map(|v| (key(""), v.span())),
            env.map(|v| (key("_env"), v.span())),
            file.map(|v| (key("_file"), v.span())),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            let names: Vec<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
            let (k, span) = &given[1];
            return Err(self.secret_err(
                k.clone(),
                Some(span),
                format!(
                    "{} are all set; expected at most one of {name}, {name}_env, {name}_file",
                    names.join(" and ")
                ),
            ));
        }
        let value = if let Some(v) = inline {
            let k = key("");
            match v.get_ref() {
                toml::Value::String(s) => (s.clone(), k, v.span()),
                other => {
                    return Err(self.secret_err(
                        k,
                        Some(&v.span()),
                        format!("expected a string, got a {}", other.type_str()),
                    ))
                }
            }
        } else if let Some(v) = env {
            let k = key("_env");
            let var = v.get_ref();
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                return Err(self.secret_err(
                    k,
                    Some(&v.span()),
                    format!("expected the name of an environment variable, got {var:?}"),
                ));
            }
            match std::env::var(var) {
                Ok(s) => (s, k, v.span()),
                Err(std::env::VarError::NotPresent) => {
                    return Err(self.secret_err(
                        k,
                        Some(&v.span()),
                        format!(
                            "environment variable {var} is not set; expected it to hold the {name}"
                        ),
                    ))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(self.secret_err(
                        k,
                        Some(&v.span()),
                        format!("environment variable {var} is not valid UTF-8"),
                    ))
                }
            }
        } else if let Some(v) = file {
            let k = key("_file");
            if v.get_ref().is_empty() {
                return Err(self.secret_err(k, Some(&v.span()), "expected a file path, got \"\""));
            }
            let p = self.resolve_path(v.get_ref());
            match std::fs::read_to_string(&p) {
                Ok(s) => (s.trim_end_matches(['\n', '\r']).to_string(), k, v.span()),
                Err(e) => {
                    return Err(self.secret_err(
                        k,
                        Some(&v.span()),
                        format!("cannot read secret file {}: {e}", p.display()),
                    ))
                }
            }
        } else {
            return Ok(None);
        };
        let (s, k, span) = value;
        if s.is_empty() {
            let what = if k.ends_with("_env") {
                format!(
                    "environment variable {} is empty",
                    env.map_or("", |v| v.get_ref())
                )
            } else if k.ends_with("_file") {
                "the secret file is empty".to_string()
            } else {
                "is empty".to_string()
            };
            return Err(self.secret_err(
                k,
                Some(&span),
                format!("{what}; expected a non-empty {name}"),
            ));
        }
        Ok(Some((Secret::new(s), k, span)))
    }

    fn auth(&self, prefix: &str, keys: AuthKeys<'_>) -> Result<PartialAuth, ConfigError> {
        let username = match keys.username {
            Some(u) => {
                let k = format!("{prefix}username");
                let s = u.get_ref();
                if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(self.invalid(
                        k,
                        Some(&u.span()),
                        format!("expected a non-empty ACL user name without whitespace, got {s:?}"),
                    ));
                }
                Some((s.clone(), k, u.span()))
            }
            None => None,
        };
        let password = self
            .secret(
                prefix,
                "password",
                keys.password,
                keys.password_env,
                keys.password_file,
            )?
            .map(|(s, _, _)| s);
        Ok(PartialAuth { username, password })
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        // Peers.
        if raw.peer.is_empty() {
            return Err(self.invalid(
                "peer",
                None,
                "expected at least one [[peer]] table with id and addr (3 or 5 for fault tolerance), found none",
            ));
        }
        let mut peers: Vec<Peer> = Vec::with_capacity(raw.peer.len());
        let mut peer_addrs: Vec<Addr> = Vec::with_capacity(raw.peer.len());
        for (i, p) in raw.peer.iter().enumerate() {
            let id = *p.id.get_ref();
            if id == 0 {
                return Err(self.invalid(
                    format!("peer[{i}].id"),
                    Some(&p.id.span()),
                    "expected a positive integer, got 0",
                ));
            }
            if let Some(j) = peers.iter().position(|q| q.id == id) {
                return Err(self.invalid(
                    format!("peer[{i}].id"),
                    Some(&p.id.span()),
                    format!(
                        "duplicate peer id {id} (also peer[{j}].id, line {}); expected every [[peer]] id to be unique",
                        self.line(&raw.peer[j].id.span())
                    ),
                ));
            }
            let addr = self.addr(&format!("peer[{i}].addr"), &p.addr)?;
            if let Some(j) = peer_addrs.iter().position(|a| *a == addr) {
                return Err(self.invalid(
                    format!("peer[{i}].addr"),
                    Some(&p.addr.span()),
                    format!(
                        "duplicate peer address {addr} (also peer[{j}].addr, line {}); expected every [[peer]] addr to be unique",
                        self.line(&raw.peer[j].addr.span())
                    ),
                ));
            }
            peer_addrs.push(addr);
            let discovery = match &p.discovery {
                Some(v) => {
                    let key = format!("peer[{i}].discovery");
                    let a = self.addr(&key, v)?;
                    if let Some(j) = peers.iter().position(|q| q.discovery.as_ref() == Some(&a)) {
                        return Err(self.invalid(
                            key,
                            Some(&v.span()),
                            format!(
                                "duplicate discovery address {a} (also peer[{j}].discovery); expected every daemon's discovery port to be distinct"
                            ),
                        ));
                    }
                    Some(a)
                }
                None => None,
            };
            peers.push(Peer {
                id,
                addr: p.addr.get_ref().clone(),
                discovery,
            });
        }

        // This node.
        let node_id = *raw.node_id.get_ref();
        let Some(me) = raw.peer.iter().position(|p| *p.id.get_ref() == node_id) else {
            let ids: Vec<String> = peers.iter().map(|p| p.id.to_string()).collect();
            return Err(self.invalid(
                "node_id",
                Some(&raw.node_id.span()),
                format!(
                    "expected one of the [[peer]] ids ({}), got {node_id}",
                    ids.join(", ")
                ),
            ));
        };

        let data_dir = raw.data_dir.get_ref();
        if data_dir.trim().is_empty() {
            return Err(self.invalid(
                "data_dir",
                Some(&raw.data_dir.span()),
                "expected a directory path, got \"\"",
            ));
        }
        let data_dir = self.resolve_path(data_dir);

        let peer_listen = match &raw.peer_listen {
            Some(v) => v.get_ref().parse::<SocketAddr>().map_err(|_| {
                self.invalid(
                    "peer_listen",
                    Some(&v.span()),
                    format!(
                        "expected an ip:port socket address like \"0.0.0.0:7001\", got {:?}",
                        v.get_ref()
                    ),
                )
            })?,
            None => {
                let own = &raw.peer[me].addr;
                own.get_ref().parse::<SocketAddr>().map_err(|_| {
                    self.invalid(
                        format!("peer[{me}].addr"),
                        Some(&own.span()),
                        format!(
                            "this node's address {:?} is not ip:port, so peer_listen cannot default to it; expected peer_listen to be set (e.g. peer_listen = \"0.0.0.0:{}\")",
                            own.get_ref(),
                            peer_addrs[me].port
                        ),
                    )
                })?
            }
        };

        let peer_secret = match self.secret(
            "",
            "peer_secret",
            raw.peer_secret.as_ref(),
            raw.peer_secret_env.as_ref(),
            raw.peer_secret_file.as_ref(),
        )? {
            Some((s, k, span)) => {
                if s.expose().len() < MIN_PEER_SECRET_LEN {
                    return Err(self.secret_err(
                        k,
                        Some(&span),
                        format!("the peer secret is too short; expected at least {MIN_PEER_SECRET_LEN} bytes"),
                    ));
                }
                s
            }
            None => {
                return Err(self.secret_err(
                    "peer_secret",
                    None,
                    format!("missing: expected one of peer_secret, peer_secret_env or peer_secret_file (a shared secret of at least {MIN_PEER_SECRET_LEN} bytes, the same on every daemon)"),
                ))
            }
        };

        let local_redis = raw
            .local_redis
            .as_ref()
            .map(|v| self.addr("local_redis", v))
            .transpose()?;

        let log_level = match &raw.log_level {
            Some(v) => {
                let s = v.get_ref().trim();
                if s.is_empty() || tracing_subscriber::EnvFilter::try_new(s).is_err() {
                    return Err(self.invalid(
                        "log_level",
                        Some(&v.span()),
                        format!("expected a tracing filter such as \"info\" or \"raftinel=debug,warn\", got {:?}", v.get_ref()),
                    ));
                }
                s.to_string()
            }
            None => DEFAULT_LOG_LEVEL.to_string(),
        };

        let redis_timeout = match &raw.redis_timeout_ms {
            Some(v) => self.positive_ms("redis_timeout_ms", v)?,
            None => Duration::from_millis(DEFAULT_REDIS_TIMEOUT_MS),
        };

        let raft = self.raft(raw.raft.as_ref())?;
        let discovery = self.discovery(raw.discovery.as_ref(), peer_listen, &raft)?;
        let http = self.http(&raw)?;
        let group_names: Vec<String> = raw
            .group
            .iter()
            .map(|g| g.get_ref().name.get_ref().clone())
            .collect();
        let notify =
            crate::notify::validate_channels(raw.notify.clone(), &self.base, Some(&group_names))
                .map_err(|e| self.notify_err(e))?;
        let alerts = match raw.alerts.clone() {
            Some(a) => a.validate("alerts.").map_err(|e| self.notify_err(e))?,
            None => crate::alerts::AlertRules::default(),
        };

        // Default Redis auth.
        let default_auth = match &raw.redis {
            Some(r) => self.auth("redis.", r.into())?,
            None => PartialAuth::default(),
        };

        // Groups.
        if raw.group.is_empty() {
            return Err(self.invalid(
                "group",
                None,
                "expected at least one [[group]] table (name and master), found none",
            ));
        }
        let mut groups: Vec<GroupConfig> = Vec::with_capacity(raw.group.len());
        // Every configured instance: address, key, line (one instance, one group).
        let mut instances: Vec<(Addr, String, usize)> = Vec::new();
        for (i, g) in raw.group.iter().enumerate() {
            let g = g.get_ref();
            let group = self.group(i, g, peers.len(), &default_auth)?;
            if let Some(j) = groups.iter().position(|o| o.name == group.name) {
                return Err(self.invalid(
                    format!("group[{i}].name"),
                    Some(&g.name.span()),
                    format!(
                        "duplicate group name {:?} (also group[{j}].name, line {}); expected unique names",
                        group.name,
                        self.line(&raw.group[j].get_ref().name.span())
                    ),
                ));
            }
            let mut spans = vec![(format!("group[{i}].master"), &g.master)];
            for (r, v) in g.replicas.iter().enumerate() {
                spans.push((format!("group[{i}].replicas[{r}]"), v));
            }
            let addrs = std::iter::once(&group.master).chain(group.replicas.iter());
            for (addr, (key, v)) in addrs.zip(spans) {
                if let Some((_, other, line)) = instances.iter().find(|(a, _, _)| a == addr) {
                    return Err(self.invalid(
                        key,
                        Some(&v.span()),
                        format!(
                            "{addr} is already configured as {other} (line {line}); expected each Redis instance to appear once"
                        ),
                    ));
                }
                instances.push((addr.clone(), key, self.line(&v.span())));
            }
            groups.push(group);
        }

        let min_down = groups
            .iter()
            .map(|g| g.down_after)
            .min()
            .unwrap_or(Duration::from_millis(1000));
        let fence_after = match &raw.fence_after_ms {
            None => min_down / 2,
            Some(v) => {
                let d = Duration::from_millis(*v.get_ref());
                if d.is_zero() || d >= min_down {
                    return Err(self.invalid(
                        "fence_after_ms",
                        Some(&v.span()),
                        format!(
                            "{} is not below the shortest down_after_ms ({} ms); expected 1..{} so a cut-off master stops taking writes before the majority fails over",
                            v.get_ref(),
                            min_down.as_millis(),
                            min_down.as_millis()
                        ),
                    ));
                }
                d
            }
        };
        Ok(Config {
            path: self.path.to_path_buf(),
            node_id,
            data_dir,
            peer_listen,
            peers,
            peer_secret,
            local_redis,
            raft,
            redis_timeout,
            groups,
            log_level,
            discovery,
            http,
            notify,
            alerts,
            fence_after,
        })
    }

    /// A `[[notify]]` / `[alerts]` error as a config error with its line.
    fn notify_err(&self, e: crate::notify::NotifyConfigError) -> ConfigError {
        if e.secret {
            self.secret_err(e.key, e.span.as_ref(), e.message)
        } else {
            self.invalid(e.key, e.span.as_ref(), e.message)
        }
    }

    /// `http_listen`, `http_token*`, `http_open_read`.
    fn http(&self, raw: &RawConfig) -> Result<Option<HttpSettings>, ConfigError> {
        let token = self.secret(
            "",
            "http_token",
            raw.http_token.as_ref(),
            raw.http_token_env.as_ref(),
            raw.http_token_file.as_ref(),
        )?;
        let Some(listen) = &raw.http_listen else {
            let stray = token
                .as_ref()
                .map(|(_, k, span)| (k.clone(), span.clone()))
                .or_else(|| {
                    let v = raw.http_open_read.as_ref()?;
                    Some(("http_open_read".to_string(), v.span()))
                });
            return match stray {
                Some((k, span)) => Err(self.invalid(
                    k,
                    Some(&span),
                    "has no effect without http_listen; expected http_listen = \"ip:port\" to enable the HTTP API",
                )),
                None => Ok(None),
            };
        };
        let addr = listen.get_ref().parse::<SocketAddr>().map_err(|_| {
            self.invalid(
                "http_listen",
                Some(&listen.span()),
                format!(
                    "expected an ip:port socket address like \"127.0.0.1:8080\", got {:?}",
                    listen.get_ref()
                ),
            )
        })?;
        if let Some((t, k, span)) = &token {
            let t = t.expose();
            if t.len() < MIN_HTTP_TOKEN_LEN {
                return Err(self.secret_err(
                    k.clone(),
                    Some(span),
                    format!(
                        "the http token is too short; expected at least {MIN_HTTP_TOKEN_LEN} bytes"
                    ),
                ));
            }
            if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.secret_err(
                    k.clone(),
                    Some(span),
                    "the http token contains whitespace or control characters; expected a token that fits in an Authorization: Bearer header",
                ));
            }
        }
        let open_read = raw.http_open_read.as_ref().is_none_or(|v| *v.get_ref());
        if let (false, None, Some(v)) = (open_read, &token, &raw.http_open_read) {
            return Err(self.invalid(
                "http_open_read",
                Some(&v.span()),
                "is false but no http_token is set, so no request could be served; expected one of http_token, http_token_env or http_token_file",
            ));
        }
        Ok(Some(HttpSettings {
            listen: addr,
            token: token.map(|(t, _, _)| t),
            open_read,
        }))
    }

    /// `[discovery]`: the Sentinel-compatible port. Absent: enabled with the
    /// defaults; `enabled = false`: `None`.
    fn discovery(
        &self,
        raw: Option<&Spanned<RawDiscovery>>,
        peer_listen: SocketAddr,
        raft: &RaftTiming,
    ) -> Result<Option<DiscoverySettings>, ConfigError> {
        use crate::discovery::{
            DEFAULT_SUBSCRIBER_BUFFER_BYTES, MAX_MAX_REQUEST_BYTES, MIN_MAX_REQUEST_BYTES,
            MIN_SUBSCRIBER_BUFFER_BYTES,
        };
        let mut d = DiscoverySettings {
            peer_timeout: raft.election_timeout(),
            ..DiscoverySettings::default()
        };
        let Some(raw) = raw else {
            return self.discovery_listen_free(d, peer_listen, None);
        };
        let raw = raw.get_ref();
        if raw.enabled.as_ref().is_some_and(|v| !*v.get_ref()) {
            return Ok(None);
        }
        if let Some(v) = &raw.listen {
            d.listen = v.get_ref().parse::<SocketAddr>().map_err(|_| {
                self.invalid(
                    "discovery.listen",
                    Some(&v.span()),
                    format!(
                        "expected an ip:port socket address like \"0.0.0.0:26379\", got {:?}",
                        v.get_ref()
                    ),
                )
            })?;
        }
        let auth = self.auth(
            "discovery.",
            AuthKeys {
                username: raw.username.as_ref(),
                password: raw.password.as_ref(),
                password_env: raw.password_env.as_ref(),
                password_file: raw.password_file.as_ref(),
            },
        )?;
        if let (Some((_, k, span)), None) = (&auth.username, &auth.password) {
            return Err(self.secret_err(
                k.clone(),
                Some(span),
                "an ACL username needs a password; expected one of password, password_env or password_file in [discovery]",
            ));
        }
        d.username = auth.username.map(|(u, _, _)| u);
        d.password = auth.password;
        if let Some(v) = &raw.max_clients {
            if *v.get_ref() == 0 {
                return Err(self.invalid(
                    "discovery.max_clients",
                    Some(&v.span()),
                    "expected at least 1, got 0",
                ));
            }
            d.max_clients = *v.get_ref();
        }
        if let Some(v) = &raw.max_request_bytes {
            if !(MIN_MAX_REQUEST_BYTES..=MAX_MAX_REQUEST_BYTES).contains(v.get_ref()) {
                return Err(self.invalid(
                    "discovery.max_request_bytes",
                    Some(&v.span()),
                    format!(
                        "expected {MIN_MAX_REQUEST_BYTES}..={MAX_MAX_REQUEST_BYTES} bytes, got {}",
                        v.get_ref()
                    ),
                ));
            }
            d.max_request_bytes = *v.get_ref();
        }
        if let Some(v) = &raw.idle_timeout_ms {
            d.idle_timeout = (*v.get_ref() > 0).then(|| Duration::from_millis(*v.get_ref()));
        }
        if let Some(v) = &raw.subscriber_buffer_bytes {
            if *v.get_ref() < MIN_SUBSCRIBER_BUFFER_BYTES {
                return Err(self.invalid(
                    "discovery.subscriber_buffer_bytes",
                    Some(&v.span()),
                    format!(
                        "expected at least {MIN_SUBSCRIBER_BUFFER_BYTES} bytes (default {DEFAULT_SUBSCRIBER_BUFFER_BYTES}), got {}",
                        v.get_ref()
                    ),
                ));
            }
            d.subscriber_buffer_bytes = *v.get_ref();
        }
        let span = raw.listen.as_ref().map(|v| v.span());
        self.discovery_listen_free(d, peer_listen, span)
    }

    /// The discovery port must not be the peer port.
    fn discovery_listen_free(
        &self,
        d: DiscoverySettings,
        peer_listen: SocketAddr,
        span: Option<Range<usize>>,
    ) -> Result<Option<DiscoverySettings>, ConfigError> {
        let overlap = d.listen.port() == peer_listen.port()
            && (d.listen.ip() == peer_listen.ip()
                || d.listen.ip().is_unspecified()
                || peer_listen.ip().is_unspecified());
        if overlap {
            return Err(self.invalid(
                "discovery.listen",
                span.as_ref(),
                format!(
                    "{} overlaps peer_listen = {peer_listen}; expected another port (Sentinel's is {})",
                    d.listen,
                    crate::discovery::DEFAULT_PORT
                ),
            ));
        }
        Ok(Some(d))
    }

    fn raft(&self, raw: Option<&RawRaft>) -> Result<RaftTiming, ConfigError> {
        let tick_ms = raw.and_then(|r| r.tick_ms.as_ref());
        let election = raw.and_then(|r| r.election_ticks.as_ref());
        let heartbeat = raw.and_then(|r| r.heartbeat_ticks.as_ref());
        let tick = match tick_ms {
            Some(v) if !(1..=MAX_TICK_MS).contains(v.get_ref()) => {
                return Err(self.invalid(
                    "raft.tick_ms",
                    Some(&v.span()),
                    format!(
                        "expected 1..={MAX_TICK_MS} milliseconds, got {}",
                        v.get_ref()
                    ),
                ))
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_TICK_MS,
        };
        let heartbeat_ticks = match heartbeat {
            Some(v) if *v.get_ref() == 0 => {
                return Err(self.invalid(
                    "raft.heartbeat_ticks",
                    Some(&v.span()),
                    "expected at least 1, got 0",
                ))
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_HEARTBEAT_TICKS,
        };
        let election_ticks = election.map_or(DEFAULT_ELECTION_TICKS, |v| *v.get_ref());
        if election_ticks <= heartbeat_ticks || election_ticks > MAX_ELECTION_TICKS {
            let (key, span) = match (election, heartbeat) {
                (Some(e), _) => ("raft.election_ticks", Some(e.span())),
                (None, Some(h)) => ("raft.heartbeat_ticks", Some(h.span())),
                (None, None) => ("raft.election_ticks", None),
            };
            return Err(self.invalid(
                key,
                span.as_ref(),
                format!(
                    "expected election_ticks greater than heartbeat_ticks and at most {MAX_ELECTION_TICKS}, got election_ticks = {election_ticks}, heartbeat_ticks = {heartbeat_ticks}"
                ),
            ));
        }
        Ok(RaftTiming {
            tick: Duration::from_millis(tick),
            election_ticks,
            heartbeat_ticks,
        })
    }

    fn group(
        &self,
        i: usize,
        g: &RawGroup,
        n_peers: usize,
        default_auth: &PartialAuth,
    ) -> Result<GroupConfig, ConfigError> {
        let key = |k: &str| format!("group[{i}].{k}");
        let name = g.name.get_ref();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.invalid(
                key("name"),
                Some(&g.name.span()),
                format!("expected a non-empty name without whitespace, got {name:?}"),
            ));
        }
        let master = self.addr(&key("master"), &g.master)?;
        let mut replicas: Vec<Addr> = Vec::with_capacity(g.replicas.len());
        for (r, v) in g.replicas.iter().enumerate() {
            let k = format!("group[{i}].replicas[{r}]");
            let a = self.addr(&k, v)?;
            if a == master {
                return Err(self.invalid(
                    k,
                    Some(&v.span()),
                    format!("{a} is this group's master; expected replicas other than the master"),
                ));
            }
            if replicas.contains(&a) {
                return Err(self.invalid(
                    k,
                    Some(&v.span()),
                    format!("{a} is listed twice; expected distinct replicas"),
                ));
            }
            replicas.push(a);
        }

        let down_after = match &g.down_after_ms {
            Some(v) if *v.get_ref() < MIN_DOWN_AFTER_MS => {
                return Err(self.invalid(
                    key("down_after_ms"),
                    Some(&v.span()),
                    format!(
                        "expected at least {MIN_DOWN_AFTER_MS} milliseconds, got {}",
                        v.get_ref()
                    ),
                ))
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_DOWN_AFTER_MS,
        };
        let ping_interval = match &g.ping_interval_ms {
            Some(v) if *v.get_ref() == 0 || *v.get_ref() >= down_after => {
                return Err(self.invalid(
                    key("ping_interval_ms"),
                    Some(&v.span()),
                    format!(
                        "expected 1 to {} milliseconds (less than down_after_ms = {down_after}), got {}",
                        down_after - 1,
                        v.get_ref()
                    ),
                ))
            }
            Some(v) => *v.get_ref(),
            None => (down_after / 10).min(MAX_DEFAULT_PING_INTERVAL_MS),
        };
        let quorum = match &g.quorum {
            Some(v) if *v.get_ref() == 0 || *v.get_ref() > n_peers => {
                return Err(self.invalid(
                    key("quorum"),
                    Some(&v.span()),
                    format!(
                        "expected 1..={n_peers} (at most the number of [[peer]] daemons), got {}",
                        v.get_ref()
                    ),
                ))
            }
            Some(v) => *v.get_ref(),
            None => n_peers / 2 + 1,
        };
        let failover_timeout = match &g.failover_timeout_ms {
            Some(v) => self.positive_ms(&key("failover_timeout_ms"), v)?,
            None => Duration::from_millis(DEFAULT_FAILOVER_TIMEOUT_MS),
        };
        let parallel_syncs = match &g.parallel_syncs {
            Some(v) if *v.get_ref() == 0 => {
                return Err(self.invalid(
                    key("parallel_syncs"),
                    Some(&v.span()),
                    "expected at least 1, got 0",
                ))
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_PARALLEL_SYNCS,
        };

        // Per-group auth overrides [redis] key by key.
        let own = self.auth(&format!("group[{i}]."), g.into())?;
        let username = own.username.as_ref().or(default_auth.username.as_ref());
        let password = own.password.or_else(|| default_auth.password.clone());
        if let (Some((_, k, span)), None) = (username, &password) {
            return Err(self.secret_err(
                k.clone(),
                Some(span),
                format!(
                    "an ACL username needs a password; expected one of password, password_env or password_file in [[group]] {name:?} or in [redis]"
                ),
            ));
        }

        Ok(GroupConfig {
            name: name.clone(),
            master,
            replicas,
            down_after: Duration::from_millis(down_after),
            quorum,
            failover_timeout,
            parallel_syncs,
            ping_interval: Duration::from_millis(ping_interval),
            auth: RedisAuth {
                username: username.map(|(u, _, _)| u.clone()),
                password,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-shared-peer-key-0123456789";

    /// A minimal valid config; `extra_top` goes before the tables.
    fn minimal(extra_top: &str) -> String {
        format!(
            r#"node_id = 1
data_dir = "/tmp/raftinel-test"
peer_secret = "{SECRET}"
{extra_top}
[[peer]]
id = 1
addr = "127.0.0.1:7001"

[[peer]]
id = 2
addr = "127.0.0.1:7002"

[[peer]]
id = 3
addr = "127.0.0.1:7003"

[[group]]
name = "mymaster"
master = "127.0.0.1:6379"
"#
        )
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/raftinel/test.toml"))
    }

    fn err(text: &str) -> (ConfigError, String) {
        let e = parse(text).expect_err("config should be rejected");
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/raftinel/test.toml"),
            "message does not name the file: {msg}"
        );
        assert!(!msg.contains(SECRET), "message leaks the secret: {msg}");
        (e, msg)
    }

    /// 1-based line of the first line containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle")
            + 1
    }

    /// The `n`th (0-based) line starting with `needle`.
    fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
        text.lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with(needle))
            .nth(n)
            .expect("needle")
            .0
            + 1
    }

    #[test]
    fn full_valid_config() {
        let text = format!(
            r#"# full example
node_id = 2
data_dir = "/var/lib/raftinel"
peer_listen = "0.0.0.0:7002"
local_redis = "127.0.0.1:6380"
log_level = "raftinel=debug,warn"
peer_secret = "{SECRET}"
redis_timeout_ms = 250

[raft]
tick_ms = 50
election_ticks = 20
heartbeat_ticks = 3

[redis]
username = "sentinel"
password = "default-redis-password"

[[peer]]
id = 1
addr = "10.0.0.1:7001"

[[peer]]
id = 2
addr = "10.0.0.2:7001"

[[peer]]
id = 3
addr = "10.0.0.3:7001"

[[group]]
name = "mymaster"
master = "10.0.0.1:6379"
replicas = ["10.0.0.2:6379", "10.0.0.3:6379"]
down_after_ms = 1000
quorum = 3
failover_timeout_ms = 60000
parallel_syncs = 2
ping_interval_ms = 200

[[group]]
name = "cache"
master = "[::1]:7379"
password_env = "RAFTINEL_TEST_FULL_CACHE_PW"
"#
        );
        std::env::set_var("RAFTINEL_TEST_FULL_CACHE_PW", "cache-pw");
        let c = parse(&text).unwrap();
        assert_eq!(c.path, Path::new("/etc/raftinel/test.toml"));
        assert_eq!(c.node_id, 2);
        assert_eq!(c.data_dir, Path::new("/var/lib/raftinel"));
        assert_eq!(c.peer_listen, "0.0.0.0:7002".parse::<SocketAddr>().unwrap());
        assert_eq!(c.local_redis, Some(Addr::new("127.0.0.1", 6380)));
        assert_eq!(c.log_level, "raftinel=debug,warn");
        assert_eq!(c.peer_secret.expose(), SECRET);
        assert_eq!(c.redis_timeout, Duration::from_millis(250));
        assert_eq!(
            c.raft,
            RaftTiming {
                tick: Duration::from_millis(50),
                election_ticks: 20,
                heartbeat_ticks: 3
            }
        );
        assert_eq!(
            c.peers,
            vec![
                Peer {
                    id: 1,
                    addr: "10.0.0.1:7001".into(),
                    discovery: None,
                },
                Peer {
                    id: 2,
                    addr: "10.0.0.2:7001".into(),
                    discovery: None,
                },
                Peer {
                    id: 3,
                    addr: "10.0.0.3:7001".into(),
                    discovery: None,
                },
            ]
        );
        assert_eq!(c.peer(3).unwrap().addr, "10.0.0.3:7001");
        assert_eq!(c.groups.len(), 2);
        let g = &c.groups[0];
        assert_eq!(g.name, "mymaster");
        assert_eq!(g.master, Addr::new("10.0.0.1", 6379));
        assert_eq!(
            g.replicas,
            vec![Addr::new("10.0.0.2", 6379), Addr::new("10.0.0.3", 6379)]
        );
        assert_eq!(g.down_after, Duration::from_millis(1000));
        assert_eq!(g.quorum, 3);
        assert_eq!(g.failover_timeout, Duration::from_millis(60_000));
        assert_eq!(g.parallel_syncs, 2);
        assert_eq!(g.ping_interval, Duration::from_millis(200));
        assert_eq!(g.auth.username.as_deref(), Some("sentinel"));
        assert_eq!(
            g.auth.password.as_ref().map(Secret::expose),
            Some("default-redis-password")
        );
        // Per-group password overrides [redis]; the username is inherited.
        let cache = &c.groups[1];
        assert_eq!(cache.master, Addr::new("::1", 7379));
        assert_eq!(cache.auth.username.as_deref(), Some("sentinel"));
        assert_eq!(
            cache.auth.password.as_ref().map(Secret::expose),
            Some("cache-pw")
        );
        // Defaults of the second group.
        assert_eq!(cache.quorum, 2);
        assert_eq!(cache.down_after, Duration::from_millis(30_000));
        assert_eq!(cache.ping_interval, Duration::from_millis(1000));

        let debug = format!("{c:?}");
        for secret in [SECRET, "default-redis-password", "cache-pw"] {
            assert!(!debug.contains(secret), "Debug leaks {secret}: {debug}");
        }
        let summary = c.redacted_summary();
        for secret in [SECRET, "default-redis-password", "cache-pw"] {
            assert!(
                !summary.contains(secret),
                "summary leaks {secret}: {summary}"
            );
        }
        for expected in [
            "node_id:       2",
            "10.0.0.3:7001",
            "(this node)",
            "mymaster",
            "10.0.0.2:6379, 10.0.0.3:6379",
            "down_after:       1000 ms",
            "quorum:           3 of 3 peers",
            "peer_secret:   ***",
            "password:         ***",
            "username:         sentinel",
        ] {
            assert!(
                summary.contains(expected),
                "summary lacks {expected:?}:\n{summary}"
            );
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&minimal("")).unwrap();
        assert_eq!(
            c.peer_listen,
            "127.0.0.1:7001".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.local_redis, None);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.redis_timeout, Duration::from_millis(500));
        assert_eq!(c.raft.tick, Duration::from_millis(100));
        assert_eq!(c.raft.election_ticks, 10);
        assert_eq!(c.raft.heartbeat_ticks, 2);
        assert_eq!(c.raft.election_timeout(), Duration::from_secs(1));
        let g = &c.groups[0];
        assert!(g.replicas.is_empty());
        assert_eq!(g.down_after, Duration::from_millis(30_000));
        assert_eq!(g.quorum, 2, "majority of 3 peers");
        assert_eq!(g.failover_timeout, Duration::from_millis(180_000));
        assert_eq!(g.parallel_syncs, 1);
        assert_eq!(g.ping_interval, Duration::from_millis(1000));
        assert_eq!(g.auth, RedisAuth::default());
        let summary = c.redacted_summary();
        assert!(summary.contains("local_redis:   (none)"), "{summary}");
        assert!(summary.contains("password:         (none)"), "{summary}");
    }

    #[test]
    fn default_ping_interval_is_a_tenth_of_down_after() {
        let text = minimal("").replace(
            "master = \"127.0.0.1:6379\"",
            "master = \"127.0.0.1:6379\"\ndown_after_ms = 1000",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.groups[0].ping_interval, Duration::from_millis(100));
    }

    #[test]
    fn single_peer_and_five_peers() {
        let one = format!(
            "node_id = 7\ndata_dir = \"d\"\npeer_secret = \"{SECRET}\"\n[[peer]]\nid = 7\naddr = \"127.0.0.1:7007\"\n[[group]]\nname = \"g\"\nmaster = \"127.0.0.1:6379\"\n"
        );
        let c = parse(&one).unwrap();
        assert_eq!(c.groups[0].quorum, 1);
        // Relative paths are resolved against the config file's directory.
        assert_eq!(c.data_dir, Path::new("/etc/raftinel/d"));

        let mut five = minimal("");
        for id in 4..=5 {
            five.push_str(&format!(
                "[[peer]]\nid = {id}\naddr = \"127.0.0.1:700{id}\"\n"
            ));
        }
        assert_eq!(parse(&five).unwrap().groups[0].quorum, 3);
    }

    #[test]
    fn malformed_toml_names_file_and_line_without_echoing_the_line() {
        let text = format!("node_id = 1\npeer_secret = \"{SECRET}\nfoo = 2\n");
        let (e, msg) = err(&text);
        assert!(matches!(e, ConfigError::Toml { .. }), "{e:?}");
        assert!(msg.contains("line 2"), "{msg}");
        assert_eq!(e.line(), Some(2));
        assert!(msg.contains("string"), "{msg}");

        let (_, msg) = err("node_id = = 1\n");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = minimal("").replace("[[peer]]\nid = 3", "[[peer]]\nid = 3\nweight = 5");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer[2].weight"), "{msg}");
        let line = line_of(&text, "weight");
        assert!(msg.contains(&format!("line {line}")), "{msg}");
        assert!(msg.contains("unknown field `weight`"), "{msg}");
        assert!(
            msg.contains("expected one of `id`, `addr`, `discovery`"),
            "{msg}"
        );

        // In the second [[group]].
        let text = format!(
            "{}\n[[group]]\nname = \"other\"\nmaster = \"127.0.0.1:7379\"\ndown_after = 5\n",
            minimal("")
        );
        let (e, msg) = err(&text);
        assert!(
            msg.contains("group[1].down_after: unknown field `down_after`"),
            "{msg}"
        );
        assert_eq!(e.line(), Some(line_of(&text, "down_after =")));

        // At the top level, in [raft], as a dotted key and in an inline table.
        let (_, msg) = err(&minimal("peer_secrte = \"x\""));
        assert!(
            msg.contains("peer_secrte: unknown field `peer_secrte`"),
            "{msg}"
        );
        assert!(msg.contains("line 4"), "{msg}");
        let (_, msg) = err(&minimal("[raft]\ntick = 5\n"));
        assert!(msg.contains("raft.tick: unknown field"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");
        let (_, msg) = err(&minimal("raft.tick = 5"));
        assert!(msg.contains("raft.tick: unknown field"), "{msg}");
        let (_, msg) = err(&minimal("raft = { tick_ms = 5, tick = 5 }"));
        assert!(msg.contains("raft.tick: unknown field"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let text = minimal("").replace(
            "master = \"127.0.0.1:6379\"",
            "master = \"127.0.0.1:6379\"\nreplicas = [\n  \"127.0.0.1:6380\",\n  6381,\n]",
        );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group[0].replicas"), "{msg}");
        assert_eq!(e.line(), Some(line_of(&text, "6381,")));
        assert!(msg.contains("expected a string"), "{msg}");

        let (e, msg) = err(&minimal("redis_timeout_ms = \"fast\""));
        assert_eq!(e.key(), Some("redis_timeout_ms"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn missing_required_keys() {
        let text = minimal("").replace("node_id = 1\n", "");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("node_id"), "{msg}");
        assert!(msg.contains("missing field `node_id`"), "{msg}");

        let text = minimal("").replace("master = \"127.0.0.1:6379\"\n", "");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group[0].master"), "{msg}");
        assert_eq!(e.line(), Some(line_of(&text, "[[group]]")));
        assert!(msg.contains("missing field `master`"), "{msg}");
    }

    #[test]
    fn missing_peers() {
        let text = format!(
            "node_id = 1\ndata_dir = \"/d\"\npeer_secret = \"{SECRET}\"\n[[group]]\nname = \"g\"\nmaster = \"127.0.0.1:6379\"\n"
        );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer"));
        assert!(msg.contains("expected at least one [[peer]]"), "{msg}");
    }

    #[test]
    fn missing_groups() {
        let text = minimal("").replace(
            "[[group]]\nname = \"mymaster\"\nmaster = \"127.0.0.1:6379\"\n",
            "",
        );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group"));
        assert!(msg.contains("expected at least one [[group]]"), "{msg}");
    }

    #[test]
    fn duplicate_peer_ids() {
        let text = minimal("").replace("id = 3", "id = 1");
        let (e, msg) = err(&text);
        let line = nth_line_of(&text, "id = 1", 1);
        assert!(
            msg.contains(&format!(
                "test.toml, line {line}: peer[2].id: duplicate peer id 1"
            )),
            "{msg}"
        );
        assert!(msg.contains("also peer[0].id"), "{msg}");
        assert!(matches!(e, ConfigError::Invalid { .. }));
    }

    #[test]
    fn duplicate_peer_addrs() {
        let text = minimal("").replace("127.0.0.1:7003", "127.0.0.1:7002");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer[2].addr"));
        assert!(
            msg.contains("duplicate peer address 127.0.0.1:7002"),
            "{msg}"
        );
    }

    #[test]
    fn zero_peer_id() {
        let text = minimal("").replace("id = 3", "id = 0");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer[2].id"));
        assert!(msg.contains("expected a positive integer"), "{msg}");
    }

    #[test]
    fn node_id_not_in_peers() {
        let text = minimal("").replace("node_id = 1", "node_id = 9");
        let (e, msg) = err(&text);
        assert_eq!(e.line(), Some(1));
        assert!(
            msg.contains("line 1: node_id: expected one of the [[peer]] ids (1, 2, 3), got 9"),
            "{msg}"
        );
    }

    #[test]
    fn bad_addresses() {
        let text = minimal("").replace("127.0.0.1:7002", "127.0.0.1");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer[1].addr"));
        assert_eq!(e.line(), Some(line_of(&text, "\"127.0.0.1\"")));
        assert!(msg.contains("expected a host:port address"), "{msg}");
        assert!(msg.contains("missing :port"), "{msg}");

        let text = minimal("").replace("127.0.0.1:6379", "127.0.0.1:99999");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group[0].master"), "{msg}");
        assert!(msg.contains("port is not 1-65535"), "{msg}");

        let (e, msg) = err(&minimal("local_redis = \":6379\""));
        assert_eq!(e.key(), Some("local_redis"));
        assert!(msg.contains("line 4"), "{msg}");

        let (e, msg) = err(&minimal("peer_listen = \"localhost:7001\""));
        assert_eq!(e.key(), Some("peer_listen"));
        assert!(msg.contains("expected an ip:port socket address"), "{msg}");

        let text = minimal("").replace(
            "master = \"127.0.0.1:6379\"",
            "master = \"127.0.0.1:6379\"\nreplicas = [\"127.0.0.1:6380\", \"127.0.0.1 :6381\"]",
        );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group[0].replicas[1]"), "{msg}");
        assert!(msg.contains("whitespace"), "{msg}");
    }

    #[test]
    fn hostname_peer_addr_needs_peer_listen() {
        let text = minimal("").replace("127.0.0.1:7001", "node1.example:7001");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer[0].addr"));
        assert!(msg.contains("peer_listen"), "{msg}");
        let c = parse(&text.replace("node_id = 1", "node_id = 1\npeer_listen = \"0.0.0.0:7001\""))
            .unwrap();
        assert_eq!(c.peers[0].addr, "node1.example:7001");
    }

    #[test]
    fn quorum_bounds() {
        let with = |q: &str| {
            minimal("").replace(
                "master = \"127.0.0.1:6379\"",
                &format!("master = \"127.0.0.1:6379\"\nquorum = {q}"),
            )
        };
        let text = with("4");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group[0].quorum"));
        assert_eq!(e.line(), Some(line_of(&text, "quorum")));
        assert!(msg.contains("expected 1..=3"), "{msg}");
        assert!(msg.contains("got 4"), "{msg}");

        let (_, msg) = err(&with("0"));
        assert!(msg.contains("group[0].quorum: expected 1..=3"), "{msg}");
        assert_eq!(parse(&with("1")).unwrap().groups[0].quorum, 1);
    }

    #[test]
    fn group_value_checks() {
        let with = |extra: &str| {
            minimal("").replace(
                "master = \"127.0.0.1:6379\"",
                &format!("master = \"127.0.0.1:6379\"\n{extra}"),
            )
        };
        let (_, msg) = err(&with("parallel_syncs = 0"));
        assert!(
            msg.contains("group[0].parallel_syncs: expected at least 1, got 0"),
            "{msg}"
        );
        assert!(msg.contains("line 20"), "{msg}");
        let (_, msg) = err(&with("down_after_ms = 50"));
        assert!(
            msg.contains("group[0].down_after_ms: expected at least 100"),
            "{msg}"
        );
        let (_, msg) = err(&with("down_after_ms = 1000\nping_interval_ms = 1000"));
        assert!(msg.contains("group[0].ping_interval_ms"), "{msg}");
        assert!(msg.contains("less than down_after_ms"), "{msg}");
        let (_, msg) = err(&with("failover_timeout_ms = 0"));
        assert!(msg.contains("group[0].failover_timeout_ms"), "{msg}");
        let (_, msg) = err(&with("replicas = [\"127.0.0.1:6379\"]"));
        assert!(msg.contains("group[0].replicas[0]"), "{msg}");
        assert!(msg.contains("master"), "{msg}");

        let text = minimal("").replace("name = \"mymaster\"", "name = \"my master\"");
        let (_, msg) = err(&text);
        assert!(
            msg.contains("group[0].name: expected a non-empty name without whitespace"),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_groups_and_shared_instances() {
        let text = format!(
            "{}\n[[group]]\nname = \"mymaster\"\nmaster = \"127.0.0.1:7379\"\n",
            minimal("")
        );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group[1].name"));
        assert_eq!(e.line(), Some(nth_line_of(&text, "name = \"mymaster\"", 1)));
        assert!(msg.contains("duplicate group name \"mymaster\""), "{msg}");

        let text = format!(
            "{}\n[[group]]\nname = \"other\"\nmaster = \"127.0.0.1:6379\"\n",
            minimal("")
        );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group[1].master"));
        assert!(
            msg.contains("already configured as group[0].master"),
            "{msg}"
        );
    }

    #[test]
    fn raft_timing_checks() {
        let (e, msg) = err(&minimal("[raft]\nelection_ticks = 2\n"));
        assert_eq!(e.key(), Some("raft.election_ticks"));
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("greater than heartbeat_ticks"), "{msg}");
        let (e, _) = err(&minimal("[raft]\nheartbeat_ticks = 10\n"));
        assert_eq!(e.key(), Some("raft.heartbeat_ticks"));
        let (e, _) = err(&minimal("[raft]\nheartbeat_ticks = 0\n"));
        assert_eq!(e.key(), Some("raft.heartbeat_ticks"));
        let (e, msg) = err(&minimal("[raft]\ntick_ms = 0\n"));
        assert_eq!(e.key(), Some("raft.tick_ms"));
        assert!(msg.contains("expected 1..="), "{msg}");
    }

    #[test]
    fn bad_log_level() {
        let (e, msg) = err(&minimal("log_level = \"info[\""));
        assert_eq!(e.key(), Some("log_level"));
        assert!(msg.contains("expected a tracing filter"), "{msg}");
    }

    #[test]
    fn missing_secret() {
        let text = minimal("").replace(&format!("peer_secret = \"{SECRET}\"\n"), "");
        let (e, msg) = err(&text);
        assert!(matches!(e, ConfigError::Secret { .. }), "{e:?}");
        assert!(msg.contains("peer_secret: missing"), "{msg}");
        assert!(msg.contains("peer_secret_env"), "{msg}");
        assert!(msg.contains("peer_secret_file"), "{msg}");
    }

    #[test]
    fn secret_too_short_or_wrongly_typed_or_doubled() {
        let text = minimal("").replace(SECRET, "short-secret");
        let (_, msg) = err(&text);
        assert!(
            msg.contains("line 3: peer_secret: the peer secret is too short"),
            "{msg}"
        );
        assert!(!msg.contains("short-secret"), "{msg}");

        let text = minimal("").replace(&format!("\"{SECRET}\""), "123456789012345678");
        let (_, msg) = err(&text);
        assert!(
            msg.contains("peer_secret: expected a string, got a integer"),
            "{msg}"
        );
        assert!(!msg.contains("123456789012345678"), "{msg}");

        let (e, msg) = err(&minimal("peer_secret_env = \"SOME_VAR\""));
        assert_eq!(e.key(), Some("peer_secret_env"));
        assert!(msg.contains("expected at most one of peer_secret"), "{msg}");
    }

    #[test]
    fn secret_from_env_var() {
        let var = "RAFTINEL_TEST_PEER_SECRET_ENV";
        let text = minimal("").replace(
            &format!("peer_secret = \"{SECRET}\""),
            &format!("peer_secret_env = \"{var}\""),
        );
        std::env::remove_var(var);
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer_secret_env"));
        assert!(msg.contains("line 3"), "{msg}");
        assert!(
            msg.contains(&format!("environment variable {var} is not set")),
            "{msg}"
        );

        std::env::set_var(var, SECRET);
        let c = parse(&text).unwrap();
        assert_eq!(c.peer_secret.expose(), SECRET);
        assert!(!format!("{c:?}").contains(SECRET));
        std::env::remove_var(var);
    }

    #[test]
    fn secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("peer.key");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let text = minimal("").replace(
            &format!("peer_secret = \"{SECRET}\""),
            "peer_secret_file = \"peer.key\"",
        );
        // Relative to the config file's directory; trailing newline trimmed.
        let cfg_path = dir.path().join("raftinel.toml");
        let c = Config::parse(&text, &cfg_path).unwrap();
        assert_eq!(c.peer_secret.expose(), SECRET);
        assert!(!format!("{c:?}").contains(SECRET));

        // Through load().
        std::fs::write(&cfg_path, &text).unwrap();
        assert_eq!(Config::load(&cfg_path).unwrap(), c);

        // Missing file: names the key and the path.
        std::fs::remove_file(&file).unwrap();
        let e = Config::parse(&text, &cfg_path).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.key(), Some("peer_secret_file"));
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(msg.contains("cannot read secret file"), "{msg}");
    }

    #[test]
    fn redis_password_sources() {
        let var = "RAFTINEL_TEST_REDIS_PW_MISSING";
        std::env::remove_var(var);
        let text = minimal(&format!("[redis]\npassword_env = \"{var}\"\n"));
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("redis.password_env"));
        assert!(msg.contains(var), "{msg}");

        let text = minimal("").replace(
            "master = \"127.0.0.1:6379\"",
            "master = \"127.0.0.1:6379\"\npassword = \"x\"\npassword_file = \"/nonexistent\"",
        );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("group[0].password_file"));
        assert!(!msg.contains("\"x\""), "{msg}");

        let text = minimal("[redis]\nusername = \"ops\"\n");
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("redis.username"));
        assert!(msg.contains("an ACL username needs a password"), "{msg}");
    }

    #[test]
    fn read_error_names_the_file() {
        let e = Config::load(Path::new("/nonexistent/raftinel.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cannot read config file /nonexistent/raftinel.toml"),
            "{msg}"
        );
    }

    #[test]
    fn shipped_configs_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        for n in 1..=3u64 {
            let c = Config::load(&root.join(format!("demo/node{n}.toml"))).unwrap();
            assert_eq!(c.node_id, n);
            assert_eq!(c.peers.len(), 3);
            assert_eq!(c.peer_listen.port(), 7000 + n as u16);
            assert_eq!(
                c.data_dir,
                PathBuf::from(format!("/tmp/raftinel-demo/node{n}"))
            );
            assert_eq!(c.local_redis, Some(Addr::new("127.0.0.1", 6378 + n as u16)));
            let g = &c.groups[0];
            assert_eq!(g.name, "mymaster");
            assert_eq!(g.master, Addr::new("127.0.0.1", 6379));
            assert_eq!(
                g.replicas,
                vec![Addr::new("127.0.0.1", 6380), Addr::new("127.0.0.1", 6381)]
            );
            assert_eq!(g.down_after, Duration::from_millis(1000));
            assert_eq!(g.failover_timeout, Duration::from_millis(10_000));
            assert_eq!(g.quorum, 2);
            assert_eq!(c.peer_secret.expose(), "demo-secret-change-me-0123456789");
            let d = c.discovery.as_ref().expect("discovery enabled in the demo");
            assert_eq!(
                d.listen,
                format!("127.0.0.1:{}", 26378 + n).parse().unwrap()
            );
            for (i, p) in c.peers.iter().enumerate() {
                assert_eq!(
                    p.discovery,
                    Some(Addr::new("127.0.0.1", 26379 + i as u16)),
                    "peer {}",
                    p.id
                );
            }
        }
        Config::load(&root.join("raftinel.example.toml")).unwrap();
    }

    const HTTP_TOKEN: &str = "http-token-0123456789abcdef";

    #[test]
    fn http_settings() {
        assert_eq!(parse(&minimal("")).unwrap().http, None);
        let c = parse(&minimal("http_listen = \"127.0.0.1:8080\"")).unwrap();
        let h = c.http.as_ref().unwrap();
        assert_eq!(h.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(h.token, None);
        assert!(h.open_read, "read endpoints are open by default");
        assert!(c
            .redacted_summary()
            .contains("http_listen:   127.0.0.1:8080 (token (none): mutating endpoints disabled, read endpoints open)"));

        let text = minimal(&format!(
            "http_listen = \"0.0.0.0:8080\"\nhttp_token = \"{HTTP_TOKEN}\"\nhttp_open_read = false"
        ));
        let c = parse(&text).unwrap();
        let h = c.http.as_ref().unwrap();
        assert_eq!(h.token.as_ref().map(Secret::expose), Some(HTTP_TOKEN));
        assert!(!h.open_read);
        let summary = c.redacted_summary();
        assert!(
            summary
                .contains("http_listen:   0.0.0.0:8080 (token ***, read endpoints need the token)"),
            "{summary}"
        );
        assert!(!summary.contains(HTTP_TOKEN), "{summary}");
        assert!(!format!("{c:?}").contains(HTTP_TOKEN));
        assert!(parse(&minimal(""))
            .unwrap()
            .redacted_summary()
            .contains("http_listen:   (none)"));
    }

    #[test]
    fn http_token_from_env_and_file() {
        let var = "RAFTINEL_TEST_HTTP_TOKEN_ENV";
        std::env::set_var(var, HTTP_TOKEN);
        let text = minimal(&format!(
            "http_listen = \"127.0.0.1:8080\"\nhttp_token_env = \"{var}\""
        ));
        let c = parse(&text).unwrap();
        assert_eq!(c.http.unwrap().token.unwrap().expose(), HTTP_TOKEN);
        std::env::remove_var(var);
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("http_token_env"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");
        assert!(
            msg.contains(&format!("environment variable {var} is not set")),
            "{msg}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("http.token"), format!("{HTTP_TOKEN}\n")).unwrap();
        let text = minimal("http_listen = \"127.0.0.1:8080\"\nhttp_token_file = \"http.token\"");
        let c = Config::parse(&text, &dir.path().join("raftinel.toml")).unwrap();
        assert_eq!(c.http.unwrap().token.unwrap().expose(), HTTP_TOKEN);

        let (e, msg) = err(&minimal(&format!(
            "http_listen = \"127.0.0.1:8080\"\nhttp_token = \"{HTTP_TOKEN}\"\nhttp_token_file = \"/x\""
        )));
        assert_eq!(e.key(), Some("http_token_file"), "{msg}");
        assert!(msg.contains("line 6"), "{msg}");
        assert!(
            msg.contains("expected at most one of http_token, http_token_env, http_token_file"),
            "{msg}"
        );
        assert!(!msg.contains(HTTP_TOKEN), "{msg}");
    }

    #[test]
    fn http_settings_errors_name_key_and_line() {
        let (e, msg) = err(&minimal("http_listen = \"localhost:8080\""));
        assert_eq!(e.key(), Some("http_listen"));
        assert!(msg.contains("line 4"), "{msg}");
        assert!(msg.contains("expected an ip:port socket address"), "{msg}");

        let (e, msg) = err(&minimal(
            "http_listen = \"127.0.0.1:8080\"\nhttp_token = \"short-token\"",
        ));
        assert_eq!(e.key(), Some("http_token"));
        assert!(
            msg.contains("line 5: http_token: the http token is too short"),
            "{msg}"
        );
        assert!(!msg.contains("short-token"), "{msg}");

        let (e, msg) = err(&minimal(
            "http_listen = \"127.0.0.1:8080\"\nhttp_token = \"with space 0123456789abcdef\"",
        ));
        assert_eq!(e.key(), Some("http_token"));
        assert!(msg.contains("whitespace"), "{msg}");
        assert!(!msg.contains("with space"), "{msg}");

        let (e, msg) = err(&minimal(
            "http_listen = \"127.0.0.1:8080\"\nhttp_token = 1234567890123456789",
        ));
        assert_eq!(e.key(), Some("http_token"));
        assert!(msg.contains("expected a string, got a integer"), "{msg}");
        assert!(!msg.contains("1234567890123456789"), "{msg}");

        let (e, msg) = err(&minimal(&format!("http_token = \"{HTTP_TOKEN}\"")));
        assert_eq!(e.key(), Some("http_token"));
        assert!(msg.contains("line 4"), "{msg}");
        assert!(msg.contains("has no effect without http_listen"), "{msg}");
        let (e, msg) = err(&minimal("http_open_read = false"));
        assert_eq!(e.key(), Some("http_open_read"));
        assert!(msg.contains("has no effect without http_listen"), "{msg}");

        let (e, msg) = err(&minimal(
            "http_listen = \"127.0.0.1:8080\"\nhttp_open_read = false",
        ));
        assert_eq!(e.key(), Some("http_open_read"));
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("no http_token is set"), "{msg}");

        let (e, msg) = err(&minimal(
            "http_listen = \"127.0.0.1:8080\"\nhttp_open_read = \"yes\"",
        ));
        assert_eq!(e.key(), Some("http_open_read"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("expected a boolean"), "{msg}");

        let (e, msg) = err(&minimal("http_listn = \"127.0.0.1:8080\""));
        assert_eq!(e.key(), Some("http_listn"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn key_paths() {
        let text = "a = 1\n[x]\nb = [\n 1,\n 2 ]\n[[g]]\n[[g]]\nc = { d = 1, e = \"s\" }\n'q' . \"r\" = 1\n";
        let at = |needle: &str| key_path_at(text, text.find(needle).unwrap());
        assert_eq!(at("1\n[x]").as_deref(), Some("a"));
        assert_eq!(at(" 2 ]").as_deref(), Some("x.b"));
        assert_eq!(at("e =").as_deref(), Some("g[1].c.e"));
        assert_eq!(at("\"s\"").as_deref(), Some("g[1].c.e"));
        assert_eq!(at("[[g]]\nc").as_deref(), Some("g[1]"));
        assert_eq!(at("\"r\"").as_deref(), Some("g[1].q.r"));
        assert_eq!(line_col(text, text.find("b =").unwrap()), (3, 1));
    }
    #[test]
    fn discovery_defaults() {
        let c = parse(&minimal("")).unwrap();
        let d = c.discovery.clone().expect("enabled by default");
        assert_eq!(d.listen, "0.0.0.0:26379".parse().unwrap());
        assert_eq!(d.username, None);
        assert_eq!(d.password, None);
        assert_eq!(d.max_clients, 10_000);
        assert_eq!(d.max_request_bytes, 1 << 20);
        assert_eq!(d.idle_timeout, None);
        assert_eq!(d.subscriber_buffer_bytes, 1 << 20);
        // ckquorum and SENTINEL SENTINELS count peers heard within the
        // election timeout.
        assert_eq!(d.peer_timeout, c.raft.election_timeout());
        assert!(c.peers.iter().all(|p| p.discovery.is_none()));
        let summary = c.redacted_summary();
        assert!(
            summary.contains("discovery:     0.0.0.0:26379 (auth (none)"),
            "{summary}"
        );
    }

    #[test]
    fn discovery_keys() {
        let text = minimal(
            "[discovery]\nlisten = \"127.0.0.1:26380\"\nusername = \"app\"\npassword = \"disc-pass\"\nmax_clients = 50\nmax_request_bytes = 65536\nidle_timeout_ms = 30000\nsubscriber_buffer_bytes = 4096\n",
        )
        .replace(
            "addr = \"127.0.0.1:7002\"",
            "addr = \"127.0.0.1:7002\"\ndiscovery = \"10.0.0.2:26379\"",
        );
        let c = parse(&text).unwrap();
        let d = c.discovery.clone().unwrap();
        assert_eq!(d.listen, "127.0.0.1:26380".parse().unwrap());
        assert_eq!(d.username.as_deref(), Some("app"));
        assert_eq!(d.password.as_ref().map(Secret::expose), Some("disc-pass"));
        assert_eq!(d.max_clients, 50);
        assert_eq!(d.max_request_bytes, 65536);
        assert_eq!(d.idle_timeout, Some(Duration::from_millis(30_000)));
        assert_eq!(d.subscriber_buffer_bytes, 4096);
        assert_eq!(c.peers[1].discovery, Some(Addr::new("10.0.0.2", 26379)));
        assert_eq!(c.peers[0].discovery, None);
        let summary = c.redacted_summary();
        assert!(!summary.contains("disc-pass"), "{summary}");
        assert!(!format!("{c:?}").contains("disc-pass"));
        assert!(summary.contains("user app / ***"), "{summary}");
        assert!(summary.contains("(discovery 10.0.0.2:26379)"), "{summary}");

        // idle_timeout_ms = 0: no timeout.
        let c = parse(&minimal("[discovery]\nidle_timeout_ms = 0\n")).unwrap();
        assert_eq!(c.discovery.unwrap().idle_timeout, None);
        // enabled = false: no discovery port.
        let c = parse(&minimal("[discovery]\nenabled = false\n")).unwrap();
        assert_eq!(c.discovery, None);
        assert!(c.redacted_summary().contains("discovery:     (disabled)"));
    }

    #[test]
    fn discovery_password_sources() {
        let var = "RAFTINEL_TEST_DISCOVERY_PW";
        std::env::set_var(var, "from-env");
        let c = parse(&minimal(&format!(
            "[discovery]\npassword_env = \"{var}\"\n"
        )))
        .unwrap();
        assert_eq!(
            c.discovery.unwrap().password.as_ref().map(Secret::expose),
            Some("from-env")
        );
        std::env::remove_var(var);
        let (e, msg) = err(&minimal(&format!(
            "[discovery]\npassword_env = \"{var}\"\n"
        )));
        assert_eq!(e.key(), Some("discovery.password_env"));
        assert!(msg.contains("line 5"), "{msg}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("disc.pass"), "from-file\n").unwrap();
        let c = Config::parse(
            &minimal("[discovery]\npassword_file = \"disc.pass\"\n"),
            &dir.path().join("raftinel.toml"),
        )
        .unwrap();
        assert_eq!(
            c.discovery.unwrap().password.as_ref().map(Secret::expose),
            Some("from-file")
        );
    }

    #[test]
    fn discovery_errors_name_key_and_line() {
        let (e, msg) = err(&minimal("[discovery]\nlisten = \"localhost:26379\"\n"));
        assert_eq!(e.key(), Some("discovery.listen"));
        assert_eq!(e.line(), Some(5));
        assert!(msg.contains("expected an ip:port socket address"), "{msg}");

        let (e, msg) = err(&minimal("[discovery]\nmax_clients = 0\n"));
        assert_eq!(e.key(), Some("discovery.max_clients"));
        assert!(msg.contains("line 5"), "{msg}");

        let (e, msg) = err(&minimal("[discovery]\nmax_request_bytes = 10\n"));
        assert_eq!(e.key(), Some("discovery.max_request_bytes"));
        assert!(msg.contains("expected 1024..="), "{msg}");

        let (e, msg) = err(&minimal("[discovery]\nsubscriber_buffer_bytes = 1\n"));
        assert_eq!(e.key(), Some("discovery.subscriber_buffer_bytes"));
        assert!(msg.contains("at least 1024"), "{msg}");

        let (e, msg) = err(&minimal("[discovery]\nusername = \"app\"\n"));
        assert_eq!(e.key(), Some("discovery.username"));
        assert!(msg.contains("an ACL username needs a password"), "{msg}");

        let (e, msg) = err(&minimal(
            "[discovery]\npassword = \"a\"\npassword_env = \"B\"\n",
        ));
        assert_eq!(e.key(), Some("discovery.password_env"));
        assert!(!msg.contains("\"a\""), "{msg}");

        let (e, msg) = err(&minimal("[discovery]\nlisten_port = 1\n"));
        assert_eq!(e.key(), Some("discovery.listen_port"));
        assert!(msg.contains("unknown field"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");

        let (e, msg) = err(&minimal("[discovery]\nmax_clients = \"many\"\n"));
        assert_eq!(e.key(), Some("discovery.max_clients"));
        assert!(msg.contains("line 5"), "{msg}");

        // The discovery port cannot be the peer port.
        let (e, msg) = err(&minimal("[discovery]\nlisten = \"0.0.0.0:7001\"\n"));
        assert_eq!(e.key(), Some("discovery.listen"));
        assert!(msg.contains("overlaps peer_listen"), "{msg}");
    }

    #[test]
    fn peer_discovery_addresses() {
        let text = minimal("").replace(
            "addr = \"127.0.0.1:7003\"",
            "addr = \"127.0.0.1:7003\"\ndiscovery = \"127.0.0.1\"",
        );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer[2].discovery"));
        assert_eq!(e.line(), Some(line_of(&text, "discovery =")));
        assert!(msg.contains("missing :port"), "{msg}");

        let text = minimal("")
            .replace(
                "addr = \"127.0.0.1:7002\"",
                "addr = \"127.0.0.1:7002\"\ndiscovery = \"127.0.0.1:26380\"",
            )
            .replace(
                "addr = \"127.0.0.1:7003\"",
                "addr = \"127.0.0.1:7003\"\ndiscovery = \"127.0.0.1:26380\"",
            );
        let (e, msg) = err(&text);
        assert_eq!(e.key(), Some("peer[2].discovery"));
        assert!(
            msg.contains("duplicate discovery address 127.0.0.1:26380"),
            "{msg}"
        );
    }
}
