"""MongoDB specifics of subscriptions and the delivery outbox: the standalone
refusal, indexes, the post's extra cost, atomicity with the post, orphans and
the in-flight cap across dispatchers."""

from __future__ import annotations

import asyncio

import pymongo
import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from queues.errors import NotSupported, StorageUnavailable
from queues.models import NewMessage, notification
from queues.storage.mongodb.driver import TTL_SLACK_SECONDS, MongoDriver
from tests.fixtures.mongodb import DRIVER_TIMEOUT, database_name, make_driver
from tests.storage.helpers import P, post


@pytest.fixture
def raw(mongodb_server, mongodb_driver):
    """A plain pymongo handle on the test driver's database."""
    client = pymongo.MongoClient(mongodb_server.uri, serverSelectionTimeoutMS=5000)
    yield client[mongodb_driver.db.name]
    client.close()


class Commands(monitoring.CommandListener):
    """Records (command name, collection, transaction number or None) of
    each command."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object, object]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, event.command.get(event.command_name),
                          event.command.get("txnNumber")))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def watched(mongodb_server):
    """A driver whose client reports every command it sends."""
    commands = Commands()
    client = AsyncMongoClient(mongodb_server.uri, event_listeners=[commands])
    driver = MongoDriver(client, database=database_name(), timeout=DRIVER_TIMEOUT,
                         write_concern=WriteConcern("majority"),
                         read_preference=ReadPreference.PRIMARY)
    await driver.ready()
    if not driver.use_transactions:
        pytest.skip("the test server has no transactions")
    commands.seen.clear()
    yield driver, commands
    try:
        await driver.wipe()
    finally:
        await driver.close()


async def subscribe(driver, subscriber: str = "http://h/1", queue: str = "q1"):
    created, _ = await driver.subscriptions.create(
        P, queue, subscriber, ttl=3600, options={}, secret="whsec_x")
    return created


async def test_standalone_server_refuses_subscriptions(mongodb_driver, raw):
    await mongodb_driver.ready()
    mongodb_driver.use_transactions = False  # as detected on a standalone server
    with pytest.raises(NotSupported) as raised:
        await subscribe(mongodb_driver)
    assert "need a MongoDB replica set" in raised.value.description
    assert raw["subscriptions"].count_documents({}) == 0
    assert not await mongodb_driver.queues.exists(P, "q1")


async def test_outbox_indexes_exist(mongodb_driver, raw):
    await mongodb_driver.ready()
    subscriptions = raw["subscriptions"].index_information()
    assert subscriptions["subscriber_options"]["key"] == [
        ("p", 1), ("q", 1), ("s", 1), ("h", 1)]
    assert subscriptions["subscriber_options"]["unique"] is True
    assert "subscriber" not in subscriptions
    assert subscriptions["subscription_order"]["key"] == [
        ("p", 1), ("q", 1), ("cr", 1), ("_id", 1)]
    jobs = raw["jobs"].index_information()
    assert jobs["job_pending"]["key"] == [("sid", 1), ("dd", 1), ("due", 1), ("_id", 1)]
    assert jobs["job_leased"]["key"] == [("sid", 1), ("le", 1)]
    assert raw["delivery_attempts"].index_information()["attempt_order"]["key"] == [
        ("sid", 1), ("at", 1), ("_id", 1)]
    for name in ("subscriptions", "breakers", "delivery_attempts"):
        ttl = raw[name].index_information()["expires_ttl"]
        assert ttl["key"] == [("ea", 1)]
        assert ttl["expireAfterSeconds"] == TTL_SLACK_SECONDS


async def test_start_drops_the_retired_subscriber_index(mongodb_server,
                                                        mongodb_driver, raw):
    """A database from before options took part in uniqueness."""
    await mongodb_driver.ready()
    raw["subscriptions"].drop_index("subscriber_options")
    raw["subscriptions"].create_index([("p", 1), ("q", 1), ("s", 1)],
                                      name="subscriber", unique=True)
    restarted = make_driver(mongodb_server.uri, namespace=mongodb_driver.db.name)
    try:
        await restarted.ready()
        indexes = raw["subscriptions"].index_information()
        assert "subscriber" not in indexes and "subscriber_options" in indexes
        for options in ({"a": 1}, {"a": 2}):
            _, new = await restarted.subscriptions.create(
                P, "q1", "http://h/1", ttl=60, options=options, secret="")
            assert new is True
    finally:
        await restarted.close()


async def test_post_without_subscriptions_adds_one_read(watched):
    driver, commands = watched
    await subscribe(driver, queue="elsewhere")
    commands.seen.clear()
    await post(driver, "q1", 1, 2)
    [txn] = {c[2] for c in commands.seen}
    assert txn is not None
    assert [c[:2] for c in commands.seen if c[1] in ("subscriptions", "jobs")] == [
        ("find", "subscriptions")]


async def test_jobs_are_written_in_the_post_transaction(watched):
    driver, commands = watched
    await subscribe(driver)
    commands.seen.clear()
    await post(driver, "q1", 1, 2)
    [txn] = {c[2] for c in commands.seen}
    assert txn is not None
    assert [c[:2] for c in commands.seen] == [
        ("findAndModify", "queues"), ("insert", "messages"), ("find", "subscriptions"),
        ("insert", "jobs"), ("commitTransaction", 1)]


async def test_stored_payload_is_the_shared_notification(mongodb_driver, raw):
    await subscribe(mongodb_driver)
    messages = [NewMessage(b'{"k": [1, "\\u00e9"], "x": 1.50}', 300),
                NewMessage(b'"text"', 120, 30)]
    ids = await mongodb_driver.messages.post(P, "q1", messages, "c1")
    stored = {doc["mid"]: doc["m"] for doc in raw["jobs"].find()}
    assert stored == {i: notification(m) for i, m in zip(ids, messages)}


async def test_failed_job_write_rolls_the_post_back(mongodb_driver, raw):
    await subscribe(mongodb_driver)
    if not mongodb_driver.use_transactions:
        pytest.skip("the test server has no transactions")
    raw.command("collMod", "jobs", validator={"never": {"$exists": True}})
    with pytest.raises(StorageUnavailable):
        await post(mongodb_driver, "q1", 1, 2)
    raw.command("collMod", "jobs", validator={})
    assert (await mongodb_driver.queues.stats(P, "q1")).total == 0
    assert raw["jobs"].count_documents({}) == 0
    await post(mongodb_driver, "q1", 3)
    page = await mongodb_driver.messages.list(P, "q1", echo=True)
    assert [m.marker for m in page.items] == [1]  # the counter rolled back too


async def test_jobs_of_a_vanished_subscription_are_dropped_by_lease(
        mongodb_driver, raw):
    gone = await subscribe(mongodb_driver, "http://h/gone")
    kept = await subscribe(mongodb_driver, "http://h/kept")
    await post(mongodb_driver, "q1", 1)
    [job] = [j for j in await mongodb_driver.jobs.lease(10, 60, max_in_flight=10)
             if j.subscription_id == gone.id]
    await mongodb_driver.jobs.bury(job.id, job.lease_token, "x")
    await post(mongodb_driver, "q1", 2)
    # As the TTL monitor (or a post racing with a delete) would leave them:
    raw["subscriptions"].delete_one({"_id": gone.id})
    await mongodb_driver.jobs.lease(10, 60, max_in_flight=10)
    assert raw["jobs"].count_documents({"sid": gone.id}) == 0
    assert raw["jobs"].count_documents({"sid": kept.id}) == 2


async def test_in_flight_cap_holds_across_dispatchers(mongodb_server):
    namespace = database_name()
    dispatchers = [make_driver(mongodb_server.uri, namespace=namespace)
                   for _ in range(3)]
    try:
        sub = await subscribe(dispatchers[0])
        await post(dispatchers[0], "q1", *range(12))
        held: list[str] = []
        for cap in (1, 2, 4):
            batches = await asyncio.gather(*[
                d.jobs.lease(5, 600, max_in_flight=cap) for d in dispatchers])
            held += [j.id for batch in batches for j in batch]
            assert len(held) <= cap
        assert len(set(held)) == len(held) > 0
        # Leases given back left their jobs as they were: never leased.
        leased = await dispatchers[0].jobs_coll.count_documents(
            {"sid": sub.id, "lt": {"$ne": None}})
        assert leased == len(held)
    finally:
        await dispatchers[0].wipe()
        for driver in dispatchers:
            await driver.close()


async def test_leases_over_the_cap_are_given_back(mongodb_driver, raw, monkeypatch):
    """A dispatcher whose count of live leases went stale (another one leased
    in between) takes too many: its check after taking gives them back."""
    sub = await subscribe(mongodb_driver)
    await post(mongodb_driver, "q1", *range(4))
    first = await mongodb_driver.jobs.lease(2, 600, max_in_flight=2)
    leaser = mongodb_driver.jobs._leaser
    counts = leaser._in_flight
    stale = [{}]  # the first count sees none of ``first``

    async def in_flight(subscriptions, now):
        return stale.pop() if stale else await counts(subscriptions, now)

    monkeypatch.setattr(leaser, "_in_flight", in_flight)
    assert await mongodb_driver.jobs.lease(2, 600, max_in_flight=2) == []
    leased = raw["jobs"].find({"sid": sub.id, "lt": {"$ne": None}})
    assert sorted(doc["lt"] for doc in leased) == sorted(j.lease_token for j in first)
    assert raw["jobs"].count_documents({"lt": None, "a": 0, "le": 0.0}) == 2
