//! Unit tests of the core: feed inputs, assert on the exact commands.

use super::topology::{Entry, FailoverKind, Phase};
use super::types::{Addr, ConnectedReplica, InstanceInfo, Now, Role};
use super::*;
use super::{FailoverOptions, Refusal};

const DOWN: u64 = 1000;

fn a(port: u16) -> Addr {
    Addr::new("127.0.0.1", port)
}

fn now(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        wall_ms: 1_000_000 + ms,
    }
}

fn master_info(replicas: &[u16]) -> InstanceInfo {
    InstanceInfo {
        run_id: "m".into(),
        role: Role::Master {
            replicas: replicas
                .iter()
                .map(|p| ConnectedReplica {
                    addr: a(*p),
                    state: "online".into(),
                    offset: 100,
                    lag_s: 0,
                })
                .collect(),
        },
        master_repl_offset: 100,
    }
}

fn replica_info(of: u16, offset: u64, priority: u32, run_id: &str) -> InstanceInfo {
    InstanceInfo {
        run_id: run_id.into(),
        role: Role::Replica {
            master: a(of),
            link_up: true,
            link_down_since_s: None,
            priority,
            offset,
        },
        master_repl_offset: offset,
    }
}

fn spec() -> GroupSpec {
    GroupSpec {
        name: "g".into(),
        master: a(1),
        replicas: vec![a(2), a(3)],
        down_after_ms: DOWN,
        quorum: 2,
        failover_timeout_ms: 10_000,
        parallel_syncs: 1,
    }
}

fn core() -> Core {
    Core::new(CoreConfig {
        me: 1,
        groups: vec![spec()],
        report_interval_ms: 200,
        report_ttl_ms: 1000,
        fence: None,
    })
}

fn leader() -> Input {
    Input::Raft(RaftState {
        term: 2,
        leader: Some(1),
        is_leader: true,
        can_act: true,
    })
}

fn proposals(cmds: &[Command]) -> Vec<Entry> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Propose(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn actions(cmds: &[Command]) -> Vec<Action> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Redis(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn events(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Event(e) => Some(e.to_string()),
            _ => None,
        })
        .collect()
}

fn info(c: &mut Core, t: u64, port: u16, i: InstanceInfo) -> Vec<Command> {
    c.handle(
        now(t),
        Input::Probe {
            addr: a(port),
            result: ProbeResult::Info(i),
        },
    )
}

fn pong(c: &mut Core, t: u64, port: u16) -> Vec<Command> {
    c.handle(
        now(t),
        Input::Probe {
            addr: a(port),
            result: ProbeResult::Pong,
        },
    )
}

fn apply(c: &mut Core, t: u64, e: Entry) -> Vec<Command> {
    c.handle(
        now(t),
        Input::Applied {
            entry: e,
            replay: false,
        },
    )
}

fn peer_sees_down(c: &mut Core, t: u64, from: u64, ports: &[u16]) -> Vec<Command> {
    c.handle(
        now(t),
        Input::PeerReport {
            from,
            report: Report {
                sdown: ports.iter().map(|p| a(*p)).collect(),
                log_last_index: 0,
                epochs: [("g".to_string(), 0)].into(),
                ..Default::default()
            },
        },
    )
}

/// A leader core with the group initialised and all three instances healthy at t=0.
fn initialised_leader() -> Core {
    let mut c = core();
    c.handle(now(0), leader());
    let cmds = info(&mut c, 0, 1, master_info(&[2, 3]));
    let p = proposals(&cmds);
    assert_eq!(
        p,
        vec![Entry::InitGroup {
            group: "g".into(),
            master: a(1),
            replicas: vec![a(2), a(3)]
        }]
    );
    apply(&mut c, 0, p[0].clone());
    c
}

/// Keep replicas answering with fresh INFO up to time t.
fn replicas_healthy(c: &mut Core, t: u64, of: u16) {
    info(c, t, 2, replica_info(of, 100, 100, "b"));
    info(c, t, 3, replica_info(of, 90, 100, "a"));
}

#[test]
fn watch_set_follows_config_then_topology() {
    let mut c = core();
    let cmds = c.handle(now(0), Input::Tick);
    assert!(cmds.contains(&Command::Watch([a(1), a(2), a(3)].into())));
    // A replica the master lists is watched before it is committed.
    let cmds = info(&mut c, 0, 1, master_info(&[2, 3, 4]));
    assert!(cmds.contains(&Command::Watch([a(1), a(2), a(3), a(4)].into())));
}

