"""Queue metadata cached per worker for message POST and list (api.metadata_cache_ttl)."""

from __future__ import annotations

import asyncio

from tests.api.conftest import PATCH_TYPE


async def _posted_ttl(api, queue: str) -> int:
    [message_id] = await api.post_messages(queue, {"body": "x"})
    result = await api.get(f"/v2/queues/{queue}/messages/{message_id}")
    return result.json["ttl"]


async def test_own_changes_are_seen_at_once(make_client, clock):
    api = make_client(api={"metadata_cache_ttl": 60.0})
    await api.create_queue("q1")
    assert await _posted_ttl(api, "q1") == 3600
    patched = await api.patch("/v2/queues/q1", headers={"content-type": PATCH_TYPE},
                              json=[{"op": "replace", "path": "/metadata/_default_message_ttl",
                                     "value": 600}])
    assert patched.status_code == 200, patched.text
    assert await _posted_ttl(api, "q1") == 600


async def test_another_worker_sees_a_change_within_the_bound(make_client, clock):
    worker_a = make_client(api={"metadata_cache_ttl": 2.0})
    worker_b = make_client(api={"metadata_cache_ttl": 2.0})
    await worker_a.create_queue("q1")
    assert await _posted_ttl(worker_b, "q1") == 3600  # b caches the defaults
    patched = await worker_a.patch(
        "/v2/queues/q1", headers={"content-type": PATCH_TYPE},
        json=[{"op": "add", "path": "/metadata/_default_message_ttl", "value": 900}])
    assert patched.status_code == 200, patched.text
    assert await _posted_ttl(worker_b, "q1") == 3600  # still inside the bound
    clock.shift(2)
    assert await _posted_ttl(worker_b, "q1") == 900


async def test_zero_ttl_reads_every_time(make_client, clock):
    worker_a = make_client(api={"metadata_cache_ttl": 0.0})
    worker_b = make_client(api={"metadata_cache_ttl": 0.0})
    await worker_a.create_queue("q1")
    assert await _posted_ttl(worker_b, "q1") == 3600
    await worker_a.patch(
        "/v2/queues/q1", headers={"content-type": PATCH_TYPE},
        json=[{"op": "add", "path": "/metadata/_default_message_ttl", "value": 900}])
    assert await _posted_ttl(worker_b, "q1") == 900


async def test_requests_in_flight_share_one_metadata_read(make_client, clock, driver,
                                                         monkeypatch):
    """When the cached metadata expires under load, the requests in flight
    wait for one store read instead of each sending its own."""
    api = make_client(api={"metadata_cache_ttl": 2.0})
    await api.create_queue("q1")
    await api.post_messages("q1", {"body": "warm"})
    reads = []
    original = driver.queues.get_metadata

    async def counted(project: str, queue: str):
        reads.append(queue)
        return await original(project, queue)

    monkeypatch.setattr(driver.queues, "get_metadata", counted)
    clock.shift(2)
    await asyncio.gather(*(api.post_messages("q1", {"body": i}) for i in range(20)))
    assert reads == ["q1"]
