"""Pre-signed URLs against the real ``mailslot serve`` (two workers).

The keys come from ``MAILSLOT_SIGNING_KEYS`` in the server's environment,
as an operator would set them. Checked here, end to end:

* python-zaqarclient 4.7.0 mints with ``queue.signed_url()`` and a second
  client uses the ``signed-url`` auth backend (zaqar-v2-api.md §9.5);
* a plain HTTP client uses the minted ``url`` verbatim, with no Client-ID and
  no project header;
* the server's own log (gunicorn + uvicorn access log on) never shows a
  query-string token;
* revocation through ``mailslot revoke`` reaches every worker within
  ``signing.revocation_cache_ttl``; one-time tokens and rate limits hold
  across workers; CIDR bindings are not fooled by forwarding headers.

All traffic goes to 127.0.0.1; every server is terminated by its fixture.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import subprocess
import sys
import time
import urllib.parse
import uuid

import httpx
import pytest
from zaqarclient.queues import client as zclient
from zaqarclient.transport import errors as zerrors

import signing
from queues.api.signed import RATE_FLUSH_EVERY
from tests.fixtures.server import STORES, headers, running_server, store_uri_for

MAILSLOT_BIN = pathlib.Path(sys.executable).parent / "mailslot"
CACHE_TTL = 1.0
ACCESS_LOG_WAIT = 5.0


@pytest.fixture(scope="module", params=STORES)
def sserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp(f"signed-{request.param}")
    uri = store_uri_for(request.param, workdir / "store", request)
    keys = signing.generate_key_entry("f1", state="active")
    with running_server(workdir / "server", uri, workers=2,
                        env={signing.ENV_VAR: keys},
                        settings={"signing": {"revocation_cache_ttl": CACHE_TTL}}
                        ) as server:
        server.signing_keys = keys
        yield server


@pytest.fixture
def project() -> str:
    return f"sg-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def http(sserver):
    with httpx.Client(base_url=sserver.url, timeout=10.0, trust_env=False) as client:
        yield client


def create_queue(http: httpx.Client, project: str, queue: str) -> None:
    response = http.put(f"/v2/queues/{queue}", headers=headers(project))
    assert response.status_code == 201, response.text


def mint(http: httpx.Client, project: str, queue: str, **document) -> dict:
    response = http.post(f"/v2/queues/{queue}/share", headers=headers(project),
                         json=document or {"methods": ["GET", "POST"]})
    assert response.status_code == 200, response.text
    return response.json()


def holder_bodies(http: httpx.Client, project: str, queue: str) -> list:
    response = http.get(f"/v2/queues/{queue}/messages", headers=headers(project),
                        params={"echo": "true", "include_claimed": "true", "limit": 20})
    assert response.status_code == 200, response.text
    return [m["body"] for m in response.json()["messages"]]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
    env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return env


# --- (a) python-zaqarclient, both sides -----------------------------------------------

def test_zaqarclient_signed_url_backend_posts_and_lists(sserver, project):
    conf = {"auth_opts": {"backend": "noauth", "options": {"os_project_id": project}}}
    owner = zclient.Client(sserver.url, version=2, conf=conf)
    queue = owner.queue("shared_q", force_create=True)
    signed = queue.signed_url(paths=["messages"], methods=["GET", "POST"])
    assert signed["paths"] == ["/v2/queues/shared_q/messages"]
    assert signed["methods"] == ["GET", "POST"]
    assert signed["project"] == project
    assert len(signed["signature"]) == 64

    sconf = {"auth_opts": {"backend": "signed-url", "options": {
        "paths": signed["paths"], "expires": signed["expires"],
        "methods": signed["methods"], "signature": signed["signature"],
        "os_project_id": signed["project"]}}}
    holder = zclient.Client(sserver.url, version=2, conf=sconf)
    squeue = holder.queue("shared_q", auto_create=False)
    result = squeue.post([{"body": {"n": i}, "ttl": 300} for i in range(3)])
    assert len(result["resources"]) == 3
    assert sorted(m.body["n"] for m in squeue.messages(echo=True)) == [0, 1, 2]
    assert sorted(m.body["n"] for m in queue.messages(echo=True)) == [0, 1, 2]

    # The signature opens nothing else: not the queue itself, not another queue.
    with pytest.raises(zerrors.ResourceNotFound):
        squeue.delete()
    with pytest.raises(zerrors.ResourceNotFound):
        holder.queue("other_q", auto_create=False).post([{"body": 1, "ttl": 300}])
    with pytest.raises(zerrors.ResourceNotFound):
        squeue.signed_url(paths=["messages"], methods=["GET", "POST", "DELETE"])
    assert owner.queue("shared_q", auto_create=False).exists() is True


# --- (b) a plain HTTP client with the minted url --------------------------------------

def test_minted_url_works_with_only_content_type(sserver, http, project):
    create_queue(http, project, "plain")
    grant = mint(http, project, "plain")
    url = grant["url"]
    assert url.startswith(sserver.url + "/v2/queues/plain/messages?token=")
    with httpx.Client(timeout=10.0, trust_env=False) as bare:
        posted = bare.post(url, json={"messages": [{"body": "hello", "ttl": 300}]})
        assert posted.status_code == 201, posted.text
        assert posted.headers.get("cache-control") == "no-store"
        assert posted.headers.get("referrer-policy") == "no-referrer"
        listed = bare.get(url + "&echo=true")
        assert listed.status_code == 200
        assert [m["body"] for m in listed.json()["messages"]] == ["hello"]
        # The same token in the Authorization header, curl-style.
        path = urllib.parse.urlsplit(url).path
        header = {"Authorization": f"Signed {grant['kid']}:{grant['token']}"}
        again = bare.post(sserver.url + path, headers=header,
                          json={"messages": [{"body": "again", "ttl": 300}]})
        assert again.status_code == 201, again.text
        # ...and nothing beyond the queue's messages.
        refused = bare.delete(f"{sserver.url}/v2/queues/plain?token="
                              f"{grant['kid']}:{grant['token']}")
        assert refused.status_code == 401
    assert sorted(holder_bodies(http, project, "plain")) == ["again", "hello"]


# --- (c) the server log ---------------------------------------------------------------

def test_server_log_never_contains_the_token(sserver, http, project):
    create_queue(http, project, "logged")
    grant = mint(http, project, "logged")
    token = grant["token"]
    quoted = urllib.parse.quote(f"{grant['kid']}:{token}", safe="")
    path = "/v2/queues/logged/messages"
    marker = uuid.uuid4().hex
    with httpx.Client(base_url=sserver.url, timeout=10.0, trust_env=False) as bare:
        requests = [
            ("POST", grant["url"], {"json": {"messages": [{"body": 1, "ttl": 300}]}}),
            ("GET", grant["url"] + f"&echo=true&m={marker}", {}),
            ("GET", f"{path}?m={marker}&token={quoted}", {}),
            ("GET", f"{path}?token={grant['kid']}:{token}x", {}),  # bad signature
            ("DELETE", f"/v2/queues/logged?token={grant['kid']}:{token}", {}),
            ("GET", f"/v2/queues/nope/messages?token={grant['kid']}:{token}", {}),
            ("GET", f"/v2/no/such/route?token={grant['kid']}:{token}", {}),
        ]
        statuses = [bare.request(m, u, **kw).status_code for m, u, kw in requests]
        zaqar = bare.get(path, headers={
            "URL-Signature": grant["signature"], "URL-Expires": grant["expires"],
            "URL-Methods": ",".join(grant["methods"]),
            "URL-Paths": ",".join(grant["paths"]), "X-Project-Id": project,
            "Client-ID": str(uuid.uuid4())})
    assert statuses[:2] == [201, 200] and 401 in statuses and 404 in statuses
    assert zaqar.status_code == 200
    deadline = time.monotonic() + ACCESS_LOG_WAIT
    log = sserver.log_path.read_text(errors="replace")
    while log.count(marker) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        log = sserver.log_path.read_text(errors="replace")
    assert log.count(marker) >= 2, "the access log shows no request line"
    assert "token=" in log  # the request lines are there, redacted
    assert token not in log
    assert quoted not in log
    assert token[:40] not in log
    assert grant["signature"] not in log
    assert sserver.signing_keys.split(":", 2)[2] not in log


# --- revocation across workers --------------------------------------------------------

def _statuses(client: httpx.Client, url: str, count: int) -> list[int]:
    return [client.get(url).status_code for _ in range(count)]


def test_cli_revoke_reaches_every_worker_within_the_bound(sserver, http, project):
    create_queue(http, project, "rq")
    one = mint(http, project, "rq", methods=["GET"])
    two = mint(http, project, "rq", methods=["GET"])
    # New connections each time, to spread the requests over both workers.
    with httpx.Client(timeout=10.0, trust_env=False,
                      limits=httpx.Limits(max_keepalive_connections=0)) as bare:
        assert set(_statuses(bare, one["url"], 8)) == {200}
        assert set(_statuses(bare, two["url"], 8)) == {200}
        done = subprocess.run(
            [str(MAILSLOT_BIN), "revoke", "--config", str(sserver.config_path),
             "--jti", one["jti"]], env=cli_env(), capture_output=True, text=True,
            timeout=60)
        assert done.returncode == 0, done.stderr
        assert one["token"] not in done.stdout + done.stderr
        time.sleep(CACHE_TTL + 0.5)
        assert set(_statuses(bare, one["url"], 10)) == {401}
        assert set(_statuses(bare, two["url"], 4)) == {200}
        done = subprocess.run(
            [str(MAILSLOT_BIN), "revoke", "--config", str(sserver.config_path),
             "--project", project, "--queue", "rq"], env=cli_env(),
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        time.sleep(CACHE_TTL + 0.5)
        assert set(_statuses(bare, two["url"], 10)) == {401}


def test_one_time_url_succeeds_once_across_workers(sserver, http, project):
    create_queue(http, project, "once")
    grant = mint(http, project, "once", methods=["POST"], one_time=True)

    def post(i: int) -> int:
        with httpx.Client(timeout=10.0, trust_env=False) as bare:
            return bare.post(grant["url"], json={"messages": [
                {"body": i, "ttl": 300}]}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(post, range(10)))
    assert statuses == [201] + [401] * 9, statuses
    assert len(holder_bodies(http, project, "once")) == 1


def test_cidr_binding_ignores_forwarding_headers_by_default(sserver, http, project):
    """signing.md §5.3 step 6 / §5.5: X-Forwarded-For counts only from a
    configured trusted proxy, and ``trusted_proxies`` defaults to none."""
    create_queue(http, project, "cidr")
    grant = mint(http, project, "cidr", methods=["POST"], cidrs=["10.1.0.0/16"])
    with httpx.Client(timeout=10.0, trust_env=False) as bare:
        direct = bare.post(grant["url"], json={"messages": [{"body": 1, "ttl": 300}]})
        assert direct.status_code == 401  # we are 127.0.0.1
        spoofed = bare.post(grant["url"], headers={"X-Forwarded-For": "10.1.2.3"},
                            json={"messages": [{"body": 2, "ttl": 300}]})
        assert spoofed.status_code == 401, (
            "a client spoofing X-Forwarded-For got in: " + spoofed.text)
    assert holder_bodies(http, project, "cidr") == []


# --- rate limit across workers --------------------------------------------------------

def test_rate_limit_holds_across_two_workers(tmp_path, project):
    limit = 10
    keys = signing.generate_key_entry("r1", state="active")
    uri = store_uri_for(STORES[0], tmp_path / "store")
    with running_server(tmp_path / "server", uri, workers=2,
                        env={signing.ENV_VAR: keys},
                        settings={"signing": {"requests_per_minute": limit}}) as server:
        second = time.time() % 60
        if second > 50:  # stay inside one counting window
            time.sleep(60.5 - second)
        with httpx.Client(base_url=server.url, timeout=10.0, trust_env=False) as http:
            create_queue(http, project, "rl")
            grant = mint(http, project, "rl", methods=["GET"])
        with httpx.Client(timeout=10.0, trust_env=False,
                          limits=httpx.Limits(max_keepalive_connections=0)) as bare:
            statuses = _statuses(bare, grant["url"], 120)
    assert set(statuses) <= {200, 429}
    assert statuses.count(429) > 0
    # Each worker may overshoot by one batch of counts (queues/api/signed.py).
    assert limit <= statuses.count(200) <= limit + 2 * RATE_FLUSH_EVERY, statuses
