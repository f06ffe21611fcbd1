"""Local workflows (``workflow:<name>``) on every store that has an outbox:
the dispatcher runs YAML workflows of HTTP steps against stand-ins on
127.0.0.1 -- a scripted recorder, and a Heat stand-in for the example
``etc/workflows/autoheal.yaml``."""

from __future__ import annotations

import collections
import json
import pathlib
import time

import pytest

from queues.storage.base import Driver
from subscriptions.channels import Channels, Limits
from subscriptions.credentials import Credential, Credentials
from subscriptions.dispatcher import Dispatcher
from subscriptions.mailto import SmtpSettings
from subscriptions.workflows import Workflows, load_workflows
from tests.dispatch.test_dispatcher import FAST, NO_WAIT_RETRIES, run_until, subscribe
from tests.dispatch.test_heat import MARK, RESOURCES, HeatStandIn, alarm
from tests.storage.helpers import post
from tests.unit.subscriptions.conftest import response

EXAMPLES = pathlib.Path(__file__).parents[2] / "etc" / "workflows"
TOKEN = "tok-wf"
STEPS = """\
name: steps
vars:
  instance_id: {jmespath: "body.instance"}
steps:
  - name: first
    http:
      method: PATCH
      url: "{base}/things/{instance_id}"
      headers: {X-Trace: "t-{instance_id}"}
      json: {id: "{instance_id}", note: "{{ fixed }}"}
    expect: [200]
    retry: {count: 3, delay: 0, on_status: [409]}
    on_status: {404: stop}
  - name: second
    http: {method: POST, url: "{base}/done", json: {}}
    expect: [202]
"""


@pytest.fixture
def workflows(tmp_path) -> Workflows:
    (tmp_path / "steps.yaml").write_text(STEPS)
    return load_workflows(str(tmp_path))


def make_dispatcher(driver: Driver, client, workflows: Workflows,
                    clock=time.time) -> Dispatcher:
    credentials = Credentials({"wf": Credential(TOKEN, frozenset({"127.0.0.1"}))})
    channels = Channels(client, SmtpSettings(), credentials,
                        Limits(256, FAST.delivery_deadline), workflows=workflows)
    return Dispatcher(driver, FAST, channels, clock=clock)


def an_hour_behind() -> float:
    """A dispatcher clock whose retry due times are already past in the
    store: a 503's 60 s overload floor does not hold the test up."""
    return time.time() - 3600


class Target:
    """Scripted statuses per step (``/things/...`` is first, ``/done`` is
    second; then 200 / 202); ``calls`` records (method, path, JSON body)."""

    def __init__(self, first=(), second=()) -> None:
        self.answers = {"first": collections.deque(first),
                        "second": collections.deque(second)}
        self.calls: list[tuple] = []
        self.requests: list = []

    async def respond(self, request, writer) -> None:
        self.requests.append(request)
        body = json.loads(request.body) if request.body else None
        self.calls.append((request.method, request.target, body))
        kind, default = (("second", 202) if request.target.endswith("/done")
                         else ("first", 200))
        queue = self.answers[kind]
        writer.write(response(queue.popleft() if queue else default, b"said"))

    def steps(self) -> list[str]:
        return ["second" if p.endswith("/done") else "first" for _, p, _ in self.calls]


async def target(http_sink, **script) -> tuple[Target, dict]:
    stand_in = Target(**script)
    sink = await http_sink(stand_in.respond)
    options = {"params": {"base": f"http://127.0.0.1:{sink.port}/api"},
               "credentials": "wf"}
    return stand_in, options


async def outcomes(driver, sub) -> list[tuple]:
    log = sorted(await driver.jobs.attempts(sub.id, limit=50),
                 key=lambda a: (a.message_id, a.attempt))
    return [(a.outcome, a.status, a.error) for a in log]


async def test_steps_run_in_order_with_the_credential(driver, client, http_sink,
                                                      workflows):
    stand_in, options = await target(http_sink)
    sub = await subscribe(driver, "workflow:steps", options=options)
    await post(driver, "q1", {"instance": "vm-1"})
    dispatcher = make_dispatcher(driver, client, workflows)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.calls == [
        ("PATCH", "/api/things/vm-1", {"id": "vm-1", "note": "{{ fixed }}"}),
        ("POST", "/api/done", {}),
    ]
    first, second = stand_in.requests
    assert {r.headers["x-auth-token"] for r in stand_in.requests} == {TOKEN}
    assert first.headers["x-trace"] == "t-vm-1"
    assert first.headers["idempotency-key"].endswith("/first")
    assert second.headers["idempotency-key"].endswith("/second")
    assert await outcomes(driver, sub) == [("delivered", 202, None)]
    [attempt] = await driver.jobs.attempts(sub.id)
    assert attempt.response == "first: 200; second: 202"
    assert TOKEN not in attempt.response


