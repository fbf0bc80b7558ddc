#!/usr/bin/env bash
# Chaos checker (issue 6): the seeds' logging workload on the network test bed
# (scripts/testbed.sh) under faults, with a Jepsen-style check of what was
# acknowledged and what survived. Guide and field definitions: docs/chaos.md.
#
# Usage: scripts/chaos.sh [scenario...]        (default: every scenario)
#
# Scenarios:
#   kill_master              kill -9 the master's redis-server
#   cut_master               cut the master's host (link down) for CHAOS_CUT_S
#   cut_replica              cut one replica's host (not the Raft leader's)
#   cut_leader               cut the Raft leader's host (leadership is first
#                            moved off the master's host if it is there)
#   kill_master_and_leader   kill -9 the master and the Raft leader's daemon
#                            together (one host crash when they share a host)
#   restart_old_master       kill -9 the master, start it again as soon as a
#                            new master is committed (through its unit: guard)
#   master_flapping          the committed master down 1 s / up 1 s, 5 times
#                            (kill -9, start through its unit; each time
#                            whichever instance is the committed master)
#   restart_daemons          kill -9 the three daemons, start them again
#   oneway_in_master         the master's host receives nothing for CHAOS_CUT_S
#   oneway_out_master        the master's host sends nothing for CHAOS_CUT_S
#   cut_master_from_leader   only the link between the master's host and the
#                            Raft leader's host is cut, for CHAOS_CUT_S
#   master_back_during_failover  (extra) kill -9 the master and start it again
#                            so that it answers right when the daemons decide
#                            to fail over (about down_after_ms after the kill)
#   stall_master             (extra) SIGSTOP the master's redis-server for
#                            down_after_ms + 300 ms, then SIGCONT
#
# scripts/chaos/run.py --analyse DIR... analyses a scenario's output dir again.
#
# Each scenario gets a fresh test bed (down, up; two client hosts), then runs:
# producers on every host (RPUSH logs_queue <host>-<seq> through redis-py's
# Sentinel client against the daemons' discovery ports :26379), an aggregator
# on c1 (logs_queue -> aggregated_logs.txt), a role poller on every node host
# (ROLE + a probe write in DB 15 every 20 ms), a monitor on c1 (raftinel
# status + INFO replication every 200 ms). After the fault it waits for
# convergence, keeps writing CHAOS_TAIL_S more, stops and reads the final list.
#
# stdout: one JSON line per scenario (progress on stderr). Exit status: 1 if a
# scenario broke a safety target (majority-side write lost, minority write
# acknowledged after fence_after_ms, two writable masters after the fence, a
# restarted old master accepting writes), 2 if the checker could not run a
# scenario, 0 otherwise. Missed liveness targets (convergence time) are in
# "targets_missed"; CHAOS_STRICT=1 makes them exit 1 too.
#
# Environment:
#   RAFTINEL_BIN         binary for the test bed (default: cargo build, then
#                        target/debug/raftinel)
#   CHAOS_NO_BUILD=1     do not run cargo build
#   CHAOS_OUT            output dir (default /tmp/raftinel-chaos/<date-time>);
#                        one subdir per scenario with every raw file and the
#                        nodes' logs
#   CHAOS_CUT_S          length of the cuts (default 10)
#   CHAOS_TAIL_S         writes after convergence (default 2)
#   CHAOS_WRITE_INTERVAL_MS  pause after each acknowledged write (default 10)
#   CHAOS_KEEP=1         leave the last test bed up
#   RAFTINEL_TESTBED_DIR, RAFTINEL_TESTBED_DOWN_AFTER_MS,
#   RAFTINEL_TESTBED_FAILOVER_TIMEOUT_MS  passed to scripts/testbed.sh
#
# Needs root. Holds /tmp/raftinel-testbed.tests.lock (the lock of the Rust
# test-bed tests) for its whole run, so it never shares the namespaces.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK=/tmp/raftinel-testbed.tests.lock

die() {
    printf 'chaos: ERROR: %s\n' "$*" >&2
    exit 2
}

case "${1:-}" in -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, iptables: scripts/testbed.sh); run it as root"
command -v flock >/dev/null 2>&1 || die "flock (util-linux) is missing"

RT_LOG_FD=2
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rt_need_pyredis >/dev/null
python3 -c 'import tomllib' 2>/dev/null || die "python3 >= 3.11 is needed (tomllib)"

if [ -z "${RAFTINEL_BIN:-}" ]; then
    if [ "${CHAOS_NO_BUILD:-0}" != 1 ]; then
        (cd "$REPO" && cargo build --quiet) >&2 || die "cargo build failed"
    fi
    RAFTINEL_BIN="$REPO/target/debug/raftinel"
fi
[ -x "$RAFTINEL_BIN" ] || die "no raftinel binary at $RAFTINEL_BIN"
export RAFTINEL_BIN
export RAFTINEL_TESTBED_CLIENTS="${RAFTINEL_TESTBED_CLIENTS:-2}"

exec 8>"$LOCK"
if ! flock -n 8; then
    printf 'chaos: waiting for %s (another test-bed user)\n' "$LOCK" >&2
    flock -w 1200 8 || die "could not take $LOCK within 20 minutes"
fi

# The lock stays with this shell; nothing started below inherits it.
rc=0
python3 -u "$REPO/scripts/chaos/run.py" "$@" 8>&- || rc=$?
exit "$rc"