#[test]
fn sdown_only_after_down_after_without_valid_reply() {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 500, 1);
    pong(&mut c, 100, 1);
    let cmds = c.handle(now(1100), Input::Tick);
    assert!(events(&cmds).is_empty(), "{cmds:?}");
    let cmds = c.handle(now(1101), Input::Tick);
    assert!(events(&cmds).contains(&"+sdown master g 127.0.0.1 1".to_string()));
    assert!(cmds.iter().any(|c| matches!(c, Command::Broadcast(r)
        if r.sdown == [a(1)].into() && r.epochs == [("g".to_string(), 0)].into())));
    let cmds = pong(&mut c, 1200, 1);
    assert!(events(&cmds).contains(&"-sdown master g 127.0.0.1 1".to_string()));
}

#[test]
fn odown_needs_quorum_of_fresh_reports() {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 1000, 1);
    // Only this daemon sees the master down: no odown, no failover.
    let cmds = c.handle(now(1001), Input::Tick);
    assert!(proposals(&cmds).is_empty());
    // A stale report from peer 2 does not count.
    peer_sees_down(&mut c, 0, 2, &[1]);
    let cmds = c.handle(now(1050), Input::Tick);
    assert!(proposals(&cmds).is_empty());
    assert!(!events(&cmds).iter().any(|e| e.starts_with("+odown")));
    // A fresh one does.
    let cmds = peer_sees_down(&mut c, 1060, 2, &[1]);
    assert!(events(&cmds).contains(&"+odown master g 127.0.0.1 1 #quorum 2".to_string()));
    assert_eq!(proposals(&cmds).len(), 1);
}

#[test]
fn automatic_failover_step_by_step() {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 1000, 1);
    peer_sees_down(&mut c, 1000, 2, &[1]);
    let cmds = c.handle(now(1001), Input::Tick);
    // 1. Intent first, no Redis action before it is committed.
    assert!(actions(&cmds).is_empty());
    let start = Entry::StartFailover {
        group: "g".into(),
        epoch: 1,
        from: a(1),
        to: a(2), // higher offset than :3
        kind: FailoverKind::Auto,
        started_wall_ms: 1_001_001,
    };
    assert_eq!(proposals(&cmds), vec![start.clone()]);
    // Not proposed twice while pending.
    assert!(proposals(&c.handle(now(1002), Input::Tick)).is_empty());
    // 2. Committed -> promote with the new epoch.
    let cmds = apply(&mut c, 1010, start);
    assert!(events(&cmds).contains(&"+try-failover master g 127.0.0.1 1".to_string()));
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1);
    assert_eq!(
        (acts[0].epoch, &acts[0].target, &acts[0].op),
        (1, &a(2), &Op::Promote)
    );
    let cmds = c.handle(
        now(1050),
        Input::ActionDone {
            id: acts[0].id,
            result: Ok(()),
        },
    );
    let promoted = Entry::PromotedMaster {
        group: "g".into(),
        epoch: 1,
        master: a(2),
    };
    assert_eq!(proposals(&cmds), vec![promoted.clone()]);
    // 3. Committed new master -> +switch-master, then repoint :3 once fresh INFO
    //    shows it still follows the old master.
    let cmds = apply(&mut c, 1060, promoted);
    assert!(events(&cmds).contains(&"+switch-master g 127.0.0.1 1 127.0.0.1 2".to_string()));
    let cmds = info(&mut c, 1100, 3, replica_info(1, 90, 100, "a"));
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1);
    assert_eq!((acts[0].epoch, &acts[0].op), (1, &Op::ReplicaOf(a(2))));
    c.handle(
        now(1150),
        Input::ActionDone {
            id: acts[0].id,
            result: Ok(()),
        },
    );
    // New master answers, replica follows it -> done, finish.
    info(&mut c, 1200, 2, master_info(&[3]));
    let cmds = info(&mut c, 1200, 3, replica_info(2, 90, 100, "a"));
    assert!(events(&cmds)
        .contains(&"+slave-reconf-done slave 127.0.0.1:3 127.0.0.1 3 @ g 127.0.0.1 2".to_string()));
    assert_eq!(
        proposals(&cmds),
        vec![Entry::FinishFailover {
            group: "g".into(),
            epoch: 1,
            completed_wall_ms: 1_001_200
        }]
    );
}

fn failed_over_leader() -> Core {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 1000, 1);
    peer_sees_down(&mut c, 1000, 2, &[1]);
    for e in [
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(2),
            kind: FailoverKind::Auto,
            started_wall_ms: 1_001_001,
        },
        Entry::PromotedMaster {
            group: "g".into(),
            epoch: 1,
            master: a(2),
        },
        Entry::FinishFailover {
            group: "g".into(),
            epoch: 1,
            completed_wall_ms: 1_001_100,
        },
    ] {
        apply(&mut c, 1100, e);
    }
    c
}

