"""Messages on Redis: one script call per operation.

``post`` sends one MULTI/EXEC: an HSET of the bodies, then the post script
with everything else (a body passed into Lua would cost Redis a hash of its
every byte: a fifth of a 10 x 1 KB post's instructions). The script also
writes the batch's delivery jobs, one per message and live, enabled
subscription of the queue (see ``jobs.py``); a queue without subscriptions
pays one ZRANGEBYSCORE of an empty key for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from queues.errors import (
    ClaimExpired,
    MessageIsClaimed,
    MessageNotClaimed,
    MessageNotFound,
)
from queues.models import Message, NewMessage, Page, new_ids
from queues.storage.base import MessageStore
from queues.storage.redis.lua import to_messages
from queues.storage.redis.pipeline import RespArgs, pack_command

if TYPE_CHECKING:
    from queues.storage.redis.driver import RedisDriver

# Queues whose packed post KEYS are kept (the cache is emptied when full).
PACKED_KEYS_CACHE = 4096

# message_delete.lua result codes.
_DELETE_ERRORS = {1: MessageIsClaimed, 2: MessageNotClaimed, 3: ClaimExpired}


def pack_batch(ids: Sequence[str], messages: Sequence[NewMessage]) -> tuple[RespArgs, RespArgs]:
    """A batch in RESP, packed in one pass: the bodies' HSET field/value
    pairs, and post.lua's trailing arguments (id, ttl, delay and checksum,
    "" = none, of each message)."""
    bodies: list[bytes] = []
    fields: list[bytes] = []
    for message_id, message in zip(ids, messages):
        encoded_id = message_id.encode()
        bodies += [encoded_id, message.body_json]
        fields += [encoded_id, b"%d" % message.ttl, b"%d" % message.delay,
                   (message.checksum or "").encode()]
    return RespArgs(bodies), RespArgs(fields)


class RedisMessages(MessageStore):
    def __init__(self, driver: RedisDriver) -> None:
        self._driver = driver
        self._keys = driver.keys
        self._scripts = driver.scripts
        self._packed_keys: dict[tuple[str, str], tuple[RespArgs, RespArgs, str]] = {}

    async def post(
        self,
        project: str,
        queue: str,
        messages: Sequence[NewMessage],
        client_id: str | None,
    ) -> list[str]:
        keys, bodies_key, member = self._post_keys(project, queue)
        ids = new_ids(len(messages))
        bodies, fields = pack_batch(ids, messages)
        args: list[Any] = [self._driver.clock(), queue, member, client_id or "",
                           project, self._keys.subscription_prefix, fields]
        # One MULTI/EXEC: the bodies' HSET, then the script, which writes the
        # rest and the delivery jobs (the outbox) of the batch.
        store_bodies = pack_command(("HSET", bodies_key, bodies))
        await self._driver.guard(self._scripts.post(keys=keys, args=args,
                                                    before=(store_bodies,)))
        return ids

    def _post_keys(self, project: str, queue: str) -> tuple[RespArgs, RespArgs, str]:
        """The post script's 19 KEYS packed (once per queue, bounded cache),
        the queue's bodies key (packed too) and its registry member."""
        found = self._packed_keys.get((project, queue))
        if found is None:
            keys = self._keys.queue(project, queue)
            found = (RespArgs(keys.keys + self._keys.project(project).keys
                              + (keys.targets,) + self._keys.outbox.keys),
                     RespArgs((keys.bodies,)), keys.member)
            if len(self._packed_keys) >= PACKED_KEYS_CACHE:
                self._packed_keys.clear()
            self._packed_keys[(project, queue)] = found
        return found

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
            after = int(marker) if marker is not None else 0
        except ValueError:
            return Page([], None)
        hide = "" if echo or client_id is None else client_id
        rows = await self._driver.guard(self._scripts.message_list(
            keys=self._keys.queue(project, queue).keys,
            args=[self._driver.clock(), after, limit, hide,
                  int(include_claimed), int(include_delayed)]))
        items = to_messages(rows)
        return Page(items, str(items[-1].marker) if items else None)

    async def get(self, project: str, queue: str, message_id: str) -> Message:
        found = await self.get_many(project, queue, [message_id])
        if not found:
            raise MessageNotFound(project, queue, message_id)
        return found[0]

    async def get_many(
        self, project: str, queue: str, message_ids: Sequence[str]
    ) -> list[Message]:
        if not message_ids:
            return []
        rows = await self._driver.guard(self._scripts.message_get(
            keys=self._keys.queue(project, queue).keys,
            args=[self._driver.clock(), *message_ids]))
        return sorted(to_messages(rows), key=lambda m: m.marker)

    async def delete(
        self, project: str, queue: str, message_id: str, claim_id: str | None = None
    ) -> None:
        code = await self._driver.guard(self._scripts.message_delete(
            keys=self._keys.queue(project, queue).keys,
            args=[self._driver.clock(), message_id, int(claim_id is not None),
                  claim_id or ""]))
        if code in _DELETE_ERRORS:
            raise _DELETE_ERRORS[code]()

    async def delete_many(
        self,
        project: str,
        queue: str,
        message_ids: Sequence[str],
        claim_ids: Sequence[str] | None = None,
    ) -> None:
        if not message_ids:
            return
        claims = list(claim_ids or ())
        await self._driver.guard(self._scripts.message_delete_many(
            keys=self._keys.queue(project, queue).keys,
            args=[self._driver.clock(), int(claim_ids is not None), len(claims),
                  *claims, *message_ids]))

    async def pop(self, project: str, queue: str, limit: int) -> list[Message]:
        rows = await self._driver.guard(self._scripts.message_pop(
            keys=self._keys.queue(project, queue).keys,
            args=[self._driver.clock(), limit]))
        return to_messages(rows)

    async def purge(self, project: str, queue: str) -> None:
        await self._driver.guard(self._scripts.message_purge(
            keys=self._keys.queue(project, queue).keys, args=[]))
