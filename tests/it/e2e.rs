//! End to end: real redis-server processes, three real raftinel daemons.

use crate::cluster::{bin, Cluster, GroupDef, SECRET};
use crate::harness::{start_group, RedisOpts, RedisProc};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn group_of(name: &str, master: &RedisProc, replicas: &[RedisProc]) -> GroupDef {
    GroupDef::new(
        name,
        master.addr(),
        replicas.iter().map(|r| r.addr()).collect(),
    )
}

/// Wait until a master other than `old` is committed for `group`.
fn wait_new_master(c: &Cluster, group: &str, old: &str) -> (String, u64) {
    c.wait("a new committed master", T, |c| {
        let g = c.group(group)?;
        let m = g["master"].as_str()?.to_string();
        (m != old && g["failover"].is_null()).then(|| (m, g["epoch"].as_u64().unwrap_or(0)))
    })
}

fn find<'a>(all: &'a [&'a RedisProc], addr: &str) -> &'a RedisProc {
    all.iter()
        .find(|r| r.addr().to_string() == addr)
        .expect("known instance")
}

#[test]
fn kill9_master_promotes_repoints_and_rejoins_old_master() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    let c = Cluster::start(&[group_of("mymaster", &master, &replicas)]);
    let (m0, e0) = c.wait_settled("mymaster", T);
    assert_eq!((m0.as_str(), e0), (master.addr().to_string().as_str(), 0));
    // WAIT must run on the connection that wrote.
    let acked = master.cmds(&[&["RPUSH", "logs_queue", "line-1"], &["WAIT", "2", "2000"]]);
    assert!(
        acked.trim_end().ends_with('2'),
        "both replicas acknowledged: {acked}"
    );
    master.kill9();

    let (m1, e1) = wait_new_master(&c, "mymaster", &m0);
    assert_eq!(e1, 1);
    let all: Vec<&RedisProc> = replicas.iter().collect();
    let new_master = find(&all, &m1);
    assert_eq!(new_master.role(), "master");
    assert_eq!(
        new_master.cmd(&["LRANGE", "logs_queue", "0", "-1"]).trim(),
        "line-1"
    );
    // The other replica follows the new master.
    let other = all
        .iter()
        .find(|r| r.addr().to_string() != m1)
        .expect("other");
    other.wait_until("repointed to the new master", T, |r| {
        r.info_field("replication", "master_port").as_deref()
            == Some(&new_master.port().to_string())
    });
    // The promotion was rewritten into the new master's config file.
    assert!(
        !new_master.conf().to_lowercase().contains("replicaof"),
        "{}",
        new_master.conf()
    );

    // The old master comes back as a replica of the new one.
    master.restart();
    master.wait_until("old master demoted", T, |r| {
        r.role() == "slave"
            && r.info_field("replication", "master_port").as_deref()
                == Some(&new_master.port().to_string())
    });
    // Every daemon published the switch.
    for id in 1..=3 {
        let ev = c.events(id);
        let switch = format!(
            "+switch-master mymaster {} {} {} {}",
            master.addr().host,
            master.port(),
            new_master.addr().host,
            new_master.port()
        );
        assert_eq!(
            ev.iter().filter(|e| **e == switch).count(),
            1,
            "daemon {id}: {ev:?}"
        );
    }
}

#[test]
fn failover_completes_when_the_leader_daemon_dies_with_the_master() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    let mut c = Cluster::start(&[group_of("g", &master, &replicas)]);
    let (m0, _) = c.wait_settled("g", T);
    let leader = c.leader_id().expect("leader");
    master.kill9();
    c.kill9_daemon(leader);
    let (m1, epoch) = wait_new_master(&c, "g", &m0);
    assert!(epoch >= 1);
    let all: Vec<&RedisProc> = replicas.iter().collect();
    find(&all, &m1).wait_role("master", T);
    let new_leader = c.leader_id().expect("leader");
    assert_ne!(new_leader, leader);
}

#[test]
fn restarted_daemon_keeps_its_state() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    let mut c = Cluster::start(&[group_of("g", &master, &replicas)]);
    let (m0, _) = c.wait_settled("g", T);
    master.kill9();
    let (m1, e1) = wait_new_master(&c, "g", &m0);
    // Restart every daemon: the committed topology survives on disk.
    for id in 1..=3 {
        c.kill9_daemon(id);
    }
    for id in 1..=3 {
        c.start_daemon(id);
    }
    let (m2, e2) = c.wait_settled("g", T);
    assert_eq!((m2, e2), (m1, e1));
    let st = c.status();
    for a in st.as_array().expect("answers") {
        assert!(
            a["status"]["applied_index"].as_u64().unwrap_or(0) >= 3,
            "{a}"
        );
    }
}

#[test]
fn two_groups_fail_over_independently() {
    let (mut m1, r1) = start_group(&RedisOpts::default(), 1);
    let (m2, r2) = start_group(&RedisOpts::default(), 1);
    let c = Cluster::start(&[group_of("a", &m1, &r1), group_of("b", &m2, &r2)]);
    c.wait_settled("a", T);
    let (b0, _) = c.wait_settled("b", T);
    m1.kill9();
    let (a1, _) = wait_new_master(&c, "a", &m1.addr().to_string());
    assert_eq!(a1, r1[0].addr().to_string());
    r1[0].wait_role("master", T);
    assert_eq!(c.committed("b"), Some((b0, 0)));
    assert_eq!(m2.role(), "master");
}

