//! Integration tests of the Redis shell (`raftinel::redis::Instance`) against
//! real `redis-server` processes started by the harness.

use crate::harness::{free_port, start_group, RedisOpts, RedisProc};
use raftinel::config::{RedisAuth, Secret};
use raftinel::core::types::{Addr, Role};
use raftinel::redis::{Instance, RedisError};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(10);

fn instance(p: &RedisProc) -> Instance {
    Instance::new(p.addr(), RedisAuth::default(), TIMEOUT)
}

fn with_password(addr: Addr, username: Option<&str>, password: &str) -> Instance {
    let auth = RedisAuth {
        username: username.map(str::to_string),
        password: Some(Secret::new(password)),
    };
    Instance::new(addr, auth, TIMEOUT)
}

/// Clients named by the shell (`CLIENT SETNAME raftinel`) on `p`.
fn raftinel_clients(p: &RedisProc) -> usize {
    p.cmd(&["CLIENT", "LIST"])
        .lines()
        .filter(|l| l.contains(" name=raftinel "))
        .count()
}

#[tokio::test]
async fn ping_ok() {
    let m = RedisProc::master();
    let mut i = instance(&m);
    assert!(!i.is_connected());
    i.ping().await.unwrap();
    assert!(i.is_connected());
    i.ping().await.unwrap();
    assert_eq!(raftinel_clients(&m), 1, "one connection, reused");
}

#[tokio::test]
async fn ping_dead_port_fails_fast() {
    let addr = Addr::new("127.0.0.1", free_port());
    let mut i = Instance::new(addr.clone(), RedisAuth::default(), TIMEOUT);
    let start = Instant::now();
    let err = i.ping().await.unwrap_err();
    assert!(start.elapsed() < TIMEOUT, "took {:?}", start.elapsed());
    assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{addr}: cannot connect")),
        "{err}"
    );
    assert!(!i.is_connected());
}

#[tokio::test]
async fn ping_to_silent_server_times_out() {
    // Accepts TCP connections (kernel backlog) but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = Addr::new("127.0.0.1", listener.local_addr().unwrap().port());
    let timeout = Duration::from_millis(300);
    let mut i = Instance::new(addr.clone(), RedisAuth::default(), timeout);
    let start = Instant::now();
    let err = i.ping().await.unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(took >= timeout && took < timeout * 3, "took {took:?}");
    assert_eq!(
        err.to_string(),
        format!("{addr}: PING timed out after 300ms")
    );
    assert!(!i.is_connected());
}

#[tokio::test]
async fn info_on_master_lists_replica() {
    let (m, replicas) = start_group(&RedisOpts::default(), 1);
    let r = &replicas[0];
    let info = instance(&m).info().await.unwrap();
    assert_eq!(info.run_id.len(), 40, "{info:?}");
    assert!(info.is_master());
    let Role::Master { replicas: listed } = &info.role else {
        panic!("{info:?}")
    };
    assert_eq!(listed.len(), 1, "{info:?}");
    assert_eq!(listed[0].addr, r.addr());
    assert_eq!(listed[0].state, "online");
}

