"""Messages: post, list, get/delete by ids, pop, single get/delete (§2.3, §3.3)."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

POST_TOO_LARGE = "Message collection size is too large. Max size 262144"
TTL_RANGE = ("The TTL for a message may not exceed 1209600 seconds, and must be at"
             " least 60 seconds long.")
DELAY_RANGE = ("The Delay TTL for a message may not exceed 900 seconds,and must be"
               " at least 0 seconds long.")
LIMIT_TEXT = "Limit must be at least 1 and may not be greater than 20."
IDS_TEXT = "ids parameter should have at least 1 and not greater than 20 values."
POP_TEXT = "Pop value must be at least 1 and may not be greater than 20."
CLAIMED = "This message is claimed; it cannot be deleted without a valid claim ID."
NOT_CLAIMED = "A claim was specified, but the message is not currently claimed."
NO_CLAIM = "The specified claim does not exist or has expired."


def api_error(description: str) -> dict:
    return {"title": "Invalid API request", "description": description}


def body_error(description: str) -> dict:
    return {"title": "Invalid request body", "description": description}


def bodies(document: dict) -> list:
    return [m["body"] for m in document["messages"]]


def other_client() -> dict:
    return {"Client-ID": str(uuid.uuid4())}


async def post_raw(client, queue: str, raw: str | bytes):
    return await client.post(f"/v2/queues/{queue}/messages", body=raw,
                             headers={"Content-Type": "application/json"})


def padded_post(size: int) -> bytes:
    """A one-message post padded with whitespace to exactly ``size`` bytes."""
    core = b'{"messages": [{"body": 1}]'
    return core + b" " * (size - len(core) - 1) + b"}"


# -- POST --------------------------------------------------------------------

async def test_post_is_201_with_location_and_resources_in_order(client):
    result = await client.post("/v2/queues/q1/messages", json={"messages": [
        {"body": "a", "ttl": 300}, {"body": "b"}]})
    assert result.status_code == 201
    resources = result.json["resources"]
    assert result.json == {"resources": resources}
    assert len(resources) == 2
    assert all(r.startswith("/v2/queues/q1/messages/") for r in resources)
    ids = [r.rsplit("/", 1)[1] for r in resources]
    assert len(set(ids)) == 2
    assert result.headers["location"] == "/v2/queues/q1/messages?ids=" + ",".join(ids)


async def test_post_resources_point_at_the_posted_bodies(client):
    result = await client.post("/v2/queues/q1/messages", json={"messages": [
        {"body": "a"}, {"body": {"b": [1]}}, {"body": None}]})
    got = [(await client.get(href)).json["body"] for href in result.json["resources"]]
    assert got == ["a", {"b": [1]}, None]


async def test_post_creates_a_missing_queue(client):
    await client.post_bodies("lazy", 1)
    assert (await client.head("/v2/queues/lazy")).status_code == 204
    assert [q["name"] for q in (await client.get("/v2/queues")).json["queues"]] == [
        "lazy"]


async def test_post_thirty_messages_is_accepted(client):
    ids = await client.post_bodies("q1", *range(30))
    assert len(ids) == 30


async def test_post_default_ttl_is_3600(client):
    [mid] = await client.post_messages("q1", {"body": 1})
    assert (await client.get(f"/v2/queues/q1/messages/{mid}")).json["ttl"] == 3600


async def test_post_default_ttl_comes_from_queue_metadata(client):
    await client.create_queue("q1", {"_default_message_ttl": 120})
    [mid] = await client.post_messages("q1", {"body": 1})
    assert (await client.get(f"/v2/queues/q1/messages/{mid}")).json["ttl"] == 120


@pytest.mark.parametrize("ttl", [60, 1209600])
async def test_post_ttl_bounds_are_accepted(client, ttl):
    [mid] = await client.post_messages("q1", {"body": 1, "ttl": ttl})
    assert (await client.get(f"/v2/queues/q1/messages/{mid}")).json["ttl"] == ttl


async def test_post_drops_unknown_message_fields(client):
    [mid] = await client.post_messages("q1", {"body": 1, "color": "red"})
    message = (await client.get(f"/v2/queues/q1/messages/{mid}")).json
    assert set(message) == {"id", "href", "ttl", "age", "body"}


async def test_post_without_messages_key_is_400(client):
    result = await client.post("/v2/queues/q1/messages", json={"body": 1})
    assert result.status_code == 400
    assert result.json == api_error("No messages were found in the request body.")


async def test_post_top_level_array_is_400(client):
    result = await client.post("/v2/queues/q1/messages", json=[{"body": 1}])
    assert result.status_code == 400
    assert result.json == api_error("No messages were found in the request body.")


@pytest.mark.parametrize("messages", [{"body": 1}, "x", 1, [1], [{"body": 1}, "x"]])
async def test_post_messages_must_be_a_list_of_objects(client, messages):
    result = await client.post("/v2/queues/q1/messages", json={"messages": messages})
    assert result.status_code == 400
    assert result.json == body_error("Document type not supported.")


async def test_post_empty_messages_list_is_400(client):
    result = await client.post("/v2/queues/q1/messages", json={"messages": []})
    assert result.status_code == 400
    assert result.json == api_error("No messages to enqueu.")


async def test_post_message_without_body_is_400(client):
    result = await client.post("/v2/queues/q1/messages",
                               json={"messages": [{"ttl": 60}]})
    assert result.status_code == 400
    assert result.json == body_error('Missing "body" field.')


async def test_post_with_bad_json_is_400(client):
    result = await post_raw(client, "q1", '{"messages": [')
    assert result.status_code == 400
    assert result.json == body_error("Request body could not be parsed.")


@pytest.mark.parametrize("ttl", ["60", 60.5, None, [60]])
async def test_post_non_integer_ttl_is_400(client, ttl):
    result = await client.post("/v2/queues/q1/messages",
                               json={"messages": [{"body": 1, "ttl": ttl}]})
    assert result.status_code == 400
    assert result.json == body_error('The value of the "ttl" field must be a int.')


async def test_post_boolean_ttl_is_400(client):
    result = await client.post("/v2/queues/q1/messages",
                               json={"messages": [{"body": 1, "ttl": True}]})
    assert result.status_code == 400
    assert "ttl" in result.json["description"].lower()


@pytest.mark.parametrize("ttl", [59, 1209601, 0, -60])
async def test_post_ttl_out_of_range_is_400(client, ttl):
    result = await client.post("/v2/queues/q1/messages",
                               json={"messages": [{"body": 1, "ttl": ttl}]})
    assert result.status_code == 400
    assert result.json == api_error(TTL_RANGE)


async def test_post_rejects_the_whole_batch_when_one_message_is_bad(client):
    await client.post("/v2/queues/q1/messages", json={"messages": [
        {"body": 1}, {"body": 2, "ttl": 10}]})
    assert (await client.stats("q1"))["total"] == 0


@pytest.mark.parametrize("raw", [
    '{"messages": [{"body": 9223372036854775808}]}',
    '{"messages": [{"body": {"n": [-9223372036854775809]}}]}',
    '{"messages": [{"body": 1, "ttl": 18446744073709551616}]}',
])
async def test_post_integer_beyond_64_bits_is_400(client, raw):
    result = await post_raw(client, "q1", raw)
    assert result.status_code == 400
    assert result.json == body_error("JSON contains integer that is too large.")


async def test_post_64_bit_integer_limits_are_kept_exactly(client):
    [mid] = await client.post_bodies("q1", [2**63 - 1, -(2**63)])
    message = await client.get(f"/v2/queues/q1/messages/{mid}")
    assert message.json["body"] == [2**63 - 1, -(2**63)]


async def test_post_of_exactly_262144_bytes_is_accepted(client):
    result = await post_raw(client, "q1", padded_post(262144))
    assert result.status_code == 201


async def test_post_over_262144_bytes_counting_whitespace_is_400(client):
    result = await post_raw(client, "q1", padded_post(262145))
    assert result.status_code == 400
    assert result.json == api_error(POST_TOO_LARGE)


async def test_post_over_the_queue_max_size_is_400(client):
    await client.create_queue("q1", {"_max_messages_post_size": 100})
    result = await post_raw(client, "q1", padded_post(101))
    assert result.status_code == 400
    assert result.json == api_error(
        "Message collection size is too large. The max size for current queue is"
        " 100. It is calculated by max size = min(max_messages_post_size_config:"
        " 262144, max_messages_post_size_queue: 100).")


async def test_post_of_exactly_the_queue_max_size_is_accepted(client):
    await client.create_queue("q1", {"_max_messages_post_size": 100})
    result = await post_raw(client, "q1", padded_post(100))
    assert result.status_code == 201


async def test_post_size_limit_is_configurable(make_client):
    client = make_client(max_messages_post_size=100)
    result = await post_raw(client, "q1", padded_post(101))
    assert result.status_code == 400
    assert result.json == api_error("Message collection size is too large."
                                    " Max size 100")


async def test_post_checksum_when_enabled(make_client):
    client = make_client(api={"enable_checksum": True})
    [mid] = await client.post_bodies("q1", {"a": 1, "b": "x"})
    message = (await client.get(f"/v2/queues/q1/messages/{mid}")).json
    expected = hashlib.md5(json.dumps({"a": 1, "b": "x"}).encode()).hexdigest()
    assert message["checksum"] == f"MD5:{expected}"


async def test_no_checksum_by_default(client):
    [mid] = await client.post_bodies("q1", {"a": 1})
    assert "checksum" not in (await client.get(f"/v2/queues/q1/messages/{mid}")).json


# -- delay on non-delayed queues (§3.3) --------------------------------------

async def test_delay_is_ignored_on_a_non_delayed_queue(client):
    await client.post_messages("q1", {"body": 1, "delay": 300})
    assert bodies(await client.list_messages("q1", echo=True)) == [1]


async def test_out_of_range_delay_is_accepted_on_a_non_delayed_queue(client):
    result = await client.post("/v2/queues/q1/messages",
                               json={"messages": [{"body": 1, "delay": 901}]})
    assert result.status_code == 201
    assert bodies(await client.list_messages("q1", echo=True)) == [1]


async def test_delayed_message_on_non_delayed_queue_is_claimable(client):
    await client.post_messages("q1", {"body": 1, "delay": 300})
    _, messages = await client.claim("q1")
    assert [m["body"] for m in messages] == [1]


# -- delayed queues (§3.3) ---------------------------------------------------

async def delayed_queue(client, delay: int = 30) -> None:
    await client.create_queue("dq", {"_default_message_delay": delay})


async def test_delayed_queue_hides_messages_for_the_default_delay(client, clock):
    await delayed_queue(client)
    await client.post_bodies("dq", 1)
    assert bodies(await client.list_messages("dq", echo=True)) == []
    clock.shift(31)
    assert bodies(await client.list_messages("dq", echo=True)) == [1]


async def test_delayed_queue_honours_a_per_message_delay(client, clock):
    await delayed_queue(client)
    await client.post_messages("dq", {"body": "now", "delay": 0},
                               {"body": "later", "delay": 100})
    assert bodies(await client.list_messages("dq", echo=True)) == ["now"]
    clock.shift(50)
    assert bodies(await client.list_messages("dq", echo=True)) == ["now"]
    clock.shift(51)
    assert bodies(await client.list_messages("dq", echo=True)) == ["now", "later"]


async def test_include_delayed_lists_delayed_messages(client):
    await delayed_queue(client)
    await client.post_bodies("dq", 1)
    listed = await client.list_messages("dq", echo=True, include_delayed=True)
    assert bodies(listed) == [1]


async def test_delayed_messages_are_not_claimed(client, clock):
    await delayed_queue(client)
    await client.post_bodies("dq", 1)
    result = await client.post("/v2/queues/dq/claims")
    assert result.status_code == 204
    clock.shift(31)
    _, messages = await client.claim("dq")
    assert [m["body"] for m in messages] == [1]


async def test_delayed_messages_are_visible_by_id_and_in_stats(client):
    await delayed_queue(client)
    [mid] = await client.post_bodies("dq", 1)
    assert (await client.get(f"/v2/queues/dq/messages/{mid}")).status_code == 200
    by_ids = await client.get("/v2/queues/dq/messages", params={"ids": mid})
    assert bodies(by_ids.json) == [1]
    assert (await client.stats("dq"))["total"] == 1


@pytest.mark.parametrize("delay", [901, -1])
async def test_delayed_queue_validates_delay_range(client, delay):
    await delayed_queue(client)
    result = await client.post("/v2/queues/dq/messages",
                               json={"messages": [{"body": 1, "delay": delay}]})
    assert result.status_code == 400
    assert result.json == api_error(DELAY_RANGE)


async def test_delayed_queue_validates_delay_type(client):
    await delayed_queue(client)
    result = await client.post("/v2/queues/dq/messages",
                               json={"messages": [{"body": 1, "delay": "10"}]})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"


async def test_delayed_queue_accepts_delay_900(client):
    await delayed_queue(client)
    result = await client.post("/v2/queues/dq/messages",
                               json={"messages": [{"body": 1, "delay": 900}]})
    assert result.status_code == 201


async def test_list_next_link_forces_include_delayed_on_non_delayed_queue(client):
    await client.post_bodies("q1", 1, 2, 3)
    result = await client.get("/v2/queues/q1/messages?limit=2&echo=true")
    [link] = result.json["links"]
    assert link["rel"] == "next"
    assert link["href"].startswith(
        "/v2/queues/q1/messages?limit=2&echo=true&include_delayed=true&marker=")


async def test_list_next_link_does_not_force_include_delayed_on_delayed_queue(
        client, clock):
    await delayed_queue(client)
    await client.post_bodies("dq", 1)
    clock.shift(31)
    result = await client.get("/v2/queues/dq/messages?echo=true")
    [link] = result.json["links"]
    assert "include_delayed" not in link["href"]


# -- GET list ----------------------------------------------------------------

async def test_list_message_shape(client, clock):
    [mid] = await client.post_bodies("q1", {"k": "v"}, ttl=120)
    clock.shift(7)
    [message] = (await client.list_messages("q1", echo=True))["messages"]
    assert message == {"id": mid, "href": f"/v2/queues/q1/messages/{mid}",
                       "ttl": 120, "age": 7, "body": {"k": "v"}}


async def test_list_is_oldest_first(client):
    await client.post_bodies("q1", 1, 2)
    await client.post_bodies("q1", 3)
    assert bodies(await client.list_messages("q1", echo=True)) == [1, 2, 3]


async def test_list_missing_queue_is_200_and_empty(client):
    result = await client.get("/v2/queues/missing/messages")
    assert result.status_code == 200
    assert result.json == {"messages": [], "links": []}


async def test_list_does_not_create_the_queue(client):
    await client.get("/v2/queues/missing/messages")
    assert (await client.head("/v2/queues/missing")).status_code == 404


async def test_list_default_page_is_10(client):
    await client.post_bodies("q1", *range(12))
    assert bodies(await client.list_messages("q1", echo=True)) == list(range(10))


@pytest.mark.parametrize("limit", ["0", "21", "-1"])
async def test_list_limit_out_of_range_is_400(client, limit):
    result = await client.get("/v2/queues/q1/messages", params={"limit": limit})
    assert result.status_code == 400
    assert result.json == api_error(LIMIT_TEXT)


async def test_list_limit_not_an_integer_is_invalid_parameter(client):
    result = await client.get("/v2/queues/q1/messages", params={"limit": "abc"})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid parameter"


async def test_list_limit_20(client):
    await client.post_bodies("q1", *range(25))
    listed = await client.list_messages("q1", echo=True, limit=20)
    assert len(listed["messages"]) == 20


async def test_list_hides_own_messages_by_default(client):
    await client.post_bodies("q1", 1)
    assert (await client.list_messages("q1"))["messages"] == []


async def test_list_shows_other_clients_messages_without_echo(client):
    await client.post_bodies("q1", 1, headers=other_client())
    assert bodies(await client.list_messages("q1")) == [1]


async def test_list_echo_false_is_explicit_default(client):
    await client.post_bodies("q1", "mine")
    await client.post_bodies("q1", "theirs", headers=other_client())
    assert bodies(await client.list_messages("q1", echo=False)) == ["theirs"]


@pytest.mark.parametrize("value", ["true", "True", "t", "yes", "y", "1", "on"])
async def test_list_accepts_true_spellings(client, value):
    await client.post_bodies("q1", 1)
    result = await client.get("/v2/queues/q1/messages", params={"echo": value})
    assert bodies(result.json) == [1]


@pytest.mark.parametrize("value", ["false", "False", "f", "no", "n", "0", "off"])
async def test_list_accepts_false_spellings(client, value):
    await client.post_bodies("q1", 1)
    result = await client.get("/v2/queues/q1/messages", params={"echo": value})
    assert result.json == {"messages": [], "links": []}


@pytest.mark.parametrize("name", ["echo", "include_claimed", "include_delayed"])
@pytest.mark.parametrize("value", ["None", "abc"])
async def test_list_invalid_boolean_is_invalid_parameter(client, name, value):
    result = await client.get("/v2/queues/q1/messages", params={name: value})
    assert result.status_code == 400
    assert result.json == {
        "title": "Invalid parameter",
        "description": f'The "{name}" parameter is invalid. The value of the'
                       ' parameter must be "true" or "false".'}


async def test_list_hides_claimed_messages(client):
    await client.post_bodies("q1", 1, 2)
    await client.claim("q1", limit=1)
    assert bodies(await client.list_messages("q1", echo=True)) == [2]


async def test_list_include_claimed_shows_them_with_claim_href(client):
    ids = await client.post_bodies("q1", 1, 2)
    claim_id, _ = await client.claim("q1", limit=1)
    listed = await client.list_messages("q1", echo=True, include_claimed=True)
    assert bodies(listed) == [1, 2]
    assert listed["messages"][0]["href"] == (
        f"/v2/queues/q1/messages/{ids[0]}?claim_id={claim_id}")
    assert listed["messages"][1]["href"] == f"/v2/queues/q1/messages/{ids[1]}"


async def test_list_pages_until_an_empty_page(client):
    await client.post_bodies("q1", *range(5))
    seen, href, pages = [], "/v2/queues/q1/messages?limit=2&echo=true", 0
    while True:
        page = (await client.get(href)).json
        pages += 1
        if not page["messages"]:
            assert page["links"] == []
            break
        seen += bodies(page)
        [link] = page["links"]
        assert link["rel"] == "next"
        href = link["href"]
        assert pages < 10
    assert seen == [0, 1, 2, 3, 4]
    assert pages == 4


async def test_last_next_link_sees_later_messages(client):
    await client.post_bodies("q1", 1, 2)
    page = (await client.get("/v2/queues/q1/messages?echo=true")).json
    assert bodies(page) == [1, 2]
    await client.post_bodies("q1", 3)
    following = (await client.get(page["links"][0]["href"])).json
    assert bodies(following) == [3]


async def test_list_next_link_keeps_include_claimed(client):
    await client.post_bodies("q1", 1)
    result = await client.get(
        "/v2/queues/q1/messages?include_claimed=true&echo=true")
    assert "include_claimed=true" in result.json["links"][0]["href"]


async def test_list_with_unknown_marker_is_an_empty_page(client):
    await client.post_bodies("q1", 1)
    result = await client.get("/v2/queues/q1/messages?echo=true&marker=bogus")
    assert result.status_code == 200
    assert result.json["messages"] == []


@pytest.mark.parametrize("marker", ["9" * 40, "-" + "9" * 40])
async def test_list_with_out_of_range_numeric_marker_is_not_an_error(client, marker):
    await client.post_bodies("q1", 1)
    result = await client.get(f"/v2/queues/q1/messages?echo=true&marker={marker}")
    assert result.status_code == 200


async def test_list_blank_marker_is_ignored(client):
    await client.post_bodies("q1", 1)
    result = await client.get("/v2/queues/q1/messages?echo=true&marker=")
    assert bodies(result.json) == [1]


# -- GET ?ids= ---------------------------------------------------------------

async def test_get_by_ids_returns_the_found_subset(client):
    ids = await client.post_bodies("q1", 1, 2, 3)
    result = await client.get(f"/v2/queues/q1/messages?ids={ids[0]},bogus,{ids[2]}")
    assert result.status_code == 200
    assert sorted(bodies(result.json)) == [1, 3]
    assert set(result.json) == {"messages"}


async def test_get_by_ids_accepts_repeated_parameters(client):
    ids = await client.post_bodies("q1", 1, 2)
    result = await client.get(f"/v2/queues/q1/messages?ids={ids[0]}&ids={ids[1]}")
    assert sorted(bodies(result.json)) == [1, 2]


async def test_get_by_ids_includes_claimed_and_own_messages(client):
    ids = await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    result = await client.get(f"/v2/queues/q1/messages?ids={ids[0]}")
    [message] = result.json["messages"]
    assert message["href"] == f"/v2/queues/q1/messages/{ids[0]}?claim_id={claim_id}"


async def test_get_by_ids_none_found_is_404(client, project):
    await client.post_bodies("q1", 1)
    result = await client.get("/v2/queues/q1/messages?ids=bogus")
    assert result.status_code == 404
    assert result.json == {
        "title": "Not found",
        "description": f"No messages with IDs: ['bogus'] found in the queue q1 for"
                       f" project {project}."}


async def test_get_by_ids_on_missing_queue_is_404(client):
    result = await client.get("/v2/queues/missing/messages?ids=bogus")
    assert result.status_code == 404


async def test_get_by_ids_over_20_is_400(client):
    [mid] = await client.post_bodies("q1", 1)
    ids = [mid] + [f"x{i}" for i in range(20)]
    result = await client.get("/v2/queues/q1/messages?ids=" + ",".join(ids))
    assert result.status_code == 400
    assert result.json == api_error(LIMIT_TEXT)


async def test_get_by_20_ids_is_accepted(client):
    [mid] = await client.post_bodies("q1", 1)
    ids = [mid] + [f"x{i}" for i in range(19)]
    result = await client.get("/v2/queues/q1/messages?ids=" + ",".join(ids))
    assert result.status_code == 200


async def test_blank_ids_parameter_lists_instead(client):
    await client.post_bodies("q1", 1)
    result = await client.get("/v2/queues/q1/messages?ids=&echo=true")
    assert result.status_code == 200
    assert bodies(result.json) == [1]
    assert "links" in result.json


# -- DELETE ?ids= ------------------------------------------------------------

async def test_delete_by_ids_removes_them(client):
    ids = await client.post_bodies("q1", 1, 2, 3)
    result = await client.delete(f"/v2/queues/q1/messages?ids={ids[0]},{ids[2]}")
    assert result.status_code == 204
    assert bodies(await client.list_messages("q1", echo=True)) == [2]


async def test_delete_by_ids_ignores_unknown_ids_and_missing_queues(client):
    assert (await client.delete("/v2/queues/q1/messages?ids=bogus")).status_code == 204
    assert (await client.delete(
        "/v2/queues/missing/messages?ids=a,b")).status_code == 204


async def test_delete_by_ids_deletes_claimed_messages(client):
    ids = await client.post_bodies("q1", 1)
    await client.claim("q1")
    await client.delete(f"/v2/queues/q1/messages?ids={ids[0]}")
    assert (await client.stats("q1"))["total"] == 0


async def test_delete_by_over_20_ids_is_400(client):
    ids = ",".join(f"x{i}" for i in range(21))
    result = await client.delete(f"/v2/queues/q1/messages?ids={ids}")
    assert result.status_code == 400
    assert result.json == api_error(IDS_TEXT)


async def test_delete_by_20_ids_is_accepted(client):
    ids = await client.post_bodies("q1", 1)
    listed = ",".join(ids + [f"x{i}" for i in range(19)])
    result = await client.delete(f"/v2/queues/q1/messages?ids={listed}")
    assert result.status_code == 204
    assert (await client.stats("q1"))["total"] == 0


async def test_delete_without_ids_or_pop_is_400(client):
    result = await client.delete("/v2/queues/q1/messages")
    assert result.status_code == 400
    assert result.json == api_error(
        'The request should have either "ids" or "pop" parameter in the request,'
        " to be able to delete.")


async def test_delete_with_ids_and_pop_is_400(client):
    result = await client.delete("/v2/queues/q1/messages?ids=a&pop=1")
    assert result.status_code == 400
    assert result.json == api_error(
        "pop and id params cannot be present together in the delete request.")


async def test_delete_by_ids_with_claim_ids_required(make_client):
    client = make_client(message_delete_with_claim_id=True)
    ids = await client.post_bodies("q1", 1)
    result = await client.delete(f"/v2/queues/q1/messages?ids={ids[0]}")
    assert result.status_code == 400
    assert result.json["title"] == "Invalid API request"
    assert (await client.stats("q1"))["total"] == 1


async def test_delete_by_ids_with_matching_claim_ids(make_client):
    client = make_client(message_delete_with_claim_id=True)
    ids = await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    result = await client.delete(
        f"/v2/queues/q1/messages?ids={ids[0]}&claim_ids={claim_id}")
    assert result.status_code == 204
    assert (await client.stats("q1"))["total"] == 0


# -- DELETE ?pop= ------------------------------------------------------------

async def test_pop_returns_and_removes_messages(client):
    await client.post_bodies("q1", 1, 2, 3)
    result = await client.delete("/v2/queues/q1/messages?pop=2")
    assert result.status_code == 200
    assert len(result.json["messages"]) == 2
    assert (await client.stats("q1"))["total"] == 1


async def test_popped_message_shape_has_no_href(client, clock):
    [mid] = await client.post_bodies("q1", {"k": 1}, ttl=120)
    clock.shift(3)
    [message] = (await client.delete("/v2/queues/q1/messages?pop=1")).json["messages"]
    assert set(message) == {"id", "age", "ttl", "body", "claim_id", "claim_count"}
    assert (message["id"], message["age"], message["ttl"], message["body"]) == (
        mid, 3, 120, {"k": 1})


async def test_pop_skips_claimed_messages(client):
    await client.post_bodies("q1", 1, 2)
    await client.claim("q1", limit=1)
    popped = (await client.delete("/v2/queues/q1/messages?pop=5")).json
    assert bodies(popped) == [2]


async def test_pop_on_empty_or_missing_queue_returns_empty_list(client):
    result = await client.delete("/v2/queues/missing/messages?pop=3")
    assert result.status_code == 200
    assert result.json == {"messages": []}


@pytest.mark.parametrize("pop", ["0", "-1", "21", "1000000"])
async def test_pop_out_of_range_is_400(client, pop):
    result = await client.delete("/v2/queues/q1/messages", params={"pop": pop})
    assert result.status_code == 400
    assert result.json == api_error(POP_TEXT)


async def test_pop_20_is_accepted(client):
    await client.post_bodies("q1", *range(25))
    result = await client.delete("/v2/queues/q1/messages?pop=20")
    assert len(result.json["messages"]) == 20


async def test_pop_not_an_integer_is_invalid_parameter(client):
    result = await client.delete("/v2/queues/q1/messages?pop=abc")
    assert result.status_code == 400
    assert result.json["title"] == "Invalid parameter"


# -- GET /messages/{id} ------------------------------------------------------

async def test_get_message(client, clock):
    [mid] = await client.post_bodies("q1", "hello", ttl=300)
    clock.shift(4)
    result = await client.get(f"/v2/queues/q1/messages/{mid}")
    assert result.status_code == 200
    assert result.json == {"id": mid, "href": f"/v2/queues/q1/messages/{mid}",
                           "ttl": 300, "age": 4, "body": "hello"}


async def test_get_claimed_message_has_claim_href(client):
    [mid] = await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    result = await client.get(f"/v2/queues/q1/messages/{mid}")
    assert result.json["href"] == f"/v2/queues/q1/messages/{mid}?claim_id={claim_id}"


async def test_get_unknown_message_is_404(client, project):
    await client.post_bodies("q1", 1)
    result = await client.get("/v2/queues/q1/messages/bogus")
    assert result.status_code == 404
    assert result.json == {
        "title": "Not found",
        "description": f"Message bogus does not exist in queue q1 for project"
                       f" {project}"}


async def test_get_message_of_another_queue_is_404(client):
    [mid] = await client.post_bodies("q1", 1)
    await client.create_queue("q2")
    assert (await client.get(f"/v2/queues/q2/messages/{mid}")).status_code == 404


async def test_get_message_of_another_project_is_404(client):
    [mid] = await client.post_bodies("q1", 1)
    result = await client.get(f"/v2/queues/q1/messages/{mid}",
                              headers={"X-Project-ID": "someone-else"})
    assert result.status_code == 404


# -- DELETE /messages/{id} ---------------------------------------------------

async def test_delete_unclaimed_message(client):
    [mid] = await client.post_bodies("q1", 1)
    result = await client.delete(f"/v2/queues/q1/messages/{mid}")
    assert result.status_code == 204
    assert (await client.get(f"/v2/queues/q1/messages/{mid}")).status_code == 404


async def test_delete_unknown_message_is_204(client):
    await client.post_bodies("q1", 1)
    assert (await client.delete("/v2/queues/q1/messages/bogus")).status_code == 204
    assert (await client.delete("/v2/queues/missing/messages/bogus")).status_code == 204


async def test_delete_claimed_message_without_claim_id_is_403(client):
    [mid] = await client.post_bodies("q1", 1)
    await client.claim("q1")
    result = await client.delete(f"/v2/queues/q1/messages/{mid}")
    assert result.status_code == 403
    assert result.json == {"title": "Unable to delete", "description": CLAIMED}
    assert (await client.stats("q1"))["total"] == 1


async def test_delete_claimed_message_with_its_claim_id(client):
    [mid] = await client.post_bodies("q1", 1)
    claim_id, _ = await client.claim("q1")
    result = await client.delete(f"/v2/queues/q1/messages/{mid}?claim_id={claim_id}")
    assert result.status_code == 204
    assert (await client.stats("q1"))["total"] == 0


async def test_delete_unclaimed_message_with_a_claim_id_is_400(client):
    _, second = await client.post_bodies("q1", 1, 2)
    claim_id, _ = await client.claim("q1", limit=1)
    result = await client.delete(
        f"/v2/queues/q1/messages/{second}?claim_id={claim_id}")
    assert result.status_code == 400
    assert result.json == {"title": "Unable to delete", "description": NOT_CLAIMED}


async def test_delete_claimed_message_with_unknown_claim_id_is_400(client):
    [mid] = await client.post_bodies("q1", 1)
    await client.claim("q1")
    result = await client.delete(f"/v2/queues/q1/messages/{mid}?claim_id=bogus")
    assert result.status_code == 400
    assert result.json == {"title": "Unable to delete", "description": NO_CLAIM}
    assert (await client.stats("q1"))["total"] == 1


async def test_delete_claimed_message_with_another_live_claim_id_is_403(client):
    first, _ = await client.post_bodies("q1", 1, 2)
    await client.claim("q1", limit=1)
    other_claim, _ = await client.claim("q1", limit=1)
    result = await client.delete(
        f"/v2/queues/q1/messages/{first}?claim_id={other_claim}")
    assert result.status_code == 403
    assert result.json == {"title": "Unable to delete", "description": CLAIMED}


async def test_delete_message_with_expired_claim_id_is_400(client, clock):
    [mid] = await client.post_bodies("q1", 1, ttl=600)
    claim_id, _ = await client.claim("q1", ttl=60)
    clock.shift(61)
    result = await client.delete(f"/v2/queues/q1/messages/{mid}?claim_id={claim_id}")
    assert result.status_code == 400
    assert result.json == {"title": "Unable to delete", "description": NO_CLAIM}
    assert (await client.stats("q1"))["total"] == 1
