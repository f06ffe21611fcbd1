"""Redis driver: what the outbox contract cannot see — the cost of a post
without subscribers, the lease's cost behind a blocked backlog, the key
layout, the notification bytes, and memory reclaimed with subscriptions."""

from __future__ import annotations

import time

import orjson
import pytest

from queues.errors import StorageUnavailable
from queues.models import DeliveryAttempt, NewMessage, options_digest
from queues.storage import load_driver
from queues.storage.redis.keys import subscriber_field
from tests.fixtures.redis import unique_namespace
from tests.storage.helpers import P, msg, post

try:  # the reference payload; it moved from the SQLite driver to the models
    from queues.models import notification
except ImportError:  # pragma: no cover - depends on the checkout
    from queues.storage.sqlite.jobs import notification

# The commands a post of fresh messages to an existing queue runs: MULTI,
# HSET (bodies), the script, EXEC; inside the script, besides the outbox:
# HINCRBY (FIFO counter; ensure_queue only runs when it starts from 0),
# ZRANGEBYSCORE (reap expired messages), HSET (records), 3 ZADD (messages,
# expiry, free). The outbox adds one ZRANGEBYSCORE of the queue's targets.
MESSAGE_PATH = {"multi": 1, "exec": 1, "zrangebyscore": 1, "hincrby": 1, "hset": 2,
                "zadd": 3}
OUTBOX_LOOKUP = {"zrangebyscore": 1}


async def _calls(driver) -> dict[str, int]:
    info = await driver.client.info("commandstats")
    return {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in info.items()}


async def _count_commands(driver, operation) -> dict[str, int]:
    """Commands Redis ran (scripts' inner commands included) for ``operation``."""
    before = await _calls(driver)
    await operation()
    after = await _calls(driver)
    return {name: calls - before.get(name, 0) for name, calls in after.items()
            if calls != before.get(name, 0) and name not in ("info", "evalsha")}


async def _keys(driver) -> set[str]:
    return {k.decode() async for k in driver.client.scan_iter(
        match=driver.keys.pattern(), count=1000)}


async def _subscribe(driver, subscriber: str = "http://h/1", queue: str = "q1",
                     ttl: int = 3600):
    sub, _ = await driver.subscriptions.create(P, queue, subscriber, ttl=ttl,
                                               options={}, secret="s")
    return sub


async def test_post_without_subscribers_costs_one_lookup_and_no_keys(redis_driver):
    await post(redis_driver, "q1", 0)  # the queue exists; scripts are loaded
    keys = await _keys(redis_driver)
    expected = {name: MESSAGE_PATH.get(name, 0) + OUTBOX_LOOKUP.get(name, 0)
                for name in MESSAGE_PATH.keys() | OUTBOX_LOOKUP.keys()}
    one = await _count_commands(redis_driver, lambda: post(redis_driver, "q1", 1))
    many = await _count_commands(redis_driver,
                                 lambda: post(redis_driver, "q1", *range(50)))
    assert one == expected
    assert many == expected  # nothing per message
    assert await _keys(redis_driver) == keys


async def test_notification_bytes_match_the_reference(redis_driver):
    await _subscribe(redis_driver)
    batch = [
        NewMessage(b'{"k": [1, "\\u00e9", {"x": null}], "n": 1e400}', 300),
        NewMessage(orjson.dumps("caf\u00e9 \U0001f600"), 60, 30),
        NewMessage(b"12345678901234567890", 1_209_600, 0),
        NewMessage(b'  [ ]  ', 61, 900, "checksum"),
    ]
    ids = await redis_driver.messages.post(P, "q1", batch, None)
    jobs = {j.message_id: j.message
            for j in await redis_driver.jobs.lease(100, 60, max_in_flight=100)}
    assert [jobs[i] for i in ids] == [notification(m) for m in batch]


async def test_a_batch_larger_than_one_body_lookup_slice_gets_every_body(redis_driver):
    """post.lua reads the bodies back for the notifications in slices of
    2,000 (Lua's unpack limit); the jobs of a 2,500-message batch each carry
    their own message's body."""
    await _subscribe(redis_driver)
    batch = [NewMessage(b"%d" % i, 300) for i in range(2500)]
    ids = await redis_driver.messages.post(P, "q1", batch, None)
    assert await redis_driver.client.hlen(redis_driver.keys.outbox.jobs) == 2500
    jobs = {j.message_id: j.message
            for j in await redis_driver.jobs.lease(3000, 60, max_in_flight=3000)}
    for index in (0, 1999, 2000, 2499):
        assert jobs[ids[index]] == notification(batch[index])


async def test_job_keys_are_those_keys_py_builds(redis_driver):
    sub = await _subscribe(redis_driver)
    await post(redis_driver, "q1", 1, 2)
    [job] = await redis_driver.jobs.lease(1, 60, max_in_flight=10)
    await redis_driver.jobs.bury(job.id, job.lease_token, "x")
    await redis_driver.jobs.record(
        DeliveryAttempt(sub.id, "m", job.id, 1, time.time(), "dead", 500, None, 1.0,
                        ""), keep=5, keep_seconds=60)
    k = redis_driver.keys
    q = k.queue(P, "q1")
    s = k.subscription(sub.id)
    outbox = {k.outbox.expiry, k.outbox.jobs, k.outbox.pending, k.outbox.seq}
    assert {s.info, s.due, s.dead, s.log} | outbox | set(q.subscription_index) <= (
        await _keys(redis_driver))
    assert all(key.startswith(k.prefix) for key in await _keys(redis_driver))


