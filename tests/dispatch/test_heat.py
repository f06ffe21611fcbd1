"""Orchestration subscribers on every store that has an outbox: the
dispatcher against a Heat stand-in on 127.0.0.1 that records mark-unhealthy,
stack-update and signal calls, with Aodh-shaped alarm messages."""

from __future__ import annotations

import collections
import json

import pytest

from subscriptions.credentials import Credential, Credentials
from tests.dispatch.test_dispatcher import (
    NO_WAIT_RETRIES, make_dispatcher, run_until, subscribe,
)
from tests.storage.helpers import post
from tests.unit.subscriptions.conftest import response

INSTANCE = "body.reason_data.event.traits[?[0]=='instance_id'] | [0][2]"
MARK = {"mark_unhealthy": True, "resource_status_reason": "Marked by alarm"}
RESOURCES = "/v1/demo/stacks/member-stack/abc/resources/"


def alarm(instance: str) -> dict:
    """An Aodh event alarm body (integration.md §1.3)."""
    return {"alarm_name": "stop_event_alarm", "alarm_id": "a1", "severity": "low",
            "previous": "insufficient data", "current": "alarm",
            "reason": "Event hits the query",
            "reason_data": {"type": "event", "event": {
                "message_id": "m1", "event_type": "compute.instance.update",
                "traits": [["state", 1, "stopped"], ["instance_id", 1, instance]],
                "raw": {}}}}


class HeatStandIn:
    """Scripted statuses per call kind (then 200 / 202 / 200); ``calls``
    records (method, path, JSON body, X-Auth-Token)."""

    def __init__(self, mark=(), update=(), signal=()) -> None:
        self.answers = {"mark": collections.deque(mark),
                        "update": collections.deque(update),
                        "signal": collections.deque(signal)}
        self.calls: list[tuple] = []

    async def respond(self, request, writer) -> None:
        body = json.loads(request.body) if request.body else None
        self.calls.append((request.method, request.target, body,
                           request.headers.get("x-auth-token")))
        kind, default = self._kind(request)
        if kind is None:
            writer.write(response(404))
            return
        queue = self.answers[kind]
        status = queue.popleft() if queue else default
        extra = {"Location": "http://127.0.0.1:9/elsewhere"} if status == 302 else {}
        writer.write(response(status, b"", extra))

    @staticmethod
    def _kind(request) -> tuple[str | None, int]:
        if request.method == "POST" and request.target.endswith("/signal"):
            return "signal", 200
        if request.method == "PATCH" and "/resources/" in request.target:
            return "mark", 200
        if request.method == "PATCH":
            return "update", 202
        return None, 404

    def paths(self) -> list[tuple[str, str]]:
        return [(c[0], c[1]) for c in self.calls]


async def heat(http_sink, **behaviour) -> tuple[HeatStandIn, str]:
    stand_in = HeatStandIn(**behaviour)
    sink = await http_sink(stand_in.respond)
    return stand_in, f"heat+http://127.0.0.1:{sink.port}/v1/demo"


def heal_options(**extra) -> dict:
    return {"action": "mark_unhealthy_and_update", "stack": "member-stack/abc",
            "root_stack": "root/def", "resource": INSTANCE, **extra}


async def outcomes(driver, sub) -> list[tuple]:
    log = sorted(await driver.jobs.attempts(sub.id, limit=50),
                 key=lambda a: (a.message_id, a.attempt))
    return [(a.outcome, a.status, a.error) for a in log]


async def test_heal_marks_the_resource_then_updates_the_root_stack(
        driver, client, http_sink):
    stand_in, url = await heat(http_sink)
    sub = await subscribe(driver, url, options=heal_options(credentials="heat-demo"))
    await post(driver, "q1", alarm("vm-1"))
    dispatcher = make_dispatcher(driver, client,
                                 credentials=Credentials({"heat-demo": Credential("tok-h", frozenset({"127.0.0.1"}))}))
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.calls == [
        ("PATCH", RESOURCES + "vm-1", MARK, "tok-h"),
        ("PATCH", "/v1/demo/stacks/root/def", {}, "tok-h"),
    ]
    assert await outcomes(driver, sub) == [("delivered", 202, None)]


