"""What a grant is, and its wire schema (the claims inside a signed token).

A grant gives its holder some operations on exactly one queue of one project
until ``exp``. The claims use short keys to keep tokens small::

    v    format version (1)          gen  queue signing generation at mint
    kid  key id (must equal prefix)  ot   one-time token (bool)
    jti  128-bit random id           exp  expiry, epoch seconds (exclusive)
    p    project id                  nbf  optional not-before, epoch seconds
    q    queue name                  cidr optional list of client networks
    ops  sorted operation names

``iat`` is not a claim: it is the itsdangerous timestamp. Loading is strict:
unknown or missing keys, wrong types, unsorted or non-canonical lists are all
``InvalidToken("malformed")``, even though only our own keys can sign.

Revocation (jti deny-list, generation bump, one-time consumption) needs
storage, so it is the caller's job; the grant only exposes the fields.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from signing.errors import MALFORMED
from signing.errors import GrantError
from signing.errors import InvalidToken
from signing.keys import is_valid_kid
from signing.network import normalise_cidrs

CLAIMS_VERSION = 1
MAX_NAME_LENGTH = 256
JTI_BYTES = 16

_JTI_RE = re.compile(r"[A-Za-z0-9_-]{22}")
_REQUIRED_CLAIMS = frozenset({"v", "kid", "jti", "p", "q", "ops", "exp", "gen", "ot"})
_OPTIONAL_CLAIMS = frozenset({"nbf", "cidr"})


class Operation(enum.StrEnum):
    """Operations a grant can carry. Queue administration is never grantable."""

    READ = "read"  # list / get / peek messages
    POST = "post"  # post messages
    CLAIM = "claim"  # create, renew, release claims
    DELETE = "delete"  # delete (claimed) messages


def parse_ops(ops: Iterable[str]) -> frozenset[Operation]:
    """Validate requested operation names; raise GrantError if unusable."""
    if isinstance(ops, (str, bytes)):
        raise GrantError("ops must be a list of operations, not a string")
    result = set()
    for op in ops:
        try:
            result.add(Operation(op))
        except ValueError:
            raise GrantError(f"unknown operation: {op!r}") from None
    if not result:
        raise GrantError("at least one operation is required")
    return frozenset(result)


def is_int(value: object) -> bool:
    """True for real ints (``bool`` is excluded: ``True`` is not an epoch)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class Grant:
    """The verified (or freshly minted) content of a token.

    Construction validates every field and raises GrantError, so a Grant in
    hand is always well-formed; ``cidrs`` must already be normalised.
    """

    project: str
    queue: str
    ops: frozenset[Operation]
    iat: int
    exp: int
    jti: str
    kid: str
    gen: int = 0
    nbf: int | None = None
    cidrs: tuple[str, ...] = ()
    one_time: bool = False

    def __post_init__(self) -> None:
        _check_name("project", self.project)
        _check_name("queue", self.queue)
        _check_ops(self.ops)
        _check_times(self.iat, self.exp, self.nbf)
        _check_ids(self.jti, self.kid, self.gen, self.one_time)
        _check_cidrs(self.cidrs)

    def is_generation_current(self, current_gen: int) -> bool:
        """True if the queue has not been re-keyed since this grant was minted."""
        return self.gen == current_gen

    def seconds_left(self, now: int) -> int:
        """Remaining life, e.g. the TTL of a jti deny-list entry (>= 0)."""
        return max(0, self.exp - now)


