"""MongoDB driver specifics: configuration, indexes, storage layout, retries."""

from __future__ import annotations

import asyncio
import time

import pymongo
import pytest
from pymongo.read_preferences import ReadPreference

from queues.errors import ConfigError, MessageNotFound, StorageUnavailable
from queues.models import NewMessage
from queues.storage import load_driver
from queues.storage.mongodb.driver import TTL_SLACK_SECONDS
from tests.fixtures import common
from tests.fixtures.mongodb import (
    ExternalServer, SecantusServer, database_name, make_driver, server_available,
)
from tests.storage.helpers import P, bodies, post


@pytest.fixture
def raw(mongodb_server, mongodb_driver):
    """A plain pymongo handle on the test driver's database."""
    client = pymongo.MongoClient(mongodb_server.uri, serverSelectionTimeoutMS=5000)
    yield client[mongodb_driver.db.name]
    client.close()


# --- configuration (no server needed) ------------------------------------------


async def test_defaults_are_majority_writes_and_primary_reads():
    driver = load_driver("mongodb://127.0.0.1:1/", namespace="ns1")
    try:
        assert driver.db.name == "ns1"
        assert driver.db.write_concern.document == {"w": "majority"}
        assert driver.db.read_preference == ReadPreference.PRIMARY
    finally:
        await driver.close()


async def test_options_and_uri_write_concern_parts():
    driver = load_driver(
        "mongodb://127.0.0.1:1/?journal=true&wtimeoutMS=2500", namespace="ns1",
        options={"write_concern": "2", "read_preference": "secondaryPreferred"})
    try:
        assert driver.db.write_concern.document == {"w": 2, "j": True, "wtimeout": 2500}
        assert driver.db.read_preference == ReadPreference.SECONDARY_PREFERRED
        # Claims, pops and guarded deletes always go to the primary.
        assert driver.messages_coll.read_preference == ReadPreference.PRIMARY
    finally:
        await driver.close()


@pytest.mark.parametrize("uri, kwargs", [
    ("mongodb://127.0.0.1:notaport/", {}),
    ("mongodb+srv://example.com:27017/", {}),
    ("mongodb://", {}),
    ("mongodb://127.0.0.1:1/", {"namespace": "bad.name"}),
    ("mongodb://127.0.0.1:1/", {"namespace": ""}),
    ("mongodb://127.0.0.1:1/", {"options": {"read_preference": "fastest"}}),
    ("mongodb://127.0.0.1:1/", {"options": {"write_concern": " "}}),
])
async def test_bad_configuration_is_config_error(uri, kwargs):
    with pytest.raises(ConfigError):
        load_driver(uri, **kwargs)


