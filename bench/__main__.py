"""`python -m bench`: Mailslot (and the Zaqar 23 peer) over loopback with wrk.

Each scenario runs against a real server after a warm-up: `mailslot serve`
(gunicorn, uvicorn workers) on each ``--stores`` store, and with ``--zaqar``
the real Zaqar 23.0.1 (gunicorn, sync workers) on the SAME dedicated
redis-server as Mailslot's Redis run (Mailslot on db 1, Zaqar on db 0).
On the Redis store the two servers run side by side and take turns per
scenario, so each Mailslot/Zaqar pair is measured back to back.

The figures that matter are ratios within one run (to Zaqar, to the same
stack's trivial `/v2/ping`, large queue to fresh queue), because this shared
2-core machine's absolute rates move by tens of percent. A run with more than
``--max-foreign`` cores of foreign load is repeated once (the quieter of the
two is kept), then flagged. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import tempfile
import time

from bench import cpu, fill, interleaved, wrk
from bench.client import Client
from bench.server import (HttpServer, MailslotServer, RedisServer, SecantusServer,
                          ZaqarServer, ZAQAR_VENV, install_zaqar, secantus_installed,
                          zaqar_installed)

RESULTS = pathlib.Path(__file__).parent / "results"
FLAT_FILL_S = 40      # budget for filling the 1M-message queue (bench/fill.py)
STACK_START_S = 8     # budget for starting a store's servers
PROJECT = "bench"


@dataclasses.dataclass(frozen=True)
class Scenario:
    script: str
    # messages per request; None: counted by the script (claim/list)
    per_request: int | None
    # how the queue is prepared: None (fresh), "list", "consume", "cycle"
    prep: str | None = None
    mailslot_only: bool = False
    about: str = ""


SCENARIOS = {
    "ping": Scenario("ping.lua", 0, about="GET /v2/ping"),
    "post_1x1KB": Scenario("post1.lua", 1, about="POST 1 x 1 KB to a fresh queue"),
    "post_10x1KB": Scenario("post10.lua", 10, about="POST 10 x 1 KB to a fresh queue"),
    "claim_delete": Scenario(
        "claim_delete.lua", None, prep="consume",
        about="claim 10, DELETE each with its claim id; msgs/s = deleted/s"),
    "list_10": Scenario(
        "list.lua", None, prep="list",
        about="GET messages?limit=10&echo=true following markers; msgs/s = listed/s"),
    "post_1x1KB_signed": Scenario(
        "post1_signed.lua", 1, mailslot_only=True,
        about="POST 1 x 1 KB with a signed-URL credential (Mailslot only)"),
}
DEFAULT_SCENARIOS = ["ping", "post_1x1KB", "post_10x1KB", "claim_delete", "list_10"]
# The flat-cost runs (per Mailslot store): same scenario, fresh vs deep queue.
CYCLE = Scenario("claim_delete.lua", None, prep="cycle",
                 about="claim 10 + DELETE each + POST 10 back: constant depth")


@dataclasses.dataclass
class Target:
    """One server under test."""
    stack: str               # "mailslot-redis", "zaqar-redis", "mailslot-sqlite"
    kind: str                # "mailslot" | "zaqar"
    store: str
    server: HttpServer
    workers: int
    uri: str | None = None   # Mailslot's storage URI (the deep queue is filled there)

    @property
    def client(self) -> Client:
        return Client(self.server.url, PROJECT)


class Run:
    """Shared state of one `python -m bench` invocation."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.rows: list[dict] = []
        self.managed: list = []      # every process we started (for CPU accounting)
        self.db: RedisServer | SecantusServer | None = None  # the store's server
        self.serial = 0
        self.skipped: list[str] = []
        self.planned = 0.0           # seconds of measured runs still to do (set by main)
        self.reserve = 0.0           # seconds still needed for fills and server starts

    def time_left(self) -> float:
        return self.args.budget - (time.monotonic() - self.started)

    def slack(self) -> float:
        """Seconds left after every planned run (without repeats or waits)."""
        return self.time_left() - self.planned - self.reserve

    def run_cost(self, seconds: int | None = None, warmup: int | None = None) -> float:
        """Wall time of one run: warm-up, measured run, fills and stats."""
        return (warmup or self.args.warmup) + (seconds or self.args.seconds) + 3

    def queue(self, label: str) -> str:
        self.serial += 1
        return f"b{self.serial}-{label}"[:64].replace("_", "-")

    def own_pids(self) -> list[int]:
        pids: list[int] = []
        for proc in self.managed:
            if proc.process.poll() is None:
                pids.extend(proc.pids())
        return pids


# ---------------------------------------------------------------- measuring

def _foreign_now(run: Run, window: float = 0.5) -> float:
    pids = run.own_pids()
    start = cpu.Usage.now(pids)
    time.sleep(window)
    return cpu.Usage.now(pids).since(start).foreign / window


