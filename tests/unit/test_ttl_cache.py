"""queues/api/ttl_cache.py: what ``forget`` promises (changes this worker made
are seen at once), beyond the revocation tests in test_signed_cache.py."""

from __future__ import annotations

import asyncio

import pytest

from queues.api.ttl_cache import TtlCache


class Store:
    def __init__(self) -> None:
        self.value = 1
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.down = False

    async def fetch(self, key: str) -> int:
        self.reads += 1
        if self.down:
            raise ConnectionError("store down")
        seen = self.value
        await self.gate.wait()
        return seen


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_forget_drops_the_answer():
    store, now = Store(), [100.0]
    cache = TtlCache(store.fetch, 60.0, lambda: now[0])
    assert await cache.get("k") == 1
    store.value = 2
    cache.forget("k")
    assert await cache.get("k") == 2
    assert store.reads == 2


async def test_a_read_in_flight_when_forgotten_is_not_kept():
    """A read issued before this worker's change may return the old value to
    its waiters, but must not become the cached answer."""
    store, now = Store(), [100.0]
    cache = TtlCache(store.fetch, 60.0, lambda: now[0])
    store.gate.clear()
    old_read = asyncio.ensure_future(cache.get("k"))  # reads value 1, held
    await settle()
    store.value = 2
    cache.forget("k")
    store.gate.set()
    assert await old_read == 1
    assert await cache.get("k") == 2
    assert await cache.get("k") == 2
    assert store.reads == 2


async def test_a_failed_refresh_is_not_retried_on_every_request():
    """With the store down, refreshes ahead back off; a request that needs a
    fresh answer still reads (and gets the error)."""
    store, now = Store(), [100.0]
    cache = TtlCache(store.fetch, 2.0, lambda: now[0])
    assert await cache.get("k") == 1

    store.down = True
    now[0] += 1.2  # past half the ttl: a refresh ahead starts, and fails
    for _ in range(20):
        assert cache.fresh("k", now[0]) == 1
        await settle()
    assert store.reads == 2
    now[0] += 0.79  # answer still fresh; the failure 0.79 s old: no retry yet
    assert cache.fresh("k", now[0]) == 1
    await settle()
    assert store.reads == 2
    now[0] += 0.01  # the ttl: the next request reads, and hears of the outage
    with pytest.raises(ConnectionError):  # never the stale answer
        await cache.get("k")
    assert store.reads == 3
