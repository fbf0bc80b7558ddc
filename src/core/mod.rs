//! The pure core: every decision raftinel makes, and nothing else.
//!
//! [`Core::handle`] takes the time and one [`Input`] (a probe result, a peer's
//! report, a committed log entry, a change of Raft role, the result of a Redis
//! action) and returns the [`Command`]s the shell must carry out (propose an
//! entry, run a Redis action, broadcast a report, publish an event, change the
//! set of probed instances).
//!
//! Architecture invariant: no async, no sockets, no files, no clock. `now` is an
//! argument. Unit tests and the seeded simulation drive this type directly.
//!
//! Safety rules enforced here (see ARCHITECTURE.md):
//! - Redis actions are emitted only while this daemon is the Raft leader that has
//!   applied an entry of its own term (`RaftState::can_act`), only for a group
//!   state that is committed, and each action carries the group's epoch.
//! - A failover's intent (new epoch, chosen replica) is proposed and must be
//!   applied before the first action of that failover is emitted.

pub mod events;
mod failover;
pub mod fence;
pub mod health;
mod manual;
pub mod select;
pub mod topology;
pub mod types;

use events::Event;
use health::{InstanceHealth, PeerViews, Report};
pub use manual::{FailoverOptions, Refusal};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use topology::{Applied, Entry, Failover, Topology};
use types::{Addr, InstanceInfo, NodeId, Now, Role};

/// Static settings of one group (from the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: String,
    pub master: Addr,
    pub replicas: Vec<Addr>,
    pub down_after_ms: u64,
    pub quorum: usize,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: usize,
}

/// Static settings of the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    pub me: NodeId,
    pub groups: Vec<GroupSpec>,
    /// Re-broadcast our report at least this often.
    pub report_interval_ms: u64,
    /// A peer's report older than this does not count towards a quorum.
    pub report_ttl_ms: u64,
    /// Fencing of the local Redis instance, when it is configured.
    pub fence: Option<fence::FenceConfig>,
}

/// This daemon's Raft role, as the consensus shell sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RaftState {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    /// Leader, and it has applied an entry of its own term, so its topology is
    /// the latest committed one.
    pub can_act: bool,
}

/// The outcome of one probe of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// A valid reply to PING.
    Pong,
    /// A valid, parsed INFO.
    Info(InstanceInfo),
    /// No valid reply (timeout, refused, error); the text says why.
    Failed(String),
}

/// Everything that can happen to the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Time passed.
    Tick,
    Probe {
        addr: Addr,
        result: ProbeResult,
    },
    PeerReport {
        from: NodeId,
        report: Report,
    },
    Raft(RaftState),
    /// A committed entry, in log order. `replay` is true for entries that were
    /// already committed before this daemon restarted (no events for those).
    Applied {
        entry: Entry,
        replay: bool,
    },
    /// State received in a Raft snapshot.
    Restore(Topology),
    ActionDone {
        id: u64,
        result: Result<(), String>,
    },
    /// A read-index round trip to a leader with a quorum was confirmed (mono ms
    /// of when it was issued).
    QuorumContact {
        at_ms: u64,
    },
    /// The shell applied (or failed to apply) a fence change; `on` is the
    /// state the local instance is in now. Also sent once at start.
    FenceState {
        on: bool,
    },
    /// This leader delivered a notification: record it in the log.
    NotificationDelivered {
        group: String,
        id: String,
        channel: String,
    },
}

/// A Redis reconfiguration the shell must run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `REPLICAOF NO ONE`, confirmed with `ROLE`; `CONFIG REWRITE`;
    /// `CLIENT KILL TYPE normal`.
    Promote,
    /// `REPLICAOF host port`; `CONFIG REWRITE`; `CLIENT KILL TYPE normal`;
    /// `CLIENT UNPAUSE` (a demoted old master may be paused by a switchover).
    ReplicaOf(Addr),
    /// Planned switchover, run on the target: `CLIENT PAUSE timeout WRITE` on
    /// `old_master`, wait until the target's replication offset equals the
    /// master's, then promote as [`Op::Promote`]. On any failure: `CLIENT
    /// UNPAUSE` on `old_master` and an error naming the step.
    Switchover { old_master: Addr, timeout_ms: u64 },
    /// `CLIENT UNPAUSE` (best effort).
    Unpause,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub id: u64,
    pub group: String,
    /// The committed epoch that authorises this action.
    pub epoch: u64,
    pub target: Addr,
    pub op: Op,
}

