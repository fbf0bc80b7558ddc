//! The Sentinel-compatible discovery port with REAL Sentinel clients:
//! `redis-cli`, redis-py's `redis.sentinel.Sentinel` and redis-rs' sentinel
//! client, against `raftinel::discovery::serve` fed by a hand-built view (the
//! role of the daemon loop). Where a client connects to the master or a
//! replica it names, those are real `redis-server` processes.

use crate::harness::RedisProc;
use raftinel::config::Secret;
use raftinel::core::events::Event;
use raftinel::core::types::Addr;
use raftinel::discovery::view::{
    myid_of, DiscoveryHandles, DiscoveryView, GroupView, PeerView, ReplicaView,
};
use raftinel::discovery::{serve, DiscoverySettings};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};

/// A discovery port on 127.0.0.1 answering from a view the test controls,
/// with a daemon stand-in that accepts every `SENTINEL FAILOVER`.
struct FakeDaemon {
    port: u16,
    view: watch::Sender<DiscoveryView>,
    events: broadcast::Sender<Event>,
    rt: tokio::runtime::Runtime,
}

impl FakeDaemon {
    fn start(view: DiscoveryView) -> FakeDaemon {
        FakeDaemon::start_with(view, DiscoverySettings::default())
    }

    fn start_with(view: DiscoveryView, cfg: DiscoverySettings) -> FakeDaemon {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let (view_tx, view_rx) = watch::channel(view);
        let (events, _) = broadcast::channel(1024);
        let (fo_tx, mut fo_rx) = mpsc::channel::<raftinel::discovery::view::FailoverRequest>(8);
        rt.spawn(async move {
            while let Some(req) = fo_rx.recv().await {
                let _ = req.reply.send(Ok(()));
            }
        });
        rt.spawn(serve(
            listener,
            cfg,
            DiscoveryHandles {
                view: view_rx,
                events: events.clone(),
                failover: fo_tx,
            },
        ));
        FakeDaemon {
            port,
            view: view_tx,
            events,
            rt,
        }
    }

    fn set(&self, f: impl FnOnce(&mut DiscoveryView)) {
        self.view.send_modify(f);
    }

    fn publish(&self, name: &str, payload: &str) {
        let _ = self.events.send(Event::new(name, payload.to_string()));
    }
}

fn replica_view(addr: Addr, master: &Addr) -> ReplicaView {
    ReplicaView {
        addr,
        sdown: false,
        run_id: Some("b".repeat(40)),
        offset: Some(100),
        link_up: Some(true),
        link_down_since_s: None,
        priority: Some(100),
        master: Some(master.clone()),
        last_ok_ms_ago: Some(50),
        info_age_ms: Some(200),
        reports_master: false,
    }
}

/// Group `mymaster` with `master` and `replicas`, as daemon 1 of 3 that is
/// current (fresh).
fn view_of(master: Addr, replicas: Vec<Addr>) -> DiscoveryView {
    let replicas = replicas
        .into_iter()
        .map(|r| replica_view(r, &master))
        .collect();
    DiscoveryView {
        fresh: true,
        node_id: 1,
        myid: myid_of(1),
        raft_term: 2,
        leader: Some(1),
        groups: vec![GroupView {
            name: "mymaster".into(),
            master,
            epoch: 1,
            quorum: 2,
            down_after_ms: 1000,
            failover_timeout_ms: 10_000,
            parallel_syncs: 1,
            master_sdown: false,
            master_odown: false,
            master_run_id: Some("a".repeat(40)),
            master_offset: Some(100),
            master_last_ok_ms_ago: Some(50),
            master_info_age_ms: Some(200),
            failover_in_progress: false,
            replicas,
        }],
        peers: vec![
            PeerView {
                id: 2,
                myid: myid_of(2),
                discovery_addr: Some(Addr::new("127.0.0.1", 26380)),
                last_heard_ms_ago: Some(40),
            },
            PeerView {
                id: 3,
                myid: myid_of(3),
                discovery_addr: Some(Addr::new("127.0.0.1", 26381)),
                last_heard_ms_ago: Some(40),
            },
        ],
    }
}

