"""Queues: list, create, get, head, patch, delete, stats, purge (§2.2, §3.2)."""

from __future__ import annotations

import datetime
import json
import time
import urllib.parse

import pytest

from tests.api.conftest import PATCH_TYPE, RESERVED_DEFAULTS

LIMIT_TEXT = "Limit must be at least 1 and no greater than 20."


def names(document: dict) -> list[str]:
    return [q["name"] for q in document["queues"]]


def query(href: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(href).query))


async def patch(client, queue: str, changes, **kw):
    return await client.patch(f"/v2/queues/{queue}", body=json.dumps(changes),
                              headers={"Content-Type": PATCH_TYPE, **kw})


# -- GET /v2/queues ----------------------------------------------------------

async def test_list_of_empty_project(client):
    result = await client.get("/v2/queues")
    assert result.status_code == 200
    assert result.json == {"queues": [], "links": []}


async def test_list_is_sorted_by_name_with_hrefs(client):
    for name in ("b", "c", "a"):
        await client.create_queue(name)
    queues = (await client.get("/v2/queues")).json["queues"]
    assert queues == [{"name": n, "href": f"/v2/queues/{n}"} for n in "abc"]


async def test_list_default_page_is_10(client):
    for i in range(11):
        await client.create_queue(f"q{i:02d}")
    assert len((await client.get("/v2/queues")).json["queues"]) == 10


@pytest.mark.parametrize("limit", ["0", "21", "-1"])
async def test_list_limit_out_of_range_is_400(client, limit):
    result = await client.get("/v2/queues", params={"limit": limit})
    assert result.status_code == 400
    assert result.json == {"title": "Invalid API request", "description": LIMIT_TEXT}


async def test_list_limit_20_is_accepted(client):
    result = await client.get("/v2/queues", params={"limit": "20"})
    assert result.status_code == 200


async def test_list_limit_not_an_integer_is_invalid_parameter(client):
    result = await client.get("/v2/queues", params={"limit": "abc"})
    assert result.status_code == 400
    assert result.json == {
        "title": "Invalid parameter",
        "description": 'The "limit" parameter is invalid.'
                       " The value must be an integer."}


async def test_list_detailed_not_a_boolean_is_invalid_parameter(client):
    result = await client.get("/v2/queues", params={"detailed": "None"})
    assert result.status_code == 400
    assert result.json == {
        "title": "Invalid parameter",
        "description": 'The "detailed" parameter is invalid. The value of the'
                       ' parameter must be "true" or "false".'}


async def test_list_next_link_keeps_params_in_zaqar_order(client):
    await client.create_queue("a")
    await client.create_queue("b")
    result = await client.get(
        "/v2/queues?with_count=true&detailed=true&limit=1")
    assert result.json["links"] == [{
        "rel": "next",
        "href": "/v2/queues?limit=1&detailed=true&with_count=true&marker=a"}]


async def test_list_pages_with_marker_until_empty_page(client):
    for name in ("a", "b", "c"):
        await client.create_queue(name)
    first = (await client.get("/v2/queues?limit=2")).json
    assert names(first) == ["a", "b"]
    second = (await client.get(first["links"][0]["href"])).json
    assert names(second) == ["c"]
    third = (await client.get(second["links"][0]["href"])).json
    assert third == {"queues": [], "links": []}


async def test_list_marker_is_the_last_name(client):
    for name in ("a", "b", "c"):
        await client.create_queue(name)
    result = await client.get("/v2/queues", params={"marker": "a"})
    assert names(result.json) == ["b", "c"]


async def test_list_blank_marker_is_ignored(client):
    await client.create_queue("a")
    result = await client.get("/v2/queues?marker=")
    assert names(result.json) == ["a"]


