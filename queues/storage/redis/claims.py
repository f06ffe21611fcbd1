"""Claims on Redis, with dead-letter moves inside the claim script.

The claim script must be given the dead-letter queue's keys up front (Redis
scripts declare the keys they touch). The driver remembers each queue's DLQ
name; when the script finds a message to move and the keys it got are not
those of the queue's current DLQ, it changes nothing and names the DLQ, and
the call is repeated once with the right keys.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from queues.errors import ClaimNotFound, StorageUnavailable
from queues.models import Claim
from queues.storage.base import ClaimStore
from queues.storage.redis.lua import to_messages

if TYPE_CHECKING:
    from queues.storage.redis.driver import RedisDriver

# Bound on the remembered DLQ names (one entry per claimed-from queue).
_DLQ_CACHE_SIZE = 10_000


class RedisClaims(ClaimStore):
    def __init__(self, driver: RedisDriver) -> None:
        self._driver = driver
        self._keys = driver.keys
        self._scripts = driver.scripts
        self._dead_letter_queues: dict[tuple[str, str], str] = {}

    async def create(
        self, project: str, queue: str, *, ttl: int, grace: int, limit: int
    ) -> Claim | None:
        claim_id = uuid.uuid4().hex
        now = self._driver.clock()
        keys = self._keys.queue(project, queue).keys + self._keys.project(project).keys
        dlq = self._dead_letter_queues.get((project, queue), "")
        for _ in range(3):
            dlq_keys = self._keys.queue(project, dlq) if dlq else None
            reply = await self._driver.guard(self._scripts.claim_create(
                keys=keys + (dlq_keys.keys if dlq_keys else ()),
                args=[now, claim_id, ttl, grace, limit, dlq,
                      dlq_keys.member if dlq_keys else ""]))
            status = reply[0]
            if status == b"dlq":
                dlq = reply[1].decode()
                self._remember(project, queue, dlq)
                continue
            if status == b"none":
                return None
            return Claim(claim_id, ttl, grace, now, now + ttl, to_messages(reply[1:]))
        # Only reachable if the DLQ setting changes between every attempt.
        raise StorageUnavailable("The queue is being reconfigured. Please try again.")

    def _remember(self, project: str, queue: str, dlq: str) -> None:
        if len(self._dead_letter_queues) >= _DLQ_CACHE_SIZE:
            self._dead_letter_queues.clear()
        self._dead_letter_queues[(project, queue)] = dlq

    async def get(self, project: str, queue: str, claim_id: str) -> Claim:
        reply = await self._driver.guard(self._scripts.claim_get(
            keys=self._keys.queue(project, queue).keys,
            args=[self._driver.clock(), claim_id]))
        if reply is None:
            raise ClaimNotFound(project, queue, claim_id)
        ttl, grace, updated, expires = reply[:4]
        messages = sorted(to_messages(reply[4:]), key=lambda m: m.marker)
        return Claim(claim_id, int(ttl), int(grace), float(updated), float(expires),
                     messages)

    async def renew(
        self, project: str, queue: str, claim_id: str, *, ttl: int, grace: int
    ) -> None:
        renewed = await self._driver.guard(self._scripts.claim_renew(
            keys=self._keys.queue(project, queue).keys,
            args=[self._driver.clock(), claim_id, ttl, grace]))
        if renewed != 1:
            raise ClaimNotFound(project, queue, claim_id)

    async def release(self, project: str, queue: str, claim_id: str) -> None:
        await self._driver.guard(self._scripts.claim_release(
            keys=self._keys.queue(project, queue).keys,
            args=[self._driver.clock(), claim_id]))
