"""Push subscriptions on Redis.

A subscription is one hash (``<ns>:s:{<id>}:info``); its queue indexes it in
three keys that outlive the queue (creation order, (subscriber URI, options
digest) -> id for uniqueness, and the enabled ``targets`` a post fans out
to). Every change is one script, which checks and moves the uniqueness
entry in the same call, except ``disable``, which first reads the
subscription's (immutable) project and queue to name the index keys, and
the sweeper's ``reap``, likewise.

Expired subscriptions are invisible at once (every read compares
``expires`` with the driver's clock); one that stands in the way of a new
(subscriber URI, options) pair is dropped with its jobs by the script that
needs the pair, and the rest by the driver's background sweep (``reap``).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from queues.errors import Conflict, SubscriptionNotFound
from queues.models import Page, Subscription, options_digest
from queues.storage.base import SubscriptionStore

if TYPE_CHECKING:
    from queues.storage.redis.driver import RedisDriver

# Zaqar's words, as the SQLite driver has them.
DUPLICATE = ("Such subscription already exists.Subscriptions are unique by"
             " project + queue + subscriber URI.")

# Expired subscriptions the sweeper drops per round trip.
REAP_BATCH = 100


def to_subscription(subscription_id: str, f: Mapping[bytes, bytes]) -> Subscription:
    """A subscription from its id and its info hash."""
    return Subscription(
        subscription_id, f[b"project"].decode(), f[b"queue"].decode(),
        f[b"subscriber"].decode(), int(f[b"ttl"]), float(f[b"created"]),
        float(f[b"expires"]), json.loads(f[b"options"]), f[b"confirmed"] == b"1",
        f[b"secret"].decode(), f[b"disabled"] == b"1")


def from_reply(row: Sequence[bytes]) -> Subscription:
    """A subscription from a script's ``{id, field, value, ...}`` reply."""
    fields = dict(zip(row[1::2], row[2::2]))
    return to_subscription(row[0].decode(), fields)


class RedisSubscriptions(SubscriptionStore):
    def __init__(self, driver: RedisDriver) -> None:
        self._driver = driver
        self._keys = driver.keys
        self._scripts = driver.scripts

    def _index(self, project: str, queue: str) -> tuple[str, ...]:
        return self._keys.queue(project, queue).subscription_index

    async def create(self, project: str, queue: str, subscriber: str, *, ttl: int,
                     options: dict[str, Any], secret: str) -> tuple[Subscription, bool]:
        now = self._driver.clock()
        created = Subscription(uuid.uuid4().hex, project, queue, subscriber, ttl, now,
                               now + ttl, options, False, secret, False)
        keys = self._keys.queue(project, queue)
        reply = await self._driver.guard(self._scripts.subscription_create(
            keys=(keys.keys + self._keys.project(project).keys
                  + keys.subscription_index + self._keys.outbox.keys
                  + self._keys.subscription(created.id).keys),
            args=[now, queue, keys.member, project, created.id, subscriber, ttl,
                  created.expires, json.dumps(options), secret,
                  self._keys.subscription_prefix, options_digest(options)]))
        if reply[0] == b"conflict":
            raise Conflict(DUPLICATE)
        if reply[0] == b"existing":
            return from_reply(reply[1:]), False
        return created, True

    async def get(self, project: str, queue: str, subscription_id: str) -> Subscription:
        fields = await self._driver.guard(self._driver.client.hgetall(
            self._keys.subscription(subscription_id).info))
        if fields:
            found = to_subscription(subscription_id, fields)
            if ((found.project, found.queue) == (project, queue)
                    and found.expires > self._driver.clock()):
                return found
        raise SubscriptionNotFound(subscription_id)

    async def list(self, project: str, queue: str, *, marker: str | None = None,
                   limit: int = 10) -> Page[Subscription]:
        if limit <= 0:
            return Page([], None)
        rows = await self._driver.guard(self._scripts.subscription_list(
            keys=self._index(project, queue),
            args=[self._driver.clock(), marker or "", limit,
                  self._keys.subscription_prefix]))
        items = [from_reply(row) for row in rows]
        return Page(items, items[-1].id if items else None)

    async def update(self, project: str, queue: str, subscription_id: str, *,
                     subscriber: str | None = None, ttl: int | None = None,
                     options: dict[str, Any] | None = None) -> None:
        now = self._driver.clock()
        done = await self._driver.guard(self._scripts.subscription_update(
            keys=(self._index(project, queue) + self._keys.outbox.keys
                  + self._keys.subscription(subscription_id).keys),
            args=[now, project, queue, subscription_id, int(subscriber is not None),
                  subscriber or "", "" if ttl is None else ttl,
                  0 if ttl is None else now + ttl,
                  "" if options is None else json.dumps(options),
                  "" if options is None else options_digest(options),
                  self._keys.subscription_prefix]))
        if done == -1:
            raise Conflict(DUPLICATE)
        if done != 1:
            raise SubscriptionNotFound(subscription_id)

    async def confirm(self, project: str, queue: str, subscription_id: str,
                      confirmed: bool) -> None:
        done = await self._driver.guard(self._scripts.subscription_confirm(
            keys=self._keys.subscription(subscription_id).keys,
            args=[self._driver.clock(), project, queue, int(confirmed)]))
        if done != 1:
            raise SubscriptionNotFound(subscription_id)

    async def disable(self, subscription_id: str) -> None:
        keys = self._keys.subscription(subscription_id)
        owner = await self._driver.guard(
            self._driver.client.hmget(keys.info, "project", "queue"))
        if owner[0] is None:
            return
        project, queue = owner[0].decode(), owner[1].decode()
        await self._driver.guard(self._scripts.subscription_disable(
            keys=keys.keys + self._index(project, queue) + self._keys.outbox.keys,
            args=[subscription_id, project, queue]))

    async def delete(self, project: str, queue: str, subscription_id: str) -> None:
        await self._driver.guard(self._scripts.subscription_delete(
            keys=(self._index(project, queue) + self._keys.outbox.keys
                  + self._keys.subscription(subscription_id).keys),
            args=[project, queue, subscription_id]))

    async def purge(self, project: str, queue: str) -> None:
        await self._driver.guard(self._scripts.subscription_purge(
            keys=self._index(project, queue) + self._keys.outbox.keys,
            args=[self._keys.subscription_prefix]))

    async def reap(self, now: float, batch: int = REAP_BATCH) -> bool:
        """Drop up to ``batch`` expired subscriptions with their jobs; True
        when more may be waiting. Called by the driver's sweep."""
        client = self._driver.client
        ids = [i.decode() for i in await self._driver.guard(client.zrangebyscore(
            self._keys.outbox.expiry, "-inf", now, start=0, num=batch))]
        if not ids:
            return False
        pipe = client.pipeline(transaction=False)
        for subscription_id in ids:
            pipe.hmget(self._keys.subscription(subscription_id).info,
                       "project", "queue")
        owners = await self._driver.guard(pipe.execute())
        pipe = client.pipeline(transaction=False)
        for subscription_id, (project, queue) in zip(ids, owners):
            project, queue = (project or b"").decode(), (queue or b"").decode()
            await self._scripts.subscription_reap(
                keys=(self._index(project, queue) + self._keys.outbox.keys
                      + self._keys.subscription(subscription_id).keys),
                args=[now, subscription_id, project, queue], client=pipe)
        await self._driver.guard(pipe.execute())
        return len(ids) == batch

