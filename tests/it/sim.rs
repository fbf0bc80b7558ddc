//! Deterministic, seeded simulation of three daemons: the real Raft node
//! (`consensus::node::Node` over in-memory storage) and the real core, over a
//! simulated network (delay, loss, partitions), with daemon crashes and a
//! simulated Redis world (kills, restarts, replication).
//!
//! After every step it checks the safety invariants of ARCHITECTURE.md:
//! - the committed log is the same on every daemon (same data at each index);
//! - epochs only grow in each daemon's applied state;
//! - at most one master is committed per (group, epoch);
//! - a Redis action comes only from the Raft leader that may act, carries the
//!   epoch of its committed state, and a promotion only targets the replica
//!   chosen by the committed failover of that epoch.
//!
//! At the end, with everything healed, exactly one instance is a master and it
//! is the committed one.

use raftinel::consensus::logger::slog_to_tracing;
use raftinel::consensus::node::{Committed, Node, Ticks};
use raftinel::consensus::storage::LogStore;
use raftinel::core::health::Report;
use raftinel::core::topology::{Entry, Phase, Topology};
use raftinel::core::types::{Addr, InstanceInfo, Now, Role};
use raftinel::core::{
    Command, Core, CoreConfig, FailoverOptions, GroupSpec, Input, Op, ProbeResult, RaftState,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

const STEP_MS: u64 = 10;
const RAFT_TICK_MS: u64 = 100;
const PROBE_MS: u64 = 100;
const GROUP: &str = "g";

fn addr(i: usize) -> Addr {
    Addr::new("10.0.0.1", 6379 + i as u16)
}

#[derive(Clone, Debug, PartialEq)]
enum RRole {
    Master,
    ReplicaOf(usize),
}

#[derive(Clone, Debug)]
struct RedisSim {
    alive: bool,
    role: RRole,
    offset: u64,
}

enum Payload {
    Raft(Box<raft::eraftpb::Message>),
    Report(Report),
}

struct Msg {
    at: u64,
    from: u64,
    to: u64,
    payload: Payload,
}

struct PendingAction {
    at: u64,
    node: u64,
    incarnation: u64,
    id: u64,
    target: usize,
    op: Op,
}

struct Daemon {
    node: Option<Node>,
    core: Option<Core>,
    store: LogStore,
    incarnation: u64,
    last_raft: RaftState,
    last_epoch: u64,
}

struct Sim {
    rng: StdRng,
    now: u64,
    daemons: Vec<Daemon>,
    redis: Vec<RedisSim>,
    /// (a, b) host pairs that cannot talk (hosts 1..=3; daemon i and redis i-1 share host i).
    cut: BTreeSet<(u64, u64)>,
    net: Vec<Msg>,
    actions: Vec<PendingAction>,
    drop_rate: f64,
    /// Every committed entry seen at each index.
    log: BTreeMap<u64, Vec<u8>>,
    /// (epoch -> master) as committed.
    masters: BTreeMap<u64, Addr>,
    actions_run: usize,
}

fn spec() -> GroupSpec {
    GroupSpec {
        name: GROUP.into(),
        master: addr(0),
        replicas: vec![addr(1), addr(2)],
        down_after_ms: 1000,
        quorum: 2,
        failover_timeout_ms: 3000,
        parallel_syncs: 1,
    }
}

fn new_daemon_parts(id: u64, store: &LogStore) -> (Node, Core) {
    let (node, snap) = Node::new(
        id,
        store.clone(),
        Ticks {
            election: 10,
            heartbeat: 2,
        },
        &slog_to_tracing(),
    )
    .expect("node");
    let mut core = Core::new(CoreConfig {
        me: id,
        groups: vec![spec()],
        report_interval_ms: 100,
        report_ttl_ms: 1000,
        fence: None,
    });
    if let Some(data) = snap {
        core.handle(
            Now::default(),
            Input::Restore(Topology::decode(&data).expect("snapshot")),
        );
    }
    (node, core)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let daemons = (1..=3)
            .map(|id| {
                let store = LogStore::in_memory(&[1, 2, 3]);
                let (mut node, core) = new_daemon_parts(id, &store);
                node.set_compact_every(20); // exercise snapshots
                Daemon {
                    node: Some(node),
                    core: Some(core),
                    store,
                    incarnation: 0,
                    last_raft: RaftState::default(),
                    last_epoch: 0,
                }
            })
            .collect();
        let redis = (0..3)
            .map(|i| RedisSim {
                alive: true,
                role: if i == 0 {
                    RRole::Master
                } else {
                    RRole::ReplicaOf(0)
                },
                offset: 0,
            })
            .collect();
        Sim {
            rng: StdRng::seed_from_u64(seed),
            now: 0,
            daemons,
            redis,
            cut: BTreeSet::new(),
            net: Vec::new(),
            actions: Vec::new(),
            drop_rate: 0.05,
            log: BTreeMap::new(),
            masters: BTreeMap::new(),
            actions_run: 0,
        }
    }

    fn clock(&self) -> Now {
        Now {
            mono_ms: self.now,
            wall_ms: 1_700_000_000_000 + self.now,
        }
    }

    fn linked(&self, a: u64, b: u64) -> bool {
        a == b || !(self.cut.contains(&(a, b)) || self.cut.contains(&(b, a)))
    }

    fn info_of(&self, i: usize) -> InstanceInfo {
        let r = &self.redis[i];
        let role = match r.role {
            RRole::Master => Role::Master {
                replicas: Vec::new(),
            },
            RRole::ReplicaOf(m) => {
                let up = self.redis[m].alive && self.linked(i as u64 + 1, m as u64 + 1);
                Role::Replica {
                    master: addr(m),
                    link_up: up,
                    link_down_since_s: if up { None } else { Some(1) },
                    priority: 100,
                    offset: r.offset,
                }
            }
        };
        InstanceInfo {
            run_id: format!("run{i}"),
            role,
            master_repl_offset: r.offset,
        }
    }

    /// Feed an input to daemon `i` (1-based) and process its commands.
    fn feed(&mut self, id: u64, input: Input) {
        let now = self.clock();
        let d = &mut self.daemons[id as usize - 1];
        let Some(core) = d.core.as_mut() else { return };
        let cmds = core.handle(now, input);
        self.execute(id, cmds);
    }

    fn execute(&mut self, id: u64, cmds: Vec<Command>) {
        for c in cmds {
            match c {
                Command::Propose(e) => {
                    if let Some(n) = self.daemons[id as usize - 1].node.as_mut() {
                        let _ = n.propose(e.encode());
                    }
                }
                Command::Redis(a) => {
                    self.check_action(id, &a);
                    let delay = self.rng.gen_range(5..60);
                    let target = (a.target.port - 6379) as usize;
                    self.actions.push(PendingAction {
                        at: self.now + delay,
                        node: id,
                        incarnation: self.daemons[id as usize - 1].incarnation,
                        id: a.id,
                        target,
                        op: a.op,
                    });
                }
                Command::Broadcast(r) => {
                    for to in 1..=3u64 {
                        if to != id {
                            self.send(id, to, Payload::Report(r.clone()));
                        }
                    }
                }
                Command::Event(_)
                | Command::Watch(_)
                | Command::Fence { .. }
                | Command::Notify(_)
                | Command::Delivered { .. } => {}
            }
        }
    }

    /// Invariant 1: only the leader that may act, with the committed epoch.
    fn check_action(&self, id: u64, a: &raftinel::core::Action) {
        let d = &self.daemons[id as usize - 1];
        let node = d.node.as_ref().expect("running");
        let core = d.core.as_ref().expect("running");
        assert!(
            node.is_leader() && node.can_act(),
            "t={} action {a:?} from non-leader {id}",
            self.now
        );
        let g = core.topology().group(GROUP).expect("committed group");
        assert_eq!(
            g.epoch, a.epoch,
            "t={} action {a:?} with a stale epoch",
            self.now
        );
        if a.op == Op::Promote {
            // Either the chosen replica of the committed failover of this
            // epoch, or the committed master itself (restoring its role).
            match g.failover.as_ref() {
                Some(f) => assert_eq!(
                    (f.phase, &f.to, f.epoch),
                    (Phase::Promoting, &a.target, a.epoch)
                ),
                None => assert_eq!(
                    a.target, g.master,
                    "t={} promotion of a non-master outside a failover",
                    self.now
                ),
            }
        }
    }

    fn send(&mut self, from: u64, to: u64, payload: Payload) {
        if self.rng.gen_bool(self.drop_rate) {
            return;
        }
        let delay = self.rng.gen_range(1..15);
        self.net.push(Msg {
            at: self.now + delay,
            from,
            to,
            payload,
        });
    }

    fn drive(&mut self, id: u64) {
        for _ in 0..16 {
            let d = &mut self.daemons[id as usize - 1];
            let Some(node) = d.node.as_mut() else { return };
            if !node.has_ready() {
                break;
            }
            let out = node.ready().expect("ready");
            for m in out.messages {
                let to = m.to;
                self.send(id, to, Payload::Raft(Box::new(m)));
            }
            for c in out.committed {
                match c {
                    Committed::Entry {
                        index,
                        data,
                        replay,
                    } => {
                        if let Some(prev) = self.log.get(&index) {
                            assert_eq!(
                                prev, &data,
                                "t={} daemons disagree on log index {index}",
                                self.now
                            );
                        }
                        self.log.insert(index, data.clone());
                        let entry = Entry::decode(&data).expect("entry");
                        self.feed(id, Input::Applied { entry, replay });
                        self.check_topology(id);
                    }
                    Committed::Snapshot { data, .. } => {
                        let t = Topology::decode(&data).expect("snapshot");
                        self.feed(id, Input::Restore(t));
                    }
                }
            }
            let d = &mut self.daemons[id as usize - 1];
            let Some(node) = d.node.as_mut() else { return };
            if let Some(core) = d.core.as_ref() {
                let topo = core.topology().encode();
                node.maybe_compact(|| topo).expect("compact");
            }
            let st = RaftState {
                term: node.term(),
                leader: node.leader(),
                is_leader: node.is_leader(),
                can_act: node.can_act(),
            };
            if st != d.last_raft {
                d.last_raft = st;
                self.feed(id, Input::Raft(st));
            }
        }
    }

    /// Invariants 2: epochs only grow; one master per epoch.
    fn check_topology(&mut self, id: u64) {
        let d = &mut self.daemons[id as usize - 1];
        let Some(g) = d
            .core
            .as_ref()
            .and_then(|c| c.topology().group(GROUP).cloned())
        else {
            return;
        };
        assert!(
            g.epoch >= d.last_epoch,
            "t={} epoch went back on {id}",
            self.now
        );
        d.last_epoch = g.epoch;
        // The master committed for an epoch is the master once the epoch's
        // failover left the promotion phase (or an epoch without failover).
        let settled = g
            .failover
            .as_ref()
            .is_none_or(|f| f.phase == Phase::Reconfiguring);
        if settled {
            let prev = self
                .masters
                .entry(g.epoch)
                .or_insert_with(|| g.master.clone());
            assert_eq!(
                *prev, g.master,
                "t={} two masters committed for epoch {}",
                self.now, g.epoch
            );
        }
    }

    fn crash(&mut self, id: u64) {
        let d = &mut self.daemons[id as usize - 1];
        d.node = None;
        d.core = None;
        d.incarnation += 1;
    }

    fn restart(&mut self, id: u64) {
        let d = &mut self.daemons[id as usize - 1];
        if d.node.is_some() {
            return;
        }
        let (mut node, core) = new_daemon_parts(id, &d.store);
        node.set_compact_every(20);
        d.node = Some(node);
        d.core = Some(core);
        d.last_raft = RaftState::default();
        d.last_epoch = 0;
    }

    fn step(&mut self) {
        self.now += STEP_MS;
        // Redis replication.
        for i in 0..3 {
            if let RRole::ReplicaOf(m) = self.redis[i].role {
                if self.redis[i].alive
                    && self.redis[m].alive
                    && self.linked(i as u64 + 1, m as u64 + 1)
                {
                    self.redis[i].offset = self.redis[m].offset;
                }
            } else if self.redis[i].alive {
                self.redis[i].offset += 1;
            }
        }
        // Network.
        let now = self.now;
        let (due, rest): (Vec<Msg>, Vec<Msg>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| m.at <= now);
        self.net = rest;
        for m in due {
            if !self.linked(m.from, m.to) {
                continue;
            }
            match m.payload {
                Payload::Raft(msg) => {
                    if let Some(n) = self.daemons[m.to as usize - 1].node.as_mut() {
                        let _ = n.step(*msg);
                    }
                }
                Payload::Report(r) => self.feed(
                    m.to,
                    Input::PeerReport {
                        from: m.from,
                        report: r,
                    },
                ),
            }
        }
        // Redis actions land.
        let (due, rest): (Vec<PendingAction>, Vec<PendingAction>) =
            std::mem::take(&mut self.actions)
                .into_iter()
                .partition(|a| a.at <= now);
        self.actions = rest;
        for a in due {
            let ok = self.redis[a.target].alive && self.linked(a.node, a.target as u64 + 1);
            if ok {
                self.actions_run += 1;
                match &a.op {
                    Op::Promote => self.redis[a.target].role = RRole::Master,
                    Op::ReplicaOf(m) => {
                        self.redis[a.target].role = RRole::ReplicaOf((m.port - 6379) as usize)
                    }
                    Op::Switchover { old_master, .. } => {
                        // Catch-up is instant here; the old master must answer
                        // to be paused.
                        let old = (old_master.port - 6379) as usize;
                        if self.redis[old].alive && self.linked(a.node, old as u64 + 1) {
                            self.redis[a.target].role = RRole::Master;
                        }
                    }
                    Op::Unpause => {}
                }
            }
            if self.daemons[a.node as usize - 1].incarnation == a.incarnation {
                let result = if ok {
                    Ok(())
                } else {
                    Err("unreachable".into())
                };
                self.feed(a.node, Input::ActionDone { id: a.id, result });
            }
        }
        for id in 1..=3u64 {
            if self.daemons[id as usize - 1].node.is_none() {
                continue;
            }
            if self.now % RAFT_TICK_MS == 0 {
                if let Some(n) = self.daemons[id as usize - 1].node.as_mut() {
                    n.tick();
                }
            }
            if self.now % PROBE_MS == (id * 10) % PROBE_MS {
                for i in 0..3 {
                    let result = if self.redis[i].alive && self.linked(id, i as u64 + 1) {
                        ProbeResult::Info(self.info_of(i))
                    } else {
                        ProbeResult::Failed("connection refused".into())
                    };
                    self.feed(
                        id,
                        Input::Probe {
                            addr: addr(i),
                            result,
                        },
                    );
                }
            }
            self.feed(id, Input::Tick);
            self.drive(id);
        }
    }

    fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.step();
        }
    }

    /// Run until `done` holds, at most `max_ms` more.
    fn run_until(&mut self, max_ms: u64, done: impl Fn(&Sim) -> bool) {
        let end = self.now + max_ms;
        while !done(self) && self.now < end {
            self.step();
        }
    }

    fn committed_master(&self) -> Option<Addr> {
        self.daemons
            .iter()
            .filter_map(|d| d.core.as_ref())
            .filter_map(|c| {
                c.topology()
                    .group(GROUP)
                    .map(|g| (g.epoch, g.master.clone()))
            })
            .max_by_key(|(e, _)| *e)
            .map(|(_, m)| m)
    }
}

