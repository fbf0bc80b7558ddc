//! `raftinel check` (risky Redis settings) and `raftinel notify-test`.
//!
//! `check` is split in two:
//! - [`assess`] is **pure**: from what was fetched of every instance
//!   ([`GroupProbe`]) it decides which settings are risky and returns the
//!   [`Finding`]s. Every rule lives there and is unit-tested below.
//! - [`probe_config`] is the thin I/O shell: it asks every instance of every
//!   group for `INFO server replication` and a fixed list of `CONFIG GET`
//!   parameters ([`PARAMS`]), concurrently, each round trip bounded by
//!   `redis_timeout_ms`. Replicas a master lists but the config does not are
//!   checked too.
//!
//! Passwords never leave the shell: `requirepass` and `masterauth` are
//! replaced by `***` (or the empty string when unset) as soon as they are
//! read, so the pure part only knows whether they are set.
//!
//! Exit status ([`exit_code`]): 0 when no finding is above `info`, 1 when the
//! worst is a `warning`, 2 when there is an `error`. The meaning and fix of
//! every finding is in docs/check.md.

use crate::config::{Config, GroupConfig, RedisAuth};
use crate::core::types::{Addr, Role};
use crate::notify::{ChannelConfig, NotifyConfig};
use crate::redis::{Instance, RedisError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The `CONFIG GET` parameters fetched from every instance. A parameter the
/// server does not know (older Redis) is simply absent from the map.
pub const PARAMS: [&str; 12] = [
    "appendonly",
    "requirepass",
    "masterauth",
    "min-replicas-to-write",
    "min-replicas-max-lag",
    "replica-priority",
    "bind",
    "protected-mode",
    "repl-diskless-sync",
    "repl-diskless-sync-delay",
    "maxmemory",
    "masteruser",
];

/// Parameters whose value is a secret: stored as `***` when set, `""` when not.
const SECRET_PARAMS: [&str; 2] = ["requirepass", "masterauth"];

/// `min-replicas-to-write` at or above this is raftinel's fence (the daemon
/// sets 1000000 on a master cut off from the quorum).
pub const FENCE_MIN_REPLICAS: u64 = 1_000_000;

/// How bad a finding is. Ordered: `Info < Warning < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; does not change the exit status.
    Info,
    /// Risky: exit status 1.
    Warning,
    /// Failover or data at risk now: exit status 2.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One risky setting (or unreachable instance) found by [`assess`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub group: String,
    /// The instance; `None` for a finding about the whole group.
    pub instance: Option<Addr>,
    /// Stable identifier, documented in docs/check.md (`appendonly-off`, ...).
    pub code: &'static str,
    /// What was found and why it matters.
    pub message: String,
}

/// The role an instance reports in `INFO replication`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedRole {
    Master,
    Replica,
}

impl fmt::Display for ReportedRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReportedRole::Master => "master",
            ReportedRole::Replica => "replica",
        })
    }
}

/// What was fetched from one answering instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub role: ReportedRole,
    /// `CONFIG GET` results by parameter name; secrets masked (`***` or `""`).
    pub config: BTreeMap<String, String>,
}

impl Settings {
    fn get(&self, name: &str) -> Option<&str> {
        self.config.get(name).map(|s| s.trim())
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(parse_number)
    }

    fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty())
    }
}

/// The outcome of asking one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// INFO and every `CONFIG GET` answered.
    Ok(Settings),
    /// No connection, a timeout, or an unusable INFO reply (the reason).
    Unreachable(String),
    /// `AUTH` refused (wrong password or user).
    AuthFailed(String),
    /// INFO answered but `CONFIG GET` was refused (renamed command, ACL).
    ConfigUnreadable { role: ReportedRole, reason: String },
}

impl Probe {
    /// A short word for the instance list: `ok`, `unreachable`, ...
    pub fn status(&self) -> &'static str {
        match self {
            Probe::Ok(_) => "ok",
            Probe::Unreachable(_) => "unreachable",
            Probe::AuthFailed(_) => "auth-failed",
            Probe::ConfigUnreadable { .. } => "config-unreadable",
        }
    }

    pub fn role(&self) -> Option<ReportedRole> {
        match self {
            Probe::Ok(s) => Some(s.role),
            Probe::ConfigUnreadable { role, .. } => Some(*role),
            _ => None,
        }
    }
}

