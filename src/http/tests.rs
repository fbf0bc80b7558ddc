//! The HTTP API against a fake daemon loop that answers `ApiCall`s with canned
//! responses, over real TCP on 127.0.0.1 with a minimal HTTP/1.1 client.

use super::error::ApiError;
use super::health::{evaluate, Check};
use super::*;
use crate::config::Secret;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

const TOKEN: &str = "test-token-0123456789abcdef";

type Answer = Arc<dyn Fn(&Request) -> Option<DaemonResponse> + Send + Sync>;

/// A running server and the fake daemon behind it.
struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Request>>>,
    metrics: watch::Sender<String>,
}

impl Fake {
    fn seen(&self) -> Vec<Request> {
        self.seen.lock().expect("lock").clone()
    }
}

fn settings(token: Option<&str>, open_read: bool) -> HttpSettings {
    HttpSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        token: token.map(Secret::new),
        open_read,
    }
}

fn limits() -> Limits {
    Limits {
        call: Duration::from_millis(400),
        health: Duration::from_millis(200),
    }
}

/// Start the server with a fake daemon loop answering with `answer` (`None`:
/// keep the call unanswered).
async fn start(settings: HttpSettings, answer: Answer) -> Fake {
    let (tx, mut rx) = mpsc::channel::<ApiCall>(16);
    let (metrics, metrics_rx) = watch::channel("# HELP raftinel_up 1\nraftinel_up 1\n".to_string());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(c) = rx.recv().await {
            s.lock().expect("lock").push(c.request.clone());
            match answer(&c.request) {
                Some(r) => {
                    let _ = c.reply.send(r);
                }
                None => held.push(c.reply),
            }
        }
    });
    serve_on(settings, tx, metrics_rx, seen, metrics).await
}

async fn serve_on(
    settings: HttpSettings,
    calls: mpsc::Sender<ApiCall>,
    metrics_rx: watch::Receiver<String>,
    seen: Arc<Mutex<Vec<Request>>>,
    metrics: watch::Sender<String>,
) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = HttpHandles {
        calls,
        metrics: metrics_rx,
    };
    tokio::spawn(serve_with(listener, settings, h, limits()));
    Fake {
        addr,
        seen,
        metrics,
    }
}

/// A fake daemon answering every status with `status` and every mutating
/// request with `mutating`.
fn daemon(status: Value, mutating: DaemonResponse) -> Answer {
    Arc::new(move |r| {
        Some(match r {
            Request::Status => DaemonResponse::Status {
                status: status.clone(),
            },
            _ => mutating.clone(),
        })
    })
}

fn accepted() -> DaemonResponse {
    DaemonResponse::Accepted {
        epoch: Some(4),
        leader: 1,
    }
}

/// Daemon 2's status: follower (fresh), local Redis 10.0.0.2:6379 a replica of
/// the committed master 10.0.0.1:6379, 10 bytes behind; 10.0.0.3 is 5000
/// bytes behind.
fn status() -> Value {
    json!({
        "node_id": 2,
        "version": "0.1.0",
        "fresh": true,
        "applied_index": 12,
        "local_redis": "10.0.0.2:6379",
        "raft": {"term": 3, "leader": 1, "is_leader": false, "can_act": false},
        "peers": [],
        "groups": [{
            "name": "mymaster",
            "initialised": true,
            "epoch": 3,
            "master": "10.0.0.1:6379",
            "quorum": 2,
            "odown": false,
            "failover": null,
            "maintenance": false,
            "last_outcome": null,
            "instances": [
                {"addr": "10.0.0.1:6379", "committed_role": "master", "reported_role": "master",
                 "replica_of": null, "link_up": null, "offset": 1000, "lag_bytes": null,
                 "sdown_here": false},
                {"addr": "10.0.0.2:6379", "committed_role": "slave", "reported_role": "slave",
                 "replica_of": "10.0.0.1:6379", "link_up": true, "offset": 990, "lag_bytes": 10,
                 "sdown_here": false},
                {"addr": "10.0.0.3:6379", "committed_role": "slave", "reported_role": "slave",
                 "replica_of": "10.0.0.1:6379", "link_up": true, "offset": 0, "lag_bytes": 1000,
                 "sdown_here": false}
            ]
        }]
    })
}