fn chaos(seed: u64) -> Sim {
    let mut sim = Sim::new(seed);
    sim.run_for(3_000);
    sim.run_until(20_000, |s| s.committed_master().is_some());
    assert!(
        sim.committed_master().is_some(),
        "seed {seed}: group never initialised"
    );
    for _ in 0..12 {
        let what = sim.rng.gen_range(0..7);
        match what {
            0 => {
                // kill the current master's redis
                if let Some(m) = sim.committed_master() {
                    sim.redis[(m.port - 6379) as usize].alive = false;
                }
            }
            1 => {
                let i = sim.rng.gen_range(0..3);
                sim.redis[i].alive = true;
            }
            2 => {
                let id = sim.rng.gen_range(1..=3);
                sim.crash(id);
            }
            3 => {
                let id = sim.rng.gen_range(1..=3);
                sim.restart(id);
            }
            4 => {
                let a = sim.rng.gen_range(1..=3u64);
                let b = sim.rng.gen_range(1..=3u64);
                if a != b {
                    sim.cut.insert((a, b));
                }
            }
            5 => sim.cut.clear(),
            _ => {
                // An operator asks the leader for a planned switchover.
                let now = sim.clock();
                if let Some(id) = sim
                    .daemons
                    .iter()
                    .position(|d| d.node.as_ref().is_some_and(|n| n.can_act()))
                {
                    let opts = FailoverOptions {
                        to: None,
                        timeout_ms: 2000,
                        force: false,
                    };
                    let cmds = sim.daemons[id]
                        .core
                        .as_mut()
                        .map(|c| c.request_failover(now, GROUP, &opts).1)
                        .unwrap_or_default();
                    sim.execute(id as u64 + 1, cmds);
                }
            }
        }
        let wait = sim.rng.gen_range(200..4_000);
        sim.run_for(wait);
    }
    // Heal everything and let it settle.
    sim.cut.clear();
    for id in 1..=3 {
        sim.restart(id);
    }
    for r in sim.redis.iter_mut() {
        r.alive = true;
    }
    sim.drop_rate = 0.0;
    sim.run_for(15_000);
    sim
}

