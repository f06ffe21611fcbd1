"""Pre-signed URLs over HTTP: Mailslot tokens against the threat table.

Every test drives the real ASGI app (``create_app``) over the parametrised
``driver`` (sqlite, mongodb, redis) and attacks one row of signing.md §4.1,
using the design of §5 as the expected behaviour. Tokens are minted through
``POST /v2/queues/{q}/share`` as an account holder and then presented the
way a holder of the URL would: ``?token=<kid>:<token>`` (the minted ``url``,
verbatim) or ``Authorization: Signed <kid>:<token>``, with no Client-ID and
no project header unless a test says otherwise.

Every Mailslot-token refusal must be the same 401 body (no oracle, no echo).
Revocation state is cached per app for ``signing.revocation_cache_ttl``;
tests set it to 0, or freeze the clock and move it past the bound.

Zaqar's ``URL-*`` header form is in ``test_signed_zaqar.py``, which reuses
the helpers defined here.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json as jsonlib
import logging
import os
import pathlib
import time
import urllib.parse
import uuid
from typing import Any

import falcon.testing
import pytest

import signing
from queues.api import signed as signed_module
from queues.api.app import create_app
from queues.config import Settings, load_settings
from tests.api.conftest import PATCH_TYPE, Api

UNAUTHORIZED = {"title": "Unauthorized",
                "description": "The signed URL is not valid for this request."}
ALL_OPS = ["claim", "delete", "post", "read"]
# share bodies for each single operation (Zaqar paths x methods).
OP_BODIES = {
    "read": {"paths": ["messages"], "methods": ["GET"]},
    "post": {"paths": ["messages"], "methods": ["POST"]},
    "delete": {"paths": ["messages"], "methods": ["DELETE"]},
    "claim": {"paths": ["claims"], "methods": ["POST", "GET", "PATCH", "DELETE"]},
}
EVERYTHING = {"paths": ["messages", "claims"],
              "methods": ["GET", "POST", "PATCH", "DELETE"]}
_UNSET = object()


# --- keys ---------------------------------------------------------------------

class KeyFile:
    """A ``signing.keys_file`` whose entries keep their secret across rewrites.

    Every rewrite moves the file's mtime forward by whole seconds, so the
    app's ``KeySource`` always sees the change, whatever the filesystem's
    timestamp granularity.
    """

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._secrets: dict[str, str] = {}
        self._mtime_ns = time.time_ns() - 10**12

    def secret_text(self, kid: str) -> str:
        if kid not in self._secrets:
            entry = signing.generate_key_entry(kid, state="verify")
            self._secrets[kid] = entry.split(":", 2)[2]
        return self._secrets[kid]

    def entry(self, kid: str, state: str) -> str:
        return f"{kid}:{state}:{self.secret_text(kid)}"

    def write(self, **states: str) -> None:
        """``write(k2="active", k1="verify")``: the whole ring, in this order."""
        text = "".join(self.entry(kid, state) + "\n" for kid, state in states.items())
        self.path.write_text("# test ring\n" + text)
        self._mtime_ns += 10**9
        os.utime(self.path, ns=(self._mtime_ns, self._mtime_ns))

    def ring(self) -> signing.KeyRing:
        return signing.KeyRing.from_file(self.path)


def foreign_signer(kid: str = "k1", **kwargs: Any) -> signing.GrantSigner:
    """A signer of another deployment: same kid, its own random secret."""
    ring = signing.KeyRing.parse(signing.generate_key_entry(kid, state="active"))
    return signing.GrantSigner(ring, **kwargs)


def signed_settings(keys_file: str | os.PathLike[str], *, api: dict | None = None,
                    **signing_overrides: Any) -> Settings:
    base = load_settings(env={})
    return dataclasses.replace(
        base,
        api=dataclasses.replace(base.api, **(api or {})),
        signing=dataclasses.replace(base.signing, keys_file=str(keys_file),
                                    **signing_overrides))


# --- the environment under test -------------------------------------------------

def credential(grant: dict) -> str:
    return f"{grant['kid']}:{grant['token']}"


def split_url(url: str) -> tuple[str, str]:
    """(path, raw query string) of a minted ``url``."""
    parts = urllib.parse.urlsplit(url)
    return parts.path, parts.query


class Signed:
    """One app over the test's driver, an account holder, and token users."""

    def __init__(self, app, driver, project: str, keys: KeyFile,
                 settings: Settings) -> None:
        self.app = app
        self.driver = driver
        self.project = project
        self.keys = keys
        self.settings = settings
        self.holder = Api(app, client_id=str(uuid.uuid4()), project=project)
        self.conductor = falcon.testing.ASGIConductor(app)

    # -- account holder --

    async def mint_raw(self, queue: str, document: Any = _UNSET, *,
                       headers: dict | None = None) -> falcon.testing.Result:
        kwargs: dict[str, Any] = {"headers": headers}
        if document is not _UNSET:
            kwargs["json"] = document
        return await self.holder.post(f"/v2/queues/{queue}/share", **kwargs)

    async def mint(self, queue: str, **document: Any) -> dict:
        """Mint with a share body (default: everything, for one hour)."""
        if not document:
            document = dict(EVERYTHING)
        result = await self.mint_raw(queue, document)
        assert result.status_code == 200, result.text
        return result.json

    async def mint_ops(self, queue: str, *ops: str, **extra: Any) -> dict:
        paths: set[str] = set()
        methods: set[str] = set()
        for op in ops:
            paths.update(OP_BODIES[op]["paths"])
            methods.update(OP_BODIES[op]["methods"])
        grant = await self.mint(queue, paths=sorted(paths), methods=sorted(methods),
                                **extra)
        assert grant["ops"] == sorted(set(grant["ops"]))
        return grant

    # -- token holder --

    async def use(self, method: str, path: str, grant: dict | None = None, *,
                  via: str = "query", headers: dict | None = None, json: Any = _UNSET,
                  body: bytes | str | None = None, params: dict | None = None,
                  query_string: str | None = None, remote_addr: str | None = None,
                  conductor: falcon.testing.ASGIConductor | None = None,
                  ) -> falcon.testing.Result:
        """A request as a token holder: no Client-ID, no project header."""
        merged = {k: v for k, v in (headers or {}).items() if v is not None}
        query = dict(params or {})
        if grant is not None:
            if via == "query":
                query["token"] = credential(grant)
            elif via == "header":
                merged["Authorization"] = f"Signed {credential(grant)}"
            else:  # pragma: no cover
                raise ValueError(via)
        kwargs: dict[str, Any] = {"headers": merged}
        if json is not _UNSET:
            kwargs["body"] = jsonlib.dumps(json)
            merged.setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["body"] = body
        if query_string is not None:
            kwargs["query_string"] = query_string
        elif query:
            kwargs["params"] = query
        if remote_addr is not None:
            kwargs["remote_addr"] = remote_addr
        result = await (conductor or self.conductor).simulate_request(
            method, path, **kwargs)
        assert result.status_code < 500, (
            f"{method} {path} answered {result.status}: {result.text[:300]}")
        return result

    async def post_as_token(self, queue: str, grant: dict, *bodies: Any,
                            **kw: Any) -> falcon.testing.Result:
        messages = [{"body": b, "ttl": 300} for b in (bodies or ("x",))]
        return await self.use("POST", f"/v2/queues/{queue}/messages", grant,
                              json={"messages": messages}, **kw)

    async def bodies(self, queue: str, *, include_claimed: bool = True) -> list:
        """Every live message body in the queue, as the account holder sees it."""
        document = await self.holder.list_messages(
            queue, echo=True, include_claimed=include_claimed, limit=20)
        return [m["body"] for m in document["messages"]]

    async def total(self, queue: str) -> int:
        return len(await self.bodies(queue))


