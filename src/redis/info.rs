//! Parsing of `INFO server replication` replies into [`InstanceInfo`].
//!
//! Owns the text format only: this module does no I/O, so every rule (which
//! fields are required, what `-1` means, the `slaveN:` line format) is unit
//! tested here against replies captured from a real redis-server 7.0.
//!
//! Rules, following Redis Sentinel:
//! - `run_id`, `role` and `master_repl_offset` are required on every instance.
//! - A master lists its replicas in `slaveN:ip=..,port=..,state=..,offset=..,lag=..`
//!   lines (the pre-2.8 form `slaveN:ip,port,state` is accepted too, with offset
//!   and lag 0). `connected_slaves` is not cross-checked: Redis skips a replica
//!   whose address it cannot read, so the count may exceed the lines.
//! - A replica must report `master_host`, `master_port`, `master_link_status`
//!   and `slave_repl_offset`. `master_link_down_since_seconds` is read only while
//!   the link is down; `-1` (never connected) becomes `u64::MAX`.
//! - `slave_priority` (or `replica_priority`) defaults to 100 when absent, as in
//!   Sentinel.

use crate::core::types::{Addr, ConnectedReplica, InstanceInfo, Role};
use std::collections::HashMap;

/// Priority a replica is given when its INFO reports none (Sentinel's default).
pub const DEFAULT_REPLICA_PRIORITY: u32 = 100;

/// Why an INFO reply could not be turned into an [`InstanceInfo`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// A required field is absent.
    #[error("INFO reply has no `{field}` field")]
    Missing { field: String },
    /// A field is present but its value cannot be used.
    #[error("INFO field `{field}` has malformed value {value:?}: {reason}")]
    Malformed {
        field: String,
        value: String,
        reason: &'static str,
    },
}

fn missing(field: &str) -> InfoError {
    InfoError::Missing {
        field: field.to_string(),
    }
}

fn malformed(field: &str, value: &str, reason: &'static str) -> InfoError {
    InfoError::Malformed {
        field: field.to_string(),
        value: value.to_string(),
        reason,
    }
}

/// The `key:value` fields of an INFO reply (all sections merged; section
/// headers, blank lines and lines without `:` are skipped).
struct Fields<'a> {
    map: HashMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    fn new(text: &'a str) -> Self {
        let mut map = HashMap::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                // The first occurrence wins; the sections we ask for have no
                // duplicate keys.
                map.entry(key).or_insert(value);
            }
        }
        Fields { map }
    }

    fn get(&self, field: &str) -> Option<&'a str> {
        self.map.get(field).copied()
    }

    fn require(&self, field: &str) -> Result<&'a str, InfoError> {
        self.get(field).ok_or_else(|| missing(field))
    }

    fn require_u64(&self, field: &str) -> Result<u64, InfoError> {
        parse_u64(field, self.require(field)?)
    }

    /// `slaveN` lines, ordered by N.
    fn replica_lines(&self) -> Vec<(u32, &'a str, &'a str)> {
        let mut lines: Vec<_> = self
            .map
            .iter()
            .filter_map(|(key, value)| {
                let n = key.strip_prefix("slave")?;
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((n.parse::<u32>().ok()?, *key, *value))
            })
            .collect();
        lines.sort_by_key(|(n, _, _)| *n);
        lines
    }
}

fn parse_u64(field: &str, value: &str) -> Result<u64, InfoError> {
    value
        .trim()
        .parse()
        .map_err(|_| malformed(field, value, "not a non-negative integer"))
}

fn parse_port(field: &str, value: &str) -> Result<u16, InfoError> {
    match value.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(malformed(field, value, "not a port 1-65535")),
    }
}

/// Parses the reply of `INFO server replication` (or of a plain `INFO`).
pub fn parse_info(text: &str) -> Result<InstanceInfo, InfoError> {
    let fields = Fields::new(text);

    let run_id = fields.require("run_id")?.trim();
    if run_id.is_empty() {
        return Err(malformed("run_id", run_id, "empty"));
    }
    let master_repl_offset = fields.require_u64("master_repl_offset")?;

    let role = match fields.require("role")?.trim() {
        "master" => parse_master(&fields)?,
        "slave" => parse_replica(&fields)?,
        other => return Err(malformed("role", other, "expected master or slave")),
    };

    Ok(InstanceInfo {
        run_id: run_id.to_string(),
        role,
        master_repl_offset,
    })
}

