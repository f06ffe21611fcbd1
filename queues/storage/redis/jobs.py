"""The delivery outbox on Redis: jobs, leases, breakers, dead letters, log.

Jobs are written by the post script itself (``scripts/post.lua``), so a
message and its jobs are stored by one script call. Each job record lives in
the ``<ns>:jobs`` hash; its subscription's ``due``, ``leased`` and ``dead``
ZSETs say where it stands, and ``<ns>:jobs:pending`` lists the subscriptions
that have due or leased jobs. A lease is one script: two dispatcher processes
can never both hold a live lease on one job, and a lease only visits the
subscriptions in the pending set (see ``scripts/job_lease.lua``).

Lease tokens are a random nonce per lease call (from ``os.urandom``: Redis
scripts have no good randomness) plus the job's position in the reply.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Sequence

from queues.errors import SubscriptionNotFound
from queues.models import DeliveryAttempt, DeliveryJob
from queues.storage.base import JobStore

if TYPE_CHECKING:
    from queues.storage.redis.driver import RedisDriver


def to_job(row: Sequence[bytes | int]) -> DeliveryJob:
    """A job from an outbox.lua ``job_reply``."""
    (job_id, sid, project, queue, message_id, message, created, due, attempts,
     token, lease_expires) = row
    return DeliveryJob(
        job_id.decode(), sid.decode(), project.decode(), queue.decode(),
        message_id.decode(), message, float(created), float(due), int(attempts),
        token.decode() or None, float(lease_expires) or None)


def to_attempt(entry: bytes) -> DeliveryAttempt:
    """An attempt from a log entry: 16 hex digits of sequence, then JSON."""
    return DeliveryAttempt(*json.loads(entry[16:]))


class RedisJobs(JobStore):
    def __init__(self, driver: RedisDriver) -> None:
        self._driver = driver
        self._keys = driver.keys
        self._scripts = driver.scripts
        self._outbox = driver.keys.outbox.keys

    async def lease(self, limit: int, lease_seconds: float, *,
                    max_in_flight: int) -> list[DeliveryJob]:
        if limit <= 0 or max_in_flight <= 0:
            return []
        rows = await self._driver.guard(self._scripts.job_lease(
            keys=self._outbox,
            args=[self._driver.clock(), limit, lease_seconds, max_in_flight,
                  os.urandom(12).hex(), self._keys.subscription_prefix]))
        return [to_job(row) for row in rows]

    async def ack(self, job_id: str, lease_token: str) -> bool:
        return await self._settle("ack", job_id, lease_token, "")

    async def retry(self, job_id: str, lease_token: str, due: float) -> bool:
        return await self._settle("retry", job_id, lease_token, due)

    async def bury(self, job_id: str, lease_token: str, reason: str) -> bool:
        return await self._settle("bury", job_id, lease_token, reason)

    async def _settle(self, action: str, job_id: str, lease_token: str,
                      extra: float | str) -> bool:
        done = await self._driver.guard(self._scripts.job_settle(
            keys=self._outbox,
            args=[action, job_id, lease_token, extra, self._keys.subscription_prefix]))
        return done == 1

    async def trip(self, subscription_id: str, until: float) -> None:
        await self._driver.guard(self._driver.client.zadd(
            self._keys.outbox.breakers, {subscription_id: until}))

    async def dead_letters(self, subscription_id: str, *, limit: int = 20
                           ) -> list[DeliveryJob]:
        if limit <= 0:
            return []
        rows = await self._driver.guard(self._scripts.job_dead_letters(
            keys=self._outbox + self._keys.subscription(subscription_id).keys,
            args=[limit]))
        return [to_job(row) for row in rows]

    async def replay(self, subscription_id: str, job_ids: Sequence[str] | None = None
                     ) -> int:
        if job_ids is not None and not job_ids:
            return 0
        return await self._driver.guard(self._scripts.job_replay(
            keys=self._outbox + self._keys.subscription(subscription_id).keys,
            args=[self._driver.clock(), subscription_id, int(job_ids is None),
                  *(job_ids or ())]))

    async def record(self, attempt: DeliveryAttempt, *, keep: int, keep_seconds: float
                     ) -> None:
        entry = json.dumps([
            attempt.subscription_id, attempt.message_id, attempt.job_id,
            attempt.attempt, attempt.at, attempt.outcome, attempt.status,
            attempt.error, attempt.latency_ms, attempt.response])
        await self._driver.guard(self._scripts.job_record(
            keys=self._outbox + self._keys.subscription(attempt.subscription_id).keys,
            args=[self._driver.clock(), attempt.at, entry, keep, keep_seconds]))

    async def attempts(self, subscription_id: str, *, limit: int = 20
                       ) -> list[DeliveryAttempt]:
        if limit <= 0:
            return []
        entries = await self._driver.guard(self._driver.client.zrevrange(
            self._keys.subscription(subscription_id).log, 0, limit - 1))
        return [to_attempt(entry) for entry in entries]

    async def redeliver(self, subscription_id: str, message_id: str,
                        message: bytes) -> str:
        job_id = await self._driver.guard(self._scripts.job_redeliver(
            keys=self._outbox + self._keys.subscription(subscription_id).keys,
            args=[self._driver.clock(), subscription_id, message_id, message]))
        if job_id is None:
            raise SubscriptionNotFound(subscription_id)
        return job_id.decode()
