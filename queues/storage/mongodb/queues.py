"""Queues on MongoDB: metadata, listing, stats.

Metadata is stored as JSON text so it comes back exactly as written (keys with
dots or dollars, integers beyond 64 bits); metadata filters are applied while
the name-sorted cursor is read.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pymongo.errors import DuplicateKeyError

from queues.errors import QueueNotFound
from queues.models import Page, QueueInfo, QueueStats
from queues.storage.base import QueueStore
from queues.storage.mongodb.driver import MARKER_INDEX, operation, to_message

if TYPE_CHECKING:
    from queues.storage.mongodb.driver import MongoDriver

_MISSING = object()


class MongoQueues(QueueStore):
    def __init__(self, driver: MongoDriver) -> None:
        self._driver = driver

    @operation
    async def create(
        self, project: str, name: str, metadata: dict[str, Any] | None = None
    ) -> bool:
        try:
            await self._driver.queues_coll.insert_one({
                "p": project, "n": name, "m": json.dumps(metadata or {}),
                "c": 0, "cr": self._driver.clock(),
            })
        except DuplicateKeyError:
            return False
        return True

    @operation
    async def exists(self, project: str, name: str) -> bool:
        doc = await self._driver.queues_read.find_one(
            {"p": project, "n": name}, {"_id": 1})
        return doc is not None

    @operation
    async def get_metadata(self, project: str, name: str) -> dict[str, Any]:
        doc = await self._driver.queues_read.find_one(
            {"p": project, "n": name}, {"m": 1})
        if doc is None:
            raise QueueNotFound(project, name)
        return json.loads(doc["m"])

    @operation
    async def set_metadata(
        self, project: str, name: str, metadata: dict[str, Any]
    ) -> None:
        result = await self._driver.queues_coll.update_one(
            {"p": project, "n": name}, {"$set": {"m": json.dumps(metadata)}})
        if result.matched_count == 0:
            raise QueueNotFound(project, name)

    @operation
    async def delete(self, project: str, name: str) -> None:
        # NOTE: the signing generation is bumped before anything is deleted:
        # if we die half-way, the old queue's signed URLs are already dead
        # (fail safe). The queue document goes before its messages: a post
        # that starts after that re-creates the queue, whereas deleting the
        # messages first could leave a racing post's messages behind, to
        # reappear when the name is reused.
        driver = self._driver
        if await driver.queues_coll.find_one({"p": project, "n": name}, {"_id": 1}):
            await driver.bump_generation(project, name)
        await driver.queues_coll.delete_one({"p": project, "n": name})
        await driver.messages_coll.delete_many({"p": project, "q": name})
        await driver.claims_coll.delete_many({"p": project, "q": name})

    @operation
    async def list(
        self,
        project: str,
        *,
        marker: str | None = None,
        limit: int = 10,
        detailed: bool = False,
        name: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Page[QueueInfo]:
        if limit <= 0:
            return Page([], None)
        query: dict[str, Any] = {"p": project}
        names: dict[str, Any] = {}
        if marker is not None:
            names["$gt"] = marker
        if name:
            names["$regex"] = re.escape(name)
        if names:
            query["n"] = names
        want_metadata = detailed or bool(filters)
        projection = {"_id": 0, "n": 1, **({"m": 1} if want_metadata else {})}
        cursor = self._driver.queues_read.find(query, projection, sort=[("n", 1)])
        if not filters:
            cursor = cursor.limit(limit)
        items: list[QueueInfo] = []
        try:
            async for doc in cursor:
                metadata = json.loads(doc["m"]) if want_metadata else None
                if filters and not _matches(metadata, filters):
                    continue
                items.append(QueueInfo(doc["n"], metadata if detailed else None))
                if len(items) >= limit:
                    break
        finally:
            await cursor.close()
        return Page(items, items[-1].name if items else None)

    @operation
    async def count(self, project: str) -> int:
        return await self._driver.queues_read.count_documents({"p": project})

    @operation
    async def stats(self, project: str, name: str) -> QueueStats:
        driver = self._driver
        now = driver.clock()
        live = {"p": project, "q": name, "e": {"$gt": now}}
        total = await driver.messages_read.count_documents(live, hint=MARKER_INDEX)
        if not total:
            return QueueStats(0, 0, 0)
        claimed = min(total, await driver.messages_read.count_documents(
            {**live, "ce": {"$gt": now}}, hint=MARKER_INDEX))
        oldest = await driver.messages_read.find_one(
            live, sort=[("k", 1)], hint=MARKER_INDEX)
        newest = await driver.messages_read.find_one(
            live, sort=[("k", -1)], hint=MARKER_INDEX)
        return QueueStats(
            claimed, total - claimed, total,
            to_message(oldest) if oldest else None,
            to_message(newest) if newest else None,
        )


def _matches(metadata: dict[str, Any], filters: dict[str, Any]) -> bool:
    return all(metadata.get(key, _MISSING) == value for key, value in filters.items())
