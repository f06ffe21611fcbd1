"""Leasing delivery jobs on MongoDB, safe across any number of dispatchers.

A lease
1. finds the subscriptions with pending jobs (``distinct`` over the
   ``job_pending`` index: on mongod a skip from one subscription to the next),
   keeps the live, enabled ones whose breaker is closed, and drops the jobs
   of those that are gone (deleted, or expired: they never come back);
2. per subscription, counts its live leases and reads its oldest due, free
   jobs up to its room under ``max_in_flight`` (so a backlog behind a full or
   tripped subscription costs nothing to skip), and keeps the oldest overall;
3. takes each candidate with one conditional single-document update, a
   compare-and-set like ``take_oldest``: the filter is the job's id, the
   values it was read with (due, attempts, lease token) and "not dead, lease
   free". Every lease changes the token, so two dispatchers can never both
   hold a live lease on one job, and the job returned is exactly the one
   stored. A candidate someone else took meanwhile is skipped, and the read is
   repeated (a few rounds) to fill the batch;
4. counts each subscription's live leases again: when racing dispatchers
   went over ``max_in_flight`` together, each gives its excess back (the jobs
   restored exactly as they were). Every taker counts after its takes, so the
   last one to count sees them all and the leases kept never exceed the cap.

A conditional ``update_one`` rather than ``find_one_and_update``: both are
atomic on one document, but ``findAndModify`` costs time proportional to the
collection on the SecantusDB test server (see ``docs/mongodb.md``).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from queues.models import DeliveryJob
from queues.storage.mongodb.driver import JOB_LEASED_INDEX, JOB_PENDING_INDEX
from queues.storage.mongodb.outbox import LEASE_ORDER, drop_deliveries, to_job

if TYPE_CHECKING:
    from queues.storage.mongodb.driver import MongoDriver

# Reads of candidates per lease when racing dispatchers win some of them.
LEASE_ROUNDS = 3

# How often a lease also looks at subscriptions that only have dead letters,
# to drop those of subscriptions that are gone.
SWEEP_SECONDS = 60.0

Taken = tuple[dict[str, Any], dict[str, Any]]  # (as read, as leased)


def _order(doc: dict[str, Any]) -> tuple:
    return doc["due"], doc["_id"]


class Leaser:
    def __init__(self, driver: MongoDriver) -> None:
        self._driver = driver
        self._next_sweep = 0.0

    async def lease(self, limit: int, lease_seconds: float,
                    max_in_flight: int) -> list[DeliveryJob]:
        if limit <= 0 or max_in_flight <= 0:
            return []
        now = self._driver.clock()
        subscriptions = await self._leasable(now)
        taken: list[Taken] = []
        for _ in range(LEASE_ROUNDS if subscriptions else 0):
            candidates = await self._candidates(
                subscriptions, limit - len(taken), now, max_in_flight)
            lost = False
            for doc in candidates:
                leased = await self._take(doc, now, lease_seconds)
                if leased is None:
                    lost = True
                else:
                    taken.append((doc, leased))
            if not lost or len(taken) >= limit:
                break
        kept = await self._within_cap(taken, now, max_in_flight)
        return [to_job(doc) for doc in sorted(kept, key=_order)]

    async def _leasable(self, now: float) -> list[str]:
        """Live, enabled subscriptions with pending jobs and a closed breaker."""
        driver = self._driver
        sweep = time.monotonic() >= self._next_sweep
        if sweep:
            self._next_sweep = time.monotonic() + SWEEP_SECONDS
        ids = await driver.jobs_coll.distinct("sid", {} if sweep else {"dd": False})
        if not ids:
            return []
        docs = await driver.subscriptions_coll.find(
            {"_id": {"$in": ids}}, {"e": 1, "x": 1}).to_list()
        live = {doc["_id"]: doc for doc in docs if doc["e"] > now}
        gone = [sid for sid in ids if sid not in live]
        if gone:
            await drop_deliveries(driver, gone)
        tripped = await driver.breakers_coll.find(
            {"_id": {"$in": list(live)}, "u": {"$gt": now}}, {"_id": 1}).to_list()
        blocked = {doc["_id"] for doc in tripped}
        return sorted(sid for sid, doc in live.items()
                      if not doc["x"] and sid not in blocked)

    async def _in_flight(self, subscriptions: list[str], now: float
                         ) -> dict[str, int]:
        """Live leases per subscription (absent: none), in one read."""
        cursor = await self._driver.jobs_coll.aggregate([
            {"$match": {"sid": {"$in": subscriptions}, "le": {"$gt": now}}},
            {"$group": {"_id": "$sid", "n": {"$sum": 1}}},
        ], hint=JOB_LEASED_INDEX)
        return {doc["_id"]: doc["n"] async for doc in cursor}

    async def _candidates(self, subscriptions: list[str], want: int, now: float,
                          max_in_flight: int) -> list[dict[str, Any]]:
        """The ``want`` oldest due, free jobs, each subscription's share
        bounded by its room under ``max_in_flight``."""
        found: list[dict[str, Any]] = []
        in_flight = await self._in_flight(subscriptions, now)
        for sid in subscriptions:
            room = min(want, max_in_flight - in_flight.get(sid, 0))
            if room > 0:
                found += await self._driver.jobs_coll.find(
                    {"sid": sid, "dd": False, "due": {"$lte": now},
                     "le": {"$lte": now}},
                    sort=LEASE_ORDER, limit=room, hint=JOB_PENDING_INDEX).to_list()
        return sorted(found, key=_order)[:want]

    async def _take(self, doc: dict[str, Any], now: float, lease_seconds: float
                    ) -> dict[str, Any] | None:
        """Lease one job read as ``doc`` if it is still free and unchanged."""
        guard = {"_id": doc["_id"], "due": doc["due"], "a": doc["a"], "lt": doc["lt"],
                 "dd": False, "le": {"$lte": now}}
        fields = {"lt": uuid.uuid4().hex, "le": now + lease_seconds, "a": doc["a"] + 1}
        result = await self._driver.jobs_coll.update_one(guard, {"$set": fields})
        return {**doc, **fields} if result.matched_count else None

    async def _within_cap(self, taken: list[Taken], now: float,
                          max_in_flight: int) -> list[dict[str, Any]]:
        """Give back, newest first, the leases that put a subscription over
        ``max_in_flight``; return the leased documents kept."""
        by_subscription: dict[str, list[Taken]] = {}
        for pair in taken:
            by_subscription.setdefault(pair[1]["sid"], []).append(pair)
        kept: list[dict[str, Any]] = []
        in_flight = await self._in_flight(list(by_subscription), now) if taken else {}
        for sid, pairs in by_subscription.items():
            excess = in_flight.get(sid, 0) - max_in_flight
            while excess > 0 and pairs:
                await self._give_back(*pairs.pop())
                excess -= 1
            kept += [leased for _, leased in pairs]
        return kept

    async def _give_back(self, read: dict[str, Any], leased: dict[str, Any]) -> None:
        await self._driver.jobs_coll.update_one(
            {"_id": leased["_id"], "lt": leased["lt"]},
            {"$set": {"lt": read["lt"], "le": read["le"], "a": read["a"]}})
