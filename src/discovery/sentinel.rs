//! `SENTINEL` subcommands, answered from a [`DiscoveryView`] with Sentinel's
//! reply shapes: records with Sentinel's field names, every number as a
//! string, the legacy flag tokens (`s_down`, `o_down`, `master`, `slave`,
//! `sentinel`, `disconnected`, `failover_in_progress`).
//!
//! Never stale (ARCHITECTURE.md, invariant 3): when the view is not fresh,
//! `get-master-addr-by-name` answers null, `masters` omits every group,
//! `master` / `replicas` answer `-IDONTKNOW`, so clients ask another daemon.
//!
//! `FAILOVER` is only checked here ([`failover_precheck`]); the request goes
//! to the daemon from `commands.rs`.

use super::reply::Reply;
use super::settings::DiscoverySettings;
use super::view::{DiscoveryView, GroupView, PeerView, ReplicaView};

/// Sentinel's error for an unknown group.
pub const NO_SUCH_MASTER: &str = "ERR No such master with that name";
/// The answer about a group while this daemon may be behind.
pub const IDONTKNOW: &str =
    "IDONTKNOW I'm not sure about the master state, not connected to a quorum";
/// Sentinel's error when a failover of the group is already running.
pub const INPROG: &str = "INPROG Failover already in progress";
/// Sentinel's error when no replica can be promoted.
pub const NOGOODSLAVE: &str = "NOGOODSLAVE No suitable replica to promote";

/// Subcommands Sentinel has that this port refuses (groups are configured
/// in raftinel.toml and decided through Raft, not by one daemon).
const UNSUPPORTED: &[&str] = &[
    "config",
    "debug",
    "flushconfig",
    "info-cache",
    "monitor",
    "pending-scripts",
    "remove",
    "reset",
    "set",
    "simulate-failure",
];

const HELP: &[&str] = &[
    "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CKQUORUM <master-name>",
    "    Check if the daemons that can be reached form a quorum and a majority.",
    "GET-MASTER-ADDR-BY-NAME <master-name>",
    "    Return the ip and port number of the master with that name (null when this daemon is not sure it is current).",
    "FAILOVER <master-name>",
    "    Ask the Raft leader to fail over the master.",
    "MASTER <master-name>",
    "    Show the state and info of the specified master.",
    "MASTERS",
    "    Show a list of monitored masters and their state.",
    "MYID",
    "    Return the ID of this daemon.",
    "REPLICAS <master-name>",
    "    Show a list of replicas for this master and their state.",
    "SENTINELS <master-name>",
    "    Show a list of the other daemons and their state.",
    "HELP",
    "    Print this help.",
];

fn n(v: impl ToString) -> String {
    v.to_string()
}

fn flags(tokens: &[(bool, &str)]) -> String {
    tokens
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, t)| *t)
        .collect::<Vec<_>>()
        .join(",")
}

/// Replicas shown to clients: instances that still report role master (an
/// old master not yet demoted) are left out, so no client reads from them.
pub fn listed_replicas(g: &GroupView) -> impl Iterator<Item = &ReplicaView> {
    g.replicas.iter().filter(|r| !r.reports_master)
}

/// `SENTINEL MASTER` record.
pub fn master_record(g: &GroupView, view: &DiscoveryView) -> Reply {
    let last_ok = g.master_last_ok_ms_ago.unwrap_or(0);
    let mut f: Vec<(&str, String)> = vec![
        ("name", g.name.clone()),
        ("ip", g.master.host.clone()),
        ("port", n(g.master.port)),
        ("runid", g.master_run_id.clone().unwrap_or_default()),
        (
            "flags",
            flags(&[
                (g.master_sdown, "s_down"),
                (g.master_odown, "o_down"),
                (true, "master"),
                (g.master_last_ok_ms_ago.is_none(), "disconnected"),
                (g.failover_in_progress, "failover_in_progress"),
            ]),
        ),
        ("link-pending-commands", n(0)),
        ("link-refcount", n(1)),
        (
            "last-ping-sent",
            n(if g.master_sdown { last_ok } else { 0 }),
        ),
        ("last-ok-ping-reply", n(last_ok)),
        ("last-ping-reply", n(last_ok)),
    ];
    let down_for = last_ok.saturating_sub(g.down_after_ms);
    if g.master_sdown {
        f.push(("s-down-time", n(down_for)));
    }
    if g.master_odown {
        f.push(("o-down-time", n(down_for)));
    }
    f.extend([
        ("down-after-milliseconds", n(g.down_after_ms)),
        ("info-refresh", n(g.master_info_age_ms.unwrap_or(0))),
        ("role-reported", "master".to_string()),
        ("role-reported-time", n(0)),
        ("config-epoch", n(g.epoch)),
        ("num-slaves", n(listed_replicas(g).count())),
        ("num-other-sentinels", n(view.peers.len())),
        ("quorum", n(g.quorum)),
        ("failover-timeout", n(g.failover_timeout_ms)),
        ("parallel-syncs", n(g.parallel_syncs)),
    ]);
    Reply::record(f)
}

