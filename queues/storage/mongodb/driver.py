"""MongoDB client, collections, indexes, error translation and the driver.

Collections of the driver's database (``namespace``):

``queues``   ``{p, n, m, c, cr}``: project, name, metadata as JSON text (kept
             exactly as written), the FIFO counter ``c`` and creation time.
             Unique index ``(p, n)``.
``messages`` ``{_id, p, q, k, b, t, cr, e, ea, d, u, cid, ce, cc, cs}``: the
             marker ``k`` (unique per queue), body bytes, ttl, created,
             expires (float, the clock used by every query) and ``ea`` (the
             same instant as a BSON date for the TTL index), delay-until,
             client id, the latest claim (id ``cid``, expiry ``ce``; ``ce`` is
             0 when free) and the claim count ``cc``.
``claims``   ``{_id, p, q, t, g, u, e, ea}``: one document per claim.

Signed-URL state lives in ``generations``, ``token_marks`` and
``rate_counters`` (see ``grants.py``). Push subscriptions live in
``subscriptions`` (``subscriptions.py``); their delivery outbox in ``jobs``,
``breakers`` and ``delivery_attempts`` (``outbox.py``, ``jobs.py``,
``lease.py``). A post writes its jobs in its own transaction, so
subscriptions need a replica set or mongos: on a standalone server creating
one is refused (``NotSupported``).

A message's own ``cid``/``ce`` decide who holds it; the ``claims`` document
only carries the claim's ttl, grace and age. Every state change of a message is
a single-document atomic update, so two live claims can never hold one message.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import functools
import random
import time
from typing import Any, Awaitable, Callable, Mapping, TypeVar

import pymongo
from bson import ObjectId
from bson.errors import BSONError, InvalidId
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import (
    BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError,
)
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from queues.errors import Conflict, StorageUnavailable
from queues.models import Message
from queues.storage.base import Driver

T = TypeVar("T")

# Physical deletion by the TTL monitor runs this long after a document's
# expiry: queries already hide expired documents, and the slack keeps a server
# clock that runs ahead of the API nodes' from deleting live messages.
TTL_SLACK_SECONDS = 60

# Index names, also given as hints: claims, pops and listings filter on a
# queue and walk it in marker order, which this index serves directly.
MARKER_INDEX = "queue_marker"
CLAIM_INDEX = "claim_id"
SUBSCRIPTION_ORDER_INDEX = "subscription_order"
SUBSCRIBER_INDEX = "subscriber_options"
JOB_PENDING_INDEX = "job_pending"
JOB_LEASED_INDEX = "job_leased"
ATTEMPT_ORDER_INDEX = "attempt_order"

INDEXES = {
    "queues": [IndexModel([("p", 1), ("n", 1)], name="queue_name", unique=True)],
    "messages": [
        # FIFO: two writers can never store the same marker in one queue.
        # Also serves listing, claiming and popping in marker order.
        IndexModel([("p", 1), ("q", 1), ("k", 1)], name=MARKER_INDEX, unique=True),
        IndexModel([("ea", 1)], name="expires_ttl",
                   expireAfterSeconds=TTL_SLACK_SECONDS),
        IndexModel([("cid", 1)], name=CLAIM_INDEX),
    ],
    "claims": [
        IndexModel([("p", 1), ("q", 1)], name="claim_queue"),
        IndexModel([("ea", 1)], name="expires_ttl",
                   expireAfterSeconds=TTL_SLACK_SECONDS),
    ],
    # Signed-URL state (grants.py).
    "generations": [
        IndexModel([("p", 1), ("q", 1)], name="queue_generation", unique=True)],
    "token_marks": [
        IndexModel([("ea", 1)], name="expires_ttl",
                   expireAfterSeconds=TTL_SLACK_SECONDS)],
    "rate_counters": [
        IndexModel([("ea", 1)], name="expires_ttl",
                   expireAfterSeconds=TTL_SLACK_SECONDS)],
    # Push subscriptions (subscriptions.py) and their outbox (jobs.py).
    "subscriptions": [
        # Unique by subscriber URI and options (``h``, their options_digest):
        # several subscriptions may share a URI when their options differ.
        IndexModel([("p", 1), ("q", 1), ("s", 1), ("h", 1)], name=SUBSCRIBER_INDEX,
                   unique=True),
        # Listing in creation order; also the post's lookup of a queue's
        # subscriptions (one indexed read, the only cost when there are none).
        IndexModel([("p", 1), ("q", 1), ("cr", 1), ("_id", 1)],
                   name=SUBSCRIPTION_ORDER_INDEX),
        IndexModel([("ea", 1)], name="expires_ttl",
                   expireAfterSeconds=TTL_SLACK_SECONDS),
    ],
    "jobs": [
        # A subscription's due jobs in lease order; its dead letters.
        IndexModel([("sid", 1), ("dd", 1), ("due", 1), ("_id", 1)],
                   name=JOB_PENDING_INDEX),
        # Counting a subscription's live leases (max_in_flight).
        IndexModel([("sid", 1), ("le", 1)], name=JOB_LEASED_INDEX),
    ],
    "breakers": [
        IndexModel([("ea", 1)], name="expires_ttl",
                   expireAfterSeconds=TTL_SLACK_SECONDS)],
    "delivery_attempts": [
        IndexModel([("sid", 1), ("at", 1), ("_id", 1)], name=ATTEMPT_ORDER_INDEX),
        IndexModel([("ea", 1)], name="expires_ttl",
                   expireAfterSeconds=TTL_SLACK_SECONDS),
    ],
}

# Indexes an earlier version created, dropped at start: ``subscriber`` made
# (p, q, s) unique, which would still refuse a second subscription of one URI
# with other options.
RETIRED_INDEXES = {"subscriptions": ["subscriber"]}

# How long to keep trying to abort a transaction we lost contact with: the
# server's own transactionLifetimeLimitSeconds default.
ORPHAN_KILL_SECONDS = 60.0

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def operation(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run a store method within the driver's timeout and translate errors.

    Every public storage method is wrapped: the whole call (including index
    set-up on first use and any retries) is bounded by ``timeout`` through
    pymongo's client-side operation timeout, and every pymongo error leaves as
    a ``queues.errors`` exception.
    """

    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        driver: MongoDriver = self._driver
        try:
            with pymongo.timeout(driver.timeout):
                await driver.ready()
                return await fn(self, *args, **kwargs)
        except DuplicateKeyError as ex:
            raise Conflict("The resource was changed concurrently.") from ex
        except PyMongoError as ex:
            raise StorageUnavailable(_describe(ex)) from ex
        except (BSONError, OverflowError) as ex:
            # A value BSON cannot encode (the API's limits should prevent it).
            raise StorageUnavailable("The store could not encode the request.") from ex

    return wrapper


