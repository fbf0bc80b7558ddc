//! Built-in health alerts, for users without Prometheus. PURE: no I/O, no
//! clock (`now_ms` is an argument).
//!
//! # Public API
//!
//! - [`AlertRules`] (thresholds and `for` durations; `Default` is the
//!   documented defaults) from the `[alerts]` table: [`RawAlerts`] (serde,
//!   unknown keys rejected) → [`RawAlerts::validate`].
//! - [`AlertEngine::new`]`(rules)`, then every second or so
//!   [`AlertEngine::evaluate`]`(now_ms, &[InstanceSample])` → the
//!   [`AlertTransition`]s (fired / resolved) of this evaluation; turn each into
//!   a notification with `Notification::from_alert`.
//!   [`AlertEngine::firing`] lists what fires now (for
//!   `raftinel_alert_firing`); [`AlertEngine::reset`] forgets everything (call
//!   it when this daemon stops being the leader: the leader evaluates).
//!
//! # Rules (names as in config/prometheus/alerts.yml)
//!
//! | alert | on | condition | default threshold, for |
//! |---|---|---|---|
//! | `RedisMemoryHigh` | instance | used_memory > `percent` % of maxmemory (only when maxmemory > 0) | 80 %, 5 min |
//! | `RedisReplicationLagHigh` | replica (from its master's INFO, online replicas) | master offset − replica offset > `max_bytes`, or ACK lag > `max_seconds` | 10 MiB / 10 s, 1 min |
//! | `RedisMasterLinkDown` | replica | `master_link_status` not `up` | 30 s |
//! | `RedisReplicasMissing` | master | `connected_slaves` < `min_replicas` (default: the replicas the group knows) | 1 min |
//! | `RedisAofDisabledOnMaster` | master | `aof_enabled:0` | 1 min |
//! | `RedisAofWriteFailed` | instance | `aof_last_write_status` not `ok` | 0 s |
//! | `RedisMultipleMasters` | group | more than one instance reports role master | 15 s |
//! | `RedisOpsPerSecHigh` | instance | `instantaneous_ops_per_sec` > `max` | 100000, 5 min |
//!
//! A condition must hold for the whole `for` duration before the alert fires
//! (one transition with `firing: true`); when it stops holding, one
//! transition with `firing: false` (the resolved notice). An instance whose
//! INFO is unavailable (down) keeps its alerts as they are: being down is
//! reported by sdown/odown. An instance (or group) no longer in the samples
//! resolves its firing alerts.

use crate::metrics::{FiringAlert, InfoMetrics};
use crate::notify::{NotifyConfigError, Severity};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use toml::Spanned;

pub const MEMORY_HIGH: &str = "RedisMemoryHigh";
pub const REPLICATION_LAG_HIGH: &str = "RedisReplicationLagHigh";
pub const MASTER_LINK_DOWN: &str = "RedisMasterLinkDown";
pub const REPLICAS_MISSING: &str = "RedisReplicasMissing";
pub const AOF_DISABLED_ON_MASTER: &str = "RedisAofDisabledOnMaster";
pub const AOF_WRITE_FAILED: &str = "RedisAofWriteFailed";
pub const MULTIPLE_MASTERS: &str = "RedisMultipleMasters";
pub const OPS_PER_SEC_HIGH: &str = "RedisOpsPerSecHigh";

/// Every built-in alert name.
pub const ALERT_NAMES: &[&str] = &[
    MEMORY_HIGH,
    REPLICATION_LAG_HIGH,
    MASTER_LINK_DOWN,
    REPLICAS_MISSING,
    AOF_DISABLED_ON_MASTER,
    AOF_WRITE_FAILED,
    MULTIPLE_MASTERS,
    OPS_PER_SEC_HIGH,
];

/// What the daemon knows of one instance at evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSample {
    pub group: String,
    /// `host:port`.
    pub instance: String,
    /// The latest INFO (fresh), or `None` when the instance does not answer.
    pub info: Option<InfoMetrics>,
    /// For a master: how many replicas the group knows (the default
    /// threshold of `RedisReplicasMissing`).
    pub expected_replicas: Option<usize>,
}

/// A rule's switch and `for` duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleBase {
    pub enabled: bool,
    pub for_ms: u64,
}

