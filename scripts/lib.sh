# shellcheck shell=bash
# Shared helpers of scripts/demo.sh and scripts/bench-failover.sh.
#
# Source it after `set -euo pipefail`. Everything here talks to 127.0.0.1 only
# and only kills processes that these helpers started themselves (their pids
# are kept in RT_PIDS).
#
# Variables the caller may set:
#   RT_LOG_FD   file descriptor of progress messages (default 1; the bench uses 2
#               so that its stdout carries only JSON)
#   RT_BIN      the raftinel binary (set by rt_build)

RT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RT_LOG_FD="${RT_LOG_FD:-1}"
RT_BIN="${RT_BIN:-}"
RT_PIDS=()
RT_APT_UPDATED=0
# How long the last successful rt_wait_for waited, in ms (for messages).
export RT_WAITED_MS=0

# ---------------------------------------------------------------- messages

rt_say() { printf '%s\n' "$*" >&"$RT_LOG_FD"; }
rt_step() { printf '\n==> %s\n' "$*" >&"$RT_LOG_FD"; }
rt_ok() { printf '    ok: %s\n' "$*" >&"$RT_LOG_FD"; }
rt_die() {
    printf '\nERROR: %s\n' "$*" >&2
    exit 1
}

# Milliseconds since the epoch (wall clock, the same clock Python's time.time()).
rt_now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- installs

rt_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        rt_die "need to install $* but apt-get is not available; install it by hand"
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    if [ "$RT_APT_UPDATED" -eq 0 ]; then
        rt_say "    apt-get update"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null
        RT_APT_UPDATED=1
    fi
    rt_say "    apt-get install $*"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

rt_need_redis() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        rt_say "    redis-server/redis-cli missing: installing"
        rt_apt_install redis-server redis-tools
    fi
    rt_ok "$(redis-server --version | cut -d' ' -f1-3)"
}

rt_need_python() {
    if ! command -v python3 >/dev/null 2>&1; then
        rt_say "    python3 missing: installing"
        rt_apt_install python3
    fi
}

# The Python `redis` package (redis-py).
rt_need_pyredis() {
    rt_need_python
    if python3 -c 'import redis' >/dev/null 2>&1; then
        return 0
    fi
    rt_say "    python3 package redis missing: pip install redis"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        rt_apt_install python3-pip
    fi
    python3 -m pip install -q redis ||
        python3 -m pip install -q --break-system-packages redis ||
        rt_apt_install python3-redis
    python3 -c 'import redis' || rt_die "cannot import the python redis package after installing it"
}

# rt_build debug|release: cargo build the raftinel binary; sets RT_BIN.
rt_build() {
    local profile="$1" args=()
    if [ "$profile" = release ]; then args=(--release); fi
    rt_say "    cargo build ${args[*]}"
    (cd "$RT_ROOT" && cargo build "${args[@]}" --bin raftinel) || rt_die "cargo build failed"
    RT_BIN="$RT_ROOT/target/$profile/raftinel"
    [ -x "$RT_BIN" ] || rt_die "no binary at $RT_BIN after the build"
    rt_ok "$RT_BIN"
}

# ---------------------------------------------------------------- ports

# True if something accepts connections on 127.0.0.1:$1.
rt_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

rt_require_free_ports() {
    local busy=() p
    for p in "$@"; do
        if rt_port_busy "$p"; then busy+=("$p"); fi
    done
    if [ "${#busy[@]}" -gt 0 ]; then
        rt_die "port(s) ${busy[*]} on 127.0.0.1 already in use (a Redis or raftinel already running?).
       This script needs 127.0.0.1 ports $* free; stop whatever listens there
       (e.g. 'systemctl stop redis-server' for the system Redis) and run it again."
    fi
    rt_ok "ports $* are free"
}

# ---------------------------------------------------------------- processes

# Start a command in the background with its stdout+stderr in a log file; the
# pid goes to RT_PIDS and to the variable named by $1.
rt_spawn() {
    local __var="$1" log="$2"
    shift 2
    "$@" >>"$log" 2>&1 </dev/null &
    local __pid=$!
    RT_PIDS+=("$__pid")
    printf -v "$__var" '%s' "$__pid"
}