def quiet_gate(run: Run) -> float:
    """Wait (up to --quiet-wait s) for foreign load under --max-foreign."""
    wait = run.args.quiet_wait if run.slack() > 60 else 0
    deadline = time.monotonic() + wait
    load = _foreign_now(run)
    while load > run.args.max_foreign and time.monotonic() < deadline:
        load = _foreign_now(run)
    return round(load, 2)


def connections_for(run: Run, target: Target) -> int:
    """wrk connections: --connections, but --mongodb-connections for the
    MongoDB-wire test server, which saturates one core and times out at 64."""
    if target.store == "mongodb":
        return run.args.mongodb_connections
    return run.args.connections


def _wrk(run: Run, target: Target, script: str, seconds: int, env: dict) -> wrk.WrkResult:
    return wrk.run(target.server.url, script, seconds=seconds,
                   connections=connections_for(run, target),
                   env={"BENCH_PROJECT": PROJECT, **env})


def measure(run: Run, target: Target, name: str, scenario: Scenario,
            queue: str | None = None, depth: int = 0, label: str | None = None,
            seconds: int | None = None, warmup: int | None = None) -> dict:
    args = run.args
    seconds = seconds or args.seconds
    warmup = warmup or args.warmup
    client = target.client
    queue = queue or run.queue(f"{target.kind[0]}-{name}")
    env = {"BENCH_QUEUE": queue}
    info: dict = {"queue": queue}
    if scenario.script == "post1_signed.lua":
        env["BENCH_CREDENTIAL"] = target.server.mint(queue, ttl=3600)
    if scenario.prep == "list":
        have = client.stats(queue)["total"]
        client.fill(queue, args.list_fill - have)
    elif scenario.prep == "consume":
        have = client.stats(queue)["free"]
        client.fill(queue, args.claim_fill - have)
    elif scenario.prep == "cycle":
        env["BENCH_REFILL"] = "1"
        have = client.stats(queue)["free"]
        info["fill_s"] = round(client.fill(queue, depth - have), 1)
    tracked = bool(scenario.prep or depth)   # queue depth recorded around the run
    if tracked:
        info["depth_before_warmup"] = client.stats(queue)["total"]

    info["foreign_before"] = quiet_gate(run)
    warm = _wrk(run, target, scenario.script, warmup, env)
    if scenario.prep == "consume":
        # Top up for the measured run from the warm-up's consumption rate, so
        # the queue never runs dry (checked after the run).
        rate = warm.counters.get("deleted", 0) / max(warm.counters.get("duration_us", 1), 1) * 1e6
        free = client.stats(queue)["free"]
        if free == 0:                       # the warm-up itself ran dry
            rate = max(rate, 2 * args.claim_fill / warmup)
        need = int(rate * seconds * 1.6) + 5000
        info["topped_up"] = max(0, need - free)
        client.fill(queue, need - free)
    if tracked:
        stats = client.stats(queue)
        info["depth_before"] = stats["total"]
        info["free_before"] = stats["free"]

    server_pids = target.server.pids()
    workers = target.server.http_workers()
    # The store's own server (redis-server, SecantusDB), if the store has one.
    db_pids = run.db.pids() if run.db is not None else []
    other_pids = [p for p in run.own_pids() if p not in server_pids and p not in db_pids]
    snap = lambda: (cpu.process_cpu_s(server_pids), cpu.process_cpu_s(db_pids),  # noqa: E731
                    cpu.process_cpu_s(other_pids) + cpu.self_cpu_s(), cpu.box_busy_s())
    per_worker = [cpu.process_cpu_s([p]) for p in workers]
    before = snap()
    started = time.monotonic()
    result = _wrk(run, target, scenario.script, seconds, env)
    elapsed = time.monotonic() - started
    after = snap()
    # Per worker: keep-alive connections stick to the worker that accepted
    # them, so a lopsided split shows here (one worker at ~1 core, one idle).
    per_worker = [round((cpu.process_cpu_s([p]) - v) / elapsed, 2)
                  for p, v in zip(workers, per_worker)]
    server_cores, db_cores, other_own, box_cores = (
        (a - b) / elapsed for a, b in zip(after, before))
    wrk_cores = result.cpu_s / elapsed

    if tracked:
        stats = client.stats(queue)
        info["depth_after"] = stats["total"]
        info["free_after"] = stats["free"]
    counters = result.counters
    duration = counters.get("duration_us", 0) / 1e6 or result.requests / max(result.requests_per_s, 1e-9)
    if scenario.per_request is None:
        counted = counters.get("listed") if scenario.prep == "list" else counters.get("deleted", 0)
        messages_per_s = counted / duration
    else:
        ok = 1 - result.non_2xx / result.requests if result.requests else 0
        messages_per_s = result.requests_per_s * ok * scenario.per_request
    if scenario.prep in ("consume", "cycle"):
        # A 204 is a DELETE or an empty claim; the counts hold if the queue
        # never ran dry, i.e. it still has free messages after the run.
        info["ran_dry"] = info.get("free_after", 0) == 0
        if scenario.prep == "consume":
            info["deleted_by_stats"] = info["depth_before"] - info["depth_after"]

    row = dataclasses.asdict(result)
    row.pop("counters")
    row.pop("phases")
    rps = result.requests_per_s
    row.update(
        stack=target.stack, store=target.store, server=target.kind, workers=target.workers,
        scenario=name, messages_per_s=round(messages_per_s, 1),
        connections=connections_for(run, target),
        server_cores=round(server_cores, 2), worker_cores=per_worker,
        seconds=seconds,
        db_server=run.db.name if run.db is not None else None,
        db_cores=round(db_cores, 2) if db_pids else None,
        wrk_cores=round(wrk_cores, 2),
        # CPU per request/message moves far less with foreign load than rates do.
        server_cpu_us_per_request=round(server_cores * 1e6 / rps, 1) if rps else None,
        server_cpu_us_per_message=(round(server_cores * 1e6 / messages_per_s, 1)
                                   if messages_per_s else None),
        db_cpu_us_per_request=(round(db_cores * 1e6 / rps, 1)
                               if db_pids and rps else None),
        own_other_cores=round(other_own, 2),
        foreign_cores=round(max(0.0, box_cores - server_cores - db_cores
                                - wrk_cores - other_own), 2),
        counters=counters, **info)
    # All keep-alive connections on one worker while a core idles: the rate
    # says more about the accept race than about the request path.
    row["box_idle_cores"] = round(max(0.0, (os.cpu_count() or 1) - box_cores), 2)
    row["lopsided"] = (len(per_worker) > 1 and max(per_worker) > 0.3
                       and min(per_worker) < 0.25 * max(per_worker)
                       and row["box_idle_cores"] > 0.25)
    if label:
        row["depth_label"] = label
        row.setdefault("depth_before", 0)   # a fresh queue
    return row


