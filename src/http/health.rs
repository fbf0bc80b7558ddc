//! The load-balancer checks `/primary` and `/replica`, as pure functions of
//! one daemon's status JSON (what `raftinel status --json` shows for it).
//!
//! Both answer "yes" only when this daemon's view is authoritative: the
//! status' `fresh` flag (the daemon confirmed with a Raft majority that it
//! holds the latest committed topology, Architecture Invariant 3). A status
//! without that flag counts as authoritative when the daemon is the leader
//! that may act or knows a leader. A daemon cut off from the majority thus
//! answers 503 everywhere, so a load balancer never keeps a stale primary.

use super::error::ApiError;
use serde_json::{json, Map, Value};

/// Which check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The local Redis is the group's committed master and reports role master.
    Primary,
    /// The local Redis replicates from the committed master, link up, and
    /// (if given) lags at most this many bytes.
    Replica { max_lag_bytes: Option<u64> },
}

/// The answer: healthy or not, and the JSON body (with `reason` when not).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub ok: bool,
    pub body: Value,
}

/// Whether this daemon's status may be trusted for routing decisions.
pub fn authoritative(st: &Value) -> bool {
    match st.get("fresh").and_then(Value::as_bool) {
        Some(fresh) => fresh,
        None => st["raft"]["can_act"] == Value::Bool(true) || st["raft"]["leader"].is_u64(),
    }
}

/// Names of the groups in a status.
pub fn group_names(st: &Value) -> Vec<String> {
    st["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str().map(String::from))
        .collect()
}

/// One group of a status; 404 if this daemon does not know it.
pub fn group<'a>(st: &'a Value, name: &str) -> Result<&'a Value, ApiError> {
    st["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == name)
        .ok_or_else(|| ApiError::unknown_group(name, &group_names(st)))
}

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

/// Evaluate `check` for `group` against this daemon's status `st`.
pub fn evaluate(st: &Value, group_name: &str, check: Check) -> Result<Verdict, ApiError> {
    let g = group(st, group_name)?;
    let local = text(&st["local_redis"]);
    let master = text(&g["master"]);
    let mut body = Map::new();
    body.insert("group".into(), group_name.into());
    body.insert("node_id".into(), st["node_id"].clone());
    body.insert("local_redis".into(), local.into());
    body.insert("master".into(), master.into());
    body.insert("epoch".into(), g["epoch"].clone());
    if !g["failover"].is_null() {
        body.insert("failover".into(), g["failover"].clone());
    }
    let result = match check {
        Check::Primary => primary(st, g, local, master),
        Check::Replica { max_lag_bytes } => replica(st, g, local, master, max_lag_bytes, &mut body),
    };
    let ok = match result {
        Ok(role) => {
            body.insert("role".into(), role.into());
            true
        }
        Err(reason) => {
            body.insert("reason".into(), reason.into());
            false
        }
    };
    body.insert("ok".into(), ok.into());
    Ok(Verdict {
        ok,
        body: Value::Object(body),
    })
}

/// Checks common to both: a local Redis, an authoritative view, an
/// initialised group. Returns (local, master).
fn preconditions<'a>(
    st: &Value,
    g: &Value,
    local: Option<&'a str>,
    master: Option<&'a str>,
) -> Result<(&'a str, &'a str), String> {
    let Some(local) = local else {
        return Err("this daemon has no local_redis configured".into());
    };
    if !authoritative(st) {
        let leader = match st["raft"]["leader"].as_u64() {
            Some(l) => format!("daemon {l}"),
            None => "none".into(),
        };
        return Err(format!(
            "this daemon's view is not authoritative: it has not confirmed the latest committed state with a Raft majority recently (leader: {leader})"
        ));
    }
    let (true, Some(master)) = (g["initialised"] != Value::Bool(false), master) else {
        return Err(format!(
            "group {} has no committed master yet",
            text(&g["name"]).unwrap_or("?")
        ));
    };
    Ok((local, master))
}

fn instance<'a>(g: &'a Value, addr: &str) -> Option<&'a Value> {
    g["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["addr"] == addr)
}