# Stop every process this script started: SIGTERM, then SIGKILL after 3 s.
rt_stop_all() {
    local pid alive=() i
    for pid in "${RT_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            alive+=("$pid")
        fi
    done
    for i in $(seq 30); do
        local left=()
        for pid in "${alive[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then left+=("$pid"); fi
        done
        [ "${#left[@]}" -eq 0 ] && break
        if [ "$i" -eq 30 ]; then
            for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
        fi
        sleep 0.1
    done
    for pid in "${alive[@]}"; do wait "$pid" 2>/dev/null || true; done
    RT_PIDS=()
}

# rt_wait_for TIMEOUT_S "what we wait for" COMMAND [ARGS...]
# Poll COMMAND every 0.2 s until it succeeds; die after TIMEOUT_S seconds.
rt_wait_for() {
    local timeout_s="$1" what="$2"
    shift 2
    local start now
    start=$(rt_now_ms)
    while true; do
        if "$@"; then
            RT_WAITED_MS=$(($(rt_now_ms) - start))
            return 0
        fi
        now=$(rt_now_ms)
        if [ $((now - start)) -ge $((timeout_s * 1000)) ]; then
            rt_die "timed out after ${timeout_s}s waiting for: $what"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- redis

# rt_redis_conf PORT DIR [MASTER_PORT]: write DIR/redis.conf.
rt_redis_conf() {
    local port="$1" dir="$2" master_port="${3:-}"
    mkdir -p "$dir"
    {
        echo "# written by scripts/lib.sh; CONFIG REWRITE may change it"
        echo "bind 127.0.0.1"
        echo "port $port"
        echo "protected-mode yes"
        echo "daemonize no"
        echo "dir $dir"
        echo "logfile $dir/redis.log"
        echo "dbfilename dump.rdb"
        echo "appendonly yes"
        echo "save \"\""
        # Redis 7 waits 5 s before a diskless full sync in case more replicas
        # come; nothing else joins here, so start at once.
        echo "repl-diskless-sync-delay 0"
        if [ -n "$master_port" ]; then echo "replicaof 127.0.0.1 $master_port"; fi
    } >"$dir/redis.conf"
}

rt_redis_ping() {
    [ "$(redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = "PONG" ]
}

# rt_start_redis PORT DIR: start redis-server DIR/redis.conf, record its pid in
# DIR/pid (and RT_PIDS) and wait until it answers PING.
rt_start_redis() {
    local port="$1" dir="$2" pid
    rt_spawn pid "$dir/stdout.log" redis-server "$dir/redis.conf"
    echo "$pid" >"$dir/pid"
    rt_wait_for 15 "redis-server on 127.0.0.1:$port to answer PING" rt_redis_ping "$port"
}

# rt_kill9_redis DIR: SIGKILL the redis-server started from DIR.
rt_kill9_redis() {
    local dir="$1" pid
    pid=$(cat "$dir/pid")
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
}

# rt_redis_repl PORT: print "role master_host:master_port link_status" from
# INFO replication ("master - -" for a master, "unreachable - -" on error).
rt_redis_repl() {
    local info
    if ! info=$(redis-cli -h 127.0.0.1 -p "$1" INFO replication 2>/dev/null) || [ -z "$info" ]; then
        echo "unreachable - -"
        return 0
    fi
    printf '%s\n' "$info" | tr -d '\r' | awk -F: '
        $1 == "role" { role = $2 }
        $1 == "master_host" { host = $2 }
        $1 == "master_port" { port = $2 }
        $1 == "master_link_status" { link = $2 }
        END {
            if (role == "slave") print role, host ":" port, link;
            else print (role == "" ? "unknown" : role), "-", "-";
        }'
}

# rt_redis_is_replica_of PORT MASTER_ADDR: role slave of MASTER_ADDR, link up.
rt_redis_is_replica_of() {
    local role master link
    read -r role master link < <(rt_redis_repl "$1")
    [ "$role" = "slave" ] && [ "$master" = "$2" ] && [ "$link" = "up" ]
}

# ---------------------------------------------------------------- raftinel status

# Python that turns `raftinel status --json` (stdin) into shell assignments for
# one group, from the Raft leader's view:
#   ST_TOTAL ST_ANSWERED  daemons asked / daemons that answered
#   ST_LEADER             node id of the daemon that says it is the leader, or ""
#   ST_INIT               1 if the leader has the group initialised
#   ST_MASTER ST_EPOCH    committed master and epoch
#   ST_FAILOVER           phase of the failover in progress, or ""
#   ST_LAST_DONE_MS       wall ms at which the last failover completed, or ""
#   ST_MASTER_REPORTS     role the committed master reports in INFO
#   ST_REPLICAS           committed replicas (space separated)
#   ST_REPLICAS_OK        1 if the master reports master and every committed
#                         replica reports slave of it with the link up
RT_PY_STATE='
import json, shlex, sys
group = sys.argv[1]
out = dict(TOTAL=0, ANSWERED=0, LEADER="", INIT=0, MASTER="", EPOCH="", FAILOVER="",
           LAST_DONE_MS="", MASTER_REPORTS="", REPLICAS="", REPLICAS_OK=0)
try:
    answers = json.load(sys.stdin)
except Exception:
    answers = []
views = [a["status"] for a in answers if isinstance(a, dict) and a.get("status")]
out["TOTAL"], out["ANSWERED"] = len(answers), len(views)
leader = next((v for v in views if v.get("raft", {}).get("is_leader")), None)
if leader is not None:
    out["LEADER"] = leader.get("node_id", "?")
    g = next((g for g in leader.get("groups", []) if g.get("name") == group), None)
    if g is not None and g.get("initialised"):
        out["INIT"] = 1
        out["MASTER"] = g.get("master") or ""
        out["EPOCH"] = g.get("epoch", "")
        f = g.get("failover")
        out["FAILOVER"] = (f.get("phase") or "?") if isinstance(f, dict) else ""
        out["LAST_DONE_MS"] = g.get("last_failover_completed_wall_ms") or ""
        insts = g.get("instances", [])
        m = next((i for i in insts if i.get("addr") == out["MASTER"]), {})
        out["MASTER_REPORTS"] = m.get("reported_role") or ""
        slaves = [i for i in insts if i.get("committed_role") == "slave"]
        out["REPLICAS"] = " ".join(i["addr"] for i in slaves)
        ok = out["MASTER_REPORTS"] == "master" and len(slaves) > 0 and all(
            i.get("reported_role") == "slave" and i.get("replica_of") == out["MASTER"]
            and i.get("link_up") is True for i in slaves)
        out["REPLICAS_OK"] = int(ok)
for k, v in out.items():
    print("ST_%s=%s" % (k, shlex.quote(str(v))))
'

# rt_state CONFIG GROUP: set the ST_* variables above.
rt_state() {
    local json
    json=$("$RT_BIN" status --json --config "$1" --timeout-ms 500 2>/dev/null) || true
    eval "$(printf '%s' "$json" | python3 -c "$RT_PY_STATE" "$2")"
}

rt_print_status() {
    "$RT_BIN" status --config "$1" --timeout-ms 1000 | sed 's/^/    /' >&"$RT_LOG_FD" || true
}

# Predicates for rt_wait_for (they refresh ST_* as a side effect).
rt_cluster_ready() { # CONFIG GROUP NPEERS: all answer, leader, group up, replicas linked
    rt_state "$1" "$2"
    [ "$ST_ANSWERED" = "$3" ] && [ -n "$ST_LEADER" ] && [ "$ST_INIT" = 1 ] &&
        [ -z "$ST_FAILOVER" ] && [ "$ST_REPLICAS_OK" = 1 ]
}
rt_leader_and_group() { # CONFIG GROUP
    rt_state "$1" "$2"
    [ -n "$ST_LEADER" ] && [ "$ST_INIT" = 1 ]
}
rt_master_is_not() { # CONFIG GROUP OLD_MASTER: a different master is committed
    rt_state "$1" "$2"
    [ -n "$ST_LEADER" ] && [ "$ST_INIT" = 1 ] && [ -n "$ST_MASTER" ] && [ "$ST_MASTER" != "$3" ]
}
rt_no_failover() { # CONFIG GROUP
    rt_state "$1" "$2"
    [ -n "$ST_LEADER" ] && [ "$ST_INIT" = 1 ] && [ -z "$ST_FAILOVER" ]
}

# rt_events FILE[@OFFSET]...: event lines (target raftinel::event) of daemon
# logs, from byte OFFSET on if given, colour codes removed.
rt_events() {
    local arg f off
    for arg in "$@"; do
        f="${arg%@*}"
        off=0
        if [ "$f" != "$arg" ]; then off="${arg##*@}"; fi
        [ -f "$f" ] || continue
        tail -c +"$((off + 1))" "$f" | sed 's/\x1b\[[0-9;]*m//g' | grep 'raftinel::event' |
            sed "s|^|    $(basename "$f"): |" || true
    done
}
