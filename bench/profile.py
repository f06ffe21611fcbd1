"""`python -m bench.profile`: where a Mailslot worker's CPU goes, per scenario.

Starts the stack like the benchmark does (a dedicated redis-server for the
Redis store), runs one wrk scenario while ``py-spy record`` samples every
worker (``--subprocesses --nonblocking``, so the workers are not paused), then
prints the top functions by self and by inclusive share of the samples, and
the server CPU per request of that run. Needs py-spy in the venv
(``.venv/bin/pip install py-spy``).

    .venv/bin/python -m bench.profile --store redis --scenario post_1x1KB
    .venv/bin/python -m bench.profile --store redis --scenario ping --top 40
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench import cpu, wrk
from bench.__main__ import SCENARIOS
from bench.client import Client
from bench.server import MailslotServer, RedisServer


# Where a sample goes: the first rule whose text occurs in the stack wins.
CATEGORIES = [
    ("queue metadata lookup (its own Redis round trip)", ("RedisQueues.get_metadata (",)),
    ("other Redis calls (Lua script / PING): redis-py + socket write",
     ("RedisDriver.guard (", "RedisDriver.is_alive (", "site-packages/redis/")),
    ("storage call (SQLite)", ("queues/storage/sqlite/",)),
    ("HTTP response write (uvicorn send -> socket)", ("RequestResponseCycle.send (",)),
    ("body read + JSON parse (body.parse, long-digit regex)", ("queues/api/body.py",)),
    ("Zaqar post rules (PostRules: ttl, orjson.dumps per message)", ("PostRules.",)),
    ("response views (views.message, links)", ("queues/api/views.py",)),
    ("request-id / other Mailslot middleware", ("queues/api/middleware.py",)),
    ("uuid4 (message/claim ids, request ids)", ("uuid4 (",)),
    ("falcon app + resources (other)", ("App.__call__ (", "site-packages/falcon/")),
    ("uvicorn HTTP parsing, ASGI task start", ("HttpToolsProtocol.",)),
    ("gunicorn master", ("Arbiter.wait_for_signals (",)),
    ("event loop: epoll, socket reads, callbacks (native)", ("Runner.run (",)),
]


def categorize(raw: pathlib.Path, us_per_request: float | None = None) -> str:
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for label, needles in CATEGORIES:
            if any(needle in stack for needle in needles):
                counts[label] += int(count)
                break
        else:
            counts["other (truncated stacks, asyncio timers, ...)"] += int(count)
    out = ["share   CPU us/req  category (first matching rule)"]
    for label, n in counts.most_common():
        share = n / total
        us = f"{share * us_per_request:8.0f}" if us_per_request else "       -"
        out.append(f"{100 * share:5.1f}%  {us}    {label}")
    return "\n".join(out)


def summarize(raw: pathlib.Path, top: int, prefix: str) -> str:
    selfs: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        # Drop the "process NNN:..." / "thread (0x..)" frames py-spy adds.
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        selfs[_short(frames[-1], prefix)] += n
        for frame in {_short(f, prefix) for f in frames}:
            inclusive[frame] += n
    out = [f"{total} samples (active CPU only)", "", "self %  function"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in selfs.most_common(top)]
    out += ["", "incl %  function"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def _short(frame: str, prefix: str) -> str:
    # "name (path/to/file.py:123)" -> "name (file-relative path:123)"
    m = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    name, path, _line = m.groups()
    path = path.replace(prefix, "")
    path = re.sub(r".*/site-packages/", "", path)
    path = re.sub(r".*/lib/python3\.\d+/", "stdlib/", path)
    return f"{name} ({path})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--store", choices=["redis", "sqlite"], default="redis")
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="post_1x1KB")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", help="keep the raw (collapsed) profile here")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy", path=str(pathlib.Path(sys.executable).parent))
    if not py_spy:
        parser.error("py-spy not found in the venv: .venv/bin/pip install py-spy")
    scenario = SCENARIOS[args.scenario]
    with tempfile.TemporaryDirectory(prefix="mailslot-profile-") as tmp:
        raw = pathlib.Path(args.out or f"{tmp}/profile.txt")
        redis = RedisServer(tmp) if args.store == "redis" else None
        try:
            uri = redis.uri(1) if redis else f"sqlite:///{tmp}/bench.db"
            with MailslotServer(uri, args.workers, tmp) as server:
                queue = f"profile-{args.scenario}".replace("_", "-")
                env = {"BENCH_QUEUE": queue}
                client = Client(server.url)
                if scenario.prep == "list":
                    client.fill(queue, 5000)
                elif scenario.prep == "consume":
                    client.fill(queue, 150000)
                if scenario.script == "post1_signed.lua":
                    env["BENCH_CREDENTIAL"] = server.mint(queue, ttl=3600)
                wrk.run(server.url, scenario.script, seconds=2,
                        connections=args.connections, env=env)
                spy = subprocess.Popen(
                    [py_spy, "record", "--pid", str(server.process.pid), "--subprocesses",
                     "--nonblocking", "--rate", str(args.rate), "--format", "raw",
                     "--duration", str(args.seconds + 1), "-o", str(raw)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                try:
                    time.sleep(0.5)
                    pids = server.pids()
                    before, box = cpu.process_cpu_s(pids), cpu.box_busy_s()
                    started = time.monotonic()
                    result = wrk.run(server.url, scenario.script, seconds=args.seconds,
                                     connections=args.connections, env=env)
                    elapsed = time.monotonic() - started
                    cores = (cpu.process_cpu_s(pids) - before) / elapsed
                    box_cores = (cpu.box_busy_s() - box) / elapsed
                    spy.wait(args.seconds + 30)
                finally:
                    if spy.poll() is None:
                        spy.terminate()
                        spy.wait(10)
        finally:
            if redis:
                redis.stop()
        print(f"{args.scenario} on {args.store}: {result.requests_per_s:.0f} req/s, "
              f"server {cores:.2f} cores = {cores * 1e6 / result.requests_per_s:.0f} CPU us/req"
              f" (box {box_cores:.2f} cores busy, wrk {result.cpu_s / elapsed:.2f}; "
              f"py-spy's own sampling CPU is in the box figure)")
        print(categorize(raw, cores * 1e6 / result.requests_per_s))
        print()
        print(summarize(raw, args.top, str(pathlib.Path(__file__).parent.parent) + "/"))
        if args.out:
            print(f"raw profile: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
