"""Workflow subscribers: one Mistral execution per message.

Subscriber ``mistral+http(s)://host:port/v2`` (the API's base URL). Options:
``workflow_id`` or ``workflow_name`` (exactly one), ``workflow_namespace``,
``input`` and ``params`` (objects), ``credentials`` (the name of a
server-side token, sent as ``X-Auth-Token``). Per message the dispatcher
sends ``POST {base}/executions`` with::

    {"id": delivery_id(subscription, message), "workflow_id": ...,
     "input": options.input,
     "params": {**options.params,
                "env": {**options.params.env, "notification": <payload>,
                        "notification_id": <message id>},
                "evaluate_env": false}}

Why the id: Mistral starts nothing for an execution id it already knows and
returns the existing execution, so a retried delivery (a lost reply, a 5xx
after the execution was created, a dispatcher killed mid-call) never starts
a second workflow: at-least-once delivery, exactly-once execution. A 409 is
Mistral losing a race to insert that same id, so it counts as delivered too.

Why ``evaluate_env: false``: Mistral would otherwise evaluate YAQL/Jinja
found in ``env`` -- i.e. in the message, which anyone allowed to post to the
queue writes (integration.md §1.8). It cannot be switched back on.

A subscription (un)confirmation is not sent: a workflow cannot confirm a
subscription, so it is recorded as delivered with a note.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from queues.models import DeliveryJob, Subscription
from subscriptions.apicall import (
    Endpoint, base_url, done, failure, invalid, reply_result,
)
from subscriptions.errors import InvalidSubscriberOptions
from subscriptions.options import optional_object, optional_str
from subscriptions.payload import (
    InvalidPayload, build_payload, delivery_id, is_control,
)
from subscriptions.result import DeliveryResult

PREFIX = "mistral"
SCHEMES = ("mistral+http", "mistral+https")
WORKFLOW_KEYS = ("workflow_id", "workflow_name")
DUPLICATE = 409
_API_PATH = re.compile(r"(/[^/]+)*/v2")


def validate_options(subscriber: str, options: Mapping[str, Any]) -> None:
    """Raise ``InvalidSubscriberOptions`` unless a subscription with this
    subscriber and these options can start executions. Pure: it does not
    check that the named credential exists (the caller knows the names)."""
    base = base_url(subscriber, PREFIX)
    if not _API_PATH.fullmatch(urllib.parse.urlsplit(base).path):
        raise InvalidSubscriberOptions(
            "Subscriber must be Mistral's v2 API, e.g. mistral+https://host:8989/v2.")
    workflow_key(options)
    optional_str(options, "workflow_namespace")
    optional_str(options, "credentials", max_length=64)
    optional_object(options, "input")
    params = optional_object(options, "params")
    optional_object(params, "env", label="params.env")
    if params.get("evaluate_env", False) is not False:
        raise InvalidSubscriberOptions(
            "Option params.evaluate_env cannot be enabled: message data is "
            "never evaluated as an expression.")


def workflow_key(options: Mapping[str, Any]) -> str:
    """``workflow_id`` or ``workflow_name``, whichever is given (exactly one)."""
    given = [k for k in WORKFLOW_KEYS if options.get(k) is not None]
    if not given:
        raise InvalidSubscriberOptions(
            "Option workflow_id or workflow_name is required.")
    if len(given) > 1:
        raise InvalidSubscriberOptions(
            "Give either workflow_id or workflow_name, not both.")
    optional_str(options, given[0])
    return given[0]


def execution_request(options: Mapping[str, Any], payload: dict[str, Any], *,
                      execution_id: str, message_id: str) -> dict[str, Any]:
    """The ``POST /executions`` body for one message (options validated)."""
    key = workflow_key(options)
    request: dict[str, Any] = {"id": execution_id, key: options[key]}
    if options.get("workflow_namespace") is not None:
        request["workflow_namespace"] = options["workflow_namespace"]
    params = dict(options.get("params") or {})
    env = {**(params.get("env") or {}), "notification": payload,
           "notification_id": message_id}
    request["input"] = options.get("input") or {}
    request["params"] = {**params, "env": env, "evaluate_env": False}
    return request


async def deliver(endpoint: Endpoint, subscription: Subscription,
                  job: DeliveryJob) -> DeliveryResult:
    """Start (or find) the message's execution; never raises for a
    delivery failure."""
    try:
        validate_options(subscription.subscriber, subscription.options)
        payload = build_payload(job.message, queue=job.queue,
                                message_id=job.message_id,
                                subscription_id=subscription.id)
    except (InvalidSubscriberOptions, InvalidPayload) as ex:
        return invalid(str(ex))
    started = time.monotonic()
    if is_control(payload):
        return done(f"{payload['Message_Type']} not sent: a workflow cannot "
                    "confirm a subscription", started)
    execution_id = delivery_id(subscription.id, job.message_id)
    document = execution_request(subscription.options, payload,
                                 execution_id=execution_id,
                                 message_id=job.message_id)
    try:
        reply = await endpoint.call("POST", "/executions", document, key=execution_id)
    except Exception as ex:  # every failure becomes a result
        return failure(ex, f"mistral subscription {subscription.id} message "
                           f"{job.message_id}", started)
    if reply.status == DUPLICATE:
        return done(f"HTTP 409: execution {execution_id} already exists", started)
    return reply_result(reply, started)
