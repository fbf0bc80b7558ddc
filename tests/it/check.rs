//! `raftinel check` against real redis-server processes, and
//! `raftinel notify-test` against a local HTTP receiver and a dead port.

use crate::cluster::bin;
use crate::harness::{free_port, start_group, RedisOpts, RedisProc};
use raftinel::core::types::Addr;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The top of a valid one-daemon config (no group yet).
const HEAD: &str = r#"node_id = 1
data_dir = "data"
peer_secret = "0123456789abcdef0123"
redis_timeout_ms = 1000

[discovery]
enabled = false

[[peer]]
id = 1
addr = "127.0.0.1:7001"
"#;

/// One `[[group]]` table.
fn group(name: &str, master: &Addr, replicas: &[Addr], password: Option<&str>) -> String {
    let replicas: Vec<String> = replicas.iter().map(|r| format!("\"{r}\"")).collect();
    let mut t = format!(
        "\n[[group]]\nname = \"{name}\"\nmaster = \"{master}\"\nreplicas = [{}]\nquorum = 1\n",
        replicas.join(", ")
    );
    if let Some(p) = password {
        t.push_str(&format!("password = \"{p}\"\n"));
    }
    t
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("raftinel.toml");
    std::fs::write(&path, format!("{HEAD}{body}")).expect("write config");
    path
}

/// Runs `raftinel <args>`: (exit code, stdout, stderr).
fn run(args: &[&str], config: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run raftinel");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `raftinel check --json`: (exit code, report).
fn check_json(config: &Path) -> (i32, Value) {
    let (code, out, err) = run(&["check", "--json"], config);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

/// (code, severity, instance) of every finding, sorted.
fn findings(report: &Value) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["instance"].as_str().unwrap_or("(group)").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn f(code: &str, sev: &str, at: &str) -> (String, String, String) {
    (code.to_string(), sev.to_string(), at.to_string())
}

#[test]
fn check_reports_a_risky_setup_with_exit_status_2() {
    // Master: password, no AOF, no maxmemory.
    let master = RedisProc::start(RedisOpts::default().password("pw"));
    // Replica 1: never promoted.
    let r1 = RedisProc::start(
        RedisOpts::default()
            .password("pw")
            .replica_of(&master.addr())
            .line("replica-priority 0"),
    );
    // Replica 2: requirepass but no masterauth (cannot sync), never promoted.
    let mut opts = RedisOpts::default()
        .replica_of(&master.addr())
        .line("replica-priority 0");
    opts.requirepass = Some("pw".into());
    let r2 = RedisProc::start(opts);
    // Another group: a wrong password, and a replica nobody listens for.
    let other = RedisProc::start(RedisOpts::default().password("right"));
    let dead = Addr::new("127.0.0.1", free_port());

    let dir = tempfile::tempdir().unwrap();
    let body = group("risky", &master.addr(), &[r1.addr(), r2.addr()], Some("pw"))
        + &group(
            "other",
            &other.addr(),
            std::slice::from_ref(&dead),
            Some("wrong"),
        );
    let config = write_config(dir.path(), &body);

    let (m, a1, a2, o, d) = (
        master.addr().to_string(),
        r1.addr().to_string(),
        r2.addr().to_string(),
        other.addr().to_string(),
        dead.to_string(),
    );
    let (code, report) = check_json(&config);
    let mut want = vec![
        f("appendonly-off", "warning", &m),
        f("maxmemory-unset", "warning", &m),
        f("maxmemory-unset", "warning", &a1),
        f("maxmemory-unset", "warning", &a2),
        f("masterauth-missing", "error", &a2),
        f("no-promotable-replica", "error", "(group)"),
        f("auth-failed", "error", &o),
        f("unreachable", "error", &d),
    ];
    want.sort();
    assert_eq!(findings(&report), want, "{report:#}");
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["exit_code"], 2);
    assert_eq!(report["errors"], 4);

    // The human-readable output: one line per finding, severity and instance.
    let (code, out, _) = run(&["check"], &config);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("checked 5 instance(s) in 2 group(s)\n"),
        "{out}"
    );
    let line = |code: &str| {
        out.lines()
            .find(|l| l.contains(&format!(" {code}: ")))
            .unwrap_or_else(|| panic!("no {code} line in:\n{out}"))
            .to_string()
    };
    assert!(
        line("masterauth-missing").starts_with(&format!(
            "ERROR   risky {a2} masterauth-missing: requirepass is set but masterauth is empty"
        )),
        "{out}"
    );
    assert!(
        line("appendonly-off").starts_with(&format!("WARNING risky {m} appendonly-off: ")),
        "{out}"
    );
    assert_eq!(
        line("no-promotable-replica"),
        format!("ERROR   risky (group) no-promotable-replica: replica-priority 0 on every replica ({a1}, {a2}): no failover is possible")
    );
    assert!(
        line("auth-failed").starts_with(&format!(
            "ERROR   other {o} auth-failed: authentication failed (WRONGPASS"
        )),
        "{out}"
    );
    assert!(
        line("unreachable").starts_with(&format!(
            "ERROR   other {d} unreachable: cannot be checked: cannot connect"
        )),
        "{out}"
    );
    assert!(
        out.ends_with("4 error(s), 4 warning(s), 0 info; see docs/check.md\n"),
        "{out}"
    );
    // No password in the output.
    assert!(!out.contains("pw\"") && !out.contains("right"), "{out}");
}

