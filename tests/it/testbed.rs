//! The network test bed (`scripts/testbed.sh`, docs/testbed.md) driven from
//! tests: three hosts (network namespaces `rt-n1..3`, 10.77.0.11-13) each with
//! `redis-server` and `raftinel daemon` provisioned by `scripts/provision.sh`,
//! and a client host `rt-c1` (10.77.0.21), all on a bridge in its own namespace.
//!
//! Needs root and `ip netns`: without them the test FAILS with the reason (CI
//! runs as root); it never skips. The namespace names are global, so every
//! test that holds a [`Testbed`] takes a cross-process lock first (nextest runs
//! each test in its own process).
//!
//! `RAFTINEL_TESTBED_KEEP=1` leaves the test bed up after the test (inspect it
//! with `scripts/testbed.sh status`, remove it with `scripts/testbed.sh down`).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const GROUP: &str = "mymaster";
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// Held by a `flock` child process for as long as a test owns the test bed.
/// Not the lock scripts/testbed.sh takes for each command (that one is
/// `<state dir>.lock`): both are needed, and they must differ.
const LOCK_PATH: &str = "/tmp/raftinel-testbed.tests.lock";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_raftinel")
}

/// The address of a node host's Redis (`n2` -> `10.77.0.12:6379`).
pub fn redis_addr(host: &str) -> String {
    let n = host.trim_start_matches("rt-").trim_start_matches('n');
    format!("10.77.0.1{n}:6379")
}

/// The node host (`n2`) whose Redis is `addr`.
pub fn host_of(addr: &str) -> &'static str {
    NODES
        .into_iter()
        .find(|h| redis_addr(h) == addr)
        .unwrap_or_else(|| panic!("{addr} is not the Redis of a test-bed node"))
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Panics (never skips) when the test bed cannot run here.
fn require_root_and_netns() {
    const WHY: &str = "the network test bed (scripts/testbed.sh) needs root and \
        `ip netns` (iproute2) with network namespace support; CI runs the tests as \
        root. This test fails rather than skipping";
    match effective_uid() {
        Some(0) => {}
        other => panic!("{WHY}: effective uid is {other:?}, not 0"),
    }
    let netns = Command::new("ip").args(["netns", "list"]).output();
    match netns {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{WHY}: `ip netns list` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("{WHY}: cannot run `ip`: {e}"),
    }
}

/// A cross-process lock: a `flock` child holds it until its stdin closes, so
/// it is released even if this process is killed.
struct BedLock {
    child: Child,
}

impl BedLock {
    fn acquire() -> BedLock {
        let mut child = Command::new("flock")
            .args([
                "-w",
                "1200",
                LOCK_PATH,
                "sh",
                "-c",
                "echo locked; exec cat >/dev/null",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock (util-linux) to serialise the test-bed tests");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("flock stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read from flock");
        assert_eq!(
            line.trim(),
            "locked",
            "could not take the test-bed lock {LOCK_PATH} within 20 minutes"
        );
        BedLock { child }
    }
}

impl Drop for BedLock {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The test bed, up from a clean slate; `down` on drop.
pub struct Testbed {
    pub client_config: PathBuf,
    state: PathBuf,
    _lock: BedLock,
}

impl Testbed {
    /// Lock, remove any leftover test bed, bring a new one up.
    pub fn up() -> Testbed {
        require_root_and_netns();
        let lock = BedLock::acquire();
        let state = std::env::var_os("RAFTINEL_TESTBED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/raftinel-testbed"));
        let bed = Testbed {
            client_config: state.join("rt-c1/raftinel.toml"),
            state,
            _lock: lock,
        };
        bed.script(&["down"]);
        bed.script(&["up"]);
        bed
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(repo().join("scripts/testbed.sh"));
        cmd.args(args)
            .env("RAFTINEL_BIN", bin())
            .env("RAFTINEL_TESTBED_DIR", &self.state)
            .stdin(Stdio::null());
        cmd
    }

    /// Run `scripts/testbed.sh ARGS`; panic with its output if it fails.
    pub fn script(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("run scripts/testbed.sh {args:?}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "scripts/testbed.sh {} failed ({}):\n{text}",
            args.join(" "),
            out.status
        );
        text
    }

    /// Run CMD inside HOST; the result, whatever it is.
    pub fn exec(&self, host: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", host];
        args.extend_from_slice(cmd);
        self.command(&args)
            .output()
            .unwrap_or_else(|e| panic!("run scripts/testbed.sh exec {host} {cmd:?}: {e}"))
    }

    pub fn cut(&self, args: &[&str]) {
        let mut a = vec!["cut"];
        a.extend_from_slice(args);
        self.script(&a);
    }

    pub fn heal(&self, args: &[&str]) {
        let mut a = vec!["heal"];
        a.extend_from_slice(args);
        self.script(&a);
    }

    /// kill -9 HOST's `redis` or `daemon`.
    pub fn kill(&self, host: &str, what: &str) {
        self.script(&["kill", host, what]);
    }

    /// Start HOST's `redis` or `daemon` through its unit's lines.
    pub fn start(&self, host: &str, what: &str) {
        self.script(&["start", host, what]);
    }

    /// True if FROM can open a TCP connection to ADDR within a second.
    pub fn can_connect(&self, from: &str, addr: &str) -> bool {
        let (ip, port) = addr.rsplit_once(':').expect("ip:port");
        let probe = format!("exec 3<>/dev/tcp/{ip}/{port}");
        self.exec(from, &["timeout", "1", "bash", "-c", &probe])
            .status
            .success()
    }

    /// `redis-cli` (raw output) against ADDR, run on the client host (the
    /// password is set by testbed.sh exec); None when it fails.
    pub fn redis(&self, addr: &str, args: &[&str]) -> Option<String> {
        let (ip, port) = addr.rsplit_once(':').expect("ip:port");
        let mut cmd = vec!["timeout", "3", "redis-cli", "-h", ip, "-p", port];
        cmd.extend_from_slice(args);
        let out = self.exec("c1", &cmd);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.starts_with("ERR") && !text.starts_with("NOAUTH"))
            .then_some(text)
    }

    /// "role master_host:master_port link" of ADDR from INFO replication.
    pub fn repl(&self, addr: &str) -> Option<(String, String, String)> {
        let info = self.redis(addr, &["INFO", "replication"])?;
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{k}:")))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let master = match field("master_host").as_str() {
            "" => String::new(),
            h => format!("{h}:{}", field("master_port")),
        };
        Some((field("role"), master, field("master_link_status")))
    }

