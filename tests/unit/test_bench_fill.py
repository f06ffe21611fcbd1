"""bench/fill.py: the flat-cost runs' deep queue, filled through the driver,
holds what the same number of API POSTs would leave (real stores)."""

from __future__ import annotations

import asyncio
import json


from bench import fill
from queues.storage import load_driver


async def _check(uri: str, count: int) -> None:
    driver = load_driver(uri)
    try:
        stats = await driver.queues.stats("bench", "deep")
        assert (stats.total, stats.free, stats.claimed) == (count, count, 0)
        oldest, newest = stats.oldest, stats.newest
        assert json.loads(oldest.body_json) == {"n": 0, "pad": "x" * 990}
        assert (oldest.ttl, oldest.client_id) == (3600, fill.CLIENT_ID)
        assert newest.marker > oldest.marker
    finally:
        await driver.wipe()
        await driver.close()


async def test_sqlite_fill(tmp_path):
    count = 12_001  # two full transactions of 5,000 and a rest
    uri = f"sqlite:///{tmp_path}/bench.db"
    await asyncio.to_thread(fill.fill, uri, "bench", "deep", count)
    await _check(uri, count)


async def test_redis_fill(redis_server):
    uri = redis_server.uri.rsplit("/", 1)[0] + "/3"
    # db 3 and the default namespace: apart from the other tests' data
    seconds = await asyncio.to_thread(fill.fill, uri, "bench", "deep", 4_321)
    assert seconds > 0
    await _check(uri, 4_321)
