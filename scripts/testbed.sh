#!/usr/bin/env bash
# Network test bed: three raftinel hosts and one client host on one machine,
# as network namespaces joined by veth pairs to a bridge that lives in its own
# namespace. Every node host runs redis-server and `raftinel daemon`,
# provisioned by scripts/provision.sh exactly as a real node (--root mode:
# files under the host's state dir, started from the units' ExecStartPre and
# ExecStart lines). Guide: docs/testbed.md.
#
#   namespace  address      runs
#   rt-n1      10.77.0.11   redis-server :6379 (master at first start), raftinel :7000
#   rt-n2      10.77.0.12   redis-server :6379 (replica), raftinel :7000
#   rt-n3      10.77.0.13   redis-server :6379 (replica), raftinel :7000
#   rt-c1      10.77.0.21   nothing: clients (raftinel status, redis-cli, workloads)
#   rt-c2...   10.77.0.22.. more clients with RAFTINEL_TESTBED_CLIENTS=N
#   rt-br      no address   the bridge br0; ports v-n1 v-n2 v-n3 v-c1 ...
#
# The addresses exist only inside these namespaces: the root namespace's
# links, routes and firewall are never touched.
#
# Usage: scripts/testbed.sh COMMAND [ARGS]
#   up                     create (or complete) the test bed and start everything
#   down                   stop every process in the namespaces, delete them
#                          and the state dir (RAFTINEL_TESTBED_KEEP=1 keeps it)
#   status                 links, cuts, processes, redis roles, raftinel status
#   cut HOST               take HOST's link down (in the bridge namespace)
#   cut HOST --oneway-in   HOST receives nothing (iptables DROP inside HOST)
#   cut HOST --oneway-out  HOST sends nothing
#   cut HOST1 HOST2 [--oneway-in|--oneway-out]
#                          no traffic between HOST1 and HOST2 (rules inside
#                          HOST1; one-way as seen from HOST1)
#   heal [HOST [HOST2]]    undo cuts: all, everything involving HOST, or
#                          between HOST and HOST2
#   kill HOST [redis|daemon|all]   kill -9 (default: redis)
#   start HOST [redis|daemon]      start through the units (default: both,
#                                  whatever is not running)
#   exec HOST CMD...       run CMD inside HOST (REDISCLI_AUTH is set)
#   logs HOST [redis|daemon] [N]   last N (default 50) lines of a log
#
# HOST is n1, n2, n3, c1 (c2... with more clients), or rt-n1, ...
#
# Environment:
#   RAFTINEL_TESTBED_DIR   state dir (default /tmp/raftinel-testbed)
#   RAFTINEL_BIN           binary to install (default target/debug/raftinel)
#   RAFTINEL_TESTBED_DOWN_AFTER_MS        down_after_ms (default 1000)
#   RAFTINEL_TESTBED_FAILOVER_TIMEOUT_MS  failover_timeout_ms (default 10000)
#   RAFTINEL_TESTBED_KEEP  1: `down` keeps the state dir (logs)
#   RAFTINEL_TESTBED_CLIENTS  client hosts c1..cN, 1..9 (default 1); give the
#                          same value to every command
#
# Needs root, iproute2, iptables, util-linux (setsid, flock), redis-server
# and redis-cli; `up` installs the missing ones with apt-get.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROVISION="$REPO/scripts/provision.sh"
STATE="${RAFTINEL_TESTBED_DIR:-/tmp/raftinel-testbed}"
BIN="${RAFTINEL_BIN:-$REPO/target/debug/raftinel}"
DOWN_AFTER_MS="${RAFTINEL_TESTBED_DOWN_AFTER_MS:-1000}"
FAILOVER_TIMEOUT_MS="${RAFTINEL_TESTBED_FAILOVER_TIMEOUT_MS:-10000}"
LOCK="${STATE%/}.lock"
MARKER=".raftinel-testbed"

NET=10.77.0
BR_NS=rt-br
BRIDGE=br0
NODES=(n1 n2 n3)
CLIENTS="${RAFTINEL_TESTBED_CLIENTS:-1}"
[[ "$CLIENTS" =~ ^[1-9]$ ]] || { echo "testbed: RAFTINEL_TESTBED_CLIENTS must be 1..9" >&2; exit 2; }
HOSTS=("${NODES[@]}")
for _c in $(seq "$CLIENTS"); do HOSTS+=("c$_c"); done
REDIS_PORT=6379
PEER_PORT=7000
DISCOVERY_PORT=26379
PEERS="1=$NET.11,2=$NET.12,3=$NET.13"

