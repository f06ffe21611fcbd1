"""Storage contract: queues. Runs on every driver."""

from __future__ import annotations

import time

import pytest

from queues.errors import QueueNotFound
from tests.storage.helpers import P, post


async def test_create_is_idempotent_and_keeps_metadata(driver):
    assert await driver.queues.create(P, "q1", {"a": 1}) is True
    assert await driver.queues.create(P, "q1", {"a": 2}) is False
    assert await driver.queues.get_metadata(P, "q1") == {"a": 1}


async def test_exists_and_project_isolation(driver):
    await driver.queues.create(P, "q1")
    assert await driver.queues.exists(P, "q1")
    assert not await driver.queues.exists("other", "q1")
    assert not await driver.queues.exists(P, "q2")


async def test_metadata_round_trip_and_missing_queue(driver):
    await driver.queues.create(P, "q1")
    meta = {"_default_message_ttl": 600, "nested": {"x": [1, 2]}, "s": "é"}
    await driver.queues.set_metadata(P, "q1", meta)
    assert await driver.queues.get_metadata(P, "q1") == meta
    with pytest.raises(QueueNotFound):
        await driver.queues.get_metadata(P, "nope")
    with pytest.raises(QueueNotFound):
        await driver.queues.set_metadata(P, "nope", {})


async def test_delete_removes_messages_and_is_idempotent(driver):
    await post(driver, "q1", 1, 2)
    await driver.queues.delete(P, "q1")
    await driver.queues.delete(P, "q1")
    assert not await driver.queues.exists(P, "q1")
    assert (await driver.messages.list(P, "q1", echo=True)).items == []
    # A re-created queue starts empty.
    await driver.queues.create(P, "q1")
    assert (await driver.queues.stats(P, "q1")).total == 0


async def test_list_sorted_paged_by_marker(driver):
    for name in ["b", "a.b", "c", "a", "a_b"]:
        await driver.queues.create(P, name)
    await driver.queues.create("other", "zzz")
    page = await driver.queues.list(P, limit=2)
    assert [q.name for q in page.items] == ["a", "a.b"]
    page = await driver.queues.list(P, marker=page.next_marker, limit=2)
    assert [q.name for q in page.items] == ["a_b", "b"]
    page = await driver.queues.list(P, marker=page.next_marker, limit=2)
    assert [q.name for q in page.items] == ["c"]
    page = await driver.queues.list(P, marker=page.next_marker, limit=2)
    assert page.items == [] and page.next_marker is None


async def test_list_detailed_and_filters(driver):
    await driver.queues.create(P, "alpha", {"node": 31, "k": "v"})
    await driver.queues.create(P, "beta", {"node": 32})
    await driver.queues.create(P, "alphabet")
    plain = await driver.queues.list(P)
    assert all(q.metadata is None for q in plain.items)
    detailed = await driver.queues.list(P, detailed=True)
    assert detailed.items[0].metadata == {"node": 31, "k": "v"}
    by_name = await driver.queues.list(P, name="lph")
    assert [q.name for q in by_name.items] == ["alpha", "alphabet"]
    by_meta = await driver.queues.list(P, filters={"node": 32})
    assert [q.name for q in by_meta.items] == ["beta"]
    by_both = await driver.queues.list(P, name="alpha", filters={"k": "v"})
    assert [q.name for q in by_both.items] == ["alpha"]


async def test_count(driver):
    assert await driver.queues.count(P) == 0
    await driver.queues.create(P, "a")
    await post(driver, "b", 1)
    assert await driver.queues.count(P) == 2


async def test_stats(driver, clock):
    assert (await driver.queues.stats(P, "missing")).total == 0
    ids = await post(driver, "q1", 1, 2, 3)
    clock.shift(5)
    await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    stats = await driver.queues.stats(P, "q1")
    assert (stats.claimed, stats.free, stats.total) == (1, 2, 3)
    assert stats.oldest.id == ids[0] and stats.newest.id == ids[2]
    assert stats.oldest.age(time.time()) == 5


async def test_stats_ignore_expired(driver, clock):
    await post(driver, "q1", 1, ttl=60)
    await post(driver, "q1", 2, ttl=120)
    clock.shift(90)
    stats = await driver.queues.stats(P, "q1")
    assert (stats.claimed, stats.free, stats.total) == (0, 1, 1)
