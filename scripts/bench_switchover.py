#!/usr/bin/env python3
"""Write load and accounting for scripts/bench-switchover.sh.

Two subcommands:

produce   Write `RPUSH <key> <seq>` continuously to whatever master the raftinel
          cluster names. The master is learnt from the daemons' HTTP API
          (`GET /v1/cluster` on each --http address: the view of the daemon
          that can act as Raft leader, else of any authoritative daemon), and
          from `raftinel status --json` when no HTTP API answers. When a write
          fails or is refused (READONLY after the old master was demoted, the
          connection killed by the switchover, a timeout) the master is
          resolved again at once, then every --poll-ms. Every acknowledged
          write is appended to the ack file as `seq wall_ms master`; a
          one-line state file `master since_ms last_ack_ms acked failures
          resolver` is rewritten atomically every 50 ms (since_ms: first ack
          of the current unbroken run of acks on that master). Stops on
          SIGTERM/SIGINT or after --max-seconds.

analyze   Read the ack file, the runs file written by the bench script and the
          list on the final master; print one JSON line per switchover and a
          summary line.

Only the addresses given on the command line (127.0.0.1 in the bench) are
contacted. Standalone (no import of bench_producer.py, whose producer follows
the Sentinel-compatible ports instead).
"""

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def now_ms():
    return time.time() * 1000.0


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def resolve_master(binary, config, group):
    """The master of `group` in the Raft leader's view from `raftinel status --json`."""
    try:
        out = subprocess.run(
            [binary, "status", "--json", "--config", config, "--timeout-ms", "300"],
            capture_output=True,
            timeout=5,
            check=False,
        )
        answers = json.loads(out.stdout or b"[]")
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return None
    for a in answers:
        st = a.get("status") if isinstance(a, dict) else None
        if st and st.get("raft", {}).get("is_leader"):
            return master_of(st, group)
    return None


def load_acks(path):
    """[(t_ms, seq, master)] sorted by time."""
    acks = []
    with open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue  # a line cut short by the writer's stop
            acks.append((float(parts[1]), int(parts[0]), parts[2]))
    acks.sort()
    return acks


def http_views(addrs, timeout):
    """`GET /v1/cluster` of every daemon that answers."""
    views = []
    for addr in addrs:
        host, port = split_addr(addr)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", "/v1/cluster")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                views.append(json.loads(body))
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            conn.close()
    return views


def master_of(view, group):
    for g in view.get("groups", []):
        if g.get("name") == group and g.get("initialised") and g.get("master"):
            return g["master"]
    return None


def resolve(args):
    """(master, resolver) of the group, or (None, resolver)."""
    if args.http:
        views = http_views(args.http, 0.3)
        if views:
            leader = [v for v in views if v.get("raft", {}).get("can_act")]
            trusted = [v for v in views if v.get("authoritative")]
            for v in leader + trusted:
                m = master_of(v, args.group)
                if m:
                    return m, "http"
            return None, "http"
    return resolve_master(args.bin, args.config, args.group), "status"


def connect(addr, timeout):
    host, port = split_addr(addr)
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
    )


