//! The daemon shell: one task, one `select!` loop over a closed set of inputs
//! (Raft tick, core tick, peer frames, control requests, probe results, action
//! results, shutdown). Each input goes to the Raft node or the core; after every
//! turn the node's `Ready` is drained and the core's commands are executed.
//!
//! Owns the clocks (monotonic and wall), the probe tasks (one per watched Redis
//! instance) and the action tasks. Decides nothing itself: every decision is in
//! `crate::core`.

use crate::alerts::{AlertEngine, InstanceSample};
use crate::config::{Config, RedisAuth};
use crate::consensus::logger::slog_to_tracing;
use crate::consensus::node::{Committed, Node, NodeError, Ticks};
use crate::consensus::storage::{LogStore, StorageError};
use crate::consensus::transport::{
    self, Frame, Inbound, Peers, KIND_RAFT, KIND_REPORT, KIND_REQUEST, KIND_RESPONSE,
};
use crate::control::{Request, Response};
use crate::core::events::Event;
use crate::core::fence::FenceConfig;
use crate::core::health::Report;
use crate::core::topology::{Entry, Topology};
use crate::core::types::{Addr, NodeId, Now};
use crate::core::StatusView;
use crate::core::{
    Action, Command, Core, CoreConfig, FailoverOptions, GroupSpec, Input, Op, ProbeResult,
    RaftState,
};
use crate::discovery::view::{
    myid_of, DiscoveryHandles, DiscoveryView, FailoverRequest, GroupView, PeerView, ReplicaView,
};
use crate::http_api::{ApiCall, HttpHandles};
use crate::metrics::{parse_info_metrics, InfoMetrics, Metrics, RaftMetrics};
use crate::notices::{self, Timeline};
use crate::notify::{Notification, Notifier, Outcome as DeliveryOutcome};
use crate::redis::Instance;
use protobuf::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// INFO is refreshed at least this often (and right after an instance recovers).
const INFO_PERIOD: Duration = Duration::from_millis(1000);
/// The core re-evaluates time-based state this often.
const CORE_TICK: Duration = Duration::from_millis(50);
/// Time allowed for applying a fence (`CONFIG SET` + `CONFIG REWRITE`).
const FENCE_APPLY_MARGIN: Duration = Duration::from_millis(30);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen for peers on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("raft snapshot in {path} holds unreadable state: {source}")]
    Snapshot {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Build the core's static settings from the config.
pub fn core_config(cfg: &Config) -> CoreConfig {
    let min_ping = cfg
        .groups
        .iter()
        .map(|g| g.ping_interval)
        .min()
        .unwrap_or(Duration::from_millis(100));
    let report_interval = min_ping.clamp(Duration::from_millis(50), Duration::from_millis(250));
    CoreConfig {
        me: cfg.node_id,
        groups: cfg
            .groups
            .iter()
            .map(|g| GroupSpec {
                name: g.name.clone(),
                master: g.master.clone(),
                replicas: g.replicas.clone(),
                down_after_ms: g.down_after.as_millis() as u64,
                quorum: g.quorum,
                failover_timeout_ms: g.failover_timeout.as_millis() as u64,
                parallel_syncs: g.parallel_syncs,
            })
            .collect(),
        report_interval_ms: report_interval.as_millis() as u64,
        // Four missed reports (or the election timeout, if longer) and a
        // peer's view no longer counts.
        report_ttl_ms: (report_interval * 4)
            .max(cfg.raft.election_timeout())
            .as_millis() as u64,
        fence: cfg.local_redis.as_ref().map(|local| FenceConfig {
            local: local.clone(),
            // `fence_after` is a deadline for writes being refused: decide one
            // core tick plus the CONFIG SET round trip early.
            fence_after_ms: fence_after(cfg)
                .saturating_sub(CORE_TICK + FENCE_APPLY_MARGIN)
                .max(Duration::from_millis(1))
                .as_millis() as u64,
            boot_grace_ms: (cfg.raft.election_timeout() * 3).as_millis() as u64,
            voters: cfg.peers.len(),
        }),
    }
}

/// `fence_after`: half the shortest `down_after` (always less than it), so a
/// minority master stops taking writes before the majority can fail over.
pub fn fence_after(cfg: &Config) -> Duration {
    cfg.fence_after
}

/// Where the pre-fence settings of the local instance are kept while fenced
/// (shared with `raftinel guard`, which may start the instance fenced).
fn fence_file(cfg: &Config) -> std::path::PathBuf {
    crate::guard::fence_file(&cfg.data_dir)
}

/// The value that makes a master refuse every write (`-NOREPLICAS`): more
/// replicas than any group has.
use crate::guard::FENCE_MIN_REPLICAS;

/// Apply or lift the fence on the local instance. Returns the state it is in.
async fn apply_fence(
    cfg: &Config,
    auth: RedisAuth,
    target: &Addr,
    on: bool,
) -> Result<bool, String> {
    let path = fence_file(cfg);
    let mut inst = Instance::new(target.clone(), auth, cfg.redis_timeout);
    if on {
        if !path.exists() {
            let orig = inst
                .config_get("min-replicas-to-write")
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or_else(|| "0".into());
            // Already at the fence value with no file (a lift that failed half
            // way): that is not the operator's setting.
            let orig = if orig == FENCE_MIN_REPLICAS {
                "0".to_string()
            } else {
                orig
            };
            let json = serde_json::json!({ "min-replicas-to-write": orig }).to_string();
            std::fs::write(&path, json)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        inst.config_set("min-replicas-to-write", FENCE_MIN_REPLICAS)
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    } else {
        let orig = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["min-replicas-to-write"].as_str().map(String::from))
            .unwrap_or_else(|| "0".into());
        inst.config_set("min-replicas-to-write", &orig)
            .await
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&path);
        Ok(false)
    }
}

