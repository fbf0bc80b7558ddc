#!/usr/bin/env bash
# Provision one raftinel node: redis-server from the distribution, its config,
# the raftinel binary, user, data dir, secrets, /etc/raftinel/raftinel.toml and
# the systemd units. Idempotent: every step prints "changed" or "unchanged"
# (or "skipped"), and a second run with the same arguments changes nothing.
# The operator's guide is docs/deploy.md.
#
# Usage:
#   scripts/provision.sh [OPTIONS]              provision this machine (root)
#   scripts/provision.sh run-unit --root DIR UNIT
#       start UNIT (raftinel or redis-server) of a --root install without
#       systemd: its ExecStartPre lines, then ExecStart in the background
#       (pid in DIR/run/UNIT.pid, output in DIR/var/log/UNIT.log)
#
# Options (each also read from the environment variable named in brackets):
#   --node-id N              this node's id [RAFTINEL_NODE_ID]
#   --address IP             this node's address: redis binds to it, the
#                            daemon listens on it [RAFTINEL_ADDRESS]
#   --peers LIST             every node as id=ip, comma separated, the same on
#                            every node: 1=10.0.0.11,2=10.0.0.12,3=10.0.0.13
#                            [RAFTINEL_PEERS]
#   --master-id N            the node whose redis is the master at first start
#                            (default 1) [RAFTINEL_MASTER_ID]
#   --peer-secret-file F     file holding the shared peer secret (>= 16 bytes);
#                            copied to /etc/raftinel/peer.key, mode 0600
#                            [RAFTINEL_PEER_SECRET_FILE]
#   --redis-password-file F  file holding the Redis password (requirepass and
#                            masterauth); copied to /etc/raftinel/redis.pass,
#                            mode 0600 [RAFTINEL_REDIS_PASSWORD_FILE]
#   --binary F               the raftinel binary to install (default
#                            target/release/raftinel of this repo) [RAFTINEL_BIN]
#   --group NAME             group name (default mymaster) [RAFTINEL_GROUP]
#   --redis-port P           default 6379 [RAFTINEL_REDIS_PORT]
#   --peer-port P            default 7000 [RAFTINEL_PEER_PORT]
#   --discovery-port P       Sentinel-compatible port, default 26379
#                            [RAFTINEL_DISCOVERY_PORT]
#   --down-after-ms MS       default 5000 [RAFTINEL_DOWN_AFTER_MS]
#   --failover-timeout-ms MS default 60000 [RAFTINEL_FAILOVER_TIMEOUT_MS]
#   --quorum N               default: a majority of the peers [RAFTINEL_QUORUM]
#   --root DIR               write everything under DIR instead of / (paths
#                            inside the written files point under DIR too); no
#                            user is created and nothing is chown'ed. Implies
#                            --no-systemd. For tests and the network test bed.
#   --no-systemd             do not run systemctl (units are still written)
#   --start                  with --no-systemd: start redis-server and the
#                            daemon directly (see run-unit) unless running
#   --no-packages            do not apt-get install (fail if redis is missing)
#
# Secrets never appear in the output. Exit status: 0 on success, 1 on a failed
# step, 2 on bad arguments.
set -euo pipefail
# `... | put_file` must count its step in this shell, not in a subshell.
shopt -s lastpipe

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$REPO/deploy"

die() {
    printf 'provision: ERROR: %s\n' "$*" >&2
    exit 1
}
usage_error() {
    printf 'provision: %s (see the header of %s)\n' "$*" "${BASH_SOURCE[0]}" >&2
    exit 2
}

# ------------------------------------------------------------- run-unit

# The ExecStartPre/ExecStart/Environment lines of a unit and its drop-ins, in
# systemd's order; an empty "ExecStart=" resets ExecStart as systemd does.
unit_lines() {
    local root="$1" unit="$2" f
    local files=()
    [ -f "$root/etc/systemd/system/$unit.service" ] && files+=("$root/etc/systemd/system/$unit.service")
    for f in "$root/etc/systemd/system/$unit.service.d/"*.conf; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || die "no unit $unit.service under $root/etc/systemd/system"
    cat "${files[@]}" | awk '
        /^ExecStart=$/ { n = 0; next }
        /^ExecStart=/ { start[++n] = $0; next }
        /^ExecStartPre=/ || /^Environment=/ { print }
        END { if (n > 0) print start[n] }'
}

