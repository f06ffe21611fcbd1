"""Claims: create, get, renew, release (§2.4, §6)."""

from __future__ import annotations

import asyncio

import pytest

CLAIM_TTL = ("The TTL for a claim may not exceed 43200 seconds, and must be at least"
             " 60 seconds long.")
CLAIM_GRACE = ("The grace for a claim may not exceed 43200 seconds, and must be at"
               " least 60 seconds long.")
LIMIT_TEXT = "Limit must be at least 1 and may not be greater than 20."


def api_error(description: str) -> dict:
    return {"title": "Invalid API request", "description": description}


def bodies(messages: list[dict]) -> list:
    return [m["body"] for m in messages]


async def message_ttl(client, queue: str, mid: str) -> int:
    result = await client.get(f"/v2/queues/{queue}/messages/{mid}")
    assert result.status_code == 200, result.text
    return result.json["ttl"]


async def get_claim(client, queue: str, claim_id: str):
    return await client.get(f"/v2/queues/{queue}/claims/{claim_id}")


# -- POST /claims ------------------------------------------------------------

async def test_claim_is_201_with_location_and_messages(client):
    ids = await client.post_bodies("q1", 1, 2)
    result = await client.post("/v2/queues/q1/claims", json={"ttl": 60, "grace": 60})
    assert result.status_code == 201
    location = result.headers["location"]
    assert location.startswith("/v2/queues/q1/claims/")
    claim_id = location.rsplit("/", 1)[1]
    assert claim_id
    assert set(result.json) == {"messages"}
    assert [m["href"] for m in result.json["messages"]] == [
        f"/v2/queues/q1/messages/{i}?claim_id={claim_id}" for i in ids]


async def test_claimed_message_shape(client, clock):
    [mid] = await client.post_bodies("q1", {"k": 1}, ttl=600)
    clock.shift(5)
    claim_id, [message] = await client.claim("q1", ttl=60)
    assert message == {"id": mid, "ttl": 600, "age": 5, "body": {"k": 1},
                       "href": f"/v2/queues/q1/messages/{mid}?claim_id={claim_id}"}


async def test_claim_without_body_uses_defaults(client):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/claims")
    assert result.status_code == 201
    claim_id = result.headers["location"].rsplit("/", 1)[1]
    assert (await get_claim(client, "q1", claim_id)).json["ttl"] == 300


async def test_claim_with_empty_object_uses_defaults(client):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/claims", json={})
    assert result.status_code == 201
    claim_id = result.headers["location"].rsplit("/", 1)[1]
    assert (await get_claim(client, "q1", claim_id)).json["ttl"] == 300


async def test_claim_default_grace_extends_short_messages_by_60(client):
    [mid] = await client.post_bodies("q1", 1, ttl=60)
    await client.post("/v2/queues/q1/claims", json={"ttl": 100})
    assert await message_ttl(client, "q1", mid) == 160


@pytest.mark.parametrize("raw", ["[]", '"x"', "1"])
async def test_claim_with_non_object_body_is_400(client, raw):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/claims", body=raw)
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"


async def test_claim_with_bad_json_is_400(client):
    result = await client.post("/v2/queues/q1/claims", body="{")
    assert result.status_code == 400
    assert result.json == {"title": "Invalid request body",
                           "description": "Request body could not be parsed."}


@pytest.mark.parametrize("ttl", [59, 43201, 0])
async def test_claim_ttl_out_of_range_is_400(client, ttl):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/claims", json={"ttl": ttl})
    assert result.status_code == 400
    assert result.json == api_error(CLAIM_TTL)
    assert (await client.stats("q1"))["claimed"] == 0


@pytest.mark.parametrize("ttl", [60, 43200])
async def test_claim_ttl_bounds_are_accepted(client, ttl):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/claims", json={"ttl": ttl})
    assert result.status_code == 201


@pytest.mark.parametrize("grace", [59, 43201])
async def test_claim_grace_out_of_range_is_400(client, grace):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/claims", json={"ttl": 60, "grace": grace})
    assert result.status_code == 400
    assert result.json == api_error(CLAIM_GRACE)