/// One instance of a group and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceProbe {
    pub addr: Addr,
    /// Not in the config: listed by a master's `INFO replication`.
    pub discovered: bool,
    pub probe: Probe,
}

/// Every instance of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupProbe {
    pub group: String,
    pub instances: Vec<InstanceProbe>,
}

/// `"5"`, `"100mb"`, `"1gb"`: Redis accepts unit suffixes in `CONFIG SET`,
/// but `CONFIG GET` answers plain bytes; units are accepted anyway.
fn parse_number(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let units: [(&str, u64); 6] = [
        ("kb", 1024),
        ("mb", 1024 * 1024),
        ("gb", 1024 * 1024 * 1024),
        ("k", 1000),
        ("m", 1_000_000),
        ("g", 1_000_000_000),
    ];
    for (suffix, mult) in units {
        if let Some(n) = v.strip_suffix(suffix) {
            return n.trim().parse::<u64>().ok().map(|n| n.saturating_mul(mult));
        }
    }
    v.parse().ok()
}

/// Whether a `bind` value listens on every interface: empty (no `bind`
/// line), `*`, `0.0.0.0`, `::` or `::*` (the `-` prefix, "optional address",
/// is ignored).
pub fn binds_all_interfaces(bind: &str) -> bool {
    let tokens: Vec<&str> = bind.split_whitespace().collect();
    tokens.is_empty()
        || tokens.iter().any(|t| {
            let t = t.trim_start_matches('-');
            matches!(t, "*" | "0.0.0.0" | "::" | "::*" | "[::]")
        })
}

/// Decides the findings. Pure: no I/O, no clock.
///
/// Per instance: unreachable / wrong password / settings unreadable; on an
/// answering instance `appendonly no` on a master, `masterauth` missing in a
/// group that uses `requirepass`, `min-replicas-*` (and raftinel's fence),
/// `replica-priority 0`, exposure (`bind` on every interface,
/// `protected-mode no`, no password), `repl-diskless-sync-delay` > 0,
/// `maxmemory 0`. Per group: no replica at all, `replica-priority 0` on every
/// replica.
pub fn assess(groups: &[GroupProbe]) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in groups {
        assess_group(g, &mut out);
    }
    out
}