#[test]
fn returning_old_master_is_demoted_on_first_answer() {
    let mut c = failed_over_leader();
    info(&mut c, 2000, 2, master_info(&[3]));
    info(&mut c, 2000, 3, replica_info(2, 90, 100, "a"));
    let cmds = info(&mut c, 2000, 1, master_info(&[]));
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1, "{cmds:?}");
    assert_eq!(
        (&acts[0].target, &acts[0].op, acts[0].epoch),
        (&a(1), &Op::ReplicaOf(a(2)), 1)
    );
    let cmds = c.handle(
        now(2050),
        Input::ActionDone {
            id: acts[0].id,
            result: Ok(()),
        },
    );
    assert!(events(&cmds)
        .contains(&"+convert-to-slave slave 127.0.0.1:1 127.0.0.1 1 @ g 127.0.0.1 2".to_string()));
}

#[test]
fn cooldown_counts_completed_failovers() {
    let mut c = failed_over_leader();
    info(&mut c, 2000, 1, replica_info(2, 100, 100, "c"));
    info(&mut c, 2000, 3, replica_info(2, 90, 100, "a"));
    // New master :2 dies 2 s after the failover completed (timeout 10 s).
    info(&mut c, 3150, 1, replica_info(2, 100, 100, "c"));
    info(&mut c, 3150, 3, replica_info(2, 90, 100, "a"));
    let cmds = peer_sees_down(&mut c, 3200, 3, &[2]);
    assert!(proposals(&cmds).is_empty());
    assert!(events(&cmds)
        .iter()
        .any(|e| e.starts_with("-failover-cooldown")));
}

#[test]
fn aborted_failover_does_not_start_cooldown_and_next_epoch_follows() {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 1000, 1);
    peer_sees_down(&mut c, 1000, 2, &[1]);
    let start = proposals(&c.handle(now(1001), Input::Tick));
    apply(&mut c, 1001, start[0].clone());
    // The chosen replica :2 dies before it is promoted.
    let mut cmds = info(&mut c, 2100, 3, replica_info(1, 90, 100, "a"));
    cmds.extend(peer_sees_down(&mut c, 2100, 2, &[1, 2]));
    cmds.extend(c.handle(now(2100), Input::Tick));
    let p = proposals(&cmds);
    assert!(
        matches!(&p[..], [Entry::AbortFailover { epoch: 1, .. }]),
        "{p:?}"
    );
    // Next failover, proposed as soon as the abort is applied: epoch 2, to the
    // remaining replica :3, no cool-down.
    let cmds = apply(&mut c, 2100, p[0].clone());
    let p = proposals(&cmds);
    assert!(
        matches!(&p[..], [Entry::StartFailover { epoch: 2, to, .. }] if *to == a(3)),
        "{cmds:?}"
    );
}

#[test]
fn no_eligible_replica_means_no_failover_and_one_event() {
    let mut c = initialised_leader();
    info(&mut c, 1000, 2, replica_info(1, 100, 0, "b"));
    info(&mut c, 1000, 3, replica_info(1, 100, 0, "a"));
    peer_sees_down(&mut c, 1000, 2, &[1]);
    let cmds = c.handle(now(1001), Input::Tick);
    assert!(proposals(&cmds).is_empty());
    let ev = events(&cmds);
    assert!(
        ev.iter()
            .any(|e| e.starts_with("-failover-abort-no-good-slave master g")
                && e.contains("replica-priority is 0")),
        "{ev:?}"
    );
    let cmds = c.handle(now(1002), Input::Tick);
    assert!(events(&cmds).is_empty(), "announced once");
}

#[test]
fn followers_never_act() {
    let mut c = core();
    c.handle(
        now(0),
        Input::Raft(RaftState {
            term: 2,
            leader: Some(2),
            is_leader: false,
            can_act: false,
        }),
    );
    let cmds = info(&mut c, 0, 1, master_info(&[2, 3]));
    assert!(proposals(&cmds).is_empty() && actions(&cmds).is_empty());
    // Committed entries still apply and publish events on followers.
    let cmds = apply(
        &mut c,
        0,
        Entry::InitGroup {
            group: "g".into(),
            master: a(1),
            replicas: vec![a(2), a(3)],
        },
    );
    assert_eq!(
        events(&cmds),
        vec!["+monitor master g 127.0.0.1 1".to_string()]
    );
    replicas_healthy(&mut c, 1000, 1);
    peer_sees_down(&mut c, 1000, 3, &[1]);
    let cmds = c.handle(now(1001), Input::Tick);
    assert!(proposals(&cmds).is_empty() && actions(&cmds).is_empty());
}

#[test]
fn new_leader_finishes_a_failover_its_predecessor_started() {
    let mut c = core();
    apply(
        &mut c,
        0,
        Entry::InitGroup {
            group: "g".into(),
            master: a(1),
            replicas: vec![a(2), a(3)],
        },
    );
    apply(
        &mut c,
        0,
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(3),
            kind: FailoverKind::Auto,
            started_wall_ms: 1_000_000,
        },
    );
    // The old leader died; this daemon becomes leader and sees the target
    // already promoted by its predecessor.
    c.handle(now(500), leader());
    let cmds = info(&mut c, 600, 3, master_info(&[]));
    assert_eq!(
        proposals(&cmds),
        vec![Entry::PromotedMaster {
            group: "g".into(),
            epoch: 1,
            master: a(3)
        }]
    );
}

