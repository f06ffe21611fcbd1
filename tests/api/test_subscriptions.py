"""Subscriptions over HTTP (zaqar-v2-api.md §2.5, §5.3) and Mailslot's
delivery log and dead letters.

Every test drives the real app over the parametrised ``driver`` (skipped for
drivers that have no subscription store yet). Subscriber URLs use host names
that are never resolved here (the SSRF guard resolves only at delivery time)
or IP literals the guard judges at creation. Confirmation payloads are read
back from the store's outbox (``jobs.lease``) and used as a subscriber would:
``PUT`` on ``URL-Paths`` with the ``URL-*`` headers.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import pathlib
import time
import uuid
from typing import Any

import orjson
import pytest

import signing
from queues.api.app import create_app
from queues.config import Settings, load_settings
from queues.errors import ConfigError
from queues.models import DeliveryAttempt, DeliveryJob, NewMessage, notification
from tests.api.conftest import Api
from tests.api.test_signed_urls import (  # noqa: F401  (fixture)
    UNAUTHORIZED, KeyFile, credential, keyfile,
)
from tests.api.test_signed_zaqar import NOT_FOUND, zaqar_headers

SUBS = "/v2/queues/q1/subscriptions"
HOOK = "https://example.com/hook"
TYPES = str(list(load_settings(env={}).transport.subscriber_types))
UNSUPPORTED = ("The subscriber type of subscription must be supported in the list"
               f" {TYPES}.")
DUPLICATE = ("Such subscription already exists.Subscriptions are unique by project"
             " + queue + subscriber URI.")
SHAPE = {"id", "source", "subscriber", "ttl", "age", "options", "confirmed"}
CREDENTIAL_TOKEN = "tok-9f8e7d6c5b4a"
BAD_REQUEST = "Invalid API request"
BAD_BODY = "Invalid request body"


@pytest.fixture(autouse=True)
def _needs_subscriptions(driver):
    if not hasattr(driver, "subscriptions"):
        pytest.skip("this driver has no subscription store yet")


def settings_for(keys_file: str, credentials_file: str = "", *,
                 transport: dict | None = None, signing_: dict | None = None,
                 **dispatch: Any) -> Settings:
    base = load_settings(env={})
    return dataclasses.replace(
        base,
        transport=dataclasses.replace(base.transport, **(transport or {})),
        signing=dataclasses.replace(base.signing, keys_file=keys_file,
                                    revocation_cache_ttl=0, **(signing_ or {})),
        dispatch=dataclasses.replace(base.dispatch,
                                     credentials_file=credentials_file, **dispatch))


class Subs:
    """An account holder of one project, plus direct access to the store."""

    def __init__(self, app, driver, project: str, keys: KeyFile | None,
                 settings: Settings) -> None:
        self.api = Api(app, client_id=str(uuid.uuid4()), project=project)
        self.app = app
        self.driver = driver
        self.project = project
        self.keys = keys
        self.settings = settings

    async def create_raw(self, queue: str = "q1", **document: Any):
        return await self.api.post(f"/v2/queues/{queue}/subscriptions", json=document)

    async def create(self, subscriber: str = HOOK, queue: str = "q1",
                     **fields: Any) -> dict:
        result = await self.create_raw(queue, subscriber=subscriber, **fields)
        assert result.status_code == 201, result.text
        return result.json

    async def get(self, subscription_id: str, queue: str = "q1") -> dict:
        result = await self.api.get(
            f"/v2/queues/{queue}/subscriptions/{subscription_id}")
        assert result.status_code == 200, result.text
        return result.json

    async def confirm(self, subscription_id: str, confirmed: bool = True,
                      queue: str = "q1") -> None:
        result = await self.api.put(
            f"/v2/queues/{queue}/subscriptions/{subscription_id}/confirm",
            json={"confirmed": confirmed})
        assert result.status_code == 204, result.text

    async def leased(self) -> list[DeliveryJob]:
        return await self.driver.jobs.lease(1000, 60, max_in_flight=1000)

    async def confirmations(self) -> list[dict]:
        """Payloads of the confirmation jobs queued since the last call."""
        return [json.loads(job.message) for job in await self.leased()
                if job.message_id.startswith("confirm-")]

    def queue_key(self, queue: str = "q1", generation: int = 0) -> bytes:
        assert self.keys is not None
        return signing.zaqar_queue_key(self.keys.ring().active.secret, self.project,
                                       queue, generation)


@pytest.fixture
def credentials_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "credentials"
    path.write_text(f"# trust+ credentials\nops:\n  token: {CREDENTIAL_TOKEN}\n"
                    "  hosts: [example.com, workflows.example.com,"
                    " 'orchestration.example.com:8004']\n"
                    f"bound:\n  token: {CREDENTIAL_TOKEN}\n  hosts: [example.com]\n"
                    "  projects: [somebody-else]\n")
    return path


@pytest.fixture
def make_subs(driver, project, keyfile, credentials_file):
    """``make_subs(transport=..., signing_=..., **dispatch)`` -> ``Subs``."""

    def make(*, keys: bool = True, **overrides: Any) -> Subs:
        overrides.setdefault("credentials_file", str(credentials_file))
        settings = settings_for(str(keyfile.path) if keys else "", **overrides)
        return Subs(create_app(settings, driver), driver, project,
                    keyfile if keys else None, settings)

    return make


@pytest.fixture
def subs(make_subs) -> Subs:
    return make_subs()


@pytest.fixture
def confirming(make_subs) -> Subs:
    return make_subs(require_confirmation=True)


def assert_error(result, status: int, title: str, description: str | None = None
                 ) -> None:
    assert result.status_code == status, (result.status, result.text)
    assert result.json["title"] == title, result.json
    if description is not None:
        assert result.json["description"] == description, result.json


# --- create -----------------------------------------------------------------------

async def test_create_answers_201_with_location_id_and_secret_once(subs):
    result = await subs.create_raw(subscriber=HOOK, ttl=3600, options={"a": [1]})
    assert result.status_code == 201, result.text
    assert result.headers["location"] == SUBS
    assert set(result.json) == {"subscription_id", "secret"}
    secret = result.json["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    stored = await subs.driver.subscriptions.get(subs.project, "q1",
                                                  result.json["subscription_id"])
    assert stored.secret == secret
    assert (stored.subscriber, stored.ttl, stored.options) == (HOOK, 3600, {"a": [1]})
    # The queue is created if missing (Zaqar).
    assert (await subs.api.get("/v2/queues/q1")).status_code == 200
    # The secret is never shown again.
    item = await subs.api.get(f"{SUBS}/{result.json['subscription_id']}")
    listed = await subs.api.get(SUBS)
    for later in (item, listed):
        assert later.status_code == 200 and secret not in later.text
        assert "secret" not in later.text


async def test_get_shows_zaqars_object(subs, clock):
    created = await subs.create(HOOK, ttl=120, options={"from": "x"})
    clock.shift(5)
    document = await subs.get(created["subscription_id"])
    assert document == {"id": created["subscription_id"], "source": "q1",
                        "subscriber": HOOK, "ttl": 120, "age": 5,
                        "options": {"from": "x"}, "confirmed": False}


async def test_defaults_and_nulls(subs):
    plain = await subs.create("http://example.com/a")
    assert await subs.get(plain["subscription_id"]) | {"age": 0} == {
        "id": plain["subscription_id"], "source": "q1",
        "subscriber": "http://example.com/a", "ttl": 3600, "age": 0, "options": {},
        "confirmed": False}
    nulls = await subs.create("http://example.com/b", ttl=None, options=None)
    document = await subs.get(nulls["subscription_id"])
    assert (document["ttl"], document["options"]) == (3600, {})


async def test_default_ttl_is_configurable(make_subs):
    subs = make_subs(transport={"default_subscription_ttl": 900})
    created = await subs.create()
    assert (await subs.get(created["subscription_id"]))["ttl"] == 900


@pytest.mark.parametrize("subscriber", [
    "mailto:ops@example.com", "mailto:a@example.com,b@example.com?subject=Hi",
    "http://example.com:8080/x?y=1", "HTTPS://Example.com/", "https://localhost/",
])
async def test_valid_subscribers(subs, subscriber):
    created = await subs.create(subscriber)
    assert (await subs.get(created["subscription_id"]))["subscriber"] == subscriber


async def test_duplicate_unconfirmed_gets_existing_id_and_no_secret(subs):
    first = await subs.create(HOOK, ttl=100, options={"a": 1, "b": {"c": 2, "d": 3}})
    again = await subs.create_raw(subscriber=HOOK, ttl=999,
                                  options={"b": {"d": 3, "c": 2}, "a": 1})
    assert again.status_code == 201, again.text
    assert again.headers["location"] == SUBS
    assert again.json == {"subscription_id": first["subscription_id"]}
    stored = await subs.driver.subscriptions.get(subs.project, "q1",
                                                  first["subscription_id"])
    assert stored.secret == first["secret"] and stored.ttl == 100
    assert stored.options == {"a": 1, "b": {"c": 2, "d": 3}}


async def test_duplicate_confirmed_conflicts(subs):
    first = await subs.create(HOOK, options={"a": 1, "b": 2})
    await subs.confirm(first["subscription_id"])
    again = await subs.create_raw(subscriber=HOOK, options={"b": 2, "a": 1})
    assert_error(again, 409, "Resource conflict", DUPLICATE)
    assert again.headers["location"] == SUBS
    # Same subscriber on another queue is another subscription.
    await subs.create(HOOK, queue="q2", options={"a": 1, "b": 2})


async def test_same_url_with_other_options_is_another_subscription(subs):
    plain = await subs.create(HOOK)
    await subs.confirm(plain["subscription_id"])
    other = await subs.create_raw(subscriber=HOOK, options={"post_data": "{}"})
    assert other.status_code == 201, other.text
    assert set(other.json) == {"subscription_id", "secret"}
    assert other.json["subscription_id"] != plain["subscription_id"]
    assert other.json["secret"] != plain["secret"]
    listed = (await subs.api.get(SUBS)).json["subscriptions"]
    assert sorted((s["id"], s["subscriber"], s["confirmed"]) for s in listed) == sorted(
        [(plain["subscription_id"], HOOK, True),
         (other.json["subscription_id"], HOOK, False)])
    # A message is delivered to each of them.
    await subs.api.post("/v2/queues/q1/messages", json={"messages": [{"body": 1}]})
    assert sorted(job.subscription_id for job in await subs.leased()) == sorted(
        [plain["subscription_id"], other.json["subscription_id"]])


@pytest.mark.parametrize("document,title,description", [
    ({}, BAD_REQUEST, "Missing parameter subscriber in body."),
    ({"ttl": 60}, BAD_REQUEST, "Missing parameter subscriber in body."),
    ([], BAD_REQUEST, "Subscriptions must be a dict."),
    ("https://example.com", BAD_REQUEST, "Subscriptions must be a dict."),
    ({"subscriber": "ftp://example.com/x"}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": "example.com/x"}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": "trust+ftp://example.com"}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": ""}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": None}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": 5}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": ["https://example.com"]}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": HOOK, "ttl": 59}, BAD_REQUEST,
     "The TTL for a subscription must be at least 60 seconds long."),
    ({"subscriber": HOOK, "ttl": 0}, BAD_REQUEST,
     "The TTL for a subscription must be at least 60 seconds long."),
    ({"subscriber": HOOK, "ttl": -3600}, BAD_REQUEST,
     "The TTL for a subscription must be at least 60 seconds long."),
    ({"subscriber": HOOK, "ttl": "x"}, BAD_REQUEST, "TTL must be an integer."),
    ({"subscriber": HOOK, "ttl": "3600"}, BAD_REQUEST, "TTL must be an integer."),
    ({"subscriber": HOOK, "ttl": 3600.5}, BAD_REQUEST, "TTL must be an integer."),
    ({"subscriber": HOOK, "ttl": True}, BAD_REQUEST, "TTL must be an integer."),
    ({"subscriber": HOOK, "ttl": 10**15}, BAD_REQUEST,
     "The TTL seconds for a subscription plus current time must be less than"
     " 9999-12-31 23:59:59.999999."),
    ({"subscriber": HOOK, "options": []}, BAD_REQUEST, "Options must be a dict."),
    ({"subscriber": HOOK, "options": "x"}, BAD_REQUEST, "Options must be a dict."),
    ({"subscriber": HOOK, "options": 0}, BAD_REQUEST, "Options must be a dict."),
    ({"subscriber": HOOK, "options": {"_retry_policy": "x"}}, BAD_REQUEST,
     "_retry_policy must be a dict."),
    ({"subscriber": HOOK, "options": {"_retry_policy": {
        "retry_backoff_function": "bogus"}}}, BAD_REQUEST,
     "invalid retry_backoff_function."),
    ({"subscriber": HOOK, "options": {"_retry_policy": {
        "minimum_delay": 10, "maximum_delay": 15}}}, BAD_REQUEST,
     "invalid minimum_delay and maximum_delay."),
    ({"subscriber": HOOK, "options": {"_retry_policy": {"minimum_delay": "5"}}},
     BAD_REQUEST, "minimum_delay must be an integer."),
    ({"subscriber": HOOK, "options": {"post_headers": "X-A: 1"}}, BAD_REQUEST,
     "post_headers must be a dict."),
    ({"subscriber": HOOK, "options": {"post_headers": {"Bad Name": "v"}}},
     BAD_REQUEST, "post_headers has an invalid header name."),
    ({"subscriber": HOOK, "options": {"post_headers": {"X-A": "a\r\nX-B: b"}}},
     BAD_REQUEST, "post_headers value of X-A must be printable ASCII."),
    ({"subscriber": HOOK, "options": {"post_headers": {"X-A": {"n": 1}}}},
     BAD_REQUEST, "post_headers value of X-A is not a string."),
    ({"subscriber": HOOK, "options": {"post_data": {"messages": []}}}, BAD_REQUEST,
     "post_data must be a string."),
    ({"subscriber": "mailto:"}, BAD_REQUEST,
     "Invalid mailto subscriber: mailto: URI has no recipient."),
    ({"subscriber": "mailto:not an address"}, BAD_REQUEST, None),
    ({"subscriber": "http:no-host"}, BAD_REQUEST, "The subscriber is not a valid URL."),
    ({"subscriber": "http://[::1"}, BAD_REQUEST, "The subscriber is not a valid URI."),
    ({"subscriber": "https://example.com:99999/"}, BAD_REQUEST,
     "The subscriber is not a valid URL."),
    ({"subscriber": HOOK, "options": {"credentials": "ops"}}, BAD_REQUEST,
     "options.credentials is not used by https subscribers."),
    ({"subscriber": "mailto:a@example.com", "options": {"credentials": "ops"}},
     BAD_REQUEST, "options.credentials is not used by mailto subscribers."),
])
async def test_create_validation(subs, document, title, description):
    result = await subs.api.post(SUBS, json=document)
    assert_error(result, 400, title, description)
    assert (await subs.api.get(SUBS)).json["subscriptions"] == []


@pytest.mark.parametrize("raw,description", [
    (b"", "Missing parameter subscriber in body."),
    (b"   ", "Missing parameter subscriber in body."),
])
async def test_create_with_empty_body(subs, raw, description):
    assert_error(await subs.api.post(SUBS, body=raw), 400, BAD_REQUEST, description)


@pytest.mark.parametrize("raw,description", [
    (b"{not json", "Request body could not be parsed."),
    (b'{"subscriber": "https://example.com", "ttl": 18446744073709551616}',
     "JSON contains integer that is too large."),
])
async def test_create_with_bad_json(subs, raw, description):
    assert_error(await subs.api.post(SUBS, body=raw,
                                     headers={"content-type": "application/json"}),
                 400, BAD_BODY, description)


async def test_create_body_is_bounded(subs):
    huge = {"subscriber": HOOK, "options": {"pad": "x" * 70_000}}
    assert_error(await subs.api.post(SUBS, json=huge), 400, BAD_BODY,
                 "Request body is too large.")


# --- where a subscriber may point --------------------------------------------------

@pytest.mark.parametrize("subscriber,reason", [
    ("http://127.0.0.1/hook", "Destination 127.0.0.1 is not allowed: loopback."),
    ("http://169.254.169.254/latest/meta-data/",
     "Destination 169.254.169.254 is not allowed: metadata."),
    ("http://10.0.0.1:8080/", "Destination 10.0.0.1 is not allowed: private."),
    ("https://192.168.1.20/", "Destination 192.168.1.20 is not allowed: private."),
    ("http://[::1]/", "Destination ::1 is not allowed: loopback."),
    ("http://0.0.0.0/", "Destination 0.0.0.0 is not allowed: this-network."),
    ("http://2130706433/", "Destination 2130706433 (127.0.0.1) is not allowed:"
                           " loopback."),
    ("http://0x7f.1/", "Destination 0x7f.1 (127.0.0.1) is not allowed: loopback."),
    ("http://[::ffff:169.254.169.254]/", None),
    ("http://100.64.0.1/", "Destination 100.64.0.1 is not allowed: cgnat."),
])
async def test_blocked_literal_addresses_are_refused(subs, subscriber, reason):
    result = await subs.create_raw(subscriber=subscriber)
    assert_error(result, 400, BAD_REQUEST, reason)
    assert "is not allowed" in result.json["description"]
    # trust+ subscribers are checked the same way.
    trusted = await subs.create_raw(subscriber="trust+" + subscriber,
                                    options={"credentials": "ops"})
    assert_error(trusted, 400, BAD_REQUEST, reason)
    assert (await subs.api.get(SUBS)).json["subscriptions"] == []


async def test_allow_cidrs_open_networks_but_never_metadata(make_subs):
    subs = make_subs(allow_cidrs=("127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16"))
    await subs.create("http://127.0.0.1:9000/hook")
    await subs.create("http://10.0.0.1/")
    await subs.create("http://169.254.1.1/")
    assert_error(await subs.create_raw(subscriber="http://169.254.169.254/"), 400,
                 BAD_REQUEST, "Destination 169.254.169.254 is not allowed: metadata.")
    assert_error(await subs.create_raw(subscriber="http://192.168.0.1/"), 400,
                 BAD_REQUEST, "Destination 192.168.0.1 is not allowed: private.")


async def test_https_only_refuses_plain_http(make_subs):
    subs = make_subs(https_only=True)
    for subscriber, options in (("http://example.com/", {}),
                                ("trust+http://example.com/", {"credentials": "ops"})):
        assert_error(await subs.create_raw(subscriber=subscriber, options=options),
                     400, BAD_REQUEST,
                     "Only https subscribers are allowed on this server.")
    await subs.create("https://example.com/")
    await subs.create("trust+https://example.com/", options={"credentials": "ops"})
    await subs.create("mailto:ops@example.com")


async def test_trust_subscriber_needs_a_configured_credential(subs):
    for options, description in [
        ({}, "A trust+https subscriber needs options.credentials: the name of a"
             " credential configured on the server."),
        ({"credentials": "nope"},
         "options.credentials names no credential configured on the server"
         " for this destination and project."),
        ({"credentials": ["ops"]},
         "options.credentials names no credential configured on the server"
         " for this destination and project."),
        ({"credentials": CREDENTIAL_TOKEN},
         "options.credentials names no credential configured on the server"
         " for this destination and project."),
    ]:
        result = await subs.create_raw(subscriber="trust+https://example.com/",
                                       options=options)
        assert_error(result, 400, BAD_REQUEST, description)
    created = await subs.create("trust+https://example.com/",
                                options={"credentials": "ops", "trust_id": "t1"})
    document = await subs.get(created["subscription_id"])
    assert document["options"] == {"credentials": "ops", "trust_id": "t1"}
    listed = await subs.api.get(SUBS)
    assert CREDENTIAL_TOKEN not in listed.text


async def test_trust_subscriber_without_credentials_file(make_subs):
    subs = make_subs(credentials_file="")
    result = await subs.create_raw(subscriber="trust+https://example.com/",
                                   options={"credentials": "ops"})
    assert_error(result, 400, BAD_REQUEST,
                 "options.credentials names no credential configured on the server"
         " for this destination and project.")


def test_unreadable_credentials_file_stops_the_app(driver, keyfile, tmp_path):
    settings = settings_for(str(keyfile.path), str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="credentials file"):
        create_app(settings, driver)


ACTION_SCHEMES = {"mistral+https", "heat+https"}
MISTRAL = "mistral+https://workflows.example.com:8989/v2"
HEAT = "heat+https://orchestration.example.com:8004/v1/tenant1"
HEAT_OPTIONS = {"action": "signal", "stack": "web/4b1a0e", "resource": "'scaler'"}


@pytest.mark.skipif(not ACTION_SCHEMES <= set(load_settings(env={}).transport
                                              .subscriber_types),
                    reason="mistral+/heat+ subscribers are not configured")
async def test_action_subscribers_are_validated_at_creation(subs):
    await subs.create(MISTRAL, options={"workflow_name": "heal"})
    await subs.create(HEAT, options=dict(HEAT_OPTIONS, credentials="ops"))
    for subscriber, options, description in [
        (MISTRAL, {}, "Option workflow_id or workflow_name is required."),
        (MISTRAL, {"workflow_name": "w", "credentials": "nope"},
         "options.credentials names no credential configured on the server"
         " for this destination and project."),
        ("mistral+http://127.0.0.1:8989/v2", {"workflow_name": "w"},
         "Destination 127.0.0.1 is not allowed: loopback."),
        (HEAT, dict(HEAT_OPTIONS, action="explode"), None),
        ("heat+https://169.254.169.254/v1/t", HEAT_OPTIONS,
         "Destination 169.254.169.254 is not allowed: metadata."),
    ]:
        result = await subs.create_raw(subscriber=subscriber, options=options)
        assert_error(result, 400, BAD_REQUEST, description)
    assert len((await subs.api.get(SUBS)).json["subscriptions"]) == 2


WORKFLOWS_DIR = pathlib.Path(__file__).parents[2] / "etc" / "workflows"
HEAL_PARAMS = {"heat": "https://orchestration.example.com:8004/v1/tenant1",
               "stack": "member/abc", "root_stack": "root/def"}


@pytest.mark.skipif("workflow" not in load_settings(env={}).transport.subscriber_types,
                    reason="workflow: subscribers are not configured")
async def test_workflow_subscribers_are_validated_at_creation(make_subs):
    subs = make_subs(workflows_dir=str(WORKFLOWS_DIR))
    await subs.create("workflow:autoheal",
                      options={"params": HEAL_PARAMS, "credentials": "ops"})
    for subscriber, options, description in [
        ("workflow:nope", {"params": HEAL_PARAMS},
         "Workflow 'nope' is not defined on this server."),
        ("workflow:autoheal", {"params": {"heat": HEAL_PARAMS["heat"]}},
         "Workflow 'autoheal' needs options.params: root_stack, stack."),
        ("workflow:autoheal", {"params": dict(HEAL_PARAMS, heat="https://10.0.0.1/v1")},
         "Destination 10.0.0.1 is not allowed: private."),
        ("workflow:autoheal", {"params": dict(HEAL_PARAMS, heat="https://x.example/v1"),
                               "credentials": "ops"},
         "options.credentials names no credential configured on the server"
         " for this destination and project."),
    ]:
        result = await subs.create_raw(subscriber=subscriber, options=options)
        assert_error(result, 400, BAD_REQUEST, description)
    assert len((await subs.api.get(SUBS)).json["subscriptions"]) == 1


async def test_without_a_workflows_dir_no_workflow_exists(subs):
    if "workflow" not in subs.settings.transport.subscriber_types:
        pytest.skip("workflow: subscribers are not configured")
    result = await subs.create_raw(subscriber="workflow:autoheal",
                                   options={"params": HEAL_PARAMS})
    assert_error(result, 400, BAD_REQUEST,
                 "Workflow 'autoheal' is not defined on this server.")


# --- list --------------------------------------------------------------------------

async def test_list_pages_with_marker_and_links(subs):
    ids = [(await subs.create(f"https://example.com/{n}"))["subscription_id"]
           for n in range(5)]
    seen: list[str] = []
    path, params = SUBS, {"limit": 2}
    sizes = []
    while True:
        result = await subs.api.get(path, params=params)
        assert result.status_code == 200, result.text
        page = result.json
        sizes.append(len(page["subscriptions"]))
        if not page["subscriptions"]:
            assert page["links"] == []
            break
        [link] = page["links"]
        assert link["rel"] == "next"
        last = page["subscriptions"][-1]["id"]
        # Zaqar's order: the parameters as sent, then the marker.
        expected = ("?limit=2&marker={0}" if "marker" not in params
                    else "?marker={0}&limit=2").format(last)
        assert link["href"] == SUBS + expected
        seen += [s["id"] for s in page["subscriptions"]]
        assert all(set(s) == SHAPE for s in page["subscriptions"])
        path, _, query = link["href"].partition("?")
        params = dict(pair.split("=", 1) for pair in query.split("&"))
    assert sizes == [2, 2, 1, 0]
    assert seen == ids


async def test_list_default_and_maximum_limits(subs):
    for n in range(12):
        await subs.create(f"https://example.com/{n}")
    page = (await subs.api.get(SUBS)).json
    assert len(page["subscriptions"]) == 10
    assert page["links"][0]["href"].startswith(SUBS + "?marker=")
    page = (await subs.api.get(SUBS, params={"limit": 20})).json
    assert len(page["subscriptions"]) == 12


@pytest.mark.parametrize("limit", ["0", "21", "-1"])
async def test_list_limit_out_of_range(subs, limit):
    assert_error(await subs.api.get(SUBS, params={"limit": limit}), 400, BAD_REQUEST,
                 "Limit must be at least 1 and may not be greater than 20.")


async def test_list_limit_not_an_integer(subs):
    assert_error(await subs.api.get(SUBS, params={"limit": "x"}), 400,
                 "Invalid parameter")


async def test_list_is_per_project_and_queue(subs, make_subs, driver, keyfile,
                                             credentials_file):
    mine = await subs.create()
    await subs.create(queue="q2")
    other = Subs(subs.app, driver, "other-project", keyfile, subs.settings)
    await other.create()
    listed = (await subs.api.get(SUBS)).json["subscriptions"]
    assert [s["id"] for s in listed] == [mine["subscription_id"]]
    empty = (await subs.api.get("/v2/queues/nothing/subscriptions")).json
    assert empty == {"subscriptions": [], "links": []}


async def test_unknown_marker_gives_an_empty_page(subs):
    await subs.create()
    page = (await subs.api.get(SUBS, params={"marker": "bogus"})).json
    assert page == {"subscriptions": [], "links": []}


# --- get, delete ---------------------------------------------------------------------

async def test_get_unknown_is_404(subs):
    assert_error(await subs.api.get(f"{SUBS}/bogus"), 404, "Not found",
                 "Subscription bogus does not exist")


async def test_other_project_or_queue_cannot_see_or_delete(subs, driver, keyfile):
    sid = (await subs.create())["subscription_id"]
    other = Subs(subs.app, driver, "other-project", keyfile, subs.settings)
    assert_error(await other.api.get(f"{SUBS}/{sid}"), 404, "Not found")
    assert_error(await subs.api.get(f"/v2/queues/q2/subscriptions/{sid}"), 404,
                 "Not found")
    assert (await other.api.delete(f"{SUBS}/{sid}")).status_code == 204
    assert (await subs.api.delete(f"/v2/queues/q2/subscriptions/{sid}")).status_code \
        == 204
    assert_error(await other.api.patch(f"{SUBS}/{sid}", json={"ttl": 600}), 404,
                 "Not found")
    assert_error(await other.api.put(f"{SUBS}/{sid}/confirm",
                                     json={"confirmed": True}), 404, "Not found")
    assert (await subs.get(sid))["confirmed"] is False


async def test_delete_is_idempotent(subs):
    sid = (await subs.create())["subscription_id"]
    assert (await subs.api.delete(f"{SUBS}/{sid}")).status_code == 204
    assert (await subs.api.delete(f"{SUBS}/{sid}")).status_code == 204
    assert (await subs.api.delete(f"{SUBS}/bogus")).status_code == 204
    assert_error(await subs.api.get(f"{SUBS}/{sid}"), 404, "Not found")
    # The subscriber can subscribe again, with a new id and secret.
    again = await subs.create()
    assert again["subscription_id"] != sid and "secret" in again


async def test_purge_subscriptions(subs):
    sid = (await subs.create())["subscription_id"]
    await subs.api.post_bodies("q1", "kept")
    result = await subs.api.post("/v2/queues/q1/purge",
                                 json={"resource_types": ["subscriptions"]})
    assert result.status_code == 204
    assert_error(await subs.api.get(f"{SUBS}/{sid}"), 404, "Not found")
    assert (await subs.api.stats("q1"))["total"] == 1


# --- patch ---------------------------------------------------------------------------

async def test_patch_ttl_options_and_subscriber(subs, clock):
    created = await subs.create(HOOK, ttl=600, options={"a": 1, "b": 2})
    sid = created["subscription_id"]
    clock.shift(30)
    result = await subs.api.patch(f"{SUBS}/{sid}", json={"ttl": 120})
    assert result.status_code == 204, result.text
    assert result.headers["location"] == f"{SUBS}/{sid}"
    stored = await subs.driver.subscriptions.get(subs.project, "q1", sid)
    assert stored.ttl == 120 and stored.expires == pytest.approx(time.time() + 120)
    await subs.api.patch(f"{SUBS}/{sid}", json={"options": {"c": 3}})
    assert (await subs.get(sid))["options"] == {"c": 3}
    await subs.api.patch(f"{SUBS}/{sid}", json={"subscriber": "https://example.org/x",
                                                "unknown": 1})
    document = await subs.get(sid)
    assert (document["subscriber"], document["ttl"], document["options"]) == (
        "https://example.org/x", 120, {"c": 3})
    assert stored.secret == (await subs.driver.subscriptions.get(
        subs.project, "q1", sid)).secret


@pytest.mark.parametrize("document,title,description", [
    ({}, BAD_REQUEST, "No subscription to create."),
    ([], BAD_REQUEST, "No subscription to create."),
    ([1], BAD_REQUEST, "Subscriptions must be a dict."),
    ("x", BAD_REQUEST, "Subscriptions must be a dict."),
    ({"ttl": 59}, BAD_REQUEST,
     "The TTL for a subscription must be at least 60 seconds long."),
    ({"ttl": "x"}, BAD_REQUEST, "TTL must be an integer."),
    ({"options": []}, BAD_REQUEST, "Options must be a dict."),
    ({"options": {"_retry_policy": {"retry_backoff_function": "x"}}}, BAD_REQUEST,
     "invalid retry_backoff_function."),
    ({"options": {"post_headers": []}}, BAD_REQUEST, "post_headers must be a dict."),
    ({"subscriber": "ftp://x"}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": ""}, BAD_REQUEST, UNSUPPORTED),
    ({"subscriber": "http://127.0.0.1/"}, BAD_REQUEST,
     "Destination 127.0.0.1 is not allowed: loopback."),
    ({"options": {"credentials": "ops"}}, BAD_REQUEST,
     "options.credentials is not used by https subscribers."),
    ({"subscriber": "trust+https://example.com/"}, BAD_REQUEST,
     "A trust+https subscriber needs options.credentials: the name of a credential"
     " configured on the server."),
    ({"foo": 1}, "Unable to update subscription", None),
    ({"ttl": None, "options": None}, "Unable to update subscription", None),
])
async def test_patch_validation(subs, document, title, description):
    sid = (await subs.create(HOOK, ttl=600))["subscription_id"]
    result = await subs.api.patch(f"{SUBS}/{sid}", json=document)
    if description is None:
        description = f"Subscription {sid} could not be updated."
    assert_error(result, 400, title, description)
    document = await subs.get(sid)
    assert (document["subscriber"], document["ttl"], document["options"]) == (
        HOOK, 600, {})


async def test_patch_empty_or_bad_body(subs):
    sid = (await subs.create())["subscription_id"]
    assert_error(await subs.api.patch(f"{SUBS}/{sid}"), 400, BAD_REQUEST,
                 "No subscription to create.")
    assert_error(await subs.api.patch(f"{SUBS}/{sid}", body=b"{nope",
                                      headers={"content-type": "application/json"}),
                 400, BAD_BODY, "Request body could not be parsed.")


async def test_patch_trust_subscriber_keeps_needing_its_credential(subs):
    sid = (await subs.create("trust+https://example.com/",
                             options={"credentials": "ops"}))["subscription_id"]
    assert_error(await subs.api.patch(f"{SUBS}/{sid}", json={"options": {"x": 1}}),
                 400, BAD_REQUEST)
    ok = await subs.api.patch(f"{SUBS}/{sid}",
                              json={"options": {"credentials": "ops", "x": 1}})
    assert ok.status_code == 204
    # Moving to a plain webhook must drop the credential.
    assert_error(await subs.api.patch(f"{SUBS}/{sid}",
                                      json={"subscriber": "https://example.com/"}),
                 400, BAD_REQUEST,
                 "options.credentials is not used by https subscribers.")
    moved = await subs.api.patch(f"{SUBS}/{sid}", json={
        "subscriber": "https://example.com/", "options": {}})
    assert moved.status_code == 204


async def test_patch_unknown_is_404_and_duplicate_is_409(subs):
    assert_error(await subs.api.patch(f"{SUBS}/bogus", json={"ttl": 600}), 404,
                 "Not found", "Subscription bogus does not exist")
    await subs.create("https://example.com/a")
    sid = (await subs.create("https://example.com/b"))["subscription_id"]
    assert_error(await subs.api.patch(f"{SUBS}/{sid}",
                                      json={"subscriber": "https://example.com/a"}),
                 409, "Resource conflict", DUPLICATE)


async def test_patch_options_into_a_duplicate_is_409(subs):
    first = await subs.create(HOOK, options={"a": 1, "b": 2})
    sid = (await subs.create(HOOK, ttl=600, options={"a": 2}))["subscription_id"]
    assert sid != first["subscription_id"]
    for change in ({"options": {"b": 2, "a": 1}},
                   {"options": {"b": 2, "a": 1}, "ttl": 900}):
        assert_error(await subs.api.patch(f"{SUBS}/{sid}", json=change),
                     409, "Resource conflict", DUPLICATE)
    document = await subs.get(sid)
    assert (document["ttl"], document["options"]) == (600, {"a": 2})
    # Moving URL and options together into a taken pair: 409 too.
    other = (await subs.create("https://example.org/", options={"a": 1, "b": 2})
             )["subscription_id"]
    assert_error(await subs.api.patch(f"{SUBS}/{other}", json={
        "subscriber": HOOK, "options": {"a": 2}}), 409, "Resource conflict", DUPLICATE)
    # Into a free pair, and back again once it is free.
    assert (await subs.api.patch(f"{SUBS}/{sid}", json={"options": {"a": 3}})
            ).status_code == 204
    assert (await subs.api.patch(f"{SUBS}/{other}", json={
        "subscriber": HOOK, "options": {"a": 2}})).status_code == 204
    assert (await subs.api.patch(f"{SUBS}/{sid}", json={"options": {"a": 2}})
            ).status_code == 409
    assert (await subs.api.delete(f"{SUBS}/{other}")).status_code == 204
    assert (await subs.api.patch(f"{SUBS}/{sid}", json={"options": {"a": 2}})
            ).status_code == 204
    assert (await subs.get(sid))["options"] == {"a": 2}


async def test_patch_subscriber_keeps_confirmation_without_require(subs):
    sid = (await subs.create())["subscription_id"]
    await subs.confirm(sid)
    await subs.api.patch(f"{SUBS}/{sid}", json={"subscriber": "https://example.org/"})
    assert (await subs.get(sid))["confirmed"] is True  # as Zaqar


# --- confirm with header auth --------------------------------------------------------

async def test_confirm_and_unconfirm_with_header_auth(subs):
    sid = (await subs.create())["subscription_id"]
    result = await subs.api.put(f"{SUBS}/{sid}/confirm", json={"confirmed": True})
    assert result.status_code == 204, result.text
    assert result.headers["location"] == f"{SUBS}/{sid}/confirm"
    assert (await subs.get(sid))["confirmed"] is True
    await subs.confirm(sid, False)
    assert (await subs.get(sid))["confirmed"] is False
    # Without require_confirmation nothing is queued for the subscriber.
    assert await subs.leased() == []


@pytest.mark.parametrize("raw,title,description", [
    (b"", BAD_REQUEST, "The 'confirmed' should be boolean."),
    (b"{}", BAD_REQUEST, "The 'confirmed' should be boolean."),
    (b'{"confirmed": "true"}', BAD_REQUEST, "The 'confirmed' should be boolean."),
    (b'{"confirmed": 1}', BAD_REQUEST, "The 'confirmed' should be boolean."),
    (b'{"confirmed": null}', BAD_REQUEST, "The 'confirmed' should be boolean."),
    (b"[true]", BAD_REQUEST, "The 'confirmed' should be boolean."),
    (b"{nope", BAD_BODY, "Request body could not be parsed."),
])
async def test_confirm_body_errors(subs, raw, title, description):
    sid = (await subs.create())["subscription_id"]
    result = await subs.api.put(f"{SUBS}/{sid}/confirm", body=raw,
                                headers={"content-type": "application/json"})
    assert_error(result, 400, title, description)
    assert (await subs.get(sid))["confirmed"] is False


async def test_confirm_unknown_is_404(subs):
    assert_error(await subs.api.put(f"{SUBS}/bogus/confirm", json={"confirmed": True}),
                 404, "Not found", "Subscription bogus does not exist")


# --- the confirmation flow (require_confirmation) ------------------------------------

def confirmation_headers(payload: dict, **overrides: str) -> dict:
    """What a subscriber sends back: the four URL-* fields and the project."""
    headers = {name: payload[name] for name in
               ("URL-Signature", "URL-Expires", "URL-Methods", "URL-Paths",
                "X-Project-ID")}
    headers["Client-ID"] = str(uuid.uuid4())
    headers.update(overrides)
    return headers


async def put_as_subscriber(subs: Subs, payload: dict, body: Any = None,
                            path: str | None = None, **overrides: str):
    """A PUT carrying only the link's headers (no account headers)."""
    api = Api(subs.app, client_id="unused", project="unused")
    api.headers = {}
    return await api.put(path or payload["URL-Paths"],
                         headers=confirmation_headers(payload, **overrides),
                         json=payload["SubscribeBody"] if body is None else body)


