"""Storage contract: messages. Runs on every driver."""

from __future__ import annotations

import time
import asyncio

import orjson
import pytest

from queues.errors import ClaimExpired, MessageIsClaimed, MessageNotClaimed, MessageNotFound
from queues.models import NewMessage
from tests.storage.helpers import P, bodies, msg, post


async def test_post_creates_queue_and_keeps_order(driver):
    ids = await post(driver, "q1", "a", {"b": [1, None]}, None, 3.5)
    assert len(set(ids)) == 4
    assert await driver.queues.exists(P, "q1")
    page = await driver.messages.list(P, "q1", echo=True)
    assert [m.id for m in page.items] == ids
    assert bodies(page.items) == ["a", {"b": [1, None]}, None, 3.5]


async def test_body_bytes_are_returned_unchanged(driver):
    raw = b'{"z": 1, "a": "\\u00e9", "n": [1.50, true]}'
    [message_id] = await driver.messages.post(P, "q1", [NewMessage(raw, 60)], "c")
    assert (await driver.messages.get(P, "q1", message_id)).body_json == raw


async def test_message_fields(driver, clock):
    [message_id] = await post(driver, "q1", {"k": 1}, ttl=120, client_id="me")
    clock.shift(7)
    message = await driver.messages.get(P, "q1", message_id)
    assert message.ttl == 120
    assert message.age(time.time()) == 7
    assert message.client_id == "me"
    assert message.claim_id is None and message.claim_count == 0


async def test_list_pages_with_marker(driver):
    ids = await post(driver, "q1", *range(5))
    first = await driver.messages.list(P, "q1", limit=2, echo=True)
    assert [m.id for m in first.items] == ids[:2]
    second = await driver.messages.list(P, "q1", limit=2, echo=True,
                                        marker=first.next_marker)
    assert [m.id for m in second.items] == ids[2:4]
    third = await driver.messages.list(P, "q1", limit=2, echo=True,
                                       marker=second.next_marker)
    assert [m.id for m in third.items] == ids[4:]
    last = await driver.messages.list(P, "q1", limit=2, echo=True,
                                      marker=third.next_marker)
    assert last.items == [] and last.next_marker is None


async def test_marker_naming_the_first_message_is_honoured(driver):
    ids = await post(driver, "q1", 1, 2)
    first = await driver.messages.list(P, "q1", limit=1, echo=True)
    rest = await driver.messages.list(P, "q1", limit=1, echo=True,
                                      marker=first.next_marker)
    assert [m.id for m in rest.items] == [ids[1]]


async def test_unparsable_marker_gives_empty_page(driver):
    await post(driver, "q1", 1)
    page = await driver.messages.list(P, "q1", echo=True, marker="not-a-marker")
    assert page.items == []


async def test_echo_hides_own_messages(driver):
    await post(driver, "q1", "mine", client_id="me")
    await post(driver, "q1", "theirs", client_id="you")
    hidden = await driver.messages.list(P, "q1", client_id="me")
    assert bodies(hidden.items) == ["theirs"]
    shown = await driver.messages.list(P, "q1", client_id="me", echo=True)
    assert bodies(shown.items) == ["mine", "theirs"]


async def test_claimed_hidden_unless_included(driver):
    await post(driver, "q1", 1, 2)
    await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    assert bodies((await driver.messages.list(P, "q1", echo=True)).items) == [2]
    included = await driver.messages.list(P, "q1", echo=True, include_claimed=True)
    assert bodies(included.items) == [1, 2]


async def test_delayed_hidden_until_due(driver, clock):
    await post(driver, "q1", "late", delay=30)
    await post(driver, "q1", "now")
    assert bodies((await driver.messages.list(P, "q1", echo=True)).items) == ["now"]
    delayed = await driver.messages.list(P, "q1", echo=True, include_delayed=True)
    assert bodies(delayed.items) == ["late", "now"]
    clock.shift(31)
    assert bodies((await driver.messages.list(P, "q1", echo=True)).items) == [
        "late", "now"]


async def test_expired_messages_are_invisible(driver, clock):
    [old] = await post(driver, "q1", "old", ttl=60)
    await post(driver, "q1", "new", ttl=600)
    clock.shift(61)
    assert bodies((await driver.messages.list(P, "q1", echo=True)).items) == ["new"]
    with pytest.raises(MessageNotFound):
        await driver.messages.get(P, "q1", old)
    assert await driver.messages.get_many(P, "q1", [old]) == []


async def test_get_many_skips_unknown_and_other_queues(driver):
    ids = await post(driver, "q1", 1, 2)
    [other] = await post(driver, "q2", 3)
    found = await driver.messages.get_many(P, "q1", [ids[1], "bogus", other, ids[0]])
    assert sorted(m.id for m in found) == sorted(ids)
    with pytest.raises(MessageNotFound):
        await driver.messages.get(P, "q1", other)
    with pytest.raises(MessageNotFound):
        await driver.messages.get("other-project", "q1", ids[0])


