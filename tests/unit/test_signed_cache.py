"""The per-worker caches behind signed URLs (``queues/api/signed.py``).

``RevocationCache`` and ``KeySource`` trade freshness for fewer store calls:
revocation state and key-file changes may be seen up to
``signing.revocation_cache_ttl`` seconds late, never later, and rate counts
(``UseCounter``) reach the store in batches with a bounded overshoot. Both
keep the store off the request path: reads are shared and refreshed ahead,
counts are sent in the background. These tests pin those bounds with a fake
clock and an in-memory store that counts its calls (and can hold a call
open, to see what a request does while the store is slow).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pathlib
import time
import types

import falcon.testing
import pytest

import signing
from queues.api.app import create_app
from queues.api.signed import RATE_FLUSH_EVERY, KeySource, RevocationCache, UseCounter
from queues.config import load_settings
from queues.storage import load_driver


class Clock:
    def __init__(self, now: float = 1_800_000_001.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeGrants:
    """An in-memory GrantStore that counts calls."""

    def __init__(self) -> None:
        self.generations: dict[tuple[str, str], int] = {}
        self.denied: set[str] = set()
        self.counters: dict[tuple[str, int], int] = {}
        self.calls: dict[str, int] = {"generation": 0, "revoked": 0, "count_uses": 0}
        self.clock: Clock | None = None
        self.gate: asyncio.Event | None = None  # when set up, calls wait for it
        self.fail: Exception | None = None  # raised (once) by the next call

    async def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error

    async def generation(self, project: str, queue: str) -> int:
        await self._enter("generation")
        return self.generations.get((project, queue), 0)

    async def revoked(self, jtis):
        await self._enter("revoked")
        return {j for j in jtis if j in self.denied}

    async def count_uses(self, counts: dict[str, int], window: int) -> dict[str, int]:
        await self._enter("count_uses")
        start = int(self.clock() // window) * window
        totals = {}
        for key, amount in counts.items():
            self.counters[(key, start)] = self.counters.get((key, start), 0) + amount
            totals[key] = self.counters[(key, start)]
        return totals


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def grants(clock: Clock) -> FakeGrants:
    store = FakeGrants()
    store.clock = clock
    return store


def cache(grants: FakeGrants, clock: Clock, ttl: float) -> RevocationCache:
    return RevocationCache(types.SimpleNamespace(grants=grants), ttl, clock)


def counter(grants: FakeGrants, clock: Clock, ttl: float) -> UseCounter:
    return UseCounter(types.SimpleNamespace(grants=grants), ttl, clock)


async def settle() -> None:
    """Let background tasks run to completion (they need a few loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


# --- revocation state: stale for at most ttl ---------------------------------------

async def test_generation_is_cached_for_at_most_the_ttl(grants, clock):
    rc = cache(grants, clock, 2.0)
    assert await rc.generation("p", "q") == 0
    grants.generations[("p", "q")] = 1
    clock.now += 0.999
    for _ in range(50):
        assert await rc.generation("p", "q") == 0
    await settle()
    assert grants.calls["generation"] == 1  # one store read for 51 requests
    clock.now += 1.001  # exactly ttl after the read
    assert await rc.generation("p", "q") == 1


async def test_deny_list_answer_is_cached_for_at_most_the_ttl(grants, clock):
    rc = cache(grants, clock, 2.0)
    assert await rc.is_revoked("j1") is False
    grants.denied.add("j1")
    clock.now += 1.5
    assert await rc.is_revoked("j2") is False  # another token: its own read
    clock.now += 0.5
    assert await rc.is_revoked("j1") is True


async def test_zero_ttl_reads_the_store_every_time(grants, clock):
    rc = cache(grants, clock, 0)
    assert await rc.generation("p", "q") == 0
    grants.generations[("p", "q")] = 3
    assert await rc.generation("p", "q") == 3
    grants.denied.add("j")
    assert await rc.is_revoked("j") is True


async def test_an_expired_answer_is_read_once_for_every_waiting_request(grants, clock):
    rc = cache(grants, clock, 2.0)
    await rc.generation("p", "q")
    grants.generations[("p", "q")] = 7
    grants.gate = asyncio.Event()
    clock.now += 2.0
    waiting = [asyncio.ensure_future(rc.generation("p", "q")) for _ in range(20)]
    await settle()
    assert not any(task.done() for task in waiting)  # nobody gets the stale answer
    grants.gate.set()
    assert await asyncio.gather(*waiting) == [7] * 20
    assert grants.calls["generation"] == 2  # the first read and one shared re-read


async def test_answers_are_refreshed_ahead_off_the_request_path(grants, clock):
    """Past half the ttl a cached answer is still served at once, while one
    background read replaces it; requests never wait for that read."""
    rc = cache(grants, clock, 2.0)
    grant = types.SimpleNamespace(project="p", queue="q", gen=0, jti="j")
    await rc.generation("p", "q")
    await rc.is_revoked("j")
    grants.gate = asyncio.Event()  # the store is slow from here on
    clock.now += 1.2
    for _ in range(30):
        assert rc.known_live(grant, clock())
        assert await asyncio.wait_for(rc.is_revoked("j"), 1) is False
    assert grants.calls == {"generation": 2, "revoked": 2, "count_uses": 0}
    grants.denied.add("j")
    grants.gate.set()
    await settle()
    clock.now += 1.0  # the first answers are 2.2 s old, the refreshed 1.0 s
    assert not rc.known_live(grant, clock())
    assert await rc.is_revoked("j") is True
    assert grants.calls["revoked"] == 2


async def test_a_refresh_in_flight_never_stretches_the_ttl(grants, clock):
    """An answer as old as the ttl is not served while its re-read is slow:
    requests wait for the read (issued 0.5 s ago, so its answer is fresh)."""
    rc = cache(grants, clock, 2.0)
    await rc.is_revoked("j")
    grants.gate = asyncio.Event()
    clock.now += 1.5
    assert await rc.is_revoked("j") is False  # served; re-read started
    grants.denied.add("j")
    clock.now += 0.5
    waiting = asyncio.ensure_future(rc.is_revoked("j"))
    await settle()
    assert not waiting.done()
    grants.gate.set()
    assert await waiting is True
    assert grants.calls["revoked"] == 2


async def test_zero_ttl_never_shares_a_read_in_flight(grants, clock):
    rc = cache(grants, clock, 0)
    grants.gate = asyncio.Event()
    first = asyncio.ensure_future(rc.generation("p", "q"))
    await settle()
    grants.generations[("p", "q")] = 2
    second = asyncio.ensure_future(rc.generation("p", "q"))
    await settle()
    grants.gate.set()
    assert (await asyncio.gather(first, second))[1] == 2
    assert grants.calls["generation"] == 2  # the second request read for itself


async def test_a_failed_read_reaches_its_waiters_and_the_next_request_reads_again(
        grants, clock):
    rc = cache(grants, clock, 2.0)
    grants.fail = ConnectionError("store down")
    with pytest.raises(ConnectionError):
        await rc.generation("p", "q")
    assert await rc.generation("p", "q") == 0
    assert grants.calls["generation"] == 2


async def test_a_cancelled_request_does_not_cancel_the_shared_read(grants, clock):
    rc = cache(grants, clock, 2.0)
    grants.gate = asyncio.Event()
    first = asyncio.ensure_future(rc.generation("p", "q"))
    second = asyncio.ensure_future(rc.generation("p", "q"))
    await settle()
    first.cancel()
    await settle()
    grants.gate.set()
    assert await second == 0
    assert grants.calls["generation"] == 1


# --- rate counting -------------------------------------------------------------------

async def test_zero_ttl_counts_exactly(grants, clock):
    uses = counter(grants, clock, 0)
    answers = [await uses.within("a", 5, clock()) for _ in range(8)]
    assert answers == [True] * 5 + [False] * 3


async def test_two_workers_share_the_count(grants, clock):
    one, two = counter(grants, clock, 0), counter(grants, clock, 0)
    answers = [await (one if i % 2 else two).within("a", 5, clock()) for i in range(8)]
    assert answers.count(True) == 5


async def test_a_new_minute_resets_the_count(grants, clock):
    uses = counter(grants, clock, 0)
    for _ in range(6):
        await uses.within("a", 5, clock())
    assert await uses.within("a", 5, clock()) is False
    clock.now += 60
    assert await uses.within("a", 5, clock()) is True


async def test_batched_counts_overshoot_by_at_most_one_batch(grants, clock):
    """A single busy token on one worker, counts flushed in batches."""
    uses = counter(grants, clock, 30.0)
    allowed = 0
    for _ in range(200):
        allowed += await uses.within("a", 5, clock())
        await settle()  # the background sends complete between requests
    assert grants.calls["count_uses"] >= 200 // RATE_FLUSH_EVERY
    assert 5 <= allowed <= 5 + RATE_FLUSH_EVERY


async def test_other_tokens_traffic_does_not_reset_a_tokens_count(grants, clock):
    """The docstring's bound ("overshoot by at most RATE_FLUSH_EVERY per
    worker") must hold whatever other tokens do on the same worker: a flush
    that carries no count for token A must not make the worker forget A's
    total."""
    uses = counter(grants, clock, 30.0)
    await uses.within("b", 10, clock())
    allowed = 0
    for _ in range(6):
        for _ in range(RATE_FLUSH_EVERY):
            allowed += await uses.within("a", 10, clock())
            await settle()
        for _ in range(RATE_FLUSH_EVERY):
            await uses.within("b", 10, clock())
            await settle()
    assert allowed <= 10 + RATE_FLUSH_EVERY, allowed


async def test_a_use_never_waits_for_the_store(grants, clock):
    """While a send is in flight (a slow store), uses are answered at once
    and counted locally; one send at a time; nothing is lost."""
    uses = counter(grants, clock, 2.0)
    grants.gate = asyncio.Event()
    answers = [await asyncio.wait_for(uses.within("a", 5, clock()), 1) for _ in range(60)]
    assert answers == [True] * 5 + [False] * 55  # uses in flight still count
    assert grants.calls["count_uses"] == 1
    grants.gate.set()
    await settle()
    await uses.drain()
    assert grants.counters == {("a", int(clock() // 60) * 60): 60}


async def test_a_failed_send_keeps_its_counts_for_the_next(grants, clock):
    uses = counter(grants, clock, 2.0)
    grants.fail = ConnectionError("store down")
    for _ in range(3 * RATE_FLUSH_EVERY):
        assert await uses.within("a", 1000, clock())
        await settle()
    assert grants.calls["count_uses"] == 1  # the failure: no retry within the ttl
    clock.now += 2.0
    await uses.within("a", 1000, clock())  # the retry carries every count
    await settle()
    assert grants.calls["count_uses"] == 2
    assert sum(grants.counters.values()) == 3 * RATE_FLUSH_EVERY + 1


async def test_other_workers_uses_arrive_with_the_next_send(grants, clock):
    one, two = counter(grants, clock, 2.0), counter(grants, clock, 2.0)
    for _ in range(RATE_FLUSH_EVERY):
        await one.within("a", 30, clock())
        await settle()
    await one.drain()
    answers = []
    for _ in range(RATE_FLUSH_EVERY + 1):
        answers.append(await two.within("a", 30, clock()))
        await settle()
    # two's first use sent at once and learned of one's 25: 5 more allowed
    assert answers.count(True) == 5


async def test_a_send_waits_for_a_batch_of_one_tokens_uses(grants, clock):
    """Many tokens each well under a batch: one send per ttl carries them all."""
    uses = counter(grants, clock, 2.0)
    for _ in range(RATE_FLUSH_EVERY - 1):
        for token in range(40):
            assert await uses.within(f"t{token}", 600, clock())
            await settle()
    # one send so far, at the very first use (nothing had been sent yet)
    assert grants.calls["count_uses"] == 1
    assert await uses.within("t0", 600, clock())  # t0: 24 unsent uses
    await settle()
    assert grants.calls["count_uses"] == 1
    assert await uses.within("t0", 600, clock())  # t0: 25, a batch
    await settle()
    assert grants.calls["count_uses"] == 2
    clock.now += 2.0
    await uses.within("t1", 600, clock())  # the ttl: whatever is unsent goes
    await settle()
    assert grants.calls["count_uses"] == 3
    await uses.drain()
    assert sum(grants.counters.values()) == 40 * (RATE_FLUSH_EVERY - 1) + 3


async def test_a_high_limit_batches_a_share_of_it(grants, clock):
    """Precision matters relative to the limit: with 100,000 a minute a batch
    is 1,000 uses, and the overshoot bound scales with it."""
    uses = counter(grants, clock, 30.0)
    for _ in range(1000):  # the first is sent at once, 999 unsent after it
        await uses.within("a", 100_000, clock())
        await settle()
    assert grants.calls["count_uses"] == 1
    await uses.within("a", 100_000, clock())
    await settle()
    assert grants.calls["count_uses"] == 2


async def test_store_calls_are_bounded_per_request(grants, clock):
    rc, uses = cache(grants, clock, 2.0), counter(grants, clock, 2.0)
    for _ in range(100):
        await rc.generation("p", "q")
        await rc.is_revoked("j")
        await uses.within("j", 10_000, clock())
        await settle()
    assert grants.calls["generation"] == 1
    assert grants.calls["revoked"] == 1
    assert grants.calls["count_uses"] <= 100 // RATE_FLUSH_EVERY + 1


# --- the key file -------------------------------------------------------------------

def _entry_secret(kid: str) -> str:
    return signing.generate_key_entry(kid, state="verify").split(":", 2)[2]


class Ring:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.secrets = {kid: _entry_secret(kid) for kid in ("k1", "k2")}
        self.mtime_ns = 1_000_000_000_000_000_000

    def write(self, **states: str) -> None:
        self.path.write_text("".join(f"{k}:{s}:{self.secrets[k]}\n"
                                     for k, s in states.items()))
        self.mtime_ns += 10**9
        os.utime(self.path, ns=(self.mtime_ns, self.mtime_ns))


def key_source(path: pathlib.Path, clock: Clock, ttl: float) -> KeySource:
    base = load_settings(env={})
    settings = dataclasses.replace(base.signing, keys_file=str(path),
                                   revocation_cache_ttl=ttl)
    return KeySource(settings, clock)


async def test_key_file_is_rechecked_at_most_every_ttl_and_retire_applies(tmp_path,
                                                                        clock):
    ring = Ring(tmp_path / "keys")
    ring.write(k1="active")
    keys = key_source(ring.path, clock, 2.0)
    token, grant = keys.signer().mint("p", "q", ["read"], now=clock(), ttl=600)
    assert keys.verify("query", f"k1:{token}", clock()).grant.jti == grant.jti
    ring.write(k2="active", k1="retired")
    clock.now += 2.0
    with pytest.raises(signing.InvalidToken):
        keys.verify("query", f"k1:{token}", clock())
    assert keys.signer().mint("p", "q", ["read"], now=clock())[1].kid == "k2"


async def test_verified_token_cache_still_checks_time(tmp_path, clock):
    ring = Ring(tmp_path / "keys")
    ring.write(k1="active")
    keys = key_source(ring.path, clock, 2.0)
    token, grant = keys.signer().mint("p", "q", ["read"], now=clock(), ttl=60)
    keys.verify("query", f"k1:{token}", clock())  # cached now
    clock.now += 60
    with pytest.raises(signing.InvalidToken):
        keys.verify("query", f"k1:{token}", clock())


async def test_verified_cache_is_keyed_by_the_text_presented(tmp_path, clock):
    """A cached credential skips parsing only for the exact text verified:
    any other spelling of it is parsed (and refused) afresh."""
    ring = Ring(tmp_path / "keys")
    ring.write(k1="active")
    keys = key_source(ring.path, clock, 2.0)
    token, grant = keys.signer().mint("p", "q", ["read"], now=clock(), ttl=600)
    first = keys.verify("header", f"Signed k1:{token}", clock())
    assert (first.kid, first.grant) == ("k1", grant)
    assert keys.verify("header", f"Signed k1:{token}", clock()) is first  # cached
    for source, text in [("header", f"Signed  k1:{token}"), ("header", f"Signed k1:{token} "),
                         ("header", f"Bearer k1:{token}"), ("query", f"Signed k1:{token}"),
                         ("query", f"k1:{token}x")]:
        with pytest.raises(signing.InvalidToken):
            keys.verify(source, text, clock())


async def test_unreadable_key_file_keeps_the_old_ring(tmp_path, clock):
    ring = Ring(tmp_path / "keys")
    ring.write(k1="active")
    keys = key_source(ring.path, clock, 0)
    token, _ = keys.signer().mint("p", "q", ["read"], now=clock(), ttl=600)
    ring.path.write_text("k1:active:changemechangemechangemechangeme\n")
    ring.mtime_ns += 10**9
    os.utime(ring.path, ns=(ring.mtime_ns, ring.mtime_ns))
    assert keys.verify("query", f"k1:{token}", clock()).grant.queue == "q"
    ring.path.unlink()
    assert keys.verify("query", f"k1:{token}", clock()).grant.queue == "q"


# --- shutdown -----------------------------------------------------------------------

async def test_worker_shutdown_sends_the_last_counts_before_the_store_closes(tmp_path):
    """Counts still pending when a worker stops reach the store: the app's
    lifespan shutdown drains them before ``Lifecycle`` closes the store."""
    ring = Ring(tmp_path / "keys")
    ring.write(k1="active")
    base = load_settings(env={})
    settings = dataclasses.replace(base, signing=dataclasses.replace(
        base.signing, keys_file=str(ring.path), revocation_cache_ttl=30.0))
    uri = f"sqlite:///{tmp_path}/q.db"
    driver = load_driver(uri)
    events: list[str] = []
    close, count_uses = driver.close, driver.grants.count_uses

    async def recorded_close() -> None:
        events.append("close")
        await close()

    async def recorded_count_uses(counts, window):
        events.append(f"count {sum(counts.values())}")
        return await count_uses(counts, window)

    driver.close = recorded_close
    driver.grants.count_uses = recorded_count_uses
    app = create_app(settings, driver)
    signer = KeySource(settings.signing, time.time).signer()
    token, grant = signer.mint("p", "q", ["read"], now=time.time(), ttl=600)
    async with falcon.testing.ASGIConductor(app) as conductor:  # lifespan on
        for _ in range(5):
            result = await conductor.simulate_get(
                "/v2/queues/q/messages", headers={"Authorization": f"Signed k1:{token}"})
            assert result.status_code in (200, 204), result.text
    # the first use is sent at once (no send yet), the other four at shutdown
    assert events == ["count 1", "count 4", "close"]
    reopened = load_driver(uri)
    try:
        assert await reopened.grants.count_uses({grant.jti: 0}, 60) == {grant.jti: 5}
    finally:
        await reopened.close()
