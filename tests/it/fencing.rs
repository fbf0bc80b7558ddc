//! Fencing and the restart guard against real redis-server processes and
//! real daemons on loopback (the namespace test bed covers real partitions).

use crate::cluster::{bin, Cluster, DaemonOpts, GroupDef};
use crate::harness::{start_group, RedisOpts, RedisProc};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn master_cut_off_from_the_quorum_refuses_writes_until_it_is_back() {
    let (master, replicas) = start_group(&RedisOpts::default(), 2);
    let group = GroupDef::new(
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
        ..DaemonOpts::default()
    };
    let mut c = Cluster::start_with(&[group], &opts);
    c.wait_settled("g", T);
    assert!(master.cmd(&["SET", "k", "before"]).contains("OK"));
    // Daemon 1 (next to the master) loses both peers.
    c.kill9_daemon(2);
    c.kill9_daemon(3);
    let fenced_after = wait_for("the master to refuse writes", T, || {
        master.cmd(&["SET", "k", "cut-off"]).contains("NOREPLICAS")
    });
    eprintln!("fenced {fenced_after:?} after the peers died (fence_after 250 ms)");
    assert!(fenced_after < Duration::from_secs(3), "{fenced_after:?}");
    assert_eq!(master.role(), "master", "fencing does not change the role");
    assert!(
        c.events(1).iter().any(|e| e.starts_with("+fence")),
        "{:?}",
        c.events(1)
    );
    // The fence survives in redis.conf (CONFIG REWRITE), so a restart stays fenced.
    assert!(
        master.conf().contains("min-replicas-to-write 1000000"),
        "{}",
        master.conf()
    );
    // The peers return; the master is still the committed one: writes resume.
    c.start_daemon(2);
    c.start_daemon(3);
    wait_for("writes to be accepted again", T, || {
        master.cmd(&["SET", "k", "back"]).contains("OK")
    });
    assert!(c.events(1).iter().any(|e| e.starts_with("-fence")));
    // CONFIG REWRITE follows the CONFIG SET that let the write through.
    wait_for("redis.conf to lose the fence", T, || {
        !master.conf().contains("min-replicas-to-write 1000000")
    });
}

/// Runs `raftinel guard` with a daemon's config; asserts it succeeds and
/// returns what it printed.
fn run_guard(config: &Path, redis_conf: &Path) -> String {
    let out = Command::new(bin())
        .args(["guard", "--config"])
        .arg(config)
        .arg("--redis-conf")
        .arg(redis_conf)
        .output()
        .expect("run guard");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const FENCED_START: &str =
    "starts as the master, fenced (writes refused) until its daemon confirms it is the committed master";

#[test]
fn guard_makes_a_restarted_old_master_start_as_a_replica() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    let group = GroupDef::new(
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
        ..DaemonOpts::default()
    };
    let mut c = Cluster::start_with(&[group], &opts);
    let (m0, _) = c.wait_settled("g", T);
    master.kill9();
    let (m1, _) = c.wait("a new master", T, |c| {
        c.committed("g").filter(|(m, _)| *m != m0)
    });
    // Guard with the cluster reachable.
    let text = run_guard(&c.daemons[0].config, &master.conf_path());
    assert!(
        text.contains(&format!("committed master of g is {m1}"))
            && text.contains("confirmed by a quorum")
            && text.contains("starts as a replica of"),
        "{text}"
    );
    let port = m1.rsplit(':').next().unwrap_or_default().to_string();
    assert!(
        master
            .conf()
            .contains(&format!("replicaof 127.0.0.1 {port}")),
        "{}",
        master.conf()
    );
    // A replica is not fenced by the guard.
    assert!(
        !master.conf().contains("min-replicas-to-write 1000000"),
        "{}",
        master.conf()
    );
    // With every daemon down, the guard falls back to the local raft log.
    for id in 1..=3 {
        c.kill9_daemon(id);
    }
    std::fs::write(
        master.conf_path(),
        master
            .conf()
            .replace(&format!("replicaof 127.0.0.1 {port}\n"), ""),
    )
    .expect("write");
    let text = run_guard(&c.daemons[0].config, &master.conf_path());
    assert!(text.contains("stored in data_dir"), "{text}");
    assert!(
        master
            .conf()
            .contains(&format!("replicaof 127.0.0.1 {port}")),
        "{}",
        master.conf()
    );
    // The old master restarts as a replica: it never accepts a write.
    master.restart();
    assert_eq!(master.role(), "slave");
    let r = master.cmd(&["SET", "k", "v"]);
    assert!(r.contains("READONLY"), "{r}");
    let all: Vec<&RedisProc> = replicas.iter().collect();
    assert!(all.iter().any(|r| r.addr().to_string() == m1));
}

