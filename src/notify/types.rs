//! What a notification says: [`Notification`], its [`Kind`] and [`Severity`],
//! and the constructors the daemon uses for each event. Pure data: no I/O, no
//! clock (every constructor takes the time as an argument).
//!
//! # Event ids
//!
//! Every notification has an `id` derived from the group, the epoch and the
//! kind, e.g. `mymaster/7/failover-completed`. Events that follow a committed
//! decision (failover started / completed / aborted, manual switchover, old
//! master rejoined) get the same id on every daemon, so delivery can be
//! de-duplicated across the cluster. Events that describe an observation
//! (sdown, odown, no eligible replica, quorum, alerts) add the time the
//! observation started, so a later occurrence in the same epoch is a new event.

use crate::core::events::Event;
use crate::core::types::Addr;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How urgent a notification is. Ordered: `Info < Warning < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "expected one of \"info\", \"warning\", \"critical\", got {other:?}"
            )),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The leader committed a failover intent (new epoch, chosen replica).
    FailoverStarted,
    /// The chosen replica is the committed master.
    FailoverCompleted,
    /// The failover in progress was aborted.
    FailoverAborted,
    /// A planned switchover (`raftinel failover`) completed.
    ManualSwitchover,
    /// An instance is subjectively down on the daemon that reports it.
    SubjectivelyDown,
    /// The master is objectively down (quorum of daemons agree).
    ObjectivelyDown,
    /// The old master answered again and was turned into a replica.
    OldMasterRejoined,
    /// The master is down and no replica can replace it.
    NoEligibleReplica,
    /// This daemon cannot reach a majority of the Raft cluster.
    QuorumLost,
    /// This daemon reaches a majority again.
    QuorumRegained,
    /// A built-in health alert (see `crate::alerts`) fired or resolved.
    Alert { name: String, firing: bool },
    /// `raftinel notify-test`.
    Test,
}

/// Every kind name accepted in a channel's `events` filter (`alert` matches
/// every alert; `alert:<Name>` one alert).
pub const KIND_NAMES: &[&str] = &[
    "failover-started",
    "failover-completed",
    "failover-aborted",
    "manual-switchover",
    "sdown",
    "odown",
    "old-master-rejoined",
    "no-eligible-replica",
    "quorum-lost",
    "quorum-regained",
    "alert",
    "test",
];

impl Kind {
    /// The kebab-case name used in event ids, filters and JSON payloads.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::FailoverStarted => "failover-started",
            Kind::FailoverCompleted => "failover-completed",
            Kind::FailoverAborted => "failover-aborted",
            Kind::ManualSwitchover => "manual-switchover",
            Kind::SubjectivelyDown => "sdown",
            Kind::ObjectivelyDown => "odown",
            Kind::OldMasterRejoined => "old-master-rejoined",
            Kind::NoEligibleReplica => "no-eligible-replica",
            Kind::QuorumLost => "quorum-lost",
            Kind::QuorumRegained => "quorum-regained",
            Kind::Alert { .. } => "alert",
            Kind::Test => "test",
        }
    }

    /// Whether an `events` filter entry selects this kind.
    pub fn matches_filter(&self, filter: &str) -> bool {
        if filter == self.name() {
            return true;
        }
        match (self, filter.strip_prefix("alert:")) {
            (Kind::Alert { name, .. }, Some(want)) => name == want,
            _ => false,
        }
    }

    /// Whether the master of the group changed (runs `client_reconfig_script`).
    pub fn changes_master(&self) -> bool {
        matches!(self, Kind::FailoverCompleted | Kind::ManualSwitchover)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Alert { name, firing } => {
                write!(
                    f,
                    "alert {name} {}",
                    if *firing { "firing" } else { "resolved" }
                )
            }
            other => f.write_str(other.name()),
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Who may deliver a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Delivered only while the notifier is active (the Raft leader), so the
    /// cluster sends it once. Failover events, alerts evaluated by the leader.
    Leader,
    /// Delivered by the daemon that submits it, active or not: what only this
    /// daemon knows (it lost the quorum).
    Local,
}

/// One line of a failover timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub text: String,
}

impl TimelineEntry {
    pub fn new(at_ms: u64, text: impl Into<String>) -> Self {
        TimelineEntry {
            at_ms,
            text: text.into(),
        }
    }

    /// A Sentinel event as a timeline line: `+switch-master mymaster ...`.
    pub fn from_event(at_ms: u64, event: &Event) -> Self {
        TimelineEntry::new(at_ms, event.to_string())
    }
}

/// One notification, as every channel receives it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    /// Event id, e.g. `mymaster/7/failover-completed`: delivery is
    /// de-duplicated by it.
    pub id: String,
    /// The group, or `""` for cluster-wide events (quorum).
    pub group: String,
    /// The group epoch the event belongs to (0 for cluster-wide events).
    pub epoch: u64,
    pub kind: Kind,
    pub severity: Severity,
    pub scope: Scope,
    /// One line, e.g. `[raftinel] mymaster: 10.0.0.1:6379 → 10.0.0.2:6379
    /// promoted (epoch 7)`. The email subject.
    pub title: String,
    /// Plain text, several lines: the facts and the timeline.
    pub body: String,
    pub old_master: Option<Addr>,
    pub new_master: Option<Addr>,
    /// The instance an event is about (sdown, rejoin, alerts).
    pub instance: Option<String>,
    /// Failover / switchover duration in milliseconds.
    pub duration_ms: Option<u64>,
    /// The Sentinel event passed to `notification_script` as
    /// `<event-type> <event-description>`.
    pub sentinel_event: Option<Event>,
    pub timeline: Vec<TimelineEntry>,
    /// Unix time in milliseconds when the event happened.
    pub timestamp_ms: u64,
}

