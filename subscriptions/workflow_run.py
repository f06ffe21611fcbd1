"""Running a local workflow for one message: one run is one delivery.

Steps run in order through the dispatcher's guarded client (SSRF-checked,
no redirects, bounded replies), each with the subscription's named
credential as ``X-Auth-Token`` and ``Idempotency-Key: <delivery id>/<step>``.
Per step, a reply's status is read in this order: ``on_status`` (``stop``
ends the workflow as done, ``continue`` goes on), ``expect`` (default any
2xx), then the ``retry`` block, whose retries happen inline
(``asyncio.sleep``) -- but never past the dispatcher's delivery deadline:
a retry that would not fit is not started. A step that still fails follows
its ``on_error`` (``fail``, ``continue`` or ``stop``).

A failed run is one failed delivery, classified as usual: a connection
error, a timeout or a 5xx is retried by the dispatcher on the subscription's
``_retry_policy``, and a status the step's ``retry.on_status`` lists (e.g.
Heat's 409 "locked") is too (error class ``busy``); any other 4xx is final.
A retried delivery runs the workflow from its first step again, so every
step must be idempotent (Heat's mark-unhealthy and stack PATCH are).

The result's ``response`` summarises the steps for the delivery log, e.g.
``mark_unhealthy: 409 409 200; update: 202``, followed by the failing
reply's (bounded) body. Tokens never reach it or any log line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time

from queues.models import DeliveryJob, Subscription
from subscriptions import result as r
from subscriptions.apicall import done, elapsed_ms, invalid, reply_text
from subscriptions.classify import Outcome, classify_status
from subscriptions.credentials import OPTION as CREDENTIAL_OPTION
from subscriptions.credentials import Credentials
from subscriptions.errors import InvalidSubscriberOptions
from subscriptions.http import Client, Reply, describe, error_class, send
from subscriptions.payload import (
    InvalidPayload, build_payload, delivery_id, is_control,
)
from subscriptions.result import DeliveryResult
from subscriptions.workflow_render import Call, SelectionFailed, plan, select_vars
from subscriptions.workflow_spec import CONTINUE, FAIL, STOP, Step
from subscriptions.workflows import Workflows, resolve

LOG = logging.getLogger(__name__)
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")
OK, FAILED = "ok", "failed"


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What runs need from the dispatcher: client, secrets and bounds."""

    client: Client
    credentials: Credentials = dataclasses.field(repr=False)
    max_response_bytes: int = 4096
    deadline: float = 30.0


@dataclasses.dataclass(frozen=True)
class StepEnd:
    """How one try of a step ended: ``verdict`` is ok, stop or failed."""

    verdict: str
    reply: Reply | None = None
    error: str | None = None  # error class, when the request raised
    detail: str = ""
    transient: bool = False   # failed with a status retry.on_status lists

    @property
    def mark(self) -> str:
        return str(self.reply.status) if self.reply is not None else str(self.error)


class MissingCredential(ValueError):
    """The named credential may not go to a step's URL."""


async def deliver(runtime: Runtime, workflows: Workflows, subscription: Subscription,
                  job: DeliveryJob) -> DeliveryResult:
    """Run the subscription's workflow for the job's message; never raises
    for a delivery failure."""
    try:
        workflow, params = resolve(subscription.subscriber, subscription.options,
                                   workflows)
        payload = build_payload(job.message, queue=job.queue,
                                message_id=job.message_id,
                                subscription_id=subscription.id)
        if is_control(payload):
            return done(f"{payload['Message_Type']} not sent: a workflow cannot"
                        " confirm a subscription", time.monotonic())
        calls = plan(workflow, params, select_vars(workflow, payload))
        token = credential(runtime.credentials, subscription, calls)
    except (InvalidSubscriberOptions, InvalidPayload, SelectionFailed,
            MissingCredential) as ex:
        return invalid(f"{subscription.subscriber}: {ex}")
    run = Run(runtime, workflow.name, token,
              delivery_id(subscription.id, job.message_id))
    return await run.run(calls)


def credential(credentials: Credentials, subscription: Subscription,
               calls: list[Call]) -> str | None:
    """The named token, if any, once it may go to every step's URL."""
    name = subscription.options.get(CREDENTIAL_OPTION)
    if name is None:
        return None
    token = None
    for call in calls:
        token = credentials.token_for(name, call.url, subscription.project)
        if token is None:
            raise MissingCredential(
                f"credential {name!r} is not configured on this dispatcher for"
                f" step {call.step.name}'s destination and this project")
    if token is not None and not _HEADER_TOKEN.fullmatch(token):
        raise MissingCredential(f"credential {name!r} is not a valid header value")
    return token


def judge(step: Step, reply: Reply) -> StepEnd:
    """A reply read by the step's on_status, expect and retry.on_status."""
    status = reply.status
    action = step.on_status.get(status)
    if action is not None:
        return StepEnd(STOP if action == STOP else OK, reply)
    if step.expected(status):
        return StepEnd(OK, reply)
    transient = step.retry is not None and status in step.retry.on_status
    return StepEnd(FAILED, reply, transient=transient)