die() {
    printf 'testbed: ERROR: %s\n' "$*" >&2
    exit 1
}
say() { printf 'testbed: %s\n' "$*"; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

# ------------------------------------------------------------- hosts

# host NAME: the short name (n1) of n1 / rt-n1, or die.
host() {
    local h="${1#rt-}" x
    for x in "${HOSTS[@]}"; do
        if [ "$x" = "$h" ]; then
            echo "$h"
            return 0
        fi
    done
    die "unknown host '$1' (hosts: ${HOSTS[*]})"
}
ns() { echo "rt-$1"; }
ip_of() {
    case "$1" in
    n[1-9]) echo "$NET.1${1#n}" ;;
    c[1-9]) echo "$NET.2${1#c}" ;;
    esac
}
is_node() { [[ "$1" == n* ]]; }
root_of() { echo "$STATE/rt-$1"; }
pidfile() { # HOST redis|daemon
    case "$2" in
    redis) echo "$(root_of "$1")/run/redis-server.pid" ;;
    daemon) echo "$(root_of "$1")/run/raftinel.pid" ;;
    esac
}
logfile() { # HOST redis|daemon
    case "$2" in
    redis) echo "$(root_of "$1")/var/log/redis-server.log" ;;
    daemon) echo "$(root_of "$1")/var/log/raftinel.log" ;;
    esac
}
ns_exists() { [ -e "/run/netns/$1" ]; }

# ------------------------------------------------------------- prerequisites

