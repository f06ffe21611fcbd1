"""The real python-zaqarclient 4.7.0 against a real ``mailslot serve``.

One two-worker server per store for the module; every test works in its own
project, so listings and counts are exact. The client is used the way
zaqar-v2-api.md §9.5 shows (noauth backend, ``os_project_id``).
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from zaqarclient.queues import client as zclient
from zaqarclient.queues.v2 import client as zclient_v2
from zaqarclient.queues.v2 import core
from zaqarclient.transport import errors as zerrors

from tests.fixtures.server import STORES, headers, running_server, store_uri_for

RESERVED_DEFAULTS = {
    "_max_messages_post_size": 262144,
    "_default_message_ttl": 3600,
    "_default_message_delay": 0,
    "_dead_letter_queue": None,
    "_dead_letter_queue_messages_ttl": None,
    "_max_claim_count": None,
    "_enable_encrypt_messages": False,
}


@pytest.fixture(scope="module", params=STORES)
def zserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp(f"zaqarclient-{request.param}")
    uri = store_uri_for(request.param, workdir / "store", request)
    with running_server(workdir / "server", uri, workers=2) as server:
        yield server


@pytest.fixture
def project() -> str:
    return f"zc-{uuid.uuid4().hex[:12]}"


def noauth_conf(project: str) -> dict:
    return {"auth_opts": {"backend": "noauth", "options": {"os_project_id": project}}}


def make_client(url: str, project: str):
    return zclient.Client(url, version=2, conf=noauth_conf(project))


class AdminClient(zclient_v2.Client):
    """The noauth backend has no roles option: add ``X-Roles: admin`` ourselves."""

    def _request_and_transport(self):
        req, trans = super()._request_and_transport()
        req.headers["X-Roles"] = "admin"
        return req, trans


@pytest.fixture
def cli(zserver, project):
    return make_client(zserver.url, project)


@pytest.fixture
def http(zserver):
    with httpx.Client(base_url=zserver.url, timeout=10.0, trust_env=False) as client:
        yield client


def msg_id(href: str) -> str:
    return href.split("?")[0].rsplit("/", 1)[-1]


def post_numbered(queue, count: int, ttl: int = 300, start: int = 0) -> list[str]:
    result = queue.post([{"body": {"n": start + i}, "ttl": ttl} for i in range(count)])
    assert len(result["resources"]) == count
    return [msg_id(href) for href in result["resources"]]


def bodies(messages) -> list:
    return [m.body for m in messages]


# --- ping / home / health -----------------------------------------------------------

def test_ping_and_homedoc(cli):
    assert cli.ping() is True
    home = cli.homedoc()
    resources = home["resources"]
    for rel in ("rel/queues", "rel/queue", "rel/messages", "rel/post_claim",
                "rel/ping"):
        assert rel in resources
    assert resources["rel/queues"]["href-template"] == (
        "/v2/queues{?marker,limit,detailed}")


def test_health_needs_admin_role(zserver, project, cli, http):
    with pytest.raises(zerrors.ForbiddenError, match="Not authorized"):
        cli.health()

    admin = AdminClient(zserver.url, version=2, conf=noauth_conf(project))
    report = admin.health()
    assert report["storage_reachable"] is True
    operations = report["operation_status"]
    assert set(operations) >= {
        "create_queue", "post_messages", "claim_messages", "list_messages",
        "delete_messages", "delete_claim", "bulk_delete_messages", "delete_queue"}
    failed = {name for name, status in operations.items() if not status["succeeded"]}
    assert not failed, report

    # The same over plain HTTP, and the health check left no queue behind.
    response = http.get("/v2/health", headers=headers(project, **{"X-Roles": "admin"}))
    assert response.status_code == 200
    assert response.json()["storage_reachable"] is True
    listed, count = cli.queues(with_count=True)
    assert list(listed) == [] and count is None


# --- queues -----------------------------------------------------------------------

def test_queue_create_exists_and_metadata(zserver, cli, http, project):
    queue = cli.queue("orders", force_create=True)
    assert queue.exists() is True
    # Mailslot answers HEAD with 404 for a missing queue (README: Zaqar says 405).
    assert cli.queue("never-created", auto_create=False).exists() is False
    # A second PUT of an existing queue is a 204 and does not fail the client.
    assert cli.queue("orders", force_create=True).exists() is True

    assert queue.metadata(force_reload=True) == RESERVED_DEFAULTS

    updated = queue.metadata(new_meta={"_default_message_ttl": 600, "k": "v"})
    assert updated == {**RESERVED_DEFAULTS, "_default_message_ttl": 600, "k": "v"}
    assert queue.metadata(force_reload=True) == updated
    raw = http.get("/v2/queues/orders", headers=headers(project))
    assert raw.status_code == 200 and raw.json() == updated

    # The stored default TTL applies to messages posted without one.
    [mid] = queue.post({"body": "default ttl"})["resources"]
    assert queue.message(msg_id(mid)).ttl == 600

    # The client sends "remove" for every key not in new_meta (reserved ones
    # too); removed custom keys go, reserved ones fall back to their defaults.
    updated = queue.metadata(new_meta={"k2": "v2"})
    assert updated == {**RESERVED_DEFAULTS, "k2": "v2"}
    assert queue.metadata(force_reload=True) == updated

    # What the client does not show: PUT statuses and Location.
    response = http.put("/v2/queues/raw-put", headers=headers(project))
    assert (response.status_code, response.headers["location"]) == (
        201, "/v2/queues/raw-put")
    response = http.put("/v2/queues/raw-put", headers=headers(project),
                        json={"ignored": True})
    assert (response.status_code, response.headers["location"]) == (
        204, "/v2/queues/raw-put")
    assert cli.queue("raw-put", auto_create=False).metadata() == RESERVED_DEFAULTS

    # Metadata is per project.
    other = make_client(zserver.url, f"{project}-other")
    assert other.queue("orders", auto_create=False).metadata() == RESERVED_DEFAULTS


def test_queue_list_detailed_with_count(cli):
    names = ["list-c", "list-a", "list-b"]
    for name in names:
        cli.queue(name, force_create=True)
    cli.queue("list-b", auto_create=False).metadata(new_meta={"colour": "blue"})

    listed, count = cli.queues(detailed=True, with_count=True)
    queues = list(listed)
    assert count == 3
    assert [q.name for q in queues] == sorted(names)
    assert all(q.href == f"/v2/queues/{q.name}" for q in queues)
    meta = {q.name: q.metadata() for q in queues}  # from the listing, no request
    assert meta["list-a"] == RESERVED_DEFAULTS
    assert meta["list-b"] == {**RESERVED_DEFAULTS, "colour": "blue"}

    # Paging with limit=2 and following the "next" links.
    paged, count = cli.queues(limit=2, with_count=True)
    assert count == 3
    assert [q.name for q in paged.stream()] == sorted(names)


def test_queue_delete(cli):
    queue = cli.queue("doomed", force_create=True)
    post_numbered(queue, 3)
    queue.delete()
    assert queue.exists() is False
    assert queue.stats == {"messages": {"claimed": 0, "free": 0, "total": 0}}
    assert list(queue.messages(echo=True)) == []
    listed, count = cli.queues(with_count=True)
    assert list(listed) == [] and count is None
    queue.delete()  # idempotent


# --- messages ---------------------------------------------------------------------

def test_post_list_echo_get_and_delete_by_ids(zserver, cli, project):
    queue = cli.queue("msgs", force_create=True)
    ids = post_numbered(queue, 5)
    assert len(set(ids)) == 5

    listed = list(queue.messages(echo=True))
    assert bodies(listed) == [{"n": i} for i in range(5)]
    assert [m.id for m in listed] == ids
    assert all(m.ttl == 300 and m.age >= 0 for m in listed)
    # echo defaults to false: the poster does not see its own messages ...
    assert list(queue.messages()) == []
    # ... but another client of the same project does.
    reader = make_client(zserver.url, project).queue("msgs", auto_create=False)
    assert bodies(reader.messages()) == [{"n": i} for i in range(5)]
    # Another project sees nothing.
    stranger = make_client(zserver.url, f"{project}-x").queue("msgs", auto_create=False)
    assert list(stranger.messages(echo=True)) == []

    # Paging with limit and the next links.
    assert bodies(queue.messages(echo=True, limit=2)) == [{"n": 0}, {"n": 1}]
    assert bodies(queue.messages(echo=True, limit=2).stream()) == [
        {"n": i} for i in range(5)]

    one = queue.message(ids[2])
    assert (one.id, one.body, one.ttl) == (ids[2], {"n": 2}, 300)

    by_ids = list(queue.messages(ids[1], ids[3], "0123456789abcdef01234567"))
    assert sorted((m.id, m.body["n"]) for m in by_ids) == sorted(
        [(ids[1], 1), (ids[3], 3)])

    queue.delete_messages(ids[0], ids[1])
    assert bodies(queue.messages(echo=True)) == [{"n": 2}, {"n": 3}, {"n": 4}]
    with pytest.raises(zerrors.ResourceNotFound):
        list(queue.messages(ids[0], ids[1]))
    with pytest.raises(zerrors.ResourceNotFound):
        queue.message(ids[0])

    stats = queue.stats["messages"]
    assert (stats["total"], stats["free"], stats["claimed"]) == (3, 3, 0)
    assert stats["oldest"]["href"] == f"/v2/queues/msgs/messages/{ids[2]}"
    assert stats["newest"]["href"] == f"/v2/queues/msgs/messages/{ids[4]}"
    for end in ("oldest", "newest"):
        assert set(stats[end]) == {"href", "age", "created"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stats[end]["created"])


def test_post_validation_error_reaches_the_client(cli):
    queue = cli.queue("invalid", force_create=True)
    with pytest.raises(zerrors.MalformedRequest,
                       match="The TTL for a message may not exceed 1209600 seconds"):
        queue.post({"body": "x", "ttl": 5})
    assert queue.stats["messages"]["total"] == 0


def test_claim_delete_with_claim_id_release_and_renew(zserver, cli, project):
    queue = cli.queue("work", force_create=True)
    ids = post_numbered(queue, 6)

    claim = queue.claim(ttl=60, grace=60, limit=4)
    claimed = list(claim)
    assert claim.id
    assert bodies(claimed) == [{"n": i} for i in range(4)]
    assert [m.id for m in claimed] == ids[:4]
    assert all(m.claim_id == claim.id for m in claimed)
    assert claim.ttl == 60
    assert claim.age >= 0  # GET /claims/{id}

    stats = queue.stats["messages"]
    assert (stats["claimed"], stats["free"], stats["total"]) == (4, 2, 6)

    # Another consumer only gets what is not claimed.
    other = make_client(zserver.url, project).queue("work", auto_create=False)
    claim2 = other.claim(ttl=60, grace=60, limit=10)
    assert [m.id for m in claim2] == ids[4:]
    assert other.claim(ttl=60, grace=60, limit=10).id is None  # 204: nothing left

    # Deleting a claimed message without its claim id is refused (403) ...
    req, trans = cli._request_and_transport()
    with pytest.raises(zerrors.ForbiddenError, match="claimed"):
        core.message_delete(trans, req, "work", ids[0])
    # ... and works with it (the client takes claim_id from the message href).
    claimed[0].delete()
    claimed[1].delete()
    with pytest.raises(zerrors.ResourceNotFound):
        queue.message(ids[0])

    # Release: the two undeleted messages are free again at once.
    claim.delete()
    stats = queue.stats["messages"]
    assert (stats["claimed"], stats["free"], stats["total"]) == (2, 2, 4)
    with pytest.raises(zerrors.ResourceNotFound):
        queue.claim(id=claim.id).ttl  # released claims are gone

    # Renew the second claim.
    claim2.update(ttl=120, grace=60)
    reloaded = queue.claim(id=claim2.id)
    assert reloaded.ttl == 120
    assert sorted(m.id for m in reloaded) == sorted(ids[4:])

    again = queue.claim(ttl=60, grace=60, limit=10)
    assert [m.id for m in again] == ids[2:4]


def test_claim_extends_short_lived_messages(cli):
    queue = cli.queue("short-lived", force_create=True)
    [short] = post_numbered(queue, 1, ttl=60)
    [long] = post_numbered(queue, 1, ttl=3600, start=1)
    claim = queue.claim(ttl=100, grace=60, limit=2)
    ttls = {m.id: m.ttl for m in claim}
    # A message never expires while claimed: ttl raised to claim ttl + grace ...
    assert ttls[short] == 160
    # ... but never shortened.
    assert ttls[long] == 3600
    assert queue.message(short).ttl == 160


def test_pop(cli, http, project):
    queue = cli.queue("popper", force_create=True)
    ids = post_numbered(queue, 4)
    number = {mid: n for n, mid in enumerate(ids)}
    # The popped-message shape (the client hides it): no href, claim fields.
    response = http.delete("/v2/queues/popper/messages", params={"pop": 1},
                           headers=headers(project))
    assert response.status_code == 200
    [raw] = response.json()["messages"]
    assert set(raw) == {"id", "age", "ttl", "body", "claim_id", "claim_count"}
    assert raw["body"] == {"n": number[raw["id"]]}
    assert (raw["ttl"], raw["claim_id"], raw["claim_count"]) == (300, None, 0)
    gone = {raw["id"]}

    popped = list(queue.pop(count=2))
    assert len(popped) == 2
    assert len({m.id for m in popped}) == 2 and not {m.id for m in popped} & gone
    assert all(m.body == {"n": number[m.id]} for m in popped)
    gone |= {m.id for m in popped}
    left = list(queue.messages(echo=True))
    assert [m.id for m in left] == [mid for mid in ids if mid not in gone]
    assert queue.stats["messages"]["total"] == 1
    # A claimed message is not popped.
    claim = queue.claim(ttl=60, grace=60, limit=1)
    assert [m.id for m in claim] == [left[0].id]
    assert list(queue.pop(count=5)) == []
    claim.delete()
    assert [m.id for m in queue.pop(count=5)] == [left[0].id]
    assert queue.stats["messages"]["total"] == 0


def test_purge(cli):
    queue = cli.queue("purged", force_create=True)
    post_numbered(queue, 5)
    claim = queue.claim(ttl=60, grace=60, limit=2)
    assert len(list(claim)) == 2
    queue.purge()
    # README: Mailslot's purge removes claimed messages too.
    assert queue.stats == {"messages": {"claimed": 0, "free": 0, "total": 0}}
    assert list(queue.messages(echo=True, include_claimed=True)) == []
    # The queue itself survives a purge.
    assert queue.exists() is True

    post_numbered(queue, 2)
    queue.purge(resource_types=["messages"])
    assert queue.stats["messages"]["total"] == 0


# --- subscriptions ----------------------------------------------------------------

def needs_subscriptions(http, project) -> None:
    """The routes exist only when the store has a subscription store."""
    probe = http.get("/v2/queues/probe/subscriptions", headers=headers(project))
    if probe.status_code == 404:
        pytest.skip("this store's driver has no subscriptions yet")


def test_subscriptions(cli, http, project):
    needs_subscriptions(http, project)
    hook = "https://example.com/hooks/orders"
    sub = cli.subscription("orders", subscriber=hook, ttl=3600,
                           options={"post_headers": {"X-Team": "ops"}})
    assert sub.id and len(sub.id) >= 16
    # The client reads the subscription back after creating it.
    assert (sub.subscriber, sub.ttl, sub.confirmed) == (hook, 3600, False)
    assert sub.options == {"post_headers": {"X-Team": "ops"}}
    # Creating it again is Zaqar's 201 with the same id (not yet confirmed)...
    assert cli.subscription("orders", subscriber=hook, ttl=3600, options={
        "post_headers": {"X-Team": "ops"}}).id == sub.id
    # ...while other options for the same URL make another subscription.
    variant = cli.subscription("orders", subscriber=hook, ttl=3600)
    assert variant.id != sub.id
    variant.delete()
    other = cli.subscription("orders", subscriber="mailto:ops@example.com")
    assert other.ttl == 60  # the client's default

    listed = list(cli.subscriptions("orders", limit=1).stream())  # follows links
    assert [s.id for s in listed] == [sub.id, other.id]
    assert {s.subscriber for s in listed} == {hook, "mailto:ops@example.com"}
    assert all(s.queue_name == "orders" for s in listed)

    sub.update({"ttl": 7200, "options": {"k": "v"}})
    fetched = cli.subscription("orders", id=sub.id)
    assert (fetched.ttl, fetched.options, fetched.subscriber) == (
        7200, {"k": "v"}, hook)

    sub.delete()
    with pytest.raises(zerrors.ResourceNotFound):
        cli.subscription("orders", id=sub.id)
    assert [s.id for s in cli.subscriptions("orders")] == [other.id]


def test_subscription_errors_reach_the_client(cli, http, project):
    needs_subscriptions(http, project)
    with pytest.raises(zerrors.MalformedRequest, match="subscriber type"):
        cli.subscription("orders", subscriber="ftp://example.com/x")
    with pytest.raises(zerrors.MalformedRequest, match="not allowed: metadata"):
        cli.subscription("orders", subscriber="http://169.254.169.254/latest")
    with pytest.raises(zerrors.MalformedRequest, match="at least 60 seconds"):
        cli.subscription("orders", subscriber="https://example.com/", ttl=30)
    assert list(cli.subscriptions("orders")) == []