async def test_list_names_with_dots_list_and_page_correctly(client):
    for name in ("a.c", "a.b", "ab", "a-b"):
        await client.create_queue(name)
    first = (await client.get("/v2/queues?limit=2")).json
    assert names(first) == ["a-b", "a.b"]
    assert first["queues"][1]["href"] == "/v2/queues/a.b"
    second = (await client.get(first["links"][0]["href"])).json
    assert names(second) == ["a.c", "ab"]


async def test_list_without_detailed_has_no_metadata(client):
    await client.create_queue("a", {"k": "v"})
    [queue] = (await client.get("/v2/queues")).json["queues"]
    assert "metadata" not in queue


async def test_list_detailed_includes_metadata_with_reserved_defaults(client):
    await client.create_queue("a", {"k": "v", "_default_message_ttl": 120})
    [queue] = (await client.get("/v2/queues?detailed=true")).json["queues"]
    assert queue["metadata"] == {**RESERVED_DEFAULTS, "k": "v",
                                 "_default_message_ttl": 120}


async def test_list_with_count_gives_the_project_total(client):
    for name in ("a", "b", "c"):
        await client.create_queue(name)
    result = await client.get("/v2/queues?limit=1&with_count=true")
    assert result.json["count"] == 3
    assert names(result.json) == ["a"]


async def test_list_with_count_omits_a_zero_count(client):
    result = await client.get("/v2/queues?with_count=true")
    assert "count" not in result.json


async def test_list_without_with_count_has_no_count(client):
    await client.create_queue("a")
    assert "count" not in (await client.get("/v2/queues")).json


async def test_list_name_filter_matches_substrings(client):
    for name in ("alpha", "beta", "alphabet", "gamma"):
        await client.create_queue(name)
    result = await client.get("/v2/queues?name=alpha")
    assert names(result.json) == ["alpha", "alphabet"]


async def test_list_name_filter_is_kept_in_next_link(client):
    for name in ("alpha", "alphabet"):
        await client.create_queue(name)
    result = await client.get("/v2/queues?name=alpha&limit=1")
    assert query(result.json["links"][0]["href"]) == {
        "limit": "1", "name": "alpha", "marker": "alpha"}


async def test_list_metadata_filter_compares_integers(client):
    await client.create_queue("n31", {"node": 31})
    await client.create_queue("n32", {"node": 32})
    await client.create_queue("plain")
    result = await client.get("/v2/queues?node=31")
    assert names(result.json) == ["n31"]


async def test_list_metadata_filter_compares_strings(client):
    await client.create_queue("red", {"color": "red"})
    await client.create_queue("blue", {"color": "blue"})
    result = await client.get("/v2/queues?color=red")
    assert names(result.json) == ["red"]


async def test_list_next_link_drops_metadata_filters(client):
    await client.create_queue("n1", {"node": 31})
    await client.create_queue("n2", {"node": 31})
    result = await client.get("/v2/queues?node=31&limit=1")
    assert names(result.json) == ["n1"]
    assert query(result.json["links"][0]["href"]) == {"limit": "1", "marker": "n1"}


# -- PUT /v2/queues/{name} ---------------------------------------------------

async def test_put_creates_with_201_and_location(client):
    result = await client.put("/v2/queues/q1")
    assert result.status_code == 201
    assert result.headers["location"] == "/v2/queues/q1"


async def test_put_existing_is_204_with_location(client):
    await client.create_queue("q1")
    result = await client.put("/v2/queues/q1")
    assert result.status_code == 204
    assert result.headers["location"] == "/v2/queues/q1"


async def test_second_put_does_not_change_metadata(client):
    await client.create_queue("q1", {"k": "first"})
    result = await client.put("/v2/queues/q1", json={"k": "second", "other": 1})
    assert result.status_code == 204
    stored = (await client.get("/v2/queues/q1")).json
    assert stored["k"] == "first" and "other" not in stored


async def test_put_stores_metadata(client):
    await client.create_queue("q1", {"k": "v", "n": [1, 2]})
    assert (await client.get("/v2/queues/q1")).json == {
        **RESERVED_DEFAULTS, "k": "v", "n": [1, 2]}