#[test]
fn new_leader_promotes_when_predecessor_did_not() {
    let mut c = core();
    for e in [
        Entry::InitGroup {
            group: "g".into(),
            master: a(1),
            replicas: vec![a(2), a(3)],
        },
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(3),
            kind: FailoverKind::Auto,
            started_wall_ms: 1_000_000,
        },
    ] {
        apply(&mut c, 0, e);
    }
    info(&mut c, 400, 3, replica_info(1, 5, 100, "x"));
    let cmds = c.handle(now(500), leader());
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1);
    assert_eq!(
        (&acts[0].target, &acts[0].op, acts[0].epoch),
        (&a(3), &Op::Promote, 1)
    );
    // Losing leadership forgets in-flight work; results are ignored.
    c.handle(
        now(700),
        Input::Raft(RaftState {
            term: 3,
            leader: Some(2),
            is_leader: false,
            can_act: false,
        }),
    );
    let cmds = c.handle(
        now(710),
        Input::ActionDone {
            id: acts[0].id,
            result: Ok(()),
        },
    );
    assert!(proposals(&cmds).is_empty());
}

#[test]
fn failover_timeout_in_promotion_aborts() {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 1000, 1);
    peer_sees_down(&mut c, 1000, 2, &[1]);
    let p = proposals(&c.handle(now(1001), Input::Tick));
    let cmds = apply(&mut c, 1001, p[0].clone());
    let id = actions(&cmds)[0].id;
    c.handle(
        now(1100),
        Input::ActionDone {
            id,
            result: Err("READONLY".into()),
        },
    );
    // Keep :2 answering as a replica; after failover_timeout the intent aborts.
    let mut last = Vec::new();
    for t in (1200..=11_500).step_by(500) {
        last = pong(&mut c, t, 2);
        last.extend(pong(&mut c, t, 3));
        last.extend(peer_sees_down(&mut c, t, 2, &[1]));
        last.extend(c.handle(now(t), Input::Tick));
        if !proposals(&last).is_empty() {
            break;
        }
    }
    assert!(
        matches!(&proposals(&last)[..], [Entry::AbortFailover { epoch: 1, reason, .. }] if reason.contains("failover-timeout"))
    );
}

#[test]
fn status_shows_who_sees_what_down() {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 1000, 1);
    peer_sees_down(&mut c, 1000, 2, &[1]);
    c.handle(now(1001), Input::Tick);
    let s = c.status(now(1001));
    let g = &s.groups[0];
    assert_eq!(g.master, Some(a(1)));
    assert!(g.odown);
    let m = g.instances.iter().find(|i| i.addr == a(1)).unwrap();
    assert_eq!(m.seen_down_by, vec![1, 2]);
    let r = g.instances.iter().find(|i| i.addr == a(3)).unwrap();
    assert_eq!(r.reported_role.as_deref(), Some("slave"));
    assert!(g.failover.is_none());
    let _ = Phase::Promoting;
}

fn switch_opts(to: Option<u16>) -> FailoverOptions {
    FailoverOptions {
        to: to.map(a),
        timeout_ms: 2000,
        force: false,
    }
}

#[test]
fn followers_refuse_failover_requests() {
    let mut c = core();
    let (r, cmds) = c.request_failover(now(0), "g", &switch_opts(None));
    assert!(matches!(r, Err(Refusal::NotLeader { .. })));
    assert!(cmds.is_empty());
}

#[test]
fn switchover_refusals_name_the_problem() {
    let mut c = initialised_leader();
    info(&mut c, 100, 2, replica_info(1, 100, 0, "b"));
    info(&mut c, 100, 3, replica_info(1, 90, 100, "a"));
    pong(&mut c, 100, 1);
    let (r, _) = c.request_failover(now(100), "g", &switch_opts(Some(2)));
    assert!(
        matches!(&r, Err(Refusal::NoGoodReplica(why)) if why.contains("replica-priority is 0")),
        "{r:?}"
    );
    let (r, _) = c.request_failover(now(100), "g", &switch_opts(Some(9)));
    assert!(
        matches!(&r, Err(Refusal::Invalid(why)) if why.contains("is not a replica of g")),
        "{r:?}"
    );
    let (r, _) = c.request_failover(now(100), "nope", &switch_opts(None));
    assert_eq!(r, Err(Refusal::UnknownGroup));
    // Best replica by the usual rules: :3 (priority 0 excluded).
    let (r, cmds) = c.request_failover(now(100), "g", &switch_opts(None));
    assert_eq!(r, Ok(1));
    assert!(
        matches!(&proposals(&cmds)[..], [Entry::StartFailover { to, kind: FailoverKind::Switchover { timeout_ms: 2000 }, .. }] if *to == a(3))
    );
    // A second request while the first is pending.
    let (r, _) = c.request_failover(now(101), "g", &switch_opts(None));
    assert_eq!(r, Err(Refusal::InProgress));
}

