//! Test harness: real `redis-server` processes on loopback ports.
//!
//! Owns starting, stopping and inspecting Redis for the integration tests.
//! Each [`RedisProc`] runs in its own temporary directory with a written
//! `redis.conf` (so `CONFIG REWRITE` works and [`RedisProc::restart`] keeps
//! the rewritten config), logs to `redis.log` there, and is SIGKILLed on drop.
//! Inspection goes through `redis-cli`, independent of the code under test.
//!
//! ```ignore
//! let (master, replicas) = start_group(&RedisOpts::default(), 2);
//! replicas[0].kill9();
//! master.wait_role("master", Duration::from_secs(5));
//! ```
#![allow(dead_code)]

use raftinel::core::types::Addr;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a server gets to answer after being started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up when a picked port turns out to be taken.
const PORT_ATTEMPTS: usize = 8;

/// A loopback TCP port that was free a moment ago (bound to port 0, then
/// released). Someone else may grab it before it is used: callers retry.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// How to configure a server. `Default` is a standalone master without
/// password or persistence.
#[derive(Clone, Debug, Default)]
pub struct RedisOpts {
    /// `requirepass` (the `default` user's password); also used by `cmd`.
    pub requirepass: Option<String>,
    /// `masterauth`, to replicate from a password-protected master.
    pub masterauth: Option<String>,
    /// `replicaof host port`.
    pub replicaof: Option<Addr>,
    /// `appendonly yes` (default: no persistence at all).
    pub appendonly: bool,
    /// More `redis.conf` lines, written verbatim.
    pub extra: Vec<String>,
}

impl RedisOpts {
    /// Sets both `requirepass` and `masterauth`, as in a group sharing one
    /// password.
    pub fn password(mut self, password: &str) -> Self {
        self.requirepass = Some(password.to_string());
        self.masterauth = Some(password.to_string());
        self
    }

    pub fn replica_of(mut self, master: &Addr) -> Self {
        self.replicaof = Some(master.clone());
        self
    }

    pub fn appendonly(mut self) -> Self {
        self.appendonly = true;
        self
    }

    /// Adds a verbatim `redis.conf` line, e.g. `"replica-priority 0"`.
    pub fn line(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    fn conf(&self, port: u16, dir: &Path) -> String {
        let mut conf = vec![
            format!("port {port}"),
            "bind 127.0.0.1".to_string(),
            format!("dir \"{}\"", dir.display()),
            "logfile \"redis.log\"".to_string(),
            "daemonize no".to_string(),
            "save \"\"".to_string(),
            format!("appendonly {}", if self.appendonly { "yes" } else { "no" }),
            // Full syncs start at once instead of after the default 5 s.
            "repl-diskless-sync-delay 0".to_string(),
            "repl-ping-replica-period 1".to_string(),
        ];
        if let Some(p) = &self.requirepass {
            conf.push(format!("requirepass \"{p}\""));
        }
        if let Some(p) = &self.masterauth {
            conf.push(format!("masterauth \"{p}\""));
        }
        if let Some(m) = &self.replicaof {
            conf.push(format!("replicaof {} {}", m.host, m.port));
        }
        conf.extend(self.extra.iter().cloned());
        conf.join("\n") + "\n"
    }
}

/// One running (or killed) `redis-server`.
pub struct RedisProc {
    port: u16,
    dir: TempDir,
    opts: RedisOpts,
    child: Option<Child>,
}

impl RedisProc {
    /// Starts a server on a free port and waits until it answers. Panics
    /// (with the log tail) if it cannot be started.
    pub fn start(opts: RedisOpts) -> RedisProc {
        let dir = tempfile::Builder::new()
            .prefix("raftinel-redis-")
            .tempdir()
            .expect("create temp dir");
        let mut proc = RedisProc {
            port: 0,
            dir,
            opts,
            child: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            proc.port = free_port();
            fs::write(proc.conf_path(), proc.opts.conf(proc.port, proc.dir.path()))
                .expect("write redis.conf");
            let _ = fs::remove_file(proc.log_path());
            match proc.spawn_and_wait() {
                Ok(()) => return proc,
                Err(e) if proc.log_tail(50).contains("Address already in use") => {
                    eprintln!("port {} taken, retrying: {e}", proc.port);
                }
                Err(e) => proc.fail(&e),
            }
        }
        proc.fail("no free port found")
    }

    /// A standalone master without password.
    pub fn master() -> RedisProc {
        RedisProc::start(RedisOpts::default())
    }

    /// A replica of `master`, with the master's password as its own
    /// `requirepass` and `masterauth`.
    pub fn replica_of(master: &RedisProc) -> RedisProc {
        let mut opts = RedisOpts::default().replica_of(&master.addr());
        if let Some(p) = &master.opts.requirepass {
            opts = opts.password(p);
        }
        RedisProc::start(opts)
    }

    /// Process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> Addr {
        Addr::new("127.0.0.1", self.port)
    }

    pub fn opts(&self) -> &RedisOpts {
        &self.opts
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("redis.conf")
    }