async def test_create_queues_a_signed_confirmation(confirming, clock):
    created = await confirming.create(HOOK, ttl=3600)
    sid = created["subscription_id"]
    [job] = await confirming.leased()
    assert job.subscription_id == sid and job.message_id.startswith("confirm-")
    assert len(job.message_id) == len("confirm-") + 32
    payload = json.loads(job.message)
    path = f"/v2/queues/q1/subscriptions/{sid}/confirm"
    expires = datetime.datetime.fromtimestamp(time.time() + 3600, datetime.UTC)
    expires_text = expires.strftime("%Y-%m-%dT%H:%M:%S")
    assert list(payload) == [
        "Message_Type", "Message", "URL-Signature", "URL-Methods", "URL-Paths",
        "X-Project-ID", "URL-Expires", "SubscribeBody", "UnsubscribeBody",
        "queue_name"]
    assert payload == {
        "Message_Type": "SubscriptionConfirmation",
        "Message": "You have chosen to subscribe to the queue: q1",
        "URL-Signature": signing.zaqar_signature(
            confirming.queue_key(), [path], ["PUT"], confirming.project, expires_text),
        "URL-Methods": "PUT", "URL-Paths": path,
        "X-Project-ID": confirming.project, "URL-Expires": expires_text,
        "SubscribeBody": {"confirmed": True}, "UnsubscribeBody": {"confirmed": False},
        "queue_name": "q1"}
    signing.verify_zaqar_headers(confirming.queue_key(), payload["URL-Signature"],
                                 path, "PUT", confirming.project, expires_text,
                                 time.time())
    # The subscriber confirms with nothing but the link.
    result = await put_as_subscriber(confirming, payload)
    assert result.status_code == 204, result.text
    assert result.headers["location"] == path
    assert (await confirming.get(sid))["confirmed"] is True
    assert_error(await confirming.create_raw(subscriber=HOOK), 409, "Resource conflict",
                 DUPLICATE)