impl RuleBase {
    const fn on(for_ms: u64) -> Self {
        RuleBase {
            enabled: true,
            for_ms,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlertRules {
    pub memory: RuleBase,
    /// Percent of maxmemory, (0, 100].
    pub memory_percent: f64,
    pub replication_lag: RuleBase,
    pub lag_max_bytes: Option<u64>,
    pub lag_max_seconds: Option<u64>,
    pub master_link_down: RuleBase,
    pub replicas_missing: RuleBase,
    /// Overrides [`InstanceSample::expected_replicas`] for every group.
    pub min_replicas: Option<usize>,
    pub aof_disabled_on_master: RuleBase,
    pub aof_write_failed: RuleBase,
    pub multiple_masters: RuleBase,
    pub ops_per_sec: RuleBase,
    pub ops_per_sec_max: u64,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            memory: RuleBase::on(300_000),
            memory_percent: 80.0,
            replication_lag: RuleBase::on(60_000),
            lag_max_bytes: Some(10 * 1024 * 1024),
            lag_max_seconds: Some(10),
            master_link_down: RuleBase::on(30_000),
            replicas_missing: RuleBase::on(60_000),
            min_replicas: None,
            aof_disabled_on_master: RuleBase::on(60_000),
            aof_write_failed: RuleBase::on(0),
            multiple_masters: RuleBase::on(15_000),
            ops_per_sec: RuleBase::on(300_000),
            ops_per_sec_max: 100_000,
        }
    }
}

impl AlertRules {
    /// Every rule switched off.
    pub fn disabled() -> Self {
        let mut r = AlertRules::default();
        for b in [
            &mut r.memory,
            &mut r.replication_lag,
            &mut r.master_link_down,
            &mut r.replicas_missing,
            &mut r.aof_disabled_on_master,
            &mut r.aof_write_failed,
            &mut r.multiple_masters,
            &mut r.ops_per_sec,
        ] {
            b.enabled = false;
        }
        r
    }
}

impl AlertRules {
    /// One line per rule for `raftinel check-config`.
    pub fn summary(&self) -> Vec<String> {
        let f = |b: RuleBase, what: String| {
            if b.enabled {
                format!("{what}, for {} ms", b.for_ms)
            } else {
                format!("{what}: off")
            }
        };
        let lag = match (self.lag_max_bytes, self.lag_max_seconds) {
            (Some(b), Some(s)) => format!("> {b} bytes or > {s} s"),
            (Some(b), None) => format!("> {b} bytes"),
            (None, Some(s)) => format!("> {s} s"),
            (None, None) => "no limit".to_string(),
        };
        vec![
            f(
                self.memory,
                format!(
                    "{MEMORY_HIGH}: used memory > {}% of maxmemory",
                    self.memory_percent
                ),
            ),
            f(
                self.replication_lag,
                format!("{REPLICATION_LAG_HIGH}: lag {lag}"),
            ),
            f(
                self.master_link_down,
                format!("{MASTER_LINK_DOWN}: replica link down"),
            ),
            f(
                self.replicas_missing,
                match self.min_replicas {
                    Some(n) => format!("{REPLICAS_MISSING}: fewer than {n} replicas"),
                    None => format!("{REPLICAS_MISSING}: fewer replicas than the group knows"),
                },
            ),
            f(
                self.aof_disabled_on_master,
                format!("{AOF_DISABLED_ON_MASTER}: appendonly no on a master"),
            ),
            f(
                self.aof_write_failed,
                format!("{AOF_WRITE_FAILED}: last AOF write failed"),
            ),
            f(
                self.multiple_masters,
                format!("{MULTIPLE_MASTERS}: more than one master in a group"),
            ),
            f(
                self.ops_per_sec,
                format!("{OPS_PER_SEC_HIGH}: > {} ops/s", self.ops_per_sec_max),
            ),
        ]
    }
}

/// An alert fired or resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertTransition {
    /// One of [`ALERT_NAMES`].
    pub name: String,
    pub group: String,
    /// The instance, or `None` for a group-wide alert.
    pub instance: Option<String>,
    pub firing: bool,
    /// The measured value (percent, bytes, seconds, count, ops/s; 1/0 for
    /// yes/no conditions).
    pub value: f64,
    pub threshold: f64,
    pub severity: Severity,
    /// One line, e.g. `used memory 85.0% of maxmemory (85.0 MiB of 100.0 MiB), above 80%`.
    pub message: String,
    /// Unix ms when the condition started to hold (the same in the firing and
    /// the resolved transition).
    pub since_ms: u64,
}