fn started_switchover() -> (Core, Action) {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 100, 1);
    pong(&mut c, 100, 1);
    let (_, cmds) = c.request_failover(now(100), "g", &switch_opts(Some(3)));
    let p = proposals(&cmds);
    let cmds = apply(&mut c, 110, p[0].clone());
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1, "{cmds:?}");
    (c, acts[0].clone())
}

#[test]
fn switchover_runs_one_step_on_the_target_then_commits_and_demotes_old_master_first() {
    let (mut c, act) = started_switchover();
    assert_eq!(act.target, a(3));
    assert_eq!(
        act.op,
        Op::Switchover {
            old_master: a(1),
            timeout_ms: 2000
        }
    );
    let cmds = c.handle(
        now(150),
        Input::ActionDone {
            id: act.id,
            result: Ok(()),
        },
    );
    let p = proposals(&cmds);
    assert!(matches!(&p[..], [Entry::PromotedMaster { epoch: 1, master, .. }] if *master == a(3)));
    apply(&mut c, 160, p[0].clone());
    // Fresh INFO: the old master :1 is alive (paused) and still a master; :2
    // follows :1. The old master is reconfigured first.
    info(&mut c, 170, 2, replica_info(1, 100, 100, "b"));
    let cmds = info(&mut c, 170, 1, master_info(&[2]));
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1, "parallel_syncs = 1: {cmds:?}");
    assert_eq!(
        (&acts[0].target, &acts[0].op),
        (&a(1), &Op::ReplicaOf(a(3)))
    );
}

#[test]
fn failed_switchover_step_aborts_with_its_reason() {
    let (mut c, act) = started_switchover();
    let cmds = c.handle(
        now(150),
        Input::ActionDone {
            id: act.id,
            result: Err("step 2 (catch-up): behind".into()),
        },
    );
    let p = proposals(&cmds);
    assert!(
        matches!(&p[..], [Entry::AbortFailover { epoch: 1, reason, .. }] if reason.contains("step 2")),
        "{p:?}"
    );
    apply(&mut c, 160, p[0].clone());
    let o = c
        .topology()
        .group("g")
        .and_then(|g| g.last_outcome.clone())
        .expect("outcome");
    assert!(!o.completed && o.reason.contains("step 2"));
    assert_eq!(
        c.topology().group("g").map(|g| g.master.clone()),
        Some(a(1))
    );
}

#[test]
fn new_leader_aborts_a_switchover_it_did_not_start_and_unpauses() {
    let mut c = core();
    for e in [
        Entry::InitGroup {
            group: "g".into(),
            master: a(1),
            replicas: vec![a(2), a(3)],
        },
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(3),
            kind: FailoverKind::Switchover { timeout_ms: 2000 },
            started_wall_ms: 1_000_000,
        },
    ] {
        apply(&mut c, 0, e);
    }
    info(&mut c, 400, 3, replica_info(1, 5, 100, "x"));
    let cmds = c.handle(now(500), leader());
    let acts = actions(&cmds);
    assert!(
        acts.iter().any(|x| x.target == a(1) && x.op == Op::Unpause),
        "{cmds:?}"
    );
    assert!(
        matches!(&proposals(&cmds)[..], [Entry::AbortFailover { epoch: 1, reason, .. }] if reason.contains("leader changed"))
    );
}

#[test]
fn maintenance_blocks_automatic_failover_but_not_detection() {
    let mut c = initialised_leader();
    apply(
        &mut c,
        10,
        Entry::SetMaintenance {
            group: "g".into(),
            on: true,
        },
    );
    replicas_healthy(&mut c, 1000, 1);
    let cmds = peer_sees_down(&mut c, 1001, 2, &[1]);
    assert!(proposals(&cmds).is_empty());
    let ev = events(&cmds);
    assert!(ev.iter().any(|e| e.starts_with("+odown")), "{ev:?}");
    assert!(
        ev.iter().any(|e| e.starts_with("-failover-maintenance")),
        "{ev:?}"
    );
}

#[test]
fn committed_master_reporting_replica_is_promoted_back() {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 100, 1);
    // A late REPLICAOF (or an operator) turned the committed master into a replica.
    let cmds = info(&mut c, 200, 1, replica_info(2, 100, 100, "m"));
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1, "{cmds:?}");
    assert_eq!(
        (&acts[0].target, &acts[0].op, acts[0].epoch),
        (&a(1), &Op::Promote, 0)
    );
    assert!(events(&cmds)
        .iter()
        .any(|e| e.starts_with("+fix-master-config")));
}

