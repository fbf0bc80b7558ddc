//! The redis side of a planned switchover: pause writes on the old master,
//! wait until the target has every write, promote the target.
//!
//! Decided by the core (`Op::Switchover`); this file only runs the steps, in
//! order, with a deadline, and on any failure lifts the pause so the old master
//! keeps serving. The error names the step that failed.

use super::Instance;
use crate::core::types::Role;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often offsets are compared while waiting for catch-up.
const POLL: Duration = Duration::from_millis(2);

/// Run a planned switchover from `old` to `target` within `timeout`.
/// On success returns a one-line account of the steps with their timings.
pub async fn switchover(
    old: &mut Instance,
    target: &mut Instance,
    timeout: Duration,
) -> Result<String, String> {
    let start = Instant::now();
    let ms = timeout.as_millis() as u64;
    old.pause_writes(ms)
        .await
        .map_err(|e| format!("step 1 (pause writes on {}): {e}", old.addr()))?;
    let paused = start.elapsed();
    let result = catch_up_and_promote(old, target, start, timeout).await;
    match result {
        Ok((caught_up, promoted)) => {
            let note = format!(
                "writes paused on {} in {} ms; {} caught up in {} ms; promoted in {} ms",
                old.addr(),
                paused.as_millis(),
                target.addr(),
                caught_up.as_millis(),
                promoted.as_millis()
            );
            info!(message = "switchover steps done", %note);
            Ok(note)
        }
        Err(e) => {
            if let Err(u) = old.unpause().await {
                warn!(message = "could not lift the write pause; it expires by itself", addr = %old.addr(), error = %u, after_ms = ms);
            }
            Err(e)
        }
    }
}

async fn catch_up_and_promote(
    old: &mut Instance,
    target: &mut Instance,
    start: Instant,
    timeout: Duration,
) -> Result<(Duration, Duration), String> {
    let wait_start = Instant::now();
    loop {
        let m = old
            .info()
            .await
            .map_err(|e| format!("step 2 (read the master's offset): {e}"))?;
        let t = target
            .info()
            .await
            .map_err(|e| format!("step 2 (read the target's offset): {e}"))?;
        let offset = match &t.role {
            Role::Replica { master, offset, .. } if master == old.addr() => *offset,
            Role::Replica { master, .. } => {
                return Err(format!(
                    "step 2 (catch-up): {} replicates from {master}, not from {}",
                    target.addr(),
                    old.addr()
                ))
            }
            Role::Master { .. } => {
                return Err(format!(
                    "step 2 (catch-up): {} already reports role master",
                    target.addr()
                ))
            }
        };
        if offset >= m.master_repl_offset {
            break;
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "step 2 (catch-up): {} at offset {offset}, master {} at {} after {} ms (--timeout)",
                target.addr(),
                old.addr(),
                m.master_repl_offset,
                start.elapsed().as_millis()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    let caught_up = wait_start.elapsed();
    if start.elapsed() >= timeout {
        return Err(format!(
            "step 3 (promote {}): --timeout reached",
            target.addr()
        ));
    }
    let p = Instant::now();
    target
        .promote()
        .await
        .map_err(|e| format!("step 3 (promote {}): {e}", target.addr()))?;
    Ok((caught_up, p.elapsed()))
}