/// (alert, group, instance or "").
type Key = (&'static str, String, String);

struct Condition {
    key: Key,
    /// (group, instance) of the sample it was computed from; "" for groups.
    source: (String, String),
    active: bool,
    value: f64,
    threshold: f64,
    severity: Severity,
    for_ms: u64,
    message: String,
}

struct AlertState {
    since_ms: u64,
    firing: bool,
    source: (String, String),
    threshold: f64,
    severity: Severity,
    value: f64,
}

/// Evaluates the rules over time.
pub struct AlertEngine {
    rules: AlertRules,
    states: BTreeMap<Key, AlertState>,
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

impl AlertEngine {
    pub fn new(rules: AlertRules) -> Self {
        AlertEngine {
            rules,
            states: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    /// Forgets every pending and firing alert (no transitions).
    pub fn reset(&mut self) {
        self.states.clear();
    }

    /// The alerts firing now.
    pub fn firing(&self) -> Vec<FiringAlert> {
        self.states
            .iter()
            .filter(|(_, s)| s.firing)
            .map(|((a, g, i), _)| FiringAlert {
                alert: a.to_string(),
                group: g.clone(),
                instance: i.clone(),
            })
            .collect()
    }

    fn conditions(&self, samples: &[InstanceSample]) -> Vec<Condition> {
        let r = &self.rules;
        let mut out = Vec::new();
        let mut cond = |name: &'static str,
                        s: &InstanceSample,
                        target: &str,
                        rule: RuleBase,
                        active: bool,
                        value: f64,
                        threshold: f64,
                        severity: Severity,
                        message: String| {
            if rule.enabled {
                out.push(Condition {
                    key: (name, s.group.clone(), target.to_string()),
                    source: (s.group.clone(), s.instance.clone()),
                    active,
                    value,
                    threshold,
                    severity,
                    for_ms: rule.for_ms,
                    message,
                });
            }
        };
        for s in samples {
            let Some(i) = &s.info else { continue };
            let inst = s.instance.as_str();
            if let Some(pct) = i.memory_used_percent() {
                let used = i.used_memory.unwrap_or(0) as f64;
                let max = i.maxmemory.unwrap_or(0) as f64;
                let active = pct > r.memory_percent;
                cond(
                    MEMORY_HIGH,
                    s,
                    inst,
                    r.memory,
                    active,
                    (pct * 10.0).round() / 10.0,
                    r.memory_percent,
                    Severity::Warning,
                    if active {
                        format!(
                            "used memory {pct:.1}% of maxmemory ({} of {}), above {}%",
                            mib(used),
                            mib(max),
                            r.memory_percent
                        )
                    } else {
                        format!(
                            "used memory back to {pct:.1}% of maxmemory ({} of {})",
                            mib(used),
                            mib(max)
                        )
                    },
                );
            }
            if let Some(v) = i.aof_last_write_ok {
                cond(
                    AOF_WRITE_FAILED,
                    s,
                    inst,
                    r.aof_write_failed,
                    !v,
                    if v { 0.0 } else { 1.0 },
                    0.0,
                    Severity::Critical,
                    if v {
                        "AOF writes succeed again".to_string()
                    } else {
                        "the last write to the append-only file failed (disk full or read-only?)"
                            .to_string()
                    },
                );
            }
            if let Some(ops) = i.instantaneous_ops_per_sec {
                let active = ops > r.ops_per_sec_max;
                cond(
                    OPS_PER_SEC_HIGH,
                    s,
                    inst,
                    r.ops_per_sec,
                    active,
                    ops as f64,
                    r.ops_per_sec_max as f64,
                    Severity::Warning,
                    if active {
                        format!("{ops} ops/s, above {}", r.ops_per_sec_max)
                    } else {
                        format!("{ops} ops/s, back under {}", r.ops_per_sec_max)
                    },
                );
            }
            if i.is_master() {
                if let Some(aof) = i.aof_enabled {
                    cond(
                        AOF_DISABLED_ON_MASTER,
                        s,
                        inst,
                        r.aof_disabled_on_master,
                        !aof,
                        if aof { 1.0 } else { 0.0 },
                        1.0,
                        Severity::Warning,
                        if aof {
                            "appendonly is enabled on the master".to_string()
                        } else {
                            "appendonly is disabled on the master: a restart loses the writes since the last RDB save".to_string()
                        },
                    );
                }
                if let (Some(expected), Some(connected)) = (
                    r.min_replicas.or(s.expected_replicas).filter(|e| *e > 0),
                    i.connected_slaves,
                ) {
                    let active = (connected as usize) < expected;
                    cond(
                        REPLICAS_MISSING,
                        s,
                        inst,
                        r.replicas_missing,
                        active,
                        connected as f64,
                        expected as f64,
                        Severity::Warning,
                        format!("{connected} of {expected} expected replicas connected"),
                    );
                }
                let offset = i.master_repl_offset.unwrap_or(0);
                for rep in i.replicas.iter().filter(|x| x.state == "online") {
                    let bytes = offset.saturating_sub(rep.offset);
                    let by_bytes = r.lag_max_bytes.is_some_and(|m| bytes > m);
                    let by_secs = r.lag_max_seconds.is_some_and(|m| rep.lag > m);
                    let (value, threshold) = if by_secs && !by_bytes {
                        (rep.lag as f64, r.lag_max_seconds.unwrap_or(0) as f64)
                    } else {
                        (bytes as f64, r.lag_max_bytes.map_or(0.0, |m| m as f64))
                    };
                    let replica = rep.addr();
                    let active = by_bytes || by_secs;
                    cond(
                        REPLICATION_LAG_HIGH,
                        s,
                        &replica,
                        r.replication_lag,
                        active,
                        value,
                        threshold,
                        Severity::Warning,
                        format!(
                            "replica {replica} is {} ({} s since its last ACK) behind master {inst}{}",
                            mib(bytes as f64),
                            rep.lag,
                            if active { "" } else { ": caught up" }
                        ),
                    );
                }
            } else if let Some(up) = i.master_link_up {
                let master = match (&i.master_host, i.master_port) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    _ => "its master".to_string(),
                };
                let down_for = i.master_link_down_since_seconds.filter(|s| *s >= 0);
                cond(
                    MASTER_LINK_DOWN,
                    s,
                    inst,
                    r.master_link_down,
                    !up,
                    down_for.map_or(if up { 0.0 } else { 1.0 }, |d| d as f64),
                    0.0,
                    Severity::Warning,
                    if up {
                        format!("link to master {master} is up again")
                    } else {
                        match down_for {
                            Some(d) => format!("link to master {master} down for {d} s"),
                            None => {
                                format!("link to master {master} down (never connected or syncing)")
                            }
                        }
                    },
                );
            }
        }

        // Group-wide: several instances report role master.
        if r.multiple_masters.enabled {
            let mut groups: BTreeMap<&str, (bool, Vec<&str>)> = BTreeMap::new();
            for s in samples {
                let e = groups.entry(s.group.as_str()).or_default();
                if let Some(i) = &s.info {
                    e.0 = true;
                    if i.is_master() {
                        e.1.push(s.instance.as_str());
                    }
                }
            }
            for (g, (any_info, masters)) in groups {
                if !any_info {
                    continue;
                }
                let active = masters.len() > 1;
                out.push(Condition {
                    key: (MULTIPLE_MASTERS, g.to_string(), String::new()),
                    source: (g.to_string(), String::new()),
                    active,
                    value: masters.len() as f64,
                    threshold: 1.0,
                    severity: Severity::Critical,
                    for_ms: r.multiple_masters.for_ms,
                    message: if active {
                        format!(
                            "{} instances report role master: {}",
                            masters.len(),
                            masters.join(", ")
                        )
                    } else {
                        format!("one master again ({})", masters.join(", "))
                    },
                });
            }
        }
        out
    }

    /// Evaluates every rule on `samples` at `now_ms` (Unix ms) and returns
    /// the alerts that fired or resolved, in a stable order.
    pub fn evaluate(&mut self, now_ms: u64, samples: &[InstanceSample]) -> Vec<AlertTransition> {
        let conditions = self.conditions(samples);
        let mut out = Vec::new();
        let transition =
            |key: &Key, st: &AlertState, firing: bool, message: String| AlertTransition {
                name: key.0.to_string(),
                group: key.1.clone(),
                instance: (!key.2.is_empty()).then(|| key.2.clone()),
                firing,
                value: st.value,
                threshold: st.threshold,
                severity: st.severity,
                message,
                since_ms: st.since_ms,
            };

        let mut seen: HashSet<Key> = HashSet::new();
        for c in conditions {
            seen.insert(c.key.clone());
            if c.active {
                let st = self.states.entry(c.key.clone()).or_insert(AlertState {
                    since_ms: now_ms,
                    firing: false,
                    source: c.source.clone(),
                    threshold: c.threshold,
                    severity: c.severity,
                    value: c.value,
                });
                st.value = c.value;
                st.threshold = c.threshold;
                st.source = c.source;
                if !st.firing && now_ms.saturating_sub(st.since_ms) >= c.for_ms {
                    st.firing = true;
                    out.push(transition(&c.key, st, true, c.message));
                }
            } else if let Some(mut st) = self.states.remove(&c.key) {
                if st.firing {
                    st.value = c.value;
                    out.push(transition(&c.key, &st, false, c.message));
                }
            }
        }

        // States without a condition this time.
        let with_info: HashSet<(&str, &str)> = samples
            .iter()
            .filter(|s| s.info.is_some())
            .map(|s| (s.group.as_str(), s.instance.as_str()))
            .collect();
        let present: HashSet<(&str, &str)> = samples
            .iter()
            .map(|s| (s.group.as_str(), s.instance.as_str()))
            .collect();
        let groups: HashSet<&str> = samples.iter().map(|s| s.group.as_str()).collect();
        let gone: Vec<Key> = self
            .states
            .iter()
            .filter(|(k, _)| !seen.contains(*k))
            .filter_map(|(k, st)| {
                let (g, i) = (st.source.0.as_str(), st.source.1.as_str());
                let source_present = if i.is_empty() {
                    groups.contains(g)
                } else {
                    present.contains(&(g, i))
                };
                let unknown = if i.is_empty() {
                    // Group-wide: no instance of the group has INFO.
                    source_present && !samples.iter().any(|s| s.group == g && s.info.is_some())
                } else {
                    source_present && !with_info.contains(&(g, i))
                };
                (!unknown).then(|| k.clone())
            })
            .collect();
        for k in gone {
            if let Some(st) = self.states.remove(&k) {
                if st.firing {
                    let still_monitored = if st.source.1.is_empty() {
                        groups.contains(st.source.0.as_str())
                    } else {
                        present.contains(&(st.source.0.as_str(), st.source.1.as_str()))
                    };
                    let msg = if still_monitored {
                        "condition no longer applies".to_string()
                    } else {
                        "no longer monitored".to_string()
                    };
                    out.push(transition(&k, &st, false, msg));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// [alerts] config table
// ---------------------------------------------------------------------------

/// The `[alerts]` table as written (every key optional; unknown keys
/// rejected). See docs/notifications.md.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// `false` switches every rule off.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub memory: Option<RawMemory>,
    #[serde(default)]
    pub replication_lag: Option<RawLag>,
    #[serde(default)]
    pub master_link_down: Option<RawBasic>,
    #[serde(default)]
    pub replicas_missing: Option<RawReplicas>,
    #[serde(default)]
    pub aof_disabled_on_master: Option<RawBasic>,
    #[serde(default)]
    pub aof_write_failed: Option<RawBasic>,
    #[serde(default)]
    pub multiple_masters: Option<RawBasic>,
    #[serde(default)]
    pub ops_per_sec: Option<RawOps>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub for_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMemory {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub for_ms: Option<u64>,
    #[serde(default)]
    pub percent: Option<Spanned<f64>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLag {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub for_ms: Option<u64>,
    /// 0 disables the bytes condition.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// 0 disables the seconds condition.
    #[serde(default)]
    pub max_seconds: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplicas {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub for_ms: Option<u64>,
    #[serde(default)]
    pub min_replicas: Option<Spanned<usize>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOps {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub for_ms: Option<u64>,
    #[serde(default)]
    pub max: Option<Spanned<u64>>,
}

fn base(default: RuleBase, enabled: Option<bool>, for_ms: Option<u64>) -> RuleBase {
    RuleBase {
        enabled: enabled.unwrap_or(default.enabled),
        for_ms: for_ms.unwrap_or(default.for_ms),
    }
}

impl RawAlerts {
    /// Validates into [`AlertRules`]; `key_prefix` is `alerts.` for the
    /// `[alerts]` table.
    pub fn validate(self, key_prefix: &str) -> Result<AlertRules, NotifyConfigError> {
        let d = AlertRules::default();
        let mut r = AlertRules::default();
        let err =
            |key: &str, span: Option<std::ops::Range<usize>>, message: String| NotifyConfigError {
                key: format!("{key_prefix}{key}"),
                span,
                message,
                secret: false,
            };
        if let Some(m) = self.memory {
            r.memory = base(d.memory, m.enabled, m.for_ms);
            if let Some(p) = m.percent {
                let v = *p.get_ref();
                if !(v > 0.0 && v <= 100.0) {
                    return Err(err(
                        "memory.percent",
                        Some(p.span()),
                        format!("expected a percentage of maxmemory in (0, 100], got {v}"),
                    ));
                }
                r.memory_percent = v;
            }
        }
        if let Some(l) = self.replication_lag {
            r.replication_lag = base(d.replication_lag, l.enabled, l.for_ms);
            if let Some(b) = l.max_bytes {
                r.lag_max_bytes = (b > 0).then_some(b);
            }
            if let Some(s) = l.max_seconds {
                r.lag_max_seconds = (s > 0).then_some(s);
            }
            if r.replication_lag.enabled && r.lag_max_bytes.is_none() && r.lag_max_seconds.is_none()
            {
                return Err(err(
                    "replication_lag",
                    None,
                    "max_bytes and max_seconds are both 0; expected at least one limit, or enabled = false".to_string(),
                ));
            }
        }
        if let Some(b) = self.master_link_down {
            r.master_link_down = base(d.master_link_down, b.enabled, b.for_ms);
        }
        if let Some(x) = self.replicas_missing {
            r.replicas_missing = base(d.replicas_missing, x.enabled, x.for_ms);
            if let Some(m) = x.min_replicas {
                if *m.get_ref() == 0 {
                    return Err(err(
                        "replicas_missing.min_replicas",
                        Some(m.span()),
                        "expected at least 1 (or leave it out to use the replicas each group knows), got 0".to_string(),
                    ));
                }
                r.min_replicas = Some(*m.get_ref());
            }
        }
        if let Some(b) = self.aof_disabled_on_master {
            r.aof_disabled_on_master = base(d.aof_disabled_on_master, b.enabled, b.for_ms);
        }
        if let Some(b) = self.aof_write_failed {
            r.aof_write_failed = base(d.aof_write_failed, b.enabled, b.for_ms);
        }
        if let Some(b) = self.multiple_masters {
            r.multiple_masters = base(d.multiple_masters, b.enabled, b.for_ms);
        }
        if let Some(o) = self.ops_per_sec {
            r.ops_per_sec = base(d.ops_per_sec, o.enabled, o.for_ms);
            if let Some(m) = o.max {
                if *m.get_ref() == 0 {
                    return Err(err(
                        "ops_per_sec.max",
                        Some(m.span()),
                        "expected a positive number of operations per second, got 0".to_string(),
                    ));
                }
                r.ops_per_sec_max = *m.get_ref();
            }
        }
        if self.enabled == Some(false) {
            let mut off = AlertRules::disabled();
            // Keep the thresholds (shown by check-config), switch rules off.
            off.memory_percent = r.memory_percent;
            off.lag_max_bytes = r.lag_max_bytes;
            off.lag_max_seconds = r.lag_max_seconds;
            off.min_replicas = r.min_replicas;
            off.ops_per_sec_max = r.ops_per_sec_max;
            return Ok(off);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{parse_info_metrics, InfoRole, ReplicaLine};

    fn master(used: u64, max: u64) -> InfoMetrics {
        InfoMetrics {
            role: Some(InfoRole::Master),
            used_memory: Some(used),
            maxmemory: Some(max),
            aof_enabled: Some(true),
            aof_last_write_ok: Some(true),
            connected_slaves: Some(1),
            instantaneous_ops_per_sec: Some(10),
            master_repl_offset: Some(1000),
            replicas: vec![ReplicaLine {
                ip: "10.0.0.2".into(),
                port: 6379,
                state: "online".into(),
                offset: 1000,
                lag: 0,
            }],
            ..InfoMetrics::default()
        }
    }

    fn replica(link_up: bool) -> InfoMetrics {
        InfoMetrics {
            role: Some(InfoRole::Replica),
            master_host: Some("10.0.0.1".into()),
            master_port: Some(6379),
            master_link_up: Some(link_up),
            master_link_down_since_seconds: (!link_up).then_some(5),
            aof_last_write_ok: Some(true),
            ..InfoMetrics::default()
        }
    }

    fn sample(inst: &str, info: Option<InfoMetrics>) -> InstanceSample {
        InstanceSample {
            group: "g".into(),
            instance: inst.into(),
            info,
            expected_replicas: Some(1),
        }
    }

    /// (now_ms, samples, expected transitions as "name instance firing").
    type Step = (u64, Vec<InstanceSample>, Vec<&'static str>);

    fn run(rules: AlertRules, steps: Vec<Step>) {
        let mut e = AlertEngine::new(rules);
        for (i, (now, samples, want)) in steps.into_iter().enumerate() {
            let got: Vec<String> = e
                .evaluate(now, &samples)
                .iter()
                .map(|t| {
                    format!(
                        "{} {} {}",
                        t.name,
                        t.instance.as_deref().unwrap_or("-"),
                        if t.firing { "firing" } else { "resolved" }
                    )
                })
                .collect();
            assert_eq!(got, want, "step {i} at {now}");
        }
    }

    fn only(f: impl FnOnce(&mut AlertRules)) -> AlertRules {
        let mut r = AlertRules::disabled();
        f(&mut r);
        r
    }

    #[test]
    fn memory_fires_after_for_and_resolves() {
        let rules = only(|r| r.memory = RuleBase::on(1000));
        let m = "10.0.0.1:6379";
        run(
            rules,
            vec![
                (0, vec![sample(m, Some(master(50, 100)))], vec![]),
                (100, vec![sample(m, Some(master(85, 100)))], vec![]),
                (900, vec![sample(m, Some(master(90, 100)))], vec![]),
                (
                    1100,
                    vec![sample(m, Some(master(90, 100)))],
                    vec!["RedisMemoryHigh 10.0.0.1:6379 firing"],
                ),
                (1200, vec![sample(m, Some(master(95, 100)))], vec![]),
                // Down: unknown, no change.
                (1300, vec![sample(m, None)], vec![]),
                (
                    1400,
                    vec![sample(m, Some(master(10, 100)))],
                    vec!["RedisMemoryHigh 10.0.0.1:6379 resolved"],
                ),
                // Pending then cleared: no transition.
                (1500, vec![sample(m, Some(master(90, 100)))], vec![]),
                (1600, vec![sample(m, Some(master(10, 100)))], vec![]),
                (2700, vec![sample(m, Some(master(10, 100)))], vec![]),
            ],
        );
    }

    #[test]
    fn memory_needs_a_maxmemory() {
        let rules = only(|r| r.memory = RuleBase::on(0));
        run(
            rules,
            vec![
                (0, vec![sample("a:1", Some(master(1 << 40, 0)))], vec![]),
                (
                    1,
                    vec![sample("a:1", Some(master(90, 100)))],
                    vec!["RedisMemoryHigh a:1 firing"],
                ),
                // maxmemory removed: the rule no longer applies -> resolved.
                (
                    2,
                    vec![sample("a:1", Some(master(90, 0)))],
                    vec!["RedisMemoryHigh a:1 resolved"],
                ),
            ],
        );
    }

    #[test]
    fn rule_table() {
        let mut lag_bytes = master(0, 0);
        lag_bytes.master_repl_offset = Some(20 * 1024 * 1024);
        let mut lag_secs = master(0, 0);
        lag_secs.replicas[0].lag = 11;
        let mut syncing = master(0, 0);
        syncing.master_repl_offset = Some(1 << 40);
        syncing.replicas[0].state = "wait_bgsave".into();
        let mut no_aof = master(0, 0);
        no_aof.aof_enabled = Some(false);
        let mut aof_err = replica(true);
        aof_err.aof_last_write_ok = Some(false);
        let mut lonely = master(0, 0);
        lonely.connected_slaves = Some(0);
        let mut busy = master(0, 0);
        busy.instantaneous_ops_per_sec = Some(100_001);

        let cases: Vec<(&str, Vec<InstanceSample>, Vec<&str>)> = vec![
            (
                "healthy master + replica",
                vec![
                    sample("m:1", Some(master(1, 100))),
                    sample("r:1", Some(replica(true))),
                ],
                vec![],
            ),
            (
                "lag in bytes",
                vec![sample("m:1", Some(lag_bytes))],
                vec!["RedisReplicationLagHigh 10.0.0.2:6379 firing"],
            ),
            (
                "lag in seconds",
                vec![sample("m:1", Some(lag_secs))],
                vec!["RedisReplicationLagHigh 10.0.0.2:6379 firing"],
            ),
            (
                "syncing replicas are not lagging",
                vec![sample("m:1", Some(syncing))],
                vec![],
            ),
            (
                "link down",
                vec![sample("r:1", Some(replica(false)))],
                vec!["RedisMasterLinkDown r:1 firing"],
            ),
            (
                "aof disabled on master",
                vec![sample("m:1", Some(no_aof))],
                vec!["RedisAofDisabledOnMaster m:1 firing"],
            ),
            (
                "aof disabled on a replica is fine",
                vec![sample(
                    "r:1",
                    Some(InfoMetrics {
                        aof_enabled: Some(false),
                        ..replica(true)
                    }),
                )],
                vec![],
            ),
            (
                "aof write failed",
                vec![sample("r:1", Some(aof_err))],
                vec!["RedisAofWriteFailed r:1 firing"],
            ),
            (
                "replicas missing",
                vec![sample("m:1", Some(lonely))],
                vec!["RedisReplicasMissing m:1 firing"],
            ),
            (
                "two masters",
                vec![
                    sample("m:1", Some(master(0, 0))),
                    sample("m:2", Some(master(0, 0))),
                ],
                vec!["RedisMultipleMasters - firing"],
            ),
            (
                "two masters, one down",
                vec![sample("m:1", Some(master(0, 0))), sample("m:2", None)],
                vec![],
            ),
            (
                "ops",
                vec![sample("m:1", Some(busy))],
                vec!["RedisOpsPerSecHigh m:1 firing"],
            ),
        ];
        let mut rules = AlertRules::default();
        for b in [
            &mut rules.memory,
            &mut rules.replication_lag,
            &mut rules.master_link_down,
            &mut rules.replicas_missing,
            &mut rules.aof_disabled_on_master,
            &mut rules.aof_write_failed,
            &mut rules.multiple_masters,
            &mut rules.ops_per_sec,
        ] {
            b.for_ms = 0;
        }
        for (name, samples, want) in cases {
            let mut e = AlertEngine::new(rules.clone());
            let mut got: Vec<String> = e
                .evaluate(1, &samples)
                .iter()
                .map(|t| format!("{} {} firing", t.name, t.instance.as_deref().unwrap_or("-")))
                .collect();
            got.sort();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn defaults_wait_their_for_duration() {
        let mut no_aof = master(0, 0);
        no_aof.aof_enabled = Some(false);
        let s = vec![sample("m:1", Some(no_aof))];
        run(
            AlertRules::default(),
            vec![
                (0, s.clone(), vec![]),
                (59_999, s.clone(), vec![]),
                (
                    60_000,
                    s.clone(),
                    vec!["RedisAofDisabledOnMaster m:1 firing"],
                ),
            ],
        );
    }

    #[test]
    fn vanished_instances_resolve_and_transitions_carry_details() {
        let rules = only(|r| r.master_link_down = RuleBase::on(0));
        let mut e = AlertEngine::new(rules);
        let t = e.evaluate(10, &[sample("r:1", Some(replica(false)))]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].message, "link to master 10.0.0.1:6379 down for 5 s");
        assert_eq!(t[0].severity, Severity::Warning);
        assert_eq!(t[0].since_ms, 10);
        assert_eq!(e.firing().len(), 1);
        let t = e.evaluate(20, &[]);
        assert_eq!(t.len(), 1);
        assert!(!t[0].firing);
        assert_eq!(t[0].message, "no longer monitored");
        assert_eq!(t[0].since_ms, 10);
        assert!(e.firing().is_empty());
    }

    #[test]
    fn multiple_masters_resolves_when_one_is_demoted() {
        let rules = only(|r| r.multiple_masters = RuleBase::on(15_000));
        let two = vec![
            sample("m:1", Some(master(0, 0))),
            sample("m:2", Some(master(0, 0))),
        ];
        let one = vec![
            sample("m:1", Some(master(0, 0))),
            sample("m:2", Some(replica(true))),
        ];
        let mut e = AlertEngine::new(rules);
        assert!(e.evaluate(0, &two).is_empty());
        let t = e.evaluate(15_000, &two);
        assert_eq!(t[0].message, "2 instances report role master: m:1, m:2");
        assert_eq!(t[0].instance, None);
        let t = e.evaluate(16_000, &one);
        assert_eq!(t[0].message, "one master again (m:1)");
        assert!(!t[0].firing);
    }

    #[test]
    fn evaluates_parsed_info() {
        let rules = only(|r| {
            r.memory = RuleBase::on(0);
            r.aof_write_failed = RuleBase::on(0);
        });
        let mut e = AlertEngine::new(rules);
        let info = parse_info_metrics(crate::metrics::tests::MASTER_INFO);
        let mut t = e.evaluate(0, &[sample("10.0.0.1:6379", Some(info))]);
        t.sort_by(|a, b| a.name.cmp(&b.name));
        // 82% > 80%, and aof_last_write_status:err.
        let names: Vec<&str> = t.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, [AOF_WRITE_FAILED, MEMORY_HIGH], "{t:?}");
        let mut e = AlertEngine::new(only(|r| r.memory = RuleBase::on(0)));
        let t = e.evaluate(
            0,
            &[sample(
                "10.0.0.1:6379",
                Some(parse_info_metrics(crate::metrics::tests::MASTER_INFO)),
            )],
        );
        assert_eq!(
            t[0].message,
            "used memory 82.0% of maxmemory (82.0 MiB of 100.0 MiB), above 80%"
        );
    }

    #[test]
    fn config_table() {
        let parse = |s: &str| -> Result<AlertRules, String> {
            let raw: RawAlerts = toml::from_str(s).map_err(|e| e.message().to_string())?;
            raw.validate("alerts.").map_err(|e| e.to_string())
        };
        let r = parse("[memory]\npercent = 90\nfor_ms = 1000\n[replication_lag]\nmax_bytes = 0\n[ops_per_sec]\nenabled = false\n").unwrap();
        assert_eq!(r.memory_percent, 90.0);
        assert_eq!(r.memory.for_ms, 1000);
        assert_eq!(r.lag_max_bytes, None);
        assert_eq!(r.lag_max_seconds, Some(10));
        assert!(!r.ops_per_sec.enabled);
        assert_eq!(parse("").unwrap(), AlertRules::default());
        assert_eq!(
            AlertRules::default().summary()[0],
            "RedisMemoryHigh: used memory > 80% of maxmemory, for 300000 ms"
        );
        assert!(!parse("enabled = false").unwrap().memory.enabled);
        assert_eq!(
            parse("[memory]\npercent = 120\n").unwrap_err(),
            "alerts.memory.percent: expected a percentage of maxmemory in (0, 100], got 120"
        );
        assert_eq!(
            parse("[replication_lag]\nmax_bytes = 0\nmax_seconds = 0\n").unwrap_err(),
            "alerts.replication_lag: max_bytes and max_seconds are both 0; expected at least one limit, or enabled = false"
        );
        assert!(parse("[memory]\nthreshold = 3\n")
            .unwrap_err()
            .contains("unknown field `threshold`"));
    }
}