@pytest.mark.parametrize("grace", [60, 43200])
async def test_claim_grace_bounds_are_accepted(client, grace):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/claims", json={"ttl": 60, "grace": grace})
    assert result.status_code == 201


async def test_claim_ttl_beyond_64_bits_is_400(client):
    result = await client.post("/v2/queues/q1/claims",
                               body='{"ttl": 18446744073709551616}')
    assert result.status_code == 400
    assert result.json == {"title": "Invalid request body",
                           "description": "JSON contains integer that is too large."}


async def test_expired_messages_are_not_claimed(client, clock):
    await client.post_bodies("q1", "short", ttl=60)
    await client.post_bodies("q1", "long", ttl=600)
    clock.shift(61)
    _, messages = await client.claim("q1")
    assert bodies(messages) == ["long"]


async def test_claim_ttl_must_be_an_integer(client):
    result = await client.post("/v2/queues/q1/claims", json={"ttl": "60"})
    assert result.status_code == 400
    assert result.json == {"title": "Invalid request body",
                           "description": 'The value of the "ttl" field must be a int.'}


@pytest.mark.parametrize("limit", ["0", "21", "-1"])
async def test_claim_limit_out_of_range_is_400(client, limit):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/claims", params={"limit": limit})
    assert result.status_code == 400
    assert result.json == api_error(LIMIT_TEXT)


async def test_claim_limit_not_an_integer_is_invalid_parameter(client):
    result = await client.post("/v2/queues/q1/claims?limit=abc")
    assert result.status_code == 400
    assert result.json["title"] == "Invalid parameter"


async def test_claim_limit_caps_the_messages(client):
    await client.post_bodies("q1", *range(5))
    _, messages = await client.claim("q1", limit=2)
    assert bodies(messages) == [0, 1]


async def test_claim_limit_20(client):
    await client.post_bodies("q1", *range(25))
    _, messages = await client.claim("q1", limit=20)
    assert len(messages) == 20


async def test_claim_default_limit_is_10(client):
    await client.post_bodies("q1", *range(12))
    _, messages = await client.claim("q1")
    assert bodies(messages) == list(range(10))


async def test_claim_with_nothing_to_claim_is_204_without_body(client):
    await client.create_queue("q1")
    result = await client.post("/v2/queues/q1/claims")
    assert result.status_code == 204
    assert result.content == b""


async def test_claim_on_missing_queue_is_204(client):
    result = await client.post("/v2/queues/missing/claims")
    assert result.status_code == 204


async def test_claim_includes_own_messages(client):
    await client.post_bodies("q1", "mine")
    _, messages = await client.claim("q1")
    assert bodies(messages) == ["mine"]


async def test_claim_never_takes_messages_of_another_live_claim(client):
    await client.post_bodies("q1", 1, 2, 3)
    _, first = await client.claim("q1", limit=2)
    _, second = await client.claim("q1", limit=5)
    assert bodies(first) == [1, 2]
    assert bodies(second) == [3]
    assert (await client.post("/v2/queues/q1/claims")).status_code == 204


async def test_messages_are_claimable_again_after_the_claim_expires(client, clock):
    await client.post_bodies("q1", 1, ttl=600)
    await client.claim("q1", ttl=60)
    clock.shift(61)
    _, messages = await client.claim("q1", ttl=60)
    assert bodies(messages) == [1]


async def test_concurrent_claims_never_share_a_message(client):
    await client.post_bodies("q1", *range(10))
    results = await asyncio.gather(*(
        client.post("/v2/queues/q1/claims?limit=3", json={"ttl": 60})
        for _ in range(5)))
    claimed = [m["id"] for r in results if r.status_code == 201
               for m in r.json["messages"]]
    assert len(claimed) == len(set(claimed))
    assert len(claimed) == 10


async def test_claim_extends_a_short_message_ttl_to_claim_ttl_plus_grace(client):
    [mid] = await client.post_bodies("q1", 1, ttl=60)
    _, [message] = await client.claim("q1", ttl=120, grace=60)
    assert message["ttl"] == 180
    assert await message_ttl(client, "q1", mid) == 180


async def test_claim_never_shortens_a_long_message_ttl(client):
    [mid] = await client.post_bodies("q1", 1, ttl=3600)
    await client.claim("q1", ttl=120, grace=60)
    assert await message_ttl(client, "q1", mid) == 3600


