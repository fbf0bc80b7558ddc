//! `raftinel guard`: run before the local `redis-server` starts (systemd
//! `ExecStartPre`), so a restarted old master never comes up as a writable
//! master next to the committed one.
//!
//! It learns the committed master of the local instance's group, best source
//! first: a daemon whose answer is authoritative (`fresh`); else the last
//! committed topology stored in this node's `data_dir`; else the local daemon's
//! view even if unconfirmed. It then makes the Redis config file agree:
//!
//! - the local instance is not the committed master: a `replicaof` line for
//!   the committed master;
//! - it is, but a committed automatic or forced failover away from it is in
//!   progress: a `replicaof` line for the failover's target (the cluster has
//!   already decided it is no longer the master);
//! - it is: no `replicaof` line, and the instance starts *fenced*
//!   (`min-replicas-to-write` [`FENCE_MIN_REPLICAS`]), because the cluster may
//!   commit a failover away from it right after the guard asked. The original
//!   value goes to [`fence_file`] first, in the format the daemon uses for its
//!   own fence; the daemon restores it once the cluster confirms the instance
//!   is the committed master (or once it reports role replica).
//!
//! The file is replaced atomically, keeping its owner and mode; its other
//! lines are kept.

use crate::config::Config;
use crate::consensus::storage::LogStore;
use crate::control::status_all;
use crate::core::topology::{Entry, Failover, FailoverKind, Topology};
use crate::core::types::Addr;
use raft::Storage as _;
use serde_json::Value;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `min-replicas-to-write` value that makes a master refuse every write
/// (`-NOREPLICAS`): more replicas than any group has.
pub const FENCE_MIN_REPLICAS: &str = "1000000";

/// Where the pre-fence settings of the local instance are kept while it is
/// fenced: `{"min-replicas-to-write": "<original value>"}`.
pub fn fence_file(data_dir: &Path) -> PathBuf {
    data_dir.join("fence.json")
}

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
    /// The committed master of the group.
    pub master: Addr,
    pub source: Source,
    /// The local instance starts as a replica of this instance: the committed
    /// master, or the target of a failover away from the local instance.
    /// `None`: it starts as the master, fenced.
    pub replica_of: Option<Addr>,
    /// Epoch of a committed automatic or forced failover away from the local
    /// instance that is in progress (then `replica_of` is its target).
    pub failover_away: Option<u64>,
}

impl Decision {
    /// The local instance starts as the master (fenced).
    pub fn starts_as_master(&self) -> bool {
        self.replica_of.is_none()
    }

    /// One line for the operator (the journal of the Redis unit).
    pub fn describe(&self, local: &Addr) -> String {
        let head = format!(
            "committed master of {} is {} (source: {})",
            self.group, self.master, self.source
        );
        match (&self.replica_of, self.failover_away) {
            (Some(to), Some(epoch)) => format!(
                "{head}, but a failover from it to {to} is in progress (epoch {epoch}); \
                 {local} starts as a replica of {to}"
            ),
            (Some(m), None) => format!("{head}; {local} starts as a replica of {m}"),
            (None, _) => format!(
                "{head}; {local} starts as the master, fenced (writes refused) until its \
                 daemon confirms it is the committed master"
            ),
        }
    }
}

/// The group of the local instance in one committed view.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Found {
    group: String,
    master: Addr,
    failover: Option<Failover>,
}

/// The decision for `local`, given the committed state of its group.
fn decide_from(found: Found, local: &Addr, source: Source) -> Decision {
    let away = found.failover.as_ref().filter(|f| {
        f.from == *local && matches!(f.kind, FailoverKind::Auto | FailoverKind::Forced)
    });
    let replica_of = match away {
        Some(f) => Some(f.to.clone()),
        None => (found.master != *local).then(|| found.master.clone()),
    };
    Decision {
        group: found.group,
        master: found.master,
        source,
        replica_of,
        failover_away: away.map(|f| f.epoch),
    }
}

