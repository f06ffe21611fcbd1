"""The per-worker caches behind signed URLs (``queues/api/signed.py``).

``RevocationCache`` and ``KeySource`` trade freshness for fewer store calls:
revocation state and key-file changes may be seen up to
``signing.revocation_cache_ttl`` seconds late, never later, and rate counts
reach the store in batches with a bounded overshoot. These tests pin those
bounds with a fake clock and an in-memory store that counts its calls.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import types

import pytest

import signing
from queues.api.signed import RATE_FLUSH_EVERY, KeySource, RevocationCache
from queues.config import load_settings


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

    async def generation(self, project: str, queue: str) -> int:
        self.calls["generation"] += 1
        return self.generations.get((project, queue), 0)

    async def revoked(self, jtis):
        self.calls["revoked"] += 1
        return {j for j in jtis if j in self.denied}

    async def count_uses(self, counts: dict[str, int], window: int) -> dict[str, int]:
        self.calls["count_uses"] += 1
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


# --- revocation state: stale for at most ttl ---------------------------------------

async def test_generation_is_cached_for_at_most_the_ttl(grants, clock):
    rc = cache(grants, clock, 2.0)
    assert await rc.generation("p", "q") == 0
    grants.generations[("p", "q")] = 1
    clock.now += 1.999
    for _ in range(50):
        await rc.generation("p", "q")
    assert grants.calls["generation"] == 1  # one store read for 51 requests
    clock.now += 0.001  # exactly ttl after the read
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


# --- rate counting -------------------------------------------------------------------

async def test_zero_ttl_counts_exactly(grants, clock):
    rc = cache(grants, clock, 0)
    answers = [await rc.within_rate("a", 5, clock()) for _ in range(8)]
    assert answers == [True] * 5 + [False] * 3


async def test_two_workers_share_the_count(grants, clock):
    one, two = cache(grants, clock, 0), cache(grants, clock, 0)
    answers = [await (one if i % 2 else two).within_rate("a", 5, clock()) for i in range(8)]
    assert answers.count(True) == 5


async def test_a_new_minute_resets_the_count(grants, clock):
    rc = cache(grants, clock, 0)
    for _ in range(6):
        await rc.within_rate("a", 5, clock())
    assert await rc.within_rate("a", 5, clock()) is False
    clock.now += 60
    assert await rc.within_rate("a", 5, clock()) is True


async def test_batched_counts_overshoot_by_at_most_one_batch(grants, clock):
    """A single busy token on one worker, counts flushed in batches."""
    rc = cache(grants, clock, 30.0)
    allowed = sum([await rc.within_rate("a", 5, clock()) for _ in range(200)])
    assert 5 <= allowed <= 5 + RATE_FLUSH_EVERY


async def test_other_tokens_traffic_does_not_reset_a_tokens_count(grants, clock):
    """The docstring's bound ("overshoot by at most RATE_FLUSH_EVERY per
    worker") must hold whatever other tokens do on the same worker: a flush
    that carries no count for token A must not make the worker forget A's
    total."""
    rc = cache(grants, clock, 30.0)
    await rc.within_rate("b", 10, clock())
    allowed = 0
    for _ in range(6):
        for _ in range(RATE_FLUSH_EVERY):
            allowed += await rc.within_rate("a", 10, clock())
        for _ in range(RATE_FLUSH_EVERY):
            await rc.within_rate("b", 10, clock())
    assert allowed <= 10 + RATE_FLUSH_EVERY, allowed


async def test_store_calls_are_bounded_per_request(grants, clock):
    rc = cache(grants, clock, 2.0)
    for _ in range(100):
        await rc.generation("p", "q")
        await rc.is_revoked("j")
        await rc.within_rate("j", 10_000, clock())
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
