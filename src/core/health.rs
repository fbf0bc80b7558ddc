//! Local failure detection: one daemon's view of each Redis instance.
//!
//! An instance is subjectively down (`sdown`) on this daemon when it has not
//! given a valid reply for `down_after`. Peers' views arrive as [`Report`]s and
//! count towards the objective-down quorum only while fresh.

use super::types::{Addr, InstanceInfo, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What one daemon tells the others: the instances it sees subjectively down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub sdown: BTreeSet<Addr>,
    /// Last index of the sender's Raft log (set by the shell; lets the leader
    /// resend a log that a follower lost).
    #[serde(default)]
    pub log_last_index: u64,
    /// Epoch of each group in the sender's applied topology. A newer epoch
    /// than the local one means a failover this daemon has not applied yet
    /// (fencing, `fence.rs`). Absent in reports of older versions.
    #[serde(default)]
    pub epochs: BTreeMap<String, u64>,
    /// Sender's report number: grows with every report, and across restarts
    /// (it starts from the wall clock).
    #[serde(default)]
    pub seq: u64,
    /// The latest `seq` the sender received from each peer. Echoed back, it
    /// proves two-way contact (fencing, `fence.rs`).
    #[serde(default)]
    pub heard: BTreeMap<NodeId, u64>,
    /// Per instance, ms since the sender's last valid reply from it. Bounds
    /// how soon the sender could see it down (fencing, `fence.rs`).
    #[serde(default)]
    pub reply_age_ms: BTreeMap<Addr, u64>,
}

/// This daemon's view of one instance.
#[derive(Clone, Debug)]
pub struct InstanceHealth {
    /// When this daemon started watching the instance.
    pub watched_since_ms: u64,
    /// Last valid reply (PING or INFO).
    pub last_ok_ms: Option<u64>,
    pub last_error: Option<String>,
    pub info: Option<InstanceInfo>,
    pub info_at_ms: Option<u64>,
    /// Since when it has been subjectively down (as last evaluated).
    pub sdown_since_ms: Option<u64>,
}

impl InstanceHealth {
    pub fn new(now_ms: u64) -> Self {
        InstanceHealth {
            watched_since_ms: now_ms,
            last_ok_ms: None,
            last_error: None,
            info: None,
            info_at_ms: None,
            sdown_since_ms: None,
        }
    }

    /// Whether the instance is subjectively down at `now_ms`.
    pub fn is_sdown(&self, now_ms: u64, down_after_ms: u64) -> bool {
        let since = self.last_ok_ms.unwrap_or(self.watched_since_ms);
        now_ms.saturating_sub(since) > down_after_ms
    }

    /// INFO received at or after `since_ms`, if any.
    pub fn info_since(&self, since_ms: u64) -> Option<&InstanceInfo> {
        match self.info_at_ms {
            Some(at) if at >= since_ms => self.info.as_ref(),
            _ => None,
        }
    }

    pub fn info_age(&self, now_ms: u64) -> u64 {
        self.info_at_ms
            .map_or(u64::MAX, |at| now_ms.saturating_sub(at))
    }
}

/// Peers' latest reports with the (local, monotonic) time they arrived.
#[derive(Clone, Debug, Default)]
pub struct PeerViews {
    views: BTreeMap<NodeId, (u64, Report)>,
}

impl PeerViews {
    pub fn record(&mut self, from: NodeId, now_ms: u64, report: Report) {
        self.views.insert(from, (now_ms, report));
    }

    /// Peers whose report younger than `ttl_ms` lists `addr` as down.
    pub fn voters_for(&self, addr: &Addr, now_ms: u64, ttl_ms: u64) -> Vec<NodeId> {
        self.views
            .iter()
            .filter(|(_, (at, r))| now_ms.saturating_sub(*at) <= ttl_ms && r.sdown.contains(addr))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every peer's report with its age, for `status`.
    pub fn all(&self, now_ms: u64) -> impl Iterator<Item = (NodeId, u64, &Report)> {
        self.views
            .iter()
            .map(move |(id, (at, r))| (*id, now_ms.saturating_sub(*at), r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdown_after_down_after_without_valid_reply() {
        let mut h = InstanceHealth::new(0);
        assert!(!h.is_sdown(1000, 1000));
        assert!(
            h.is_sdown(1001, 1000),
            "never answered counts from watch start"
        );
        h.last_ok_ms = Some(900);
        assert!(!h.is_sdown(1900, 1000));
        assert!(h.is_sdown(1901, 1000));
    }

    #[test]
    fn stale_peer_reports_do_not_vote() {
        let a = Addr::new("h", 1);
        let mut v = PeerViews::default();
        let mut r = Report::default();
        r.sdown.insert(a.clone());
        v.record(2, 100, r.clone());
        v.record(3, 900, r);
        assert_eq!(v.voters_for(&a, 1000, 500), vec![3]);
        assert_eq!(v.voters_for(&a, 1000, 900), vec![2, 3]);
        assert!(v.voters_for(&Addr::new("h", 2), 1000, 900).is_empty());
    }
}
