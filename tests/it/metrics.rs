//! Metrics and alert rules checked by Prometheus' own tool, on real Redis
//! INFO: `promtool check metrics` on [`Metrics::render`],
//! `promtool check rules` / `promtool test rules` on
//! config/prometheus/alerts*.yml, the Grafana dashboard's queries against
//! the metrics we export, and the built-in alerts firing and resolving on a
//! real redis-server.
//!
//! promtool comes from the Debian package `prometheus` (scripts/test.sh
//! installs it). Without it these tests FAIL, saying so: they never skip.

use crate::harness::{start_group, RedisOpts, RedisProc};
use raftinel::alerts::{AlertEngine, AlertRules, InstanceSample, RuleBase};
use raftinel::metrics::{parse_info_metrics, FiringAlert, Metrics, RaftMetrics};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// promtool's path; panics with what to do when it is missing.
fn promtool() -> &'static str {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => "promtool",
        _ => panic!(
            "promtool is not installed (Debian package `prometheus`): run scripts/test.sh, \
             which installs it (apt-get install prometheus)"
        ),
    }
}

/// Runs promtool with `args` (and `stdin`); returns (success, stdout+stderr).
pub(crate) fn run_promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(promtool());
    cmd.args(args)
        .current_dir(root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run promtool");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write to promtool");
    }
    let out = child.wait_with_output().expect("wait for promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Metrics of a real master (AOF on, maxmemory set) and replica, and of every
/// raftinel_ family.
fn populated(master: &RedisProc, replica: &RedisProc) -> Metrics {
    let m = Metrics::new();
    for (p, name) in [(master, "master"), (replica, "replica")] {
        let info = p.cmd(&["INFO"]);
        let parsed = parse_info_metrics(&info);
        assert!(
            parsed.used_memory.is_some() && parsed.role.is_some(),
            "INFO of the {name} not parsed:\n{info}"
        );
        m.set_instance("mymaster", &p.addr().to_string(), true, Some(parsed));
        m.set_sdown("mymaster", &p.addr().to_string(), false);
    }
    m.set_instance("mymaster", "127.0.0.1:1", false, None);
    m.set_sdown("mymaster", "127.0.0.1:1", true);
    m.set_raft(RaftMetrics {
        node_id: 1,
        term: 4,
        is_leader: true,
        leader_id: 1,
        quorum_reachable: true,
    });
    m.set_group("mymaster", 3);
    m.record_failover("mymaster", "completed", Some(Duration::from_millis(1500)));
    m.register_channel("ops-mail");
    m.record_notification("ops-mail", "delivered");
    m.set_alerts(vec![FiringAlert {
        alert: "RedisMemoryHigh".into(),
        group: "mymaster".into(),
        instance: master.addr().to_string(),
    }]);
    m
}

fn group() -> (RedisProc, Vec<RedisProc>) {
    let opts = RedisOpts::default().appendonly().line("maxmemory 64mb");
    start_group(&opts, 1)
}

/// promtool lint findings accepted on purpose: redis_exporter's own names.
pub(crate) const ALLOWED_LINT: &[&str] =
    &["redis_instantaneous_ops_per_sec metric names should not contain abbreviated units"];

#[test]
fn promtool_check_metrics_accepts_the_exposition() {
    promtool();
    let (master, replicas) = group();
    master.cmd(&["SET", "k", "v"]);
    let out = populated(&master, &replicas[0]).render();
    // The families a dashboard needs are there, with real values.
    for family in [
        "redis_up",
        "redis_instance_info",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_connected_clients",
        "redis_connected_slaves",
        "redis_master_repl_offset",
        "redis_connected_slave_offset_bytes",
        "redis_connected_slave_lag_seconds",
        "redis_master_link_up",
        "redis_commands_processed_total",
        "redis_aof_last_write_status",
        "redis_rdb_last_bgsave_status",
        "redis_instantaneous_ops_per_sec",
        "redis_aof_enabled",
        "raftinel_raft_term",
        "raftinel_raft_is_leader",
        "raftinel_raft_leader_id",
        "raftinel_quorum_reachable",
        "raftinel_group_epoch",
        "raftinel_failovers_total",
        "raftinel_last_failover_duration_seconds",
        "raftinel_instance_sdown",
        "raftinel_notifications_total",
    ] {
        assert!(
            out.contains(&format!("# TYPE {family} ")),
            "no {family} in\n{out}"
        );
    }
    assert!(out.contains(&format!(
        "redis_memory_max_bytes{{group=\"mymaster\",instance=\"{}\"}} 67108864",
        master.addr()
    )));
    // Exit 0, or 3 (lint findings) when every finding is a deliberate one:
    // names kept from redis_exporter so existing dashboards and rules work.
    // A parse error (exit 1) or any other finding fails.
    let (ok, msg) = run_promtool(&["check", "metrics"], Some(&out));
    let unexpected: Vec<&str> = msg
        .lines()
        .filter(|l| !l.trim().is_empty() && !ALLOWED_LINT.contains(&l.trim()))
        .collect();
    assert!(
        unexpected.is_empty() && (ok || !msg.trim().is_empty()),
        "promtool check metrics:\n{msg}\n---\n{out}"
    );
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let (ok, msg) = run_promtool(&["check", "rules", "config/prometheus/alerts.yml"], None);
    assert!(ok, "promtool check rules:\n{msg}");
    let (ok, msg) = run_promtool(
        &["test", "rules", "config/prometheus/alerts_test.yml"],
        None,
    );
    assert!(ok, "promtool test rules:\n{msg}");
    assert!(msg.contains("SUCCESS"), "{msg}");
}

/// `redis_*` / `raftinel_*` names in a text (PromQL expressions).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts = (rest.starts_with("redis_") || rest.starts_with("raftinel_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            out.insert(rest[..len].to_string());
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_dashboard_and_the_rules_only_use_exported_metrics() {
    let (master, replicas) = group();
    let out = populated(&master, &replicas[0]).render();
    let exported: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();

    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("config/grafana/raftinel.json")).unwrap(),
    )
    .expect("config/grafana/raftinel.json is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(
        exprs.len() >= 10,
        "only {} queries in the dashboard",
        exprs.len()
    );
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "dashboard queries unknown metrics {missing:?}"
    );
    for title in [
        "Memory",
        "Ops/s",
        "Clients",
        "Replication",
        "Role",
        "Failovers",
        "Quorum",
    ] {
        assert!(
            dash.to_string().contains(title),
            "no panel about {title} in the dashboard"
        );
    }

    // Every query parses: promtool checks them as recording rules (Grafana
    // variables replaced by what "All" sends).
    let dir = tempfile::tempdir().unwrap();
    let mut yml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e.replace("$group", ".*").replace("$instance", ".*");
        yml.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let path = dir.path().join("dashboard_rules.yml");
    std::fs::write(&path, yml).unwrap();
    let (ok, msg) = run_promtool(&["check", "rules", path.to_str().unwrap()], None);
    assert!(ok, "dashboard queries do not parse:\n{msg}");

    let rules = std::fs::read_to_string(root().join("config/prometheus/alerts.yml")).unwrap();
    let used = metric_names(&rule_exprs(&rules));
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "alert rules use unknown metrics {missing:?}"
    );
    for name in raftinel::alerts::ALERT_NAMES {
        assert!(
            rules.contains(&format!("alert: {name}\n")),
            "built-in alert {name} has no Prometheus rule"
        );
    }
}

