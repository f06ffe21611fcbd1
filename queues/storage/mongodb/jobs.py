"""The delivery outbox on MongoDB: the ``JobStore``.

``ack``, ``retry`` and ``bury`` are single-document updates guarded by the
lease token, so a stale token changes nothing; leasing is in ``lease.py``,
the documents and the post's job write in ``outbox.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from queues.errors import SubscriptionNotFound
from queues.models import DeliveryAttempt, DeliveryJob
from queues.storage.base import JobStore
from queues.storage.mongodb.driver import (
    ATTEMPT_ORDER_INDEX, JOB_PENDING_INDEX, as_date, operation, parse_id,
)
from queues.storage.mongodb.lease import Leaser
from queues.storage.mongodb.outbox import LEASE_ORDER, new_job, to_job

if TYPE_CHECKING:
    from queues.storage.mongodb.driver import MongoDriver


class MongoJobs(JobStore):
    def __init__(self, driver: MongoDriver) -> None:
        self._driver = driver
        self._leaser = Leaser(driver)

    @operation
    async def lease(self, limit: int, lease_seconds: float, *,
                    max_in_flight: int) -> list[DeliveryJob]:
        return await self._leaser.lease(limit, lease_seconds, max_in_flight)

    @operation
    async def ack(self, job_id: str, lease_token: str) -> bool:
        fence = _fenced(job_id, lease_token)
        if fence is None:
            return False
        result = await self._driver.jobs_coll.delete_one(fence)
        return result.deleted_count == 1

    @operation
    async def retry(self, job_id: str, lease_token: str, due: float) -> bool:
        return await self._release(job_id, lease_token, {"due": due})

    @operation
    async def bury(self, job_id: str, lease_token: str, reason: str) -> bool:
        return await self._release(job_id, lease_token, {"dd": True, "dr": reason})

    async def _release(self, job_id: str, lease_token: str,
                       fields: dict[str, Any]) -> bool:
        """End a lease held with ``lease_token``, setting ``fields``."""
        fence = _fenced(job_id, lease_token)
        if fence is None:
            return False
        result = await self._driver.jobs_coll.update_one(
            fence, {"$set": {**fields, "lt": None, "le": 0.0}})
        return result.matched_count == 1

    @operation
    async def trip(self, subscription_id: str, until: float) -> None:
        update = {"$set": {"u": until, "ea": as_date(until)}}
        while True:
            try:
                await self._driver.breakers_coll.update_one(
                    {"_id": subscription_id}, update, upsert=True)
                return
            except DuplicateKeyError:
                continue  # lost the race to create it; it exists now

    @operation
    async def dead_letters(self, subscription_id: str, *, limit: int = 20
                           ) -> list[DeliveryJob]:
        if limit <= 0:
            return []
        docs = await self._driver.jobs_coll.find(
            {"sid": subscription_id, "dd": True}, sort=LEASE_ORDER, limit=limit,
            hint=JOB_PENDING_INDEX).to_list()
        return [to_job(doc) for doc in docs]

    @operation
    async def replay(self, subscription_id: str, job_ids: Sequence[str] | None = None
                     ) -> int:
        query: dict[str, Any] = {"sid": subscription_id, "dd": True}
        if job_ids is not None:
            ids = [oid for oid in map(parse_id, job_ids) if oid is not None]
            if not ids:
                return 0
            query["_id"] = {"$in": ids}
        result = await self._driver.jobs_coll.update_many(query, {"$set": {
            "dd": False, "dr": None, "due": self._driver.clock(), "a": 0,
            "lt": None, "le": 0.0}})
        return result.matched_count

    @operation
    async def record(self, attempt: DeliveryAttempt, *, keep: int, keep_seconds: float
                     ) -> None:
        coll = self._driver.attempts_coll
        sid = attempt.subscription_id
        await coll.insert_one(_attempt_document(attempt, keep_seconds))
        await coll.delete_many(
            {"sid": sid, "at": {"$lt": self._driver.clock() - keep_seconds}})
        # The newest one past ``keep``: it and everything older goes.
        boundary = await coll.find_one(
            {"sid": sid}, {"at": 1}, sort=[("at", -1), ("_id", -1)],
            skip=max(keep, 0), hint=ATTEMPT_ORDER_INDEX)
        if boundary is not None:
            await coll.delete_many({"sid": sid, "$or": [
                {"at": {"$lt": boundary["at"]}},
                {"at": boundary["at"], "_id": {"$lte": boundary["_id"]}}]})

    @operation
    async def attempts(self, subscription_id: str, *, limit: int = 20
                       ) -> list[DeliveryAttempt]:
        if limit <= 0:
            return []
        docs = await self._driver.attempts_coll.find(
            {"sid": subscription_id}, sort=[("at", -1), ("_id", -1)], limit=limit,
            hint=ATTEMPT_ORDER_INDEX).to_list()
        return [DeliveryAttempt(d["sid"], d["mid"], d["jid"], d["n"], d["at"], d["o"],
                                d["st"], d["er"], d["ms"], d["r"]) for d in docs]

    @operation
    async def redeliver(self, subscription_id: str, message_id: str,
                        message: bytes) -> str:
        driver = self._driver
        now = driver.clock()
        sub = await driver.subscriptions_coll.find_one(
            {"_id": subscription_id, "e": {"$gt": now}}, {"p": 1, "q": 1})
        if sub is None:
            raise SubscriptionNotFound(subscription_id)
        doc = new_job(subscription_id, sub["p"], sub["q"], message_id, message, now)
        await driver.jobs_coll.insert_one(doc)
        return str(doc["_id"])


def _fenced(job_id: str, lease_token: str) -> dict[str, Any] | None:
    """The filter for a job that is not dead and whose current lease token is
    ``lease_token``; None if no job can match."""
    job = parse_id(job_id)
    if job is None or not isinstance(lease_token, str) or not lease_token:
        return None
    return {"_id": job, "lt": lease_token, "dd": False}


def _attempt_document(attempt: DeliveryAttempt, keep_seconds: float
                      ) -> dict[str, Any]:
    return {"_id": ObjectId(), "sid": attempt.subscription_id,
            "mid": attempt.message_id, "jid": attempt.job_id, "n": attempt.attempt,
            "at": attempt.at, "o": attempt.outcome, "st": attempt.status,
            "er": attempt.error, "ms": attempt.latency_ms, "r": attempt.response,
            "ea": as_date(attempt.at + keep_seconds)}
