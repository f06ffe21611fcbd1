"""One entry point to validate an action subscriber's options at creation.

The API calls ``validate_subscriber_options`` when a subscription is created
or its subscriber/options change, so a subscription the dispatcher could not
act on is refused with 400 instead of failing at every message. The senders
validate again at delivery (rows written before validation existed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from subscriptions import heat, mistral
from subscriptions.apicall import base_url


def validate_subscriber_options(subscriber: str, options: Mapping[str, Any]) -> None:
    """Raise ``InvalidSubscriberOptions`` (a ``queues.errors.InvalidInput``)
    when a ``mistral+``/``heat+`` subscriber's options cannot work; other
    schemes are left to their own checks."""
    scheme = subscriber.partition(":")[0].lower()
    if scheme in mistral.SCHEMES:
        mistral.validate_options(subscriber, options)
    elif scheme in heat.SCHEMES:
        heat.validate_options(subscriber, options)


def is_action_subscriber(subscriber: str) -> bool:
    """True for the schemes this module validates (they may name a
    credential in ``options.credentials``, like ``trust+`` subscribers)."""
    scheme = subscriber.partition(":")[0].lower()
    return scheme in mistral.SCHEMES or scheme in heat.SCHEMES


def target_url(subscriber: str) -> str | None:
    """The plain http(s) URL an action subscriber calls (for the SSRF
    guard's creation check), or None for other schemes; raises
    ``InvalidSubscriberOptions`` for a malformed one."""
    scheme = subscriber.partition(":")[0].lower()
    for module in (mistral, heat):
        if scheme in module.SCHEMES:
            return base_url(subscriber, module.PREFIX)
    return None
