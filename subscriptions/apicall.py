"""JSON calls to an OpenStack-style API, shared by the action senders.

A ``mistral+http(s)://`` or ``heat+http(s)://`` subscriber is the service's
base URL behind a scheme prefix; ``base_url`` strips the prefix and checks
the rest. ``Endpoint.call`` sends one JSON request through the dispatcher's
guarded client (SSRF-checked, no redirects, bounded reply, deadline) with the
subscription's named credential as ``X-Auth-Token``; ``reply_result`` and
``failure`` turn what happened into a ``DeliveryResult``. The token never
reaches a log line, a repr or a result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import urllib.parse
from typing import Any

from subscriptions import result as r
from subscriptions.errors import InvalidSubscriberOptions
from subscriptions.http import Client, Reply, describe, error_class, send
from subscriptions.result import DeliveryResult

LOG = logging.getLogger(__name__)


def base_url(subscriber: str, prefix: str) -> str:
    """``<prefix>+https://host:port/path`` -> ``https://host:port/path``
    (no trailing slash); raises ``InvalidSubscriberOptions``."""
    scheme, sep, rest = subscriber.partition("://")
    outer, plus, inner = scheme.lower().partition("+")
    if not sep or outer != prefix or not plus or inner not in ("http", "https"):
        raise InvalidSubscriberOptions(
            f"Subscriber must be {prefix}+http:// or {prefix}+https://.")
    parts = urllib.parse.urlsplit(f"{inner}://{rest}")
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if not parts.hostname or not port_ok:
        raise InvalidSubscriberOptions("Subscriber has no valid host and port.")
    if parts.username is not None or parts.password is not None:
        raise InvalidSubscriberOptions(
            "Subscriber must not carry credentials: name one in options.credentials.")
    if parts.query or parts.fragment:
        raise InvalidSubscriberOptions(
            "Subscriber must not have a query string or fragment.")
    return f"{inner}://{parts.netloc}{parts.path}".rstrip("/")


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to call: base URL, optional token, reply bounds."""

    client: Client
    base: str
    token: str | None = dataclasses.field(default=None, repr=False)
    max_response_bytes: int = 4096
    deadline: float = 30.0

    async def call(self, method: str, path: str, document: Any, *,
                   key: str | None = None) -> Reply:
        """One JSON request to ``base + path``; raises what ``http.send`` raises."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        if self.token:
            headers["X-Auth-Token"] = self.token
        return await send(self.client, method, self.base + path,
                          content=json.dumps(document).encode(), headers=headers,
                          max_response_bytes=self.max_response_bytes,
                          deadline=self.deadline)


def reply_text(reply: Reply) -> str:
    return reply.body.decode("utf-8", errors="replace")


def reply_result(reply: Reply, started: float, *, note: str = "",
                 error: str | None = None) -> DeliveryResult:
    """The result of the last reply of an action; ``note`` prefixes the
    logged response (e.g. the earlier calls' statuses)."""
    return DeliveryResult(
        status=reply.status, error=error, latency_ms=elapsed_ms(started),
        response=note + reply_text(reply), truncated=reply.truncated,
        retry_after=reply.headers.get("retry-after"))


def done(detail: str, started: float) -> DeliveryResult:
    """Delivered without a 2xx (duplicate, already replaced, coalesced)."""
    return DeliveryResult(detail=detail, latency_ms=elapsed_ms(started))


def invalid(detail: str) -> DeliveryResult:
    """A final failure: this subscription cannot produce a valid request."""
    return DeliveryResult(error=r.INVALID_REQUEST, detail=detail)


def failure(ex: Exception, what: str, started: float) -> DeliveryResult:
    """A request that raised; ``what`` names the delivery for the log."""
    error = error_class(ex)
    detail = describe(ex)
    if error == r.INTERNAL:
        LOG.exception("%s failed unexpectedly", what)
    else:
        LOG.debug("%s: %s", what, detail)
    return DeliveryResult(error=error, detail=detail, latency_ms=elapsed_ms(started))


def elapsed_ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
