"""Webhook deliveries to a real loopback server: payload, post_data,
post_headers, Standard Webhooks signature (checked by an independent
implementation below), idempotency key and the result record."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

import pytest

from subscriptions import result as r
from subscriptions.classify import Outcome, classify
from subscriptions.http import make_client
from subscriptions.payload import build_payload, delivery_id
from subscriptions.ssrf import Guard
from subscriptions.webhook import (
    decode_secret, deliver, generate_secret, render_body, signature_header,
)
from tests.unit.subscriptions.conftest import (
    loopback_guard, make_job, make_subscription, response,
)

NOW = 1_800_000_000.0


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes
                            ) -> bool:
    """Independent Standard Webhooks verification (spec §signature-scheme)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = b".".join([headers["webhook-id"].encode(),
                         headers["webhook-timestamp"].encode(), body])
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return True
    return False


@pytest.fixture
async def client():
    async with make_client(loopback_guard(), connect_timeout=2, read_timeout=2) as c:
        yield c


async def test_delivery_payload_and_result(http_sink, client):
    sink = await http_sink()
    sub = make_subscription(sink.url, secret=generate_secret())
    result = await deliver(client, sub, make_job(), now=NOW)
    assert (result.status, result.error, result.response) == (200, None, "ok")
    assert result.latency_ms > 0
    assert classify(result).outcome is Outcome.DELIVERED
    request = sink.requests[0]
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "ttl": 300, "body": {"event": "E1"}, "Message_Type": "Notification",
        "queue_name": "orders", "message_id": "msg-1", "subscription_id": "sub-1",
    }


async def test_standard_webhooks_signature_verifies(http_sink, client):
    sink = await http_sink()
    secret = generate_secret()
    sub = make_subscription(sink.url, secret=secret)
    await deliver(client, sub, make_job(), now=NOW)
    request = sink.requests[0]
    assert request.headers["webhook-timestamp"] == str(int(NOW))
    assert request.headers["webhook-signature"].startswith("v1,")
    assert verify_standard_webhook(secret, request.headers, request.body)
    assert not verify_standard_webhook(generate_secret(), request.headers, request.body)
    assert not verify_standard_webhook(secret, request.headers, request.body + b" ")


async def test_webhook_id_is_stable_across_retries(http_sink, client):
    sink = await http_sink()
    sub = make_subscription(sink.url, secret=generate_secret())
    await deliver(client, sub, make_job(), now=NOW)
    await deliver(client, sub, make_job(), now=NOW + 60)
    await deliver(client, sub, make_job(message_id="msg-2"), now=NOW)
    other = make_subscription(sink.url, secret=generate_secret(), sub_id="sub-2")
    await deliver(client, other, make_job(sub_id="sub-2"), now=NOW)
    ids = [req.headers["webhook-id"] for req in sink.requests]
    assert ids[0] == ids[1] == delivery_id("sub-1", "msg-1")
    assert len(set(ids)) == 3
    assert all(req.headers["idempotency-key"] == req.headers["webhook-id"]
               for req in sink.requests)
    # Retries are re-signed with a fresh timestamp.
    assert sink.requests[1].headers["webhook-timestamp"] == str(int(NOW + 60))


async def test_post_data_template_replaces_the_quoted_placeholder(http_sink, client):
    sink = await http_sink()
    template = '{"messages": [{"body": "$zaqar_message$", "ttl": 60}]}'
    sub = make_subscription(sink.url, options={"post_data": template},
                            secret=generate_secret())
    await deliver(client, sub, make_job(), now=NOW)
    request = sink.requests[0]
    sent = json.loads(request.body)
    assert sent["messages"][0]["ttl"] == 60
    assert sent["messages"][0]["body"]["body"] == {"event": "E1"}
    assert sent["messages"][0]["body"]["queue_name"] == "orders"
    assert verify_standard_webhook(sub.secret, request.headers, request.body)


