"""The delivery outbox on MongoDB: its documents, and the writes that the
message and subscription stores make to it.

``jobs`` ``{_id, sid, p, q, mid, m, cr, due, a, lt, le, dd, dr}``: an
ObjectId (increasing within a process, so one post's jobs sort in message
order), subscription id, project, queue, message id, the notification payload
bytes (frozen at post time), created, due, attempts, lease token (None when
never leased or released) and lease expiry (0 when free), dead flag and
reason. A dead letter is a job with ``dd`` set; it keeps its document.
``breakers`` ``{_id: subscription id, u: open until, ea}``.
``delivery_attempts`` ``{_id, sid, mid, jid, n, at, o, st, er, ms, r, ea}``:
one attempt each, ``ea`` = ``at`` plus the ``keep_seconds`` it was recorded
with, for the TTL index.

``write_jobs`` runs inside ``MessageStore.post``'s transaction, so a message
and its jobs commit together; a queue without subscriptions costs one indexed
read and no write.

Jobs carry no TTL: whether one is garbage depends on its subscription.
Deleting a subscription through the store takes its jobs along; jobs left
behind (a post racing with the delete, a subscription removed by the TTL
monitor) are dropped by the next lease that meets them (``lease.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

# One definition of the payload, so it is byte-identical on every driver.
from queues.models import DeliveryJob, NewMessage, notification

if TYPE_CHECKING:
    from queues.storage.mongodb.driver import MongoDriver

# Lease order: oldest due first, then creation order.
LEASE_ORDER = [("due", 1), ("_id", 1)]


def new_job(subscription_id: str, project: str, queue: str, message_id: str,
            payload: bytes, now: float) -> dict[str, Any]:
    return {"_id": ObjectId(), "sid": subscription_id, "p": project, "q": queue,
            "mid": message_id, "m": payload, "cr": now, "due": now, "a": 0,
            "lt": None, "le": 0.0, "dd": False}


def to_job(doc: dict[str, Any]) -> DeliveryJob:
    token = doc["lt"]
    return DeliveryJob(str(doc["_id"]), doc["sid"], doc["p"], doc["q"], doc["mid"],
                       bytes(doc["m"]), doc["cr"], doc["due"], doc["a"], token,
                       None if token is None else doc["le"])


async def write_jobs(driver: MongoDriver, session: AsyncClientSession | None,
                     now: float, project: str, queue: str, ids: Sequence[Any],
                     messages: Sequence[NewMessage]) -> None:
    """Inside the post's transaction: one due job per message and live,
    enabled subscription of the queue."""
    subscriptions = await driver.subscriptions_coll.find(
        {"p": project, "q": queue, "e": {"$gt": now}, "x": False}, {"_id": 1},
        session=session).to_list()
    if not subscriptions:
        return
    docs = [new_job(sub["_id"], project, queue, str(message_id), notification(m), now)
            for message_id, m in zip(ids, messages) for sub in subscriptions]
    await driver.jobs_coll.insert_many(docs, ordered=True, session=session)


async def drop_subscriptions(driver: MongoDriver, ids: list[str]) -> None:
    """Delete subscriptions with everything that hangs on them.

    The subscription goes first: a post starting afterwards writes it no job.
    """
    if ids:
        await driver.subscriptions_coll.delete_many({"_id": {"$in": ids}})
        await drop_deliveries(driver, ids)


async def drop_deliveries(driver: MongoDriver, ids: list[str]) -> None:
    """Delete the jobs (dead letters included), breakers and delivery log of
    subscriptions that are gone."""
    await driver.jobs_coll.delete_many({"sid": {"$in": ids}})
    await driver.breakers_coll.delete_many({"_id": {"$in": ids}})
    await driver.attempts_coll.delete_many({"sid": {"$in": ids}})