async def test_claimed_message_outlives_its_original_ttl(client, clock):
    [mid] = await client.post_bodies("q1", 1, ttl=60)
    claim_id, _ = await client.claim("q1", ttl=120, grace=60)
    clock.shift(100)
    assert (await client.get(f"/v2/queues/q1/messages/{mid}")).status_code == 200
    result = await client.delete(f"/v2/queues/q1/messages/{mid}?claim_id={claim_id}")
    assert result.status_code == 204


async def test_claimed_message_lives_through_the_grace_period(client, clock):
    [mid] = await client.post_bodies("q1", 1, ttl=60)
    await client.claim("q1", ttl=120, grace=60)
    clock.shift(170)
    assert (await client.get(f"/v2/queues/q1/messages/{mid}")).status_code == 200
    _, messages = await client.claim("q1")
    assert [m["id"] for m in messages] == [mid]


# -- GET /claims/{id} --------------------------------------------------------

async def test_get_claim_shape(client):
    ids = await client.post_bodies("q1", 1, 2)
    claim_id, _ = await client.claim("q1", ttl=120)
    result = await get_claim(client, "q1", claim_id)
    assert result.status_code == 200
    assert set(result.json) == {"age", "ttl", "messages", "href"}
    assert result.json["href"] == f"/v2/queues/q1/claims/{claim_id}"
    assert result.json["ttl"] == 120
    assert [m["href"] for m in result.json["messages"]] == [
        f"/v2/queues/q1/messages/{i}?claim_id={claim_id}" for i in ids]
    assert bodies(result.json["messages"]) == [1, 2]


async def test_get_claim_age_increases(client, clock):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1", ttl=120)
    assert (await get_claim(client, "q1", claim_id)).json["age"] == 0
    clock.shift(10)
    assert (await get_claim(client, "q1", claim_id)).json["age"] == 10


async def test_get_claim_omits_deleted_messages(client):
    first, _ = await client.post_bodies("q1", 1, 2)
    claim_id, _ = await client.claim("q1")
    await client.delete(f"/v2/queues/q1/messages/{first}?claim_id={claim_id}")
    claim = (await get_claim(client, "q1", claim_id)).json
    assert bodies(claim["messages"]) == [2]


async def test_get_unknown_claim_is_404(client):
    await client.post_bodies("q1", 1)
    result = await get_claim(client, "q1", "bogus")
    assert result.status_code == 404
    assert result.json["title"] == "Not found"


async def test_get_claim_on_missing_queue_is_404(client):
    assert (await get_claim(client, "missing", "bogus")).status_code == 404


async def test_get_claim_of_another_queue_is_404(client):
    await client.post_bodies("q1", 1)
    await client.create_queue("q2")
    claim_id, _ = await client.claim("q1")
    assert (await get_claim(client, "q2", claim_id)).status_code == 404


async def test_get_expired_claim_is_404(client, clock):
    await client.post_bodies("q1", 1, ttl=600)
    claim_id, _ = await client.claim("q1", ttl=60)
    clock.shift(61)
    assert (await get_claim(client, "q1", claim_id)).status_code == 404


# -- PATCH /claims/{id} ------------------------------------------------------

async def test_renew_is_204_and_resets_age_and_ttl(client, clock):
    await client.post_bodies("q1", 1, ttl=600)
    claim_id, _ = await client.claim("q1", ttl=60)
    clock.shift(30)
    result = await client.patch(f"/v2/queues/q1/claims/{claim_id}",
                                json={"ttl": 200, "grace": 60})
    assert result.status_code == 204
    claim = (await get_claim(client, "q1", claim_id)).json
    assert (claim["ttl"], claim["age"]) == (200, 0)


async def test_renewed_claim_outlives_its_first_ttl(client, clock):
    await client.post_bodies("q1", 1, ttl=600)
    claim_id, _ = await client.claim("q1", ttl=60)
    await client.patch(f"/v2/queues/q1/claims/{claim_id}", json={"ttl": 300})
    clock.shift(120)
    assert (await get_claim(client, "q1", claim_id)).status_code == 200
    assert (await client.post("/v2/queues/q1/claims")).status_code == 204