/// Something people must hear about; the shell turns it into notifications.
/// Failover notices come from committed entries on every daemon (same id
/// everywhere); observations (down, no replica) only from the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    FailoverStarted {
        group: String,
        epoch: u64,
        from: Addr,
        to: Addr,
        kind: topology::FailoverKind,
    },
    FailoverCompleted {
        group: String,
        epoch: u64,
        from: Addr,
        to: Addr,
        kind: topology::FailoverKind,
        duration_ms: u64,
    },
    FailoverAborted {
        group: String,
        epoch: u64,
        from: Addr,
        to: Addr,
        reason: String,
    },
    OldMasterRejoined {
        group: String,
        epoch: u64,
        instance: Addr,
        master: Addr,
    },
    SubjectivelyDown {
        group: String,
        epoch: u64,
        instance: Addr,
        is_master: bool,
    },
    ObjectivelyDown {
        group: String,
        epoch: u64,
        master: Addr,
        quorum: usize,
    },
    NoEligibleReplica {
        group: String,
        epoch: u64,
        master: Addr,
        rejected: Vec<(Addr, String)>,
    },
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Propose(Entry),
    Redis(Action),
    Broadcast(Report),
    Event(Event),
    /// Probe exactly these instances from now on.
    Watch(BTreeSet<Addr>),
    /// Fence (refuse writes on) or unfence the local instance.
    Fence {
        target: Addr,
        on: bool,
    },
    Notify(Notice),
    /// A notification delivery was committed: do not send it again.
    Delivered {
        id: String,
        channel: String,
    },
}

#[derive(Clone, Debug)]
enum ActionKind {
    Promote,
    Switchover,
    Unpause,
    ReconfDuringFailover,
    Demote,
    Repoint,
}

#[derive(Clone, Debug)]
struct InFlight {
    action: Action,
    kind: ActionKind,
    started_ms: u64,
}

/// Per-group edge flags so events are published once per episode.
#[derive(Clone, Debug, Default)]
struct GroupFlags {
    /// The master announced `+odown`, until `-odown` is announced for it.
    odown: Option<Addr>,
    no_good_replica: bool,
    cooldown: bool,
    init_blocked: bool,
    maintenance_noted: bool,
}

/// How long a proposal may stay unapplied before it is proposed again.
const PROPOSAL_RETRY_MS: u64 = 1_000;
/// Back-off after a failed Redis action on one instance.
const ACTION_RETRY_MS: u64 = 300;
/// Retry delay after a `-LOADING` reply.
const LOADING_RETRY_MS: u64 = 20;
/// Reports whose send time is remembered (for two-way contact, `fence.rs`).
const SENT_REPORTS_KEPT: usize = 64;
/// An action whose result never came back is forgotten after this.
const ACTION_LOST_MS: u64 = 30_000;

pub struct Core {
    cfg: CoreConfig,
    topo: Topology,
    health: BTreeMap<Addr, InstanceHealth>,
    /// Which group each watched instance belongs to.
    owner: BTreeMap<Addr, String>,
    peers: PeerViews,
    raft: RaftState,
    last_report: Option<(u64, Report)>,
    /// Number of the last report sent, and the mono time of recent ones.
    report_seq: u64,
    sent_reports: std::collections::VecDeque<(u64, u64)>,
    /// The latest report number received from each peer.
    heard: BTreeMap<NodeId, u64>,
    pending: BTreeMap<String, (Entry, u64)>,
    inflight: BTreeMap<u64, InFlight>,
    next_action_id: u64,
    retry_after: BTreeMap<Addr, u64>,
    /// When an action on an instance last succeeded: only INFO received after
    /// it says whether the instance took the change.
    acted_at: BTreeMap<Addr, u64>,
    changed_at: BTreeMap<String, u64>,
    flags: BTreeMap<String, GroupFlags>,
    sdown_announced: BTreeSet<Addr>,
    promoted_confirmed: BTreeSet<(String, u64)>,
    /// Promotions this daemon sent, per (group, epoch): from then on a
    /// returning old master is demoted, not a reason to abort.
    promote_sent: BTreeSet<(String, u64)>,
    /// Failovers this leader proposed itself (a new leader never knows
    /// whether its predecessor already sent the promotion).
    started_here: BTreeSet<(String, u64)>,
    /// Switchovers this leader started itself (a new leader aborts the others).
    own_switchovers: BTreeSet<(String, u64)>,
    /// Switchovers whose composite action failed, with the reason.
    switch_failed: BTreeMap<(String, u64), String>,
    fence: fence::FenceState,
    /// `+slave-reconf-done` announced, per (group, epoch, replica).
    reconf_done: BTreeSet<(String, u64, Addr)>,
}

