"""Storage contract: push subscriptions. Runs on every driver that has them."""

from __future__ import annotations

import asyncio
import time

import pytest

from queues.errors import Conflict, SubscriptionNotFound
from tests.storage.helpers import P, post

DUPLICATE = ("Such subscription already exists.Subscriptions are unique by"
             " project + queue + subscriber URI.")


@pytest.fixture(autouse=True)
def _needs_subscriptions(driver):
    if not hasattr(driver, "subscriptions"):
        pytest.skip("not implemented by this driver yet")


async def subscribe(driver, subscriber: str = "http://h/1", *, queue: str = "q1",
                    ttl: int = 3600, options: dict | None = None,
                    secret: str = "whsec_x", project: str = P):
    created, _ = await driver.subscriptions.create(
        project, queue, subscriber, ttl=ttl, options=options or {}, secret=secret)
    return created


async def leased(driver) -> list:
    return await driver.jobs.lease(1000, 60, max_in_flight=1000)


async def test_create_returns_stored_fields_and_creates_queue(driver, clock):
    sub, new = await driver.subscriptions.create(
        P, "q1", "http://h/1", ttl=120, options={"a": [1]}, secret="whsec_s")
    assert new is True
    assert (sub.project, sub.queue, sub.subscriber) == (P, "q1", "http://h/1")
    assert sub.ttl == 120
    assert sub.options == {"a": [1]} and sub.secret == "whsec_s"
    assert sub.confirmed is False and sub.disabled is False
    assert sub.created == pytest.approx(time.time())
    assert sub.expires == pytest.approx(time.time() + 120)
    assert len(sub.id) == 32 and int(sub.id, 16) >= 0
    assert await driver.queues.exists(P, "q1")
    assert await driver.subscriptions.get(P, "q1", sub.id) == sub


async def test_duplicate_unconfirmed_returns_existing_unchanged(driver):
    first = await subscribe(driver, ttl=100, options={"a": 1, "b": {"x": 1, "y": 2}})
    # Same subscriber and options (key order does not matter): a duplicate.
    again, new = await driver.subscriptions.create(
        P, "q1", "http://h/1", ttl=999, options={"b": {"y": 2, "x": 1}, "a": 1},
        secret="other")
    assert new is False
    assert again == first
    assert await driver.subscriptions.get(P, "q1", first.id) == first
    assert [s.id for s in (await driver.subscriptions.list(P, "q1")).items] == [
        first.id]


async def test_duplicate_confirmed_conflicts(driver):
    first = await subscribe(driver, options={"a": 1, "b": 2})
    await driver.subscriptions.confirm(P, "q1", first.id, True)
    with pytest.raises(Conflict) as raised:
        await subscribe(driver, options={"b": 2, "a": 1})
    assert raised.value.description == DUPLICATE


async def test_same_subscriber_with_other_options_is_another_subscription(driver):
    plain = await subscribe(driver)
    await driver.subscriptions.confirm(P, "q1", plain.id, True)
    others = [await subscribe(driver, options=options) for options in (
        {"a": 1}, {"a": 2}, {"a": "1"}, {"a": 1.5}, {"a": [1, 2]}, {"a": [2, 1]},
        {"a": {"b": 1}}, {"b": 1})]
    ids = {plain.id} | {sub.id for sub in others}
    assert len(ids) == 9
    assert {s.id for s in (await driver.subscriptions.list(P, "q1", limit=20)).items
            } == ids
    # Each one is a separate delivery of every message.
    [message_id] = await post(driver, "q1", "hello")
    jobs = await leased(driver)
    assert sorted(j.subscription_id for j in jobs) == sorted(ids)
    assert {j.message_id for j in jobs} == {message_id}
    # ... settled one by one.
    for job in jobs:
        assert await driver.jobs.ack(job.id, job.lease_token)
    assert await leased(driver) == []


async def test_concurrent_creates_of_one_pair_make_one_subscription(driver):
    results = await asyncio.gather(*[driver.subscriptions.create(
        P, "q1", "http://h/1", ttl=60, options={"a": 1, "b": 2} if n % 2 else
        {"b": 2, "a": 1}, secret=f"s{n}") for n in range(6)])
    assert len({sub.id for sub, _ in results}) == 1
    assert sum(new for _, new in results) == 1
    assert len((await driver.subscriptions.list(P, "q1")).items) == 1