#[test]
fn guard_starts_the_committed_master_fenced_and_keeps_the_original_setting() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    // An operator's own setting, persisted the way Redis does it.
    assert!(master
        .cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"])
        .contains("OK"));
    assert!(master.cmd(&["CONFIG", "REWRITE"]).contains("OK"));
    assert!(master.conf().contains("min-replicas-to-write 1"));
    let group = GroupDef::new(
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
        ..DaemonOpts::default()
    };
    let mut c = Cluster::start_with(&[group], &opts);
    let (m0, _) = c.wait_settled("g", T);
    assert_eq!(m0, master.addr().to_string());
    let fence_json = c.dir.path().join("data1").join("fence.json");
    let saved = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&fence_json).expect("fence.json"))
            .expect("fence.json is JSON")
    };
    let expected = serde_json::json!({ "min-replicas-to-write": "1" });
    // The cluster confirms daemon 1's instance is the committed master: it
    // starts as the master, but fenced.
    let text = run_guard(&c.daemons[0].config, &master.conf_path());
    assert!(
        text.contains(&format!("committed master of g is {m0}"))
            && text.contains("confirmed by a quorum")
            && text.contains(FENCED_START)
            && text.contains("updated"),
        "{text}"
    );
    let conf = master.conf();
    assert!(conf.contains("min-replicas-to-write 1000000"), "{conf}");
    assert!(!conf.contains("min-replicas-to-write 1\n"), "{conf}");
    assert!(!conf.contains("replicaof"), "{conf}");
    assert_eq!(saved(), expected);
    // Again: nothing to change, and the saved original is kept.
    let text = run_guard(&c.daemons[0].config, &master.conf_path());
    assert!(text.contains("already right"), "{text}");
    assert_eq!(saved(), expected);
    // With every daemon down (no failover, no lift), the restarted master
    // refuses writes: it started fenced.
    for id in 1..=3 {
        c.kill9_daemon(id);
    }
    let text = run_guard(&c.daemons[0].config, &master.conf_path());
    assert!(
        text.contains("stored in data_dir") && text.contains(FENCED_START),
        "{text}"
    );
    assert_eq!(saved(), expected, "kept: it holds the true original");
    master.restart();
    assert_eq!(master.role(), "master");
    let r = master.cmd(&["SET", "k", "v"]);
    assert!(r.contains("NOREPLICAS"), "{r}");
}

#[test]
fn daemon_lifts_the_guards_fence_once_the_cluster_confirms_the_master() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    assert!(master
        .cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"])
        .contains("OK"));
    assert!(master.cmd(&["CONFIG", "REWRITE"]).contains("OK"));
    let group = GroupDef::new(
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
        ..DaemonOpts::default()
    };
    let c = Cluster::start_with(&[group], &opts);
    let (m0, _) = c.wait_settled("g", T);
    let fence_json = c.dir.path().join("data1").join("fence.json");
    // A restart of the committed master through its unit: guard, then redis,
    // while the daemons keep running.
    let text = run_guard(&c.daemons[0].config, &master.conf_path());
    assert!(text.contains(FENCED_START), "{text}");
    assert!(fence_json.exists());
    let restarted = Instant::now();
    master.restart();
    // The running daemon sees the restarted instance, takes fence.json as the
    // truth, and lifts the fence because the cluster confirms it is still the
    // committed master.
    let lifted = wait_for("the daemon to lift the guard's fence", T, || {
        master.cmd(&["SET", "k", "v"]).contains("OK")
    });
    eprintln!(
        "writes accepted {lifted:?} after the restarted master answered ({:?} after the restart began)",
        restarted.elapsed()
    );
    assert!(!fence_json.exists(), "fence.json is removed on lift");
    let orig = master.cmd(&["CONFIG", "GET", "min-replicas-to-write"]);
    assert!(orig.contains('1') && !orig.contains("1000000"), "{orig}");
    assert!(
        c.events(1).iter().any(|e| e.starts_with("-fence")),
        "{:?}",
        c.events(1)
    );
    let (m1, _) = c.wait_settled("g", T);
    assert_eq!(m1, m0, "no failover for a quick restart");
}
