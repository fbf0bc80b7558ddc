//! Notifications end to end: real daemons, real Redis, a real SMTP server.

use crate::cluster::{Cluster, DaemonOpts, GroupDef};
use crate::harness::{free_port, start_group, RedisOpts};
use crate::notify::{email_channel, SmtpSink};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn promotion_mail_is_sent_once_even_when_smtp_is_down_and_the_leader_dies() {
    let (mut master, replicas) = start_group(&RedisOpts::default(), 2);
    let group = GroupDef::new(
        "mymaster",
        master.addr(),
        replicas.iter().map(|r| r.addr()).collect(),
    );
    let smtp_port = free_port();
    let opts = DaemonOpts {
        extra: email_channel(
            "ops-mail",
            smtp_port,
            "events = [\"failover-completed\"]\nretry_initial_ms = 100\nretry_max_interval_ms = 300",
        ),
        ..DaemonOpts::default()
    };
    let mut c = Cluster::start_with(&[group], &opts);
    let (m0, _) = c.wait_settled("mymaster", T);
    // SMTP is down when the failover happens.
    master.kill9();
    let (m1, epoch) = c.wait("the failover to complete", T, |c| {
        let g = c.group("mymaster")?;
        let m = g["master"].as_str()?.to_string();
        (m != m0 && g["failover"].is_null()).then(|| (m, g["epoch"].as_u64().unwrap_or(0)))
    });
    // The leader that tried to send dies; the next leader must send it.
    let leader = c.leader_id().expect("leader");
    c.kill9_daemon(leader);
    c.wait("a new leader", T, |c| {
        c.leader_id().filter(|l| *l != leader)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = SmtpSink::start(smtp_port, dir.path(), None);
    let mails = sink.wait_messages(1, T);
    let (json, raw) = &mails[0];
    let subject = json["subject"].as_str().unwrap_or_default();
    assert_eq!(
        subject,
        format!("[raftinel] mymaster: {m0} → {m1} promoted (epoch {epoch})"),
        "{raw}"
    );
    assert!(
        raw.contains("+switch-master"),
        "the body has the failover timeline: {raw}"
    );
    // Exactly once across the cluster.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.count(), 1, "duplicates were sent");
}
