"""Orchestration subscribers: heal or signal a Heat resource per message.

Subscriber ``heat+http(s)://host:port/v1/{tenant}`` (Heat's base URL).
Options:

* ``action``: ``mark_unhealthy_and_update`` or ``signal``;
* ``stack``: the canonical ``name/id``. Heat answers a bare name or id with a
  302 to the canonical path, and the dispatcher never follows redirects
  (re-issuing a PATCH as a GET is how clients get this wrong, §1.4);
* ``resource``: a JMESPath expression selecting the resource name or physical
  id from the notification payload, e.g.
  ``body.reason_data.event.traits[?[0]=='instance_id'] | [0][2]``; a fixed
  name is a JMESPath raw string, ``'my_policy'``. Message data is only ever
  *selected*, never evaluated as a template or expression;
* ``root_stack`` (canonical, default ``stack``), ``reason`` (default
  "Marked by alarm"): ``mark_unhealthy_and_update`` only;
* ``cooldown``: seconds (default 60 for ``mark_unhealthy_and_update``, 0 for
  ``signal``, whose signals -- wait conditions, deployments -- may each
  matter): alarms for the same (subscription, stack, resource) within it are
  coalesced, recorded as delivered without calling Heat. See
  ``subscriptions.cooldown`` for the per-process LIMITATION;
* ``credentials``: the name of a server-side token sent as ``X-Auth-Token``.

``mark_unhealthy_and_update`` sends ``PATCH {base}/stacks/{stack}/resources/
{res}`` with ``{"mark_unhealthy": true, "resource_status_reason": reason}``,
then ``PATCH {base}/stacks/{root_stack}`` with ``{}`` (Heat answers 202). A
404 on the first call means the resource is already gone (replaced by an
earlier heal): delivered, no update. A 409 on either call means the stack is
locked by an operation: retried later (error class ``busy``). ``signal``
sends ``POST {base}/stacks/{stack}/resources/{res}/signal`` with the
message's ``body``. Anything else is classified as for webhooks.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import jmespath
import jmespath.exceptions

from queues.models import DeliveryJob, Subscription
from subscriptions import result as r
from subscriptions.apicall import (
    Endpoint, base_url, done, failure, invalid, reply_result,
)
from subscriptions.cooldown import Cooldowns
from subscriptions.errors import InvalidSubscriberOptions
from subscriptions.http import Reply
from subscriptions.options import optional_int, optional_str, required_str
from subscriptions.payload import (
    InvalidPayload, build_payload, delivery_id, is_control,
)
from subscriptions.result import DeliveryResult

PREFIX = "heat"
SCHEMES = ("heat+http", "heat+https")
HEAL = "mark_unhealthy_and_update"
SIGNAL = "signal"
ACTIONS = (HEAL, SIGNAL)
DEFAULT_COOLDOWN = {HEAL: 60, SIGNAL: 0}
DEFAULT_REASON = "Marked by alarm"
LOCKED, GONE_RESOURCE = 409, 404
_API_PATH = re.compile(r"(/[^/]+)*/v1/[^/]+")
_CANONICAL_STACK = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,254}/[A-Za-z0-9-]{1,64}")
MAX_RESOURCE = 255


class SelectionFailed(ValueError):
    """``options.resource`` selected no usable resource from this message."""


def validate_options(subscriber: str, options: Mapping[str, Any]) -> None:
    """Raise ``InvalidSubscriberOptions`` unless a subscription with this
    subscriber and these options can act. Pure: it does not check that the
    named credential exists (the caller knows the names)."""
    base = base_url(subscriber, PREFIX)
    if not _API_PATH.fullmatch(urllib.parse.urlsplit(base).path):
        raise InvalidSubscriberOptions(
            "Subscriber must be Heat's v1 API of a tenant, e.g. "
            "heat+https://host:8004/v1/{tenant}.")
    action = options.get("action")
    if action not in ACTIONS:
        raise InvalidSubscriberOptions(
            f"Option action must be one of: {', '.join(ACTIONS)}.")
    _stack(options, "stack", required=True)
    _compile(required_str(options, "resource", max_length=1024,
                          why=" (a JMESPath expression selecting the resource)"))
    optional_int(options, "cooldown", DEFAULT_COOLDOWN[action])
    optional_str(options, "credentials", max_length=64)
    if action == HEAL:
        _stack(options, "root_stack", required=False)
        optional_str(options, "reason")


def _stack(options: Mapping[str, Any], key: str, *, required: bool) -> None:
    value = options.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or not _CANONICAL_STACK.fullmatch(value):
        raise InvalidSubscriberOptions(
            f"Option {key} must be the stack's canonical name/id (e.g. "
            "member-stack/4b1a...): the dispatcher does not follow redirects.")


def _compile(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError:
        raise InvalidSubscriberOptions(
            "Option resource is not a valid JMESPath expression.") from None


def select_resource(expression: str, payload: dict[str, Any]) -> str:
    """The resource name or physical id ``expression`` selects from the
    payload; raises ``SelectionFailed``."""
    try:
        value = _compile(expression).search(payload)
    except jmespath.exceptions.JMESPathError as ex:
        raise SelectionFailed(f"options.resource failed on this message: {ex}") from None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SelectionFailed("options.resource selected no resource name "
                              f"(got {type(value).__name__}) from this message")
    text = str(value)
    if not text or text in (".", "..") or len(text) > MAX_RESOURCE:
        raise SelectionFailed("options.resource selected an invalid resource name")
    return text


def resource_path(stack: str, resource: str) -> str:
    """``/stacks/{name}/{id}/resources/{res}``, every segment quoted (the
    resource comes from message data: a ``/`` in it stays inside it)."""
    return f"{stack_path(stack)}/resources/{urllib.parse.quote(resource, safe='')}"


def stack_path(stack: str) -> str:
    name, _, stack_id = stack.partition("/")
    return "/stacks/" + "/".join(urllib.parse.quote(p, safe="") for p in (name, stack_id))


class HeatActions:
    """The Heat sender; holds this dispatcher's cooldown state."""

    def __init__(self, cooldowns: Cooldowns | None = None) -> None:
        self.cooldowns = cooldowns or Cooldowns()

    async def deliver(self, endpoint: Endpoint, subscription: Subscription,
                      job: DeliveryJob, now: float) -> DeliveryResult:
        """One message's action; never raises for a delivery failure."""
        options = subscription.options
        try:
            validate_options(subscription.subscriber, options)
            payload = build_payload(job.message, queue=job.queue,
                                    message_id=job.message_id,
                                    subscription_id=subscription.id)
            if is_control(payload):
                return done(f"{payload['Message_Type']} not sent: Heat cannot "
                            "confirm a subscription", time.monotonic())
            resource = select_resource(options["resource"], payload)
        except (InvalidSubscriberOptions, InvalidPayload, SelectionFailed) as ex:
            return invalid(str(ex))
        key = (subscription.id, options["stack"], resource)
        seconds = optional_int(options, "cooldown", DEFAULT_COOLDOWN[options["action"]])
        started = time.monotonic()
        reason = self.cooldowns.claim(key, now, seconds)
        if reason is not None:
            return done(f"coalesced: resource {resource}: {reason}", started)
        acted = False
        try:
            result, acted = await self._act(endpoint, subscription, job, payload,
                                            resource, started)
            return result
        finally:
            self.cooldowns.release(key, now if acted and seconds > 0 else None)

    async def _act(self, endpoint: Endpoint, subscription: Subscription,
                   job: DeliveryJob, payload: dict[str, Any], resource: str,
                   started: float) -> tuple[DeliveryResult, bool]:
        """(result, whether Heat acted), bounded by the endpoint's deadline."""
        options = subscription.options
        key = delivery_id(subscription.id, job.message_id)
        try:
            async with asyncio.timeout(endpoint.deadline):
                if options["action"] == SIGNAL:
                    return await _signal(endpoint, options["stack"], resource,
                                         payload.get("body"), key, started)
                return await _heal(endpoint, options, resource, key, started)
        except Exception as ex:  # every failure becomes a result
            return failure(ex, f"heat subscription {subscription.id} message "
                               f"{job.message_id}", started), False


