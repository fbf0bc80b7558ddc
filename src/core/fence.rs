//! Fencing (ARCHITECTURE.md, invariant 4): a daemon cut off from the Raft
//! majority stops its local Redis master from acknowledging writes, so a
//! master on the minority side of a partition cannot keep taking writes that
//! the majority side will never see.
//!
//! "Cut off" means no confirmed read-index (a round trip to a leader that
//! reached a quorum) for `fence_after`. The fence is lifted when contact is
//! back and the local instance is the committed master with no failover in
//! progress, or once it reports role replica (then it takes no writes
//! anyway). This is the one Redis change a non-leader makes: it only ever
//! removes write capability from its own host's instance, never grants it to
//! an instance the committed state does not name.

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
        let cut_off = now.mono_ms.saturating_sub(since) >= limit;
        let info = self.health.get(&fc.local).and_then(|h| h.info.as_ref());
        let reports_master = info.is_some_and(|i| i.is_master());
        let reports_replica = matches!(info.map(|i| &i.role), Some(Role::Replica { .. }));
        if !self.fence.on {
            if cut_off && reports_master {
                self.fence.busy = true;
                out.push(Command::Event(super::events::Event::new(
                    "+fence",
                    format!(
                        "{} no quorum contact for {} ms: writes refused",
                        fc.local,
                        now.mono_ms.saturating_sub(since)
                    ),
                )));
                out.push(Command::Fence {
                    target: fc.local.clone(),
                    on: true,
                });
            }
            return;
        }
        // Fenced: lift only when the cluster says this instance may write.
        let committed_master = self
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