impl Core {
    pub fn new(cfg: CoreConfig) -> Core {
        Core {
            cfg,
            topo: Topology::default(),
            health: BTreeMap::new(),
            owner: BTreeMap::new(),
            peers: PeerViews::default(),
            raft: RaftState::default(),
            last_report: None,
            report_seq: 0,
            sent_reports: std::collections::VecDeque::new(),
            heard: BTreeMap::new(),
            pending: BTreeMap::new(),
            inflight: BTreeMap::new(),
            next_action_id: 1,
            retry_after: BTreeMap::new(),
            acted_at: BTreeMap::new(),
            changed_at: BTreeMap::new(),
            flags: BTreeMap::new(),
            sdown_announced: BTreeSet::new(),
            promoted_confirmed: BTreeSet::new(),
            promote_sent: BTreeSet::new(),
            started_here: BTreeSet::new(),
            own_switchovers: BTreeSet::new(),
            switch_failed: BTreeMap::new(),
            fence: fence::FenceState::default(),
            reconf_done: BTreeSet::new(),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// When the report `seq` of ours was sent (mono ms), if it is recent.
    pub(crate) fn report_sent_at(&self, seq: u64) -> Option<u64> {
        self.sent_reports
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, at)| *at)
    }

    /// The local instance is fenced, as far as this core knows.
    pub fn fenced(&self) -> bool {
        self.fence.on
    }

    pub fn raft_state(&self) -> RaftState {
        self.raft
    }

    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Feed one input; returns what the shell must do, in order.
    pub fn handle(&mut self, now: Now, input: Input) -> Vec<Command> {
        let mut out = Vec::new();
        match input {
            Input::Tick => {}
            Input::Probe { addr, result } => self.on_probe(now, addr, result),
            Input::PeerReport { from, report } => {
                if from != self.cfg.me {
                    self.heard.insert(from, report.seq);
                    self.peers.record(from, now.mono_ms, report);
                }
            }
            Input::Raft(st) => {
                if !st.can_act {
                    // Results of actions issued under an earlier leadership are
                    // ignored; a new leader re-derives everything from the
                    // committed state.
                    self.inflight.clear();
                    self.pending.clear();
                    self.own_switchovers.clear();
                    self.started_here.clear();
                }
                self.raft = st;
            }
            Input::Applied { entry, replay } => self.on_applied(now, entry, replay, &mut out),
            Input::Restore(t) => {
                self.topo = t;
                for g in self.topo.groups.keys() {
                    self.changed_at.insert(g.clone(), now.mono_ms);
                }
            }
            Input::ActionDone { id, result } => self.on_action_done(now, id, result, &mut out),
            Input::QuorumContact { at_ms } => {
                if self.fence.confirmed_at_ms.is_none_or(|t| t < at_ms) {
                    self.fence.confirmed_at_ms = Some(at_ms);
                }
            }
            Input::FenceState { on } => {
                self.fence.on = on;
                self.fence.busy = false;
            }
            Input::NotificationDelivered { group, id, channel } => {
                if self.raft.is_leader {
                    out.push(Command::Propose(Entry::Delivered { group, id, channel }));
                }
            }
        }
        self.evaluate(now, &mut out);
        out
    }

