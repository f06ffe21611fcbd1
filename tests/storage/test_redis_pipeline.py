"""The Redis driver's implicit pipelining (queues/storage/redis/pipeline.py),
against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio
from redis.asyncio.connection import AbstractConnection, Connection
from redis.exceptions import DataError, ExecAbortError, ResponseError

from queues.errors import StorageUnavailable
from queues.storage.redis.pipeline import MAX_BATCH, RespArgs, pack_command
from tests.storage.helpers import P, post


def test_pack_command_matches_redis_py():
    args = ("EVALSHA", "abc", 2, "k:{p/q}", b"\x00raw", 1.5, 1732493515.123456, -7, "é")
    assert pack_command(args) == b"".join(Connection().pack_command(*args))


def test_resp_args_are_spliced_as_the_arguments_they_hold():
    batch = RespArgs([b"id1", b'{"a": 1}', b"60"])
    assert pack_command(("EVALSHA", "abc", 1, "k", batch)) == pack_command(
        ("EVALSHA", "abc", 1, "k", b"id1", b'{"a": 1}', b"60"))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_pack_command_refuses_what_redis_py_refuses(bad):
    with pytest.raises(DataError):
        pack_command(("SET", "k", bad))


@pytest.fixture
def writes(monkeypatch) -> list[int]:
    """How many script calls each socket write of the driver carried
    (connection set-up writes carry none and are not listed)."""
    seen: list[int] = []
    original = AbstractConnection.send_packed_command

    async def counting(self, command, check_health=True):
        chunks = command if isinstance(command, list) else [command]
        calls = sum(bytes(chunk).count(b"EVALSHA") for chunk in chunks)
        if calls:
            seen.append(calls)
        return await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return seen


async def test_calls_of_one_turn_share_one_write(redis_driver, writes):
    await post(redis_driver, "q", 0)  # loads the script
    writes.clear()
    ids = await asyncio.gather(*(post(redis_driver, "q", i) for i in range(20)))
    assert writes == [20]
    page = await redis_driver.messages.list(P, "q", limit=20, echo=True, marker="1")
    assert [m.id for m in page.items] == [batch[0] for batch in ids]


async def test_a_large_turn_is_split(redis_driver, writes):
    await post(redis_driver, "q", 0)
    writes.clear()
    await asyncio.gather(*(post(redis_driver, "q", i) for i in range(MAX_BATCH + 5)))
    assert sorted(writes) == [5, MAX_BATCH]
    assert (await redis_driver.queues.stats(P, "q")).total == MAX_BATCH + 6


async def test_an_error_reply_fails_only_its_own_command(redis_driver):
    pipeline, key = redis_driver.pipeline, redis_driver.keys.prefix + "plain"
    await redis_driver.client.set(key, "not a number")
    results = await asyncio.gather(
        pipeline.execute(pack_command(("ECHO", "before"))),
        pipeline.execute(pack_command(("INCR", key))),
        pipeline.execute(pack_command(("ECHO", "after"))),
        return_exceptions=True)
    assert results[0] == b"before" and results[2] == b"after"
    assert isinstance(results[1], ResponseError)
    await redis_driver.client.delete(key)


async def test_scripts_are_reloaded_after_a_script_flush(redis_driver):
    """post runs its script inside MULTI/EXEC after the bodies' HSET: the
    NOSCRIPT comes back in EXEC's reply, the retry stores the batch once."""
    await post(redis_driver, "q", 1)
    await redis_driver.client.script_flush()
    [second] = await post(redis_driver, "q", 2)
    assert (await redis_driver.queues.stats(P, "q")).total == 2
    assert (await redis_driver.messages.get(P, "q", second)).body_json == b"2"
    keys = redis_driver.keys.queue(P, "q")
    assert await redis_driver.client.hlen(keys.bodies) == 2


async def test_a_transaction_is_one_unit_answered_by_exec(redis_driver):
    """A MULTI ... EXEC unit gets EXEC's reply; one aborted at queue time
    fails alone, and the replies after it still reach their own callers."""
    pipeline, key = redis_driver.pipeline, redis_driver.keys.prefix + "unit"
    multi, exec_ = pack_command(("MULTI",)), pack_command(("EXEC",))
    results = await asyncio.gather(
        pipeline.execute(pack_command(("ECHO", "before"))),
        pipeline.execute(multi + pack_command(("SET", key, "v")) + pack_command(("ECHO", "x"))
                         + exec_, replies=4),
        pipeline.execute(multi + pack_command(("GET",)) + exec_, replies=3),
        pipeline.execute(pack_command(("ECHO", "after"))),
        return_exceptions=True)
    assert results[0] == b"before" and results[3] == b"after"
    assert results[1] == [b"OK", b"x"]
    assert isinstance(results[2], ExecAbortError)
    assert await redis_driver.client.get(key) == b"v"
    await redis_driver.client.delete(key)


async def test_a_killed_connection_fails_its_batch_then_recovers(redis_driver, redis_server):
    """Every caller of the batch hears of the failure (as a 503-mapped error),
    none hangs, and the next call gets a fresh connection."""
    await post(redis_driver, "q", 0)
    pipeline = redis_driver.pipeline
    blocked = asyncio.gather(
        *(redis_driver.guard(pipeline.execute(pack_command(("BLPOP", "nothing", "5"))))
          for _ in range(3)),
        return_exceptions=True)
    await asyncio.sleep(0.2)
    admin = redis.asyncio.Redis.from_url(redis_server.uri)
    try:
        await admin.client_kill_filter(_type="normal", skipme=True)
    finally:
        await admin.aclose()
    results = await asyncio.wait_for(blocked, 3)
    assert all(isinstance(r, StorageUnavailable) for r in results), results
    await post(redis_driver, "q", 1)
    assert (await redis_driver.queues.stats(P, "q")).total == 2


async def test_a_cancelled_caller_leaves_the_others_their_replies(redis_driver):
    pipeline = redis_driver.pipeline
    slow = asyncio.ensure_future(pipeline.execute(pack_command(("ECHO", "gone"))))
    fine = pipeline.execute(pack_command(("ECHO", "kept")))
    slow.cancel()
    assert await fine == b"kept"