/// `SENTINEL REPLICAS` record.
pub fn replica_record(r: &ReplicaView, g: &GroupView) -> Reply {
    let last_ok = r.last_ok_ms_ago.unwrap_or(0);
    let mut f: Vec<(&str, String)> = vec![
        ("name", r.addr.to_string()),
        ("ip", r.addr.host.clone()),
        ("port", n(r.addr.port)),
        ("runid", r.run_id.clone().unwrap_or_default()),
        (
            "flags",
            flags(&[
                (r.sdown, "s_down"),
                (true, "slave"),
                (r.last_ok_ms_ago.is_none(), "disconnected"),
            ]),
        ),
        ("link-pending-commands", n(0)),
        ("link-refcount", n(1)),
        ("last-ping-sent", n(if r.sdown { last_ok } else { 0 })),
        ("last-ok-ping-reply", n(last_ok)),
        ("last-ping-reply", n(last_ok)),
    ];
    if r.sdown {
        f.push(("s-down-time", n(last_ok.saturating_sub(g.down_after_ms))));
    }
    f.extend([
        ("down-after-milliseconds", n(g.down_after_ms)),
        ("info-refresh", n(r.info_age_ms.unwrap_or(0))),
        (
            "role-reported",
            if r.reports_master { "master" } else { "slave" }.to_string(),
        ),
        ("role-reported-time", n(0)),
        (
            "master-link-down-time",
            n(r.link_down_since_s.unwrap_or(0).saturating_mul(1000)),
        ),
        (
            "master-link-status",
            if r.link_up == Some(true) { "ok" } else { "err" }.to_string(),
        ),
        (
            "master-host",
            r.master
                .as_ref()
                .map_or("?".to_string(), |m| m.host.clone()),
        ),
        ("master-port", n(r.master.as_ref().map_or(0, |m| m.port))),
        ("slave-priority", n(r.priority.unwrap_or(100))),
        ("slave-repl-offset", n(r.offset.unwrap_or(0))),
        ("replica-announced", n(1)),
    ]);
    Reply::record(f)
}

/// Whether a peer was heard from recently enough to count.
pub fn peer_alive(p: &PeerView, cfg: &DiscoverySettings) -> bool {
    p.last_heard_ms_ago
        .is_some_and(|ms| u128::from(ms) <= cfg.peer_timeout.as_millis())
}

/// `SENTINEL SENTINELS` record of another daemon (listed only when its
/// discovery address is configured).
pub fn sentinel_record(p: &PeerView, g: &GroupView, cfg: &DiscoverySettings) -> Option<Reply> {
    let addr = p.discovery_addr.as_ref()?;
    let alive = peer_alive(p, cfg);
    let heard = p.last_heard_ms_ago.unwrap_or(0);
    let mut f: Vec<(&str, String)> = vec![
        ("name", p.myid.clone()),
        ("ip", addr.host.clone()),
        ("port", n(addr.port)),
        ("runid", p.myid.clone()),
        (
            "flags",
            flags(&[
                (!alive, "s_down"),
                (true, "sentinel"),
                (p.last_heard_ms_ago.is_none(), "disconnected"),
            ]),
        ),
        ("link-pending-commands", n(0)),
        ("link-refcount", n(1)),
        ("last-ping-sent", n(if alive { 0 } else { heard })),
        ("last-ok-ping-reply", n(heard)),
        ("last-ping-reply", n(heard)),
    ];
    if !alive {
        let timeout = u64::try_from(cfg.peer_timeout.as_millis()).unwrap_or(u64::MAX);
        f.push(("s-down-time", n(heard.saturating_sub(timeout))));
    }
    f.extend([
        ("down-after-milliseconds", n(g.down_after_ms)),
        ("last-hello-message", n(heard)),
        ("voted-leader", "?".to_string()),
        ("voted-leader-epoch", n(0)),
    ]);
    Some(Reply::record(f))
}

