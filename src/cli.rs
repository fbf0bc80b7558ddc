//! The operator subcommands that drive the cluster: `raftinel failover` and
//! `raftinel maintenance`. They send one request (any daemon forwards it to
//! the Raft leader), then follow the leader's committed view and print each
//! step with its time until the switchover completes or aborts.

use crate::config::Config;
use crate::control::{leader_group, send_to_cluster, Request, Response};
use crate::core::FailoverOptions;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);
const ASK: Duration = Duration::from_secs(2);

/// Result of `raftinel failover`.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// New master committed and confirmed.
    Done { epoch: u64, master: String },
    /// Refused, aborted or timed out; the message says which step.
    Failed(String),
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// Run a planned switchover (or forced failover) and report progress to `out`.
pub async fn failover(
    cfg: &Config,
    group: &str,
    opts: FailoverOptions,
    out: &mut dyn Write,
) -> Outcome {
    let start = Instant::now();
    let t = |start: Instant| format!("{:>6} ms", start.elapsed().as_millis());
    let kind = if opts.force {
        "forced failover"
    } else {
        "planned switchover"
    };
    let target = opts
        .to
        .as_ref()
        .map_or("the best replica".to_string(), |a| a.to_string());
    let _ = writeln!(out, "{} {kind} of {group} to {target} requested", t(start));
    let req = Request::Failover {
        group: group.to_string(),
        opts: opts.clone(),
    };
    let epoch = match send_to_cluster(cfg, &req, ASK).await {
        Ok(Response::Accepted {
            epoch: Some(e),
            leader,
        }) => {
            let _ = writeln!(
                out,
                "{} accepted by the leader (daemon {leader}); intent for epoch {e} proposed",
                t(start)
            );
            e
        }
        Ok(Response::Error { message }) => return Outcome::Failed(format!("refused: {message}")),
        Ok(other) => return Outcome::Failed(format!("unexpected answer: {other:?}")),
        Err(e) => return Outcome::Failed(e),
    };
    // Follow the committed state. Wait at most the switchover timeout plus
    // time for the reconfiguration of the replicas.
    let deadline = Duration::from_millis(opts.timeout_ms) + Duration::from_secs(30);
    let mut seen_intent = false;
    let mut seen_promoted = false;
    loop {
        if start.elapsed() > deadline {
            return Outcome::Failed(format!(
                "no outcome after {} ms; check `raftinel status`",
                start.elapsed().as_millis()
            ));
        }
        tokio::time::sleep(POLL).await;
        let Some(g) = leader_group(cfg, group, ASK).await else {
            continue; // no leader answering right now
        };
        let f = &g["failover"];
        if !seen_intent
            && (f["epoch"].as_u64() == Some(epoch) || g["epoch"].as_u64().unwrap_or(0) >= epoch)
        {
            seen_intent = true;
            // A fast switchover may be over before this first look: then the
            // addresses are in the outcome.
            let f = if f.is_null() { &g["last_outcome"] } else { f };
            let _ = writeln!(
                out,
                "{} intent committed: epoch {epoch}, {} -> {}{}",
                t(start),
                s(&f["from"]),
                s(&f["to"]),
                if opts.force {
                    ""
                } else {
                    "; pausing writes and waiting for the target to catch up"
                }
            );
        }
        if !seen_promoted && f["epoch"].as_u64() == Some(epoch) && f["phase"] == "reconfiguring" {
            seen_promoted = true;
            let _ = writeln!(
                out,
                "{} new master {} promoted and committed; repointing the other instances",
                t(start),
                s(&g["master"])
            );
        }
        let o = &g["last_outcome"];
        if f.is_null() && o["epoch"].as_u64() == Some(epoch) {
            if o["completed"] == Value::Bool(true) {
                let master = s(&g["master"]);
                let confirmed = g["instances"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|i| s(&i["addr"]) == master && i["reported_role"] == "master");
                if !confirmed {
                    continue; // wait for the leader's next INFO of the new master
                }
                let _ = writeln!(
                    out,
                    "{} done: {master} is the master (epoch {epoch})",
                    t(start)
                );
                return Outcome::Done { epoch, master };
            }
            return Outcome::Failed(format!(
                "aborted: {}; {} is still the master",
                s(&o["reason"]),
                s(&g["master"])
            ));
        }
    }
}

/// Turn maintenance mode on or off.
pub async fn maintenance(cfg: &Config, group: &str, on: bool) -> Result<(), String> {
    let req = Request::Maintenance {
        group: group.to_string(),
        on,
    };
    match send_to_cluster(cfg, &req, ASK).await? {
        Response::Accepted { .. } => {}
        Response::Error { message } => return Err(message),
        other => return Err(format!("unexpected answer: {other:?}")),
    }
    // Wait until the change is committed.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(g) = leader_group(cfg, group, ASK).await {
            if g["maintenance"] == Value::Bool(on) {
                return Ok(());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Err("the change was not committed within 10 s; check `raftinel status`".into())
}