def _describe(ex: PyMongoError) -> str:
    if getattr(ex, "timeout", False):
        return "The store did not answer in time. Please try again in a few seconds."
    return "The store is unavailable. Please try again in a few seconds."


def is_duplicate_key(ex: PyMongoError) -> bool:
    if isinstance(ex, DuplicateKeyError):
        return True
    if isinstance(ex, BulkWriteError):
        return any(e.get("code") == 11000 for e in ex.details.get("writeErrors", []))
    return False


def parse_id(value: str | None) -> ObjectId | None:
    """An id from a client, or None if it cannot be one of ours."""
    if not isinstance(value, str) or len(value) != 24:
        return None
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


# BSON dates for the TTL indexes stay within what datetime can represent.
_MAX_DATE_SECONDS = 253402300799.0  # 9999-12-31T23:59:59Z


def as_date(seconds: float) -> datetime.datetime:
    seconds = min(max(seconds, 0.0), _MAX_DATE_SECONDS)
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def clamp_int64(value: int) -> int:
    return max(INT64_MIN, min(INT64_MAX, value))


def to_message(doc: dict[str, Any]) -> Message:
    claim_id = doc.get("cid")
    return Message(
        id=str(doc["_id"]),
        marker=doc["k"],
        body_json=bytes(doc["b"]),
        ttl=doc["t"],
        created=doc["cr"],
        expires=doc["e"],
        delay_until=doc.get("d", 0.0),
        client_id=doc.get("u"),
        claim_id=None if claim_id is None else str(claim_id),
        claim_expires=None if claim_id is None else doc["ce"],
        claim_count=doc.get("cc", 0),
        checksum=doc.get("cs"),
    )


def claimable(project: str, queue: str, now: float) -> dict[str, Any]:
    """Live, visible messages held by no live claim."""
    return {"p": project, "q": queue, "e": {"$gt": now}, "d": {"$lte": now},
            "ce": {"$lte": now}}


