//! The control protocol: requests from the `raftinel` CLI to a daemon, carried
//! as JSON in `KIND_REQUEST`/`KIND_RESPONSE` frames over the authenticated peer
//! port (the CLI authenticates as id 0 with the peer secret from the config).
//!
//! Also renders `raftinel status` for people. Never prints a secret: the
//! status carries none.

use crate::config::Config;
use crate::consensus::transport;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Planned switchover (or forced failover); answered by the leader.
    Failover {
        group: String,
        opts: crate::core::FailoverOptions,
    },
    /// Maintenance mode on/off; answered by the leader.
    Maintenance {
        group: String,
        on: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Status {
        status: Value,
    },
    /// The leader accepted the request; `epoch` of the failover it proposed.
    Accepted {
        epoch: Option<u64>,
        leader: u64,
    },
    Error {
        message: String,
    },
}

/// One daemon's answer (or why there was none).
#[derive(Clone, Debug, Serialize)]
pub struct DaemonAnswer {
    pub id: u64,
    pub addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Send one request to one daemon.
pub async fn request(
    cfg: &Config,
    id: u64,
    addr: &str,
    req: &Request,
    limit: Duration,
) -> Result<Response, String> {
    let payload = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    let bytes = transport::request(
        addr,
        cfg.peer_secret.expose().as_bytes(),
        Some(id),
        payload,
        limit,
    )
    .await
    .map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{addr}: malformed response: {e}"))
}

/// Ask every daemon of the config for its status, concurrently.
pub async fn status_all(cfg: &Config, limit: Duration) -> Vec<DaemonAnswer> {
    let mut set = tokio::task::JoinSet::new();
    for (i, p) in cfg.peers.iter().enumerate() {
        let (cfg, p) = (cfg.clone(), p.clone());
        set.spawn(async move {
            let r = request(&cfg, p.id, &p.addr, &Request::Status, limit).await;
            let (status, error) = match r {
                Ok(Response::Status { status }) => (Some(status), None),
                Ok(Response::Error { message }) => (None, Some(message)),
                Ok(Response::Accepted { .. }) => (None, Some("unexpected answer".into())),
                Err(e) => (None, Some(e)),
            };
            let answer = DaemonAnswer {
                id: p.id,
                addr: p.addr.clone(),
                status,
                error,
            };
            (i, answer)
        });
    }
    let mut out: Vec<(usize, DaemonAnswer)> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, a)| a).collect()
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Human-readable `raftinel status`.
pub fn render(answers: &[DaemonAnswer]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "DAEMONS");
    for a in answers {
        match &a.status {
            Some(st) => {
                let raft = &st["raft"];
                let role = if raft["is_leader"] == Value::Bool(true) {
                    "leader"
                } else {
                    "follower"
                };
                let _ = writeln!(
                    o,
                    "  {:<3} {:<22} {:<9} term {:<4} leader {:<4} {}{}",
                    a.id,
                    a.addr,
                    role,
                    s(&raft["term"]),
                    s(&raft["leader"]),
                    if st["fresh"] == Value::Bool(true) {
                        "current"
                    } else {
                        "NOT CURRENT (names no master)"
                    },
                    if st["fenced"] == Value::Bool(true) {
                        "  LOCAL REDIS FENCED"
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  {:<3} {:<22} UNREACHABLE {}",
                    a.id,
                    a.addr,
                    a.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    // The group view of the leader if it answered, else of the first answer.
    let view = answers
        .iter()
        .filter_map(|a| a.status.as_ref())
        .find(|st| st["raft"]["is_leader"] == Value::Bool(true))
        .or_else(|| answers.iter().find_map(|a| a.status.as_ref()));
    let Some(view) = view else {
        let _ = writeln!(o, "\nno daemon answered");
        return o;
    };
    let _ = writeln!(o, "\nGROUPS (as seen by daemon {})", s(&view["node_id"]));
    for g in view["groups"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {}  epoch {}  master {}  quorum {}{}{}{}",
            s(&g["name"]),
            s(&g["epoch"]),
            s(&g["master"]),
            s(&g["quorum"]),
            if g["maintenance"] == Value::Bool(true) {
                "  MAINTENANCE"
            } else {
                ""
            },
            if g["odown"] == Value::Bool(true) {
                "  ODOWN"
            } else {
                ""
            },
            if g["failover"].is_null() {
                String::new()
            } else {
                format!(
                    "  FAILOVER epoch {} {} -> {} ({})",
                    s(&g["failover"]["epoch"]),
                    s(&g["failover"]["from"]),
                    s(&g["failover"]["to"]),
                    s(&g["failover"]["phase"])
                )
            }
        );
        let _ = writeln!(
            o,
            "    {:<22} {:<10} {:<8} {:<22} {:<5} {:<10} SEEN-DOWN-BY",
            "INSTANCE", "COMMITTED", "REPORTS", "REPLICA-OF", "LINK", "LAG-BYTES"
        );
        for i in g["instances"].as_array().into_iter().flatten() {
            let down = i["seen_down_by"]
                .as_array()
                .map(|v| v.iter().map(s).collect::<Vec<_>>().join(","))
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| "-".into());
            let link = match &i["link_up"] {
                Value::Bool(true) => "up",
                Value::Bool(false) => "down",
                _ => "-",
            };
            let _ = writeln!(
                o,
                "    {:<22} {:<10} {:<8} {:<22} {:<5} {:<10} {}",
                s(&i["addr"]),
                s(&i["committed_role"]),
                s(&i["reported_role"]),
                s(&i["replica_of"]),
                link,
                s(&i["lag_bytes"]),
                down
            );
        }
    }
    o
}

/// Send a mutating request to the first daemon that answers (any daemon
/// forwards it to the Raft leader).
pub async fn send_to_cluster(
    cfg: &Config,
    req: &Request,
    limit: Duration,
) -> Result<Response, String> {
    let mut errors = Vec::new();
    for p in &cfg.peers {
        match request(cfg, p.id, &p.addr, req, limit).await {
            Ok(r) => return Ok(r),
            Err(e) => errors.push(format!("daemon {} ({}): {e}", p.id, p.addr)),
        }
    }
    Err(format!("no daemon answered: {}", errors.join("; ")))
}

/// The group as the current leader sees it.
pub async fn leader_group(cfg: &Config, group: &str, limit: Duration) -> Option<Value> {
    let answers = status_all(cfg, limit).await;
    let leader = answers
        .iter()
        .filter_map(|a| a.status.as_ref())
        .find(|st| st["raft"]["can_act"] == Value::Bool(true))?;
    leader["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == group)
        .cloned()
}
