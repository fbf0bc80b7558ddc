//! Planned switchover, forced failover and maintenance mode against real
//! redis-server processes and three real daemons.

use crate::cluster::{bin, Cluster, GroupDef};
use crate::harness::{start_group, RedisOpts, RedisProc};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn group_of(name: &str, master: &RedisProc, replicas: &[RedisProc]) -> GroupDef {
    GroupDef::new(
        name,
        master.addr(),
        replicas.iter().map(|r| r.addr()).collect(),
    )
}

fn failover_cmd(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(["failover", "--config"])
        .arg(c.config())
        .args(args)
        .output()
        .expect("run raftinel failover");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A producer writing `RPUSH logs_queue <seq>` to whatever master the
/// cluster names, recording every acknowledged seq.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    gaps: Arc<Mutex<Vec<Duration>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(config: std::path::PathBuf, group: &'static str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let gaps = Arc::new(Mutex::new(Vec::new()));
        let (s, a, g) = (stop.clone(), acked.clone(), gaps.clone());
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut seq = 0u64;
                let mut conn: Option<redis::aio::MultiplexedConnection> = None;
                let mut last_ack = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    if conn.is_none() {
                        let Some(master) = resolve(&config, group) else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let client =
                            redis::Client::open(format!("redis://{master}/")).expect("url");
                        conn = client.get_multiplexed_async_connection().await.ok();
                        continue;
                    }
                    seq += 1;
                    let Some(c) = conn.as_mut() else { continue };
                    let r: redis::RedisResult<i64> = tokio::time::timeout(
                        Duration::from_secs(10),
                        redis::cmd("RPUSH")
                            .arg("logs_queue")
                            .arg(seq)
                            .query_async(c),
                    )
                    .await
                    .unwrap_or_else(|_| Err((redis::ErrorKind::Io, "timeout").into()));
                    match r {
                        Ok(_) => {
                            a.lock().expect("lock").push(seq);
                            g.lock().expect("lock").push(last_ack.elapsed());
                            last_ack = Instant::now();
                        }
                        Err(_) => conn = None, // READONLY, killed, refused: re-resolve
                    }
                }
            });
        });
        Writer {
            stop,
            acked,
            gaps,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> (Vec<u64>, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let acked = self.acked.lock().expect("lock").clone();
        let max_gap = self
            .gaps
            .lock()
            .expect("lock")
            .iter()
            .copied()
            .max()
            .unwrap_or_default();
        (acked, max_gap)
    }
}