/// `status()` as seen by the daemon next to `local`.
fn status_at(local: &str) -> Value {
    let mut s = status();
    s["local_redis"] = json!(local);
    s
}

fn instance_mut<'a>(s: &'a mut Value, addr: &str) -> &'a mut Value {
    s["groups"][0]["instances"]
        .as_array_mut()
        .expect("instances")
        .iter_mut()
        .find(|i| i["addr"] == addr)
        .expect("instance")
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// An error answer: status, JSON `{"error", "code"}`; returns the code.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert!(v["error"].is_string(), "{v}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{:?}",
            self.headers
        );
        v["code"].as_str().expect("code").to_string()
    }
}

/// One HTTP/1.1 request with `Connection: close`.
async fn http(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>, body: &str) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .expect("response within 5 s")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn get(f: &Fake, path: &str) -> Resp {
    http(f.addr, "GET", path, None, "").await
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

// ------------------------------------------------------------------ endpoints

#[tokio::test]
async fn cluster_is_this_daemons_status_with_the_leader() {
    let f = start(settings(Some(TOKEN), true), daemon(status(), accepted())).await;
    let r = get(&f, "/v1/cluster").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["node_id"], 2);
    assert_eq!(v["leader"], 1);
    assert_eq!(v["authoritative"], true);
    assert_eq!(v["local_redis"], "10.0.0.2:6379");
    assert_eq!(v["groups"][0]["master"], "10.0.0.1:6379");
    assert_eq!(f.seen(), vec![Request::Status]);
}

