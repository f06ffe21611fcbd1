"""Transport-neutral data shapes shared by the storage drivers and the API.

Message bodies travel as JSON-encoded ``bytes`` (``body_json``): drivers store
and return them without parsing, and the API splices them into responses with
``orjson.Fragment``. Times are POSIX seconds (floats) from the driver's clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Generic, TypeVar

import orjson

T = TypeVar("T")


def new_ids(count: int) -> list[str]:
    """``count`` random 128-bit ids as 32 hex digits (one urandom call:
    ten uuid4() calls cost 20 us on a hot path, this under 2)."""
    raw = os.urandom(16 * count).hex()
    return [raw[i:i + 32] for i in range(0, 32 * count, 32)]

# Reserved queue metadata keys (Zaqar §3.2) that the storage layer interprets.
MAX_CLAIM_COUNT = "_max_claim_count"
DEAD_LETTER_QUEUE = "_dead_letter_queue"
DEAD_LETTER_QUEUE_MESSAGES_TTL = "_dead_letter_queue_messages_ttl"
DEFAULT_MESSAGE_TTL = "_default_message_ttl"
DEFAULT_MESSAGE_DELAY = "_default_message_delay"
MAX_MESSAGES_POST_SIZE = "_max_messages_post_size"
ENABLE_ENCRYPT_MESSAGES = "_enable_encrypt_messages"


@dataclasses.dataclass(frozen=True, slots=True)
class NewMessage:
    """A message as accepted by the API, with TTL and delay already resolved."""

    body_json: bytes
    ttl: int
    delay: int = 0
    checksum: str | None = None


def notification(message: NewMessage) -> bytes:
    """Zaqar's notification payload (zaqar-v2-api.md §5.2) as a delivery job
    stores it: the posted ``body``, ``ttl`` and (when set) ``delay``, spliced
    around the stored body JSON without parsing it. The dispatcher adds
    ``Message_Type`` and ``queue_name`` when it delivers."""
    head = b'{"body": ' + message.body_json + b', "ttl": %d' % message.ttl
    if message.delay:
        return head + b', "delay": %d}' % message.delay
    return head + b"}"


@dataclasses.dataclass(slots=True)
class Message:
    """A stored message.

    ``marker`` is the per-queue FIFO counter; listings and claims are ordered
    by it. ``claim_id``/``claim_expires`` describe the latest claim (which may
    have expired); ``claim_count`` counts successful claims (for DLQ moves).
    """

    id: str
    marker: int
    body_json: bytes
    ttl: int
    created: float
    expires: float
    delay_until: float = 0.0
    client_id: str | None = None
    claim_id: str | None = None
    claim_expires: float | None = None
    claim_count: int = 0
    checksum: str | None = None

    def age(self, now: float) -> int:
        return max(0, int(now - self.created))

    def is_claimed(self, now: float) -> bool:
        return self.claim_expires is not None and self.claim_expires > now

    def is_delayed(self, now: float) -> bool:
        return self.delay_until > now

    def as_posted(self) -> NewMessage:
        """The message as it was posted (for a manual redelivery)."""
        delay = round(self.delay_until - self.created) if self.delay_until else 0
        return NewMessage(self.body_json, self.ttl, max(0, delay), self.checksum)


@dataclasses.dataclass(slots=True)
class Claim:
    """A live claim and the messages it holds.

    ``updated`` is when the claim was created or last renewed; Zaqar reports
    ``age`` from it.
    """

    id: str
    ttl: int
    grace: int
    updated: float
    expires: float
    messages: list[Message]

    def age(self, now: float) -> int:
        return max(0, int(now - self.updated))


@dataclasses.dataclass(frozen=True, slots=True)
class QueueInfo:
    """One row of a queue listing; ``metadata`` only when asked for."""

    name: str
    metadata: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class QueueStats:
    claimed: int
    free: int
    total: int
    oldest: Message | None = None
    newest: Message | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of results and the opaque marker of the next page (or None)."""

    items: list[T]
    next_marker: str | None


@dataclasses.dataclass(slots=True)
class Subscription:
    """A push subscription of one queue (Zaqar §2.5).

    ``secret`` signs webhook deliveries (Standard Webhooks) and is shown
    once, at creation. ``disabled`` is set when a subscriber answers 410.
    """

    id: str
    project: str
    queue: str
    subscriber: str
    ttl: int
    created: float
    expires: float
    options: dict[str, Any]
    confirmed: bool = False
    secret: str = ""
    disabled: bool = False

    def age(self, now: float) -> int:
        return max(0, int(now - self.created))


def options_digest(options: dict[str, Any]) -> str:
    """The normalized identity of a subscription's ``options``: subscriptions
    are unique by (project, queue, subscriber, this digest).

    SHA-256 (hex) of the options as JSON with object keys sorted at every
    depth, so key order never matters; values do, exactly as JSON types
    them (``1``, ``1.0`` and ``true`` differ, as do list orders). Every
    driver stores it beside the options and must agree on it, so the
    encoding is fixed here. Raises ``TypeError`` for what JSON cannot hold
    (integers beyond 64 bits: the API refuses those first).
    """
    normalized = orjson.dumps(options, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(normalized).hexdigest()


@dataclasses.dataclass(slots=True)
class DeliveryJob:
    """One (message, subscription) delivery, written with the message.

    ``message`` is the notification payload (Zaqar's shape, JSON bytes),
    frozen at post time. ``lease_token`` fences a leased job: only the worker
    holding the current token can ack or reschedule it.
    """

    id: str
    subscription_id: str
    project: str
    queue: str
    message_id: str
    message: bytes
    created: float
    due: float
    attempts: int = 0
    lease_token: str | None = None
    lease_expires: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One attempt in the delivery log."""

    subscription_id: str
    message_id: str
    job_id: str
    attempt: int
    at: float
    outcome: str  # "delivered", "retry", "failed", "dead", "disabled"
    status: int | None
    error: str | None
    latency_ms: float
    response: str
