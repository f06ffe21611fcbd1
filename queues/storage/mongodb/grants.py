"""Signed-URL state on MongoDB: generations, deny-list, one-time use, counters.

``generations`` ``{p, q, g}``, unique ``(p, q)``, outlives its queue.
``token_marks`` ``{_id: "<kind>:<jti>", e, ea}``: revoked and used token ids.
``rate_counters`` ``{_id: "<window start>:<key>", c, ea}``: per-window counts.
Marks and counters carry a TTL index; queries also filter on time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from queues.storage.base import GrantStore
from queues.storage.mongodb.driver import as_date, operation

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

    from queues.storage.mongodb.driver import MongoDriver

REVOKED = "revoked"
USED = "used"


class MongoGrants(GrantStore):
    def __init__(self, driver: MongoDriver) -> None:
        self._driver = driver

    @operation
    async def generation(self, project: str, queue: str) -> int:
        doc = await self._driver.generations_coll.find_one(
            {"p": project, "q": queue}, {"g": 1})
        return doc["g"] if doc else 0

    @operation
    async def bump_generation(self, project: str, queue: str) -> int:
        return await self._driver.bump_generation(project, queue)

    @operation
    async def revoke(self, jti: str, expires: float) -> None:
        await self._mark(REVOKED, jti, expires)

    @operation
    async def revoked(self, jtis: Sequence[str]) -> set[str]:
        if not jtis:
            return set()
        prefix = f"{REVOKED}:"
        docs = await self._driver.token_marks_coll.find(
            {"_id": {"$in": [prefix + jti for jti in jtis]},
             "e": {"$gt": self._driver.clock()}},
            {"_id": 1},
        ).to_list()
        return {doc["_id"][len(prefix):] for doc in docs}

    @operation
    async def consume(self, jti: str, expires: float) -> bool:
        return await self._mark(USED, jti, expires)

    async def _mark(self, kind: str, jti: str, expires: float) -> bool:
        """Record (kind, jti) unless a live mark exists; True if this call did.

        One upsert: it matches only an expired mark (and revives it), so a
        live mark makes the insert collide on ``_id``, atomically.
        """
        try:
            await self._driver.token_marks_coll.update_one(
                {"_id": f"{kind}:{jti}", "e": {"$lte": self._driver.clock()}},
                {"$set": {"e": expires, "ea": as_date(expires)}},
                upsert=True)
        except DuplicateKeyError:
            return False
        return True

    @operation
    async def count_uses(self, counts: dict[str, int], window: int) -> dict[str, int]:
        start = int(self._driver.clock() // window) * window
        ends = as_date(start + window)
        totals = {}
        for key, amount in counts.items():
            doc = await _upsert(
                self._driver.rate_counters_coll, {"_id": f"{start}:{key}"},
                {"$inc": {"c": amount}, "$setOnInsert": {"ea": ends}})
            totals[key] = doc["c"]
        return totals


async def _upsert(coll: AsyncCollection, query: dict[str, Any],
                  update: dict[str, Any]) -> dict[str, Any]:
    """``find_one_and_update`` with upsert, retried if it lost a creation race."""
    while True:
        try:
            doc = await coll.find_one_and_update(
                query, update, upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            continue
        if doc is not None:
            return doc