async def test_five_alarms_for_one_resource_inside_the_cooldown_heal_once(
        driver, client, http_sink):
    stand_in, url = await heat(http_sink)
    sub = await subscribe(driver, url, options=heal_options(cooldown=120))
    await post(driver, "q1", *[alarm("vm-1")] * 5, alarm("vm-2"))
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 6)
    marks = sorted(p for m, p in stand_in.paths() if "/resources/" in p)
    assert marks == [RESOURCES + "vm-1", RESOURCES + "vm-2"]
    assert stand_in.paths().count(("PATCH", "/v1/demo/stacks/root/def")) == 2
    log = await driver.jobs.attempts(sub.id, limit=50)
    assert sum("coalesced" in a.response for a in log) == 4
    assert await driver.jobs.lease(100, 60, max_in_flight=100) == []


async def test_a_zero_cooldown_heals_every_alarm(driver, client, http_sink):
    stand_in, url = await heat(http_sink)
    await subscribe(driver, url, options=heal_options(cooldown=0))
    await post(driver, "q1", *[alarm("vm-1")] * 3)
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 3)
    assert stand_in.paths().count(("PATCH", RESOURCES + "vm-1")) == 3


async def test_404_on_mark_means_already_replaced(driver, client, http_sink):
    stand_in, url = await heat(http_sink, mark=[404])
    sub = await subscribe(driver, url, options=heal_options())
    await post(driver, "q1", alarm("vm-gone"))
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.paths() == [("PATCH", RESOURCES + "vm-gone")]
    [attempt] = await driver.jobs.attempts(sub.id)
    assert attempt.outcome == "delivered" and "already replaced" in attempt.response
    assert await driver.jobs.dead_letters(sub.id) == []


@pytest.mark.parametrize("script, calls", [
    ({"mark": [409]}, ["mark", "mark", "update"]),
    ({"update": [409]}, ["mark", "update", "mark", "update"]),
])
async def test_409_is_retried_then_succeeds(driver, client, http_sink, script, calls):
    stand_in, url = await heat(http_sink, **script)
    sub = await subscribe(driver, url, options=heal_options(**NO_WAIT_RETRIES))
    await post(driver, "q1", alarm("vm-1"))
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert ["mark" if "/resources/" in p else "update"
            for _, p in stand_in.paths()] == calls
    assert await outcomes(driver, sub) == [("retry", 409, "busy"),
                                           ("delivered", 202, None)]


async def test_signal_posts_the_message_body(driver, client, http_sink):
    stand_in, url = await heat(http_sink)
    options = {"action": "signal", "stack": "asg/f00d", "resource": "'scale_up'",
               "credentials": "heat-demo"}
    sub = await subscribe(driver, url, options=options)
    body = {"current": "alarm", "previous": "ok", "reason": "cpu > 80%"}
    await post(driver, "q1", body, body)
    dispatcher = make_dispatcher(driver, client,
                                 credentials=Credentials({"heat-demo": Credential("tok-h", frozenset({"127.0.0.1"}))}))
    await run_until(dispatcher, lambda: dispatcher.delivered == 2)
    path = "/v1/demo/stacks/asg/f00d/resources/scale_up/signal"
    assert stand_in.calls == [("POST", path, body, "tok-h")] * 2  # no cooldown
    assert {o for o in await outcomes(driver, sub)} == {("delivered", 200, None)}


async def test_a_redirect_is_not_followed(driver, client, http_sink):
    stand_in, url = await heat(http_sink, mark=[302])
    sub = await subscribe(driver, url, options=heal_options())
    await post(driver, "q1", alarm("vm-1"))
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: driver.jobs.dead_letters(sub.id))
    assert len(stand_in.calls) == 1
    assert await outcomes(driver, sub) == [("failed", 302, None)]


async def test_a_message_without_the_resource_fails_without_calling(
        driver, client, http_sink):
    stand_in, url = await heat(http_sink)
    sub = await subscribe(driver, url, options=heal_options())
    await post(driver, "q1", {"alarm_name": "no traits here"})
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: driver.jobs.dead_letters(sub.id))
    assert stand_in.calls == []
    assert await outcomes(driver, sub) == [("failed", None, "invalid_request")]


async def test_a_resource_from_message_data_stays_one_path_segment(
        driver, client, http_sink):
    stand_in, url = await heat(http_sink)
    await subscribe(driver, url, options=heal_options())
    await post(driver, "q1", alarm("../../../root/def"))
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.paths()[0] == ("PATCH", RESOURCES + "..%2F..%2F..%2Froot%2Fdef")