/// The local instance's group in a daemon's `status` answer.
fn find_in_status(st: &Value, local: &Addr) -> Option<Found> {
    st["groups"].as_array()?.iter().find_map(|g| {
        let has = g["instances"].as_array()?.iter().any(|i| {
            i["addr"].as_str() == Some(&local.to_string()) && i["committed_role"] != "discovered"
        });
        let master: Addr = g["master"].as_str()?.parse().ok()?;
        if !has && master != *local {
            return None;
        }
        let group = g["name"].as_str().unwrap_or_default().to_string();
        let failover = match &g["failover"] {
            Value::Null => None,
            v => match serde_json::from_value::<Failover>(v.clone()) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(message = "cannot read the failover in progress", %group, error = %e);
                    None
                }
            },
        };
        Some(Found {
            group,
            master,
            failover,
        })
    })
}

/// The local instance's group in a committed topology.
fn find_in_topology(topo: &Topology, local: &Addr) -> Option<Found> {
    topo.groups
        .iter()
        .find(|(_, g)| g.master == *local || g.replicas.contains(local))
        .map(|(name, g)| Found {
            group: name.clone(),
            master: g.master.clone(),
            failover: g.failover.clone(),
        })
}

/// Learn the committed master of `local`'s group.
pub async fn decide(cfg: &Config, local: &Addr) -> Result<Option<Decision>, String> {
    let answers = status_all(cfg, Duration::from_secs(2)).await;
    for a in &answers {
        if let Some(st) = a
            .status
            .as_ref()
            .filter(|st| st["fresh"] == Value::Bool(true))
        {
            if let Some(found) = find_in_status(st, local) {
                let source = Source::Cluster { daemon: a.id };
                return Ok(Some(decide_from(found, local, source)));
            }
        }
    }
    match from_local_log(&cfg.data_dir, local) {
        Ok(Some(found)) => return Ok(Some(decide_from(found, local, Source::LocalLog))),
        Ok(None) => {}
        Err(e) => tracing::warn!(message = "cannot read the local raft log", error = %e),
    }
    let me = answers.iter().find(|a| a.id == cfg.node_id);
    if let Some((a, st)) = me.and_then(|a| a.status.as_ref().map(|s| (a, s))) {
        if let Some(found) = find_in_status(st, local) {
            let source = Source::LocalDaemonUnconfirmed { daemon: a.id };
            return Ok(Some(decide_from(found, local, source)));
        }
    }
    Ok(None)
}

/// Replay the committed part of the local Raft log (fails while the local
/// daemon holds the file open; then the daemon is asked instead).
fn from_local_log(dir: &Path, local: &Addr) -> Result<Option<Found>, String> {
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
    Ok(find_in_topology(&topo, local))
}

