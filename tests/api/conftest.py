"""Fixtures for the HTTP contract suite (zaqar-v2-api.md §1-§3).

Every test talks to the real ASGI app over ``falcon.testing.ASGIConductor``
inside the test's own event loop, so it shares the loop with the async
``driver`` fixture (parametrised over every storage driver). The conductor is
used without ``async with``: no lifespan events are sent, so the app never
closes the driver behind the driver fixture's back.

``Api`` adds Zaqar's default headers (a fresh ``Client-ID`` and a per-test
project) and asserts that **no response is ever a 5xx**: client mistakes must
never produce one, and the suite never provokes a storage outage.
"""

from __future__ import annotations

import dataclasses
import json as jsonlib
import time
import uuid
from typing import Any

import falcon.testing
import pytest
import time_machine

from queues.api.app import create_app
from queues.config import Settings, load_settings

PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"
RESERVED_DEFAULTS = {
    "_max_messages_post_size": 262144,
    "_default_message_ttl": 3600,
    "_default_message_delay": 0,
    "_dead_letter_queue": None,
    "_dead_letter_queue_messages_ttl": None,
    "_max_claim_count": None,
    "_enable_encrypt_messages": False,
}

_UNSET = object()


class Api:
    """A Zaqar v2 HTTP client over the ASGI app.

    ``headers`` given to a call override the defaults; a value of ``None``
    removes that header from the request.
    """

    def __init__(self, app, *, client_id: str, project: str,
                 check_5xx: bool = True) -> None:
        self.app = app
        self.client_id = client_id
        self.project = project
        self.check_5xx = check_5xx
        self.headers = {"client-id": client_id, "x-project-id": project}
        self._conductor = falcon.testing.ASGIConductor(app)

    async def request(self, method: str, path: str, *, headers: dict | None = None,
                      json: Any = _UNSET, body: str | bytes | None = None,
                      params: dict | None = None) -> falcon.testing.Result:
        merged = dict(self.headers)
        for name, value in (headers or {}).items():
            merged[name.lower()] = value
        merged = {k: v for k, v in merged.items() if v is not None}
        kwargs: dict[str, Any] = {"headers": merged}
        if json is not _UNSET:
            kwargs["body"] = jsonlib.dumps(json)
            merged.setdefault("content-type", "application/json")
        elif body is not None:
            kwargs["body"] = body
        if params is not None:
            kwargs["params"] = params
        result = await self._conductor.simulate_request(method, path, **kwargs)
        if self.check_5xx:
            assert result.status_code < 500, (
                f"{method} {path} answered {result.status}: {result.text[:500]}")
        return result

    async def get(self, path: str, **kw) -> falcon.testing.Result:
        return await self.request("GET", path, **kw)

    async def head(self, path: str, **kw) -> falcon.testing.Result:
        return await self.request("HEAD", path, **kw)

    async def put(self, path: str, **kw) -> falcon.testing.Result:
        return await self.request("PUT", path, **kw)

    async def post(self, path: str, **kw) -> falcon.testing.Result:
        return await self.request("POST", path, **kw)

    async def patch(self, path: str, **kw) -> falcon.testing.Result:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw) -> falcon.testing.Result:
        return await self.request("DELETE", path, **kw)

    async def options(self, path: str, **kw) -> falcon.testing.Result:
        return await self.request("OPTIONS", path, **kw)

    # -- small, asserting helpers for test set-up -------------------------

    async def create_queue(self, name: str, metadata: dict | None = None) -> None:
        result = await self.put(f"/v2/queues/{name}",
                                **({"json": metadata} if metadata is not None else {}))
        assert result.status_code == 201, result.text

    async def post_messages(self, queue: str, *messages: dict,
                            headers: dict | None = None) -> list[str]:
        """Post full message documents; returns their ids in order."""
        result = await self.post(f"/v2/queues/{queue}/messages",
                                 json={"messages": list(messages)}, headers=headers)
        assert result.status_code == 201, result.text
        return [href.rsplit("/", 1)[1] for href in result.json["resources"]]

    async def post_bodies(self, queue: str, *bodies: Any, ttl: int = 300,
                          headers: dict | None = None) -> list[str]:
        return await self.post_messages(
            queue, *({"body": b, "ttl": ttl} for b in bodies), headers=headers)

    async def claim(self, queue: str, *, ttl: int = 60, grace: int = 60,
                    limit: int | None = None) -> tuple[str, list[dict]]:
        """Create a claim that must succeed; returns (claim id, messages)."""
        params = {"limit": limit} if limit is not None else None
        result = await self.post(f"/v2/queues/{queue}/claims",
                                 json={"ttl": ttl, "grace": grace}, params=params)
        assert result.status_code == 201, result.text
        return result.headers["location"].rsplit("/", 1)[1], result.json["messages"]

    async def list_messages(self, queue: str, **params: Any) -> dict:
        params = {k: str(v).lower() if isinstance(v, bool) else v
                  for k, v in params.items()}
        result = await self.get(f"/v2/queues/{queue}/messages", params=params or None)
        assert result.status_code == 200, result.text
        return result.json

    async def stats(self, queue: str) -> dict:
        result = await self.get(f"/v2/queues/{queue}/stats")
        assert result.status_code == 200, result.text
        return result.json["messages"]


def make_settings(*, api: dict | None = None, **transport: Any) -> Settings:
    base = load_settings(env={})
    return dataclasses.replace(
        base,
        transport=dataclasses.replace(base.transport, **transport),
        api=dataclasses.replace(base.api, **(api or {})))


@pytest.fixture
def project() -> str:
    return f"proj-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_client(driver, project):
    """``make_client(api={...}, **transport_overrides)`` → a fresh ``Api``."""

    def make(*, api: dict | None = None, **transport: Any) -> Api:
        app = create_app(make_settings(api=api, **transport), driver)
        return Api(app, client_id=uuid.uuid4().hex, project=project)

    return make


@pytest.fixture
def client(make_client) -> Api:
    return make_client()


@pytest.fixture
def clock():
    """Frozen time (whole second) that tests move with ``clock.shift(n)``."""
    with time_machine.travel(float(int(time.time())), tick=False) as traveller:
        yield traveller