async def take_oldest(
    coll: Any, project: str, queue: str, now: float, limit: int,
    take: Callable[[dict[str, Any], dict[str, Any]], Awaitable[bool]],
) -> list[dict[str, Any]]:
    """Take up to ``limit`` claimable messages, oldest first.

    Candidates come from one ranged read of the marker index. Each is then
    offered to ``take(doc, guard)``, which must change it with one
    single-document conditional write filtered on ``guard`` and return whether
    it matched. ``guard`` is the candidate's ``_id`` and claim count plus the
    claimable conditions: any claim bumps the count, so a match proves the
    message is still free and unchanged since it was read (a compare-and-set;
    ``e``/``t`` only ever change together with the count or a live claim).
    A candidate someone else took in between no longer matches and is
    skipped, so two callers can never both take a message. Returns the
    candidates taken (as read), in marker order.
    """
    taken: list[dict[str, Any]] = []
    after: int | None = None
    while len(taken) < limit:
        query = claimable(project, queue, now)
        if after is not None:
            query["k"] = {"$gt": after}
        # Read a few spare candidates: racing takers may win some.
        batch = min(2 * (limit - len(taken)), 100)
        candidates = await coll.find(
            query, sort=[("k", 1)], limit=batch, hint=MARKER_INDEX).to_list()
        for doc in candidates:
            after = doc["k"]
            guard = {"_id": doc["_id"], "cc": doc.get("cc", 0),
                     **claimable(project, queue, now)}
            if await take(doc, guard):
                taken.append(doc)
                if len(taken) == limit:
                    break
        if len(candidates) < batch:
            break
    return taken


def extend_life(until: float, ttl: int) -> dict[str, Any]:
    """Pipeline ``$set`` fields making a message outlive ``until``.

    A message that would expire before ``until`` (claim end plus grace) gets
    ``expires = until`` and ``ttl`` (claim ttl plus grace); others keep theirs.
    All expressions read the document as it was before the stage.
    """
    return {
        "t": {"$cond": [{"$lt": ["$e", until]}, ttl, "$t"]},
        "e": {"$max": ["$e", until]},
        "ea": {"$max": ["$ea", as_date(until)]},
    }


