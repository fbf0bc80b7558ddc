//! `raftinel guard`: run before the local `redis-server` starts (systemd
//! `ExecStartPre`), so a restarted old master never comes up as a writable
//! master.
//!
//! It learns the committed master of the local instance's group, best source
//! first: a daemon whose answer is authoritative (`fresh`); else the last
//! committed topology stored in this node's `data_dir`; else the local daemon's
//! view even if unconfirmed. It then makes the Redis config file agree: a
//! `replicaof` line when the local instance is not the committed master, none
//! when it is. The file is replaced atomically; its other lines are kept.

use crate::config::Config;
use crate::consensus::storage::LogStore;
use crate::control::status_all;
use crate::core::topology::{Entry, Topology};
use crate::core::types::Addr;
use raft::Storage as _;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Where the committed master came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Cluster { daemon: u64 },
    LocalLog,
    LocalDaemonUnconfirmed { daemon: u64 },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Cluster { daemon } => {
                write!(f, "the cluster (daemon {daemon}, confirmed by a quorum)")
            }
            Source::LocalLog => write!(f, "the last committed topology stored in data_dir"),
            Source::LocalDaemonUnconfirmed { daemon } => {
                write!(
                    f,
                    "daemon {daemon}'s last committed topology (not confirmed by a quorum)"
                )
            }
        }
    }
}

/// What the guard decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub group: String,
    pub master: Addr,
    pub source: Source,
    /// The local instance must start as a replica of `master`.
    pub replica: bool,
}

/// Learn the committed master of `local`'s group.
pub async fn decide(cfg: &Config, local: &Addr) -> Result<Option<Decision>, String> {
    let answers = status_all(cfg, Duration::from_secs(2)).await;
    let find = |st: &Value| -> Option<(String, Addr)> {
        st["groups"].as_array()?.iter().find_map(|g| {
            let has = g["instances"].as_array()?.iter().any(|i| {
                i["addr"].as_str() == Some(&local.to_string())
                    && i["committed_role"] != "discovered"
            });
            let master: Addr = g["master"].as_str()?.parse().ok()?;
            (has || master == *local)
                .then(|| (g["name"].as_str().unwrap_or_default().to_string(), master))
        })
    };
    for a in &answers {
        if let Some(st) = a
            .status
            .as_ref()
            .filter(|st| st["fresh"] == Value::Bool(true))
        {
            if let Some((group, master)) = find(st) {
                let replica = master != *local;
                return Ok(Some(Decision {
                    group,
                    master,
                    source: Source::Cluster { daemon: a.id },
                    replica,
                }));
            }
        }
    }
    match from_local_log(&cfg.data_dir, local) {
        Ok(Some((group, master))) => {
            let replica = master != *local;
            return Ok(Some(Decision {
                group,
                master,
                source: Source::LocalLog,
                replica,
            }));
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(message = "cannot read the local raft log", error = %e),
    }
    let me = answers.iter().find(|a| a.id == cfg.node_id);
    if let Some((a, st)) = me.and_then(|a| a.status.as_ref().map(|s| (a, s))) {
        if let Some((group, master)) = find(st) {
            let replica = master != *local;
            return Ok(Some(Decision {
                group,
                master,
                source: Source::LocalDaemonUnconfirmed { daemon: a.id },
                replica,
            }));
        }
    }
    Ok(None)
}

/// Replay the committed part of the local Raft log (fails while the local
/// daemon holds the file open; then the daemon is asked instead).
fn from_local_log(dir: &Path, local: &Addr) -> Result<Option<(String, Addr)>, String> {
    if !dir.join(crate::consensus::storage::FILE_NAME).exists() {
        return Ok(None);
    }
    let store = LogStore::open(dir, &[]).map_err(|e| e.to_string())?;
    let mut topo = match store.snapshot() {
        Some(s) => Topology::decode(s.get_data()).map_err(|e| e.to_string())?,
        None => Topology::default(),
    };
    let commit = store.hard_state().commit;
    let first = store.first_index();
    if commit >= first {
        let entries = store
            .entries(
                first,
                commit + 1,
                None,
                raft::GetEntriesContext::empty(false),
            )
            .map_err(|e| e.to_string())?;
        for e in entries {
            if let Ok(entry) = Entry::decode(&e.data) {
                topo.apply(&entry);
            }
        }
    }
    Ok(topo
        .groups
        .iter()
        .find(|(_, g)| g.master == *local || g.replicas.contains(local))
        .map(|(name, g)| (name.clone(), g.master.clone())))
}

/// Make `redis.conf` agree with the decision. Returns true if the file changed.
pub fn apply_to_redis_conf(path: &Path, d: &Decision) -> Result<bool, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            let w = l
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            w != "replicaof" && w != "slaveof"
        })
        .map(String::from)
        .collect();
    if d.replica {
        lines.push(format!("replicaof {} {}", d.master.host, d.master.port));
    }
    let mut new = lines.join("\n");
    new.push('\n');
    if new == text {
        return Ok(false);
    }
    let tmp = path.with_extension("raftinel-guard.tmp");
    std::fs::write(&tmp, &new).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(replica: bool) -> Decision {
        Decision {
            group: "g".into(),
            master: Addr::new("10.0.0.2", 6379),
            source: Source::LocalLog,
            replica,
        }
    }

    #[test]
    fn writes_and_removes_replicaof_keeping_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("redis.conf");
        std::fs::write(&p, "port 6379\nslaveof 10.0.0.9 1\nappendonly yes\n").unwrap();
        assert!(apply_to_redis_conf(&p, &decision(true)).unwrap());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "port 6379\nappendonly yes\nreplicaof 10.0.0.2 6379\n"
        );
        assert!(
            !apply_to_redis_conf(&p, &decision(true)).unwrap(),
            "idempotent"
        );
        assert!(apply_to_redis_conf(&p, &decision(false)).unwrap());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "port 6379\nappendonly yes\n"
        );
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e =
            apply_to_redis_conf(Path::new("/nonexistent/redis.conf"), &decision(true)).unwrap_err();
        assert!(e.contains("/nonexistent/redis.conf"), "{e}");
    }
}
