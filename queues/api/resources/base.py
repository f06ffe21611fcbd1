"""What every resource gets injected."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from queues.config import Settings
from queues.errors import QueueNotFound
from queues.storage.base import Driver


class MetadataCache:
    """Queue metadata reused for up to ``ttl`` seconds by message POST and
    list, saving a store round trip per request. Changes made through this
    worker are seen at once; other workers' within ``ttl``."""

    MAX_ENTRIES = 10_000

    def __init__(self, storage: Driver, ttl: float, clock: Callable[[], float]) -> None:
        self._storage = storage
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}

    async def get(self, project: str, queue: str) -> dict[str, Any]:
        """Stored metadata, or ``{}`` for a queue that does not exist yet."""
        now, key = self._clock(), (project, queue)
        cached = self._entries.get(key)
        if cached is not None and now - cached[1] < self._ttl:
            return cached[0]
        try:
            metadata = await self._storage.queues.get_metadata(project, queue)
        except QueueNotFound:
            metadata = {}
        if self._ttl > 0:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (metadata, now)
        return metadata

    def forget(self, project: str, queue: str) -> None:
        self._entries.pop((project, queue), None)


@dataclasses.dataclass(frozen=True)
class Context:
    settings: Settings
    storage: Driver
    clock: Callable[[], float]
    metadata: MetadataCache

    @property
    def limits(self):
        return self.settings.transport

    async def queue_metadata(self, project: str, queue: str) -> dict[str, Any]:
        """Stored metadata, or ``{}`` for a queue that does not exist yet."""
        try:
            return await self.storage.queues.get_metadata(project, queue)
        except QueueNotFound:
            return {}


class Resource:
    __slots__ = ("ctx",)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
