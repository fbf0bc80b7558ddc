#!/usr/bin/env bash
# Local end-to-end demo of raftinel, all on 127.0.0.1:
#   Redis master 6379, replicas 6380 and 6381; three `raftinel daemon`s with
#   config/demo/node{1,2,3}.toml (peer ports 7001-7003).
# Steps: start everything, kill -9 the master, watch the daemons agree and
# promote a replica, restart the old master and watch it be demoted to a
# replica of the new one. Everything is stopped and /tmp/raftinel-demo removed
# on exit, whatever happens. Exits non-zero if a step does not happen in time.
#
# Usage: scripts/demo.sh            (RAFTINEL_DEMO_KEEP=1 keeps /tmp/raftinel-demo)
#
# If the ports are taken by something you cannot stop, the demo can run in a
# private network namespace with a private /tmp (as root):
#   unshare --net --mount --fork bash -c \
#     'ip link set lo up && mount -t tmpfs tmpfs /tmp && scripts/demo.sh'
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO_DIR=/tmp/raftinel-demo
GROUP=mymaster
MASTER_PORT=6379
REPLICA_PORTS=(6380 6381)
PEER_PORTS=(7001 7002 7003)
CFG_DIR="$RT_ROOT/config/demo"
CFG1="$CFG_DIR/node1.toml"
STARTED=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$STARTED" = 1 ]; then
        if [ "$rc" -ne 0 ]; then
            printf '\nLast lines of the daemon logs:\n' >&2
            for n in 1 2 3; do
                if [ -f "$DEMO_DIR/daemon$n.log" ]; then
                    printf -- '--- daemon%s.log\n' "$n" >&2
                    tail -n 25 "$DEMO_DIR/daemon$n.log" | sed 's/\x1b\[[0-9;]*m//g' >&2
                fi
            done
        fi
        rt_step "Cleaning up: stopping daemons and redis-servers"
        rt_stop_all
        if [ "${RAFTINEL_DEMO_KEEP:-0}" = 1 ]; then
            rt_say "    kept $DEMO_DIR (RAFTINEL_DEMO_KEEP=1)"
        else
            rm -rf "$DEMO_DIR"
            rt_say "    removed $DEMO_DIR"
        fi
    fi
    if [ "$rc" -eq 0 ]; then
        rt_say ""
        rt_say "Demo finished: OK"
    else
        printf '\nDemo FAILED (exit %s)\n' "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rt_step "1. Prerequisites"
rt_need_redis
rt_need_python
rt_require_free_ports "$MASTER_PORT" "${REPLICA_PORTS[@]}" "${PEER_PORTS[@]}"

rt_step "2. Building raftinel (debug)"
rt_build debug

rt_step "3. Starting Redis: master 127.0.0.1:$MASTER_PORT, replicas ${REPLICA_PORTS[*]}"
# Ports were free a moment ago, so nothing of ours runs: a leftover dir is stale.
rt_require_free_ports "$MASTER_PORT" "${REPLICA_PORTS[@]}" "${PEER_PORTS[@]}"
if [ -e "$DEMO_DIR" ]; then
    rt_say "    removing stale $DEMO_DIR from an earlier run"
    rm -rf "$DEMO_DIR"
fi
mkdir -p "$DEMO_DIR"
STARTED=1
rt_redis_conf "$MASTER_PORT" "$DEMO_DIR/redis-$MASTER_PORT"
rt_start_redis "$MASTER_PORT" "$DEMO_DIR/redis-$MASTER_PORT"
rt_ok "master 127.0.0.1:$MASTER_PORT (pid $(cat "$DEMO_DIR/redis-$MASTER_PORT/pid"))"
for p in "${REPLICA_PORTS[@]}"; do
    rt_redis_conf "$p" "$DEMO_DIR/redis-$p" "$MASTER_PORT"
    rt_start_redis "$p" "$DEMO_DIR/redis-$p"
    rt_ok "replica 127.0.0.1:$p (pid $(cat "$DEMO_DIR/redis-$p/pid"))"
done
for p in "${REPLICA_PORTS[@]}"; do
    rt_wait_for 20 "127.0.0.1:$p to replicate from 127.0.0.1:$MASTER_PORT" \
        rt_redis_is_replica_of "$p" "127.0.0.1:$MASTER_PORT"
done
rt_ok "both replicas linked to the master"
redis-cli -h 127.0.0.1 -p "$MASTER_PORT" SET demo:key "written before the failover" >/dev/null

rt_step "4. Starting three raftinel daemons (logs in $DEMO_DIR/daemonN.log)"
for n in 1 2 3; do
    "$RT_BIN" check-config --config "$CFG_DIR/node$n.toml" >/dev/null ||
        rt_die "config/demo/node$n.toml is rejected by check-config"
    rt_spawn pid "$DEMO_DIR/daemon$n.log" env NO_COLOR=1 "$RT_BIN" daemon --config "$CFG_DIR/node$n.toml"
    rt_ok "daemon $n (pid $pid, peer port ${PEER_PORTS[$((n - 1))]})"