    fn on_probe(&mut self, now: Now, addr: Addr, result: ProbeResult) {
        let Some(h) = self.health.get_mut(&addr) else {
            return;
        };
        match result {
            ProbeResult::Pong => {
                h.last_ok_ms = Some(now.mono_ms);
                h.last_error = None;
            }
            ProbeResult::Info(info) => {
                h.last_ok_ms = Some(now.mono_ms);
                h.last_error = None;
                h.info = Some(info);
                h.info_at_ms = Some(now.mono_ms);
            }
            ProbeResult::Failed(e) => h.last_error = Some(e),
        }
    }

    fn on_applied(&mut self, now: Now, entry: Entry, replay: bool, out: &mut Vec<Command>) {
        if let Entry::Delivered { id, channel, .. } = entry {
            out.push(Command::Delivered { id, channel });
            return;
        }
        let group = entry.group().to_string();
        let before = self.topo.group(&group).and_then(|g| g.failover.clone());
        if let Some((p, _)) = self.pending.get(&group) {
            if *p == entry || !replay {
                self.pending.remove(&group);
            }
        }
        match self.topo.apply(&entry) {
            Applied::Ok(events) => {
                self.changed_at.insert(group.clone(), now.mono_ms);
                if let Entry::StartFailover { .. } = entry {
                    if let Some(f) = self.flags.get_mut(&group) {
                        f.no_good_replica = false;
                        f.cooldown = false;
                    }
                }
                if !replay {
                    out.extend(events.into_iter().map(Command::Event));
                    if let Some(n) = self.notice_for(&entry, before) {
                        out.push(Command::Notify(n));
                    }
                }
            }
            Applied::Rejected(reason) => {
                if !replay {
                    out.push(Command::Event(Event::new(
                        "-entry-rejected",
                        format!("{group} {reason}"),
                    )));
                }
            }
        }
    }

    /// The notice a committed entry calls for (`before`: the failover in
    /// progress before the entry was applied).
    fn notice_for(&self, entry: &Entry, before: Option<Failover>) -> Option<Notice> {
        match entry {
            Entry::StartFailover {
                group,
                epoch,
                from,
                to,
                kind,
                ..
            } => Some(Notice::FailoverStarted {
                group: group.clone(),
                epoch: *epoch,
                from: from.clone(),
                to: to.clone(),
                kind: *kind,
            }),
            Entry::FinishFailover {
                group,
                epoch,
                completed_wall_ms,
            } => before.map(|f| Notice::FailoverCompleted {
                group: group.clone(),
                epoch: *epoch,
                from: f.from,
                to: f.to,
                kind: f.kind,
                duration_ms: completed_wall_ms.saturating_sub(f.started_wall_ms),
            }),
            Entry::AbortFailover {
                group,
                epoch,
                reason,
            } => before.map(|f| Notice::FailoverAborted {
                group: group.clone(),
                epoch: *epoch,
                from: f.from,
                to: f.to,
                reason: reason.clone(),
            }),
            _ => None,
        }
    }

