"""Pre-signed URLs in Zaqar's form: the ``URL-*`` headers (zaqar-v2-api.md §4).

python-zaqarclient's ``signed-url`` backend presents the ``signature``,
``expires``, ``methods`` and ``paths`` of a ``/share`` answer as
``URL-Signature``/``URL-Expires``/``URL-Methods``/``URL-Paths`` plus
``X-Project-Id`` and ``Client-ID``. Any failure is Zaqar's bare
``404 {"title": "404 Not Found"}``. Mailslot must keep Zaqar's wire format
but none of its weaknesses (§4.5): regex paths, empty-signature bypass,
header-presence switches. signing.md §5.1 further asks that the Zaqar form be
"only a way of presenting a token", verified like one (revocation, rotation,
rate limits).
"""

from __future__ import annotations

import datetime
import time
import uuid

import pytest

import signing
from tests.api.test_signed_urls import (  # noqa: F401  (fixtures)
    Signed, assert_ok, env, keyfile, make_signed,
)

NOT_FOUND = {"title": "404 Not Found"}


def zaqar_headers(grant: dict, **overrides: str | None) -> dict:
    """The headers python-zaqarclient's signed-url backend sends."""
    headers = {
        "URL-Signature": grant["signature"],
        "URL-Expires": grant["expires"],
        "URL-Methods": ",".join(grant["methods"]),
        "URL-Paths": ",".join(grant["paths"]),
        "X-Project-Id": grant["project"],
        "Client-ID": str(uuid.uuid4()),
    }
    for name, value in overrides.items():
        headers[name.replace("_", "-")] = value
    return {k: v for k, v in headers.items() if v is not None}


async def zget(env: Signed, path: str, grant: dict, **kw):
    headers = zaqar_headers(grant, **kw.pop("override", {}))
    return await env.use("GET", path, headers=headers, **kw)


async def zpost(env: Signed, queue: str, grant: dict, *bodies, override=None, **kw):
    headers = zaqar_headers(grant, **(override or {}))
    messages = [{"body": b, "ttl": 300} for b in (bodies or ("z",))]
    return await env.use("POST", f"/v2/queues/{queue}/messages", headers=headers,
                         json={"messages": messages}, **kw)


def assert_zaqar_404(result) -> None:
    assert result.status_code == 404, (result.status, result.text)
    assert result.json == NOT_FOUND


# --- the form works, and is Zaqar's --------------------------------------------------

async def test_zaqarclient_headers_read_and_post(env):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    assert grant["paths"] == ["/v2/queues/q1/messages"]
    assert grant["methods"] == ["GET", "POST"]
    assert_ok(await zpost(env, "q1", grant, {"n": 1}), 201)
    listed = await zget(env, "/v2/queues/q1/messages", grant,
                        params={"echo": "true"})
    assert_ok(listed)
    [message] = listed.json["messages"]
    assert message["body"] == {"n": 1}
    # A .../messages grant also covers .../messages/{id} (Zaqar semantics).
    assert_ok(await zget(env, message["href"], grant))
    assert await env.bodies("q1") == [{"n": 1}]


