//! What the discovery server may know: a read-only snapshot of the daemon's
//! state, published by the daemon loop through a `tokio::sync::watch` channel,
//! plus the event stream (a `tokio::sync::broadcast` of core events) and a
//! channel to ask the daemon for a failover.
//!
//! The discovery server never touches the core or Raft directly: it reads the
//! latest [`DiscoveryView`] and answers from it. [`DiscoveryView::fresh`] is the
//! never-stale rule (ARCHITECTURE.md, invariant 3): when it is false the server
//! names no master.

use crate::core::events::Event;
use crate::core::types::{Addr, NodeId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// One replica of a group as this daemon sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    pub addr: Addr,
    /// Subjectively down on this daemon.
    pub sdown: bool,
    pub run_id: Option<String>,
    /// `slave_repl_offset` it reports.
    pub offset: Option<u64>,
    /// `master_link_status:up`.
    pub link_up: Option<bool>,
    pub link_down_since_s: Option<u64>,
    pub priority: Option<u32>,
    /// The master it reports following.
    pub master: Option<Addr>,
    /// Milliseconds since its last valid reply (None: never answered).
    pub last_ok_ms_ago: Option<u64>,
    /// Milliseconds since its last INFO.
    pub info_age_ms: Option<u64>,
    /// It reports role master (not yet demoted).
    pub reports_master: bool,
}

/// One monitored group, from the committed topology plus local observations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    /// The committed master.
    pub master: Addr,
    /// Group epoch (Sentinel's `config-epoch`).
    pub epoch: u64,
    pub quorum: usize,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: usize,
    pub master_sdown: bool,
    pub master_odown: bool,
    pub master_run_id: Option<String>,
    pub master_offset: Option<u64>,
    pub master_last_ok_ms_ago: Option<u64>,
    pub master_info_age_ms: Option<u64>,
    /// A failover of this group is in progress.
    pub failover_in_progress: bool,
    pub replicas: Vec<ReplicaView>,
}

/// Another daemon of the cluster (Sentinel's "other sentinels").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerView {
    pub id: NodeId,
    /// 40 hex characters, stable per daemon id.
    pub myid: String,
    /// Its discovery (Sentinel-compatible) address, if configured.
    pub discovery_addr: Option<Addr>,
    /// Milliseconds since a Raft message from it arrived (None: never).
    pub last_heard_ms_ago: Option<u64>,
}

/// The snapshot the discovery server answers from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryView {
    /// This daemon knows it holds the latest committed topology: it is the
    /// leader with a live quorum, or a follower that heard from the leader
    /// within the election timeout. When false, name no master.
    pub fresh: bool,
    pub node_id: NodeId,
    /// 40 hex characters, stable per daemon id (Sentinel's `myid`).
    pub myid: String,
    pub raft_term: u64,
    pub leader: Option<NodeId>,
    pub groups: Vec<GroupView>,
    pub peers: Vec<PeerView>,
}

impl DiscoveryView {
    pub fn group(&self, name: &str) -> Option<&GroupView> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// `myid` of a daemon: 40 hex characters derived from its id, so every daemon
/// can compute every other daemon's id.
pub fn myid_of(id: NodeId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("raftinel-node-{id}").as_bytes());
    hex::encode(digest)[..40].to_string()
}

/// A request from a discovery client (`SENTINEL FAILOVER <name>`) to the
/// daemon loop; the reply says whether the failover was started.
#[derive(Debug)]
pub struct FailoverRequest {
    pub group: String,
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// Everything the discovery server is given by the daemon.
#[derive(Clone)]
pub struct DiscoveryHandles {
    pub view: watch::Receiver<DiscoveryView>,
    pub events: broadcast::Sender<Event>,
    pub failover: mpsc::Sender<FailoverRequest>,
}
