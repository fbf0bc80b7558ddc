//! Prometheus metrics: redis_exporter's names for every monitored instance,
//! and `raftinel_` metrics for the orchestrator.
//!
//! A self-contained library. The daemon feeds it plain data and the HTTP
//! listener serves [`Metrics::render`] at `GET /metrics` with the content type
//! [`CONTENT_TYPE`] (Prometheus text format 0.0.4, written by the
//! `prometheus` crate).
//!
//! # Public API
//!
//! - [`parse_info_metrics`] (pure): the text of a full `INFO` reply (sections
//!   server, clients, memory, persistence, stats, replication) →
//!   [`InfoMetrics`]. Missing or malformed fields are `None`: a metric is
//!   left out rather than invented.
//! - [`Metrics`] (thread-safe, `&self` everywhere; share it as
//!   `Arc<Metrics>`):
//!   - [`Metrics::set_export_redis`]`(is_leader)`: only the leader exports
//!     the `redis_*` series (every daemon probes every instance: three
//!     sources of one series would collide);
//!   - [`Metrics::set_instance`]`(group, addr, up, Option<InfoMetrics>)` after
//!     every probe; [`Metrics::set_sdown`]; [`Metrics::retain_instances`] to
//!     forget instances no longer monitored;
//!   - [`Metrics::set_raft`]`(RaftMetrics)`, [`Metrics::set_group`]`(group,
//!     epoch)`;
//!   - [`Metrics::record_failover`]`(group, result, duration)`;
//!   - [`Metrics::record_notification`]`(channel, result)` (the notifier calls
//!     it when built with `Notifier::with_metrics`);
//!   - [`Metrics::set_alerts`] with the firing built-in alerts;
//!   - [`Metrics::render`] → the exposition text.
//!
//! The exposition is rebuilt from the current state at every render, so an
//! instance, replica or label value that disappeared leaves no stale series.
//!
//! # Names and labels
//!
//! Per instance, with labels `instance="host:port"` and `group` (Prometheus
//! must scrape with `honor_labels: true`, or it renames `instance` to
//! `exported_instance`; see docs/metrics.md): `redis_up`,
//! `redis_instance_info{role,redis_version,redis_mode,os,run_id,tcp_port,maxmemory_policy}`,
//! `redis_uptime_in_seconds`, `redis_connected_clients`,
//! `redis_blocked_clients`, `redis_memory_used_bytes`,
//! `redis_memory_max_bytes`, `redis_aof_enabled`,
//! `redis_aof_last_write_status`, `redis_rdb_last_bgsave_status`,
//! `redis_rdb_changes_since_last_save`, `redis_commands_processed_total`,
//! `redis_connections_received_total`, `redis_rejected_connections_total`,
//! `redis_keyspace_hits_total`, `redis_keyspace_misses_total`,
//! `redis_expired_keys_total`, `redis_evicted_keys_total`,
//! `redis_net_input_bytes_total`, `redis_net_output_bytes_total`,
//! `redis_instantaneous_ops_per_sec`, `redis_connected_slaves`,
//! `redis_master_repl_offset`,
//! `redis_connected_slave_offset_bytes{slave_ip,slave_port,slave_state}`,
//! `redis_connected_slave_lag_seconds{slave_ip,slave_port,slave_state}`, and
//! on replicas `redis_master_link_up`, `redis_slave_repl_offset`,
//! `redis_master_last_io_seconds_ago`, `redis_master_link_down_since_seconds`,
//! `redis_slave_priority`, `redis_slave_info{master_host,master_port,read_only}`.
//!
//! Orchestrator: `raftinel_node_info{node_id}`, `raftinel_raft_term`,
//! `raftinel_raft_is_leader`, `raftinel_raft_leader_id`,
//! `raftinel_quorum_reachable`, `raftinel_group_epoch{group}`,
//! `raftinel_failovers_total{group,result}`,
//! `raftinel_last_failover_duration_seconds{group}`,
//! `raftinel_instance_sdown{group,instance,node}`,
//! `raftinel_notifications_total{channel,result}`,
//! `raftinel_alert_firing{alert,group,instance,node}`.