async def test_renew_extends_short_message_ttls(client):
    [mid] = await client.post_bodies("q1", 1, ttl=60)
    claim_id, _ = await client.claim("q1", ttl=60, grace=60)
    assert await message_ttl(client, "q1", mid) == 120
    await client.patch(f"/v2/queues/q1/claims/{claim_id}",
                       json={"ttl": 300, "grace": 60})
    assert await message_ttl(client, "q1", mid) == 360


async def test_renew_with_empty_body_is_400(client):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    result = await client.patch(f"/v2/queues/q1/claims/{claim_id}")
    assert result.status_code == 400
    assert result.json == {"title": "Invalid request body",
                           "description": "Request body could not be parsed."}


@pytest.mark.parametrize("ttl", [59, 43201])
async def test_renew_with_out_of_range_ttl_is_400(client, ttl):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    result = await client.patch(f"/v2/queues/q1/claims/{claim_id}", json={"ttl": ttl})
    assert result.status_code == 400
    assert result.json == api_error(CLAIM_TTL)


async def test_renew_with_non_integer_ttl_is_400(client):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    result = await client.patch(f"/v2/queues/q1/claims/{claim_id}", json={"ttl": "x"})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"


async def test_renew_does_not_validate_grace(client):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    result = await client.patch(f"/v2/queues/q1/claims/{claim_id}",
                                json={"ttl": 100, "grace": 1})
    assert result.status_code == 204


async def test_renew_unknown_claim_is_404(client):
    await client.post_bodies("q1", 1)
    result = await client.patch("/v2/queues/q1/claims/bogus", json={"ttl": 100})
    assert result.status_code == 404
    assert result.json["title"] == "Not found"


async def test_renew_expired_claim_is_404(client, clock):
    await client.post_bodies("q1", 1, ttl=600)
    claim_id, _ = await client.claim("q1", ttl=60)
    clock.shift(61)
    result = await client.patch(f"/v2/queues/q1/claims/{claim_id}", json={"ttl": 100})
    assert result.status_code == 404


# -- DELETE /claims/{id} -----------------------------------------------------

async def test_release_is_204_and_messages_are_visible_again(client):
    await client.post_bodies("q1", 1, 2)
    claim_id, _ = await client.claim("q1")
    assert (await client.list_messages("q1", echo=True))["messages"] == []
    result = await client.delete(f"/v2/queues/q1/claims/{claim_id}")
    assert result.status_code == 204
    listed = await client.list_messages("q1", echo=True)
    assert bodies(listed["messages"]) == [1, 2]
    assert all("claim_id" not in m["href"] for m in listed["messages"])


async def test_released_messages_are_claimable_at_once(client):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    await client.delete(f"/v2/queues/q1/claims/{claim_id}")
    _, messages = await client.claim("q1")
    assert bodies(messages) == [1]


async def test_released_claim_is_gone(client):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    await client.delete(f"/v2/queues/q1/claims/{claim_id}")
    assert (await get_claim(client, "q1", claim_id)).status_code == 404


async def test_released_messages_count_as_free(client):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    await client.delete(f"/v2/queues/q1/claims/{claim_id}")
    counts = await client.stats("q1")
    assert (counts["claimed"], counts["free"]) == (0, 1)


async def test_messages_of_an_expired_claim_count_as_free(client, clock):
    await client.post_bodies("q1", 1, ttl=600)
    await client.claim("q1", ttl=60)
    assert (await client.stats("q1"))["claimed"] == 1
    clock.shift(61)
    counts = await client.stats("q1")
    assert (counts["claimed"], counts["free"]) == (0, 1)


async def test_release_unknown_claim_is_204(client):
    await client.post_bodies("q1", 1)
    assert (await client.delete("/v2/queues/q1/claims/bogus")).status_code == 204
    assert (await client.delete("/v2/queues/missing/claims/bogus")).status_code == 204


async def test_claim_count_is_reported_by_pop(client):
    await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    await client.delete(f"/v2/queues/q1/claims/{claim_id}")
    [popped] = (await client.delete("/v2/queues/q1/messages?pop=1")).json["messages"]
    assert popped["claim_count"] == 1
