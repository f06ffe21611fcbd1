"""What every resource gets injected."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from queues.api.ttl_cache import TtlCache
from queues.config import Settings
from queues.errors import QueueNotFound
from queues.storage.base import Driver


class MetadataCache:
    """Queue metadata reused for up to ``ttl`` seconds by message POST and
    list, saving a store round trip per request (``TtlCache``: one read per
    queue in flight, re-read in the background before it expires). Changes
    made through this worker are seen at once; other workers' within ``ttl``."""

    MAX_ENTRIES = 10_000

    def __init__(self, storage: Driver, ttl: float, clock: Callable[[], float]) -> None:
        self._cache: TtlCache[tuple[str, str], dict[str, Any]] = TtlCache(
            lambda key: _stored_metadata(storage, *key), ttl, clock, self.MAX_ENTRIES)

    async def get(self, project: str, queue: str) -> dict[str, Any]:
        """Stored metadata, or ``{}`` for a queue that does not exist yet."""
        return await self._cache.get((project, queue))

    def forget(self, project: str, queue: str) -> None:
        self._cache.forget((project, queue))


async def _stored_metadata(storage: Driver, project: str, queue: str) -> dict[str, Any]:
    try:
        return await storage.queues.get_metadata(project, queue)
    except QueueNotFound:
        return {}


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
        return await _stored_metadata(self.storage, project, queue)


class Resource:
    __slots__ = ("ctx",)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