# True if the pid in FILE is alive and runs EXE.
pid_alive() {
    local file="$1" exe="$2" pid
    [ -f "$file" ] || return 1
    pid=$(cat "$file" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$exe")" ]
}

run_unit() {
    local root="" unit=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --root) root="${2:?--root needs a directory}"; shift 2 ;;
        -*) usage_error "run-unit: unknown option $1" ;;
        *) unit="$1"; shift ;;
        esac
    done
    [ -n "$root" ] || usage_error "run-unit needs --root DIR"
    case "$unit" in raftinel | redis-server) ;; *) usage_error "run-unit: UNIT is raftinel or redis-server" ;; esac
    root="$(cd "$root" && pwd)"
    local pidfile="$root/run/$unit.pid" log="$root/var/log/$unit.log"
    mkdir -p "$root/run" "$root/var/log"
    local line cmd exe ignore argv=()
    local envs=() pre=()
    while IFS= read -r line; do
        case "$line" in
        Environment=*) read -ra argv <<<"${line#Environment=}"; envs+=("${argv[@]}") ;;
        ExecStartPre=*) pre+=("${line#ExecStartPre=}") ;;
        ExecStart=*) cmd="${line#ExecStart=}" ;;
        esac
    done < <(unit_lines "$root" "$unit")
    [ -n "${cmd:-}" ] || die "$unit.service has no ExecStart"
    read -ra argv <<<"$cmd"
    exe="${argv[0]#[-+!@:]}"
    if pid_alive "$pidfile" "$exe"; then
        echo "run-unit: $unit already running (pid $(cat "$pidfile"))"
        return 0
    fi
    for line in "${pre[@]}"; do
        ignore=0
        case "$line" in -*) ignore=1 ;; esac
        read -ra argv <<<"$line"
        argv[0]="${argv[0]#[-+!@:]}"
        argv[0]="${argv[0]#[-+!@:]}"
        echo "run-unit: $unit: ExecStartPre ${argv[*]}" >>"$log"
        if ! env "${envs[@]}" "${argv[@]}" >>"$log" 2>&1 </dev/null; then
            if [ "$ignore" = 0 ]; then
                tail -n 20 "$log" >&2
                die "$unit: ExecStartPre failed: ${argv[*]} (log: $log)"
            fi
        fi
    done
    read -ra argv <<<"$cmd"
    argv[0]="$exe"
    echo "run-unit: $unit: ExecStart ${argv[*]}" >>"$log"
    # setsid: the process outlives this script and the caller's session.
    setsid env "${envs[@]}" "${argv[@]}" >>"$log" 2>&1 </dev/null &
    echo "$!" >"$pidfile"
    sleep 0.3
    if ! pid_alive "$pidfile" "$exe"; then
        tail -n 20 "$log" >&2
        die "$unit exited at once (log: $log)"
    fi
    echo "run-unit: $unit started (pid $(cat "$pidfile"), log $log)"
}

if [ "${1:-}" = run-unit ]; then
    shift
    run_unit "$@"
    exit 0
fi

# ------------------------------------------------------------- arguments

NODE_ID="${RAFTINEL_NODE_ID:-}"
ADDRESS="${RAFTINEL_ADDRESS:-}"
PEERS="${RAFTINEL_PEERS:-}"
MASTER_ID="${RAFTINEL_MASTER_ID:-1}"
PEER_SECRET_SRC="${RAFTINEL_PEER_SECRET_FILE:-}"
REDIS_PASS_SRC="${RAFTINEL_REDIS_PASSWORD_FILE:-}"
BINARY="${RAFTINEL_BIN:-$REPO/target/release/raftinel}"
GROUP="${RAFTINEL_GROUP:-mymaster}"
REDIS_PORT="${RAFTINEL_REDIS_PORT:-6379}"
PEER_PORT="${RAFTINEL_PEER_PORT:-7000}"
DISCOVERY_PORT="${RAFTINEL_DISCOVERY_PORT:-26379}"
DOWN_AFTER_MS="${RAFTINEL_DOWN_AFTER_MS:-5000}"
FAILOVER_TIMEOUT_MS="${RAFTINEL_FAILOVER_TIMEOUT_MS:-60000}"
QUORUM="${RAFTINEL_QUORUM:-}"
ROOT=""
SYSTEMD=1
START=0
PACKAGES=1