fn primary(
    st: &Value,
    g: &Value,
    local: Option<&str>,
    master: Option<&str>,
) -> Result<&'static str, String> {
    let (local, master) = preconditions(st, g, local, master)?;
    let name = text(&g["name"]).unwrap_or("?");
    let inst = instance(g, local);
    let down = inst.is_some_and(|i| i["sdown_here"] == Value::Bool(true));
    let reports = inst.and_then(|i| text(&i["reported_role"]));
    let replica_of = inst.and_then(|i| text(&i["replica_of"]));
    if local != master {
        return Err(match (inst, reports, replica_of) {
            (None, _, _) => format!(
                "local redis {local} is not an instance of group {name} (committed master: {master})"
            ),
            (_, Some("slave"), Some(of)) if of == master => {
                format!("local redis {local} is a replica of {of}")
            }
            (_, Some("slave"), Some(of)) => format!(
                "local redis {local} is a replica of {of}; the committed master is {master}"
            ),
            (_, Some("master"), _) => format!(
                "local redis {local} reports role master but is not the committed master of {name} (committed master: {master}); it is being demoted"
            ),
            _ => format!(
                "local redis {local} is not the committed master of {name} (committed master: {master})"
            ),
        });
    }
    if down {
        return Err(format!(
            "local redis {local} is the committed master of {name} but does not answer (down for this daemon)"
        ));
    }
    match (reports, replica_of) {
        (Some("master"), _) => Ok("master"),
        (Some("slave"), of) => Err(format!(
            "local redis {local} is the committed master of {name} but reports role slave of {}",
            of.unwrap_or("?")
        )),
        _ => Err(format!(
            "local redis {local} is the committed master of {name} but has not reported its role yet"
        )),
    }
}

fn replica(
    st: &Value,
    g: &Value,
    local: Option<&str>,
    master: Option<&str>,
    max_lag_bytes: Option<u64>,
    body: &mut Map<String, Value>,
) -> Result<&'static str, String> {
    let (local, master) = preconditions(st, g, local, master)?;
    let name = text(&g["name"]).unwrap_or("?");
    if local == master {
        return Err(format!(
            "local redis {local} is the master of {name}, not a replica"
        ));
    }
    let Some(inst) = instance(g, local) else {
        return Err(format!(
            "local redis {local} is not an instance of group {name} (committed master: {master})"
        ));
    };
    if inst["sdown_here"] == Value::Bool(true) {
        return Err(format!(
            "local redis {local} does not answer (down for this daemon)"
        ));
    }
    match text(&inst["reported_role"]) {
        Some("slave") => {}
        Some(role) => {
            return Err(format!(
                "local redis {local} reports role {role}, not slave (committed master: {master})"
            ))
        }
        None => return Err(format!("local redis {local} has not reported its role yet")),
    }
    let of = text(&inst["replica_of"]).unwrap_or("?");
    if of != master {
        return Err(format!(
            "local redis {local} replicates from {of}, not from the committed master {master}"
        ));
    }
    if inst["link_up"] != Value::Bool(true) {
        return Err(format!(
            "the replication link of local redis {local} to {master} is down"
        ));
    }
    // The daemon's lag (committed replicas), else from the two offsets.
    let lag = inst["lag_bytes"].as_u64().or_else(|| {
        let m = instance(g, master)?["offset"].as_u64()?;
        Some(m.saturating_sub(inst["offset"].as_u64()?))
    });
    body.insert("lag_bytes".into(), json!(lag));
    if let Some(max) = max_lag_bytes {
        body.insert("max_lag_bytes".into(), max.into());
        match lag {
            None => {
                return Err(format!(
                    "the lag of local redis {local} behind {master} is unknown (no fresh offset of the master)"
                ))
            }
            Some(l) if l > max => {
                return Err(format!(
                    "local redis {local} lags {master} by {l} bytes (max_lag_bytes {max})"
                ))
            }
            Some(_) => {}
        }
    }
    Ok("slave")
}
