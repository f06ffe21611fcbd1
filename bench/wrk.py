"""Run wrk and parse its report."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import resource
import subprocess

SCRIPTS = pathlib.Path(__file__).parent / "scripts"


@dataclasses.dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int
    cpu_s: float
    # key=value pairs of the script's "BENCH ..." line (claim/list counters)
    counters: dict = dataclasses.field(default_factory=dict)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse(output: str) -> dict:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    pct = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", output, re.M))

    def pick(key: str) -> float:
        value, unit = re.match(r"([\d.]+)(\w+)", pct[key]).groups()
        return _ms(value, unit)

    total = int(re.search(r"(\d+) requests in", output).group(1))
    errors = sum(int(n) for n in re.findall(
        r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    counters = {}
    line = re.search(r"^BENCH (.*)$", output, re.M)
    if line:
        counters = {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line.group(1))}
    return {"requests_per_s": rate, "p50_ms": pick("50"), "p99_ms": pick("99"),
            "requests": total, "errors": errors,
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0, "counters": counters}


def run(url: str, script: str, *, seconds: int, connections: int,
        env: dict[str, str] | None = None) -> WrkResult:
    """One wrk run (1 thread, leaving the cores to the server)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
         "--latency", "-s", str(SCRIPTS / script), url],
        capture_output=True, text=True, timeout=seconds + 30,
        env={**os.environ, "BENCH_SCRIPTS": str(SCRIPTS), **(env or {})})
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed: {completed.stderr.strip()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkResult(**parse(completed.stdout), cpu_s=cpu)
