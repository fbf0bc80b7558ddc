//! Notifications through real servers on 127.0.0.1: a real SMTP server
//! (aiosmtpd, scripts/smtp_sink.py), a local HTTP receiver for Slack and
//! webhooks, and shell scripts that record their arguments.
//!
//! Needs the Python package aiosmtpd (scripts/test.sh installs it); without it
//! the SMTP tests fail and say so.

use crate::harness::free_port;
use hmac::{Hmac, Mac};
use raftinel::core::types::Addr;
use raftinel::notify::{
    parse_notify, send_test, DeliveryReport, Notification, Notifier, NotifyConfig, Outcome,
    TimelineEntry,
};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn addr(s: &str) -> Addr {
    s.parse().unwrap()
}

fn completed(epoch: u64) -> Notification {
    Notification::failover_completed(
        "mymaster",
        epoch,
        &addr("10.0.0.1:6379"),
        &addr("10.0.0.2:6379"),
        1840,
        vec![
            TimelineEntry::new(
                1_714_557_600_000,
                "+odown master mymaster 10.0.0.1 6379 #quorum 2",
            ),
            TimelineEntry::new(
                1_714_557_600_900,
                "+try-failover master mymaster 10.0.0.1 6379",
            ),
            TimelineEntry::new(
                1_714_557_601_840,
                "+switch-master mymaster 10.0.0.1 6379 10.0.0.2 6379",
            ),
        ],
        1_714_557_601_900,
    )
}

fn config(text: &str, dir: &Path) -> NotifyConfig {
    parse_notify(text, dir).unwrap_or_else(|e| panic!("bad test config: {e}\n{text}"))
}