class MongoDriver(Driver):
    """The MongoDB store on pymongo's native asyncio client."""

    def __init__(
        self,
        client: AsyncMongoClient,
        *,
        database: str,
        timeout: float,
        write_concern: WriteConcern,
        read_preference: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from queues.storage.mongodb.claims import MongoClaims
        from queues.storage.mongodb.grants import MongoGrants
        from queues.storage.mongodb.jobs import MongoJobs
        from queues.storage.mongodb.messages import MongoMessages
        from queues.storage.mongodb.queues import MongoQueues
        from queues.storage.mongodb.subscriptions import MongoSubscriptions

        self.client = client
        self.timeout = timeout
        self.clock = clock
        self.write_concern = write_concern
        self.db = client.get_database(
            database, write_concern=write_concern, read_preference=read_preference)
        # Claims, pops and read-modify-write checks always read the primary.
        self.primary_db = client.get_database(
            database, write_concern=write_concern,
            read_preference=ReadPreference.PRIMARY)
        self.queues_coll = self.primary_db["queues"]
        self.messages_coll = self.primary_db["messages"]
        self.claims_coll = self.primary_db["claims"]
        self.generations_coll = self.primary_db["generations"]
        self.token_marks_coll = self.primary_db["token_marks"]
        self.rate_counters_coll = self.primary_db["rate_counters"]
        self.subscriptions_coll = self.primary_db["subscriptions"]
        self.jobs_coll = self.primary_db["jobs"]
        self.breakers_coll = self.primary_db["breakers"]
        self.attempts_coll = self.primary_db["delivery_attempts"]
        # Listing, stats and gets honour the configured read preference.
        self.queues_read = self.db["queues"]
        self.messages_read = self.db["messages"]
        self.subscriptions_read = self.db["subscriptions"]
        # None until the first call: True on replica sets and mongos, where a
        # batch post is one transaction; False on a standalone server.
        self.use_transactions: bool | None = None
        self._ready = False
        self._ready_lock: asyncio.Lock | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.queues = MongoQueues(self)
        self.messages = MongoMessages(self)
        self.claims = MongoClaims(self)
        self.grants = MongoGrants(self)
        self.subscriptions = MongoSubscriptions(self)
        self.jobs = MongoJobs(self)

    # --- lifecycle ----------------------------------------------------------

    async def ready(self) -> None:
        """Create the indexes and learn the topology once per driver."""
        if self._ready:
            return
        if self._ready_lock is None:
            self._ready_lock = asyncio.Lock()
        async with self._ready_lock:
            if self._ready:
                return
            hello = await self.client.admin.command("hello")
            if self.use_transactions is None:
                self.use_transactions = bool(
                    hello.get("setName") or hello.get("msg") == "isdbgrid")
            for name, indexes in INDEXES.items():
                await self.primary_db[name].create_indexes(indexes)
            await self._drop_retired_indexes()
            self._ready = True

    async def _drop_retired_indexes(self) -> None:
        """Drop indexes of earlier versions that contradict ``INDEXES``."""
        for name, retired in RETIRED_INDEXES.items():
            coll = self.primary_db[name]
            for index in set(retired) & set(await coll.index_information()):
                await coll.drop_index(index)

    async def is_alive(self) -> bool:
        try:
            with pymongo.timeout(self.timeout):
                await self.client.admin.command("ping")
            return True
        except Exception:
            return False

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.client.close()

    async def wipe(self) -> None:
        try:
            with pymongo.timeout(self.timeout):
                await self.client.drop_database(self.db.name)
        except PyMongoError as ex:
            raise StorageUnavailable(_describe(ex)) from ex
        self._ready = False

    # --- helpers shared by the resource modules -----------------------------

    async def reserve_markers(
        self, project: str, queue: str, count: int,
        session: AsyncClientSession | None = None,
    ) -> int:
        """Take ``count`` consecutive markers of a queue; return the first.

        Creates the queue if missing. The ``$inc`` is one atomic update of the
        queue document, so concurrent writers get disjoint ranges.
        """
        while True:
            doc = await self.queues_coll.find_one_and_update(
                {"p": project, "n": queue},
                {"$inc": {"c": count},
                 "$setOnInsert": {"m": "{}", "cr": self.clock()}},
                projection={"c": 1, "_id": 0},
                upsert=True,
                return_document=pymongo.ReturnDocument.AFTER,
                session=session,
            )
            # An upsert that lost the race to create the queue may come back
            # empty-handed on some servers (or raise a duplicate key, which
            # the callers retry); the queue exists now, so go again.
            if doc is not None:
                return doc["c"] - count + 1

    async def skip_used_markers(self, project: str, queue: str) -> None:
        """Move the counter past the highest stored marker of the queue.

        Markers can already be taken when the queue was deleted and re-created
        while a write to its old incarnation was still going on. An aborted
        transaction rolls its counter bump back, so the counter must be
        advanced outside it.
        """
        last = await self.messages_coll.find_one(
            {"p": project, "q": queue}, {"k": 1}, sort=[("k", -1)], hint=MARKER_INDEX)
        if last is None:
            return
        try:
            await self.queues_coll.update_one(
                {"p": project, "n": queue},
                {"$max": {"c": last["k"]},
                 "$setOnInsert": {"m": "{}", "cr": self.clock()}},
                upsert=True)
        except DuplicateKeyError:
            pass  # the queue was created meanwhile; the caller retries

    async def bump_generation(self, project: str, queue: str) -> int:
        """Increment a queue's signing generation; return the new value."""
        while True:
            try:
                doc = await self.generations_coll.find_one_and_update(
                    {"p": project, "q": queue}, {"$inc": {"g": 1}},
                    projection={"g": 1, "_id": 0}, upsert=True,
                    return_document=pymongo.ReturnDocument.AFTER)
            except DuplicateKeyError:
                continue  # lost the race to create it; it exists now
            if doc is not None:
                return doc["g"]

    async def in_transaction(
        self, fn: Callable[[AsyncClientSession], Awaitable[T]]
    ) -> T:
        """Run ``fn(session)`` in a transaction, retrying transient failures.

        Write conflicts (two posts racing for one counter) abort one
        transaction with the TransientTransactionError label; it is retried
        with a short jittered back-off until the driver's timeout.
        """
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        async with self.client.start_session() as session:
            while True:
                await session.start_transaction(write_concern=self.write_concern)
                try:
                    result = await fn(session)
                    await self._commit(session, deadline)
                    return result
                except PyMongoError as ex:
                    if session.in_transaction:
                        await session.abort_transaction()
                    if isinstance(ex, ConnectionFailure):
                        self._kill_session_later(session.session_id)
                    if (not ex.has_error_label("TransientTransactionError")
                            or time.monotonic() + delay >= deadline):
                        raise
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.2)

    @staticmethod
    async def _commit(session: AsyncClientSession, deadline: float) -> None:
        while True:
            try:
                await session.commit_transaction()
                return
            except PyMongoError as ex:
                # Commit is idempotent: retry an unknown outcome while time is
                # left (after the deadline every attempt fails at once).
                if (not ex.has_error_label("UnknownTransactionCommitResult")
                        or time.monotonic() >= deadline):
                    raise
                await asyncio.sleep(0.01)

    def _kill_session_later(self, session_id: Mapping[str, Any]) -> None:
        """End a transaction we lost contact with, in the background.

        The server keeps a transaction whose client vanished open until
        ``transactionLifetimeLimitSeconds`` (60 s); meanwhile it holds the
        queue document, and every post to that queue conflicts with it.
        ``killSessions`` aborts it as soon as the server answers again.
        """

        async def kill() -> None:
            give_up = time.monotonic() + ORPHAN_KILL_SECONDS
            while time.monotonic() < give_up:
                try:
                    with pymongo.timeout(self.timeout):
                        await self.client.admin.command("killSessions", [session_id])
                    return
                except PyMongoError:
                    await asyncio.sleep(1.0)

        # A fresh context: the caller's operation deadline must not apply.
        task = asyncio.get_running_loop().create_task(
            kill(), context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
