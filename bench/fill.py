"""Fill a Mailslot queue through its storage driver: the flat-cost runs' deep queue.

Through the HTTP API (``Client.fill``: POSTs of 50 messages on 6 connections)
a million messages took 41 s on Redis and 129 s on SQLite on a 2-core VM, so
`make bench` ran past ten minutes and dropped its last store. The driver's
``messages.post`` is the call the API makes for every POST; here it takes
``batch`` messages at a time, a few calls in flight (the Redis driver sends
the calls of one event-loop turn together). The messages are the wrk
scripts' (~1 KB body, TTL 3600, the bench's Client-ID), in the same store, so
the queue the runs meet is the one a million POSTs would leave.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from queues.models import NewMessage
from queues.storage import load_driver

PAD = "x" * 990
CLIENT_ID = "3b1f3e2c-6c2a-4d5e-9f00-000000000002"   # bench.server.HEADERS
TTL = 3600
IN_FLIGHT = 4


def batch_for(uri: str) -> int:
    """Messages per call: one SQLite transaction may take many; a Redis post
    script runs alone on the server, so it stays short."""
    return 5000 if uri.startswith("sqlite") else 1000


async def _fill(uri: str, project: str, queue: str, count: int) -> None:
    driver = load_driver(uri, timeout=60)
    size = batch_for(uri)
    template = [NewMessage(orjson.dumps({"n": i, "pad": PAD}), TTL) for i in range(size)]
    sizes = [size] * (count // size) + ([count % size] if count % size else [])
    in_flight = 1 if uri.startswith("sqlite") else IN_FLIGHT
    try:
        for start in range(0, len(sizes), in_flight):
            await asyncio.gather(*(
                driver.messages.post(project, queue, template[:n], CLIENT_ID)
                for n in sizes[start:start + in_flight]))
    finally:
        await driver.close()


def fill(uri: str, project: str, queue: str, count: int) -> float:
    """Post ``count`` messages to ``queue``; returns the seconds it took."""
    if count <= 0:
        return 0.0
    started = time.monotonic()
    asyncio.run(_fill(uri, project, queue, count))
    return time.monotonic() - started
