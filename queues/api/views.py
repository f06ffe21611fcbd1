"""Shaping storage models into Zaqar's JSON documents."""

from __future__ import annotations

import datetime
from typing import Any

import falcon
import orjson

from queues.models import (
    Claim, DeliveryAttempt, DeliveryJob, Message, Page, Subscription,
)


def queue_href(queue: str) -> str:
    return f"/v2/queues/{queue}"


def message(m: Message, queue: str, now: float) -> dict[str, Any]:
    href = f"/v2/queues/{queue}/messages/{m.id}"
    if m.claim_id:
        href += f"?claim_id={m.claim_id}"
    doc = {"id": m.id, "href": href, "ttl": m.ttl, "age": m.age(now),
           "body": orjson.Fragment(m.body_json)}
    if m.checksum:
        doc["checksum"] = m.checksum
    return doc


def popped(m: Message, now: float) -> dict[str, Any]:
    return {"id": m.id, "age": m.age(now), "ttl": m.ttl,
            "body": orjson.Fragment(m.body_json), "claim_id": m.claim_id,
            "claim_count": m.claim_count}


def claim(c: Claim, queue: str, now: float) -> dict[str, Any]:
    return {"age": c.age(now), "ttl": c.ttl,
            "messages": [message(m, queue, now) for m in c.messages],
            "href": f"/v2/queues/{queue}/claims/{c.id}"}


def stat_end(m: Message, queue: str, now: float) -> dict[str, Any]:
    created = datetime.datetime.fromtimestamp(int(m.created), datetime.timezone.utc)
    return {"href": f"/v2/queues/{queue}/messages/{m.id}", "age": m.age(now),
            "created": created.strftime("%Y-%m-%dT%H:%M:%SZ")}


def subscription(s: Subscription, now: float) -> dict[str, Any]:
    """Zaqar's subscription object; never the webhook secret. ``disabled``
    appears only once the subscriber answered 410."""
    doc = {"id": s.id, "source": s.queue, "subscriber": s.subscriber, "ttl": s.ttl,
           "age": s.age(now), "options": s.options, "confirmed": s.confirmed}
    if s.disabled:
        doc["disabled"] = True
    return doc


def timestamp(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds (delivery log, dead letters)."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def delivery_attempt(a: DeliveryAttempt) -> dict[str, Any]:
    return {"job_id": a.job_id, "message_id": a.message_id, "attempt": a.attempt,
            "at": timestamp(a.at), "outcome": a.outcome, "status": a.status,
            "error": a.error, "latency_ms": a.latency_ms, "response": a.response}


def dead_letter(job: DeliveryJob) -> dict[str, Any]:
    return {"job_id": job.id, "message_id": job.message_id, "attempts": job.attempts,
            "created": timestamp(job.created)}


def next_links(path: str, page: Page, params: dict[str, Any]) -> list[dict[str, str]]:
    """Zaqar's ``links``: a next link whenever the page is non-empty."""
    if not page.items:
        return []
    query = dict(params)
    query["marker"] = page.next_marker
    return [{"rel": "next", "href": path + falcon.to_query_str(query)}]
