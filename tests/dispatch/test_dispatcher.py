"""The dispatcher on every store that has an outbox, delivering to real HTTP
receivers on 127.0.0.1 (``http_sink``)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import json
import time

import pytest

from queues.config import DispatchSettings
from queues.storage.base import Driver
from subscriptions import webhook
from subscriptions.channels import Channels, Limits
from subscriptions.credentials import Credential, Credentials
from subscriptions.dispatcher import Dispatcher
from subscriptions.mailto import SmtpSettings
from tests.storage.helpers import P, post
from tests.unit.subscriptions.conftest import ok, response

FAST = DispatchSettings(min_poll_interval=0.002, max_poll_interval=0.02,
                        connect_timeout=1.0, read_timeout=1.0, delivery_deadline=2.0,
                        lease_seconds=10.0, breaker_failures=1000)
NO_WAIT_RETRIES = {"_retry_policy": {"retries_with_no_delay": 3}}


def make_dispatcher(driver: Driver, client, settings: DispatchSettings = FAST,
                    credentials: Credentials | None = None) -> Dispatcher:
    channels = Channels(client, SmtpSettings(), credentials or Credentials(),
                        Limits(256, settings.delivery_deadline))
    return Dispatcher(driver, settings, channels)


async def run_until(dispatcher: Dispatcher, done, timeout: float = 15.0) -> None:
    """Run the dispatcher until ``done()`` (maybe a coroutine) is true; fail
    after ``timeout``."""
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        deadline = time.monotonic() + timeout
        while not await _truth(done()):
            assert time.monotonic() < deadline, "dispatcher did not finish in time"
            assert not task.done(), "dispatcher loop ended early"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task


async def subscribe(driver: Driver, url: str, *, queue: str = "q1",
                    options: dict | None = None, confirmed: bool = True):
    sub, _ = await driver.subscriptions.create(
        P, queue, url, ttl=3600, options=options or {},
        secret=webhook.generate_secret())
    if confirmed:
        await driver.subscriptions.confirm(P, queue, sub.id, True)
    return sub


async def _truth(value) -> bool:
    return bool(await value) if inspect.isawaitable(value) else bool(value)


def payloads(sink) -> list[dict]:
    return [json.loads(r.body) for r in sink.requests]


def scripted(*statuses: int):
    """Answer with ``statuses`` in turn, then 200."""
    queue = collections.deque(statuses)

    async def respond(request, writer):
        writer.write(response(queue.popleft() if queue else 200, b"status"))

    return respond


async def test_every_message_reaches_every_subscriber(driver, client, http_sink):
    sinks = [await http_sink() for _ in range(3)]
    subs = [await subscribe(driver, s.url) for s in sinks]
    ids = await post(driver, "q1", *range(20))
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: all(len(s.requests) >= 20 for s in sinks))
    for sink, sub in zip(sinks, subs):
        sent = payloads(sink)
        assert sorted(p["message_id"] for p in sent) == sorted(ids)
        assert {p["subscription_id"] for p in sent} == {sub.id}
        assert sorted(p["body"] for p in sent) == list(range(20))
        assert all(p["queue_name"] == "q1" and p["Message_Type"] == "Notification"
                   for p in sent)
    assert await driver.jobs.lease(100, 60, max_in_flight=100) == []


async def test_headers_are_signed_and_stable_across_retries(driver, client, http_sink):
    sink = await http_sink(scripted(500))
    sub = await subscribe(driver, sink.url, options=NO_WAIT_RETRIES)
    await post(driver, "q1", "x")
    await run_until(make_dispatcher(driver, client), lambda: len(sink.requests) >= 2)
    first, second = sink.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["idempotency-key"] == first.headers["webhook-id"]
    assert first.headers["webhook-signature"].startswith("v1,")
    assert sub.secret not in first.headers["webhook-signature"]


async def test_retries_until_delivered_and_logs_every_attempt(driver, client,
                                                              http_sink):
    sink = await http_sink(scripted(500, 500))
    sub = await subscribe(driver, sink.url, options=NO_WAIT_RETRIES)
    [mid] = await post(driver, "q1", "payload")
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: len(sink.requests) >= 3)
    await run_until(dispatcher, lambda: dispatcher.delivered >= 1)
    log = await driver.jobs.attempts(sub.id, limit=10)
    assert [(a.attempt, a.outcome, a.status) for a in reversed(log)] == [
        (1, "retry", 500), (2, "retry", 500), (3, "delivered", 200)]
    assert {a.message_id for a in log} == {mid}
    assert all(a.latency_ms >= 0 and a.response == "status" for a in log)


async def test_final_4xx_goes_to_dead_letters_and_replays(driver, client, http_sink):
    answers = collections.deque([400])

    async def respond(request, writer):
        writer.write(response(answers.popleft() if answers else 204))

    sink = await http_sink(respond)
    sub = await subscribe(driver, sink.url)
    [mid] = await post(driver, "q1", "x")
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: len(sink.requests) == 1)
    await run_until(dispatcher, lambda: driver.jobs.dead_letters(sub.id))
    [dead] = await driver.jobs.dead_letters(sub.id)
    assert dead.message_id == mid
    assert await driver.jobs.replay(sub.id) == 1
    await run_until(dispatcher, lambda: dispatcher.delivered == 1)
    assert len(sink.requests) == 2
    assert await driver.jobs.dead_letters(sub.id) == []


async def test_gone_disables_the_subscription(driver, client, http_sink):
    sink = await http_sink(scripted(410))
    sub = await subscribe(driver, sink.url)
    await post(driver, "q1", "a")
    dispatcher = make_dispatcher(driver, client)
    await run_until(dispatcher, lambda: len(sink.requests) == 1)
    await asyncio.sleep(0.2)
    stored = await driver.subscriptions.get(P, "q1", sub.id)
    assert stored.disabled
    await post(driver, "q1", "b")
    await run_until(dispatcher, lambda: True)
    await asyncio.sleep(0.1)
    assert len(sink.requests) == 1


async def test_hanging_and_dead_endpoints_do_not_delay_a_healthy_one(
        driver, client, http_sink):
    async def hang(request, writer):
        await asyncio.sleep(30)

    slow = await http_sink(hang)
    healthy = await http_sink()
    await subscribe(driver, slow.url)
    await subscribe(driver, "http://127.0.0.1:9/hook")  # nothing listens
    await subscribe(driver, healthy.url)
    settings = dataclasses.replace(FAST, concurrency=8, max_in_flight_per_subscription=2)
    dispatcher = make_dispatcher(driver, client, settings)
    await post(driver, "q1", *range(10))
    started = time.monotonic()
    await run_until(dispatcher, lambda: len(healthy.requests) >= 10, timeout=10)
    assert time.monotonic() - started < 1.5  # the hanging one's deadline is 2 s


async def test_unconfirmed_subscribers_get_no_notifications(driver, client,
                                                            http_sink):
    sink = await http_sink()
    sub = await subscribe(driver, sink.url, confirmed=False)
    await post(driver, "q1", "secret plans")
    confirmation = json.dumps({"Message_Type": "SubscriptionConfirmation",
                               "queue_name": "q1"}).encode()
    await driver.jobs.redeliver(sub.id, "confirm-1", confirmation)
    settings = dataclasses.replace(FAST, require_confirmation=True)
    dispatcher = make_dispatcher(driver, client, settings)
    await run_until(dispatcher, lambda: len(sink.requests) >= 1)
    await asyncio.sleep(0.2)
    assert payloads(sink) == [{"Message_Type": "SubscriptionConfirmation",
                               "queue_name": "q1"}]
    outcomes = {a.message_id: (a.outcome, a.error)
                for a in await driver.jobs.attempts(sub.id)}
    assert outcomes["confirm-1"] == ("delivered", None)
    assert [v for k, v in outcomes.items() if k != "confirm-1"] == [
        ("failed", "unconfirmed")]


async def test_trust_subscriber_gets_the_named_credential(driver, client, http_sink):
    sink = await http_sink()
    url = "trust+" + sink.url
    await subscribe(driver, url, options={"credentials": "heat"})
    await post(driver, "q1", "x")
    dispatcher = make_dispatcher(driver, client,
                                 credentials=Credentials({"heat": Credential("tok-123", frozenset({"127.0.0.1"}))}))
    await run_until(dispatcher, lambda: len(sink.requests) == 1)
    assert sink.requests[0].headers["x-auth-token"] == "tok-123"


async def test_breaker_opens_after_consecutive_failures(driver, client, http_sink):
    sink = await http_sink(scripted(*[500] * 50))
    sub = await subscribe(driver, sink.url, options=NO_WAIT_RETRIES)
    await post(driver, "q1", "x")
    settings = dataclasses.replace(FAST, breaker_failures=2, breaker_seconds=30)
    dispatcher = make_dispatcher(driver, client, settings)
    await run_until(dispatcher, lambda: len(sink.requests) >= 2)
    await asyncio.sleep(0.3)
    assert len(sink.requests) == 2  # the breaker holds the third try back
    assert sub.id


async def test_a_confirmation_is_seen_at_once_despite_the_cache(driver, client,
                                                                http_sink):
    """The subscription cache must not drop notifications posted right after
    the subscriber confirmed (the cached copy still says unconfirmed)."""
    sink = await http_sink()
    sub = await subscribe(driver, sink.url, confirmed=False)
    await driver.jobs.redeliver(sub.id, "confirm-1", json.dumps(
        {"Message_Type": "SubscriptionConfirmation"}).encode())
    settings = dataclasses.replace(FAST, require_confirmation=True)
    dispatcher = make_dispatcher(driver, client, settings)
    await run_until(dispatcher, lambda: len(sink.requests) == 1)  # caches it
    await driver.subscriptions.confirm(P, "q1", sub.id, True)
    [mid] = await post(driver, "q1", "right after")
    await run_until(dispatcher, lambda: len(sink.requests) == 2, timeout=0.8)
    assert payloads(sink)[1]["message_id"] == mid
