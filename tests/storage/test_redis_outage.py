"""Redis driver: an outage is StorageUnavailable within the timeout, and the
same driver instance works again once Redis is back."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from queues.errors import StorageUnavailable
from queues.storage import load_driver
from tests.fixtures.redis import unique_namespace
from tests.storage.helpers import P, bodies, post

TIMEOUT = 1.0
MARGIN = 0.5


def _operations(driver):
    return {
        "post": lambda: post(driver, "q1", "x"),
        "claim": lambda: driver.claims.create(P, "q1", ttl=60, grace=60, limit=5),
        "list": lambda: driver.messages.list(P, "q1", echo=True),
        "get": lambda: driver.messages.get(P, "q1", "some-id"),
        "delete": lambda: driver.messages.delete(P, "q1", "some-id"),
        "stats": lambda: driver.queues.stats(P, "q1"),
        "create": lambda: driver.queues.create(P, "q2"),
        "exists": lambda: driver.queues.exists(P, "q1"),
        "queues": lambda: driver.queues.list(P),
        "count": lambda: driver.queues.count(P),
        "generation": lambda: driver.grants.generation(P, "q1"),
    }


async def _assert_unavailable_quickly(driver, names=None) -> None:
    for name, operation in _operations(driver).items():
        if names is not None and name not in names:
            continue
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await operation()
        elapsed = time.monotonic() - started
        assert elapsed < TIMEOUT + MARGIN, (name, elapsed)
    started = time.monotonic()
    assert await driver.is_alive() is False
    assert time.monotonic() - started < TIMEOUT + MARGIN


@pytest.mark.slow
async def test_stopped_server_then_restart(redis_server_factory):
    server = redis_server_factory()
    driver = load_driver(server.uri, namespace=unique_namespace(), timeout=TIMEOUT,
                         options={"sweep_interval": "0"})
    try:
        await post(driver, "q1", "before")
        assert await driver.is_alive()
        server.stop()
        await _assert_unavailable_quickly(driver)

        server.start()  # same port; no persistence, so the data is gone
        assert await driver.is_alive()
        await post(driver, "q1", "after")
        page = await driver.messages.list(P, "q1", echo=True)
        assert bodies(page.items) == ["after"]
    finally:
        await driver.close()


@pytest.mark.slow
async def test_hung_server_times_out_then_recovers(redis_server_factory):
    """A server that accepts connections but never answers (SIGSTOP)."""
    server = redis_server_factory()
    driver = load_driver(server.uri, namespace=unique_namespace(), timeout=TIMEOUT,
                         options={"sweep_interval": "0"})
    try:
        await post(driver, "q1", "before")
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            # Each call waits out the timeout here, so only the hot paths.
            await _assert_unavailable_quickly(driver, {"post", "claim", "list"})
            # Several callers at once: each is bounded, none hangs.
            started = time.monotonic()
            results = await asyncio.gather(
                *(post(driver, "q1", i) for i in range(5)), return_exceptions=True)
            assert all(isinstance(r, StorageUnavailable) for r in results)
            assert time.monotonic() - started < TIMEOUT + MARGIN
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert await driver.is_alive()
        page = await driver.messages.list(P, "q1", echo=True, limit=20)
        assert bodies(page.items)[0] == "before"
    finally:
        await driver.wipe()
        await driver.close()