async def test_uniqueness_is_per_project_queue_and_subscriber(driver):
    ids = {(await subscribe(driver, "http://h/1", queue="q1")).id,
           (await subscribe(driver, "http://h/2", queue="q1")).id,
           (await subscribe(driver, "http://h/1", queue="q2")).id,
           (await subscribe(driver, "http://h/1", queue="q1", project="other")).id}
    assert len(ids) == 4


async def test_get_unknown_or_other_queue_or_project(driver):
    sub = await subscribe(driver)
    for project, queue, sub_id in [(P, "q1", "bogus"), (P, "q2", sub.id),
                                   ("other", "q1", sub.id)]:
        with pytest.raises(SubscriptionNotFound) as raised:
            await driver.subscriptions.get(project, queue, sub_id)
        assert raised.value.description == f"Subscription {sub_id} does not exist"


async def test_list_pages_in_creation_order(driver, clock):
    made = []
    for n in range(5):
        made.append((await subscribe(driver, f"http://h/{n}")).id)
        clock.shift(1)
    await subscribe(driver, "http://elsewhere", queue="q2")
    seen, marker = [], None
    for _ in range(4):
        page = await driver.subscriptions.list(P, "q1", marker=marker, limit=2)
        seen += [s.id for s in page.items]
        if not page.items:
            break
        assert page.next_marker == page.items[-1].id
        marker = page.next_marker
    assert seen == made


async def test_list_paging_is_stable_with_equal_creation_times(driver, clock):
    made = {(await subscribe(driver, f"http://h/{n}")).id for n in range(7)}
    seen, marker = [], None
    while True:
        page = await driver.subscriptions.list(P, "q1", marker=marker, limit=3)
        if not page.items:
            break
        seen += [s.id for s in page.items]
        marker = page.next_marker
    assert sorted(seen) == sorted(made) and len(seen) == 7


async def test_list_empty_and_unknown_marker(driver):
    assert (await driver.subscriptions.list(P, "q1")).items == []
    await subscribe(driver)
    page = await driver.subscriptions.list(P, "q1", marker="bogus")
    assert page.items == []


async def test_update_ttl_restarts_expiry(driver, clock):
    sub = await subscribe(driver, ttl=60)
    clock.shift(50)
    await driver.subscriptions.update(P, "q1", sub.id, ttl=100)
    clock.shift(60)
    got = await driver.subscriptions.get(P, "q1", sub.id)
    assert got.ttl == 100
    assert got.expires == pytest.approx(time.time() + 40)
    clock.shift(41)
    with pytest.raises(SubscriptionNotFound):
        await driver.subscriptions.get(P, "q1", sub.id)


async def test_update_replaces_options_and_keeps_the_rest(driver):
    sub = await subscribe(driver, options={"a": 1, "b": 2})
    await driver.subscriptions.update(P, "q1", sub.id, options={"c": 3})
    got = await driver.subscriptions.get(P, "q1", sub.id)
    assert got.options == {"c": 3}
    assert (got.subscriber, got.ttl, got.expires) == (sub.subscriber, sub.ttl,
                                                      sub.expires)


async def test_update_subscriber_and_conflict(driver):
    first = await subscribe(driver, "http://h/1")
    second = await subscribe(driver, "http://h/2")
    with pytest.raises(Conflict):
        await driver.subscriptions.update(P, "q1", second.id, subscriber="http://h/1")
    got = await driver.subscriptions.get(P, "q1", second.id)
    assert got.subscriber == "http://h/2"
    # Setting its own subscriber again is not a conflict.
    await driver.subscriptions.update(P, "q1", first.id, subscriber="http://h/1")
    await driver.subscriptions.update(P, "q1", first.id, subscriber="http://h/3")
    got = await driver.subscriptions.get(P, "q1", first.id)
    assert got.subscriber == "http://h/3"
    # The old subscriber URI is free again.
    _, new = await driver.subscriptions.create(P, "q1", "http://h/1", ttl=60,
                                               options={}, secret="")
    assert new is True


