//! Operator requests: planned switchover, forced failover, maintenance mode.
//!
//! A request is validated against the committed state and this daemon's
//! observations, then turned into a proposal; the failover itself is driven by
//! the same reconciler as automatic failovers (`failover.rs`). Only the leader
//! that may act accepts requests; the shell forwards them there.

use super::select::{select, Candidate};
use super::topology::{Entry, FailoverKind};
use super::types::{Addr, Now, Role};
use super::{Command, Core};
use serde::{Deserialize, Serialize};

/// Options of `raftinel failover`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverOptions {
    /// Promote this replica; `None`: the best one by the usual rules.
    pub to: Option<Addr>,
    /// Planned switchover: give up (and unpause) after this long.
    pub timeout_ms: u64,
    /// Promote without pausing writes or waiting for catch-up.
    pub force: bool,
}

/// Why a request was refused. The first word is a Sentinel-style error code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("NOTLEADER this daemon is not the Raft leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("ERR No such master with that name")]
    UnknownGroup,
    #[error("INPROG Failover already in progress")]
    InProgress,
    #[error("NOGOODSLAVE No suitable replica to promote ({0})")]
    NoGoodReplica(String),
    #[error("ERR {0}")]
    Invalid(String),
}

impl Core {
    /// Start a planned switchover (or, with `force`, a forced failover).
    /// Returns the epoch the failover will have once its intent is committed.
    pub fn request_failover(
        &mut self,
        now: Now,
        group: &str,
        opts: &FailoverOptions,
    ) -> (Result<u64, Refusal>, Vec<Command>) {
        let mut out = Vec::new();
        let r = self.validate_failover(now, group, opts);
        if let Ok((epoch, from, to)) = &r {
            let kind = if opts.force {
                FailoverKind::Forced
            } else {
                FailoverKind::Switchover {
                    timeout_ms: opts.timeout_ms,
                }
            };
            let e = Entry::StartFailover {
                group: group.to_string(),
                epoch: *epoch,
                from: from.clone(),
                to: to.clone(),
                kind,
                started_wall_ms: now.wall_ms,
            };
            self.propose(now, e, &mut out);
            self.own_switchovers.insert((group.to_string(), *epoch));
        }
        (r.map(|(e, _, _)| e), out)
    }

    fn validate_failover(
        &self,
        now: Now,
        group: &str,
        opts: &FailoverOptions,
    ) -> Result<(u64, Addr, Addr), Refusal> {
        if !self.raft.can_act {
            return Err(Refusal::NotLeader {
                leader: self.raft.leader,
            });
        }
        let spec = self
            .cfg
            .groups
            .iter()
            .find(|s| s.name == group)
            .ok_or(Refusal::UnknownGroup)?;
        let g = self.topo.group(group).ok_or(Refusal::UnknownGroup)?;
        if g.failover.is_some() || self.has_pending(now, group) {
            return Err(Refusal::InProgress);
        }
        if !opts.force && self.is_sdown(now, &g.master) {
            return Err(Refusal::Invalid(format!(
                "master {} is down: a planned switchover needs it to pause writes; \
                 use --force, or let the automatic failover act",
                g.master
            )));
        }
        if opts.timeout_ms == 0 {
            return Err(Refusal::Invalid("timeout must be above 0 ms".into()));
        }
        let candidates: Vec<Candidate> = g
            .replicas
            .iter()
            .filter(|r| opts.to.as_ref().is_none_or(|t| t == *r))
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
        if let Some(t) = &opts.to {
            if !g.replicas.contains(t) {
                let known: Vec<String> = g.replicas.iter().map(|r| r.to_string()).collect();
                return Err(Refusal::Invalid(format!(
                    "{t} is not a replica of {group} (known replicas: {})",
                    known.join(", ")
                )));
            }
            if let Some(Role::Replica { master, .. }) = self
                .health
                .get(t)
                .and_then(|h| h.info.as_ref())
                .map(|i| &i.role)
            {
                if *master != g.master && !opts.force {
                    return Err(Refusal::Invalid(format!(
                        "{t} replicates from {master}, not from the master {}",
                        g.master
                    )));
                }
            }
        }
        // The master is alive: its down time does not extend the link rule.
        match select(&candidates, spec.down_after_ms, 0) {
            Ok(to) => Ok((g.epoch + 1, g.master.clone(), to)),
            Err(rej) => {
                let why: Vec<String> = rej
                    .iter()
                    .map(|r| format!("{}: {}", r.addr, r.reason))
                    .collect();
                let why = if why.is_empty() {
                    "the group has no replica".to_string()
                } else {
                    why.join("; ")
                };
                Err(Refusal::NoGoodReplica(why))
            }
        }
    }

    /// Turn maintenance mode on or off (no automatic failover while on).
    pub fn request_maintenance(
        &mut self,
        now: Now,
        group: &str,
        on: bool,
    ) -> (Result<(), Refusal>, Vec<Command>) {
        let mut out = Vec::new();
        if !self.raft.can_act {
            return (
                Err(Refusal::NotLeader {
                    leader: self.raft.leader,
                }),
                out,
            );
        }
        if self.topo.group(group).is_none() {
            return (Err(Refusal::UnknownGroup), out);
        }
        let e = Entry::SetMaintenance {
            group: group.to_string(),
            on,
        };
        self.pending.remove(group);
        self.propose(now, e, &mut out);
        (Ok(()), out)
    }
}