def assert_refused(result: falcon.testing.Result, *secrets: str) -> None:
    """The uniform Mailslot-token refusal, echoing nothing it was sent."""
    assert result.status_code == 401, (result.status, result.text)
    assert result.json == UNAUTHORIZED
    for secret in secrets:
        assert secret not in result.text


def assert_ok(result: falcon.testing.Result, status: int = 200) -> None:
    assert result.status_code == status, (result.status, result.text)


@pytest.fixture
def keyfile(tmp_path: pathlib.Path) -> KeyFile:
    keys = KeyFile(tmp_path / "signing.keys")
    keys.write(k1="active")
    return keys


@pytest.fixture
def make_signed(driver, project, keyfile):
    """``make_signed(api={...}, **signing_overrides)`` -> a fresh ``Signed``.

    ``revocation_cache_ttl`` defaults to 0 here (no caching) unless given.
    Several apps made in one test share the driver, like workers share a store.
    """

    def make(*, api: dict | None = None, **signing_overrides: Any) -> Signed:
        signing_overrides.setdefault("revocation_cache_ttl", 0)
        settings = signed_settings(keyfile.path, api=api, **signing_overrides)
        return Signed(create_app(settings, driver), driver, project, keyfile, settings)

    return make


@pytest.fixture
def env(make_signed) -> Signed:
    return make_signed()


# --- the happy path (baseline for every refusal below) ----------------------------

async def test_minted_url_works_verbatim_with_no_other_headers(env):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages"], methods=["GET", "POST"])
    assert grant["ops"] == ["post", "read"]
    assert grant["kid"] == "k1" and grant["project"] == env.project
    path, query = split_url(grant["url"])
    assert path == "/v2/queues/q1/messages"
    assert query == f"token={credential(grant)}"

    posted = await env.use("POST", path, query_string=query,
                           json={"messages": [{"body": {"n": 1}, "ttl": 300}]})
    assert_ok(posted, 201)
    listed = await env.use("GET", path, query_string=query + "&echo=true")
    assert_ok(listed)
    assert [m["body"] for m in listed.json["messages"]] == [{"n": 1}]
    # Token-authenticated responses must not be cached or leak via Referer.
    for result in (posted, listed):
        assert result.headers.get("cache-control") == "no-store"
        assert result.headers.get("referrer-policy") == "no-referrer"
    # ... and the account holder sees the message in its own project.
    assert [m["body"] for m in (await env.holder.list_messages("q1"))["messages"]] \
        == [{"n": 1}]


async def test_authorization_header_form_and_optional_client_id(env):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read", "post")
    assert_ok(await env.post_as_token("q1", grant, "a", via="header"), 201)
    # Lower-case scheme, explicit Client-ID and the right project all work too.
    result = await env.use("GET", "/v2/queues/q1/messages", headers={
        "Authorization": f"signed {credential(grant)}",
        "Client-ID": str(uuid.uuid4()), "X-Project-ID": env.project})
    assert_ok(result)
    assert [m["body"] for m in result.json["messages"]] == ["a"]


async def test_keys_from_environment_variable(driver, project, monkeypatch):
    monkeypatch.setenv(signing.ENV_VAR, signing.generate_key_entry("e1", "active"))
    base = load_settings(env={})
    settings = dataclasses.replace(
        base, signing=dataclasses.replace(base.signing, revocation_cache_ttl=0))
    app = create_app(settings, driver)
    env = Signed(app, driver, project, None, settings)  # type: ignore[arg-type]
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "post")
    assert grant["kid"] == "e1"
    assert_ok(await env.post_as_token("q1", grant), 201)


# --- over-broad scope: prefix / regex / substring; project confusion ------------

@pytest.mark.parametrize("other", ["aXb", "a_b", "a.bc", "a.", "ab", "A.B", "xa.b"])
async def test_grant_for_dotted_queue_opens_no_lookalike(env, other):
    await env.holder.create_queue("a.b")
    await env.holder.create_queue(other)
    grant = await env.mint("a.b")
    assert_ok(await env.post_as_token("a.b", grant), 201)  # the grant itself works
    assert_refused(await env.post_as_token(other, grant))
    assert_refused(await env.use("GET", f"/v2/queues/{other}/messages", grant))
    assert_refused(await env.use("POST", f"/v2/queues/{other}/claims", grant,
                                 json={"ttl": 60, "grace": 60}))
    assert await env.total(other) == 0


@pytest.mark.parametrize("path", [
    "/v2/queues/a.b/../c/messages",
    "/v2/queues/a.b/%2E%2E/c/messages",
    "/v2/queues/a.b%2F..%2Fc/messages",
    "/v2/queues/a.b%2f..%2fc/messages",
    "/v2/queues/a.b/messages/../../c/messages",
    "/v2/queues/a.b/messages/..%2F..%2Fc%2Fmessages",
    "/v2/queues/./c/messages",
    "/v2/queues/c/messages/../../a.b/messages",
])
async def test_dot_dot_segments_never_reach_another_queue(env, path):
    await env.holder.create_queue("a.b")
    await env.holder.create_queue("c")
    grant = await env.mint("a.b")
    posted = await env.use("POST", path, grant,
                           json={"messages": [{"body": "sneaky", "ttl": 300}]})
    listed = await env.use("GET", path, grant)
    for result in (posted, listed):
        assert result.status_code in (400, 401, 404), (path, result.status, result.text)
    assert await env.total("c") == 0


async def test_trailing_slash_and_case_are_not_the_granted_queue(env):
    await env.holder.create_queue("orders")
    await env.holder.create_queue("Orders")
    grant = await env.mint("orders")
    assert_refused(await env.post_as_token("Orders", grant))
    result = await env.use("POST", "/v2/queues/orders/messages/", grant,
                           json={"messages": [{"body": 1}]})
    assert result.status_code in (401, 404, 405)
    assert await env.total("Orders") == 0
    assert await env.total("orders") == 0


