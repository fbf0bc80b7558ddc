//! `INFO`: the `# Server`, `# Clients`, `# Stats` and `# Sentinel` sections
//! as Redis Sentinel prints them (`redis_mode:sentinel`, `sentinel_masters`,
//! `master0:name=...,status=ok,address=ip:port,slaves=2,sentinels=3`), plus a
//! few `raftinel_*` fields. A group whose state this daemon is not sure of
//! (view not fresh) shows `status=sdown`.

use super::server::Shared;
use super::view::DiscoveryView;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// The Redis version this port reports (`HELLO`, `INFO`): clients gate
/// features on it, and the port behaves like a Redis 7.2 Sentinel.
pub const REDIS_VERSION: &str = "7.2.4";

const SECTIONS: &[&str] = &["server", "clients", "stats", "sentinel"];

/// The INFO text for the requested sections (none, `default`, `all`,
/// `everything`: all of them; unknown names are ignored, as in Redis).
pub fn info(sh: &Shared, view: &DiscoveryView, fresh: bool, sections: &[Vec<u8>]) -> String {
    let wanted: Vec<String> = sections
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
    let mut parts = Vec::new();
    for name in SECTIONS {
        if !all && !wanted.iter().any(|w| w == name) {
            continue;
        }
        parts.push(match *name {
            "server" => server(sh, view),
            "clients" => clients(sh),
            "stats" => stats(sh),
            _ => sentinel(view, fresh),
        });
    }
    parts.join("\r\n")
}

fn server(sh: &Shared, view: &DiscoveryView) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let up = sh.started.elapsed().as_secs();
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut s = String::from("# Server\r\n");
    let _ = write!(
        s,
        "redis_version:{REDIS_VERSION}\r\n\
         redis_git_sha1:00000000\r\n\
         redis_git_dirty:0\r\n\
         redis_build_id:0\r\n\
         redis_mode:sentinel\r\n\
         os:{} {}\r\n\
         arch_bits:{}\r\n\
         multiplexing_api:tokio\r\n\
         process_id:{}\r\n\
         process_supervised:no\r\n\
         run_id:{}\r\n\
         tcp_port:{}\r\n\
         server_time_usec:{}\r\n\
         uptime_in_seconds:{up}\r\n\
         uptime_in_days:{}\r\n\
         hz:10\r\n\
         configured_hz:10\r\n\
         executable:{exe}\r\n\
         raftinel_version:{}\r\n\
         raftinel_node_id:{}\r\n\
         raftinel_raft_term:{}\r\n\
         raftinel_leader:{}\r\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        usize::BITS,
        std::process::id(),
        view.myid,
        sh.port,
        now.as_micros(),
        up / 86_400,
        env!("CARGO_PKG_VERSION"),
        view.node_id,
        view.raft_term,
        view.leader
            .map_or_else(|| "none".to_string(), |l| l.to_string()),
    );
    s
}

fn clients(sh: &Shared) -> String {
    format!(
        "# Clients\r\n\
         connected_clients:{}\r\n\
         cluster_connections:0\r\n\
         maxclients:{}\r\n\
         client_recent_max_input_buffer:0\r\n\
         client_recent_max_output_buffer:0\r\n\
         blocked_clients:0\r\n\
         tracking_clients:0\r\n\
         pubsub_clients:{}\r\n\
         watching_clients:0\r\n\
         clients_in_timeout_table:0\r\n\
         total_watched_keys:0\r\n\
         total_blocking_keys:0\r\n\
         total_blocking_keys_on_nokey:0\r\n",
        sh.clients.count(),
        sh.cfg.max_clients,
        sh.clients.pubsub_clients(),
    )
}

fn stats(sh: &Shared) -> String {
    let st = &sh.stats;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "# Stats\r\n\
         total_connections_received:{}\r\n\
         total_commands_processed:{}\r\n\
         total_net_input_bytes:{}\r\n\
         total_net_output_bytes:{}\r\n\
         rejected_connections:{}\r\n\
         client_output_buffer_limit_disconnections:{}\r\n\
         total_error_replies:{}\r\n",
        get(&st.connections_received),
        get(&st.commands_processed),
        get(&st.net_input_bytes),
        get(&st.net_output_bytes),
        get(&st.rejected_connections),
        get(&st.output_limit_disconnections),
        get(&st.error_replies),
    )
}

/// Sentinel's section; `fresh` false marks every group `sdown`.
pub fn sentinel(view: &DiscoveryView, fresh: bool) -> String {
    let mut s = format!(
        "# Sentinel\r\n\
         sentinel_masters:{}\r\n\
         sentinel_tilt:0\r\n\
         sentinel_tilt_since_seconds:-1\r\n\
         sentinel_running_scripts:0\r\n\
         sentinel_scripts_queue_length:0\r\n\
         sentinel_simulate_failure_flags:0\r\n",
        view.groups.len()
    );
    for (i, g) in view.groups.iter().enumerate() {
        let status = if !fresh {
            "sdown"
        } else if g.master_odown {
            "odown"
        } else if g.master_sdown {
            "sdown"
        } else {
            "ok"
        };
        let _ = write!(
            s,
            "master{i}:name={},status={status},address={},slaves={},sentinels={}\r\n",
            g.name,
            g.master,
            super::sentinel::listed_replicas(g).count(),
            view.peers.len() + 1
        );
    }
    s
}