    fn on_action_done(
        &mut self,
        now: Now,
        id: u64,
        result: Result<(), String>,
        out: &mut Vec<Command>,
    ) {
        let Some(done) = self.inflight.remove(&id) else {
            return;
        };
        let a = &done.action;
        let group = &a.group;
        let master = self.topo.group(group).map(|g| g.master.clone());
        if result.is_ok() {
            self.acted_at.insert(a.target.clone(), now.mono_ms);
        }
        match result {
            Ok(()) => match done.kind {
                ActionKind::Promote | ActionKind::Switchover => {
                    self.promoted_confirmed.insert((group.clone(), a.epoch));
                }
                ActionKind::Unpause => {}
                ActionKind::ReconfDuringFailover => {
                    if let Some(m) = master {
                        out.push(Command::Event(Event::replica(
                            "+slave-reconf-sent",
                            group,
                            &a.target,
                            &m,
                        )));
                    }
                }
                ActionKind::Demote => {
                    if let Some(m) = &master {
                        out.push(Command::Notify(Notice::OldMasterRejoined {
                            group: group.clone(),
                            epoch: a.epoch,
                            instance: a.target.clone(),
                            master: m.clone(),
                        }));
                    }
                    if let Some(m) = master {
                        out.push(Command::Event(Event::replica(
                            "+convert-to-slave",
                            group,
                            &a.target,
                            &m,
                        )));
                    }
                }
                ActionKind::Repoint => {
                    if let Some(m) = master {
                        out.push(Command::Event(Event::replica(
                            "+fix-slave-config",
                            group,
                            &a.target,
                            &m,
                        )));
                    }
                }
            },
            Err(e) => {
                if let ActionKind::Switchover = done.kind {
                    self.switch_failed
                        .insert((group.clone(), a.epoch), e.clone());
                }
                // An instance still loading its data set answers `-LOADING`
                // for a few ms: retry it soon, it may be a returning master.
                let wait = if e.contains("LOADING") {
                    LOADING_RETRY_MS
                } else {
                    ACTION_RETRY_MS
                };
                self.retry_after
                    .insert(a.target.clone(), now.mono_ms + wait);
                out.push(Command::Event(Event::new(
                    "-action-failed",
                    format!("{group} {} {:?}: {e}", a.target, a.op),
                )));
            }
        }
    }

