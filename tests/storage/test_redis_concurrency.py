"""Redis driver: concurrent consumers never share a message under live claims.

Eight consumers (separate tasks, each with its own driver instance and
connections) work through 5,000 messages while a producer is still posting.
Consumers delete most claimed messages, release some claims and abandon
others to expiry; a shared fake clock runs fast so claims expire during the
test. Every event is stamped with a global sequence number (one event loop,
so the order is exact), which gives a sound overlap check: claim B overlaps
claim A on a message if B was requested after A completed, B completed before
A started to let go (release/delete), and A had not expired at B's time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import random
import time
from collections import Counter, defaultdict

import pytest

from queues.errors import ClaimExpired, MessageIsClaimed, MessageNotClaimed
from queues.storage import load_driver
from tests.fixtures.redis import unique_namespace
from tests.storage.helpers import P, msg

TOTAL = 5000
CONSUMERS = 8
CLAIM_TTL = 60
QUEUE = "work"


class FastClock:
    """Shared by all drivers; a ticker task moves it 2 s every 5 ms."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Hold:
    claim_id: str
    consumer: int
    sent: int  # seq before the claim request
    done: int  # seq after the claim reply
    now: float  # the clock the claim ran with
    expires: float
    end: float = math.inf  # seq before the release/delete request, if any


@pytest.mark.slow
async def test_eight_consumers_share_nothing_and_lose_nothing(redis_server):
    clock = FastClock()
    namespace = unique_namespace()
    drivers = [
        load_driver(redis_server.uri, namespace=namespace, timeout=5, clock=clock,
                    options={"sweep_interval": "0"})
        for _ in range(CONSUMERS + 1)
    ]
    seq = itertools.count()
    posted: set[str] = set()
    deleted_at: dict[str, int] = {}
    holds: dict[str, list[Hold]] = defaultdict(list)
    events: Counter[str] = Counter()
    producing = True

    async def ticker() -> None:
        while True:
            clock.now += 2
            await asyncio.sleep(0.005)

    async def producer(driver) -> None:
        nonlocal producing
        for start in range(0, TOTAL, 50):
            batch = [msg({"n": n}, ttl=3600) for n in range(start, start + 50)]
            posted.update(await driver.messages.post(P, QUEUE, batch, "producer"))
            await asyncio.sleep(0)
        producing = False

    async def delete(driver, message_id: str, hold: Hold) -> None:
        hold.end = next(seq)
        try:
            await driver.messages.delete(P, QUEUE, message_id, claim_id=hold.claim_id)
        except (ClaimExpired, MessageNotClaimed, MessageIsClaimed):
            events["delete refused"] += 1  # our claim ran out first
            return
        deleted_at.setdefault(message_id, next(seq))

    async def consumer(number: int, driver) -> None:
        rng = random.Random(number)
        while producing or len(deleted_at) < TOTAL:
            sent = next(seq)
            now = clock()
            claim = await driver.claims.create(
                P, QUEUE, ttl=CLAIM_TTL, grace=60, limit=rng.randint(1, 20))
            done = next(seq)
            if claim is None:
                await asyncio.sleep(0.001)
                continue
            mine = []
            for message in claim.messages:
                hold = Hold(claim.id, number, sent, done, now, claim.expires)
                holds[message.id].append(hold)
                mine.append((message.id, hold))
            action = rng.random()
            if action < 0.7:  # the normal case: process and delete all
                for message_id, hold in mine:
                    await delete(driver, message_id, hold)
            elif action < 0.85:  # delete some, give the rest back
                keep = rng.randint(0, len(mine))
                for message_id, hold in mine[:keep]:
                    await delete(driver, message_id, hold)
                released = next(seq)
                for _, hold in mine[keep:]:
                    hold.end = released
                await driver.claims.release(P, QUEUE, claim.id)
                events["released"] += 1
            else:  # crash: the claim expires with its messages
                events["abandoned"] += 1
            await asyncio.sleep(0)

    tick = asyncio.create_task(ticker())
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(
                producer(drivers[0]),
                *(consumer(i, d) for i, d in enumerate(drivers[1:], start=1)))
        stats = await drivers[0].queues.stats(P, QUEUE)
    finally:
        tick.cancel()
        await drivers[0].wipe()
        for driver in drivers:
            await driver.close()

    # Nothing lost: every posted message was deleted, and nothing is left.
    assert len(posted) == TOTAL
    assert set(deleted_at) == posted
    assert stats.total == 0

    overlaps = []
    for message_id, message_holds in holds.items():
        for a, b in itertools.permutations(message_holds, 2):
            if a.done < b.sent and b.done < a.end and b.now < a.expires:
                overlaps.append((message_id, a, b))
        # Never handed out again once its delete had returned.
        assert all(h.sent < deleted_at[message_id] for h in message_holds)
    assert overlaps == []

    # The run exercised what it claims to.
    redelivered = sum(len(h) > 1 for h in holds.values())
    assert events["released"] > 10 and events["abandoned"] > 10, events
    assert redelivered > 100, redelivered