def test_post_data_placeholder_needs_its_quotes():
    payload = {"a": 1}
    quoted = render_body(payload, {"post_data": 'x "$zaqar_message$" y'})
    assert quoted == b'x {"a": 1} y'
    assert render_body(payload, {"post_data": "x $zaqar_message$ y"}) == (
        b"x $zaqar_message$ y")
    assert render_body(payload, {"post_data": "no placeholder"}) == b"no placeholder"
    assert render_body(payload, {}) == b'{"a": 1}'


async def test_post_headers_are_added_but_cannot_override_ours(http_sink, client):
    sink = await http_sink()
    sub = make_subscription(sink.url, secret=generate_secret(), options={
        "post_headers": {"X-Project-ID": "p2", "Client-ID": "c1", "X-Num": 5,
                         "Content-Type": "application/vnd.test+json",
                         "webhook-id": "forged", "Idempotency-Key": "forged",
                         "Host": "internal.example", "Content-Length": "1"},
    })
    await deliver(client, sub, make_job(), now=NOW)
    headers = sink.requests[0].headers
    assert (headers["x-project-id"], headers["client-id"], headers["x-num"]) == (
        "p2", "c1", "5")
    assert headers["content-type"] == "application/vnd.test+json"  # as Zaqar
    assert headers["webhook-id"] == headers["idempotency-key"] == delivery_id(
        "sub-1", "msg-1")
    assert headers["host"] == f"127.0.0.1:{sink.port}"
    assert verify_standard_webhook(sub.secret, headers, sink.requests[0].body)


@pytest.mark.parametrize("options", [
    {"post_headers": {"X-Bad": "a\r\nInjected: 1"}},
    {"post_headers": {"X-Bad": "caf\u00e9"}},
    {"post_headers": {"Bad Name": "x"}},
    {"post_headers": {"X-Obj": {"a": 1}}},
    {"post_headers": ["X-A", "b"]},
    {"post_data": {"not": "a string"}},
])
async def test_invalid_options_fail_without_sending(http_sink, client, options):
    sink = await http_sink()
    sub = make_subscription(sink.url, options=options, secret=generate_secret())
    result = await deliver(client, sub, make_job(), now=NOW)
    assert result.error == r.INVALID_REQUEST
    assert classify(result).outcome is Outcome.FAILED
    assert sink.connections == 0


@pytest.mark.parametrize("message", [b"not json", b"[1, 2]", b"\xff"])
async def test_unreadable_message_fails_without_sending(http_sink, client, message):
    sink = await http_sink()
    result = await deliver(client, make_subscription(sink.url), make_job(message),
                           now=NOW)
    assert result.error == r.INVALID_REQUEST
    assert sink.connections == 0


async def test_bad_secret_fails_without_sending(http_sink, client):
    sink = await http_sink()
    sub = make_subscription(sink.url, secret="whsec_***")
    result = await deliver(client, sub, make_job(), now=NOW)
    assert result.error == r.INVALID_REQUEST
    assert sink.connections == 0


async def test_no_secret_sends_unsigned(http_sink, client):
    sink = await http_sink()
    await deliver(client, make_subscription(sink.url), make_job(), now=NOW)
    headers = sink.requests[0].headers
    assert "webhook-signature" not in headers
    assert headers["webhook-id"] == delivery_id("sub-1", "msg-1")


async def test_delay_is_kept_in_the_payload(http_sink, client):
    sink = await http_sink()
    job = make_job(b'{"body": "x", "ttl": 60, "delay": 30}')
    await deliver(client, make_subscription(sink.url), job, now=NOW)
    assert json.loads(sink.requests[0].body)["delay"] == 30


async def test_trust_scheme_is_sent_as_plain_http(http_sink, client):
    sink = await http_sink()
    result = await deliver(client, make_subscription("trust+" + sink.url),
                           make_job(), now=NOW)
    assert result.status == 200


async def test_retry_after_and_bounded_response_are_reported(http_sink, client):
    async def busy(request, writer):
        writer.write(response(503, b"e" * 10_000, {"Retry-After": "120"}))

    sink = await http_sink(busy)
    result = await deliver(client, make_subscription(sink.url), make_job(),
                           now=NOW, max_response_bytes=100)
    assert (result.status, result.retry_after) == (503, "120")
    assert (result.response, result.truncated) == ("e" * 100, True)
    verdict = classify(result)
    assert (verdict.outcome, verdict.honour_retry_after) == (Outcome.RETRY, True)


