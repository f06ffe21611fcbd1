"""What a delivery result means: delivered, retry, failed or disable.

The table (dispatch.md §1.3, CloudEvents and Standard Webhooks):

* 2xx: delivered;
* timeout, connection error, 5xx, 408, 425, 429: retry on the schedule, and
  429/503 also honour ``Retry-After`` (see ``retry.retry_after_delay``);
* 410 Gone: disable the subscription;
* 3xx: failed. Redirects are never followed, and retrying gets the same 3xx;
* any other status (other 4xx, 1xx, nonsense): failed, final.

``decide`` combines the verdict with the retry policy into the outcome the
dispatcher records: a retry whose policy is exhausted becomes ``dead``.
"""

from __future__ import annotations

import dataclasses
import enum

from subscriptions import result as r
from subscriptions.result import DeliveryResult
from subscriptions.retry import Rng, RetryPolicy, delay_for, retry_after_delay

RETRYABLE_STATUSES = frozenset({408, 425, 429})
RETRY_AFTER_STATUSES = frozenset({429, 503})
GONE = 410


class Outcome(enum.StrEnum):
    """Values match ``DeliveryAttempt.outcome``."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    DEAD = "dead"
    DISABLED = "disabled"


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str
    honour_retry_after: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The dispatcher's next step; ``delay`` is set only for ``RETRY``."""

    outcome: Outcome
    reason: str
    delay: float | None = None


def classify(result: DeliveryResult) -> Verdict:
    if result.error is not None:
        return classify_error(result.error)
    if result.status is None:
        return Verdict(Outcome.DELIVERED, "accepted")
    return classify_status(result.status)


def classify_status(status: int) -> Verdict:
    if 200 <= status <= 299:
        return Verdict(Outcome.DELIVERED, f"HTTP {status}")
    if status == GONE:
        return Verdict(Outcome.DISABLED, "HTTP 410: the subscriber is gone")
    if status in RETRYABLE_STATUSES or 500 <= status <= 599:
        return Verdict(Outcome.RETRY, f"HTTP {status}",
                       honour_retry_after=status in RETRY_AFTER_STATUSES)
    if 300 <= status <= 399:
        return Verdict(Outcome.FAILED, f"HTTP {status}: redirects are not followed")
    return Verdict(Outcome.FAILED, f"HTTP {status}")


def classify_error(error: str) -> Verdict:
    """Final errors fail; everything else (including classes this module
    does not know) is retried, bounded by the policy, so nothing is dropped
    on a surprise."""
    if error in r.FINAL_ERRORS:
        return Verdict(Outcome.FAILED, error)
    return Verdict(Outcome.RETRY, error)


def decide(result: DeliveryResult, policy: RetryPolicy, attempt: int, now: float,
           rng: Rng | None = None) -> Decision:
    """Classify ``result`` of attempt number ``attempt`` (from 1) and, for a
    retry, plan the delay: the jittered schedule, stretched by a 429/503's
    ``Retry-After``; ``DEAD`` once the schedule is exhausted."""
    verdict = classify(result)
    if verdict.outcome is not Outcome.RETRY:
        return Decision(verdict.outcome, verdict.reason)
    delay = delay_for(policy, attempt, rng)
    if delay is None:
        return Decision(Outcome.DEAD, f"{verdict.reason}; retries exhausted")
    if verdict.honour_retry_after:
        delay = retry_after_delay(result.retry_after, now, delay)
    return Decision(Outcome.RETRY, verdict.reason, delay)
