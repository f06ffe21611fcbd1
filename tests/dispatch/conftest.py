"""Shared by the dispatcher tests: every test runs on each store that has an
outbox, with a guarded HTTP client that may reach 127.0.0.1 only."""

from __future__ import annotations

import pytest

from subscriptions.http import make_client
from tests.unit.subscriptions.conftest import http_sink, loopback_guard  # noqa: F401


@pytest.fixture(autouse=True)
def _needs_outbox(driver):
    if not hasattr(driver, "jobs"):
        pytest.skip("this driver has no subscriptions yet")


@pytest.fixture
async def client():
    async with make_client(loopback_guard(), connect_timeout=1.0,
                           read_timeout=1.0) as http:
        yield http
