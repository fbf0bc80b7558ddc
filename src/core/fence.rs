//! Fencing (ARCHITECTURE.md, invariant 4): a daemon cut off from the Raft
//! majority stops its local Redis master from acknowledging writes, so a
//! master on the minority side of a partition cannot keep taking writes that
//! the majority side will never see.
//!
//! "Cut off" means neither of these for `fence_after`:
//! - a confirmed read-index (a round trip to a leader that reached a quorum);
//! - direct two-way contact with a majority: fresh reports, each echoing one
//!   of this daemon's own reports, sent at `at`, with the sender's last reply
//!   from the local instance `reply_age` old, such that
//!   `now - at + reply_age <= fence_after` (so the sender cannot see the
//!   instance down, and vote for a failover, before the fence would land
//!   after a cut), from enough peers
//!   that, with this daemon, they are a majority of the voters, none of them sees
//!   the local instance down, none has applied a newer epoch of its group, and
//!   the group's `quorum` is larger than the number of the other daemons, so
//!   no objective-down (and so no automatic failover) can be reached without
//!   one of them. This keeps a healthy master writable while the Raft leader
//!   of another host is cut off and a new one is being elected.
//!
//! Besides, the local instance is fenced at once, whatever the contact, when
//! it reports role master but the committed state says it must not write: a
//! failover away from it is in progress (automatic or forced; a planned
//! switchover pauses and demotes it itself), another instance is the
//! committed master, or a peer has applied a newer epoch of its group.
//!
//! The fence is lifted when nothing of the above holds and the local instance
//! is the committed master with no failover in progress, or once it reports
//! role replica (then it takes no writes anyway). This is the one Redis change
//! a non-leader makes: it only ever removes write capability from its own
//! host's instance, never grants it to an instance the committed state does
//! not name.

use super::topology::FailoverKind;
use super::types::{Addr, Now, Role};
use super::{Command, Core};

/// Fencing settings of this daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceConfig {
    /// The Redis instance on this daemon's host.
    pub local: Addr,
    /// Fence after this long without a confirmed read-index.
    pub fence_after_ms: u64,
    /// Before the first contact after start, wait this long (elections take
    /// time after a restart of the whole cluster).
    pub boot_grace_ms: u64,
    /// Raft voters in the cluster, this daemon included.
    pub voters: usize,
}

/// Fence state as this daemon knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FenceState {
    /// Mono time of the last confirmed read-index (None: not since start).
    pub confirmed_at_ms: Option<u64>,
    /// The fence is applied on the local instance.
    pub on: bool,
    /// A fence change is being applied.
    pub busy: bool,
}

impl Core {
    /// Why the committed state forbids the local instance to take writes, if
    /// it does.
    fn must_not_write(&self, now: Now, local: &Addr) -> Option<String> {
        for (name, g) in &self.topo.groups {
            if g.master != *local && !g.replicas.contains(local) {
                continue;
            }
            let target = g.failover.as_ref().is_some_and(|f| f.to == *local);
            if let Some(f) = &g.failover {
                if f.from == *local && !matches!(f.kind, FailoverKind::Switchover { .. }) {
                    return Some(format!(
                        "a failover from it to {} is in progress (epoch {})",
                        f.to, f.epoch
                    ));
                }
            }
            if g.master != *local && !target {
                return Some(format!(
                    "the committed master of {name} is {} (epoch {})",
                    g.master, g.epoch
                ));
            }
            if let Some((peer, epoch)) = self.newer_epoch_seen(now, name, g.epoch) {
                return Some(format!(
                    "daemon {peer} has applied epoch {epoch} of {name} (this daemon: {})",
                    g.epoch
                ));
            }
        }
        None
    }

    /// A peer whose fresh report shows a newer epoch of `group` than `epoch`.
    fn newer_epoch_seen(&self, now: Now, group: &str, epoch: u64) -> Option<(u64, u64)> {
        self.peers
            .all(now.mono_ms)
            .filter(|(_, age, _)| *age <= self.cfg.report_ttl_ms)
            .find_map(|(id, _, r)| {
                r.epochs
                    .get(group)
                    .filter(|e| **e > epoch)
                    .map(|e| (id, *e))
            })
    }

