//! The replicated state machine: what a committed Raft log entry means.
//!
//! Every daemon applies the same entries in the same order and so holds the same
//! [`Topology`]. `apply` is deterministic and validates each entry against the
//! current state; an entry that would break an invariant (an epoch that does not
//! grow, a second master for one epoch, a step of a failover that is not in
//! progress) is rejected identically everywhere and changes nothing.
//!
//! Architecture invariant: nothing here reads a clock or does I/O; times are
//! values carried inside the entries.

use super::events::Event;
use super::types::Addr;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a failover was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverKind {
    /// The master was objectively down.
    Auto,
    /// Planned by an operator: pause writes on the master, wait until the
    /// target has every write, promote; abort (and unpause) on any failure.
    Switchover { timeout_ms: u64 },
    /// Ordered by an operator without waiting for catch-up.
    Forced,
}

/// How the last failover of a group ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverOutcome {
    pub epoch: u64,
    pub kind: FailoverKind,
    pub from: Addr,
    pub to: Addr,
    pub completed: bool,
    /// Why it was aborted (empty when completed).
    pub reason: String,
}

/// One committed log entry (JSON in the Raft log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Entry {
    /// Start tracking a group with the master named in the config (epoch 0).
    InitGroup {
        group: String,
        master: Addr,
        replicas: Vec<Addr>,
    },
    /// Remember replicas discovered from the master's INFO.
    SetReplicas {
        group: String,
        epoch: u64,
        replicas: Vec<Addr>,
    },
    /// The leader's intent: failover `from` -> `to` under a new epoch. Committed
    /// before any Redis instance is touched.
    StartFailover {
        group: String,
        epoch: u64,
        from: Addr,
        to: Addr,
        kind: FailoverKind,
        started_wall_ms: u64,
    },
    /// `to` confirmed it is a master: it is now the committed master.
    PromotedMaster {
        group: String,
        epoch: u64,
        master: Addr,
    },
    /// Replicas repointed (or the failover timed out in that phase).
    FinishFailover {
        group: String,
        epoch: u64,
        completed_wall_ms: u64,
    },
    /// The failover of `epoch` ended before a new master was committed; the old
    /// master stays the committed one.
    AbortFailover {
        group: String,
        epoch: u64,
        reason: String,
    },
    /// Maintenance mode: no automatic failover while on.
    SetMaintenance { group: String, on: bool },
    /// A notification was delivered on a channel (so a new leader does not
    /// send it again). Changes no group state.
    Delivered {
        group: String,
        id: String,
        channel: String,
    },
}

impl Entry {
    pub fn group(&self) -> &str {
        match self {
            Entry::InitGroup { group, .. }
            | Entry::SetReplicas { group, .. }
            | Entry::StartFailover { group, .. }
            | Entry::PromotedMaster { group, .. }
            | Entry::FinishFailover { group, .. }
            | Entry::AbortFailover { group, .. }
            | Entry::SetMaintenance { group, .. }
            | Entry::Delivered { group, .. } => group,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Entry, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The phase of a failover in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Intent committed; `to` is being promoted (`REPLICAOF NO ONE`).
    Promoting,
    /// New master committed; the other instances are being repointed.
    Reconfiguring,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failover {
    pub epoch: u64,
    pub from: Addr,
    pub to: Addr,
    pub kind: FailoverKind,
    pub phase: Phase,
    pub started_wall_ms: u64,
}

/// The committed state of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub epoch: u64,
    pub master: Addr,
    /// Every instance known to belong to the group other than the master,
    /// including old masters (so they are demoted when they return).
    pub replicas: BTreeSet<Addr>,
    pub failover: Option<Failover>,
    pub last_failover_completed_wall_ms: Option<u64>,
    /// No automatic failover while on.
    #[serde(default)]
    pub maintenance: bool,
    /// How the last failover ended.
    #[serde(default)]
    pub last_outcome: Option<FailoverOutcome>,
}

/// The whole replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub groups: BTreeMap<String, GroupState>,
}

/// The result of applying one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Ok(Vec<Event>),
    /// Rejected identically on every daemon; the state is unchanged.
    Rejected(String),
}