async def test_another_queue_of_the_same_project_is_refused(env):
    await env.holder.create_queue("mine")
    await env.holder.create_queue("theirs")
    await env.holder.post_bodies("theirs", "secret")
    grant = await env.mint("mine")
    for via in ("query", "header"):
        # accepted first: an accepted scope is remembered per credential,
        # and must not open anything else
        assert_ok(await env.post_as_token("mine", grant, via=via), 201)
    for method, path, kw in [
            ("GET", "/v2/queues/theirs/messages", {}),
            ("POST", "/v2/queues/theirs/messages",
             {"json": {"messages": [{"body": 1}]}}),
            ("DELETE", "/v2/queues/theirs/messages", {"params": {"pop": "1"}}),
            ("POST", "/v2/queues/theirs/claims", {"json": {"ttl": 60, "grace": 60}})]:
        for via in ("query", "header"):
            assert_refused(await env.use(method, path, grant, via=via, **kw))
    assert await env.total("theirs") == 1
    assert await env.total("mine") == 2


@pytest.mark.parametrize("header", ["X-Project-ID", "x-project-id"])
async def test_a_different_project_header_is_refused(env, header):
    other = Api(env.app, client_id=str(uuid.uuid4()), project=f"{env.project}-other")
    await env.holder.create_queue("q1")
    await other.create_queue("q1")
    grant = await env.mint("q1")
    for via in ("query", "header"):
        assert_ok(await env.post_as_token("q1", grant, via=via), 201)
        assert_refused(await env.post_as_token(
            "q1", grant, via=via, headers={header: other.project}))
        assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant, via=via,
                                     headers={header: other.project}))
    assert await env.total("q1") == 2
    assert (await other.list_messages("q1", echo=True))["messages"] == []


@pytest.mark.parametrize("header", ["X-Tenant-ID", "X-Tenant"])
async def test_other_project_headers_never_choose_the_project(env, header):
    """Only the token names the project: a tenant header never redirects it."""
    other = Api(env.app, client_id=str(uuid.uuid4()), project=f"{env.project}-other")
    await env.holder.create_queue("q1")
    await other.create_queue("q1")
    grant = await env.mint("q1")
    result = await env.post_as_token("q1", grant, headers={header: other.project})
    assert result.status_code in (201, 401), result.text
    assert (await other.list_messages("q1", echo=True))["messages"] == []
    assert await env.total("q1") == (1 if result.status_code == 201 else 0)


async def test_same_queue_name_in_another_project_is_refused(env, make_signed):
    """A grant minted in project A is refused for project B's queue of the same name."""
    other = Api(env.app, client_id=str(uuid.uuid4()), project=f"{env.project}-b")
    await other.create_queue("shared")
    result = await other.post("/v2/queues/shared/share",
                              json={"methods": ["GET", "POST"]})
    assert_ok(result)
    grant_b = result.json
    await env.holder.create_queue("shared")
    assert_refused(await env.post_as_token("shared", grant_b,
                                           headers={"X-Project-ID": env.project}))
    assert await env.total("shared") == 0


# --- method / operation escalation, side channels ---------------------------------

async def test_post_only_token_cannot_read_delete_or_claim(env):
    await env.holder.create_queue("q1")
    [mid] = await env.holder.post_bodies("q1", "keep")
    grant = await env.mint_ops("q1", "post")
    assert grant["ops"] == ["post"]
    assert_ok(await env.post_as_token("q1", grant), 201)
    claim_id, _ = await env.holder.claim("q1", limit=1)
    base = "/v2/queues/q1"
    attempts = [
        ("GET", f"{base}/messages", {}),
        ("GET", f"{base}/messages", {"params": {"ids": mid}}),
        ("GET", f"{base}/messages/{mid}", {}),
        ("DELETE", f"{base}/messages/{mid}", {}),
        ("DELETE", f"{base}/messages", {"params": {"ids": mid}}),
        ("DELETE", f"{base}/messages", {"params": {"pop": "1"}}),
        ("POST", f"{base}/claims", {"json": {"ttl": 60, "grace": 60}}),
        ("GET", f"{base}/claims/{claim_id}", {}),
        ("PATCH", f"{base}/claims/{claim_id}", {"json": {"ttl": 120}}),
        ("DELETE", f"{base}/claims/{claim_id}", {}),
    ]
    for method, path, kw in attempts:
        result = await env.use(method, path, grant, **kw)
        assert_refused(result)
        assert "keep" not in result.text
    assert await env.total("q1") == 2
    assert len(await env.bodies("q1", include_claimed=False)) == 1


async def test_read_only_token_cannot_post_delete_or_claim(env):
    await env.holder.create_queue("q1")
    [mid] = await env.holder.post_bodies("q1", "keep")
    grant = await env.mint_ops("q1", "read")
    assert grant["ops"] == ["read"]
    assert_ok(await env.use("GET", f"/v2/queues/q1/messages/{mid}", grant))
    assert_refused(await env.post_as_token("q1", grant))
    assert_refused(await env.use("DELETE", f"/v2/queues/q1/messages/{mid}", grant))
    assert_refused(await env.use("DELETE", "/v2/queues/q1/messages", grant,
                                 params={"pop": "1"}))
    assert_refused(await env.use("POST", "/v2/queues/q1/claims", grant,
                                 json={"ttl": 60, "grace": 60}))
    assert await env.total("q1") == 1


async def test_delete_only_token_cannot_read_bodies_by_popping(env):
    """``DELETE ?pop=N`` returns the popped bodies: that is a read.

    signing.md §5.1 defines ``delete`` as deleting (claimed) messages and
    ``read`` as list/get/peek; a token without ``read`` must not see bodies.
    """
    await env.holder.create_queue("q1")
    await env.holder.post_bodies("q1", "confidential")
    grant = await env.mint_ops("q1", "delete")
    assert grant["ops"] == ["delete"]
    result = await env.use("DELETE", "/v2/queues/q1/messages", grant,
                           params={"pop": "1"})
    assert "confidential" not in result.text, (
        f"a delete-only token read a body through pop: {result.status}")


async def test_claim_token_claims_but_cannot_delete_messages(env):
    await env.holder.create_queue("q1")
    await env.holder.post_bodies("q1", "job")
    grant = await env.mint_ops("q1", "claim")
    assert grant["ops"] == ["claim"]
    claimed = await env.use("POST", "/v2/queues/q1/claims", grant,
                            json={"ttl": 60, "grace": 60})
    assert_ok(claimed, 201)
    [message] = claimed.json["messages"]
    claim_id = claimed.headers["location"].rsplit("/", 1)[1]
    assert_ok(await env.use("GET", f"/v2/queues/q1/claims/{claim_id}", grant))
    assert_ok(await env.use("PATCH", f"/v2/queues/q1/claims/{claim_id}", grant,
                            json={"ttl": 90}), 204)
    mid = message["href"].rsplit("/", 1)[1].split("?")[0]
    assert_refused(await env.use("DELETE", f"/v2/queues/q1/messages/{mid}", grant,
                                 params={"claim_id": claim_id}))
    assert await env.total("q1") == 1


