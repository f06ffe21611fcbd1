"""Storage contract: signed-URL state (generations, deny-list, one-time, counters)."""

from __future__ import annotations

import time

from tests.storage.helpers import P, post


async def test_generation_starts_at_zero_and_bumps(driver):
    assert await driver.grants.generation(P, "q1") == 0
    assert await driver.grants.bump_generation(P, "q1") == 1
    assert await driver.grants.bump_generation(P, "q1") == 2
    assert await driver.grants.generation(P, "q1") == 2
    assert await driver.grants.generation(P, "q2") == 0
    assert await driver.grants.generation("other", "q1") == 0


async def test_queue_delete_bumps_generation_and_recreate_keeps_it(driver):
    await post(driver, "q1", 1)
    before = await driver.grants.generation(P, "q1")
    await driver.queues.delete(P, "q1")
    after = await driver.grants.generation(P, "q1")
    assert after > before
    await driver.queues.create(P, "q1")
    assert await driver.grants.generation(P, "q1") == after


async def test_deleting_a_missing_queue_changes_nothing(driver):
    await driver.queues.delete(P, "never")
    assert await driver.grants.generation(P, "never") == 0


async def test_revoke_until_expiry(driver, clock):
    await driver.grants.revoke("jti-1", time.time() + 60)
    assert await driver.grants.revoked(["jti-1", "jti-2"]) == {"jti-1"}
    clock.shift(61)
    assert await driver.grants.revoked(["jti-1"]) == set()


async def test_consume_is_once(driver, clock):
    assert await driver.grants.consume("once", time.time() + 60) is True
    assert await driver.grants.consume("once", time.time() + 60) is False
    assert await driver.grants.consume("other", time.time() + 60) is True


async def test_consume_and_revoke_are_independent(driver):
    await driver.grants.revoke("j", time.time() + 60)
    assert await driver.grants.consume("j", time.time() + 60) is True


async def test_count_uses_per_window(driver, clock):
    clock.move_to(1_800_000_000)
    assert await driver.grants.count_uses({"a": 2, "b": 1}, 60) == {"a": 2, "b": 1}
    assert await driver.grants.count_uses({"a": 3}, 60) == {"a": 5}
    clock.shift(60)
    assert await driver.grants.count_uses({"a": 1}, 60) == {"a": 1}