def measure_clean(run: Run, target: Target, name: str, scenario: Scenario,
                  **kwargs) -> dict:
    args = run.args
    row = measure(run, target, name, scenario, **kwargs)
    cost = run.run_cost(kwargs.get("seconds"), kwargs.get("warmup"))
    run.planned -= cost
    attempts = [_brief(row)]
    badness = lambda r: (bool(r.get("ran_dry")), r["lopsided"],  # noqa: E731
                         r["foreign_cores"] > args.max_foreign, r["foreign_cores"])
    # Repeat (at most MAX_REPEATS times) only while every run still planned
    # keeps its time. wrk opens all its connections at once and keep-alive
    # pins each to the uvicorn worker that accepted it, so a run can land
    # lopsided by chance: that is the load generator, not the server.
    while _needs_repeat(row, args) and len(attempts) <= MAX_REPEATS:
        if run.slack() <= cost + 5:
            run.skipped.append(f"repeat of {target.stack} {name} (time budget)")
            break
        print(f"   ({_why(row, args.max_foreign)}: repeating)", flush=True)
        time.sleep(2)
        if row.get("ran_dry"):
            args.claim_fill *= 2
        again = measure(run, target, name, scenario, **kwargs)
        attempts.append(_brief(again))
        if badness(again) <= badness(row):
            row = again
    row["noisy"] = row["foreign_cores"] > args.max_foreign or row["lopsided"]
    row["attempts"] = attempts
    run.rows.append(row)
    print(_line(row), flush=True)
    return row


MAX_REPEATS = 2


def _needs_repeat(row: dict, args: argparse.Namespace) -> bool:
    return bool(row["foreign_cores"] > args.max_foreign or row.get("ran_dry")
                or row["lopsided"])


def _why(row: dict, max_foreign: float) -> str:
    if row.get("ran_dry"):
        return "ran dry"
    if row["foreign_cores"] > max_foreign or not row["lopsided"]:
        return f"foreign load {row['foreign_cores']:.2f} cores"
    return f"lopsided: worker cores {row['worker_cores']}"


def _brief(row: dict) -> dict:
    return {k: row[k] for k in ("requests_per_s", "messages_per_s", "foreign_cores",
                                "worker_cores")}


def _line(row: dict) -> str:
    flag = " NOISY" if row["noisy"] else ""
    flag += " RAN-DRY" if row.get("ran_dry") else ""
    flag += f" LOPSIDED {row['worker_cores']}" if row["lopsided"] else ""
    db = f" {row['db_server']} {row['db_cores']:.2f}" if row.get("db_cores") is not None else ""
    label = row["scenario"] + (f"@{row['depth_label']}" if row.get("depth_label") else "")
    return (f"  {row['stack']:<16} {label:<24} {row['requests_per_s']:>8.0f} req/s "
            f"{row['messages_per_s']:>8.0f} msgs/s  p50 {row['p50_ms']:6.1f} "
            f"p99 {row['p99_ms']:6.1f} ms  server {row['server_cores']:.2f}"
            f" ({row['server_cpu_us_per_request']} us/req){db}"
            f" wrk {row['wrk_cores']:.2f} foreign {row['foreign_cores']:.2f}"
            + (f" non-2xx {row['non_2xx']}" if row["non_2xx"] else "")
            + (f" errors {row['errors']}" if row["errors"] else "") + flag)


# ---------------------------------------------------------------- phases

