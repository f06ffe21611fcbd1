"""Retry policy parsing, validation, caps, schedule, jitter and Retry-After."""

from __future__ import annotations

import email.utils
import random

import pytest

from queues.errors import InvalidInput
from subscriptions.errors import InvalidRetryPolicy
from subscriptions.retry import (
    DEFAULT_POLICY, MAX_TOTAL_SECONDS, RetryPolicy, delay_for, effective_policy,
    parse_retry_after, parse_retry_policy, retry_after_delay,
)

NOW = 1_800_000_000.0


class FixedRng:
    """``uniform`` returns the point ``t`` of the way from a to b."""

    def __init__(self, t: float) -> None:
        self.t = t

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.t


MID, LOW, HIGH = FixedRng(0.5), FixedRng(0.0), FixedRng(1.0)


# --- Zaqar compatibility ------------------------------------------------------


def test_default_policy_is_zaqars_schedule():
    assert DEFAULT_POLICY == parse_retry_policy({}) == parse_retry_policy(None)
    assert DEFAULT_POLICY.delays == (0, 0, 0, 5, 5, 5, 5, 10, 15, 20, 25, 30, 30, 30)
    assert DEFAULT_POLICY.max_tries == 15
    assert DEFAULT_POLICY.total_seconds == 180


@pytest.mark.parametrize("function, steps", [
    ("linear", [5, 10, 15, 20, 25]),
    ("arithmetic", [5, 7, 12, 20, 30]),
    ("geometric", [5, 7, 12, 19, 30]),
    ("exponential", [5, 7, 12, 19, 30]),
])
def test_backoff_steps_match_zaqar(function, steps):
    policy = parse_retry_policy({"retry_backoff_function": function,
                                 "retries_with_no_delay": 0,
                                 "minimum_delay_retries": 0,
                                 "maximum_delay_retries": 0})
    assert list(policy.delays) == steps


def test_phases_in_order():
    policy = parse_retry_policy({
        "retries_with_no_delay": 1, "minimum_delay_retries": 2,
        "minimum_delay": 10, "maximum_delay": 20, "maximum_delay_retries": 1,
    })
    assert policy.delays == (0, 10, 10, 10, 15, 20)


def test_unknown_keys_are_ignored_like_zaqar():
    assert parse_retry_policy({"future_knob": 1}) == DEFAULT_POLICY


def test_ignore_subscription_override_is_kept():
    assert parse_retry_policy({"ignore_subscription_override": True}
                              ).ignore_subscription_override


# --- validation -----------------------------------------------------------------


@pytest.mark.parametrize("raw, message", [
    ([], "must be a dict"),
    ("linear", "must be a dict"),
    ({"minimum_delay": 0}, "minimum_delay must be at least 1"),
    ({"minimum_delay": -5}, "minimum_delay must be at least 1"),
    ({"minimum_delay": 40, "maximum_delay": 30}, "not be less than minimum_delay"),
    ({"minimum_delay": 5, "maximum_delay": 10}, "invalid minimum_delay and maximum"),
    ({"minimum_delay": 5, "maximum_delay": 14}, "invalid minimum_delay and maximum"),
    ({"minimum_delay": "5"}, "minimum_delay must be an integer"),
    ({"maximum_delay": 30.0}, "maximum_delay must be an integer"),
    ({"retries_with_no_delay": True}, "retries_with_no_delay must be an integer"),
    ({"maximum_delay_retries": None}, "maximum_delay_retries must be an integer"),
    ({"minimum_delay_retries": -1}, "must not be negative"),
    ({"retry_backoff_function": "fibonacci"}, "invalid retry_backoff_function"),
    ({"retry_backoff_function": 1}, "invalid retry_backoff_function"),
    ({"ignore_subscription_override": "yes"}, "must be a boolean"),
    ({"retries_with_no_delay": 100}, "at most 100 tries"),
    # Zaqar would accept this: 720 linear steps over about 15 days.
    ({"minimum_delay": 1, "maximum_delay": 3600}, "at most 100 tries"),
    ({"minimum_delay": 1, "maximum_delay": 86400, "retries_with_no_delay": 0,
      "minimum_delay_retries": 0, "retry_backoff_function": "geometric"},
     "at most 100 tries"),
    ({"maximum_delay": 86400, "minimum_delay": 86380, "maximum_delay_retries": 0,
      "minimum_delay_retries": 0}, "may span at most 259200 seconds"),
])
def test_invalid_policies_are_refused(raw, message):
    with pytest.raises(InvalidRetryPolicy, match=message) as info:
        parse_retry_policy(raw)
    assert isinstance(info.value, InvalidInput)  # the API answers 400


