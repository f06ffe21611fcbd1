"""`python -m bench.api_cost`: API-process instructions per request, signed vs unsigned.

wrk's msgs/s on this 2-core VM move by 10-20% between identical runs (an A/A
pair of unsigned runs read 0.90 once), which is the size of the signed-URL
target's margin. Instruction counts do not move. This runs the real app
(``create_app`` over the Redis driver, a private redis-server on a free
loopback port) in one process under ``valgrind --tool=callgrind`` and drives
it through ASGI directly, 32 requests in flight like a worker under load:
``POST /v2/queues/<q>/messages`` with one 1 KB message, with account headers
or with ``Authorization: Signed <kid>:<token>``. Each kind runs twice, with
--small and --large measured requests after the same warm-up, and the
difference of callgrind's totals divided by the difference of the counts is
the cost of one request (start-up and warm-up cancel out).

What is not counted: uvicorn's HTTP parsing and socket writes (the same for
both but for the header bytes), and redis-server. Under valgrind the process
runs ~50x slower, so time-driven work would come ~50x more often per request
than in a real worker: the revocation cache's refreshes (every
``signing.revocation_cache_ttl``, 2 s by default; each in-flight request that
finds the entry stale reads the store itself) and the rate counts' flush
every ttl. The child therefore runs with a 100 s ttl, ~2 s of its slowed
clock. Use counts are sent per batch of one token's uses (1% of the limit,
which the bench sets to 10**9, so here only per ttl), as in a real worker.
With the 2 s ttl the signed figure once read 525k instructions instead of
~495k.

    .venv/bin/python -m bench.api_cost               # ~2 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import datetime
import gc
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from bench.server import RedisServer

RESULTS = pathlib.Path(__file__).parent / "results"
KINDS = ("post_unsigned", "post_signed")
PROJECT, QUEUE = "bench", "api-cost"
BODY = json.dumps({"messages": [{"ttl": 3600, "body": {"n": 1, "pad": "x" * 990}}]}).encode()
IN_FLIGHT = 32
WARMUP = 300
SLOWED_TTL_S = 100  # ~2 s of a real worker's clock under valgrind (see above)


def _headers(kind: str, credential: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(BODY)).encode())]
    if kind == "post_signed":
        return headers + [(b"authorization", f"Signed {credential}".encode())]
    return headers + [(b"client-id", b"3b1f3e2c-6c2a-4d5e-9f00-000000000001"),
                      (b"x-project-id", PROJECT.encode())]


def _scope(kind: str, credential: str) -> dict:
    path = f"/v2/queues/{QUEUE}/messages"
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": _headers(kind, credential),
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8888)}


async def _drive(app, scope: dict, count: int) -> None:
    """``count`` requests, IN_FLIGHT at a time; each must answer 201."""
    left = [count]

    async def receive() -> dict:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def one() -> None:
        statuses: list[int] = []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        if statuses != [201]:
            raise RuntimeError(f"request answered {statuses}")

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await one()

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def _child(kind: str, count: int) -> None:
    """Runs under callgrind: build the app from MAILSLOT_* settings, warm, measure."""
    from queues.api.app import build_storage, create_app
    from queues.api.signed import KeySource
    from queues.config import load_settings

    settings = load_settings(None)
    storage = build_storage(settings)
    app = create_app(settings, storage)
    keys = KeySource(settings.signing, time.time)
    signer = keys.signer()
    token, _ = signer.mint(PROJECT, QUEUE, ["post"], now=time.time(), ttl=3600,
                           gen=await storage.grants.generation(PROJECT, QUEUE))
    scope = _scope(kind, f"{keys.current().active.kid}:{token}")
    await _drive(app, scope, WARMUP)
    gc.collect()
    gc.freeze()  # as get_app() does in a worker
    await _drive(app, scope, count)
    await storage.close()


def _callgrind_total(kind: str, count: int, env: dict, workdir: pathlib.Path) -> int:
    out = workdir / f"cg.{kind}.{count}"
    completed = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         "-m", "bench.api_cost", "--child", kind, str(count)],
        env=env, capture_output=True, text=True, timeout=900)
    if completed.returncode != 0:
        raise RuntimeError(f"{kind} x {count} failed: {completed.stderr[-2000:]}")
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if not found:
        raise RuntimeError(f"no total in {out}")
    return int(found.group(1))


def _env(redis_uri: str) -> dict:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    return {**os.environ, "MAILSLOT_STORAGE_URI": redis_uri,
            "MAILSLOT_SIGNING_KEYS": f"bench:active:{key}",
            "MAILSLOT_SIGNING_REQUESTS_PER_MINUTE": str(10**9),
            "MAILSLOT_SIGNING_AUDIT_USE_SAMPLE_RATE": "0",
            "MAILSLOT_SIGNING_REVOCATION_CACHE_TTL": str(SLOWED_TTL_S),
            "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}


def measure(small: int, large: int) -> dict[str, float]:
    """k instructions per request of each kind (two callgrind runs each, two
    at a time: the counts do not depend on what else runs)."""
    with tempfile.TemporaryDirectory(prefix="mailslot-api-cost-") as tmp:
        with RedisServer(tmp) as redis:
            env = _env(redis.uri())
            jobs = [(kind, count) for kind in KINDS for count in (small, large)]
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                totals = dict(zip(jobs, pool.map(
                    lambda job: _callgrind_total(*job, env, pathlib.Path(tmp)), jobs)))
    return {kind: round((totals[kind, large] - totals[kind, small]) / (large - small)
                        / 1000, 1) for kind in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=3100)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.child[0], int(args.child[1])))
        return 0
    if args.large <= args.small:
        parser.error("--large must be above --small")
    figures = measure(args.small, args.large)
    ratio = figures["post_signed"] / figures["post_unsigned"]
    for kind, value in figures.items():
        print(f"{kind:14s} {value:8.1f} k instructions per request", flush=True)
    print(f"signed / unsigned instructions: {ratio:.3f}")
    stamp = datetime.datetime.now(datetime.timezone.utc)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp:%Y-%m-%dT%H%M%S}-api-cost.json"
    path.write_text(json.dumps({
        "date": stamp.isoformat(timespec="seconds"), "small": args.small,
        "large": args.large, "in_flight": IN_FLIGHT, "unit": "k instructions per request",
        "api_process_instructions": figures,
        "signed_over_unsigned": round(ratio, 3)}, indent=2) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