async def test_link_expiry_is_capped_by_signing_max_ttl(make_subs, clock):
    subs = make_subs(require_confirmation=True, signing_={"max_ttl": 600,
                                                          "default_ttl": 600})
    await subs.create(HOOK, ttl=7200)
    [payload] = await subs.confirmations()
    expected = datetime.datetime.fromtimestamp(time.time() + 600, datetime.UTC)
    assert payload["URL-Expires"] == expected.strftime("%Y-%m-%dT%H:%M:%S")


async def test_expired_link_is_refused(confirming, clock):
    sid = (await confirming.create(HOOK, ttl=60))["subscription_id"]
    [payload] = await confirming.confirmations()
    clock.shift(61)
    assert (await put_as_subscriber(confirming, payload)).json == NOT_FOUND
    # (the subscription itself has expired too; re-create and confirm in time)
    assert_error(await confirming.api.get(f"{SUBS}/{sid}"), 404, "Not found")


async def test_duplicate_unconfirmed_sends_the_confirmation_again(confirming):
    first = await confirming.create()
    assert len(await confirming.confirmations()) == 1
    again = await confirming.create_raw(subscriber=HOOK)
    assert again.status_code == 201
    assert again.json == {"subscription_id": first["subscription_id"]}
    [payload] = await confirming.confirmations()
    assert payload["Message_Type"] == "SubscriptionConfirmation"
    # Other options: another subscription, confirmed on its own link.
    other = await confirming.create(HOOK, options={"a": 1})
    assert other["subscription_id"] != first["subscription_id"]
    [payload] = await confirming.confirmations()
    assert payload["URL-Paths"] == f"{SUBS}/{other['subscription_id']}/confirm"


