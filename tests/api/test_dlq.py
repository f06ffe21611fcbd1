"""Dead-letter queues end to end over HTTP (§3.4).

Product decisions tested here: the DLQ is created lazily, and a moved
message is immediately visible (unclaimed) in it.
"""

from __future__ import annotations


def bodies(messages: list[dict]) -> list:
    return [m["body"] for m in messages]


async def claim_and_release(client, queue: str) -> list[dict]:
    claim_id, messages = await client.claim(queue)
    result = await client.delete(f"/v2/queues/{queue}/claims/{claim_id}")
    assert result.status_code == 204
    return messages


async def dlq_source(client, **extra) -> None:
    await client.create_queue("src", {"_max_claim_count": 2,
                                      "_dead_letter_queue": "dlq", **extra})


async def test_third_claim_moves_the_message_to_the_dlq(client):
    await dlq_source(client)
    await client.post_bodies("src", "poison")
    assert bodies(await claim_and_release(client, "src")) == ["poison"]
    assert bodies(await claim_and_release(client, "src")) == ["poison"]
    result = await client.post("/v2/queues/src/claims")
    assert result.status_code == 204
    assert (await client.stats("src"))["total"] == 0
    assert (await client.stats("dlq"))["total"] == 1


async def test_moved_message_is_immediately_visible_in_the_dlq(client):
    await dlq_source(client)
    await client.post_bodies("src", "poison")
    await claim_and_release(client, "src")
    await claim_and_release(client, "src")
    await client.post("/v2/queues/src/claims")
    listed = await client.list_messages("dlq", echo=True)
    assert bodies(listed["messages"]) == ["poison"]
    counts = await client.stats("dlq")
    assert (counts["claimed"], counts["free"]) == (0, 1)


async def test_moved_message_can_be_claimed_from_the_dlq(client):
    await dlq_source(client)
    await client.post_bodies("src", "poison")
    await claim_and_release(client, "src")
    await claim_and_release(client, "src")
    await client.post("/v2/queues/src/claims")
    _, messages = await client.claim("dlq")
    assert bodies(messages) == ["poison"]


async def test_dlq_is_created_lazily(client):
    await dlq_source(client)
    await client.post_bodies("src", "poison")
    assert (await client.head("/v2/queues/dlq")).status_code == 404
    await claim_and_release(client, "src")
    await claim_and_release(client, "src")
    await client.post("/v2/queues/src/claims")
    assert (await client.head("/v2/queues/dlq")).status_code == 204


async def test_expired_claims_count_towards_the_maximum(client, clock):
    await dlq_source(client)
    await client.post_bodies("src", "poison", ttl=3600)
    for _ in range(2):
        await client.claim("src", ttl=60)
        clock.shift(61)
    assert (await client.post("/v2/queues/src/claims")).status_code == 204
    assert (await client.stats("dlq"))["total"] == 1


async def test_dlq_messages_ttl_applies_to_moved_messages(client):
    await dlq_source(client, _dead_letter_queue_messages_ttl=120)
    await client.post_bodies("src", "poison", ttl=3600)
    await claim_and_release(client, "src")
    await claim_and_release(client, "src")
    await client.post("/v2/queues/src/claims")
    [message] = (await client.list_messages("dlq", echo=True))["messages"]
    assert message["ttl"] == 120


async def test_claim_returns_fresh_messages_while_moving_exhausted_ones(client):
    await dlq_source(client)
    await client.post_bodies("src", "poison")
    await claim_and_release(client, "src")
    await claim_and_release(client, "src")
    await client.post_bodies("src", "fresh")
    _, messages = await client.claim("src")
    assert bodies(messages) == ["fresh"]
    assert bodies((await client.list_messages("dlq", echo=True))["messages"]) == [
        "poison"]


async def test_no_dlq_without_dead_letter_queue(client):
    await client.create_queue("src", {"_max_claim_count": 2})
    await client.post_bodies("src", "poison")
    await claim_and_release(client, "src")
    await claim_and_release(client, "src")
    assert bodies(await claim_and_release(client, "src")) == ["poison"]


async def test_no_dlq_without_max_claim_count(client):
    await client.create_queue("src", {"_dead_letter_queue": "dlq"})
    await client.post_bodies("src", "poison")
    for _ in range(3):
        assert bodies(await claim_and_release(client, "src")) == ["poison"]
    assert (await client.head("/v2/queues/dlq")).status_code == 404


async def test_dlq_keeps_the_message_body(client):
    await dlq_source(client)
    await client.post_bodies("src", {"nested": [1, {"a": None}]})
    await claim_and_release(client, "src")
    await claim_and_release(client, "src")
    await client.post("/v2/queues/src/claims")
    [message] = (await client.list_messages("dlq", echo=True))["messages"]
    assert message["body"] == {"nested": [1, {"a": None}]}
