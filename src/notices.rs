//! From the core's [`Notice`]s to [`Notification`]s: picks the constructor,
//! attaches the failover's timeline (the Sentinel events published since it
//! started). Pure: the daemon passes the clock and the recent events.

use crate::core::events::Event;
use crate::core::topology::FailoverKind;
use crate::core::Notice;
use crate::notify::{Notification, TimelineEntry};
use std::collections::VecDeque;

/// How many recent events are kept for timelines.
pub const TIMELINE_LEN: usize = 64;

/// Recent events with their wall time, newest last.
#[derive(Default)]
pub struct Timeline {
    events: VecDeque<(u64, Event)>,
}

impl Timeline {
    pub fn record(&mut self, wall_ms: u64, ev: &Event) {
        if self.events.len() == TIMELINE_LEN {
            self.events.pop_front();
        }
        self.events.push_back((wall_ms, ev.clone()));
    }

    /// Events about `group` at or after `since_ms`.
    pub fn of(&self, group: &str, since_ms: u64) -> Vec<TimelineEntry> {
        let needle = format!(" {group} ");
        self.events
            .iter()
            .filter(|(at, e)| *at >= since_ms && (format!(" {} ", e.payload).contains(&needle)))
            .map(|(at, e)| TimelineEntry::from_event(*at, e))
            .collect()
    }
}

/// The notification for one notice.
pub fn notification(n: &Notice, timeline: &Timeline, node: u64, now_ms: u64) -> Notification {
    // A failover's events start at most its duration (or a minute) ago.
    let window = |ms: u64| now_ms.saturating_sub(ms.max(1) + 1000);
    match n {
        Notice::FailoverStarted {
            group,
            epoch,
            from,
            to,
            ..
        } => Notification::failover_started(
            group,
            *epoch,
            from,
            to,
            timeline.of(group, window(60_000)),
            now_ms,
        ),
        Notice::FailoverCompleted {
            group,
            epoch,
            from,
            to,
            kind,
            duration_ms,
        } => {
            let tl = timeline.of(group, window(*duration_ms));
            match kind {
                FailoverKind::Switchover { .. } => Notification::manual_switchover(
                    group,
                    *epoch,
                    from,
                    to,
                    *duration_ms,
                    tl,
                    now_ms,
                ),
                FailoverKind::Auto | FailoverKind::Forced => Notification::failover_completed(
                    group,
                    *epoch,
                    from,
                    to,
                    *duration_ms,
                    tl,
                    now_ms,
                ),
            }
        }
        Notice::FailoverAborted {
            group,
            epoch,
            from,
            to,
            reason,
        } => Notification::failover_aborted(
            group,
            *epoch,
            from,
            to,
            reason,
            timeline.of(group, window(60_000)),
            now_ms,
        ),
        Notice::OldMasterRejoined {
            group,
            epoch,
            instance,
            master,
        } => Notification::old_master_rejoined(group, *epoch, instance, master, now_ms),
        Notice::SubjectivelyDown {
            group,
            epoch,
            instance,
            is_master,
        } => Notification::subjectively_down(
            group, *epoch, instance, *is_master, node, now_ms, now_ms,
        ),
        Notice::ObjectivelyDown {
            group,
            epoch,
            master,
            quorum,
        } => Notification::objectively_down(group, *epoch, master, *quorum, now_ms, now_ms),
        Notice::NoEligibleReplica {
            group,
            epoch,
            master,
            rejected,
        } => Notification::no_eligible_replica(group, *epoch, master, rejected, now_ms, now_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::Addr;

    #[test]
    fn completed_failover_carries_its_timeline_and_title() {
        let mut t = Timeline::default();
        t.record(
            1_000,
            &Event::new("+sdown", "master other 10.0.0.9 1".into()),
        );
        t.record(
            1_100,
            &Event::new("+odown", "master mymaster 10.0.0.1 6379 #quorum 2".into()),
        );
        t.record(
            1_900,
            &Event::new(
                "+switch-master",
                "mymaster 10.0.0.1 6379 10.0.0.2 6379".into(),
            ),
        );
        let n = notification(
            &Notice::FailoverCompleted {
                group: "mymaster".into(),
                epoch: 7,
                from: Addr::new("10.0.0.1", 6379),
                to: Addr::new("10.0.0.2", 6379),
                kind: FailoverKind::Auto,
                duration_ms: 900,
            },
            &t,
            1,
            2_000,
        );
        assert_eq!(
            n.title,
            "[raftinel] mymaster: 10.0.0.1:6379 → 10.0.0.2:6379 promoted (epoch 7)"
        );
        assert_eq!(n.id, "mymaster/7/failover-completed");
        assert_eq!(
            n.timeline.len(),
            2,
            "only this group's events: {:?}",
            n.timeline
        );
    }

    #[test]
    fn switchovers_are_reported_as_such() {
        let n = notification(
            &Notice::FailoverCompleted {
                group: "g".into(),
                epoch: 2,
                from: Addr::new("a", 1),
                to: Addr::new("b", 2),
                kind: FailoverKind::Switchover { timeout_ms: 5000 },
                duration_ms: 40,
            },
            &Timeline::default(),
            1,
            10,
        );
        assert!(n.id.contains("manual-switchover"), "{}", n.id);
    }
}
