"""Push subscriptions on MongoDB.

``subscriptions`` ``{_id, p, q, s, t, cr, e, ea, o, h, c, k, x}``: id (32
hex digits), project, queue, subscriber URI, ttl, created, expires (float,
the clock every query filters on) and ``ea`` (the same instant as a BSON date
for the TTL index), options as JSON text (kept exactly as written), their
``options_digest`` ``h``, confirmed, secret, disabled.

Unique by (project, queue, subscriber, options digest) through the
``subscriber_options`` index. That index also sees expired documents until
the TTL monitor removes them, so an expired one standing in the way of a new
one is dropped first (with its jobs); two creators racing for one pair
collide on the index and the loser reads the winner's, and an update racing
into a pair collides likewise (``Conflict``). Listings run in creation
order, ties broken by id; the marker is the id of a page's last item.

Creation is refused on a standalone server: a post must write the message
and its delivery jobs in one transaction (see ``jobs.py``).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from pymongo.errors import DuplicateKeyError

from queues.errors import Conflict, NotSupported, SubscriptionNotFound
from queues.models import Page, Subscription, options_digest
from queues.storage.base import SubscriptionStore
from queues.storage.mongodb.driver import SUBSCRIPTION_ORDER_INDEX, as_date, operation
from queues.storage.mongodb.outbox import drop_deliveries, drop_subscriptions

if TYPE_CHECKING:
    from queues.storage.mongodb.driver import MongoDriver

DUPLICATE = ("Such subscription already exists.Subscriptions are unique by"
             " project + queue + subscriber URI.")

NEEDS_REPLICA_SET = (
    "Subscriptions need a MongoDB replica set or sharded cluster: on a standalone"
    " server a message and its delivery jobs cannot be written atomically.")

# A create loses the race for its (subscriber, options) at most a few times
# in a row.
CREATE_ATTEMPTS = 5


def to_subscription(doc: dict[str, Any]) -> Subscription:
    return Subscription(doc["_id"], doc["p"], doc["q"], doc["s"], doc["t"], doc["cr"],
                        doc["e"], json.loads(doc["o"]), doc["c"], doc["k"], doc["x"])


class MongoSubscriptions(SubscriptionStore):
    def __init__(self, driver: MongoDriver) -> None:
        self._driver = driver

    @operation
    async def create(self, project: str, queue: str, subscriber: str, *, ttl: int,
                     options: dict[str, Any], secret: str) -> tuple[Subscription, bool]:
        driver = self._driver
        if not driver.use_transactions:
            raise NotSupported(NEEDS_REPLICA_SET)
        now = driver.clock()
        await self._ensure_queue(project, queue, now)
        digest = options_digest(options)
        for _ in range(CREATE_ATTEMPTS):
            existing = await driver.subscriptions_coll.find_one(
                {"p": project, "q": queue, "s": subscriber, "h": digest})
            if existing is not None:
                if existing["e"] > now:
                    if existing["c"]:
                        raise Conflict(DUPLICATE)
                    return to_subscription(existing), False
                await _drop_expired(driver, existing["_id"], now)
            doc = _new_document(project, queue, subscriber, ttl, options, digest,
                                secret, now)
            try:
                await driver.subscriptions_coll.insert_one(doc)
            except DuplicateKeyError:
                continue  # a racing create or update took the pair: read it
            return to_subscription(doc), True
        raise Conflict(DUPLICATE)

    async def _ensure_queue(self, project: str, queue: str, now: float) -> None:
        try:
            await self._driver.queues_coll.update_one(
                {"p": project, "n": queue},
                {"$setOnInsert": {"m": "{}", "c": 0, "cr": now}}, upsert=True)
        except DuplicateKeyError:
            pass  # created meanwhile

    @operation
    async def get(self, project: str, queue: str, subscription_id: str) -> Subscription:
        doc = await self._driver.subscriptions_read.find_one(
            _live(project, queue, subscription_id, self._driver.clock()))
        if doc is None:
            raise SubscriptionNotFound(subscription_id)
        return to_subscription(doc)

    @operation
    async def list(self, project: str, queue: str, *, marker: str | None = None,
                   limit: int = 10) -> Page[Subscription]:
        if limit <= 0:
            return Page([], None)
        coll = self._driver.subscriptions_read
        query: dict[str, Any] = {"p": project, "q": queue,
                                 "e": {"$gt": self._driver.clock()}}
        if marker is not None:
            after = await coll.find_one({"_id": marker, "p": project, "q": queue},
                                        {"cr": 1})
            if after is None:
                return Page([], None)
            query["$or"] = [{"cr": {"$gt": after["cr"]}},
                            {"cr": after["cr"], "_id": {"$gt": marker}}]
        docs = await coll.find(query, sort=[("cr", 1), ("_id", 1)], limit=limit,
                               hint=SUBSCRIPTION_ORDER_INDEX).to_list()
        items = [to_subscription(doc) for doc in docs]
        return Page(items, items[-1].id if items else None)

    @operation
    async def update(self, project: str, queue: str, subscription_id: str, *,
                     subscriber: str | None = None, ttl: int | None = None,
                     options: dict[str, Any] | None = None) -> None:
        driver = self._driver
        now = driver.clock()
        live = _live(project, queue, subscription_id, now)
        current = await driver.subscriptions_coll.find_one(live, {"s": 1, "h": 1})
        if current is None:
            raise SubscriptionNotFound(subscription_id)
        fields: dict[str, Any] = {}
        if subscriber is not None:
            fields["s"] = subscriber
        if ttl is not None:
            fields.update(t=ttl, e=now + ttl, ea=as_date(now + ttl))
        if options is not None:
            fields.update(o=json.dumps(options), h=options_digest(options))
        if not fields:
            return
        held = (current["s"], current.get("h"))
        wanted = (fields.get("s", held[0]), fields.get("h", held[1]))
        if wanted != held:
            await self._free(project, queue, *wanted, now)
        try:
            result = await driver.subscriptions_coll.update_one(live, {"$set": fields})
        except DuplicateKeyError:
            raise Conflict(DUPLICATE) from None  # taken meanwhile
        if result.matched_count == 0:
            raise SubscriptionNotFound(subscription_id)

    async def _free(self, project: str, queue: str, subscriber: str,
                    digest: str | None, now: float) -> None:
        """Conflict if a live subscription of the queue has ``subscriber``
        and options ``digest``; drop an expired one that still holds the
        pair in the unique index (the update's write is what settles a race:
        it collides on the index)."""
        other = await self._driver.subscriptions_coll.find_one(
            {"p": project, "q": queue, "s": subscriber, "h": digest}, {"e": 1})
        if other is None:
            return
        if other["e"] > now:
            raise Conflict(DUPLICATE)
        await _drop_expired(self._driver, other["_id"], now)

    @operation
    async def confirm(self, project: str, queue: str, subscription_id: str,
                      confirmed: bool) -> None:
        result = await self._driver.subscriptions_coll.update_one(
            _live(project, queue, subscription_id, self._driver.clock()),
            {"$set": {"c": bool(confirmed)}})
        if result.matched_count == 0:
            raise SubscriptionNotFound(subscription_id)

    @operation
    async def disable(self, subscription_id: str) -> None:
        await self._driver.subscriptions_coll.update_one(
            {"_id": subscription_id}, {"$set": {"x": True}})

    @operation
    async def delete(self, project: str, queue: str, subscription_id: str) -> None:
        found = await self._driver.subscriptions_coll.find_one(
            {"_id": subscription_id, "p": project, "q": queue}, {"_id": 1})
        if found is not None:
            await drop_subscriptions(self._driver, [subscription_id])

    @operation
    async def purge(self, project: str, queue: str) -> None:
        docs = await self._driver.subscriptions_coll.find(
            {"p": project, "q": queue}, {"_id": 1}).to_list()
        await drop_subscriptions(self._driver, [doc["_id"] for doc in docs])


async def _drop_expired(driver: MongoDriver, subscription_id: str, now: float
                        ) -> None:
    """Drop an expired subscription (and what hangs on it) that still holds
    its (subscriber URI, options) in the unique index. Expired ones never
    come back."""
    result = await driver.subscriptions_coll.delete_one(
        {"_id": subscription_id, "e": {"$lte": now}})
    if result.deleted_count:
        await drop_deliveries(driver, [subscription_id])


def _live(project: str, queue: str, subscription_id: str, now: float
          ) -> dict[str, Any]:
    return {"_id": subscription_id, "p": project, "q": queue, "e": {"$gt": now}}


def _new_document(project: str, queue: str, subscriber: str, ttl: int,
                  options: dict[str, Any], digest: str, secret: str, now: float
                  ) -> dict[str, Any]:
    return {"_id": uuid.uuid4().hex, "p": project, "q": queue, "s": subscriber,
            "t": ttl, "cr": now, "e": now + ttl, "ea": as_date(now + ttl),
            "o": json.dumps(options), "h": digest, "c": False, "k": secret,
            "x": False}
