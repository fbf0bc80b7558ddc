//! The leader's reconciler: drives each group from its committed state towards
//! "one master, every other instance replicating from it".
//!
//! Runs only on the leader that may act (`RaftState::can_act`). It is written as
//! a function of the committed topology and the current observations, not of
//! remembered steps, so a new leader picks up a failover its predecessor started:
//! it either finishes it or aborts it cleanly.
//!
//! Steps of an automatic failover (each a committed entry or a Redis action):
//! 1. master objectively down, cool-down passed, best replica chosen
//!    -> propose `StartFailover` (new epoch) and wait for it to be applied;
//! 2. `Promoting`: `REPLICAOF NO ONE` on the chosen replica; once it confirms
//!    it is master -> propose `PromotedMaster`; chosen replica down or
//!    `failover_timeout` passed -> propose `AbortFailover`;
//! 3. `Reconfiguring`: `REPLICAOF new-master` on the other answering instances,
//!    at most `parallel_syncs` at a time; all done (or timeout) ->
//!    propose `FinishFailover`.
//!
//! Outside a failover it demotes any known instance that claims to be a master
//! (a returning old master), repoints replicas that follow the wrong master, and
//! records replicas discovered from the master's INFO.

use super::events::Event;
use super::select::{select, Candidate};
use super::topology::{Entry, Failover, FailoverKind, GroupState, Phase};

/// Extra time a switchover step may take beyond its own timeout (connecting,
/// promoting) before the leader gives up on hearing from it.
const SWITCHOVER_GRACE_MS: u64 = 5_000;
use super::types::{Addr, Now, Role};
use super::{ActionKind, Command, Core, GroupSpec, Notice, Op};
use std::collections::BTreeSet;

impl Core {
    pub(super) fn reconcile(&mut self, now: Now, spec: &GroupSpec, out: &mut Vec<Command>) {
        if self.has_pending(now, &spec.name) {
            return;
        }
        let Some(state) = self.topo.group(&spec.name).cloned() else {
            self.init_group(now, spec, out);
            return;
        };
        if state.failover.is_some() {
            self.drive_failover(now, spec, &state, out);
        } else {
            self.housekeeping(now, spec, &state, out);
            if self.is_odown(now, spec) {
                if state.maintenance {
                    let flags = self.flags.entry(spec.name.clone()).or_default();
                    if !flags.maintenance_noted {
                        flags.maintenance_noted = true;
                        out.push(Command::Event(Event::master(
                            "-failover-maintenance",
                            &spec.name,
                            &state.master,
                        )));
                    }
                } else {
                    self.maybe_start_failover(now, spec, &state, out);
                }
            }
        }
    }

    /// Initialise a group from the config once its master answers as a master.
    fn init_group(&mut self, now: Now, spec: &GroupSpec, out: &mut Vec<Command>) {
        let Some(info) = self.health.get(&spec.master).and_then(|h| h.info.clone()) else {
            return;
        };
        let flags = self.flags.entry(spec.name.clone()).or_default();
        match &info.role {
            Role::Master { replicas } => {
                let mut all: BTreeSet<Addr> = spec.replicas.iter().cloned().collect();
                all.extend(replicas.iter().map(|r| r.addr.clone()));
                let entry = Entry::InitGroup {
                    group: spec.name.clone(),
                    master: spec.master.clone(),
                    replicas: all.into_iter().collect(),
                };
                self.propose(now, entry, out);
            }
            Role::Replica { master, .. } => {
                if !flags.init_blocked {
                    flags.init_blocked = true;
                    out.push(Command::Event(Event::new(
                        "-monitor-refused",
                        format!(
                            "{} configured master {} reports role slave of {master}; \
                             fix `master` in the config",
                            spec.name, spec.master
                        ),
                    )));
                }
            }
        }
    }

