#!/usr/bin/env python3
"""Orchestrator of the chaos checker: `scripts/chaos.sh [scenario...]`.

Runs in the root network namespace (as root) and drives the test bed through
scripts/testbed.sh. For each scenario: a fresh test bed (down, up), the
workload (workload.py: producers on every client and node host, the
aggregator and the monitor on c1, one role poller per node host), wait until
steady, the fault, wait until converged, a short tail of writes, stop, read
the final list, analyse. Prints one JSON line per scenario on stdout;
progress goes to stderr. Exit status 1 if any scenario broke a safety
target, 0 otherwise (2: the checker itself failed). docs/chaos.md has the
definitions of every field.
"""

import bisect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TESTBED = os.path.join(REPO, "scripts", "testbed.sh")
WORKLOAD = os.path.join(HERE, "workload.py")

STATE = os.environ.get("RAFTINEL_TESTBED_DIR", "/tmp/raftinel-testbed")
BIN = os.environ.get("RAFTINEL_BIN", os.path.join(REPO, "target", "debug", "raftinel"))
CLIENTS = int(os.environ.get("RAFTINEL_TESTBED_CLIENTS", "2"))
CUT_S = float(os.environ.get("CHAOS_CUT_S", "10"))
TAIL_S = float(os.environ.get("CHAOS_TAIL_S", "2"))
WRITE_INTERVAL_MS = float(os.environ.get("CHAOS_WRITE_INTERVAL_MS", "10"))
POLL_MS = float(os.environ.get("CHAOS_POLL_MS", "20"))
# Extra time, beyond the target, that the checker waits for convergence (to
# measure how late it is) before giving up on the scenario.
CONVERGE_GRACE_S = float(os.environ.get("CHAOS_CONVERGE_GRACE_S", "15"))
STABLE_S = 2.0
GROUP = "mymaster"
NODES = ["n1", "n2", "n3"]
HOSTS = NODES + [f"c{i}" for i in range(1, CLIENTS + 1)]
# Producers: (name, host, socket timeout in s). One per host with a short
# timeout (it gives up and asks the daemons again after 0.5 s), plus one on c1
# with a long timeout, like the many clients that set none: a request stuck in
# a stalled master is acknowledged when that master resumes.
PRODUCERS = [(h, h, 0.5) for h in HOSTS] + [("c1slow", "c1", 5.0)]
SENTINELS = ",".join(f"10.77.0.1{i}:26379" for i in (1, 2, 3))

SCENARIOS = [
    "kill_master",
    "cut_master",
    "cut_replica",
    "cut_leader",
    "kill_master_and_leader",
    "restart_old_master",
    "master_flapping",
    "restart_daemons",
    "oneway_in_master",
    "oneway_out_master",
    "cut_master_from_leader",
    "master_back_during_failover",
    "stall_master",
]


def now_ms():
    return time.time() * 1000.0


def say(msg):
    sys.stderr.write(f"chaos: {time.strftime('%H:%M:%S')} {msg}\n")
    sys.stderr.flush()


class CheckerError(Exception):
    """The checker could not run a scenario (not a verdict on raftinel)."""


def ip_of(host):
    return f"10.77.0.1{host[1:]}" if host.startswith("n") else f"10.77.0.2{host[1:]}"


def redis_of(host):
    return f"{ip_of(host)}:6379"


def host_of(addr):
    for h in NODES:
        if redis_of(h) == addr:
            return h
    return None


def node_id(host):
    return host[1:]


