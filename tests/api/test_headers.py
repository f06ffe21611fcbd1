"""Transport conventions: headers, hook order, queue names, errors (§1.2-§1.5)."""

from __future__ import annotations

import re
import uuid

import pytest

from queues.api.app import create_app
from tests.api.conftest import Api, make_settings

FORM = "application/x-www-form-urlencoded"
FORM_DESCRIPTION = (
    "Endpoint does not accept `application/x-www-form-urlencoded` content;"
    " currently supported media type is `application/json`; specify proper"
    ' client-side media type with the "Content-Type" header.')
BAD_QUEUE = {
    "title": "Invalid queue identification",
    "description": "The format of the submitted queue name or project id is not valid."}
LENGTH_TITLE = "Length of client id must be at least 10 and no greater than 36."


# -- Client-ID ---------------------------------------------------------------

async def test_missing_client_id_is_400(client):
    result = await client.get("/v2/queues", headers={"Client-ID": None})
    assert result.status_code == 400
    assert result.json == {"title": "Missing header value",
                           "description": 'The "Client-Id" header is required.'}


async def test_non_uuid_client_id_is_400(client):
    result = await client.get("/v2/queues", headers={"Client-ID": "not-a-uuid"})
    assert result.status_code == 400
    assert result.json == {"title": "Wrong UUID value",
                           "description": "Malformed hexadecimal UUID."}


async def test_error_bodies_are_json(client):
    result = await client.get("/v2/queues", headers={"Client-ID": None})
    assert result.headers["content-type"].startswith("application/json")


def uuid_forms() -> list[str]:
    value = uuid.uuid4()
    return [str(value), value.hex, value.hex.upper(), "{%s}" % value,
            f"urn:uuid:{value}"]


async def test_client_id_accepts_every_python_uuid_form(client):
    for form in uuid_forms():
        result = await client.get("/v2/queues", headers={"Client-ID": form})
        assert result.status_code == 200, form


async def test_client_id_is_checked_on_ping(client):
    result = await client.get("/v2/ping", headers={"Client-ID": "nope"})
    assert result.status_code == 400
    assert result.json["title"] == "Wrong UUID value"


async def test_client_id_off_mode_accepts_any_10_to_36_chars(make_client):
    client = make_client(client_id_uuid_safe="off")
    for value in ("a" * 10, "not-a-uuid-at-all", "x" * 36):
        result = await client.get("/v2/queues", headers={"Client-ID": value})
        assert result.status_code == 200, value


async def test_client_id_off_mode_rejects_short_and_long_ids(make_client):
    client = make_client(client_id_uuid_safe="off")
    for value in ("a" * 9, "x" * 37):
        result = await client.get("/v2/queues", headers={"Client-ID": value})
        assert result.status_code == 400, value
        assert result.json["title"] == LENGTH_TITLE


async def test_client_id_off_mode_still_requires_the_header(make_client):
    client = make_client(client_id_uuid_safe="off")
    result = await client.get("/v2/queues", headers={"Client-ID": None})
    assert result.status_code == 400
    assert result.json["title"] == "Missing header value"


# -- project -----------------------------------------------------------------

async def test_missing_project_is_400(client):
    result = await client.get("/v2/queues", headers={"X-Project-ID": None})
    assert result.status_code == 400
    assert result.json == {"title": "Project-Id Missing",
                           "description": "The header X-PROJECT-ID was missing"}


async def test_empty_project_is_400(client):
    result = await client.get("/v2/queues", headers={"X-Project-ID": ""})
    assert result.status_code == 400
    assert result.json == {
        "title": "Empty project header not allowed",
        "description": "X-PROJECT-ID cannot be an empty string. Specify the right"
                       " header X-PROJECT-ID and retry."}


async def test_x_tenant_id_names_the_project(client):
    await client.create_queue("q1")
    result = await client.get("/v2/queues", headers={
        "X-Project-ID": None, "X-Tenant-ID": client.project})
    assert result.status_code == 200
    assert [q["name"] for q in result.json["queues"]] == ["q1"]


