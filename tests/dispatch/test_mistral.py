"""Workflow subscribers on every store that has an outbox: the dispatcher
against a Mistral stand-in on 127.0.0.1 that, like real Mistral, stores
executions by id and returns the existing one for a known id."""

from __future__ import annotations

import json

import pytest

from subscriptions.credentials import Credential, Credentials
from subscriptions.payload import delivery_id
from tests.dispatch.test_dispatcher import (
    NO_WAIT_RETRIES, make_dispatcher, run_until, subscribe,
)
from tests.storage.helpers import post
from tests.unit.subscriptions.conftest import response

WORKFLOW = "3c2bd5b2-7f4e-4b5e-9a3c-1d2e3f405162"


class MistralStandIn:
    """``POST /v2/executions``: creates the execution unless its id is known,
    then answers 201 with it. ``first`` scripts the answer to the request
    that *creates* an execution: "ok", "drop" (close without a reply) or
    "500"; ``known`` the answer for a known id: 201 (Mistral) or 409."""

    def __init__(self, first: str = "ok", known: int = 201) -> None:
        self.first, self.known = first, known
        self.executions: dict[str, dict] = {}
        self.requests = []

    async def respond(self, request, writer) -> None:
        self.requests.append(request)
        if request.method != "POST" or request.target != "/v2/executions":
            writer.write(response(404))
            return
        document = json.loads(request.body)
        if document["id"] in self.executions:
            status = self.known
        else:
            self.executions[document["id"]] = document
            status = {"ok": 201, "500": 500, "drop": 0}[self.first]
        if status == 0:
            writer.close()
            return
        reply = {"id": document["id"], "state": "RUNNING",
                 "input": json.dumps(document.get("input"))}
        writer.write(response(status, json.dumps(reply).encode(),
                              {"Content-Type": "application/json"}))

    def bodies(self) -> list[dict]:
        return [json.loads(r.body) for r in self.requests]


async def mistral(http_sink, **behaviour) -> tuple[MistralStandIn, str]:
    stand_in = MistralStandIn(**behaviour)
    sink = await http_sink(stand_in.respond)
    return stand_in, f"mistral+http://127.0.0.1:{sink.port}/v2"


async def test_the_execution_request_is_exactly_the_documented_shape(
        driver, client, http_sink):
    stand_in, url = await mistral(http_sink)
    options = {"workflow_id": WORKFLOW, "input": {"stack_id": "member/abc"},
               "params": {"env": {"region": "r1"}, "task_name": "heal"},
               "credentials": "mistral-demo"}
    sub = await subscribe(driver, url, options=options)
    [mid] = await post(driver, "q1", {"x": "<% 6 * 7 %>"})
    dispatcher = make_dispatcher(driver, client,
                                 credentials=Credentials({"mistral-demo": Credential("tok-9", frozenset({"127.0.0.1"}))}))
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    [request] = stand_in.requests
    assert request.headers["x-auth-token"] == "tok-9"
    assert request.headers["content-type"] == "application/json"
    notification = {"ttl": 300, "body": {"x": "<% 6 * 7 %>"},
                    "Message_Type": "Notification", "queue_name": "q1",
                    "message_id": mid, "subscription_id": sub.id}
    assert json.loads(request.body) == {
        "id": delivery_id(sub.id, mid),
        "workflow_id": WORKFLOW,
        "input": {"stack_id": "member/abc"},
        "params": {"env": {"region": "r1", "notification": notification,
                           "notification_id": mid},
                   "task_name": "heal", "evaluate_env": False},
    }
    [attempt] = await driver.jobs.attempts(sub.id)
    assert (attempt.outcome, attempt.status) == ("delivered", 201)


async def test_workflow_name_namespace_and_no_credential(driver, client, http_sink):
    stand_in, url = await mistral(http_sink)
    await subscribe(driver, url, options={"workflow_name": "autoheal",
                                          "workflow_namespace": "ops"})
    await post(driver, "q1", "a")
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    [body] = stand_in.bodies()
    assert "x-auth-token" not in stand_in.requests[0].headers
    assert (body["workflow_name"], body["workflow_namespace"]) == ("autoheal", "ops")
    assert "workflow_id" not in body
    assert body["input"] == {}
    assert body["params"]["evaluate_env"] is False


@pytest.mark.parametrize("first", ["drop", "500"])
async def test_one_execution_per_message_when_the_first_reply_is_lost(
        driver, client, http_sink, first):
    stand_in, url = await mistral(http_sink, first=first)
    sub = await subscribe(driver, url, options={"workflow_id": WORKFLOW,
                                                **NO_WAIT_RETRIES})
    ids = await post(driver, "q1", *range(3))
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 3)
    assert len(stand_in.requests) == 6  # every message was sent twice...
    assert sorted(stand_in.executions) == sorted(  # ...and started once
        delivery_id(sub.id, mid) for mid in ids)
    log = await driver.jobs.attempts(sub.id, limit=20)
    for mid in ids:
        outcomes = [a.outcome for a in sorted(log, key=lambda a: a.attempt)
                    if a.message_id == mid]
        assert outcomes == ["retry", "delivered"]


async def test_a_409_for_a_known_execution_counts_as_delivered(driver, client,
                                                               http_sink):
    stand_in, url = await mistral(http_sink, first="drop", known=409)
    sub = await subscribe(driver, url, options={"workflow_id": WORKFLOW,
                                                **NO_WAIT_RETRIES})
    await post(driver, "q1", "x")
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert len(stand_in.executions) == 1 and len(stand_in.requests) == 2
    last = (await driver.jobs.attempts(sub.id))[0]
    assert last.outcome == "delivered" and "already exists" in last.response
    assert await driver.jobs.dead_letters(sub.id) == []


async def test_an_unconfigured_credential_fails_without_calling(driver, client,
                                                                http_sink):
    stand_in, url = await mistral(http_sink)
    sub = await subscribe(driver, url, options={"workflow_id": WORKFLOW,
                                                "credentials": "nobody"})
    await post(driver, "q1", "x")
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: driver.jobs.dead_letters(sub.id))
    assert stand_in.requests == []
    [attempt] = await driver.jobs.attempts(sub.id)
    assert (attempt.outcome, attempt.error) == ("failed", "invalid_request")


async def test_a_server_error_without_creation_is_retried(driver, client, http_sink):
    calls = []

    async def flaky(request, writer):
        calls.append(request)
        writer.write(response(502 if len(calls) == 1 else 201, b"{}"))

    sink = await http_sink(flaky)
    sub = await subscribe(driver, f"mistral+http://127.0.0.1:{sink.port}/v2",
                          options={"workflow_id": WORKFLOW, **NO_WAIT_RETRIES})
    await post(driver, "q1", "x")
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    log = sorted(await driver.jobs.attempts(sub.id), key=lambda a: a.attempt)
    assert [(a.outcome, a.status) for a in log] == [("retry", 502),
                                                    ("delivered", 201)]
    assert json.loads(calls[0].body)["id"] == json.loads(calls[1].body)["id"]