use prometheus::core::{Collector, GenericCounterVec, GenericGaugeVec};
use prometheus::{Encoder, Opts, Registry, TextEncoder};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The replication role from `role:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoRole {
    Master,
    Replica,
}

impl InfoRole {
    /// `master` or `slave`, as INFO and redis_exporter spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            InfoRole::Master => "master",
            InfoRole::Replica => "slave",
        }
    }
}

/// One `slaveN:ip=..,port=..,state=..,offset=..,lag=..` line of a master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLine {
    pub ip: String,
    pub port: u16,
    pub state: String,
    pub offset: u64,
    /// Seconds since the replica's last ACK.
    pub lag: u64,
}

impl ReplicaLine {
    /// `ip:port`.
    pub fn addr(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }
}

/// What the metrics and the built-in alerts use from a full `INFO` reply.
/// Each field is `None` when the reply lacks it or it is malformed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfoMetrics {
    // server
    pub redis_version: Option<String>,
    pub redis_mode: Option<String>,
    pub os: Option<String>,
    pub run_id: Option<String>,
    pub tcp_port: Option<u16>,
    pub uptime_in_seconds: Option<u64>,
    // clients
    pub connected_clients: Option<u64>,
    pub blocked_clients: Option<u64>,
    // memory
    pub used_memory: Option<u64>,
    /// 0 = no limit.
    pub maxmemory: Option<u64>,
    pub maxmemory_policy: Option<String>,
    // persistence
    pub aof_enabled: Option<bool>,
    /// `aof_last_write_status:ok`.
    pub aof_last_write_ok: Option<bool>,
    /// `rdb_last_bgsave_status:ok`.
    pub rdb_last_bgsave_ok: Option<bool>,
    pub rdb_changes_since_last_save: Option<u64>,
    // stats
    pub total_connections_received: Option<u64>,
    pub total_commands_processed: Option<u64>,
    pub instantaneous_ops_per_sec: Option<u64>,
    pub total_net_input_bytes: Option<u64>,
    pub total_net_output_bytes: Option<u64>,
    pub rejected_connections: Option<u64>,
    pub expired_keys: Option<u64>,
    pub evicted_keys: Option<u64>,
    pub keyspace_hits: Option<u64>,
    pub keyspace_misses: Option<u64>,
    // replication
    pub role: Option<InfoRole>,
    pub connected_slaves: Option<u64>,
    pub master_repl_offset: Option<u64>,
    /// A master's `slaveN` lines, ordered by N.
    pub replicas: Vec<ReplicaLine>,
    pub master_host: Option<String>,
    pub master_port: Option<u16>,
    /// `master_link_status:up`.
    pub master_link_up: Option<bool>,
    /// `-1` (never) is kept as -1.
    pub master_last_io_seconds_ago: Option<i64>,
    /// Only while the link is down; `-1` (never connected) is kept as -1.
    pub master_link_down_since_seconds: Option<i64>,
    pub slave_repl_offset: Option<u64>,
    pub slave_priority: Option<u64>,
    pub slave_read_only: Option<bool>,
}

impl InfoMetrics {
    pub fn is_master(&self) -> bool {
        self.role == Some(InfoRole::Master)
    }

    /// Used memory as a percentage of `maxmemory`, when a limit is set.
    pub fn memory_used_percent(&self) -> Option<f64> {
        match (self.used_memory, self.maxmemory) {
            (Some(used), Some(max)) if max > 0 => Some(used as f64 * 100.0 / max as f64),
            _ => None,
        }
    }
}

/// Parses the reply of a full `INFO` (any subset of sections works: what is
/// absent stays `None`). Pure.
pub fn parse_info_metrics(info_text: &str) -> InfoMetrics {
    let mut f: HashMap<&str, &str> = HashMap::new();
    for line in info_text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            f.entry(k).or_insert(v.trim());
        }
    }
    let s = |k: &str| f.get(k).filter(|v| !v.is_empty()).map(|v| v.to_string());
    let u = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
    let i = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok());
    let port = |k: &str| {
        f.get(k)
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|p| *p != 0)
    };
    let flag = |k: &str| match f.get(k).copied() {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    };
    let ok = |k: &str| f.get(k).map(|v| *v == "ok");

    let mut replicas: Vec<(u32, ReplicaLine)> = f
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("slave")?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((n.parse().ok()?, parse_replica_line(v)?))
        })
        .collect();
    replicas.sort_by_key(|(n, _)| *n);

    InfoMetrics {
        redis_version: s("redis_version"),
        redis_mode: s("redis_mode"),
        os: s("os"),
        run_id: s("run_id"),
        tcp_port: port("tcp_port"),
        uptime_in_seconds: u("uptime_in_seconds"),
        connected_clients: u("connected_clients"),
        blocked_clients: u("blocked_clients"),
        used_memory: u("used_memory"),
        maxmemory: u("maxmemory"),
        maxmemory_policy: s("maxmemory_policy"),
        aof_enabled: flag("aof_enabled"),
        aof_last_write_ok: ok("aof_last_write_status"),
        rdb_last_bgsave_ok: ok("rdb_last_bgsave_status"),
        rdb_changes_since_last_save: u("rdb_changes_since_last_save"),
        total_connections_received: u("total_connections_received"),
        total_commands_processed: u("total_commands_processed"),
        instantaneous_ops_per_sec: u("instantaneous_ops_per_sec"),
        total_net_input_bytes: u("total_net_input_bytes"),
        total_net_output_bytes: u("total_net_output_bytes"),
        rejected_connections: u("rejected_connections"),
        expired_keys: u("expired_keys"),
        evicted_keys: u("evicted_keys"),
        keyspace_hits: u("keyspace_hits"),
        keyspace_misses: u("keyspace_misses"),
        role: match f.get("role").copied() {
            Some("master") => Some(InfoRole::Master),
            Some("slave") | Some("replica") => Some(InfoRole::Replica),
            _ => None,
        },
        connected_slaves: u("connected_slaves"),
        master_repl_offset: u("master_repl_offset"),
        replicas: replicas.into_iter().map(|(_, r)| r).collect(),
        master_host: s("master_host"),
        master_port: port("master_port"),
        master_link_up: f.get("master_link_status").map(|v| *v == "up"),
        master_last_io_seconds_ago: i("master_last_io_seconds_ago"),
        master_link_down_since_seconds: i("master_link_down_since_seconds"),
        slave_repl_offset: u("slave_repl_offset"),
        slave_priority: u("slave_priority").or_else(|| u("replica_priority")),
        slave_read_only: flag("slave_read_only").or_else(|| flag("replica_read_only")),
    }
}

/// `ip=..,port=..,state=..,offset=..,lag=..` (or the pre-2.8 `ip,port,state`).
fn parse_replica_line(v: &str) -> Option<ReplicaLine> {
    if !v.contains('=') {
        let mut it = v.split(',');
        let ip = it.next()?.to_string();
        let port = it.next()?.parse().ok()?;
        let state = it.next().unwrap_or("").to_string();
        return Some(ReplicaLine {
            ip,
            port,
            state,
            offset: 0,
            lag: 0,
        });
    }
    let kv: HashMap<&str, &str> = v.split(',').filter_map(|p| p.split_once('=')).collect();
    Some(ReplicaLine {
        ip: kv.get("ip")?.to_string(),
        port: kv.get("port")?.parse().ok()?,
        state: kv.get("state").unwrap_or(&"").to_string(),
        offset: kv.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
        lag: kv.get("lag").and_then(|o| o.parse().ok()).unwrap_or(0),
    })
}

/// This daemon's view of the Raft cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftMetrics {
    pub node_id: u64,
    pub term: u64,
    pub is_leader: bool,
    /// 0 when no leader is known.
    pub leader_id: u64,
    /// A majority of the daemons is reachable.
    pub quorum_reachable: bool,
}

/// A firing built-in alert, for `raftinel_alert_firing`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FiringAlert {
    pub alert: String,
    pub group: String,
    /// Empty for group-wide alerts.
    pub instance: String,
}

#[derive(Default)]
struct InstanceState {
    up: bool,
    info: Option<InfoMetrics>,
    sdown: bool,
}

#[derive(Default)]
struct GroupState {
    epoch: u64,
    last_failover_duration_s: Option<f64>,
}

#[derive(Default)]
struct State {
    /// (group, addr).
    instances: BTreeMap<(String, String), InstanceState>,
    raft: Option<RaftMetrics>,
    groups: BTreeMap<String, GroupState>,
    /// (group, result).
    failovers: BTreeMap<(String, String), u64>,
    /// (channel, result).
    notifications: BTreeMap<(String, String), u64>,
    alerts: Vec<FiringAlert>,
    /// Export the per-instance `redis_*` series (see [`Metrics::set_export_redis`]).
    hide_redis: bool,
}

/// The metrics registry of one daemon.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

/// Results counted in `raftinel_failovers_total` from the start (at 0), so
/// `increase()` sees the first one.
pub const FAILOVER_RESULTS: &[&str] = &["completed", "aborted", "switchover"];
/// Results counted in `raftinel_notifications_total`.
pub const NOTIFICATION_RESULTS: &[&str] = &["delivered", "failed", "dropped", "suppressed"];

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest probe of `addr` in `group`: `up` when it answered; `info`
    /// the parsed INFO when one was read (kept from the last probe when
    /// `None` and still up; dropped when down, as redis_exporter exports only
    /// `redis_up 0` for an instance it cannot reach).
    pub fn set_instance(&self, group: &str, addr: &str, up: bool, info: Option<InfoMetrics>) {
        let mut st = self.state();
        let e = st
            .instances
            .entry((group.to_string(), addr.to_string()))
            .or_default();
        e.up = up;
        if !up {
            e.info = None;
        } else if info.is_some() {
            e.info = info;
        }
    }

    /// Whether this daemon sees `addr` subjectively down.
    pub fn set_sdown(&self, group: &str, addr: &str, sdown: bool) {
        self.state()
            .instances
            .entry((group.to_string(), addr.to_string()))
            .or_default()
            .sdown = sdown;
    }

    /// Keeps only the instances for which `keep(group, addr)` is true.
    pub fn retain_instances(&self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.state().instances.retain(|(g, a), _| keep(g, a));
    }

    pub fn set_raft(&self, raft: RaftMetrics) {
        self.state().raft = Some(raft);
    }

    /// The committed epoch of `group`. Also starts its failover counters at 0.
    pub fn set_group(&self, group: &str, epoch: u64) {
        let mut st = self.state();
        st.groups.entry(group.to_string()).or_default().epoch = epoch;
        for r in FAILOVER_RESULTS {
            st.failovers
                .entry((group.to_string(), r.to_string()))
                .or_insert(0);
        }
    }

    /// A failover of `group` ended: `result` is `completed`, `aborted` or
    /// `switchover`; `duration` (completed ones) sets
    /// `raftinel_last_failover_duration_seconds`.
    pub fn record_failover(&self, group: &str, result: &str, duration: Option<Duration>) {
        let mut st = self.state();
        *st.failovers
            .entry((group.to_string(), result.to_string()))
            .or_insert(0) += 1;
        if let Some(d) = duration {
            st.groups
                .entry(group.to_string())
                .or_default()
                .last_failover_duration_s = Some(d.as_micros() as f64 / 1e6);
        }
    }

    /// One notification outcome on `channel` (`delivered`, `failed`,
    /// `dropped`, `suppressed`).
    pub fn record_notification(&self, channel: &str, result: &str) {
        let mut st = self.state();
        for r in NOTIFICATION_RESULTS {
            st.notifications
                .entry((channel.to_string(), r.to_string()))
                .or_insert(0);
        }
        *st.notifications
            .entry((channel.to_string(), result.to_string()))
            .or_insert(0) += 1;
    }

    /// Starts the notification counters of `channel` at 0.
    pub fn register_channel(&self, channel: &str) {
        let mut st = self.state();
        for r in NOTIFICATION_RESULTS {
            st.notifications
                .entry((channel.to_string(), r.to_string()))
                .or_insert(0);
        }
    }

    /// Whether [`Metrics::render`] includes the per-instance `redis_*`
    /// series (default: yes). Every daemon probes every instance, so with
    /// `honor_labels: true` three daemons would export the same series under
    /// the same labels; the daemon exports them only while it is the Raft
    /// leader (`set_export_redis(is_leader)`), so each series has one source.
    pub fn set_export_redis(&self, on: bool) {
        self.state().hide_redis = !on;
    }

    /// The built-in alerts firing now (replaces the previous set).
    pub fn set_alerts(&self, firing: Vec<FiringAlert>) {
        let mut firing = firing;
        firing.sort();
        firing.dedup();
        self.state().alerts = firing;
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub fn render(&self) -> String {
        let st = self.state();
        let mut r = Render::new();
        if !st.hide_redis {
            render_instances(&mut r, &st);
        }
        render_raftinel(&mut r, &st);
        drop(st);
        r.finish()
    }
}

/// Builds one registry per render.
struct Render {
    reg: Registry,
}

impl Render {
    fn new() -> Self {
        Render {
            reg: Registry::new(),
        }
    }

    fn register<C: Collector + Clone + 'static>(&self, c: C) -> C {
        if let Err(e) = self.reg.register(Box::new(c.clone())) {
            tracing::error!(target: "raftinel::metrics", "cannot register a metric: {e}");
        }
        c
    }

    /// A gauge family (f64).
    fn gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Option<GenericGaugeVec<prometheus::core::AtomicF64>> {
        match GenericGaugeVec::new(Opts::new(name, help), labels) {
            Ok(g) => Some(self.register(g)),
            Err(e) => {
                tracing::error!(target: "raftinel::metrics", "bad metric {name}: {e}");
                None
            }
        }
    }

    /// A counter family (f64: values copied from Redis can be any u64).
    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Option<GenericCounterVec<prometheus::core::AtomicF64>> {
        match GenericCounterVec::new(Opts::new(name, help), labels) {
            Ok(c) => Some(self.register(c)),
            Err(e) => {
                tracing::error!(target: "raftinel::metrics", "bad metric {name}: {e}");
                None
            }
        }
    }

    fn finish(self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.reg.gather(), &mut buf) {
            tracing::error!(target: "raftinel::metrics", "cannot encode metrics: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn set(g: &Option<GenericGaugeVec<prometheus::core::AtomicF64>>, labels: &[&str], v: f64) {
    if let Some(g) = g {
        match g.get_metric_with_label_values(labels) {
            Ok(m) => m.set(v),
            Err(e) => tracing::error!(target: "raftinel::metrics", "bad labels: {e}"),
        }
    }
}

fn add(c: &Option<GenericCounterVec<prometheus::core::AtomicF64>>, labels: &[&str], v: f64) {
    if let Some(c) = c {
        match c.get_metric_with_label_values(labels) {
            Ok(m) => m.inc_by(v.max(0.0)),
            Err(e) => tracing::error!(target: "raftinel::metrics", "bad labels: {e}"),
        }
    }
}

fn b(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

const IL: &[&str] = &["instance", "group"];

/// The gauges read straight from one INFO field: (metric, help, getter).
type Field = (&'static str, &'static str, fn(&InfoMetrics) -> Option<f64>);

const GAUGES: &[Field] = &[
    (
        "redis_uptime_in_seconds",
        "Seconds since the instance started.",
        |i| i.uptime_in_seconds.map(|v| v as f64),
    ),
    (
        "redis_connected_clients",
        "Client connections (replicas excluded).",
        |i| i.connected_clients.map(|v| v as f64),
    ),
    (
        "redis_blocked_clients",
        "Clients blocked on a blocking call.",
        |i| i.blocked_clients.map(|v| v as f64),
    ),
    (
        "redis_memory_used_bytes",
        "Bytes allocated by Redis (used_memory).",
        |i| i.used_memory.map(|v| v as f64),
    ),
    (
        "redis_memory_max_bytes",
        "The maxmemory setting in bytes (0: no limit).",
        |i| i.maxmemory.map(|v| v as f64),
    ),
    (
        "redis_aof_enabled",
        "1 when the append-only file is enabled.",
        |i| i.aof_enabled.map(b),
    ),
    (
        "redis_aof_last_write_status",
        "1 when the last AOF write succeeded.",
        |i| i.aof_last_write_ok.map(b),
    ),
    (
        "redis_rdb_last_bgsave_status",
        "1 when the last RDB background save succeeded.",
        |i| i.rdb_last_bgsave_ok.map(b),
    ),
    (
        "redis_rdb_changes_since_last_save",
        "Changes since the last RDB save.",
        |i| i.rdb_changes_since_last_save.map(|v| v as f64),
    ),
    (
        "redis_instantaneous_ops_per_sec",
        "Commands per second (Redis' own estimate).",
        |i| i.instantaneous_ops_per_sec.map(|v| v as f64),
    ),
    (
        "redis_connected_slaves",
        "Replicas connected to this instance.",
        |i| i.connected_slaves.map(|v| v as f64),
    ),
    (
        "redis_master_repl_offset",
        "The replication offset of this instance.",
        |i| i.master_repl_offset.map(|v| v as f64),
    ),
    (
        "redis_master_link_up",
        "1 when this replica's link to its master is up.",
        |i| i.master_link_up.map(b),
    ),
    (
        "redis_slave_repl_offset",
        "The replication offset this replica has processed.",
        |i| i.slave_repl_offset.map(|v| v as f64),
    ),
    (
        "redis_master_last_io_seconds_ago",
        "Seconds since this replica last heard from its master (-1: never).",
        |i| i.master_last_io_seconds_ago.map(|v| v as f64),
    ),
    (
        "redis_master_link_down_since_seconds",
        "Seconds this replica's link has been down (-1: never connected).",
        |i| i.master_link_down_since_seconds.map(|v| v as f64),
    ),
    (
        "redis_slave_priority",
        "This replica's replica-priority (0: never promoted).",
        |i| i.slave_priority.map(|v| v as f64),
    ),
];

const COUNTERS: &[Field] = &[
    (
        "redis_commands_processed_total",
        "Commands processed.",
        |i| i.total_commands_processed.map(|v| v as f64),
    ),
    (
        "redis_connections_received_total",
        "Connections accepted.",
        |i| i.total_connections_received.map(|v| v as f64),
    ),
    (
        "redis_rejected_connections_total",
        "Connections rejected (maxclients).",
        |i| i.rejected_connections.map(|v| v as f64),
    ),
    (
        "redis_keyspace_hits_total",
        "Successful key lookups.",
        |i| i.keyspace_hits.map(|v| v as f64),
    ),
    ("redis_keyspace_misses_total", "Failed key lookups.", |i| {
        i.keyspace_misses.map(|v| v as f64)
    }),
    ("redis_expired_keys_total", "Keys expired.", |i| {
        i.expired_keys.map(|v| v as f64)
    }),
    (
        "redis_evicted_keys_total",
        "Keys evicted by maxmemory.",
        |i| i.evicted_keys.map(|v| v as f64),
    ),
    (
        "redis_net_input_bytes_total",
        "Bytes read from the network.",
        |i| i.total_net_input_bytes.map(|v| v as f64),
    ),
    (
        "redis_net_output_bytes_total",
        "Bytes written to the network.",
        |i| i.total_net_output_bytes.map(|v| v as f64),
    ),
];

fn render_instances(r: &mut Render, st: &State) {
    let up = r.gauge(
        "redis_up",
        "1 when the instance answered the last probe.",
        IL,
    );
    let info_g = r.gauge(
        "redis_instance_info",
        "Information about the instance (always 1).",
        &[
            "instance",
            "group",
            "role",
            "redis_version",
            "redis_mode",
            "os",
            "run_id",
            "tcp_port",
            "maxmemory_policy",
        ],
    );
    let slave_info = r.gauge(
        "redis_slave_info",
        "Information about this replica's master (always 1).",
        &[
            "instance",
            "group",
            "master_host",
            "master_port",
            "read_only",
        ],
    );
    let gauges: Vec<_> = GAUGES.iter().map(|(n, h, _)| r.gauge(n, h, IL)).collect();
    let counters: Vec<_> = COUNTERS
        .iter()
        .map(|(n, h, _)| r.counter(n, h, IL))
        .collect();
    let replica_labels = &["instance", "group", "slave_ip", "slave_port", "slave_state"];
    let slave_offset = r.gauge(
        "redis_connected_slave_offset_bytes",
        "The replication offset each connected replica acknowledged (from the master's INFO).",
        replica_labels,
    );
    let slave_lag = r.gauge(
        "redis_connected_slave_lag_seconds",
        "Seconds since each connected replica's last acknowledgement (from the master's INFO).",
        replica_labels,
    );

    for ((group, addr), inst) in &st.instances {
        let l = [addr.as_str(), group.as_str()];
        set(&up, &l, b(inst.up));
        let Some(i) = &inst.info else { continue };
        let port = i.tcp_port.map(|p| p.to_string()).unwrap_or_default();
        set(
            &info_g,
            &[
                addr,
                group,
                i.role.map_or("", InfoRole::as_str),
                i.redis_version.as_deref().unwrap_or(""),
                i.redis_mode.as_deref().unwrap_or(""),
                i.os.as_deref().unwrap_or(""),
                i.run_id.as_deref().unwrap_or(""),
                &port,
                i.maxmemory_policy.as_deref().unwrap_or(""),
            ],
            1.0,
        );
        for ((_, _, get), g) in GAUGES.iter().zip(&gauges) {
            if let Some(v) = get(i) {
                set(g, &l, v);
            }
        }
        for ((_, _, get), c) in COUNTERS.iter().zip(&counters) {
            if let Some(v) = get(i) {
                add(c, &l, v);
            }
        }
        if i.role == Some(InfoRole::Replica) {
            let mport = i.master_port.map(|p| p.to_string()).unwrap_or_default();
            let ro = match i.slave_read_only {
                Some(true) => "1",
                Some(false) => "0",
                None => "",
            };
            set(
                &slave_info,
                &[
                    addr,
                    group,
                    i.master_host.as_deref().unwrap_or(""),
                    &mport,
                    ro,
                ],
                1.0,
            );
        }
        for rep in &i.replicas {
            let p = rep.port.to_string();
            let rl = [
                addr.as_str(),
                group.as_str(),
                rep.ip.as_str(),
                p.as_str(),
                rep.state.as_str(),
            ];
            set(&slave_offset, &rl, rep.offset as f64);
            set(&slave_lag, &rl, rep.lag as f64);
        }
    }
}

fn render_raftinel(r: &mut Render, st: &State) {
    if let Some(raft) = &st.raft {
        let node = r.gauge(
            "raftinel_node_info",
            "This daemon's node id (always 1).",
            &["node_id"],
        );
        set(&node, &[&raft.node_id.to_string()], 1.0);
        let term = r.gauge(
            "raftinel_raft_term",
            "The current Raft term of this daemon.",
            &[],
        );
        set(&term, &[], raft.term as f64);
        let leader = r.gauge(
            "raftinel_raft_is_leader",
            "1 when this daemon is the Raft leader.",
            &[],
        );
        set(&leader, &[], b(raft.is_leader));
        let lid = r.gauge(
            "raftinel_raft_leader_id",
            "The node id of the Raft leader this daemon knows (0: none).",
            &[],
        );
        set(&lid, &[], raft.leader_id as f64);
        let q = r.gauge(
            "raftinel_quorum_reachable",
            "1 when this daemon reaches a majority of the daemons.",
            &[],
        );
        set(&q, &[], b(raft.quorum_reachable));
    }
    let epoch = r.gauge(
        "raftinel_group_epoch",
        "The committed epoch of the group (grows with every failover).",
        &["group"],
    );
    let dur = r.gauge(
        "raftinel_last_failover_duration_seconds",
        "Duration of the group's last completed failover, from objectively down to the new master committed.",
        &["group"],
    );
    for (g, gs) in &st.groups {
        set(&epoch, &[g], gs.epoch as f64);
        if let Some(d) = gs.last_failover_duration_s {
            set(&dur, &[g], d);
        }
    }
    let fo = r.counter(
        "raftinel_failovers_total",
        "Failovers by result (completed, aborted, switchover).",
        &["group", "result"],
    );
    for ((g, res), n) in &st.failovers {
        add(&fo, &[g, res], *n as f64);
    }
    // `node` tells the daemons apart: with honor_labels their `instance`
    // label is the Redis address, not the scraped target.
    let node = st.raft.map(|r| r.node_id.to_string()).unwrap_or_default();
    let sd = r.gauge(
        "raftinel_instance_sdown",
        "1 when this daemon (node) sees the instance subjectively down.",
        &["group", "instance", "node"],
    );
    for ((g, a), inst) in &st.instances {
        set(&sd, &[g, a, &node], b(inst.sdown));
    }
    let nt = r.counter(
        "raftinel_notifications_total",
        "Notifications by channel and result (delivered, failed, dropped, suppressed).",
        &["channel", "result"],
    );
    for ((c, res), n) in &st.notifications {
        add(&nt, &[c, res], *n as f64);
    }
    let al = r.gauge(
        "raftinel_alert_firing",
        "1 for each built-in alert firing now (evaluated by the leader, node).",
        &["alert", "group", "instance", "node"],
    );
    for a in &st.alerts {
        set(&al, &[&a.alert, &a.group, &a.instance, &node], 1.0);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A full INFO of a Redis 7.0 master with one replica (trimmed).
    pub(crate) const MASTER_INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\nos:Linux 6.1.0 x86_64\r\nprocess_id:24137\r\nrun_id:6adbea23df593c46eab7558a87bf11309c185718\r\ntcp_port:6379\r\nuptime_in_seconds:120\r\n\r\n# Clients\r\nconnected_clients:7\r\nblocked_clients:1\r\n\r\n# Memory\r\nused_memory:85983232\r\nused_memory_human:82.00M\r\nmaxmemory:104857600\r\nmaxmemory_human:100.00M\r\nmaxmemory_policy:noeviction\r\n\r\n# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:12\r\nrdb_last_bgsave_status:ok\r\naof_enabled:1\r\naof_last_write_status:err\r\n\r\n# Stats\r\ntotal_connections_received:30\r\ntotal_commands_processed:12345\r\ninstantaneous_ops_per_sec:250\r\ntotal_net_input_bytes:1000\r\ntotal_net_output_bytes:2000\r\nrejected_connections:0\r\nexpired_keys:3\r\nevicted_keys:0\r\nkeyspace_hits:40\r\nkeyspace_misses:2\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=5000,lag=0\r\nslave1:ip=10.0.0.3,port=6380,state=wait_bgsave,offset=0,lag=3\r\nmaster_failover_state:no-failover\r\nmaster_replid:b3d4849e80cf2c410bc33cd41022530535bffcf3\r\nmaster_repl_offset:5050\r\nsecond_repl_offset:-1\r\n";

    /// A replica whose link is down.
    pub(crate) const REPLICA_INFO: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:aaaa\r\ntcp_port:6380\r\n\r\n# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:1\r\nslave_repl_offset:4000\r\nmaster_link_down_since_seconds:42\r\nslave_priority:100\r\nslave_read_only:1\r\nconnected_slaves:0\r\nmaster_repl_offset:4000\r\n";

    #[test]
    fn parses_a_master() {
        let i = parse_info_metrics(MASTER_INFO);
        assert_eq!(i.redis_version.as_deref(), Some("7.0.15"));
        assert_eq!(i.tcp_port, Some(6379));
        assert_eq!(i.connected_clients, Some(7));
        assert_eq!(i.used_memory, Some(85_983_232));
        assert_eq!(i.maxmemory, Some(104_857_600));
        assert_eq!(i.aof_enabled, Some(true));
        assert_eq!(i.aof_last_write_ok, Some(false));
        assert_eq!(i.rdb_last_bgsave_ok, Some(true));
        assert_eq!(i.total_commands_processed, Some(12_345));
        assert_eq!(i.instantaneous_ops_per_sec, Some(250));
        assert_eq!(i.role, Some(InfoRole::Master));
        assert_eq!(i.connected_slaves, Some(2));
        assert_eq!(i.master_repl_offset, Some(5050));
        assert_eq!(
            i.replicas,
            vec![
                ReplicaLine {
                    ip: "10.0.0.2".into(),
                    port: 6379,
                    state: "online".into(),
                    offset: 5000,
                    lag: 0
                },
                ReplicaLine {
                    ip: "10.0.0.3".into(),
                    port: 6380,
                    state: "wait_bgsave".into(),
                    offset: 0,
                    lag: 3
                },
            ]
        );
        assert_eq!(i.master_link_up, None);
        let pct = i.memory_used_percent().unwrap();
        assert!((pct - 82.0).abs() < 0.01, "{pct}");
    }

    #[test]
    fn parses_a_replica_and_tolerates_garbage() {
        let i = parse_info_metrics(REPLICA_INFO);
        assert_eq!(i.role, Some(InfoRole::Replica));
        assert_eq!(i.master_host.as_deref(), Some("10.0.0.1"));
        assert_eq!(i.master_port, Some(6379));
        assert_eq!(i.master_link_up, Some(false));
        assert_eq!(i.master_last_io_seconds_ago, Some(-1));
        assert_eq!(i.master_link_down_since_seconds, Some(42));
        assert_eq!(i.slave_repl_offset, Some(4000));
        assert_eq!(i.slave_priority, Some(100));
        assert_eq!(i.slave_read_only, Some(true));
        assert_eq!(i.memory_used_percent(), None);

        let g = parse_info_metrics(
            "used_memory:lots\r\nmaxmemory:0\r\nrole:sentinel\r\nslave0:garbage\r\nslavex:1\r\n",
        );
        assert_eq!(g.used_memory, None);
        assert_eq!(g.maxmemory, Some(0));
        assert_eq!(g.role, None);
        assert!(g.replicas.is_empty());
        assert_eq!(parse_info_metrics(""), InfoMetrics::default());
    }

    #[test]
    fn old_style_replica_lines() {
        let i = parse_info_metrics("role:master\nslave0:10.0.0.9,6379,online\n");
        assert_eq!(i.replicas[0].addr(), "10.0.0.9:6379");
        assert_eq!(i.replicas[0].state, "online");
    }

    fn line(out: &str, prefix: &str) -> Option<String> {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    }

    #[test]
    fn renders_exporter_names_and_labels() {
        let m = Metrics::new();
        m.set_instance(
            "mymaster",
            "10.0.0.1:6379",
            true,
            Some(parse_info_metrics(MASTER_INFO)),
        );
        m.set_instance(
            "mymaster",
            "10.0.0.3:6380",
            true,
            Some(parse_info_metrics(REPLICA_INFO)),
        );
        m.set_instance("mymaster", "10.0.0.2:6379", false, None);
        m.set_sdown("mymaster", "10.0.0.2:6379", true);
        m.set_raft(RaftMetrics {
            node_id: 2,
            term: 5,
            is_leader: true,
            leader_id: 2,
            quorum_reachable: true,
        });
        m.set_group("mymaster", 7);
        m.record_failover("mymaster", "completed", Some(Duration::from_millis(1840)));
        m.record_notification("ops-mail", "delivered");
        m.set_alerts(vec![FiringAlert {
            alert: "RedisMemoryHigh".into(),
            group: "mymaster".into(),
            instance: "10.0.0.1:6379".into(),
        }]);
        let out = m.render();
        for want in [
            "# TYPE redis_up gauge",
            "redis_up{group=\"mymaster\",instance=\"10.0.0.1:6379\"} 1",
            "redis_up{group=\"mymaster\",instance=\"10.0.0.2:6379\"} 0",
            "redis_instance_info{group=\"mymaster\",instance=\"10.0.0.1:6379\",maxmemory_policy=\"noeviction\",os=\"Linux 6.1.0 x86_64\",redis_mode=\"standalone\",redis_version=\"7.0.15\",role=\"master\",run_id=\"6adbea23df593c46eab7558a87bf11309c185718\",tcp_port=\"6379\"} 1",
            "redis_memory_used_bytes{group=\"mymaster\",instance=\"10.0.0.1:6379\"} 85983232",
            "redis_memory_max_bytes{group=\"mymaster\",instance=\"10.0.0.1:6379\"} 104857600",
            "# TYPE redis_commands_processed_total counter",
            "redis_commands_processed_total{group=\"mymaster\",instance=\"10.0.0.1:6379\"} 12345",
            "redis_connected_slave_offset_bytes{group=\"mymaster\",instance=\"10.0.0.1:6379\",slave_ip=\"10.0.0.2\",slave_port=\"6379\",slave_state=\"online\"} 5000",
            "redis_connected_slave_lag_seconds{group=\"mymaster\",instance=\"10.0.0.1:6379\",slave_ip=\"10.0.0.3\",slave_port=\"6380\",slave_state=\"wait_bgsave\"} 3",
            "redis_master_link_up{group=\"mymaster\",instance=\"10.0.0.3:6380\"} 0",
            "redis_aof_last_write_status{group=\"mymaster\",instance=\"10.0.0.1:6379\"} 0",
            "redis_aof_enabled{group=\"mymaster\",instance=\"10.0.0.1:6379\"} 1",
            "redis_slave_info{group=\"mymaster\",instance=\"10.0.0.3:6380\",master_host=\"10.0.0.1\",master_port=\"6379\",read_only=\"1\"} 1",
            "raftinel_raft_term 5",
            "raftinel_raft_is_leader 1",
            "raftinel_raft_leader_id 2",
            "raftinel_quorum_reachable 1",
            "raftinel_group_epoch{group=\"mymaster\"} 7",
            "raftinel_failovers_total{group=\"mymaster\",result=\"completed\"} 1",
            "raftinel_failovers_total{group=\"mymaster\",result=\"aborted\"} 0",
            "raftinel_last_failover_duration_seconds{group=\"mymaster\"} 1.84",
            "raftinel_instance_sdown{group=\"mymaster\",instance=\"10.0.0.2:6379\",node=\"2\"} 1",
            "raftinel_notifications_total{channel=\"ops-mail\",result=\"delivered\"} 1",
            "raftinel_notifications_total{channel=\"ops-mail\",result=\"failed\"} 0",
            "raftinel_alert_firing{alert=\"RedisMemoryHigh\",group=\"mymaster\",instance=\"10.0.0.1:6379\",node=\"2\"} 1",
        ] {
            assert!(out.lines().any(|l| l == want), "missing {want:?} in\n{out}");
        }
        // Followers leave the redis_* series to the leader.
        m.set_export_redis(false);
        let follower = m.render();
        assert!(!follower.contains("redis_"), "{follower}");
        assert!(follower.contains("raftinel_instance_sdown{"));
        m.set_export_redis(true);
        // A down instance exports only redis_up (and its sdown).
        assert!(line(
            &out,
            "redis_memory_used_bytes{group=\"mymaster\",instance=\"10.0.0.2:6379\"}"
        )
        .is_none());
        // The master link gauge is only on replicas.
        assert!(line(
            &out,
            "redis_master_link_up{group=\"mymaster\",instance=\"10.0.0.1:6379\"}"
        )
        .is_none());
    }

    #[test]
    fn no_stale_series_after_changes() {
        let m = Metrics::new();
        m.set_instance("g", "h:1", true, Some(parse_info_metrics(MASTER_INFO)));
        assert!(m.render().contains("slave_ip=\"10.0.0.3\""));
        m.set_instance(
            "g",
            "h:1",
            true,
            Some(parse_info_metrics("role:master\r\nconnected_slaves:0\r\n")),
        );
        let out = m.render();
        assert!(!out.contains("slave_ip"), "{out}");
        assert!(out.contains("role=\"master\""));
        m.retain_instances(|_, a| a != "h:1");
        assert!(!m.render().contains("h:1"));
        // An up instance with no new INFO keeps the last one.
        m.set_instance("g", "h:2", true, Some(parse_info_metrics(MASTER_INFO)));
        m.set_instance("g", "h:2", true, None);
        assert!(m
            .render()
            .contains("redis_memory_used_bytes{group=\"g\",instance=\"h:2\"}"));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        let mut i = parse_info_metrics(MASTER_INFO);
        i.os = Some("Linux \"quoted\" \\ back\nslash".into());
        m.set_instance("g", "h:1", true, Some(i));
        let out = m.render();
        assert!(
            out.contains(r#"os="Linux \"quoted\" \\ back\nslash""#),
            "{out}"
        );
    }
}
