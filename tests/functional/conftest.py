"""Functional tests: the real ``mailslot serve`` driven over HTTP on 127.0.0.1.

Every test gets servers from ``mailslot_server_factory`` (see
``tests/fixtures/server.py``), which always terminates them. Tests are
parametrised over ``STORES``: SQLite always, Redis/MongoDB when their URIs are
configured. Every test here is marked ``slow`` (real processes; see the
marker in pyproject.toml), so ``-m "not slow"`` skips the whole directory.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from tests.fixtures.mongodb import controlled_mongodb_server  # noqa: F401
from tests.fixtures.server import (  # noqa: F401
    MONGODB_ENV, STORES, MailslotServer, mailslot_server_factory, store_uri_for,
)

HERE = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=STORES)
def store_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_uri(request: pytest.FixtureRequest, store_name: str,
              tmp_path: pathlib.Path) -> str:
    return store_uri_for(store_name, tmp_path / "store", request)


@pytest.fixture
def killing_store_uri(request: pytest.FixtureRequest, store_name: str,
                      tmp_path: pathlib.Path) -> str:
    """The parametrised store for a test that ``kill -9``s Mailslot processes:
    MongoDB on a server of the test's own (unless MONGODB_URI names one).

    A killed process leaves its open transactions on the MongoDB server until
    it reaps them (60 s, as mongod's transactionLifetimeLimitSeconds); they pin
    a storage snapshot meanwhile, which slows every other user of that server.
    Request it before ``mailslot_server_factory``: the private server must
    outlive the factory's teardown, which wipes the store.
    """
    if store_name == "mongodb" and not os.environ.get(MONGODB_ENV):
        return request.getfixturevalue("controlled_mongodb_server").uri
    return store_uri_for(store_name, tmp_path / "store", request)


@pytest.fixture
def server(mailslot_server_factory, store_uri: str) -> MailslotServer:  # noqa: F811
    """A started two-worker server on the parametrised store."""
    return mailslot_server_factory(store_uri, workers=2)