done
rt_say "    waiting for a Raft leader, the group initialised and its replicas seen (max 30 s)"
rt_wait_for 30 "a Raft leader and group $GROUP initialised with linked replicas" \
    rt_cluster_ready "$CFG1" "$GROUP" 3
rt_ok "leader is daemon $ST_LEADER, $GROUP master $ST_MASTER (epoch $ST_EPOCH), replicas $ST_REPLICAS (after ${RT_WAITED_MS} ms)"
rt_say ""
rt_say "    \$ raftinel status --config config/demo/node1.toml"
rt_print_status "$CFG1"

OLD_MASTER="127.0.0.1:$MASTER_PORT"
[ "$ST_MASTER" = "$OLD_MASTER" ] || rt_die "expected master $OLD_MASTER, status says $ST_MASTER"

rt_step "5. kill -9 the master redis-server $OLD_MASTER (pid $(cat "$DEMO_DIR/redis-$MASTER_PORT/pid"))"
KILL_MS=$(rt_now_ms)
rt_kill9_redis "$DEMO_DIR/redis-$MASTER_PORT"
rt_ok "killed; down_after_ms is 1000, so the daemons should agree in about a second"
rt_say "    waiting for a new master to be committed (max 30 s)"
rt_wait_for 30 "a new master of $GROUP committed after killing $OLD_MASTER" \
    rt_master_is_not "$CFG1" "$GROUP" "$OLD_MASTER"
NEW_MASTER="$ST_MASTER"
rt_ok "new master $NEW_MASTER committed (epoch $ST_EPOCH) $(($(rt_now_ms) - KILL_MS)) ms after the kill"
rt_say "    waiting for the failover to finish (replicas repointed, max 30 s)"
rt_wait_for 30 "the failover of $GROUP to finish" rt_no_failover "$CFG1" "$GROUP"
rt_ok "failover finished $(($(rt_now_ms) - KILL_MS)) ms after the kill"
NEW_PORT="${NEW_MASTER##*:}"
rt_say "    $NEW_MASTER says: $(rt_redis_repl "$NEW_PORT" | cut -d' ' -f1); demo:key = $(redis-cli -h 127.0.0.1 -p "$NEW_PORT" GET demo:key)"
for p in "${REPLICA_PORTS[@]}"; do
    if [ "127.0.0.1:$p" != "$NEW_MASTER" ]; then
        rt_wait_for 20 "127.0.0.1:$p to replicate from $NEW_MASTER" \
            rt_redis_is_replica_of "$p" "$NEW_MASTER"
        rt_ok "127.0.0.1:$p now replicates from $NEW_MASTER"
    fi
done
rt_say ""
rt_say "    \$ raftinel status --config config/demo/node1.toml"
rt_print_status "$CFG1"
rt_say ""
LEADER_LOG="$DEMO_DIR/daemon$ST_LEADER.log"
rt_say "    Events (log target raftinel::event) logged by the Raft leader, daemon $ST_LEADER:"
rt_events "$LEADER_LOG"
rt_say "    and what the other daemons saw down or up themselves (+sdown/-sdown):"
for n in 1 2 3; do
    if [ "$n" != "$ST_LEADER" ]; then rt_events "$DEMO_DIR/daemon$n.log" | grep -E '[-+]sdown' || true; fi
done

rt_step "6. Restarting the old master $OLD_MASTER (same dir, same redis.conf)"
LOG_MARKS=()
for n in 1 2 3; do LOG_MARKS+=("$DEMO_DIR/daemon$n.log@$(wc -c <"$DEMO_DIR/daemon$n.log")"); done
rt_start_redis "$MASTER_PORT" "$DEMO_DIR/redis-$MASTER_PORT"
rt_ok "restarted (pid $(cat "$DEMO_DIR/redis-$MASTER_PORT/pid")): it comes back believing it is a master"
rt_say "    waiting until it reports role:slave of $NEW_MASTER with the link up (max 30 s)"
rt_wait_for 30 "$OLD_MASTER to report role:slave of $NEW_MASTER" \
    rt_redis_is_replica_of "$MASTER_PORT" "$NEW_MASTER"
rt_ok "$OLD_MASTER: $(rt_redis_repl "$MASTER_PORT") after ${RT_WAITED_MS} ms"
rt_say "    waiting until the daemons see every replica linked to $NEW_MASTER (max 30 s)"
rt_wait_for 30 "every replica of $GROUP linked to $NEW_MASTER" rt_cluster_ready "$CFG1" "$GROUP" 3
rt_ok "master $ST_MASTER, replicas $ST_REPLICAS all linked"
rt_say ""
rt_say "    \$ raftinel status --config config/demo/node1.toml"
rt_print_status "$CFG1"
rt_say ""
rt_say "    Events since the restart:"
rt_events "${LOG_MARKS[@]}"