#[test]
fn seeded_chaos_keeps_the_invariants() {
    let seeds: u64 = std::env::var("RAFTINEL_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut total_actions = 0;
    for seed in 0..seeds {
        let sim = chaos(seed);
        total_actions += sim.actions_run;
        // Healed: exactly one master, the committed one, everyone follows it.
        let committed = sim.committed_master().expect("committed master");
        let ci = (committed.port - 6379) as usize;
        for (i, r) in sim.redis.iter().enumerate() {
            if i == ci {
                assert_eq!(
                    r.role,
                    RRole::Master,
                    "seed {seed}: committed master {committed} is not a master"
                );
            } else {
                assert_eq!(
                    r.role,
                    RRole::ReplicaOf(ci),
                    "seed {seed}: instance {i} does not follow {committed}"
                );
            }
        }
    }
    // The chaos must actually have exercised failovers.
    assert!(
        total_actions > seeds as usize,
        "only {total_actions} redis actions over {seeds} seeds"
    );
}

#[test]
fn master_killed_with_leader_fails_over_in_simulation() {
    let mut sim = Sim::new(99);
    sim.drop_rate = 0.0;
    sim.run_for(3_000);
    // raft-rs randomises election timeouts with its own RNG: a split vote can
    // delay the first leader, so wait for one (bounded).
    sim.run_until(20_000, |s| {
        s.daemons
            .iter()
            .any(|d| d.node.as_ref().is_some_and(|n| n.can_act()))
            && s.committed_master().is_some()
    });
    let leader = sim
        .daemons
        .iter()
        .position(|d| d.node.as_ref().is_some_and(|n| n.is_leader()))
        .expect("leader") as u64
        + 1;
    sim.redis[0].alive = false;
    sim.crash(leader);
    // Election (raft-rs may need a few rounds after split votes), detection,
    // then the failover: bounded, not timed.
    sim.run_until(30_000, |s| {
        s.committed_master().is_some_and(|m| m != addr(0))
    });
    let m = sim.committed_master().expect("master");
    let diag: Vec<String> = sim
        .daemons
        .iter()
        .map(|d| match (&d.node, &d.core) {
            (Some(n), Some(c)) => format!(
                "term {} leader {:?} can_act {} applied {} group {:?}",
                n.term(),
                n.leader(),
                n.can_act(),
                n.applied(),
                c.topology().group(GROUP)
            ),
            _ => "crashed".into(),
        })
        .collect();
    assert_ne!(
        m,
        addr(0),
        "no failover after master and leader died together: {diag:#?}"
    );
    assert_eq!(sim.redis[(m.port - 6379) as usize].role, RRole::Master);
}
