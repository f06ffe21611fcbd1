"""Post -> webhook delivered latency at fixed offered rates.

``python -m bench.delivery`` (also run by ``make bench``) starts, per store,
a real ``mailslot serve`` with its dispatcher (and a dedicated redis-server
for the Redis store), a webhook receiver in this process on 127.0.0.1, and
one subscription. An open-loop generator then POSTs single messages at each
offered rate (``--rates``, 100/500/1000 msg/s by default) for ``--seconds``;
each body carries its send time, the receiver records ``receive - send``.
Open loop: sends are scheduled at fixed times over ``CONNECTIONS`` keep-alive
connections and each body carries its scheduled time, so queueing (in the
generator, the server or the dispatcher) shows in the latency instead of
lowering the offered rate. Reported per run: achieved
post rate, delivered count, missing and duplicates, p50/p90/p99/max latency,
CPU seconds of the server's processes and of this process, and the foreign
CPU load. Each run first waits (up to ``--quiet-wait`` s) for the foreign load
to fall under ``--max-foreign`` cores; a run above it is repeated once and the
quieter of the two kept, marked ``repeated`` (and ``noisy`` if still above).
Results go to ``bench/results/<UTC timestamp>-delivery.json``.

Targets (dispatcher issue): at 500 msg/s on Redis, p50 < 10 ms, p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid

import httpx

from bench import cpu
from bench.server import HEADERS, MailslotServer, RedisServer

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
CONNECTIONS = 32
DRAIN_SECONDS = 15.0
QUEUE = "delivery-bench"


class Receiver:
    """A minimal HTTP/1.1 server (asyncio streams) that timestamps deliveries."""

    def __init__(self) -> None:
        self.latencies: dict[str, float] = {}
        self.duplicates = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                self._record(body, time.time())
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _record(self, body: bytes, now: float) -> None:
        payload = json.loads(body)
        message_id, sent = payload["message_id"], payload["body"]["t"]
        if message_id in self.latencies:
            self.duplicates += 1
        else:
            self.latencies[message_id] = (now - sent) * 1000


class RawConnection:
    """One keep-alive HTTP/1.1 connection with pre-built request heads: the
    generator must cost far less than the server it measures (httpx spends
    ~0.3 ms of CPU per request, which made the generator the bottleneck)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._head = (f"POST /v2/queues/{QUEUE}/messages HTTP/1.1\r\nHost: {host}\r\n"
                      "Content-Type: application/json\r\n"
                      + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
                      + "Content-Length: ").encode()

    async def post(self, body: bytes) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._host, self._port)
        assert self._reader is not None
        self._writer.write(self._head + b"%d\r\n\r\n" % len(body) + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self._reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def offer(url: str, rate: int, seconds: float) -> dict:
    """Schedule one POST every 1/rate s for ``seconds`` (open loop). A body
    carries its *scheduled* time, so a send that waited for a free connection
    counts that wait in the latency instead of hiding it."""
    parts = urllib.parse.urlsplit(url)
    interval, total = 1.0 / rate, int(rate * seconds)
    backlog: asyncio.Queue = asyncio.Queue()
    counts = {"sent": 0, "ok": 0, "failed": 0, "late_starts": 0}

    async def worker() -> None:
        connection = RawConnection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            while (item := await backlog.get()) is not None:
                n, scheduled = item
                body = b'{"messages": [{"ttl": 600, "body": {"n": %d, "t": %.6f}}]}' % (
                    n, scheduled)
                try:
                    status = await connection.post(body)
                except (OSError, asyncio.IncompleteReadError):
                    connection.close()
                    connection = RawConnection(parts.hostname or "127.0.0.1",
                                               parts.port or 80)
                    status = 0
                counts["ok" if status == 201 else "failed"] += 1
        finally:
            connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(CONNECTIONS)]
    start_wall, start = time.time(), time.monotonic()
    for n in range(total):
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if backlog.qsize() > 0:
            counts["late_starts"] += 1
        backlog.put_nowait((n, start_wall + n * interval))
        counts["sent"] += 1
    for _ in workers:
        backlog.put_nowait(None)
    await asyncio.gather(*workers)
    counts["elapsed"] = time.monotonic() - start
    return counts


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def foreign_load(pids: list[int], window: float = 1.0) -> float:
    """Cores busy outside the server's processes and this one, over ``window``."""
    start = cpu.Usage.now(pids)
    await asyncio.sleep(window)
    return cpu.Usage.now(pids).since(start).foreign / window


async def wait_quiet(server: MailslotServer, max_foreign: float, wait: float) -> float:
    """Wait up to ``wait`` s for foreign load under ``max_foreign``; the last reading."""
    pids = cpu.children(server.process.pid)
    deadline = time.monotonic() + wait
    load = await foreign_load(pids)
    while load > max_foreign and time.monotonic() < deadline:
        load = await foreign_load(pids)
    return round(load, 2)


