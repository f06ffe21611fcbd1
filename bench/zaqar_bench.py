"""Zaqar's own load tool, ``zaqar-bench``, against Mailslot and Zaqar 23.

``python -m bench.zaqar_bench`` (also run by ``make bench``) starts a
dedicated redis-server, ``mailslot serve`` on db 1 and the Zaqar 23 peer on
db 0 (as ``python -m bench`` does), then runs ``zaqar-bench`` from the peer's
venv against each in turn with the same roles: producers (one message per
POST), consumers (claim 5, delete each with its claim id) and observers
(list 5, following markers). Its client is gevent + python-zaqarclient and
costs far more CPU per request than either server, so both figures are
under-reported and the ratio is compressed: report it, rank by the wrk
figures of ``python -m bench``. Results go to
``bench/results/<UTC stamp>-zaqar-bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from bench import cpu
from bench.server import ZAQAR_VENV, MailslotServer, RedisServer, ZaqarServer

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def zaqar_bench(url: str, args: argparse.Namespace) -> dict:
    """One zaqar-bench run; its JSON summary plus the tool's own CPU."""
    command = [str(ZAQAR_VENV / "bin" / "zaqar-bench"), "--server_url", url,
               "--time", str(args.seconds),
               "-pp", "1", "-pw", str(args.producers),
               "-cp", "1", "-cw", str(args.consumers),
               "-op", "1", "-ow", str(args.observers), "--nodebug"]
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    before = os.times()
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=args.seconds * 6 + 60)
    after = os.times()
    used = (after.children_user - before.children_user
            + after.children_system - before.children_system)
    summary = _last_json(done.stdout)
    if summary is None:
        raise RuntimeError(f"zaqar-bench printed no JSON summary:\n{done.stderr[-2000:]}")
    return {"summary": summary, "tool_cpu_s": round(used, 2),
            "command": " ".join(command)}


def _last_json(text: str) -> dict | None:
    """zaqar-bench prints warnings, then one JSON document."""
    start = text.find("{")
    while start != -1:
        try:
            return json.loads(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
    return None


def measure(server, name: str, args: argparse.Namespace) -> dict:
    pids = cpu.children(server.process.pid)
    before, wall = cpu.process_cpu_s(pids), time.monotonic()
    row = {"stack": name, **zaqar_bench(server.url, args)}
    elapsed = time.monotonic() - wall
    row["server_cores"] = round((cpu.process_cpu_s(pids) - before) / elapsed, 2)
    print(f"{name:15} {json.dumps(row['summary'])}  server {row['server_cores']} cores,"
          f" zaqar-bench {row['tool_cpu_s']} CPU s", flush=True)
    return row


def ratios(rows: list[dict]) -> dict:
    """Mailslot/Zaqar per role, on the tool's own req/s figures."""
    by_stack = {r["stack"]: r["summary"] for r in rows}
    ours, theirs = by_stack.get("mailslot-redis", {}), by_stack.get("zaqar-redis", {})
    out = {}
    for role in ("producer", "consumer", "observer"):
        a = (ours.get(role) or {}).get("reqs_per_sec")
        b = (theirs.get(role) or {}).get("reqs_per_sec")
        out[role] = round(a / b, 2) if a and b else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zaqar_bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--producers", type=int, default=10)
    parser.add_argument("--consumers", type=int, default=10)
    parser.add_argument("--observers", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--zaqar-workers", type=int, default=4)
    args = parser.parse_args(argv)
    if not (ZAQAR_VENV / "bin" / "zaqar-bench").exists():
        print(f"no zaqar-bench in {ZAQAR_VENV}: run `python -m bench` once to install"
              " the peer", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mailslot-zaqar-bench-") as workdir:
        redis = RedisServer(workdir)
        servers = []
        try:
            servers.append(("mailslot-redis", MailslotServer(redis.uri(1),
                                                             args.workers, workdir)))
            servers.append(("zaqar-redis", ZaqarServer("127.0.0.1", redis.port, workdir,
                                                       workers=args.zaqar_workers)))
            rows = [measure(server, name, args) for name, server in servers]
        finally:
            for _, server in servers:
                server.stop()
            redis.stop()
    result = {"argv": sys.argv[1:], "rows": rows, "ratios": ratios(rows)}
    print("Mailslot/Zaqar req/s by role (zaqar-bench's client-bound figures):",
          json.dumps(result["ratios"]))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y-%m-%dT%H%M%S', time.gmtime())}-zaqar-bench.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
