"""The notification payload and the delivery id, shared by every channel.

Zaqar's payload is the posted message (``body``, ``ttl`` and, when honoured,
``delay``) plus ``"Message_Type": "Notification"`` and ``queue_name``
(zaqar-v2-api.md §5.2). Mailslot adds ``message_id`` and ``subscription_id``
(Zaqar fires before storing, so it has no id to send).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

# Fixed namespace: delivery ids must be identical on every dispatcher, forever.
_DELIVERY_NAMESPACE = uuid.UUID("5d1b6a1e-7c62-4f4e-9a59-6d61696c736c")
MESSAGE_TYPE = "Notification"


class InvalidPayload(ValueError):
    """The job's frozen message is not a JSON object."""


def build_payload(message: bytes, *, queue: str, message_id: str,
                  subscription_id: str) -> dict[str, Any]:
    """The payload for one (message, subscription); ``message`` is the job's
    frozen JSON. Keys already present keep their place (Zaqar's order).

    A control payload (one that already names its ``Message_Type``, such as a
    SubscriptionConfirmation queued by the API) is sent exactly as frozen.
    """
    payload = decode(message)
    if is_control(payload):
        return payload
    payload["Message_Type"] = MESSAGE_TYPE
    payload["queue_name"] = queue
    payload["message_id"] = message_id
    payload["subscription_id"] = subscription_id
    return payload


def decode(message: bytes) -> dict[str, Any]:
    """A job's frozen JSON object; raises ``InvalidPayload``."""
    try:
        payload = json.loads(message)
    except (ValueError, UnicodeDecodeError) as ex:
        raise InvalidPayload(f"message is not JSON: {ex}") from None
    if not isinstance(payload, dict):
        raise InvalidPayload("message is not a JSON object")
    return payload


def is_control(payload: dict[str, Any]) -> bool:
    """Subscription (un)confirmations. A frozen posted message never carries
    a top-level ``Message_Type`` (its data sits under ``body``); a built
    notification carries ``Notification``."""
    return payload.get("Message_Type", MESSAGE_TYPE) != MESSAGE_TYPE


def encode_payload(payload: dict[str, Any]) -> str:
    """JSON as Zaqar writes it (``json.dumps`` defaults)."""
    return json.dumps(payload)


def delivery_id(subscription_id: str, message_id: str) -> str:
    """The idempotency key of one (subscription, message): the same on every
    retry, on every dispatcher, and for a manual redelivery. Sent as
    ``webhook-id`` and ``Idempotency-Key`` (and as the mail's Message-ID)."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{subscription_id}\x00{message_id}"))
