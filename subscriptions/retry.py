"""Retry schedules: Zaqar's ``_retry_policy``, validated and capped.

Zaqar's policy (zaqar-v2-api.md §5.4) has four phases after a failed first
attempt: ``retries_with_no_delay`` immediate retries, ``minimum_delay_retries``
retries ``minimum_delay`` apart, one retry per backoff step from
``minimum_delay`` towards ``maximum_delay``, then ``maximum_delay_retries``
retries ``maximum_delay`` apart. The backoff steps are computed exactly as
Zaqar computes them (so a policy means the same thing on both), but only
after validation: Zaqar divides by zero on ``maximum_delay - minimum_delay <
10`` and accepts schedules of hundreds of tries over weeks.

Everything here is pure: ``delay_for`` takes the random source, and
``retry_after_delay`` takes the current time.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import math
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from subscriptions.errors import InvalidRetryPolicy

RETRY_POLICY = "_retry_policy"
BACKOFF_FUNCTIONS = ("linear", "arithmetic", "geometric", "exponential")
# Zaqar's consts.LINEAR_INTERVAL: the step of every backoff function.
BACKOFF_STEP = 5
# Caps Zaqar lacks (dispatch.md §1.3): tries include the first attempt.
MAX_TRIES = 100
MAX_TOTAL_SECONDS = 3 * 24 * 3600
MIN_DELAY = 1
MIN_BACKOFF_STEPS = 2
JITTER = 0.2
# A 429/503 is overload: never retry it sooner than this (dispatch.md §1.3).
OVERLOAD_FLOOR = 60.0

_COUNT_KEYS = ("retries_with_no_delay", "minimum_delay_retries",
               "maximum_delay_retries")
_DELAY_KEYS = ("minimum_delay", "maximum_delay")


class Rng(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A validated policy; defaults are Zaqar's. ``delays[i]`` is the wait
    before retry ``i + 1`` (so ``len(delays) + 1`` tries in all).

    Constructing one validates it, so an invalid ``RetryPolicy`` cannot exist.
    """

    retries_with_no_delay: int = 3
    minimum_delay_retries: int = 3
    minimum_delay: int = 5
    maximum_delay: int = 30
    maximum_delay_retries: int = 3
    retry_backoff_function: str = "linear"
    ignore_subscription_override: bool = False
    delays: tuple[int, ...] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_ranges(self)
        delays = _schedule(self)
        if len(delays) + 1 > MAX_TRIES:
            raise InvalidRetryPolicy(
                f"_retry_policy allows at most {MAX_TRIES} tries in all, "
                f"this one makes {len(delays) + 1}.")
        if sum(delays) > MAX_TOTAL_SECONDS:
            raise InvalidRetryPolicy(
                f"_retry_policy may span at most {MAX_TOTAL_SECONDS} seconds, "
                f"this one spans {sum(delays)}.")
        object.__setattr__(self, "delays", delays)

    @property
    def max_tries(self) -> int:
        return len(self.delays) + 1

    @property
    def total_seconds(self) -> int:
        """Planned time from the first attempt to the last, before jitter."""
        return sum(self.delays)


def parse_retry_policy(raw: Any) -> RetryPolicy:
    """Validate a ``_retry_policy`` value from queue metadata or subscription
    options; missing keys take Zaqar's defaults, unknown keys are ignored
    (as Zaqar does). Raises ``InvalidRetryPolicy``."""
    if raw is None:
        return DEFAULT_POLICY
    if not isinstance(raw, Mapping):
        raise InvalidRetryPolicy("_retry_policy must be a dict.")
    values: dict[str, Any] = {}
    for key in _COUNT_KEYS + _DELAY_KEYS:
        if key in raw:
            values[key] = _int(key, raw[key])
    if "retry_backoff_function" in raw:
        function = raw["retry_backoff_function"]
        if not isinstance(function, str) or function not in BACKOFF_FUNCTIONS:
            raise InvalidRetryPolicy("invalid retry_backoff_function.")
        values["retry_backoff_function"] = function
    if "ignore_subscription_override" in raw:
        flag = raw["ignore_subscription_override"]
        if not isinstance(flag, bool):
            raise InvalidRetryPolicy("ignore_subscription_override must be a boolean.")
        values["ignore_subscription_override"] = flag
    return RetryPolicy(**values)


def effective_policy(queue_raw: Any, subscription_raw: Any) -> RetryPolicy:
    """Zaqar's precedence: the subscription's policy wins, unless either
    policy sets ``ignore_subscription_override``; then the queue's does.

    Both arguments are raw ``_retry_policy`` values (or None)."""
    queue = parse_retry_policy(queue_raw) if queue_raw is not None else None
    sub = (parse_retry_policy(subscription_raw)
           if subscription_raw is not None else None)
    if any(p is not None and p.ignore_subscription_override for p in (queue, sub)):
        return queue or DEFAULT_POLICY
    return sub or queue or DEFAULT_POLICY


