//! Fencing and the restart guard against real redis-server processes and
//! real daemons on loopback (the namespace test bed covers real partitions).

use crate::cluster::{bin, Cluster, DaemonOpts, GroupDef};
use crate::harness::{start_group, RedisOpts, RedisProc};
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
    assert!(
        !master.conf().contains("min-replicas-to-write 1000000"),
        "{}",
        master.conf()
    );
}

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
    let guard = |c: &Cluster| {
        Command::new(bin())
            .args(["guard", "--config"])
            .arg(&c.daemons[0].config)
            .arg("--redis-conf")
            .arg(master.conf_path())
            .output()
            .expect("run guard")
    };
    let out = guard(&c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("committed master of g is {m1}"))
            && text.contains("confirmed by a quorum"),
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
    let out = guard(&c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