async def test_a_409_is_retried_inside_the_step(driver, client, http_sink, workflows):
    stand_in, options = await target(http_sink, first=[409, 409])
    sub = await subscribe(driver, "workflow:steps", options=options)
    await post(driver, "q1", {"instance": "vm-1"})
    dispatcher = make_dispatcher(driver, client, workflows)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.steps() == ["first", "first", "first", "second"]
    assert await outcomes(driver, sub) == [("delivered", 202, None)]
    [attempt] = await driver.jobs.attempts(sub.id)
    assert attempt.response == "first: 409 409 200; second: 202"


async def test_409_after_the_inline_retries_is_retried_by_the_dispatcher(
        driver, client, http_sink, workflows):
    stand_in, options = await target(http_sink, first=[409] * 4)
    sub = await subscribe(driver, "workflow:steps",
                          options={**options, **NO_WAIT_RETRIES})
    await post(driver, "q1", {"instance": "vm-1"})
    dispatcher = make_dispatcher(driver, client, workflows)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.steps() == ["first"] * 5 + ["second"]
    assert await outcomes(driver, sub) == [("retry", 409, "busy"),
                                           ("delivered", 202, None)]


async def test_404_stops_the_workflow_as_done(driver, client, http_sink, workflows):
    stand_in, options = await target(http_sink, first=[404])
    sub = await subscribe(driver, "workflow:steps", options=options)
    await post(driver, "q1", {"instance": "vm-gone"})
    dispatcher = make_dispatcher(driver, client, workflows)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.steps() == ["first"]
    [attempt] = await driver.jobs.attempts(sub.id)
    assert (attempt.outcome, attempt.status, attempt.error) == ("delivered", None, None)
    assert attempt.response == "first: 404 (stop)"
    assert await driver.jobs.dead_letters(sub.id) == []


async def test_503_makes_a_retryable_delivery_that_reruns_every_step(
        driver, client, http_sink, workflows):
    stand_in, options = await target(http_sink, second=[503])
    sub = await subscribe(driver, "workflow:steps",
                          options={**options, **NO_WAIT_RETRIES})
    await post(driver, "q1", {"instance": "vm-1"})
    dispatcher = make_dispatcher(driver, client, workflows, clock=an_hour_behind)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.steps() == ["first", "second", "first", "second"]
    assert await outcomes(driver, sub) == [("retry", 503, None),
                                           ("delivered", 202, None)]
    first_try = min(await driver.jobs.attempts(sub.id), key=lambda a: a.attempt)
    assert first_try.response == "first: 200; second: 503 (failed)\nsaid"


async def test_an_unexpected_400_is_final(driver, client, http_sink, workflows):
    stand_in, options = await target(http_sink, first=[400])
    sub = await subscribe(driver, "workflow:steps",
                          options={**options, **NO_WAIT_RETRIES})
    await post(driver, "q1", {"instance": "vm-1"})
    dispatcher = make_dispatcher(driver, client, workflows)
    await run_until(dispatcher, lambda: driver.jobs.dead_letters(sub.id))
    assert stand_in.steps() == ["first"]
    assert await outcomes(driver, sub) == [("failed", 400, None)]
    [dead] = await driver.jobs.dead_letters(sub.id)
    assert dead.subscription_id == sub.id


async def test_message_data_reaches_the_target_verbatim(driver, client, http_sink,
                                                        workflows):
    stand_in, options = await target(http_sink)
    await subscribe(driver, "workflow:steps", options=options)
    sneaky = "../../done/{{ 7*7 }}<% $.x %>"
    await post(driver, "q1", {"instance": sneaky})
    dispatcher = make_dispatcher(driver, client, workflows)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    method, path, body = stand_in.calls[0]
    assert path == ("/api/things/..%2F..%2Fdone%2F%7B%7B%207%2A7%20%7D%7D"
                    "%3C%25%20%24.x%20%25%3E")
    assert body == {"id": sneaky, "note": "{{ fixed }}"}
    assert stand_in.requests[0].headers["x-trace"].startswith("t-..%2F..%2Fdone")