    /// Everything that depends on time and state: watch set, sdown, reports,
    /// odown, and (on the leader) the failover reconciler.
    fn evaluate(&mut self, now: Now, out: &mut Vec<Command>) {
        self.update_watch(now, out);
        self.update_sdown(now, out);
        self.maybe_broadcast(now, out);
        let lost: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, f)| now.mono_ms.saturating_sub(f.started_ms) > ACTION_LOST_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.inflight.remove(&id);
        }
        self.evaluate_fence(now, out);
        let specs = self.cfg.groups.clone();
        for spec in &specs {
            self.update_odown(now, spec, out);
            if self.raft.can_act {
                self.reconcile(now, spec, out);
            }
        }
    }

    fn down_after(&self, addr: &Addr) -> u64 {
        self.owner
            .get(addr)
            .and_then(|g| self.cfg.groups.iter().find(|s| &s.name == g))
            .map_or(u64::MAX, |s| s.down_after_ms)
    }

    pub(crate) fn is_sdown(&self, now: Now, addr: &Addr) -> bool {
        self.health
            .get(addr)
            .is_some_and(|h| h.is_sdown(now.mono_ms, self.down_after(addr)))
    }

    fn update_watch(&mut self, now: Now, out: &mut Vec<Command>) {
        let mut owner: BTreeMap<Addr, String> = BTreeMap::new();
        for spec in &self.cfg.groups {
            let mut add = |a: &Addr| {
                owner.entry(a.clone()).or_insert_with(|| spec.name.clone());
            };
            match self.topo.group(&spec.name) {
                Some(g) => {
                    add(&g.master);
                    g.replicas.iter().for_each(&mut add);
                }
                None => {
                    add(&spec.master);
                    spec.replicas.iter().for_each(&mut add);
                }
            }
        }
        // Replicas a master lists are probed before they are committed, so the
        // leader knows they answer.
        let mut discovered = Vec::new();
        for (addr, g) in &owner {
            if let Some(Role::Master { replicas }) = self
                .health
                .get(addr)
                .and_then(|h| h.info.as_ref())
                .map(|i| &i.role)
            {
                for r in replicas {
                    discovered.push((r.addr.clone(), g.clone()));
                }
            }
        }
        for (a, g) in discovered {
            owner.entry(a).or_insert(g);
        }
        if owner.keys().eq(self.owner.keys()) {
            self.owner = owner;
            return;
        }
        self.health.retain(|a, _| owner.contains_key(a));
        for a in owner.keys() {
            self.health
                .entry(a.clone())
                .or_insert_with(|| InstanceHealth::new(now.mono_ms));
        }
        self.owner = owner;
        out.push(Command::Watch(self.owner.keys().cloned().collect()));
    }

    fn role_word(&self, addr: &Addr) -> (&'static str, Option<(String, Addr)>) {
        let group = self.owner.get(addr);
        match group.and_then(|g| self.topo.group(g).map(|s| (g, s))) {
            Some((_, s)) if &s.master == addr => ("master", None),
            Some((g, s)) => ("slave", Some((g.clone(), s.master.clone()))),
            None => ("master", None),
        }
    }

    fn instance_event(&self, name: &str, addr: &Addr) -> Event {
        match self.role_word(addr) {
            ("slave", Some((g, m))) => Event::replica(name, &g, addr, &m),
            _ => {
                let g = self.owner.get(addr).cloned().unwrap_or_default();
                Event::master(name, &g, addr)
            }
        }
    }

    fn update_sdown(&mut self, now: Now, out: &mut Vec<Command>) {
        let down: BTreeSet<Addr> = self
            .health
            .keys()
            .filter(|a| self.is_sdown(now, a))
            .cloned()
            .collect();
        for a in down.difference(&self.sdown_announced) {
            out.push(Command::Event(self.instance_event("+sdown", a)));
            if self.raft.is_leader {
                if let Some(g) = self
                    .owner
                    .get(a)
                    .and_then(|g| self.topo.group(g).map(|s| (g, s)))
                {
                    out.push(Command::Notify(Notice::SubjectivelyDown {
                        group: g.0.clone(),
                        epoch: g.1.epoch,
                        instance: a.clone(),
                        is_master: g.1.master == *a,
                    }));
                }
            }
            if let Some(h) = self.health.get_mut(a) {
                h.sdown_since_ms = Some(now.mono_ms);
            }
        }
        for a in self.sdown_announced.difference(&down) {
            if self.health.contains_key(a) {
                out.push(Command::Event(self.instance_event("-sdown", a)));
            }
            if let Some(h) = self.health.get_mut(a) {
                h.sdown_since_ms = None;
            }
        }
        self.sdown_announced = down;
    }

    fn maybe_broadcast(&mut self, now: Now, out: &mut Vec<Command>) {
        let report = Report {
            sdown: self.sdown_announced.clone(),
            log_last_index: 0,
            epochs: self
                .topo
                .groups
                .iter()
                .map(|(name, g)| (name.clone(), g.epoch))
                .collect(),
            ..Report::default()
        };
        let due = match &self.last_report {
            None => true,
            Some((at, last)) => {
                *last != report || now.mono_ms.saturating_sub(*at) >= self.cfg.report_interval_ms
            }
        };
        if due {
            self.last_report = Some((now.mono_ms, report.clone()));
            self.report_seq = (self.report_seq + 1).max(now.wall_ms);
            self.sent_reports.push_back((self.report_seq, now.mono_ms));
            if self.sent_reports.len() > SENT_REPORTS_KEPT {
                self.sent_reports.pop_front();
            }
            let reply_age_ms = self
                .health
                .iter()
                .filter_map(|(a, h)| {
                    h.last_ok_ms
                        .map(|t| (a.clone(), now.mono_ms.saturating_sub(t)))
                })
                .collect();
            out.push(Command::Broadcast(Report {
                seq: self.report_seq,
                heard: self.heard.clone(),
                reply_age_ms,
                ..report
            }));
        }
    }

    /// Daemons (this one included) that currently see `addr` subjectively down.
    pub fn down_votes(&self, now: Now, addr: &Addr) -> Vec<NodeId> {
        let mut v = self
            .peers
            .voters_for(addr, now.mono_ms, self.cfg.report_ttl_ms);
        if self.sdown_announced.contains(addr) {
            v.push(self.cfg.me);
            v.sort_unstable();
        }
        v
    }

    fn is_odown(&self, now: Now, spec: &GroupSpec) -> bool {
        match self.topo.group(&spec.name) {
            Some(g) => self.down_votes(now, &g.master).len() >= spec.quorum,
            None => false,
        }
    }

    fn update_odown(&mut self, now: Now, spec: &GroupSpec, out: &mut Vec<Command>) {
        let odown = self.is_odown(now, spec);
        let Some(master) = self.topo.group(&spec.name).map(|g| g.master.clone()) else {
            return;
        };
        let flags = self.flags.entry(spec.name.clone()).or_default();
        let announced = flags.odown.clone();
        if let Some(old) = announced.filter(|old| !odown || *old != master) {
            out.push(Command::Event(Event::master("-odown", &spec.name, &old)));
            flags.odown = None;
        }
        if odown && flags.odown.is_none() {
            flags.odown = Some(master.clone());
            let mut ev = Event::master("+odown", &spec.name, &master);
            ev.payload.push_str(&format!(" #quorum {}", spec.quorum));
            out.push(Command::Event(ev));
            if self.raft.is_leader {
                out.push(Command::Notify(Notice::ObjectivelyDown {
                    group: spec.name.clone(),
                    epoch: self.topo.group(&spec.name).map_or(0, |g| g.epoch),
                    master: master.clone(),
                    quorum: spec.quorum,
                }));
            }
        }
    }

    fn propose(&mut self, now: Now, entry: Entry, out: &mut Vec<Command>) {
        let group = entry.group().to_string();
        if let Some((p, at)) = self.pending.get(&group) {
            if *p == entry && now.mono_ms.saturating_sub(*at) < PROPOSAL_RETRY_MS {
                return;
            }
        }
        self.pending.insert(group, (entry.clone(), now.mono_ms));
        out.push(Command::Propose(entry));
    }

    fn has_pending(&self, now: Now, group: &str) -> bool {
        self.pending
            .get(group)
            .is_some_and(|(_, at)| now.mono_ms.saturating_sub(*at) < PROPOSAL_RETRY_MS)
    }

    /// INFO of `addr` newer than both the group's last topology change and the
    /// last action on `addr`, if any.
    pub(crate) fn fresh_info(&self, group: &str, addr: &Addr) -> Option<&InstanceInfo> {
        let since = self
            .changed_at
            .get(group)
            .copied()
            .unwrap_or(0)
            .max(self.acted_at.get(addr).copied().unwrap_or(0));
        self.health.get(addr).and_then(|h| h.info_since(since))
    }

    fn busy(&self, now: Now, target: &Addr) -> bool {
        self.inflight.values().any(|f| &f.action.target == target)
            || self
                .retry_after
                .get(target)
                .is_some_and(|t| now.mono_ms < *t)
    }

    /// Emit `op` on `target`, authorised by the committed `epoch` of `group`.
    fn act(
        &mut self,
        now: Now,
        auth: (&str, u64),
        target: &Addr,
        op: Op,
        kind: ActionKind,
        out: &mut Vec<Command>,
    ) {
        let (group, epoch) = auth;
        let action = Action {
            id: self.next_action_id,
            group: group.to_string(),
            epoch,
            target: target.clone(),
            op,
        };
        self.next_action_id += 1;
        self.inflight.insert(
            action.id,
            InFlight {
                action: action.clone(),
                kind,
                started_ms: now.mono_ms,
            },
        );
        out.push(Command::Redis(action));
    }

    /// The view `raftinel status` shows.
    pub fn status(&self, now: Now) -> StatusView {
        let groups = self
            .cfg
            .groups
            .iter()
            .map(|spec| self.group_status(now, spec))
            .collect();
        let peers = self
            .peers
            .all(now.mono_ms)
            .map(|(id, age, r)| PeerStatus {
                id,
                report_age_ms: age,
                sees_down: r.sdown.iter().cloned().collect(),
            })
            .collect();
        StatusView {
            node_id: self.cfg.me,
            fenced: self.fence.on,
            raft: self.raft,
            groups,
            peers,
        }
    }

    fn group_status(&self, now: Now, spec: &GroupSpec) -> GroupStatus {
        let g = self.topo.group(&spec.name);
        let master = g.map(|g| g.master.clone());
        let master_offset = master
            .as_ref()
            .and_then(|m| self.health.get(m))
            .and_then(|h| h.info.as_ref())
            .map(|i| i.master_repl_offset);
        let mut instances = Vec::new();
        let addrs: Vec<&Addr> = self
            .owner
            .iter()
            .filter(|(_, grp)| **grp == spec.name)
            .map(|(a, _)| a)
            .collect();
        for addr in addrs {
            let h = self.health.get(addr);
            // A down instance reports nothing: its last INFO is history.
            let info = h
                .and_then(|h| h.info.as_ref())
                .filter(|_| !self.sdown_announced.contains(addr));
            let (reported_role, replica_of, link_up, offset) = match info.map(|i| &i.role) {
                Some(Role::Master { .. }) => (
                    Some("master".to_string()),
                    None,
                    None,
                    info.map(|i| i.master_repl_offset),
                ),
                Some(Role::Replica {
                    master,
                    link_up,
                    offset,
                    ..
                }) => (
                    Some("slave".to_string()),
                    Some(master.clone()),
                    Some(*link_up),
                    Some(*offset),
                ),
                None => (None, None, None, None),
            };
            let committed_role = match g {
                Some(g) if &g.master == addr => "master",
                Some(g) if g.replicas.contains(addr) => "slave",
                _ => "discovered",
            };
            instances.push(InstanceStatus {
                addr: addr.clone(),
                committed_role,
                reported_role,
                replica_of,
                link_up,
                offset,
                lag_bytes: match (master_offset, offset, committed_role) {
                    (Some(m), Some(o), "slave") => Some(m.saturating_sub(o)),
                    _ => None,
                },
                sdown_here: self.sdown_announced.contains(addr),
                run_id: info.map(|i| i.run_id.clone()),
                priority: match info.map(|i| &i.role) {
                    Some(Role::Replica { priority, .. }) => Some(*priority),
                    _ => None,
                },
                link_down_since_s: match info.map(|i| &i.role) {
                    Some(Role::Replica {
                        link_down_since_s, ..
                    }) => *link_down_since_s,
                    _ => None,
                },
                info_age_ms: h
                    .and_then(|h| h.info_at_ms)
                    .map(|t| now.mono_ms.saturating_sub(t)),
                seen_down_by: self.down_votes(now, addr),
                last_ok_ms_ago: h
                    .and_then(|h| h.last_ok_ms)
                    .map(|t| now.mono_ms.saturating_sub(t)),
                last_error: h.and_then(|h| h.last_error.clone()),
            });
        }
        GroupStatus {
            name: spec.name.clone(),
            initialised: g.is_some(),
            epoch: g.map_or(0, |g| g.epoch),
            master,
            quorum: spec.quorum,
            odown: self.is_odown(now, spec),
            failover: g.and_then(|g| g.failover.clone()),
            last_failover_completed_wall_ms: g.and_then(|g| g.last_failover_completed_wall_ms),
            maintenance: g.is_some_and(|g| g.maintenance),
            last_outcome: g.and_then(|g| g.last_outcome.clone()),
            instances,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    pub node_id: NodeId,
    /// The local instance is fenced (refuses writes) by this daemon.
    pub fenced: bool,
    pub raft: RaftState,
    pub groups: Vec<GroupStatus>,
    pub peers: Vec<PeerStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub report_age_ms: u64,
    pub sees_down: Vec<Addr>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupStatus {
    pub name: String,
    pub initialised: bool,
    pub epoch: u64,
    pub master: Option<Addr>,
    pub quorum: usize,
    pub odown: bool,
    pub failover: Option<Failover>,
    pub last_failover_completed_wall_ms: Option<u64>,
    /// No automatic failover while on.
    pub maintenance: bool,
    /// How the last failover ended.
    pub last_outcome: Option<topology::FailoverOutcome>,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstanceStatus {
    pub addr: Addr,
    /// `master` / `slave` in the committed topology, or `discovered`.
    pub committed_role: &'static str,
    /// What the instance itself reports in INFO.
    pub reported_role: Option<String>,
    pub replica_of: Option<Addr>,
    pub link_up: Option<bool>,
    pub offset: Option<u64>,
    pub lag_bytes: Option<u64>,
    pub sdown_here: bool,
    pub run_id: Option<String>,
    pub priority: Option<u32>,
    pub link_down_since_s: Option<u64>,
    pub info_age_ms: Option<u64>,
    /// Daemons (this one included) that see it subjectively down.
    pub seen_down_by: Vec<NodeId>,
    pub last_ok_ms_ago: Option<u64>,
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests;