QUEUE_ADMIN = [
    ("PUT", "/v2/queues/q1", {"json": {"k": "v"}}),
    ("PUT", "/v2/queues/brand-new", {}),
    ("GET", "/v2/queues/q1", {}),
    ("PATCH", "/v2/queues/q1", {"body": jsonlib.dumps(
        [{"op": "replace", "path": "/metadata/k", "value": "evil"}]),
        "headers": {"Content-Type": PATCH_TYPE}}),
    ("DELETE", "/v2/queues/q1", {}),
    ("GET", "/v2/queues/q1/stats", {}),
    ("POST", "/v2/queues/q1/purge", {"json": {"resource_types": ["messages"]}}),
    ("POST", "/v2/queues/q1/share", {"json": {"methods": ["GET", "POST", "DELETE"],
                                              "ttl": 86400}}),
    ("GET", "/v2/queues", {}),
    ("GET", "/v2/health", {}),
    ("GET", "/v2/ping", {}),
    ("GET", "/v2/", {}),
]


@pytest.mark.parametrize("method,path,kw", QUEUE_ADMIN,
                         ids=[f"{m} {p}" for m, p, _ in QUEUE_ADMIN])
async def test_queue_administration_is_never_token_accessible(make_signed, method,
                                                               path, kw):
    env = make_signed(api={"admin_mode": True})
    await env.holder.create_queue("q1", {"k": "v"})
    await env.holder.post_bodies("q1", "keep")
    grant = await env.mint("q1")
    assert sorted(grant["ops"]) == ALL_OPS
    for via in ("query", "header"):
        for roles in (None, "admin"):
            headers = dict(kw.get("headers") or {})
            if roles:
                headers["X-Roles"] = roles
            result = await env.use(method, path, grant, via=via,
                                   **{**kw, "headers": headers})
            assert_refused(result, grant["token"])
    assert (await env.holder.get("/v2/queues/q1")).json["k"] == "v"
    listing = await env.holder.get("/v2/queues")
    assert [q["name"] for q in listing.json["queues"]] == ["q1"]
    assert await env.total("q1") == 1


@pytest.mark.parametrize("path", ["/v2/queues/q1/subscriptions",
                                  "/v2/queues/q1/subscriptions/abc"])
async def test_token_cannot_create_or_see_subscriptions(env, path):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1", paths=["messages", "claims", "subscriptions"],
                           methods=["GET", "POST", "PATCH", "DELETE"])
    attempts = [
        ("POST", {"json": {"subscriber": "http://127.0.0.1:9/hook", "ttl": 3600,
                           "options": {}}}),
        ("GET", {}), ("PATCH", {"json": {"ttl": 7200}}), ("DELETE", {})]
    for method, kw in attempts:
        for via in ("query", "header"):
            result = await env.use(method, path, grant, via=via, **kw)
            assert result.status_code in (401, 403, 404), (method, result.status)
            assert grant["token"] not in result.text
    listing = await env.holder.get("/v2/queues/q1/subscriptions")
    if listing.status_code == 200:
        assert listing.json.get("subscriptions", []) == []


@pytest.mark.parametrize("override", ["X-HTTP-Method-Override", "X-HTTP-Method",
                                      "X-Method-Override"])
async def test_method_override_headers_are_ignored(env, override):
    await env.holder.create_queue("q1")
    [mid] = await env.holder.post_bodies("q1", "keep")
    reader = await env.mint_ops("q1", "read")
    poster = await env.mint_ops("q1", "post")
    # A read token "GET"-ting with an override never deletes.
    for path, params in [("/v2/queues/q1/messages", {"pop": "1"}),
                         (f"/v2/queues/q1/messages/{mid}", None),
                         ("/v2/queues/q1", None)]:
        result = await env.use("GET", path, reader, headers={override: "DELETE"},
                               params=params)
        assert result.status_code in (200, 401), result.text
    # A post token "POST"-ing with override GET never lists.
    result = await env.use("POST", "/v2/queues/q1/messages", poster,
                           headers={override: "GET"},
                           json={"messages": [{"body": "new", "ttl": 300}]})
    assert result.status_code in (201, 401)
    assert "keep" not in result.text
    assert (await env.holder.get(f"/v2/queues/q1/messages/{mid}")).status_code == 200
    assert (await env.holder.get("/v2/queues/q1")).status_code == 200


async def test_token_cannot_mint_or_widen_itself(env):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read", ttl=60)
    bodies = [{}, {"methods": ["GET", "POST", "DELETE"]}, {"ttl": 86400},
              {"paths": ["messages", "claims", "subscriptions"]}]
    for document in bodies:
        for via in ("query", "header"):
            result = await env.use("POST", "/v2/queues/q1/share", grant, via=via,
                                   json=document)
            assert_refused(result)
            # ... even when it also brings the account holder's headers.
            result = await env.use("POST", "/v2/queues/q1/share", grant, via=via,
                                   json=document, headers={
                                       "Client-ID": str(uuid.uuid4()),
                                       "X-Project-ID": env.project})
            assert_refused(result)
    # The token still has exactly its one operation.
    assert_refused(await env.post_as_token("q1", grant))


async def test_two_credentials_on_one_request_are_refused(env):
    await env.holder.create_queue("q1")
    reader = await env.mint_ops("q1", "read")
    poster = await env.mint_ops("q1", "post")
    result = await env.use("POST", "/v2/queues/q1/messages", poster, via="header",
                           params={"token": credential(reader)},
                           json={"messages": [{"body": 1}]})
    assert_refused(result)
    assert await env.total("q1") == 0


@pytest.mark.parametrize("value", [
    "Signed", "Signed ", "Signed k1", "Signed k1:", "Signed :abc", "Signed K1:abc",
    "Signed k1:abc def", "Signed  k1:abc", "Signed k1:abc:", "Signed k1:" + "A" * 4096,
    "Signed k1:\u00e9t\u00e9", "SIGNED k1:abc",
])
async def test_malformed_authorization_never_falls_through(env, value):
    """A present Signed credential must verify: no fall-through to header auth."""
    await env.holder.create_queue("q1")
    result = await env.use("POST", "/v2/queues/q1/messages",
                           headers={"Authorization": value,
                                    "Client-ID": str(uuid.uuid4()),
                                    "X-Project-ID": env.project},
                           json={"messages": [{"body": 1}]})
    assert result.status_code in (400, 401), (result.status, result.text)
    if result.status_code == 401:
        assert result.json == UNAUTHORIZED
    assert await env.total("q1") == 0