fn parse_master(fields: &Fields<'_>) -> Result<Role, InfoError> {
    let replicas = fields
        .replica_lines()
        .into_iter()
        .map(|(_, key, value)| parse_replica_line(key, value))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Role::Master { replicas })
}

/// One `slaveN:` value: `ip=..,port=..,state=..,offset=..,lag=..`, or the
/// pre-2.8 form `ip,port,state`.
fn parse_replica_line(key: &str, value: &str) -> Result<ConnectedReplica, InfoError> {
    let value = value.trim();
    if !value.contains('=') {
        let mut parts = value.split(',');
        let (Some(ip), Some(port), Some(state)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed(key, value, "expected ip=..,port=..,state=.."));
        };
        return Ok(ConnectedReplica {
            addr: Addr::new(ip, parse_port(&format!("{key}.port"), port)?),
            state: state.to_string(),
            offset: 0,
            lag_s: 0,
        });
    }

    let mut attrs: HashMap<&str, &str> = HashMap::new();
    for part in value.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(malformed(key, value, "expected ip=..,port=..,state=.."));
        };
        attrs.entry(k).or_insert(v);
    }
    let get = |attr: &str| -> Result<(String, &str), InfoError> {
        let name = format!("{key}.{attr}");
        match attrs.get(attr) {
            Some(v) => Ok((name, v)),
            None => Err(InfoError::Missing { field: name }),
        }
    };

    let (_, ip) = get("ip")?;
    if ip.is_empty() {
        return Err(malformed(&format!("{key}.ip"), ip, "empty"));
    }
    let (name, port) = get("port")?;
    let port = parse_port(&name, port)?;
    let (_, state) = get("state")?;
    let (name, offset) = get("offset")?;
    let offset = parse_u64(&name, offset)?;
    let (name, lag) = get("lag")?;
    // The lag is a difference of two clock readings; clamp a (theoretical)
    // negative value to 0 rather than refusing the whole reply.
    let lag_s = lag
        .parse::<i64>()
        .map_err(|_| malformed(&name, lag, "not an integer"))?
        .max(0) as u64;

    Ok(ConnectedReplica {
        addr: Addr::new(ip, port),
        state: state.to_string(),
        offset,
        lag_s,
    })
}

fn parse_replica(fields: &Fields<'_>) -> Result<Role, InfoError> {
    let host = fields.require("master_host")?.trim();
    if host.is_empty() {
        return Err(malformed("master_host", host, "empty"));
    }
    let port = parse_port("master_port", fields.require("master_port")?)?;

    let link_up = match fields.require("master_link_status")?.trim() {
        "up" => true,
        "down" => false,
        other => {
            return Err(malformed(
                "master_link_status",
                other,
                "expected up or down",
            ))
        }
    };

    let link_down_since_s = if link_up {
        None
    } else {
        match fields.get("master_link_down_since_seconds") {
            None => None,
            Some(v) => Some(match v.trim().parse::<i64>() {
                // -1: the replica never connected since it was (re)configured.
                Ok(-1) => u64::MAX,
                Ok(s) if s >= 0 => s as u64,
                _ => {
                    return Err(malformed(
                        "master_link_down_since_seconds",
                        v,
                        "expected seconds or -1",
                    ))
                }
            }),
        }
    };

    let priority = match (fields.get("slave_priority"), fields.get("replica_priority")) {
        (Some(v), _) => parse_priority("slave_priority", v)?,
        (None, Some(v)) => parse_priority("replica_priority", v)?,
        (None, None) => DEFAULT_REPLICA_PRIORITY,
    };

    let offset = fields.require_u64("slave_repl_offset")?;

    Ok(Role::Replica {
        master: Addr::new(host, port),
        link_up,
        link_down_since_s,
        priority,
        offset,
    })
}