while [ $# -gt 0 ]; do
    opt="$1"
    case "$opt" in
    --no-systemd) SYSTEMD=0; shift; continue ;;
    --start) START=1; shift; continue ;;
    --no-packages) PACKAGES=0; shift; continue ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    esac
    [ $# -ge 2 ] || usage_error "$opt needs a value"
    val="$2"
    shift 2
    case "$opt" in
    --node-id) NODE_ID="$val" ;;
    --address) ADDRESS="$val" ;;
    --peers) PEERS="$val" ;;
    --master-id) MASTER_ID="$val" ;;
    --peer-secret-file) PEER_SECRET_SRC="$val" ;;
    --redis-password-file) REDIS_PASS_SRC="$val" ;;
    --binary) BINARY="$val" ;;
    --group) GROUP="$val" ;;
    --redis-port) REDIS_PORT="$val" ;;
    --peer-port) PEER_PORT="$val" ;;
    --discovery-port) DISCOVERY_PORT="$val" ;;
    --down-after-ms) DOWN_AFTER_MS="$val" ;;
    --failover-timeout-ms) FAILOVER_TIMEOUT_MS="$val" ;;
    --quorum) QUORUM="$val" ;;
    --root) ROOT="$val" ;;
    *) usage_error "unknown option $opt" ;;
    esac
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_ipv4() { [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; }

if ! is_uint "$NODE_ID" || [ "$NODE_ID" -eq 0 ]; then
    usage_error "--node-id must be a positive integer (got '${NODE_ID}')"
fi
is_ipv4 "$ADDRESS" || usage_error "--address must be this node's IPv4 address (got '${ADDRESS}')"
for v in MASTER_ID REDIS_PORT PEER_PORT DISCOVERY_PORT DOWN_AFTER_MS FAILOVER_TIMEOUT_MS; do
    is_uint "${!v}" || usage_error "$v must be a number (got '${!v}')"
done
[[ "$GROUP" =~ ^[A-Za-z0-9._-]+$ ]] || usage_error "--group: letters, digits, . _ - only"

# --peers: ids and addresses, in the order given.
PEER_IDS=()
PEER_IPS=()
IFS=',' read -ra _peers <<<"$PEERS"
for p in "${_peers[@]}"; do
    id="${p%%=*}"
    ip="${p#*=}"
    if ! is_uint "$id" || ! is_ipv4 "$ip" || [ "$id" = "$p" ]; then
        usage_error "--peers: '$p' is not id=ip"
    fi
    PEER_IDS+=("$id")
    PEER_IPS+=("$ip")
done
[ "${#PEER_IDS[@]}" -gt 0 ] || usage_error "--peers is required (1=ip,2=ip,3=ip)"
MY_IP="" MASTER_IP=""
for i in "${!PEER_IDS[@]}"; do
    [ "${PEER_IDS[$i]}" = "$NODE_ID" ] && MY_IP="${PEER_IPS[$i]}"
    [ "${PEER_IDS[$i]}" = "$MASTER_ID" ] && MASTER_IP="${PEER_IPS[$i]}"
done
[ -n "$MY_IP" ] || usage_error "--node-id $NODE_ID is not in --peers"
[ "$MY_IP" = "$ADDRESS" ] || usage_error "--peers gives node $NODE_ID the address $MY_IP, --address says $ADDRESS"
[ -n "$MASTER_IP" ] || usage_error "--master-id $MASTER_ID is not in --peers"
if [ -z "$QUORUM" ]; then QUORUM=$((${#PEER_IDS[@]} / 2 + 1)); fi
is_uint "$QUORUM" || usage_error "--quorum must be a number"

if [ -n "$ROOT" ]; then
    SYSTEMD=0
    mkdir -p "$ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
    [ "$ROOT" != / ] || usage_error "--root / : omit --root to provision this machine"
elif [ "$(id -u)" -ne 0 ]; then
    die "provisioning this machine needs root (or use --root DIR)"
fi
[ "$START" = 0 ] || [ "$SYSTEMD" = 0 ] || usage_error "--start is for --no-systemd (systemd starts the units)"
[ -x "$BINARY" ] || die "no raftinel binary at $BINARY (build it: cargo build --release, or pass --binary)"

# Installed paths (under ROOT in --root mode).
BIN_PATH="$ROOT/usr/local/bin/raftinel"
ETC="$ROOT/etc/raftinel"
CONF="$ETC/raftinel.toml"
PEER_KEY="$ETC/peer.key"
REDIS_PASS="$ETC/redis.pass"
DATA="$ROOT/var/lib/raftinel"
REDIS_ETC="$ROOT/etc/redis"
REDIS_CONF="$REDIS_ETC/redis.conf"
REDIS_DIR="$ROOT/var/lib/redis"
UNIT_DIR="$ROOT/etc/systemd/system"
SYSCTL="$ROOT/etc/sysctl.d/60-raftinel-redis.conf"

# ------------------------------------------------------------- step helpers

CHANGED=0
UNCHANGED=0
CHANGED_WHAT=()
report() { # STATUS WHAT
    printf '  %-9s %s\n' "$1" "$2"
    case "$1" in
    changed) CHANGED=$((CHANGED + 1)); CHANGED_WHAT+=("$2") ;;
    *) UNCHANGED=$((UNCHANGED + 1)) ;;
    esac
}
was_changed() { # WHAT-prefix: true if a step starting with it changed
    local w
    for w in "${CHANGED_WHAT[@]}"; do
        case "$w" in "$1"*) return 0 ;; esac
    done
    return 1
}

# chown only when provisioning the machine itself.
own() { # USER:GROUP PATH
    if [ -z "$ROOT" ]; then chown "$1" "$2"; fi
}
owner_ok() { # USER:GROUP PATH
    [ -n "$ROOT" ] || [ "$(stat -c %U:%G "$2")" = "$1" ]
}

# put_file DEST MODE OWNER WHAT: install stdin as DEST unless identical
# (content, mode and owner).
put_file() {
    local dest="$1" mode="$2" owner="$3" what="$4" tmp
    tmp="$(mktemp "$(dirname "$dest")/.provision.XXXXXX")"
    cat >"$tmp"
    if [ -f "$dest" ] && cmp -s "$tmp" "$dest" &&
        [ "$(stat -c %a "$dest")" = "${mode#0}" ] && owner_ok "$owner" "$dest"; then
        rm -f "$tmp"
        report unchanged "$what ($dest)"
        return 0
    fi
    chmod "$mode" "$tmp"
    own "$owner" "$tmp"
    mv -f "$tmp" "$dest"
    report changed "$what ($dest)"
}

# put_dir DIR MODE OWNER WHAT
put_dir() {
    local dir="$1" mode="$2" owner="$3" what="$4"
    if [ -d "$dir" ] && [ "$(stat -c %a "$dir")" = "${mode#0}" ] && owner_ok "$owner" "$dir"; then
        report unchanged "$what ($dir)"
        return 0
    fi
    mkdir -p "$dir"
    chmod "$mode" "$dir"
    own "$owner" "$dir"
    report changed "$what ($dir)"
}

# Installed paths in a deploy/ file: rewritten only in --root mode.
reroot() {
    if [ -z "$ROOT" ]; then
        cat
    else
        sed -e "s#/usr/local/bin/raftinel#$ROOT/usr/local/bin/raftinel#g" \
            -e "s#/etc/raftinel/#$ROOT/etc/raftinel/#g" \
            -e "s#/var/lib/raftinel#$ROOT/var/lib/raftinel#g" \
            -e "s#/etc/redis/#$ROOT/etc/redis/#g"
    fi
}

# A secret from a source file: one line, no whitespace or quotes (it also goes
# into redis.conf), at least 16 bytes.
read_secret() { # FILE WHAT
    local s
    [ -r "$1" ] || die "$2: cannot read $1"
    s="$(head -n 1 "$1")"
    [ "${#s}" -ge 16 ] || die "$2 in $1 is shorter than 16 bytes"
    [[ "$s" =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "$2 in $1: use letters, digits and . _ ~ + / = - only"
    printf '%s\n' "$s"
}

RAFTINEL_OWNER=raftinel:raftinel
CONF_OWNER=root:raftinel
REDIS_OWNER=redis:redis
if [ -n "$ROOT" ]; then
    RAFTINEL_OWNER="$(id -un):$(id -gn)"
    CONF_OWNER="$RAFTINEL_OWNER"
    REDIS_OWNER="$RAFTINEL_OWNER"
fi

echo "provision: node $NODE_ID ($ADDRESS), group $GROUP, master at first start: node $MASTER_ID ($MASTER_IP)${ROOT:+, under $ROOT}"

# ------------------------------------------------------------- 1. packages

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    report unchanged "packages redis-server redis-tools"
elif [ "$PACKAGES" = 0 ]; then
    die "redis-server or redis-cli missing and --no-packages given"
else
    command -v apt-get >/dev/null 2>&1 || die "redis-server missing and no apt-get: install redis (>= 6.2) by hand"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold redis-server redis-tools >/dev/null
    report changed "packages redis-server redis-tools"
fi

# ------------------------------------------------------------- 2. user

if [ -n "$ROOT" ]; then
    report skipped "system user raftinel (--root: files belong to $(id -un))"
elif getent passwd raftinel >/dev/null; then
    report unchanged "system user raftinel"
else
    useradd --system --user-group --home-dir /var/lib/raftinel --no-create-home \
        --shell /usr/sbin/nologin --comment "raftinel daemon" raftinel
    report changed "system user raftinel"
fi

# ------------------------------------------------------------- 3. directories

mkdir -p "$ROOT/usr/local/bin" "$UNIT_DIR/redis-server.service.d" "$ROOT/etc/sysctl.d"
put_dir "$ETC" 0750 "$CONF_OWNER" "config directory"
put_dir "$DATA" 0700 "$RAFTINEL_OWNER" "data directory"
if [ -n "$ROOT" ]; then
    put_dir "$REDIS_ETC" 0750 "$REDIS_OWNER" "redis config directory"
    put_dir "$REDIS_DIR" 0750 "$REDIS_OWNER" "redis data directory"
    mkdir -p "$ROOT/run" "$ROOT/var/log"
fi

# ------------------------------------------------------------- 4. binary

put_file "$BIN_PATH" 0755 root:root "raftinel binary" <"$BINARY"

# ------------------------------------------------------------- 5. secrets

if [ -n "$PEER_SECRET_SRC" ]; then
    secret="$(read_secret "$PEER_SECRET_SRC" "peer secret")"
    printf '%s\n' "$secret" | put_file "$PEER_KEY" 0600 "$RAFTINEL_OWNER" "peer secret"
elif [ -f "$PEER_KEY" ]; then
    report unchanged "peer secret ($PEER_KEY, kept: no --peer-secret-file)"
else
    usage_error "--peer-secret-file is required on the first run (the same secret on every node)"
fi
if [ -n "$REDIS_PASS_SRC" ]; then
    secret="$(read_secret "$REDIS_PASS_SRC" "redis password")"
    printf '%s\n' "$secret" | put_file "$REDIS_PASS" 0600 "$RAFTINEL_OWNER" "redis password"
elif [ -f "$REDIS_PASS" ]; then
    report unchanged "redis password ($REDIS_PASS, kept: no --redis-password-file)"
else
    usage_error "--redis-password-file is required on the first run (the same password on every node)"
fi
REDIS_PASSWORD="$(head -n 1 "$REDIS_PASS")"

# ------------------------------------------------------------- 6. raftinel.toml

base_config() {
    echo "# $CONF: written by scripts/provision.sh (docs/deploy.md)."
    echo "# Change it by running provision.sh again with new arguments, on every node."
    echo "node_id = $NODE_ID"
    echo "data_dir = \"$DATA\""
    echo "peer_listen = \"$ADDRESS:$PEER_PORT\""
    echo "local_redis = \"$ADDRESS:$REDIS_PORT\""
    echo "log_level = \"info,raft_rs=warn\""
    echo "peer_secret_file = \"$PEER_KEY\""
    echo "@TOP_LEVEL@"
    echo
    echo "[redis]"
    echo "password_file = \"$REDIS_PASS\""
    local i replicas=()
    for i in "${!PEER_IDS[@]}"; do
        echo
        echo "[[peer]]"
        echo "id = ${PEER_IDS[$i]}"
        echo "addr = \"${PEER_IPS[$i]}:$PEER_PORT\""
        if [ "${PEER_IDS[$i]}" != "$MASTER_ID" ]; then replicas+=("\"${PEER_IPS[$i]}:$REDIS_PORT\""); fi
    done
    echo
    echo "[[group]]"
    echo "name = \"$GROUP\""
    echo "master = \"$MASTER_IP:$REDIS_PORT\""
    local list
    list="$(printf '%s, ' "${replicas[@]}")"
    echo "replicas = [${list%, }]"
    echo "down_after_ms = $DOWN_AFTER_MS"
    echo "failover_timeout_ms = $FAILOVER_TIMEOUT_MS"
    echo "quorum = $QUORUM"
    echo "parallel_syncs = 1"
}

# The discovery (Sentinel-compatible) port is configured with the spelling the
# installed binary accepts; a binary without it gets no discovery key.
checks_ok() { # FILE
    "$BIN_PATH" check-config --config "$1" >/dev/null 2>&1
}
CONF_TMP="$(mktemp "$ETC/.candidate.XXXXXX.toml")"
trap 'rm -f "$CONF_TMP"' EXIT
DISCOVERY_NOTE=""
for variant in table top none; do
    case "$variant" in
    table)
        base_config | sed '/^@TOP_LEVEL@$/d' >"$CONF_TMP"
        printf '\n[discovery]\nlisten = "%s:%s"\n' "$ADDRESS" "$DISCOVERY_PORT" >>"$CONF_TMP"
        ;;
    top) base_config | sed "s/^@TOP_LEVEL@\$/discovery_listen = \"$ADDRESS:$DISCOVERY_PORT\"/" >"$CONF_TMP" ;;
    none) base_config | sed '/^@TOP_LEVEL@$/d' >"$CONF_TMP" ;;
    esac
    if checks_ok "$CONF_TMP"; then
        DISCOVERY_NOTE="$variant"
        break
    fi