struct Clock {
    start: Instant,
}

impl Clock {
    fn now(&self) -> Now {
        Now {
            mono_ms: self.start.elapsed().as_millis() as u64,
            wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

struct ProbeMsg {
    addr: Addr,
    result: ProbeResult,
    /// Full INFO text, for metrics and alerts.
    text: Option<String>,
}

struct ActionMsg {
    id: u64,
    result: Result<(), String>,
}

/// Probe one instance forever: PING every `interval`, INFO every second and
/// right after any failure, so a returning instance is seen (and, if it is an
/// old master, demoted) on its first answer.
/// A bump of `refresh` (the topology changed, or an action completed) asks for
/// INFO at once, so the reconciler sees the effect without waiting a period.
async fn probe_loop(
    mut inst: Instance,
    interval: Duration,
    tx: mpsc::Sender<ProbeMsg>,
    mut refresh: watch::Receiver<u64>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_info: Option<Instant> = None;
    let mut healthy = false;
    loop {
        let mut forced = false;
        tokio::select! {
            _ = tick.tick() => {}
            r = refresh.changed() => {
                if r.is_err() {
                    return;
                }
                forced = true;
            }
        }
        let want_info = forced || !healthy || last_info.is_none_or(|t| t.elapsed() >= INFO_PERIOD);
        let mut text = None;
        let result = if want_info {
            match inst.info_full().await {
                Ok((i, t)) => {
                    last_info = Some(Instant::now());
                    text = Some(t);
                    ProbeResult::Info(i)
                }
                Err(e) => ProbeResult::Failed(e.to_string()),
            }
        } else {
            match inst.ping().await {
                Ok(()) => ProbeResult::Pong,
                Err(e) => ProbeResult::Failed(e.to_string()),
            }
        };
        healthy = !matches!(result, ProbeResult::Failed(_));
        let msg = ProbeMsg {
            addr: inst.addr().clone(),
            result,
            text,
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

struct Shell {
    cfg: Config,
    clock: Clock,
    node: Node,
    core: Core,
    peers: Peers,
    probes: BTreeMap<Addr, JoinHandle<()>>,
    probe_tx: mpsc::Sender<ProbeMsg>,
    action_tx: mpsc::Sender<ActionMsg>,
    /// Bumped to make every probe fetch INFO now.
    refresh: watch::Sender<u64>,
    /// Last Raft message from each peer.
    last_heard: BTreeMap<NodeId, Instant>,
    /// Read-index requests in flight: context -> when issued.
    reads: BTreeMap<u64, Instant>,
    next_read: u64,
    /// Confirmed reads waiting for `applied` to reach their index.
    confirmed: Vec<(u64, Instant)>,
    /// This daemon holds the latest committed topology until then.
    fresh_until: Option<Instant>,
    view_tx: watch::Sender<DiscoveryView>,
    events_tx: broadcast::Sender<Event>,
    fence_tx: mpsc::Sender<bool>,
    /// Fence changes being applied.
    fence_inflight: usize,
    /// run_id of the local instance when last seen.
    local_run_id: Option<String>,
    metrics: Arc<Metrics>,
    metrics_tx: watch::Sender<String>,
    notifier: Notifier,
    alerts: AlertEngine,
    /// Latest INFO metrics per instance.
    infos: BTreeMap<Addr, InfoMetrics>,
    timeline: Timeline,
    /// Freshness as last reported (quorum lost / regained notices).
    was_fresh: bool,
    lost_since_ms: Option<u64>,
    last_raft: RaftState,
    /// Group of each watched instance, for its auth and ping interval.
    group_of: BTreeMap<Addr, String>,
}

impl Shell {
    fn auth_for(&self, group: &str) -> RedisAuth {
        self.cfg
            .groups
            .iter()
            .find(|g| g.name == group)
            .map(|g| g.auth.clone())
            .unwrap_or_default()
    }

    fn ping_interval_for(&self, group: &str) -> Duration {
        self.cfg
            .groups
            .iter()
            .find(|g| g.name == group)
            .map_or(Duration::from_millis(100), |g| g.ping_interval)
    }

    fn feed(&mut self, input: Input) {
        let now = self.clock.now();
        let cmds = self.core.handle(now, input);
        self.execute(cmds);
    }

    fn execute(&mut self, cmds: Vec<Command>) {
        for c in cmds {
            match c {
                Command::Propose(e) => {
                    debug!(message = "proposing", entry = ?e);
                    if let Err(err) = self.node.propose(e.encode()) {
                        debug!(message = "proposal not accepted, the core retries", %err);
                    }
                }
                Command::Redis(a) => self.spawn_action(a),
                Command::Broadcast(report) => self.broadcast(&report),
                Command::Event(ev) => {
                    info!(target: "raftinel::event", "{ev}");
                    self.timeline.record(self.clock.now().wall_ms, &ev);
                    let _ = self.events_tx.send(ev);
                }
                Command::Watch(set) => self.watch(set),
                Command::Fence { target, on } => self.spawn_fence(target, on),
                Command::Notify(n) => {
                    let now = self.clock.now();
                    let note =
                        notices::notification(&n, &self.timeline, self.cfg.node_id, now.wall_ms);
                    self.notifier.submit(note);
                }
                Command::Delivered { id, channel } => self.notifier.mark_delivered(&id, &channel),
            }
        }
    }

    fn spawn_action(&mut self, a: Action) {
        info!(
            message = "reconfiguring redis",
            group = %a.group,
            epoch = a.epoch,
            target = %a.target,
            op = ?a.op
        );
        let auth = self.auth_for(&a.group);
        let timeout = self.cfg.redis_timeout;
        let tx = self.action_tx.clone();
        tokio::spawn(async move {
            let mut inst = Instance::new(a.target.clone(), auth.clone(), timeout);
            let result = match &a.op {
                Op::Promote => inst.promote().await.map_err(|e| e.to_string()),
                Op::ReplicaOf(m) => {
                    let r = inst.replicate_from(m).await.map_err(|e| e.to_string());
                    if r.is_ok() {
                        // A demoted old master may still be paused by a
                        // switchover; its blocked writers were just killed.
                        let _ = inst.unpause().await;
                    }
                    r
                }
                Op::Unpause => inst.unpause().await.map_err(|e| e.to_string()),
                Op::Switchover {
                    old_master,
                    timeout_ms,
                } => {
                    let mut old = Instance::new(old_master.clone(), auth, timeout);
                    crate::redis::switchover::switchover(&mut old, &mut inst, Duration::from_millis(*timeout_ms))
                        .await
                        .map(|note| info!(message = "switchover", group = %a.group, epoch = a.epoch, %note))
                }
            };
            if let Err(e) = &result {
                warn!(message = "redis action failed", group = %a.group, epoch = a.epoch, target = %a.target, error = %e);
            }
            let _ = tx.send(ActionMsg { id: a.id, result }).await;
        });
    }

    fn spawn_fence(&mut self, target: Addr, on: bool) {
        self.fence_inflight += 1;
        let group = self.group_of.get(&target).cloned().unwrap_or_default();
        let auth = self.auth_for(&group);
        let cfg = self.cfg.clone();
        let tx = self.fence_tx.clone();
        tokio::spawn(async move {
            let state = match apply_fence(&cfg, auth, &target, on).await {
                Ok(state) => {
                    if state {
                        warn!(message = "local redis fenced: it refuses writes until this daemon is back in the majority", %target);
                    } else {
                        info!(message = "fence lifted", %target);
                    }
                    state
                }
                Err(e) => {
                    warn!(message = "fence change failed; retrying", %target, on, error = %e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    !on
                }
            };
            let _ = tx.send(state).await;
        });
    }

    fn broadcast(&self, report: &Report) {
        let mut report = report.clone();
        report.log_last_index = self.node.last_index();
        let Ok(bytes) = serde_json::to_vec(&report) else {
            return;
        };
        for p in &self.cfg.peers {
            if p.id != self.cfg.node_id {
                self.peers
                    .send(p.id, Frame::new(KIND_REPORT, bytes.clone()));
            }
        }
    }

    fn watch(&mut self, set: BTreeSet<Addr>) {
        self.group_of = self
            .core
            .status(self.clock.now())
            .groups
            .iter()
            .flat_map(|g| {
                g.instances
                    .iter()
                    .map(move |i| (i.addr.clone(), g.name.clone()))
            })
            .collect();
        self.probes.retain(|addr, h| {
            let keep = set.contains(addr);
            if !keep {
                h.abort();
            }
            keep
        });
        for addr in set {
            if self.probes.contains_key(&addr) {
                continue;
            }
            let group = self.group_of.get(&addr).cloned().unwrap_or_default();
            let inst = Instance::new(addr.clone(), self.auth_for(&group), self.cfg.redis_timeout);
            let interval = self.ping_interval_for(&group);
            info!(message = "watching redis instance", %addr, group = %group);
            let h = tokio::spawn(probe_loop(
                inst,
                interval,
                self.probe_tx.clone(),
                self.refresh.subscribe(),
            ));
            self.probes.insert(addr, h);
        }
    }

    /// Drain the node's `Ready`s: send messages, apply committed entries, run
    /// the core's commands, tell the core about role changes.
    fn drive(&mut self) -> Result<(), DaemonError> {
        for _ in 0..64 {
            let out = self.node.ready()?;
            for m in out.messages {
                let to = m.to;
                match m.write_to_bytes() {
                    Ok(bytes) => self.peers.send(to, Frame::new(KIND_RAFT, bytes)),
                    Err(e) => warn!(message = "cannot encode raft message", error = %e),
                }
            }
            for (ctx, index) in out.read_states {
                let id = ctx
                    .get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes);
                if let Some(issued) = id.and_then(|id| self.reads.remove(&id)) {
                    self.confirmed.push((index, issued));
                }
            }
            let applied_any = !out.committed.is_empty();
            for c in out.committed {
                match c {
                    Committed::Entry {
                        index,
                        data,
                        replay,
                    } => match Entry::decode(&data) {
                        Ok(entry) => self.feed(Input::Applied { entry, replay }),
                        Err(e) => {
                            warn!(message = "skipping undecodable log entry", index, error = %e)
                        }
                    },
                    Committed::Snapshot { index, data } => match Topology::decode(&data) {
                        Ok(t) => {
                            info!(message = "restored state from raft snapshot", index);
                            self.feed(Input::Restore(t));
                        }
                        Err(e) => warn!(message = "undecodable snapshot", index, error = %e),
                    },
                }
            }
            if applied_any {
                // The topology changed: every probe fetches INFO now, so the
                // next step of a failover need not wait for the INFO period.
                self.refresh.send_modify(|g| *g += 1);
                let core = &self.core;
                if self.node.maybe_compact(|| core.topology().encode())? {
                    debug!(
                        message = "raft log compacted",
                        applied = self.node.applied()
                    );
                }
            }
            let st = RaftState {
                term: self.node.term(),
                leader: self.node.leader(),
                is_leader: self.node.is_leader(),
                can_act: self.node.can_act(),
            };
            if st != self.last_raft {
                if st.leader != self.last_raft.leader || st.term != self.last_raft.term {
                    info!(message = "raft leadership", term = st.term, leader = ?st.leader, me = self.cfg.node_id);
                }
                self.last_raft = st;
                self.notifier.set_active(st.can_act);
                if !st.can_act {
                    self.alerts.reset();
                }
                self.feed(Input::Raft(st));
            }
            if !self.node.has_ready() {
                break;
            }
        }
        self.settle_reads();
        self.publish_view();
        Ok(())
    }

    /// Issue a read-index request (every Raft tick). Old unanswered ones are
    /// dropped: without a leader that reaches a quorum, none is answered and
    /// freshness runs out.
    fn request_read(&mut self) {
        let horizon = self.cfg.raft.election_timeout();
        self.reads.retain(|_, t| t.elapsed() < horizon);
        self.next_read += 1;
        self.reads.insert(self.next_read, Instant::now());
        self.node.read_index(self.next_read.to_be_bytes().to_vec());
    }

    fn settle_reads(&mut self) {
        let applied = self.node.applied();
        let horizon = self.cfg.raft.election_timeout();
        let mut keep = Vec::new();
        for (index, issued) in std::mem::take(&mut self.confirmed) {
            if applied >= index {
                let at_ms = issued
                    .saturating_duration_since(self.clock.start)
                    .as_millis() as u64;
                let now = self.clock.now();
                let cmds = self.core.handle(now, Input::QuorumContact { at_ms });
                self.execute(cmds);
                let until = issued + horizon;
                if self.fresh_until.is_none_or(|f| f < until) {
                    self.fresh_until = Some(until);
                }
            } else {
                keep.push((index, issued));
            }
        }
        self.confirmed = keep;
    }

    /// Invariant 3: this daemon knows it holds the latest committed topology.
    fn fresh(&self) -> bool {
        self.fresh_until.is_some_and(|t| Instant::now() < t)
    }

    fn publish_view(&self) {
        let now = self.clock.now();
        let view = build_view(
            &self.cfg,
            &self.core.status(now),
            self.fresh(),
            &self.last_heard,
        );
        self.view_tx.send_if_modified(|v| {
            if *v == view {
                false
            } else {
                *v = view;
                true
            }
        });
    }

    /// `SENTINEL FAILOVER` from a discovery client: a planned switchover with
    /// the group's failover timeout, run by the leader.
    fn on_failover_request(&mut self, req: FailoverRequest) {
        let timeout_ms = self
            .cfg
            .groups
            .iter()
            .find(|g| g.name == req.group)
            .map_or(5_000, |g| {
                (g.failover_timeout.as_millis() as u64).min(10_000)
            });
        let r = Request::Failover {
            group: req.group.clone(),
            opts: FailoverOptions {
                to: None,
                timeout_ms,
                force: false,
            },
        };
        let reply = req.reply;
        let send = move |resp: Response| {
            let _ = reply.send(match resp {
                Response::Accepted { .. } => Ok(()),
                Response::Error { message } => Err(message),
                Response::Status { .. } => Err("ERR unexpected answer".into()),
            });
        };
        match self.leader_request(&r) {
            Some(resp) => send(resp),
            None => self.forward(r, send),
        }
    }

    /// A probe result: metrics first, then the core.
    fn on_probe(&mut self, p: ProbeMsg) {
        let group = self.group_of.get(&p.addr).cloned().unwrap_or_default();
        let addr = p.addr.to_string();
        match (&p.result, p.text) {
            (ProbeResult::Info(_), Some(text)) => {
                let m = parse_info_metrics(&text);
                self.metrics
                    .set_instance(&group, &addr, true, Some(m.clone()));
                self.infos.insert(p.addr.clone(), m);
            }
            (ProbeResult::Failed(_), _) => {
                self.metrics.set_instance(&group, &addr, false, None);
                self.infos.remove(&p.addr);
            }
            _ => {}
        }
        // `raftinel guard` may have started the local instance fenced (it
        // writes fence.json before redis starts). So when the local instance
        // restarted (a new run_id), take the file as the truth, unless a
        // fence change of ours is under way.
        if let ProbeResult::Info(i) = &p.result {
            if self.cfg.local_redis.as_ref() == Some(&p.addr) {
                let restarted = self.local_run_id.as_ref().is_some_and(|r| *r != i.run_id);
                self.local_run_id = Some(i.run_id.clone());
                let on = fence_file(&self.cfg).exists();
                if restarted && self.fence_inflight == 0 && on != self.core.fenced() {
                    info!(
                        message = "local redis restarted: fence state taken from fence.json",
                        on
                    );
                    self.feed(Input::FenceState { on });
                }
            }
        }
        self.feed(Input::Probe {
            addr: p.addr,
            result: p.result,
        });
    }

    /// Every second: metrics, built-in alerts (leader), quorum notices, and
    /// the metrics text for `GET /metrics`.
    fn second_tick(&mut self) {
        let now = self.clock.now();
        let status = self.core.status(now);
        let fresh = self.fresh();
        let reachable = 1 + self
            .last_heard
            .values()
            .filter(|t| t.elapsed() < self.cfg.raft.election_timeout())
            .count();
        self.metrics.set_raft(RaftMetrics {
            node_id: self.cfg.node_id,
            term: status.raft.term,
            is_leader: status.raft.is_leader,
            leader_id: status.raft.leader.unwrap_or(0),
            quorum_reachable: fresh,
        });
        self.metrics.set_export_redis(status.raft.is_leader);
        let mut samples = Vec::new();
        for g in &status.groups {
            self.metrics.set_group(&g.name, g.epoch);
            let expected = g
                .instances
                .iter()
                .filter(|i| i.committed_role == "slave")
                .count();
            for i in &g.instances {
                self.metrics
                    .set_sdown(&g.name, &i.addr.to_string(), i.sdown_here);
                samples.push(InstanceSample {
                    group: g.name.clone(),
                    instance: i.addr.to_string(),
                    info: self.infos.get(&i.addr).cloned(),
                    expected_replicas: (i.committed_role == "master").then_some(expected),
                });
            }
        }
        let keep: BTreeSet<String> = self.group_of.keys().map(|a| a.to_string()).collect();
        self.metrics.retain_instances(|_, addr| keep.contains(addr));
        if status.raft.can_act {
            for t in self.alerts.evaluate(now.wall_ms, &samples) {
                let epoch = status
                    .groups
                    .iter()
                    .find(|g| g.name == t.group)
                    .map_or(0, |g| g.epoch);
                info!(target: "raftinel::alert", "{} {} {}", if t.firing { "FIRING" } else { "resolved" }, t.name, t.message);
                self.notifier
                    .submit(Notification::from_alert(&t, epoch, now.wall_ms));
            }
            self.metrics.set_alerts(self.alerts.firing());
        } else {
            self.metrics.set_alerts(Vec::new());
        }
        let cluster = self.cfg.peers.len();
        if self.was_fresh && !fresh {
            self.lost_since_ms = Some(now.wall_ms);
            warn!(
                message = "quorum lost: this daemon names no master until it is back",
                reachable, cluster
            );
            self.notifier.submit(Notification::quorum_lost(
                self.cfg.node_id,
                reachable,
                cluster,
                now.wall_ms,
                now.wall_ms,
            ));
        } else if !self.was_fresh && fresh {
            if let Some(since) = self.lost_since_ms.take() {
                info!(message = "quorum regained", reachable, cluster);
                self.notifier.submit(Notification::quorum_regained(
                    self.cfg.node_id,
                    reachable,
                    cluster,
                    since,
                    now.wall_ms,
                ));
            }
        }
        self.was_fresh = fresh;
        let text = self.metrics.render();
        self.metrics_tx.send_if_modified(|t| {
            if *t == text {
                false
            } else {
                *t = text;
                true
            }
        });
    }

    /// A call from the HTTP API: the same requests as the CLI.
    fn on_api_call(&mut self, call: ApiCall) {
        let reply = call.reply;
        let send = move |resp: Response| {
            let _ = reply.send(resp);
        };
        match call.request {
            Request::Status => send(self.status_response()),
            req => match self.leader_request(&req) {
                Some(resp) => send(resp),
                None => self.forward(req, send),
            },
        }
    }

    /// Handle a mutating request here if this daemon is the leader that may
    /// act; `None` means it must go to the leader.
    fn leader_request(&mut self, req: &Request) -> Option<Response> {
        if !self.core.raft_state().can_act {
            return None;
        }
        let now = self.clock.now();
        let (resp, cmds) = match req {
            Request::Status => return Some(self.status_response()),
            Request::Failover { group, opts } => {
                let (r, cmds) = self.core.request_failover(now, group, opts);
                let resp = match r {
                    Ok(epoch) => {
                        info!(message = "failover requested", %group, epoch, to = ?opts.to, force = opts.force);
                        Response::Accepted {
                            epoch: Some(epoch),
                            leader: self.cfg.node_id,
                        }
                    }
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                };
                (resp, cmds)
            }
            Request::Maintenance { group, on } => {
                let (r, cmds) = self.core.request_maintenance(now, group, *on);
                let resp = match r {
                    Ok(()) => Response::Accepted {
                        epoch: None,
                        leader: self.cfg.node_id,
                    },
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                };
                (resp, cmds)
            }
        };
        self.execute(cmds);
        Some(resp)
    }

    /// Send a request to the current leader and answer with its response.
    fn forward(&self, req: Request, send: impl FnOnce(Response) + Send + 'static) {
        let leader = self.node.leader().filter(|l| *l != self.cfg.node_id);
        let Some(peer) = leader.and_then(|l| self.cfg.peer(l)).cloned() else {
            send(Response::Error {
                message: "NOTLEADER no Raft leader right now; retry in a moment".into(),
            });
            return;
        };
        let cfg = self.cfg.clone();
        tokio::spawn(async move {
            let resp =
                crate::control::request(&cfg, peer.id, &peer.addr, &req, Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|e| Response::Error {
                        message: format!("cannot reach the leader (daemon {}): {e}", peer.id),
                    });
            send(resp);
        });
    }

    fn on_inbound(&mut self, inb: Inbound) {
        match inb.frame.kind {
            KIND_RAFT => match raft::eraftpb::Message::parse_from_bytes(&inb.frame.payload) {
                Ok(m) if m.from == inb.from => {
                    self.last_heard.insert(m.from, Instant::now());
                    if let Err(e) = self.node.step(m) {
                        debug!(message = "raft step", error = %e);
                    }
                }
                Ok(m) => warn!(
                    message = "dropping raft message with a forged sender",
                    conn = inb.from,
                    claimed = m.from
                ),
                Err(e) => {
                    warn!(message = "dropping undecodable raft message", from = inb.from, error = %e)
                }
            },
            KIND_REPORT => match serde_json::from_slice::<Report>(&inb.frame.payload) {
                Ok(report) => {
                    self.node.follower_log_end(inb.from, report.log_last_index);
                    self.feed(Input::PeerReport {
                        from: inb.from,
                        report,
                    })
                }
                Err(e) => {
                    warn!(message = "dropping undecodable report", from = inb.from, error = %e)
                }
            },
            KIND_REQUEST => {
                let Some(reply) = inb.reply else { return };
                let send = |resp: Response| {
                    let bytes = serde_json::to_vec(&resp).unwrap_or_default();
                    let _ = reply.send(Frame::new(KIND_RESPONSE, bytes));
                };
                match serde_json::from_slice::<Request>(&inb.frame.payload) {
                    Ok(Request::Status) => send(self.status_response()),
                    Ok(req) => match self.leader_request(&req) {
                        Some(resp) => send(resp),
                        None => self.forward(req, send),
                    },
                    Err(e) => send(Response::Error {
                        message: format!("unknown request: {e}"),
                    }),
                }
            }
            other => warn!(
                message = "dropping frame of unknown kind",
                kind = other,
                from = inb.from
            ),
        }
    }

    fn status_response(&self) -> Response {
        let now = self.clock.now();
        let view = self.core.status(now);
        let mut status = serde_json::to_value(&view).unwrap_or_default();
        if let Some(obj) = status.as_object_mut() {
            obj.insert("version".into(), env!("CARGO_PKG_VERSION").into());
            // Invariant 3: whether this daemon's answers are authoritative now.
            obj.insert("fresh".into(), self.fresh().into());
            obj.insert("applied_index".into(), self.node.applied().into());
            obj.insert(
                "log_first_index".into(),
                self.node.store().first_index().into(),
            );
            obj.insert(
                "local_redis".into(),
                self.cfg.local_redis.as_ref().map(|a| a.to_string()).into(),
            );
        }
        Response::Status { status }
    }
}

/// Run the daemon until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> Result<(), DaemonError> {
    let clock = Clock {
        start: Instant::now(),
    };
    let voters: Vec<NodeId> = cfg.peers.iter().map(|p| p.id).collect();
    let store = LogStore::open(&cfg.data_dir, &voters)?;
    let ticks = Ticks {
        election: cfg.raft.election_ticks,
        heartbeat: cfg.raft.heartbeat_ticks,
    };
    let (node, snapshot) = Node::new(cfg.node_id, store, ticks, &slog_to_tracing())?;
    let mut core = Core::new(core_config(&cfg));
    if let Some(data) = snapshot {
        let t = Topology::decode(&data).map_err(|source| DaemonError::Snapshot {
            path: cfg.data_dir.display().to_string(),
            source,
        })?;
        core.handle(clock.now(), Input::Restore(t));
    }
    let listener = tokio::net::TcpListener::bind(cfg.peer_listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: cfg.peer_listen.to_string(),
            source,
        })?;
    let secret = Arc::new(cfg.peer_secret.expose().as_bytes().to_vec());
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(4096);
    let others: Vec<NodeId> = voters
        .iter()
        .copied()
        .filter(|id| *id != cfg.node_id)
        .collect();
    tokio::spawn(transport::serve(
        listener,
        cfg.node_id,
        others.clone(),
        secret.clone(),
        in_tx,
    ));
    let peers = Peers::start(
        cfg.node_id,
        cfg.peers
            .iter()
            .filter(|p| p.id != cfg.node_id)
            .map(|p| (p.id, p.addr.clone()))
            .collect(),
        secret,
    );
    let (probe_tx, mut probe_rx) = mpsc::channel::<ProbeMsg>(4096);
    let (action_tx, mut action_rx) = mpsc::channel::<ActionMsg>(1024);
    info!(
        message = "raftinel daemon started",
        node_id = cfg.node_id,
        peer_listen = %cfg.peer_listen,
        data_dir = %cfg.data_dir.display(),
        groups = cfg.groups.len(),
        applied = node.applied()
    );
    let raft_tick = cfg.raft.tick;
    let (view_tx, view_rx) = watch::channel(DiscoveryView::default());
    let (events_tx, _) = broadcast::channel::<Event>(1024);
    let (failover_tx, mut failover_rx) = mpsc::channel::<FailoverRequest>(64);
    let (fence_tx, mut fence_rx) = mpsc::channel::<bool>(8);
    let handles = DiscoveryHandles {
        view: view_rx,
        events: events_tx.clone(),
        failover: failover_tx,
    };
    start_discovery(&cfg, handles).await?;
    let (api_tx, mut api_rx) = mpsc::channel::<ApiCall>(256);
    let (metrics_tx, metrics_rx) = watch::channel(String::new());
    let metrics = Arc::new(Metrics::new());
    let cfg_notify = cfg.notify.clone();
    let cfg_alerts = cfg.alerts.clone();
    start_http(
        &cfg,
        HttpHandles {
            calls: api_tx,
            metrics: metrics_rx,
        },
    )
    .await?;
    let mut shell = Shell {
        cfg,
        clock,
        node,
        core,
        peers,
        probes: BTreeMap::new(),
        probe_tx,
        action_tx,
        refresh: watch::channel(0).0,
        last_heard: BTreeMap::new(),
        reads: BTreeMap::new(),
        next_read: 0,
        confirmed: Vec::new(),
        fresh_until: None,
        view_tx,
        events_tx: events_tx.clone(),
        fence_tx,
        fence_inflight: 0,
        local_run_id: None,
        notifier: Notifier::with_metrics(cfg_notify, metrics.clone()),
        metrics,
        metrics_tx,
        alerts: AlertEngine::new(cfg_alerts),
        infos: BTreeMap::new(),
        timeline: Timeline::default(),
        was_fresh: false,
        lost_since_ms: None,
        last_raft: RaftState::default(),
        group_of: BTreeMap::new(),
    };
    let mut raft_timer = tokio::time::interval(raft_tick);
    raft_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut core_timer = tokio::time::interval(CORE_TICK);
    core_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut delivered_rx = shell.notifier.delivered();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let fenced = fence_file(&shell.cfg).exists();
    if fenced {
        warn!(message = "local redis was left fenced; the fence is lifted once the cluster confirms it may write");
    }
    shell.feed(Input::FenceState { on: fenced });
    loop {
        tokio::select! {
            _ = raft_timer.tick() => {
                shell.node.tick();
                shell.request_read();
            }
            Some(req) = failover_rx.recv() => shell.on_failover_request(req),
            Some(on) = fence_rx.recv() => {
                shell.fence_inflight = shell.fence_inflight.saturating_sub(1);
                shell.feed(Input::FenceState { on });
            }
            Some(call) = api_rx.recv() => shell.on_api_call(call),
            _ = core_timer.tick() => shell.feed(Input::Tick),
            Some(inb) = in_rx.recv() => shell.on_inbound(inb),
            Some(p) = probe_rx.recv() => shell.on_probe(p),
            _ = second.tick() => shell.second_tick(),
            rep = delivered_rx.recv() => {
                if let Ok(rep) = rep {
                    if rep.replicate && rep.outcome == DeliveryOutcome::Delivered {
                        let group = rep.id.split('/').next().unwrap_or_default().to_string();
                        shell.feed(Input::NotificationDelivered { group, id: rep.id, channel: rep.channel });
                    }
                }
            }
            Some(a) = action_rx.recv() => {
                shell.feed(Input::ActionDone { id: a.id, result: a.result });
                shell.refresh.send_modify(|g| *g += 1);
            }
            _ = &mut shutdown => {
                info!(message = "shutting down");
                break;
            }
        }
        shell.drive()?;
    }
    for (_, h) in shell.probes {
        h.abort();
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Start the Sentinel-compatible port, if configured.
async fn start_discovery(cfg: &Config, handles: DiscoveryHandles) -> Result<(), DaemonError> {
    let Some(d) = cfg.discovery.clone() else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(d.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: format!("{} (discovery)", d.listen),
            source,
        })?;
    tokio::spawn(crate::discovery::serve(listener, d, handles));
    Ok(())
}

/// Start the HTTP API, if configured.
async fn start_http(cfg: &Config, handles: HttpHandles) -> Result<(), DaemonError> {
    let Some(h) = cfg.http.clone() else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(h.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: format!("{} (http)", h.listen),
            source,
        })?;
    tokio::spawn(crate::http::serve(listener, h, handles));
    Ok(())
}

/// The snapshot the discovery port answers from.
pub fn build_view(
    cfg: &Config,
    status: &StatusView,
    fresh: bool,
    last_heard: &BTreeMap<NodeId, Instant>,
) -> DiscoveryView {
    let groups = status
        .groups
        .iter()
        .filter_map(|g| {
            let master = g.master.clone()?;
            let spec = cfg.groups.iter().find(|s| s.name == g.name)?;
            let m = g.instances.iter().find(|i| i.addr == master);
            let replicas = g
                .instances
                .iter()
                .filter(|i| i.addr != master && i.committed_role != "discovered")
                .map(|i| ReplicaView {
                    addr: i.addr.clone(),
                    sdown: i.sdown_here,
                    run_id: i.run_id.clone(),
                    offset: i.offset,
                    link_up: i.link_up,
                    link_down_since_s: i.link_down_since_s,
                    priority: i.priority,
                    master: i.replica_of.clone(),
                    last_ok_ms_ago: i.last_ok_ms_ago,
                    info_age_ms: i.info_age_ms,
                    reports_master: i.reported_role.as_deref() == Some("master"),
                })
                .collect();
            Some(GroupView {
                name: g.name.clone(),
                master,
                epoch: g.epoch,
                quorum: g.quorum,
                down_after_ms: spec.down_after.as_millis() as u64,
                failover_timeout_ms: spec.failover_timeout.as_millis() as u64,
                parallel_syncs: spec.parallel_syncs,
                master_sdown: m.is_some_and(|m| m.sdown_here),
                master_odown: g.odown,
                master_run_id: m.and_then(|m| m.run_id.clone()),
                master_offset: m.and_then(|m| m.offset),
                master_last_ok_ms_ago: m.and_then(|m| m.last_ok_ms_ago),
                master_info_age_ms: m.and_then(|m| m.info_age_ms),
                failover_in_progress: g.failover.is_some(),
                replicas,
            })
        })
        .collect();
    let peers = cfg
        .peers
        .iter()
        .filter(|p| p.id != cfg.node_id)
        .map(|p| PeerView {
            id: p.id,
            myid: myid_of(p.id),
            discovery_addr: p.discovery.clone(),
            last_heard_ms_ago: last_heard
                .get(&p.id)
                .map(|t| t.elapsed().as_millis() as u64),
        })
        .collect();
    DiscoveryView {
        fresh,
        node_id: cfg.node_id,
        myid: myid_of(cfg.node_id),
        raft_term: status.raft.term,
        leader: status.raft.leader,
        groups,
        peers,
    }
}