async def test_mint_answer_is_zaqars_signature_with_the_queue_key(env, clock):
    """Zaqar's HMAC scheme, keyed per queue from the active key and the queue's
    signing generation (so generation bumps revoke Zaqar-form URLs too)."""
    await env.holder.create_queue("c1")
    expires = datetime.datetime.fromtimestamp(time.time() + 7200, datetime.UTC)
    grant = await env.mint("c1", paths=["messages", "claims"], methods=["POST", "GET"],
                           expires=expires.strftime("%Y-%m-%dT%H:%M:%S.123456+00:00"))
    assert grant["paths"] == ["/v2/queues/c1/claims", "/v2/queues/c1/messages"]
    assert grant["methods"] == ["GET", "POST"]
    assert grant["project"] == env.project
    assert grant["expires"] == expires.strftime("%Y-%m-%dT%H:%M:%S")
    secret = env.keys.ring().active.secret
    generation = await env.driver.grants.generation(env.project, "c1")
    queue_key = signing.zaqar_queue_key(secret, env.project, "c1", generation)
    assert grant["signature"] == signing.zaqar_signature(
        queue_key, grant["paths"], grant["methods"], env.project, grant["expires"])
    assert grant["signature"] != signing.zaqar_signature(
        signing.zaqar_queue_key(secret, env.project, "c1", generation + 1),
        grant["paths"], grant["methods"], env.project, grant["expires"])
    assert len(grant["signature"]) == 64 and grant["signature"] == \
        grant["signature"].lower()
    # Expires with an offset is normalised to naive UTC before signing.
    later = (expires + datetime.timedelta(hours=1)).astimezone(
        datetime.timezone(datetime.timedelta(hours=2)))
    shifted = await env.mint("c1", expires=later.isoformat(timespec="seconds"))
    assert shifted["expires"] == (expires + datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S")
    assert shifted["paths"] == ["/v2/queues/c1/messages"]
    assert shifted["methods"] == ["GET"]


@pytest.mark.parametrize("document,title,description", [
    ("", "Invalid request body", "Request body could not be parsed."),
    ([], "Invalid request body", "Request body could not be parsed."),
    ({"foo": 1}, "Invalid API request", "Unknown keys: {'foo'}"),
    ({"paths": ["queues"]}, "Invalid API request", "Invalid paths: {'queues'}"),
    ({"methods": "GET"}, "Invalid API request", "`methods` should be a list"),
])
async def test_share_body_errors_use_zaqars_texts(env, document, title, description):
    await env.holder.create_queue("q1")
    if document == "":
        result = await env.holder.post("/v2/queues/q1/share", body="",
                                       headers={"Content-Type": "application/json"})
    else:
        result = await env.mint_raw("q1", document)
    assert result.status_code == 400
    assert result.json == {"title": title, "description": description}


# --- tampering and Zaqar's own weaknesses ---------------------------------------------

def _later(expires: str, seconds: int) -> str:
    moment = datetime.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%S")
    return (moment + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


TAMPERING = {
    "signature-flipped": lambda g: {"URL-Signature": ("0" if g["signature"][0] != "0"
                                                      else "1") + g["signature"][1:]},
    "signature-upper": lambda g: {"URL-Signature": g["signature"].upper()},
    "signature-truncated": lambda g: {"URL-Signature": g["signature"][:-1]},
    "signature-prefix": lambda g: {"URL-Signature": g["signature"][:8]},
    "signature-padded": lambda g: {"URL-Signature": g["signature"] + "0"},
    "expires-extended": lambda g: {"URL-Expires": _later(g["expires"], 86400)},
    "expires-digits": lambda g: {"URL-Expires": "99999999999"},
    "methods-widened": lambda g: {"URL-Methods": "DELETE,GET,POST"},
    "paths-widened": lambda g: {"URL-Paths": g["paths"][0] + ",/v2/queues/q1/claims"},
    "paths-other-queue": lambda g: {"URL-Paths": "/v2/queues/q2/messages"},
    "project-other": lambda g: {"X-Project-Id": g["project"] + "x"},
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
async def test_tampered_headers_are_404(env, name):
    await env.holder.create_queue("q1")
    await env.holder.create_queue("q2")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    override = TAMPERING[name](grant)
    assert_zaqar_404(await zpost(env, "q1", grant, override=override))
    assert_zaqar_404(await zpost(env, "q2", grant, override=override))
    assert_zaqar_404(await zget(env, "/v2/queues/q1/messages", grant,
                                override=override))
    assert await env.total("q1") == 0 and await env.total("q2") == 0


@pytest.mark.parametrize("missing", ["URL-Signature", "URL-Expires", "URL-Methods",
                                     "URL-Paths", "X-Project-Id"])
@pytest.mark.parametrize("blank", ["", " ", ","])
async def test_empty_headers_never_bypass_verification(env, missing, blank):
    """Zaqar's old bug: an empty URL-Signature meant "no signature"."""
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    result = await zpost(env, "q1", grant, override={missing: blank})
    assert result.status_code in (400, 404), result.text
    if missing == "URL-Signature":
        assert_zaqar_404(result)
    assert await env.total("q1") == 0


@pytest.mark.parametrize("missing", ["URL-Expires", "URL-Methods", "URL-Paths"])
async def test_partial_header_sets_are_404(env, missing):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    assert_zaqar_404(await zpost(env, "q1", grant, override={missing: None}))
    assert await env.total("q1") == 0


async def test_empty_signature_with_account_headers_does_not_fall_through(env):
    await env.holder.create_queue("q1")
    result = await env.use("POST", "/v2/queues/q1/messages", headers={
        "URL-Signature": "", "Client-ID": str(uuid.uuid4()),
        "X-Project-ID": env.project}, json={"messages": [{"body": 1}]})
    assert_zaqar_404(result)
    result = await env.use("DELETE", "/v2/queues/q1", headers={
        "URL-Signature": "", "Client-ID": str(uuid.uuid4()),
        "X-Project-ID": env.project})
    assert_zaqar_404(result)
    assert (await env.holder.get("/v2/queues")).json["queues"][0]["name"] == "q1"
    assert await env.total("q1") == 0


@pytest.mark.parametrize("other", ["aXb", "a_b", "a.bc", "xa.b", "a.b.c"])
async def test_regex_confusion_is_404(env, other):
    """Zaqar re.search()es the paths: ``a.b``'s signature opened ``aXb``."""
    await env.holder.create_queue("a.b")
    await env.holder.create_queue(other)
    grant = await env.mint("a.b", paths=["messages", "claims"], methods=["GET", "POST"])
    assert_ok(await zpost(env, "a.b", grant), 201)
    assert_zaqar_404(await zpost(env, other, grant))
    assert_zaqar_404(await zget(env, f"/v2/queues/{other}/messages", grant))
    assert await env.total(other) == 0


@pytest.mark.parametrize("path", [
    "/v2/queues/q1/messages/../../q2/messages",
    "/v2/queues/q1/messages/%2E%2E/%2E%2E/q2/messages",
    "/v2/queues/q1/messages%2F..%2F..%2Fq2%2Fmessages",
])
async def test_dot_segments_under_a_granted_path_are_404(env, path):
    await env.holder.create_queue("q1")
    await env.holder.create_queue("q2")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    result = await env.use("POST", path, headers=zaqar_headers(grant),
                           json={"messages": [{"body": 1}]})
    assert result.status_code in (400, 404)
    assert await env.total("q2") == 0


async def test_unsigned_methods_are_404(env):
    await env.holder.create_queue("q1")
    [mid] = await env.holder.post_bodies("q1", "keep")
    grant = await env.mint("q1", paths=["messages"], methods=["GET"])
    assert_zaqar_404(await zpost(env, "q1", grant))
    for path in ("/v2/queues/q1/messages", f"/v2/queues/q1/messages/{mid}"):
        result = await env.use("DELETE", path, headers=zaqar_headers(grant),
                               params={"pop": "1"} if path.endswith("s") else None)
        assert_zaqar_404(result)
    assert_zaqar_404(await env.use("POST", "/v2/queues/q1/claims",
                                   headers=zaqar_headers(grant),
                                   json={"ttl": 60, "grace": 60}))
    assert await env.bodies("q1") == ["keep"]


@pytest.mark.parametrize("method,path,kw", [
    ("DELETE", "/v2/queues/q1", {}),
    ("PUT", "/v2/queues/q1", {}),
    ("GET", "/v2/queues/q1", {}),
    ("GET", "/v2/queues/q1/stats", {}),
    ("POST", "/v2/queues/q1/purge", {"json": {}}),
    ("POST", "/v2/queues/q1/share", {"json": {"methods": ["GET", "DELETE"]}}),
    ("POST", "/v2/queues/q1/subscriptions", {"json": {
        "subscriber": "http://127.0.0.1:9/", "ttl": 600}}),
    ("GET", "/v2/queues", {}),
    ("GET", "/v2/health", {}),
])
async def test_queue_administration_is_404_in_zaqar_form(make_signed, method, path, kw):
    env = make_signed(api={"admin_mode": True})
    await env.holder.create_queue("q1")
    await env.holder.post_bodies("q1", "keep")
    grant = await env.mint("q1", paths=["messages", "claims", "subscriptions"],
                           methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    for roles in (None, "admin"):
        headers = zaqar_headers(grant, X_Roles=roles)
        result = await env.use(method, path, headers=headers, **kw)
        assert_zaqar_404(result)
    assert await env.bodies("q1") == ["keep"]


async def test_expired_signature_is_404(env, clock):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET"], ttl=60)
    clock.shift(59)
    assert_ok(await zget(env, "/v2/queues/q1/messages", grant))
    clock.shift(1)
    assert_zaqar_404(await zget(env, "/v2/queues/q1/messages", grant))


async def test_signature_cannot_mint(env):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    result = await env.use("POST", "/v2/queues/q1/share", headers=zaqar_headers(grant),
                           json={"methods": ["GET", "POST", "DELETE"], "ttl": 86400})
    assert_zaqar_404(result)
    assert grant["signature"] not in result.text


async def test_zaqar_form_claim_then_delete_needs_messages_delete(env):
    await env.holder.create_queue("q1")
    await env.holder.post_bodies("q1", "job")
    grant = await env.mint("q1", paths=["claims"], methods=["POST", "DELETE"])
    claimed = await env.use("POST", "/v2/queues/q1/claims",
                            headers=zaqar_headers(grant),
                            json={"ttl": 60, "grace": 60})
    assert_ok(claimed, 201)
    claim_id = claimed.headers["location"].rsplit("/", 1)[1]
    mid = claimed.json["messages"][0]["href"].split("?")[0].rsplit("/", 1)[1]
    assert_zaqar_404(await env.use("DELETE", f"/v2/queues/q1/messages/{mid}",
                                   headers=zaqar_headers(grant),
                                   params={"claim_id": claim_id}))
    assert await env.total("q1") == 1


# --- holder abuse ---------------------------------------------------------------------

async def test_zaqar_form_post_is_bounded_by_max_post_bytes(make_signed):
    env = make_signed(max_post_bytes=512)
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    result = await zpost(env, "q1", grant, "y" * 2000)
    assert result.status_code == 400
    assert await env.total("q1") == 0


async def test_zaqar_form_is_rate_limited(make_signed, clock):
    """§4.1 "DoS by a legitimate holder": the Zaqar form is a token too."""
    clock.move_to(60 * (int(time.time()) // 60 + 1) + 1)
    env = make_signed(requests_per_minute=5)
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET"])
    statuses = [(await zget(env, "/v2/queues/q1/messages", grant)).status_code
                for _ in range(10)]
    assert statuses.count(200) <= 5 and 429 in statuses, statuses


# --- revocation and rotation (§5.1: verified like a token) ----------------------------

@pytest.mark.parametrize("how", ["generation", "queue-recreated"])
async def test_zaqar_form_signature_is_revoked_with_the_queue(env, how):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    assert_ok(await zget(env, "/v2/queues/q1/messages", grant))
    if how == "generation":
        await env.driver.grants.bump_generation(env.project, "q1")
    else:
        assert (await env.holder.delete("/v2/queues/q1")).status_code == 204
        await env.holder.create_queue("q1")
    assert_zaqar_404(await zpost(env, "q1", grant))
    assert await env.total("q1") == 0


async def test_zaqar_form_survives_rotation_while_its_key_verifies(env):
    await env.holder.create_queue("q1")
    old = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    env.keys.write(k2="active", k1="verify")
    new = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    assert_ok(await zget(env, "/v2/queues/q1/messages", new))
    assert_ok(await zget(env, "/v2/queues/q1/messages", old))


async def test_zaqar_form_dies_when_its_key_is_retired(env):
    await env.holder.create_queue("q1")
    old = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    env.keys.write(k2="active", k1="retired")
    assert_zaqar_404(await zget(env, "/v2/queues/q1/messages", old))
    assert_zaqar_404(await zpost(env, "q1", old))
    assert await env.total("q1") == 0


async def test_signature_from_another_deployment_is_404(env, clock):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    other_secret = signing.KeyRing.parse(
        signing.generate_key_entry("k1", state="active")).active.secret
    forged = signing.zaqar_signature(other_secret, grant["paths"], grant["methods"],
                                     grant["project"], grant["expires"])
    assert_zaqar_404(await zpost(env, "q1", grant, override={"URL-Signature": forged}))
    assert await env.total("q1") == 0

