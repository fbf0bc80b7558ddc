//! Sentinel-compatible scripts.
//!
//! - `notification_script <event-type> <event-description>`, e.g.
//!   `+switch-master "mymaster 10.0.0.1 6379 10.0.0.2 6379"`: for every
//!   notification that carries a Sentinel event.
//! - `client_reconfig_script <master-name> <role> <state> <from-ip>
//!   <from-port> <to-ip> <to-port>`: when the master changed (failover
//!   completed, switchover). `<role>` is `leader` on the daemon that acts and
//!   `observer` elsewhere; `<state>` is `start`, what Sentinel passes (its
//!   sample config says "failover", its code passes "start").
//!
//! As in Sentinel: exit status 0 is success; 1, or death by a signal, is
//! retried; 2 or more is not retried. A script still running after the
//! channel's `timeout_ms` is killed (SIGKILL) and retried. Its stdout and
//! stderr are logged (target `raftinel::notify`), one line per event.

use super::AttemptError;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Longest output kept from one stream of a script.
const MAX_OUTPUT: usize = 8 * 1024;

/// `<event-type> <event-description>`.
pub fn notification_args(event: &crate::core::events::Event) -> Vec<String> {
    vec![event.name.clone(), event.payload.clone()]
}

/// `<master-name> <role> start <from-ip> <from-port> <to-ip> <to-port>`.
pub fn client_reconfig_args(
    group: &str,
    leader: bool,
    from: &crate::core::types::Addr,
    to: &crate::core::types::Addr,
) -> Vec<String> {
    vec![
        group.to_string(),
        if leader { "leader" } else { "observer" }.to_string(),
        "start".to_string(),
        from.host.clone(),
        from.port.to_string(),
        to.host.clone(),
        to.port.to_string(),
    ]
}

async fn read_limited<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.len() < MAX_OUTPUT {
                    let take = n.min(MAX_OUTPUT - out.len());
                    out.extend_from_slice(&buf[..take]);
                }
            }
        }
    }
    out
}

/// Runs `path args...` with a timeout; logs its output.
pub(crate) async fn run(
    channel: &str,
    path: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<(), AttemptError> {
    let shown = path.display().to_string();
    let mut child = tokio::process::Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            // A missing or non-executable script will not fix itself... but an
            // operator may fix it within the deadline: retry.
            AttemptError::transient(format!("script {shown}: cannot start: {e}"))
        })?;
    let out = child.stdout.take().map(|s| tokio::spawn(read_limited(s)));
    let err = child.stderr.take().map(|s| tokio::spawn(read_limited(s)));

    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(AttemptError::transient(format!(
            "script {shown}: cannot wait for it: {e}"
        ))),
        Err(_) => {
            let _ = child.kill().await;
            Err(AttemptError::transient(format!(
                "script {shown}: still running after {} ms, killed",
                timeout.as_millis()
            )))
        }
    };

    // A grandchild may hold the pipes open: do not wait for it long.
    for (stream, task) in [("stdout", out), ("stderr", err)] {
        let Some(mut task) = task else { continue };
        let bytes = match tokio::time::timeout(Duration::from_millis(200), &mut task).await {
            Ok(Ok(b)) => b,
            _ => {
                task.abort();
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(target: "raftinel::notify", channel, script = %shown, stream, "{line}");
        }
    }

    let status = status?;
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(AttemptError::transient(format!(
            "script {shown}: exit status 1 (will be retried)"
        ))),
        Some(code) => Err(AttemptError::permanent(format!(
            "script {shown}: exit status {code} (2 or more: not retried)"
        ))),
        None => Err(AttemptError::transient(format!(
            "script {shown}: killed by a signal ({status})"
        ))),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[tokio::test]
    async fn exit_statuses_follow_sentinel() {
        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(5);
        let ok = script(dir.path(), "ok.sh", "echo hello; echo oops >&2; exit 0");
        assert!(run("c", &ok, &[], t).await.is_ok());
        let one = script(dir.path(), "one.sh", "exit 1");
        let e = run("c", &one, &[], t).await.unwrap_err();
        assert!(!e.permanent, "{e:?}");
        let two = script(dir.path(), "two.sh", "exit 2");
        let e = run("c", &two, &[], t).await.unwrap_err();
        assert!(e.permanent, "{e:?}");
        assert!(
            e.message
                .ends_with("exit status 2 (2 or more: not retried)"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn a_slow_script_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let slow = script(dir.path(), "slow.sh", "exec sleep 30");
        let start = std::time::Instant::now();
        let e = run("c", &slow, &[], Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            e.message.contains("still running after 300 ms, killed"),
            "{}",
            e.message
        );
    }

    #[test]
    fn reconfig_arguments() {
        let a = client_reconfig_args(
            "mymaster",
            true,
            &"10.0.0.1:6379".parse().unwrap(),
            &"10.0.0.2:6380".parse().unwrap(),
        );
        assert_eq!(
            a,
            ["mymaster", "leader", "start", "10.0.0.1", "6379", "10.0.0.2", "6380"]
        );
    }
}