@pytest.mark.parametrize("query", [
    "token=", "token=k1", "token=k1:", "token=:x", "token=k1:not-a-token",
    "token=k1%3A", "token=%00",
])
async def test_malformed_query_token_never_falls_through(env, query):
    """A present ``token`` parameter must verify, even with the holder's headers."""
    await env.holder.create_queue("q1")
    result = await env.use("POST", "/v2/queues/q1/messages", query_string=query,
                           headers={"Client-ID": str(uuid.uuid4()),
                                    "X-Project-ID": env.project},
                           json={"messages": [{"body": 1}]})
    assert result.status_code in (400, 401), (query, result.status, result.text)
    assert await env.total("q1") == 0


# --- expiry, lifetime, clock skew -----------------------------------------------

async def test_expiry_is_exclusive(env, clock):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read", ttl=60)
    assert grant["exp"] == int(time.time()) + 60
    clock.shift(59)
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))
    clock.shift(1)  # now == exp
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant))
    clock.shift(3600)
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant, via="header"))


async def test_default_lifetime_is_one_hour(env, clock):
    await env.holder.create_queue("q1")
    grant = await env.mint("q1")
    assert grant["exp"] == int(time.time()) + 3600
    clock.shift(3599)
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))
    clock.shift(1)
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant))


async def test_not_before_in_the_future_is_refused_until_then_with_leeway(env, clock):
    await env.holder.create_queue("q1")
    now = int(time.time())
    grant = await env.mint_ops("q1", "read", not_before=now + 100)
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant))
    clock.shift(69)  # nbf is 31 s away: outside the 30 s leeway
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant))
    clock.shift(1)  # nbf 30 s away: within the leeway
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))
    clock.shift(30)
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))


async def test_token_issued_by_a_fast_clock_is_refused_beyond_leeway(env, clock):
    """A node whose clock runs ahead issues a token; iat > now + leeway -> 401."""
    await env.holder.create_queue("q1")
    start = time.time()
    clock.shift(100)
    grant = await env.mint_ops("q1", "read")
    clock.move_to(start)
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant))
    clock.shift(69)
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant))
    clock.shift(1)
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))


async def test_lifetime_cap_is_checked_again_at_verify(env, make_signed):
    """exp - iat <= max_lifetime at use: lowering the cap kills long tokens."""
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read", ttl=7200)
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))
    strict = make_signed(max_ttl=3600, default_ttl=600)
    assert_refused(await strict.use("GET", "/v2/queues/q1/messages", grant))
    short = await strict.mint_ops("q1", "read", ttl=3600)
    assert_ok(await strict.use("GET", "/v2/queues/q1/messages", short))


def api_error(description: str) -> dict:
    return {"title": "Invalid API request", "description": description}


@pytest.mark.parametrize("document,description", [
    ({"ttl": 86401}, "`ttl` must be an integer from 1 to 86400."),
    ({"ttl": 0}, "`ttl` must be an integer from 1 to 86400."),
    ({"ttl": -5}, "`ttl` must be an integer from 1 to 86400."),
    ({"ttl": "60"}, "`ttl` must be an integer from 1 to 86400."),
    ({"ttl": True}, "`ttl` must be an integer from 1 to 86400."),
    ({"ttl": 60.5}, "`ttl` must be an integer from 1 to 86400."),
    ({"expires": "2000-01-01T00:00:00"}, "`expires` is lower than the current time"),
    ({"expires": "12345"}, "`expires` should be date format, for example"
                           " 2016-01-01T00:00:00, not integer value: 12345"),
    ({"expires": "3600"}, "`expires` should be date format, for example"
                          " 2016-01-01T00:00:00, not integer value: 3600"),
    ({"ttl": 60, "expires": "2099-01-01T00:00:00"},
     "Give either `expires` or `ttl`, not both."),
])
async def test_mint_rejects_bad_lifetimes(env, clock, document, description):
    await env.holder.create_queue("q1")
    result = await env.mint_raw("q1", document)
    assert result.status_code == 400, result.text
    assert result.json == api_error(description)


async def test_mint_rejects_expires_beyond_the_cap(env, clock):
    await env.holder.create_queue("q1")
    far = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 86400 + 60))
    result = await env.mint_raw("q1", {"expires": far})
    assert result.status_code == 400
    assert result.json["title"] == "Invalid API request"
    near = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 600))
    grant = await env.mint("q1", expires=near)
    assert grant["expires"] == near
    assert grant["exp"] == int(time.time()) + 600


@pytest.mark.parametrize("document", [
    {"not_before": "soon"}, {"not_before": 1.5}, {"not_before": True},
    {"ttl": 60, "not_before": "EXP"}, {"ttl": 60, "not_before": "EXP+10"},
    {"one_time": "yes"}, {"cidrs": "10.0.0.0/8"}, {"cidrs": ["0.0.0.0/0"]},
    {"cidrs": ["::/0"]}, {"cidrs": ["10.1.2.3/16"]}, {"cidrs": ["not-a-net"]},
    {"cidrs": [f"10.{i}.0.0/16" for i in range(9)]},
    {"methods": ["PUT"]}, {"paths": ["subscriptions"], "methods": ["GET", "POST"]},
    {"paths": ["queues"]}, {"foo": 1},
])
async def test_mint_refuses_unusable_requests(env, clock, document):
    await env.holder.create_queue("q1")
    now = int(time.time())
    if document.get("not_before") == "EXP":
        document = {**document, "not_before": now + 60}
    elif document.get("not_before") == "EXP+10":
        document = {**document, "not_before": now + 70}
    result = await env.mint_raw("q1", document)
    assert result.status_code == 400, (document, result.status, result.text)


# --- tampering, foreign keys, key confusion --------------------------------------

def _flip(text: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    char = text[index]
    replacement = alphabet[(alphabet.index(char) + 1) % len(alphabet)] \
        if char in alphabet else "A"
    return text[:index] + replacement + text[index + 1:]


def _tampered_tokens(token: str) -> dict[str, str]:
    payload, timestamp, signature = token.rsplit(".", 2)
    cut = len(payload) // 2
    return {
        "payload-first": _flip(token, 1),
        "payload-middle": _flip(token, cut),
        "timestamp": payload + "." + _flip(timestamp, 0) + "." + signature,
        "signature-first": payload + "." + timestamp + "." + _flip(signature, 0),
        "signature-last": payload + "." + timestamp + "." + _flip(signature, -2),
        "signature-dropped": payload + "." + timestamp,
        "signature-empty": payload + "." + timestamp + ".",
        "truncated": token[:-1],
        "extended": token + "A",
    }


async def test_any_tampering_is_refused(env):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read", "post")
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))
    for name, token in _tampered_tokens(grant["token"]).items():
        forged = {**grant, "token": token}
        for via in ("query", "header"):
            result = await env.post_as_token("q1", forged, via=via)
            assert result.status_code == 401, (name, via, result.text)
            assert_refused(result, token)
    assert await env.total("q1") == 0