async def test_unsubscribe_through_the_link_queues_an_unsubscribe_confirmation(
        confirming, clock):
    sid = (await confirming.create(HOOK, ttl=7200))["subscription_id"]
    [payload] = await confirming.confirmations()
    assert (await put_as_subscriber(confirming, payload)).status_code == 204
    result = await put_as_subscriber(confirming, payload,
                                     body=payload["UnsubscribeBody"])
    assert result.status_code == 204, result.text
    assert (await confirming.get(sid))["confirmed"] is False
    [unsubscribed] = await confirming.confirmations()
    expires = datetime.datetime.fromtimestamp(time.time() + 3600, datetime.UTC)
    assert unsubscribed["Message_Type"] == "UnsubscribeConfirmation"
    assert unsubscribed["Message"] == (
        "You have unsubscribed successfully to the queue: q1, you can resubscribe it"
        " by using confirmed=True.")
    assert unsubscribed["URL-Expires"] == expires.strftime("%Y-%m-%dT%H:%M:%S")
    assert unsubscribed["URL-Paths"] == payload["URL-Paths"]
    # The new link works to subscribe again.
    assert (await put_as_subscriber(confirming, unsubscribed)).status_code == 204
    assert (await confirming.get(sid))["confirmed"] is True


async def test_new_subscriber_must_confirm_again(confirming):
    sid = (await confirming.create())["subscription_id"]
    await confirming.confirm(sid)
    await confirming.confirmations()
    moved = await confirming.api.patch(f"{SUBS}/{sid}",
                                       json={"subscriber": "https://example.org/new"})
    assert moved.status_code == 204, moved.text
    assert (await confirming.get(sid))["confirmed"] is False
    [payload] = await confirming.confirmations()
    assert payload["Message_Type"] == "SubscriptionConfirmation"
    # Other changes keep the confirmation and send nothing.
    await confirming.confirm(sid)
    await confirming.api.patch(f"{SUBS}/{sid}", json={"ttl": 600, "subscriber":
                                                      "https://example.org/new"})
    assert (await confirming.get(sid))["confirmed"] is True
    assert await confirming.confirmations() == []