#[tokio::test]
async fn one_group_and_unknown_group() {
    let f = start(settings(None, true), daemon(status(), accepted())).await;
    let r = get(&f, "/v1/groups/mymaster").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["name"], "mymaster");
    assert_eq!(v["epoch"], 3);
    assert_eq!(v["instances"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        v["view"],
        json!({"node_id": 2, "leader": 1, "is_leader": false, "authoritative": true})
    );

    let r = get(&f, "/v1/groups/nope").await;
    assert_eq!(r.error(404), "unknown_group");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("mymaster"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn failover_is_accepted_with_the_options_of_the_body() {
    let f = start(settings(Some(TOKEN), true), daemon(status(), accepted())).await;
    let body = r#"{"to": "10.0.0.3:6379", "timeout_ms": 3000}"#;
    let r = http(
        f.addr,
        "POST",
        "/v1/groups/mymaster/failover",
        Some(&bearer()),
        body,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"group": "mymaster", "epoch": 4, "leader": 1})
    );
    // No body: the best replica, the CLI's default timeout, no force.
    let r = http(
        f.addr,
        "POST",
        "/v1/groups/mymaster/failover",
        Some(&bearer()),
        "",
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = http(
        f.addr,
        "POST",
        "/v1/groups/mymaster/failover",
        Some(&bearer()),
        r#"{"force": true}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let opts = |to: Option<Addr>, timeout_ms, force| Request::Failover {
        group: "mymaster".into(),
        opts: FailoverOptions {
            to,
            timeout_ms,
            force,
        },
    };
    assert_eq!(
        f.seen(),
        vec![
            opts(Some(Addr::new("10.0.0.3", 6379)), 3000, false),
            opts(None, DEFAULT_FAILOVER_TIMEOUT_MS, false),
            opts(None, DEFAULT_FAILOVER_TIMEOUT_MS, true),
        ]
    );
}

#[tokio::test]
async fn bad_failover_bodies_are_refused_before_the_daemon_is_asked() {
    let f = start(settings(Some(TOKEN), true), daemon(status(), accepted())).await;
    for (body, needle) in [
        ("{", "invalid JSON body"),
        (r#"{"to": 5}"#, "invalid JSON body"),
        (r#"{"too": "10.0.0.3:6379"}"#, "unknown field `too`"),
        (r#"{"to": "10.0.0.3"}"#, "missing :port"),
        (r#"{"to": "10.0.0.3 :6379"}"#, "whitespace"),
        (r#"{"timeout_ms": -1}"#, "invalid JSON body"),
    ] {
        let r = http(
            f.addr,
            "POST",
            "/v1/groups/mymaster/failover",
            Some(&bearer()),
            body,
        )
        .await;
        assert_eq!(r.error(400), "bad_request", "{body}");
        assert!(
            r.json()["error"].as_str().unwrap_or("").contains(needle),
            "{body}: {}",
            r.body
        );
    }
    assert!(f.seen().is_empty());
}

#[tokio::test]
async fn maintenance_on_and_off() {
    let f = start(
        settings(Some(TOKEN), true),
        daemon(
            status(),
            DaemonResponse::Accepted {
                epoch: None,
                leader: 1,
            },
        ),
    )
    .await;
    for on in [true, false] {
        let body = format!(r#"{{"on": {on}}}"#);
        let r = http(
            f.addr,
            "PUT",
            "/v1/groups/mymaster/maintenance",
            Some(&bearer()),
            &body,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(
            r.json(),
            json!({"group": "mymaster", "maintenance": on, "leader": 1})
        );
    }
    for body in ["", "{}", r#"{"on": "yes"}"#] {
        let r = http(
            f.addr,
            "PUT",
            "/v1/groups/mymaster/maintenance",
            Some(&bearer()),
            body,
        )
        .await;
        assert_eq!(r.error(400), "bad_request", "{body}");
    }
    assert_eq!(
        f.seen(),
        vec![
            Request::Maintenance {
                group: "mymaster".into(),
                on: true
            },
            Request::Maintenance {
                group: "mymaster".into(),
                on: false
            },
        ]
    );
}

#[tokio::test]
async fn metrics_text_from_the_watch_channel() {
    let f = start(settings(None, true), daemon(status(), accepted())).await;
    let r = get(&f, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    assert_eq!(r.body, "# HELP raftinel_up 1\nraftinel_up 1\n");
    f.metrics.send_replace("raftinel_up 0\n".into());
    assert_eq!(get(&f, "/metrics").await.body, "raftinel_up 0\n");
    assert!(f.seen().is_empty(), "metrics do not go through the loop");
}

#[tokio::test]
async fn health_answers_when_the_loop_does() {
    let f = start(settings(None, true), daemon(status(), accepted())).await;
    let r = get(&f, "/health").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.json()["node_id"], 2);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json_errors() {
    let f = start(settings(Some(TOKEN), true), daemon(status(), accepted())).await;
    assert_eq!(get(&f, "/v2/nothing").await.error(404), "not_found");
    let r = http(f.addr, "DELETE", "/v1/groups/mymaster", Some(&bearer()), "").await;
    assert_eq!(r.error(405), "method_not_allowed");
    let r = http(f.addr, "GET", "/v1/groups/mymaster/failover", None, "").await;
    assert_eq!(r.error(405), "method_not_allowed");
}

// ------------------------------------------------------------------ errors

#[test]
fn daemon_error_codes_map_to_statuses() {
    for (message, status, code) in [
        (
            "NOTLEADER no Raft leader right now; retry in a moment",
            503,
            "not_leader",
        ),
        ("ERR No such master with that name", 404, "unknown_group"),
        ("INPROG Failover already in progress", 409, "in_progress"),
        (
            "NOGOODSLAVE No suitable replica to promote (10.0.0.3:6379: priority 0)",
            409,
            "no_good_replica",
        ),
        ("ERR timeout must be above 0 ms", 400, "invalid"),
        (
            "cannot reach the leader (daemon 1): connection refused",
            502,
            "leader_unreachable",
        ),
        ("unknown request: x", 502, "daemon_error"),
    ] {
        let e = ApiError::from_daemon(message);
        assert_eq!(e.status.as_u16(), status, "{message}");
        assert_eq!(e.code, code, "{message}");
        assert_eq!(e.message, message);
        assert_eq!(e.retry_after.is_some(), status == 503, "{message}");
    }
}

#[tokio::test]
async fn daemon_refusals_become_json_errors_with_their_status() {
    for (message, code_status, code) in [
        (
            "NOTLEADER this daemon is not the Raft leader (leader: None)",
            503,
            "not_leader",
        ),
        ("ERR No such master with that name", 404, "unknown_group"),
        ("INPROG Failover already in progress", 409, "in_progress"),
        (
            "NOGOODSLAVE No suitable replica to promote (the group has no replica)",
            409,
            "no_good_replica",
        ),
        (
            "ERR 10.0.0.9:6379 is not a replica of mymaster (known replicas: 10.0.0.2:6379)",
            400,
            "invalid",
        ),
    ] {
        let f = start(
            settings(Some(TOKEN), true),
            daemon(
                status(),
                DaemonResponse::Error {
                    message: message.into(),
                },
            ),
        )
        .await;
        let r = http(
            f.addr,
            "POST",
            "/v1/groups/mymaster/failover",
            Some(&bearer()),
            "{}",
        )
        .await;
        assert_eq!(r.error(code_status), code, "{message}");
        assert_eq!(r.json()["error"], message);
        if code_status == 503 {
            assert_eq!(r.header("retry-after"), Some("1"));
        }
        let r = http(
            f.addr,
            "PUT",
            "/v1/groups/mymaster/maintenance",
            Some(&bearer()),
            r#"{"on": true}"#,
        )
        .await;
        assert_eq!(r.error(code_status), code, "{message}");
    }
}

#[tokio::test]
async fn a_call_the_loop_does_not_answer_times_out() {
    let f = start(settings(Some(TOKEN), true), Arc::new(|_| None)).await;
    let r = get(&f, "/v1/cluster").await;
    assert_eq!(r.error(504), "timeout");
    assert!(
        r.json()["error"].as_str().unwrap_or("").contains("400 ms"),
        "{}",
        r.body
    );
    let r = http(
        f.addr,
        "POST",
        "/v1/groups/mymaster/failover",
        Some(&bearer()),
        "",
    )
    .await;
    assert_eq!(r.error(504), "timeout");
    // Health checks: 503 within the health limit.
    let r = get(&f, "/health").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["status"], "unavailable");
    assert!(
        r.json()["error"].as_str().unwrap_or("").contains("200 ms"),
        "{}",
        r.body
    );
    let r = get(&f, "/primary?group=mymaster").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["ok"], false);
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap_or("")
            .contains("did not answer"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_stopped_loop_is_unavailable() {
    let (tx, rx) = mpsc::channel::<ApiCall>(1);
    drop(rx);
    let (metrics, metrics_rx) = watch::channel(String::new());
    let f = serve_on(
        settings(None, true),
        tx,
        metrics_rx,
        Arc::new(Mutex::new(Vec::new())),
        metrics,
    )
    .await;
    assert_eq!(get(&f, "/v1/cluster").await.error(503), "unavailable");
    let r = get(&f, "/health").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "unavailable");
}

// ------------------------------------------------------------------ auth

#[tokio::test]
async fn mutating_endpoints_need_the_token() {
    let f = start(settings(Some(TOKEN), true), daemon(status(), accepted())).await;
    let path = "/v1/groups/mymaster/failover";
    let r = http(f.addr, "POST", path, None, "").await;
    assert_eq!(r.error(401), "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"raftinel\"")
    );
    let r = http(f.addr, "POST", path, Some(&format!("Basic {TOKEN}")), "").await;
    assert_eq!(r.error(401), "unauthorized");
    let r = http(f.addr, "POST", path, Some("Bearer"), "").await;
    assert_eq!(r.error(401), "unauthorized");
    let r = http(
        f.addr,
        "POST",
        path,
        Some("Bearer not-the-token-0123456789"),
        "",
    )
    .await;
    assert_eq!(r.error(403), "forbidden");
    assert!(!r.body.contains(TOKEN));
    let r = http(f.addr, "POST", path, Some(&format!("Bearer {TOKEN}x")), "").await;
    assert_eq!(r.error(403), "forbidden");
    let r = http(
        f.addr,
        "PUT",
        "/v1/groups/mymaster/maintenance",
        Some("Bearer wrong"),
        r#"{"on": true}"#,
    )
    .await;
    assert_eq!(r.error(403), "forbidden");
    assert!(f.seen().is_empty(), "refused calls never reach the daemon");
    let r = http(f.addr, "POST", path, Some(&format!("bearer {TOKEN}")), "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    // Open reads: no token needed.
    for p in [
        "/v1/cluster",
        "/v1/groups/mymaster",
        "/metrics",
        "/health",
        "/replica?group=mymaster",
    ] {
        assert_eq!(get(&f, p).await.status, 200, "{p}");
    }
}

#[tokio::test]
async fn without_a_configured_token_mutating_endpoints_are_refused() {
    let f = start(settings(None, true), daemon(status(), accepted())).await;
    for auth in [None, Some("Bearer anything-at-all-0123456789")] {
        let r = http(f.addr, "POST", "/v1/groups/mymaster/failover", auth, "").await;
        assert_eq!(r.error(403), "forbidden");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap_or("")
                .contains("no http_token configured"),
            "{}",
            r.body
        );
        let r = http(
            f.addr,
            "PUT",
            "/v1/groups/mymaster/maintenance",
            auth,
            r#"{"on": true}"#,
        )
        .await;
        assert_eq!(r.error(403), "forbidden");
    }
    assert!(f.seen().is_empty());
}

#[tokio::test]
async fn closed_reads_need_the_token_too() {
    let f = start(settings(Some(TOKEN), false), daemon(status(), accepted())).await;
    for p in [
        "/v1/cluster",
        "/v1/groups/mymaster",
        "/metrics",
        "/health",
        "/primary?group=mymaster",
        "/replica?group=mymaster",
    ] {
        assert_eq!(
            http(f.addr, "GET", p, None, "").await.error(401),
            "unauthorized",
            "{p}"
        );
        let r = http(f.addr, "GET", p, Some("Bearer wrong-token-0123456789"), "").await;
        assert_eq!(r.error(403), "forbidden", "{p}");
        let r = http(f.addr, "GET", p, Some(&bearer()), "").await;
        // Daemon 2's Redis is a replica: /primary answers 503, with a reason.
        let expected = if p.starts_with("/primary") { 503 } else { 200 };
        assert_eq!(r.status, expected, "{p}: {}", r.body);
    }
}

// ------------------------------------------------------------------ health checks

#[tokio::test]
async fn primary_and_replica_over_http() {
    // Daemon 2, next to the replica 10.0.0.2.
    let f = start(settings(None, true), daemon(status(), accepted())).await;
    let r = get(&f, "/primary?group=mymaster").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json()["reason"],
        "local redis 10.0.0.2:6379 is a replica of 10.0.0.1:6379"
    );
    assert_eq!(r.json()["ok"], false);
    let r = get(&f, "/replica?group=mymaster").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ok"], true);
    assert_eq!(r.json()["role"], "slave");
    assert_eq!(r.json()["lag_bytes"], 10);
    assert_eq!(
        get(&f, "/replica?group=mymaster&max_lag_bytes=10")
            .await
            .status,
        200
    );
    let r = get(&f, "/replica?group=mymaster&max_lag_bytes=9").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["reason"],
        "local redis 10.0.0.2:6379 lags 10.0.0.1:6379 by 10 bytes (max_lag_bytes 9)"
    );

    // Daemon 1, next to the master.
    let f = start(
        settings(None, true),
        daemon(status_at("10.0.0.1:6379"), accepted()),
    )
    .await;
    let r = get(&f, "/primary?group=mymaster").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"ok": true, "group": "mymaster", "role": "master", "node_id": 2,
               "local_redis": "10.0.0.1:6379", "master": "10.0.0.1:6379", "epoch": 3})
    );
    let r = get(&f, "/replica?group=mymaster").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["reason"],
        "local redis 10.0.0.1:6379 is the master of mymaster, not a replica"
    );

    // Bad queries.
    for p in ["/primary", "/primary?group=", "/replica?max_lag_bytes=3"] {
        let r = get(&f, p).await;
        assert_eq!(r.error(400), "bad_request", "{p}");
        assert!(
            r.json()["error"].as_str().unwrap_or("").contains("group"),
            "{p}"
        );
    }
    for p in [
        "/replica?group=mymaster&max_lag_bytes=-1",
        "/replica?group=mymaster&max_lag_bytes=lots",
        "/primary?group=mymaster&max_lag_bytes=3",
    ] {
        assert_eq!(get(&f, p).await.error(400), "bad_request", "{p}");
    }
    assert_eq!(
        get(&f, "/primary?group=other").await.error(404),
        "unknown_group"
    );
    assert_eq!(
        get(&f, "/replica?group=other").await.error(404),
        "unknown_group"
    );
}

fn verdict(st: &Value, check: Check) -> (bool, String) {
    let v = evaluate(st, "mymaster", check).expect("known group");
    assert_eq!(v.body["ok"], v.ok);
    (v.ok, v.body["reason"].as_str().unwrap_or("").to_string())
}

const PRIMARY: Check = Check::Primary;
const REPLICA: Check = Check::Replica {
    max_lag_bytes: None,
};

#[test]
fn primary_true_and_false_cases() {
    let m = "10.0.0.1:6379";
    assert_eq!(verdict(&status_at(m), PRIMARY), (true, String::new()));

    // Not authoritative: not fresh.
    let mut s = status_at(m);
    s["fresh"] = json!(false);
    let (ok, why) = verdict(&s, PRIMARY);
    assert!(!ok);
    assert!(why.contains("not authoritative"), "{why}");
    // Without a `fresh` field: a known leader is enough, none is not.
    let mut s = status_at(m);
    s.as_object_mut().expect("object").remove("fresh");
    assert!(verdict(&s, PRIMARY).0);
    s["raft"]["leader"] = Value::Null;
    let (ok, why) = verdict(&s, PRIMARY);
    assert!(!ok);
    assert!(why.contains("(leader: none)"), "{why}");
    s["raft"]["can_act"] = json!(true);
    assert!(verdict(&s, PRIMARY).0);

    // The committed master does not answer, or reports replica.
    let mut s = status_at(m);
    instance_mut(&mut s, m)["sdown_here"] = json!(true);
    let (ok, why) = verdict(&s, PRIMARY);
    assert!(!ok);
    assert!(why.contains("does not answer"), "{why}");
    let mut s = status_at(m);
    instance_mut(&mut s, m)["reported_role"] = json!("slave");
    instance_mut(&mut s, m)["replica_of"] = json!("10.0.0.3:6379");
    let (ok, why) = verdict(&s, PRIMARY);
    assert!(!ok);
    assert!(why.contains("reports role slave of 10.0.0.3:6379"), "{why}");
    let mut s = status_at(m);
    instance_mut(&mut s, m)["reported_role"] = Value::Null;
    assert!(verdict(&s, PRIMARY).1.contains("has not reported its role"));

    // An old master back as master, not yet demoted.
    let mut s = status_at("10.0.0.3:6379");
    instance_mut(&mut s, "10.0.0.3:6379")["reported_role"] = json!("master");
    let (ok, why) = verdict(&s, PRIMARY);
    assert!(!ok);
    assert!(
        why.contains("reports role master but is not the committed master of mymaster (committed master: 10.0.0.1:6379)"),
        "{why}"
    );
    // A replica of something else.
    let mut s = status();
    instance_mut(&mut s, "10.0.0.2:6379")["replica_of"] = json!("10.0.0.3:6379");
    assert_eq!(
        verdict(&s, PRIMARY).1,
        "local redis 10.0.0.2:6379 is a replica of 10.0.0.3:6379; the committed master is 10.0.0.1:6379"
    );
    // Not in the group; no local Redis; group not initialised.
    assert!(verdict(&status_at("10.0.0.9:6379"), PRIMARY)
        .1
        .contains("is not an instance of group mymaster"));
    let mut s = status();
    s["local_redis"] = Value::Null;
    assert_eq!(
        verdict(&s, PRIMARY).1,
        "this daemon has no local_redis configured"
    );
    let mut s = status_at(m);
    s["groups"][0]["initialised"] = json!(false);
    s["groups"][0]["master"] = Value::Null;
    assert!(verdict(&s, PRIMARY).1.contains("no committed master yet"));
    // Unknown group.
    let e = evaluate(&status(), "nope", PRIMARY).expect_err("unknown");
    assert_eq!(e.status.as_u16(), 404);
}

#[test]
fn replica_true_and_false_cases() {
    let r = "10.0.0.2:6379";
    assert_eq!(verdict(&status(), REPLICA), (true, String::new()));
    let lag = |n| Check::Replica {
        max_lag_bytes: Some(n),
    };
    assert!(verdict(&status(), lag(10)).0);
    assert!(!verdict(&status(), lag(9)).0);
    // 10.0.0.3 is 1000 bytes behind.
    assert!(verdict(&status_at("10.0.0.3:6379"), lag(1000)).0);
    assert_eq!(
        verdict(&status_at("10.0.0.3:6379"), lag(999)).1,
        "local redis 10.0.0.3:6379 lags 10.0.0.1:6379 by 1000 bytes (max_lag_bytes 999)"
    );

    let mut s = status();
    instance_mut(&mut s, r)["link_up"] = json!(false);
    assert_eq!(
        verdict(&s, REPLICA).1,
        "the replication link of local redis 10.0.0.2:6379 to 10.0.0.1:6379 is down"
    );
    let mut s = status();
    instance_mut(&mut s, r)["replica_of"] = json!("10.0.0.3:6379");
    assert_eq!(
        verdict(&s, REPLICA).1,
        "local redis 10.0.0.2:6379 replicates from 10.0.0.3:6379, not from the committed master 10.0.0.1:6379"
    );
    let mut s = status();
    instance_mut(&mut s, r)["reported_role"] = json!("master");
    assert!(verdict(&s, REPLICA)
        .1
        .contains("reports role master, not slave"));
    let mut s = status();
    instance_mut(&mut s, r)["sdown_here"] = json!(true);
    assert!(verdict(&s, REPLICA).1.contains("does not answer"));
    let mut s = status();
    s["fresh"] = json!(false);
    assert!(verdict(&s, REPLICA).1.contains("not authoritative"));

    // A discovered replica (no committed lag): lag from the two offsets.
    let mut s = status();
    let i = instance_mut(&mut s, r);
    i["committed_role"] = json!("discovered");
    i["lag_bytes"] = Value::Null;
    assert!(verdict(&s, lag(10)).0);
    assert!(!verdict(&s, lag(9)).0);
    // No offsets at all: healthy without a bound, unknown with one.
    instance_mut(&mut s, "10.0.0.1:6379")["offset"] = Value::Null;
    assert!(verdict(&s, REPLICA).0);
    assert!(verdict(&s, lag(1_000_000)).1.contains("is unknown"));
}