#[tokio::test]
async fn info_on_replica() {
    let (m, replicas) = start_group(&RedisOpts::default(), 1);
    let r = &replicas[0];
    // One connection: WAIT waits for this connection's writes.
    assert_eq!(
        m.cmds(&[&["SET", "k", "v"], &["WAIT", "1", "5000"]]),
        "OK\n1"
    );
    m.wait_in_sync(&[r], WAIT);
    let master_offset = instance(&m).info().await.unwrap().master_repl_offset;
    let info = instance(r).info().await.unwrap();
    assert_eq!(info.master_addr(), Some(&m.addr()));
    match info.role {
        Role::Replica {
            link_up,
            link_down_since_s,
            priority,
            offset,
            ..
        } => {
            assert!(link_up);
            assert_eq!(link_down_since_s, None);
            assert_eq!(priority, 100);
            assert!(
                offset >= master_offset && offset > 0,
                "{offset} vs {master_offset}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn info_on_replica_whose_master_never_answered() {
    let dead = Addr::new("127.0.0.1", free_port());
    let r = RedisProc::start(
        RedisOpts::default()
            .replica_of(&dead)
            .line("replica-priority 7"),
    );
    let info = instance(&r).info().await.unwrap();
    assert_eq!(info.master_addr(), Some(&dead));
    let Role::Replica {
        link_up,
        link_down_since_s,
        priority,
        ..
    } = info.role
    else {
        panic!("{info:?}")
    };
    assert!(!link_up);
    assert_eq!(
        link_down_since_s,
        Some(u64::MAX),
        "-1 means never connected"
    );
    assert_eq!(priority, 7);
}

#[tokio::test]
async fn ping_accepts_masterdown_reply() {
    // A replica that must not serve stale data answers PING with -MASTERDOWN
    // while its master is unreachable: still alive, as Sentinel sees it.
    let dead = Addr::new("127.0.0.1", free_port());
    let r = RedisProc::start(
        RedisOpts::default()
            .replica_of(&dead)
            .line("replica-serve-stale-data no"),
    );
    assert!(
        r.cmd(&["PING"]).starts_with("MASTERDOWN"),
        "{}",
        r.cmd(&["PING"])
    );
    instance(&r).ping().await.unwrap();
}

#[tokio::test]
async fn ping_accepts_busy_reply() {
    let m = RedisProc::start(RedisOpts::default().line("busy-reply-threshold 100"));
    // A script that never ends, run by a separate redis-cli.
    let mut busy = Command::new("redis-cli")
        .args([
            "-p",
            &m.port().to_string(),
            "EVAL",
            "while true do end",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    m.wait_until("BUSY", WAIT, |m| m.cmd(&["PING"]).starts_with("BUSY"));
    let result = instance(&m).ping().await;
    m.cmd(&["SCRIPT", "KILL"]);
    let _ = busy.wait();
    result.unwrap();
}

#[tokio::test]
async fn promote_replica() {
    let (m, replicas) = start_group(&RedisOpts::default(), 1);
    let r = &replicas[0];
    assert!(r
        .conf()
        .contains(&format!("replicaof 127.0.0.1 {}", m.port())));

    let mut a = instance(r);
    let mut b = instance(r);
    a.ping().await.unwrap();
    b.ping().await.unwrap();
    assert_eq!(raftinel_clients(r), 2);

    a.promote().await.unwrap();
    assert_eq!(r.role(), "master");
    let conf = r.conf();
    assert!(!conf.contains("replicaof"), "config not rewritten:\n{conf}");
    // CLIENT KILL TYPE normal dropped the other client but not our own.
    assert_eq!(raftinel_clients(r), 1);
    assert!(a.is_connected());
    assert!(a.info().await.unwrap().is_master());
    // The killed connection is re-established transparently.
    b.ping().await.unwrap();

    // Promoting a master again is harmless.
    a.promote().await.unwrap();
}

#[tokio::test]
async fn promote_survives_restart_thanks_to_config_rewrite() {
    let (_m, mut replicas) = start_group(&RedisOpts::default(), 1);
    let r = &mut replicas[0];
    instance(r).promote().await.unwrap();
    r.restart();
    assert_eq!(r.role(), "master");
}

#[tokio::test]
async fn replicate_from_repoints() {
    let (m1, replicas) = start_group(&RedisOpts::default(), 1);
    let m2 = RedisProc::master();
    let r = &replicas[0];

    let mut i = instance(r);
    i.replicate_from(&m2.addr()).await.unwrap();
    r.wait_until("replicating from m2", WAIT, |r| {
        r.info_field("replication", "master_port") == Some(m2.port().to_string())
    });
    r.wait_link_up(WAIT);
    assert!(
        r.conf()
            .contains(&format!("replicaof 127.0.0.1 {}", m2.port())),
        "{}",
        r.conf()
    );
    let info = i.info().await.unwrap();
    assert_eq!(info.master_addr(), Some(&m2.addr()));

    // And a master can be turned into a replica.
    let mut old = instance(&m1);
    old.replicate_from(&m2.addr()).await.unwrap();
    m1.wait_role("slave", WAIT);
}

#[tokio::test]
async fn wrong_password_gives_clear_error() {
    let m = RedisProc::start(RedisOpts::default().password("s3cret-good-pw"));
    let mut i = with_password(m.addr(), None, "wrong-pw-123");
    let err = i.ping().await.unwrap_err();
    let text = err.to_string();
    assert!(err.is_auth(), "{err:?}");
    assert!(
        text.starts_with(&format!("{}: authentication failed: WRONGPASS", m.addr())),
        "{text}"
    );
    for shown in [text, format!("{err:?}"), format!("{i:?}")] {
        assert!(!shown.contains("wrong-pw-123"), "{shown}");
        assert!(!shown.contains("s3cret-good-pw"), "{shown}");
    }

    // Without a password: NOAUTH, also reported as an authentication failure.
    let err = instance(&m).info().await.unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert!(err.to_string().contains("NOAUTH"), "{err}");

    // The right one works.
    let mut ok = with_password(m.addr(), None, "s3cret-good-pw");
    ok.ping().await.unwrap();
    assert!(ok.info().await.unwrap().is_master());
}

#[tokio::test]
async fn acl_user_auth() {
    let m = RedisProc::start(RedisOpts::default().password("admin-pw"));
    assert_eq!(
        m.cmd(&["ACL", "SETUSER", "raft", "on", ">raft-pw", "~*", "&*", "+@all"]),
        "OK"
    );
    let mut i = with_password(m.addr(), Some("raft"), "raft-pw");
    i.ping().await.unwrap();
    assert!(i.info().await.unwrap().is_master());
    assert_eq!(raftinel_clients(&m), 1);
    assert!(m.cmd(&["CLIENT", "LIST"]).contains("user=raft"));

    let err = with_password(m.addr(), Some("raft"), "not-raft-pw")
        .ping()
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert!(!err.to_string().contains("not-raft-pw"));
}

#[tokio::test]
async fn reconnects_after_server_side_kill_and_restart() {
    let mut m = RedisProc::master();
    let mut i = instance(&m);
    i.ping().await.unwrap();

    // Killed by another client: the next call reconnects transparently.
    m.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    assert_eq!(raftinel_clients(&m), 0);
    i.ping().await.unwrap();

    // Server gone: an error, then back to normal once it is back.
    m.kill9();
    let err = i.ping().await.unwrap_err();
    assert!(!i.is_connected(), "{err}");
    m.restart();
    i.ping().await.unwrap();
}