def run_scenarios(run: Run, targets: list[Target]) -> None:
    """Every scenario on every target, taking turns (order flips per scenario)."""
    for i, name in enumerate(run.args.scenarios):
        scenario = SCENARIOS[name]
        turn = [t for t in targets if t.kind == "mailslot" or not scenario.mailslot_only]
        for target in [t for t in turn if name in NOT_ON_STORE.get(t.store, {})]:
            turn.remove(target)
            run.skipped.append(f"{target.stack} {name} ({NOT_ON_STORE[target.store][name]})")
        if i % 2:
            turn.reverse()
        for target in turn:
            seconds = seconds_for(run.args, target.store)
            if run.time_left() < run.run_cost(seconds) + 5:
                run.skipped.append(f"{target.stack} {name} (time budget)")
                run.planned -= run.run_cost(seconds)
                continue
            measure_clean(run, target, name, scenario, seconds=seconds)


def seconds_for(args: argparse.Namespace, store: str) -> int:
    """Measured seconds of a scenario run: --seconds, but --mongodb-seconds on
    the MongoDB-wire test server (rows for information, not judged)."""
    return args.mongodb_seconds if store == "mongodb" else args.seconds


FLAT_ORDER = ("a", "b", "b", "a")   # ABBA: a linear drift cancels out of the means


def flat_cost_s(run: Run) -> float:
    return 2 * len(FLAT_ORDER) * run.run_cost(run.args.flat_seconds, run.args.flat_warmup)


def run_flat(run: Run, target: Target) -> None:
    """Claim+delete at constant depth on a --cycle-depth queue vs a queue of
    --flat-depth messages, then POST 1 x 1 KB on fresh queues vs that deep
    queue; each pair in ABBA order with --flat-seconds runs; the targets use
    the means.

    Claim+delete goes first so that it measures the deep queue at
    --flat-depth: the POST runs add ~50,000 messages each, and past 2**20
    (1,048,576) every hash table of the queue doubles, after which Redis
    rehashes them incrementally, a step per operation on them, costing ~60%
    more Redis CPU per request until the ~1M entries have moved (bench/README,
    "Flat cost"; ``python -m bench.rehash``)."""
    args = run.args
    if run.time_left() < flat_cost_s(run) + FLAT_FILL_S:
        run.skipped.append(f"flat-cost runs of {target.stack} (time budget)")
        print(f"  skipping flat-cost runs of {target.stack}: time budget", flush=True)
        run.planned -= flat_cost_s(run)
        run.reserve -= FLAT_FILL_S
        return
    deep = run.queue(f"{target.kind[0]}-deep")
    took = (fill.fill(target.uri, PROJECT, deep, args.flat_depth) if target.uri
            else target.client.fill(deep, args.flat_depth))
    run.reserve -= FLAT_FILL_S
    print(f"  filled {deep} with {args.flat_depth} messages in {took:.1f} s", flush=True)
    small = run.queue(f"{target.kind[0]}-small")
    post, cycle = {"a": (None, 0, "fresh"), "b": (deep, args.flat_depth, "deep")}, {
        "a": (small, args.cycle_depth, "small"), "b": (deep, args.flat_depth, "deep")}
    for name, scenario, plan in [("flat_claim_delete", CYCLE, cycle),
                                 ("flat_post_1x1KB", SCENARIOS["post_1x1KB"], post)]:
        for key in FLAT_ORDER:
            queue, depth, label = plan[key]
            measure_clean(run, target, name, scenario, queue=queue, depth=depth,
                          label=label, seconds=args.flat_seconds,
                          warmup=args.flat_warmup)


def signed_plan(args: argparse.Namespace) -> interleaved.Plan:
    return interleaved.Plan(phases=args.signed_phases, period=args.signed_period,
                            guard=args.signed_guard, warmup=args.warmup)


def signed_cost_s(run: Run) -> float:
    """Wall time of one interleaved run: wrk's seconds, minting, the gate."""
    return signed_plan(run.args).wrk_seconds + 3


def run_signed(run: Run, target: Target) -> None:
    """POST 1 x 1 KB through a signed URL vs with account headers, both
    kinds interleaved in time within one wrk run (bench/interleaved.py);
    repeated once when foreign load made it noisy, the quieter kept.

    Each kind posts to a queue of its own, new for the run: both grow at the
    same rate, so a table doubling in Redis (see run_flat) falls on both."""
    cost = signed_cost_s(run)
    run.planned -= cost
    if run.time_left() < cost:
        run.skipped.append(f"signed-vs-unsigned run of {target.stack} (time budget)")
        return
    rows = _signed_rows(run, target)
    if rows[0]["noisy"]:
        if run.slack() > cost + 5:
            why = ("p99 above the guard" if rows[0]["p99_above_guard"]
                   else f"foreign load {rows[0]['foreign_cores']:.2f} cores")
            print(f"   ({why}: repeating)", flush=True)
            again = _signed_rows(run, target)
            attempts = [_brief(r) for r in rows + again]
            badness = lambda r: (r["p99_above_guard"], r["foreign_cores"])  # noqa: E731
            if badness(again[0]) <= badness(rows[0]):
                rows = again
            for row in rows:
                row["attempts"] = attempts
        else:
            run.skipped.append(f"repeat of {target.stack} signed_interleaved (time budget)")
    for row in rows:
        run.rows.append(row)
        print(_line(row), flush=True)
    signed = rows[1]
    print(f"   signed/unsigned {signed['ab']['ratio']} (95% interval "
          f"{signed['ab']['interval']}, {len(signed['ab']['blocks'])} ABBA blocks)", flush=True)