async def test_update_into_a_duplicate_conflicts_and_changes_nothing(driver):
    first = await subscribe(driver, "http://h/1", options={"a": 1, "b": 2})
    second = await subscribe(driver, "http://h/1", options={"a": 2})
    third = await subscribe(driver, "http://h/2", options={"a": 1, "b": 2})
    attempts = [(second.id, {"options": {"b": 2, "a": 1}}),
                (third.id, {"subscriber": "http://h/1"}),
                (third.id, {"subscriber": "http://h/1", "options": {"a": 2},
                            "ttl": 10})]
    for sub_id, changes in attempts:
        with pytest.raises(Conflict) as raised:
            await driver.subscriptions.update(P, "q1", sub_id, **changes)
        assert raised.value.description == DUPLICATE
    for sub in (first, second, third):
        assert await driver.subscriptions.get(P, "q1", sub.id) == sub
    # Into a pair no one holds: fine, and the old pair is free again.
    await driver.subscriptions.update(P, "q1", third.id, subscriber="http://h/1",
                                      options={"a": 3})
    got = await driver.subscriptions.get(P, "q1", third.id)
    assert (got.subscriber, got.options) == ("http://h/1", {"a": 3})
    _, new = await driver.subscriptions.create(
        P, "q1", "http://h/2", ttl=60, options={"b": 2, "a": 1}, secret="")
    assert new is True


async def test_update_options_back_and_forth(driver):
    sub = await subscribe(driver, options={"a": 1, "b": 2})
    # Its own options again, keys reordered: not a conflict, stored as given.
    await driver.subscriptions.update(P, "q1", sub.id, options={"b": 2, "a": 1})
    assert (await driver.subscriptions.get(P, "q1", sub.id)).options == {"b": 2,
                                                                          "a": 1}
    await driver.subscriptions.update(P, "q1", sub.id, options={"a": 9})
    # The pair it left is free: a create takes it...
    taker, new = await driver.subscriptions.create(
        P, "q1", "http://h/1", ttl=60, options={"a": 1, "b": 2}, secret="")
    assert new is True
    # ... and going back now conflicts, until the taker is gone.
    with pytest.raises(Conflict):
        await driver.subscriptions.update(P, "q1", sub.id, options={"a": 1, "b": 2})
    await driver.subscriptions.delete(P, "q1", taker.id)
    await driver.subscriptions.update(P, "q1", sub.id, options={"a": 1, "b": 2})
    assert (await driver.subscriptions.get(P, "q1", sub.id)).options == {"a": 1,
                                                                          "b": 2}
    # {"a": 9} is free again too.
    _, new = await driver.subscriptions.create(
        P, "q1", "http://h/1", ttl=60, options={"a": 9}, secret="")
    assert new is True
    _, new = await driver.subscriptions.create(
        P, "q1", "http://h/1", ttl=60, options={"b": 2, "a": 1}, secret="")
    assert new is False


async def test_update_into_an_expired_pair_replaces_it(driver, clock):
    old = await subscribe(driver, options={"a": 1}, ttl=60)
    await driver.subscriptions.confirm(P, "q1", old.id, True)
    sub = await subscribe(driver, options={"a": 2}, ttl=3600)
    clock.shift(61)
    await driver.subscriptions.update(P, "q1", sub.id, options={"a": 1})
    assert (await driver.subscriptions.get(P, "q1", sub.id)).options == {"a": 1}
    _, new = await driver.subscriptions.create(
        P, "q1", "http://h/1", ttl=60, options={"a": 1}, secret="")
    assert new is False