need_root() {
    [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, iptables): run it as root"
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing $*: install it (no apt-get here)"
    if [ "$APT_UPDATED" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_tools() {
    local missing=()
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    command -v iptables >/dev/null 2>&1 || missing+=(iptables)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    command -v setsid >/dev/null 2>&1 || missing+=(util-linux)
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
    ip netns list >/dev/null 2>&1 || die "'ip netns' does not work here (no network namespace support?)"
}

# The iptables that works inside a namespace: iptables (nft backend on Debian
# 12) or, if nf_tables is unavailable, iptables-legacy. Called directly: the
# system's alternatives are left alone.
IPT=""
ipt_pick() {
    [ -z "$IPT" ] || return 0
    if [ -f "$STATE/iptables" ]; then
        IPT="$(cat "$STATE/iptables")"
        return 0
    fi
    local c
    for c in iptables iptables-legacy; do
        if command -v "$c" >/dev/null 2>&1 && ip netns exec "$BR_NS" "$c" -w -S INPUT >/dev/null 2>&1; then
            IPT="$c"
            echo "$c" >"$STATE/iptables"
            return 0
        fi
    done
    die "neither iptables nor iptables-legacy works inside a namespace"
}
ipt() { # HOST ARGS...
    local h="$1"
    shift
    ipt_pick
    ip netns exec "$(ns "$h")" "$IPT" -w "$@"
}

# ------------------------------------------------------------- lock

# Serialise concurrent invocations. The lock fd is closed for every process
# started in the background (9>&- below), so a daemon never inherits it.
lock() {
    exec 9>"$LOCK"
    flock -w 600 9 || die "another scripts/testbed.sh held $LOCK for 10 minutes"
}

# ------------------------------------------------------------- up

net_up() {
    local h n
    for h in "$BR_NS" "${HOSTS[@]/#/rt-}"; do
        if ! ns_exists "$h"; then ip netns add "$h"; fi
        ip -n "$h" link set lo up
    done
    if ! ip -n "$BR_NS" link show "$BRIDGE" >/dev/null 2>&1; then
        ip -n "$BR_NS" link add "$BRIDGE" type bridge
    fi
    ip -n "$BR_NS" link set "$BRIDGE" up
    for h in "${HOSTS[@]}"; do
        n="$(ns "$h")"
        if ! ip -n "$BR_NS" link show "v-$h" >/dev/null 2>&1; then
            ip -n "$BR_NS" link add "v-$h" type veth peer name eth0 netns "$n"
        fi
        ip -n "$BR_NS" link set "v-$h" master "$BRIDGE" up
        ip -n "$n" addr replace "$(ip_of "$h")/24" dev eth0
        ip -n "$n" link set eth0 up
    done
}

secret_file() { # FILE: 32 random characters, once
    if [ ! -s "$1" ]; then
        (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 32 >"$1" && echo >>"$1")
    fi
}

provision_node() { # HOST
    local h="$1" id="${1#n}" out
    if ! out="$(ip netns exec "$(ns "$h")" "$PROVISION" \
        --root "$(root_of "$h")" --no-systemd --no-packages \
        --node-id "$id" --address "$(ip_of "$h")" --peers "$PEERS" --master-id 1 \
        --peer-secret-file "$STATE/peer.key" --redis-password-file "$STATE/redis.pass" \
        --binary "$BIN" --redis-port "$REDIS_PORT" --peer-port "$PEER_PORT" \
        --discovery-port "$DISCOVERY_PORT" --down-after-ms "$DOWN_AFTER_MS" \
        --failover-timeout-ms "$FAILOVER_TIMEOUT_MS" 2>&1 9>&-)"; then
        printf '%s\n' "$out" >&2
        die "provisioning $h failed"
    fi
    say "$h: $(printf '%s\n' "$out" | tail -n 1)"
}

redis_ping() { # HOST
    [ "$(REDISCLI_AUTH="$(cat "$STATE/redis.pass")" ip netns exec "$(ns "$1")" \
        timeout 2 redis-cli -h "$(ip_of "$1")" -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ]
}

# True if PID exists and is not a zombie (an orphan is reaped by PID 1 only
# when PID 1 gets to it).
pid_running() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

alive() { # HOST redis|daemon
    local f pid
    f="$(pidfile "$1" "$2")"
    [ -f "$f" ] || return 1
    pid="$(cat "$f")"
    [ -n "$pid" ] && pid_running "$pid" && [ "$(ip netns identify "$pid" 2>/dev/null)" = "$(ns "$1")" ]
}

start_one() { # HOST redis|daemon
    local h="$1" what="$2" unit out i
    is_node "$h" || die "$h runs no $what"
    if alive "$h" "$what"; then
        say "$h: $what already running (pid $(cat "$(pidfile "$h" "$what")"))"
        return 0
    fi
    case "$what" in redis) unit=redis-server ;; daemon) unit=raftinel ;; esac
    out="$(ip netns exec "$(ns "$h")" "$PROVISION" run-unit --root "$(root_of "$h")" "$unit" 9>&-)" ||
        die "$h: starting $unit failed"
    say "$h: ${out#run-unit: }"
    if [ "$what" = redis ]; then
        for i in $(seq 100); do
            if redis_ping "$h"; then return 0; fi
            alive "$h" redis || die "$h: redis-server exited (log: $(logfile "$h" redis))"
            [ "$i" -lt 100 ] || die "$h: redis-server does not answer PING after 10 s"
            sleep 0.1
        done
    fi
}

cmd_up() {
    need_root
    need_tools
    [ -x "$BIN" ] || die "no raftinel binary at $BIN (cargo build, or set RAFTINEL_BIN)"
    lock
    if [ -e "$STATE" ] && [ ! -e "$STATE/$MARKER" ]; then
        die "$STATE exists and is not a test bed state dir: remove it or set RAFTINEL_TESTBED_DIR"
    fi
    mkdir -p "$STATE"
    touch "$STATE/$MARKER"
    net_up
    ipt_pick
    say "network: bridge $BRIDGE in $BR_NS; ${HOSTS[*]/#/rt-} on $NET.0/24 (iptables: $IPT)"
    secret_file "$STATE/peer.key"
    secret_file "$STATE/redis.pass"
    local h
    for h in "${NODES[@]}"; do provision_node "$h"; done
    mkdir -p "$(root_of c1)"
    # The client's config: node 1's (status only reads the peers and the secret).
    cp "$(root_of n1)/etc/raftinel/raftinel.toml" "$(root_of c1)/raftinel.toml"
    for h in "${NODES[@]}"; do start_one "$h" redis; done
    for h in "${NODES[@]}"; do start_one "$h" daemon; done
    say "up; client config: $(root_of c1)/raftinel.toml"
    say "try: $0 exec c1 $BIN status --config $(root_of c1)/raftinel.toml"
}

# ------------------------------------------------------------- down

# Every process in our namespaces was started by this test bed.
ns_kill_all() { # NAMESPACE
    local pids pid i
    ns_exists "$1" || return 0
    for i in $(seq 50); do
        pids="$(ip netns pids "$1" 2>/dev/null || true)"
        [ -n "$pids" ] || return 0
        for pid in $pids; do
            if [ "$i" -le 20 ]; then kill -TERM "$pid" 2>/dev/null || true; else kill -KILL "$pid" 2>/dev/null || true; fi
        done
        sleep 0.1
    done
    die "processes left in $1: $(ip netns pids "$1" | tr '\n' ' ')"
}

cmd_down() {
    need_root
    lock
    local h all
    # Every namespace of ours, also clients of an `up` with more of them.
    all="$(ip netns list | awk '{ print $1 }' | grep -E '^rt-(n[1-3]|c[1-9])$' || true)"
    for h in $all; do ns_kill_all "$h"; done
    ns_kill_all "$BR_NS"
    for h in $all "$BR_NS"; do
        if ns_exists "$h"; then ip netns del "$h"; fi
    done
    if [ -e "$STATE/$MARKER" ]; then
        if [ "${RAFTINEL_TESTBED_KEEP:-0}" = 1 ]; then
            say "kept $STATE (RAFTINEL_TESTBED_KEEP=1)"
        else
            rm -rf "$STATE"
        fi
    elif [ -e "$STATE" ]; then
        say "left $STATE alone: not a test bed state dir"
    fi
    say "down"
}

# ------------------------------------------------------------- cut / heal

need_up() {
    need_root
    if ! ns_exists "$BR_NS" || [ ! -e "$STATE/$MARKER" ]; then
        die "the test bed is not up (scripts/testbed.sh up)"
    fi
}

rule() { # HOST -A|-D CHAIN ARGS...: add (once) or delete a DROP rule
    local h="$1" op="$2"
    shift 2
    if [ "$op" = -A ]; then
        ipt "$h" -C "$@" -j DROP 2>/dev/null || ipt "$h" -A "$@" -j DROP
    else
        while ipt "$h" -D "$@" -j DROP 2>/dev/null; do :; done
    fi
}

cmd_cut() {
    need_up
    lock
    local mode="" args=() a
    for a in "$@"; do
        case "$a" in
        --oneway-in | --oneway-out) mode="$a" ;;
        -*) die "cut: unknown option $a" ;;
        *) args+=("$(host "$a")") ;;
        esac
    done
    case "${#args[@]}" in
    1)
        local h="${args[0]}"
        case "$mode" in
        "") ip -n "$BR_NS" link set "v-$h" down ;;
        --oneway-in) rule "$h" -A INPUT -i eth0 ;;
        --oneway-out) rule "$h" -A OUTPUT -o eth0 ;;
        esac
        say "cut $h ${mode:-(link down)}"
        ;;
    2)
        local h1="${args[0]}" h2="${args[1]}" ip2
        [ "$h1" != "$h2" ] || die "cut: $h1 and $h2 are the same host"
        ip2="$(ip_of "$h2")"
        if [ "$mode" != --oneway-out ]; then rule "$h1" -A INPUT -s "$ip2/32"; fi
        if [ "$mode" != --oneway-in ]; then rule "$h1" -A OUTPUT -d "$ip2/32"; fi
        say "cut $h1 <-> $h2 ${mode:-(both ways)}"
        ;;
    *) die "cut HOST [HOST2] [--oneway-in|--oneway-out]" ;;
    esac
}