async def test_rewritten_claims_signed_with_no_key_are_refused(env):
    """Editing the JSON claims (wider ops, later exp, other queue) breaks the MAC."""
    await env.holder.create_queue("q1")
    await env.holder.create_queue("q2")
    grant = await env.mint_ops("q1", "read", ttl=60)
    payload, timestamp, signature = grant["token"].rsplit(".", 2)
    claims = {"v": 1, "kid": "k1", "jti": grant["jti"], "p": env.project, "q": "q2",
              "ops": ALL_OPS, "exp": grant["exp"] + 10**6, "gen": 0, "ot": False}
    raw = base64.urlsafe_b64encode(jsonlib.dumps(claims, separators=(",", ":"))
                                   .encode()).rstrip(b"=").decode()
    forged = {**grant, "token": f"{raw}.{timestamp}.{signature}"}
    assert_refused(await env.post_as_token("q2", forged))
    assert_refused(await env.post_as_token("q1", forged))


async def test_swapped_or_unknown_kid_is_refused(env):
    env.keys.write(k1="active", k2="verify")
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "post")
    assert grant["kid"] == "k1"
    for kid in ("k2", "k9", "k"):
        assert_refused(await env.post_as_token("q1", {**grant, "kid": kid}))
    assert await env.total("q1") == 0


async def test_token_from_another_deployment_is_refused(env, clock):
    """Same kid, same claims shape, another deployment's secret."""
    await env.holder.create_queue("q1")
    for salt in (signing.QUEUE_GRANT_SALT, signing.SUBSCRIPTION_CONFIRM_SALT):
        signer = foreign_signer("k1", salt=salt)
        token, grant = signer.mint(env.project, "q1", ALL_OPS, now=time.time(), ttl=600)
        forged = {"kid": grant.kid, "token": token}
        for via in ("query", "header"):
            assert_refused(await env.post_as_token("q1", forged, via=via), token)


async def test_token_for_another_purpose_with_the_right_key_is_refused(env, clock):
    """A subscription-confirmation token signed with our own key is not a grant."""
    await env.holder.create_queue("q1")
    signer = signing.GrantSigner(env.keys.ring(),
                                 salt=signing.SUBSCRIPTION_CONFIRM_SALT)
    token, grant = signer.mint(env.project, "q1", ALL_OPS, now=time.time(), ttl=600)
    assert_refused(await env.post_as_token("q1", {"kid": grant.kid, "token": token}))
    assert await env.total("q1") == 0


async def test_refusals_are_uniform_and_reveal_no_queue_existence(env, clock):
    """Bad signature, wrong queue, missing queue, expired: one 401 body."""
    await env.holder.create_queue("real")
    good = await env.mint_ops("real", "read", ttl=60)
    ghost = await env.mint_ops("ghost", "read", ttl=60)
    bad = {**good, "token": _flip(good["token"], len(good["token"]) - 3)}
    results = [
        await env.use("GET", "/v2/queues/real/messages", bad),
        await env.use("GET", "/v2/queues/ghost/messages", bad),
        await env.use("GET", "/v2/queues/never/messages", good),
        await env.use("GET", "/v2/queues/real/messages", {**good, "kid": "zz"}),
    ]
    clock.shift(61)
    results.append(await env.use("GET", "/v2/queues/real/messages", good))
    results.append(await env.use("GET", "/v2/queues/ghost/messages", ghost))
    for result in results:
        assert_refused(result)
        assert {k.lower() for k in result.headers} <= {
            "content-type", "content-length", "x-openstack-request-id", "vary",
            "www-authenticate", "cache-control", "referrer-policy"}


# --- key rotation (keys_file rewrite + mtime change) ------------------------------

async def test_rotation_verify_keeps_old_tokens_and_retired_kills_them(env):
    await env.holder.create_queue("q1")
    old = await env.mint_ops("q1", "post")
    assert old["kid"] == "k1"
    # Step 1: the new key arrives as verify-only; nothing changes.
    env.keys.write(k1="active", k2="verify")
    assert_ok(await env.post_as_token("q1", old), 201)
    assert (await env.mint_ops("q1", "post"))["kid"] == "k1"
    # Step 2: promote k2; k1 keeps verifying.
    env.keys.write(k2="active", k1="verify")
    new = await env.mint_ops("q1", "post")
    assert new["kid"] == "k2"
    assert_ok(await env.post_as_token("q1", old), 201)
    assert_ok(await env.post_as_token("q1", new, via="header"), 201)
    # Step 3: retire k1: its tokens die at once, k2's live on.
    env.keys.write(k2="active", k1="retired")
    assert_refused(await env.post_as_token("q1", old))
    assert_refused(await env.post_as_token("q1", old, via="header"))
    assert_ok(await env.post_as_token("q1", new), 201)
    # Removing k1 altogether is the same refusal.
    env.keys.write(k2="active")
    assert_refused(await env.post_as_token("q1", old))
    assert_ok(await env.post_as_token("q1", new), 201)
    assert await env.total("q1") == 5


async def test_key_file_changes_apply_within_the_cache_bound(make_signed, clock):
    env = make_signed(revocation_cache_ttl=2)
    await env.holder.create_queue("q1")
    old = await env.mint_ops("q1", "read")
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", old))
    env.keys.write(k2="active", k1="retired")
    clock.shift(2)
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", old))
    new = await env.mint_ops("q1", "read")
    assert new["kid"] == "k2"
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", new))


@pytest.mark.parametrize("garbage", [
    "k1:active:changemechangemechangemechangeme\n",  # placeholder secret
    "k1:active:c2hvcnQ\n",  # too short
    "not an entry\n",
    "",  # empty ring
])
async def test_an_unusable_key_file_keeps_the_old_ring(env, caplog, garbage):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read")
    env.keys.path.write_text(garbage)
    mtime = os.stat(env.keys.path).st_mtime_ns + 5 * 10**9
    os.utime(env.keys.path, ns=(mtime, mtime))
    with caplog.at_level(logging.ERROR, logger="mailslot.api"):
        assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))
    assert "changeme" not in caplog.text
    assert grant["token"] not in caplog.text


# --- revocation --------------------------------------------------------------------

async def _revoke(env: Signed, how: str, grant: dict, queue: str) -> None:
    if how == "jti":
        await env.driver.grants.revoke(grant["jti"], grant["exp"])
    elif how == "generation":
        await env.driver.grants.bump_generation(env.project, queue)
    elif how == "queue-recreated":
        assert (await env.holder.delete(f"/v2/queues/{queue}")).status_code == 204
        await env.holder.create_queue(queue)
    else:  # pragma: no cover
        raise ValueError(how)


REVOCATIONS = ["jti", "generation", "queue-recreated"]


