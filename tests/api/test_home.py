"""Base paths, JSON-Home, ping and health (zaqar-v2-api.md §1.1, §2.1)."""

from __future__ import annotations

import json
import uuid

from queues.api.app import create_app
from tests.api.conftest import Api, make_settings

VERSIONS = {"versions": [{
    "id": "2", "status": "CURRENT", "updated": "2014-9-24T04:06:47Z",
    "media-types": [{"base": "application/json",
                     "type": "application/vnd.openstack.messaging-v2+json"}],
    "links": [{"href": "/v2/", "rel": "self"}],
}]}

RELATIONS = {
    "rel/queues", "rel/queue", "rel/queue_stats", "rel/queue_share", "rel/queue_purge",
    "rel/messages", "rel/post_messages", "rel/messages_delete", "rel/message_delete",
    "rel/message_get", "rel/claim", "rel/post_claim", "rel/patch_claim",
    "rel/delete_claim", "rel/subscriptions_get", "rel/subscriptions_post",
    "rel/subscription", "rel/subscription_patch", "rel/ping",
}
ADMIN_RELATIONS = {"rel/pools", "rel/pool", "rel/flavors", "rel/flavor", "rel/health"}
HEALTH_OPERATIONS = {
    "create_queue", "post_messages", "claim_messages", "list_messages",
    "delete_messages", "delete_claim", "bulk_delete_messages", "delete_queue",
}


# -- GET / -------------------------------------------------------------------

async def test_root_lists_versions_with_300(client):
    result = await client.get("/")
    assert result.status_code == 300
    assert result.json == VERSIONS


async def test_root_needs_no_client_id_or_project(client):
    result = await client.get("/", headers={"Client-ID": None, "X-Project-ID": None})
    assert result.status_code == 300


# -- GET /v2/ ----------------------------------------------------------------

async def test_home_document_is_json_home_cached_for_a_day(client):
    result = await client.get("/v2/")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json-home"
    assert result.headers["cache-control"] == "max-age=86400"


async def test_home_document_lists_every_relation_in_admin_mode(client):
    resources = (await client.get("/v2/")).json["resources"]
    assert RELATIONS <= set(resources)
    assert ADMIN_RELATIONS <= set(resources)


async def test_home_document_queues_relation(client):
    queues = (await client.get("/v2/")).json["resources"]["rel/queues"]
    assert queues["href-template"] == "/v2/queues{?marker,limit,detailed}"
    assert set(queues["href-vars"]) == {"marker", "limit", "detailed"}
    assert queues["hints"] == {"allow": ["GET"], "formats": {"application/json": {}}}


async def test_home_document_is_pretty_printed_with_indent_4(client):
    result = await client.get("/v2/")
    assert result.text == json.dumps(json.loads(result.text), indent=4)


async def test_home_document_without_admin_mode_has_no_admin_relations(make_client):
    client = make_client(api={"admin_mode": False})
    resources = (await client.get("/v2/")).json["resources"]
    assert RELATIONS <= set(resources)
    assert not ADMIN_RELATIONS & set(resources)


async def test_home_document_requires_client_id(client):
    result = await client.get("/v2/", headers={"Client-ID": None})
    assert result.status_code == 400
    assert result.json["title"] == "Missing header value"


async def test_v2_without_trailing_slash_is_404(client):
    result = await client.get("/v2")
    assert result.status_code == 404
    assert result.json == {"title": "404 Not Found"}


# -- routing -----------------------------------------------------------------

async def test_unknown_route_is_bare_404(client):
    result = await client.get("/v2/nothing/here")
    assert result.status_code == 404
    assert result.json == {"title": "404 Not Found"}


async def test_unknown_route_runs_no_header_checks(client):
    result = await client.get("/v2/nothing", headers={"Client-ID": None,
                                                      "X-Project-ID": None})
    assert result.status_code == 404
    assert result.json == {"title": "404 Not Found"}


async def test_unsupported_method_is_405_with_allow(client):
    result = await client.delete("/v2/queues")
    assert result.status_code == 405
    assert result.json == {"title": "405 Method Not Allowed"}
    assert "GET" in result.headers["allow"]
    assert "DELETE" not in result.headers["allow"]


async def test_unsupported_method_on_queue_lists_queue_methods(client):
    result = await client.post("/v2/queues/q1")
    assert result.status_code == 405
    allowed = {m.strip() for m in result.headers["allow"].split(",")}
    assert {"DELETE", "GET", "PATCH", "PUT"} <= allowed


async def test_options_answers_200_with_allow(client):
    result = await client.options("/v2/queues/q1")
    assert result.status_code == 200
    allowed = {m.strip() for m in result.headers["allow"].split(",")}
    assert {"DELETE", "GET", "PATCH", "PUT"} <= allowed


# -- ping --------------------------------------------------------------------

async def test_ping_get_is_204_without_body(client):
    result = await client.get("/v2/ping")
    assert result.status_code == 204
    assert result.content == b""


class _DeadStorage:
    async def is_alive(self) -> bool:
        return False


async def test_ping_get_is_503_without_body_when_storage_is_down():
    app = create_app(make_settings(), _DeadStorage())
    api = Api(app, client_id=uuid.uuid4().hex, project="p", check_5xx=False)
    result = await api.get("/v2/ping")
    assert result.status_code == 503
    assert result.content == b""


async def test_ping_head_is_204_even_when_storage_is_down():
    app = create_app(make_settings(), _DeadStorage())
    api = Api(app, client_id=uuid.uuid4().hex, project="p")
    assert (await api.head("/v2/ping")).status_code == 204


async def test_ping_head_is_204(client):
    result = await client.head("/v2/ping")
    assert result.status_code == 204


async def test_ping_requires_client_id(client):
    result = await client.get("/v2/ping", headers={"Client-ID": None})
    assert result.status_code == 400


async def test_ping_post_is_405(client):
    result = await client.post("/v2/ping")
    assert result.status_code == 405


# -- health ------------------------------------------------------------------

async def test_health_without_admin_role_is_403(client):
    result = await client.get("/v2/health")
    assert result.status_code == 403
    assert result.json == {
        "title": "Not authorized",
        "description": "You are not authorized to complete this action."}


async def test_health_with_other_role_is_403(client):
    result = await client.get("/v2/health", headers={"X-Roles": "member"})
    assert result.status_code == 403


async def test_health_with_admin_role_reports_storage_and_operations(client):
    result = await client.get("/v2/health", headers={"X-Roles": "admin"})
    assert result.status_code == 200
    assert result.json["storage_reachable"] is True
    operations = result.json["operation_status"]
    assert set(operations) == HEALTH_OPERATIONS
    for name, status in operations.items():
        assert status["succeeded"] is True, name
        assert status["ref"] is None
        assert isinstance(status["seconds"], (int, float))


async def test_health_leaves_no_queue_behind(client):
    await client.get("/v2/health", headers={"X-Roles": "admin"})
    result = await client.get("/v2/queues")
    assert result.json == {"queues": [], "links": []}


async def test_health_is_not_routed_without_admin_mode(make_client):
    client = make_client(api={"admin_mode": False})
    result = await client.get("/v2/health", headers={"X-Roles": "admin"})
    assert result.status_code == 404