async def test_concurrent_updates_into_one_pair_let_one_win(driver):
    subs = [await subscribe(driver, options={"n": n}) for n in range(4)]
    results = await asyncio.gather(*[driver.subscriptions.update(
        P, "q1", sub.id, options={"to": "same"}) for sub in subs],
        return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    for sub, result in zip(subs, results):
        got = await driver.subscriptions.get(P, "q1", sub.id)
        assert got.options == (sub.options if result else {"to": "same"})


async def test_update_unknown_raises(driver):
    with pytest.raises(SubscriptionNotFound):
        await driver.subscriptions.update(P, "q1", "bogus", ttl=100)
    sub = await subscribe(driver)
    with pytest.raises(SubscriptionNotFound):
        await driver.subscriptions.update(P, "q2", sub.id, ttl=100)


async def test_confirm_and_unconfirm(driver):
    sub = await subscribe(driver)
    await driver.subscriptions.confirm(P, "q1", sub.id, True)
    assert (await driver.subscriptions.get(P, "q1", sub.id)).confirmed is True
    await driver.subscriptions.confirm(P, "q1", sub.id, False)
    assert (await driver.subscriptions.get(P, "q1", sub.id)).confirmed is False
    with pytest.raises(SubscriptionNotFound):
        await driver.subscriptions.confirm(P, "q1", "bogus", True)


async def test_disable_is_idempotent_and_visible(driver):
    sub = await subscribe(driver)
    await driver.subscriptions.disable(sub.id)
    await driver.subscriptions.disable(sub.id)
    await driver.subscriptions.disable("bogus")
    assert (await driver.subscriptions.get(P, "q1", sub.id)).disabled is True


async def test_delete_is_idempotent_and_drops_jobs(driver):
    sub = await subscribe(driver)
    keep = await subscribe(driver, "http://h/keep")
    await post(driver, "q1", 1)
    for job in await leased(driver):
        await driver.jobs.bury(job.id, job.lease_token, "x")
    await post(driver, "q1", 2)
    await driver.subscriptions.delete(P, "q1", sub.id)
    await driver.subscriptions.delete(P, "q1", sub.id)
    await driver.subscriptions.delete(P, "q1", "bogus")
    with pytest.raises(SubscriptionNotFound):
        await driver.subscriptions.get(P, "q1", sub.id)
    assert {j.subscription_id for j in await leased(driver)} == {keep.id}
    assert await driver.jobs.dead_letters(sub.id) == []
    assert len(await driver.jobs.dead_letters(keep.id)) == 1


async def test_delete_needs_the_right_queue(driver):
    sub = await subscribe(driver)
    await driver.subscriptions.delete(P, "q2", sub.id)
    await driver.subscriptions.delete("other", "q1", sub.id)
    assert await driver.subscriptions.get(P, "q1", sub.id) == sub


async def test_expired_subscription_is_invisible_and_replaceable(driver, clock):
    sub = await subscribe(driver, ttl=60)
    await driver.subscriptions.confirm(P, "q1", sub.id, True)
    clock.shift(61)
    with pytest.raises(SubscriptionNotFound):
        await driver.subscriptions.get(P, "q1", sub.id)
    assert (await driver.subscriptions.list(P, "q1")).items == []
    with pytest.raises(SubscriptionNotFound):
        await driver.subscriptions.update(P, "q1", sub.id, ttl=100)
    with pytest.raises(SubscriptionNotFound):
        await driver.subscriptions.confirm(P, "q1", sub.id, True)
    # Even a confirmed one no longer blocks its subscriber URI.
    again, new = await driver.subscriptions.create(P, "q1", "http://h/1", ttl=60,
                                                   options={}, secret="")
    assert new is True and again.id != sub.id


async def test_expired_subscription_gets_no_jobs(driver, clock):
    await subscribe(driver, ttl=60)
    clock.shift(61)
    await post(driver, "q1", 1)
    assert await leased(driver) == []


async def test_queue_delete_keeps_subscriptions(driver):
    sub = await subscribe(driver)
    await driver.queues.delete(P, "q1")
    assert await driver.subscriptions.get(P, "q1", sub.id) == sub
    assert [s.id for s in (await driver.subscriptions.list(P, "q1")).items] == [sub.id]


async def test_purge_deletes_every_subscription_of_the_queue(driver):
    for n in range(3):
        await subscribe(driver, f"http://h/{n}")
    other = await subscribe(driver, "http://h/0", queue="q2")
    await post(driver, "q1", 1)
    await driver.subscriptions.purge(P, "q1")
    assert (await driver.subscriptions.list(P, "q1")).items == []
    remaining = (await driver.subscriptions.list(P, "q2")).items
    assert [s.id for s in remaining] == [other.id]
    assert await leased(driver) == []