@pytest.mark.parametrize("raw", ["[]", "null", "1", '"x"'])
async def test_put_with_non_object_body_is_400(client, raw):
    result = await client.put("/v2/queues/q1", body=raw)
    assert result.status_code == 400
    assert result.json == {"title": "Invalid request body",
                           "description": "Document type not supported."}


async def test_put_with_integer_beyond_64_bits_is_400(client):
    result = await client.put("/v2/queues/q1", body='{"big": 18446744073709551616}')
    assert result.status_code == 400
    assert result.json == {"title": "Invalid request body",
                           "description": "JSON contains integer that is too large."}


async def test_put_with_bad_json_is_400(client):
    result = await client.put("/v2/queues/q1", body="{not json")
    assert result.status_code == 400
    assert result.json == {"title": "Invalid request body",
                           "description": "Request body could not be parsed."}


async def test_put_rejected_body_creates_no_queue(client):
    await client.put("/v2/queues/q1", body="[]")
    assert (await client.get("/v2/queues")).json["queues"] == []


def padded_json(size: int) -> bytes:
    """A small JSON object padded with whitespace to exactly ``size`` bytes."""
    core = b'{"k": "v"'
    return core + b" " * (size - len(core) - 1) + b"}"


async def test_put_metadata_of_65536_bytes_is_accepted(client):
    result = await client.put("/v2/queues/q1", body=padded_json(65536))
    assert result.status_code == 201


async def test_put_metadata_over_65536_bytes_counting_whitespace_is_400(client):
    result = await client.put("/v2/queues/q1", body=padded_json(65537))
    assert result.status_code == 400
    assert result.json == {
        "title": "Invalid API request",
        "description": "Queue metadata is too large. Max size: 65536"}


@pytest.mark.parametrize("metadata", [
    {"_default_message_ttl": 59},
    {"_default_message_ttl": 1209601},
    {"_default_message_ttl": "3600"},
    {"_max_messages_post_size": 262145},
    {"_max_messages_post_size": -1},
    {"_max_messages_post_size": "big"},
    {"_default_message_delay": 901},
    {"_default_message_delay": -1},
    {"_dead_letter_queue_messages_ttl": 59},
    {"_dead_letter_queue_messages_ttl": 1209601},
    {"_max_claim_count": "two"},
])
async def test_put_invalid_reserved_metadata_is_400(client, metadata):
    result = await client.put("/v2/queues/q1", json=metadata)
    assert result.status_code == 400
    assert result.json["title"] == "Invalid API request"
    assert next(iter(metadata)) in result.json["description"]


async def test_put_encrypt_messages_must_be_boolean(client):
    result = await client.put("/v2/queues/q1", json={"_enable_encrypt_messages": "yes"})
    assert result.status_code == 400
    assert result.json["description"] == "_enable_encrypt_messages must be boolean."


async def test_put_encrypt_messages_true_is_refused(client):
    result = await client.put("/v2/queues/q1", json={"_enable_encrypt_messages": True})
    assert result.status_code == 400
    assert (await client.get("/v2/queues")).json["queues"] == []


async def test_put_encrypt_messages_false_is_accepted(client):
    result = await client.put("/v2/queues/q1", json={"_enable_encrypt_messages": False})
    assert result.status_code == 201


async def test_put_valid_reserved_metadata_is_stored(client):
    metadata = {"_max_messages_post_size": 1000, "_default_message_ttl": 120,
                "_default_message_delay": 10, "_dead_letter_queue": "dlq",
                "_dead_letter_queue_messages_ttl": 600, "_max_claim_count": 3,
                "_enable_encrypt_messages": False}
    await client.create_queue("q1", metadata)
    assert (await client.get("/v2/queues/q1")).json == metadata


# -- GET / HEAD /v2/queues/{name} --------------------------------------------

