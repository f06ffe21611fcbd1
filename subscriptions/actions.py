"""One entry point to validate an action subscriber's options at creation.

The API calls ``validate_subscriber_options`` when a subscription is created
or its subscriber/options change, so a subscription the dispatcher could not
act on is refused with 400 instead of failing at every message. The senders
validate again at delivery (rows written before validation existed).
``workflow:<name>`` subscribers are checked against the local workflows the
caller loaded (``subscriptions.workflows``); without them every name is
unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from subscriptions import heat, mistral
from subscriptions.apicall import base_url
from subscriptions.workflows import SCHEME as WORKFLOW_SCHEME
from subscriptions.workflows import Workflows
from subscriptions.workflows import target_urls as workflow_urls
from subscriptions.workflows import validate_options as validate_workflow

_NO_WORKFLOWS = Workflows()


def validate_subscriber_options(subscriber: str, options: Mapping[str, Any],
                                workflows: Workflows | None = None) -> None:
    """Raise ``InvalidSubscriberOptions`` (a ``queues.errors.InvalidInput``)
    when a ``mistral+``/``heat+``/``workflow:`` subscriber's options cannot
    work; other schemes are left to their own checks."""
    scheme = subscriber.partition(":")[0].lower()
    if scheme in mistral.SCHEMES:
        mistral.validate_options(subscriber, options)
    elif scheme in heat.SCHEMES:
        heat.validate_options(subscriber, options)
    elif scheme == WORKFLOW_SCHEME:
        validate_workflow(subscriber, options, workflows or _NO_WORKFLOWS)


def is_action_subscriber(subscriber: str) -> bool:
    """True for the schemes this module validates (they may name a
    credential in ``options.credentials``, like ``trust+`` subscribers)."""
    scheme = subscriber.partition(":")[0].lower()
    return (scheme in mistral.SCHEMES or scheme in heat.SCHEMES
            or scheme == WORKFLOW_SCHEME)


def target_url(subscriber: str) -> str | None:
    """The plain http(s) URL a ``mistral+``/``heat+`` subscriber calls (for
    the SSRF guard's creation check), or None for other schemes; raises
    ``InvalidSubscriberOptions`` for a malformed one."""
    scheme = subscriber.partition(":")[0].lower()
    for module in (mistral, heat):
        if scheme in module.SCHEMES:
            return base_url(subscriber, module.PREFIX)
    return None


def target_urls(subscriber: str, options: Mapping[str, Any],
                workflows: Workflows | None = None) -> list[str]:
    """Every URL an action subscriber calls: its base URL, or each step of
    its local workflow (vars stood in for; the host never depends on them).
    Raises ``InvalidSubscriberOptions``."""
    if subscriber.partition(":")[0].lower() == WORKFLOW_SCHEME:
        return workflow_urls(subscriber, options, workflows or _NO_WORKFLOWS)
    url = target_url(subscriber)
    return [url] if url is not None else []
