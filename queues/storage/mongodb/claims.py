"""Claims on MongoDB, with dead-letter moves.

A claim takes messages oldest first, each with one single-document
conditional update that only matches a message no live claim holds and that
nobody changed since it was read (``take_oldest``). That filter is the whole
exclusivity argument: however many claimers race, a message is handed to at
most one live claim. A dead-letter move is the same kind of update.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from queues.errors import ClaimNotFound
from queues.models import (
    DEAD_LETTER_QUEUE, DEAD_LETTER_QUEUE_MESSAGES_TTL, MAX_CLAIM_COUNT, Claim,
    Message,
)
from queues.storage.base import ClaimStore
from queues.storage.mongodb.driver import (
    CLAIM_INDEX, as_date, extend_life, operation, parse_id, take_oldest, to_message,
)

if TYPE_CHECKING:
    from queues.storage.mongodb.driver import MongoDriver

MOVE_ATTEMPTS = 10


class MongoClaims(ClaimStore):
    def __init__(self, driver: MongoDriver) -> None:
        self._driver = driver

    @operation
    async def create(
        self, project: str, queue: str, *, ttl: int, grace: int, limit: int
    ) -> Claim | None:
        driver = self._driver
        now = driver.clock()
        queue_doc = await driver.queues_coll.find_one(
            {"p": project, "n": queue}, {"m": 1})
        if queue_doc is None:
            return None
        metadata = json.loads(queue_doc["m"])
        max_count = _positive_int(metadata.get(MAX_CLAIM_COUNT))
        dead_letter = metadata.get(DEAD_LETTER_QUEUE)
        if not (max_count and dead_letter and isinstance(dead_letter, str)):
            max_count = dead_letter = None
        dead_letter_ttl = _positive_int(metadata.get(DEAD_LETTER_QUEUE_MESSAGES_TTL))

        claim_id = ObjectId()
        expires = now + ttl
        until = expires + grace
        claimed: list[Message] = []

        async def take(doc: dict[str, Any], guard: dict[str, Any]) -> bool:
            if max_count is not None and doc.get("cc", 0) >= max_count:
                # Picked, but claimed too often: moved instead of returned.
                return await self._move(doc, guard, project, dead_letter,
                                        dead_letter_ttl, now)
            after = dict(doc, cid=claim_id, ce=expires, cc=doc.get("cc", 0) + 1)
            if doc["e"] < until:
                # Messages must outlive their claim by the grace period.
                after.update(e=until, t=ttl + grace, ea=as_date(until))
            result = await driver.messages_coll.update_one(guard, {"$set": {
                key: after[key] for key in ("cid", "ce", "cc", "e", "t", "ea")}})
            if result.matched_count:
                claimed.append(to_message(after))
            return bool(result.matched_count)

        await take_oldest(driver.messages_coll, project, queue, now, limit, take)
        if not claimed:
            return None
        await driver.claims_coll.insert_one({
            "_id": claim_id, "p": project, "q": queue, "t": ttl, "g": grace,
            "u": now, "e": expires, "ea": as_date(expires),
        })
        return Claim(str(claim_id), ttl, grace, now, expires, claimed)

    async def _move(self, doc: dict[str, Any], guard: dict[str, Any], project: str,
                    dead_letter: str, new_ttl: int | None, now: float) -> bool:
        """Move a picked message to the dead-letter queue (same id); True if
        this call moved it.

        One conditional update (``guard``), so it cannot race with a claim.
        The message arrives unclaimed and visible, with its claim count, and
        with the DLQ messages TTL if set, else its old life. A marker reserved
        for a message that someone else took meanwhile is left as a gap.
        """
        driver = self._driver
        fields: dict[str, Any] = {"q": dead_letter, "cid": None, "ce": 0.0}
        if new_ttl:
            fields.update(t=new_ttl, e=now + new_ttl, ea=as_date(now + new_ttl))
        for _ in range(MOVE_ATTEMPTS):
            fields["k"] = await driver.reserve_markers(project, dead_letter, 1)
            try:
                result = await driver.messages_coll.update_one(guard, {"$set": fields})
            except DuplicateKeyError:
                # A marker left by an earlier incarnation of the DLQ.
                await driver.skip_used_markers(project, dead_letter)
                continue
            return bool(result.matched_count)
        raise DuplicateKeyError("no free marker in the dead-letter queue")

    @operation
    async def get(self, project: str, queue: str, claim_id: str) -> Claim:
        driver = self._driver
        now = driver.clock()
        claim = parse_id(claim_id)
        doc = claim and await driver.claims_coll.find_one(
            {"_id": claim, "p": project, "q": queue, "e": {"$gt": now}})
        if not doc:
            raise ClaimNotFound(project, queue, claim_id)
        messages = await driver.messages_coll.find(
            {"cid": claim, "p": project, "q": queue, "ce": {"$gt": now},
             "e": {"$gt": now}},
            sort=[("k", 1)], hint=CLAIM_INDEX,
        ).to_list()
        return Claim(str(claim), doc["t"], doc["g"], doc["u"], doc["e"],
                     [to_message(m) for m in messages])

    @operation
    async def renew(
        self, project: str, queue: str, claim_id: str, *, ttl: int, grace: int
    ) -> None:
        driver = self._driver
        now = driver.clock()
        claim = parse_id(claim_id)
        expires = now + ttl
        doc = claim and await driver.claims_coll.find_one_and_update(
            {"_id": claim, "p": project, "q": queue, "e": {"$gt": now}},
            {"$set": {"t": ttl, "g": grace, "u": now, "e": expires,
                      "ea": as_date(expires)}},
            projection={"_id": 1})
        if not doc:
            raise ClaimNotFound(project, queue, claim_id)
        # Only messages this claim still holds: one that expired out of it
        # may belong to another claim by now.
        await driver.messages_coll.update_many(
            {"cid": claim, "p": project, "q": queue, "ce": {"$gt": now}},
            [{"$set": {"ce": expires, **extend_life(expires + grace, ttl + grace)}}],
            hint=CLAIM_INDEX)

    @operation
    async def release(self, project: str, queue: str, claim_id: str) -> None:
        driver = self._driver
        claim = parse_id(claim_id)
        if claim is None:
            return
        await driver.claims_coll.delete_one({"_id": claim, "p": project, "q": queue})
        await driver.messages_coll.update_many(
            {"cid": claim, "p": project, "q": queue},
            {"$set": {"cid": None, "ce": 0.0}}, hint=CLAIM_INDEX)


def _positive_int(value: Any) -> int | None:
    """A reserved metadata number, or None if unset or unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value >= 1 else None
