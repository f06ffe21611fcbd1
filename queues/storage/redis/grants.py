"""Signed-URL state on Redis: generations, deny-list, one-time use, counters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from queues.storage.base import GrantStore

if TYPE_CHECKING:
    from queues.storage.redis.driver import RedisDriver

# Rate windows are dropped by Redis this long after they end.
_RATE_SLACK = 60


class RedisGrants(GrantStore):
    def __init__(self, driver: RedisDriver) -> None:
        self._driver = driver
        self._keys = driver.keys
        self._client = driver.client

    async def generation(self, project: str, queue: str) -> int:
        value = await self._driver.guard(
            self._client.get(self._keys.queue(project, queue).generation))
        return int(value or 0)

    async def bump_generation(self, project: str, queue: str) -> int:
        return await self._driver.guard(
            self._client.incr(self._keys.queue(project, queue).generation))

    async def revoke(self, jti: str, expires: float) -> None:
        await self._mark(self._keys.revoked, jti, expires)

    async def revoked(self, jtis: Sequence[str]) -> set[str]:
        if not jtis:
            return set()
        jtis = list(jtis)
        scores = await self._driver.guard(
            self._client.zmscore(self._keys.revoked, jtis))
        now = self._driver.clock()
        return {jti for jti, score in zip(jtis, scores)
                if score is not None and score > now}

    async def consume(self, jti: str, expires: float) -> bool:
        return await self._mark(self._keys.used, jti, expires)

    async def count_uses(self, counts: dict[str, int], window: int) -> dict[str, int]:
        if not counts:
            return {}
        start = int(self._driver.clock() // window) * window
        pairs = [item for name_amount in counts.items() for item in name_amount]
        totals = await self._driver.guard(self._driver.scripts.rate_count(
            keys=[self._keys.rate(start)], args=[window + _RATE_SLACK, *pairs]))
        return dict(zip(counts, totals))

    async def _mark(self, key: str, jti: str, expires: float) -> bool:
        marked = await self._driver.guard(self._driver.scripts.token_mark(
            keys=[key], args=[self._driver.clock(), jti, expires]))
        return marked == 1