fn parse_priority(field: &str, value: &str) -> Result<u32, InfoError> {
    value
        .trim()
        .parse()
        .map_err(|_| malformed(field, value, "not a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies are captured from redis-server 7.0.15 (`redis-cli INFO server
    /// replication`), written here with `\n` and sent through [`crlf`] to get
    /// the wire form.
    const SERVER_SECTION: &str = "# Server
redis_version:7.0.15
redis_git_sha1:00000000
redis_git_dirty:0
redis_build_id:ae4d7c971a948f0
redis_mode:standalone
os:Linux 6.18.44-fc-v769 x86_64
arch_bits:64
monotonic_clock:POSIX clock_gettime
multiplexing_api:epoll
atomicvar_api:c11-builtin
gcc_version:12.2.0
process_id:5569
process_supervised:no
run_id:d479d0ba6b7c28f87202e4266b50036355620847
tcp_port:17001
server_time_usec:1795313904791060
uptime_in_seconds:2
uptime_in_days:0
hz:10
configured_hz:10
lru_clock:151792
executable:/tmp/rcap/redis-server
config_file:
io_threads_active:0
";

    const RUN_ID: &str = "d479d0ba6b7c28f87202e4266b50036355620847";

    const MASTER_TWO_REPLICAS: &str = "# Replication
role:master
connected_slaves:2
slave0:ip=127.0.0.1,port=17002,state=online,offset=50,lag=1
slave1:ip=127.0.0.1,port=17003,state=online,offset=50,lag=1
master_failover_state:no-failover
master_replid:bd61d99d873498a1bc627458c6e928648d4f5b8c
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:50
second_repl_offset:-1
repl_backlog_active:1
repl_backlog_size:1048576
repl_backlog_first_byte_offset:1
repl_backlog_histlen:50
";

    const MASTER_SYNCING_REPLICA: &str = "# Replication
role:master
connected_slaves:1
slave0:ip=127.0.0.1,port=17002,state=wait_bgsave,offset=0,lag=0
master_failover_state:no-failover
master_replid:bafe00811013be7baa83b5041e440b504ae94324
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:0
second_repl_offset:-1
repl_backlog_active:1
repl_backlog_size:1048576
repl_backlog_first_byte_offset:1
repl_backlog_histlen:0
";

    const MASTER_ALONE: &str = "# Replication
role:master
connected_slaves:0
master_failover_state:no-failover
master_replid:bafe00811013be7baa83b5041e440b504ae94324
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:0
second_repl_offset:-1
repl_backlog_active:0
repl_backlog_size:1048576
repl_backlog_first_byte_offset:0
repl_backlog_histlen:0
";

    const REPLICA_UP: &str = "# Replication
role:slave
master_host:127.0.0.1
master_port:17001
master_link_status:up
master_last_io_seconds_ago:1
master_sync_in_progress:0
slave_read_repl_offset:64
slave_repl_offset:64
slave_priority:100
slave_read_only:1
replica_announced:1
connected_slaves:0
master_failover_state:no-failover
master_replid:bafe00811013be7baa83b5041e440b504ae94324
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:64
second_repl_offset:-1
repl_backlog_active:1
repl_backlog_size:1048576
repl_backlog_first_byte_offset:1
repl_backlog_histlen:64
";

    /// The master was shut down 2 s earlier.
    const REPLICA_DOWN: &str = "# Replication
role:slave
master_host:127.0.0.1
master_port:17001
master_link_status:down
master_last_io_seconds_ago:-1
master_sync_in_progress:0
slave_read_repl_offset:64
slave_repl_offset:64
master_link_down_since_seconds:2
slave_priority:100
slave_read_only:1
replica_announced:1
connected_slaves:0
master_failover_state:no-failover
master_replid:bafe00811013be7baa83b5041e440b504ae94324
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:64
second_repl_offset:-1
repl_backlog_active:1
repl_backlog_size:1048576
repl_backlog_first_byte_offset:1
repl_backlog_histlen:64
";

    /// Pointed at a port nothing listens on: never connected.
    const REPLICA_NEVER_CONNECTED: &str = "# Replication
role:slave
master_host:127.0.0.1
master_port:17999
master_link_status:down
master_last_io_seconds_ago:-1
master_sync_in_progress:0
slave_read_repl_offset:1
slave_repl_offset:1
master_link_down_since_seconds:-1
slave_priority:100
slave_read_only:1
replica_announced:1
connected_slaves:0
master_failover_state:no-failover
master_replid:244c03915211bd56687cdd97b7bd768dc53caaf7
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:0
second_repl_offset:-1
repl_backlog_active:0
repl_backlog_size:1048576
repl_backlog_first_byte_offset:0
repl_backlog_histlen:0
";

    /// A replica that has a replica of its own (chained replication),
    /// started with `replica-priority 0`.
    const REPLICA_CHAINED_PRIO0: &str = "# Replication
role:slave
master_host:127.0.0.1
master_port:17001
master_link_status:up
master_last_io_seconds_ago:2
master_sync_in_progress:0
slave_read_repl_offset:50
slave_repl_offset:50
slave_priority:0
slave_read_only:1
replica_announced:1
connected_slaves:1
slave0:ip=127.0.0.1,port=17004,state=online,offset=50,lag=1
master_failover_state:no-failover
master_replid:bd61d99d873498a1bc627458c6e928648d4f5b8c
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:50
second_repl_offset:-1
repl_backlog_active:1
repl_backlog_size:1048576
repl_backlog_first_byte_offset:1
repl_backlog_histlen:50
";

    fn crlf(s: &str) -> String {
        s.replace('\n', "\r\n")
    }

    /// A full `INFO server replication` reply, as sent on the wire.
    fn reply(replication: &str) -> String {
        crlf(&format!("{SERVER_SECTION}\n{replication}"))
    }

    fn replica(ip: &str, port: u16, state: &str, offset: u64, lag_s: u64) -> ConnectedReplica {
        ConnectedReplica {
            addr: Addr::new(ip, port),
            state: state.to_string(),
            offset,
            lag_s,
        }
    }

    fn info(role: Role, master_repl_offset: u64) -> InstanceInfo {
        InstanceInfo {
            run_id: RUN_ID.to_string(),
            role,
            master_repl_offset,
        }
    }

    fn replica_role(
        port: u16,
        link_up: bool,
        link_down_since_s: Option<u64>,
        priority: u32,
        offset: u64,
    ) -> Role {
        Role::Replica {
            master: Addr::new("127.0.0.1", port),
            link_up,
            link_down_since_s,
            priority,
            offset,
        }
    }

    #[test]
    fn parses_real_replies() {
        let cases: Vec<(&str, String, InstanceInfo)> = vec![
            (
                "master with two online replicas",
                reply(MASTER_TWO_REPLICAS),
                info(
                    Role::Master {
                        replicas: vec![
                            replica("127.0.0.1", 17002, "online", 50, 1),
                            replica("127.0.0.1", 17003, "online", 50, 1),
                        ],
                    },
                    50,
                ),
            ),
            (
                "master with a replica still syncing",
                reply(MASTER_SYNCING_REPLICA),
                info(
                    Role::Master {
                        replicas: vec![replica("127.0.0.1", 17002, "wait_bgsave", 0, 0)],
                    },
                    0,
                ),
            ),
            (
                "master without replicas",
                reply(MASTER_ALONE),
                info(Role::Master { replicas: vec![] }, 0),
            ),
            (
                "replica, link up",
                reply(REPLICA_UP),
                info(replica_role(17001, true, None, 100, 64), 64),
            ),
            (
                "replica, link down for 2 s",
                reply(REPLICA_DOWN),
                info(replica_role(17001, false, Some(2), 100, 64), 64),
            ),
            (
                "replica never connected (-1)",
                reply(REPLICA_NEVER_CONNECTED),
                info(replica_role(17999, false, Some(u64::MAX), 100, 1), 0),
            ),
            (
                "chained replica with priority 0",
                reply(REPLICA_CHAINED_PRIO0),
                info(replica_role(17001, true, None, 0, 50), 50),
            ),
            (
                "replica_priority instead of slave_priority",
                reply(&REPLICA_UP.replace("slave_priority:100", "replica_priority:7")),
                info(replica_role(17001, true, None, 7, 64), 64),
            ),
            (
                "no priority field: Sentinel's default",
                reply(&REPLICA_UP.replace("slave_priority:100\n", "")),
                info(replica_role(17001, true, None, 100, 64), 64),
            ),
            (
                "link down without master_link_down_since_seconds",
                reply(&REPLICA_DOWN.replace("master_link_down_since_seconds:2\n", "")),
                info(replica_role(17001, false, None, 100, 64), 64),
            ),
            (
                "LF line endings",
                format!("{SERVER_SECTION}\n{REPLICA_UP}"),
                info(replica_role(17001, true, None, 100, 64), 64),
            ),
            (
                "pre-2.8 slave line",
                reply(&MASTER_ALONE.replace(
                    "connected_slaves:0\n",
                    "connected_slaves:1\nslave0:10.0.0.2,6380,online\n",
                )),
                info(
                    Role::Master {
                        replicas: vec![replica("10.0.0.2", 6380, "online", 0, 0)],
                    },
                    0,
                ),
            ),
            (
                "IPv6 replica, lines out of order, ten replicas sort numerically",
                reply(&MASTER_ALONE.replace(
                    "connected_slaves:0\n",
                    "connected_slaves:2\n\
                     slave10:ip=::1,port=7010,state=online,offset=5,lag=0\n\
                     slave2:ip=::1,port=7002,state=send_bulk,offset=0,lag=3\n",
                )),
                info(
                    Role::Master {
                        replicas: vec![
                            replica("::1", 7002, "send_bulk", 0, 3),
                            replica("::1", 7010, "online", 5, 0),
                        ],
                    },
                    0,
                ),
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_info(&text), Ok(want), "case: {name}");
        }
    }

    #[test]
    fn reports_missing_and_malformed_fields() {
        let miss = |f: &str| InfoError::Missing {
            field: f.to_string(),
        };
        let bad = |f: &str, v: &str, reason| InfoError::Malformed {
            field: f.to_string(),
            value: v.to_string(),
            reason,
        };
        let up = REPLICA_UP;
        let cases: Vec<(&str, String, InfoError)> = vec![
            ("empty reply", String::new(), miss("run_id")),
            (
                "no run_id",
                crlf(&format!("{SERVER_SECTION}\n{up}").replace(&format!("run_id:{RUN_ID}\n"), "")),
                miss("run_id"),
            ),
            (
                "no replication section",
                crlf(SERVER_SECTION),
                miss("master_repl_offset"),
            ),
            (
                "no role",
                reply(&up.replace("role:slave\n", "")),
                miss("role"),
            ),
            (
                "unknown role",
                reply(&up.replace("role:slave", "role:sentinel")),
                bad("role", "sentinel", "expected master or slave"),
            ),
            (
                "no master_host",
                reply(&up.replace("master_host:127.0.0.1\n", "")),
                miss("master_host"),
            ),
            (
                "bad master_port",
                reply(&up.replace("master_port:17001", "master_port:70000")),
                bad("master_port", "70000", "not a port 1-65535"),
            ),
            (
                "no master_link_status",
                reply(&up.replace("master_link_status:up\n", "")),
                miss("master_link_status"),
            ),
            (
                "bad master_link_status",
                reply(&up.replace("master_link_status:up", "master_link_status:sideways")),
                bad("master_link_status", "sideways", "expected up or down"),
            ),
            (
                "bad master_link_down_since_seconds",
                reply(&REPLICA_DOWN.replace(
                    "master_link_down_since_seconds:2",
                    "master_link_down_since_seconds:-5",
                )),
                bad(
                    "master_link_down_since_seconds",
                    "-5",
                    "expected seconds or -1",
                ),
            ),
            (
                "no slave_repl_offset",
                reply(&up.replace("slave_repl_offset:64\n", "")),
                miss("slave_repl_offset"),
            ),
            (
                "bad slave_priority",
                reply(&up.replace("slave_priority:100", "slave_priority:high")),
                bad("slave_priority", "high", "not a non-negative integer"),
            ),
            (
                "bad master_repl_offset",
                reply(&up.replace("master_repl_offset:64", "master_repl_offset:x")),
                bad("master_repl_offset", "x", "not a non-negative integer"),
            ),
            (
                "slave line without port",
                reply(&MASTER_TWO_REPLICAS.replace("port=17003,", "")),
                miss("slave1.port"),
            ),
            (
                "slave line with bad offset",
                reply(
                    &MASTER_TWO_REPLICAS
                        .replace("offset=50,lag=1\nslave1", "offset=?,lag=1\nslave1"),
                ),
                bad("slave0.offset", "?", "not a non-negative integer"),
            ),
            (
                "slave line that is not key=value",
                reply(&MASTER_TWO_REPLICAS.replace(
                    "slave0:ip=127.0.0.1,port=17002,state=online,offset=50,lag=1",
                    "slave0:garbage",
                )),
                bad("slave0", "garbage", "expected ip=..,port=..,state=.."),
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_info(&text), Err(want), "case: {name}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err =
            parse_info(&reply(&REPLICA_UP.replace("master_host:127.0.0.1\n", ""))).unwrap_err();
        assert_eq!(err.to_string(), "INFO reply has no `master_host` field");
        let err = parse_info(&reply(&REPLICA_UP.replace("role:slave", "role:x"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "INFO field `role` has malformed value \"x\": expected master or slave"
        );
    }
}
