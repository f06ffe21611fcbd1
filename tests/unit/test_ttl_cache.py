"""queues/api/ttl_cache.py: what ``forget`` promises (changes this worker made
are seen at once), beyond the revocation tests in test_signed_cache.py."""

from __future__ import annotations

import asyncio

from queues.api.ttl_cache import TtlCache


class Store:
    def __init__(self) -> None:
        self.value = 1
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self, key: str) -> int:
        self.reads += 1
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