def _signed_rows(run: Run, target: Target) -> list[dict]:
    """One interleaved run: a row per kind (unsigned first)."""
    args = run.args
    plan = signed_plan(args)
    queues = {kind: run.queue(f"{target.kind[0]}-ab-{kind}") for kind in interleaved.KINDS}
    env = {"BENCH_PROJECT": PROJECT, "BENCH_QUEUE": queues["unsigned"],
           "BENCH_SIGNED_QUEUE": queues["signed"],
           "BENCH_CREDENTIAL": target.server.mint(queues["signed"], ttl=3600)}
    foreign_before = quiet_gate(run)
    server_pids = target.server.pids()
    db_pids = run.db.pids() if run.db is not None else []
    pids = interleaved.Pids(
        server=server_pids, workers=target.server.http_workers(), db=db_pids,
        other=[p for p in run.own_pids() if p not in server_pids and p not in db_pids])
    m = interleaved.measure(target.server.url, pids, plan, connections_for(run, target),
                            env, os.cpu_count() or 1)
    kinds = {kind: interleaved.summary(m.phases, kind) for kind in interleaved.KINDS}
    ratio = round(kinds["signed"]["messages_per_s"] / kinds["unsigned"]["messages_per_s"], 3) \
        if kinds["unsigned"]["messages_per_s"] else None
    blocks = [round(r, 3) for r in interleaved.block_ratios(m.phases)]
    # A response later than the guard may count for the phase after its
    # request's: a few (max above the guard) mix nothing measurable, but
    # with p99 above it the phases no longer hold one kind each.
    mixed = m.result.p99_ms > plan.guard * 1000
    noisy = m.foreign_cores > args.max_foreign or mixed
    lopsided = (len(m.worker_cores) > 1 and max(m.worker_cores) > 0.3
                and min(m.worker_cores) < 0.25 * max(m.worker_cores)
                and m.box_idle_cores > 0.25)
    rows = []
    for kind, figures in kinds.items():
        rate = figures["messages_per_s"]
        rows.append({
            "requests_per_s": rate, "p50_ms": m.result.p50_ms, "p99_ms": m.result.p99_ms,
            "max_ms": m.result.max_ms, "latency_of": "both kinds (one wrk histogram)",
            "p99_above_guard": mixed,
            "mean_latency_ms": round(connections_for(run, target) / rate * 1000, 2)
            if rate else None,
            "requests": figures["ok"], "errors": m.result.errors, "non_2xx": figures["bad"],
            "cpu_s": m.result.cpu_s, "stack": target.stack, "store": target.store,
            "server": target.kind, "workers": target.workers,
            "scenario": "signed_interleaved", "messages_per_s": rate,
            "connections": connections_for(run, target),
            "server_cores": figures["server_cores"], "worker_cores": m.worker_cores,
            "seconds": round(figures["phases"] * plan.settled, 2),
            "db_server": run.db.name if run.db is not None else None,
            "db_cores": figures["db_cores"] if db_pids else None, "wrk_cores": m.wrk_cores,
            "server_cpu_us_per_request": figures["server_cpu_us_per_message"],
            "server_cpu_us_per_message": figures["server_cpu_us_per_message"],
            "db_cpu_us_per_request": figures["db_cpu_us_per_message"] if db_pids else None,
            "own_other_cores": m.other_cores, "foreign_cores": m.foreign_cores,
            "counters": {}, "queue": queues[kind], "foreign_before": foreign_before,
            "box_idle_cores": m.box_idle_cores, "lopsided": lopsided, "noisy": noisy,
            "attempts": [], "depth_label": kind, "depth_before": 0,
            "ab": {"period_s": plan.period, "guard_s": plan.guard,
                   "phases": [r for r in m.phases if r["kind"] == kind],
                   "ratio": ratio, "blocks": blocks,
                   "interval": interleaved.interval(m.phases)}})
    for row in rows:
        row["attempts"] = [_brief(r) for r in rows]
    return rows


# ---------------------------------------------------------------- targets

@dataclasses.dataclass
class Check:
    label: str
    value: float | None
    goal: float
    detail: str
    noisy: bool = False

    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        if not self.goal:
            return "info"
        return ("PASS" if self.value >= self.goal else "MISS") + (" (noisy)" if self.noisy else "")


def find(rows: list[dict], stack: str, scenario: str, label: str | None = None) -> dict | None:
    for row in rows:
        if (row["stack"] == stack and row["scenario"] == scenario
                and row.get("depth_label") == label):
            return row
    return None