    /// `raftinel status --json` run inside the client host.
    pub fn status(&self) -> Value {
        let config = self.client_config.to_str().expect("utf-8 path");
        let out = self.exec(
            "c1",
            &[
                bin(),
                "status",
                "--json",
                "--timeout-ms",
                "1000",
                "--config",
                config,
            ],
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Ids of the daemons that answered `status`.
    pub fn answering(&self) -> Vec<u64> {
        let st = self.status();
        let mut ids: Vec<u64> = st
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|d| !d["status"].is_null())
                    .filter_map(|d| d["id"].as_u64())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// The group as the Raft leader (that can act) sees it.
    pub fn group(&self) -> Option<Value> {
        let st = self.status();
        let leader = st
            .as_array()?
            .iter()
            .filter_map(|a| a.get("status"))
            .find(|s| s["raft"]["is_leader"] == true && s["raft"]["can_act"] == true)?;
        leader["groups"]
            .as_array()?
            .iter()
            .find(|g| g["name"] == GROUP)
            .cloned()
    }

    /// Committed master and epoch, with no failover in progress.
    pub fn settled(&self) -> Option<(String, u64)> {
        let g = self.group()?;
        if g["initialised"] != true || !g["failover"].is_null() {
            return None;
        }
        Some((g["master"].as_str()?.to_string(), g["epoch"].as_u64()?))
    }

    /// Settled, and every other node's Redis reports itself a replica of the
    /// committed master with the link up (asked directly, not via raftinel).
    pub fn converged(&self) -> Option<(String, u64)> {
        self.converged_among(&NODES)
    }

    /// [`Testbed::converged`], looking only at the Redis of HOSTS.
    pub fn converged_among(&self, hosts: &[&str]) -> Option<(String, u64)> {
        let (master, epoch) = self.settled()?;
        let (role, _, _) = self.repl(&master)?;
        if role != "master" {
            return None;
        }
        for h in hosts {
            let addr = redis_addr(h);
            if addr != master {
                let (role, of, link) = self.repl(&addr)?;
                if role != "slave" || of != master || link != "up" {
                    return None;
                }
            }
        }
        Some((master, epoch))
    }

    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.script(&["status"])
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of every node's daemon and Redis logs.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for h in NODES {
            for (what, file) in [("daemon", "raftinel.log"), ("redis", "redis-server.log")] {
                let path = self.state.join(format!("rt-{h}/var/log/{file}"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                s.push_str(&format!("=== {h} {what} ({})\n", path.display()));
                for l in tail.into_iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if std::env::var_os("RAFTINEL_TESTBED_KEEP").is_some_and(|v| v == "1") {
            eprintln!("RAFTINEL_TESTBED_KEEP=1: the test bed stays up (scripts/testbed.sh down)");
            return;
        }
        let _ = self.command(&["down"]).output();
    }
}

/// Today's daemon over a real network: failover after kill -9, the old master
/// restarted through its unit comes back as a replica, a cut replica host
/// changes nothing, a cut master host is failed over by the majority and
/// demoted when healed. Also checks that the cuts block exactly what they say.
#[test]
fn testbed_failover_cut_and_heal() {
    let bed = Testbed::up();
    let n1 = redis_addr("n1");
    let (master, epoch) = bed.wait(
        "a committed master with both replicas linked",
        Duration::from_secs(60),
        Testbed::converged,
    );
    assert_eq!(master, n1, "node 1 is the master at first start");
    assert_eq!(bed.answering(), vec![1, 2, 3]);
    let ok = bed.redis(&n1, &["SET", "testbed:key", "before-failover"]);
    assert_eq!(ok.as_deref(), Some("OK"));
    // WAIT: the write is on both replicas before the master dies.
    assert_eq!(bed.redis(&n1, &["WAIT", "2", "5000"]).as_deref(), Some("2"));

    // The cuts block exactly what they say.
    bed.cut(&["n2", "n3"]);
    assert!(
        !bed.can_connect("n2", &redis_addr("n3")),
        "cut n2 n3: n2 still reaches n3"
    );
    assert!(
        !bed.can_connect("n3", &redis_addr("n2")),
        "cut n2 n3: n3 still reaches n2"
    );
    assert!(
        bed.can_connect("n2", &n1),
        "cut n2 n3 must not cut n2 from n1"
    );
    bed.heal(&["n2", "n3"]);
    assert!(
        bed.can_connect("n2", &redis_addr("n3")),
        "heal n2 n3: still cut"
    );
    bed.cut(&["c1", "--oneway-out"]);
    assert!(
        !bed.can_connect("c1", &n1),
        "cut c1 --oneway-out: c1 still sends"
    );
    bed.heal(&["c1"]);
    bed.cut(&["n3", "--oneway-in"]);
    assert!(
        !bed.can_connect("c1", &redis_addr("n3")),
        "cut n3 --oneway-in: n3 still receives"
    );
    bed.heal(&[]);
    assert!(
        bed.can_connect("c1", &redis_addr("n3")),
        "heal: n3 still cut"
    );

    // kill -9 the master: a replica is promoted and the other follows it.
    bed.kill("n1", "redis");
    let (new_master, new_epoch) = bed.wait(
        "a failover away from the killed master",
        Duration::from_secs(30),
        |b| b.converged_among(&["n2", "n3"]).filter(|(m, _)| *m != n1),
    );
    assert_eq!(new_epoch, epoch + 1);
    assert_eq!(
        bed.redis(&new_master, &["GET", "testbed:key"]).as_deref(),
        Some("before-failover"),
        "the acknowledged write survives the failover"
    );

    // The old master restarted through its unit comes back as a replica.
    bed.start("n1", "redis");
    bed.wait(
        "the restarted old master to replicate from the new master",
        Duration::from_secs(30),
        |b| {
            let (role, of, link) = b.repl(&n1)?;
            (role == "slave" && of == new_master && link == "up").then_some(())
        },
    );
    bed.wait(
        "convergence after the restart",
        Duration::from_secs(30),
        |b| b.converged().filter(|(m, _)| *m == new_master),
    );

    // Cut a replica's host: no failover; healed, it answers again.
    let replica = NODES
        .into_iter()
        .find(|h| redis_addr(h) != new_master)
        .expect("a replica host");
    let replica_id: u64 = replica[1..].parse().expect("node id");
    bed.cut(&[replica]);
    bed.wait(
        "the cut replica's daemon to stop answering",
        Duration::from_secs(10),
        |b| (!b.answering().contains(&replica_id)).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        bed.settled(),
        Some((new_master.clone(), new_epoch)),
        "cutting replica host {replica} must not change the master"
    );
    bed.heal(&[replica]);
    bed.wait(
        "every daemon answering after heal",
        Duration::from_secs(20),
        |b| (b.answering() == vec![1, 2, 3]).then_some(()),
    );
    bed.wait(
        "convergence after healing the replica host",
        Duration::from_secs(30),
        |b| b.converged().filter(|(m, _)| *m == new_master),
    );

    // Cut the master's host: the majority fails over; healed, the old master
    // is demoted to a replica of the new one.
    let master_host = host_of(&new_master);
    bed.cut(&[master_host]);
    let (third_master, third_epoch) = bed.wait(
        "the majority to fail over away from the cut master host",
        Duration::from_secs(30),
        |b| b.settled().filter(|(m, _)| *m != new_master),
    );
    assert_eq!(third_epoch, new_epoch + 1);
    bed.heal(&[master_host]);
    bed.wait(
        "convergence after healing the old master's host",
        Duration::from_secs(30),
        |b| b.converged().filter(|(m, _)| *m == third_master),
    );
    assert_eq!(bed.answering(), vec![1, 2, 3]);
}