def test_direct_construction_validates_too():
    with pytest.raises(InvalidRetryPolicy):
        RetryPolicy(minimum_delay=0)


def test_exactly_100_tries_is_accepted():
    policy = parse_retry_policy({"retries_with_no_delay": 88})
    assert policy.max_tries == 100
    with pytest.raises(InvalidRetryPolicy):
        parse_retry_policy({"retries_with_no_delay": 89})


def three_day_policy(minimum: int) -> dict:
    # Delays: minimum, minimum + 5 (linear steps), minimum + 10 (one max retry).
    return {"retries_with_no_delay": 0, "minimum_delay_retries": 0,
            "minimum_delay": minimum, "maximum_delay": minimum + 10,
            "maximum_delay_retries": 1}


def test_exactly_three_days_is_accepted():
    policy = parse_retry_policy(three_day_policy(86395))
    assert policy.delays == (86395, 86400, 86405)
    assert policy.total_seconds == MAX_TOTAL_SECONDS
    with pytest.raises(InvalidRetryPolicy, match="259200 seconds"):
        parse_retry_policy(three_day_policy(86396))


# --- precedence -------------------------------------------------------------------

QUEUE = {"retries_with_no_delay": 1}
SUB = {"retries_with_no_delay": 2}


@pytest.mark.parametrize("queue, sub, expected", [
    (None, None, 3),
    (QUEUE, None, 1),
    (None, SUB, 2),
    (QUEUE, SUB, 2),
    ({**QUEUE, "ignore_subscription_override": True}, SUB, 1),
    (QUEUE, {**SUB, "ignore_subscription_override": True}, 1),
    (None, {**SUB, "ignore_subscription_override": True}, 3),
])
def test_effective_policy_precedence(queue, sub, expected):
    assert effective_policy(queue, sub).retries_with_no_delay == expected


# --- delays and jitter --------------------------------------------------------


def test_delay_for_walks_the_schedule_then_stops():
    got = [delay_for(DEFAULT_POLICY, n, MID) for n in range(1, 16)]
    assert got == [*map(float, DEFAULT_POLICY.delays), None]


def test_jitter_is_plus_minus_twenty_percent():
    assert delay_for(DEFAULT_POLICY, 14, LOW) == pytest.approx(24.0)
    assert delay_for(DEFAULT_POLICY, 14, HIGH) == pytest.approx(36.0)
    assert delay_for(DEFAULT_POLICY, 1, HIGH) == 0.0  # immediate stays immediate


def test_jitter_with_a_real_rng_stays_in_bounds():
    rng = random.Random(7)
    samples = [delay_for(DEFAULT_POLICY, 12, rng) for _ in range(500)]
    assert all(24.0 <= s <= 36.0 for s in samples)
    assert max(samples) - min(samples) > 8  # actually spread


def test_delay_for_counts_attempts_from_one():
    with pytest.raises(ValueError):
        delay_for(DEFAULT_POLICY, 0)


# --- Retry-After --------------------------------------------------------------------


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


@pytest.mark.parametrize("value, expected", [
    (None, None),
    ("120", 120.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("-5", None),
    ("1.5", None),
    ("soon", None),
    ("", None),
    (http_date(NOW + 90), 90.0),
    (http_date(NOW - 90), 0.0),
    ("Sun, 06 Nov 1994 08:49:37", 0.0),  # no zone: read as UTC, in the past
])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize("header, base, expected", [
    (None, 5.0, 60.0),          # overload floor without a header
    ("garbage", 5.0, 60.0),
    ("30", 5.0, 60.0),          # sooner than the floor: raised
    ("90", 5.0, 90.0),          # inside [60, 120]: honoured
    ("3600", 5.0, 120.0),       # a day's wish is clamped to 2 x low
    ("100", 300.0, 300.0),      # never sooner than the schedule
    ("500", 300.0, 500.0),
    ("9999", 300.0, 600.0),
    (http_date(NOW + 100), 5.0, 100.0),
])
def test_retry_after_delay_is_clamped(header, base, expected):
    assert retry_after_delay(header, NOW, base) == pytest.approx(expected)


def test_retry_after_floor_is_configurable():
    assert retry_after_delay("3", NOW, 1.0, floor=0.0) == 2.0
