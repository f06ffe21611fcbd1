"""Minting and verifying grant tokens: round trip, every refusal, rotation.

Clocks are explicit (``now=``); where a token is forged with plain itsdangerous
(whose timestamp comes from ``time.time``) the clock is frozen with
time-machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer

from signing import HARD_MAX_TTL
from signing import QUEUE_GRANT_SALT
from signing import SUBSCRIPTION_CONFIRM_SALT
from signing import Grant
from signing import GrantError
from signing import GrantSigner
from signing import InvalidToken
from signing import Key
from signing import KeyRing
from signing import KeyState
from signing import Operation
from signing import SigningConfigError

NOW = 1_700_000_000
SECRET_1 = os.urandom(32)
SECRET_2 = os.urandom(32)


def ring(*keys: tuple[str, bytes, str]) -> KeyRing:
    return KeyRing(Key(kid, secret, KeyState(state)) for kid, secret, state in keys)


@pytest.fixture
def signer() -> GrantSigner:
    return GrantSigner(ring(("k1", SECRET_1, "active")))


def reason(excinfo: pytest.ExceptionInfo[InvalidToken]) -> str:
    return excinfo.value.reason


def forge(claims: object, *, secret: bytes = SECRET_1, at: int = NOW, **kw) -> str:
    """Sign arbitrary claims with plain itsdangerous and the documented settings."""
    serializer = URLSafeTimedSerializer(
        secret,
        salt=kw.get("salt", QUEUE_GRANT_SALT),
        signer_kwargs={
            "digest_method": kw.get("digest", hashlib.sha256),
            "key_derivation": "hmac",
        },
    )
    with time_machine.travel(at, tick=False):
        return serializer.dumps(claims)


def good_claims(**changes: object) -> dict:
    claims = {
        "v": 1,
        "kid": "k1",
        "jti": "AAAAAAAAAAAAAAAAAAAAAA",
        "p": "proj1",
        "q": "orders",
        "ops": ["post", "read"],
        "exp": NOW + 3600,
        "gen": 0,
        "ot": False,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not ...}


# --- round trip ----------------------------------------------------------------


def test_round_trip(signer):
    token, grant = signer.mint(
        "proj1",
        "a.b",
        ["read", "post"],
        now=NOW,
        ttl=600,
        not_before=NOW + 10,
        cidrs=["10.0.0.0/8"],
        gen=4,
        one_time=True,
    )
    assert grant.iat == NOW
    assert grant.exp == NOW + 600
    assert grant.ops == {Operation.READ, Operation.POST}
    assert grant.kid == "k1"
    verified = signer.verify("k1", token, now=NOW + 10)
    assert verified == grant
    assert (verified.project, verified.queue) == ("proj1", "a.b")
    assert (verified.gen, verified.one_time, verified.nbf) == (4, True, NOW + 10)
    assert verified.cidrs == ("10.0.0.0/8",)


def test_default_ttl_and_float_clock(signer):
    token, grant = signer.mint("p", "q", ["read"], now=NOW + 0.9)
    assert grant.iat == NOW
    assert grant.exp == NOW + 3600
    assert signer.verify("k1", token, now=NOW + 3599.5) == grant


def test_wire_format_is_plain_itsdangerous_sha256_with_short_claims(signer):
    token, grant = signer.mint("p", "q", ["read", "claim"], now=NOW)
    payload, timestamp, signature = token.rsplit(".", 2)
    assert len(signature) == 43  # SHA-256; SHA-1 would be 27 characters
    plain = URLSafeTimedSerializer(
        SECRET_1,
        salt=QUEUE_GRANT_SALT,
        signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"},
    )
    claims, signed_at = plain.loads(token, return_timestamp=True)
    assert int(signed_at.timestamp()) == NOW
    assert claims == {
        "v": 1,
        "kid": "k1",
        "jti": grant.jti,
        "p": "p",
        "q": "q",
        "ops": ["claim", "read"],
        "exp": NOW + 3600,
        "gen": 0,
        "ot": False,
    }


def test_optional_claims_appear_only_when_set(signer):
    token, _ = signer.mint(
        "p", "q", ["read"], now=NOW, not_before=NOW, cidrs=["2001:db8::/32"]
    )
    plain = URLSafeTimedSerializer(
        SECRET_1,
        salt=QUEUE_GRANT_SALT,
        signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"},
    )
    claims = plain.loads(token)
    assert claims["nbf"] == NOW
    assert claims["cidr"] == ["2001:db8::/32"]


def test_jti_is_128_bit_random(signer):
    jtis = {signer.mint("p", "q", ["read"], now=NOW)[1].jti for _ in range(50)}
    assert len(jtis) == 50
    for jti in jtis:
        assert len(base64.urlsafe_b64decode(jti + "==")) == 16


# --- time refusals -----------------------------------------------------------


def test_expired_at_exp_exactly(signer):
    token, grant = signer.mint("p", "q", ["read"], now=NOW, ttl=60)
    signer.verify("k1", token, now=grant.exp - 1)
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=grant.exp)
    assert reason(info) == "expired"
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=grant.exp + 10_000)
    assert reason(info) == "expired"


def test_not_yet_valid_respects_leeway(signer):
    token, _ = signer.mint("p", "q", ["read"], now=NOW, not_before=NOW + 600)
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=NOW)
    assert reason(info) == "not_yet_valid"
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=NOW + 569)
    assert reason(info) == "not_yet_valid"
    signer.verify("k1", token, now=NOW + 570)  # 30 s leeway
    with pytest.raises(InvalidToken):
        signer.verify("k1", token, now=NOW + 570, leeway=0)
    signer.verify("k1", token, now=NOW + 600, leeway=0)


def test_iat_in_future_beyond_leeway(signer):
    # Minted on a node whose clock runs ahead of the verifier's.
    token, _ = signer.mint("p", "q", ["read"], now=NOW + 31)
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=NOW)
    assert reason(info) == "issued_in_future"
    signer.verify("k1", token, now=NOW + 1)


@pytest.mark.parametrize("minted_at, not_before, ttl, max_ttl", [
    (NOW, None, 60, 3600),           # plain
    (NOW + 31, None, 60, 3600),      # issued "in the future" (clock skew)
    (NOW, NOW + 40, 60, 3600),       # not before, inside the leeway at first
    (NOW, NOW + 5, 20, 3600),        # nbf close to exp
    (NOW, None, 601, 600),           # lifetime over the verifier's cap: never
])
def test_valid_window_is_check_times(signer, minted_at, not_before, ttl, max_ttl):
    """``start <= now < end`` decides exactly as check_times, for int and
    float clocks, second by second around every edge."""
    _, grant = signer.mint("p", "q", ["read"], now=minted_at, ttl=ttl,
                           not_before=not_before)
    verifier = GrantSigner(ring(("k1", SECRET_1, "active")), max_ttl=max_ttl,
                           default_ttl=min(60, max_ttl))
    start, end = verifier.valid_window(grant)
    for second in range(NOW - 60, NOW + 120):
        for now in (second, second + 0.25, second - 0.25):
            try:
                verifier.check_times(grant, now=now)
                accepted = True
            except InvalidToken:
                accepted = False
            assert (start <= now < end) == accepted, now
    assert (start < end) == (max_ttl >= ttl)


def test_lifetime_over_hard_cap_refused_even_if_validly_signed():
    signer = GrantSigner(ring(("k1", SECRET_1, "active")), max_ttl=HARD_MAX_TTL)
    ok = forge(good_claims(exp=NOW + HARD_MAX_TTL))
    assert signer.verify("k1", ok, now=NOW).exp == NOW + HARD_MAX_TTL
    token = forge(good_claims(exp=NOW + HARD_MAX_TTL + 1))
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=NOW)
    assert reason(info) == "lifetime"


def test_lifetime_uses_the_configured_cap(signer):
    short = GrantSigner(ring(("k1", SECRET_1, "active")), max_ttl=600, default_ttl=60)
    token, _ = signer.mint("p", "q", ["read"], now=NOW, ttl=601)
    with pytest.raises(InvalidToken) as info:
        short.verify("k1", token, now=NOW)
    assert reason(info) == "lifetime"
    token, _ = signer.mint("p", "q", ["read"], now=NOW, ttl=600)
    short.verify("k1", token, now=NOW)


# --- signature and key refusals ---------------------------------------------


def test_wrong_key_same_kid(signer):
    token, _ = signer.mint("p", "q", ["read"], now=NOW)
    other = GrantSigner(ring(("k1", SECRET_2, "active")))
    with pytest.raises(InvalidToken) as info:
        other.verify("k1", token, now=NOW)
    assert reason(info) == "bad_signature"


def test_wrong_purpose_salt(signer):
    token, _ = signer.mint("p", "q", ["read"], now=NOW)
    confirm = GrantSigner(
        ring(("k1", SECRET_1, "active")), salt=SUBSCRIPTION_CONFIRM_SALT
    )
    with pytest.raises(InvalidToken) as info:
        confirm.verify("k1", token, now=NOW)
    assert reason(info) == "bad_signature"


def test_sha1_token_with_right_secret_is_refused(signer):
    token = forge(good_claims(), digest=hashlib.sha1)
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=NOW)
    assert reason(info) == "bad_signature"
    assert signer.verify("k1", forge(good_claims()), now=NOW).queue == "orders"


def test_tampered_payload(signer):
    token, _ = signer.mint("p", "orders", ["read"], now=NOW)
    payload, timestamp, signature = token.rsplit(".", 2)
    body = payload.lstrip(".")  # a leading "." marks a zlib-compressed payload
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    claims = json.loads(zlib.decompress(raw) if payload.startswith(".") else raw)
    assert claims["q"] == "orders"
    claims["q"] = "payroll"
    claims["ops"] = ["delete", "read"]
    edited = json.dumps(claims, separators=(",", ":")).encode()
    forged_payload = base64.urlsafe_b64encode(edited).rstrip(b"=").decode()
    forged = f"{forged_payload}.{timestamp}.{signature}"
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", forged, now=NOW)
    assert reason(info) == "bad_signature"


def test_tampered_signature(signer):
    token, _ = signer.mint("p", "q", ["read"], now=NOW)
    head, signature = token.rsplit(".", 1)
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    forged = f"{head}.{signature[:middle]}{flipped}{signature[middle + 1:]}"
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", forged, now=NOW)
    assert reason(info) == "bad_signature"


def test_tampered_timestamp(signer):
    token, _ = signer.mint("p", "q", ["read"], now=NOW)
    payload, _, signature = token.rsplit(".", 2)
    later = base64.urlsafe_b64encode((NOW + 3000).to_bytes(4, "big")).rstrip(b"=")
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", f"{payload}.{later.decode()}.{signature}", now=NOW)
    assert reason(info) == "bad_signature"


def test_unknown_kid(signer):
    token, _ = signer.mint("p", "q", ["read"], now=NOW)
    with pytest.raises(InvalidToken) as info:
        signer.verify("k9", token, now=NOW)
    assert reason(info) == "unknown_kid"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("", "malformed"),
        ("tøken.abc.def", "malformed"),
        (None, "malformed"),
        ("x" * 2049, "oversized"),
        ("no-separators-at-all", "bad_signature"),
        ("a.b.c", "bad_signature"),
    ],
)
def test_garbage_tokens(signer, token, expected):
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=NOW)
    assert reason(info) == expected


def test_length_cap_applies_before_key_lookup(signer):
    with pytest.raises(InvalidToken) as info:
        signer.verify("unknown", "x" * 2049, now=NOW)
    assert reason(info) == "oversized"


@pytest.mark.parametrize("kid", ["K1", "k-1", "", "k" * 17, None])
def test_malformed_kid(signer, kid):
    token, _ = signer.mint("p", "q", ["read"], now=NOW)
    with pytest.raises(InvalidToken) as info:
        signer.verify(kid, token, now=NOW)
    assert reason(info) == "malformed"


# --- strict schema (validly signed, still refused) ---------------------------


@pytest.mark.parametrize(
    "claims",
    [
        good_claims(admin=True),
        good_claims(gen=...),
        good_claims(ot=...),
        good_claims(v=2),
        good_claims(v=True),
        good_claims(exp=True),
        good_claims(exp=str(NOW + 60)),
        good_claims(exp=NOW - 5),
        good_claims(gen=-1),
        good_claims(ot=1),
        good_claims(ops=["read", "post"]),
        good_claims(ops=["read", "read"]),
        good_claims(ops=["purge"]),
        good_claims(ops=[]),
        good_claims(ops="read"),
        good_claims(ops=[{"x": 1}]),
        good_claims(p=""),
        good_claims(q="bad\nname"),
        good_claims(jti="short"),
        good_claims(nbf=None),
        good_claims(cidr=[]),
        good_claims(cidr=["10.0.0.1/8"]),
        good_claims(cidr=["0.0.0.0/0"]),
        good_claims(cidr=["192.168.0.0/16", "10.0.0.0/8"]),
        ["not", "a", "dict"],
        "a string",
    ],
)
def test_strict_schema(signer, claims):
    token = forge(claims)
    with pytest.raises(InvalidToken) as info:
        signer.verify("k1", token, now=NOW)
    assert reason(info) == "malformed"


def test_kid_claim_must_equal_presented_kid():
    both = GrantSigner(ring(("k1", SECRET_1, "active"), ("k2", SECRET_1, "verify")))
    token = forge(good_claims(kid="k2"))
    with pytest.raises(InvalidToken) as info:
        both.verify("k1", token, now=NOW)
    assert reason(info) == "kid_mismatch"
    assert both.verify("k2", token, now=NOW).kid == "k2"


# --- rotation ----------------------------------------------------------------


def test_rotation_verify_then_retire():
    before = GrantSigner(ring(("k1", SECRET_1, "active")))
    old_token, _ = before.mint("p", "q", ["read"], now=NOW)

    during = GrantSigner(ring(("k2", SECRET_2, "active"), ("k1", SECRET_1, "verify")))
    assert during.verify("k1", old_token, now=NOW + 5).kid == "k1"
    new_token, new_grant = during.mint("p", "q", ["read"], now=NOW + 5)
    assert new_grant.kid == "k2"
    assert during.verify("k2", new_token, now=NOW + 5) == new_grant
    # The new key's token does not verify under the old kid.
    with pytest.raises(InvalidToken) as info:
        during.verify("k1", new_token, now=NOW + 5)
    assert reason(info) == "bad_signature"

    after = GrantSigner(ring(("k2", SECRET_2, "active"), ("k1", SECRET_1, "retired")))
    with pytest.raises(InvalidToken) as info:
        after.verify("k1", old_token, now=NOW + 10)
    assert reason(info) == "retired_kid"
    assert after.verify("k2", new_token, now=NOW + 10) == new_grant


# --- uniform refusals --------------------------------------------------------


def test_refusals_are_indistinguishable_outside_reason(signer):
    token, _ = signer.mint("p", "q", ["read"], now=NOW, ttl=60)
    attempts = [
        lambda: signer.verify("k1", token, now=NOW + 60),
        lambda: signer.verify("k9", token, now=NOW),
        lambda: signer.verify("k1", token[:-3] + "abc", now=NOW),
        lambda: signer.verify("k1", "x" * 4000, now=NOW),
    ]
    seen = set()
    for attempt in attempts:
        with pytest.raises(InvalidToken) as info:
            attempt()
        seen.add(info.value.reason)
        assert str(info.value) == "invalid token"
        assert token not in repr(info.value)
        # No itsdangerous exception (it quotes attacker bytes) rides along.
        assert info.value.__cause__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__
    assert len(seen) == 4


# --- mint validation ---------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True, "3600", 86401])
def test_mint_refuses_bad_ttl(signer, ttl):
    with pytest.raises(GrantError, match="ttl"):
        signer.mint("p", "q", ["read"], now=NOW, ttl=ttl)


def test_mint_ttl_caps(signer):
    assert signer.mint("p", "q", ["read"], now=NOW, ttl=86400)[1].exp == NOW + 86400
    week = GrantSigner(ring(("k1", SECRET_1, "active")), max_ttl=HARD_MAX_TTL)
    week.mint("p", "q", ["read"], now=NOW, ttl=HARD_MAX_TTL)
    with pytest.raises(GrantError):
        week.mint("p", "q", ["read"], now=NOW, ttl=HARD_MAX_TTL + 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_ttl": HARD_MAX_TTL + 1},
        {"max_ttl": 0},
        {"default_ttl": 7200, "max_ttl": 3600},
        {"default_ttl": 0},
        {"leeway": -1},
        {"leeway": 3600},
        {"salt": ""},
        {"max_token_length": 10},
    ],
)
def test_signer_config_refused(kwargs):
    with pytest.raises(SigningConfigError):
        GrantSigner(ring(("k1", SECRET_1, "active")), **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("p", "q", ["purge"]), {}),
        (("p", "q", []), {}),
        (("p", "q", "read"), {}),
        (("", "q", ["read"]), {}),
        (("p", "", ["read"]), {}),
        (("p", "q\x00", ["read"]), {}),
        (("p", "q" * 257, ["read"]), {}),
        (("p", "q", ["read"]), {"not_before": NOW + 3600}),
        (("p", "q", ["read"]), {"gen": -1}),
        (("p", "q", ["read"]), {"gen": True}),
        (("p", "q", ["read"]), {"one_time": "yes"}),
        (("p", "q", ["read"]), {"cidrs": ["0.0.0.0/0"]}),
    ],
)
def test_mint_refuses_bad_requests(signer, args, kwargs):
    with pytest.raises(GrantError):
        signer.mint(*args, now=NOW, **kwargs)


def test_mint_refuses_grants_too_large_for_a_token():
    tiny = GrantSigner(ring(("k1", SECRET_1, "active")), max_token_length=100)
    with pytest.raises(GrantError, match="too large"):
        tiny.mint("p" * 200, "q", ["read"], now=NOW)


def test_grant_helpers(signer):
    _, grant = signer.mint("p", "q", ["read"], now=NOW, gen=3, ttl=100)
    assert grant.is_generation_current(3)
    assert not grant.is_generation_current(4)
    assert grant.seconds_left(NOW + 40) == 60
    assert grant.seconds_left(NOW + 500) == 0
    with pytest.raises(Exception):
        grant.queue = "other"  # frozen
    assert isinstance(grant, Grant)