async def test_get_missing_queue_is_200_with_the_seven_defaults(client):
    result = await client.get("/v2/queues/missing")
    assert result.status_code == 200
    assert result.json == RESERVED_DEFAULTS


async def test_get_fills_falsy_reserved_values_with_defaults(client):
    await client.create_queue("q1", {"_max_claim_count": 0})
    assert (await client.get("/v2/queues/q1")).json == RESERVED_DEFAULTS


async def test_get_does_not_create_the_queue(client):
    await client.get("/v2/queues/missing")
    assert (await client.get("/v2/queues")).json["queues"] == []


async def test_head_existing_queue_is_204(client):
    await client.create_queue("q1")
    result = await client.head("/v2/queues/q1")
    assert result.status_code == 204
    assert result.content == b""


async def test_head_missing_queue_is_404(client):
    result = await client.head("/v2/queues/missing")
    assert result.status_code == 404


# -- PATCH /v2/queues/{name} -------------------------------------------------

async def test_patch_with_json_content_type_is_415(client):
    await client.create_queue("q1")
    result = await client.patch("/v2/queues/q1", json=[
        {"op": "add", "path": "/metadata/k", "value": 1}])
    assert result.status_code == 415
    assert result.json == {
        "title": "415 Unsupported Media Type",
        "description": "Accepted media type for PATCH: {'Accept-Patch':"
                       " 'application/openstack-messaging-v2.0-json-patch'}."}


async def test_patch_add_returns_full_metadata(client):
    await client.create_queue("q1", {"a": 1})
    result = await patch(client, "q1", [{"op": "add", "path": "/metadata/b",
                                         "value": "x"}])
    assert result.status_code == 200
    assert result.json == {**RESERVED_DEFAULTS, "a": 1, "b": "x"}


async def test_patch_is_stored(client):
    await client.create_queue("q1", {"a": 1})
    await patch(client, "q1", [{"op": "replace", "path": "/metadata/a", "value": 2},
                               {"op": "add", "path": "/metadata/b", "value": 3}])
    assert (await client.get("/v2/queues/q1")).json == {
        **RESERVED_DEFAULTS, "a": 2, "b": 3}


async def test_patch_remove_deletes_a_stored_key(client):
    await client.create_queue("q1", {"a": 1, "b": 2})
    result = await patch(client, "q1", [{"op": "remove", "path": "/metadata/a"}])
    assert result.status_code == 200
    assert result.json == {**RESERVED_DEFAULTS, "b": 2}


async def test_patch_path_root_is_case_insensitive(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [{"op": "add", "path": "/METADATA/k",
                                         "value": 1}])
    assert result.status_code == 200
    assert result.json["k"] == 1


async def test_patch_decodes_pointer_escapes(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [
        {"op": "add", "path": "/metadata/a~1b", "value": 1},
        {"op": "add", "path": "/metadata/c~0d", "value": 2}])
    assert result.status_code == 200
    assert result.json["a/b"] == 1 and result.json["c~d"] == 2


async def test_patch_with_no_operations_changes_nothing(client):
    await client.create_queue("q1", {"a": 1})
    result = await patch(client, "q1", [])
    assert result.status_code == 200
    assert result.json == {**RESERVED_DEFAULTS, "a": 1}


async def test_patch_content_type_must_be_exact(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [{"op": "add", "path": "/metadata/k",
                                         "value": 1}],
                         **{"Content-Type": PATCH_TYPE + "; charset=utf-8"})
    assert result.status_code == 415


async def test_patch_with_empty_body_is_400(client):
    await client.create_queue("q1")
    result = await client.patch("/v2/queues/q1", body="",
                                headers={"Content-Type": PATCH_TYPE})
    assert result.status_code == 400
    assert result.json == {"title": "Invalid request body",
                           "description": "PATCH body could not be empty for update."}


