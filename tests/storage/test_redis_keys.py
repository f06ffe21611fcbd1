"""Redis driver: key layout, namespacing, URIs, round trips per call."""

from __future__ import annotations

import re

import pytest
import redis.asyncio
from redis.crc import key_slot

from queues.errors import ConfigError
from queues.storage import load_driver
from queues.storage.redis import parse_sentinel_uri
from queues.storage.redis.keys import Keys
from queues.storage.redis.pipeline import AutoPipeline
from tests.fixtures.redis import unique_namespace
from tests.storage.helpers import P, bodies, post

QUEUE_KEY = re.compile(r"^(?P<ns>[^:]+):q:\{(?P<tag>[^{}]*)\}:(?P<part>[a-z_]+)$")
PROJECT_KEY = re.compile(r"^(?P<ns>[^:]+):p:\{(?P<tag>[^{}]*)\}:(?:queues|metadata)$")


async def _all_keys(driver) -> list[str]:
    return sorted([k.decode() async for k in driver.client.scan_iter(count=1000)])


async def _populate(driver) -> None:
    await driver.queues.create(P, "dlq")
    await driver.queues.create(P, "a.b", {"_max_claim_count": 1,
                                          "_dead_letter_queue": "dlq"})
    await post(driver, "a.b", 1, 2, 3)
    await post(driver, "a.b", "later", delay=60)
    claim = await driver.claims.create(P, "a.b", ttl=60, grace=60, limit=1)
    await driver.claims.release(P, "a.b", claim.id)
    await driver.claims.create(P, "a.b", ttl=60, grace=60, limit=2)  # moves one
    await post(driver, "c", 1, project="other/proj{x}:y")


async def test_every_key_is_namespaced_and_one_slot_per_queue(redis_driver):
    await _populate(redis_driver)
    ns = redis_driver.keys.prefix[:-1]
    keys = [k for k in await _all_keys(redis_driver) if k.startswith(ns + ":")]
    assert keys, "nothing written"
    tags: dict[str, set[int]] = {}
    for key in keys:
        match = QUEUE_KEY.match(key) or PROJECT_KEY.match(key)
        namespaced = {f"{ns}:registry", f"{ns}:tokens:revoked", f"{ns}:tokens:used"}
        assert match or key in namespaced or key.startswith(f"{ns}:rate:"), key
        if match:
            tags.setdefault(match["tag"], set()).add(key_slot(key.encode()))
    # One Cluster slot per queue (and per project index).
    assert all(len(slots) == 1 for slots in tags.values()), tags
    assert {"proj/a.b", "proj/dlq", "other%2Fproj%7Bx%7D%3Ay/c"} <= set(tags)
    parts = {QUEUE_KEY.match(k)["part"] for k in keys if QUEUE_KEY.match(k)}
    assert {"info", "messages", "bodies", "records", "free", "delayed",
            "inflight", "expiry", "claims", "claim_expiry", "generation"} >= parts


async def test_dotted_and_odd_names_round_trip(redis_driver):
    odd = ["a.b", "a", "a_b", "a.b.c", "x-y", "%7B", "q:1"]
    for name in odd:
        await redis_driver.queues.create("p:{1}/2", name)
    page = await redis_driver.queues.list("p:{1}/2", limit=20)
    assert [q.name for q in page.items] == sorted(odd)
    await post(redis_driver, "a.b", "hello", project="p:{1}/2")
    assert bodies((await redis_driver.messages.list(
        "p:{1}/2", "a.b", echo=True)).items) == ["hello"]
    # No collision between a project/queue split and another one.
    assert not await redis_driver.queues.exists("p:{1}", "2/a.b")
    assert Keys.parse_member(Keys("ns").queue("p:{1}/2", "a.b").member) == (
        "p:{1}/2", "a.b")


async def test_wipe_touches_only_its_namespace(redis_server, redis_driver):
    other = load_driver(redis_server.uri, namespace=unique_namespace(), timeout=2)
    try:
        await post(other, "q1", "keep")
        await post(redis_driver, "q1", "drop")
        # A namespace that is a prefix of ours, and glob characters.
        tricky = load_driver(redis_server.uri, namespace=redis_driver.keys.prefix[:-2],
                             timeout=2)
        await post(tricky, "q1", "keep too")
        await redis_driver.wipe()
        assert not await redis_driver.queues.exists(P, "q1")
        assert await other.queues.exists(P, "q1")
        assert await tricky.queues.exists(P, "q1")
        await tricky.wipe()
        await tricky.close()
    finally:
        await other.wipe()
        await other.close()


async def test_glob_characters_in_namespace(redis_server):
    driver = load_driver(redis_server.uri, namespace=f"{unique_namespace()}*[?]",
                         timeout=2)
    neighbour = load_driver(redis_server.uri, namespace=driver.keys.prefix[:-5] + "x",
                            timeout=2)
    try:
        await post(driver, "q1", 1)
        await post(neighbour, "q1", 1)
        await driver.wipe()
        assert not await driver.queues.exists(P, "q1")
        assert await neighbour.queues.exists(P, "q1")
    finally:
        await neighbour.wipe()
        await neighbour.close()
        await driver.close()