def _check_name(label: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise GrantError(f"{label} must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise GrantError(f"{label} is longer than {MAX_NAME_LENGTH} characters")
    if not value.isprintable():
        raise GrantError(f"{label} contains control characters")


def _check_ops(ops: object) -> None:
    if not isinstance(ops, frozenset) or not ops:
        raise GrantError("ops must be a non-empty frozenset")
    if not all(isinstance(op, Operation) for op in ops):
        raise GrantError("ops must contain Operation members")


def _check_times(iat: object, exp: object, nbf: object) -> None:
    if not (is_int(iat) and is_int(exp)) or iat < 0:  # type: ignore[operator]
        raise GrantError("iat and exp must be non-negative integers")
    if exp <= iat:  # type: ignore[operator]
        raise GrantError("exp must be after iat")
    if nbf is not None and (not is_int(nbf) or nbf >= exp):  # type: ignore[operator]
        raise GrantError("nbf must be an integer before exp")


def _check_cidrs(cidrs: object) -> None:
    if not isinstance(cidrs, tuple) or normalise_cidrs(cidrs) != cidrs:
        raise GrantError("cidrs must be a normalised tuple")


def _check_ids(jti: object, kid: object, gen: object, one_time: object) -> None:
    if not isinstance(jti, str) or _JTI_RE.fullmatch(jti) is None:
        raise GrantError("jti must be 22 base64url characters")
    if not is_valid_kid(kid):
        raise GrantError("kid must match ^[a-z0-9]{1,16}$")
    if not is_int(gen) or gen < 0:  # type: ignore[operator]
        raise GrantError("gen must be a non-negative integer")
    if not isinstance(one_time, bool):
        raise GrantError("one_time must be a bool")


def grant_to_claims(grant: Grant) -> dict[str, Any]:
    """The claims dict signed into a token (``iat`` travels as the timestamp)."""
    claims: dict[str, Any] = {
        "v": CLAIMS_VERSION,
        "kid": grant.kid,
        "jti": grant.jti,
        "p": grant.project,
        "q": grant.queue,
        "ops": sorted(op.value for op in grant.ops),
        "exp": grant.exp,
        "gen": grant.gen,
        "ot": grant.one_time,
    }
    if grant.nbf is not None:
        claims["nbf"] = grant.nbf
    if grant.cidrs:
        claims["cidr"] = list(grant.cidrs)
    return claims


def grant_from_claims(claims: object, iat: int) -> Grant:
    """Strictly rebuild a Grant from verified claims; else InvalidToken(malformed)."""
    if not isinstance(claims, dict):
        raise InvalidToken(MALFORMED)
    keys = set(claims)
    if not _REQUIRED_CLAIMS <= keys or keys - _REQUIRED_CLAIMS - _OPTIONAL_CLAIMS:
        raise InvalidToken(MALFORMED)
    if claims["v"] != CLAIMS_VERSION or not is_int(claims["v"]):
        raise InvalidToken(MALFORMED)
    try:
        return Grant(
            project=claims["p"],
            queue=claims["q"],
            ops=_ops_from_claim(claims["ops"]),
            iat=iat,
            exp=claims["exp"],
            jti=claims["jti"],
            kid=claims["kid"],
            gen=claims["gen"],
            nbf=_nbf_from_claim(claims),
            cidrs=_cidrs_from_claim(claims),
            one_time=claims["ot"],
        )
    except GrantError:
        raise InvalidToken(MALFORMED) from None


def _ops_from_claim(value: object) -> frozenset[Operation]:
    """The ops claim must be a sorted, duplicate-free list of known names."""
    if not isinstance(value, list) or not all(isinstance(op, str) for op in value):
        raise GrantError("ops claim is not a list of strings")
    if value != sorted(set(value)):
        raise GrantError("ops claim is not a sorted set")
    return parse_ops(value)


def _nbf_from_claim(claims: dict[str, Any]) -> int | None:
    """Absent means no nbf; an explicit null is not canonical."""
    if "nbf" not in claims:
        return None
    if claims["nbf"] is None:
        raise GrantError("nbf claim must not be null")
    return claims["nbf"]


def _cidrs_from_claim(claims: dict[str, Any]) -> tuple[str, ...]:
    if "cidr" not in claims:
        return ()
    value = claims["cidr"]
    if not isinstance(value, list) or not value:
        raise GrantError("cidr claim must be a non-empty list")
    return tuple(value)