async def test_delete_unclaimed_and_missing(driver):
    [message_id] = await post(driver, "q1", 1)
    await driver.messages.delete(P, "q1", message_id)
    await driver.messages.delete(P, "q1", message_id)
    await driver.messages.delete(P, "missing-queue", "bogus")
    with pytest.raises(MessageNotFound):
        await driver.messages.get(P, "q1", message_id)


async def test_delete_claim_rules(driver, clock):
    ids = await post(driver, "q1", 1, 2, 3)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    held = claim.messages[0].id
    with pytest.raises(MessageIsClaimed):
        await driver.messages.delete(P, "q1", held)
    with pytest.raises(MessageNotClaimed):
        await driver.messages.delete(P, "q1", ids[1], claim_id=claim.id)
    with pytest.raises(ClaimExpired):
        await driver.messages.delete(P, "q1", held, claim_id="0" * 32)
    other = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    with pytest.raises(MessageIsClaimed):
        await driver.messages.delete(P, "q1", held, claim_id=other.id)
    await driver.messages.delete(P, "q1", held, claim_id=claim.id)
    with pytest.raises(MessageNotFound):
        await driver.messages.get(P, "q1", held)


async def test_delete_with_expired_claim(driver, clock):
    await post(driver, "q1", 1, ttl=3600)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    clock.shift(61)
    message_id = claim.messages[0].id
    with pytest.raises(ClaimExpired):
        await driver.messages.delete(P, "q1", message_id, claim_id=claim.id)
    await driver.messages.delete(P, "q1", message_id)


async def test_delete_after_release_needs_no_claim(driver):
    await post(driver, "q1", 1)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    await driver.claims.release(P, "q1", claim.id)
    message_id = claim.messages[0].id
    with pytest.raises(MessageNotClaimed):
        await driver.messages.delete(P, "q1", message_id, claim_id=claim.id)
    await driver.messages.delete(P, "q1", message_id)


async def test_delete_many_ignores_claims(driver):
    ids = await post(driver, "q1", 1, 2, 3)
    await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    await driver.messages.delete_many(P, "q1", [ids[0], ids[1], "bogus"])
    remaining = await driver.messages.list(P, "q1", echo=True, include_claimed=True)
    assert [m.id for m in remaining.items] == [ids[2]]


async def test_delete_many_with_claim_ids(driver):
    ids = await post(driver, "q1", 1, 2, 3)
    claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=2)
    await driver.messages.delete_many(P, "q1", ids, claim_ids=[claim.id])
    remaining = await driver.messages.list(P, "q1", echo=True, include_claimed=True)
    assert [m.id for m in remaining.items] == [ids[2]]


async def test_pop_takes_free_visible_oldest(driver, clock):
    ids = await post(driver, "q1", 1, 2, 3, 4)
    await post(driver, "q1", "later", delay=60)
    await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    popped = await driver.messages.pop(P, "q1", 2)
    assert [m.id for m in popped] == ids[1:3]
    assert bodies(popped) == [2, 3]
    again = await driver.messages.pop(P, "q1", 5)
    assert [m.id for m in again] == [ids[3]]
    assert await driver.messages.pop(P, "missing", 5) == []


async def test_purge_removes_claimed_too(driver):
    await post(driver, "q1", 1, 2)
    await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
    await driver.messages.purge(P, "q1")
    assert (await driver.queues.stats(P, "q1")).total == 0
    assert await driver.queues.exists(P, "q1")


async def test_concurrent_producers_keep_their_order(driver):
    async def produce(name: str) -> None:
        for batch in range(5):
            await driver.messages.post(
                P, "q1", [msg([name, batch, i]) for i in range(4)], name)

    await asyncio.gather(produce("a"), produce("b"))
    seen: list = []
    marker = None
    while True:
        page = await driver.messages.list(P, "q1", echo=True, limit=20, marker=marker)
        if not page.items:
            break
        seen += bodies(page.items)
        marker = page.next_marker
    assert len(seen) == 40
    for name in ("a", "b"):
        mine = [tuple(b[1:]) for b in seen if b[0] == name]
        assert mine == sorted(mine)
    # Each batch is contiguous.
    for start in range(0, 40, 4):
        assert len({tuple(b[:2]) for b in seen[start:start + 4]}) == 1


async def test_bodies_with_escaped_nul_and_unicode_round_trip(driver):
    """JSON text escapes NUL, so stores that frame batches with NUL bytes
    (Redis) still take any body; the bytes come back exactly as stored."""
    sent = ["a\u0000b", {"k\u0000": ["\u0000", "é", "\U0001f600"]}, "\\0"]
    ids = await post(driver, "q1", *sent)
    page = await driver.messages.list(P, "q1", echo=True)
    assert [m.id for m in page.items] == ids
    assert bodies(page.items) == sent