done
if [ -z "$DISCOVERY_NOTE" ]; then
    "$BIN_PATH" check-config --config "$CONF_TMP" >&2 || true
    die "the generated config is rejected by '$BIN_PATH check-config' (above)"
fi
put_file "$CONF" 0640 "$CONF_OWNER" "raftinel config" <"$CONF_TMP"
rm -f "$CONF_TMP"
case "$DISCOVERY_NOTE" in
table) echo "            discovery port $ADDRESS:$DISCOVERY_PORT ([discovery] listen)" ;;
top) echo "            discovery port $ADDRESS:$DISCOVERY_PORT (discovery_listen)" ;;
none) echo "            note: this raftinel binary accepts no discovery key known to this script: its default applies" ;;
esac

# ------------------------------------------------------------- 7. redis.conf

# The keys below are enforced line by line on every run; the rest of the file
# belongs to Redis (CONFIG REWRITE). `replicaof` is written only on the first
# run, below the marker: after that the cluster owns the role (raftinel's
# REPLICAOF + CONFIG REWRITE, and the restart guard).
MARKER="# raftinel: provisioned by scripts/provision.sh; managed keys: bind port protected-mode requirepass masterauth appendonly dir"
REDIS_KEYS=(bind port protected-mode requirepass masterauth appendonly dir)
REDIS_VALS=("$ADDRESS" "$REDIS_PORT" yes "$REDIS_PASSWORD" "$REDIS_PASSWORD" yes "$REDIS_DIR")