def delay_for(policy: RetryPolicy, attempt: int, rng: Rng | None = None
              ) -> float | None:
    """Seconds to wait after ``attempt`` failed attempts (1 = the first
    attempt failed), with ±20 % jitter; None when the policy is exhausted."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if attempt > len(policy.delays):
        return None
    base = policy.delays[attempt - 1]
    return base * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def retry_after_delay(header_value: str | None, now: float, base: float,
                      *, floor: float = OVERLOAD_FLOOR) -> float:
    """The delay for a 429/503 reply, given its ``Retry-After`` header.

    The server's wish is clamped, as Svix does, to ``[low, 2 * low]`` where
    ``low = max(base, floor)``: never sooner than the schedule or the overload
    floor, and never so late that one reply can park the job for a day. A
    missing or unreadable header gives ``low``.
    """
    low = max(base, floor)
    wanted = parse_retry_after(header_value, now)
    if wanted is None:
        return low
    return min(max(wanted, low), 2 * low)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date
    (RFC 9110 §10.2.3). None if absent or malformed; past dates give 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)


# --- validation and the schedule -----------------------------------------


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRetryPolicy(f"{key} must be an integer.")
    return value


def _check_ranges(policy: RetryPolicy) -> None:
    for key in _COUNT_KEYS:
        if _int(key, getattr(policy, key)) < 0:
            raise InvalidRetryPolicy(f"{key} must not be negative.")
    minimum = _int("minimum_delay", policy.minimum_delay)
    maximum = _int("maximum_delay", policy.maximum_delay)
    if minimum < MIN_DELAY:
        raise InvalidRetryPolicy(f"minimum_delay must be at least {MIN_DELAY} second.")
    if maximum < minimum:
        raise InvalidRetryPolicy("maximum_delay must not be less than minimum_delay.")
    if (maximum - minimum) // BACKOFF_STEP < MIN_BACKOFF_STEPS:
        # Zaqar's own message; below two steps its backoff functions divide
        # by zero.
        raise InvalidRetryPolicy("invalid minimum_delay and maximum_delay.")
    if policy.retry_backoff_function not in BACKOFF_FUNCTIONS:
        raise InvalidRetryPolicy("invalid retry_backoff_function.")
    if not isinstance(policy.ignore_subscription_override, bool):
        raise InvalidRetryPolicy("ignore_subscription_override must be a boolean.")


def _schedule(policy: RetryPolicy) -> tuple[int, ...]:
    backoff = _BACKOFF[policy.retry_backoff_function](
        policy.minimum_delay, policy.maximum_delay, BACKOFF_STEP)
    return (
        (0,) * policy.retries_with_no_delay
        + (policy.minimum_delay,) * policy.minimum_delay_retries
        + tuple(backoff)
        + (policy.maximum_delay,) * policy.maximum_delay_retries
    )


# The four backoff functions reproduce Zaqar's notification/tasks/webhook.py
# results (including its int truncation); ``steps`` >= 2 is guaranteed by
# validation, which is what keeps them from dividing by zero.


def _linear(low: int, high: int, step: int) -> list[int]:
    return list(range(low, high, step))


def _ratio(low: int, high: int, steps: int) -> float:
    return math.pow(10, math.log10(high / low) / (steps - 1))


def _geometric(low: int, high: int, step: int) -> list[int]:
    steps = (high - low) // step
    k = _ratio(low, high, steps)
    return [int(low * math.pow(k, a - 1)) for a in range(1, steps + 1)]


def _exponential(low: int, high: int, step: int) -> list[int]:
    steps = (high - low) // step
    k = _ratio(low, high, steps)
    p = low / k
    return [int(p * math.pow(k, a)) for a in range(1, steps + 1)]


def _arithmetic(low: int, high: int, step: int) -> list[int]:
    steps = (high - low) // step
    d = 2.0 * (high - low) / (steps * (steps - 1))
    return [int(low + (a - 1) * a * d / 2) for a in range(1, steps + 1)]


_BACKOFF: dict[str, Callable[[int, int, int], list[int]]] = {
    "linear": _linear,
    "arithmetic": _arithmetic,
    "geometric": _geometric,
    "exponential": _exponential,
}


# Zaqar's defaults: 15 tries over about 3 minutes (well inside the caps).
DEFAULT_POLICY = RetryPolicy()