def read_timing():
    """down_after_ms and fence_after_ms as the daemons are configured."""
    with open(os.path.join(STATE, "rt-n1", "etc", "raftinel", "raftinel.toml"), "rb") as f:
        cfg = tomllib.load(f)
    down = min(g.get("down_after_ms", 30000) for g in cfg.get("group", []))
    fence = cfg.get("fence_after_ms", down // 2)
    return int(down), int(fence)


# ------------------------------------------------------------------ test bed


def testbed(*args, check=True):
    env = dict(os.environ, RAFTINEL_BIN=BIN, RAFTINEL_TESTBED_CLIENTS=str(CLIENTS))
    p = subprocess.run([TESTBED, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise CheckerError(f"scripts/testbed.sh {' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


class Scenario:
    """The state of one scenario run: processes, files, events, samples."""

    def __init__(self, name, out):
        self.name = name
        self.out = out
        self.procs = {}
        self.events = []
        self.samples = []
        self._mon_pos = 0
        self.down_after_ms, self.fence_after_ms = 1000, 500
        self.pw_file = os.path.join(STATE, "redis.pass")
        # How long `testbed.sh start HOST redis` takes (guard included).
        self.start_lead_ms = 150.0

    # -------------------------------------------------------------- events

    def mark(self, what, **kw):
        ev = {"t": round(now_ms(), 1), "event": what, **kw}
        self.events.append(ev)
        say(f"[{self.name}] {what} {' '.join(f'{k}={v}' for k, v in kw.items())}")
        return ev["t"]

    def tb(self, *args):
        say(f"[{self.name}] testbed.sh {' '.join(args)}")
        t0 = now_ms()
        testbed(*args)
        t1 = now_ms()
        self.events.append({"t": round(t0, 1), "t_end": round(t1, 1), "event": "testbed " + " ".join(args)})
        return t0, t1

    # -------------------------------------------------------------- processes

    def spawn(self, name, host, *args):
        log = open(os.path.join(self.out, f"{name}.stderr"), "w", encoding="utf-8")
        cmd = ["ip", "netns", "exec", f"rt-{host}", sys.executable, "-u", WORKLOAD, *args]
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = p
        return p

    def stop(self, names, timeout=5.0):
        for n in names:
            p = self.procs.get(n)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for n in names:
            p = self.procs.get(n)
            if p is None:
                continue
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        self.stop(list(self.procs))

    def check_alive(self):
        for n, p in self.procs.items():
            if p.poll() is not None:
                tail = ""
                try:
                    with open(os.path.join(self.out, f"{n}.stderr"), encoding="utf-8") as f:
                        tail = f.read()[-2000:]
                except OSError:
                    pass
                raise CheckerError(f"workload process {n} exited ({p.returncode}):\n{tail}")

    def start_workload(self):
        pw = self.pw_file
        for h in NODES:
            self.spawn(f"poll_{h}", h, "poll", "--redis", redis_of(h), "--password-file", pw,
                       "--out", os.path.join(self.out, f"poll_{h}.log"), "--interval-ms", str(POLL_MS))
        self.spawn("monitor", "c1", "monitor", "--bin", BIN, "--config", os.path.join(STATE, "rt-c1", "raftinel.toml"),
                   "--redis", ",".join(redis_of(h) for h in NODES), "--password-file", pw,
                   "--out", os.path.join(self.out, "monitor.jsonl"))
        common = ["--sentinels", SENTINELS, "--group", GROUP, "--password-file", pw]
        self.spawn("aggregator", "c1", "aggregate", *common, "--out", os.path.join(self.out, "aggregated_logs.txt"),
                   "--log", os.path.join(self.out, "aggregator.log"))
        for name, h, timeout in PRODUCERS:
            self.spawn(f"producer_{name}", h, "produce", *common, "--name", name,
                       "--acks", os.path.join(self.out, f"acks_{name}.log"),
                       "--log", os.path.join(self.out, f"producer_{name}.log"),
                       "--socket-timeout", str(timeout),
                       "--interval-ms", str(WRITE_INTERVAL_MS))

    def producers(self):
        return [f"producer_{p[0]}" for p in PRODUCERS]

    # -------------------------------------------------------------- monitor

    def refresh(self):
        path = os.path.join(self.out, "monitor.jsonl")
        try:
            with open(path, encoding="utf-8") as f:
                f.seek(self._mon_pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        end = chunk.rfind("\n")
        if end < 0:
            return
        self._mon_pos += len(chunk[: end + 1].encode())
        for line in chunk[: end + 1].splitlines():
            try:
                self.samples.append(json.loads(line))
            except ValueError:
                pass

    def latest(self):
        self.refresh()
        return self.samples[-1] if self.samples else None

    def wait(self, what, timeout_s, pred, poll_s=0.05):
        """Wait until pred(sample) is truthy on a new monitor sample; return it."""
        deadline = time.monotonic() + timeout_s
        seen = len(self.samples)
        while time.monotonic() < deadline:
            self.check_alive()
            self.refresh()
            while seen < len(self.samples):
                s = self.samples[seen]
                seen += 1
                v = pred(s)
                if v:
                    return v
            time.sleep(poll_s)
        raise CheckerError(f"timed out after {timeout_s} s waiting for {what}; last sample: {json.dumps(self.latest())}")

    def acks_recent(self, within_ms=500):
        """Every producer got an ack within the last within_ms."""
        t = now_ms()
        for name, _h, _t in PRODUCERS:
            path = os.path.join(self.out, f"acks_{name}.log")
            try:
                with open(path, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    size = f.tell()
                    if size == 0:
                        return False
                    f.seek(max(0, size - 200))
                    last = f.read().decode(errors="replace").strip().splitlines()[-1].split()
                if t - float(last[2]) > within_ms:
                    return False
            except (OSError, IndexError, ValueError):
                return False
        return True


# ------------------------------------------------------------------ views


def majority_view(sample, daemons=None):
    """(master, epoch, leader) agreed by a majority of the daemons that answered
    fresh, or None."""
    votes = {}
    for d, v in (sample.get("daemons") or {}).items():
        if v is None or not v.get("fresh") or (daemons is not None and d not in daemons):
            continue
        key = (v.get("master"), v.get("epoch"))
        votes[key] = votes.get(key, 0) + 1
    for key, n in votes.items():
        if n >= 2 and key[0]:
            leader = None
            for v in sample["daemons"].values():
                if v and v.get("fresh") and v.get("is_leader"):
                    leader = v.get("leader")
            return key[0], key[1], leader
    return None


def leader_of(sample):
    for d, v in (sample.get("daemons") or {}).items():
        if v and v.get("is_leader") and v.get("can_act") and v.get("fresh"):
            return d
    return None


def converged(sample, daemons, redises):
    """One master, every expected replica linked to it, every expected daemon
    answering, fresh, unfenced and agreeing (leader, master, epoch, no failover)."""
    ds = sample.get("daemons") or {}
    views = []
    for d in daemons:
        v = ds.get(d)
        if not v or not v.get("fresh") or not v.get("initialised") or v.get("failover") or v.get("fenced"):
            return None
        views.append(v)
    key = {(v.get("master"), v.get("epoch"), v.get("leader")) for v in views}
    if len(key) != 1:
        return None
    master, epoch, leader = key.pop()
    if not master or not leader or str(leader) not in daemons:
        return None
    mh = host_of(master)
    if mh not in redises:
        return None
    rv = sample.get("redis") or {}
    if (rv.get(master) or {}).get("role") != "master":
        return None
    for h in redises:
        if h == mh:
            continue
        r = rv.get(redis_of(h)) or {}
        if r.get("role") != "slave" or r.get("of") != master or r.get("link") != "up":
            return None
    return {"master": master, "epoch": epoch, "leader": str(leader), "t": sample["t"]}


# ------------------------------------------------------------------ scenarios


def all_daemons():
    return {node_id(h) for h in NODES}


def steady(sc):
    """Wait until the bed converged with every producer acking; return the view."""
    deadline = time.monotonic() + 90
    first_all = None
    while time.monotonic() < deadline:
        view = sc.wait("a converged test bed", 90, lambda s: converged(s, all_daemons(), set(NODES)))
        if sc.acks_recent():
            first_all = first_all or now_ms()
            if now_ms() - first_all >= 2000:
                return view
        else:
            first_all = None
    raise CheckerError("the test bed did not reach a steady state (converged, every producer writing) in 90 s")


def fault(start, start_eff, end, minority=(), daemons=None, redises=None, restarted=(), note=None, heal_start=None):
    """start: the fault command was issued; start_eff: it had returned (the
    fault was in effect); heal_start: the heal command was issued (the cut
    was in effect until then); end: the fault is over (convergence counts
    from here)."""
    return {
        "start": start,
        "start_eff": start_eff,
        "heal_start": heal_start if heal_start is not None else end,
        "end": end,
        "minority": list(minority),
        "daemons": set(daemons if daemons is not None else all_daemons()),
        "redises": set(redises if redises is not None else NODES),
        "restarted": list(restarted),
        "note": note,
    }


def sc_kill_master(sc, view):
    m = host_of(view["master"])
    t0, t1 = sc.tb("kill", m, "redis")
    return fault(t0, t1, t1, redises=set(NODES) - {m})


def sabotage_unfence(sc, h, until):
    """Checker self-test (CHAOS_SABOTAGE=unfence): undo the fence on HOST's
    Redis every 100 ms while it is cut off, as if raftinel had no fencing.
    The checker must then report minority writes after the fence and two
    writable masters (and exit 1)."""
    with open(sc.pw_file, encoding="utf-8") as f:
        pw = f.read().strip()
    env = dict(os.environ, REDISCLI_AUTH=pw)
    sc.mark("SABOTAGE unfence", host=h)
    while now_ms() < until:
        subprocess.run(["ip", "netns", "exec", f"rt-{h}", "redis-cli", "-h", ip_of(h),
                        "CONFIG", "SET", "min-replicas-to-write", "0"],
                       env=env, capture_output=True, check=False)
        time.sleep(0.1)


def cut_host(sc, h, *opts):
    t0, t1 = sc.tb("cut", h, *opts)
    if os.environ.get("CHAOS_SABOTAGE") == "unfence":
        sabotage_unfence(sc, h, t1 + CUT_S * 1000)
    else:
        time.sleep(CUT_S)
    sc.check_alive()
    h0, h1 = sc.tb("heal", h)
    return t0, t1, h0, h1


def sc_cut_master(sc, view):
    m = host_of(view["master"])
    t0, t1, h0, end = cut_host(sc, m)
    return fault(t0, t1, end, minority=[m], heal_start=h0)


def move_leader_off(sc, view, avoid):
    """Make the Raft leader a daemon not on host `avoid`: kill -9 the leader's
    daemon, wait for a new leader among the others, start it again."""
    leader = view["leader"]
    if f"n{leader}" != avoid:
        return view
    lh = f"n{leader}"
    sc.mark("move-leader", off=lh)
    sc.tb("kill", lh, "daemon")
    others = all_daemons() - {leader}
    sc.wait("a new Raft leader", 30, lambda s: leader_of(s) in others)
    sc.tb("start", lh, "daemon")
    return steady(sc)


def sc_cut_replica(sc, view):
    m = host_of(view["master"])
    reps = [h for h in NODES if h != m]
    # A replica host whose daemon is not the Raft leader (that is cut_leader).
    cand = [h for h in reps if node_id(h) != view["leader"]] or reps
    r = cand[-1]
    t0, t1, h0, end = cut_host(sc, r)
    return fault(t0, t1, end, minority=[r], heal_start=h0)


def sc_cut_leader(sc, view):
    m = host_of(view["master"])
    view = move_leader_off(sc, view, m)
    lh = f"n{view['leader']}"
    sc.mark("leader", host=lh, master=host_of(view["master"]))
    t0, t1, h0, end = cut_host(sc, lh)
    return fault(t0, t1, end, minority=[lh], heal_start=h0)


def sc_cut_master_from_leader(sc, view):
    """A partial partition: only the link between the master's host and the
    Raft leader's host is cut (both ways); each still reaches the third host.
    The master's daemon gets no read-index from the leader, but it is in
    two-way contact with the third daemon, which sees the master up: it must
    not fence, and no failover may happen (quorum 2, one daemon sees it down)."""
    m = host_of(view["master"])
    view = move_leader_off(sc, view, m)
    lh = f"n{view['leader']}"
    sc.mark("leader", host=lh, master=m)
    t0, t1, h0, end = cut_host(sc, m, lh)
    return fault(t0, t1, end, minority=[], heal_start=h0, note=f"{m} <-> {lh} cut")


def sc_kill_master_and_leader(sc, view):
    m = host_of(view["master"])
    lh = f"n{view['leader']}"
    if lh == m:
        t0, t1 = sc.tb("kill", m, "all")
    else:
        t0, _ = sc.tb("kill", m, "redis")
        _, t1 = sc.tb("kill", lh, "daemon")
    return fault(t0, t1, t1, daemons=all_daemons() - {node_id(lh)}, redises=set(NODES) - {m},
                 note=f"master {m}, leader {lh}")


def sc_restart_old_master(sc, view):
    m = host_of(view["master"])
    old = view["master"]
    t0, t1 = sc.tb("kill", m, "redis")
    sc.wait("a new committed master", 30, lambda s: (majority_view(s) or (old,))[0] != old)
    sc.mark("failover-seen")
    r0, r1 = sc.tb("start", m, "redis")
    return fault(t0, t1, r1, restarted=[(m, r0, r1)])


def sc_master_flapping(sc, view):
    """The master goes down (kill -9) and up (through its unit, guard first)
    every second: each cycle kills whichever instance is the committed master
    at that moment, so the first cycle races the failover and the later ones
    hit the new master inside the failover cool-down."""
    restarted, flapped = [], []
    t_start = t_eff = None
    end = None
    cycles = int(os.environ.get("CHAOS_FLAP_CYCLES", "5"))
    for i in range(cycles):
        mv = majority_view(sc.latest()) if sc.latest() else None
        m = host_of(mv[0]) if mv else host_of(view["master"])
        flapped.append(m)
        k0, k1 = sc.tb("kill", m, "redis")
        if t_start is None:
            t_start, t_eff = k0, k1
        time.sleep(1.0)
        r0, r1 = sc.tb("start", m, "redis")
        restarted.append((m, r0, r1))
        end = r1
        if i + 1 < cycles:
            time.sleep(1.0)
        sc.check_alive()
    return fault(t_start, t_eff, end, restarted=restarted,
                 note=f"committed master down 1 s / up 1 s x{cycles}: {' '.join(flapped)}")


def sc_master_back_during_failover(sc, view):
    """kill -9 the master and start it again so that it is back (answering
    as a master: the guard still finds it committed) right when the daemons
    decide to fail over, i.e. about down_after_ms after the kill. The start
    is issued CHAOS_START_LEAD_MS (default: the measured duration of a start,
    guard included) before that moment."""
    m = host_of(view["master"])
    lead = float(os.environ.get("CHAOS_START_LEAD_MS", "0")) or sc.start_lead_ms
    back_at = float(os.environ.get("CHAOS_BACK_AT_MS", str(sc.down_after_ms + 50)))
    k0, k1 = sc.tb("kill", m, "redis")
    time.sleep(max(0.0, (k0 + back_at - lead - now_ms()) / 1000.0))
    r0, r1 = sc.tb("start", m, "redis")
    sc.mark("restarted", host=m, after_kill_ms=round(r1 - k0))
    return fault(k0, k1, r1, restarted=[(m, r0, r1)], note=f"{m} started {round(r0 - k0)} ms after the kill, ready by {round(r1 - k0)} ms")


def sc_stall_master(sc, view):
    """SIGSTOP the master's redis-server for down_after_ms + CHAOS_STALL_EXTRA_MS
    (default 300), then SIGCONT: a master that hangs (swap, a slow fork, a
    stopped VM) long enough to be failed over, then resumes with its clients'
    connections still open."""
    m = host_of(view["master"])
    with open(os.path.join(STATE, f"rt-{m}", "run", "redis-server.pid"), encoding="ascii") as f:
        pid = int(f.read().strip())
    stall = sc.down_after_ms + float(os.environ.get("CHAOS_STALL_EXTRA_MS", "300"))
    t0 = sc.mark("SIGSTOP", host=m, pid=pid)
    os.kill(pid, signal.SIGSTOP)
    time.sleep(stall / 1000.0)
    os.kill(pid, signal.SIGCONT)
    t1 = sc.mark("SIGCONT", host=m, pid=pid)
    return fault(t0, t0, t1, note=f"{m} stopped for {stall:.0f} ms")


def sc_restart_daemons(sc, view):
    t0 = now_ms()
    for h in NODES:
        sc.tb("kill", h, "daemon")
    t1 = now_ms()
    for h in NODES:
        sc.tb("start", h, "daemon")
    return fault(t0, t1, now_ms())


def sc_oneway_in_master(sc, view):
    m = host_of(view["master"])
    t0, t1, h0, end = cut_host(sc, m, "--oneway-in")
    return fault(t0, t1, end, minority=[m], heal_start=h0)


def sc_oneway_out_master(sc, view):
    m = host_of(view["master"])
    t0, t1, h0, end = cut_host(sc, m, "--oneway-out")
    return fault(t0, t1, end, minority=[m], heal_start=h0)


RUNNERS = {
    "kill_master": sc_kill_master,
    "cut_master": sc_cut_master,
    "cut_replica": sc_cut_replica,
    "cut_leader": sc_cut_leader,
    "cut_master_from_leader": sc_cut_master_from_leader,
    "kill_master_and_leader": sc_kill_master_and_leader,
    "restart_old_master": sc_restart_old_master,
    "master_flapping": sc_master_flapping,
    "master_back_during_failover": sc_master_back_during_failover,
    "stall_master": sc_stall_master,
    "restart_daemons": sc_restart_daemons,
    "oneway_in_master": sc_oneway_in_master,
    "oneway_out_master": sc_oneway_out_master,
}


# ------------------------------------------------------------------ analysis


def load_acks(out, host):
    acks = []
    try:
        with open(os.path.join(out, f"acks_{host}.log"), encoding="ascii") as f:
            for line in f:
                p = line.split()
                if len(p) == 4:
                    acks.append((p[0], float(p[1]), float(p[2]), p[3]))
    except FileNotFoundError:
        pass
    return acks


def load_poll(out, host):
    samples = []
    try:
        with open(os.path.join(out, f"poll_{host}.log"), encoding="ascii") as f:
            for line in f:
                p = line.split()
                if len(p) == 5:
                    samples.append((float(p[0]), float(p[1]), p[2], p[3] == "1", p[4]))
    except FileNotFoundError:
        pass
    return samples


def writable_intervals(samples, ack_times=()):
    """When the instance was observed to accept writes: each acknowledged
    probe write of the poller, and each workload write it acknowledged,
    stands for [t - P/2, t + P/2], P the poll period, t the time of the reply
    (not of the request: a request sent to a stalled instance is executed
    when it resumes, just before the reply)."""
    half = POLL_MS / 2.0
    iv = [(t - half, t + half) for t in ack_times]
    for t0, t1, role, w, _d in samples:
        if w and role == "master":
            iv.append((t1 - half, t1 + half))
    # merge
    iv.sort()
    merged = []
    for a, b in iv:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def overlap_two(ivs_by_host):
    """Intervals where at least two hosts were writable."""
    pts = []
    for ivs in ivs_by_host.values():
        for a, b in ivs:
            pts.append((a, 1))
            pts.append((b, -1))
    pts.sort(key=lambda x: (x[0], x[1]))
    out, depth, start = [], 0, None
    for t, d in pts:
        depth += d
        if depth >= 2 and start is None:
            start = t
        elif depth < 2 and start is not None:
            if t > start:
                out.append((start, t))
            start = None
    return out


def measure(ivs, lo=None, hi=None):
    total = 0.0
    for a, b in ivs:
        if lo is not None:
            a = max(a, lo)
        if hi is not None:
            b = min(b, hi)
        if b > a:
            total += b - a
    return total


def read_final(sc, master):
    p = subprocess.run(
        ["ip", "netns", "exec", "rt-c1", sys.executable, WORKLOAD, "final", "--redis", master, "--password-file", sc.pw_file],
        capture_output=True, text=True)
    if p.returncode != 0:
        raise CheckerError(f"reading the final list on {master} failed: {p.stderr[-1000:]}")
    with open(os.path.join(sc.out, "final_list.txt"), "w", encoding="utf-8") as f:
        f.write(p.stdout)
    return p.stdout.split()


def analyse(sc, flt, before, conv, t_stop, final_master, final_items):
    out = sc.out
    present = {}
    for i in final_items:
        present[i] = present.get(i, 0) + 1
    try:
        with open(os.path.join(out, "aggregated_logs.txt"), encoding="utf-8") as f:
            for line in f:
                i = line.strip()
                if i:
                    present[i] = present.get(i, 0) + 1
    except FileNotFoundError:
        pass
    dups = sum(1 for v in present.values() if v > 1)

    start, start_eff, end = flt["start"], flt["start_eff"], flt["end"]
    cut_end = flt["heal_start"]
    deadline = start_eff + sc.fence_after_ms
    maj, mino = [], []
    for name, h, _t in PRODUCERS:
        for a in load_acks(out, name):
            # Acknowledged while the producer's host was cut off.
            side_min = h in flt["minority"] and start <= a[2] <= cut_end
            (mino if side_min else maj).append((h, *a))
    lost_all_maj = [a for a in maj if a[1] not in present]
    lost_min = [a for a in mino if a[1] not in present]
    # Writes that an instance acknowledged while `kill -9` of it was being
    # carried out: the reply left, the replication stream did not, and the
    # process died. No failover can recover them with Redis's asynchronous
    # replication; they are reported apart (lost_majority_at_kill) and are
    # not a violation. Every other majority-side loss is.
    kills = []
    for e in sc.events:
        p_ = e.get("event", "").split()
        if len(p_) >= 4 and p_[:2] == ["testbed", "kill"] and p_[3] in ("redis", "all"):
            kills.append((redis_of(p_[2]), e["t"], e.get("t_end", e["t"])))

    def at_kill(a):
        return any(a[4] == r and k0 <= a[3] <= k1 for r, k0, k1 in kills)

    lost_at_kill = [a for a in lost_all_maj if at_kill(a)]
    lost_maj = [a for a in lost_all_maj if not at_kill(a)]
    min_after = [a for a in mino if a[2] > deadline]

    # Two writable masters.
    polls = {h: load_poll(out, h) for h in NODES}
    ack_times = {h: [] for h in NODES}
    for a in maj + mino:
        h = host_of(a[4])
        if h:
            ack_times[h].append(a[3])
    ivs = {h: writable_intervals(polls[h], ack_times[h]) for h in NODES}
    two = overlap_two(ivs)
    two_ms = measure(two)
    fence_window = (start, deadline)
    two_after = measure(two, hi=fence_window[0]) + measure(two, lo=fence_window[1])

    # The old master: when it was last writable and first fenced after the fault.
    old_host = host_of(before["master"])
    old_last_w, old_fenced = None, None
    moved = final_master != before["master"]
    for t0, t1, role, w, d in polls.get(old_host, []):
        if t0 < start:
            continue
        if moved and w and role == "master":
            old_last_w = t1
        if d == "NOREPLICAS" and old_fenced is None:
            old_fenced = t0
    # First write accepted by another instance after the fault (failover).
    first_new = None
    for h in NODES:
        if h == old_host:
            continue
        for t0, t1, role, w, d in polls[h]:
            if t0 >= start and w and role == "master":
                first_new = t1 if first_new is None else min(first_new, t1)
                break

    # The committed master (majority of the daemons, as the monitor saw it).
    views, m = [], None
    for s in sc.samples:
        mv = majority_view(s)
        m = mv[0] if mv else m
        views.append((s["t"], m))
    view_times = [v[0] for v in views]

    def committed_at(t):
        i = bisect.bisect_right(view_times, t)
        return views[i - 1][1] if i > 0 else None

    # A restarted instance accepts no write while another instance is the
    # committed master: every write observed on it (probe or workload) from
    # its restart until it is first seen as a replica (or restarted again),
    # at a moment when the monitor named another committed master, counts.
    # (Once it has been a replica, a later promotion is raftinel's own doing,
    # and the two-masters check covers it.)
    restarted_w_ms, restarted_acks, restart_notes = 0.0, 0, []
    restarts = sorted(flt["restarted"], key=lambda r: r[1])
    for i, (h, r0, r1) in enumerate(restarts):
        addr = redis_of(h)
        nxt = next((r[1] for r in restarts[i + 1:] if r[0] == h), t_stop)
        nxt = min([nxt] + [t1 for t0, t1, role, w, d in polls[h] if t0 >= r0 and role == "slave"])
        if committed_at(r0) == addr:
            restart_notes.append(f"{h} restarted at +{r0 - start:.0f} ms while still the committed master")

        def foreign(t):
            c = committed_at(t)
            return c is not None and c != addr

        pts = [t1 for t0, t1, role, w, d in polls[h] if w and role == "master" and r0 <= t1 < nxt and foreign(t1)]
        acks_h = [a for a in maj + mino if a[4] == addr and r0 <= a[3] < nxt and foreign(a[3])]
        pts += [a[3] for a in acks_h]
        restarted_w_ms += measure(writable_intervals([], pts))
        restarted_acks += len(acks_h)

    # The committed master refusing writes (fenced) while on the majority side.
    fenced_ms = 0.0
    for h in NODES:
        ps = polls[h]
        for k in range(len(ps) - 1):
            t0, d, nxt = ps[k][0], ps[k][4], ps[k + 1]
            if d != "NOREPLICAS" or nxt[4] != "NOREPLICAS":
                continue
            if h in flt["minority"] and start <= t0 <= cut_end:
                continue
            if committed_at(t0) == redis_of(h):
                fenced_ms += nxt[0] - t0

    # Outage: the longest time without any majority-side acknowledgement.
    times = sorted(a[3] for a in maj if start - 1000 <= a[3] <= t_stop)
    gaps = [b - a for a, b in zip(times, times[1:])]
    if times:
        gaps.append(times[0] - start if times[0] > start else 0)
    outage = max(gaps) if gaps else None

    target_conv = sc.down_after_ms + 5000
    conv_ms = round(conv["t"] - end) if conv else None
    after = conv or {}
    violations, missed = [], []
    if lost_maj:
        violations.append(f"{len(lost_maj)} acknowledged majority-side writes lost")
    if min_after:
        violations.append(
            f"{len(min_after)} minority-side writes acknowledged more than fence_after_ms ({sc.fence_after_ms}) after the cut")
    if two_after > 0:
        violations.append(f"two writable masters for {two_after:.0f} ms outside the fence window")
    if restarted_w_ms > 0 or restarted_acks > 0:
        violations.append(
            f"restarted old master accepted writes ({restarted_w_ms:.0f} ms writable, {restarted_acks} acks)")
    if conv_ms is None:
        missed.append(f"no convergence within {target_conv + CONVERGE_GRACE_S * 1000:.0f} ms of the fault's end")
    elif conv_ms > target_conv:
        missed.append(f"converged in {conv_ms} ms > down_after_ms + 5000 = {target_conv}")

    def rel(t):
        return None if t is None else round(t - start)

    line = {
        "scenario": sc.name,
        "ok": not violations,
        "acked_majority": len(maj),
        "lost_majority": len(lost_maj),
        "lost_majority_at_kill": len(lost_at_kill),
        "acked_minority": len(mino),
        "lost_minority": len(lost_min),
        "minority_acked_after_fence": len(min_after),
        "minority_last_ack_after_cut_ms": round(max(a[3] for a in mino) - start_eff) if mino else None,
        "two_masters_ms": round(two_ms),
        "two_masters_after_fence_ms": round(two_after),
        "restarted_old_master_writable_ms": round(restarted_w_ms),
        "restarted_old_master_acks": restarted_acks,
        "outage_ms": round(outage) if outage is not None else None,
        "committed_master_fenced_ms": round(fenced_ms),
        "converge_ms": conv_ms,
        "converge_target_ms": target_conv,
        "down_after_ms": sc.down_after_ms,
        "fence_after_ms": sc.fence_after_ms,
        "fault_ms": round(end - start),
        "old_master": before["master"],
        "new_master": after.get("master", final_master),
        "epoch_before": before["epoch"],
        "epoch_after": after.get("epoch"),
        "leader_before": int(before["leader"]),
        "leader_after": int(after["leader"]) if after.get("leader") else None,
        "minority_hosts": flt["minority"],
        "old_master_fenced_at_ms": rel(old_fenced),
        "old_master_last_writable_at_ms": rel(old_last_w),
        "new_master_writable_at_ms": rel(first_new),
        "duplicates": dups,
        "violations": violations,
        "targets_missed": missed,
    }
    if flt["note"]:
        line["note"] = flt["note"]
    if restart_notes:
        line["restart_notes"] = restart_notes
    if lost_maj:
        line["lost_majority_sample"] = [
            {"id": a[1], "ack_ms": round(a[3] - start), "acked_by": a[4]} for a in sorted(lost_maj, key=lambda a: a[3])[:10]
        ]
    if min_after:
        line["minority_after_fence_sample"] = [
            {"id": a[1], "send_ms": round(a[2] - start_eff), "acked_by": a[4], "lost": a[1] not in present}
            for a in sorted(min_after, key=lambda a: a[2])[:10]
        ]
    if two:
        line["two_masters_intervals_ms"] = [[round(a - start), round(b - start)] for a, b in two[:10]]
    line["out_dir"] = out
    return line


# ------------------------------------------------------------------ main


def copy_logs(out):
    for h in NODES:
        for f in ("raftinel.log", "redis-server.log"):
            src = os.path.join(STATE, f"rt-{h}", "var", "log", f)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(out, f"{h}-{f}"))


def run_scenario(name, out):
    os.makedirs(out, exist_ok=True)
    sc = Scenario(name, out)
    say(f"[{name}] fresh test bed")
    testbed("down")
    testbed("up")
    sc.down_after_ms, sc.fence_after_ms = read_timing()
    try:
        sc.start_workload()
        before = steady(sc)
        sc.mark("steady", master=before["master"], leader=before["leader"], epoch=before["epoch"])
        flt = RUNNERS[name](sc, before)
        before = dict(before)
        sc.mark("fault-end")
        budget = (sc.down_after_ms + 5000) / 1000.0 + CONVERGE_GRACE_S
        conv = None
        streak = None
        deadline = time.monotonic() + budget
        seen = len(sc.samples)
        while time.monotonic() < deadline:
            sc.check_alive()
            sc.refresh()
            while seen < len(sc.samples):
                s = sc.samples[seen]
                seen += 1
                if s["t"] < flt["end"]:
                    continue
                c = converged(s, flt["daemons"], flt["redises"])
                if c and streak and c["master"] == streak["master"] and c["epoch"] == streak["epoch"]:
                    pass
                elif c:
                    streak = c
                else:
                    streak = None
            if streak and sc.samples[-1]["t"] - streak["t"] >= STABLE_S * 1000:
                conv = streak
                break
            time.sleep(0.05)
        if conv:
            sc.mark("converged", master=conv["master"], epoch=conv["epoch"], after_ms=round(conv["t"] - flt["end"]))
        else:
            sc.mark("not-converged")
        time.sleep(TAIL_S)
        sc.stop(sc.producers())
        t_stop = now_ms()
        time.sleep(0.5)
        sc.stop(["aggregator"])
        sc.refresh()
        final_master = conv["master"] if conv else None
        if final_master is None:
            mv = majority_view(sc.samples[-1]) if sc.samples else None
            final_master = mv[0] if mv else None
        if final_master is None:
            raise CheckerError("no committed master at the end: cannot read the final list")
        items = read_final(sc, final_master)
        sc.stop_all()
        saved = {"flt": {k: sorted(v) if isinstance(v, set) else v for k, v in flt.items()},
                 "before": before, "conv": conv, "t_stop": t_stop, "final_master": final_master,
                 "down_after_ms": sc.down_after_ms, "fence_after_ms": sc.fence_after_ms}
        with open(os.path.join(out, "run.json"), "w", encoding="utf-8") as f:
            json.dump(saved, f)
        line = analyse(sc, flt, before, conv, t_stop, final_master, items)
    finally:
        sc.stop_all()
        with open(os.path.join(out, "events.jsonl"), "w", encoding="utf-8") as f:
            for e in sc.events:
                f.write(json.dumps(e) + "\n")
        copy_logs(out)
    return line


def reanalyse(out):
    """Analyse a scenario's output directory again (after changing the
    analysis): `run.py --analyse DIR`."""
    with open(os.path.join(out, "run.json"), encoding="utf-8") as f:
        saved = json.load(f)
    sc = Scenario(os.path.basename(out.rstrip("/")), out)
    sc.down_after_ms, sc.fence_after_ms = saved["down_after_ms"], saved["fence_after_ms"]
    try:
        with open(os.path.join(out, "events.jsonl"), encoding="utf-8") as f:
            sc.events = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        pass
    sc.refresh()
    flt = saved["flt"]
    flt["daemons"], flt["redises"] = set(flt["daemons"]), set(flt["redises"])
    with open(os.path.join(out, "final_list.txt"), encoding="utf-8") as f:
        items = f.read().split()
    return analyse(sc, flt, saved["before"], saved["conv"], saved["t_stop"], saved["final_master"], items)


def main(argv):
    if argv[:1] == ["--analyse"]:
        for d in argv[1:]:
            print(json.dumps(reanalyse(d)), flush=True)
        return 0
    names = argv or SCENARIOS
    for n in names:
        if n not in RUNNERS:
            sys.stderr.write(f"chaos: unknown scenario '{n}'; scenarios: {' '.join(SCENARIOS)}\n")
            return 2
    base = os.environ.get("CHAOS_OUT") or os.path.join("/tmp/raftinel-chaos", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(base, exist_ok=True)
    say(f"scenarios: {' '.join(names)}; output in {base}")
    violated, broken, missed = False, False, False

    def on_term(_sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        violated, broken, missed = run_all(names, base)
    except KeyboardInterrupt:
        say("interrupted")
        broken = True
    finally:
        if os.environ.get("CHAOS_KEEP") != "1":
            testbed("down", check=False)
        else:
            say("CHAOS_KEEP=1: the last test bed stays up (scripts/testbed.sh down)")
    if violated or (missed and os.environ.get("CHAOS_STRICT") == "1"):
        return 1
    return 2 if broken else 0


def run_all(names, base):
    violated, broken, missed = False, False, False
    for n in names:
        out = os.path.join(base, n)
        k = 1
        while os.path.exists(out):  # the same scenario more than once
            k += 1
            out = os.path.join(base, f"{n}-{k}")
        try:
            line = run_scenario(n, out)
        except CheckerError as e:
            say(f"[{n}] CHECKER ERROR: {e}")
            line = {"scenario": n, "ok": None, "checker_error": str(e)[:2000], "out_dir": out}
            broken = True
        print(json.dumps(line), flush=True)
        if line.get("ok") is False:
            violated = True
            say(f"[{n}] SAFETY VIOLATION: {'; '.join(line['violations'])}")
        elif line.get("ok"):
            msg = "; ".join(line["targets_missed"]) or "all targets met"
            missed = missed or bool(line["targets_missed"])
            say(f"[{n}] safe; {msg}")
    return violated, broken, missed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
