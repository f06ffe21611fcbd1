"""Subscription (un)confirmation payloads (zaqar-v2-api.md §5.3), as job bytes.

With ``dispatch.require_confirmation`` the API queues one of these as a
delivery job (message id ``confirm-<hex>``) when a subscription is created
(or created again while unconfirmed), and when it is unsubscribed with
``{"confirmed": false}``. The dispatcher sends a payload that names its own
``Message_Type`` exactly as frozen here (``subscriptions.payload.is_control``).

The payload carries a Zaqar-form signed URL (the ``URL-*`` fields) that
allows exactly one thing: ``PUT`` on the subscription's ``confirm`` path.
The caller derives the signing key (``signing.zaqar_queue_key`` of the active
key, the project, the queue and its signing generation), so bumping the
queue's generation or retiring the key voids outstanding links.

Pure functions: no clock, no storage; key order is Zaqar's.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import signing
from signing.zaqar import ZAQAR_DATE_FORMAT

MESSAGE_ID_PREFIX = "confirm-"
SUBSCRIBE = "SubscriptionConfirmation"
UNSUBSCRIBE = "UnsubscribeConfirmation"
METHOD = "PUT"


def confirm_path(queue: str, subscription_id: str) -> str:
    """The one path a confirmation link signs."""
    return f"/v2/queues/{queue}/subscriptions/{subscription_id}/confirm"


def new_message_id() -> str:
    """A fresh job message id for a confirmation (never a stored message's)."""
    return MESSAGE_ID_PREFIX + uuid.uuid4().hex


def expires_text(epoch: float) -> str:
    """Zaqar's ``URL-Expires``: naive UTC, whole seconds."""
    moment = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    return moment.strftime(ZAQAR_DATE_FORMAT)


def subscription_confirmation(key: bytes, *, project: str, queue: str,
                              subscription_id: str, expires: float) -> bytes:
    """The SubscriptionConfirmation payload, signed with ``key``."""
    message = f"You have chosen to subscribe to the queue: {queue}"
    return _encode(SUBSCRIBE, message, key, project, queue, subscription_id, expires)


def unsubscribe_confirmation(key: bytes, *, project: str, queue: str,
                             subscription_id: str, expires: float) -> bytes:
    """The UnsubscribeConfirmation payload, signed with ``key``."""
    message = (f"You have unsubscribed successfully to the queue: {queue}, you can"
               " resubscribe it by using confirmed=True.")
    return _encode(UNSUBSCRIBE, message, key, project, queue, subscription_id, expires)


def _encode(message_type: str, message: str, key: bytes, project: str, queue: str,
            subscription_id: str, expires: float) -> bytes:
    path, expires_at = confirm_path(queue, subscription_id), expires_text(expires)
    payload: dict[str, Any] = {
        "Message_Type": message_type,
        "Message": message,
        "URL-Signature": signing.zaqar_signature(key, [path], [METHOD], project,
                                                 expires_at),
        "URL-Methods": METHOD,
        "URL-Paths": path,
        "X-Project-ID": project,
        "URL-Expires": expires_at,
        "SubscribeBody": {"confirmed": True},
        "UnsubscribeBody": {"confirmed": False},
        "queue_name": queue,
    }
    return json.dumps(payload).encode()