fn assess_group(g: &GroupProbe, out: &mut Vec<Finding>) {
    let finding = |severity, instance: Option<&Addr>, code, message: String| Finding {
        severity,
        group: g.group.clone(),
        instance: instance.cloned(),
        code,
        message,
    };
    let answering: Vec<(&Addr, &Settings)> = g
        .instances
        .iter()
        .filter_map(|i| match &i.probe {
            Probe::Ok(s) => Some((&i.addr, s)),
            _ => None,
        })
        .collect();
    // Instances with requirepass set: then every instance needs masterauth,
    // since any of them may have to sync from any other after a failover.
    let with_password: Vec<&Addr> = answering
        .iter()
        .filter(|(_, s)| s.is_set("requirepass"))
        .map(|(a, _)| *a)
        .collect();
    let replicas: Vec<(&Addr, &Settings)> = answering
        .iter()
        .filter(|(_, s)| s.role == ReportedRole::Replica)
        .copied()
        .collect();
    let all_priority_zero = !replicas.is_empty()
        && replicas
            .iter()
            .all(|(_, s)| s.number("replica-priority") == Some(0));
    let size = g.instances.len() as u64;

    for i in &g.instances {
        let at = Some(&i.addr);
        let s = match &i.probe {
            Probe::Unreachable(reason) => {
                out.push(finding(
                    Severity::Error,
                    at,
                    "unreachable",
                    format!("cannot be checked: {reason}"),
                ));
                continue;
            }
            Probe::AuthFailed(reason) => {
                out.push(finding(
                    Severity::Error,
                    at,
                    "auth-failed",
                    format!(
                        "authentication failed ({reason}): the group's username/password in the raftinel config do not match the instance; raftinel cannot monitor or fail it over"
                    ),
                ));
                continue;
            }
            Probe::ConfigUnreadable { reason, .. } => {
                out.push(finding(
                    Severity::Warning,
                    at,
                    "config-unreadable",
                    format!("CONFIG GET refused ({reason}): its settings were not checked"),
                ));
                continue;
            }
            Probe::Ok(s) => s,
        };

        if s.role == ReportedRole::Master && s.get("appendonly") == Some("no") {
            out.push(finding(
                Severity::Warning,
                at,
                "appendonly-off",
                "appendonly no on a master: writes since the last RDB snapshot are lost when it restarts (and a master restarted empty can wipe its replicas)".to_string(),
            ));
        }

        if !with_password.is_empty() && s.get("masterauth") == Some("") {
            let why = if s.is_set("requirepass") {
                "requirepass is set but masterauth is empty".to_string()
            } else {
                format!(
                    "masterauth is empty while requirepass is set on {}",
                    list(&with_password)
                )
            };
            out.push(finding(
                Severity::Error,
                at,
                "masterauth-missing",
                format!(
                    "{why}: as a replica (now, or after a failover) it cannot authenticate to its master and will not sync"
                ),
            ));
        }

        if let Some(n) = s.number("min-replicas-to-write").filter(|n| *n > 0) {
            let lag = s
                .get("min-replicas-max-lag")
                .map(|l| format!(", min-replicas-max-lag {l}"))
                .unwrap_or_default();
            if n >= FENCE_MIN_REPLICAS {
                let (severity, effect) = if s.role == ReportedRole::Master {
                    (
                        Severity::Warning,
                        "this master refuses every write (-NOREPLICAS) until the daemons lift the fence (quorum contact back and it is the committed master, or it becomes a replica)",
                    )
                } else {
                    (
                        Severity::Info,
                        "lifted by the daemons now that it is a replica; no effect while it stays one",
                    )
                };
                out.push(finding(
                    severity,
                    at,
                    "fenced",
                    format!("min-replicas-to-write {n}: fenced by raftinel (its daemon was cut off from the quorum); {effect}"),
                ));
            } else if n >= size {
                out.push(finding(
                    Severity::Warning,
                    at,
                    "min-replicas-unsatisfiable",
                    format!(
                        "min-replicas-to-write {n}{lag}: the group has {size} instances, so a master has at most {} replicas and refuses every write",
                        size.saturating_sub(1)
                    ),
                ));
            } else {
                out.push(finding(
                    Severity::Info,
                    at,
                    "min-replicas",
                    format!(
                        "min-replicas-to-write {n}{lag}: as a master it refuses writes while fewer than {n} replicas are connected with a small enough lag (fewer writes lost in a failover, less availability)"
                    ),
                ));
            }
        }

        if s.role == ReportedRole::Replica
            && s.number("replica-priority") == Some(0)
            && !all_priority_zero
        {
            out.push(finding(
                Severity::Info,
                at,
                "priority-zero",
                "replica-priority 0: this replica is never promoted".to_string(),
            ));
        }

        if let (Some(bind), Some("no")) = (s.get("bind"), s.get("protected-mode")) {
            if binds_all_interfaces(bind) && !s.is_set("requirepass") {
                let shown = if bind.is_empty() { "(none)" } else { bind };
                out.push(finding(
                    Severity::Error,
                    at,
                    "exposed",
                    format!(
                        "bind {shown} (every interface), protected-mode no and no requirepass: anyone who can reach the port can read, write and reconfigure it"
                    ),
                ));
            }
        }

        if let Some(delay) = s.number("repl-diskless-sync-delay").filter(|d| *d > 0) {
            if s.get("repl-diskless-sync") != Some("no") {
                out.push(finding(
                    Severity::Info,
                    at,
                    "diskless-sync-delay",
                    format!(
                        "repl-diskless-sync-delay {delay}: as a master it waits {delay} s before each full sync, so a replica repointed or rejoining after a failover is back {delay} s later"
                    ),
                ));
            }
        }

        if s.number("maxmemory") == Some(0) {
            out.push(finding(
                Severity::Warning,
                at,
                "maxmemory-unset",
                "maxmemory 0 (no limit): raftinel's memory alert (a percentage of maxmemory) cannot fire, and the host can run out of memory and kill Redis".to_string(),
            ));
        }
    }

    if all_priority_zero {
        let addrs: Vec<&Addr> = replicas.iter().map(|(a, _)| *a).collect();
        out.push(finding(
            Severity::Error,
            None,
            "no-promotable-replica",
            format!(
                "replica-priority 0 on every replica ({}): no failover is possible",
                list(&addrs)
            ),
        ));
    }
    // No replica at all: only said when every instance answered (otherwise
    // the unreachable ones are the finding).
    let all_answered = g.instances.iter().all(|i| i.probe.role().is_some());
    let any_replica = g
        .instances
        .iter()
        .any(|i| i.probe.role() == Some(ReportedRole::Replica));
    if all_answered && !g.instances.is_empty() && !any_replica {
        out.push(finding(
            Severity::Warning,
            None,
            "no-replica",
            "no instance reports role replica: there is nothing to fail over to".to_string(),
        ));
    }
}

