"""FIFO under two concurrent producers on a 2-worker server.

Each producer posts 25 batches of 4, one batch after the other (so its post
order is defined); the two run at the same time against different workers.
Listing (paged by the ``next`` links, echo=true) and claiming must both return
each producer's messages in post order, each batch contiguous, and agree on
one global order.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.fixtures.server import headers

pytestmark = pytest.mark.slow

PROJECT = "fifo"
QUEUE = "ordered"
BASE = f"/v2/queues/{QUEUE}"
PRODUCERS = 2
BATCHES = 25
BATCH_SIZE = 4
TOTAL = PRODUCERS * BATCHES * BATCH_SIZE
MAX_PAGES = 100


async def produce(client: httpx.AsyncClient, producer: int) -> list[str]:
    hdrs = headers(PROJECT, client_id=str(uuid.uuid4()))
    ids: list[str] = []
    for batch in range(BATCHES):
        document = {"messages": [{"body": {"p": producer, "b": batch, "k": k}}
                                 for k in range(BATCH_SIZE)]}
        response = await client.post(f"{BASE}/messages", json=document, headers=hdrs)
        assert response.status_code == 201, response.text
        ids.extend(href.rsplit("/", 1)[-1] for href in response.json()["resources"])
    return ids


def check_order(sequence: list[tuple[str, dict]], posted: dict[int, list[str]],
                what: str) -> None:
    ids = [mid for mid, _ in sequence]
    assert len(ids) == TOTAL and len(set(ids)) == TOTAL, f"{what}: {len(ids)} messages"
    for producer in range(PRODUCERS):
        mine = [(mid, body) for mid, body in sequence if body["p"] == producer]
        # In post order: the ids the POSTs returned, and the bodies' counters.
        assert [mid for mid, _ in mine] == posted[producer], (
            f"{what}: producer {producer} out of post order")
        assert [(b["b"], b["k"]) for _, b in mine] == [
            (b, k) for b in range(BATCHES) for k in range(BATCH_SIZE)]
    # Each batch contiguous in the global order.
    positions: dict[tuple[int, int], list[int]] = {}
    for index, (_, body) in enumerate(sequence):
        positions.setdefault((body["p"], body["b"]), []).append(index)
    split = {key: where for key, where in positions.items()
             if where != list(range(where[0], where[0] + BATCH_SIZE))}
    assert not split, f"{what}: batches not contiguous: {split}"


async def test_concurrent_producers_keep_fifo_in_listing_and_claims(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=15.0,
                                 trust_env=False) as client:
        results = await asyncio.gather(*(produce(client, p) for p in range(PRODUCERS)))
        posted = dict(enumerate(results))

        reader = headers(PROJECT)
        listed: list[tuple[str, dict]] = []
        href = f"{BASE}/messages?echo=true&limit=7"
        pages = 0
        for pages in range(1, MAX_PAGES + 1):
            response = await client.get(href, headers=reader)
            assert response.status_code == 200, response.text
            page = response.json()
            if not page["messages"]:
                assert page["links"] == []
                break
            assert len(page["messages"]) <= 7
            listed.extend((m["id"], m["body"]) for m in page["messages"])
            [link] = page["links"]
            assert link["rel"] == "next" and "marker=" in link["href"]
            href = link["href"]
        else:
            pytest.fail(f"listing did not end within {MAX_PAGES} pages")
        check_order(listed, posted, "listing")

        # The interleaving really happened (else the test proves little).
        producers_in_order = [body["p"] for _, body in listed]
        switches = sum(a != b for a, b in zip(producers_in_order,
                                              producers_in_order[1:]))
        print(f"\n{switches} producer switches in the global order, {pages} pages")
        assert switches > 0, "the producers never interleaved"

        claimed: list[tuple[str, dict]] = []
        for _ in range(MAX_PAGES):
            response = await client.post(f"{BASE}/claims", params={"limit": 20},
                                         json={"ttl": 60, "grace": 60}, headers=reader)
            if response.status_code == 204:
                break
            assert response.status_code == 201, response.text
            claimed.extend((m["id"], m["body"]) for m in response.json()["messages"])
        check_order(claimed, posted, "claims")
        assert [mid for mid, _ in claimed] == [mid for mid, _ in listed]
