#!/usr/bin/env python3
"""Write load and accounting for scripts/bench-failover.sh.

Two subcommands:

produce   Write `RPUSH <key> <seq>` continuously to whatever master the raftinel
          cluster names. The master is learnt from `raftinel status --json`
          (the Raft leader's view). When a write fails or is refused (READONLY,
          connection refused, timeout, ...) the master is resolved again,
          polling every 20 ms. Every acknowledged write is appended to the ack
          file as `seq wall_ms master`; a one-line state file
          `master since_ms last_ack_ms acked failures` is rewritten atomically
          every 50 ms, where since_ms is the time of the first ack of the
          current unbroken run of acks on that master. Stops on SIGTERM/SIGINT
          or after --max-seconds.

analyze   Read the ack file, the runs file written by the bench script and the
          list on the final master, print one JSON line per run and a summary.

Only 127.0.0.1 / whatever the local config names is contacted.
"""

import argparse
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


def resolve_master(binary, config, group, sentinels=None):
    """The master of `group`, or None. With `sentinels` (host:port list) it is
    asked, like any Sentinel client, on raftinel's Sentinel-compatible ports;
    otherwise from the leader's view in `raftinel status --json`."""
    if sentinels:
        from redis.sentinel import MasterNotFoundError, Sentinel

        try:
            s = Sentinel([split_addr(a) for a in sentinels], socket_timeout=0.3)
            host, port = s.discover_master(group)
            return f"{host}:{port}"
        except (MasterNotFoundError, redis.RedisError, OSError):
            return None
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
        if not st or not st.get("raft", {}).get("is_leader"):
            continue
        for g in st.get("groups", []):
            if g.get("name") == group and g.get("initialised") and g.get("master"):
                return g["master"]
    return None


def connect(addr):
    host, port = split_addr(addr)
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=0.5,
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

    master, conn = None, None
    seq, acked, failures = 0, 0, 0
    since, last_ack = 0.0, 0.0
    last_state = 0.0

    def write_state():
        tmp = args.state + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{master or '-'} {since:.0f} {last_ack:.0f} {acked} {failures}\n")
        os.replace(tmp, args.state)

    def say(msg):
        log.write(f"{now_ms():.0f} {msg}\n")

    write_state()
    while not stop["flag"] and time.monotonic() < deadline:
        t = now_ms()
        if t - last_state >= 50:
            write_state()
            last_state = t
        if conn is None:
            m = resolve_master(args.bin, args.config, args.group, args.sentinels)
            if m is None:
                time.sleep(args.poll_ms / 1000.0)
                continue
            if m != master:
                say(f"master is {m}")
                master, since = m, 0.0
        seq += 1
        try:
            if conn is None:
                conn = connect(master)
            conn.rpush(args.key, seq)
        except (redis.exceptions.RedisError, OSError) as e:
            failures += 1
            say(f"write {seq} to {master} failed: {type(e).__name__}: {e}")
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pylint: disable=broad-except
                    pass
            conn, since = None, 0.0
            time.sleep(args.poll_ms / 1000.0)
            continue
        last_ack = now_ms()
        if since == 0.0:
            since = last_ack
        acked += 1
        acks.write(f"{seq} {last_ack:.3f} {master}\n")
        if interval > 0:
            time.sleep(interval)
    write_state()
    say(f"stopping: {acked} acked, {failures} failed writes, last seq {seq}")
    acks.close()
    return 0


def load_acks(path):
    acks = []  # (t_ms, seq, master)
    with open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue  # a line cut short by the producer's stop
            acks.append((float(parts[1]), int(parts[0]), parts[2]))
    acks.sort()
    return acks


def load_runs(path):
    runs = []
    with open(path, encoding="ascii") as f:
        for line in f:
            p = line.split()
            if len(p) != 7:
                continue
            runs.append(
                dict(
                    run=int(p[0]),
                    start_ms=float(p[1]),
                    kill_ms=float(p[2]),
                    old=p[3],
                    new=p[4],
                    restart_ms=float(p[5]),
                    end_ms=float(p[6]),
                )
            )
    return runs


