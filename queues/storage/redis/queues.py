"""Queues on Redis: metadata, listing, stats.

A queue's metadata lives in its project's metadata hash (so listings read one
slot); the DLQ settings a claim needs are copied into the queue's own info
hash by the same script that writes the metadata.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from queues.errors import QueueNotFound
from queues.models import (
    DEAD_LETTER_QUEUE,
    DEAD_LETTER_QUEUE_MESSAGES_TTL,
    MAX_CLAIM_COUNT,
    Page,
    QueueInfo,
    QueueStats,
)
from queues.storage.base import QueueStore
from queues.storage.redis.lua import to_message

if TYPE_CHECKING:
    from queues.storage.redis.driver import RedisDriver

# Names the queue_list script examines per call when filtering by name.
LIST_SCAN_BUDGET = 1000
# Names fetched per call when filtering by metadata (done here, in Python).
LIST_FILTER_CHUNK = 100


class RedisQueues(QueueStore):
    def __init__(self, driver: RedisDriver) -> None:
        self._driver = driver
        self._keys = driver.keys
        self._scripts = driver.scripts

    async def create(
        self, project: str, name: str, metadata: dict[str, Any] | None = None
    ) -> bool:
        metadata = metadata or {}
        queue, index = self._keys.queue(project, name), self._keys.project(project)
        created = await self._driver.guard(self._scripts.queue_create(
            keys=queue.keys + index.keys,
            args=[self._driver.clock(), name, queue.member, json.dumps(metadata),
                  *dlq_settings(metadata)]))
        return created == 1

    async def exists(self, project: str, name: str) -> bool:
        info = self._keys.queue(project, name).info
        return await self._driver.guard(self._driver.client.exists(info)) == 1

    async def get_metadata(self, project: str, name: str) -> dict[str, Any]:
        raw = await self._driver.guard(
            self._driver.client.hget(self._keys.project(project).metadata, name))
        if raw is None:
            raise QueueNotFound(project, name)
        return json.loads(raw)

    async def set_metadata(
        self, project: str, name: str, metadata: dict[str, Any]
    ) -> None:
        queue, index = self._keys.queue(project, name), self._keys.project(project)
        done = await self._driver.guard(self._scripts.queue_set_metadata(
            keys=queue.keys + index.keys,
            args=[name, json.dumps(metadata), *dlq_settings(metadata)]))
        if done != 1:
            raise QueueNotFound(project, name)

    async def delete(self, project: str, name: str) -> None:
        queue, index = self._keys.queue(project, name), self._keys.project(project)
        await self._driver.guard(self._scripts.queue_delete(
            keys=queue.keys + index.keys + (queue.generation,),
            args=[name, queue.member]))

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
        index = self._keys.project(project)
        with_metadata = detailed or bool(filters)
        items: list[QueueInfo] = []
        cursor = marker or ""
        while len(items) < limit:
            want = limit - len(items)
            reply = await self._driver.guard(self._scripts.queue_list(
                keys=index.keys[:2],
                args=[cursor, max(want, LIST_FILTER_CHUNK) if filters else want,
                      name or "", int(with_metadata), LIST_SCAN_BUDGET]))
            done, cursor, rows = int(reply[0]), reply[1].decode(), reply[2:]
            count = len(rows) // 2 if with_metadata else len(rows)
            for i in range(count):
                metadata = json.loads(rows[count + i]) if with_metadata else None
                if filters and not _matches(metadata, filters):
                    continue
                items.append(
                    QueueInfo(rows[i].decode(), metadata if detailed else None))
                if len(items) == limit:
                    break
            if done:
                break
        return Page(items, items[-1].name if items else None)

    async def count(self, project: str) -> int:
        return await self._driver.guard(
            self._driver.client.zcard(self._keys.project(project).queues))

    async def stats(self, project: str, name: str) -> QueueStats:
        queue = self._keys.queue(project, name)
        reply = await self._driver.guard(self._scripts.queue_stats(
            keys=queue.keys, args=[self._driver.clock()]))
        total, claimed = int(reply[0]), int(reply[1])
        if total <= 0:
            return QueueStats(0, 0, 0)
        oldest = to_message(reply[2]) if len(reply) > 2 else None
        newest = to_message(reply[3]) if len(reply) > 3 else None
        return QueueStats(claimed, total - claimed, total, oldest, newest)


def dlq_settings(metadata: dict[str, Any]) -> list[str]:
    """``[max_claim_count, dead_letter_queue, dead_letter_ttl]`` for the
    scripts, "" where the metadata does not enable the setting."""

    def positive_int(value: Any) -> str:
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return str(value) if ok else ""

    queue = metadata.get(DEAD_LETTER_QUEUE)
    return [
        positive_int(metadata.get(MAX_CLAIM_COUNT)),
        queue if isinstance(queue, str) else "",
        positive_int(metadata.get(DEAD_LETTER_QUEUE_MESSAGES_TTL)),
    ]


def _matches(metadata: dict[str, Any] | None, filters: dict[str, Any]) -> bool:
    metadata = metadata or {}
    return all(key in metadata and metadata[key] == value
               for key, value in filters.items())