/// The first word of a config line, lowercased (`#` for a comment).
fn key_of(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Make `redis.conf` agree with the decision. Returns true if the file changed.
///
/// When the local instance starts as the master, it starts fenced: every
/// `min-replicas-to-write` / `min-slaves-to-write` line is replaced by
/// `min-replicas-to-write` [`FENCE_MIN_REPLICAS`], after the value it replaces
/// (or `"0"`) is recorded in [`fence_file`]`(data_dir)`. An existing fence file
/// is kept as it is: it already holds the value from before the fence. When it
/// starts as a replica, those lines are left alone.
pub fn apply_to_redis_conf(path: &Path, data_dir: &Path, d: &Decision) -> Result<bool, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let fence = d.starts_as_master();
    if fence && !data_dir.is_dir() {
        return Err(format!(
            "data_dir {} does not exist (or is not a directory): cannot record the \
             pre-fence min-replicas-to-write before starting the master fenced",
            data_dir.display()
        ));
    }
    let mut orig: Option<String> = None;
    let mut lines: Vec<String> = Vec::new();
    for l in text.lines() {
        let key = key_of(l);
        if key == "replicaof" || key == "slaveof" {
            continue;
        }
        if fence && (key == "min-replicas-to-write" || key == "min-slaves-to-write") {
            // Redis applies the last one.
            let v = l.split_whitespace().nth(1).unwrap_or("0");
            orig = Some(v.trim_matches(|c| c == '"' || c == '\'').to_string());
            continue;
        }
        lines.push(l.to_string());
    }
    if fence {
        let fence_path = fence_file(data_dir);
        if !fence_path.exists() {
            // A fence value without a fence file (the file was lost, or the
            // conf was rewritten before a lift failed halfway) is no original.
            let orig = orig
                .filter(|v| !v.is_empty() && v != FENCE_MIN_REPLICAS)
                .unwrap_or_else(|| "0".into());
            let json = serde_json::json!({ "min-replicas-to-write": orig }).to_string();
            let owner = std::fs::metadata(data_dir).map(|m| (m.uid(), m.gid())).ok();
            write_atomic(
                &fence_path,
                &data_dir.join("fence.json.guard.tmp"),
                &json,
                None,
                owner,
            )?;
        }
        lines.push(format!("min-replicas-to-write {FENCE_MIN_REPLICAS}"));
    }
    if let Some(m) = &d.replica_of {
        lines.push(format!("replicaof {} {}", m.host, m.port));
    }
    let mut new = lines.join("\n");
    new.push('\n');
    if new == text {
        return Ok(false);
    }
    let meta = std::fs::metadata(path).ok();
    write_atomic(
        path,
        &path.with_extension("raftinel-guard.tmp"),
        &new,
        meta.as_ref().map(|m| m.permissions()),
        meta.as_ref().map(|m| (m.uid(), m.gid())),
    )?;
    Ok(true)
}