def test_require_confirmation_without_keys_stops_the_app(driver, credentials_file,
                                                          monkeypatch):
    monkeypatch.delenv(signing.ENV_VAR, raising=False)
    settings = settings_for("", str(credentials_file), require_confirmation=True)
    with pytest.raises(ConfigError, match="require_confirmation needs signing keys"):
        create_app(settings, driver)


async def test_queue_generation_bump_voids_outstanding_links(confirming):
    sid = (await confirming.create())["subscription_id"]
    [payload] = await confirming.confirmations()
    await confirming.driver.grants.bump_generation(confirming.project, "q1")
    assert (await put_as_subscriber(confirming, payload)).json == NOT_FOUND
    assert (await confirming.get(sid))["confirmed"] is False


# --- only the exact confirmation link opens the confirm route ------------------------

async def test_share_minted_signature_cannot_confirm(confirming):
    sid = (await confirming.create())["subscription_id"]
    minted = await confirming.api.post("/v2/queues/q1/share", json={
        "paths": ["messages", "subscriptions"], "methods": ["GET", "PUT", "DELETE",
                                                            "POST", "PATCH"]})
    assert minted.status_code == 200, minted.text
    grant = minted.json
    assert "/v2/queues/q1/subscriptions" in grant["paths"]
    headers = zaqar_headers(grant)
    api = Api(confirming.app, client_id="unused", project="unused")
    api.headers = {}
    result = await api.put(f"{SUBS}/{sid}/confirm", headers=headers,
                           json={"confirmed": True})
    assert result.status_code == 404 and result.json == NOT_FOUND
    # ... nor list, read, change, delete or create subscriptions.
    for method, path, body in [
        ("GET", SUBS, None), ("GET", f"{SUBS}/{sid}", None),
        ("PATCH", f"{SUBS}/{sid}", {"ttl": 600}), ("DELETE", f"{SUBS}/{sid}", None),
        ("POST", SUBS, {"subscriber": "https://example.org/"}),
        ("GET", f"{SUBS}/{sid}/deliveries", None),
        ("POST", f"{SUBS}/{sid}/dead_letters", {}),
    ]:
        kwargs = {"json": body} if body is not None else {}
        result = await api.request(method, path, headers=headers, **kwargs)
        assert result.status_code == 404 and result.json == NOT_FOUND, (method, path)
    document = await confirming.get(sid)
    assert (document["confirmed"], document["ttl"]) == (False, 3600)
    assert len((await confirming.api.get(SUBS)).json["subscriptions"]) == 1


