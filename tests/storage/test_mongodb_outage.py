"""MongoDB outage: a stopped server answers StorageUnavailable within the
timeout, and the same driver works again once the server is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from queues.errors import StorageUnavailable
from tests.fixtures.mongodb import controlled_mongodb_server  # noqa: F401
from tests.fixtures.mongodb import database_name, make_driver
from tests.storage.helpers import P, bodies, post

pytestmark = pytest.mark.slow

TIMEOUT = 2.0
MARGIN = 1.5
RECOVERY = 30.0


async def test_outage_and_recovery(controlled_mongodb_server):
    server = controlled_mongodb_server
    driver = make_driver(server.uri, namespace=database_name(), timeout=TIMEOUT)
    try:
        [kept] = await post(driver, "q1", "before")
        assert await driver.is_alive()

        server.stop()
        calls = {
            "post": lambda: post(driver, "q1", "during"),
            "list": lambda: driver.messages.list(P, "q1", echo=True),
            "get": lambda: driver.messages.get(P, "q1", kept),
            "claim": lambda: driver.claims.create(P, "q1", ttl=60, grace=60, limit=5),
            "stats": lambda: driver.queues.stats(P, "q1"),
            "queues": lambda: driver.queues.list(P),
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                await call()
            elapsed = time.monotonic() - started
            print(f"{name}: StorageUnavailable after {elapsed:.2f}s")
            assert elapsed < TIMEOUT + MARGIN, (name, elapsed)
        started = time.monotonic()
        assert await driver.is_alive() is False
        assert time.monotonic() - started < TIMEOUT + MARGIN

        server.start()  # same port, same data directory
        started = time.monotonic()
        while not await driver.is_alive():
            assert time.monotonic() < started + RECOVERY, "driver did not reconnect"
            await asyncio.sleep(0.2)
        print(f"reconnected {time.monotonic() - started:.2f}s after the restart")
        await post(driver, "q1", "after")
        page = await driver.messages.list(P, "q1", echo=True)
        assert bodies(page.items) == ["before", "after"]
        claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
        assert [m.id for m in claim.messages][0] == kept
    finally:
        if await driver.is_alive():
            await driver.wipe()
        await driver.close()


async def test_hung_server_times_out_then_recovers(controlled_mongodb_server):
    """A server that accepts connections but never answers (SIGSTOP) must not
    hang callers: the client-side operation timeout ends every call."""
    server = controlled_mongodb_server
    driver = make_driver(server.uri, namespace=database_name(), timeout=TIMEOUT)
    try:
        [kept] = await post(driver, "q1", "before")
        server.pause()
        try:
            for name, call in {
                "get": lambda: driver.messages.get(P, "q1", kept),
                "post": lambda: post(driver, "q1", "during"),
                "claim": lambda: driver.claims.create(P, "q1", ttl=60, grace=60,
                                                      limit=5),
            }.items():
                started = time.monotonic()
                with pytest.raises(StorageUnavailable):
                    await call()
                elapsed = time.monotonic() - started
                print(f"{name}: StorageUnavailable after {elapsed:.2f}s")
                assert elapsed < TIMEOUT + MARGIN, (name, elapsed)
            assert await driver.is_alive() is False
        finally:
            server.resume()
        started = time.monotonic()
        while not await driver.is_alive():
            assert time.monotonic() < started + RECOVERY, "driver did not recover"
            await asyncio.sleep(0.2)
        assert (await driver.messages.get(P, "q1", kept)).id == kept
        # The post cut off by the timeout must not leave the queue blocked.
        started = time.monotonic()
        await post(driver, "q1", "after")
        print(f"post after recovery took {time.monotonic() - started:.2f}s")
    finally:
        if await driver.is_alive():
            await driver.wipe()
        await driver.close()
