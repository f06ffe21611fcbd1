"""Redis driver: with AOF + ``appendfsync always`` an acknowledged post
survives ``kill -9`` of redis-server."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import pytest

from queues.errors import StorageUnavailable
from queues.storage import load_driver
from tests.fixtures.redis import unique_namespace
from tests.storage.helpers import P, msg


@pytest.mark.slow
async def test_acknowledged_posts_survive_kill_9(redis_server_factory):
    server = redis_server_factory("--appendonly", "yes", "--appendfsync", "always")
    driver = load_driver(server.uri, namespace=unique_namespace(), timeout=2,
                         options={"sweep_interval": "0"})
    acknowledged: list[str] = []
    batches = 0

    async def stream() -> None:
        nonlocal batches
        while True:
            batch = [msg({"batch": batches, "part": part}, ttl=3600)
                     for part in range(3)]
            try:
                acknowledged.extend(await driver.messages.post(P, "q1", batch, "c"))
            except StorageUnavailable:
                return
            batches += 1

    try:
        writer = asyncio.create_task(stream())
        while batches < 200:  # well into the stream
            await asyncio.sleep(0.01)
        server.kill()  # SIGKILL while posts are in flight
        async with asyncio.timeout(5):
            await writer
        assert batches >= 200

        server.start()  # same port, same dir: replays the AOF
        stored = []
        for start in range(0, len(acknowledged) + 300, 1000):
            page = await driver.messages.list(
                P, "q1", echo=True, limit=1000,
                marker=str(stored[-1].marker) if stored else None)
            stored += page.items
        found = {m.id for m in stored}
        missing = [i for i in acknowledged if i not in found]
        assert missing == [], f"{len(missing)} acknowledged messages lost"
        # Batches are atomic: the one in flight at the kill is whole or absent.
        parts = Counter(orjson.loads(m.body_json)["batch"] for m in stored)
        assert set(parts.values()) == {3}
        assert len(stored) in (len(acknowledged), len(acknowledged) + 3)
    finally:
        await driver.wipe()
        await driver.close()
