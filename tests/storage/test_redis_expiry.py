"""Redis driver: expired messages and claims are reclaimed without outside help."""

from __future__ import annotations

import asyncio
import time

from queues.storage import load_driver
from queues.storage.redis.keys import QUEUE_PARTS
from tests.fixtures.redis import unique_namespace
from tests.storage.helpers import P, msg, post


async def _footprint(driver) -> tuple[dict[str, int], int]:
    """``({key: MEMORY USAGE}, total)`` for every key of the driver's namespace."""
    sizes = {}
    async for key in driver.client.scan_iter(match=driver.keys.pattern(), count=1000):
        sizes[key.decode()] = await driver.client.memory_usage(key) or 0
    return sizes, sum(sizes.values())


def _queue_parts(sizes: dict[str, int], queue: str) -> set[str]:
    tag = "{" + f"{P}/{queue}" + "}:"
    return {key.split(tag, 1)[1] for key in sizes if tag in key}


async def _fill(driver, queue: str, count: int, ttl: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 100):
        ids += await driver.messages.post(
            P, queue, [msg({"n": i, "pad": "x" * 200}, ttl)
                       for i in range(start, min(count, start + 100))], "c")
    return ids


async def test_sweep_reclaims_expired_messages_and_claims(redis_driver, clock):
    expiring = await _fill(redis_driver, "q1", 500, ttl=60)
    await post(redis_driver, "q1", "late", ttl=60, delay=30)
    await _fill(redis_driver, "q2", 20, ttl=3600)
    claim = await redis_driver.claims.create(P, "q1", ttl=60, grace=60, limit=10)
    sizes_before, before = await _footprint(redis_driver)
    parts = _queue_parts(sizes_before, "q1")
    assert {"bodies", "records", "claims", "inflight"} <= parts

    clock.shift(121)  # past the claim's end plus grace: everything in q1 is dead
    # Invisible at once, before any reclamation.
    assert await redis_driver.messages.get_many(P, "q1", expiring[:50]) == []

    await redis_driver.sweep()
    sizes_after, after = await _footprint(redis_driver)
    assert _queue_parts(sizes_after, "q1") == {"info"}
    # The claim's record and index went too; the live queue is untouched.
    assert not await redis_driver.client.hexists(
        redis_driver.keys.queue(P, "q1").keys[8], claim.id)
    assert (await redis_driver.queues.stats(P, "q2")).total == 20
    assert after < before / 10, (before, after)


async def test_background_sweeper_reclaims_an_idle_queue(redis_server, clock):
    driver = load_driver(redis_server.uri, namespace=unique_namespace(), timeout=2,
                         options={"sweep_interval": "0.05"})
    try:
        await _fill(driver, "idle", 300, ttl=60)
        await _fill(driver, "busy", 10, ttl=3600)
        clock.shift(61)
        # No store call from here on: only the background task can reclaim.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sizes, _ = await _footprint(driver)
            if _queue_parts(sizes, "idle") == {"info"}:
                break
            await asyncio.sleep(0.05)
        assert _queue_parts(sizes, "idle") == {"info"}
        assert "bodies" in _queue_parts(sizes, "busy")
    finally:
        await driver.wipe()
        await driver.close()


async def test_access_reclaims_in_bounded_steps(redis_driver, clock):
    await _fill(redis_driver, "q1", 3000, ttl=60)
    clock.shift(61)
    [fresh] = await post(redis_driver, "q1", "fresh", ttl=600)
    # One claim call handles a bounded number of dead entries...
    first = await redis_driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    left = await redis_driver.client.hlen(redis_driver.keys.queue(P, "q1").keys[3])
    assert first is None and 3000 - 1100 <= left - 1 < 3000
    # ...and repeated calls get through to the live message.
    for _ in range(5):
        claim = await redis_driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
        if claim is not None:
            break
    assert [m.id for m in claim.messages] == [fresh]
    stats = await redis_driver.queues.stats(P, "q1")
    assert (stats.total, stats.claimed) == (1, 1)


async def test_deleted_queue_leaves_only_its_signing_generation(redis_driver):
    await _fill(redis_driver, "q1", 50, ttl=600)
    await redis_driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    await redis_driver.queues.delete(P, "q1")
    sizes, _ = await _footprint(redis_driver)
    assert list(sizes) == [redis_driver.keys.queue(P, "q1").generation]


async def _orphan_bodies(driver, queue: str, count: int) -> None:
    """Bodies without a record, as a post whose script failed inside its
    MULTI/EXEC (and was never retried) would leave them."""
    bodies = driver.keys.queue(P, queue).bodies
    for start in range(0, count, 500):
        await driver.client.hset(bodies, mapping={
            f"orphan-{i}": b'{"lost": true}' for i in range(start, min(count, start + 500))})


async def test_sweep_reclaims_bodies_left_without_a_record(redis_driver):
    live = await post(redis_driver, "q1", "a", "b")
    await _orphan_bodies(redis_driver, "q1", 3)
    await redis_driver.sweep()
    keys = redis_driver.keys.queue(P, "q1")
    assert sorted(await redis_driver.client.hkeys(keys.bodies)) == sorted(
        i.encode() for i in live)
    assert [m.body_json for m in await redis_driver.messages.get_many(P, "q1", live)] == [
        b'"a"', b'"b"']


async def test_orphan_reclaim_is_paged_and_resumes_where_it_stopped(redis_driver):
    """More orphans than one call's budget (a hash large enough to scan in
    pages): each sweep call takes a page, the next call goes on from its
    cursor, and the live messages keep their bodies."""
    live = await _fill(redis_driver, "q1", 300, ttl=3600)
    await _orphan_bodies(redis_driver, "q1", 2500)
    keys = redis_driver.keys.queue(P, "q1")
    more = await redis_driver.scripts.sweep(keys=keys.keys, args=[time.time(), 100])
    assert more == 1  # one page, not all of it
    left = await redis_driver.client.hlen(keys.bodies)
    assert 300 < left < 2800
    await redis_driver.sweep()
    assert await redis_driver.client.hlen(keys.bodies) == 300
    records = keys.keys[QUEUE_PARTS.index("records")]
    assert await redis_driver.client.hlen(records) == 300
    assert len(await redis_driver.messages.get_many(P, "q1", live[:20])) == 20