fn list(addrs: &[&Addr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// 0: nothing above info; 1: warnings; 2: errors.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

/// One line of the instance list in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstanceStatus {
    pub group: String,
    pub addr: Addr,
    /// `ok`, `unreachable`, `auth-failed`, `config-unreadable`.
    pub status: &'static str,
    pub role: Option<ReportedRole>,
    pub discovered: bool,
}

/// What `raftinel check --json` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub instances: Vec<InstanceStatus>,
    pub findings: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub exit_code: u8,
}

impl Report {
    /// Assesses `groups` into a report.
    pub fn new(groups: &[GroupProbe]) -> Report {
        let findings = assess(groups);
        let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
        Report {
            instances: groups
                .iter()
                .flat_map(|g| {
                    g.instances.iter().map(|i| InstanceStatus {
                        group: g.group.clone(),
                        addr: i.addr.clone(),
                        status: i.probe.status(),
                        role: i.probe.role(),
                        discovered: i.discovered,
                    })
                })
                .collect(),
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            infos: count(Severity::Info),
            exit_code: exit_code(&findings),
            findings,
        }
    }

    /// Human-readable: one line per finding (`SEVERITY group instance
    /// code: message`), then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let groups: BTreeSet<&str> = self.instances.iter().map(|i| i.group.as_str()).collect();
        out.push_str(&format!(
            "checked {} instance(s) in {} group(s)\n",
            self.instances.len(),
            groups.len()
        ));
        for f in &self.findings {
            let sev = f.severity.to_string().to_uppercase();
            let inst = f
                .instance
                .as_ref()
                .map_or_else(|| "(group)".to_string(), |a| a.to_string());
            out.push_str(&format!(
                "{sev:<7} {} {inst} {}: {}\n",
                f.group, f.code, f.message
            ));
        }
        if self.findings.is_empty() {
            out.push_str("no findings\n");
        } else {
            out.push_str(&format!(
                "{} error(s), {} warning(s), {} info; see docs/check.md\n",
                self.errors, self.warnings, self.infos
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The I/O shell
// ---------------------------------------------------------------------------

/// `RedisError` without its leading `addr: ` (the finding names the instance).
fn reason(addr: &Addr, e: &RedisError) -> String {
    let text = e.to_string();
    text.strip_prefix(&format!("{addr}: "))
        .map(str::to_string)
        .unwrap_or(text)
}

/// Asks one instance; also returns the replicas it lists if it is a master.
pub async fn probe_instance(addr: Addr, auth: RedisAuth, timeout: Duration) -> (Probe, Vec<Addr>) {
    let mut inst = Instance::new(addr.clone(), auth, timeout);
    let info = match inst.info().await {
        Ok(i) => i,
        Err(RedisError::Auth { reason, .. }) => return (Probe::AuthFailed(reason), Vec::new()),
        Err(e) => return (Probe::Unreachable(reason(&addr, &e)), Vec::new()),
    };
    let (role, listed) = match &info.role {
        Role::Master { replicas } => (
            ReportedRole::Master,
            replicas.iter().map(|r| r.addr.clone()).collect(),
        ),
        Role::Replica { .. } => (ReportedRole::Replica, Vec::new()),
    };
    let mut config = BTreeMap::new();
    for name in PARAMS {
        match inst.config_get(name).await {
            Ok(Some(v)) => {
                let v = if SECRET_PARAMS.contains(&name) && !v.is_empty() {
                    "***".to_string()
                } else {
                    v
                };
                config.insert(name.to_string(), v);
            }
            Ok(None) => {}
            Err(e) => {
                let probe = Probe::ConfigUnreadable {
                    role,
                    reason: reason(&addr, &e),
                };
                return (probe, listed);
            }
        }
    }
    inst.disconnect();
    (Probe::Ok(Settings { role, config }), listed)
}

/// Asks every instance of `group` (configured ones, then replicas their
/// masters list that the config does not), concurrently.
pub async fn probe_group(group: &GroupConfig, timeout: Duration) -> GroupProbe {
    let mut configured = vec![group.master.clone()];
    configured.extend(group.replicas.iter().cloned());
    let mut instances = probe_all(&configured, &group.auth, timeout, false).await;
    let known: BTreeSet<Addr> = configured.iter().cloned().collect();
    let extra: Vec<Addr> = instances
        .iter()
        .flat_map(|(_, listed)| listed.iter().cloned())
        .filter(|a| !known.contains(a))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    instances.extend(probe_all(&extra, &group.auth, timeout, true).await);
    GroupProbe {
        group: group.name.clone(),
        instances: instances.into_iter().map(|(i, _)| i).collect(),
    }
}

async fn probe_all(
    addrs: &[Addr],
    auth: &RedisAuth,
    timeout: Duration,
    discovered: bool,
) -> Vec<(InstanceProbe, Vec<Addr>)> {
    let tasks: Vec<_> = addrs
        .iter()
        .map(|a| {
            let (a, auth) = (a.clone(), auth.clone());
            tokio::spawn(async move { probe_instance(a, auth, timeout).await })
        })
        .collect();
    let mut out = Vec::new();
    for (addr, task) in addrs.iter().zip(tasks) {
        let (probe, listed) = task.await.unwrap_or_else(|e| {
            (
                Probe::Unreachable(format!("check task failed: {e}")),
                vec![],
            )
        });
        out.push((
            InstanceProbe {
                addr: addr.clone(),
                discovered,
                probe,
            },
            listed,
        ));
    }
    out
}

/// Every group of the config.
pub async fn probe_config(cfg: &Config) -> Vec<GroupProbe> {
    let tasks: Vec<_> = cfg
        .groups
        .iter()
        .map(|g| {
            let (g, timeout) = (g.clone(), cfg.redis_timeout);
            tokio::spawn(async move { probe_group(&g, timeout).await })
        })
        .collect();
    let mut out = Vec::new();
    for (g, task) in cfg.groups.iter().zip(tasks) {
        out.push(task.await.unwrap_or_else(|e| GroupProbe {
            group: g.name.clone(),
            instances: vec![InstanceProbe {
                addr: g.master.clone(),
                discovered: false,
                probe: Probe::Unreachable(format!("check task failed: {e}")),
            }],
        }));
    }
    out
}

/// `raftinel check`: probe, then assess.
pub async fn check(cfg: &Config) -> Report {
    Report::new(&probe_config(cfg).await)
}

// ---------------------------------------------------------------------------
// notify-test
// ---------------------------------------------------------------------------

/// The channels `raftinel notify-test` sends through: all, or the one named.
/// Errors: no `[[notify]]` channel at all; an unknown name (with the known
/// ones listed).
pub fn select_channels<'a>(
    notify: &'a NotifyConfig,
    name: Option<&str>,
    path: &Path,
) -> Result<Vec<&'a ChannelConfig>, String> {
    if notify.channels.is_empty() {
        return Err(format!(
            "{}: no [[notify]] channels configured; add one (see docs/notifications.md)",
            path.display()
        ));
    }
    match name {
        None => Ok(notify.channels.iter().collect()),
        Some(n) => notify.channel(n).map(|c| vec![c]).ok_or_else(|| {
            let known: Vec<&str> = notify.channels.iter().map(|c| c.name.as_str()).collect();
            format!(
                "{}: no [[notify]] channel named {n:?}; known channels: {}",
                path.display(),
                known.join(", ")
            )
        }),
    }
}

/// The outcome of one test message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotifyOutcome {
    pub channel: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `None`: delivered; `Some(error)`: the exact error.
    pub error: Option<String>,
}

impl NotifyOutcome {
    /// `ok      name (type): test message sent` or `FAILED  name (type): error`.
    pub fn line(&self) -> String {
        match &self.error {
            None => format!(
                "ok      {} ({}): test message sent",
                self.channel, self.kind
            ),
            Some(e) => format!("FAILED  {} ({}): {e}", self.channel, self.kind),
        }
    }
}

/// Sends a test message through each channel, concurrently (a slow channel
/// does not hold up the others); outcomes in the order given.
pub async fn notify_test(channels: &[&ChannelConfig]) -> Vec<NotifyOutcome> {
    let tasks: Vec<_> = channels
        .iter()
        .map(|c| {
            let c = (*c).clone();
            tokio::spawn(async move { crate::notify::send_test(&c).await })
        })
        .collect();
    let mut out = Vec::new();
    for (c, task) in channels.iter().zip(tasks) {
        let result = task
            .await
            .unwrap_or_else(|e| Err(format!("test task failed: {e}")));
        out.push(NotifyOutcome {
            channel: c.name.clone(),
            kind: c.kind.type_name(),
            error: result.err(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> Addr {
        Addr::new("10.0.0.1", port)
    }

    /// Settings with sane defaults (no finding), overridden by `over`.
    fn settings(role: ReportedRole, over: &[(&str, &str)]) -> Probe {
        let mut config: BTreeMap<String, String> = [
            ("appendonly", "yes"),
            ("requirepass", "***"),
            ("masterauth", "***"),
            ("min-replicas-to-write", "0"),
            ("min-replicas-max-lag", "10"),
            ("replica-priority", "100"),
            ("bind", "10.0.0.1"),
            ("protected-mode", "yes"),
            ("repl-diskless-sync", "yes"),
            ("repl-diskless-sync-delay", "0"),
            ("maxmemory", "104857600"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in over {
            config.insert(k.to_string(), v.to_string());
        }
        Probe::Ok(Settings { role, config })
    }

    fn master(over: &[(&str, &str)]) -> Probe {
        settings(ReportedRole::Master, over)
    }

    fn replica(over: &[(&str, &str)]) -> Probe {
        settings(ReportedRole::Replica, over)
    }

    fn group(probes: Vec<Probe>) -> GroupProbe {
        GroupProbe {
            group: "g".into(),
            instances: probes
                .into_iter()
                .enumerate()
                .map(|(i, probe)| InstanceProbe {
                    addr: a(6379 + i as u16),
                    discovered: false,
                    probe,
                })
                .collect(),
        }
    }

    /// (code, severity, instance index or None for the group).
    type Expect = Vec<(&'static str, Severity, Option<u16>)>;

    fn got(findings: &[Finding]) -> Expect {
        findings
            .iter()
            .map(|f| {
                (
                    f.code,
                    f.severity,
                    f.instance.as_ref().map(|a| a.port - 6379),
                )
            })
            .collect()
    }

    use Severity::{Error as E, Info as I, Warning as W};

    #[test]
    fn rules_table() {
        let cases: Vec<(&str, Vec<Probe>, Expect)> = vec![
            (
                "clean group",
                vec![master(&[]), replica(&[]), replica(&[])],
                vec![],
            ),
            (
                "appendonly no on the master only",
                vec![
                    master(&[("appendonly", "no")]),
                    replica(&[("appendonly", "no")]),
                ],
                vec![("appendonly-off", W, Some(0))],
            ),
            (
                "requirepass without masterauth on the master",
                vec![master(&[("masterauth", "")]), replica(&[])],
                vec![("masterauth-missing", E, Some(0))],
            ),
            (
                "masterauth missing on a replica without its own requirepass",
                vec![
                    master(&[]),
                    replica(&[("requirepass", ""), ("masterauth", "")]),
                ],
                vec![("masterauth-missing", E, Some(1))],
            ),
            (
                "no password anywhere: masterauth not needed",
                vec![
                    master(&[("requirepass", ""), ("masterauth", "")]),
                    replica(&[("requirepass", ""), ("masterauth", "")]),
                ],
                vec![],
            ),
            (
                "min-replicas reported",
                vec![
                    master(&[("min-replicas-to-write", "1")]),
                    replica(&[]),
                    replica(&[]),
                ],
                vec![("min-replicas", I, Some(0))],
            ),
            (
                "min-replicas that can never be met",
                vec![master(&[("min-replicas-to-write", "2")]), replica(&[])],
                vec![("min-replicas-unsatisfiable", W, Some(0))],
            ),
            (
                "fenced master and fenced replica",
                vec![
                    master(&[("min-replicas-to-write", "1000000")]),
                    replica(&[("min-replicas-to-write", "1000000")]),
                ],
                vec![("fenced", W, Some(0)), ("fenced", I, Some(1))],
            ),
            (
                "one replica with priority 0",
                vec![
                    master(&[]),
                    replica(&[("replica-priority", "0")]),
                    replica(&[]),
                ],
                vec![("priority-zero", I, Some(1))],
            ),
            (
                "priority 0 on every replica",
                vec![
                    master(&[("replica-priority", "0")]),
                    replica(&[("replica-priority", "0")]),
                    replica(&[("replica-priority", "0")]),
                ],
                vec![("no-promotable-replica", E, None)],
            ),
            (
                "bind everywhere, protected-mode no, no password",
                vec![
                    master(&[
                        ("bind", "* -::*"),
                        ("protected-mode", "no"),
                        ("requirepass", ""),
                        ("masterauth", ""),
                    ]),
                    replica(&[("requirepass", ""), ("masterauth", "")]),
                ],
                vec![("exposed", E, Some(0))],
            ),
            (
                "bind everywhere, protected-mode no, but a password",
                vec![
                    master(&[("bind", "0.0.0.0"), ("protected-mode", "no")]),
                    replica(&[]),
                ],
                vec![],
            ),
            (
                "bind everywhere, no password, protected-mode on",
                vec![
                    master(&[("bind", ""), ("requirepass", ""), ("masterauth", "")]),
                    replica(&[("requirepass", ""), ("masterauth", "")]),
                ],
                vec![],
            ),
            (
                "diskless sync delay",
                vec![
                    master(&[("repl-diskless-sync-delay", "5")]),
                    replica(&[
                        ("repl-diskless-sync-delay", "5"),
                        ("repl-diskless-sync", "no"),
                    ]),
                ],
                vec![("diskless-sync-delay", I, Some(0))],
            ),
            (
                "maxmemory 0",
                vec![master(&[("maxmemory", "0")]), replica(&[])],
                vec![("maxmemory-unset", W, Some(0))],
            ),
            (
                "unreachable, wrong password, CONFIG refused",
                vec![
                    Probe::Unreachable("cannot connect: refused".into()),
                    Probe::AuthFailed("WRONGPASS".into()),
                    Probe::ConfigUnreadable {
                        role: ReportedRole::Replica,
                        reason: "NOPERM".into(),
                    },
                    replica(&[]),
                ],
                vec![
                    ("unreachable", E, Some(0)),
                    ("auth-failed", E, Some(1)),
                    ("config-unreadable", W, Some(2)),
                ],
            ),
            (
                "no replica at all",
                vec![master(&[])],
                vec![("no-replica", W, None)],
            ),
            (
                "parameters an old server does not know are skipped",
                vec![
                    Probe::Ok(Settings {
                        role: ReportedRole::Master,
                        config: BTreeMap::new(),
                    }),
                    replica(&[]),
                ],
                vec![],
            ),
        ];
        for (name, probes, want) in cases {
            let findings = assess(&[group(probes)]);
            assert_eq!(got(&findings), want, "{name}: {findings:#?}");
        }
    }

    #[test]
    fn messages_say_what_matters() {
        let f = assess(&[group(vec![
            master(&[("min-replicas-to-write", "1000000")]),
            replica(&[("requirepass", ""), ("masterauth", "")]),
        ])]);
        assert!(f[0].message.contains("fenced by raftinel"), "{f:#?}");
        assert!(
            f[1].message
                .contains("masterauth is empty while requirepass is set on 10.0.0.1:6379"),
            "{f:#?}"
        );
        let f = assess(&[group(vec![
            master(&[]),
            replica(&[("replica-priority", "0")]),
            replica(&[("replica-priority", "0")]),
        ])]);
        assert_eq!(
            f[0].message,
            "replica-priority 0 on every replica (10.0.0.1:6380, 10.0.0.1:6381): no failover is possible"
        );
    }

    #[test]
    fn exit_codes() {
        let f = |severity| Finding {
            severity,
            group: "g".into(),
            instance: None,
            code: "x",
            message: String::new(),
        };
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(&[f(I)]), 0);
        assert_eq!(exit_code(&[f(I), f(W)]), 1);
        assert_eq!(exit_code(&[f(W), f(E), f(I)]), 2);
    }

    #[test]
    fn bind_values() {
        for (bind, all) in [
            ("", true),
            ("*", true),
            ("* -::*", true),
            ("0.0.0.0", true),
            ("::", true),
            ("127.0.0.1 -::1", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(binds_all_interfaces(bind), all, "{bind:?}");
        }
    }

    #[test]
    fn numbers_with_units() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("100mb"), Some(100 * 1024 * 1024));
        assert_eq!(parse_number("1G"), Some(1_000_000_000));
        assert_eq!(parse_number("x"), None);
    }

    #[test]
    fn report_renders_one_line_per_finding_and_counts() {
        let r = Report::new(&[group(vec![
            master(&[("appendonly", "no"), ("repl-diskless-sync-delay", "5")]),
            replica(&[]),
        ])]);
        assert_eq!((r.errors, r.warnings, r.infos, r.exit_code), (0, 1, 1, 1));
        let text = r.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "checked 2 instance(s) in 1 group(s)");
        assert!(
            lines[1].starts_with("WARNING g 10.0.0.1:6379 appendonly-off: appendonly no"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("INFO    g 10.0.0.1:6379 diskless-sync-delay: "),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "0 error(s), 1 warning(s), 1 info; see docs/check.md"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["findings"][0]["severity"], "warning");
        assert_eq!(json["findings"][0]["instance"], "10.0.0.1:6379");
        assert_eq!(json["instances"][0]["role"], "master");
        let clean = Report::new(&[group(vec![master(&[]), replica(&[])])]);
        assert!(clean.render().ends_with("no findings\n"));
    }

    #[test]
    fn secrets_are_never_in_the_report() {
        // The shell masks them; the report has no settings at all.
        let r = Report::new(&[group(vec![master(&[("masterauth", "")]), replica(&[])])]);
        let all = format!("{}{}", r.render(), serde_json::to_string(&r).unwrap());
        assert!(!all.contains("***"), "{all}");
    }

    #[test]
    fn channel_selection() {
        let path = Path::new("/etc/raftinel.toml");
        let empty = NotifyConfig::default();
        assert_eq!(
            select_channels(&empty, None, path).unwrap_err(),
            "/etc/raftinel.toml: no [[notify]] channels configured; add one (see docs/notifications.md)"
        );
        let text = "[[notify]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n\
                    [[notify]]\nname = \"dev\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:2/\"\n";
        let cfg = crate::notify::parse_notify(text, Path::new("/")).unwrap();
        let names = |v: Vec<&ChannelConfig>| v.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(select_channels(&cfg, None, path).unwrap()),
            ["ops", "dev"]
        );
        assert_eq!(
            names(select_channels(&cfg, Some("dev"), path).unwrap()),
            ["dev"]
        );
        assert_eq!(
            select_channels(&cfg, Some("pager"), path).unwrap_err(),
            "/etc/raftinel.toml: no [[notify]] channel named \"pager\"; known channels: ops, dev"
        );
    }

    #[test]
    fn outcome_lines() {
        let ok = NotifyOutcome {
            channel: "ops".into(),
            kind: "webhook",
            error: None,
        };
        assert_eq!(ok.line(), "ok      ops (webhook): test message sent");
        let failed = NotifyOutcome {
            error: Some("boom".into()),
            ..ok
        };
        assert_eq!(failed.line(), "FAILED  ops (webhook): boom");
    }
}
