//! Choice of the replica to promote: Sentinel's rules, kept.
//!
//! Eligible: answering (not subjectively down), reports role replica with fresh
//! INFO, link to its master not down for longer than `10 x down_after` plus the
//! master's down time, `replica-priority` not 0. Order: lower priority first,
//! then higher replication offset, then smaller run id.

use super::types::{Addr, InstanceInfo, Role};

/// INFO older than this is not trusted for the choice (Sentinel: 5 x INFO period).
pub const MAX_INFO_AGE_MS: u64 = 5_000;

/// What the core knows about one replica when choosing.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub addr: &'a Addr,
    pub sdown: bool,
    pub info: Option<&'a InstanceInfo>,
    pub info_age_ms: u64,
}

/// Why a replica was not eligible (reported in the "no good replica" event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub addr: Addr,
    pub reason: String,
}

struct Ranked<'a> {
    addr: &'a Addr,
    priority: u32,
    offset: u64,
    run_id: &'a str,
}

/// Pick the best replica, or say why none is eligible.
pub fn select(
    candidates: &[Candidate<'_>],
    down_after_ms: u64,
    master_down_ms: u64,
) -> Result<Addr, Vec<Rejection>> {
    let mut rejected = Vec::new();
    let mut ranked = Vec::new();
    let max_link_down_ms = down_after_ms
        .saturating_mul(10)
        .saturating_add(master_down_ms);
    for c in candidates {
        let reject = |reason: String| Rejection {
            addr: c.addr.clone(),
            reason,
        };
        if c.sdown {
            rejected.push(reject("subjectively down".into()));
            continue;
        }
        let Some(info) = c.info else {
            rejected.push(reject("no INFO yet".into()));
            continue;
        };
        if c.info_age_ms > MAX_INFO_AGE_MS {
            rejected.push(reject(format!("INFO is {} ms old", c.info_age_ms)));
            continue;
        }
        let Role::Replica {
            link_up,
            link_down_since_s,
            priority,
            offset,
            ..
        } = &info.role
        else {
            rejected.push(reject("reports role master".into()));
            continue;
        };
        if !link_up {
            let down_ms = link_down_since_s.unwrap_or(u64::MAX).saturating_mul(1000);
            if down_ms > max_link_down_ms {
                rejected.push(reject(format!(
                    "link to master down for {} s",
                    link_down_since_s.map_or("ever".to_string(), |s| s.to_string())
                )));
                continue;
            }
        }
        if *priority == 0 {
            rejected.push(reject("replica-priority is 0".into()));
            continue;
        }
        ranked.push(Ranked {
            addr: c.addr,
            priority: *priority,
            offset: *offset,
            run_id: &info.run_id,
        });
    }
    ranked.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| b.offset.cmp(&a.offset))
            .then_with(|| a.run_id.cmp(b.run_id))
            .then_with(|| a.addr.cmp(b.addr))
    });
    match ranked.first() {
        Some(best) => Ok(best.addr.clone()),
        None => Err(rejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(run_id: &str, priority: u32, offset: u64, link: Option<u64>) -> InstanceInfo {
        InstanceInfo {
            run_id: run_id.into(),
            role: Role::Replica {
                master: Addr::new("m", 1),
                link_up: link.is_none(),
                link_down_since_s: link,
                priority,
                offset,
            },
            master_repl_offset: offset,
        }
    }

    /// (priority, offset, run id, link down s, sdown, info age)
    type Replica = (u32, u64, &'static str, Option<u64>, bool, u64);

    struct Row {
        name: &'static str,
        replicas: Vec<Replica>,
        master_down_ms: u64,
        expect: Option<usize>,
    }

    #[test]
    fn table() {
        let rows = vec![
            Row {
                name: "higher offset wins",
                replicas: vec![
                    (100, 10, "a", None, false, 0),
                    (100, 20, "b", None, false, 0),
                ],
                master_down_ms: 0,
                expect: Some(1),
            },
            Row {
                name: "lower priority wins over offset",
                replicas: vec![
                    (50, 10, "a", None, false, 0),
                    (100, 20, "b", None, false, 0),
                ],
                master_down_ms: 0,
                expect: Some(0),
            },
            Row {
                name: "run id breaks ties",
                replicas: vec![
                    (100, 20, "b", None, false, 0),
                    (100, 20, "a", None, false, 0),
                ],
                master_down_ms: 0,
                expect: Some(1),
            },
            Row {
                name: "priority 0 never promoted",
                replicas: vec![(0, 99, "a", None, false, 0), (100, 1, "b", None, false, 0)],
                master_down_ms: 0,
                expect: Some(1),
            },
            Row {
                name: "subjectively down excluded",
                replicas: vec![(100, 99, "a", None, true, 0), (100, 1, "b", None, false, 0)],
                master_down_ms: 0,
                expect: Some(1),
            },
            Row {
                name: "stale info excluded",
                replicas: vec![
                    (100, 99, "a", None, false, 6000),
                    (100, 1, "b", None, false, 0),
                ],
                master_down_ms: 0,
                expect: Some(1),
            },
            Row {
                name: "link down too long excluded (10 x 1000 + 2000 ms)",
                replicas: vec![
                    (100, 99, "a", Some(13), false, 0),
                    (100, 1, "b", Some(12), false, 0),
                ],
                master_down_ms: 2000,
                expect: Some(1),
            },
            Row {
                name: "never connected excluded",
                replicas: vec![(100, 99, "a", Some(u64::MAX), false, 0)],
                master_down_ms: 2000,
                expect: None,
            },
            Row {
                name: "no candidates",
                replicas: vec![],
                master_down_ms: 0,
                expect: None,
            },
        ];
        for row in rows {
            let addrs: Vec<Addr> = (0..row.replicas.len())
                .map(|i| Addr::new("r", 1000 + i as u16))
                .collect();
            let infos: Vec<InstanceInfo> = row
                .replicas
                .iter()
                .map(|r| replica(r.2, r.0, r.1, r.3))
                .collect();
            let cands: Vec<Candidate> = row
                .replicas
                .iter()
                .enumerate()
                .map(|(i, r)| Candidate {
                    addr: &addrs[i],
                    sdown: r.4,
                    info: Some(&infos[i]),
                    info_age_ms: r.5,
                })
                .collect();
            let got = select(&cands, 1000, row.master_down_ms);
            match row.expect {
                Some(i) => assert_eq!(got, Ok(addrs[i].clone()), "{}", row.name),
                None => assert!(got.is_err(), "{}", row.name),
            }
        }
    }

    #[test]
    fn rejections_say_why() {
        let a = Addr::new("r", 1);
        let info = InstanceInfo {
            run_id: "x".into(),
            role: Role::Master { replicas: vec![] },
            master_repl_offset: 0,
        };
        let c = [Candidate {
            addr: &a,
            sdown: false,
            info: Some(&info),
            info_age_ms: 0,
        }];
        let err = select(&c, 1000, 0).unwrap_err();
        assert_eq!(err[0].reason, "reports role master");
    }
}