async def test_unreachable_server_is_unavailable_within_timeout():
    driver = load_driver(f"mongodb://127.0.0.1:{common.free_port()}/",
                         namespace="nowhere", timeout=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await driver.queues.create(P, "q1")
        assert time.monotonic() - started < 1.0 + 1.0
        started = time.monotonic()
        assert await driver.is_alive() is False
        assert time.monotonic() - started < 1.0 + 1.0
    finally:
        await driver.close()


# --- layout and indexes ----------------------------------------------------------


async def test_indexes_exist(mongodb_driver, raw):
    await post(mongodb_driver, "q1", 1)
    messages = raw["messages"].index_information()
    assert messages["queue_marker"]["key"] == [("p", 1), ("q", 1), ("k", 1)]
    assert messages["queue_marker"]["unique"] is True
    assert messages["expires_ttl"]["key"] == [("ea", 1)]
    assert messages["expires_ttl"]["expireAfterSeconds"] == TTL_SLACK_SECONDS
    assert messages["claim_id"]["key"] == [("cid", 1)]
    claims = raw["claims"].index_information()
    assert claims["expires_ttl"]["expireAfterSeconds"] == TTL_SLACK_SECONDS
    queues = raw["queues"].index_information()
    assert queues["queue_name"]["key"] == [("p", 1), ("n", 1)]
    assert queues["queue_name"]["unique"] is True


async def test_unique_marker_index_refuses_a_second_message_with_a_marker(
        mongodb_driver, raw):
    await post(mongodb_driver, "q1", 1)
    doc = raw["messages"].find_one({"q": "q1"})
    doc.pop("_id")
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        raw["messages"].insert_one(doc)


async def test_documents_keep_body_bytes_and_metadata_exactly(mongodb_driver, raw):
    body = b'{"b": 1.50, "a": "\\u00e9"}'
    meta = {"a.b": 1, "$x": {"y.z": [1, 2]}, "big": 2**70, "f": 1.0}
    await mongodb_driver.queues.create(P, "q1", meta)
    [message_id] = await mongodb_driver.messages.post(
        P, "q1", [NewMessage(body, 60)], None)
    assert raw["messages"].find_one()["b"] == body
    assert (await mongodb_driver.messages.get(P, "q1", message_id)).body_json == body
    assert await mongodb_driver.queues.get_metadata(P, "q1") == meta
    listed = await mongodb_driver.queues.list(P, filters={"a.b": 1, "big": 2**70})
    assert [q.name for q in listed.items] == ["q1"]


async def test_markers_are_the_queue_counter(mongodb_driver, raw):
    await post(mongodb_driver, "q1", 1, 2, 3)
    await post(mongodb_driver, "q1", 4)
    page = await mongodb_driver.messages.list(P, "q1", echo=True)
    assert [m.marker for m in page.items] == [1, 2, 3, 4]
    assert raw["queues"].find_one({"n": "q1"})["c"] == 4
    # Out-of-range and foreign markers give pages, never errors.
    huge = await mongodb_driver.messages.list(P, "q1", echo=True, marker=str(10**30))
    assert huge.items == []
    negative = await mongodb_driver.messages.list(P, "q1", echo=True,
                                                  marker=str(-10**30))
    assert len(negative.items) == 4


async def test_foreign_and_malformed_ids(mongodb_driver):
    [message_id] = await post(mongodb_driver, "q1", 1)
    for bogus in ["bogus", "0" * 24, message_id.upper() + "0", "", "z" * 24]:
        with pytest.raises(MessageNotFound):
            await mongodb_driver.messages.get(P, "q1", bogus)
        await mongodb_driver.messages.delete(P, "q1", bogus)
    assert [m.id for m in await mongodb_driver.messages.get_many(
        P, "q1", ["bogus", message_id])] == [message_id]
    await mongodb_driver.claims.release(P, "q1", "bogus")


@pytest.mark.parametrize("transactions", [True, False], ids=["txn", "no-txn"])
async def test_post_steps_past_a_stale_marker(mongodb_driver, raw, transactions):
    """A message left behind by a deleted incarnation of the queue holds
    marker 2: the post hits the unique index, retries, and keeps its order."""
    await mongodb_driver.ready()
    mongodb_driver.use_transactions = transactions
    await post(mongodb_driver, "q1", "old")
    stale = raw["messages"].find_one({"q": "q1"})
    raw["queues"].delete_many({})
    raw["messages"].update_one({"_id": stale["_id"]}, {"$set": {"k": 2}})
    ids = await post(mongodb_driver, "q1", "a", "b", "c")
    page = await mongodb_driver.messages.list(P, "q1", echo=True)
    assert [m.id for m in page.items if m.id in ids] == ids
    assert bodies(page.items) == ["old", "a", "b", "c"]
    assert raw["messages"].count_documents({"q": "q1"}) == 4


async def test_transactions_detected_on_a_replica_set(mongodb_server, mongodb_driver):
    await mongodb_driver.queues.count(P)
    with pymongo.MongoClient(mongodb_server.uri) as client:
        hello = client.admin.command("hello")
    assert mongodb_driver.use_transactions == bool(
        hello.get("setName") or hello.get("msg") == "isdbgrid")


async def test_dead_letter_move_keeps_id_and_claim_count(mongodb_driver, raw):
    await mongodb_driver.queues.create(P, "q1", {"_max_claim_count": 1,
                                                 "_dead_letter_queue": "dlq"})
    [message_id] = await post(mongodb_driver, "q1", "x", ttl=600)
    first = await mongodb_driver.claims.create(P, "q1", ttl=60, grace=60, limit=5)
    await mongodb_driver.claims.release(P, "q1", first.id)
    assert await mongodb_driver.claims.create(P, "q1", ttl=60, grace=60,
                                              limit=5) is None
    moved = await mongodb_driver.messages.get(P, "dlq", message_id)
    assert (moved.claim_id, moved.claim_expires, moved.claim_count) == (None, None, 1)
    assert moved.ttl == 600 and moved.marker == 1
    assert raw["messages"].count_documents({}) == 1
    assert await mongodb_driver.queues.exists(P, "dlq")


async def test_wipe_drops_only_its_database(mongodb_server):
    mine = make_driver(mongodb_server.uri, namespace=database_name())
    other = make_driver(mongodb_server.uri, namespace=database_name())
    try:
        await post(mine, "q1", 1)
        await post(other, "q1", 2)
        await mine.wipe()
        with pymongo.MongoClient(mongodb_server.uri) as client:
            names = client.list_database_names()
            assert mine.db.name not in names and other.db.name in names
            assert (await other.queues.stats(P, "q1")).total == 1
            # A wiped driver is usable again (indexes are re-created).
            await post(mine, "q2", 3)
            assert mine.db.name in client.list_database_names()
            indexes = client[mine.db.name]["messages"].index_information()
            assert "queue_marker" in indexes
    finally:
        for driver in (mine, other):
            await driver.wipe()
            await driver.close()


@pytest.mark.slow
async def test_ttl_index_deletes_expired_documents(mongodb_server):
    """Documents whose expiry lies TTL_SLACK_SECONDS in the server's past are
    physically removed by the TTL monitor (1 s sweeps on the test server,
    mongod's ttlMonitorSleepSecs of 60 s elsewhere)."""
    hours_ago = lambda: time.time() - 7200  # noqa: E731
    driver = make_driver(mongodb_server.uri, namespace=database_name(),
                         clock=hours_ago)
    client = pymongo.MongoClient(mongodb_server.uri)
    db = client[driver.db.name]
    try:
        await post(driver, "q1", 1, 2)
        await driver.claims.create(P, "q1", ttl=60, grace=60, limit=1)
        assert db["messages"].count_documents({}) == 2
        assert db["claims"].count_documents({}) == 1
        wait = 75 if isinstance(mongodb_server, ExternalServer) else 20
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not (db["messages"].count_documents({})
                    or db["claims"].count_documents({})):
                break
            await asyncio.sleep(0.5)
        assert db["messages"].count_documents({}) == 0
        assert db["claims"].count_documents({}) == 0
    finally:
        client.close()
        await driver.wipe()
        await driver.close()


@pytest.mark.slow
async def test_standalone_server_posts_without_transactions(tmp_path):
    if not server_available():
        common.unavailable("needs .venv-mongo to start a standalone SecantusDB")
    server = SecantusServer(tmp_path / "standalone", standalone=True)
    server.start()
    driver = make_driver(server.uri, namespace=database_name())
    try:
        ids = await post(driver, "q1", 1, 2, 3)
        assert driver.use_transactions is False
        page = await driver.messages.list(P, "q1", echo=True)
        assert [m.id for m in page.items] == ids
        claim = await driver.claims.create(P, "q1", ttl=60, grace=60, limit=2)
        assert [m.id for m in claim.messages] == ids[:2]
    finally:
        await driver.close()
        server.stop()


async def test_lost_transaction_is_killed_in_the_background(mongodb_driver):
    """A post transaction we lost contact with must not hold the queue
    document until the server's 60 s transaction lifetime runs out."""
    driver = mongodb_driver
    await post(driver, "q1", 1)
    if not driver.use_transactions:
        pytest.skip("the server has no transactions")
    async with driver.client.start_session() as session:
        await session.start_transaction()
        await driver.reserve_markers(P, "q1", 1, session=session)
        # As if the connection had dropped right here:
        driver._kill_session_later(session.session_id)
        await asyncio.gather(*driver._background)
        started = time.monotonic()
        await post(driver, "q1", 2)  # no conflict with the orphan any more
        assert time.monotonic() - started < 2.0
        with pytest.raises(pymongo.errors.OperationFailure):
            await session.commit_transaction()
    page = await driver.messages.list(P, "q1", echo=True)
    assert [m.marker for m in page.items] == [1, 2]
