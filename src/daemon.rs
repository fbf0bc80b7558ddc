//! The daemon shell: one task, one `select!` loop over a closed set of inputs
//! (Raft tick, core tick, peer frames, control requests, probe results, action
//! results, shutdown). Each input goes to the Raft node or the core; after every
//! turn the node's `Ready` is drained and the core's commands are executed.
//!
//! Owns the clocks (monotonic and wall), the probe tasks (one per watched Redis
//! instance) and the action tasks. Decides nothing itself: every decision is in
//! `crate::core`.

use crate::config::{Config, RedisAuth};
use crate::consensus::logger::slog_to_tracing;
use crate::consensus::node::{Committed, Node, NodeError, Ticks};
use crate::consensus::storage::{LogStore, StorageError};
use crate::consensus::transport::{
    self, Frame, Inbound, Peers, KIND_RAFT, KIND_REPORT, KIND_REQUEST, KIND_RESPONSE,
};
use crate::control::{Request, Response};
use crate::core::health::Report;
use crate::core::topology::{Entry, Topology};
use crate::core::types::{Addr, NodeId, Now};
use crate::core::{
    Action, Command, Core, CoreConfig, GroupSpec, Input, Op, ProbeResult, RaftState,
};
use crate::redis::Instance;
use protobuf::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// INFO is refreshed at least this often (and right after an instance recovers).
const INFO_PERIOD: Duration = Duration::from_millis(1000);
/// The core re-evaluates time-based state this often.
const CORE_TICK: Duration = Duration::from_millis(50);

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
        let result = if want_info {
            match inst.info().await {
                Ok(i) => {
                    last_info = Some(Instant::now());
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
                Command::Event(ev) => info!(target: "raftinel::event", "{ev}"),
                Command::Watch(set) => self.watch(set),
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
        let mut inst = Instance::new(a.target.clone(), auth, self.cfg.redis_timeout);
        let tx = self.action_tx.clone();
        tokio::spawn(async move {
            let result = match &a.op {
                Op::Promote => inst.promote().await,
                Op::ReplicaOf(m) => inst.replicate_from(m).await,
            };
            if let Err(e) = &result {
                warn!(message = "redis action failed", group = %a.group, epoch = a.epoch, target = %a.target, error = %e);
            }
            let _ = tx
                .send(ActionMsg {
                    id: a.id,
                    result: result.map_err(|e| e.to_string()),
                })
                .await;
        });
    }

    fn broadcast(&self, report: &Report) {
        let Ok(bytes) = serde_json::to_vec(report) else {
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
                self.feed(Input::Raft(st));
            }
            if !self.node.has_ready() {
                break;
            }
        }
        Ok(())
    }

    fn on_inbound(&mut self, inb: Inbound) {
        match inb.frame.kind {
            KIND_RAFT => match raft::eraftpb::Message::parse_from_bytes(&inb.frame.payload) {
                Ok(m) if m.from == inb.from => {
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
                Ok(report) => self.feed(Input::PeerReport {
                    from: inb.from,
                    report,
                }),
                Err(e) => {
                    warn!(message = "dropping undecodable report", from = inb.from, error = %e)
                }
            },
            KIND_REQUEST => {
                let resp = match serde_json::from_slice::<Request>(&inb.frame.payload) {
                    Ok(Request::Status) => self.status_response(),
                    Err(e) => Response::Error {
                        message: format!("unknown request: {e}"),
                    },
                };
                if let Some(reply) = inb.reply {
                    let bytes = serde_json::to_vec(&resp).unwrap_or_default();
                    let _ = reply.send(Frame::new(KIND_RESPONSE, bytes));
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
        last_raft: RaftState::default(),
        group_of: BTreeMap::new(),
    };
    let mut raft_timer = tokio::time::interval(raft_tick);
    raft_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut core_timer = tokio::time::interval(CORE_TICK);
    core_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    shell.feed(Input::Tick);
    loop {
        tokio::select! {
            _ = raft_timer.tick() => shell.node.tick(),
            _ = core_timer.tick() => shell.feed(Input::Tick),
            Some(inb) = in_rx.recv() => shell.on_inbound(inb),
            Some(p) = probe_rx.recv() => shell.feed(Input::Probe { addr: p.addr, result: p.result }),
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