if [ ! -f "$REDIS_CONF" ]; then
    if [ -n "$ROOT" ]; then
        # A --root install has no package config: start from a small one.
        {
            echo "# Base redis.conf of a --root install (scripts/provision.sh)."
            echo "daemonize no"
            echo "logfile \"\""
            echo "save \"\""
            echo "repl-diskless-sync-delay 0"
        } >"$REDIS_CONF"
        chmod 0640 "$REDIS_CONF"
    else
        die "$REDIS_CONF is missing: is redis-server installed?"
    fi
fi
REDIS_NEW="$(mktemp "$REDIS_ETC/.provision.XXXXXX")"
trap 'rm -f "$CONF_TMP" "$REDIS_NEW"' EXIT
kv=()
for i in "${!REDIS_KEYS[@]}"; do kv+=("${REDIS_KEYS[$i]}" "${REDIS_VALS[$i]}"); done
ROLE_LINE=""
if [ "$NODE_ID" != "$MASTER_ID" ]; then ROLE_LINE="replicaof $MASTER_IP $REDIS_PORT"; fi
awk -v marker="$MARKER" -v role="$ROLE_LINE" '
    BEGIN {
        for (i = 1; i < ARGC; i += 2) { want[ARGV[i]] = ARGV[i + 1]; order[++n] = ARGV[i] }
        ARGC = 1
    }
    function unquote(s) { gsub(/^"|"$/, "", s); return s }
    $0 == marker { seen_marker = 1 }
    {
        key = tolower($1)
        if (($0 !~ /^[ \t]*#/) && (key in want)) {
            if (key in done) next                  # a duplicate of a managed key
            done[key] = 1
            v = $0; sub(/^[ \t]*[^ \t]+[ \t]+/, "", v)
            if (unquote(v) == want[key]) { print; next }
            print key " " want[key]; next
        }
        print
    }
    END {
        if (!seen_marker) { print ""; print marker }
        for (i = 1; i <= n; i++) if (!(order[i] in done)) print order[i] " " want[order[i]]
        if (!seen_marker && role != "") print role
    }' "${kv[@]}" <"$REDIS_CONF" >"$REDIS_NEW"
if cmp -s "$REDIS_NEW" "$REDIS_CONF" && [ "$(stat -c %a "$REDIS_CONF")" = 640 ] && owner_ok "$REDIS_OWNER" "$REDIS_CONF"; then
    rm -f "$REDIS_NEW"
    report unchanged "redis config ($REDIS_CONF)"
else
    if [ -z "$ROOT" ] && [ ! -f "$REDIS_CONF.orig" ]; then cp -p "$REDIS_CONF" "$REDIS_CONF.orig"; fi
    chmod 0640 "$REDIS_NEW"
    own "$REDIS_OWNER" "$REDIS_NEW"
    mv -f "$REDIS_NEW" "$REDIS_CONF"
    report changed "redis config ($REDIS_CONF)"
fi

# ------------------------------------------------------------- 8. units, sysctl

reroot <"$DEPLOY/raftinel.service" | put_file "$UNIT_DIR/raftinel.service" 0644 root:root "unit raftinel.service"
if "$BIN_PATH" guard --help >/dev/null 2>&1; then
    reroot <"$DEPLOY/redis-server.service.d/raftinel.conf"
else
    echo "            note: this raftinel binary has no 'guard' subcommand: redis starts without the restart guard" >&2
    reroot <"$DEPLOY/redis-server.service.d/raftinel.conf" | grep -v '^ExecStartPre=.* guard '
fi | put_file "$UNIT_DIR/redis-server.service.d/raftinel.conf" 0644 root:root "unit drop-in redis-server.service.d/raftinel.conf"
put_file "$SYSCTL" 0644 root:root "sysctl vm.overcommit_memory" <"$DEPLOY/sysctl-raftinel-redis.conf"

# ------------------------------------------------------------- 9. services

if [ "$SYSTEMD" = 1 ]; then
    if was_changed "sysctl"; then sysctl -q -p "$SYSCTL" || echo "            note: sysctl -p $SYSCTL failed" >&2; fi
    if was_changed "unit"; then systemctl daemon-reload; fi
    for unit in redis-server raftinel; do
        if systemctl is-enabled --quiet "$unit.service"; then
            report unchanged "enable $unit.service"
        else
            systemctl enable --quiet "$unit.service"
            report changed "enable $unit.service"
        fi
    done
    # Restart what changed (redis first); start what is not running.
    if was_changed "redis" || was_changed "unit drop-in" || ! systemctl is-active --quiet redis-server.service; then
        systemctl restart redis-server.service
        report changed "restart redis-server.service"
    else
        report unchanged "redis-server.service running"
    fi
    if was_changed "raftinel" || was_changed "peer secret" || was_changed "unit raftinel" ||
        ! systemctl is-active --quiet raftinel.service; then
        systemctl restart raftinel.service
        report changed "restart raftinel.service"
    else
        report unchanged "raftinel.service running"
    fi
elif [ "$START" = 1 ]; then
    for unit in redis-server raftinel; do
        out="$("$SELF" run-unit --root "${ROOT:-/}" "$unit")"
        case "$out" in
        *"already running"*) report unchanged "$unit running (no systemd)" ;;
        *) report changed "start $unit (no systemd): ${out#run-unit: }" ;;
        esac
    done
else
    report skipped "systemd (--no-systemd): units written, not enabled or started"
fi

echo "provision: $CHANGED changed, $UNCHANGED unchanged"