async def _heal(endpoint: Endpoint, options: Mapping[str, Any], resource: str,
                key: str, started: float) -> tuple[DeliveryResult, bool]:
    stack = options["stack"]
    mark = await endpoint.call(
        "PATCH", resource_path(stack, resource),
        {"mark_unhealthy": True,
         "resource_status_reason": options.get("reason") or DEFAULT_REASON},
        key=key)
    if mark.status == GONE_RESOURCE:
        return done(f"mark-unhealthy HTTP 404: resource {resource} already "
                    "replaced; no update", started), False
    if not 200 <= mark.status <= 299:
        return _settled(mark, started, "mark-unhealthy: "), False
    root = options.get("root_stack") or stack
    update = await endpoint.call("PATCH", stack_path(root), {}, key=key)
    note = f"mark-unhealthy HTTP {mark.status}; update: "
    return _settled(update, started, note), 200 <= update.status <= 299


async def _signal(endpoint: Endpoint, stack: str, resource: str, body: Any,
                  key: str, started: float) -> tuple[DeliveryResult, bool]:
    reply = await endpoint.call("POST", resource_path(stack, resource) + "/signal",
                                body, key=key)
    return _settled(reply, started, "signal: "), 200 <= reply.status <= 299


def _settled(reply: Reply, started: float, note: str) -> DeliveryResult:
    """A reply as a result; Heat's 409 (locked) is retried later."""
    busy = r.BUSY if reply.status == LOCKED else None
    return reply_result(reply, started, note=note, error=busy)
