"""Fixtures for credential rotation: real signing keys, the real API
(``create_app`` over the parametrised ``driver``) and a Rotator built by
``queues.rotation.service.build`` (the same start-up checks as the CLI).

``RotationEnv.use(url)`` makes a request the way a VM does: with nothing but
the URL from its document (no Client-ID, no project header).
"""

from __future__ import annotations

import dataclasses
import json as jsonlib
import pathlib
import time
import urllib.parse
import uuid
from typing import Any

import falcon.testing
import pytest
import time_machine
import yaml

import signing
from queues.api.app import create_app
from queues.config import Settings, load_settings
from queues.rotation import service
from queues.rotation.daemon import Rotator
from queues.rotation.ledger import Ledger
from queues.rotation.template import Target

PUBLIC_URL = "http://mailslot.test"


def rotation_settings(keys_file: pathlib.Path, **sections: dict[str, Any]) -> Settings:
    """Defaults with keys, a public URL and no revocation caching, plus
    per-section overrides: ``rotation_settings(p, rotation={...})``."""
    base = load_settings(env={})
    signing_values = {"keys_file": str(keys_file), "public_url": PUBLIC_URL,
                      "revocation_cache_ttl": 0.0, **sections.pop("signing", {})}
    changes = {"signing": dataclasses.replace(base.signing, **signing_values)}
    for name, values in sections.items():
        changes[name] = dataclasses.replace(getattr(base, name), **values)
    return dataclasses.replace(base, **changes)


def template_document(project: str, targets: list[dict], **timing: int) -> dict:
    return {"version": 1, "kind": "credential-rotation", "project": project,
            "defaults": timing or {"ttl": 60, "rotate_before": 20, "min_overlap": 5},
            "targets": targets}


class RotationEnv:
    """One API app and one Rotator over the test's store."""

    def __init__(self, driver, project: str, settings: Settings,
                 targets: list[Target]) -> None:
        self.driver = driver
        self.project = project
        self.settings = settings
        self.targets = {t.name: t for t in targets}
        self.app = create_app(settings, driver)
        self.conductor = falcon.testing.ASGIConductor(self.app)
        self.rotator = self.new_rotator()

    def new_rotator(self) -> Rotator:
        return service.build(self.settings, self.driver, list(self.targets.values()),
                             PUBLIC_URL)

    async def use(self, url: str, method: str = "POST", *, json: Any = None
                  ) -> falcon.testing.Result:
        """A request with nothing but a document's URL (``method`` on its path)."""
        parts = urllib.parse.urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL
        kwargs: dict[str, Any] = {"query_string": parts.query, "headers": {}}
        if method == "POST" and json is None:
            json = {"messages": [{"body": {"heartbeat": True}, "ttl": 60}]}
        if json is not None:
            kwargs["body"] = jsonlib.dumps(json)
            kwargs["headers"]["Content-Type"] = "application/json"
        result = await self.conductor.simulate_request(method, parts.path, **kwargs)
        assert result.status_code < 500, (result.status, result.text[:300])
        return result

    async def post_with(self, grant: dict) -> int:
        return (await self.use(grant["url"])).status_code

    async def documents(self, credentials: dict) -> list[tuple[str, dict]]:
        """(message id, document) on the credentials queue, read as the VM does."""
        result = await self.use(credentials["url"], "GET")
        if result.status_code == 204:
            return []
        assert result.status_code == 200, (result.status, result.text)
        return [(m["id"], m["body"]) for m in result.json["messages"]]

    async def ack(self, credentials: dict, message_id: str) -> int:
        parts = urllib.parse.urlsplit(credentials["url"])
        url = f"{PUBLIC_URL}{parts.path}/{message_id}?{parts.query}"
        return (await self.use(url, "DELETE")).status_code

    async def ledger(self, name: str) -> Ledger:
        return await self.rotator.ledger(self.targets[name])

    async def queue_bodies(self, queue: str) -> list[dict]:
        page = await self.driver.messages.list(
            self.project, queue, limit=20, echo=True, include_claimed=True)
        return [jsonlib.loads(m.body_json) for m in page.items]

    async def alerts(self) -> list[dict]:
        return await self.queue_bodies("rotation.alerts")


@pytest.fixture
def clock():
    """Frozen time (whole second) that tests move with ``clock.shift(n)``."""
    with time_machine.travel(float(int(time.time())), tick=False) as traveller:
        yield traveller


@pytest.fixture
def keys_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "signing.keys"
    path.write_text(signing.generate_key_entry("k1", state="active") + "\n")
    return path


@pytest.fixture
def rotation_project() -> str:
    return f"rot-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_env(driver, rotation_project, keys_file, tmp_path):
    """``make_env(targets, timing={...}, **settings_sections)`` -> RotationEnv."""

    def make(targets: list[dict], timing: dict | None = None,
             **sections: dict[str, Any]) -> RotationEnv:
        sections.setdefault("rotation", {"check_interval": 1.0})
        settings = rotation_settings(keys_file, **sections)
        directory = tmp_path / f"templates-{uuid.uuid4().hex[:6]}"
        directory.mkdir()
        (directory / "t.yaml").write_text(yaml.safe_dump(
            template_document(rotation_project, targets, **(timing or {}))))
        loaded = service.load_targets(settings, str(directory))
        return RotationEnv(driver, rotation_project, settings, loaded)

    return make