# Delete the rules of HOST that name ADDRESS.
unrule_addr() { # HOST ADDRESS
    local line rules spec
    rules="$(ipt "$1" -S | grep -F -- " $2/32 " || true)"
    while read -r line; do
        [ -n "$line" ] || continue
        read -ra spec <<<"${line/#-A /-D }"
        ipt "$1" "${spec[@]}" || true
    done <<<"$rules"
}

cmd_heal() {
    need_up
    lock
    local args=() a h
    for a in "$@"; do args+=("$(host "$a")"); done
    case "${#args[@]}" in
    0)
        for h in "${HOSTS[@]}"; do
            ip -n "$BR_NS" link set "v-$h" up
            ipt "$h" -F INPUT
            ipt "$h" -F OUTPUT
        done
        say "healed everything"
        ;;
    1)
        h="${args[0]}"
        ip -n "$BR_NS" link set "v-$h" up
        ipt "$h" -F INPUT
        ipt "$h" -F OUTPUT
        for a in "${HOSTS[@]}"; do
            if [ "$a" != "$h" ]; then unrule_addr "$a" "$(ip_of "$h")"; fi
        done
        say "healed $h"
        ;;
    2)
        unrule_addr "${args[0]}" "$(ip_of "${args[1]}")"
        unrule_addr "${args[1]}" "$(ip_of "${args[0]}")"
        say "healed ${args[0]} <-> ${args[1]}"
        ;;
    *) die "heal [HOST [HOST2]]" ;;
    esac
}

