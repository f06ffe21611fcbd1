"""The rotation daemon's passes on every store, against the real API, with a
frozen clock moved by hand (``clock.shift``).

Timing in these tests (template defaults): ttl 60, rotate_before 20,
min_overlap 5, so generation 1 issued at t0 expires at t0+60, is re-issued
by the first pass after t0+40, and its pickup deadline is t0+55.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import re
import stat
import time

import pytest

from queues.errors import ConfigError
from queues.rotation import service
from queues.rotation.delivery import write_atomically
from tests.fixtures.receiver import receiver_factory  # noqa: F401
from tests.rotation.conftest import rotation_settings


def vm(name: str = "vm-1", directory: pathlib.Path | None = None,
       queue: bool = True, **extra) -> dict:
    deliver = [{"kind": "queue"}] if queue else []
    if directory is not None:
        deliver.append({"kind": "file", "path": str(directory / f"{name}.json")})
    return {"name": name, "grants": [{"queue": "events", "ops": ["post"]}],
            "deliver": deliver, **extra}


def read(directory: pathlib.Path, name: str = "vm-1") -> dict:
    return json.loads((directory / f"{name}.json").read_text())


async def test_first_pass_issues_and_delivers_to_queue_and_file(make_env, tmp_path,
                                                                clock, caplog):
    caplog.set_level(logging.DEBUG)
    env = make_env([vm(directory=tmp_path)])
    assert (await env.rotator.run_pass()).issued == 1

    path = tmp_path / "vm-1.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = read(tmp_path)
    assert document["target"] == "vm-1" and document["generation"] == 1
    assert document["project"] == env.project
    assert document["issued_at"] == int(time.time())
    (grant,) = document["grants"]
    assert set(grant) == {"queue", "project", "ops", "url", "token", "kid", "jti",
                          "expires"}
    assert grant["ops"] == ["post"] and grant["expires"] == int(time.time()) + 60
    assert grant["url"].endswith(f"?token={grant['kid']}:{grant['token']}")
    assert document["next_check_before"] == grant["expires"] - 5
    credentials = document["credentials"]
    assert credentials["queue"] == "creds.vm-1"
    assert credentials["ops"] == ["delete", "read"]

    assert await env.post_with(grant) == 201
    assert [d for _, d in await env.documents(credentials)] == [document]
    assert (await env.use(grant["url"], "GET")).status_code == 401
    assert await env.post_with(credentials) == 401

    metadata = json.dumps(await env.driver.queues.get_metadata(
        env.project, "rotation.ledger.vm-1"))
    assert grant["jti"] in metadata
    for secret in (grant["token"], credentials["token"]):
        assert secret not in metadata
        assert secret not in caplog.text
    assert (await env.rotator.run_pass()).issued == 0


async def test_reissue_before_expiry_and_the_old_grant_lives_to_its_own(
        make_env, tmp_path, clock):
    env = make_env([vm(directory=tmp_path)])
    await env.rotator.run_pass()
    first = read(tmp_path)
    clock.shift(39)  # 21 s left: not yet
    assert (await env.rotator.run_pass()).issued == 0
    clock.shift(2)  # 19 s left: inside rotate_before
    assert (await env.rotator.run_pass()).issued == 1
    second = read(tmp_path)
    assert second["generation"] == 2
    assert second["grants"][0]["expires"] == first["grants"][0]["expires"] + 41
    # The superseded document is gone from the credentials queue.
    assert [d["generation"] for _, d in await env.documents(first["credentials"])] \
        == [2]
    assert await env.post_with(first["grants"][0]) == 201
    assert await env.post_with(second["grants"][0]) == 201
    clock.shift(19)  # generation 1's own expiry
    assert await env.post_with(first["grants"][0]) == 401
    assert await env.post_with(second["grants"][0]) == 201
    ledger = await env.ledger("vm-1")
    assert [g.number for g in ledger.generations] == [1, 2]
    clock.shift(22)  # generation 2 is re-issued; expired generation 1 forgotten
    assert (await env.rotator.run_pass()).issued == 1
    assert [g.number for g in (await env.ledger("vm-1")).generations] == [2, 3]


async def test_pickup_by_deleting_the_document(make_env, clock):
    env = make_env([vm()])
    await env.rotator.run_pass()
    (generation,) = (await env.ledger("vm-1")).generations
    credentials_url = None
    page = await env.driver.messages.list(env.project, "creds.vm-1", echo=True)
    document = json.loads(page.items[0].body_json)
    credentials_url = document["credentials"]
    assert generation.picked_up is None
    await env.rotator.run_pass()
    assert (await env.ledger("vm-1")).current.picked_up is None
    assert await env.ack(credentials_url, page.items[0].id) == 204
    report = await env.rotator.run_pass()
    assert report.picked_up == 1
    current = (await env.ledger("vm-1")).current
    assert current.picked_up == time.time() and current.picked_up_by == "deleted"


async def test_pickup_by_claiming_the_document(make_env, clock):
    env = make_env([vm()])
    await env.rotator.run_pass()
    assert await env.driver.claims.create(env.project, "creds.vm-1", ttl=60,
                                          grace=60, limit=1)
    await env.rotator.run_pass()
    assert (await env.ledger("vm-1")).current.picked_up_by == "claimed"


async def test_pickup_by_using_a_grant(make_env, tmp_path, clock):
    """A target with no credentials queue shows pickup by using its grants."""
    env = make_env([vm(directory=tmp_path, queue=False)])
    await env.rotator.run_pass()
    await env.rotator.run_pass()
    assert (await env.ledger("vm-1")).current.picked_up is None
    assert "credentials" not in read(tmp_path)
    assert await env.post_with(read(tmp_path)["grants"][0]) == 201
    await env.rotator.run_pass()
    assert (await env.ledger("vm-1")).current.picked_up_by == "used"


async def test_missed_pickup_alerts_once_per_generation(make_env, clock):
    env = make_env([vm("vm-1"), vm("vm-2")])

    async def ack_all(name: str) -> None:
        page = await env.driver.messages.list(env.project, f"creds.{name}", echo=True)
        for message in page.items:
            await env.driver.messages.delete(env.project, f"creds.{name}", message.id)

    await env.rotator.run_pass()
    await ack_all("vm-1")
    clock.shift(41)  # generation 2, before generation 1's deadline (t0+55)
    assert (await env.rotator.run_pass()).issued == 2
    await ack_all("vm-1")
    clock.shift(10)
    assert (await env.rotator.run_pass()).alerts == 0
    clock.shift(5)  # t0+56: generation 2's deadline (generation 1's expiry - 5)
    alerts = [(await env.rotator.run_pass()).alerts for _ in range(3)]
    assert alerts == [1, 0, 0]
    (alert,) = await env.alerts()
    assert alert["event"] == "rotation.pickup_missed"
    assert (alert["target"], alert["generation"]) == ("vm-2", 2)
    assert alert["project"] == env.project
    assert alert["credentials_queue"] == "creds.vm-2"
    assert "token" not in json.dumps(alert)
    ledger = await env.ledger("vm-2")
    assert [(g.number, g.alerted) for g in ledger.generations] == [(1, False),
                                                                   (2, True)]
    # A second daemon over the same store does not repeat it.
    assert (await env.new_rotator().run_pass()).alerts == 0
    assert len(await env.alerts()) == 1
    assert (await env.ledger("vm-1")).current.picked_up_by == "deleted"


async def test_revoke_denies_every_live_grant_at_once_and_issues(make_env, tmp_path,
                                                                 clock):
    env = make_env([vm(directory=tmp_path)])
    await env.rotator.run_pass()
    first = read(tmp_path)
    clock.shift(41)
    await env.rotator.run_pass()
    second = read(tmp_path)
    issue = await env.rotator.revoke("vm-1")
    assert issue.generation.number == 3
    third = read(tmp_path)
    assert third["generation"] == 3
    for old in (first, second):
        assert await env.post_with(old["grants"][0]) == 401
        assert (await env.use(old["credentials"]["url"], "GET")).status_code == 401
    assert await env.post_with(third["grants"][0]) == 201
    assert [d["generation"] for _, d in await env.documents(third["credentials"])] \
        == [3]
    ledger = await env.ledger("vm-1")
    assert [(g.number, g.revoked is not None) for g in ledger.generations] == [
        (1, True), (2, True), (3, False)]
    assert (await env.rotator.run_pass()).issued == 0
    clock.shift(40)  # past every old deadline: revoked generations never alert
    assert (await env.rotator.run_pass()).alerts == 0


async def test_revoke_can_keep_the_credentials_channel(make_env, tmp_path, clock):
    env = make_env([vm(directory=tmp_path)])
    await env.rotator.run_pass()
    first = read(tmp_path)
    await env.rotator.revoke("vm-1", keep_channel=True)
    assert await env.post_with(first["grants"][0]) == 401
    documents = await env.documents(first["credentials"])
    assert [d["generation"] for _, d in documents] == [2]


async def test_revoking_an_unknown_target_is_refused(make_env, clock):
    env = make_env([vm()])
    with pytest.raises(Exception, match="no target named 'vm-9'"):
        await env.rotator.revoke("vm-9")


async def test_a_changed_template_gets_a_new_generation_at_once(make_env, clock):
    env = make_env([vm()])
    await env.rotator.run_pass()
    changed = make_env([vm(grants=[{"queue": "events", "ops": ["post", "read"]}])])
    assert (await changed.rotator.run_pass()).issued == 1
    assert (await changed.ledger("vm-1")).current.number == 2


async def test_two_daemons_never_issue_the_same_generation(make_env, clock):
    env = make_env([vm("vm-1"), vm("vm-2")])
    reports = await asyncio.gather(env.rotator.run_pass(), env.new_rotator().run_pass())
    assert sum(r.issued for r in reports) == 2
    for name in ("vm-1", "vm-2"):
        ledger = await env.ledger(name)
        assert [g.number for g in ledger.generations] == [1]
        page = await env.driver.messages.list(env.project, f"creds.{name}", echo=True)
        assert len(page.items) == 1


async def test_webhook_delivery_retried_until_it_succeeds(make_env, receiver_factory):
    answers = iter([503, 204, 204])
    receiver = receiver_factory(lambda delivery: (next(answers), b""))
    env = make_env([vm(queue=False, deliver=[{"kind": "webhook",
                                              "url": receiver.url}])],
                   dispatch={"allow_cidrs": ("127.0.0.1/32",)})
    report = await env.rotator.run_pass()
    assert (report.issued, report.delivery_failures) == (1, 1)
    assert (await env.ledger("vm-1")).current.failed == ["webhook#0"]
    report = await env.rotator.run_pass()
    assert (report.issued, report.delivery_failures) == (0, 0)
    current = (await env.ledger("vm-1")).current
    assert (current.delivered, current.failed) == (["webhook#0"], [])
    first, second = receiver.snapshot()
    assert first.body == second.body
    assert second.json()["generation"] == 1
    assert second.headers["idempotency-key"] == "vm-1/1"
    assert second.headers["content-type"] == "application/json"
    assert await env.post_with(second.json()["grants"][0]) == 201


async def test_undelivered_generation_is_reissued_after_a_restart(make_env,
                                                                  receiver_factory):
    receiver = receiver_factory(lambda delivery: (503, b""))
    env = make_env([vm(queue=False, deliver=[{"kind": "webhook",
                                              "url": receiver.url}])],
                   dispatch={"allow_cidrs": ("127.0.0.1/32",)})
    await env.rotator.run_pass()
    assert (await env.rotator.run_pass()).issued == 0  # same process: retries
    restarted = env.new_rotator()
    assert (await restarted.run_pass()).issued == 1
    assert (await env.ledger("vm-1")).current.number == 2


def test_write_atomically_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "sub" / "creds.json"
    write_atomically(str(path), b'{"generation": 1}', 0o640)
    assert path.read_bytes() == b'{"generation": 1}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(path.parent, 0o500)  # the temporary file cannot be created
    try:
        if os.geteuid() != 0:
            with pytest.raises(OSError):
                write_atomically(str(path), b"new", 0o600)
    finally:
        os.chmod(path.parent, 0o700)
    assert path.read_bytes() == b'{"generation": 1}'
    assert os.listdir(path.parent) == ["creds.json"]


@pytest.mark.parametrize("sections, fragment", [
    ({"signing": {"max_ttl": 20}}, "ttl capped by signing.max_ttl (20) is not"),
    ({"rotation": {"check_interval": 16.0}},
     "rotate_before - min_overlap (15 s) is shorter than rotation.check_interval"),
    ({"rotation": {"check_interval": 0.0}}, "check_interval must be above 0"),
])
def test_start_up_checks(keys_file, tmp_path, sections, fragment):
    settings = rotation_settings(keys_file, **sections)
    (tmp_path / "t.yaml").write_text(json.dumps({
        "version": 1, "kind": "credential-rotation", "project": "p",
        "defaults": {"ttl": 60, "rotate_before": 20, "min_overlap": 5},
        "targets": [vm(deliver=[{"kind": "webhook",
                                 "url": "https://agent.example.com/c"}])]}))
    targets = service.load_targets(settings, str(tmp_path))
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        service.check(settings, targets, settings.signing.max_ttl)


def test_webhooks_the_guard_refuses_are_refused_at_start(keys_file, tmp_path):
    settings = rotation_settings(keys_file)
    (tmp_path / "t.yaml").write_text(json.dumps({
        "version": 1, "kind": "credential-rotation", "project": "p",
        "targets": [vm(deliver=[{"kind": "webhook",
                                 "url": "http://169.254.169.254/latest"}])]}))
    targets = service.load_targets(settings, str(tmp_path))
    with pytest.raises(ConfigError, match="webhook refused by the SSRF guard"):
        service.check(settings, targets, settings.signing.max_ttl)


def test_a_base_url_is_required(keys_file):
    settings = rotation_settings(keys_file, signing={"public_url": ""})
    with pytest.raises(ConfigError, match="signing.public_url is empty"):
        service.base_url_for(settings, None)
    assert service.base_url_for(settings, "https://q.example/") == "https://q.example"