def mean_row(rows: list[dict], stack: str, scenario: str, label: str) -> dict | None:
    """The mean of the flat-cost runs with this label (ABBA: two of each)."""
    found = [r for r in rows if r["stack"] == stack and r["scenario"] == scenario
             and r.get("depth_label") == label]
    if not found:
        return None
    mean = lambda key: sum(r[key] or 0 for r in found) / len(found)  # noqa: E731
    return {"n": len(found), "messages_per_s": mean("messages_per_s"),
            "server_cpu_us_per_message": mean("server_cpu_us_per_message"),
            "depth_before": min(r.get("depth_before") or 0 for r in found),
            "noisy": any(r["noisy"] for r in found)}


def ratio(a: dict | None, b: dict | None, key: str) -> tuple[float | None, bool]:
    if not a or not b or not b[key]:
        return None, False
    return round(a[key] / b[key], 2), a["noisy"] or b["noisy"]


def pair_check(rows: list[dict], stack: str, scenario: str, labels: tuple[str, str],
               goal: float, title: str) -> list[Check]:
    """A ratio of the means of two labelled run groups (ABBA), if both ran."""
    a, b = (mean_row(rows, stack, scenario, label) for label in labels)
    if not a or not b:
        return []
    value, noisy = ratio(a, b, "messages_per_s")
    cost, _ = ratio(a, b, "server_cpu_us_per_message")
    detail = (f"means of {a['n']}+{b['n']} runs: {a['messages_per_s']:.0f} / "
              f"{b['messages_per_s']:.0f} msgs/s (depth {a['depth_before']} vs "
              f"{b['depth_before']}); server CPU/msg {labels[0]}/{labels[1]} {cost}")
    return [Check(title, value, goal, detail, noisy)]


def signed_check(rows: list[dict], stack: str) -> list[Check]:
    """Signed over unsigned POST msgs/s from the interleaved run, if it ran."""
    signed = find(rows, stack, "signed_interleaved", "signed")
    unsigned = find(rows, stack, "signed_interleaved", "unsigned")
    if not signed or not unsigned:
        return []
    ab = signed["ab"]
    cost, _ = ratio(signed, unsigned, "server_cpu_us_per_message")
    detail = (f"interleaved in one wrk run, {len(ab['phases'])}+{len(unsigned['ab']['phases'])}"
              f" phases of {ab['period_s']} s ({ab['guard_s']} s guard): "
              f"{signed['messages_per_s']:.0f} / {unsigned['messages_per_s']:.0f} msgs/s;"
              f" 95% interval {ab['interval']} over {len(ab['blocks'])} ABBA blocks;"
              f" server CPU/msg signed/unsigned {cost}")
    return [Check(f"{stack} signed / unsigned POST msgs/s", ab["ratio"], 0.9, detail,
                  signed["noisy"])]


def checks(rows: list[dict], stores: list[str]) -> list[Check]:
    out = []
    ms, zq = "mailslot-redis", "zaqar-redis"
    with_zaqar = any(r["stack"] == zq for r in rows)
    for scenario, key, goal, what in [] if not with_zaqar else [
            ("post_1x1KB", "requests_per_s", 6, "single POST req/s"),
            ("post_10x1KB", "messages_per_s", 5, "batch-of-10 msgs/s"),
            ("claim_delete", "messages_per_s", 5, "claimed-and-deleted msgs/s"),
            ("list_10", "messages_per_s", 0, "listed msgs/s (no target)")]:
        a, b = find(rows, ms, scenario), find(rows, zq, scenario)
        value, noisy = ratio(a, b, key)
        detail = "missing run"
        if a and b:
            # The same comparison in server CPU per message: steadier under
            # foreign load, and what the servers would do given the same cores.
            cpu_ratio, _ = ratio(b, a, "server_cpu_us_per_message")
            detail = (f"{a[key]:.0f} / {b[key]:.0f}; server CPU us/msg "
                      f"{b['server_cpu_us_per_message']} / {a['server_cpu_us_per_message']}"
                      f" = {cpu_ratio}x")
        out.append(Check(f"Mailslot/Zaqar {what}", value, goal, detail, noisy))
    for store in stores:
        stack = f"mailslot-{store}"
        a, b = find(rows, stack, "post_1x1KB"), find(rows, stack, "ping")
        value, noisy = ratio(a, b, "requests_per_s")
        detail = f"{a['requests_per_s']:.0f} / {b['requests_per_s']:.0f}" if a and b else "missing run"
        # On the MongoDB-wire test server the figure is the server's, not
        # Mailslot's (see NOT_ON_STORE): recorded, not judged.
        goal = 0 if store == "mongodb" else 0.15
        out.append(Check(f"{stack} POST 1x1KB / own ping (req/s)", value, goal, detail, noisy))
    for row_zq_ping in [find(rows, zq, "ping")]:
        a = find(rows, zq, "post_1x1KB")
        value, noisy = ratio(a, row_zq_ping, "requests_per_s")
        if value is not None:
            out.append(Check("zaqar-redis POST 1x1KB / own ping (req/s, info)", value, 0,
                             f"{a['requests_per_s']:.0f} / {row_zq_ping['requests_per_s']:.0f}",
                             noisy))
    for store in stores:
        stack = f"mailslot-{store}"
        for scenario, what in [("flat_post_1x1KB", "POST 1x1KB"),
                               ("flat_claim_delete", "claim+delete")]:
            base = "fresh" if "post" in scenario else "small"
            out += pair_check(rows, stack, scenario, ("deep", base), 0.8,
                              f"{stack} flat {what}: deep / fresh msgs/s")
        out += signed_check(rows, stack)
    return out