/// The `expr:` blocks of a rules file (comments and annotations left out).
fn rule_exprs(yml: &str) -> String {
    let mut out = String::new();
    let mut in_expr = false;
    for line in yml.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("expr:") {
            in_expr = true;
            out.push_str(rest);
            out.push('\n');
        } else if in_expr
            && !t.is_empty()
            && [
                "for:",
                "labels:",
                "annotations:",
                "- alert:",
                "- record:",
                "#",
            ]
            .iter()
            .all(|k| !t.starts_with(k))
        {
            out.push_str(t);
            out.push('\n');
        } else if !t.is_empty() {
            in_expr = false;
        }
    }
    out
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "expr" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    collect_exprs(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

fn sample(p: &RedisProc, expected_replicas: Option<usize>) -> InstanceSample {
    InstanceSample {
        group: "mymaster".into(),
        instance: p.addr().to_string(),
        info: Some(parse_info_metrics(&p.cmd(&["INFO"]))),
        expected_replicas,
    }
}

/// An engine evaluated on live samples, with every transition kept.
struct Watch {
    engine: AlertEngine,
    log: Vec<raftinel::alerts::AlertTransition>,
    now: u64,
}

impl Watch {
    /// Evaluates until a transition `name`/`firing` has come out (in this or
    /// an earlier evaluation) and returns it.
    fn wait(
        &mut self,
        samples: &dyn Fn() -> Vec<InstanceSample>,
        name: &str,
        firing: bool,
        timeout: Duration,
    ) -> raftinel::alerts::AlertTransition {
        let start = Instant::now();
        loop {
            if let Some(i) = self
                .log
                .iter()
                .position(|t| t.name == name && t.firing == firing)
            {
                return self.log.remove(i);
            }
            assert!(
                start.elapsed() < timeout,
                "no {name} firing={firing} within {timeout:?}; other transitions: {:#?}",
                self.log
            );
            self.now += 100;
            let t = self.engine.evaluate(self.now, &samples());
            self.log.extend(t);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn built_in_alerts_fire_and_resolve_on_real_redis() {
    let (master, replicas) = start_group(&RedisOpts::default().line("maxmemory 4mb"), 1);
    let replica = &replicas[0];
    let mut rules = AlertRules::disabled();
    rules.memory = RuleBase {
        enabled: true,
        for_ms: 0,
    };
    rules.master_link_down = RuleBase {
        enabled: true,
        for_ms: 0,
    };
    rules.replicas_missing = RuleBase {
        enabled: true,
        for_ms: 0,
    };
    let mut w = Watch {
        engine: AlertEngine::new(rules),
        log: Vec::new(),
        now: 1_000_000,
    };
    let both = || vec![sample(&master, Some(1)), sample(replica, None)];
    let both = &both;
    assert!(
        w.engine.evaluate(0, &both()).is_empty(),
        "alerts on a healthy group"
    );

    // Fill the master past 80 % of maxmemory.
    let value = "x".repeat(64 * 1024);
    for i in 0..200 {
        let reply = master.cmd(&["SET", &format!("fill:{i}"), &value]);
        if reply.contains("OOM") {
            break;
        }
        let info = parse_info_metrics(&master.cmd(&["INFO", "memory"]));
        if info.memory_used_percent().unwrap_or(0.0) > 85.0 {
            break;
        }
    }
    let t = w.wait(both, "RedisMemoryHigh", true, Duration::from_secs(10));
    assert_eq!(
        t.instance.as_deref(),
        Some(master.addr().to_string().as_str())
    );
    assert!(t.value > 80.0, "{t:?}");
    assert!(t.message.starts_with("used memory "), "{}", t.message);
    master.cmd(&["FLUSHALL"]);
    let t = w.wait(both, "RedisMemoryHigh", false, Duration::from_secs(10));
    assert!(
        t.message.starts_with("used memory back to "),
        "{}",
        t.message
    );

    // Break the replica's link: point it at a port where nothing listens.
    let dead = crate::harness::free_port();
    replica.cmd(&["REPLICAOF", "127.0.0.1", &dead.to_string()]);
    let t = w.wait(both, "RedisMasterLinkDown", true, Duration::from_secs(10));
    assert_eq!(
        t.instance.as_deref(),
        Some(replica.addr().to_string().as_str())
    );
    assert!(
        t.message
            .starts_with(&format!("link to master 127.0.0.1:{dead} down")),
        "{}",
        t.message
    );
    w.wait(both, "RedisReplicasMissing", true, Duration::from_secs(10));

    // Repair it.
    replica.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    replica.wait_link_up(Duration::from_secs(10));
    w.wait(both, "RedisMasterLinkDown", false, Duration::from_secs(10));
    w.wait(both, "RedisReplicasMissing", false, Duration::from_secs(10));
}
