"""Push subscriptions on SQLite.

Unique by (project, queue, subscriber, digest), ``digest`` being
``options_digest`` of the options (a column beside them, not a field of the
model). Creates and updates check it inside their ``BEGIN IMMEDIATE``
transaction, with the table's UNIQUE constraint behind them. Expired rows
are invisible at once (every query filters on ``expires``); an expired row
that stands in the way of a new one is dropped in the same transaction, and
the rest are collected with their jobs by the driver's periodic clean-up.
Listings run in creation order, ties broken by id; the marker is the id of
a page's last item.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any, Sequence

from queues.errors import Conflict, SubscriptionNotFound
from queues.models import Page, Subscription, options_digest
from queues.storage.base import SubscriptionStore
from queues.storage.sqlite.driver import (
    Database, drop_subscriptions, ensure_queue, transaction,
)

DUPLICATE = ("Such subscription already exists.Subscriptions are unique by"
             " project + queue + subscriber URI.")

# Same order as the fields of ``queues.models.Subscription``.
COLUMNS = ("id, project, queue, subscriber, ttl, created, expires, options,"
           " confirmed, secret, disabled")


def to_subscription(row: Sequence) -> Subscription:
    return Subscription(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                        json.loads(row[7]), bool(row[8]), row[9], bool(row[10]))


class SqliteSubscriptions(SubscriptionStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, project: str, queue: str, subscriber: str, *, ttl: int,
                     options: dict[str, Any], secret: str) -> tuple[Subscription, bool]:
        return await self._db.run(_create, project, queue, subscriber, ttl,
                                  json.dumps(options), options_digest(options),
                                  secret)

    async def get(self, project: str, queue: str, subscription_id: str) -> Subscription:
        found = await self._db.run(_get, project, queue, subscription_id)
        if found is None:
            raise SubscriptionNotFound(subscription_id)
        return found

    async def list(self, project: str, queue: str, *, marker: str | None = None,
                   limit: int = 10) -> Page[Subscription]:
        return await self._db.run(_list, project, queue, marker, limit)

    async def update(self, project: str, queue: str, subscription_id: str, *,
                     subscriber: str | None = None, ttl: int | None = None,
                     options: dict[str, Any] | None = None) -> None:
        stored = None if options is None else (json.dumps(options),
                                               options_digest(options))
        await self._db.run(_update, project, queue, subscription_id, subscriber, ttl,
                           stored)

    async def confirm(self, project: str, queue: str, subscription_id: str,
                      confirmed: bool) -> None:
        await self._db.run(_confirm, project, queue, subscription_id, confirmed)

    async def disable(self, subscription_id: str) -> None:
        await self._db.run(_disable, subscription_id)

    async def delete(self, project: str, queue: str, subscription_id: str) -> None:
        await self._db.run(_delete, project, queue, subscription_id)

    async def purge(self, project: str, queue: str) -> None:
        await self._db.run(_purge, project, queue)


def _holder(conn: sqlite3.Connection, project: str, queue: str, subscriber: str,
            digest: str) -> tuple | None:
    """The row holding (project, queue, subscriber, digest), live or expired."""
    return conn.execute(
        f"SELECT {COLUMNS} FROM subscriptions WHERE project = ? AND queue = ?"
        " AND subscriber = ? AND digest = ?",
        (project, queue, subscriber, digest)).fetchone()


def _create(conn: sqlite3.Connection, now: float, project: str, queue: str,
            subscriber: str, ttl: int, options: str, digest: str,
            secret: str) -> tuple[Subscription, bool]:
    with transaction(conn):
        ensure_queue(conn, now, project, queue)
        row = _holder(conn, project, queue, subscriber, digest)
        if row is not None:
            existing = to_subscription(row)
            if existing.expires > now:
                if existing.confirmed:
                    raise Conflict(DUPLICATE)
                return existing, False
            drop_subscriptions(conn, [existing.id])
        created = Subscription(uuid.uuid4().hex, project, queue, subscriber, ttl, now,
                               now + ttl, json.loads(options), False, secret, False)
        conn.execute(
            f"INSERT INTO subscriptions ({COLUMNS}, digest)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (created.id, project, queue, subscriber, ttl, now, now + ttl, options,
             0, secret, 0, digest))
    return created, True


def _get(conn: sqlite3.Connection, now: float, project: str, queue: str,
         subscription_id: str) -> Subscription | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM subscriptions WHERE id = ? AND project = ?"
        " AND queue = ? AND expires > ?",
        (subscription_id, project, queue, now)).fetchone()
    return None if row is None else to_subscription(row)


def _list(conn: sqlite3.Connection, now: float, project: str, queue: str,
          marker: str | None, limit: int) -> Page[Subscription]:
    sql = (f"SELECT {COLUMNS} FROM subscriptions WHERE project = ? AND queue = ?"
           " AND expires > ?")
    args: list[Any] = [project, queue, now]
    if marker is not None:
        after = conn.execute(
            "SELECT created FROM subscriptions WHERE id = ? AND project = ?"
            " AND queue = ?", (marker, project, queue)).fetchone()
        if after is None:
            return Page([], None)
        sql += " AND (created, id) > (?, ?)"
        args += [after[0], marker]
    sql += " ORDER BY created, id LIMIT ?"
    args.append(limit)
    items = [to_subscription(row) for row in conn.execute(sql, args)]
    return Page(items, items[-1].id if items else None)


def _update(conn: sqlite3.Connection, now: float, project: str, queue: str,
            subscription_id: str, subscriber: str | None, ttl: int | None,
            options: tuple[str, str] | None) -> None:
    """``options`` is (JSON, digest) when they change."""
    with transaction(conn):
        current = conn.execute(
            "SELECT subscriber, digest FROM subscriptions WHERE id = ?"
            " AND project = ? AND queue = ? AND expires > ?",
            (subscription_id, project, queue, now)).fetchone()
        if current is None:
            raise SubscriptionNotFound(subscription_id)
        sets: list[str] = []
        args: list[Any] = []
        if subscriber is not None:
            sets.append("subscriber = ?")
            args.append(subscriber)
        if ttl is not None:
            sets.append("ttl = ?, expires = ?")
            args += [ttl, now + ttl]
        if options is not None:
            sets.append("options = ?, digest = ?")
            args += list(options)
        wanted = (current[0] if subscriber is None else subscriber,
                  current[1] if options is None else options[1])
        if wanted != tuple(current):
            _free(conn, now, project, queue, *wanted)
        if sets:
            conn.execute(f"UPDATE subscriptions SET {', '.join(sets)} WHERE id = ?",
                         [*args, subscription_id])


def _free(conn: sqlite3.Connection, now: float, project: str, queue: str,
          subscriber: str, digest: str) -> None:
    """Make (subscriber, digest) available to an update: ``Conflict`` if a
    live subscription holds it, an expired holder is dropped."""
    other = _holder(conn, project, queue, subscriber, digest)
    if other is None:
        return
    if to_subscription(other).expires > now:
        raise Conflict(DUPLICATE)
    drop_subscriptions(conn, [other[0]])


def _confirm(conn: sqlite3.Connection, now: float, project: str, queue: str,
             subscription_id: str, confirmed: bool) -> None:
    with transaction(conn):
        cursor = conn.execute(
            "UPDATE subscriptions SET confirmed = ? WHERE id = ? AND project = ?"
            " AND queue = ? AND expires > ?",
            (int(confirmed), subscription_id, project, queue, now))
        if cursor.rowcount == 0:
            raise SubscriptionNotFound(subscription_id)


def _disable(conn: sqlite3.Connection, now: float, subscription_id: str) -> None:
    with transaction(conn):
        conn.execute("UPDATE subscriptions SET disabled = 1 WHERE id = ?",
                     (subscription_id,))


def _delete(conn: sqlite3.Connection, now: float, project: str, queue: str,
            subscription_id: str) -> None:
    with transaction(conn):
        row = conn.execute(
            "SELECT id FROM subscriptions WHERE id = ? AND project = ? AND queue = ?",
            (subscription_id, project, queue)).fetchone()
        if row is not None:
            drop_subscriptions(conn, [row[0]])


def _purge(conn: sqlite3.Connection, now: float, project: str, queue: str) -> None:
    with transaction(conn):
        drop_subscriptions(conn, [row[0] for row in conn.execute(
            "SELECT id FROM subscriptions WHERE project = ? AND queue = ?",
            (project, queue))])
