"""The Authorization credential, and a full mint -> header -> verify pass."""

from __future__ import annotations

import os

import pytest

from signing import GrantSigner
from signing import InvalidToken
from signing import Key
from signing import KeyRing
from signing import KeyState
from signing import authorize
from signing import format_authorization
from signing import is_signed_scheme
from signing import parse_authorization
from signing import parse_credential

NOW = 1_700_000_000


def test_end_to_end_through_the_header():
    signer = GrantSigner(KeyRing([Key("k1", os.urandom(32), KeyState.ACTIVE)]))
    token, grant = signer.mint("proj1", "orders", ["post"], now=NOW)
    header = format_authorization(grant.kid, token)
    assert header.startswith("Signed k1:")
    kid, presented = parse_authorization(header)
    verified = signer.verify(kid, presented, now=NOW + 1)
    authorize(verified, "proj1", "orders", "post")
    with pytest.raises(InvalidToken):
        authorize(verified, "proj1", "orders", "read")


def test_scheme_is_case_insensitive():
    assert parse_authorization("signed k1:abc.def") == ("k1", "abc.def")
    assert parse_authorization("SIGNED k1:abc") == ("k1", "abc")


def test_token_may_contain_colons_after_the_first():
    assert parse_credential("k1:a:b") == ("k1", "a:b")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Signed",
        "Signed ",
        "Bearer k1:abc",
        "Signed k1abc",
        "Signed :abc",
        "Signed k1:",
        "Signed K1:abc",
        "Signed k1:ab c",
        "Signed  k1:abc",
        "Signed k1:abc\t",
        "Signed k1:tøken",
    ],
)
def test_malformed_headers(header):
    with pytest.raises(InvalidToken) as info:
        parse_authorization(header)
    assert info.value.reason == "malformed"


def test_oversized_header():
    with pytest.raises(InvalidToken) as info:
        parse_authorization("Signed k1:" + "a" * 5000)
    assert info.value.reason == "oversized"


def test_is_signed_scheme():
    assert is_signed_scheme("Signed k1:abc")
    assert is_signed_scheme("signed")
    assert not is_signed_scheme("Bearer xyz")
    assert not is_signed_scheme("SignedX k1:abc")
    assert not is_signed_scheme("")
    assert not is_signed_scheme("   ")
    assert not is_signed_scheme(None)


def test_format_refuses_bad_kid():
    with pytest.raises(ValueError):
        format_authorization("Bad Kid", "abc")
