"""Zaqar URL-Signature compatibility: the oracle test vector and its refusals."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from signing import GrantError
from signing import InvalidToken
from signing import parse_expires
from signing import verify_zaqar_headers
from signing import zaqar_path_allowed
from signing import zaqar_signature

# Produced by a real Zaqar server with [signed_url] secret_key = test-secret.
KEY = b"test-secret"
PATHS = ["/v2/queues/c1/claims", "/v2/queues/c1/messages"]
METHODS = ["GET", "POST"]
PROJECT = "proj1"
EXPIRES = "2026-11-25T15:02:01"
VECTOR = "d34a2c490931955fbfc5b94fe26bb9e86d5941e97542acb531ca7600c759621a"
BEFORE = datetime(2026, 11, 25, 15, 2, 0)


def test_test_vector():
    assert zaqar_signature(KEY, PATHS, METHODS, PROJECT, EXPIRES) == VECTOR


def test_vector_from_header_strings_unsorted_lists_and_str_key():
    assert zaqar_signature(KEY, ",".join(PATHS), "GET,POST", PROJECT, EXPIRES) == VECTOR
    paths, methods = list(reversed(PATHS)), ["POST", "GET"]
    assert zaqar_signature("test-secret", paths, methods, PROJECT, EXPIRES) == VECTOR
    assert paths == list(reversed(PATHS)) and methods == ["POST", "GET"]  # unmutated


@pytest.mark.parametrize(
    "expires",
    [
        datetime(2026, 11, 25, 15, 2, 1),
        datetime(2026, 11, 25, 15, 2, 1, 999_999),
        datetime(2026, 11, 25, 17, 2, 1, tzinfo=timezone(timedelta(hours=2))),
        "2026-11-25T15:02:01Z",
        "2026-11-25T15:02:01.654321+00:00",
        "2026-11-25T10:02:01-05:00",
    ],
)
def test_vector_with_equivalent_expiry_forms(expires):
    assert zaqar_signature(KEY, PATHS, METHODS, PROJECT, expires) == VECTOR


def test_separator_is_literal_backslash_n_not_newline():
    def mac(sep: str) -> str:
        body = sep.join([",".join(PATHS), ",".join(METHODS), PROJECT, EXPIRES])
        return hmac.new(KEY, body.encode(), hashlib.sha256).hexdigest()

    assert mac("\\n") == VECTOR
    assert mac("\n") != VECTOR


def test_project_none_is_the_text_none():
    body = "\\n".join([",".join(PATHS), ",".join(METHODS), "None", EXPIRES])
    expected = hmac.new(KEY, body.encode(), hashlib.sha256).hexdigest()
    assert zaqar_signature(KEY, PATHS, METHODS, None, EXPIRES) == expected
    assert expected != VECTOR


@pytest.mark.parametrize(
    "change",
    [
        {"paths": PATHS + ["/v2/queues/c1/subscriptions"]},
        {"paths": ["/v2/queues/c2/claims", "/v2/queues/c2/messages"]},
        {"methods": ["GET", "POST", "DELETE"]},
        {"project": "proj2"},
        {"expires": "2026-11-25T15:02:02"},
        {"key": b"test-secreT"},
    ],
)
def test_tampered_variants_change_the_signature(change):
    values = {
        "key": KEY,
        "paths": PATHS,
        "methods": METHODS,
        "project": PROJECT,
        "expires": EXPIRES,
    }
    values.update(change)
    assert zaqar_signature(**values) != VECTOR


def verify(**overrides) -> None:
    values = {
        "key": KEY,
        "signature": VECTOR,
        "paths": ",".join(PATHS),
        "methods": ",".join(METHODS),
        "project": PROJECT,
        "expires_str": EXPIRES,
        "now": BEFORE,
    }
    values.update(overrides)
    verify_zaqar_headers(**values)


def test_verify_headers_accepts_the_vector():
    verify()
    verify(now=BEFORE.replace(tzinfo=timezone.utc))
    verify(now=BEFORE.replace(tzinfo=timezone.utc).timestamp())
    verify(paths=PATHS, methods=["POST", "GET"])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"signature": VECTOR[:-1] + "b"}, "bad_signature"),
        ({"signature": VECTOR.upper()}, "bad_signature"),
        ({"signature": VECTOR + "00"}, "bad_signature"),
        ({"methods": "GET,POST,DELETE"}, "bad_signature"),
        ({"paths": "/v2/queues/c1/messages"}, "bad_signature"),
        ({"project": "proj2"}, "bad_signature"),
        ({"expires_str": "2026-11-25T16:02:01"}, "bad_signature"),
        ({"key": b"another-key"}, "bad_signature"),
        ({"signature": ""}, "malformed"),
        ({"signature": None}, "malformed"),
        ({"signature": "é" * 64}, "malformed"),
        ({"project": None}, "malformed"),
        ({"project": ""}, "malformed"),
        ({"paths": ""}, "malformed"),
        ({"methods": None}, "malformed"),
        ({"methods": "GET,"}, "malformed"),
        ({"expires_str": None}, "malformed"),
        ({"expires_str": "1795791721"}, "malformed"),
        ({"expires_str": "next tuesday"}, "malformed"),
        ({"now": datetime(2026, 11, 25, 15, 2, 1)}, "expired"),
        ({"now": datetime(2027, 1, 1)}, "expired"),
        ({"max_lifetime": 0}, "lifetime"),
    ],
)
def test_verify_headers_refusals(overrides, reason):
    with pytest.raises(InvalidToken) as info:
        verify(**overrides)
    assert info.value.reason == reason
    assert str(info.value) == "invalid token"


def test_max_lifetime_counts_from_now():
    verify(max_lifetime=1)
    with pytest.raises(InvalidToken):
        verify(max_lifetime=1, now=BEFORE - timedelta(seconds=1))


def test_compare_is_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verify()
    assert calls == [(VECTOR.encode(), VECTOR.encode())]


# --- parse_expires -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-25T15:02:01", datetime(2026, 11, 25, 15, 2, 1)),
        ("2026-11-25T15:02:01Z", datetime(2026, 11, 25, 15, 2, 1)),
        ("2026-11-25t15:02:01z", datetime(2026, 11, 25, 15, 2, 1)),
        ("2026-11-25 15:02:01", datetime(2026, 11, 25, 15, 2, 1)),
        ("2026-11-25T17:02:01+02:00", datetime(2026, 11, 25, 15, 2, 1)),
        ("2026-11-25T09:32:01-0530", datetime(2026, 11, 25, 15, 2, 1)),
        ("2026-11-25T16:02:01+01", datetime(2026, 11, 25, 15, 2, 1)),
        ("2026-11-25T15:02:01.123456", datetime(2026, 11, 25, 15, 2, 1, 123456)),
        ("2026-11-25T15:02:01.5", datetime(2026, 11, 25, 15, 2, 1, 500000)),
        ("2026-11-25T15:02:01.123456789Z", datetime(2026, 11, 25, 15, 2, 1, 123456)),
        ("2026-11-25T23:30:00-01:00", datetime(2026, 11, 26, 0, 30)),
        ("2026-11-25T15:02", datetime(2026, 11, 25, 15, 2)),
        ("2026-11-25", datetime(2026, 11, 25)),
    ],
)
def test_parse_expires_accepts(value, expected):
    parsed = parse_expires(value)
    assert parsed == expected
    assert parsed.tzinfo is None


@pytest.mark.parametrize("value", ["3600", "12345", "20261125", "1795791721"])
def test_parse_expires_refuses_integer_strings(value):
    with pytest.raises(GrantError, match="not integer value"):
        parse_expires(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "tomorrow",
        "2026-13-01T00:00:00",
        "2026-02-30T00:00:00",
        "2026-11-25T25:00:00",
        "2026-11-25T15:02:01+24:00",
        "2026-11-25T15:02:01 +02:00",
        "2026-W48-3",
        " 2026-11-25T15:02:01",
        "2026-11-25T15:02:01\n",
        "٢٠٢٦-١١-٢٥T15:02:01",
        "0001-01-01T00:00:00+01:00",
        None,
        1795791721,
    ],
)
def test_parse_expires_refuses(value):
    with pytest.raises(GrantError):
        parse_expires(value)


# --- path matching for the URL-Paths header ----------------------------------


@pytest.mark.parametrize(
    ("request_path", "allowed"),
    [
        ("/v2/queues/a.b/messages", True),
        ("/v2/queues/a.b/messages/5f1c", True),
        ("/v2/queues/a.b/claims/abc", True),
        ("/v2/queues/aXb/messages", False),
        ("/v2/queues/a_b/messages", False),
        ("/v2/queues/a.bc/messages", False),
        ("/v2/queues/a.b/messagesX", False),
        ("/v2/queues/a.b/subscriptions", False),
        ("/v2/queues/a.b/messages/../../c/messages", False),
        ("/v2/queues/a.b/messages/./x", False),
        ("/v2/queues/a.b/messages//x", False),
        ("/v2/queues/a.b/messages/", False),
        ("v2/queues/a.b/messages", False),
        ("/prefix/v2/queues/a.b/messages", False),
    ],
)
def test_zaqar_path_allowed(request_path, allowed):
    granted = "/v2/queues/a.b/messages,/v2/queues/a.b/claims"
    assert zaqar_path_allowed(granted, request_path) is allowed
