"""`python -m bench.rehash`: claim+delete on a deep queue while Redis rehashes it.

A Redis hash or sorted set keeps its entries in a table that doubles when the
entry count reaches its size (a power of two), and then moves the entries to
the new table incrementally: one bucket per operation on that key (Redis 7.0
has no background rehash for the tables inside a value). Until every entry
has moved, each lookup may probe both tables. A Mailslot queue keeps each
message in five such tables (``bodies``, ``records``, and the ``messages``,
``free`` and ``expiry`` sorted sets), so a queue that has just grown past
2**20 = 1,048,576 messages pays for moving ~5 x 1M entries, spread over the
next million or so operations on it.

This measures that transition with the bench's claim+delete cycle
(``claim_delete.lua``, ``BENCH_REFILL=1``, depth constant): first on a queue
filled to --below (under 2**20: no table is rehashing), then on a queue
filled to --above (just past it), run after run until no table of that queue
is rehashing (read with ``DEBUG HTSTATS-KEY``; the private redis-server is
started with ``--enable-debug-command local``), then --after more runs.
Each row records msgs/s, API and redis-server CPU per request and the
queue's structures still rehashing. Results: ``bench/results/<stamp>-rehash.json``.

    .venv/bin/python -m bench.rehash          # ~3 minutes (two fills of ~20 s)
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import tempfile

import redis

from bench import cpu, wrk
from bench.__main__ import PROJECT
from bench.client import Client
from bench.server import MailslotServer, RedisServer

RESULTS = pathlib.Path(__file__).parent / "results"
STRUCTURES = ("bodies", "records", "messages", "free", "expiry")


def rehashing(port: int, queue: str) -> list[str]:
    """The queue's structures whose table is being rehashed."""
    found = []
    with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as client:
        for key in client.scan_iter(match=f"*{{{PROJECT}/{queue}}}:*", count=1000):
            structure = key.rsplit(":", 1)[1]
            if structure in STRUCTURES and "Hash table 1 stats" in client.execute_command(
                    "DEBUG", "HTSTATS-KEY", key):
                found.append(structure)
    return sorted(found)


def cycle_run(server: MailslotServer, store: RedisServer, queue: str, seconds: int,
              depth: int) -> dict:
    env = {"BENCH_QUEUE": queue, "BENCH_REFILL": "1", "BENCH_PROJECT": PROJECT}
    workers = server.http_workers()
    api, db = cpu.process_cpu_s(workers), cpu.process_cpu_s(store.pids())
    result = wrk.run(server.url, "claim_delete.lua", seconds=seconds, connections=64, env=env)
    api, db = cpu.process_cpu_s(workers) - api, cpu.process_cpu_s(store.pids()) - db
    row = {"queue": queue, "depth": depth, "requests_per_s": result.requests_per_s,
           "messages_per_s": round(result.counters.get("deleted", 0) / seconds, 1),
           "api_cpu_us_per_request": round(api / result.requests * 1e6, 1),
           "redis_cpu_us_per_request": round(db / result.requests * 1e6, 1),
           "rehashing": rehashing(store.port, queue)}
    print(f"  {queue:6s} {depth:>9,d}  {row['messages_per_s']:8.0f} msgs/s  API"
          f" {row['api_cpu_us_per_request']:6.1f}  redis {row['redis_cpu_us_per_request']:5.1f}"
          f" us/req  rehashing: {','.join(row['rehashing']) or '-'}", flush=True)
    return row


def measure(args: argparse.Namespace) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mailslot-rehash-") as tmp:
        with RedisServer(tmp, ("--enable-debug-command", "local")) as store, \
                MailslotServer(store.uri(), args.workers, tmp) as server:
            client = Client(server.url)
            for queue, depth in (("below", args.below), ("above", args.above)):
                took = client.fill(queue, depth)
                print(f"filled {queue} with {depth:,d} messages in {took:.1f} s;"
                      f" rehashing: {','.join(rehashing(store.port, queue)) or '-'}",
                      flush=True)
                wrk.run(server.url, "claim_delete.lua", seconds=2, connections=64,
                        env={"BENCH_QUEUE": queue, "BENCH_REFILL": "1",
                             "BENCH_PROJECT": PROJECT})
                settled = 0
                for _ in range(args.max_runs):
                    row = cycle_run(server, store, queue, args.seconds, depth)
                    rows.append(row)
                    settled = settled + 1 if not row["rehashing"] else 0
                    if settled >= args.after:
                        break
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rehash", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--below", type=int, default=1_000_000)
    parser.add_argument("--above", type=int, default=1_100_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--after", type=int, default=2,
                        help="runs once no table of the queue is rehashing")
    parser.add_argument("--max-runs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    rows = measure(args)
    stamp = datetime.datetime.now(datetime.timezone.utc)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp:%Y-%m-%dT%H%M%S}-rehash.json"
    path.write_text(json.dumps({"date": stamp.isoformat(timespec="seconds"),
                                "argv": sys.argv[1:] if argv is None else argv,
                                "rows": rows}, indent=2) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