async def test_link_of_one_subscription_cannot_confirm_another(confirming):
    first = (await confirming.create("https://example.com/1"))["subscription_id"]
    second = (await confirming.create("https://example.com/2"))["subscription_id"]
    payloads = await confirming.confirmations()
    [link] = [p for p in payloads if first in p["URL-Paths"]]
    result = await put_as_subscriber(confirming, link,
                                     path=f"{SUBS}/{second}/confirm")
    assert result.json == NOT_FOUND
    assert (await confirming.get(second))["confirmed"] is False


@pytest.mark.parametrize("paths,methods", [
    (["{confirm}"], ["GET", "PUT"]),
    (["{confirm}", "/v2/queues/q1/messages"], ["PUT"]),
    (["/v2/queues/q1/subscriptions"], ["PUT"]),
    (["/v2/queues/q1/subscriptions/{sid}"], ["PUT"]),
])
async def test_only_a_signature_of_exactly_the_path_and_put(confirming, paths, methods):
    """Correctly signed with the queue's key, but wider than a confirmation."""
    sid = (await confirming.create())["subscription_id"]
    confirm = f"{SUBS}/{sid}/confirm"
    paths = [p.format(confirm=confirm, sid=sid) for p in paths]
    expires = datetime.datetime.fromtimestamp(time.time() + 600, datetime.UTC)
    expires_text = expires.strftime("%Y-%m-%dT%H:%M:%S")
    payload = {
        "URL-Signature": signing.zaqar_signature(confirming.queue_key(), paths, methods,
                                                 confirming.project, expires_text),
        "URL-Expires": expires_text, "URL-Methods": ",".join(methods),
        "URL-Paths": ",".join(paths), "X-Project-ID": confirming.project,
        "SubscribeBody": {"confirmed": True}}
    result = await put_as_subscriber(confirming, payload, path=confirm)
    assert result.json == NOT_FOUND
    assert (await confirming.get(sid))["confirmed"] is False
    # The same key, signing exactly the confirm path and PUT, works.
    exact = dict(payload, **{
        "URL-Paths": confirm, "URL-Methods": "PUT",
        "URL-Signature": signing.zaqar_signature(confirming.queue_key(), [confirm],
                                                 ["PUT"], confirming.project,
                                                 expires_text)})
    assert (await put_as_subscriber(confirming, exact, path=confirm)).status_code == 204