    fn drive_failover(
        &mut self,
        now: Now,
        spec: &GroupSpec,
        g: &GroupState,
        out: &mut Vec<Command>,
    ) {
        let Some(f) = g.failover.clone() else {
            return;
        };
        let timed_out = now.wall_ms.saturating_sub(f.started_wall_ms) > spec.failover_timeout_ms;
        match f.phase {
            Phase::Promoting => {
                let confirmed = self
                    .promoted_confirmed
                    .contains(&(spec.name.clone(), f.epoch))
                    || self
                        .health
                        .get(&f.to)
                        .and_then(|h| h.info_since(self.changed_at(&spec.name)))
                        .is_some_and(|i| i.is_master());
                if confirmed {
                    let e = Entry::PromotedMaster {
                        group: spec.name.clone(),
                        epoch: f.epoch,
                        master: f.to.clone(),
                    };
                    self.propose(now, e, out);
                } else if let FailoverKind::Switchover { timeout_ms } = f.kind {
                    self.drive_switchover(now, spec, &f, timeout_ms, out);
                } else if !(timed_out || self.is_sdown(now, &f.to))
                    && self.old_master_back(now, spec, &f, out)
                {
                    // Handled: aborted, or the old master is being demoted.
                } else if timed_out || self.is_sdown(now, &f.to) {
                    let reason = if timed_out {
                        format!("failover-timeout {} ms passed", spec.failover_timeout_ms)
                    } else {
                        format!("selected replica {} is down", f.to)
                    };
                    let e = Entry::AbortFailover {
                        group: spec.name.clone(),
                        epoch: f.epoch,
                        reason,
                    };
                    self.propose(now, e, out);
                } else if !self.busy(now, &f.to) {
                    self.promote_sent.insert((spec.name.clone(), f.epoch));
                    self.act(
                        now,
                        (&spec.name, f.epoch),
                        &f.to,
                        Op::Promote,
                        ActionKind::Promote,
                        out,
                    );
                }
            }
            Phase::Reconfiguring => {
                let mut todo = Vec::new();
                let mut waiting = false;
                for r in &g.replicas {
                    if self.is_sdown(now, r) || !self.health.contains_key(r) {
                        continue; // fixed by housekeeping when it returns
                    }
                    match self.fresh_info(&spec.name, r) {
                        None => waiting = true, // wait for a fresh INFO
                        Some(i) if i.master_addr() == Some(&g.master) => {
                            if self.acted_at.contains_key(r)
                                && self
                                    .reconf_done
                                    .insert((spec.name.clone(), f.epoch, r.clone()))
                            {
                                out.push(Command::Event(Event::replica(
                                    "+slave-reconf-done",
                                    &spec.name,
                                    r,
                                    &g.master,
                                )));
                            }
                        }
                        Some(_) => todo.push(r.clone()),
                    }
                }
                let inflight = self
                    .inflight
                    .values()
                    .filter(|a| a.action.group == spec.name)
                    .count();
                if (todo.is_empty() && !waiting && inflight == 0) || timed_out {
                    let e = Entry::FinishFailover {
                        group: spec.name.clone(),
                        epoch: f.epoch,
                        completed_wall_ms: now.wall_ms,
                    };
                    self.propose(now, e, out);
                    return;
                }
                // The old master first: after a switchover it is alive and
                // paused, and its blocked writers wait for this step. Hold the
                // slots until its fresh INFO says whether it needs it.
                let old_alive = self.health.contains_key(&f.from) && !self.is_sdown(now, &f.from);
                if old_alive && self.fresh_info(&spec.name, &f.from).is_none() {
                    return;
                }
                todo.sort_by_key(|r| *r != f.from);
                let mut slots = spec.parallel_syncs.saturating_sub(inflight);
                for r in todo {
                    if slots == 0 {
                        break;
                    }
                    if self.busy(now, &r) {
                        continue;
                    }
                    slots -= 1;
                    let op = Op::ReplicaOf(g.master.clone());
                    self.act(
                        now,
                        (&spec.name, f.epoch),
                        &r,
                        op,
                        ActionKind::ReconfDuringFailover,
                        out,
                    );
                }
            }
        }
    }

