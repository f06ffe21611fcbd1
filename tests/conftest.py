"""Shared fixtures.

``driver`` is parametrised over every storage driver: each parameter builds
only its own backend through the ``<name>_driver`` fixture defined in
``tests/fixtures/<name>.py``. Backend servers are real processes on free
ports; a fixture skips when its server cannot run here, and fails instead when
the ``CI`` environment variable is set.
"""

from __future__ import annotations

import pytest

from tests.fixtures.mongodb import mongodb_driver, mongodb_server  # noqa: F401
from tests.fixtures.redis import redis_driver, redis_server, redis_server_factory  # noqa: F401,E501
from tests.fixtures.sqlite import sqlite_driver  # noqa: F401

DRIVERS = ["sqlite", "mongodb", "redis"]


@pytest.fixture(params=DRIVERS)
def driver_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def driver(request: pytest.FixtureRequest, driver_name: str):
    return request.getfixturevalue(f"{driver_name}_driver")
