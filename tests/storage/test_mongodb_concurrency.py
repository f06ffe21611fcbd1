"""MongoDB driver under concurrency: each worker has its own client.

Data stays at a few hundred messages: the SecantusDB test server sorts in
memory, so every claim costs O(queue length).
"""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from tests.fixtures.mongodb import database_name, make_driver
from tests.storage.helpers import P, bodies, msg

pytestmark = pytest.mark.slow

MESSAGES = 500
CONSUMERS = 4
PRODUCERS = 4


@pytest.fixture
async def drivers(mongodb_server):
    """``make(n)`` gives n drivers on one test database, each its own client."""
    namespace = database_name()
    made = []

    def make(count: int):
        new = [make_driver(mongodb_server.uri, namespace=namespace, timeout=20)
               for _ in range(count)]
        made.extend(new)
        return new

    yield make
    if made:
        await made[0].wipe()
    for driver in made:
        await driver.close()


async def test_concurrent_consumers_never_share_a_live_claim(drivers):
    [producer] = drivers(1)
    consumers = drivers(CONSUMERS)
    posted: list[str] = []
    for start in range(0, MESSAGES, 25):
        posted += await producer.messages.post(
            P, "q1", [msg(n) for n in range(start, start + 25)], "producer")

    held: dict[str, str] = {}        # message id -> live claim holding it
    deleted: list[str] = []
    violations: list[str] = []
    claims_made = [0] * CONSUMERS
    rng = random.Random(7)

    async def consume(index: int, driver) -> None:
        empty = 0
        while empty < 2:
            claim = await driver.claims.create(P, "q1", ttl=300, grace=60, limit=10)
            if claim is None:
                empty += 1
                continue
            empty = 0
            claims_made[index] += 1
            ids = [m.id for m in claim.messages]
            for message in claim.messages:
                if message.id in held:
                    violations.append(f"{message.id} in {held[message.id]} "
                                      f"and {claim.id}")
                held[message.id] = claim.id
                if message.claim_id != claim.id:
                    violations.append(f"{message.id} reports {message.claim_id}")
            if rng.random() < 0.2:
                # Give the messages back: forget them before the release is
                # sent, as they become claimable the moment it lands.
                for message_id in ids:
                    del held[message_id]
                await driver.claims.release(P, "q1", claim.id)
            else:
                await driver.messages.delete_many(P, "q1", ids, claim_ids=[claim.id])
                for message_id in ids:
                    del held[message_id]
                deleted.extend(ids)

    await asyncio.gather(*(consume(i, d) for i, d in enumerate(consumers)))

    assert violations == []
    assert len(deleted) == len(set(deleted)) == MESSAGES      # 0 double deliveries
    assert set(deleted) == set(posted)                          # 0 lost
    assert all(count > 0 for count in claims_made), claims_made
    stats = await producer.queues.stats(P, "q1")
    assert (stats.total, stats.claimed) == (0, 0)


async def test_concurrent_pops_and_claims_never_share_a_message(drivers):
    [producer] = drivers(1)
    takers = drivers(CONSUMERS)
    posted = await producer.messages.post(
        P, "q1", [msg(n) for n in range(200)], "producer")
    got: list[str] = []

    async def take(index: int, driver) -> None:
        while True:
            if index % 2:
                claim = await driver.claims.create(P, "q1", ttl=300, grace=60,
                                                   limit=7)
                ids = [m.id for m in claim.messages] if claim else []
            else:
                ids = [m.id for m in await driver.messages.pop(P, "q1", 7)]
            if not ids:
                return
            got.extend(ids)

    await asyncio.gather(*(take(i, d) for i, d in enumerate(takers)))
    assert len(got) == len(set(got)) == len(posted)
    assert set(got) == set(posted)


@pytest.mark.parametrize("transactions", [True, False], ids=["txn", "no-txn"])
async def test_concurrent_producers_keep_batches_whole_and_ordered(
        drivers, transactions):
    producers = drivers(PRODUCERS)
    [observer] = drivers(1)
    for driver in producers:
        await driver.ready()
        driver.use_transactions = transactions and driver.use_transactions
    batches, size = 10, 5

    async def produce(name: str, driver) -> None:
        for batch in range(batches):
            await driver.messages.post(
                P, "q1", [msg([name, batch, i]) for i in range(size)], name)

    # An observer pages by marker while the producers run, as a Zaqar
    # "observer" client does, and must end up with every message.
    done = asyncio.Event()
    observed: list = []

    async def observe() -> None:
        marker = None
        while True:
            finished = done.is_set()
            page = await observer.messages.list(P, "q1", echo=True, limit=20,
                                                marker=marker)
            observed.extend(page.items)
            marker = page.next_marker or marker
            if finished and not page.items:
                return
            if not page.items:
                await asyncio.sleep(0.01)

    watcher = asyncio.create_task(observe())
    await asyncio.gather(*(produce(f"p{i}", d) for i, d in enumerate(producers)))
    done.set()
    await watcher

    everything = []
    marker = None
    while page := (await observer.messages.list(
            P, "q1", echo=True, limit=20, marker=marker)).items:
        everything += page
        marker = str(page[-1].marker)
    total = PRODUCERS * batches * size
    assert len(everything) == total
    seen = bodies(everything)
    markers = [m.marker for m in everything]
    assert markers == sorted(markers)
    for name in (f"p{i}" for i in range(PRODUCERS)):
        mine = [tuple(b[1:]) for b in seen if b[0] == name]
        assert mine == sorted(mine) and len(mine) == batches * size
    for start in range(0, total, size):
        group = everything[start:start + size]
        assert len({tuple(orjson.loads(m.body_json)[:2]) for m in group}) == 1
        assert [m.marker for m in group] == list(
            range(group[0].marker, group[0].marker + size))
    if transactions:
        # Batches commit whole and in marker order: nothing was skipped.
        assert [m.id for m in observed] == [m.id for m in everything]