fn fencing_core() -> Core {
    fencing_core_for(1)
}

/// A follower core whose local instance is `:local`, group initialised.
fn fencing_core_for(local: u16) -> Core {
    let mut c = Core::new(CoreConfig {
        me: local as u64,
        groups: vec![spec()],
        report_interval_ms: 200,
        report_ttl_ms: 1000,
        fence: Some(fence::FenceConfig {
            local: a(local),
            fence_after_ms: 500,
            boot_grace_ms: 3000,
            voters: 3,
        }),
    });
    c.handle(
        now(0),
        Input::Raft(RaftState {
            term: 1,
            leader: Some(2),
            is_leader: false,
            can_act: false,
        }),
    );
    apply(
        &mut c,
        0,
        Entry::InitGroup {
            group: "g".into(),
            master: a(1),
            replicas: vec![a(2), a(3)],
        },
    );
    c
}

fn fence_cmds(cmds: &[Command]) -> Vec<bool> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Fence { on, .. } => Some(*on),
            _ => None,
        })
        .collect()
}

#[test]
fn cut_off_master_is_fenced_after_fence_after_and_lifted_when_back() {
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    info(&mut c, 500, 1, master_info(&[2, 3]));
    assert!(fence_cmds(&c.handle(now(599), Input::Tick)).is_empty());
    let cmds = c.handle(now(600), Input::Tick);
    assert_eq!(fence_cmds(&cmds), vec![true]);
    assert!(events(&cmds).iter().any(|e| e.starts_with("+fence")));
    // Not re-sent while the change is being applied.
    assert!(fence_cmds(&c.handle(now(650), Input::Tick)).is_empty());
    c.handle(now(700), Input::FenceState { on: true });
    assert!(c.status(now(700)).fenced);
    // Quorum back, still the committed master: lift.
    let cmds = c.handle(now(900), Input::QuorumContact { at_ms: 900 });
    assert_eq!(fence_cmds(&cmds), vec![false]);
}

#[test]
fn fenced_old_master_stays_fenced_until_it_is_a_replica() {
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    info(&mut c, 500, 1, master_info(&[]));
    c.handle(now(700), Input::Tick);
    c.handle(now(700), Input::FenceState { on: true });
    // While cut off, the majority failed over to :2.
    for e in [
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(2),
            kind: FailoverKind::Auto,
            started_wall_ms: 0,
        },
        Entry::PromotedMaster {
            group: "g".into(),
            epoch: 1,
            master: a(2),
        },
    ] {
        apply(&mut c, 800, e);
    }
    let cmds = c.handle(now(900), Input::QuorumContact { at_ms: 900 });
    assert!(
        fence_cmds(&cmds).is_empty(),
        "still a master that is not the committed one"
    );
    let cmds = info(&mut c, 950, 1, replica_info(2, 0, 100, "m"));
    assert_eq!(fence_cmds(&cmds), vec![false]);
}

#[test]
fn replicas_and_fresh_daemons_are_never_fenced_and_boot_has_a_grace() {
    let mut c = fencing_core();
    info(&mut c, 100, 1, master_info(&[2, 3]));
    // No contact yet since start: wait the boot grace (3000 ms).
    assert!(fence_cmds(&c.handle(now(2900), Input::Tick)).is_empty());
    assert_eq!(fence_cmds(&c.handle(now(3000), Input::Tick)), vec![true]);
    let mut c = fencing_core();
    for t in (0..5000).step_by(100) {
        c.handle(now(t), Input::QuorumContact { at_ms: t });
        info(&mut c, t, 1, master_info(&[2, 3]));
        assert!(fence_cmds(&c.handle(now(t), Input::Tick)).is_empty());
    }
    let mut c = fencing_core();
    info(&mut c, 100, 1, replica_info(2, 0, 100, "m"));
    assert!(fence_cmds(&c.handle(now(9000), Input::Tick)).is_empty());
}

/// A follower that has applied a failover of epoch 1 from :1 to :3.
fn follower_with_failover_started(kind: FailoverKind) -> Core {
    let mut c = core();
    for e in [
        Entry::InitGroup {
            group: "g".into(),
            master: a(1),
            replicas: vec![a(2), a(3)],
        },
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(3),
            kind,
            started_wall_ms: 1_000_000,
        },
    ] {
        apply(&mut c, 0, e);
    }
    info(&mut c, 400, 3, replica_info(1, 5, 100, "x"));
    c
}