/// Write `contents` to `tmp` (mode `perms`, owner `owner` if given), flush it
/// to disk and rename it over `path`. The guard runs as root; the files belong
/// to the Redis and raftinel users, so a failed `chown` is only a warning.
fn write_atomic(
    path: &Path,
    tmp: &Path,
    contents: &str,
    perms: Option<std::fs::Permissions>,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    let write = || -> Result<(), String> {
        let mut f = std::fs::File::create(tmp)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        f.write_all(contents.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        if let Some(p) = perms {
            let _ = std::fs::set_permissions(tmp, p);
        }
        if let Some((uid, gid)) = owner {
            let mine = std::fs::metadata(tmp).map(|m| (m.uid(), m.gid())).ok();
            if mine != Some((uid, gid)) {
                if let Err(e) = std::os::unix::fs::chown(tmp, Some(uid), Some(gid)) {
                    tracing::warn!(
                        message = "cannot give the file its owner",
                        file = %path.display(),
                        uid,
                        gid,
                        error = %e
                    );
                }
            }
        }
        std::fs::rename(tmp, path)
            .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
            let _ = dir.sync_all();
        }
        Ok(())
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::topology::Phase;

    fn a(s: &str) -> Addr {
        s.parse().unwrap()
    }

    fn replica_of(m: &str) -> Decision {
        Decision {
            group: "g".into(),
            master: a(m),
            source: Source::LocalLog,
            replica_of: Some(a(m)),
            failover_away: None,
        }
    }

    fn master() -> Decision {
        Decision {
            group: "g".into(),
            master: a("10.0.0.1:6379"),
            source: Source::LocalLog,
            replica_of: None,
            failover_away: None,
        }
    }

    /// A conf file in a temp dir with a `data` dir next to it.
    fn setup(conf: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("redis.conf");
        std::fs::write(&p, conf).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        (dir, p, data)
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    fn saved(data: &Path) -> Value {
        serde_json::from_str(&read(&fence_file(data))).unwrap()
    }

    #[test]
    fn writes_and_removes_replicaof_keeping_other_lines() {
        let (_d, p, data) = setup("port 6379\nslaveof 10.0.0.9 1\nappendonly yes\n");
        let d = replica_of("10.0.0.2:6379");
        assert!(apply_to_redis_conf(&p, &data, &d).unwrap());
        assert_eq!(
            read(&p),
            "port 6379\nappendonly yes\nreplicaof 10.0.0.2 6379\n"
        );
        assert!(!apply_to_redis_conf(&p, &data, &d).unwrap(), "idempotent");
        assert!(!fence_file(&data).exists(), "a replica is not fenced");
        assert!(apply_to_redis_conf(&p, &data, &master()).unwrap());
        assert_eq!(
            read(&p),
            "port 6379\nappendonly yes\nmin-replicas-to-write 1000000\n"
        );
    }

    #[test]
    fn master_starts_fenced_and_the_original_is_saved_first() {
        let (_d, p, data) =
            setup("port 6379\nMin-Slaves-To-Write 3\n# min-replicas-to-write 9\nappendonly yes\n");
        assert!(apply_to_redis_conf(&p, &data, &master()).unwrap());
        assert_eq!(
            read(&p),
            "port 6379\n# min-replicas-to-write 9\nappendonly yes\nmin-replicas-to-write 1000000\n"
        );
        assert_eq!(
            saved(&data),
            serde_json::json!({ "min-replicas-to-write": "3" })
        );
        assert!(
            !apply_to_redis_conf(&p, &data, &master()).unwrap(),
            "idempotent"
        );
        assert_eq!(saved(&data)["min-replicas-to-write"], "3");
        let leftovers: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["fence.json"], "no temp file left");
    }

    #[test]
    fn no_min_replicas_line_is_saved_as_zero() {
        let (_d, p, data) = setup("port 6379\nreplicaof 10.0.0.1 6379\n");
        assert!(apply_to_redis_conf(&p, &data, &master()).unwrap());
        assert_eq!(read(&p), "port 6379\nmin-replicas-to-write 1000000\n");
        assert_eq!(saved(&data)["min-replicas-to-write"], "0");
    }

    #[test]
    fn the_last_of_several_lines_is_the_original() {
        let (_d, p, data) = setup("min-replicas-to-write 1\nmin-slaves-to-write \"2\"\n");
        apply_to_redis_conf(&p, &data, &master()).unwrap();
        assert_eq!(read(&p), "min-replicas-to-write 1000000\n");
        assert_eq!(saved(&data)["min-replicas-to-write"], "2");
    }

    #[test]
    fn an_existing_fence_file_is_kept() {
        // Fenced by the daemon (CONFIG REWRITE put the fence value in the conf).
        let (_d, p, data) = setup("port 6379\nmin-replicas-to-write 1000000\n");
        std::fs::write(fence_file(&data), r#"{"min-replicas-to-write":"2"}"#).unwrap();
        assert!(!apply_to_redis_conf(&p, &data, &master()).unwrap());
        assert_eq!(read(&p), "port 6379\nmin-replicas-to-write 1000000\n");
        assert_eq!(
            read(&fence_file(&data)),
            r#"{"min-replicas-to-write":"2"}"#,
            "untouched"
        );
        // Even if the conf says otherwise, the file holds the true original.
        std::fs::write(&p, "min-replicas-to-write 5\n").unwrap();
        assert!(apply_to_redis_conf(&p, &data, &master()).unwrap());
        assert_eq!(read(&p), "min-replicas-to-write 1000000\n");
        assert_eq!(read(&fence_file(&data)), r#"{"min-replicas-to-write":"2"}"#);
    }

    #[test]
    fn a_fence_value_without_a_fence_file_is_not_an_original() {
        let (_d, p, data) = setup("min-replicas-to-write 1000000\n");
        assert!(!apply_to_redis_conf(&p, &data, &master()).unwrap());
        assert_eq!(saved(&data)["min-replicas-to-write"], "0");
    }

    #[test]
    fn a_replica_keeps_its_min_replicas_lines() {
        let text = "min-replicas-to-write 1000000\nmin-slaves-to-write 1\n";
        let (_d, p, data) = setup(text);
        assert!(apply_to_redis_conf(&p, &data, &replica_of("10.0.0.2:6379")).unwrap());
        assert_eq!(read(&p), format!("{text}replicaof 10.0.0.2 6379\n"));
        assert!(!fence_file(&data).exists());
    }

    #[test]
    fn missing_data_dir_is_a_clear_error_and_nothing_changes() {
        let (d, p, _) = setup("port 6379\nreplicaof 10.0.0.1 6379\n");
        let missing = d.path().join("no-such-dir");
        let e = apply_to_redis_conf(&p, &missing, &master()).unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert_eq!(read(&p), "port 6379\nreplicaof 10.0.0.1 6379\n");
        // A replica needs no fence file.
        assert!(!apply_to_redis_conf(&p, &missing, &replica_of("10.0.0.1:6379")).unwrap());
    }

    #[test]
    fn fence_file_gets_the_data_dir_owner_and_the_conf_keeps_its_owner() {
        let (_d, p, data) = setup("port 6379\n");
        if std::fs::metadata(&data).unwrap().uid() != 0 {
            return; // chown needs root (the guard runs as root)
        }
        std::os::unix::fs::chown(&data, Some(4321), Some(4322)).unwrap();
        std::os::unix::fs::chown(&p, Some(4323), Some(4324)).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        assert!(apply_to_redis_conf(&p, &data, &master()).unwrap());
        let f = std::fs::metadata(fence_file(&data)).unwrap();
        assert_eq!((f.uid(), f.gid()), (4321, 4322));
        let c = std::fs::metadata(&p).unwrap();
        assert_eq!((c.uid(), c.gid(), c.mode() & 0o777), (4323, 4324, 0o640));
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e = apply_to_redis_conf(
            Path::new("/nonexistent/redis.conf"),
            Path::new("/tmp"),
            &replica_of("10.0.0.2:6379"),
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/redis.conf"), "{e}");
    }

    fn failover(from: &str, to: &str, kind: FailoverKind, phase: Phase) -> Failover {
        Failover {
            epoch: 4,
            from: a(from),
            to: a(to),
            kind,
            phase,
            started_wall_ms: 1,
        }
    }

    fn found(master: &str, f: Option<Failover>) -> Found {
        Found {
            group: "g".into(),
            master: a(master),
            failover: f,
        }
    }

    const M: &str = "10.0.0.1:6379";
    const R: &str = "10.0.0.2:6379";
    const R2: &str = "10.0.0.3:6379";

    #[test]
    fn decisions_without_a_failover() {
        let d = decide_from(found(M, None), &a(M), Source::LocalLog);
        assert_eq!(d.replica_of, None);
        assert!(d.starts_as_master());
        let d = decide_from(found(M, None), &a(R), Source::LocalLog);
        assert_eq!(d.replica_of, Some(a(M)));
        assert_eq!(d.failover_away, None);
    }

    #[test]
    fn an_automatic_or_forced_failover_away_makes_the_master_a_replica_of_its_target() {
        for kind in [FailoverKind::Auto, FailoverKind::Forced] {
            for phase in [Phase::Promoting, Phase::Reconfiguring] {
                // In Reconfiguring the target is already the committed master.
                let m = if phase == Phase::Promoting { M } else { R };
                let f = failover(M, R, kind, phase);
                let d = decide_from(found(m, Some(f)), &a(M), Source::LocalLog);
                assert_eq!(d.replica_of, Some(a(R)), "{kind:?} {phase:?}");
                assert_eq!(d.failover_away, Some(4));
                assert_eq!(d.master, a(m));
            }
        }
    }

    #[test]
    fn a_switchover_away_or_a_failover_elsewhere_does_not() {
        let sw = FailoverKind::Switchover { timeout_ms: 5000 };
        let f = failover(M, R, sw, Phase::Promoting);
        let d = decide_from(found(M, Some(f)), &a(M), Source::LocalLog);
        assert_eq!((d.replica_of, d.failover_away), (None, None));
        // The target of a failover still in Promoting follows the old master.
        let f = failover(M, R, FailoverKind::Auto, Phase::Promoting);
        let d = decide_from(found(M, Some(f.clone())), &a(R), Source::LocalLog);
        assert_eq!((d.replica_of, d.failover_away), (Some(a(M)), None));
        let d = decide_from(found(M, Some(f)), &a(R2), Source::LocalLog);
        assert_eq!((d.replica_of, d.failover_away), (Some(a(M)), None));
    }

    #[test]
    fn failover_in_progress_from_a_replayed_topology() {
        let mut topo = Topology::default();
        let entries = [
            Entry::InitGroup {
                group: "g".into(),
                master: a(M),
                replicas: vec![a(R), a(R2)],
            },
            Entry::StartFailover {
                group: "g".into(),
                epoch: 1,
                from: a(M),
                to: a(R),
                kind: FailoverKind::Auto,
                started_wall_ms: 1,
            },
        ];
        for e in &entries {
            assert!(matches!(
                topo.apply(e),
                crate::core::topology::Applied::Ok(_)
            ));
        }
        let d = decide_from(
            find_in_topology(&topo, &a(M)).unwrap(),
            &a(M),
            Source::LocalLog,
        );
        assert_eq!(d.master, a(M));
        assert_eq!(d.replica_of, Some(a(R)));
        assert_eq!(d.failover_away, Some(1));
        assert!(
            d.describe(&a(M)).contains(&format!(
                "a failover from it to {R} is in progress (epoch 1); {M} starts as a replica of {R}"
            )),
            "{}",
            d.describe(&a(M))
        );
        // Aborted: the old master is the committed one again.
        topo.apply(&Entry::AbortFailover {
            group: "g".into(),
            epoch: 1,
            reason: "test".into(),
        });
        let d = decide_from(
            find_in_topology(&topo, &a(M)).unwrap(),
            &a(M),
            Source::LocalLog,
        );
        assert!(d.starts_as_master());
        assert!(
            d.describe(&a(M)).contains(
                "starts as the master, fenced (writes refused) until its daemon confirms it is the committed master"
            ),
            "{}",
            d.describe(&a(M))
        );
        assert_eq!(find_in_topology(&topo, &a("10.0.0.9:1")), None);
    }

    fn status(failover: Value) -> Value {
        serde_json::json!({
            "fresh": true,
            "groups": [{
                "name": "g",
                "master": M,
                "failover": failover,
                "instances": [
                    {"addr": M, "committed_role": "master"},
                    {"addr": R, "committed_role": "slave"},
                    {"addr": R2, "committed_role": "discovered"}
                ]
            }]
        })
    }

    #[test]
    fn failover_in_progress_from_a_status_answer() {
        // The wire format of `status` (a serialised `Failover`), spelled out.
        let st = status(serde_json::json!({
            "epoch": 7, "from": M, "to": R, "kind": "forced",
            "phase": "promoting", "started_wall_ms": 1
        }));
        let d = decide_from(find_in_status(&st, &a(M)).unwrap(), &a(M), Source::LocalLog);
        assert_eq!((d.replica_of, d.failover_away), (Some(a(R)), Some(7)));
        let st = status(serde_json::json!({
            "epoch": 7, "from": M, "to": R, "kind": {"switchover": {"timeout_ms": 5000}},
            "phase": "promoting", "started_wall_ms": 1
        }));
        let d = decide_from(find_in_status(&st, &a(M)).unwrap(), &a(M), Source::LocalLog);
        assert_eq!((d.replica_of, d.failover_away), (None, None));
        // And as the daemon serialises it.
        let f = failover(M, R, FailoverKind::Auto, Phase::Reconfiguring);
        let st = status(serde_json::to_value(&f).unwrap());
        let found = find_in_status(&st, &a(M)).unwrap();
        assert_eq!(found.failover, Some(f));
        let st = status(Value::Null);
        let d = decide_from(find_in_status(&st, &a(R)).unwrap(), &a(R), Source::LocalLog);
        assert_eq!(d.replica_of, Some(a(M)));
        assert_eq!(find_in_status(&st, &a(R2)), None, "only discovered");
    }
}