@pytest.mark.parametrize("how", REVOCATIONS)
async def test_revocation_is_immediate_without_cache(env, how):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read", "post")
    bystander = await env.mint_ops("q1", "read") if how == "jti" else None
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))
    await _revoke(env, how, grant, "q1")
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant))
    assert_refused(await env.post_as_token("q1", grant, via="header"))
    if bystander is not None:
        assert_ok(await env.use("GET", "/v2/queues/q1/messages", bystander))
    fresh = await env.mint_ops("q1", "read", "post")
    assert_ok(await env.post_as_token("q1", fresh), 201)


@pytest.mark.parametrize("how", REVOCATIONS)
async def test_revocation_takes_effect_within_the_cache_bound(make_signed, clock, how):
    env = make_signed(revocation_cache_ttl=2)
    other_worker = make_signed(revocation_cache_ttl=2)
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read")
    # Warm both workers' caches with "valid".
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))
    assert_ok(await other_worker.use("GET", "/v2/queues/q1/messages", grant))
    await _revoke(env, how, grant, "q1")
    clock.shift(2)
    for worker in (env, other_worker):
        assert_refused(await worker.use("GET", "/v2/queues/q1/messages", grant))
        assert_refused(await worker.use("GET", "/v2/queues/q1/messages", grant,
                                        via="header"))


async def test_generation_bump_touches_only_its_queue(env):
    await env.holder.create_queue("q1")
    await env.holder.create_queue("q2")
    one = await env.mint_ops("q1", "read")
    two = await env.mint_ops("q2", "read")
    await env.driver.grants.bump_generation(env.project, "q1")
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", one))
    assert_ok(await env.use("GET", "/v2/queues/q2/messages", two))


async def test_token_minted_before_a_queue_exists_dies_with_its_deletion(env):
    """Mint for q1, create/delete/recreate it: the old token must not come back."""
    grant = await env.mint_ops("q1", "post")
    await env.holder.create_queue("q1")
    assert_ok(await env.post_as_token("q1", grant), 201)
    assert (await env.holder.delete("/v2/queues/q1")).status_code == 204
    assert_refused(await env.post_as_token("q1", grant))
    await env.holder.create_queue("q1")
    assert_refused(await env.post_as_token("q1", grant))
    assert await env.total("q1") == 0


# --- CIDR binding --------------------------------------------------------------------

async def test_cidr_binding_uses_the_peer_address(env):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read", "post",
                               cidrs=["10.1.0.0/16", "2001:db8::/48"])
    for inside in ("10.1.2.3", "10.1.255.254", "::ffff:10.1.2.3", "2001:db8:0:1::7"):
        assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant,
                                remote_addr=inside))
    for outside in ("10.2.0.1", "192.0.2.1", "127.0.0.1", "2001:db9::1",
                    "::ffff:10.2.0.1"):
        assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant,
                                     remote_addr=outside))
        assert_refused(await env.post_as_token("q1", grant, remote_addr=outside,
                                               via="header"))
    assert await env.total("q1") == 0


@pytest.mark.parametrize("header,value", [
    ("X-Forwarded-For", "10.1.2.3"),
    ("X-Forwarded-For", "10.1.2.3, 10.1.2.4"),
    ("X-Forwarded-For", "192.0.2.1, 10.1.2.3"),
    ("X-Real-IP", "10.1.2.3"),
    ("Forwarded", "for=10.1.2.3"),
    ("Forwarded", "for=192.0.2.1, for=10.1.2.3"),
])
async def test_forwarding_headers_from_an_untrusted_peer_are_ignored(env, header,
                                                                     value):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "post", cidrs=["10.1.0.0/16"])
    assert_refused(await env.post_as_token("q1", grant, remote_addr="192.0.2.1",
                                           headers={header: value}))
    assert await env.total("q1") == 0


async def test_cidrs_are_normalised_in_the_grant(env):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read",
                               cidrs=["::ffff:10.0.0.0/104", "192.168.0.0/24"])
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant,
                            remote_addr="10.200.1.1"))
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant,
                            remote_addr="192.168.0.9"))
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant,
                                 remote_addr="192.168.1.9"))


# --- token in logs, error bodies ----------------------------------------------------

REDACTED_LOGGERS = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "gunicorn.access",
                    "gunicorn.error", "mailslot.api", "mailslot.audit")


@pytest.fixture
def redaction(caplog):
    """``install_log_redaction()`` as ``get_app()`` does, undone afterwards."""
    caplog.set_level(logging.DEBUG)
    owners = [logging.getLogger(name) for name in REDACTED_LOGGERS]
    owners += [h for lg in list(owners) for h in lg.handlers]
    before = {id(o): list(o.filters) for o in owners}
    signed_module.install_log_redaction()
    yield
    for owner in owners:
        for added in [f for f in owner.filters if f not in before[id(owner)]]:
            owner.removeFilter(added)


def _all_log_text(records: list[logging.LogRecord]) -> str:
    lines = []
    for record in records:
        lines.append(record.getMessage())
        lines.append(repr(record.args))
        lines.append(str(record.msg))
    return "\n".join(lines)


async def test_tokens_never_reach_log_records_or_error_bodies(env, caplog, redaction):
    from uvicorn.logging import AccessFormatter
    from uvicorn.protocols.utils import get_path_with_query_string

    await env.holder.create_queue("q1")
    grant = await env.mint("q1")
    token, signature = grant["token"], grant["signature"]
    path, query = split_url(grant["url"])
    bodies = []
    for via in ("query", "header"):
        bodies.append(await env.post_as_token("q1", grant, via=via))
        bodies.append(await env.use("GET", path, grant, via=via))
        bodies.append(await env.use("DELETE", "/v2/queues/q1", grant, via=via))
        bodies.append(await env.use("GET", "/v2/queues/other/messages", grant, via=via))
    bodies.append(await env.use("GET", path, query_string=query + "x"))
    bodies.append(await env.use("GET", path, headers={
        "Authorization": f"Signed {credential(grant)}x"}))
    zaqar = {"URL-Signature": signature, "URL-Expires": grant["expires"],
             "URL-Methods": ",".join(grant["methods"]),
             "URL-Paths": ",".join(grant["paths"]), "X-Project-ID": env.project,
             "Client-ID": str(uuid.uuid4())}
    bodies.append(await env.use("GET", path, headers=zaqar))
    bodies.append(await env.use("GET", "/v2/queues/q1/stats", headers=zaqar))
    bodies.append(await env.use("GET", path, headers={**zaqar, "URL-Signature":
                                                      signature[::-1]}))
    assert {b.status_code for b in bodies} >= {200, 201, 401, 404}
    for result in bodies:
        assert token not in result.text and signature not in result.text
        for value in result.headers.values():
            assert token not in value and signature not in value

    # The request line as uvicorn's access logger writes it, through the filter.
    access = logging.getLogger("uvicorn.access")
    for raw_query in (query, "echo=true&" + query, "token=" + urllib.parse.quote(
            credential(grant), safe="")):
        scope = {"path": path, "raw_path": path.encode(),
                 "query_string": raw_query.encode(), "root_path": ""}
        access.info('%s - "%s %s HTTP/%s" %d', "192.0.2.9:5555", "GET",
                    get_path_with_query_string(scope), "1.1", 200)
    formatter = AccessFormatter(
        fmt='%(client_addr)s - "%(request_line)s" %(status_code)s')
    access_records = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access_records) == 3
    for record in access_records:
        line = formatter.format(record)
        assert "token=" in line and token not in line, line
    text = _all_log_text(caplog.records) + caplog.text
    assert token not in text
    assert urllib.parse.quote(token, safe="") not in text
    assert signature not in text
    audit = [r.getMessage() for r in caplog.records if r.name == "mailslot.audit"]
    assert any(line.startswith("mint ") and grant["jti"] in line for line in audit)
    assert any(line.startswith("use ") and grant["jti"] in line for line in audit)
    assert any(line.startswith("refuse ") for line in audit)