async def test_lease_does_not_walk_a_blocked_backlog(redis_driver):
    tripped = await _subscribe(redis_driver, "http://h/down")
    full = await _subscribe(redis_driver, "http://h/full")
    for start in range(0, 2000, 200):
        await redis_driver.messages.post(
            P, "q1", [msg(n) for n in range(start, start + 200)], None)
    await redis_driver.jobs.trip(tripped.id, time.time() + 60)
    held = await redis_driver.jobs.lease(5, 60, max_in_flight=5)
    assert {j.subscription_id for j in held} == {full.id}
    fine = await _subscribe(redis_driver, "http://h/up")
    await post(redis_driver, "q1", "last")
    leased = []

    async def lease():
        leased.extend(await redis_driver.jobs.lease(100, 60, max_in_flight=5))

    calls = await _count_commands(redis_driver, lease)
    assert [j.subscription_id for j in leased] == [fine.id]
    # A few commands per pending subscription, whatever the 4000 jobs behind.
    assert sum(calls.values()) < 30, calls


async def test_delete_and_purge_leave_no_keys_behind(redis_driver):
    await post(redis_driver, "q1", 0)
    before = await _keys(redis_driver)
    subs = [await _subscribe(redis_driver, f"http://h/{n}") for n in range(3)]
    await post(redis_driver, "q1", 1, 2)
    [job, *_] = await redis_driver.jobs.lease(1, 60, max_in_flight=10)
    await redis_driver.jobs.bury(job.id, job.lease_token, "x")
    await redis_driver.jobs.trip(subs[1].id, time.time() + 60)
    await redis_driver.subscriptions.delete(P, "q1", subs[0].id)
    assert not any(subs[0].id in key for key in await _keys(redis_driver))
    await redis_driver.subscriptions.purge(P, "q1")
    left = await _keys(redis_driver) - before
    assert left <= {redis_driver.keys.outbox.seq}, left
    assert await redis_driver.client.hlen(redis_driver.keys.outbox.jobs) == 0


async def test_subscribers_index_is_keyed_by_subscriber_and_options(redis_driver):
    """The scripts' subscriber_field (outbox.lua) is keys.py's."""
    client, index = redis_driver.client, redis_driver.keys.queue(P, "q1").subscribers
    store = redis_driver.subscriptions

    async def entries() -> dict[str, str]:
        stored = await client.hgetall(index)
        return {k.decode(): v.decode() for k, v in stored.items()}

    sub, _ = await store.create(P, "q1", "http://h/1", ttl=60, options={"a": 1},
                                secret="")
    other, _ = await store.create(P, "q1", "http://h/1", ttl=60, options={},
                                  secret="")
    assert await entries() == {
        subscriber_field("http://h/1", options_digest({"a": 1})): sub.id,
        subscriber_field("http://h/1", options_digest({})): other.id}
    await store.update(P, "q1", sub.id, subscriber="http://h/2")
    await store.update(P, "q1", sub.id, options={"b": 1})
    assert await entries() == {
        subscriber_field("http://h/2", options_digest({"b": 1})): sub.id,
        subscriber_field("http://h/1", options_digest({})): other.id}
    await store.delete(P, "q1", sub.id)
    assert await entries() == {
        subscriber_field("http://h/1", options_digest({})): other.id}


async def test_queue_delete_keeps_subscription_keys(redis_driver):
    sub = await _subscribe(redis_driver)
    await redis_driver.queues.delete(P, "q1")
    index = redis_driver.keys.queue(P, "q1").subscription_index
    assert await redis_driver.client.exists(*index) == 3
    await post(redis_driver, "q1", "again")
    [job] = await redis_driver.jobs.lease(10, 60, max_in_flight=10)
    assert job.subscription_id == sub.id


async def test_sweep_drops_expired_subscriptions_with_their_jobs(redis_driver, clock):
    await post(redis_driver, "q1", 0, ttl=3600)
    before = await _keys(redis_driver)
    short = await _subscribe(redis_driver, "http://h/short", ttl=60)
    live = await _subscribe(redis_driver, "http://h/live", ttl=3600)
    await post(redis_driver, "q1", 1, 2, ttl=3600)
    clock.shift(61)
    await redis_driver.sweep()
    left = await _keys(redis_driver) - before
    assert not any(short.id in key for key in left)
    assert any(live.id in key for key in left)
    assert await redis_driver.client.hlen(redis_driver.keys.outbox.jobs) == 2
    # Its subscriber URI is free, and the index forgot it.
    assert [s.id for s in (await redis_driver.subscriptions.list(P, "q1")).items] == [
        live.id]
    _, new = await redis_driver.subscriptions.create(P, "q1", "http://h/short",
                                                     ttl=60, options={}, secret="")
    assert new is True


async def test_delivery_log_expires_when_idle(redis_driver):
    await redis_driver.jobs.record(
        DeliveryAttempt("s1", "m", "j", 1, time.time(), "retry", 503, None, 1.0, ""),
        keep=5, keep_seconds=60)
    ttl = await redis_driver.client.ttl(redis_driver.keys.subscription("s1").log)
    assert 60 < ttl <= 360


async def test_outage_is_storage_unavailable(redis_server_factory):
    server = redis_server_factory()
    driver = load_driver(server.uri, namespace=unique_namespace(), timeout=1)
    try:
        sub, _ = await driver.subscriptions.create(P, "q1", "http://h", ttl=60,
                                                   options={}, secret="")
        server.stop()
        with pytest.raises(StorageUnavailable):
            await driver.jobs.lease(10, 60, max_in_flight=10)
        with pytest.raises(StorageUnavailable):
            await driver.subscriptions.get(P, "q1", sub.id)
        with pytest.raises(StorageUnavailable):
            await driver.jobs.ack("job", "token")
    finally:
        await driver.close()
