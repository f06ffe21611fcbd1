"""Outcome classification (table) and the retry decision built on it."""

from __future__ import annotations

import pytest

from subscriptions import result as r
from subscriptions.classify import Outcome, classify, decide
from subscriptions.result import DeliveryResult
from subscriptions.retry import DEFAULT_POLICY

NOW = 1_800_000_000.0


class MidRng:
    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


@pytest.mark.parametrize("status, outcome, retry_after", [
    (200, Outcome.DELIVERED, False),
    (201, Outcome.DELIVERED, False),
    (202, Outcome.DELIVERED, False),
    (204, Outcome.DELIVERED, False),
    (299, Outcome.DELIVERED, False),
    (100, Outcome.FAILED, False),
    (301, Outcome.FAILED, False),
    (302, Outcome.FAILED, False),
    (304, Outcome.FAILED, False),
    (307, Outcome.FAILED, False),
    (308, Outcome.FAILED, False),
    (400, Outcome.FAILED, False),
    (401, Outcome.FAILED, False),
    (403, Outcome.FAILED, False),
    (404, Outcome.FAILED, False),
    (405, Outcome.FAILED, False),
    (413, Outcome.FAILED, False),
    (422, Outcome.FAILED, False),
    (408, Outcome.RETRY, False),
    (425, Outcome.RETRY, False),
    (429, Outcome.RETRY, True),
    (410, Outcome.DISABLED, False),
    (500, Outcome.RETRY, False),
    (501, Outcome.RETRY, False),
    (502, Outcome.RETRY, False),
    (503, Outcome.RETRY, True),
    (504, Outcome.RETRY, False),
    (599, Outcome.RETRY, False),
    (600, Outcome.FAILED, False),
    (999, Outcome.FAILED, False),
])
def test_status_table(status, outcome, retry_after):
    verdict = classify(DeliveryResult(status=status))
    assert verdict.outcome is outcome
    assert verdict.honour_retry_after is retry_after
    assert str(status) in verdict.reason


@pytest.mark.parametrize("error, outcome", [
    (r.TIMEOUT, Outcome.RETRY),
    (r.CONNECT, Outcome.RETRY),
    (r.DNS, Outcome.RETRY),
    (r.NETWORK, Outcome.RETRY),
    (r.PROTOCOL, Outcome.RETRY),
    (r.TLS, Outcome.RETRY),
    (r.SMTP_TRANSIENT, Outcome.RETRY),
    (r.SMTP_AUTH, Outcome.RETRY),
    (r.INTERNAL, Outcome.RETRY),
    ("something-new", Outcome.RETRY),
    (r.BLOCKED, Outcome.FAILED),
    (r.INVALID_REQUEST, Outcome.FAILED),
    (r.SMTP_REJECTED, Outcome.FAILED),
])
def test_error_table(error, outcome):
    assert classify(DeliveryResult(error=error)).outcome is outcome


def test_every_error_class_is_either_retryable_or_final():
    assert not r.RETRYABLE_ERRORS & r.FINAL_ERRORS


def test_error_wins_over_status():
    verdict = classify(DeliveryResult(status=200, error=r.TIMEOUT))
    assert verdict.outcome is Outcome.RETRY


def test_no_status_no_error_is_an_accepted_non_http_delivery():
    assert classify(DeliveryResult()).outcome is Outcome.DELIVERED


def test_outcome_values_match_the_delivery_log():
    assert {o.value for o in Outcome} == {
        "delivered", "retry", "failed", "dead", "disabled"}


# --- decide ---------------------------------------------------------------------


def test_decide_retry_follows_the_schedule():
    decision = decide(DeliveryResult(status=500), DEFAULT_POLICY, 4, NOW, MidRng())
    assert decision.outcome is Outcome.RETRY
    assert decision.delay == 5.0


def test_decide_dead_when_exhausted():
    decision = decide(DeliveryResult(error=r.TIMEOUT), DEFAULT_POLICY,
                      DEFAULT_POLICY.max_tries, NOW, MidRng())
    assert decision.outcome is Outcome.DEAD
    assert decision.delay is None


def test_decide_429_honours_retry_after_within_the_clamp():
    result = DeliveryResult(status=429, retry_after="90")
    assert decide(result, DEFAULT_POLICY, 1, NOW, MidRng()).delay == 90.0
    slow = DeliveryResult(status=503, retry_after="86400")
    assert decide(slow, DEFAULT_POLICY, 1, NOW, MidRng()).delay == 120.0


def test_decide_500_ignores_retry_after():
    result = DeliveryResult(status=500, retry_after="90")
    assert decide(result, DEFAULT_POLICY, 1, NOW, MidRng()).delay == 0.0


def test_decide_429_is_dead_when_exhausted_whatever_retry_after_says():
    result = DeliveryResult(status=429, retry_after="1")
    assert decide(result, DEFAULT_POLICY, 15, NOW).outcome is Outcome.DEAD


@pytest.mark.parametrize("result, outcome", [
    (DeliveryResult(status=204), Outcome.DELIVERED),
    (DeliveryResult(status=410), Outcome.DISABLED),
    (DeliveryResult(status=302), Outcome.FAILED),
    (DeliveryResult(error=r.BLOCKED), Outcome.FAILED),
])
def test_decide_terminal_outcomes_have_no_delay(result, outcome):
    decision = decide(result, DEFAULT_POLICY, 1, NOW)
    assert decision.outcome is outcome
    assert decision.delay is None