#[test]
fn old_master_answering_before_promotion_aborts_the_failover() {
    let mut c = initialised_leader();
    replicas_healthy(&mut c, 1000, 1);
    peer_sees_down(&mut c, 1000, 2, &[1]);
    let p = proposals(&c.handle(now(1001), Input::Tick));
    assert!(matches!(&p[..], [Entry::StartFailover { to, .. }] if *to == a(2)));
    // The target cannot be promoted right away (an earlier action failed).
    c.retry_after.insert(a(2), 1200);
    let cmds = apply(&mut c, 1010, p[0].clone());
    assert!(actions(&cmds).is_empty(), "{cmds:?}");
    // The old master restarted (or resumed) and answers as a master.
    let cmds = info(&mut c, 1100, 1, master_info(&[3]));
    assert!(actions(&cmds).is_empty(), "no promotion: {cmds:?}");
    assert!(
        matches!(&proposals(&cmds)[..], [Entry::AbortFailover { epoch: 1, reason, .. }]
            if reason.contains("answers again")),
        "{cmds:?}"
    );
}

#[test]
fn a_new_leader_demotes_a_returning_old_master_instead_of_aborting() {
    // It cannot know whether its predecessor already sent the promotion.
    let mut c = follower_with_failover_started(FailoverKind::Auto);
    info(&mut c, 450, 1, master_info(&[3]));
    let cmds = c.handle(now(500), leader());
    assert!(proposals(&cmds).is_empty(), "{cmds:?}");
    let acts = actions(&cmds);
    assert!(
        acts.iter()
            .any(|x| x.target == a(1) && x.op == Op::ReplicaOf(a(3))),
        "{cmds:?}"
    );
}

#[test]
fn old_master_answering_after_promotion_was_sent_is_demoted_at_once() {
    let mut c = follower_with_failover_started(FailoverKind::Auto);
    let cmds = c.handle(now(500), leader());
    let acts = actions(&cmds);
    assert_eq!((&acts[0].target, &acts[0].op), (&a(3), &Op::Promote));
    // The promotion is in flight when the old master answers again.
    let cmds = info(&mut c, 520, 1, master_info(&[2]));
    assert!(
        proposals(&cmds).is_empty(),
        "no abort once promoted: {cmds:?}"
    );
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1, "{cmds:?}");
    assert_eq!(
        (&acts[0].target, &acts[0].op, acts[0].epoch),
        (&a(1), &Op::ReplicaOf(a(3)), 1)
    );
}

#[test]
fn forced_failover_demotes_a_live_old_master_before_promoting() {
    let mut c = follower_with_failover_started(FailoverKind::Forced);
    info(&mut c, 450, 1, master_info(&[3]));
    let cmds = c.handle(now(500), leader());
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1, "{cmds:?}");
    assert_eq!(
        (&acts[0].target, &acts[0].op),
        (&a(1), &Op::ReplicaOf(a(3)))
    );
    // Promoted as soon as the old master confirmed the demotion.
    let cmds = c.handle(
        now(520),
        Input::ActionDone {
            id: acts[0].id,
            result: Ok(()),
        },
    );
    let acts = actions(&cmds);
    assert_eq!(acts.len(), 1, "{cmds:?}");
    assert_eq!((&acts[0].target, &acts[0].op), (&a(3), &Op::Promote));
}

#[test]
fn loading_instances_are_retried_soon() {
    let mut c = failed_over_leader();
    let cmds = info(&mut c, 3000, 1, master_info(&[]));
    let id = actions(&cmds)[0].id;
    c.handle(
        now(3010),
        Input::ActionDone {
            id,
            result: Err("LOADING Redis is loading the dataset in memory".into()),
        },
    );
    let cmds = info(&mut c, 3040, 1, master_info(&[]));
    assert_eq!(actions(&cmds).len(), 1, "retried within 30 ms: {cmds:?}");
}

#[test]
fn failover_away_from_the_local_master_fences_it_at_once() {
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    info(&mut c, 100, 1, master_info(&[2, 3]));
    let cmds = apply(
        &mut c,
        200,
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(2),
            kind: FailoverKind::Auto,
            started_wall_ms: 0,
        },
    );
    assert_eq!(fence_cmds(&cmds), vec![true], "quorum contact or not");
    assert!(events(&cmds)
        .iter()
        .any(|e| e.starts_with("+fence") && e.contains("failover from it")));
    c.handle(now(210), Input::FenceState { on: true });
    // Aborted: the committed master again, with quorum contact: lifted.
    let cmds = apply(
        &mut c,
        300,
        Entry::AbortFailover {
            group: "g".into(),
            epoch: 1,
            reason: "test".into(),
        },
    );
    assert_eq!(fence_cmds(&cmds), vec![false]);
}