async def test_link_for_get_does_not_allow_put(confirming):
    sid = (await confirming.create())["subscription_id"]
    [payload] = await confirming.confirmations()
    result = await put_as_subscriber(confirming, payload, **{"URL-Methods": "GET"})
    assert result.json == NOT_FOUND
    tampered = await put_as_subscriber(confirming, payload,
                                       **{"X-Project-ID": "someone-else"})
    assert tampered.json == NOT_FOUND
    assert (await confirming.get(sid))["confirmed"] is False


async def test_mailslot_tokens_never_reach_subscriptions(confirming):
    sid = (await confirming.create())["subscription_id"]
    minted = await confirming.api.post("/v2/queues/q1/share", json={
        "paths": ["messages", "claims"], "methods": ["GET", "POST", "PUT", "DELETE",
                                                     "PATCH"]})
    grant = minted.json
    api = Api(confirming.app, client_id="unused", project="unused")
    api.headers = {}
    for method, path, body in [
        ("PUT", f"{SUBS}/{sid}/confirm", {"confirmed": True}),
        ("POST", SUBS, {"subscriber": "https://example.org/"}),
        ("GET", SUBS, None), ("GET", f"{SUBS}/{sid}", None),
        ("PATCH", f"{SUBS}/{sid}", {"ttl": 600}), ("DELETE", f"{SUBS}/{sid}", None),
        ("GET", f"{SUBS}/{sid}/deliveries", None),
        ("POST", f"{SUBS}/{sid}/deliveries", {"message_id": "x"}),
        ("GET", f"{SUBS}/{sid}/dead_letters", None),
        ("POST", f"{SUBS}/{sid}/dead_letters", {}),
    ]:
        kwargs = {"json": body} if body is not None else {}
        for extra in ({"params": {"token": credential(grant)}},
                      {"headers": {"Authorization": f"Signed {credential(grant)}"}}):
            result = await api.request(method, path, **kwargs, **extra)
            assert result.status_code == 401 and result.json == UNAUTHORIZED, (
                method, path, result.text)
    document = await confirming.get(sid)
    assert (document["confirmed"], document["ttl"]) == (False, 3600)


# --- the delivery log and redelivery -------------------------------------------------

def attempt(sid: str, n: int, at: float, **fields: Any) -> DeliveryAttempt:
    values = {"subscription_id": sid, "message_id": f"m{n}", "job_id": f"j{n}",
              "attempt": n, "at": at, "outcome": "retry", "status": 503,
              "error": None, "latency_ms": 12.5, "response": "busy"}
    values.update(fields)
    return DeliveryAttempt(**values)


async def test_deliveries_lists_the_log_newest_first(subs):
    sid = (await subs.create())["subscription_id"]
    assert (await subs.api.get(f"{SUBS}/{sid}/deliveries")).json == {"deliveries": []}
    base = float(int(time.time()))
    for n in range(3):
        await subs.driver.jobs.record(attempt(sid, n, base + n + 0.25), keep=100,
                                      keep_seconds=86400)
    await subs.driver.jobs.record(
        attempt(sid, 9, base + 10, outcome="delivered", status=None,
                error="connect_error", response=""), keep=100, keep_seconds=86400)
    result = await subs.api.get(f"{SUBS}/{sid}/deliveries")
    log = result.json["deliveries"]
    assert [d["job_id"] for d in log] == ["j9", "j2", "j1", "j0"]
    stamp = datetime.datetime.fromtimestamp(base + 2, datetime.UTC)
    assert log[1] == {"job_id": "j2", "message_id": "m2", "attempt": 2,
                      "at": stamp.strftime("%Y-%m-%dT%H:%M:%S") + ".250Z",
                      "outcome": "retry", "status": 503, "error": None,
                      "latency_ms": 12.5, "response": "busy"}
    assert (log[0]["status"], log[0]["error"]) == (None, "connect_error")
    limited = await subs.api.get(f"{SUBS}/{sid}/deliveries", params={"limit": 2})
    assert [d["job_id"] for d in limited.json["deliveries"]] == ["j9", "j2"]
    assert_error(await subs.api.get(f"{SUBS}/{sid}/deliveries",
                                    params={"limit": 101}), 400, BAD_REQUEST,
                 "Limit must be at least 1 and may not be greater than 100.")