async def test_patch_with_bad_json_is_400(client):
    await client.create_queue("q1")
    result = await client.patch("/v2/queues/q1", body="[{",
                                headers={"Content-Type": PATCH_TYPE})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"


async def test_patch_with_unknown_op_is_400(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [{"op": "move", "path": "/metadata/a",
                                         "value": 1}])
    assert result.status_code == 400
    assert result.json == {
        "title": "Invalid request body",
        "description": "Invalid operation: `move`. It must be one of the following:"
                       " add, remove, replace."}


async def test_patch_with_wrong_path_root_is_400(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [{"op": "add", "path": "/meta/a", "value": 1}])
    assert result.status_code == 400
    assert result.json == {
        "title": "Invalid request body",
        "description": "The root of path must be metadata, e.g /metadata/key."}


@pytest.mark.parametrize("change", [
    {"path": "/metadata/a", "value": 1},
    {"op": "add", "value": 1},
    {"op": "add", "path": "/metadata/a"},
    {"op": "replace", "path": "/metadata/a"},
])
async def test_patch_with_incomplete_operation_is_400(client, change):
    await client.create_queue("q1", {"a": 0})
    result = await patch(client, "q1", [change])
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"


@pytest.mark.parametrize("path", [
    "metadata/a", "/metadata//a", "/metadata/a/", "/metadata/a~2", "/metadata/a~",
    "/metadata", "/metadata/a/b",
])
async def test_patch_with_bad_pointer_is_400(client, path):
    await client.create_queue("q1")
    result = await patch(client, "q1", [{"op": "add", "path": path, "value": 1}])
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"


@pytest.mark.parametrize("document", [{"op": "add"}, ["add"], "x"])
async def test_patch_body_must_be_an_array_of_objects(client, document):
    await client.create_queue("q1")
    result = await patch(client, "q1", document)
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"


async def test_patch_replace_missing_key_is_409(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [{"op": "replace", "path": "/metadata/zz",
                                         "value": 1}])
    assert result.status_code == 409
    assert result.json == {"title": "Resource conflict",
                           "description": "Can't replace non-existent object zz."}


async def test_patch_remove_missing_key_is_409(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [{"op": "remove", "path": "/metadata/zz"}])
    assert result.status_code == 409
    assert result.json == {"title": "Resource conflict",
                           "description": "Can't remove non-existent object zz."}


async def test_patch_conflict_changes_nothing(client):
    await client.create_queue("q1", {"a": 1})
    await patch(client, "q1", [{"op": "add", "path": "/metadata/b", "value": 2},
                               {"op": "remove", "path": "/metadata/zz"}])
    assert (await client.get("/v2/queues/q1")).json == {**RESERVED_DEFAULTS, "a": 1}


async def test_patch_remove_of_unstored_reserved_key_is_a_no_op(client):
    await client.create_queue("q1", {"a": 1})
    result = await patch(client, "q1", [
        {"op": "remove", "path": "/metadata/_default_message_ttl"}])
    assert result.status_code == 200
    assert result.json == {**RESERVED_DEFAULTS, "a": 1}


async def test_patch_replace_of_unstored_reserved_key_sets_it(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [
        {"op": "replace", "path": "/metadata/_default_message_ttl", "value": 600}])
    assert result.status_code == 200
    assert result.json["_default_message_ttl"] == 600


async def test_patch_validates_reserved_keys(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [
        {"op": "add", "path": "/metadata/_default_message_ttl", "value": 10}])
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"
    assert (await client.get("/v2/queues/q1")).json["_default_message_ttl"] == 3600


async def test_patch_refuses_encryption(client):
    await client.create_queue("q1")
    result = await patch(client, "q1", [
        {"op": "add", "path": "/metadata/_enable_encrypt_messages", "value": True}])
    assert result.status_code == 400


async def test_patch_over_65536_bytes_is_400(client):
    await client.create_queue("q1")
    raw = b'[{"op": "add", "path": "/metadata/a", "value": 1}' + b" " * 65536 + b"]"
    result = await client.patch("/v2/queues/q1", body=raw,
                                headers={"Content-Type": PATCH_TYPE})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid request body"


