"""CPU accounting from /proc: per process, and the whole box."""

from __future__ import annotations

import os
from typing import NamedTuple

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pids: list[int]) -> float:
    """utime + stime of the given processes, in seconds (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def box_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICKS


def children(pid: int) -> list[int]:
    """pid and all its descendants (any depth)."""
    parents: dict[int, int] = {}
    for candidate in os.listdir("/proc"):
        if not candidate.isdigit():
            continue
        try:
            with open(f"/proc/{candidate}/stat") as f:
                parents[int(candidate)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    found, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                grew = True
    return sorted(found)


def self_cpu_s() -> float:
    """CPU seconds of this (runner) process."""
    usage = os.times()
    return usage.user + usage.system


class Usage(NamedTuple):
    """CPU seconds so far: of some processes, of this one, of the whole box."""

    processes: float
    runner: float
    box: float

    @classmethod
    def now(cls, pids: list[int]) -> Usage:
        return cls(process_cpu_s(pids), self_cpu_s(), box_busy_s())

    def since(self, start: Usage) -> Usage:
        return Usage(*(a - b for a, b in zip(self, start)))

    @property
    def foreign(self) -> float:
        """Busy seconds of the box outside the processes and this one (of a
        ``since`` difference)."""
        return max(0.0, self.box - self.processes - self.runner)
