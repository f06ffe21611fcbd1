"""The rotation ledger on every store: queue metadata, compare-and-set."""

from __future__ import annotations

import asyncio
import time

import pytest

from queues.rotation import ledger as ledger_module
from queues.rotation.ledger import (
    GRANT, Generation, IssuedGrant, Ledger, LedgerError, LedgerStore,
)
from queues.rotation.template import Delivery, GrantSpec, Target, Timing


def make_target(project: str, name: str = "vm-1") -> Target:
    return Target(name=name, project=project, timing=Timing(60, 20, 5),
                  grants=(GrantSpec(project, "events", ("post",)),),
                  deliver=(Delivery("queue", queue=f"creds.{name}"),),
                  alerts_queue="rotation.alerts", source="test.yaml")


def generation(number: int, now: float, ttl: int = 60) -> Generation:
    grant = IssuedGrant(GRANT, "p", "events", ("post",), f"jti-{number:018d}",
                        int(now) + ttl)
    return Generation(number=number, issued_at=now, digest="d", grants=[grant],
                      pickup_deadline=now + ttl - 5)


async def test_missing_ledger_is_empty(driver, rotation_project):
    store = LedgerStore(driver, time.time)
    loaded = await store.load(make_target(rotation_project))
    assert loaded == Ledger("vm-1")
    assert loaded.number == 0 and loaded.current is None


async def test_round_trip_through_queue_metadata(driver, rotation_project):
    target = make_target(rotation_project)
    store = LedgerStore(driver, time.time)
    ledger = Ledger("vm-1", generations=[generation(1, time.time())])
    ledger.generations[0].delivered = ["queue#0"]
    ledger.generations[0].message_id = "m1"
    assert await store.store(target, ledger)
    assert ledger.version == 1
    loaded = await store.load(target)
    assert loaded == ledger
    metadata = await driver.queues.get_metadata(rotation_project,
                                                "rotation.ledger.vm-1")
    assert metadata["rotation"]["generations"][0]["grants"][0]["ops"] == ["post"]


async def test_a_stale_writer_loses_and_nothing_is_overwritten(driver,
                                                               rotation_project):
    target = make_target(rotation_project)
    first, second = LedgerStore(driver, time.time), LedgerStore(driver, time.time)
    one, other = await first.load(target), await second.load(target)
    one.generations.append(generation(1, time.time()))
    other.generations.append(generation(1, time.time(), ttl=90))
    assert await first.store(target, one)
    assert not await second.store(target, other)
    assert (await first.load(target)).current.grants[0].jti == \
        one.current.grants[0].jti


async def test_concurrent_writers_one_wins_each_version(driver, rotation_project):
    target = make_target(rotation_project)
    stores = [LedgerStore(driver, time.time) for _ in range(4)]
    ledgers = [await s.load(target) for s in stores]
    for index, ledger in enumerate(ledgers):
        ledger.generations.append(generation(index + 1, time.time()))
    results = await asyncio.gather(*(s.store(target, l)
                                     for s, l in zip(stores, ledgers)))
    assert sorted(results) == [False, False, False, True]


async def test_a_lease_lapses_after_a_writer_died(driver, rotation_project, clock):
    """A writer that took the lease and died blocks only for LEASE_SECONDS."""
    target = make_target(rotation_project)
    dead, alive = LedgerStore(driver, time.time), LedgerStore(driver, time.time)
    assert await dead._lease(target, 1)
    ledger = await alive.load(target)
    ledger.generations.append(generation(1, time.time()))
    assert not await alive.store(target, ledger)
    clock.shift(ledger_module.LEASE_SECONDS + 1)
    assert await alive.store(target, ledger)


async def test_own_lease_is_reused_after_a_failed_write(driver, rotation_project):
    target = make_target(rotation_project)
    store = LedgerStore(driver, time.time)
    ledger = await store.load(target)
    assert await store._lease(target, 1)
    assert await store.store(target, ledger)


async def test_an_edited_ledger_is_refused_clearly(driver, rotation_project):
    await driver.queues.create(rotation_project, "rotation.ledger.vm-1",
                               {"rotation": {"generations": "nope"}})
    with pytest.raises(LedgerError, match="ledger of target vm-1 is unreadable"):
        await LedgerStore(driver, time.time).load(make_target(rotation_project))


def test_prune_keeps_live_generations_and_the_current():
    now = time.time()
    ledger = Ledger("vm-1", generations=[generation(1, now - 100),
                                         generation(2, now - 30),
                                         generation(3, now - 200)])
    ledger.prune(now)
    assert [g.number for g in ledger.generations] == [2, 3]