def analyze(args):
    acks = load_acks(args.acks)
    runs = load_runs(args.runs)
    host, port = split_addr(args.master)
    r = redis.Redis(host=host, port=port, socket_timeout=30)
    stored = set()
    for v in r.lrange(args.key, 0, -1):
        try:
            stored.add(int(v))
        except ValueError:
            pass

    outages, lost_total, unrepl_total = [], 0, 0
    for i, run in enumerate(runs):
        # Acks belong to the run whose interval holds them: from the end of the
        # previous run (or the start) to the end of this one.
        lo = runs[i - 1]["end_ms"] if i > 0 else float("-inf")
        hi = run["end_ms"] if i + 1 < len(runs) else float("inf")
        mine = [a for a in acks if lo <= a[0] < hi]
        lost = [a for a in mine if a[1] not in stored]
        # Writes the killed master acknowledged: it was dead from kill_ms until
        # restart_ms, so any of its acks in this run before restart_ms came
        # before the kill; lost ones had not reached a replica.
        unrepl = [a for a in lost if a[2] == run["old"] and a[0] < run["restart_ms"]]
        # Outage: largest gap between consecutive acks from 2 s before the
        # kill to the restart of the old master (the new master had by then
        # taken writes for 2 s).
        win = [a[0] for a in acks if run["kill_ms"] - 2000 <= a[0] <= run["restart_ms"]]
        gaps = [b - a for a, b in zip(win, win[1:])]
        outage = max(gaps) if gaps else None
        first_new = next(
            (a[0] for a in acks if a[0] > run["kill_ms"] and a[2] == run["new"]), None
        )
        line = {
            "run": run["run"],
            "outage_ms": round(outage) if outage is not None else None,
            "lost": len(lost),
            "acked": len(mine),
            "new_master": run["new"],
            "old_master": run["old"],
            "kill_to_first_ack_ms": round(first_new - run["kill_ms"]) if first_new else None,
            "lost_unreplicated_window": len(unrepl),
        }
        if unrepl:
            line["unreplicated_window_ms"] = round(run["kill_ms"] - min(a[0] for a in unrepl))
        if len(lost) > len(unrepl):
            line["lost_other_seqs"] = sorted(a[1] for a in lost if a not in unrepl)[:20]
        print(json.dumps(line), flush=True)
        if outage is not None:
            outages.append(outage)
        lost_total += len(lost)
        unrepl_total += len(unrepl)

    summary = {
        "runs": len(runs),
        "outage_ms_median": round(statistics.median(outages)) if outages else None,
        "outage_ms_max": round(max(outages)) if outages else None,
        "lost_total": lost_total,
        "lost_unreplicated_window_total": unrepl_total,
        "acked_total": len(acks),
        "final_master": args.master,
    }
    print(json.dumps(summary), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("produce")
    p.add_argument("--bin", required=True, help="raftinel binary")
    p.add_argument("--config", required=True, help="a daemon config (for raftinel status)")
    p.add_argument("--group", default="mymaster")
    p.add_argument(
        "--sentinels",
        type=lambda v: [a for a in v.split(",") if a],
        help="host:port,... of raftinel's Sentinel-compatible ports (resolve like a Sentinel client)",
    )
    p.add_argument("--key", default="logs_queue")
    p.add_argument("--acks", required=True, help="ack file (appended)")
    p.add_argument("--state", required=True, help="state file (rewritten)")
    p.add_argument("--log", help="producer log (default stderr)")
    p.add_argument("--interval-ms", type=float, default=1.0, help="pause after each ack")
    p.add_argument("--poll-ms", type=float, default=20.0, help="re-resolve period after a failure")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="stop by itself after this")

    a = sub.add_parser("analyze")
    a.add_argument("--acks", required=True)
    a.add_argument("--runs", required=True)
    a.add_argument("--master", required=True, help="final master host:port")
    a.add_argument("--key", default="logs_queue")

    args = ap.parse_args()
    return produce(args) if args.cmd == "produce" else analyze(args)


if __name__ == "__main__":
    sys.exit(main())
