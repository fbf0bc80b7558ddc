//! The Raft node: owns one `RawNode` and turns its `Ready`s into plain outputs.
//!
//! Synchronous and free of sockets and clocks, so the daemon and the seeded
//! simulation drive the same code. One `ready()` call runs the whole raft-rs
//! `on_ready` sequence: persist snapshot, entries and hard state in one durable
//! write, then hand back every message to send (all of them after the write, so
//! "persisted messages" are never sent early) and every committed entry to
//! apply, in order, including the leader's empty no-op (which is what tells the
//! leader its topology is current: [`Node::can_act`]).
//!
//! Never call `step`/`propose` between `ready()` and `advance()`: `ready()` does
//! both, so callers cannot.

use super::storage::{LogStore, StorageError};
use raft::eraftpb::{EntryType, Message, MessageType, Snapshot};
use raft::{RawNode, StateRole};

/// A committed item for the state machine, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// A normal entry. `replay` is true when it had been committed before this
    /// daemon (re)started: apply it, but do not announce it again.
    Entry {
        index: u64,
        data: Vec<u8>,
        replay: bool,
    },
    /// A snapshot from the leader replaces the state machine.
    Snapshot { index: u64, data: Vec<u8> },
}

/// What the shell must do after one `ready()`.
#[derive(Debug, Default)]
pub struct Output {
    pub messages: Vec<Message>,
    pub committed: Vec<Committed>,
    /// Confirmed read-index requests: (request context, commit index to wait for).
    pub read_states: Vec<(Vec<u8>, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

/// Raft timing in ticks.
#[derive(Clone, Copy, Debug)]
pub struct Ticks {
    pub election: usize,
    pub heartbeat: usize,
}

pub struct Node {
    raw: RawNode<LogStore>,
    store: LogStore,
    /// Commit index found on disk at start: entries up to it are replays.
    boot_commit: u64,
    applied: u64,
    /// The term in which this node, as leader, applied an entry of its own term.
    acted_term: Option<u64>,
    /// Compact the log when this many entries are applied past the snapshot.
    compact_every: u64,
}

impl Node {
    /// Start a node over `store` (fresh or reopened). Returns the node and the
    /// state machine data of the stored snapshot, if any, to restore first.
    pub fn new(
        id: u64,
        store: LogStore,
        ticks: Ticks,
        logger: &slog::Logger,
    ) -> Result<(Node, Option<Vec<u8>>), NodeError> {
        let snap = store.snapshot();
        let snap_index = snap.as_ref().map_or(0, |s| s.get_metadata().index);
        let boot_commit = store.hard_state().commit;
        let cfg = raft::Config {
            id,
            election_tick: ticks.election,
            heartbeat_tick: ticks.heartbeat,
            pre_vote: true,
            check_quorum: true,
            applied: snap_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        cfg.validate()?;
        let raw = RawNode::new(&cfg, store.clone(), logger)?;
        let data = snap
            .map(|s| s.get_data().to_vec())
            .filter(|d| !d.is_empty());
        Ok((
            Node {
                raw,
                store,
                boot_commit,
                applied: snap_index,
                acted_term: None,
                compact_every: 1000,
            },
            data,
        ))
    }

    pub fn set_compact_every(&mut self, n: u64) {
        self.compact_every = n.max(1);
    }

    /// Whether `ready()` has work (messages, entries, state to persist).
    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    pub fn step(&mut self, mut msg: Message) -> Result<(), raft::Error> {
        // raft-rs aborts when a heartbeat carries a commit index beyond this
        // log (a node whose data_dir was wiped or restored from an old backup).
        // The commit index is only an upper bound: clamp it, and let the
        // leader resend the log (see `follower_log_end`).
        if msg.get_msg_type() == MessageType::MsgHeartbeat {
            let last = self.raw.raft.raft_log.last_index();
            if msg.commit > last {
                msg.commit = last;
            }
        }
        self.raw.step(msg)
    }

    /// A follower says its log ends at `last_index`. If this leader believes
    /// it holds more (its log was lost), forget that and probe again, so the
    /// log is resent. Lowering `matched` only makes commits more
    /// conservative, so a stale report is harmless.
    pub fn follower_log_end(&mut self, id: u64, last_index: u64) {
        if !self.is_leader() || id == self.id() {
            return;
        }
        if let Some(pr) = self.raw.raft.mut_prs().get_mut(id) {
            if pr.matched > last_index {
                pr.matched = last_index;
                pr.become_probe();
            }
        }
    }

    /// Index of the last entry in this node's log.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// Propose an entry. Followers forward it to the leader; with no leader it
    /// fails with `ProposalDropped` and the core proposes again later.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), raft::Error> {
        self.raw.propose(vec![], data)
    }

    /// Ask the leader to confirm (with a quorum of heartbeats) the current
    /// commit index. The answer comes back in `Output::read_states` with the
    /// same `ctx`; a daemon whose `applied()` has reached that index holds the
    /// latest committed state as of the request. No answer without a leader
    /// that can reach a quorum.
    pub fn read_index(&mut self, ctx: Vec<u8>) {
        self.raw.read_index(ctx);
    }

    pub fn id(&self) -> u64 {
        self.raw.raft.id
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub fn leader(&self) -> Option<u64> {
        match self.raw.raft.leader_id {
            0 => None,
            id => Some(id),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Leader whose applied state includes an entry of its own term, so its
    /// view of the topology is the latest committed one.
    pub fn can_act(&self) -> bool {
        self.is_leader() && self.acted_term == Some(self.term())
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn store(&self) -> &LogStore {
        &self.store
    }

    /// Run one `on_ready` turn. `snapshot_data` is called only when the log is
    /// compacted and must return the state machine encoded at `applied()`.
    pub fn ready(&mut self) -> Result<Output, NodeError> {
        let mut out = Output::default();
        if !self.raw.has_ready() {
            return Ok(out);
        }
        let mut rd = self.raw.ready();
        out.messages.extend(rd.take_messages());
        for rs in rd.take_read_states() {
            out.read_states.push((rs.request_ctx, rs.index));
        }
        let snapshot: Option<Snapshot> = if rd.snapshot().get_metadata().index > 0 {
            Some(rd.snapshot().clone())
        } else {
            None
        };
        if let Some(s) = &snapshot {
            out.committed.push(Committed::Snapshot {
                index: s.get_metadata().index,
                data: s.get_data().to_vec(),
            });
            self.applied = s.get_metadata().index;
        }
        let committed = rd.take_committed_entries();
        self.collect(committed, &mut out);
        self.store
            .persist(snapshot.as_ref(), rd.entries(), rd.hs())?;
        out.messages.extend(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.store.set_commit(commit)?;
        }
        out.messages.extend(light.take_messages());
        self.collect(light.take_committed_entries(), &mut out);
        self.raw.advance_apply_to(self.applied);
        Ok(out)
    }

    fn collect(&mut self, entries: Vec<raft::eraftpb::Entry>, out: &mut Output) {
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            self.applied = e.index;
            if self.is_leader() && e.term == self.term() {
                self.acted_term = Some(e.term);
            }
            if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                continue; // leader no-op (static membership: no conf changes)
            }
            out.committed.push(Committed::Entry {
                index: e.index,
                data: e.data.to_vec(),
                replay: e.index <= self.boot_commit,
            });
        }
    }

    /// Compact the log when enough entries were applied since the last
    /// snapshot. `data` is the state machine at `applied()`.
    pub fn maybe_compact(&mut self, data: impl FnOnce() -> Vec<u8>) -> Result<bool, NodeError> {
        let first = self.store.first_index();
        if self.applied < first || self.applied - first < self.compact_every {
            return Ok(false);
        }
        self.store.compact(self.applied, data())?;
        Ok(true)
    }
}