#[test]
fn wrong_redis_password_is_reported_and_never_leaked() {
    let opts = RedisOpts::default().password("right-pass-123");
    let (master, replicas) = start_group(&opts, 1);
    let mut def = group_of("g", &master, &replicas);
    def.password = Some("wrong-pass-456".into());
    let c = Cluster::start(&[def]);
    let text = c.wait("an authentication error in status", T, |c| {
        let st = c.status();
        let s = st.to_string();
        s.contains("auth").then_some(s)
    });
    assert!(!text.contains("wrong-pass-456") && !text.contains("right-pass-123"));
    assert!(!c.logs().contains("wrong-pass-456"));
    // Nothing was reconfigured: no initialisation without a valid INFO.
    assert_eq!(master.role(), "master");
    assert_eq!(replicas[0].role(), "slave");
}

#[test]
fn garbage_on_the_peer_port_does_not_disturb_the_cluster() {
    let (master, replicas) = start_group(&RedisOpts::default(), 1);
    let c = Cluster::start(&[group_of("g", &master, &replicas)]);
    c.wait_settled("g", T);
    let term = c.leader_view().expect("leader")["raft"]["term"].as_u64();
    let cfg = std::fs::read_to_string(c.config()).expect("config");
    let port: u16 = cfg
        .lines()
        .find_map(|l| l.strip_prefix("addr = \"127.0.0.1:"))
        .and_then(|p| p.trim_end_matches('"').parse().ok())
        .expect("peer port");
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xffu8; 4096][..],
        b"RAFTINEL1\x00\x00",
    ] {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(junk);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let v = c.leader_view().expect("leader still there");
    assert_eq!(
        v["raft"]["term"].as_u64(),
        term,
        "garbage must not cause an election"
    );
    let log = std::fs::read_to_string(&c.daemons[0].log).unwrap_or_default();
    assert!(log.contains("WARN"), "the bad connection is logged");
}

#[test]
fn status_with_wrong_secret_is_refused() {
    let (master, replicas) = start_group(&RedisOpts::default(), 1);
    let c = Cluster::start(&[group_of("g", &master, &replicas)]);
    c.wait_settled("g", T);
    let cfg = std::fs::read_to_string(c.config()).expect("config");
    let bad = c.dir.path().join("bad.toml");
    std::fs::write(&bad, cfg.replace(SECRET, "not-the-secret-0000000000")).expect("write");
    let out = std::process::Command::new(bin())
        .args(["status", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("UNREACHABLE") && text.contains("authentication"),
        "{text}"
    );
}

fn sentinel_master(port: u16, group: &str) -> String {
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "SENTINEL",
            "get-master-addr-by-name",
            group,
        ])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn every_daemon_names_the_master_on_its_sentinel_port() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    let c = Cluster::start(&[group_of("mymaster", &master, &replicas)]);
    let (m0, _) = c.wait_settled("mymaster", T);
    let ports: Vec<u16> = c
        .daemons
        .iter()
        .filter_map(|d| d.discovery)
        .map(|a| a.port())
        .collect();
    assert_eq!(ports.len(), 3);
    for p in &ports {
        c.wait("the sentinel port to name the master", T, |_| {
            (sentinel_master(*p, "mymaster") == m0).then_some(())
        });
    }
    master.kill9();
    let (m1, _) = wait_new_master(&c, "mymaster", &m0);
    for p in &ports {
        c.wait("the sentinel port to name the new master", T, |_| {
            (sentinel_master(*p, "mymaster") == m1).then_some(())
        });
    }
}

#[test]
fn a_daemon_whose_data_dir_was_wiped_rejoins_and_catches_up() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    let mut c = Cluster::start(&[group_of("g", &master, &replicas)]);
    let (m0, _) = c.wait_settled("g", T);
    master.kill9();
    let (m1, e1) = wait_new_master(&c, "g", &m0);
    let leader = c.leader_id().expect("leader");
    let victim = if leader == 1 { 2 } else { 1 };
    c.kill9_daemon(victim);
    let data = c.dir.path().join(format!("data{victim}"));
    std::fs::remove_dir_all(&data).expect("wipe data_dir");
    c.start_daemon(victim);
    // It must not crash (raft-rs aborts on a heartbeat beyond its log) and it
    // must get the whole committed topology back.
    c.wait("the wiped daemon to catch up", T, |c| {
        let st = c.status();
        let me = st.as_array()?.iter().find(|a| a["id"] == victim)?;
        let s = &me["status"];
        let g = s["groups"].as_array()?.iter().find(|g| g["name"] == "g")?;
        (g["master"] == m1.as_str() && g["epoch"] == e1 && s["fresh"] == true).then_some(())
    });
    let log = std::fs::read_to_string(&c.daemons[victim as usize - 1].log).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
}