#[test]
fn a_switchover_away_or_a_promotion_to_the_local_instance_does_not_fence_it() {
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    info(&mut c, 100, 1, master_info(&[2, 3]));
    let cmds = apply(
        &mut c,
        200,
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(2),
            kind: FailoverKind::Switchover { timeout_ms: 1000 },
            started_wall_ms: 0,
        },
    );
    assert!(fence_cmds(&cmds).is_empty(), "{cmds:?}");
    // The promoted target reports master before `PromotedMaster` commits.
    let mut c = fencing_core_for(2);
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    apply(
        &mut c,
        200,
        Entry::StartFailover {
            group: "g".into(),
            epoch: 1,
            from: a(1),
            to: a(2),
            kind: FailoverKind::Auto,
            started_wall_ms: 0,
        },
    );
    let cmds = info(&mut c, 250, 2, master_info(&[]));
    assert!(fence_cmds(&cmds).is_empty(), "{cmds:?}");
    // But a replica that claims to be a master outside any failover is.
    let mut c = fencing_core_for(3);
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    let cmds = info(&mut c, 250, 3, master_info(&[]));
    assert_eq!(fence_cmds(&cmds), vec![true], "{cmds:?}");
}

/// A report from peer `from` that echoes our latest report (two-way contact).
fn peer_report(c: &mut Core, t: u64, from: u64, sdown: &[u16], epoch: u64) -> Vec<Command> {
    let echo = c.report_seq;
    peer_report_echoing(c, t, from, sdown, epoch, echo)
}

fn peer_report_echoing(
    c: &mut Core,
    t: u64,
    from: u64,
    sdown: &[u16],
    epoch: u64,
    echo: u64,
) -> Vec<Command> {
    let me = c.cfg.me;
    c.handle(
        now(t),
        Input::PeerReport {
            from,
            report: Report {
                sdown: sdown.iter().map(|p| a(*p)).collect(),
                epochs: [("g".to_string(), epoch)].into(),
                seq: t,
                heard: [(me, echo)].into(),
                reply_age_ms: [(a(me as u16), 50)].into(),
                ..Default::default()
            },
        },
    )
}

#[test]
fn direct_contact_with_a_majority_keeps_a_healthy_master_unfenced_without_a_leader() {
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    // The leader's host is cut: no read-index confirmation after t=100, but
    // daemon 2 keeps reporting that it sees the local master up.
    for t in (100..=2000).step_by(100) {
        info(&mut c, t, 1, master_info(&[2, 3]));
        peer_report(&mut c, t, 2, &[], 0);
        assert!(
            fence_cmds(&c.handle(now(t), Input::Tick)).is_empty(),
            "fenced at {t}"
        );
    }
    // Daemon 2 goes quiet too: fenced once its last report, and our report it
    // echoed (sent at most one report interval, 200 ms, before it), are too old.
    assert!(fence_cmds(&c.handle(now(2299), Input::Tick)).is_empty());
    assert_eq!(fence_cmds(&c.handle(now(2501), Input::Tick)), vec![true]);

    // One-way: daemon 2's reports arrive, but it never hears ours (it echoes
    // only a report from before the cut). That is no contact.
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    let old = c.report_seq;
    for t in (100..=2000).step_by(100) {
        let mut cmds = info(&mut c, t, 1, master_info(&[2, 3]));
        cmds.extend(peer_report_echoing(&mut c, t, 2, &[], 0, old));
        cmds.extend(c.handle(now(t), Input::Tick));
        if fence_cmds(&cmds) == vec![true] {
            assert!((500..=700).contains(&t), "fenced at {t}");
            break;
        }
        assert!(t < 700, "not fenced at {t}");
    }

    // A peer whose last reply from the local master is old could see it
    // down (and vote for a failover) before a fence would land: no contact.
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    let mut fenced_at = None;
    for t in (100..=2000).step_by(100) {
        let mut cmds = info(&mut c, t, 1, master_info(&[2, 3]));
        let echo = c.report_seq;
        let me = c.cfg.me;
        cmds.extend(c.handle(
            now(t),
            Input::PeerReport {
                from: 2,
                report: Report {
                    epochs: [("g".to_string(), 0)].into(),
                    seq: t,
                    heard: [(me, echo)].into(),
                    reply_age_ms: [(a(1), 450)].into(),
                    ..Default::default()
                },
            },
        ));
        if fence_cmds(&cmds) == vec![true] {
            fenced_at = Some(t);
            break;
        }
    }
    assert_eq!(fenced_at, Some(600), "fenced as if cut off");

    // A peer that sees the local master down does not count.
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    peer_report(&mut c, 600, 2, &[1], 0);
    let cmds = info(&mut c, 600, 1, master_info(&[2, 3]));
    assert_eq!(fence_cmds(&cmds), vec![true]);

    // A peer that applied a newer epoch: a failover this daemon has not
    // seen yet. Fenced at once, even with read-index contact.
    let mut c = fencing_core();
    c.handle(now(100), Input::QuorumContact { at_ms: 100 });
    info(&mut c, 150, 1, master_info(&[2, 3]));
    let cmds = peer_report(&mut c, 200, 3, &[], 1);
    assert_eq!(fence_cmds(&cmds), vec![true]);
    assert!(events(&cmds).iter().any(|e| e.contains("epoch 1")));
}
