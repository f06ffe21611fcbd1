"""The Redis driver object: client, error translation, health, sweeping.

Every store call is one awaited Redis call (a script, or one plain command)
run through ``RedisDriver.guard``, which bounds it by ``timeout``
and turns whatever redis-py or the socket raises into ``StorageUnavailable``.
redis-py's own retries are off (a retried script could post twice); a
connection found dead is replaced before use, so the driver recovers by
itself once Redis answers again.

Expired messages and claims are invisible at once because every script
filters on ``now``. Their memory is reclaimed in bounded batches by the
scripts that touch a queue and by a background sweep over every queue (every
``sweep_interval`` seconds), so an idle queue does not keep dead messages.
The sweep also drops expired subscriptions with their jobs and log.

Push subscriptions and their delivery outbox (``subscriptions.py``,
``jobs.py``) keep per-subscription keys ``<ns>:s:{<id>}:*`` and the
namespace-wide ``<ns>:jobs*``, ``<ns>:subscriptions:expiry`` and ``<ns>:seq``
(see ``keys.py``); posts write their jobs in the post script itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, Awaitable, Callable, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from queues.errors import StorageUnavailable
from queues.storage.base import Driver
from queues.storage.redis.keys import Keys
from queues.storage.redis.lua import Scripts
from queues.storage.redis.pipeline import AutoPipeline

T = TypeVar("T")

log = logging.getLogger(__name__)

# Expired messages reclaimed per queue and script call by the sweeper.
SWEEP_BUDGET = 1000
# Queues swept per pipelined round trip.
SWEEP_BATCH = 100


class RedisDriver(Driver):
    def __init__(
        self,
        client: Redis,
        *,
        namespace: str,
        timeout: float,
        clock: Callable[[], float],
        sweep_interval: float = 60.0,
    ) -> None:
        from queues.storage.redis.claims import RedisClaims
        from queues.storage.redis.grants import RedisGrants
        from queues.storage.redis.jobs import RedisJobs
        from queues.storage.redis.messages import RedisMessages
        from queues.storage.redis.queues import RedisQueues
        from queues.storage.redis.subscriptions import RedisSubscriptions

        self.client = client
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.pipeline = AutoPipeline(client.connection_pool, timeout)
        self.scripts = Scripts(client, self.pipeline)
        self.clock = clock
        self.timeout = timeout
        self.sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self.queues = RedisQueues(self)
        self.messages = RedisMessages(self)
        self.claims = RedisClaims(self)
        self.grants = RedisGrants(self)
        self.subscriptions = RedisSubscriptions(self)
        self.jobs = RedisJobs(self)

    async def guard(self, operation: Awaitable[T]) -> T:
        """Await one Redis operation within ``timeout``; translate failures."""
        self._start_sweeper()
        try:
            async with asyncio.timeout(self.timeout):
                return await operation
        except (RedisError, OSError, TimeoutError) as ex:
            raise _unavailable(ex) from None

    async def is_alive(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self.client.ping())
        except Exception:  # noqa: BLE001 - health checks never raise
            return False

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.pipeline.close()
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()

    async def wipe(self) -> None:
        """Delete every key of this namespace (SCAN + UNLINK; never FLUSHDB)."""
        cursor: Any = 0
        while True:
            cursor, found = await self.guard(
                self.client.scan(cursor, match=self.keys.pattern(), count=1000))
            if found:
                await self.guard(self.client.unlink(*found))
            if not cursor:
                break

    # --- reclaiming expired data -------------------------------------------

    async def sweep(self) -> int:
        """Reclaim expired messages and claims of every queue of the namespace,
        and expired subscriptions with their jobs.

        Returns how many queues needed more than one batch (plus one if
        expired subscriptions remain). The background task calls this; tests
        and tools may call it directly.
        """
        now = self.clock()
        cursor: Any = 0
        backlog = 0
        while True:
            cursor, members = await self.guard(
                self.client.sscan(self.keys.registry, cursor, count=SWEEP_BATCH))
            pending = [m.decode() for m in members]
            rounds = 0
            while pending and rounds < 10:
                pending = await self._sweep_batch(pending, now)
                rounds += 1
            backlog += len(pending)
            if not cursor:
                break
        return backlog + await self._reap_subscriptions(now)

    async def _reap_subscriptions(self, now: float) -> int:
        """Drop expired subscriptions in bounded rounds; 1 if some remain."""
        for _ in range(10):
            if not await self.subscriptions.reap(now):
                return 0
        return 1

    async def _sweep_batch(self, members: list[str], now: float) -> list[str]:
        """Sweep these queues once; return those with more to reclaim."""
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            keys = self.keys.queue(*Keys.parse_member(member)).keys
            await self.scripts.sweep(keys=keys, args=[now, SWEEP_BUDGET], client=pipe)
        results = await self.guard(pipe.execute())
        return [member for member, more in zip(members, results) if more]

    def _start_sweeper(self) -> None:
        if self._sweeper is None and self.sweep_interval > 0 and not self._closed:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="mailslot-redis-sweeper")

    async def _sweep_forever(self) -> None:
        while True:
            # Jitter keeps the workers of one deployment from sweeping together.
            await asyncio.sleep(self.sweep_interval * random.uniform(0.8, 1.2))
            try:
                await self.sweep()
            except StorageUnavailable:
                log.debug("redis sweep skipped: store unavailable")
            except Exception:  # noqa: BLE001 - the sweeper must survive bugs
                log.exception("redis sweep failed")


def _unavailable(ex: BaseException) -> StorageUnavailable:
    log.warning("redis store unavailable: %s: %s", type(ex).__name__, ex)
    return StorageUnavailable(
        "The store is unavailable. Please try again in a few seconds.")