class Run:
    """One workflow run; ``log`` collects the summary of each step."""

    def __init__(self, runtime: Runtime, name: str, token: str | None,
                 key: str) -> None:
        self.runtime = runtime
        self.name = name
        self._token = token
        self._key = key
        self.log: list[str] = []
        self.started = time.monotonic()
        self.deadline_at = self.started + runtime.deadline

    async def run(self, calls: list[Call]) -> DeliveryResult:
        try:
            async with asyncio.timeout(self.runtime.deadline):
                return await self._steps(calls)
        except TimeoutError:
            detail = (f"workflow {self.name}: delivery deadline of"
                      f" {self.runtime.deadline:g}s exceeded")
            return DeliveryResult(error=r.TIMEOUT, detail=detail,
                                  latency_ms=elapsed_ms(self.started),
                                  response=f"{self.summary()}\n{detail}".lstrip())

    async def _steps(self, calls: list[Call]) -> DeliveryResult:
        last: StepEnd | None = None
        for call in calls:
            end = await self._step(call)
            if end.verdict == FAILED and call.step.on_error == FAIL:
                return self._failed(call.step, end)
            if end.verdict == STOP or (end.verdict == FAILED
                                       and call.step.on_error == STOP):
                return self._completed(None, f"stopped at step {call.step.name}")
            last = end if end.verdict == OK else None
        return self._completed(last, "completed")

    async def _step(self, call: Call) -> StepEnd:
        """The step, retried inline as its retry block allows."""
        tries: list[str] = []
        attempt = 0
        while True:
            end = await self._try(call)
            tries.append(end.mark)
            if end.verdict != FAILED or not self._may_retry(call.step, end, attempt):
                self.log.append(f"{call.step.name}: {' '.join(tries)}"
                                f"{_suffix(call.step, end)}")
                return end
            attempt += 1
            assert call.step.retry is not None
            await asyncio.sleep(call.step.retry.delay)

    def _may_retry(self, step: Step, end: StepEnd, attempt: int) -> bool:
        retry = step.retry
        if retry is None or attempt >= retry.count:
            return False
        if end.error is not None:
            retryable = end.error in r.RETRYABLE_ERRORS and end.error != r.INTERNAL
        else:
            retryable = end.transient
        return retryable and time.monotonic() + retry.delay < self.deadline_at

    async def _try(self, call: Call) -> StepEnd:
        try:
            reply = await self._send(call)
        except Exception as ex:  # every failure becomes a result
            error = error_class(ex)
            detail = f"step {call.step.name}: {describe(ex)}"[:500]
            if error == r.INTERNAL:
                LOG.exception("workflow %s step %s failed unexpectedly", self.name,
                              call.step.name)
            return StepEnd(FAILED, error=error, detail=detail)
        return judge(call.step, reply)

    async def _send(self, call: Call) -> Reply:
        headers = {"accept": "application/json", **dict(call.headers),
                   "idempotency-key": f"{self._key}/{call.step.name}"}
        if call.content is not None:
            headers["content-type"] = "application/json"
        if self._token:
            headers["x-auth-token"] = self._token
        remaining = max(self.deadline_at - time.monotonic(), 0.001)
        return await send(self.runtime.client, call.step.method, call.url,
                          content=call.content or b"", headers=headers,
                          max_response_bytes=self.runtime.max_response_bytes,
                          deadline=remaining)

    def summary(self) -> str:
        return "; ".join(self.log)

    def _completed(self, last: StepEnd | None, how: str) -> DeliveryResult:
        """Done: the last step's 2xx status when it had one."""
        status = last.reply.status if last is not None and last.reply else None
        if status is not None and not 200 <= status <= 299:
            status = None
        return DeliveryResult(status=status, detail=f"workflow {self.name}: {how}",
                              latency_ms=elapsed_ms(self.started),
                              response=self.summary())

    def _failed(self, step: Step, end: StepEnd) -> DeliveryResult:
        latency = elapsed_ms(self.started)
        if end.reply is None:
            return DeliveryResult(error=end.error, detail=end.detail,
                                  latency_ms=latency,
                                  response=f"{self.summary()}\n{end.detail}")
        reply = end.reply
        retried = classify_status(reply.status).outcome is Outcome.RETRY
        busy = r.BUSY if end.transient and not retried else None
        return DeliveryResult(
            status=reply.status, error=busy,
            detail=f"workflow {self.name}: step {step.name} failed",
            latency_ms=latency, response=f"{self.summary()}\n{reply_text(reply)}",
            truncated=reply.truncated, retry_after=reply.headers.get("retry-after"))


def _suffix(step: Step, end: StepEnd) -> str:
    if end.verdict == STOP:
        return " (stop)"
    if end.verdict == OK and end.reply is not None and \
            step.on_status.get(end.reply.status) == CONTINUE:
        return " (continue)"
    if end.verdict == FAILED:
        return " (failed)" if step.on_error == FAIL else f" (failed, {step.on_error})"
    return ""
