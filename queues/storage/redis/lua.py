"""The Lua scripts of ``scripts/``: loaded once, one attribute per script.

Each script runs as ``common.lua`` followed by its own file (the post,
subscription and job scripts also get ``outbox.lua`` in between), and is called as
EVALSHA through the driver's ``AutoPipeline`` (reloaded and retried once after a
``NOSCRIPT``, e.g. once Redis restarted). The parsers here turn the script
replies back into models.
"""

from __future__ import annotations

import pathlib
import struct
from typing import Any, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from queues.models import Message
from queues.storage.redis.pipeline import AutoPipeline, RespArgs, pack_command

_DIR = pathlib.Path(__file__).parent / "scripts"


def source(name: str, *includes: str) -> str:
    """The full text of a script as sent to Redis: common.lua, the shared
    ``includes``, then the script itself."""
    parts = ("common", *includes, name)
    return "\n".join((_DIR / f"{part}.lua").read_text(encoding="utf-8")
                     for part in parts)


class Script:
    """One script: ``await script(keys=, args=)`` runs it through the auto
    pipeline; with ``client=<redis-py pipeline>`` it is queued there instead.

    ``before`` (packed commands) run first, in one MULTI/EXEC with the
    script: post stores the bodies that way, so they never enter Lua, where
    Redis hashes every byte of every string argument (about 13,000
    instructions per KB under callgrind, more than the rest of a message).
    """

    def __init__(self, client: Redis, pipeline: AutoPipeline, text: str) -> None:
        self._client = client
        self._pipeline = pipeline
        self._registered = client.register_script(text)

    async def __call__(self, keys: Sequence[Any] | RespArgs = (), args: Sequence[Any] = (),
                       client: Pipeline | None = None, before: Sequence[bytes] = ()) -> Any:
        if client is not None:
            if before:
                raise ValueError("'before' needs the auto pipeline, not a client")
            return await self._registered(keys=keys, args=args, client=client)
        if not isinstance(keys, RespArgs):  # else: packed once and cached
            keys = RespArgs(keys)
        command = pack_command(("EVALSHA", self._registered.sha, keys.count, keys, *args))
        try:
            return await self._run(command, before)
        except NoScriptError:  # Redis restarted or was flushed: load, retry once
            await self._client.script_load(self._registered.script)
            return await self._run(command, before)

    async def _run(self, command: bytes, before: Sequence[bytes]) -> Any:
        if not before:
            return await self._pipeline.execute(command)
        unit = b"".join((_MULTI, *before, command, _EXEC))
        results = await self._pipeline.execute(unit, replies=len(before) + 3)
        for result in results:  # EXEC's: an error of a command is an element
            if isinstance(result, Exception):
                raise result
        return results[-1]


_MULTI = pack_command(("MULTI",))
_EXEC = pack_command(("EXEC",))


class Scripts:
    """The registered scripts of one client. Call as ``await s.post(keys=, args=)``."""

    def __init__(self, client: Redis, pipeline: AutoPipeline) -> None:
        def load(name: str, *includes: str) -> Script:
            return Script(client, pipeline, source(name, *includes))

        self.queue_create = load("queue_create")
        self.queue_set_metadata = load("queue_set_metadata")
        self.queue_delete = load("queue_delete")
        self.queue_list = load("queue_list")
        self.queue_stats = load("queue_stats")
        self.post = load("post", "outbox")
        self.message_list = load("message_list")
        self.message_get = load("message_get")
        self.message_delete = load("message_delete")
        self.message_delete_many = load("message_delete_many")
        self.message_pop = load("message_pop")
        self.message_purge = load("message_purge")
        self.claim_create = load("claim_create")
        self.claim_get = load("claim_get")
        self.claim_renew = load("claim_renew")
        self.claim_release = load("claim_release")
        self.sweep = load("sweep")
        self.token_mark = load("token_mark")
        self.rate_count = load("rate_count")
        # Subscriptions and the delivery outbox.
        self.subscription_create = load("subscription_create", "outbox")
        self.subscription_list = load("subscription_list", "outbox")
        self.subscription_update = load("subscription_update", "outbox")
        self.subscription_confirm = load("subscription_confirm", "outbox")
        self.subscription_disable = load("subscription_disable", "outbox")
        self.subscription_delete = load("subscription_delete", "outbox")
        self.subscription_purge = load("subscription_purge", "outbox")
        self.subscription_reap = load("subscription_reap", "outbox")
        self.job_lease = load("job_lease", "outbox")
        self.job_settle = load("job_settle", "outbox")
        self.job_replay = load("job_replay", "outbox")
        self.job_dead_letters = load("job_dead_letters", "outbox")
        self.job_redeliver = load("job_redeliver", "outbox")
        self.job_record = load("job_record", "outbox")


# common.lua RECORD: six big-endian doubles and a uint32, then three strings
# (client_id, claim_id, checksum), each a uint32 length and its bytes.
_FIXED = struct.Struct(">6dI")
_LENGTH = struct.Struct(">I")


def to_message(row: Sequence[bytes]) -> Message:
    """A message from a ``{id, body, record}`` reply of ``message_replies``."""
    message_id, body, record = row
    (marker, ttl, created, expires, delay_until, claim_expires,
     claim_count) = _FIXED.unpack_from(record)
    offset = _FIXED.size
    strings = []
    for _ in range(3):
        (length,) = _LENGTH.unpack_from(record, offset)
        offset += _LENGTH.size
        strings.append(record[offset:offset + length].decode() or None)
        offset += length
    client_id, claim_id, checksum = strings
    return Message(
        id=message_id.decode(),
        marker=int(marker),
        body_json=body,
        ttl=int(ttl),
        created=created,
        expires=expires,
        delay_until=delay_until,
        client_id=client_id,
        claim_id=claim_id,
        claim_expires=claim_expires if claim_id else None,
        claim_count=claim_count,
        checksum=checksum,
    )


def to_messages(rows: Sequence[Sequence[bytes]]) -> list[Message]:
    return [to_message(row) for row in rows]