async def test_gone_disables(http_sink, client):
    async def gone(request, writer):
        writer.write(response(410))

    sink = await http_sink(gone)
    result = await deliver(client, make_subscription(sink.url), make_job(), now=NOW)
    assert classify(result).outcome is Outcome.DISABLED


async def test_redirect_fails_and_is_not_followed(http_sink, client):
    target = await http_sink()

    async def moved(request, writer):
        writer.write(response(307, b"", {"Location": target.url}))

    sink = await http_sink(moved)
    result = await deliver(client, make_subscription(sink.url), make_job(), now=NOW)
    assert (result.status, classify(result).outcome) == (307, Outcome.FAILED)
    assert target.requests == []


async def test_blocked_destination_is_a_final_failure(http_sink):
    sink = await http_sink()
    async with make_client(Guard(), connect_timeout=1, read_timeout=1) as client:
        result = await deliver(client, make_subscription(sink.url), make_job(), now=NOW)
    assert result.error == r.BLOCKED
    assert classify(result).outcome is Outcome.FAILED
    assert sink.connections == 0


async def test_timeout_is_a_retry(http_sink):
    import asyncio

    async def hang(request, writer):
        await asyncio.sleep(30)

    sink = await http_sink(hang)
    guard = loopback_guard()
    async with make_client(guard, connect_timeout=1, read_timeout=5) as client:
        result = await deliver(client, make_subscription(sink.url), make_job(),
                               now=NOW, deadline=0.3)
    assert result.error == r.TIMEOUT
    assert classify(result).outcome is Outcome.RETRY


async def test_invalid_url_is_a_final_failure(client):
    result = await deliver(client, make_subscription("http://0177.0.0.1/"),
                           make_job(), now=NOW)
    assert result.error in (r.INVALID_REQUEST, r.BLOCKED)
    assert classify(result).outcome is Outcome.FAILED


async def test_secret_and_signature_never_logged(http_sink, client, caplog):
    async def fail(request, writer):
        writer.write(response(500, b"boom"))

    sink = await http_sink(fail)
    secret = generate_secret()
    sub = make_subscription(sink.url, secret=secret,
                            options={"post_headers": {"Authorization": "Bearer tkn"}})
    caplog.set_level(logging.DEBUG)
    result = await deliver(client, sub, make_job(), now=NOW)
    signature = sink.requests[0].headers["webhook-signature"]
    text = caplog.text + repr(result)
    for secret_text in (secret, secret.removeprefix("whsec_"), signature,
                        signature.removeprefix("v1,"), "Bearer tkn"):
        assert secret_text not in text


# --- secrets and signatures -------------------------------------------------------


def test_generated_secrets_are_whsec_base64_of_32_bytes():
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(decode_secret(secret)) == 32
    assert generate_secret() != secret


def test_decode_secret_accepts_a_bare_base64_key():
    assert decode_secret(base64.b64encode(b"k" * 24).decode()) == b"k" * 24


def test_signature_header_signs_with_every_secret_for_rotation():
    old, new = generate_secret(), generate_secret()
    header = signature_header([new, old], "id-1", 1700000000, b"{}")
    headers = {"webhook-id": "id-1", "webhook-timestamp": "1700000000",
               "webhook-signature": header}
    assert len(header.split(" ")) == 2
    assert verify_standard_webhook(old, headers, b"{}")
    assert verify_standard_webhook(new, headers, b"{}")


def test_standard_webhooks_spec_example():
    """The example in the Standard Webhooks spec and reference libraries."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert signature_header([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                            body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_build_payload_adds_ids_and_keeps_message_keys_first():
    payload = build_payload(b'{"ttl": 1, "body": null}', queue="q", message_id="m",
                            subscription_id="s")
    assert list(payload) == ["ttl", "body", "Message_Type", "queue_name",
                             "message_id", "subscription_id"]