    /// The current `redis.conf` (as possibly rewritten by `CONFIG REWRITE`).
    pub fn conf(&self) -> String {
        fs::read_to_string(self.conf_path()).expect("read redis.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The last `n` lines of the server log and of its stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for name in ["redis.log", "stderr.log"] {
            let Ok(file) = File::open(self.dir.path().join(name)) else {
                continue;
            };
            let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
            let start = lines.len().saturating_sub(n);
            out.push_str(&format!("--- {name} (last {n} lines) ---\n"));
            out.push_str(&lines[start..].join("\n"));
            out.push('\n');
        }
        out
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, directory and (possibly
    /// rewritten) config file; kills it first if it is running.
    pub fn restart(&mut self) {
        self.kill9();
        if let Err(e) = self.spawn_and_wait() {
            self.fail(&e);
        }
    }

    /// Runs `redis-cli` with `args` (authenticated with `requirepass` if set)
    /// and returns its output without the trailing newline. Error replies come
    /// back as text (`ERR ...`), not as a panic. Each call is a new
    /// connection: see [`RedisProc::cmds`] for `WAIT` and friends.
    pub fn cmd(&self, args: &[&str]) -> String {
        let mut cli = Command::new("redis-cli");
        cli.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(p) = &self.opts.requirepass {
            cli.env("REDISCLI_AUTH", p);
        }
        let out = cli
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.trim_end_matches('\n').to_string();
        if !out.status.success() {
            // Typically "Could not connect": return it like an error reply.
            return format!("{text}{}", String::from_utf8_lossy(&out.stderr).trim_end());
        }
        text
    }

    /// Runs several commands on ONE connection (`redis-cli` reading them from
    /// stdin) and returns their replies, one after the other. Needed for
    /// per-connection commands: `WAIT` only waits for the writes of its own
    /// connection, so `cmd(&["WAIT", ..])` after `cmd(&["SET", ..])` returns
    /// at once without waiting for anything.
    pub fn cmds(&self, cmds: &[&[&str]]) -> String {
        let script: String = cmds
            .iter()
            .map(|args| {
                let quoted: Vec<String> = args
                    .iter()
                    .map(|a| format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect();
                quoted.join(" ") + "\n"
            })
            .collect();
        let mut cli = Command::new("redis-cli");
        cli.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(p) = &self.opts.requirepass {
            cli.env("REDISCLI_AUTH", p);
        }
        let mut child = cli
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run redis-cli");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write to redis-cli");
        let out = child.wait_with_output().expect("wait for redis-cli");
        let text = String::from_utf8_lossy(&out.stdout);
        format!(
            "{}{}",
            text.trim_end_matches('\n'),
            String::from_utf8_lossy(&out.stderr).trim_end()
        )
    }

    /// Waits until every replica has applied everything this master has
    /// written (`slave_repl_offset` >= the master's `master_repl_offset`).
    pub fn wait_in_sync(&self, replicas: &[&RedisProc], timeout: Duration) {
        let offset = |p: &RedisProc, field: &str| -> Option<u64> {
            p.info_field("replication", field)?.trim().parse().ok()
        };
        let target = offset(self, "master_repl_offset").unwrap_or(0);
        for r in replicas {
            r.wait_until(&format!("replica offset >= {target}"), timeout, |r| {
                offset(r, "slave_repl_offset").is_some_and(|o| o >= target)
            });
        }
    }

    /// The role `ROLE` reports: `master` or `slave` (empty if unreachable).
    pub fn role(&self) -> String {
        self.cmd(&["ROLE"]).lines().next().unwrap_or("").to_string()
    }

    /// A field of `INFO <section>`, e.g. `info_field("replication", "master_link_status")`.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let info = self.cmd(&["INFO", section]);
        info.lines().find_map(|l| {
            let (k, v) = l.trim_end_matches('\r').split_once(':')?;
            (k == field).then(|| v.to_string())
        })
    }

    /// Waits until `ROLE` reports `role`; panics (with the log tail) on timeout.
    pub fn wait_role(&self, role: &str, timeout: Duration) {
        self.wait_until(&format!("role {role}"), timeout, |p| p.role() == role);
    }

    /// Waits until this replica's link to its master is up.
    pub fn wait_link_up(&self, timeout: Duration) {
        self.wait_until("master_link_status:up", timeout, |p| {
            p.info_field("replication", "master_link_status").as_deref() == Some("up")
        });
    }

    /// Waits until this master lists `n` replicas in state `online`.
    pub fn wait_replicas_online(&self, n: usize, timeout: Duration) {
        self.wait_until(&format!("{n} online replicas"), timeout, |p| {
            p.cmd(&["INFO", "replication"])
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                .count()
                >= n
        });
    }

    /// Polls `cond` every 20 ms; panics (with the log tail) after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            if Instant::now() > deadline {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let stderr = File::create(self.dir.path().join("stderr.log"))
            .map_err(|e| format!("create stderr.log: {e}"))?;
        let child = Command::new("redis-server")
            .arg(self.conf_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        let pid = child.id();
        self.child = Some(child);

        // Ready when *our* process (another test's server could hold the
        // port) answers INFO with its pid and has finished loading.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.is_running() {
                self.child = None;
                return Err(format!("redis-server on port {} exited", self.port));
            }
            let info = self.cmd(&["INFO"]);
            let has = |line: &str| info.lines().any(|l| l.trim_end() == line);
            if has(&format!("process_id:{pid}")) && has("loading:0") {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill9();
                return Err(format!(
                    "redis-server on port {} not ready after {START_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "redis-server on port {}: {what}\n{}",
            self.port,
            self.log_tail(30)
        )
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "redis-server on port {} at test failure:\n{}",
                self.port,
                self.log_tail(20)
            );
        }
        self.kill9();
    }
}

/// A master started with `opts` and `replicas` replicas of it (same `opts`
/// plus `replicaof`; use [`RedisOpts::password`] so they can authenticate),
/// all links up and all replicas `online` on the master.
pub fn start_group(opts: &RedisOpts, replicas: usize) -> (RedisProc, Vec<RedisProc>) {
    let master = RedisProc::start(opts.clone());
    let replicas: Vec<RedisProc> = (0..replicas)
        .map(|_| RedisProc::start(opts.clone().replica_of(&master.addr())))
        .collect();
    for r in &replicas {
        r.wait_link_up(Duration::from_secs(10));
    }
    master.wait_replicas_online(replicas.len(), Duration::from_secs(10));
    (master, replicas)
}