async def test_redeliver_one_message_now(subs):
    sid = (await subs.create())["subscription_id"]
    [message_id] = await subs.api.post_bodies("q1", {"n": 1}, ttl=300)
    [posted_job] = await subs.leased()  # written by the post itself
    result = await subs.api.post(f"{SUBS}/{sid}/deliveries",
                                 json={"message_id": message_id})
    assert result.status_code == 202, result.text
    job_id = result.json["job_id"]
    assert set(result.json) == {"job_id"} and job_id != posted_job.id
    [job] = await subs.leased()
    assert (job.id, job.subscription_id, job.message_id) == (job_id, sid, message_id)
    assert job.message == posted_job.message == notification(
        NewMessage(orjson.dumps({"n": 1}), 300))


async def test_redelivered_payload_keeps_the_delay(subs):
    await subs.api.create_queue("q1", {"_default_message_delay": 30})
    sid = (await subs.create())["subscription_id"]
    [message_id] = await subs.api.post_bodies("q1", "late", ttl=120)
    [posted_job] = await subs.leased()
    assert json.loads(posted_job.message) == {"body": "late", "ttl": 120, "delay": 30}
    await subs.api.post(f"{SUBS}/{sid}/deliveries", json={"message_id": message_id})
    [job] = await subs.leased()
    assert job.message == posted_job.message


async def test_redeliver_errors(subs):
    sid = (await subs.create())["subscription_id"]
    path = f"{SUBS}/{sid}/deliveries"
    assert_error(await subs.api.post(path, json={"message_id": "bogus"}), 404,
                 "Not found",
                 f"Message bogus does not exist in queue q1 for project {subs.project}")
    missing = 'The value of the "message_id" field must be a message id.'
    for document in ({}, {"message_id": 5}, {"message_id": ""}):
        assert_error(await subs.api.post(path, json=document), 400, BAD_BODY, missing)
    assert_error(await subs.api.post(path), 400, BAD_BODY, missing)
    assert_error(await subs.api.post(path, json=["x"]), 400, BAD_BODY,
                 "Document type not supported.")
    assert_error(await subs.api.post(path, json={"message_id": "x", "queue": "q2"}),
                 400, BAD_REQUEST, "Unknown keys: {'queue'}")
    assert await subs.leased() == []


# --- dead letters --------------------------------------------------------------------

async def bury_one(subs: Subs) -> tuple[str, DeliveryJob]:
    sid = (await subs.create())["subscription_id"]
    await subs.api.post_bodies("q1", "doomed")
    [job] = await subs.leased()
    assert await subs.driver.jobs.bury(job.id, job.lease_token, "http_404")
    return sid, job


async def test_dead_letters_list_and_replay(subs):
    sid, job = await bury_one(subs)
    path = f"{SUBS}/{sid}/dead_letters"
    result = await subs.api.get(path)
    assert result.status_code == 200, result.text
    stamp = datetime.datetime.fromtimestamp(job.created, datetime.UTC)
    assert result.json == {"dead_letters": [{
        "job_id": job.id, "message_id": job.message_id, "attempts": 1,
        "created": stamp.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{stamp.microsecond // 1000:03d}Z"}]}
    assert (await subs.api.post(path, json={"ids": ["other"]})).json == {"replayed": 0}
    replayed = await subs.api.post(path)
    assert replayed.status_code == 200 and replayed.json == {"replayed": 1}
    assert (await subs.api.get(path)).json == {"dead_letters": []}
    [again] = await subs.leased()
    assert again.id == job.id and again.message == job.message


async def test_dead_letters_replay_selected_ids(subs):
    sid, job = await bury_one(subs)
    path = f"{SUBS}/{sid}/dead_letters"
    assert (await subs.api.post(path, json={"ids": [job.id]})).json == {"replayed": 1}
    assert (await subs.api.post(path, json={"ids": [job.id]})).json == {"replayed": 0}


async def test_dead_letters_errors(subs):
    sid, _ = await bury_one(subs)
    path = f"{SUBS}/{sid}/dead_letters"
    wrong = 'The value of the "ids" field must be a list of dead letter job ids.'
    for document in ({"ids": "x"}, {"ids": [1]}, {"ids": [""]}):
        assert_error(await subs.api.post(path, json=document), 400, BAD_BODY, wrong)
    # A typo must not replay everything.
    assert_error(await subs.api.post(path, json={"id": ["x"]}), 400, BAD_REQUEST,
                 "Unknown keys: {'id'}")
    assert_error(await subs.api.post(path, json=[]), 400, BAD_BODY,
                 "Document type not supported.")
    assert_error(await subs.api.get(path, params={"limit": 0}), 400, BAD_REQUEST)
    assert len((await subs.api.get(path)).json["dead_letters"]) == 1


async def test_log_routes_are_404_outside_the_subscriptions_queue(subs, driver,
                                                                 keyfile):
    sid, _ = await bury_one(subs)
    [message_id] = await subs.api.post_bodies("q2", "x")
    other = Subs(subs.app, driver, "other-project", keyfile, subs.settings)
    for api, queue in ((subs.api, "q2"), (other.api, "q1"), (subs.api, "q1")):
        target = sid if (api, queue) != (subs.api, "q1") else "bogus"
        base = f"/v2/queues/{queue}/subscriptions/{target}"
        for result in (
            await api.get(base + "/deliveries"),
            await api.post(base + "/deliveries", json={"message_id": message_id}),
            await api.get(base + "/dead_letters"),
            await api.post(base + "/dead_letters", json={}),
        ):
            assert_error(result, 404, "Not found",
                         f"Subscription {target} does not exist")
    assert len((await subs.api.get(f"{SUBS}/{sid}/dead_letters")).json[
        "dead_letters"]) == 1


# --- secrets stay out of logs --------------------------------------------------------

async def test_no_secret_token_or_signature_is_logged(confirming, caplog):
    caplog.set_level(logging.DEBUG)
    created = await confirming.create("trust+https://example.com/",
                                      options={"credentials": "ops"})
    sid = created["subscription_id"]
    await confirming.api.get(SUBS)
    await confirming.api.get(f"{SUBS}/{sid}")
    [payload] = await confirming.confirmations()
    await put_as_subscriber(confirming, payload)
    await put_as_subscriber(confirming, payload, **{"URL-Methods": "GET"})
    # pymongo's own DEBUG command monitoring prints whole commands (stored
    # documents included); operators must not run it at DEBUG in production.
    ours = [r for r in caplog.records if not r.name.startswith("pymongo")]
    assert any(r.name == "mailslot.audit" for r in ours)
    text = "".join(f"{r.getMessage()} {r.args}" for r in ours)
    for secret in (created["secret"], payload["URL-Signature"], CREDENTIAL_TOKEN):
        assert secret not in text


async def test_a_credential_is_only_sent_where_and_for_whom_it_is_bound(subs):
    """Naming a credential cannot send its token to another host, another
    port or for a project it is not bound to."""
    refused = ("options.credentials names no credential configured on the server"
               " for this destination and project.")
    for subscriber, name in (("trust+https://attacker.example/", "ops"),
                             ("trust+https://example.com.attacker.example/", "ops"),
                             ("trust+https://example.com/", "bound")):
        result = await subs.create_raw(subscriber=subscriber,
                                       options={"credentials": name})
        assert_error(result, 400, BAD_REQUEST, refused)
    heat_other_port = HEAT.replace(":8004", ":8005")
    result = await subs.create_raw(subscriber=heat_other_port,
                                   options={**HEAT_OPTIONS, "credentials": "ops"})
    assert result.status_code == 400
