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
    max_ms: float
    requests: int
    errors: int
    non_2xx: int
    cpu_s: float
    # key=value pairs of the script's "BENCH ..." line (claim/list counters)
    counters: dict = dataclasses.field(default_factory=dict)
    # per-phase lists of a "BENCH_AB ok=n0,n1,... bad=..." line (post1_ab.lua)
    phases: dict = dataclasses.field(default_factory=dict)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse(output: str) -> dict:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    pct = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", output, re.M))

    def pick(key: str) -> float:
        value, unit = re.match(r"([\d.]+)(\w+)", pct[key]).groups()
        return _ms(value, unit)

    latency_max = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(\w+)", output, re.M)
    total = int(re.search(r"(\d+) requests in", output).group(1))
    errors = sum(int(n) for n in re.findall(
        r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    counters = {}
    line = re.search(r"^BENCH (.*)$", output, re.M)
    if line:
        counters = {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line.group(1))}
    phases = {}
    line = re.search(r"^BENCH_AB (.*)$", output, re.M)
    if line:
        phases = {k: [int(n) for n in v.split(",") if n]
                  for k, v in re.findall(r"(\w+)=([\d,]*)", line.group(1))}
    return {"requests_per_s": rate, "p50_ms": pick("50"), "p99_ms": pick("99"),
            "max_ms": _ms(*latency_max.groups()) if latency_max else 0.0,
            "requests": total, "errors": errors,
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0, "counters": counters,
            "phases": phases}


class Running:
    """A wrk run started in the background; ``wait()`` parses its report."""

    def __init__(self, argv: list[str], env: dict[str, str], seconds: int) -> None:
        self._before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._seconds = seconds
        self._process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=env)

    def wait(self) -> WrkResult:
        try:
            stdout, stderr = self._process.communicate(timeout=self._seconds + 30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise RuntimeError("wrk did not finish") from None
        if self._process.returncode != 0:
            raise RuntimeError(f"wrk failed: {stderr.strip()}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - self._before.ru_utime) + (after.ru_stime - self._before.ru_stime)
        return WrkResult(**parse(stdout), cpu_s=cpu)


def start(url: str, script: str, *, seconds: int, connections: int,
          env: dict[str, str] | None = None) -> Running:
    """Start one wrk run (1 thread, leaving the cores to the server)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "--latency", "-s", str(SCRIPTS / script), url]
    return Running(argv, {**os.environ, "BENCH_SCRIPTS": str(SCRIPTS), **(env or {})},
                   seconds)


def run(url: str, script: str, *, seconds: int, connections: int,
        env: dict[str, str] | None = None) -> WrkResult:
    """One wrk run, waited for."""
    return start(url, script, seconds=seconds, connections=connections, env=env).wait()