async def test_hot_paths_take_one_round_trip(redis_driver, monkeypatch):
    """post, claim, list, get and delete-with-claim are one Redis call each
    (post's a MULTI/EXEC unit: the bodies' HSET and the script), whether
    sent through the auto pipeline or as a plain command."""
    calls: list[str] = []
    original = redis.asyncio.Redis.execute_command
    pipelined = AutoPipeline.execute

    async def counting(self, *args, **kwargs):
        calls.append(str(args[0]))
        return await original(self, *args, **kwargs)

    def counting_pipelined(self, packed, replies=1):
        calls.append(packed.split(b"\r\n")[2].decode())
        return pipelined(self, packed, replies)

    monkeypatch.setattr(redis.asyncio.Redis, "execute_command", counting)
    monkeypatch.setattr(AutoPipeline, "execute", counting_pipelined)
    await redis_driver.queues.create(P, "q1", {"_max_claim_count": 5,
                                               "_dead_letter_queue": "dlq"})
    d = redis_driver
    operations = {
        "post": lambda: post(d, "q1", 1, 2, 3),
        "claim": lambda: d.claims.create(P, "q1", ttl=60, grace=60, limit=2),
        "list": lambda: d.messages.list(P, "q1", echo=True, include_claimed=True),
        "get": lambda: d.messages.get(P, "q1", ids[2]),
    }
    ids: list[str] = []
    for attempt in range(2):  # the first pass loads the scripts into Redis
        for name, operation in operations.items():
            calls.clear()
            result = await operation()
            if name == "post":
                ids = result
            if name == "claim":
                claim = result
            if attempt:
                assert calls == ["MULTI" if name == "post" else "EVALSHA"], (name, calls)
    await d.messages.delete(P, "q1", "bogus", claim_id=claim.id)  # loads the script
    calls.clear()
    await d.messages.delete(P, "q1", claim.messages[0].id, claim_id=claim.id)
    assert calls == ["EVALSHA"]


async def test_hiredis_parser_is_used(redis_driver):
    await redis_driver.is_alive()
    connection = await redis_driver.client.connection_pool.get_connection()
    try:
        assert "Hiredis" in type(connection._parser).__name__
    finally:
        await redis_driver.client.connection_pool.release(connection)


async def test_unix_socket_uri(redis_server):
    driver = load_driver(f"unix://{redis_server.socket_path}?db=1",
                         namespace=unique_namespace(), timeout=2)
    try:
        await post(driver, "q1", "via socket")
        assert bodies((await driver.messages.list(P, "q1", echo=True)).items) == [
            "via socket"]
        assert driver.client.connection_pool.connection_kwargs["db"] == 1
    finally:
        await driver.wipe()
        await driver.close()


def test_sentinel_uri_parsing():
    parsed = parse_sentinel_uri(
        "redis+sentinel://:s%40cret@10.0.0.1:26380,[::1],h3:1/mymaster/3")
    assert parsed == {
        "sentinels": [("10.0.0.1", 26380), ("::1", 26379), ("h3", 1)],
        "service": "mymaster", "db": 3, "username": None, "password": "s@cret",
    }
    assert parse_sentinel_uri("redis+sentinel://h:26379/svc")["db"] == 0
    for bad in ("redis+sentinel://h:1", "redis+sentinel://h:x/svc",
                "redis+sentinel://h:1/svc/a", "redis+sentinel://h:1/svc?x=1"):
        with pytest.raises(ConfigError):
            parse_sentinel_uri(bad)


def test_options_and_bad_uris():
    # The app passes every driver the same options; MongoDB's are ignored.
    driver = load_driver("redis://127.0.0.1:1/0", options={
        "write_concern": "majority", "read_preference": "primary",
        "max_connections": "7", "sweep_interval": "0"})
    assert driver.client.connection_pool.max_connections == 7
    assert driver.sweep_interval == 0
    with pytest.raises(ConfigError):
        load_driver("redis://127.0.0.1:1/0", options={"max_connections": "many"})
    for uri in ("redis://127.0.0.1:1/x", "redis://127.0.0.1:port/0", "unix://",
                "redis://127.0.0.1:/0"):
        with pytest.raises(ConfigError):
            load_driver(uri)


async def test_rediss_uri_selects_tls():
    driver = load_driver("rediss://127.0.0.1:1/0", timeout=0.5)
    try:
        assert "SSL" in driver.client.connection_pool.connection_class.__name__
        assert not await driver.is_alive()
    finally:
        await driver.close()


async def test_sentinel_managed_primary(redis_server, redis_server_factory):
    """A real Sentinel watching the session server hands the driver its address."""
    sentinel = redis_server_factory(
        "--sentinel",
        config=f"sentinel monitor primary1 127.0.0.1 {redis_server.port} 1\n")
    driver = load_driver(f"redis+sentinel://127.0.0.1:{sentinel.port}/primary1/0",
                         namespace=unique_namespace(), timeout=2)
    try:
        await post(driver, "q1", "through sentinel")
        assert bodies((await driver.messages.list(P, "q1", echo=True)).items) == [
            "through sentinel"]
    finally:
        await driver.wipe()
        await driver.close()