async def test_x_tenant_names_the_project(client):
    await client.create_queue("q1")
    result = await client.get("/v2/queues", headers={
        "X-Project-ID": None, "X-Tenant": client.project})
    assert [q["name"] for q in result.json["queues"]] == ["q1"]


async def test_projects_are_isolated(client):
    await client.create_queue("q1")
    result = await client.get("/v2/queues", headers={"X-Project-ID": "someone-else"})
    assert result.json == {"queues": [], "links": []}


# -- hook order (§1.2) -------------------------------------------------------

async def test_form_content_type_with_body_is_400(client):
    result = await client.put("/v2/queues/q1", body='{"a": 1}',
                              headers={"Content-Type": FORM})
    assert result.status_code == 400
    assert result.json == {"title": "Invalid Content-Type",
                           "description": FORM_DESCRIPTION}


async def test_form_content_type_is_matched_case_insensitively(client):
    result = await client.put("/v2/queues/q1", body='{"a": 1}',
                              headers={"Content-Type": FORM.upper()})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid Content-Type"


async def test_form_content_type_with_content_length_0_is_400(client):
    result = await client.put("/v2/queues/q1", body=b"",
                              headers={"Content-Type": FORM})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid Content-Type"


async def test_form_content_type_with_parameters_is_parsed_as_json(client):
    result = await client.put("/v2/queues/q1", body='{"a": 1}',
                              headers={"Content-Type": FORM + "; charset=utf-8"})
    assert result.status_code == 201


async def test_form_content_type_without_body_is_accepted(client):
    result = await client.get("/v2/queues", headers={"Content-Type": FORM})
    assert result.status_code == 200


async def test_other_content_types_are_parsed_as_json(client):
    result = await client.put("/v2/queues/q1", body='{"color": "red"}',
                              headers={"Content-Type": "text/plain"})
    assert result.status_code == 201
    assert (await client.get("/v2/queues/q1")).json["color"] == "red"


async def test_accept_without_json_is_406(client):
    result = await client.get("/v2/queues", headers={"Accept": "application/xml"})
    assert result.status_code == 406
    assert "Endpoint only serves `application/json`" in result.text


async def test_accept_any_is_fine(client):
    result = await client.get("/v2/queues", headers={"Accept": "*/*"})
    assert result.status_code == 200


async def test_form_content_type_wins_over_accept(client):
    result = await client.put("/v2/queues/q1", body="{}", headers={
        "Content-Type": FORM, "Accept": "application/xml"})
    assert result.status_code == 400
    assert "Invalid Content-Type" in result.text


async def test_accept_wins_over_missing_client_id(client):
    result = await client.get("/v2/queues", headers={
        "Accept": "application/xml", "Client-ID": None})
    assert result.status_code == 406


async def test_client_id_wins_over_missing_project(client):
    result = await client.get("/v2/queues", headers={
        "Client-ID": None, "X-Project-ID": None})
    assert result.json["title"] == "Missing header value"


async def test_project_wins_over_bad_queue_name(client):
    result = await client.get("/v2/queues/bad$name", headers={"X-Project-ID": None})
    assert result.json["title"] == "Project-Id Missing"


# -- queue name and project length (§1.2 step 7) -----------------------------

async def test_queue_name_of_64_chars_is_accepted(client):
    result = await client.put("/v2/queues/" + "a" * 64)
    assert result.status_code == 201


async def test_queue_name_of_65_chars_is_400(client):
    result = await client.put("/v2/queues/" + "a" * 65)
    assert result.status_code == 400
    assert result.json == BAD_QUEUE


async def test_queue_name_with_dollar_is_400(client):
    result = await client.get("/v2/queues/bad$name/stats")
    assert result.status_code == 400
    assert result.json == BAD_QUEUE


async def test_non_ascii_queue_name_is_400(client):
    result = await client.put("/v2/queues/caf\u00e9")
    assert result.status_code == 400
    assert result.json == BAD_QUEUE