# ---------------------------------------------------------------- main

def _versions(zaqar: bool) -> dict:
    out = {"wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0],
           "redis-server": subprocess.run(["redis-server", "--version"], capture_output=True,
                                          text=True).stdout.split()[2]}
    if zaqar:
        out["zaqar"] = subprocess.run(
            [str(ZAQAR_VENV / "bin" / "python"), "-c",
             "from importlib.metadata import version as v; print(v('zaqar'), v('gunicorn'))"],
            capture_output=True, text=True).stdout.strip()
    return out


# Scenarios not run on a store, and why (recorded in the results' "skipped").
_SECANTUS_SCAN = ("the MongoDB-wire test server's planner fetches and sorts every message"
                  " of the queue for each claim/list (explain: 2,000 keys and docs examined"
                  " for limit 10 at 2,000 messages; ~1 req/s at 3,000-5,000): it would"
                  " measure SecantusDB, not the driver")
NOT_ON_STORE = {"mongodb": {"claim_delete": _SECANTUS_SCAN, "list_10": _SECANTUS_SCAN}}
# Stores with flat-cost runs: filling 1,000,000 messages into the Python
# MongoDB-wire test server would take most of the budget.
FLAT_STORES = ("redis", "sqlite")
DEFAULT_STORES = ["redis", "sqlite"] + (["mongodb"] if secantus_installed() else [])


