"""One webhook delivery: body, headers, Standard Webhooks signature, send.

Body: the payload JSON, or ``options.post_data`` with the text
``"$zaqar_message$"`` -- *including* its double quotes -- replaced by the
payload JSON (zaqar-v2-api.md §5.2). Headers: ``Content-Type:
application/json``, then ``options.post_headers`` (which may override the
content type but none of the headers below), then Standard Webhooks'
``webhook-id``/``webhook-timestamp``/``webhook-signature`` and an
``Idempotency-Key`` equal to ``webhook-id``.

The signature is ``v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>``
with the subscription's ``whsec_<base64>`` secret. Neither the secret, the
signature nor the request headers are ever logged or put in a result.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from queues.models import DeliveryJob, Subscription
from subscriptions import result as r
from subscriptions.http import Client, describe, error_class, post
from subscriptions.payload import (
    InvalidPayload, build_payload, delivery_id, encode_payload, is_control,
)
from subscriptions.result import DeliveryResult

LOG = logging.getLogger(__name__)

PLACEHOLDER = '"$zaqar_message$"'
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_MAX_RESPONSE_BYTES = 4096
# Headers post_headers may not set: framing, routing and our own.
PROTECTED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive",
    "upgrade", "te", "trailer", "expect", "proxy-authorization",
    "webhook-id", "webhook-timestamp", "webhook-signature", "idempotency-key",
})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")


class InvalidRequest(ValueError):
    """The subscription cannot produce a valid request (bad header, secret)."""


def generate_secret() -> str:
    """A new ``whsec_`` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("the subscription secret is not valid base64") from None
    if not key:
        raise InvalidRequest("the subscription secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks ``v1`` signature."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: Sequence[str], msg_id: str, timestamp: int,
                     body: bytes) -> str:
    """Space-separated signatures, one per secret (key rotation)."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


def render_body(payload: dict[str, Any], options: Mapping[str, Any]) -> bytes:
    """The request body, with Zaqar's ``post_data`` template if set (never
    for a confirmation, which the subscriber must receive as Zaqar sends it)."""
    encoded = encode_payload(payload)
    template = options.get("post_data")
    if template is None or is_control(payload):
        return encoded.encode()
    if not isinstance(template, str):
        raise InvalidRequest("post_data must be a string")
    return template.replace(PLACEHOLDER, encoded).encode()


def build_headers(options: Mapping[str, Any], *, msg_id: str, timestamp: int,
                  body: bytes, secrets_: Sequence[str]) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    headers.update(_post_headers(options.get("post_headers")))
    headers["webhook-id"] = msg_id
    headers["webhook-timestamp"] = str(timestamp)
    if secrets_:
        headers["webhook-signature"] = signature_header(secrets_, msg_id,
                                                        timestamp, body)
    headers["Idempotency-Key"] = msg_id
    return headers


def _post_headers(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRequest("post_headers must be a dict")
    headers = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidRequest("post_headers has an invalid header name")
        if isinstance(value, (dict, list)) or value is None:
            raise InvalidRequest(f"post_headers value of {name} is not a string")
        text = str(value)
        if not _FIELD_VALUE.fullmatch(text):
            raise InvalidRequest(
                f"post_headers value of {name} must be printable ASCII")
        if name.lower() not in PROTECTED_HEADERS:
            headers[name] = text
    return headers


def target_url(subscriber: str) -> str:
    """``trust+http(s)://`` is sent as plain http(s) (no Keystone here)."""
    return subscriber.removeprefix("trust+")


def prepare(subscription: Subscription, job: DeliveryJob, now: float,
            extra_headers: Mapping[str, str] | None = None
            ) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one delivery; raises InvalidPayload/InvalidRequest.
    ``extra_headers`` (e.g. a trust+ subscriber's X-Auth-Token) come last."""
    payload = build_payload(job.message, queue=job.queue, message_id=job.message_id,
                            subscription_id=subscription.id)
    body = render_body(payload, subscription.options)
    secrets_ = [subscription.secret] if subscription.secret else []
    headers = build_headers(subscription.options,
                            msg_id=delivery_id(subscription.id, job.message_id),
                            timestamp=int(now), body=body, secrets_=secrets_)
    headers.update(extra_headers or {})
    return body, headers


async def deliver(client: Client, subscription: Subscription,
                  job: DeliveryJob, *, now: float | None = None,
                  max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                  deadline: float = 30.0,
                  extra_headers: Mapping[str, str] | None = None) -> DeliveryResult:
    """Send one delivery and describe what happened; never raises for a
    delivery failure. ``deadline`` bounds the whole exchange."""
    try:
        body, headers = prepare(subscription, job,
                                time.time() if now is None else now, extra_headers)
    except (InvalidPayload, InvalidRequest) as ex:
        return DeliveryResult(error=r.INVALID_REQUEST, detail=str(ex))
    started = time.monotonic()
    try:
        reply = await post(client, target_url(subscription.subscriber),
                           content=body, headers=headers,
                           max_response_bytes=max_response_bytes, deadline=deadline)
    except Exception as ex:  # every failure becomes a result
        return _failure(ex, subscription, job, started)
    latency = (time.monotonic() - started) * 1000
    LOG.debug("webhook %s for message %s: HTTP %s in %.0f ms",
              subscription.id, job.message_id, reply.status, latency)
    return DeliveryResult(
        status=reply.status, latency_ms=latency,
        response=reply.body.decode("utf-8", errors="replace"),
        truncated=reply.truncated, retry_after=reply.headers.get("retry-after"))


def _failure(ex: Exception, subscription: Subscription, job: DeliveryJob,
             started: float) -> DeliveryResult:
    error = error_class(ex)
    latency = (time.monotonic() - started) * 1000
    detail = describe(ex)
    if error == r.INTERNAL:
        LOG.exception("webhook %s for message %s failed unexpectedly",
                      subscription.id, job.message_id)
    else:
        LOG.debug("webhook %s for message %s: %s", subscription.id,
                  job.message_id, detail)
    return DeliveryResult(error=error, detail=detail, latency_ms=latency)
