//! A cluster of real `raftinel daemon` processes on free loopback ports, each
//! with its own config and data dir in a temp dir. Dumps the daemons' logs
//! when a test fails; kills everything on drop.

use crate::harness::free_port;
use raftinel::core::types::Addr;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SECRET: &str = "e2e-secret-0123456789abcdef";

pub struct GroupDef {
    pub name: String,
    pub master: Addr,
    pub replicas: Vec<Addr>,
    pub password: Option<String>,
}

impl GroupDef {
    pub fn new(name: &str, master: Addr, replicas: Vec<Addr>) -> Self {
        GroupDef {
            name: name.into(),
            master,
            replicas,
            password: None,
        }
    }
}

/// Per-daemon settings of [`Cluster::start_with`].
#[derive(Clone, Debug, Default)]
pub struct DaemonOpts {
    /// `local_redis` of each daemon (index 0 is daemon 1); missing: none.
    pub local_redis: Vec<Option<Addr>>,
    /// Give every daemon an HTTP API (`http_listen`) on a free port.
    pub http: bool,
    /// `http_token` of every daemon (with `http`).
    pub http_token: Option<String>,
    /// TOML appended to every daemon's config (e.g. `[[notify]]` tables).
    pub extra: String,
}

pub struct Daemon {
    pub id: u64,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Address of its HTTP API, if configured.
    pub http: Option<std::net::SocketAddr>,
    /// Address of its Sentinel-compatible discovery port.
    pub discovery: Option<std::net::SocketAddr>,
    child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub daemons: Vec<Daemon>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_raftinel")
}

impl Cluster {
    pub fn start(groups: &[GroupDef]) -> Cluster {
        Cluster::start_with(groups, &DaemonOpts::default())
    }

    pub fn start_with(groups: &[GroupDef], opts: &DaemonOpts) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut daemons = Vec::new();
        for id in 1..=3u64 {
            let mut top = String::new();
            if let Some(Some(r)) = opts.local_redis.get(id as usize - 1) {
                top.push_str(&format!("local_redis = \"{r}\"\n"));
            }
            let http = opts
                .http
                .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], free_port())));
            if let Some(a) = http {
                top.push_str(&format!("http_listen = \"{a}\"\n"));
                if let Some(t) = &opts.http_token {
                    top.push_str(&format!("http_token = \"{t}\"\n"));
                }
            }
            // Every daemon gets its own discovery port (the default, 26379,
            // would collide between the three daemons of one test).
            let discovery = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
            top.push_str(&format!("\n[discovery]\nlisten = \"{discovery}\"\n"));
            let mut toml = format!(
                "node_id = {id}\ndata_dir = \"{}\"\npeer_secret = \"{SECRET}\"\nlog_level = \"info,raft_rs=warn\"\n{top}\n[raft]\ntick_ms = 50\nelection_ticks = 10\nheartbeat_ticks = 2\n\n",
                dir.path().join(format!("data{id}")).display()
            );
            for (i, p) in ports.iter().enumerate() {
                toml.push_str(&format!(
                    "[[peer]]\nid = {}\naddr = \"127.0.0.1:{p}\"\n\n",
                    i + 1
                ));
            }
            for g in groups {
                let replicas: Vec<String> = g.replicas.iter().map(|r| format!("\"{r}\"")).collect();
                toml.push_str(&format!(
                    "[[group]]\nname = \"{}\"\nmaster = \"{}\"\nreplicas = [{}]\ndown_after_ms = 500\nfailover_timeout_ms = 5000\nquorum = 2\n",
                    g.name,
                    g.master,
                    replicas.join(", ")
                ));
                if let Some(pw) = &g.password {
                    toml.push_str(&format!("password = \"{pw}\"\n"));
                }
                toml.push('\n');
            }
            toml.push_str(&opts.extra);
            let config = dir.path().join(format!("node{id}.toml"));
            std::fs::write(&config, toml).expect("write config");
            daemons.push(Daemon {
                id,
                config,
                log: dir.path().join(format!("daemon{id}.log")),
                http,
                discovery: Some(discovery),
                child: None,
            });
        }
        let mut c = Cluster { dir, daemons };
        for id in 1..=3 {
            c.start_daemon(id);
        }
        c
    }

    pub fn config(&self) -> &Path {
        &self.daemons[0].config
    }

    pub fn start_daemon(&mut self, id: u64) {
        let d = &mut self.daemons[id as usize - 1];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&d.log)
            .expect("log file");
        let child = Command::new(bin())
            .args(["daemon", "--config"])
            .arg(&d.config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn raftinel daemon");
        d.child = Some(child);
    }

    pub fn kill9_daemon(&mut self, id: u64) {
        if let Some(mut c) = self.daemons[id as usize - 1].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `raftinel status --json` through daemon `id`'s config (any config works:
    /// it asks every daemon).
    pub fn status(&self) -> Value {
        let out = Command::new(bin())
            .args(["status", "--json", "--timeout-ms", "1000", "--config"])
            .arg(self.config())
            .output()
            .expect("run raftinel status");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// The view of the current leader, if one answers.
    pub fn leader_view(&self) -> Option<Value> {
        let st = self.status();
        st.as_array()?
            .iter()
            .filter_map(|a| a.get("status"))
            .find(|s| {
                s["raft"]["is_leader"] == Value::Bool(true)
                    && s["raft"]["can_act"] == Value::Bool(true)
            })
            .cloned()
    }

    pub fn leader_id(&self) -> Option<u64> {
        self.leader_view()?["node_id"].as_u64()
    }

    pub fn group(&self, name: &str) -> Option<Value> {
        let v = self.leader_view()?;
        v["groups"]
            .as_array()?
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
    }

    /// Committed master and epoch of a group, per the leader.
    pub fn committed(&self, name: &str) -> Option<(String, u64)> {
        let g = self.group(name)?;
        Some((g["master"].as_str()?.to_string(), g["epoch"].as_u64()?))
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
                    "timed out after {timeout:?} waiting for {what}; status: {:#}",
                    self.status()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the group is initialised with no failover in progress.
    pub fn wait_settled(&self, name: &str, timeout: Duration) -> (String, u64) {
        self.wait(&format!("group {name} settled"), timeout, |c| {
            let g = c.group(name)?;
            if g["initialised"] == Value::Bool(true) && g["failover"].is_null() {
                Some((g["master"].as_str()?.to_string(), g["epoch"].as_u64()?))
            } else {
                None
            }
        })
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for d in &self.daemons {
            let text = std::fs::read_to_string(&d.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            s.push_str(&format!("=== daemon {} log (last 60 lines)\n", d.id));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    pub fn events(&self, id: u64) -> Vec<String> {
        let text = std::fs::read_to_string(&self.daemons[id as usize - 1].log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                l.split_once("raftinel::event: ")
                    .map(|(_, e)| e.to_string())
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for id in 1..=self.daemons.len() as u64 {
            self.kill9_daemon(id);
        }
    }
}