fn resolve(config: &std::path::Path, group: &str) -> Option<String> {
    let out = Command::new(bin())
        .args(["status", "--json", "--timeout-ms", "500", "--config"])
        .arg(config)
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.as_array()?
        .iter()
        .filter_map(|a| a.get("status"))
        .find(|s| s["raft"]["can_act"] == true)?["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == group)?["master"]
        .as_str()
        .map(String::from)
}

#[test]
fn switchover_under_a_continuous_writer_loses_no_acknowledged_write() {
    let (master, replicas) = start_group(&RedisOpts::default(), 2);
    let c = Cluster::start(&[group_of("g", &master, &replicas)]);
    c.wait_settled("g", T);
    let writer = Writer::start(c.config().to_path_buf(), "g");
    std::thread::sleep(Duration::from_millis(1500));
    let (code, out, err) = failover_cmd(&c, &["--group", "g"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("intent committed") && out.contains("done:"),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (acked, max_gap) = writer.stop();
    assert!(
        acked.len() > 1000,
        "only {} writes acknowledged",
        acked.len()
    );
    let (m1, e1) = c.committed("g").expect("committed");
    assert_eq!(e1, 1);
    let all: Vec<&RedisProc> = replicas.iter().collect();
    let new_master = all
        .iter()
        .find(|r| r.addr().to_string() == m1)
        .expect("new master is a replica");
    let stored: std::collections::HashSet<u64> = new_master
        .cmd(&["LRANGE", "logs_queue", "0", "-1"])
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let lost: Vec<&u64> = acked.iter().filter(|s| !stored.contains(s)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    // The old master is a replica of the new one, and so is the other replica.
    for r in [
        &master,
        all.iter()
            .find(|r| r.addr().to_string() != m1)
            .expect("other"),
    ] {
        r.wait_until("following the new master", T, |r| {
            r.role() == "slave"
                && r.info_field("replication", "master_port").as_deref()
                    == Some(&new_master.port().to_string())
        });
    }
    eprintln!(
        "switchover: {} writes acknowledged, longest gap {max_gap:?}",
        acked.len()
    );
    if std::env::var("RAFTINEL_DUMP").is_ok() {
        eprintln!("{out}\n{}", c.logs());
    }
}

#[test]
fn switchover_refuses_unknown_target_and_priority_zero() {
    let (master, replicas) = start_group(&RedisOpts::default(), 2);
    let c = Cluster::start(&[group_of("g", &master, &replicas)]);
    c.wait_settled("g", T);
    let (code, _, err) = failover_cmd(&c, &["--group", "g", "--to", "127.0.0.1:1"]);
    assert_eq!(code, 1);
    assert!(err.contains("127.0.0.1:1 is not a replica of g"), "{err}");
    replicas[0].cmd(&["CONFIG", "SET", "replica-priority", "0"]);
    let target = replicas[0].addr().to_string();
    c.wait("the leader sees priority 0", T, |c| {
        let g = c.group("g")?;
        g["instances"]
            .as_array()?
            .iter()
            .any(|i| i["addr"] == target.as_str() && i["priority"] == 0)
            .then_some(())
    });
    let (code, _, err) = failover_cmd(&c, &["--group", "g", "--to", &target]);
    assert_eq!(code, 1);
    assert!(err.contains("replica-priority is 0"), "{err}");
    let (code, _, err) = failover_cmd(&c, &["--group", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such master"), "{err}");
    assert_eq!(master.role(), "master");
    assert_eq!(c.committed("g").map(|(_, e)| e), Some(0));
}

#[test]
fn switchover_to_an_unresponsive_target_aborts_and_unpauses() {
    let (master, replicas) = start_group(&RedisOpts::default(), 2);
    let c = Cluster::start(&[group_of("g", &master, &replicas)]);
    c.wait_settled("g", T);
    let target = &replicas[0];
    let pid = target.pid().expect("pid");
    // Freeze the target after the leader has seen it healthy.
    let _ = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status();
    let (code, out, err) = failover_cmd(
        &c,
        &[
            "--group",
            "g",
            "--to",
            &target.addr().to_string(),
            "--timeout",
            "1500",
        ],
    );
    let _ = Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("aborted") && err.contains("step"), "{err}");
    // Exactly one writable master, and it accepts writes (the pause is lifted).
    assert_eq!(master.role(), "master");
    let start = Instant::now();
    let r = master.cmd(&["SET", "after-abort", "1"]);
    assert!(
        r.contains("OK") && start.elapsed() < Duration::from_secs(1),
        "{r} after {:?}",
        start.elapsed()
    );
    assert_eq!(
        c.committed("g").map(|(m, _)| m),
        Some(master.addr().to_string())
    );
}

#[test]
fn maintenance_mode_blocks_automatic_failover() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 1);
    let c = Cluster::start(&[group_of("g", &master, &replicas)]);
    let (m0, _) = c.wait_settled("g", T);
    let out = Command::new(bin())
        .args(["maintenance", "on", "--group", "g", "--config"])
        .arg(c.config())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.group("g").expect("group")["maintenance"], true);
    master.kill9();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.committed("g").map(|(m, _)| m),
        Some(m0.clone()),
        "no failover in maintenance"
    );
    let leader = c.leader_id().expect("leader");
    assert!(c
        .events(leader)
        .iter()
        .any(|e| e.starts_with("-failover-maintenance")));
    let out = Command::new(bin())
        .args(["maintenance", "off", "--group", "g", "--config"])
        .arg(c.config())
        .output()
        .expect("run");
    assert!(out.status.success());
    c.wait("failover after maintenance off", T, |c| {
        c.committed("g").filter(|(m, _)| *m != m0)
    });
}

/// A password-protected group whose replica `r` stops receiving the stream
/// (wrong `masterauth`), while the master keeps taking writes: a real lag.
fn lagging_target() -> (RedisProc, Vec<RedisProc>, Cluster) {
    let opts = RedisOpts::default().password("pw-0123456789");
    let (master, replicas) = start_group(&opts, 2);
    let mut def = group_of("g", &master, &replicas);
    def.password = Some("pw-0123456789".into());
    let c = Cluster::start(&[def]);
    c.wait_settled("g", T);
    let target = &replicas[0];
    target.cmd(&["CONFIG", "SET", "masterauth", "wrong-password"]);
    target.cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    for i in 0..200 {
        master.cmd(&["RPUSH", "logs_queue", &i.to_string()]);
    }
    (master, replicas, c)
}

fn assert_old_master_serves(master: &RedisProc, c: &Cluster) {
    assert_eq!(master.role(), "master");
    let start = Instant::now();
    let r = master.cmd(&["RPUSH", "logs_queue", "after-abort"]);
    assert!(
        !r.contains("ERR") && start.elapsed() < Duration::from_secs(1),
        "{r} after {:?}: writes must be unpaused",
        start.elapsed()
    );
    assert_eq!(
        c.committed("g").map(|(m, _)| m),
        Some(master.addr().to_string())
    );
}

#[test]
fn switchover_with_a_timeout_shorter_than_the_lag_aborts_and_unpauses() {
    let (master, replicas, c) = lagging_target();
    let target = replicas[0].addr().to_string();
    let (code, out, err) = failover_cmd(&c, &["--group", "g", "--to", &target, "--timeout", "800"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("aborted") && err.contains("step 2 (catch-up)") && err.contains("--timeout"),
        "{err}"
    );
    assert_old_master_serves(&master, &c);
}

#[test]
fn switchover_aborts_cleanly_when_the_leader_dies_during_it() {
    let (master, replicas, mut c) = lagging_target();
    let target = replicas[0].addr().to_string();
    let leader = c.leader_id().expect("leader");
    let cli = Command::new(bin())
        .args(["failover", "--config"])
        .arg(&c.daemons[(leader % 3) as usize].config)
        .args(["--group", "g", "--to", &target, "--timeout", "4000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn raftinel failover");
    // Let the leader commit the intent and start waiting for the catch-up.
    c.wait("the intent to be committed", T, |c| {
        c.group("g")
            .filter(|g| !g["failover"].is_null())
            .map(|_| ())
    });
    std::thread::sleep(Duration::from_millis(300));
    c.kill9_daemon(leader);
    let out = cli.wait_with_output().expect("cli");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("aborted") && err.contains("leader changed"),
        "{err}"
    );
    assert_old_master_serves(&master, &c);
}