async def test_patch_creates_a_missing_queue(client):
    """Queues are lazy (GET of a missing one answers its defaults), so a PATCH
    creates it: python-zaqarclient's ``queue(name, auto_create=False)
    .metadata(new_meta=...)``, which Heat's OS::Zaqar::Queue calls, depends on
    it. (Zaqar answers 404 here.)"""
    result = await patch(client, "zzz", [{"op": "add", "path": "/metadata/a",
                                          "value": 1}])
    assert result.status_code == 200
    assert result.json["a"] == 1
    assert (await client.head("/v2/queues/zzz")).status_code == 204
    assert (await client.get("/v2/queues/zzz")).json["a"] == 1


async def test_patch_of_a_missing_queue_that_fails_creates_nothing(client):
    result = await patch(client, "zzz", [{"op": "replace", "path": "/metadata/a",
                                          "value": 1}])
    assert result.status_code == 409
    assert (await client.head("/v2/queues/zzz")).status_code == 404


async def test_patch_python_zaqarclient_style_update(client):
    """``queue.metadata(new_meta=...)``: GET, then replace keys that are truthy
    on the server, add the others, remove every key not in new_meta (which
    includes the reserved defaults the GET returned)."""
    await client.create_queue("q1", {"keep": 1, "drop": 2})
    current = (await client.get("/v2/queues/q1")).json
    new_meta = {"keep": 10, "_default_message_ttl": 600, "k": "v"}
    changes = []
    for key, value in new_meta.items():
        op = "replace" if current.get(key) else "add"
        changes.append({"op": op, "path": f"/metadata/{key}", "value": value})
    changes += [{"op": "remove", "path": f"/metadata/{key}"}
                for key in current if key not in new_meta]
    result = await patch(client, "q1", changes)
    assert result.status_code == 200
    assert result.json == {**RESERVED_DEFAULTS, **new_meta}
    assert (await client.get("/v2/queues/q1")).json == {**RESERVED_DEFAULTS, **new_meta}


# -- DELETE /v2/queues/{name} ------------------------------------------------

async def test_delete_queue_is_204_and_removes_it(client):
    await client.create_queue("q1")
    result = await client.delete("/v2/queues/q1")
    assert result.status_code == 204
    assert (await client.head("/v2/queues/q1")).status_code == 404


async def test_delete_missing_queue_is_204(client):
    assert (await client.delete("/v2/queues/missing")).status_code == 204


async def test_delete_queue_twice_is_204(client):
    await client.create_queue("q1")
    await client.delete("/v2/queues/q1")
    assert (await client.delete("/v2/queues/q1")).status_code == 204


async def test_delete_queue_removes_its_messages(client):
    await client.post_bodies("q1", 1, 2)
    await client.delete("/v2/queues/q1")
    await client.create_queue("q1")
    assert (await client.stats("q1"))["total"] == 0
    assert (await client.list_messages("q1", echo=True))["messages"] == []


async def test_delete_queue_removes_its_metadata(client):
    await client.create_queue("q1", {"a": 1})
    await client.delete("/v2/queues/q1")
    assert (await client.get("/v2/queues/q1")).json == RESERVED_DEFAULTS


# -- stats -------------------------------------------------------------------

async def test_stats_of_missing_queue_are_zeros(client):
    result = await client.get("/v2/queues/missing/stats")
    assert result.status_code == 200
    assert result.json == {"messages": {"claimed": 0, "free": 0, "total": 0}}


async def test_stats_of_empty_queue_have_no_oldest_or_newest(client):
    await client.create_queue("q1")
    assert await client.stats("q1") == {"claimed": 0, "free": 0, "total": 0}