# ------------------------------------------------------------- processes

what_arg() { # ARG DEFAULT
    case "${1:-$2}" in
    redis | redis-server) echo redis ;;
    daemon | raftinel) echo daemon ;;
    all | both) echo all ;;
    *) die "expected redis, daemon or all, got '$1'" ;;
    esac
}

cmd_kill() {
    need_up
    lock
    local h what w pid
    h="$(host "${1:?kill HOST [redis|daemon|all]}")"
    what="$(what_arg "${2:-}" redis)"
    is_node "$h" || die "$h runs nothing to kill"
    for w in redis daemon; do
        [ "$what" = all ] || [ "$what" = "$w" ] || continue
        if alive "$h" "$w"; then
            pid="$(cat "$(pidfile "$h" "$w")")"
            kill -KILL "$pid"
            while pid_running "$pid"; do sleep 0.05; done
            say "$h: killed $w (pid $pid, SIGKILL)"
        else
            say "$h: $w was not running"
        fi
    done
}

cmd_start() {
    need_up
    lock
    local h what
    h="$(host "${1:?start HOST [redis|daemon]}")"
    what="$(what_arg "${2:-}" all)"
    if [ "$what" != daemon ]; then start_one "$h" redis; fi
    if [ "$what" != redis ]; then start_one "$h" daemon; fi
}

cmd_exec() {
    need_up
    local h
    h="$(host "${1:?exec HOST CMD...}")"
    shift
    [ $# -gt 0 ] || die "exec HOST CMD..."
    REDISCLI_AUTH="$(cat "$STATE/redis.pass")" exec ip netns exec "$(ns "$h")" "$@"
}

cmd_logs() {
    need_up
    local h what
    h="$(host "${1:?logs HOST [redis|daemon] [N]}")"
    what="$(what_arg "${2:-}" daemon)"
    [ "$what" != all ] || die "logs HOST redis|daemon"
    tail -n "${3:-50}" "$(logfile "$h" "$what")"
}

cmd_status() {
    need_up
    local h link rules w role
    printf '%-4s %-11s %-5s %-8s %-8s %-28s %s\n' host address link redis daemon "redis role" "cuts (iptables in the host)"
    for h in "${HOSTS[@]}"; do
        link="$(ip -n "$BR_NS" -o link show "v-$h" 2>/dev/null | grep -q 'state UP' && echo up || echo DOWN)"
        rules="$(ipt "$h" -S 2>/dev/null | grep '^-A' | sed 's/^-A //; s/ -j DROP//' | paste -sd';' - || true)"
        local st=()
        for w in redis daemon; do
            if ! is_node "$h"; then st+=(-); elif alive "$h" "$w"; then st+=(running); else st+=(stopped); fi
        done
        role=-
        if is_node "$h" && [ "${st[0]}" = running ]; then
            role="$(REDISCLI_AUTH="$(cat "$STATE/redis.pass")" ip netns exec "$(ns "$h")" timeout 2 \
                redis-cli -h "$(ip_of "$h")" INFO replication 2>/dev/null | tr -d '\r' | awk -F: '
                $1 == "role" { r = $2 } $1 == "master_host" { m = $2 } $1 == "master_link_status" { l = $2 }
                END { if (r == "slave") print "slave of " m " (" l ")"; else print (r == "" ? "?" : r) }')"
        fi
        printf '%-4s %-11s %-5s %-8s %-8s %-28s %s\n' "$h" "$(ip_of "$h")" "$link" "${st[0]}" "${st[1]}" "$role" "${rules:--}"
    done
    echo
    ip netns exec rt-c1 "$BIN" status --config "$(root_of c1)/raftinel.toml" --timeout-ms 1000 || true
}

# ------------------------------------------------------------- main

cmd="${1:-}"
[ $# -eq 0 ] || shift
case "$cmd" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
cut) cmd_cut "$@" ;;
heal) cmd_heal "$@" ;;
kill) cmd_kill "$@" ;;
start) cmd_start "$@" ;;
exec) cmd_exec "$@" ;;
logs) cmd_logs "$@" ;;
-h | --help | help) usage ;;
"") usage >&2; exit 2 ;;
*) printf 'testbed: unknown command %s\n\n' "$cmd" >&2; usage >&2; exit 2 ;;
esac
