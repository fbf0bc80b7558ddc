#!/usr/bin/env python3
"""Workload programs of the chaos checker (scripts/chaos.sh, docs/chaos.md).

Each subcommand runs inside one test-bed host (`ip netns exec rt-XX`), writes
what it observes to files in the scenario's output directory, and stops on
SIGTERM (after flushing). Timestamps are wall-clock milliseconds
(time.time()): every namespace shares the machine's clock, so the files of
different hosts can be merged.

produce    The seeds' logging workload. `RPUSH logs_queue <unique id>` through
           redis-py's Sentinel client pointed at the daemons' Sentinel-
           compatible ports (master_for). Any error (timeout, refused,
           READONLY, NOREPLICAS, no master known) drops the pool's
           connections, so the next write asks the daemons again: that is the
           retry. Every acknowledged write is one line of the ack file:
           `id t_send_ms t_ack_ms master_addr`.

aggregate  Moves entries out of logs_queue into aggregated_logs.txt, in
           batches, through the same Sentinel client. The move is a reliable
           pop: a Lua script LMOVEs up to N entries from logs_queue to
           logs_aggregating and returns them; they are appended (and flushed)
           to the file; then LREM removes them from logs_aggregating. A reply
           lost in a partition therefore never drops an entry: it stays in
           logs_aggregating, which the final check reads too. (A plain
           BLPOP/LPOP whose reply is lost would lose the entry on the client
           side and make the checker blame the failover for it.)

poll       The role poller of one Redis (the host's own instance, which stays
           reachable from its host during a cut). Every ~20 ms one pipeline:
           ROLE, then `SET __chaos_probe <t>` in DB 15 (a dedicated key in a
           dedicated DB, never the workload's data). One line per sample:
           `t_send_ms t_reply_ms role writable detail`. writable is 1 only
           when the SET was acknowledged: a fenced master answers NOREPLICAS,
           a replica READONLY.

monitor    From a client host, every ~200 ms: `raftinel status --json` (every
           daemon's own view) and INFO replication of every Redis. One JSON
           line per sample; the orchestrator evaluates convergence from it.

final      Reads logs_queue and logs_aggregating on a given master (one entry
           per line, to stdout).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

KEY = "logs_queue"
AGG_KEY = "logs_aggregating"
PROBE_KEY = "__chaos_probe"
PROBE_DB = 15

STOP = threading.Event()


def on_signal(_sig, _frame):
    STOP.set()


def install_signals():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def now_ms():
    return time.time() * 1000.0


def password(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


def no_retry():
    return Retry(NoBackoff(), 0)


def sentinel_master(args, pw, socket_timeout):
    sentinels = [split_addr(a) for a in args.sentinels.split(",")]
    sen = Sentinel(
        sentinels,
        sentinel_kwargs={
            "socket_timeout": args.sentinel_timeout,
            "socket_connect_timeout": args.sentinel_timeout,
            "retry": no_retry(),
        },
    )
    return sen.master_for(
        args.group,
        socket_timeout=socket_timeout,
        socket_connect_timeout=args.connect_timeout,
        password=pw,
        retry=no_retry(),
    )


def master_addr(client):
    addr = getattr(client.connection_pool, "master_address", None)
    if addr:
        return f"{addr[0]}:{addr[1]}"
    return "?"


def reset(client):
    try:
        client.connection_pool.disconnect()
    except Exception:  # pylint: disable=broad-except
        pass


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="utf-8") if path else sys.stderr

    def say(self, msg):
        self.f.write(f"{now_ms():.0f} {msg}\n")


def short_err(e):
    text = str(e).replace("\n", " ")
    return f"{type(e).__name__}: {text[:120]}"


# ------------------------------------------------------------------ produce


def produce(args):
    install_signals()
    pw = password(args.password_file)
    client = sentinel_master(args, pw, args.socket_timeout)
    acks = open(args.acks, "a", encoding="ascii")
    log = Log(args.log)
    interval = args.interval_ms / 1000.0
    seq, acked, failed = 0, 0, 0
    last_err, last_master = None, None
    log.say(f"producer {args.name} starting")
    last_flush = time.monotonic()
    while not STOP.is_set():
        seq += 1
        ident = f"{args.name}-{seq}"
        t_send = now_ms()
        try:
            client.rpush(KEY, ident)
        except Exception as e:  # pylint: disable=broad-except
            failed += 1
            err = short_err(e)
            if err != last_err:
                log.say(f"write {ident} failed: {err}")
                last_err = err
            reset(client)
            last_master = None
            STOP.wait(args.retry_ms / 1000.0)
            continue
        t_ack = now_ms()
        m = master_addr(client)
        if m != last_master:
            log.say(f"writing to {m}")
            last_master, last_err = m, None
        acked += 1
        acks.write(f"{ident} {t_send:.1f} {t_ack:.1f} {m}\n")
        if time.monotonic() - last_flush > 0.2:
            acks.flush()
            last_flush = time.monotonic()
        if interval > 0:
            STOP.wait(interval)
    acks.flush()
    acks.close()
    log.say(f"producer {args.name} stopping: {acked} acked, {failed} failed, last seq {seq}")
    return 0


# ------------------------------------------------------------------ aggregate

MOVE_LUA = """
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not v then break end
  out[#out + 1] = v
end
return out
"""


def aggregate(args):
    install_signals()
    pw = password(args.password_file)
    client = sentinel_master(args, pw, args.socket_timeout)
    out = open(args.out, "a", encoding="utf-8")
    log = Log(args.log)
    moved, last_err = 0, None
    log.say("aggregator starting")
    while not STOP.is_set():
        try:
            batch = client.eval(MOVE_LUA, 2, KEY, AGG_KEY, args.batch)
        except Exception as e:  # pylint: disable=broad-except
            err = short_err(e)
            if err != last_err:
                log.say(f"move failed: {err}")
                last_err = err
            reset(client)
            STOP.wait(args.retry_ms / 1000.0)
            continue
        last_err = None
        if not batch:
            STOP.wait(args.idle_ms / 1000.0)
            continue
        items = [b.decode() if isinstance(b, bytes) else str(b) for b in batch]
        out.write("".join(i + "\n" for i in items))
        out.flush()
        os.fsync(out.fileno())
        moved += len(items)
        try:
            pipe = client.pipeline(transaction=False)
            for i in items:
                pipe.lrem(AGG_KEY, 1, i)
            pipe.execute(raise_on_error=False)
        except Exception as e:  # pylint: disable=broad-except
            # Harmless: they are in the file; leftovers stay in logs_aggregating.
            log.say(f"lrem failed: {short_err(e)}")
            reset(client)
    out.close()
    log.say(f"aggregator stopping: {moved} entries written")
    return 0


# ------------------------------------------------------------------ poll


def poll(args):
    install_signals()
    pw = password(args.password_file)
    host, port = split_addr(args.redis)
    interval = args.interval_ms / 1000.0
    out = open(args.out, "a", encoding="ascii")
    r = None
    last_flush = time.monotonic()
    while not STOP.is_set():
        t0 = now_ms()
        role, writable, detail = "down", 0, "-"
        try:
            if r is None:
                r = redis.Redis(
                    host=host,
                    port=port,
                    password=pw,
                    db=PROBE_DB,
                    socket_timeout=args.timeout,
                    socket_connect_timeout=args.timeout,
                    retry=no_retry(),
                    single_connection_client=True,
                )
            pipe = r.pipeline(transaction=False)
            pipe.execute_command("ROLE")
            pipe.set(PROBE_KEY, f"{t0:.0f}")
            res = pipe.execute(raise_on_error=False)
            if isinstance(res[0], Exception):
                role, detail = "error", short_err(res[0]).split(":")[0]
            else:
                role = res[0][0]
                role = role.decode() if isinstance(role, bytes) else str(role)
            if isinstance(res[1], redis.exceptions.ReadOnlyError):
                detail = "READONLY"
            elif isinstance(res[1], Exception):
                detail = str(res[1]).split(" ")[0] or type(res[1]).__name__
            elif res[1] is True:
                writable = 1
        except Exception as e:  # pylint: disable=broad-except
            detail = type(e).__name__
            try:
                if r is not None:
                    r.close()
            except Exception:  # pylint: disable=broad-except
                pass
            r = None
        t1 = now_ms()
        out.write(f"{t0:.1f} {t1:.1f} {role} {writable} {detail}\n")
        if time.monotonic() - last_flush > 0.2:
            out.flush()
            last_flush = time.monotonic()
        spent = (t1 - t0) / 1000.0
        STOP.wait(max(0.0, interval - spent))
    out.close()
    return 0


# ------------------------------------------------------------------ monitor


def repl_info(conn):
    info = conn.info("replication")
    role = info.get("role")
    out = {"role": role}
    if role == "slave":
        out["of"] = f"{info.get('master_host')}:{info.get('master_port')}"
        out["link"] = info.get("master_link_status")
    return out


def daemon_view(answer):
    st = answer.get("status") if isinstance(answer, dict) else None
    if not st:
        return None
    raft = st.get("raft", {})
    view = {
        "fresh": st.get("fresh"),
        "fenced": st.get("fenced"),
        "leader": raft.get("leader"),
        "is_leader": raft.get("is_leader"),
        "can_act": raft.get("can_act"),
        "term": raft.get("term"),
    }
    for g in st.get("groups", []):
        if g.get("name") == "mymaster":
            view["master"] = g.get("master")
            view["epoch"] = g.get("epoch")
            view["initialised"] = g.get("initialised")
            view["failover"] = g.get("failover") is not None
            view["odown"] = g.get("odown")
    return view


def monitor(args):
    install_signals()
    pw = password(args.password_file)
    out = open(args.out, "a", encoding="utf-8")
    conns = {}
    addrs = args.redis.split(",")
    while not STOP.is_set():
        t0 = now_ms()
        proc = subprocess.Popen(
            [args.bin, "status", "--json", "--timeout-ms", str(args.status_timeout_ms), "--config", args.config],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        redis_view = {}
        for a in addrs:
            try:
                if a not in conns:
                    h, p = split_addr(a)
                    conns[a] = redis.Redis(
                        host=h,
                        port=p,
                        password=pw,
                        socket_timeout=0.15,
                        socket_connect_timeout=0.15,
                        retry=no_retry(),
                        single_connection_client=True,
                    )
                redis_view[a] = repl_info(conns[a])
            except Exception:  # pylint: disable=broad-except
                redis_view[a] = None
                c = conns.pop(a, None)
                try:
                    if c is not None:
                        c.close()
                except Exception:  # pylint: disable=broad-except
                    pass
        try:
            stdout, _ = proc.communicate(timeout=5)
            answers = json.loads(stdout or b"[]")
        except Exception:  # pylint: disable=broad-except
            proc.kill()
            proc.wait()
            answers = []
        daemons = {}
        for a in answers if isinstance(answers, list) else []:
            if isinstance(a, dict) and "id" in a:
                daemons[str(a["id"])] = daemon_view(a)
        t1 = now_ms()
        out.write(json.dumps({"t0": round(t0, 1), "t": round(t1, 1), "daemons": daemons, "redis": redis_view}) + "\n")
        out.flush()
        STOP.wait(max(0.0, args.interval_ms / 1000.0 - (t1 - t0) / 1000.0))
    out.close()
    return 0


# ------------------------------------------------------------------ final


def final(args):
    pw = password(args.password_file)
    host, port = split_addr(args.redis)
    r = redis.Redis(host=host, port=port, password=pw, socket_timeout=30)
    for key in (KEY, AGG_KEY):
        for v in r.lrange(key, 0, -1):
            sys.stdout.write(v.decode() + "\n")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common_sentinel(p):
        p.add_argument("--sentinels", required=True, help="ip:port,... of the daemons' discovery ports")
        p.add_argument("--group", default="mymaster")
        p.add_argument("--password-file", required=True)
        p.add_argument("--sentinel-timeout", type=float, default=0.2)
        p.add_argument("--connect-timeout", type=float, default=0.3)
        p.add_argument("--socket-timeout", type=float, default=0.5)
        p.add_argument("--retry-ms", type=float, default=20.0)
        p.add_argument("--log")

    p = sub.add_parser("produce")
    common_sentinel(p)
    p.add_argument("--name", required=True)
    p.add_argument("--acks", required=True)
    p.add_argument("--interval-ms", type=float, default=10.0)

    p = sub.add_parser("aggregate")
    common_sentinel(p)
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--idle-ms", type=float, default=20.0)

    p = sub.add_parser("poll")
    p.add_argument("--redis", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--interval-ms", type=float, default=20.0)
    p.add_argument("--timeout", type=float, default=0.2)

    p = sub.add_parser("monitor")
    p.add_argument("--bin", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--redis", required=True, help="ip:port,...")
    p.add_argument("--password-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--interval-ms", type=float, default=200.0)
    p.add_argument("--status-timeout-ms", type=int, default=300)

    p = sub.add_parser("final")
    p.add_argument("--redis", required=True)
    p.add_argument("--password-file", required=True)

    args = ap.parse_args()
    return {"produce": produce, "aggregate": aggregate, "poll": poll, "monitor": monitor, "final": final}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