@pytest.mark.parametrize("logger_name", ["gunicorn.access", "uvicorn.access", ""])
def test_mapping_style_access_records_are_redacted_and_still_format(logger_name,
                                                                    caplog, redaction):
    """gunicorn's access log passes its atoms as one mapping argument."""
    secret = "k1:.eJyrVSooyk8pTS5RsjI0MDLXUcpPLkksS1WyUjI0MdFRyk0tTEpMTlWqBQBQUQbh.ZZZZ"
    atoms = {"h": "192.0.2.9",
             "r": f"GET /v2/queues/q1/messages?token={secret} HTTP/1.1",
             "s": "200", "U": "/v2/queues/q1/messages", "q": f"token={secret}"}
    logging.getLogger(logger_name).info('%(h)s "%(r)s" %(s)s %(q)s', atoms)
    [record] = [r for r in caplog.records if r.name == (logger_name or "root")]
    line = record.getMessage()  # must not raise
    assert line.startswith("192.0.2.9 \"GET /v2/queues/q1/messages?token=")
    assert secret not in line and secret not in caplog.text


# --- holder abuse: body size and request rate ----------------------------------------

async def test_token_post_body_over_the_limit_is_refused_and_stores_nothing(
        make_signed):
    env = make_signed(max_post_bytes=512)
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "post", "read")

    def document(size: int) -> bytes:
        core = b'{"messages": [{"body": "x", "ttl": 300}]'
        return core + b" " * (size - len(core) - 1) + b"}"

    assert len(document(513)) == 513
    for via in ("query", "header"):
        result = await env.use("POST", "/v2/queues/q1/messages", grant, via=via,
                               body=document(513),
                               headers={"Content-Type": "application/json"})
        assert result.status_code == 400, result.text
        big = await env.post_as_token("q1", grant, "y" * 4000, via=via)
        assert big.status_code == 400
    assert await env.total("q1") == 0
    assert_ok(await env.use("POST", "/v2/queues/q1/messages", grant,
                            body=document(512),
                            headers={"Content-Type": "application/json"}), 201)
    # The account holder is not bound by the token limit.
    await env.holder.post_bodies("q1", "y" * 4000)
    assert await env.total("q1") == 2


async def test_rate_limit_per_token_then_recovers_next_minute(make_signed, clock):
    clock.move_to(60 * (int(time.time()) // 60 + 1) + 1)  # early in a window
    env = make_signed(requests_per_minute=5)
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "read")
    bystander = await env.mint_ops("q1", "read")
    statuses = [(await env.use("GET", "/v2/queues/q1/messages", grant)).status_code
                for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    limited = await env.use("GET", "/v2/queues/q1/messages", grant, via="header")
    assert limited.status_code == 429
    assert limited.headers.get("retry-after") == "60"
    assert grant["token"] not in limited.text
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", bystander))
    clock.shift(60)
    assert_ok(await env.use("GET", "/v2/queues/q1/messages", grant))


async def test_rate_limit_is_counted_in_the_store_across_workers(make_signed, clock):
    clock.move_to(60 * (int(time.time()) // 60 + 1) + 1)
    one, two = make_signed(requests_per_minute=5), make_signed(requests_per_minute=5)
    await one.holder.create_queue("q1")
    grant = await one.mint_ops("q1", "read")
    statuses = []
    for i in range(10):
        worker = one if i % 2 == 0 else two
        statuses.append((await worker.use("GET", "/v2/queues/q1/messages",
                                          grant)).status_code)
    assert statuses.count(200) == 5, statuses
    assert statuses[5:] == [429] * 5


async def test_rate_limit_overshoot_is_bounded_with_batched_counts(make_signed, clock):
    """With caching on, each worker may overshoot by at most one batch
    (RATE_FLUSH_EVERY), whatever other tokens do on the same worker.

    The traffic: another token's request, then rounds of one batch of the
    greedy token followed by one batch of the other token (so some flushes
    carry no count for the greedy token).
    """
    clock.move_to(60 * (int(time.time()) // 60 + 1) + 1)
    limit, batch = 10, signed_module.RATE_FLUSH_EVERY
    env = make_signed(requests_per_minute=limit, revocation_cache_ttl=30)
    await env.holder.create_queue("q1")
    greedy = await env.mint_ops("q1", "read")
    other = await env.mint_ops("q1", "read")
    await env.use("GET", "/v2/queues/q1/messages", other)
    successes = 0
    for _ in range(6):
        for _ in range(batch):
            result = await env.use("GET", "/v2/queues/q1/messages", greedy)
            assert result.status_code in (200, 429)
            successes += result.status_code == 200
        for _ in range(batch):
            await env.use("GET", "/v2/queues/q1/messages", other)
    assert successes <= limit + batch, (
        f"one token made {successes} successful requests within one minute with "
        f"requests_per_minute={limit} on a single worker")


# --- one-time tokens ------------------------------------------------------------------

async def test_one_time_token_second_use_is_refused(env):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "post", "read", one_time=True)
    assert_ok(await env.post_as_token("q1", grant), 201)
    assert_refused(await env.post_as_token("q1", grant))
    assert_refused(await env.use("GET", "/v2/queues/q1/messages", grant, via="header"))
    assert await env.total("q1") == 1


async def test_one_time_token_used_concurrently_succeeds_once(make_signed):
    workers = [make_signed(), make_signed(), make_signed()]
    env = workers[0]
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "post", one_time=True)
    results = await asyncio.gather(*(
        workers[i % 3].post_as_token("q1", grant, f"m{i}",
                                     via="query" if i % 2 else "header")
        for i in range(12)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [401] * 11, statuses
    assert await env.total("q1") == 1


async def test_reusable_token_is_not_consumed(env):
    await env.holder.create_queue("q1")
    grant = await env.mint_ops("q1", "post")
    for _ in range(3):
        assert_ok(await env.post_as_token("q1", grant), 201)