fn sample_view() -> DiscoveryView {
    view_of(
        Addr::new("127.0.0.1", 6379),
        vec![Addr::new("127.0.0.1", 6380), Addr::new("127.0.0.1", 6381)],
    )
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli is installed (scripts/test.sh installs redis-tools)");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a python3 script that uses redis-py; returns its stdout.
fn python(script: &str) -> String {
    let check = Command::new("python3")
        .args(["-c", "import redis"])
        .output()
        .expect("python3 is installed");
    assert!(
        check.status.success(),
        "the python redis package is missing: run scripts/test.sh, which installs it (python3 -m pip install redis)"
    );
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python failed:\n{script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// redis-cli
// ---------------------------------------------------------------------------

#[test]
fn redis_cli_gets_the_master_address() {
    let d = FakeDaemon::start(sample_view());
    for proto in ["-2", "-3"] {
        assert_eq!(
            redis_cli(
                d.port,
                &[proto, "SENTINEL", "get-master-addr-by-name", "mymaster"]
            ),
            "127.0.0.1\n6379\n",
            "{proto}"
        );
    }
    assert_eq!(redis_cli(d.port, &["PING"]), "PONG\n");
    let masters = redis_cli(d.port, &["SENTINEL", "masters"]);
    assert!(
        masters.contains("name\nmymaster\nip\n127.0.0.1\nport\n6379\n"),
        "{masters}"
    );
    let info = redis_cli(d.port, &["INFO", "sentinel"]);
    assert!(
        info.contains(
            "master0:name=mymaster,status=ok,address=127.0.0.1:6379,slaves=2,sentinels=3"
        ),
        "{info}"
    );
    assert_eq!(
        redis_cli(d.port, &["SENTINEL", "ckquorum", "mymaster"]),
        "OK 3 usable Sentinels. Quorum and failover authorization can be reached\n"
    );
    assert_eq!(
        redis_cli(d.port, &["SENTINEL", "failover", "mymaster"]),
        "OK\n"
    );

    // Unknown name, and a daemon that is not sure it is current: null.
    let unknown = redis_cli(d.port, &["SENTINEL", "get-master-addr-by-name", "other"]);
    assert!(
        unknown.trim().is_empty() || unknown.contains("nil"),
        "{unknown:?}"
    );
    d.set(|v| v.fresh = false);
    for proto in ["-2", "-3"] {
        let out = redis_cli(
            d.port,
            &[proto, "SENTINEL", "get-master-addr-by-name", "mymaster"],
        );
        assert!(!out.contains("6379"), "{proto}: {out:?}");
    }
    assert!(!redis_cli(d.port, &["SENTINEL", "masters"]).contains("mymaster"));
}

#[test]
fn redis_cli_with_a_password_and_a_user() {
    let cfg = DiscoverySettings {
        username: Some("app".into()),
        password: Some(Secret::new("disc-pass")),
        ..DiscoverySettings::default()
    };
    let d = FakeDaemon::start_with(sample_view(), cfg);
    let out = redis_cli(
        d.port,
        &[
            "--user",
            "app",
            "--pass",
            "disc-pass",
            "--no-auth-warning",
            "SENTINEL",
            "get-master-addr-by-name",
            "mymaster",
        ],
    );
    assert_eq!(out, "127.0.0.1\n6379\n");
    let out = redis_cli(d.port, &["SENTINEL", "get-master-addr-by-name", "mymaster"]);
    assert!(out.contains("NOAUTH"), "{out}");
    let out = redis_cli(
        d.port,
        &[
            "--user",
            "app",
            "--pass",
            "wrong",
            "--no-auth-warning",
            "PING",
        ],
    );
    assert!(out.contains("WRONGPASS") || out.contains("PONG"), "{out}");
}

// ---------------------------------------------------------------------------
// redis-py
// ---------------------------------------------------------------------------

#[test]
fn redis_py_discovers_master_and_replicas_in_resp2_and_resp3() {
    let d = FakeDaemon::start(sample_view());
    let out = python(&format!(
        r#"
from redis.sentinel import Sentinel
for proto in (2, 3):
    s = Sentinel([("127.0.0.1", {port})], socket_timeout=2,
                 sentinel_kwargs={{"protocol": proto, "socket_timeout": 2}})
    print(proto, s.discover_master("mymaster"), sorted(s.discover_slaves("mymaster")))
"#,
        port = d.port
    ));
    assert_eq!(
        out,
        "2 ('127.0.0.1', 6379) [('127.0.0.1', 6380), ('127.0.0.1', 6381)]\n\
         3 ('127.0.0.1', 6379) [('127.0.0.1', 6380), ('127.0.0.1', 6381)]\n"
    );
}

#[test]
fn redis_py_moves_on_from_a_daemon_that_is_not_current() {
    // Daemon A is cut off: its last view names an old master, but it is
    // not fresh. Daemon B is current.
    let mut stale = view_of(Addr::new("127.0.0.1", 7777), vec![]);
    stale.fresh = false;
    let a = FakeDaemon::start(stale);
    let b = FakeDaemon::start(sample_view());
    let out = python(&format!(
        r#"
from redis.sentinel import Sentinel, MasterNotFoundError
for proto in (2, 3):
    kw = {{"protocol": proto, "socket_timeout": 2}}
    both = Sentinel([("127.0.0.1", {a}), ("127.0.0.1", {b})], socket_timeout=2, sentinel_kwargs=kw)
    print(proto, both.discover_master("mymaster"))
    alone = Sentinel([("127.0.0.1", {a})], socket_timeout=2, sentinel_kwargs=kw)
    try:
        print(proto, "stale answer", alone.discover_master("mymaster"))
    except MasterNotFoundError:
        print(proto, "no master from the stale daemon")
    try:
        print(proto, "stale replicas", alone.discover_slaves("mymaster"))
    except Exception as e:
        print(proto, "error", type(e).__name__)
"#,
        a = a.port,
        b = b.port
    ));
    for proto in [2, 3] {
        assert!(
            out.contains(&format!("{proto} ('127.0.0.1', 6379)\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{proto} no master from the stale daemon\n")),
            "{out}"
        );
    }
    assert!(!out.contains("7777"), "{out}");
}

#[test]
fn redis_py_writes_through_the_master_it_discovers() {
    let master = RedisProc::master();
    let replica = RedisProc::replica_of(&master);
    master.wait_replicas_online(1, Duration::from_secs(10));
    let d = FakeDaemon::start(view_of(master.addr(), vec![replica.addr()]));
    let out = python(&format!(
        r#"
import time
from redis.sentinel import Sentinel
s = Sentinel([("127.0.0.1", {port})], socket_timeout=2)
m = s.master_for("mymaster", socket_timeout=2)
m.set("discovery-key", "v1")
print("master", m.get("discovery-key").decode())
r = s.slave_for("mymaster", socket_timeout=2)
deadline = time.time() + 10
while r.get("discovery-key") is None and time.time() < deadline:
    time.sleep(0.05)
print("replica", r.get("discovery-key").decode())
"#,
        port = d.port
    ));
    assert_eq!(out, "master v1\nreplica v1\n");
    assert_eq!(master.cmd(&["GET", "discovery-key"]).trim(), "v1");
}

/// redis-py subscribes like go-redis / Jedis (`+switch-master`) and like
/// Lettuce (`PSUBSCRIBE *`); each hears the event the daemon publishes.
#[test]
fn redis_py_subscribers_hear_switch_master() {
    let d = FakeDaemon::start(sample_view());
    let script = format!(
        r#"
import redis, sys
for proto, kind in ((2, "subscribe"), (3, "psubscribe")):
    r = redis.Redis(port={port}, protocol=proto, socket_timeout=10)
    p = r.pubsub()
    if kind == "subscribe":
        p.subscribe("+switch-master")
    else:
        p.psubscribe("*")
    while True:
        m = p.get_message(timeout=10)
        if m and m["type"] == kind:
            break
    print("ready", proto, flush=True)
    while True:
        m = p.get_message(timeout=10)
        if m is None:
            print("timeout", flush=True)
            sys.exit(1)
        if m["type"] in ("message", "pmessage"):
            print(proto, m["type"], m["channel"].decode(), m["data"].decode(), flush=True)
            break
    p.close()
"#,
        port = d.port
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let payload = "mymaster 127.0.0.1 6379 127.0.0.1 6380";
    let mut got = Vec::new();
    for proto in [2, 3] {
        let ready = lines.next().expect("a line").expect("read");
        assert_eq!(ready, format!("ready {proto}"));
        d.publish("+switch-master", payload);
        got.push(lines.next().expect("a line").expect("read"));
    }
    assert!(child.wait().expect("wait").success());
    assert_eq!(
        got,
        vec![
            format!("2 message +switch-master {payload}"),
            format!("3 pmessage +switch-master {payload}"),
        ]
    );
}

// ---------------------------------------------------------------------------
// redis-rs
// ---------------------------------------------------------------------------

#[test]
fn redis_rs_sentinel_client_reaches_master_and_replica() {
    use redis::sentinel::{Sentinel, SentinelClient, SentinelServerType};
    let master = RedisProc::master();
    let replica = RedisProc::replica_of(&master);
    master.wait_replicas_online(1, Duration::from_secs(10));
    let d = FakeDaemon::start(view_of(master.addr(), vec![replica.addr()]));
    let url = format!("redis://127.0.0.1:{}", d.port);
    let master_port = master.port();
    let stale_port = d.rt.block_on(async {
        let mut client = SentinelClient::build(
            vec![url.clone()],
            "mymaster".to_string(),
            None,
            SentinelServerType::Master,
        )
        .expect("build");
        let mut con = client.get_async_connection().await.expect("master");
        let _: () = redis::cmd("SET")
            .arg("rs-key")
            .arg("v2")
            .query_async(&mut con)
            .await
            .expect("SET on the master");

        let mut replicas = SentinelClient::build(
            vec![url.clone()],
            "mymaster".to_string(),
            None,
            SentinelServerType::Replica,
        )
        .expect("build");
        let mut rcon = replicas.get_async_connection().await.expect("replica");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v: Option<String> = redis::cmd("GET")
                .arg("rs-key")
                .query_async(&mut rcon)
                .await
                .expect("GET on the replica");
            if v.as_deref() == Some("v2") {
                break;
            }
            assert!(Instant::now() < deadline, "replica never saw the write");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let mut sentinel = Sentinel::build(vec![url.clone()]).expect("build");
        let client = sentinel
            .async_master_for("mymaster", None)
            .await
            .expect("master_for");
        client.get_connection_info().addr().to_string()
    });
    assert!(
        stale_port.ends_with(&format!(":{master_port}")),
        "{stale_port}"
    );
    assert_eq!(master.cmd(&["GET", "rs-key"]).trim(), "v2");

    // Not current: redis-rs finds no master here.
    d.set(|v| v.fresh = false);
    let err = d.rt.block_on(async {
        let mut client = SentinelClient::build(
            vec![url],
            "mymaster".to_string(),
            None,
            SentinelServerType::Master,
        )
        .expect("build");
        client.get_async_connection().await.err()
    });
    assert!(err.is_some(), "no master from a daemon that is not current");
}

// ---------------------------------------------------------------------------
// A real three-daemon cluster with real Redis
// ---------------------------------------------------------------------------

mod cluster {
    use super::{python, redis_cli};
    use crate::cluster::{Cluster, GroupDef};
    use crate::harness::{start_group, RedisOpts, RedisProc};
    use std::io::Read;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const T: Duration = Duration::from_secs(30);

    fn ports(c: &Cluster) -> Vec<u16> {
        c.daemons
            .iter()
            .map(|d| {
                d.discovery
                    .expect("the cluster gives every daemon a discovery port")
                    .port()
            })
            .collect()
    }

    /// `SENTINEL get-master-addr-by-name` through one daemon, as redis-cli
    /// prints it (`ip:port`), or None for null / no answer.
    fn addr_via(port: u16, group: &str) -> Option<String> {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &port.to_string(),
                "SENTINEL",
                "get-master-addr-by-name",
                group,
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        match lines.as_slice() {
            [ip, port] => Some(format!("{ip}:{port}")),
            _ => None,
        }
    }

    fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A redis-py subscriber printing every `+switch-master` message it
    /// hears until `stop` exists.
    fn subscriber(port: u16, proto: u8, pattern: bool, stop: &std::path::Path) -> Child {
        let sub = if pattern {
            "p.psubscribe('*')"
        } else {
            "p.subscribe('+switch-master')"
        };
        let script = format!(
            r#"
import os, sys, redis
r = redis.Redis(port={port}, protocol={proto}, socket_timeout=5)
p = r.pubsub()
{sub}
while not os.path.exists({stop:?}):
    m = p.get_message(timeout=0.2)
    if m and m["type"] in ("message", "pmessage") and m["channel"] == b"+switch-master":
        print(m["data"].decode(), flush=True)
"#,
            stop = stop.display().to_string()
        );
        Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3")
    }

    fn collect(mut child: Child) -> Vec<String> {
        let mut out = String::new();
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        assert!(child.wait().expect("wait").success(), "subscriber failed");
        out.lines().map(str::to_string).collect()
    }

    /// redis-cli, redis-py and redis-rs find the master through the daemons,
    /// write, the master is killed with -9, and they reach the new master
    /// with no configuration change; every subscriber hears exactly one
    /// `+switch-master` with the right payload.
    #[test]
    fn real_clients_follow_a_kill9_failover() {
        let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
        let c = Cluster::start(&[GroupDef::new(
            "mymaster",
            master.addr(),
            replicas.iter().map(RedisProc::addr).collect(),
        )]);
        c.wait_settled("mymaster", T);
        let ports = ports(&c);
        let old = master.addr().to_string();
        for &p in &ports {
            wait_until("the daemon names the master", T, || {
                (addr_via(p, "mymaster")? == old).then_some(())
            });
        }

        let stop = c.dir.path().join("stop-subscribers");
        let subs = vec![
            subscriber(ports[0], 2, false, &stop),
            subscriber(ports[1], 3, true, &stop),
            subscriber(ports[2], 2, true, &stop),
        ];
        let sentinels: Vec<String> = ports
            .iter()
            .map(|p| format!("(\"127.0.0.1\", {p})"))
            .collect();
        let sentinels = sentinels.join(", ");
        let py_write = |value: &str| {
            python(&format!(
                r#"
import time
from redis.sentinel import Sentinel
s = Sentinel([{sentinels}], socket_timeout=1)
deadline = time.time() + 30
while True:
    try:
        m = s.master_for("mymaster", socket_timeout=1)
        m.set("py-key", "{value}")
        print("%s:%d" % s.discover_master("mymaster"))
        break
    except Exception as e:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
"#
            ))
            .trim()
            .to_string()
        };
        assert_eq!(py_write("before"), old);
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        let mut rs_client = redis::sentinel::SentinelClient::build(
            urls,
            "mymaster".to_string(),
            None,
            redis::sentinel::SentinelServerType::Master,
        )
        .expect("build");
        let mut rs_set = |value: &str| -> String {
            let value = value.to_string();
            rt.block_on(async {
                let deadline = Instant::now() + T;
                loop {
                    let attempt = async {
                        let mut con = rs_client.get_async_connection().await?;
                        redis::cmd("SET")
                            .arg("rs-key")
                            .arg(&value)
                            .query_async::<()>(&mut con)
                            .await?;
                        redis::cmd("INFO")
                            .arg("server")
                            .query_async::<String>(&mut con)
                            .await
                    };
                    match attempt.await {
                        Ok(info) => {
                            return info
                                .lines()
                                .find_map(|l| l.strip_prefix("tcp_port:"))
                                .unwrap_or_default()
                                .trim()
                                .to_string()
                        }
                        Err(e) => {
                            assert!(Instant::now() < deadline, "redis-rs: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        };
        assert_eq!(rs_set("before"), master.port().to_string());
        std::thread::sleep(Duration::from_millis(300));

        master.kill9();
        let new = wait_until("a new master named by every daemon", T, || {
            let answers: Vec<Option<String>> =
                ports.iter().map(|&p| addr_via(p, "mymaster")).collect();
            let first = answers[0].clone()?;
            (first != old && answers.iter().all(|a| a.as_deref() == Some(first.as_str())))
                .then_some(first)
        });
        assert!(
            replicas.iter().any(|r| r.addr().to_string() == new),
            "{new} is one of the replicas"
        );
        let new_port = new.rsplit(':').next().unwrap_or_default().to_string();

        // Same client configuration, new master.
        assert_eq!(py_write("after"), new);
        assert_eq!(rs_set("after"), new_port);
        let promoted = replicas
            .iter()
            .find(|r| r.addr().to_string() == new)
            .expect("promoted replica");
        assert_eq!(promoted.cmd(&["GET", "py-key"]), "after");
        assert_eq!(promoted.cmd(&["GET", "rs-key"]), "after");

        // Exactly one +switch-master per subscriber, with Sentinel's payload.
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::write(&stop, "").expect("stop file");
        let (oh, op) = old.rsplit_once(':').expect("old addr");
        let (nh, np) = new.rsplit_once(':').expect("new addr");
        let expected = format!("mymaster {oh} {op} {nh} {np}");
        for (i, s) in subs.into_iter().enumerate() {
            assert_eq!(collect(s), vec![expected.clone()], "subscriber {i}");
        }
    }

    /// A daemon cut off from the other two stops naming the master within
    /// the election timeout (plus the time to notice), so clients ask
    /// another daemon; it answers again once a majority is back.
    #[test]
    fn an_isolated_daemon_answers_null() {
        let (master, replicas) = start_group(&RedisOpts::default(), 1);
        let mut c = Cluster::start(&[GroupDef::new(
            "mymaster",
            master.addr(),
            replicas.iter().map(RedisProc::addr).collect(),
        )]);
        c.wait_settled("mymaster", T);
        let ports = ports(&c);
        let want = master.addr().to_string();
        wait_until("daemon 1 names the master", T, || {
            (addr_via(ports[0], "mymaster")? == want).then_some(())
        });

        c.kill9_daemon(2);
        c.kill9_daemon(3);
        let killed = Instant::now();
        wait_until("daemon 1 answers null", Duration::from_secs(10), || {
            addr_via(ports[0], "mymaster").is_none().then_some(())
        });
        let took = killed.elapsed();
        // Election timeout: 10 ticks of 50 ms (tests/it/cluster.rs).
        assert!(took < Duration::from_secs(3), "null after {took:?}");
        assert!(redis_cli(ports[0], &["SENTINEL", "masters"])
            .trim()
            .is_empty());
        let out = python(&format!(
            r#"
from redis.sentinel import Sentinel, MasterNotFoundError
s = Sentinel([("127.0.0.1", {p1}), ("127.0.0.1", {p2}), ("127.0.0.1", {p3})], socket_timeout=0.5)
try:
    print("stale answer", s.discover_master("mymaster"))
except MasterNotFoundError:
    print("no master")
"#,
            p1 = ports[0],
            p2 = ports[1],
            p3 = ports[2]
        ));
        assert_eq!(out.trim(), "no master");

        // A majority again: daemon 1 answers again, and redis-py finds the
        // master through whichever daemon answers.
        c.start_daemon(2);
        wait_until("daemon 1 names the master again", T, || {
            (addr_via(ports[0], "mymaster")? == want).then_some(())
        });
        let out = python(&format!(
            r#"
from redis.sentinel import Sentinel
s = Sentinel([("127.0.0.1", {p3}), ("127.0.0.1", {p1}), ("127.0.0.1", {p2})], socket_timeout=0.5)
print("%s:%d" % s.discover_master("mymaster"))
"#,
            p1 = ports[0],
            p2 = ports[1],
            p3 = ports[2]
        ));
        assert_eq!(out.trim(), want);
        eprintln!("isolated daemon answered null {took:?} after losing its peers");
    }
}