/// Waits for a report matching `pred`; panics with the reports seen.
async fn wait_report(
    rx: &mut tokio::sync::broadcast::Receiver<DeliveryReport>,
    timeout: Duration,
    pred: impl Fn(&DeliveryReport) -> bool,
) -> DeliveryReport {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(r)) if pred(&r) => return r,
            Ok(Ok(r)) => seen.push(r),
            Ok(Err(e)) => panic!("report stream: {e}"),
            Err(_) => panic!("no matching report within {timeout:?}; saw {seen:#?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// SMTP: aiosmtpd as a subprocess
// ---------------------------------------------------------------------------

pub(crate) struct SmtpSink {
    child: Child,
    dir: PathBuf,
}

impl SmtpSink {
    pub(crate) fn start(port: u16, dir: &Path, auth: Option<&str>) -> SmtpSink {
        let check = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        match check {
            Ok(o) if o.status.success() => {}
            _ => panic!(
                "the Python package aiosmtpd is not installed (needed for a real SMTP server): \
                 run scripts/test.sh, which installs it (python3 -m pip install aiosmtpd)"
            ),
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(a) = auth {
            cmd.args(["--auth", a]);
        }
        let mut child = cmd.spawn().expect("start scripts/smtp_sink.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read smtp sink");
        assert!(
            line.starts_with("ready"),
            "smtp sink did not start: {line:?}"
        );
        SmtpSink {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn emls(&self) -> Vec<PathBuf> {
        let mut emls: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        emls.sort();
        emls
    }

    /// Waits for `n` messages; returns each parsed (JSON) and raw.
    pub(crate) fn wait_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<(serde_json::Value, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let emls = self.emls();
            if emls.len() >= n {
                return emls
                    .iter()
                    .map(|p| {
                        let raw = std::fs::read_to_string(p).unwrap();
                        let json = std::fs::read_to_string(p.with_extension("json")).unwrap();
                        (serde_json::from_str(&json).unwrap(), raw)
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages after {timeout:?}",
                emls.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.emls().len()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn email_channel(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
[[notify]]
name = "{name}"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "Raftinel <raftinel@example.com>"
to = ["oncall@example.com", "Second Person <second@example.com>"]
{extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn promotion_mail_reaches_a_real_smtp_server_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sink = SmtpSink::start(port, &dir.path().join("mail"), Some("raftinel:s3cret-pass"));
    let cfg = config(
        &email_channel(
            "ops-mail",
            port,
            "username = \"raftinel\"\npassword = \"s3cret-pass\"",
        ),
        dir.path(),
    );
    let notifier = Notifier::new(cfg);
    let mut reports = notifier.delivered();
    notifier.submit(completed(7));
    let r = wait_report(&mut reports, Duration::from_secs(10), |_| true).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.id, "mymaster/7/failover-completed");
    assert!(r.replicate);

    let msgs = sink.wait_messages(1, Duration::from_secs(5));
    let (m, raw) = &msgs[0];
    assert_eq!(
        m["subject"],
        "[raftinel] mymaster: 10.0.0.1:6379 → 10.0.0.2:6379 promoted (epoch 7)"
    );
    assert_eq!(m["envelope_from"], "raftinel@example.com");
    assert_eq!(
        m["envelope_to"],
        serde_json::json!(["oncall@example.com", "second@example.com"])
    );
    assert_eq!(m["from"], "Raftinel <raftinel@example.com>");
    let body = m["body"].as_str().unwrap();
    for want in [
        "Group:      mymaster",
        "Epoch:      7",
        "Old master: 10.0.0.1:6379",
        "New master: 10.0.0.2:6379",
        "Duration:   1.84 s",
        "Timeline:",
        "  2024-05-01T10:00:00.000Z  +odown master mymaster 10.0.0.1 6379 #quorum 2",
        "  2024-05-01T10:00:01.840Z  +switch-master mymaster 10.0.0.1 6379 10.0.0.2 6379",
        "Event id: mymaster/7/failover-completed",
    ] {
        assert!(
            body.lines().any(|l| l == want),
            "missing {want:?} in body:\n{body}"
        );
    }
    assert!(raw.contains("\nSubject: "), "{raw}");
    let auth = std::fs::read_to_string(dir.path().join("mail/auth.log")).unwrap();
    assert_eq!(auth.trim(), "ok raftinel");
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_down_is_retried_and_delivered_when_it_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        &email_channel(
            "ops-mail",
            port,
            "retry_initial_ms = 200\nretry_max_interval_ms = 400\ntimeout_ms = 2000",
        ),
        dir.path(),
    );
    let notifier = Notifier::new(cfg);
    let mut reports = notifier.delivered();
    let started = Instant::now();
    notifier.submit(completed(3));
    // submit() returned at once although nothing listens on the port.
    assert!(started.elapsed() < Duration::from_millis(100));

    // A few attempts fail meanwhile; nothing is reported yet.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        reports.try_recv().is_err(),
        "reported before the server was up"
    );

    let sink = SmtpSink::start(port, &dir.path().join("mail"), None);
    let r = wait_report(&mut reports, Duration::from_secs(10), |_| true).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert!(r.attempts >= 3, "delivered after {} attempts", r.attempts);
    let msgs = sink.wait_messages(1, Duration::from_secs(5));
    assert_eq!(
        msgs[0].0["subject"],
        "[raftinel] mymaster: 10.0.0.1:6379 → 10.0.0.2:6379 promoted (epoch 3)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_id_is_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sink = SmtpSink::start(port, &dir.path().join("mail"), None);
    let notifier = Notifier::new(config(&email_channel("m", port, ""), dir.path()));
    let mut reports = notifier.delivered();
    notifier.submit(completed(9));
    notifier.submit(completed(9));
    let mut again = completed(9);
    again.timestamp_ms += 5000; // another daemon's copy: same id
    notifier.submit(again);
    wait_report(&mut reports, Duration::from_secs(10), |r| {
        r.outcome == Outcome::Delivered
    })
    .await;
    // A delivered id stays delivered.
    notifier.submit(completed(9));
    // Another id goes through, and proves the queue was processed.
    notifier.submit(completed(10));
    wait_report(&mut reports, Duration::from_secs(10), |r| {
        r.id == "mymaster/10/failover-completed"
    })
    .await;
    let msgs = sink.wait_messages(2, Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 2, "{msgs:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_test_reports_success_and_exact_errors() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _sink = SmtpSink::start(port, &dir.path().join("mail"), None);
    let cfg = config(&email_channel("m", port, ""), dir.path());
    send_test(&cfg.channels[0]).await.unwrap();

    // STARTTLS required but the server does not offer it.
    let cfg = config(
        &email_channel("m", port, "").replace("tls = \"none\"", "tls = \"starttls\""),
        dir.path(),
    );
    let err = send_test(&cfg.channels[0]).await.unwrap_err();
    assert!(
        err.starts_with(&format!("email via 127.0.0.1:{port}: ")),
        "{err}"
    );

    // Nothing listens.
    let closed = free_port();
    let cfg = config(&email_channel("m", closed, "timeout_ms = 2000"), dir.path());
    let err = send_test(&cfg.channels[0]).await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "email via 127.0.0.1:{closed}: Connection error: Connection refused (os error 111)"
        )
    );
    let cfg = config(
        &format!(
            "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{closed}/hook?token=abc\"\n"
        ),
        dir.path(),
    );
    let err = send_test(&cfg.channels[0]).await.unwrap_err();
    assert!(
        err.starts_with(&format!(
            "webhook http://127.0.0.1:{closed}/hook?***: error sending request"
        )),
        "{err}"
    );
    assert!(!err.contains("abc"), "{err}");
}

// ---------------------------------------------------------------------------
// HTTP receiver for Slack and webhooks
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct HttpReceiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

impl HttpReceiver {
    async fn start() -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (g, s) = (got.clone(), status.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, g.clone(), s.clone()));
            }
        });
        HttpReceiver { addr, got, status }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn wait(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests after {timeout:?}: {got:#?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// One HTTP/1.1 request per connection (the answer closes it).
async fn serve(mut s: TcpStream, got: Arc<Mutex<Vec<Received>>>, status: Arc<AtomicU16>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    got.lock().unwrap().push(Received {
        path,
        headers,
        body,
    });
    let code = status.load(Ordering::SeqCst);
    let (reason, text) = match code {
        200 => ("OK", "ok"),
        404 => ("Not Found", "nope"),
        _ => ("Service Unavailable", "busy"),
    };
    let resp = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Accepts connections and never answers.
async fn black_hole() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_and_signed_webhook_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start().await;
    let text = format!(
        r#"
[[notify]]
name = "chat"
type = "slack"
webhook_url = "{slack}"

[[notify]]
name = "hook"
type = "webhook"
url = "{hook}"
secret = "hook-secret-123"
"#,
        slack = rx.url("/services/T000/B000/XXXX"),
        hook = rx.url("/raftinel"),
    );
    let notifier = Notifier::new(config(&text, dir.path()));
    notifier.submit(completed(7));
    let got = rx.wait(2, Duration::from_secs(10)).await;

    let slack = got
        .iter()
        .find(|r| r.path == "/services/T000/B000/XXXX")
        .expect("slack request");
    assert_eq!(slack.headers["content-type"], "application/json");
    let v = slack.json();
    assert_eq!(
        v["text"],
        "[raftinel] mymaster: 10.0.0.1:6379 → 10.0.0.2:6379 promoted (epoch 7)"
    );
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    let section = blocks[0]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains("*[raftinel] mymaster: 10.0.0.1:6379 → 10.0.0.2:6379 promoted (epoch 7)*"),
        "{section}"
    );
    assert!(
        section.contains("+switch-master mymaster 10.0.0.1 6379 10.0.0.2 6379"),
        "{section}"
    );
    assert_eq!(blocks[1]["type"], "context");
    assert_eq!(blocks[1]["elements"][0]["type"], "mrkdwn");

    let hook = got
        .iter()
        .find(|r| r.path == "/raftinel")
        .expect("webhook request");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"hook-secret-123").unwrap();
    mac.update(&hook.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hook.headers["x-raftinel-signature"], want);
    assert_eq!(
        hook.headers["x-raftinel-event-id"],
        "mymaster/7/failover-completed"
    );
    assert_eq!(hook.headers["x-raftinel-event"], "failover-completed");
    let v = hook.json();
    assert_eq!(v["version"], 1);
    assert_eq!(v["id"], "mymaster/7/failover-completed");
    assert_eq!(v["kind"], "failover-completed");
    assert_eq!(v["group"], "mymaster");
    assert_eq!(v["epoch"], 7);
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["old_master"], "10.0.0.1:6379");
    assert_eq!(v["new_master"], "10.0.0.2:6379");
    assert_eq!(v["duration_ms"], 1840);
    assert_eq!(v["sentinel_event"]["name"], "+switch-master");
    assert_eq!(v["timeline"].as_array().unwrap().len(), 3);
    assert_eq!(v["time"], "2024-05-01T10:00:01.900Z");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_channel_does_not_delay_another() {
    let dir = tempfile::tempdir().unwrap();
    let hole = black_hole().await;
    let rx = HttpReceiver::start().await;
    let text = format!(
        r#"
[[notify]]
name = "stuck"
type = "webhook"
url = "http://{hole}/never"
timeout_ms = 30000

[[notify]]
name = "fine"
type = "webhook"
url = "{fine}"
"#,
        fine = rx.url("/fine"),
    );
    let notifier = Notifier::new(config(&text, dir.path()));
    let started = Instant::now();
    notifier.submit(completed(1));
    notifier.submit(completed(2));
    rx.wait(2, Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        rx.ids(),
        [
            "mymaster/1/failover-completed",
            "mymaster/2/failover-completed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_errors_are_retried_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start().await;
    let text = format!(
        "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"{}\"\nretry_initial_ms = 100\n",
        rx.url("/h")
    );
    let notifier = Notifier::new(config(&text, dir.path()));
    let mut reports = notifier.delivered();

    // 503, 503, then 200: retried.
    rx.status.store(503, Ordering::SeqCst);
    notifier.submit(completed(1));
    rx.wait(2, Duration::from_secs(5)).await;
    rx.status.store(200, Ordering::SeqCst);
    let r = wait_report(&mut reports, Duration::from_secs(5), |_| true).await;
    assert_eq!(r.outcome, Outcome::Delivered);
    assert!(r.attempts >= 3, "{r:?}");

    // 404: permanent, one attempt, the exact error.
    rx.status.store(404, Ordering::SeqCst);
    let before = rx.received().len();
    notifier.submit(completed(2));
    let r = wait_report(&mut reports, Duration::from_secs(5), |_| true).await;
    assert_eq!(
        r.outcome,
        Outcome::Failed(format!(
            "webhook {}: HTTP 404 Not Found: nope",
            rx.url("/h")
        ))
    );
    assert_eq!(r.attempts, 1);
    assert_eq!(rx.received().len(), before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_active_notifier_sends_and_a_new_leader_sends_what_was_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start().await;
    let text = format!(
        "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        rx.url("/h")
    );
    // A follower: holds leader-scope notifications.
    let follower = Notifier::new(config(&text, dir.path()));
    follower.set_active(false);
    follower.submit(completed(1));
    follower.submit(completed(2));
    // Local-scope notifications go out anyway.
    follower.submit(Notification::quorum_lost(2, 1, 3, 1000, 1000));
    rx.wait(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.ids(), ["cluster/quorum-lost/node2/1000"]);

    // The old leader delivered epoch 1 before dying (replicated through Raft).
    follower.mark_delivered("mymaster/1/failover-completed", "w");
    // This daemon becomes the leader: it sends what was not delivered.
    follower.set_active(true);
    rx.wait(2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.ids(),
        [
            "cluster/quorum-lost/node2/1000",
            "mymaster/2/failover-completed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_alerts_are_grouped_and_rate_limited() {
    use raftinel::alerts::AlertTransition;
    use raftinel::notify::Severity;
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start().await;
    let text = format!(
        "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"{}\"\nrepeat_interval_ms = 1000\n",
        rx.url("/h")
    );
    let notifier = Notifier::new(config(&text, dir.path()));
    let alert = |inst: &str, firing: bool| {
        Notification::from_alert(
            &AlertTransition {
                name: "RedisMemoryHigh".into(),
                group: "mymaster".into(),
                instance: Some(inst.into()),
                firing,
                value: 91.0,
                threshold: 80.0,
                severity: Severity::Warning,
                message: "used memory 91.0% of maxmemory".into(),
                since_ms: 100,
            },
            7,
            200,
        )
    };
    let started = Instant::now();
    notifier.submit(alert("10.0.0.1:6379", true));
    notifier.submit(alert("10.0.0.2:6379", true));
    notifier.submit(alert("10.0.0.3:6379", true));
    let got = rx.wait(1, Duration::from_secs(3)).await;
    assert_eq!(got[0].json()["instance"], "10.0.0.1:6379");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received().len(),
        1,
        "the others wait for the repeat interval"
    );
    let got = rx.wait(2, Duration::from_secs(3)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        got[1].json()["title"],
        "[raftinel] mymaster: FIRING RedisMemoryHigh on 2 targets: 10.0.0.2:6379, 10.0.0.3:6379"
    );
    // Resolved for a notified instance: sent at once.
    notifier.submit(alert("10.0.0.1:6379", false));
    let got = rx.wait(3, Duration::from_secs(3)).await;
    assert_eq!(got[2].json()["alert"]["firing"], false);
}

// ---------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------

#[cfg(unix)]
fn recording_script(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let log = dir.join(format!("{name}.log"));
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n# one line per call, arguments separated by |\n(IFS='|'; echo \"$*\") >> '{}'\necho \"called with $# arguments\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, log)
}

#[cfg(unix)]
fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[cfg(unix)]
async fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = lines_of(path);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} lines in {}",
            lines.len(),
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn scripts_receive_sentinel_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let (notify, notify_log) = recording_script(dir.path(), "notify");
    let (reconf, reconf_log) = recording_script(dir.path(), "reconf");
    let (every, every_log) = recording_script(dir.path(), "every");
    let text = format!(
        r#"
[[notify]]
name = "scripts"
type = "script"
notification_script = "{}"
client_reconfig_script = "{}"

[[notify]]
name = "vip"
type = "script"
client_reconfig_script = "{}"
on_every_node = true
"#,
        notify.display(),
        reconf.display(),
        every.display()
    );
    let notifier = Notifier::new(config(&text, dir.path()));
    notifier.submit(Notification::objectively_down(
        "mymaster",
        6,
        &addr("10.0.0.1:6379"),
        2,
        1000,
        1000,
    ));
    notifier.submit(completed(7));

    let lines = wait_lines(&notify_log, 2, Duration::from_secs(10)).await;
    assert_eq!(
        lines,
        [
            "+odown|master mymaster 10.0.0.1 6379 #quorum 2",
            "+switch-master|mymaster 10.0.0.1 6379 10.0.0.2 6379",
        ]
    );
    let lines = wait_lines(&reconf_log, 1, Duration::from_secs(10)).await;
    assert_eq!(lines, ["mymaster|leader|start|10.0.0.1|6379|10.0.0.2|6379"]);
    wait_lines(&every_log, 1, Duration::from_secs(10)).await;

    // On a follower, every-node scripts run as observer; the others wait.
    notifier.set_active(false);
    notifier.submit(Notification::manual_switchover(
        "mymaster",
        8,
        &addr("10.0.0.2:6379"),
        &addr("10.0.0.1:6379"),
        300,
        vec![],
        2000,
    ));
    let lines = wait_lines(&every_log, 2, Duration::from_secs(10)).await;
    assert_eq!(
        lines[1],
        "mymaster|observer|start|10.0.0.2|6379|10.0.0.1|6379"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines_of(&reconf_log).len(), 1);
}