impl Topology {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Topology, serde_json::Error> {
        if bytes.is_empty() {
            return Ok(Topology::default());
        }
        serde_json::from_slice(bytes)
    }

    pub fn group(&self, name: &str) -> Option<&GroupState> {
        self.groups.get(name)
    }

    /// Apply one committed entry. Deterministic: the same entries in the same
    /// order give the same state on every daemon.
    pub fn apply(&mut self, entry: &Entry) -> Applied {
        match entry {
            Entry::InitGroup {
                group,
                master,
                replicas,
            } => {
                if self.groups.contains_key(group) {
                    return Applied::Rejected(format!("group {group} already initialised"));
                }
                let replicas: BTreeSet<Addr> =
                    replicas.iter().filter(|a| *a != master).cloned().collect();
                self.groups.insert(
                    group.clone(),
                    GroupState {
                        epoch: 0,
                        master: master.clone(),
                        replicas,
                        failover: None,
                        last_failover_completed_wall_ms: None,
                        maintenance: false,
                        last_outcome: None,
                    },
                );
                Applied::Ok(vec![Event::master("+monitor", group, master)])
            }
            Entry::SetReplicas {
                group,
                epoch,
                replicas,
            } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return Applied::Rejected(format!("unknown group {group}"));
                };
                if *epoch != g.epoch {
                    return Applied::Rejected(format!(
                        "stale replica list for epoch {epoch} (group is at {})",
                        g.epoch
                    ));
                }
                let mut events = Vec::new();
                for r in replicas {
                    if *r != g.master && g.replicas.insert(r.clone()) {
                        events.push(Event::replica("+slave", group, r, &g.master));
                    }
                }
                Applied::Ok(events)
            }
            Entry::StartFailover {
                group,
                epoch,
                from,
                to,
                kind,
                started_wall_ms,
            } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return Applied::Rejected(format!("unknown group {group}"));
                };
                if g.failover.is_some() {
                    return Applied::Rejected("a failover is already in progress".into());
                }
                if *epoch != g.epoch + 1 {
                    return Applied::Rejected(format!("epoch {epoch} does not follow {}", g.epoch));
                }
                if *from != g.master {
                    return Applied::Rejected(format!("{from} is not the committed master"));
                }
                if !g.replicas.contains(to) {
                    return Applied::Rejected(format!("{to} is not a known replica"));
                }
                g.epoch = *epoch;
                g.failover = Some(Failover {
                    epoch: *epoch,
                    from: from.clone(),
                    to: to.clone(),
                    kind: *kind,
                    phase: Phase::Promoting,
                    started_wall_ms: *started_wall_ms,
                });
                Applied::Ok(vec![
                    Event::new("+new-epoch", epoch.to_string()),
                    Event::master("+try-failover", group, from),
                    Event::new("+elected-leader", Event::master_payload(group, from)),
                    Event::replica("+selected-slave", group, to, from),
                    Event::master("+failover-state-send-slaveof-noone", group, from),
                ])
            }
            Entry::PromotedMaster {
                group,
                epoch,
                master,
            } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return Applied::Rejected(format!("unknown group {group}"));
                };
                let Some(f) = g.failover.as_mut() else {
                    return Applied::Rejected("no failover in progress".into());
                };
                if f.epoch != *epoch || f.phase != Phase::Promoting || f.to != *master {
                    return Applied::Rejected(format!(
                        "promotion of {master} at epoch {epoch} does not match the failover in progress"
                    ));
                }
                f.phase = Phase::Reconfiguring;
                let old = std::mem::replace(&mut g.master, master.clone());
                g.replicas.remove(master);
                g.replicas.insert(old.clone());
                Applied::Ok(vec![
                    Event::replica("+promoted-slave", group, master, &old),
                    Event::master("+failover-state-reconf-slaves", group, &old),
                    Event::new(
                        "+switch-master",
                        format!(
                            "{group} {} {} {} {}",
                            old.host, old.port, master.host, master.port
                        ),
                    ),
                ])
            }
            Entry::FinishFailover {
                group,
                epoch,
                completed_wall_ms,
            } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return Applied::Rejected(format!("unknown group {group}"));
                };
                match &g.failover {
                    Some(f) if f.epoch == *epoch && f.phase == Phase::Reconfiguring => {}
                    _ => {
                        return Applied::Rejected(format!(
                            "no failover of epoch {epoch} in the reconfiguration phase"
                        ))
                    }
                }
                if let Some(f) = g.failover.take() {
                    g.last_outcome = Some(FailoverOutcome {
                        epoch: f.epoch,
                        kind: f.kind,
                        from: f.from,
                        to: f.to,
                        completed: true,
                        reason: String::new(),
                    });
                }
                g.last_failover_completed_wall_ms = Some(*completed_wall_ms);
                Applied::Ok(vec![Event::master("+failover-end", group, &g.master)])
            }
            Entry::AbortFailover {
                group,
                epoch,
                reason,
            } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return Applied::Rejected(format!("unknown group {group}"));
                };
                match &g.failover {
                    Some(f) if f.epoch == *epoch && f.phase == Phase::Promoting => {}
                    _ => {
                        return Applied::Rejected(format!(
                            "no failover of epoch {epoch} in the promotion phase"
                        ))
                    }
                }
                if let Some(f) = g.failover.take() {
                    g.last_outcome = Some(FailoverOutcome {
                        epoch: f.epoch,
                        kind: f.kind,
                        from: f.from,
                        to: f.to,
                        completed: false,
                        reason: reason.clone(),
                    });
                }
                let mut ev = Event::master("-failover-abort", group, &g.master);
                ev.payload.push_str(&format!(" ({reason})"));
                Applied::Ok(vec![ev])
            }
            Entry::Delivered { .. } => Applied::Ok(Vec::new()),
            Entry::SetMaintenance { group, on } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return Applied::Rejected(format!("unknown group {group}"));
                };
                g.maintenance = *on;
                let name = if *on { "+maintenance" } else { "-maintenance" };
                Applied::Ok(vec![Event::master(name, group, &g.master)])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(p: u16) -> Addr {
        Addr::new("10.0.0.1", p)
    }

    fn init() -> Topology {
        let mut t = Topology::default();
        let r = t.apply(&Entry::InitGroup {
            group: "g".into(),
            master: a(1),
            replicas: vec![a(2), a(3), a(1)],
        });
        assert!(matches!(r, Applied::Ok(_)));
        t
    }

    fn start(epoch: u64, from: u16, to: u16) -> Entry {
        Entry::StartFailover {
            group: "g".into(),
            epoch,
            from: a(from),
            to: a(to),
            kind: FailoverKind::Auto,
            started_wall_ms: 5,
        }
    }

    #[test]
    fn init_excludes_master_from_replicas_and_rejects_twice() {
        let mut t = init();
        let g = t.group("g").unwrap();
        assert_eq!(g.replicas.iter().cloned().collect::<Vec<_>>(), [a(2), a(3)]);
        let again = t.apply(&Entry::InitGroup {
            group: "g".into(),
            master: a(2),
            replicas: vec![],
        });
        assert!(matches!(again, Applied::Rejected(_)));
        assert_eq!(t.group("g").unwrap().master, a(1));
    }

    #[test]
    fn full_failover_moves_master_and_keeps_old_as_replica() {
        let mut t = init();
        assert!(matches!(t.apply(&start(1, 1, 2)), Applied::Ok(_)));
        let Applied::Ok(ev) = t.apply(&Entry::PromotedMaster {
            group: "g".into(),
            epoch: 1,
            master: a(2),
        }) else {
            panic!("rejected")
        };
        assert!(ev
            .iter()
            .any(|e| e.name == "+switch-master" && e.payload == "g 10.0.0.1 1 10.0.0.1 2"));
        let g = t.group("g").unwrap();
        assert_eq!(g.master, a(2));
        assert!(g.replicas.contains(&a(1)) && !g.replicas.contains(&a(2)));
        assert!(matches!(
            t.apply(&Entry::FinishFailover {
                group: "g".into(),
                epoch: 1,
                completed_wall_ms: 99
            }),
            Applied::Ok(_)
        ));
        let g = t.group("g").unwrap();
        assert_eq!((g.epoch, g.failover.is_none()), (1, true));
        assert_eq!(g.last_failover_completed_wall_ms, Some(99));
    }

    #[test]
    fn epochs_must_grow_by_one_and_one_failover_at_a_time() {
        let mut t = init();
        assert!(matches!(t.apply(&start(0, 1, 2)), Applied::Rejected(_)));
        assert!(matches!(t.apply(&start(2, 1, 2)), Applied::Rejected(_)));
        assert!(matches!(t.apply(&start(1, 1, 2)), Applied::Ok(_)));
        // A second intent for the same epoch (another leader) is rejected.
        assert!(matches!(t.apply(&start(1, 1, 3)), Applied::Rejected(_)));
        assert!(matches!(t.apply(&start(2, 1, 3)), Applied::Rejected(_)));
        // Promotion must name the chosen replica.
        let wrong = Entry::PromotedMaster {
            group: "g".into(),
            epoch: 1,
            master: a(3),
        };
        assert!(matches!(t.apply(&wrong), Applied::Rejected(_)));
        assert_eq!(t.group("g").unwrap().master, a(1));
    }

    #[test]
    fn abort_keeps_old_master_and_epoch_and_does_not_count_for_cooldown() {
        let mut t = init();
        t.apply(&start(1, 1, 2));
        let abort = Entry::AbortFailover {
            group: "g".into(),
            epoch: 1,
            reason: "timeout".into(),
        };
        assert!(matches!(t.apply(&abort), Applied::Ok(_)));
        let g = t.group("g").unwrap();
        assert_eq!((g.epoch, &g.master), (1, &a(1)));
        assert_eq!(g.last_failover_completed_wall_ms, None);
        // After an abort the next failover takes the next epoch.
        assert!(matches!(t.apply(&start(2, 1, 3)), Applied::Ok(_)));
        // An abort after promotion is refused: the new master is committed.
        t.apply(&Entry::PromotedMaster {
            group: "g".into(),
            epoch: 2,
            master: a(3),
        });
        let late = Entry::AbortFailover {
            group: "g".into(),
            epoch: 2,
            reason: "x".into(),
        };
        assert!(matches!(t.apply(&late), Applied::Rejected(_)));
    }

    #[test]
    fn stale_replica_lists_are_rejected() {
        let mut t = init();
        t.apply(&start(1, 1, 2));
        let stale = Entry::SetReplicas {
            group: "g".into(),
            epoch: 0,
            replicas: vec![a(9)],
        };
        assert!(matches!(t.apply(&stale), Applied::Rejected(_)));
        let ok = Entry::SetReplicas {
            group: "g".into(),
            epoch: 1,
            replicas: vec![a(9)],
        };
        assert!(matches!(t.apply(&ok), Applied::Ok(ev) if ev.len() == 1));
    }

    #[test]
    fn entries_and_topology_round_trip_as_json() {
        let e = start(3, 1, 2);
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        let t = init();
        assert_eq!(Topology::decode(&t.encode()).unwrap(), t);
        assert_eq!(Topology::decode(b"").unwrap(), Topology::default());
        assert!(Entry::decode(b"{\"op\":\"nope\"}").is_err());
    }
}
