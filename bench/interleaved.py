"""Signed vs unsigned POST, interleaved in time within one wrk run.

Why not two separate runs: on this shared 2-core VM a server's rate moves by
10-15% from one second to the next under the same load, and by as much
between identical runs, which is the size of the difference the signed-URL
target is about (signed >= 0.9 x unsigned). Separate runs compare different
seconds of the machine; four runs in ABBA order read 0.77-0.99 for the same
code.

How: one wrk run (``scripts/post1_ab.lua``, 64 connections) whose time is cut
into phases of ``period`` seconds, in U S S U blocks, aligned on a
CLOCK_MONOTONIC instant that wrk (LuaJIT FFI) and this runner both read. A
request is of the kind of the phase it is sent in: unsigned (account headers,
one queue) or signed (``Authorization: Signed``, a credential for another
queue). Responses count for their phase only after its first ``guard``
seconds, by which time every request of the phase before has been answered
(the guard is several times the p99 latency), and this runner reads the CPU
of the server, of redis-server and of the box at those same settled
boundaries. So each phase gives a rate and a CPU cost of one kind, measured
side by side with the other kind a second away, on the same connections and
the same worker split. The ratio is the mean signed rate over the mean
unsigned rate; its 95% interval comes from resampling the ABBA blocks.

What it cannot give per kind: wrk's latency percentiles (one histogram for
the run). The mean latency of each kind follows from the closed loop:
connections / rate.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from typing import Callable, Sequence

from bench import cpu, wrk

PATTERN = ("unsigned", "signed", "signed", "unsigned")  # as post1_ab.lua's is_signed
KINDS = ("unsigned", "signed")
RESAMPLES = 2000


@dataclasses.dataclass(frozen=True)
class Plan:
    phases: int          # a multiple of 4 (whole ABBA blocks)
    period: float        # seconds per phase
    guard: float         # seconds at the start of a phase that are not counted
    warmup: float        # seconds of load before phase 0

    @property
    def settled(self) -> float:
        return self.period - self.guard

    @property
    def wrk_seconds(self) -> int:
        return math.ceil(self.warmup + self.phases * self.period + 1)


def kind_of(phase: int) -> str:
    return PATTERN[phase % len(PATTERN)]


@dataclasses.dataclass
class Snapshot:
    at: float
    server: float
    db: float
    workers: list[float]
    other: float         # the bench's other processes and this runner
    box: float


@dataclasses.dataclass
class Pids:
    server: list[int]
    workers: list[int]
    db: list[int]
    other: list[int]

    def snapshot(self) -> Snapshot:
        return Snapshot(time.monotonic(), cpu.process_cpu_s(self.server),
                        cpu.process_cpu_s(self.db),
                        [cpu.process_cpu_s([p]) for p in self.workers],
                        cpu.process_cpu_s(self.other) + cpu.self_cpu_s(), cpu.box_busy_s())


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _foreign(a: Snapshot, b: Snapshot, wrk_cores: float) -> float:
    """Cores of the box busy with work outside the bench, between a and b."""
    seconds = b.at - a.at
    own = (b.server - a.server) + (b.db - a.db) + (b.other - a.other)
    return max(0.0, (b.box - a.box - own) / seconds - wrk_cores)


def phase_rows(plan: Plan, ok: Sequence[int], bad: Sequence[int],
               windows: Sequence[tuple[Snapshot, Snapshot]], wrk_cores: float) -> list[dict]:
    """One record per phase: its kind, count, rate and CPU per message."""
    rows = []
    for p, (a, b) in enumerate(windows):
        seconds = b.at - a.at
        server, db = b.server - a.server, b.db - a.db
        rows.append({
            "phase": p, "kind": kind_of(p), "ok": ok[p], "bad": bad[p],
            "messages_per_s": round(ok[p] / plan.settled, 1),
            "server_cores": round(server / seconds, 3),
            "db_cores": round(db / seconds, 3),
            "server_cpu_us_per_message": round(server * 1e6 / ok[p], 1) if ok[p] else None,
            "db_cpu_us_per_message": round(db * 1e6 / ok[p], 1) if ok[p] else None,
            "foreign_cores": round(_foreign(a, b, wrk_cores), 2)})
    return rows


def block_ratios(phases: Sequence[dict]) -> list[float]:
    """Signed over unsigned messages in each whole ABBA block."""
    out = []
    for start in range(0, len(phases) - len(PATTERN) + 1, len(PATTERN)):
        block = phases[start:start + len(PATTERN)]
        counts = {kind: sum(r["ok"] for r in block if r["kind"] == kind) for kind in KINDS}
        if counts["unsigned"]:
            out.append(counts["signed"] / counts["unsigned"])
    return out


def interval(phases: Sequence[dict], seed: int = 1) -> tuple[float, float] | None:
    """95% interval of signed/unsigned messages, resampling whole blocks."""
    blocks = [phases[i:i + len(PATTERN)] for i in range(0, len(phases), len(PATTERN))
              if len(phases[i:i + len(PATTERN)]) == len(PATTERN)]
    if len(blocks) < 2:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(RESAMPLES):
        picked = [r for _ in blocks for r in rng.choice(blocks)]
        signed = sum(r["ok"] for r in picked if r["kind"] == "signed")
        unsigned = sum(r["ok"] for r in picked if r["kind"] == "unsigned")
        if unsigned:
            ratios.append(signed / unsigned)
    ratios.sort()
    return (round(ratios[int(0.025 * len(ratios))], 3),
            round(ratios[int(0.975 * len(ratios)) - 1], 3))


def summary(phases: Sequence[dict], kind: str) -> dict:
    """The figures of one kind over its phases (rates averaged, CPU summed)."""
    mine = [r for r in phases if r["kind"] == kind]
    ok = sum(r["ok"] for r in mine)
    mean = lambda key: sum(r[key] for r in mine) / len(mine)  # noqa: E731
    per_message = lambda key: (sum((r[key] or 0) * r["ok"] for r in mine) / ok  # noqa: E731
                               if ok else None)
    return {"phases": len(mine), "ok": ok, "bad": sum(r["bad"] for r in mine),
            "messages_per_s": round(mean("messages_per_s"), 1),
            "server_cores": round(mean("server_cores"), 2),
            "db_cores": round(mean("db_cores"), 2),
            "server_cpu_us_per_message": _round(per_message("server_cpu_us_per_message")),
            "db_cpu_us_per_message": _round(per_message("db_cpu_us_per_message")),
            "foreign_cores": round(mean("foreign_cores"), 2)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclasses.dataclass
class Measurement:
    plan: Plan
    result: wrk.WrkResult
    phases: list[dict]
    worker_cores: list[float]
    server_cores: float
    db_cores: float
    wrk_cores: float
    other_cores: float
    foreign_cores: float
    box_idle_cores: float


def measure(url: str, pids: Pids, plan: Plan, connections: int, env: dict[str, str],
            cpus: int) -> Measurement:
    """Run post1_ab.lua under ``plan`` and read the CPU at every phase's
    settled boundaries. ``env`` names the queues, project and credential."""
    t0 = time.monotonic() + plan.warmup
    running = wrk.start(url, "post1_ab.lua", seconds=plan.wrk_seconds,
                        connections=connections,
                        env={**env, "BENCH_AB_T0": repr(t0), "BENCH_AB_PERIOD": repr(plan.period),
                             "BENCH_AB_GUARD": repr(plan.guard),
                             "BENCH_AB_PHASES": str(plan.phases)})
    windows = []
    _sleep_until(t0)
    first = pids.snapshot()
    for p in range(plan.phases):
        _sleep_until(t0 + p * plan.period + plan.guard)
        begin = pids.snapshot()
        _sleep_until(t0 + (p + 1) * plan.period)
        windows.append((begin, pids.snapshot()))
    last = windows[-1][1] if windows else first
    result = running.wait()
    counted = result.phases
    if len(counted.get("ok", [])) != plan.phases:
        raise RuntimeError(f"post1_ab.lua reported {counted!r}, not {plan.phases} phases")
    seconds = last.at - first.at
    wrk_cores = result.cpu_s / plan.wrk_seconds
    cores: Callable[[float, float], float] = lambda a, b: round((b - a) / seconds, 2)  # noqa: E731
    return Measurement(
        plan, result, phase_rows(plan, counted["ok"], counted["bad"], windows, wrk_cores),
        worker_cores=[cores(a, b) for a, b in zip(first.workers, last.workers)],
        server_cores=cores(first.server, last.server), db_cores=cores(first.db, last.db),
        wrk_cores=round(wrk_cores, 2), other_cores=cores(first.other, last.other),
        foreign_cores=round(_foreign(first, last, wrk_cores), 2),
        box_idle_cores=round(max(0.0, cpus - (last.box - first.box) / seconds), 2))