async def measure_quiet(server: MailslotServer, rate: int, args: argparse.Namespace,
                        receiver: Receiver) -> dict:
    """One run after a quiet gate; repeated once (quieter kept) if it was noisy."""
    row = {"foreign_before": await wait_quiet(server, args.max_foreign, args.quiet_wait),
           **await measure(server, rate, args.seconds, receiver)}
    if row["foreign_cores"] > args.max_foreign:
        again = {"foreign_before": await wait_quiet(server, args.max_foreign,
                                                    args.quiet_wait),
                 **await measure(server, rate, args.seconds, receiver)}
        row = min(row, again, key=lambda r: r["foreign_cores"])
        row["repeated"] = True
    row["noisy"] = row["foreign_cores"] > args.max_foreign
    return row


async def measure(server: MailslotServer, rate: int, seconds: float,
                  receiver: Receiver) -> dict:
    receiver.latencies.clear()
    receiver.duplicates = 0
    pids = cpu.children(server.process.pid)
    start = cpu.Usage.now(pids)
    wall = time.monotonic()
    counts = await offer(server.url, rate, seconds)
    deadline = time.monotonic() + DRAIN_SECONDS
    while len(receiver.latencies) < counts["ok"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    wall = time.monotonic() - wall
    used = cpu.Usage.now(pids).since(start)
    values = list(receiver.latencies.values())
    return {
        "rate": rate, "seconds": seconds, **counts,
        "post_rate": round(counts["ok"] / counts["elapsed"], 1),
        "delivered": len(values), "missing": counts["ok"] - len(values),
        "duplicates": receiver.duplicates,
        "p50_ms": _round(percentile(values, 0.50)),
        "p90_ms": _round(percentile(values, 0.90)),
        "p99_ms": _round(percentile(values, 0.99)),
        "max_ms": _round(max(values) if values else None),
        "mean_ms": _round(statistics.fmean(values) if values else None),
        "server_cpu_s": round(used.processes, 2), "bench_cpu_s": round(used.runner, 2),
        "foreign_cores": round(used.foreign / wall, 2),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def subscribe(server: MailslotServer, url: str) -> None:
    response = httpx.post(f"{server.url}/v2/queues/{QUEUE}/subscriptions",
                          headers=HEADERS, timeout=10.0, trust_env=False,
                          json={"subscriber": url, "ttl": 86400, "options": {}})
    response.raise_for_status()


async def run_store(store: str, args: argparse.Namespace, workdir: str) -> list[dict]:
    redis = RedisServer(workdir) if store == "redis" else None
    uri = redis.uri(2) if redis else f"sqlite:///{workdir}/delivery-{uuid.uuid4().hex}.db"
    receiver = Receiver()
    await receiver.start()
    env = {"MAILSLOT_DISPATCH_ALLOW_CIDRS": "127.0.0.1/32"}
    server = MailslotServer(uri, workers=args.workers, log_dir=workdir, extra_env=env)
    rows = []
    try:
        subscribe(server, f"http://127.0.0.1:{receiver.port}/hook")
        await measure(server, 50, 1.0, receiver)  # warm-up: connections, caches
        for rate in args.rates:
            row = {"store": store, **await measure_quiet(server, rate, args, receiver)}
            print(_line(row), flush=True)
            rows.append(row)
    finally:
        server.stop()
        await receiver.stop()
        if redis:
            redis.stop()
    return rows


def _line(row: dict) -> str:
    return (f"{row['store']:7} {row['rate']:5}/s offered, {row['post_rate']:7.1f}/s posted"
            f"  delivered {row['delivered']}/{row['ok']} dup {row['duplicates']}"
            f"  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  max {row['max_ms']} ms"
            f"  server cpu {row['server_cpu_s']} s  foreign {row['foreign_cores']}"
            f"{'  (repeated)' if row.get('repeated') else ''}"
            f"{'  NOISY' if row.get('noisy') else ''}")


def checks(rows: list[dict]) -> list[dict]:
    found = [r for r in rows if r["store"] == "redis" and r["rate"] == 500]
    if not found:
        return []
    row = found[0]
    return [
        {"check": "redis 500 msg/s: p50 < 10 ms", "value": row["p50_ms"],
         "pass": row["p50_ms"] is not None and row["p50_ms"] < 10},
        {"check": "redis 500 msg/s: p99 < 50 ms", "value": row["p99_ms"],
         "pass": row["p99_ms"] is not None and row["p99_ms"] < 50},
        {"check": "redis 500 msg/s: nothing missing", "value": row["missing"],
         "pass": row["missing"] == 0},
    ]


def _run(coroutine):
    """uvloop when installed (it is, with uvicorn[standard]): a cheaper loop
    for the generator and receiver."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--stores", nargs="+", default=["redis", "sqlite"])
    parser.add_argument("--rates", nargs="+", type=int, default=[100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-foreign", type=float, default=0.3,
                        help="cores of foreign load above which a run is repeated once")
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="seconds to wait for quiet before each run")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mailslot-delivery-") as workdir:
        for store in args.stores:
            rows += _run(run_store(store, args, workdir))
    verdicts = checks(rows)
    for verdict in verdicts:
        print(f"{'PASS' if verdict['pass'] else 'MISS'}  {verdict['check']}: "
              f"{verdict['value']}")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime())
    out = RESULTS / f"{stamp}-delivery.json"
    out.write_text(json.dumps({"argv": sys.argv[1:], "rows": rows,
                               "checks": verdicts}, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