/// `SENTINEL CKQUORUM`: this daemon plus the peers heard from within
/// `peer_timeout`, against the group's quorum and the majority of daemons.
pub fn ckquorum(g: &GroupView, view: &DiscoveryView, cfg: &DiscoverySettings) -> Reply {
    let usable = 1 + view.peers.iter().filter(|p| peer_alive(p, cfg)).count();
    let voters = view.peers.len() + 1;
    let no_quorum = usable < g.quorum;
    let no_majority = usable < voters / 2 + 1;
    if !no_quorum && !no_majority {
        return Reply::Simple(format!(
            "OK {usable} usable Sentinels. Quorum and failover authorization can be reached"
        ));
    }
    let mut e = format!("NOQUORUM {usable} usable Sentinels. ");
    if no_quorum {
        e.push_str("Not enough available Sentinels to reach the specified quorum for this master");
    }
    if no_majority {
        if no_quorum {
            e.push_str(". ");
        }
        e.push_str("Not enough available Sentinels to reach the majority and authorize a failover");
    }
    Reply::coded(e)
}

/// Whether some replica could be promoted, by the rules the core applies
/// first (answers, not subjectively down, priority not 0). The core may still
/// refuse; this only spares the daemon requests that cannot succeed.
pub fn has_candidate(g: &GroupView) -> bool {
    g.replicas.iter().any(|r| {
        !r.sdown && !r.reports_master && r.last_ok_ms_ago.is_some() && r.priority != Some(0)
    })
}

/// The checks Sentinel makes before `SENTINEL FAILOVER` (unknown group,
/// failover in progress, no replica to promote).
pub fn failover_precheck(view: &DiscoveryView, name: &str) -> Result<(), Reply> {
    let Some(g) = view.group(name) else {
        return Err(Reply::coded(NO_SUCH_MASTER));
    };
    if g.failover_in_progress {
        return Err(Reply::coded(INPROG));
    }
    if !has_candidate(g) {
        return Err(Reply::coded(NOGOODSLAVE));
    }
    Ok(())
}

fn group<'a>(view: &'a DiscoveryView, name: &[u8]) -> Result<&'a GroupView, Reply> {
    std::str::from_utf8(name)
        .ok()
        .and_then(|n| view.group(n))
        .ok_or_else(|| Reply::coded(NO_SUCH_MASTER))
}

/// Answers every `SENTINEL` subcommand except `FAILOVER`. `sub` is lower
/// case; `args` is the whole command (`SENTINEL sub ...`), arity checked.
pub fn command(
    view: &DiscoveryView,
    fresh: bool,
    cfg: &DiscoverySettings,
    sub: &str,
    args: &[Vec<u8>],
) -> Reply {
    let arg = |i: usize| args.get(i).map(Vec::as_slice).unwrap_or_default();
    match sub {
        "get-master-addr-by-name" => match view.group(&String::from_utf8_lossy(arg(2))) {
            Some(g) if fresh => Reply::Array(vec![
                Reply::bulk(&g.master.host),
                Reply::bulk(g.master.port.to_string()),
            ]),
            _ => Reply::NullArray,
        },
        "masters" => {
            if !fresh {
                return Reply::Array(vec![]);
            }
            Reply::Array(view.groups.iter().map(|g| master_record(g, view)).collect())
        }
        "master" => match group(view, arg(2)) {
            Err(e) => e,
            Ok(_) if !fresh => Reply::coded(IDONTKNOW),
            Ok(g) => master_record(g, view),
        },
        "replicas" | "slaves" => match group(view, arg(2)) {
            Err(e) => e,
            Ok(_) if !fresh => Reply::coded(IDONTKNOW),
            Ok(g) => Reply::Array(listed_replicas(g).map(|r| replica_record(r, g)).collect()),
        },
        "sentinels" => match group(view, arg(2)) {
            Err(e) => e,
            Ok(g) => Reply::Array(
                view.peers
                    .iter()
                    .filter_map(|p| sentinel_record(p, g, cfg))
                    .collect(),
            ),
        },
        "myid" => Reply::bulk(&view.myid),
        "ckquorum" => match group(view, arg(2)) {
            Err(e) => e,
            Ok(g) => ckquorum(g, view, cfg),
        },
        "is-master-down-by-addr" => Reply::err(
            "SENTINEL IS-MASTER-DOWN-BY-ADDR is not supported: raftinel daemons agree through Raft, not Sentinel votes",
        ),
        "help" => Reply::Array(HELP.iter().map(|l| Reply::Simple((*l).into())).collect()),
        other if UNSUPPORTED.contains(&other) => Reply::err(format!(
            "SENTINEL {} is not supported by raftinel: groups are configured in raftinel.toml",
            other.to_uppercase()
        )),
        other => Reply::err(format!(
            "unknown subcommand '{}'. Try SENTINEL HELP.",
            truncate(other, 128)
        )),
    }
}

/// At most `max` bytes of `s`, on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