    fn housekeeping(&mut self, now: Now, spec: &GroupSpec, g: &GroupState, out: &mut Vec<Command>) {
        // Replicas the master lists that the topology does not know yet.
        if let Some(Role::Master { replicas }) = self
            .health
            .get(&g.master)
            .and_then(|h| h.info_since(self.changed_at(&spec.name)))
            .map(|i| &i.role)
        {
            let new: Vec<Addr> = replicas
                .iter()
                .map(|r| r.addr.clone())
                .filter(|a| !g.replicas.contains(a) && *a != g.master)
                .collect();
            if !new.is_empty() {
                let e = Entry::SetReplicas {
                    group: spec.name.clone(),
                    epoch: g.epoch,
                    replicas: new,
                };
                self.propose(now, e, out);
                return;
            }
        }
        // The committed master reports role replica (an operator's REPLICAOF,
        // or a reconfiguration from an earlier epoch that landed late): the
        // committed topology is the truth, so it is made a master again.
        if !self.busy(now, &g.master) && !self.is_sdown(now, &g.master) {
            if let Some(Role::Replica { master, .. }) =
                self.fresh_info(&spec.name, &g.master).map(|i| &i.role)
            {
                let ev = Event::new(
                    "+fix-master-config",
                    format!(
                        "{} reports role slave of {master}",
                        Event::master_payload(&spec.name, &g.master)
                    ),
                );
                out.push(Command::Event(ev));
                self.act(
                    now,
                    (&spec.name, g.epoch),
                    &g.master,
                    Op::Promote,
                    ActionKind::Repoint,
                    out,
                );
                return;
            }
        }
        for r in &g.replicas {
            if self.busy(now, r) || self.is_sdown(now, r) {
                continue;
            }
            let Some(info) = self.fresh_info(&spec.name, r).cloned() else {
                continue;
            };
            match &info.role {
                // A second master (typically the old master back from the dead)
                // is demoted as soon as it answers.
                Role::Master { .. } => {
                    let op = Op::ReplicaOf(g.master.clone());
                    self.act(now, (&spec.name, g.epoch), r, op, ActionKind::Demote, out);
                }
                Role::Replica { master, .. } if *master != g.master => {
                    let op = Op::ReplicaOf(g.master.clone());
                    self.act(now, (&spec.name, g.epoch), r, op, ActionKind::Repoint, out);
                }
                Role::Replica { .. } => {}
            }
        }
    }

    fn maybe_start_failover(
        &mut self,
        now: Now,
        spec: &GroupSpec,
        g: &GroupState,
        out: &mut Vec<Command>,
    ) {
        let flags = self.flags.entry(spec.name.clone()).or_default();
        if let Some(done) = g.last_failover_completed_wall_ms {
            let until = done.saturating_add(spec.failover_timeout_ms);
            if now.wall_ms < until {
                if !flags.cooldown {
                    flags.cooldown = true;
                    out.push(Command::Event(Event::new(
                        "-failover-cooldown",
                        format!(
                            "{} last failover completed {} ms ago; next allowed in {} ms",
                            Event::master_payload(&spec.name, &g.master),
                            now.wall_ms.saturating_sub(done),
                            until - now.wall_ms
                        ),
                    )));
                }
                return;
            }
        }
        let master_down_ms = self
            .health
            .get(&g.master)
            .and_then(|h| h.sdown_since_ms)
            .map_or(0, |t| now.mono_ms.saturating_sub(t));
        let candidates: Vec<Candidate> = g
            .replicas
            .iter()
            .map(|r| {
                let h = self.health.get(r);
                Candidate {
                    addr: r,
                    sdown: self.is_sdown(now, r),
                    info: h.and_then(|h| h.info.as_ref()),
                    info_age_ms: h.map_or(u64::MAX, |h| h.info_age(now.mono_ms)),
                }
            })
            .collect();
        match select(&candidates, spec.down_after_ms, master_down_ms) {
            Ok(to) => {
                self.started_here.insert((spec.name.clone(), g.epoch + 1));
                let e = Entry::StartFailover {
                    group: spec.name.clone(),
                    epoch: g.epoch + 1,
                    from: g.master.clone(),
                    to,
                    kind: FailoverKind::Auto,
                    started_wall_ms: now.wall_ms,
                };
                self.propose(now, e, out);
            }
            Err(rejections) => {
                let flags = self.flags.entry(spec.name.clone()).or_default();
                if !flags.no_good_replica {
                    flags.no_good_replica = true;
                    let why: Vec<String> = rejections
                        .iter()
                        .map(|r| format!("{}: {}", r.addr, r.reason))
                        .collect();
                    let mut ev =
                        Event::master("-failover-abort-no-good-slave", &spec.name, &g.master);
                    if !why.is_empty() {
                        ev.payload.push_str(&format!(" ({})", why.join("; ")));
                    }
                    out.push(Command::Event(ev));
                    out.push(Command::Notify(Notice::NoEligibleReplica {
                        group: spec.name.clone(),
                        epoch: g.epoch,
                        master: g.master.clone(),
                        rejected: rejections
                            .iter()
                            .map(|r| (r.addr.clone(), r.reason.clone()))
                            .collect(),
                    }));
                }
            }
        }
    }