/// `group/epoch/kind[/extra...]`.
pub fn event_id(group: &str, epoch: u64, kind: &str, extra: &[&str]) -> String {
    let mut id = format!("{group}/{epoch}/{kind}");
    for e in extra {
        id.push('/');
        id.push_str(e);
    }
    id
}

fn title(group: &str, text: &str) -> String {
    if group.is_empty() {
        format!("[raftinel] {text}")
    } else {
        format!("[raftinel] {group}: {text}")
    }
}

/// `1.84 s`, `250 ms`, `3 min 5 s`.
pub fn human_duration_ms(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds:
/// `2024-05-01T10:00:00.120Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// The body: aligned `Label: value` facts, then the timeline, then the id.
fn body(facts: &[(&str, String)], timeline: &[TimelineEntry], id: &str) -> String {
    use std::fmt::Write as _;
    let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut s = String::new();
    for (k, v) in facts {
        let _ = writeln!(s, "{:<width$} {v}", format!("{k}:"), width = width);
    }
    if !timeline.is_empty() {
        let _ = writeln!(s, "\nTimeline:");
        for e in timeline {
            let _ = writeln!(s, "  {}  {}", rfc3339_ms(e.at_ms), e.text);
        }
    }
    let _ = write!(s, "\nEvent id: {id}\n");
    s
}

impl Notification {
    #[allow(clippy::too_many_arguments)]
    fn build(
        id: String,
        group: &str,
        epoch: u64,
        kind: Kind,
        severity: Severity,
        title_text: String,
        facts: Vec<(&str, String)>,
        timeline: Vec<TimelineEntry>,
        now_ms: u64,
    ) -> Notification {
        let mut facts = facts;
        if !group.is_empty() {
            facts.insert(0, ("Group", group.to_string()));
            facts.insert(1, ("Epoch", epoch.to_string()));
        }
        facts.push(("Severity", severity.to_string()));
        facts.push(("Time", rfc3339_ms(now_ms)));
        let body = body(&facts, &timeline, &id);
        Notification {
            id,
            group: group.to_string(),
            epoch,
            kind,
            severity,
            scope: Scope::Leader,
            title: title(group, &title_text),
            body,
            old_master: None,
            new_master: None,
            instance: None,
            duration_ms: None,
            sentinel_event: None,
            timeline,
            timestamp_ms: now_ms,
        }
    }

    /// The leader committed a failover of `group` to `epoch`: `old_master` is
    /// down, `candidate` was chosen.
    pub fn failover_started(
        group: &str,
        epoch: u64,
        old_master: &Addr,
        candidate: &Addr,
        timeline: Vec<TimelineEntry>,
        now_ms: u64,
    ) -> Notification {
        let id = event_id(group, epoch, "failover-started", &[]);
        let mut n = Notification::build(
            id,
            group,
            epoch,
            Kind::FailoverStarted,
            Severity::Warning,
            format!(
                "failover started: master {old_master} is down, promoting {candidate} (epoch {epoch})"
            ),
            vec![
                ("Old master", old_master.to_string()),
                ("Chosen replica", candidate.to_string()),
            ],
            timeline,
            now_ms,
        );
        n.old_master = Some(old_master.clone());
        n.new_master = Some(candidate.clone());
        n.sentinel_event = Some(Event::master("+try-failover", group, old_master));
        n
    }

    /// `new_master` is the committed master of `group` at `epoch`.
    /// `duration_ms`: from the master being objectively down to the new master
    /// being committed (the client-visible outage).
    pub fn failover_completed(
        group: &str,
        epoch: u64,
        old_master: &Addr,
        new_master: &Addr,
        duration_ms: u64,
        timeline: Vec<TimelineEntry>,
        now_ms: u64,
    ) -> Notification {
        let id = event_id(group, epoch, "failover-completed", &[]);
        let mut n = Notification::build(
            id,
            group,
            epoch,
            Kind::FailoverCompleted,
            Severity::Critical,
            format!("{old_master} → {new_master} promoted (epoch {epoch})"),
            vec![
                ("Old master", old_master.to_string()),
                ("New master", new_master.to_string()),
                ("Duration", human_duration_ms(duration_ms)),
            ],
            timeline,
            now_ms,
        );
        n.old_master = Some(old_master.clone());
        n.new_master = Some(new_master.clone());
        n.duration_ms = Some(duration_ms);
        n.sentinel_event = Some(switch_master(group, old_master, new_master));
        n
    }

    /// The failover of `epoch` was aborted; `master` stays the master.
    pub fn failover_aborted(
        group: &str,
        epoch: u64,
        master: &Addr,
        candidate: &Addr,
        reason: &str,
        timeline: Vec<TimelineEntry>,
        now_ms: u64,
    ) -> Notification {
        let id = event_id(group, epoch, "failover-aborted", &[]);
        let mut n = Notification::build(
            id,
            group,
            epoch,
            Kind::FailoverAborted,
            Severity::Critical,
            format!("failover to {candidate} aborted (epoch {epoch}): {reason}"),
            vec![
                ("Master", master.to_string()),
                ("Chosen replica", candidate.to_string()),
                ("Reason", reason.to_string()),
            ],
            timeline,
            now_ms,
        );
        n.old_master = Some(master.clone());
        n.new_master = Some(candidate.clone());
        n.sentinel_event = Some(Event::master("-failover-abort", group, master));
        n
    }

    /// A planned switchover from `old_master` to `new_master` completed.
    pub fn manual_switchover(
        group: &str,
        epoch: u64,
        old_master: &Addr,
        new_master: &Addr,
        duration_ms: u64,
        timeline: Vec<TimelineEntry>,
        now_ms: u64,
    ) -> Notification {
        let id = event_id(group, epoch, "manual-switchover", &[]);
        let mut n = Notification::build(
            id,
            group,
            epoch,
            Kind::ManualSwitchover,
            Severity::Info,
            format!("switchover {old_master} → {new_master} (epoch {epoch})"),
            vec![
                ("Old master", old_master.to_string()),
                ("New master", new_master.to_string()),
                ("Duration", human_duration_ms(duration_ms)),
            ],
            timeline,
            now_ms,
        );
        n.old_master = Some(old_master.clone());
        n.new_master = Some(new_master.clone());
        n.duration_ms = Some(duration_ms);
        n.sentinel_event = Some(switch_master(group, old_master, new_master));
        n
    }

    /// `instance` has been subjectively down on daemon `node` since
    /// `since_ms` (Unix ms). `is_master`: it is the group's master.
    pub fn subjectively_down(
        group: &str,
        epoch: u64,
        instance: &Addr,
        is_master: bool,
        node: u64,
        since_ms: u64,
        now_ms: u64,
    ) -> Notification {
        let inst = instance.to_string();
        let id = event_id(
            group,
            epoch,
            "sdown",
            &[&inst, &format!("node{node}"), &since_ms.to_string()],
        );
        let role = if is_master { "master" } else { "replica" };
        let mut n = Notification::build(
            id,
            group,
            epoch,
            Kind::SubjectivelyDown,
            Severity::Warning,
            format!("{role} {instance} subjectively down (seen by node {node})"),
            vec![
                ("Instance", format!("{instance} ({role})")),
                ("Seen by", format!("node {node}")),
                ("Down since", rfc3339_ms(since_ms)),
            ],
            Vec::new(),
            now_ms,
        );
        n.instance = Some(inst);
        n.sentinel_event = Some(if is_master {
            Event::master("+sdown", group, instance)
        } else {
            Event::new(
                "+sdown",
                format!("slave {instance} {} {}", instance.host, instance.port),
            )
        });
        n
    }

    /// The master of `group` is objectively down since `since_ms` (Unix ms).
    pub fn objectively_down(
        group: &str,
        epoch: u64,
        master: &Addr,
        quorum: usize,
        since_ms: u64,
        now_ms: u64,
    ) -> Notification {
        let id = event_id(group, epoch, "odown", &[&since_ms.to_string()]);
        let mut n = Notification::build(
            id,
            group,
            epoch,
            Kind::ObjectivelyDown,
            Severity::Critical,
            format!("master {master} objectively down"),
            vec![
                ("Master", master.to_string()),
                ("Quorum", quorum.to_string()),
                ("Down since", rfc3339_ms(since_ms)),
            ],
            Vec::new(),
            now_ms,
        );
        n.old_master = Some(master.clone());
        n.instance = Some(master.to_string());
        n.sentinel_event = Some(Event::new(
            "+odown",
            format!("{} #quorum {quorum}", Event::master_payload(group, master)),
        ));
        n
    }

    /// The old master `instance` answered again and now replicates from
    /// `master`.
    pub fn old_master_rejoined(
        group: &str,
        epoch: u64,
        instance: &Addr,
        master: &Addr,
        now_ms: u64,
    ) -> Notification {
        let inst = instance.to_string();
        let id = event_id(group, epoch, "old-master-rejoined", &[&inst]);
        let mut n = Notification::build(
            id,
            group,
            epoch,
            Kind::OldMasterRejoined,
            Severity::Info,
            format!("old master {instance} rejoined as a replica of {master}"),
            vec![
                ("Old master", instance.to_string()),
                ("Current master", master.to_string()),
            ],
            Vec::new(),
            now_ms,
        );
        n.old_master = Some(instance.clone());
        n.new_master = Some(master.clone());
        n.instance = Some(inst);
        n.sentinel_event = Some(Event::replica("+convert-to-slave", group, instance, master));
        n
    }

    /// The master is down and no replica is eligible. `rejected`: each replica
    /// and why it was rejected. `since_ms`: when the master became
    /// objectively down.
    pub fn no_eligible_replica(
        group: &str,
        epoch: u64,
        master: &Addr,
        rejected: &[(Addr, String)],
        since_ms: u64,
        now_ms: u64,
    ) -> Notification {
        let id = event_id(
            group,
            epoch,
            "no-eligible-replica",
            &[&since_ms.to_string()],
        );
        let reasons = if rejected.is_empty() {
            "no replica known".to_string()
        } else {
            rejected
                .iter()
                .map(|(a, why)| format!("{a}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut n = Notification::build(
            id,
            group,
            epoch,
            Kind::NoEligibleReplica,
            Severity::Critical,
            format!("no eligible replica to replace master {master}"),
            vec![("Master", master.to_string()), ("Rejected", reasons)],
            Vec::new(),
            now_ms,
        );
        n.old_master = Some(master.clone());
        n.sentinel_event = Some(Event::master(
            "-failover-abort-no-good-slave",
            group,
            master,
        ));
        n
    }

    /// Daemon `node` cannot reach a majority since `since_ms`. Local scope:
    /// the daemon that lost the quorum sends it (nobody else knows).
    pub fn quorum_lost(
        node: u64,
        reachable: usize,
        cluster: usize,
        since_ms: u64,
        now_ms: u64,
    ) -> Notification {
        let id = format!("cluster/quorum-lost/node{node}/{since_ms}");
        let mut n = Notification::build(
            id,
            "",
            0,
            Kind::QuorumLost,
            Severity::Critical,
            format!(
                "node {node} lost the Raft quorum ({reachable} of {cluster} daemons reachable)"
            ),
            vec![
                ("Node", node.to_string()),
                ("Reachable", format!("{reachable} of {cluster} daemons")),
                ("Since", rfc3339_ms(since_ms)),
            ],
            Vec::new(),
            now_ms,
        );
        n.scope = Scope::Local;
        n.sentinel_event = Some(Event::new(
            "+raftinel-quorum-lost",
            format!("node {node} {reachable}/{cluster}"),
        ));
        n
    }

    /// Daemon `node` reaches a majority again. Carries the severity of
    /// [`Notification::quorum_lost`] so a severity filter passes both or neither.
    pub fn quorum_regained(
        node: u64,
        reachable: usize,
        cluster: usize,
        lost_since_ms: u64,
        now_ms: u64,
    ) -> Notification {
        let id = format!("cluster/quorum-regained/node{node}/{lost_since_ms}");
        let mut n = Notification::build(
            id,
            "",
            0,
            Kind::QuorumRegained,
            Severity::Critical,
            format!(
                "node {node} regained the Raft quorum ({reachable} of {cluster} daemons reachable)"
            ),
            vec![
                ("Node", node.to_string()),
                ("Reachable", format!("{reachable} of {cluster} daemons")),
                ("Lost since", rfc3339_ms(lost_since_ms)),
                (
                    "Outage",
                    human_duration_ms(now_ms.saturating_sub(lost_since_ms)),
                ),
            ],
            Vec::new(),
            now_ms,
        );
        n.scope = Scope::Local;
        n.sentinel_event = Some(Event::new(
            "-raftinel-quorum-lost",
            format!("node {node} {reachable}/{cluster}"),
        ));
        n
    }

    /// A built-in alert fired or resolved (see [`crate::alerts`]). A resolved
    /// notice keeps the severity of the alert.
    pub fn from_alert(t: &crate::alerts::AlertTransition, epoch: u64, now_ms: u64) -> Notification {
        let state = if t.firing { "firing" } else { "resolved" };
        let target = t.instance.clone().unwrap_or_else(|| t.group.clone());
        let id = event_id(
            &t.group,
            epoch,
            "alert",
            &[&t.name, &target, state, &t.since_ms.to_string()],
        );
        let headline = if t.firing {
            format!("FIRING {} on {target}: {}", t.name, t.message)
        } else {
            format!("RESOLVED {} on {target}: {}", t.name, t.message)
        };
        let mut facts = vec![
            ("Alert", t.name.clone()),
            ("State", state.to_string()),
            ("Target", target.clone()),
            ("Value", format_value(t.value)),
            ("Threshold", format_value(t.threshold)),
            ("Since", rfc3339_ms(t.since_ms)),
        ];
        if !t.firing {
            facts.push((
                "Lasted",
                human_duration_ms(now_ms.saturating_sub(t.since_ms)),
            ));
        }
        let mut n = Notification::build(
            id,
            &t.group,
            epoch,
            Kind::Alert {
                name: t.name.clone(),
                firing: t.firing,
            },
            t.severity,
            headline,
            facts,
            Vec::new(),
            now_ms,
        );
        n.instance = t.instance.clone();
        n.sentinel_event = Some(Event::new(
            if t.firing {
                "+raftinel-alert"
            } else {
                "-raftinel-alert"
            },
            format!("{} {} {target} {}", t.name, t.group, t.message),
        ));
        n
    }

    /// Several firing notices of the same alert and group, held back by a
    /// channel's `repeat_interval`, as one message. `parts` is not empty.
    pub fn grouped_alerts(parts: &[&Notification], now_ms: u64) -> Notification {
        let Some(first) = parts.first() else {
            return Notification::test("(empty group)", now_ms);
        };
        let name = match &first.kind {
            Kind::Alert { name, .. } => name.clone(),
            other => other.name().to_string(),
        };
        let targets: Vec<String> = parts
            .iter()
            .map(|p| p.instance.clone().unwrap_or_else(|| p.group.clone()))
            .collect();
        let mut body = format!(
            "{} notices of alert {name} were grouped (repeat interval):\n\n",
            parts.len()
        );
        body.push_str(
            &parts
                .iter()
                .map(|p| format!("{}\n{}", p.title, p.body))
                .collect::<Vec<_>>()
                .join("\n----\n\n"),
        );
        Notification {
            id: format!("{}/grouped/{}", first.id, parts.len()),
            group: first.group.clone(),
            epoch: parts.iter().map(|p| p.epoch).max().unwrap_or(first.epoch),
            kind: Kind::Alert {
                name: name.clone(),
                firing: true,
            },
            severity: parts
                .iter()
                .map(|p| p.severity)
                .max()
                .unwrap_or(first.severity),
            scope: first.scope,
            title: title(
                &first.group,
                &format!(
                    "FIRING {name} on {} targets: {}",
                    targets.len(),
                    targets.join(", ")
                ),
            ),
            body,
            old_master: None,
            new_master: None,
            instance: None,
            duration_ms: None,
            sentinel_event: Some(Event::new(
                "+raftinel-alert",
                format!("{name} {} {} grouped", first.group, targets.join(",")),
            )),
            timeline: Vec::new(),
            timestamp_ms: now_ms,
        }
    }

    /// The message `raftinel notify-test` sends through a channel.
    pub fn test(channel: &str, now_ms: u64) -> Notification {
        let id = format!("test/{channel}/{now_ms}");
        let mut n = Notification::build(
            id,
            "",
            0,
            Kind::Test,
            Severity::Info,
            format!("test notification through channel {channel:?}"),
            vec![
                ("Channel", channel.to_string()),
                (
                    "Note",
                    "sent by `raftinel notify-test`; nothing happened to any Redis group"
                        .to_string(),
                ),
            ],
            Vec::new(),
            now_ms,
        );
        n.scope = Scope::Local;
        n.sentinel_event = Some(Event::new(
            "+raftinel-test",
            format!("test notification through channel {channel}"),
        ));
        n
    }
}

/// `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>`.
fn switch_master(group: &str, old: &Addr, new: &Addr) -> Event {
    Event::new(
        "+switch-master",
        format!(
            "{group} {} {} {} {}",
            old.host, old.port, new.host, new.port
        ),
    )
}

/// `85.2`, `3`, `1048576`: integers without a fraction.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Addr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        for (ms, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_123, "2000-02-29T00:00:00.123Z"),
            (1_714_557_600_120, "2024-05-01T10:00:00.120Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(rfc3339_ms(ms), want);
        }
    }

    #[test]
    fn completed_failover_has_the_issue_title_and_a_timeline() {
        let n = Notification::failover_completed(
            "mymaster",
            7,
            &a("10.0.0.1:6379"),
            &a("10.0.0.2:6379"),
            1840,
            vec![
                TimelineEntry::new(
                    1_714_557_600_000,
                    "+odown master mymaster 10.0.0.1 6379 #quorum 2",
                ),
                TimelineEntry::new(
                    1_714_557_601_840,
                    "+switch-master mymaster 10.0.0.1 6379 10.0.0.2 6379",
                ),
            ],
            1_714_557_601_900,
        );
        assert_eq!(n.id, "mymaster/7/failover-completed");
        assert_eq!(
            n.title,
            "[raftinel] mymaster: 10.0.0.1:6379 → 10.0.0.2:6379 promoted (epoch 7)"
        );
        assert!(n.body.contains("Old master: 10.0.0.1:6379"), "{}", n.body);
        assert!(n.body.contains("Duration:   1.84 s"), "{}", n.body);
        assert!(n
            .body
            .contains("2024-05-01T10:00:00.000Z  +odown master mymaster"));
        assert!(n
            .body
            .ends_with("Event id: mymaster/7/failover-completed\n"));
        let ev = n.sentinel_event.unwrap();
        assert_eq!(ev.name, "+switch-master");
        assert_eq!(ev.payload, "mymaster 10.0.0.1 6379 10.0.0.2 6379");
        assert!(n.kind.changes_master());
    }

    #[test]
    fn ids_of_committed_decisions_do_not_depend_on_time() {
        let x = Notification::failover_started("g", 3, &a("h:1"), &a("h:2"), vec![], 1);
        let y = Notification::failover_started("g", 3, &a("h:1"), &a("h:2"), vec![], 2);
        assert_eq!(x.id, y.id);
        let x = Notification::objectively_down("g", 3, &a("h:1"), 2, 10, 11);
        let y = Notification::objectively_down("g", 3, &a("h:1"), 2, 20, 21);
        assert_ne!(x.id, y.id);
    }

    #[test]
    fn kind_filters() {
        let k = Kind::Alert {
            name: "RedisMemoryHigh".into(),
            firing: true,
        };
        assert!(k.matches_filter("alert"));
        assert!(k.matches_filter("alert:RedisMemoryHigh"));
        assert!(!k.matches_filter("alert:RedisMasterLinkDown"));
        assert!(Kind::ObjectivelyDown.matches_filter("odown"));
        assert!(!Kind::ObjectivelyDown.matches_filter("sdown"));
        for k in KIND_NAMES {
            assert!(!k.is_empty());
        }
    }

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        assert_eq!("warning".parse::<Severity>(), Ok(Severity::Warning));
        assert!("fatal".parse::<Severity>().is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration_ms(250), "250 ms");
        assert_eq!(human_duration_ms(1840), "1.84 s");
        assert_eq!(human_duration_ms(185_000), "3 min 5 s");
    }
}