async def test_an_unknown_workflow_or_credential_fails_without_calling(
        driver, client, http_sink, workflows):
    stand_in, options = await target(http_sink)
    gone = await subscribe(driver, "workflow:removed", options=options)
    stranger = await subscribe(driver, "workflow:steps",
                               options={**options, "credentials": "nobody"})
    await post(driver, "q1", {"instance": "vm-1"})
    dispatcher = make_dispatcher(driver, client, workflows)
    await run_until(dispatcher, lambda: all_dead(driver, gone, stranger))
    assert stand_in.calls == []
    [first] = await driver.jobs.attempts(gone.id)
    assert "Workflow 'removed' is not defined on this server" in first.response
    [second] = await driver.jobs.attempts(stranger.id)
    assert "credential 'nobody' is not configured" in second.response
    assert await outcomes(driver, gone) == [("failed", None, "invalid_request")]
    assert await outcomes(driver, stranger) == [("failed", None, "invalid_request")]


async def all_dead(driver, *subs) -> bool:
    for sub in subs:
        if not await driver.jobs.dead_letters(sub.id):
            return False
    return True


# --- the example: etc/workflows/autoheal.yaml against a Heat stand-in ----------------

async def heal_subscription(driver, http_sink, **behaviour):
    stand_in = HeatStandIn(**behaviour)
    sink = await http_sink(stand_in.respond)
    options = {"params": {"heat": f"http://127.0.0.1:{sink.port}/v1/demo",
                          "stack": "member-stack/abc", "root_stack": "root/def"},
               "credentials": "heat-demo", **NO_WAIT_RETRIES}
    sub = await subscribe(driver, "workflow:autoheal", options=options)
    return stand_in, sub


def heat_dispatcher(driver, client) -> Dispatcher:
    credentials = Credentials({"heat-demo": Credential(
        "tok-h", frozenset({"127.0.0.1"}))})
    channels = Channels(client, SmtpSettings(), credentials,
                        Limits(256, FAST.delivery_deadline),
                        workflows=load_workflows(str(EXAMPLES)))
    return Dispatcher(driver, FAST, channels)


async def test_autoheal_marks_the_resource_then_updates_the_root_stack(
        driver, client, http_sink):
    stand_in, sub = await heal_subscription(driver, http_sink)
    await post(driver, "q1", alarm("vm-1"))
    dispatcher = heat_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.calls == [
        ("PATCH", RESOURCES + "vm-1", MARK, "tok-h"),
        ("PATCH", "/v1/demo/stacks/root/def", {}, "tok-h"),
    ]
    assert await outcomes(driver, sub) == [("delivered", 202, None)]


async def test_autoheal_stops_when_the_resource_is_already_replaced(
        driver, client, http_sink):
    stand_in, sub = await heal_subscription(driver, http_sink, mark=[404])
    await post(driver, "q1", alarm("vm-gone"))
    dispatcher = heat_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.paths() == [("PATCH", RESOURCES + "vm-gone")]
    assert await outcomes(driver, sub) == [("delivered", None, None)]


async def test_autoheal_409_beyond_the_deadline_is_left_to_the_dispatcher(
        driver, client, http_sink):
    """The example waits 3 s between tries; with a 2 s delivery deadline the
    inline retry cannot fit, so the delivery is retried later instead."""
    stand_in, sub = await heal_subscription(driver, http_sink, mark=[409])
    await post(driver, "q1", alarm("vm-1"))
    dispatcher = heat_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert [p for _, p in stand_in.paths()] == [
        RESOURCES + "vm-1", RESOURCES + "vm-1", "/v1/demo/stacks/root/def"]
    assert await outcomes(driver, sub) == [("retry", 409, "busy"),
                                           ("delivered", 202, None)]


async def test_autoheal_passes_template_syntax_in_the_alarm_through_verbatim(
        driver, client, http_sink):
    stand_in, _ = await heal_subscription(driver, http_sink)
    await post(driver, "q1", alarm("{{ 7*7 }}<% $.x %>/.."))
    dispatcher = heat_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert stand_in.paths()[0] == (
        "PATCH", RESOURCES + "%7B%7B%207%2A7%20%7D%7D%3C%25%20%24.x%20%25%3E%2F..")
