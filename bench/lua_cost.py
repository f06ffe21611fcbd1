"""`python -m bench.lua_cost`: redis-server instructions per script call.

Timings on this shared VM move by tens of percent; instruction counts do not.
This starts a private redis-server under ``valgrind --tool=callgrind`` on a
free loopback port, drives Mailslot's real Redis driver (post of 1 and of 10
x 1 KB messages, claim of 10), and reads callgrind's instruction total for
each operation's ``--calls`` calls (counters zeroed before, dumped after).
The figure includes all of redis-server's work for the call: reading and
parsing the command, the Lua script, the data structures and the reply.
Results go to ``bench/results/<stamp>-lua-cost.json``.

    .venv/bin/python -m bench.lua_cost --calls 200
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import pathlib
import re
import subprocess
import tempfile
import time

from bench.server import free_port
from queues.models import NewMessage
from queues.storage import load_driver

RESULTS = pathlib.Path(__file__).parent / "results"
BODY = json.dumps({"n": 1, "pad": "x" * 990}).encode()


class CallgrindRedis:
    """redis-server under callgrind; ``measure()`` counts one stretch of work."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir}/cg.%p",
             "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def control(self, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(self.process.pid)],
                       capture_output=True, check=False, timeout=60)

    def last_total(self) -> int:
        dumps = sorted(self.dir.glob("cg.*"), key=lambda p: p.stat().st_mtime)
        found = re.search(r"^(?:summary|totals): (\d+)", dumps[-1].read_text(), re.M)
        if not found:
            raise RuntimeError(f"no total in {dumps[-1]}")
        return int(found.group(1))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def _operations(driver) -> dict:
    ten = [NewMessage(BODY, 3600)] * 10
    return {
        "post_1x1KB": lambda: driver.messages.post("p", "one", ten[:1], "c"),
        "post_10x1KB": lambda: driver.messages.post("p", "ten", ten, "c"),
        "claim_10": lambda: driver.claims.create("p", "ten", ttl=300, grace=60, limit=10),
    }


async def _wait_ready(driver, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await driver.is_alive():  # redis-server starts slowly under valgrind
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server under callgrind did not start")
        await asyncio.sleep(0.2)


async def measure(server: CallgrindRedis, calls: int) -> dict[str, float]:
    driver = load_driver(f"redis://127.0.0.1:{server.port}/0", namespace="luacost",
                         timeout=60)
    out = {}
    try:
        await _wait_ready(driver)
        for name, operation in _operations(driver).items():
            for _ in range(20):  # warm: scripts loaded, queue created
                await operation()
            server.control("--zero")
            for _ in range(calls):
                await operation()
            server.control("--dump")
            time.sleep(0.5)
            out[name] = round(server.last_total() / calls / 1000, 1)
            print(f"{name:12s} {out[name]:8.1f} k instructions per call", flush=True)
    finally:
        await driver.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lua_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mailslot-lua-cost-") as tmp:
        server = CallgrindRedis(pathlib.Path(tmp))
        try:
            figures = asyncio.run(measure(server, args.calls))
        finally:
            server.stop()
    stamp = datetime.datetime.now(datetime.timezone.utc)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp:%Y-%m-%dT%H%M%S}-lua-cost.json"
    path.write_text(json.dumps({"date": stamp.isoformat(timespec="seconds"),
                                "calls": args.calls, "unit": "k instructions per call",
                                "redis_server_instructions": figures}, indent=2) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
