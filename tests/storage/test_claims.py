"""Storage contract: claims and dead-letter queues. Runs on every driver."""

from __future__ import annotations

import time

import pytest

from queues.errors import ClaimNotFound
from tests.storage.helpers import P, bodies, post


async def test_claim_takes_oldest_free_messages(driver):
    ids = await post(driver, "q1", *range(5))
    first = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=2)
    assert [m.id for m in first.messages] == ids[:2]
    assert all(m.claim_id == first.id for m in first.messages)
    second = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=10)
    assert [m.id for m in second.messages] == ids[2:]
    assert await driver.claims.create(P, "q1", ttl=60, grace=60, limit=10) is None


async def test_claim_on_missing_or_empty_queue(driver):
    assert await driver.claims.create(P, "missing", ttl=60, grace=60, limit=5) is None
    await driver.queues.create(P, "empty")
    assert await driver.claims.create(P, "empty", ttl=60, grace=60, limit=5) is None


async def test_claim_skips_delayed_and_expired(driver, clock):
    await post(driver, "q1", "gone", ttl=60)
    await post(driver, "q1", "later", delay=120, ttl=600)
    await post(driver, "q1", "ready", ttl=600)
    clock.shift(61)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=10)
    assert bodies(claim.messages) == ["ready"]


async def test_claim_fields_and_get(driver, clock):
    await post(driver, "q1", 1, 2)
    claim = await driver.claims.create(P, "q1", ttl=100, grace=60, limit=5)
    assert claim.ttl == 100 and claim.age(time.time()) == 0
    clock.shift(10)
    fetched = await driver.claims.get(P, "q1", claim.id)
    assert fetched.id == claim.id and fetched.ttl == 100
    assert fetched.age(time.time()) == 10
    assert bodies(fetched.messages) == [1, 2]
    assert all(m.claim_count == 1 for m in fetched.messages)


async def test_get_unknown_expired_or_foreign_claim(driver, clock):
    await post(driver, "q1", 1)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    with pytest.raises(ClaimNotFound):
        await driver.claims.get(P, "q1", "bogus")
    with pytest.raises(ClaimNotFound):
        await driver.claims.get(P, "q2", claim.id)
    clock.shift(61)
    with pytest.raises(ClaimNotFound):
        await driver.claims.get(P, "q1", claim.id)


async def test_claim_extends_short_lived_messages(driver):
    await post(driver, "q1", "short", ttl=60)
    await post(driver, "q1", "long", ttl=3600)
    claim = await driver.claims.create(P, "q1", ttl=100, grace=60, limit=5)
    by_body = dict(zip(bodies(claim.messages), claim.messages))
    assert by_body["short"].ttl == 160
    assert by_body["short"].expires == pytest.approx(claim.expires + 60, abs=0.01)
    assert by_body["long"].ttl == 3600


async def test_expired_claim_frees_messages(driver, clock):
    await post(driver, "q1", 1, ttl=3600)
    first = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    clock.shift(61)
    second = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    assert [m.id for m in second.messages] == [m.id for m in first.messages]
    assert second.messages[0].claim_count == 2


async def test_release_frees_at_once_and_is_idempotent(driver):
    ids = await post(driver, "q1", 1, 2)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    await driver.claims.release(P, "q1", claim.id)
    await driver.claims.release(P, "q1", claim.id)
    await driver.claims.release(P, "q1", "bogus")
    with pytest.raises(ClaimNotFound):
        await driver.claims.get(P, "q1", claim.id)
    page = await driver.messages.list(P, "q1", echo=True)
    assert [m.id for m in page.items] == ids
    assert all(m.claim_id is None for m in page.items)


async def test_released_messages_are_never_in_two_live_claims(driver):
    """Zaqar's redis driver can hand a message held by a live claim to a new
    claim after an unrelated claim is released; we must not."""
    await post(driver, "q1", *range(4))
    a = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=2)
    b = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=2)
    await driver.claims.release(P, "q1", a.id)
    c = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=10)
    assert {m.id for m in c.messages} == {m.id for m in a.messages}
    assert not {m.id for m in c.messages} & {m.id for m in b.messages}


async def test_renew_restarts_claim(driver, clock):
    await post(driver, "q1", 1, ttl=120)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    clock.shift(50)
    await driver.claims.renew(P, "q1", claim.id, ttl=300, grace=60)
    clock.shift(50)
    fetched = await driver.claims.get(P, "q1", claim.id)
    assert fetched.ttl == 300 and fetched.age(time.time()) == 50
    assert len(fetched.messages) == 1
    assert fetched.messages[0].expires >= fetched.expires + 60 - 0.01
    assert await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5) is None


async def test_renew_unknown_or_expired(driver, clock):
    await post(driver, "q1", 1)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    with pytest.raises(ClaimNotFound):
        await driver.claims.renew(P, "q1", "bogus", ttl=60, grace=60)
    clock.shift(61)
    with pytest.raises(ClaimNotFound):
        await driver.claims.renew(P, "q1", claim.id, ttl=60, grace=60)


async def _claim_and_release(driver, queue: str, limit: int = 5):
    claim = await driver.claims.create(P, queue, ttl=60, grace=60, limit=limit)
    if claim is not None:
        await driver.claims.release(P, queue, claim.id)
    return claim


async def test_dead_letter_after_max_claims(driver):
    await driver.queues.create(P, "dlq")
    await driver.queues.create(P, "q1", {"_max_claim_count": 2,
                                         "_dead_letter_queue": "dlq"})
    [message_id] = await post(driver, "q1", "poison")
    assert (await _claim_and_release(driver, "q1")).messages[0].id == message_id
    assert (await _claim_and_release(driver, "q1")).messages[0].id == message_id
    assert await _claim_and_release(driver, "q1") is None
    assert (await driver.queues.stats(P, "q1")).total == 0
    moved = await driver.messages.list(P, "dlq", echo=True)
    assert [m.id for m in moved.items] == [message_id]
    assert bodies(moved.items) == ["poison"]
    claim = await driver.claims.create(P, "dlq", ttl=60, grace=60, limit=5)
    assert [m.id for m in claim.messages] == [message_id]


async def test_dead_letter_ttl_and_lazy_dlq(driver):
    await driver.queues.create(P, "q1", {"_max_claim_count": 1,
                                         "_dead_letter_queue": "dead",
                                         "_dead_letter_queue_messages_ttl": 90})
    await post(driver, "q1", "x", "y", ttl=600)
    await _claim_and_release(driver, "q1", limit=1)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    assert claim is None
    moved = await driver.messages.list(P, "dead", echo=True)
    assert bodies(moved.items) == ["x"]
    assert moved.items[0].ttl == 90
    # Only the picked message moved; "y" is still claimable in q1.
    remaining = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    assert bodies(remaining.messages) == ["y"]


async def test_no_dead_letter_without_both_keys(driver):
    await driver.queues.create(P, "q1", {"_max_claim_count": 1})
    await post(driver, "q1", 1)
    for _ in range(3):
        assert await _claim_and_release(driver, "q1") is not None