async def test_queue_name_with_dot_dash_underscore_is_accepted(client):
    result = await client.put("/v2/queues/a.b-c_D9")
    assert result.status_code == 201


async def test_project_longer_than_256_is_400_on_queue_routes(client):
    result = await client.get("/v2/queues/q1", headers={"X-Project-ID": "p" * 257})
    assert result.status_code == 400
    assert result.json == BAD_QUEUE


async def test_project_of_256_chars_is_accepted(client):
    result = await client.get("/v2/queues/q1", headers={"X-Project-ID": "p" * 256})
    assert result.status_code == 200


async def test_project_length_is_not_checked_without_a_queue_name(client):
    result = await client.get("/v2/queues", headers={"X-Project-ID": "p" * 257})
    assert result.status_code == 200


# -- query strings and misc --------------------------------------------------

async def test_unknown_query_parameters_are_ignored(client):
    await client.post_bodies("q1", "a")
    for method, path in [
        ("GET", "/v2/queues/q1/messages?bogus=1&echo=true"),
        ("GET", "/v2/queues/q1?bogus=1"),
        ("GET", "/v2/queues/q1/stats?bogus=x"),
        ("GET", "/v2/ping?bogus=1"),
        ("POST", "/v2/queues/q1/claims?bogus=1"),
    ]:
        result = await client.request(method, path)
        assert result.status_code in (200, 201, 204), (method, path, result.text)


@pytest.mark.parametrize("raw", [
    b"1e400", b"NaN", b"[" * 5000 + b"]" * 5000, b"\xff\xfe{", b"{\"a\": 1}}",
    b'{"messages": [{"body": ' + b"[" * 3000 + b"]" * 3000 + b"}]}",
    b'{"messages": [{"body": 12345678901234567890123}]}',
])
async def test_hostile_json_bodies_never_5xx(client, raw):
    for method, path in [("POST", "/v2/queues/q1/messages"),
                         ("PUT", "/v2/queues/q2"),
                         ("POST", "/v2/queues/q1/claims"),
                         ("POST", "/v2/queues/q1/purge")]:
        result = await client.request(method, path, body=raw,
                                      headers={"Content-Type": "application/json"})
        assert result.status_code in (201, 204, 400), (method, path, result.text)


@pytest.mark.parametrize("path", [
    "/v2/queues/q1/messages/" + "x" * 5000,
    "/v2/queues/q1/messages/%00",
    "/v2/queues/q1/messages/..%2F..",
    "/v2/queues/q1/claims/" + "\u00e9" * 10,
    "/v2/queues/q1/messages?ids=" + ",".join(["%00"] * 3),
    "/v2/queues?marker=" + "z" * 5000,
    "/v2/queues/q1/messages?limit=99999999999999999999999",
    "/v2/queues/q1/messages?limit=1.5",
])
async def test_odd_ids_and_parameters_never_5xx(client, path):
    await client.post_bodies("q1", 1)
    for method in ("GET", "DELETE", "PATCH"):
        result = await client.request(method, path, json={"ttl": 100})
        assert result.status_code < 500


async def test_responses_carry_an_openstack_request_id(client):
    result = await client.get("/v2/queues")
    assert re.fullmatch(r"req-[0-9a-f-]{36}", result.headers["x-openstack-request-id"])


# -- 500s --------------------------------------------------------------------

class _ExplodingQueues:
    async def stats(self, project, name):
        raise RuntimeError("secret-detail /var/lib/mailslot password=hunter2")


class _ExplodingStorage:
    queues = _ExplodingQueues()


async def test_unexpected_errors_are_500_without_exception_text():
    app = create_app(make_settings(), _ExplodingStorage())
    api = Api(app, client_id=uuid.uuid4().hex, project="p", check_5xx=False)
    result = await api.get("/v2/queues/q1/stats")
    assert result.status_code == 500
    assert result.json["title"] == "Internal server error"
    assert "secret-detail" not in result.text
    assert "hunter2" not in result.text
    assert "RuntimeError" not in result.text