    /// Direct contact with a majority that cannot fail the local instance
    /// over without this daemon (see the module documentation).
    fn majority_contact(&self, now: Now, fc: &FenceConfig) -> bool {
        let Some((name, g)) = self
            .topo
            .groups
            .iter()
            .find(|(_, g)| g.master == fc.local || g.replicas.contains(&fc.local))
        else {
            return false;
        };
        let Some(spec) = self.cfg.groups.iter().find(|s| &s.name == name) else {
            return false;
        };
        if self.sdown_announced.contains(&fc.local) {
            return false;
        }
        let peers = self
            .peers
            .all(now.mono_ms)
            .filter(|(id, age, r)| {
                // Two-way: the peer echoes one of our reports, sent at `at`,
                // so its report left after `at`, and its last reply from the
                // local instance came at the earliest `at - reply_age`. It
                // cannot see the instance down before that plus `down_after`;
                // the fence must land earlier, as after a cut: so the contact
                // counts while `now - at + reply_age <= fence_after`.
                let echoed = r
                    .heard
                    .get(&self.cfg.me)
                    .and_then(|seq| self.report_sent_at(*seq))
                    .zip(r.reply_age_ms.get(&fc.local))
                    .is_some_and(|(at, age)| {
                        now.mono_ms.saturating_sub(at).saturating_add(*age) <= fc.fence_after_ms
                    });
                *id != self.cfg.me
                    && *age <= fc.fence_after_ms
                    && echoed
                    && !r.sdown.contains(&fc.local)
                    && r.epochs.get(name).is_some_and(|e| *e <= g.epoch)
            })
            .count();
        let with_me = peers + 1;
        with_me > fc.voters / 2 && spec.quorum > fc.voters.saturating_sub(with_me)
    }

    /// Decide whether the local instance must be fenced or unfenced now.
    pub(super) fn evaluate_fence(&mut self, now: Now, out: &mut Vec<Command>) {
        let Some(fc) = self.cfg.fence.clone() else {
            return;
        };
        if self.fence.busy {
            return;
        }
        let since = self.fence.confirmed_at_ms.unwrap_or(0);
        let limit = if self.fence.confirmed_at_ms.is_some() {
            fc.fence_after_ms
        } else {
            fc.boot_grace_ms.max(fc.fence_after_ms)
        };
        let cut_off =
            now.mono_ms.saturating_sub(since) >= limit && !self.majority_contact(now, &fc);
        let info = self.health.get(&fc.local).and_then(|h| h.info.as_ref());
        let reports_master = info.is_some_and(|i| i.is_master());
        let reports_replica = matches!(info.map(|i| &i.role), Some(Role::Replica { .. }));
        let forbidden = self.must_not_write(now, &fc.local);
        if !self.fence.on {
            if reports_master && (cut_off || forbidden.is_some()) {
                let why = forbidden.unwrap_or_else(|| {
                    format!(
                        "no quorum contact for {} ms",
                        now.mono_ms.saturating_sub(since)
                    )
                });
                self.fence.busy = true;
                out.push(Command::Event(super::events::Event::new(
                    "+fence",
                    format!("{} {why}: writes refused", fc.local),
                )));
                out.push(Command::Fence {
                    target: fc.local.clone(),
                    on: true,
                });
            }
            return;
        }
        // Fenced: lift only when the cluster says this instance may write.
        // Not while any daemon sees it down: a failover may be imminent (a
        // restarted master the guard started fenced must stay fenced until
        // the peers see it up again).
        let committed_master = forbidden.is_none()
            && self.down_votes(now, &fc.local).is_empty()
            && self
                .topo
                .groups
                .values()
                .any(|g| g.master == fc.local && g.failover.is_none());
        if !cut_off && (committed_master || reports_replica) {
            self.fence.busy = true;
            out.push(Command::Event(super::events::Event::new(
                "-fence",
                format!(
                    "{} {}",
                    fc.local,
                    if committed_master {
                        "is the committed master and the quorum is back"
                    } else {
                        "is a replica"
                    }
                ),
            )));
            out.push(Command::Fence {
                target: fc.local.clone(),
                on: false,
            });
        }
    }
}
