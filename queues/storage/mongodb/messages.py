"""Messages on MongoDB: FIFO post (with its delivery jobs), listing, delete
rules, pop."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Sequence

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from queues.errors import (
    ClaimExpired, MessageIsClaimed, MessageNotClaimed, MessageNotFound,
    StorageUnavailable,
)
from queues.models import Message, NewMessage, Page
from queues.storage.base import MessageStore
from queues.storage.mongodb.driver import (
    MARKER_INDEX, as_date, clamp_int64, is_duplicate_key, operation, parse_id,
    take_oldest, to_message,
)
from queues.storage.mongodb.outbox import write_jobs

if TYPE_CHECKING:
    from queues.storage.mongodb.driver import MongoDriver

# A duplicate marker only happens when a queue is deleted and re-created while
# a post to its old incarnation is still writing; a few retries step past it.
POST_ATTEMPTS = 10


class MongoMessages(MessageStore):
    def __init__(self, driver: MongoDriver) -> None:
        self._driver = driver

    @operation
    async def post(
        self,
        project: str,
        queue: str,
        messages: Sequence[NewMessage],
        client_id: str | None,
    ) -> list[str]:
        driver = self._driver
        now = driver.clock()
        docs = [_new_document(project, queue, m, client_id, now) for m in messages]
        ids = [doc["_id"] for doc in docs]
        store = functools.partial(self._store, project, queue, docs, messages, now)
        for _ in range(POST_ATTEMPTS):
            try:
                if driver.use_transactions:
                    # NOTE: the counter bump, the inserts and the delivery
                    # jobs commit together. Concurrent posts to one queue
                    # conflict on the queue document and are retried, so
                    # batches become visible whole and in marker order: an
                    # observer paging by marker never skips a message
                    # committed later with a lower one.
                    await driver.in_transaction(store)
                else:
                    await store(None)
                return [str(i) for i in ids]
            except PyMongoError as ex:
                if not is_duplicate_key(ex):
                    raise
                if not driver.use_transactions:
                    await driver.messages_coll.delete_many({"_id": {"$in": ids}})
                await driver.skip_used_markers(project, queue)
        raise StorageUnavailable("No messages could be enqueued.")

    async def _store(self, project: str, queue: str, docs: list[dict[str, Any]],
                     messages: Sequence[NewMessage], now: float,
                     session: AsyncClientSession | None) -> None:
        """Reserve markers, insert the batch and write its delivery jobs.

        Without a session (standalone server: no transactions, so no
        subscriptions can be created there) the jobs are written after the
        messages, not atomically with them.
        """
        first = await self._driver.reserve_markers(
            project, queue, len(docs), session=session)
        if not docs:
            return
        for offset, doc in enumerate(docs):
            doc["k"] = first + offset
        await self._driver.messages_coll.insert_many(
            docs, ordered=True, session=session)
        await write_jobs(self._driver, session, now, project, queue,
                         [doc["_id"] for doc in docs], messages)

    @operation
    async def list(
        self,
        project: str,
        queue: str,
        *,
        marker: str | None = None,
        limit: int = 10,
        echo: bool = False,
        client_id: str | None = None,
        include_claimed: bool = False,
        include_delayed: bool = False,
    ) -> Page[Message]:
        try:
            after = clamp_int64(int(marker)) if marker is not None else 0
        except ValueError:
            return Page([], None)
        if limit <= 0:
            return Page([], None)
        now = self._driver.clock()
        query: dict[str, Any] = {
            "p": project, "q": queue, "k": {"$gt": after}, "e": {"$gt": now}}
        if not include_claimed:
            query["ce"] = {"$lte": now}
        if not include_delayed:
            query["d"] = {"$lte": now}
        if not echo and client_id is not None:
            query["u"] = {"$ne": client_id}
        docs = await self._driver.messages_read.find(
            query, sort=[("k", 1)], limit=limit, hint=MARKER_INDEX).to_list()
        items = [to_message(doc) for doc in docs]
        return Page(items, str(items[-1].marker) if items else None)

    async def get(self, project: str, queue: str, message_id: str) -> Message:
        found = await self.get_many(project, queue, [message_id])
        if not found:
            raise MessageNotFound(project, queue, message_id)
        return found[0]

    @operation
    async def get_many(
        self, project: str, queue: str, message_ids: Sequence[str]
    ) -> list[Message]:
        ids = _object_ids(message_ids)
        if not ids:
            return []
        docs = await self._driver.messages_read.find(
            {"_id": {"$in": ids}, "p": project, "q": queue,
             "e": {"$gt": self._driver.clock()}},
            sort=[("k", 1)],
        ).to_list()
        return [to_message(doc) for doc in docs]

    @operation
    async def delete(
        self, project: str, queue: str, message_id: str, claim_id: str | None = None
    ) -> None:
        message = parse_id(message_id)
        if message is None:
            return
        driver = self._driver
        claim = parse_id(claim_id) if claim_id is not None else None
        # Check the rules, then delete only if the message is still in the
        # state checked; if it changed in between, look again (the client
        # timeout bounds the loop; every miss means the state moved on).
        while True:
            now = driver.clock()
            doc = await driver.messages_coll.find_one(
                {"_id": message, "p": project, "q": queue, "e": {"$gt": now}},
                {"cid": 1, "ce": 1})
            if doc is None:
                return
            held_by = doc.get("cid")
            claimed = held_by is not None and doc.get("ce", 0) > now
            if claim_id is None:
                if claimed:
                    raise MessageIsClaimed()
                guard: dict[str, Any] = {"ce": {"$lte": now}}
            elif not claimed:
                if held_by is not None and held_by == claim:
                    raise ClaimExpired()
                raise MessageNotClaimed()
            elif held_by != claim:
                live = claim is not None and await driver.claims_coll.find_one(
                    {"_id": claim, "e": {"$gt": now}}, {"_id": 1})
                raise MessageIsClaimed() if live else ClaimExpired()
            else:
                guard = {"cid": claim, "ce": {"$gt": now}}
            result = await driver.messages_coll.delete_one(
                {"_id": message, "p": project, "q": queue, **guard})
            if result.deleted_count:
                return

    @operation
    async def delete_many(
        self,
        project: str,
        queue: str,
        message_ids: Sequence[str],
        claim_ids: Sequence[str] | None = None,
    ) -> None:
        ids = _object_ids(message_ids)
        if not ids:
            return
        query: dict[str, Any] = {"_id": {"$in": ids}, "p": project, "q": queue}
        if claim_ids is not None:
            claims = _object_ids(claim_ids)
            if not claims:
                return
            query["cid"] = {"$in": claims}
            query["ce"] = {"$gt": self._driver.clock()}
        await self._driver.messages_coll.delete_many(query)

    @operation
    async def pop(self, project: str, queue: str, limit: int) -> list[Message]:
        # Each message is removed by one conditional delete, so two concurrent
        # pops (or a pop and a claim) never both get a message.
        coll = self._driver.messages_coll

        async def take(doc: dict[str, Any], guard: dict[str, Any]) -> bool:
            return bool((await coll.delete_one(guard)).deleted_count)

        docs = await take_oldest(
            coll, project, queue, self._driver.clock(), limit, take)
        return [to_message(doc) for doc in docs]

    @operation
    async def purge(self, project: str, queue: str) -> None:
        await self._driver.messages_coll.delete_many({"p": project, "q": queue})
        await self._driver.claims_coll.delete_many({"p": project, "q": queue})


def _new_document(project: str, queue: str, message: NewMessage,
                  client_id: str | None, now: float) -> dict[str, Any]:
    expires = now + message.ttl
    return {
        "_id": ObjectId(),
        "p": project,
        "q": queue,
        "b": message.body_json,
        "t": message.ttl,
        "cr": now,
        "e": expires,
        "ea": as_date(expires),
        "d": now + message.delay if message.delay else 0.0,
        "u": client_id,
        "cid": None,
        "ce": 0.0,
        "cc": 0,
        "cs": message.checksum,
    }


def _object_ids(values: Sequence[str]) -> list[ObjectId]:
    return [oid for oid in map(parse_id, values) if oid is not None]