#[test]
fn check_is_clean_then_warns_then_says_fenced() {
    let opts = RedisOpts::default()
        .password("pw")
        .appendonly()
        .line("maxmemory 100mb");
    let (master, replicas) = start_group(&opts, 2);
    let dir = tempfile::tempdir().unwrap();
    // Only one replica in the config: the other is found in the master's INFO.
    let config = write_config(
        dir.path(),
        &group("clean", &master.addr(), &[replicas[0].addr()], Some("pw")),
    );

    let (code, report) = check_json(&config);
    assert_eq!(findings(&report), vec![], "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    let instances = report["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{report:#}");
    assert_eq!(instances[0]["role"], "master");
    assert_eq!(instances[2]["addr"], replicas[1].addr().to_string());
    assert_eq!(instances[2]["discovered"], true);
    assert!(instances.iter().all(|i| i["status"] == "ok"), "{report:#}");
    let (code, out, _) = run(&["check"], &config);
    assert_eq!(
        (code, out.as_str()),
        (0, "checked 3 instance(s) in 1 group(s)\nno findings\n")
    );

    // Info only: exit status 0.
    assert_eq!(
        replicas[0].cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "5"]),
        "OK"
    );
    let (code, report) = check_json(&config);
    let at = replicas[0].addr().to_string();
    assert_eq!(
        findings(&report),
        vec![f("diskless-sync-delay", "info", &at)]
    );
    assert_eq!(code, 0);

    // A warning: exit status 1.
    assert_eq!(master.cmd(&["CONFIG", "SET", "appendonly", "no"]), "OK");
    let (code, _) = check_json(&config);
    assert_eq!(code, 1);

    // raftinel's fence on the master.
    assert_eq!(
        master.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1000000"]),
        "OK"
    );
    let (code, out, _) = run(&["check"], &config);
    assert_eq!(code, 1, "{out}");
    let m = master.addr().to_string();
    assert!(
        out.contains(&format!(
            "WARNING clean {m} fenced: min-replicas-to-write 1000000: fenced by raftinel"
        )),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// notify-test
// ---------------------------------------------------------------------------

/// A local HTTP receiver: answers 200 to every request, records the bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= p + 4 + len {
                            let body = String::from_utf8_lossy(&buf[p + 4..p + 4 + len]);
                            g.lock().unwrap().push(body.to_string());
                            break;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (url, got)
}

fn webhook(name: &str, url: &str) -> String {
    format!(
        "\n[[notify]]\nname = \"{name}\"\ntype = \"webhook\"\nurl = \"{url}\"\ntimeout_ms = 3000\n"
    )
}

async fn run_async(args: &'static [&'static str], config: PathBuf) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || run(args, &config))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_test_reports_success_and_the_exact_error() {
    let (url, got) = receiver().await;
    let dead_port = free_port();
    let dead = format!("http://127.0.0.1:{dead_port}/hook");
    let dir = tempfile::tempdir().unwrap();
    let g = group("g", &Addr::new("127.0.0.1", 6379), &[], None);
    let config = write_config(
        dir.path(),
        &format!("{g}{}{}", webhook("ops", &url), webhook("dead", &dead)),
    );

    // Only the working channel: exit 0, the receiver got a JSON test message.
    let (code, out, err) = run_async(&["notify-test", "--channel", "ops"], config.clone()).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "ok      ops (webhook): test message sent\n"),
        "{err}"
    );
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let v: Value = serde_json::from_str(&bodies[0]).expect("JSON body");
    assert!(v.is_object(), "{v}");

    // Every channel: the dead one fails with the exact error, exit 1.
    let (code, out, err) = run_async(&["notify-test"], config.clone()).await;
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "ok      ops (webhook): test message sent",
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "FAILED  dead (webhook): webhook {dead}: error sending request"
        )),
        "{out}"
    );
    assert!(
        lines[1].ends_with("Connection refused (os error 111)"),
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(got.lock().unwrap().len(), 2);

    // An unknown channel: exit 2, the known ones listed.
    let (code, _, err) = run_async(&["notify-test", "--channel", "pager"], config).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("no [[notify]] channel named \"pager\"; known channels: ops, dead"),
        "{err}"
    );

    // No channel at all.
    let config = write_config(dir.path(), &g);
    let (code, _, err) = run_async(&["notify-test"], config).await;
    assert_eq!(code, 2);
    assert!(err.contains("no [[notify]] channels configured"), "{err}");
}
