//! The HTTP API of real daemons (`http_listen`) over real redis-server
//! processes: health checks flip when the master is killed, failover and
//! maintenance need the bearer token.

use crate::cluster::{Cluster, DaemonOpts, GroupDef};
use crate::harness::{start_group, RedisOpts, RedisProc};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const TOKEN: &str = "it-http-token-0123456789abcdef";

struct Resp {
    status: u16,
    body: Value,
}

/// One HTTP/1.1 request (`Connection: close`); `None` if nothing answers.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Resp {
        status,
        body: serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    })
}

fn get(addr: SocketAddr, path: &str) -> Option<Resp> {
    http(addr, "GET", path, None, "")
}

fn wait_for<R>(what: &str, c: &Cluster, mut f: impl FnMut() -> Option<R>) -> R {
    let start = Instant::now();
    loop {
        if let Some(r) = f() {
            return r;
        }
        if start.elapsed() > T {
            panic!(
                "timed out after {T:?} waiting for {what}; status: {:#}",
                c.status()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A group with its master on daemon 1's host and one replica on each of
/// daemons 2 and 3, every daemon with an HTTP API and the token.
fn cluster() -> (RedisProc, Vec<RedisProc>, Cluster, Vec<SocketAddr>) {
    let (master, replicas) = start_group(&RedisOpts::default(), 2);
    let g = GroupDef::new(
        "g",
        master.addr(),
        replicas.iter().map(|r| r.addr()).collect(),
    );
    let opts = DaemonOpts {
        local_redis: vec![
            Some(master.addr()),
            Some(replicas[0].addr()),
            Some(replicas[1].addr()),
        ],
        http: true,
        http_token: Some(TOKEN.into()),
        ..DaemonOpts::default()
    };
    let c = Cluster::start_with(&[g], &opts);
    let api: Vec<SocketAddr> = c
        .daemons
        .iter()
        .map(|d| d.http.expect("http_listen"))
        .collect();
    c.wait_settled("g", T);
    for (i, a) in api.iter().enumerate() {
        wait_for(
            &format!(
                "GET /health 200 on daemon {} ({a}); does the daemon start crate::http::serve on http_listen?",
                i + 1
            ),
            &c,
            || get(*a, "/health").filter(|r| r.status == 200),
        );
    }
    (master, replicas, c, api)
}

/// Wait until `/primary?group=g` answers 200 exactly on the daemon next to
/// `master` (index into `api`) and `/replica?group=g` 200 on every other.
fn wait_primary_on(c: &Cluster, api: &[SocketAddr], primary: usize) {
    wait_for(
        &format!(
            "/primary 200 only on daemon {} and /replica 200 elsewhere",
            primary + 1
        ),
        c,
        || {
            for (i, a) in api.iter().enumerate() {
                let p = get(*a, "/primary?group=g")?;
                let r = get(*a, "/replica?group=g")?;
                let want = if i == primary { (200, 503) } else { (503, 200) };
                if (p.status, r.status) != want {
                    return None;
                }
                assert_eq!(p.body["ok"], Value::Bool(p.status == 200), "{}", p.body);
                if p.status == 503 {
                    assert!(p.body["reason"].is_string(), "{}", p.body);
                }
            }
            Some(())
        },
    );
}

#[test]
fn health_endpoints_flip_when_the_master_is_killed() {
    let (mut master, replicas, c, api) = cluster();
    wait_primary_on(&c, &api, 0);
    let r = get(api[1], "/primary?group=g").expect("answer");
    assert_eq!(
        r.body["reason"],
        format!(
            "local redis {} is a replica of {}",
            replicas[0].addr(),
            master.addr()
        )
    );
    // Read endpoints are open.
    let cl = get(api[2], "/v1/cluster").expect("answer");
    assert_eq!(cl.status, 200, "{}", cl.body);
    assert_eq!(cl.body["node_id"], 3);
    assert!(cl.body["leader"].is_u64(), "{}", cl.body);
    let g = get(api[1], "/v1/groups/g").expect("answer");
    assert_eq!(g.status, 200);
    assert_eq!(g.body["master"], master.addr().to_string());
    assert_eq!(get(api[0], "/v1/groups/nope").expect("answer").status, 404);
    // The leader's live exposition: redis_exporter names for every instance,
    // orchestrator metrics, and promtool accepts it.
    let leader = c.leader_id().expect("leader") as usize;
    let text = wait_for("the leader's /metrics with every instance", &c, || {
        let r = get(api[leader - 1], "/metrics")?;
        let t = r.body.as_str()?.to_string();
        (r.status == 200 && t.matches("redis_up{").count() == 3).then_some(t)
    });
    for family in [
        "redis_memory_used_bytes",
        "redis_connected_slaves",
        "raftinel_raft_term",
        "raftinel_group_epoch",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let (ok, msg) = crate::metrics::run_promtool(&["check", "metrics"], Some(&text));
    let unexpected: Vec<&str> = msg
        .lines()
        .filter(|l| !l.trim().is_empty() && !crate::metrics::ALLOWED_LINT.contains(&l.trim()))
        .collect();
    assert!(
        unexpected.is_empty() && (ok || !msg.trim().is_empty()),
        "promtool: {msg}"
    );
    assert_eq!(get(api[0], "/primary").expect("answer").status, 400);

    let old = master.addr().to_string();
    master.kill9();
    // The old master's daemon stops answering 200 as soon as its Redis is down.
    wait_for("/primary 503 on the old master's daemon", &c, || {
        get(api[0], "/primary?group=g").filter(|r| r.status == 503)
    });
    let (new, _) = c.wait("a new master committed", T, |c| {
        c.committed("g").filter(|(m, _)| *m != old)
    });
    let idx = replicas
        .iter()
        .position(|r| r.addr().to_string() == new)
        .expect("new master is a replica")
        + 1;
    wait_for(
        &format!("/primary 200 on daemon {} (next to {new})", idx + 1),
        &c,
        || get(api[idx], "/primary?group=g").filter(|r| r.status == 200),
    );
    let other = 3 - idx;
    wait_for("/replica 200 on the remaining replica's daemon", &c, || {
        get(api[other], "/replica?group=g&max_lag_bytes=1000000").filter(|r| r.status == 200)
    });
    let r = get(api[0], "/primary?group=g").expect("answer");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        get(api[other], "/primary?group=g").expect("answer").status,
        503
    );
}

#[test]
fn failover_over_http_needs_the_token_and_moves_the_primary() {
    let (master, replicas, c, api) = cluster();
    wait_primary_on(&c, &api, 0);
    let path = "/v1/groups/g/failover";
    let target = replicas[1].addr().to_string();
    let body = format!(r#"{{"to": "{target}", "timeout_ms": 5000}}"#);
    // Through a daemon that is not necessarily the leader: it forwards.
    let r = http(api[1], "POST", path, None, &body).expect("answer");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.body["code"], "unauthorized");
    let r = http(
        api[1],
        "POST",
        path,
        Some("wrong-token-0123456789abcdef"),
        &body,
    )
    .expect("answer");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["code"], "forbidden");
    let r = http(api[1], "POST", "/v1/groups/nope/failover", Some(TOKEN), "").expect("answer");
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        c.committed("g").map(|(m, _)| m),
        Some(master.addr().to_string())
    );

    let r = http(api[1], "POST", path, Some(TOKEN), &body).expect("answer");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["epoch"], 1, "{}", r.body);
    assert!(r.body["leader"].is_u64(), "{}", r.body);
    c.wait("the target committed as master", T, |c| {
        c.committed("g").filter(|(m, _)| *m == target)
    });
    wait_primary_on(&c, &api, 2);
    c.wait_settled("g", T);

    // Maintenance on, visible in the group.
    let r = http(
        api[0],
        "PUT",
        "/v1/groups/g/maintenance",
        None,
        r#"{"on": true}"#,
    )
    .expect("answer");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = http(
        api[0],
        "PUT",
        "/v1/groups/g/maintenance",
        Some(TOKEN),
        r#"{"on": true}"#,
    )
    .expect("answer");
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for("maintenance on in GET /v1/groups/g", &c, || {
        get(api[2], "/v1/groups/g").filter(|r| r.body["maintenance"] == Value::Bool(true))
    });
}