def start_store(run: Run, store: str, tmp: str, phase: contextlib.ExitStack) -> str:
    """Start the store's own server, if any; return Mailslot's storage URI."""
    if store == "redis":
        redis = run.db = phase.enter_context(RedisServer(tmp))
        run.managed.append(redis)
        return redis.uri(1)
    if store == "mongodb":
        run.db = phase.enter_context(SecantusServer(tmp))
        run.managed.append(run.db)
        return run.db.uri
    return run.args.sqlite_uri or f"sqlite:///{tmp}/bench.db"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", nargs="+", default=DEFAULT_STORES,
                        choices=["redis", "sqlite", "mongodb"],
                        help="Mailslot stores, in order (mongodb: SecantusDB from"
                             " .venv-mongo, a test server, not mongod)")
    parser.add_argument("--zaqar", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the Zaqar 23 peer on the Redis store's redis-server"
                             " (installed with the peer's setup script if missing)")
    parser.add_argument("--flat", action=argparse.BooleanOptionalAction, default=True,
                        help="flat-cost runs: fresh vs --flat-depth queue")
    parser.add_argument("--signed", action=argparse.BooleanOptionalAction, default=True,
                        help="signed vs unsigned POST on the first store, interleaved"
                             " in one wrk run (bench/interleaved.py)")
    parser.add_argument("--seconds", type=int, default=7,
                        help="measured seconds of each scenario run (7: `make bench`,"
                             " MongoDB-wire rows included, stays under 10 minutes on a"
                             " VM where Zaqar posts ~450 messages/s)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--mongodb-connections", type=int, default=8,
                        help="wrk connections for the mongodb store: SecantusDB (a"
                             " Python test server) saturates one core and answers 64"
                             " connections with timeouts (503)")
    parser.add_argument("--workers", type=int, default=2, help="Mailslot uvicorn workers")
    parser.add_argument("--zaqar-workers", type=int, default=4, help="Zaqar gunicorn sync workers")
    parser.add_argument("--max-foreign", type=float, default=0.3)
    parser.add_argument("--quiet-wait", type=float, default=5,
                        help="seconds to wait for quiet before each run")
    parser.add_argument("--budget", type=float, default=540,
                        help="seconds for the whole run; repeats and later phases are"
                             " skipped when it runs out")
    parser.add_argument("--scenarios", nargs="+", default=DEFAULT_SCENARIOS,
                        choices=list(SCENARIOS))
    parser.add_argument("--claim-fill", type=int, default=20000,
                        help="messages before the claim warm-up (topped up after it)")
    parser.add_argument("--list-fill", type=int, default=5000)
    parser.add_argument("--flat-depth", type=int, default=1000000)
    parser.add_argument("--cycle-depth", type=int, default=2000)
    parser.add_argument("--flat-seconds", type=int, default=5,
                        help="measured seconds of each flat-cost run (4 per pair, ABBA)")
    parser.add_argument("--flat-warmup", type=int, default=1,
                        help="warm-up seconds of each flat-cost run (the server and"
                             " its queues are warm from the scenario runs by then)")
    parser.add_argument("--mongodb-seconds", type=int, default=4,
                        help="measured seconds of each run on the MongoDB-wire test"
                             " server (its rows are information, not judged)")
    parser.add_argument("--signed-phases", type=int, default=64,
                        help="phases of the interleaved signed/unsigned run (U S S U"
                             " blocks: a multiple of 4)")
    parser.add_argument("--signed-period", type=float, default=0.5,
                        help="seconds per phase of the interleaved run")
    parser.add_argument("--signed-guard", type=float, default=0.1,
                        help="seconds at the start of each phase not counted (well"
                             " above p99 latency, so a phase counts one kind only)")
    parser.add_argument("--sqlite-uri", help="default: a new file in a temp dir")
    args = parser.parse_args(argv)
    if args.signed_phases % 4 or not 0 < args.signed_guard < args.signed_period:
        parser.error("--signed-phases must be a multiple of 4 and --signed-guard"
                     " within --signed-period")

    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C: every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if args.zaqar and "redis" in args.stores and not zaqar_installed():
        install_zaqar()
    run = Run(args)
    for store in args.stores:
        zaqar_too = store == "redis" and args.zaqar
        run.planned += run.run_cost(seconds_for(args, store)) * sum(
            2 if zaqar_too and not SCENARIOS[n].mailslot_only else 1 for n in args.scenarios
            if n not in NOT_ON_STORE.get(store, {}))
        flat = args.flat and store in FLAT_STORES
        run.planned += flat_cost_s(run) if flat else 0
        run.planned += signed_cost_s(run) if args.signed and store == args.stores[0] else 0
        run.reserve += STACK_START_S + (FLAT_FILL_S if flat else 0)
    print(f"Mailslot: {args.workers} uvicorn workers; Zaqar: {args.zaqar_workers} gunicorn sync"
          f" workers; wrk -t1 -c{args.connections}, {args.warmup} s warm-up + {args.seconds} s",
          flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="mailslot-bench-") as tmp:
            for store in args.stores:
                run.reserve -= STACK_START_S
                runs = sum(1 for n in args.scenarios if n not in NOT_ON_STORE.get(store, {}))
                if run.time_left() < min(5, runs) * run.run_cost(seconds_for(args, store)):
                    run.skipped.append(f"store {store} (time budget)")
                    continue
                targets = []
                with contextlib.ExitStack() as phase:
                    uri = start_store(run, store, tmp, phase)
                    server = phase.enter_context(MailslotServer(uri, args.workers, tmp))
                    run.managed.append(server)
                    targets.append(Target(f"mailslot-{store}", "mailslot", store, server,
                                          args.workers, uri))
                    if store == "redis" and args.zaqar:
                        zaqar = phase.enter_context(ZaqarServer(
                            "127.0.0.1", run.db.port, tmp, workers=args.zaqar_workers))
                        run.managed.append(zaqar)
                        targets.append(Target("zaqar-redis", "zaqar", store, zaqar,
                                              args.zaqar_workers))
                    print(f"== {store}: " + ", ".join(
                        f"{t.stack} {t.server.url}" for t in targets)
                        + (f" ({run.db.name} 127.0.0.1:{run.db.port})" if run.db else ""),
                        flush=True)
                    run_scenarios(run, targets)
                    if args.signed and store == args.stores[0]:
                        run_signed(run, targets[0])
                    if args.flat and store in FLAT_STORES:
                        run_flat(run, targets[0])
                run.managed = []
                run.db = None
    except KeyboardInterrupt:
        print("interrupted: writing what was measured", flush=True)
    finally:
        report(run)
    return 0


def report(run: Run) -> None:
    args = run.args
    results = checks(run.rows, [s for s in args.stores
                                if any(r["store"] == s and r["server"] == "mailslot"
                                       for r in run.rows)])
    pings = {r["stack"]: r["requests_per_s"] for r in run.rows if r["scenario"] == "ping"}
    for row in run.rows:
        if row["stack"] in pings and row["scenario"] != "ping":
            row["ratio_to_ping"] = round(row["requests_per_s"] / pings[row["stack"]], 3)
            row["msgs_ratio_to_ping"] = round(row["messages_per_s"] / pings[row["stack"]], 3)
    stamp = datetime.datetime.now(datetime.timezone.utc)
    report = {"date": stamp.isoformat(timespec="seconds"), "host": platform.node(),
              "cpus": os.cpu_count(), "python": sys.version.split()[0],
              "versions": _versions(args.zaqar and "redis" in args.stores),
              "settings": vars(args), "wall_s": round(time.monotonic() - run.started, 1),
              "skipped": run.skipped, "results": run.rows,
              "targets": [dataclasses.asdict(c) | {"verdict": c.verdict()} for c in results]}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp:%Y-%m-%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print("\n== targets (ratios within this run)")
    for c in results:
        goal = f">= {c.goal:g}" if c.goal else "info"
        value = "-" if c.value is None else f"{c.value:.2f}x"
        print(f"  {c.verdict():<14} {c.label:<58} {value:>8}  ({goal}; {c.detail})")
    for item in run.skipped:
        print(f"  skipped: {item}")
    print(f"results: {path}  ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