async def test_stats_count_claimed_and_free(client):
    await client.post_bodies("q1", 1, 2, 3)
    await client.claim("q1", limit=1)
    counts = await client.stats("q1")
    assert (counts["claimed"], counts["free"], counts["total"]) == (1, 2, 3)


async def test_stats_oldest_and_newest_shape(client, clock):
    first = await client.post_bodies("q1", 1)
    clock.shift(10)
    last = await client.post_bodies("q1", 2)
    clock.shift(5)
    counts = await client.stats("q1")
    created = datetime.datetime.fromtimestamp(time.time() - 15,
                                              datetime.timezone.utc)
    assert counts["oldest"] == {
        "href": f"/v2/queues/q1/messages/{first[0]}", "age": 15,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert counts["newest"]["href"] == f"/v2/queues/q1/messages/{last[0]}"
    assert counts["newest"]["age"] == 5
    assert set(counts["newest"]) == {"href", "age", "created"}


async def test_stats_created_is_iso_utc(client):
    await client.post_bodies("q1", 1)
    created = (await client.stats("q1"))["oldest"]["created"]
    parsed = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - parsed).total_seconds()) < 5


async def test_stats_exclude_deleted_messages(client):
    ids = await client.post_bodies("q1", 1, 2)
    await client.delete(f"/v2/queues/q1/messages/{ids[0]}")
    counts = await client.stats("q1")
    assert counts["total"] == 1
    assert counts["oldest"]["href"].endswith(ids[1])


# -- purge -------------------------------------------------------------------

async def test_purge_without_body_removes_messages(client):
    await client.post_bodies("q1", 1, 2, 3)
    result = await client.post("/v2/queues/q1/purge")
    assert result.status_code == 204
    assert (await client.stats("q1"))["total"] == 0


async def test_purge_removes_claimed_messages_too(client):
    await client.post_bodies("q1", 1, 2)
    await client.claim("q1", limit=1)
    await client.post("/v2/queues/q1/purge")
    assert (await client.stats("q1"))["total"] == 0


async def test_purge_keeps_the_queue_and_its_metadata(client):
    await client.create_queue("q1", {"a": 1})
    await client.post_bodies("q1", 1)
    await client.post("/v2/queues/q1/purge")
    assert (await client.get("/v2/queues/q1")).json["a"] == 1
    assert (await client.head("/v2/queues/q1")).status_code == 204


async def test_purge_messages_resource_type(client):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/purge",
                               json={"resource_types": ["messages"]})
    assert result.status_code == 204
    assert (await client.stats("q1"))["total"] == 0


async def test_purge_both_resource_types(client):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/purge", json={
        "resource_types": ["messages", "subscriptions"]})
    assert result.status_code == 204
    assert (await client.stats("q1"))["total"] == 0


async def test_purge_subscriptions_only_keeps_messages(client):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/purge",
                               json={"resource_types": ["subscriptions"]})
    assert result.status_code == 204
    assert (await client.stats("q1"))["total"] == 1


async def test_purge_empty_resource_types_keeps_messages(client):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/purge", json={"resource_types": []})
    assert result.status_code == 204
    assert (await client.stats("q1"))["total"] == 1


@pytest.mark.parametrize("types", [["queues"], ["messages", "claims"], "messages"])
async def test_purge_unknown_resource_types_is_400(client, types):
    await client.post_bodies("q1", 1)
    result = await client.post("/v2/queues/q1/purge", json={"resource_types": types})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid API request"
    assert result.json["description"].startswith(
        "Resource types must be a sub set of")
    assert (await client.stats("q1"))["total"] == 1


async def test_purge_body_without_resource_types_is_400(client):
    result = await client.post("/v2/queues/q1/purge", json={"types": ["messages"]})
    assert result.status_code == 400
    assert result.json == {
        "title": "Invalid API request",
        "description": 'Post body must contain key "resource_types".'}


async def test_purge_missing_queue_is_204(client):
    assert (await client.post("/v2/queues/missing/purge")).status_code == 204