def produce(args):
    stop = {"flag": False}

    def on_signal(_sig, _frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    deadline = time.monotonic() + args.max_seconds
    acks = open(args.acks, "a", buffering=1, encoding="ascii")
    log = open(args.log, "a", buffering=1, encoding="utf-8") if args.log else sys.stderr
    interval = args.interval_ms / 1000.0
    poll = args.poll_ms / 1000.0

    st = {"master": None, "since": 0.0, "last_ack": 0.0, "acked": 0, "failures": 0, "resolver": "-"}
    conn = None
    seq = 0
    last_state = 0.0

    def write_state():
        tmp = args.state + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(
                f"{st['master'] or '-'} {st['since']:.0f} {st['last_ack']:.0f} "
                f"{st['acked']} {st['failures']} {st['resolver']}\n"
            )
        os.replace(tmp, args.state)

    def say(msg):
        log.write(f"{now_ms():.0f} {msg}\n")

    write_state()
    retry = False
    while not stop["flag"] and time.monotonic() < deadline:
        t = now_ms()
        if t - last_state >= 50:
            write_state()
            last_state = t
        if conn is None:
            if retry:
                time.sleep(poll)
            m, st["resolver"] = resolve(args)
            if m is None:
                retry = True
                continue
            if m != st["master"]:
                say(f"master is {m} (via {st['resolver']})")
                st["master"], st["since"] = m, 0.0
        seq += 1
        try:
            if conn is None:
                conn = connect(st["master"], args.timeout_s)
            conn.rpush(args.key, seq)
        except (redis.exceptions.RedisError, OSError) as e:
            st["failures"] += 1
            say(f"write {seq} to {st['master']} failed: {type(e).__name__}: {e}")
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pylint: disable=broad-except
                    pass
            conn, st["since"] = None, 0.0
            # The first re-resolution is immediate; later ones wait poll-ms.
            retry = False
            continue
        retry = False
        st["last_ack"] = now_ms()
        if st["since"] == 0.0:
            st["since"] = st["last_ack"]
        st["acked"] += 1
        acks.write(f"{seq} {st['last_ack']:.3f} {st['master']}\n")
        if interval > 0:
            time.sleep(interval)
    write_state()
    say(f"stopping: {st['acked']} acked, {st['failures']} failed writes, last seq {seq}")
    acks.close()
    return 0


def load_runs(path):
    runs = []
    with open(path, encoding="ascii") as f:
        for line in f:
            p = line.split()
            if len(p) != 6:
                continue
            runs.append(
                dict(
                    run=int(p[0]),
                    start_ms=float(p[1]),
                    end_ms=float(p[2]),
                    old=p[3],
                    new=p[4],
                    rc=int(p[5]),
                )
            )
    return runs


def analyze(args):
    acks = load_acks(args.acks)  # (t_ms, seq, master), sorted by time
    runs = load_runs(args.runs)
    host, port = split_addr(args.master)
    r = redis.Redis(host=host, port=port, socket_timeout=30)
    stored = set()
    for v in r.lrange(args.key, 0, -1):
        try:
            stored.add(int(v))
        except ValueError:
            pass

    gaps_all, lost_total = [], 0
    for i, run in enumerate(runs):
        # Acks belong to the run whose interval holds them: from the end of the
        # previous switchover (or the start) to the end of this one.
        lo = runs[i - 1]["end_ms"] if i > 0 else float("-inf")
        hi = run["end_ms"] if i + 1 < len(runs) else float("inf")
        mine = [a for a in acks if lo <= a[0] < hi]
        lost = [a for a in mine if a[1] not in stored]
        # The first write the new master acknowledged after the request.
        first_new = next(
            (a[0] for a in acks if a[0] > run["start_ms"] and a[2] == run["new"]), None
        )
        # Longest gap between consecutive acks from 1 s before the request to
        # 1 s after the writer's first ack on the new master (or the end of
        # the command, whichever is later).
        w_hi = max(run["end_ms"], first_new or run["end_ms"]) + 1000
        win = [a[0] for a in acks if run["start_ms"] - 1000 <= a[0] <= w_hi]
        gaps = [b - a for a, b in zip(win, win[1:])]
        max_gap = max(gaps) if gaps else None
        line = {
            "run": run["run"],
            "max_gap_ms": round(max_gap, 1) if max_gap is not None else None,
            "lost": len(lost),
            "acked": len(mine),
            "old_master": run["old"],
            "new_master": run["new"],
            "failover_exit": run["rc"],
            "command_ms": round(run["end_ms"] - run["start_ms"]),
            "request_to_first_ack_on_new_ms": round(first_new - run["start_ms"]) if first_new else None,
        }
        if lost:
            line["lost_seqs"] = sorted(a[1] for a in lost)[:20]
        print(json.dumps(line), flush=True)
        if max_gap is not None:
            gaps_all.append(max_gap)
        lost_total += len(lost)

    summary = {
        "runs": len(runs),
        "max_gap_ms_median": round(statistics.median(gaps_all), 1) if gaps_all else None,
        "max_gap_ms_max": round(max(gaps_all), 1) if gaps_all else None,
        "lost_total": lost_total,
        "failed_runs": sum(1 for r in runs if r["rc"] != 0),
        "acked_total": len(acks),
        "final_master": args.master,
        "resolver": args.resolver,
    }
    print(json.dumps(summary), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("produce")
    p.add_argument("--bin", required=True, help="raftinel binary")
    p.add_argument("--config", required=True, help="a daemon config (for raftinel status)")
    p.add_argument("--http", nargs="*", default=[], help="host:port of the daemons' HTTP APIs")
    p.add_argument("--group", default="mymaster")
    p.add_argument("--key", default="logs_queue")
    p.add_argument("--acks", required=True, help="ack file (appended)")
    p.add_argument("--state", required=True, help="state file (rewritten)")
    p.add_argument("--log", help="producer log (default stderr)")
    p.add_argument("--interval-ms", type=float, default=1.0, help="pause after each ack")
    p.add_argument("--poll-ms", type=float, default=5.0, help="re-resolve period after a failure")
    p.add_argument("--timeout-s", type=float, default=2.0, help="socket timeout of one write")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="stop by itself after this")

    a = sub.add_parser("analyze")
    a.add_argument("--acks", required=True)
    a.add_argument("--runs", required=True)
    a.add_argument("--master", required=True, help="final master host:port")
    a.add_argument("--key", default="logs_queue")
    a.add_argument("--resolver", default="-", help="how the writer found the master (for the summary)")

    args = ap.parse_args()
    return produce(args) if args.cmd == "produce" else analyze(args)


if __name__ == "__main__":
    sys.exit(main())