    /// The old master of an automatic or forced failover answers again as a
    /// master while its replica is being promoted (it restarted, or it had
    /// stalled). Two masters must never take writes, so:
    /// - automatic failover this leader started, promotion not sent yet:
    ///   abort. The old master is healthy and holds every write it
    ///   acknowledged; the replica may not. (A new leader cannot know whether
    ///   its predecessor sent the promotion, so it demotes instead.)
    /// - otherwise (forced, or the promotion may already have run): demote the
    ///   old master to the new one first; a forced failover promotes only once
    ///   the old master is a replica or down.
    ///
    /// Returns true when it took over this round of the `Promoting` phase.
    fn old_master_back(
        &mut self,
        now: Now,
        spec: &GroupSpec,
        f: &Failover,
        out: &mut Vec<Command>,
    ) -> bool {
        if f.from == f.to || self.is_sdown(now, &f.from) {
            return false;
        }
        let Some(info) = self.fresh_info(&spec.name, &f.from) else {
            return false;
        };
        if !info.is_master() {
            return false;
        }
        let key = (spec.name.clone(), f.epoch);
        let to_is_master = self
            .health
            .get(&f.to)
            .and_then(|h| h.info_since(self.changed_at(&spec.name)))
            .is_some_and(|i| i.is_master());
        if f.kind == FailoverKind::Auto
            && self.started_here.contains(&key)
            && !self.promote_sent.contains(&key)
            && !to_is_master
        {
            let e = Entry::AbortFailover {
                group: spec.name.clone(),
                epoch: f.epoch,
                reason: format!(
                    "old master {} answers again as a master before {} was promoted",
                    f.from, f.to
                ),
            };
            self.propose(now, e, out);
            return true;
        }
        if !self.busy(now, &f.from) {
            self.act(
                now,
                (&spec.name, f.epoch),
                &f.from,
                Op::ReplicaOf(f.to.clone()),
                ActionKind::Demote,
                out,
            );
        }
        // A forced failover waits for the demotion; a promotion already sent
        // is not held back.
        f.kind == FailoverKind::Forced && !self.promote_sent.contains(&key)
    }

    /// The `Promoting` phase of a planned switchover.
    fn drive_switchover(
        &mut self,
        now: Now,
        spec: &GroupSpec,
        f: &Failover,
        timeout_ms: u64,
        out: &mut Vec<Command>,
    ) {
        let key = (spec.name.clone(), f.epoch);
        let abort = |reason: String| Entry::AbortFailover {
            group: spec.name.clone(),
            epoch: f.epoch,
            reason,
        };
        if let Some(reason) = self.switch_failed.get(&key).cloned() {
            self.propose(now, abort(reason), out);
        } else if !self.own_switchovers.contains(&key) {
            // Started under another leadership: its progress is unknown here.
            // Lift the pause and leave the old master in place.
            if !self.busy(now, &f.from) {
                self.act(
                    now,
                    (&spec.name, f.epoch),
                    &f.from,
                    Op::Unpause,
                    ActionKind::Unpause,
                    out,
                );
            }
            let reason = format!(
                "the Raft leader changed during the switchover; writes on {} unpaused",
                f.from
            );
            self.propose(now, abort(reason), out);
        } else if now.wall_ms.saturating_sub(f.started_wall_ms)
            > timeout_ms.saturating_add(SWITCHOVER_GRACE_MS)
        {
            let reason = format!("no answer from the switchover step within {timeout_ms} ms");
            self.propose(now, abort(reason), out);
        } else if !self.busy(now, &f.to) {
            let op = Op::Switchover {
                old_master: f.from.clone(),
                timeout_ms,
            };
            self.act(
                now,
                (&spec.name, f.epoch),
                &f.to,
                op,
                ActionKind::Switchover,
                out,
            );
        }
    }

    pub(super) fn changed_at(&self, group: &str) -> u64 {
        self.changed_at.get(group).copied().unwrap_or(0)
    }
}
